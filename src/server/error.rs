//! [`ServerError`]: what can go wrong running a server (as opposed to
//! answering a request, see [`ApiError`](super::ApiError)): its
//! configuration, its files, its master key, its storage, its delivery,
//! its listener. Each variant says what an operator has to fix.
//!
//! Messages never hold secrets: no codes, keys, passwords or escrow data,
//! and identities only masked.

use std::path::{Path, PathBuf};

use super::storage::StorageError;

/// An error setting up or running the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The configuration is unusable (bad TOML, a value out of range).
    #[error("{detail}")]
    Config {
        /// What is wrong, naming the setting.
        detail: String,
    },
    /// A file or directory could not be read, written or made.
    #[error("{}: {source}", io_what(action, path))]
    Io {
        /// What was being done (`reading`, `creating`, `writing`,
        /// `opening`); empty when the path says enough.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file that would be overwritten exists (`init` never overwrites).
    #[error("{} exists; not overwriting it", path.display())]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// The master key is missing or malformed.
    #[error("{detail}")]
    MasterKey {
        /// What is wrong and what to do.
        detail: String,
    },
    /// The database failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A deliverer could not be set up, or could not send a message.
    #[error("{detail}")]
    Delivery {
        /// The deliverer (`smtp`, `twilio`, `webhook`, `file`, or a
        /// custom one's name).
        kind: &'static str,
        /// What failed (never the code; identities only masked).
        detail: String,
    },
    /// Escrows handed to [`Server::import_escrows`](super::Server::import_escrows)
    /// could not all be stored.
    #[error("{detail}")]
    Import {
        /// Why.
        detail: String,
    },
    /// The listen address could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP server's listener, runtime or thread could not be set up.
    #[error("{source}")]
    Http {
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl ServerError {
    /// A [`ServerError::Config`].
    pub fn config(detail: impl Into<String>) -> Self {
        ServerError::Config {
            detail: detail.into(),
        }
    }

    /// A [`ServerError::Io`] for `action` on `path`.
    pub fn io(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        ServerError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }

    /// A [`ServerError::MasterKey`].
    pub fn master_key(detail: impl Into<String>) -> Self {
        ServerError::MasterKey {
            detail: detail.into(),
        }
    }

    /// A [`ServerError::Delivery`] from the deliverer `kind`.
    pub fn delivery(kind: &'static str, detail: impl Into<String>) -> Self {
        ServerError::Delivery {
            kind,
            detail: detail.into(),
        }
    }
}

/// `ACTION PATH`, or `PATH` alone when there is no action.
fn io_what(action: &str, path: &Path) -> String {
    if action.is_empty() {
        path.display().to_string()
    } else {
        format!("{action} {}", path.display())
    }
}

/// What server set-up returns.
pub type ServerResult<T> = std::result::Result<T, ServerError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages() {
        let gone = || std::io::Error::from(std::io::ErrorKind::NotFound);
        let e = ServerError::io("reading", Path::new("/k"), gone());
        assert_eq!(e.to_string(), format!("reading /k: {}", gone()));
        let e = ServerError::io("", Path::new("/d"), gone());
        assert_eq!(e.to_string(), format!("/d: {}", gone()));
        let e = ServerError::Exists {
            path: "/d/config.toml".into(),
        };
        assert_eq!(e.to_string(), "/d/config.toml exists; not overwriting it");
        let e = ServerError::from(StorageError("locked".into()));
        assert_eq!(e.to_string(), "storage: locked");
    }
}
