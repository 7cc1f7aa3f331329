//! The error every binding sees: [`PasscrowError`] mirrors the core's
//! kinds (and [`FailureInfo`] one failed request).

use super::*;

/// One server that failed during an operation.
#[derive(Debug, Clone, uniffi::Record)]
pub struct FailureInfo {
    /// The server, as written in the policy or pack.
    pub server: String,
    /// The escrow involved, if any.
    pub escrow_id: Option<String>,
    /// What went wrong.
    pub message: String,
}

impl From<crate::Failure> for FailureInfo {
    fn from(f: crate::Failure) -> Self {
        FailureInfo {
            server: f.server,
            escrow_id: f.escrow_id,
            message: f.message,
        }
    }
}

/// Errors, one variant per kind of [`crate::Error`]. Every variant has a
/// human-readable `detail` (free of secrets); some carry more fields.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum PasscrowError {
    /// The input cannot be used (a bad policy, name, code, ...).
    #[error("{detail}")]
    BadInput {
        /// What was wrong.
        detail: String,
    },
    /// A server refused a verification code.
    #[error("{detail}")]
    WrongCode {
        /// What was wrong.
        detail: String,
        /// The first character of the refused code (which escrow).
        prefix: Option<String>,
        /// Tries left for that code, when the server says (0: ask anew).
        attempts_left: Option<u32>,
    },
    /// Not a failure: the codes were right, but the escrows asked for a
    /// release delay. The shares are released at `release_at` (unix time)
    /// unless the owner stops it from a notice every identity was sent;
    /// call `recover` again then, with the same codes.
    #[error("{detail}")]
    Pending {
        /// What happened, and when to come back.
        detail: String,
        /// The server whose release is due last among those needed.
        server: String,
        /// When the recovery can complete (unix time).
        release_at: i64,
    },
    /// Too many wrong codes over an escrow's life: its server froze it
    /// for good. Protect the secret again (`renew`) while it can be had.
    #[error("{detail}")]
    Frozen {
        /// What happened.
        detail: String,
        /// The server holding the frozen escrow.
        server: String,
    },
    /// The owner stopped this delayed recovery from its notice: the share
    /// is never released for it.
    #[error("{detail}")]
    Stopped {
        /// What happened.
        detail: String,
        /// The server that stopped it.
        server: String,
    },
    /// A server is rate limiting us; try again later.
    #[error("{detail}")]
    RateLimited {
        /// What was wrong.
        detail: String,
        /// The server.
        server: String,
    },
    /// A pack, escrow or code does not exist (any more).
    #[error("{detail}")]
    NotFound {
        /// What was wrong.
        detail: String,
    },
    /// An escrow or code expired.
    #[error("{detail}")]
    Expired {
        /// What was wrong.
        detail: String,
    },
    /// No HTTP answer (connection, TLS, timeout), or a 5xx.
    #[error("{detail}")]
    Transport {
        /// What was wrong.
        detail: String,
    },
    /// A server answered with another error.
    #[error("{detail}")]
    Server {
        /// What was wrong.
        detail: String,
        /// The server.
        server: String,
    },
    /// A message or file broke the protocol.
    #[error("{detail}")]
    Protocol {
        /// What was wrong.
        detail: String,
    },
    /// Decryption failed (wrong key or altered data).
    #[error("{detail}")]
    Decrypt {
        /// What was wrong.
        detail: String,
    },
    /// Too few servers succeeded.
    #[error("{detail}")]
    Incomplete {
        /// What was wrong.
        detail: String,
        /// protect, verify, recover or forget.
        operation: String,
        /// How many succeeded.
        got: u32,
        /// How many were needed.
        needed: u32,
        /// What failed, per server.
        failures: Vec<FailureInfo>,
    },
    /// A local file operation failed.
    #[error("{detail}")]
    Io {
        /// What was wrong.
        detail: String,
    },
    /// The operation was cancelled ([`PasscrowClient::cancel`]).
    #[error("{detail}")]
    Cancelled {
        /// What was wrong.
        detail: String,
    },
    /// Not enough memory (the ephemeral key derivation needs 1 GiB);
    /// nothing was changed.
    #[error("{detail}")]
    OutOfMemory {
        /// What was wrong.
        detail: String,
    },
}

pub(crate) fn sat_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl From<Error> for PasscrowError {
    fn from(e: Error) -> Self {
        let detail = e.to_string();
        match e {
            Error::BadInput(_) => PasscrowError::BadInput { detail },
            Error::WrongCode {
                prefix,
                attempts_left,
            } => PasscrowError::WrongCode {
                detail,
                prefix: prefix.map(String::from),
                attempts_left,
            },
            Error::RateLimited { server } => PasscrowError::RateLimited { detail, server },
            Error::NotFound(_) => PasscrowError::NotFound { detail },
            Error::Expired(_) => PasscrowError::Expired { detail },
            Error::Transport(_) => PasscrowError::Transport { detail },
            Error::Pending { server, release_at } => PasscrowError::Pending {
                detail,
                server,
                release_at,
            },
            Error::Server { server, .. } => PasscrowError::Server { detail, server },
            Error::Frozen { server } => PasscrowError::Frozen { detail, server },
            Error::Stopped { server } => PasscrowError::Stopped { detail, server },
            Error::Protocol(_) => PasscrowError::Protocol { detail },
            Error::Decrypt(_) => PasscrowError::Decrypt { detail },
            Error::Incomplete {
                operation,
                got,
                needed,
                failures,
            } => PasscrowError::Incomplete {
                detail,
                operation: operation.to_string(),
                got: sat_u32(got),
                needed: sat_u32(needed),
                failures: failures.into_iter().map(FailureInfo::from).collect(),
            },
            Error::Io { .. } => PasscrowError::Io { detail },
            Error::Cancelled => PasscrowError::Cancelled { detail },
            Error::OutOfMemory(_) => PasscrowError::OutOfMemory { detail },
        }
    }
}

/// A foreign [`HttpTransport`] raised something that is not a
/// [`PasscrowError`]: treat it as a transport failure.
impl From<uniffi::UnexpectedUniFFICallbackError> for PasscrowError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        PasscrowError::Transport {
            detail: format!("transport callback failed: {}", e.reason),
        }
    }
}

pub(crate) type Res<T> = std::result::Result<T, PasscrowError>;
