//! The crate's one error type: kinds a caller can act on.
//!
//! Messages never carry key material, shares, verification codes or
//! plaintext: they name what was wrong (a field, a file, a server), never
//! the secret value itself.

use std::fmt;

/// A failure of one request to one escrow server, kept for reporting.
#[derive(Clone, PartialEq, Eq)]
pub struct Failure {
    /// The server (as written in the policy or pack) that failed.
    pub server: String,
    /// The escrow id involved, if any.
    pub escrow_id: Option<String>,
    /// What went wrong (already free of secrets).
    pub message: String,
}

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.escrow_id {
            Some(id) => write!(f, "{} on {}: {}", id, self.server, self.message),
            None => write!(f, "{}: {}", self.server, self.message),
        }
    }
}

/// Everything that can go wrong in libpasscrow.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The caller gave input we cannot use (a bad policy, a bad name, a
    /// malformed code, ...). The message says which input and why.
    #[error("bad input: {0}")]
    BadInput(String),

    /// A verification code was refused by the server.
    #[error("wrong verification code{}{}", prefix_text(*.prefix), attempts_text(*.attempts_left))]
    WrongCode {
        /// The first character of the refused code (which escrow it was for).
        prefix: Option<char>,
        /// How many more tries the server allows for this code, when it says.
        attempts_left: Option<u32>,
    },

    /// Not a failure: the codes were right, but escrows asked for a
    /// release delay. Their servers release the shares at `release_at`
    /// (unix time: when enough of them are due) unless the owner stops it,
    /// and told every identity so. Recover again then, with the same
    /// codes. (From `recover`; `server` is the one whose release is due
    /// last among those needed.)
    #[error("recovery pending: released at {release_at} (unix time) unless its owner stops it; recover again then")]
    Pending {
        /// The server holding the share.
        server: String,
        /// When it is released.
        release_at: i64,
    },

    /// Too many wrong codes over the escrow's life: its server froze it
    /// for good and checks no code any more (its identities were told).
    /// Protect the secret again (`renew`) while it can still be had.
    #[error("{server} froze this escrow for good after too many wrong codes; protect the secret again (renew)")]
    Frozen {
        /// The server holding the frozen escrow.
        server: String,
    },

    /// The escrow's owner stopped this delayed recovery from the notice
    /// its identities were sent: its server never releases the share for
    /// it.
    #[error("{server}: the owner stopped this recovery; the share will not be released")]
    Stopped {
        /// The server that stopped the release.
        server: String,
    },

    /// The server is rate limiting us; try again later.
    #[error("rate limited by {server}")]
    RateLimited {
        /// The server that refused.
        server: String,
    },

    /// A pack, escrow or code does not exist (or no longer exists).
    #[error("not found: {0}")]
    NotFound(String),

    /// The escrow or verification code has expired.
    #[error("expired: {0}")]
    Expired(String),

    /// Network or HTTP failure talking to a server.
    #[error("transport error: {0}")]
    Transport(String),

    /// A server answered with an error we have no better kind for.
    #[error("server {server} said: {message}")]
    Server {
        /// The server that answered.
        server: String,
        /// The server's error text.
        message: String,
    },

    /// A message or file did not follow the protocol (bad JSON, a missing or
    /// unknown field, an unsupported version, ...).
    #[error("protocol error: {0}")]
    Protocol(String),

    /// Decryption failed: wrong key, or the data was altered.
    #[error("decryption failed: {0}")]
    Decrypt(String),

    /// Too few servers answered for the operation to complete.
    #[error("{operation} incomplete: {got} of {needed} needed succeeded; {}", failures_text(.failures))]
    Incomplete {
        /// What we were doing (protect, verify, recover, forget).
        operation: &'static str,
        /// How many succeeded.
        got: usize,
        /// How many were needed.
        needed: usize,
        /// What failed, per server.
        failures: Vec<Failure>,
    },

    /// A local file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing, and on which path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The operation was cancelled.
    #[error("cancelled")]
    Cancelled,

    /// There is not enough memory for the operation (the ephemeral key
    /// derivation needs 1 GiB); nothing was changed.
    #[error("not enough memory: {0}")]
    OutOfMemory(String),
}

fn prefix_text(p: Option<char>) -> String {
    match p {
        Some(c) => format!(" (the code starting with {c})"),
        None => String::new(),
    }
}

fn attempts_text(a: Option<u32>) -> String {
    match a {
        Some(0) => " (no attempts left: the code is void, ask for a new one)".into(),
        Some(1) => " (1 attempt left)".into(),
        Some(n) => format!(" ({n} attempts left)"),
        None => String::new(),
    }
}

fn failures_text(f: &[Failure]) -> String {
    if f.is_empty() {
        "no failures reported".into()
    } else {
        f.iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl Error {
    /// Shorthand for [`Error::BadInput`].
    pub fn bad_input(msg: impl Into<String>) -> Self {
        Error::BadInput(msg.into())
    }

    /// Shorthand for [`Error::Protocol`].
    pub fn protocol(msg: impl Into<String>) -> Self {
        Error::Protocol(msg.into())
    }

    /// Wrap an I/O error with what we were doing.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// True when retrying the same request later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Transport(_) | Error::RateLimited { .. })
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
