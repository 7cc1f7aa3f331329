//! UniFFI bindings: the client for Python, Kotlin and Swift.
//!
//! Everything here is a thin layer over [`crate::client::Client`]: records
//! for what comes back, a [`PasscrowError`] that mirrors [`crate::Error`]'s
//! kinds, and an optional foreign [`HttpTransport`] so an app can send the
//! requests through its own HTTP stack (certificate pinning, a proxy, Tor).
//!
//! **Every method blocks** (network round trips, scrypt, hashcash): call
//! them off the UI thread (a worker thread, `Dispatchers.IO`, a
//! `Task.detached`, `asyncio.to_thread`). One [`PasscrowClient`] may be used
//! from several threads at once.
//!
//! Secrets cross as bytes (`bytes`, `ByteArray`, `Data`); the foreign copy
//! is the caller's to wipe. Error messages never carry secrets or codes.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::client::{self, Client, ClientConfig, Ephemeral, ProtectOptions, Recovered};
use crate::pack::RecoveryPack;
use crate::policy::{check_ratio, clamp_lifetime, PolicyRequest};
use crate::Error;

mod error;
mod health;
mod pack;
mod passcrow_client;
mod records;
mod secret_text;
mod transport;

pub use error::*;
pub use health::*;
pub use pack::*;
pub use passcrow_client::*;
pub use records::*;
pub use secret_text::*;
pub use transport::*;

/// Normalise a typed code as `recover` does (trim, drop blanks and dashes,
/// upper-case, O→0, I/L→1).
#[uniffi::export]
pub fn normalize_code(code: String) -> String {
    client::normalize_code(&code).expose_secret().to_string()
}

/// The library's version.
#[uniffi::export]
pub fn library_version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

/// Normalise an identity (`a@b.org` → `email:a@b.org`, `+354...` →
/// `tel:+354...`).
#[uniffi::export]
pub fn normalize_identity(text: String) -> Res<String> {
    Ok(crate::proto::Identity::parse(&text)?.as_str().to_string())
}

/// How a kind reads in a sentence (`email` → `e-mail to`).
#[uniffi::export]
pub fn explain_kind(kind: String) -> String {
    crate::proto::explain_kind(&kind).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_their_kind_and_fields() {
        let e: PasscrowError = Error::WrongCode {
            prefix: Some('2'),
            attempts_left: Some(1),
        }
        .into();
        match e {
            PasscrowError::WrongCode {
                detail,
                prefix,
                attempts_left,
            } => {
                assert_eq!(prefix.as_deref(), Some("2"));
                assert_eq!(attempts_left, Some(1));
                assert!(detail.contains("1 attempt left"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
        let e: PasscrowError = Error::Incomplete {
            operation: "recover",
            got: 1,
            needed: 2,
            failures: vec![crate::Failure {
                server: "s".into(),
                escrow_id: None,
                message: "m".into(),
            }],
        }
        .into();
        assert!(matches!(
            e,
            PasscrowError::Incomplete { ref operation, got: 1, needed: 2, ref failures, .. }
                if operation == "recover" && failures.len() == 1
        ));
        let e: PasscrowError = Error::RateLimited { server: "s".into() }.into();
        assert!(matches!(e, PasscrowError::RateLimited { ref server, .. } if server == "s"));
        assert!(matches!(
            PasscrowError::from(Error::Cancelled),
            PasscrowError::Cancelled { .. }
        ));
    }

    #[test]
    fn defaults_records_are_checked_by_the_core() {
        let mut d = defaults_from_core(&crate::policy::Defaults::default());
        d.expiration_days = 0;
        d.timeout_minutes = 0;
        let core = defaults_to_core(&d).unwrap();
        assert_eq!((core.expiration_days, core.timeout_minutes), (1, 1));
        for (n, m) in [(0, 3), (4, 3), (1, 0)] {
            d.n = n;
            d.m = m;
            assert!(matches!(
                defaults_to_core(&d),
                Err(PasscrowError::BadInput { .. })
            ));
        }
    }

    #[test]
    fn call_options_set_only_the_delay() {
        let dir = tempfile::tempdir().unwrap();
        let c = Client::new(ClientConfig::new(dir.path(), dir.path())).unwrap();
        let base = c.pacing();
        let none = call_options(&c, None).unwrap().pacing.unwrap();
        assert_eq!(none.delay, None);
        assert_eq!(none.backoff, base.backoff);
        let range = DelayRange {
            min_seconds: 1,
            max_seconds: 2,
        };
        let some = CallOptions {
            anonymity_delay: Some(range),
        }
        .to_core(&c)
        .unwrap()
        .pacing
        .unwrap();
        assert_eq!(
            some.delay,
            Some((Duration::from_secs(1), Duration::from_secs(2)))
        );
        assert_eq!(some.max_backoff, base.max_backoff);
        let upside_down = CallOptions {
            anonymity_delay: Some(DelayRange {
                min_seconds: 3,
                max_seconds: 2,
            }),
        };
        assert!(matches!(
            upside_down.to_core(&c),
            Err(PasscrowError::BadInput { .. })
        ));
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let r = RecoveryResult::Secret {
            secret: b"hunter2".to_vec(),
        };
        assert!(!format!("{r:?}").contains("hunter2"));
        let e = EphemeralDetails {
            server: "s".into(),
            user_key: SecretText::new(crate::SecretString::new("AbCd-23Ef".into())),
            recovery_id: SecretText::new(crate::SecretString::new("s:AbCd-23Ef".into())),
            expiration: 0,
        };
        assert!(!format!("{e:?}").contains("AbCd"));
        assert_eq!(e.user_key.expose(), "AbCd-23Ef");
    }
}
