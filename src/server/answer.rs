//! Answers: what [`Server::handle`](super::Server::handle) gives back, an
//! HTTP status and a JSON body; error answers are
//! `{"error", "error-kind", "attempts-left"?}` ([`ApiError`]).

use serde::Serialize;

use super::storage::StorageError;
use crate::proto;

/// What kind of error an answer is (`error-kind` on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The verification code was wrong (or is void).
    WrongCode,
    /// Too many requests.
    RateLimited,
    /// No such escrow or code.
    NotFound,
    /// The escrow or code expired.
    Expired,
    /// The request was malformed or cannot be honoured as asked.
    BadRequest,
    /// The body was larger than `max-request-bytes`.
    TooLarge,
    /// An unknown method, identity kind or version.
    Unsupported,
    /// Missing, invalid or spent payment; also a free escrow past the
    /// day's free escrows, or any escrow on a server holding all it may.
    Payment,
    /// The escrow is frozen for good (too many wrong codes over its
    /// life): it releases nothing; its owner re-protects.
    Frozen,
    /// The right code arrived but the escrow asked for a release delay:
    /// it is released at `release-at` unless its owner stops it.
    Pending,
    /// Its owner stopped a delayed release: it is never released.
    Stopped,
    /// Our fault.
    Internal,
}

impl ErrorKind {
    /// The `error-kind` string.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::WrongCode => "wrong-code",
            ErrorKind::RateLimited => "rate-limited",
            ErrorKind::NotFound => "not-found",
            ErrorKind::Expired => "expired",
            ErrorKind::BadRequest | ErrorKind::TooLarge => "bad-request",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Payment => "payment",
            ErrorKind::Frozen => "frozen",
            ErrorKind::Pending => "pending",
            ErrorKind::Stopped => "stopped",
            ErrorKind::Internal => "internal",
        }
    }

    /// The HTTP status an error answer goes out with: 200 (so the
    /// reference client reads the message), except 413 and 429.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::TooLarge => 413,
            ErrorKind::RateLimited => 429,
            _ => 200,
        }
    }
}

/// An error answer: `{"error", "error-kind", "attempts-left"?}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// The kind.
    pub kind: ErrorKind,
    /// Text for the user (never a secret).
    pub message: String,
    /// For wrong codes (and a paused or frozen escrow): wrong codes it
    /// may still take now, the least of this code's attempts, the hour's
    /// and the escrow's life's.
    pub attempts_left: Option<u32>,
    /// For a pending release: when it is due (`release-at`, unix time).
    pub release_at: Option<i64>,
}

impl ApiError {
    /// An error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
            attempts_left: None,
            release_at: None,
        }
    }

    pub(crate) fn bad(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, message)
    }

    pub(crate) fn internal() -> Self {
        Self::new(ErrorKind::Internal, "Internal Error")
    }

    /// The rate-limit error.
    pub fn rate_limited() -> Self {
        Self::new(ErrorKind::RateLimited, "Sorry, rate limited.")
    }

    /// The answer body.
    pub fn to_json(&self) -> String {
        let mut m = serde_json::Map::new();
        m.insert("error".into(), self.message.clone().into());
        m.insert("error-kind".into(), self.kind.as_str().into());
        if let Some(a) = self.attempts_left {
            m.insert("attempts-left".into(), a.into());
        }
        if let Some(t) = self.release_at {
            m.insert("release-at".into(), t.into());
        }
        serde_json::Value::Object(m).to_string()
    }

    /// The whole answer.
    pub fn to_answer(&self) -> Answer {
        Answer {
            status: self.kind.http_status(),
            body: self.to_json(),
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        tracing::error!("{e}");
        ApiError::internal()
    }
}

/// An answer: HTTP status and JSON body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// JSON text.
    pub body: String,
}

impl Answer {
    pub(crate) fn ok<T: Serialize>(v: &T) -> Answer {
        Answer {
            status: 200,
            body: proto::to_reference_json(v),
        }
    }

    /// True for an error answer.
    pub fn is_error(&self) -> bool {
        proto::error_answer(self.body.as_bytes()).is_some()
    }
}

/// What a handler gives back: a value for the answer, or an error answer.
pub(crate) type ApiResult<T> = Result<T, ApiError>;
