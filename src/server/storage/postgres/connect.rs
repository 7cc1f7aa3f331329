//! Reaching the database: the URL, the password, TLS, and the checks every
//! new connection passes.
//!
//! The URL is libpq's (`postgres://USER@HOST:PORT/DB?...`), with two
//! parameters read here rather than by the driver:
//!
//! - `sslmode`: `verify-full` (TLS through rustls, the certificate checked
//!   against the roots and the host name) or `disable` (plain, refused
//!   unless every host is a loopback address or a Unix socket: a plain
//!   connection over a network hands the password and every sealed escrow
//!   to whoever is on the path). Unset: `disable` on loopback, `verify-full`
//!   anywhere else. `require`, `verify-ca`, `prefer` and `allow` are refused:
//!   each accepts a server it has not verified.
//! - `sslrootcert`: a PEM file of the CA certificates to trust (the
//!   database's own CA, typically); without it, Mozilla's roots.
//!
//! The password comes from [`Settings::password`] (the config file's
//! `postgres.password_file`, `$PASSCROW_DATABASE_PASSWORD` or libpq's
//! `$PGPASSWORD`), never needs to be in the URL, and is scrubbed from
//! every error this backend gives.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use postgres::config::{Host, SslMode};
use postgres::{Client, NoTls};

use super::super::{StorageError, StorageResult};
use crate::crypto::SecretString;

/// How to reach and use the database.
#[derive(Clone)]
pub struct Settings {
    /// The password, when not in the URL (or to override it).
    pub password: Option<SecretString>,
    /// Connections kept open (at most).
    pub pool_size: usize,
    /// Longest wait for a free connection.
    pub acquire_timeout: Duration,
    /// Longest wait to open a connection.
    pub connect_timeout: Duration,
    /// `statement_timeout` of every transaction.
    pub statement_timeout: Duration,
    /// `lock_timeout` of every transaction.
    pub lock_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            password: None,
            pool_size: 16,
            acquire_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(10),
            lock_timeout: Duration::from_secs(5),
        }
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("password", &self.password.as_ref().map(|_| "[set]"))
            .field("pool_size", &self.pool_size)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field("lock_timeout", &self.lock_timeout)
            .finish()
    }
}

/// The TLS a connection uses.
#[derive(Clone)]
enum Tls {
    Plain,
    Rustls(Arc<rustls::ClientConfig>),
}

/// Everything needed to open one more connection.
pub(super) struct Connector {
    config: postgres::Config,
    tls: Tls,
    /// The URL without its login, for messages.
    pub(super) label: String,
    /// Secrets to scrub from error text (the password).
    scrub: Vec<SecretString>,
}

/// `u` with any `user:password@` hidden, fit for messages.
pub(super) fn redact(u: &str) -> String {
    super::super::open::redact_database_url(u)
}

fn is_loopback(h: &Host) -> bool {
    match h {
        Host::Unix(_) => true,
        Host::Tcp(name) => {
            let n = name.trim_start_matches('[').trim_end_matches(']');
            n.eq_ignore_ascii_case("localhost")
                || n.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
        }
    }
}

impl Connector {
    /// Parse `url` and prepare TLS; checks what can be checked without
    /// connecting.
    pub(super) fn new(url: &str, settings: &Settings) -> StorageResult<Connector> {
        let label = redact(url);
        let bad = |what: String| StorageError(format!("database URL {label}: {what}"));
        let (base, query) = match url.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (url, None),
        };
        let mut sslmode: Option<String> = None;
        let mut rootcert: Option<String> = None;
        let mut rest: Vec<&str> = Vec::new();
        for kv in query.into_iter().flat_map(|q| q.split('&')) {
            match kv.split_once('=') {
                Some(("sslmode", v)) => sslmode = Some(v.to_string()),
                Some(("sslrootcert", v)) => rootcert = Some(percent_decode(v)),
                Some(("password", _)) => {
                    return Err(bad(
                        "a password in the URL is refused: use postgres.password_file, \
                         $PASSCROW_DATABASE_PASSWORD or $PGPASSWORD"
                            .into(),
                    ))
                }
                _ if kv.is_empty() => {}
                _ => rest.push(kv),
            }
        }
        let driver_url = if rest.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", rest.join("&"))
        };
        // The driver's own messages quote no values, but keep them short
        // of the URL anyway.
        let mut config: postgres::Config = driver_url
            .parse()
            .map_err(|e: postgres::Error| bad(format!("{e}")))?;
        if config.get_hosts().is_empty() {
            return Err(bad("no host".into()));
        }
        if config.get_user().is_none() {
            return Err(bad("no user (postgres://USER@HOST:PORT/DB)".into()));
        }
        let mut scrub = Vec::new();
        if let Some(p) = config.get_password() {
            scrub.push(SecretString::from(String::from_utf8_lossy(p).into_owned()));
        }
        if let Some(p) = &settings.password {
            config.password(p.expose_secret());
            scrub.push(p.clone());
        }
        config.connect_timeout(settings.connect_timeout);
        config.application_name("passcrow-server");
        let loopback = config.get_hosts().iter().all(is_loopback);
        let mode = sslmode.unwrap_or_else(|| {
            if loopback {
                "disable".into()
            } else {
                "verify-full".into()
            }
        });
        let tls = match mode.as_str() {
            "disable" if loopback => Tls::Plain,
            "disable" => {
                return Err(bad(
                    "sslmode=disable is allowed only for a loopback host or a Unix socket: \
                     over a network it would send the password and every escrow in clear \
                     (use sslmode=verify-full, with sslrootcert=CA.pem for a private CA)"
                        .into(),
                ))
            }
            "verify-full" => Tls::Rustls(Arc::new(client_config(rootcert.as_deref(), &label)?)),
            other => {
                return Err(bad(format!(
                    "sslmode={other} is not supported: use verify-full (the certificate and \
                     host name are checked) or, on loopback only, disable"
                )))
            }
        };
        config.ssl_mode(match tls {
            Tls::Plain => SslMode::Disable,
            Tls::Rustls(_) => SslMode::Require,
        });
        Ok(Connector {
            config,
            tls,
            label,
            scrub,
        })
    }

    /// Whether connections use TLS.
    #[cfg(test)]
    fn uses_tls(&self) -> bool {
        matches!(self.tls, Tls::Rustls(_))
    }

    /// `e`'s text with every secret this connector knows replaced.
    pub(super) fn scrubbed(&self, e: impl std::fmt::Display) -> String {
        let mut s = e.to_string();
        for p in &self.scrub {
            let p = p.expose_secret();
            if !p.is_empty() {
                s = s.replace(p, "[password]");
            }
        }
        s
    }

    /// A storage error about `what`, scrubbed.
    pub(super) fn error(&self, what: &str, e: impl std::fmt::Display) -> StorageError {
        StorageError(format!(
            "postgres {}: {what}: {}",
            self.label,
            self.scrubbed(e)
        ))
    }

    /// Open one connection.
    pub(super) fn connect(&self) -> StorageResult<Client> {
        let r = match &self.tls {
            Tls::Plain => self.config.connect(NoTls),
            Tls::Rustls(c) => self
                .config
                .connect(tokio_postgres_rustls::MakeRustlsConnect::new((**c).clone())),
        };
        r.map_err(|e| self.error("connecting", error_text(&e)))
    }
}

/// The most telling text of a driver error (its database message, or
/// its source, which `Display` leaves out).
pub(super) fn error_text(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} ({})", db.message(), db.code().code());
    }
    match std::error::Error::source(e) {
        Some(src) => format!("{e}: {src}"),
        None => e.to_string(),
    }
}

fn client_config(rootcert: Option<&str>, label: &str) -> StorageResult<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    match rootcert {
        Some(path) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<_, _>>())
                .map_err(|e| {
                    StorageError(format!(
                        "database URL {label}: sslrootcert {path}: not a PEM certificate file ({e})"
                    ))
                })?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(StorageError(format!(
                    "database URL {label}: sslrootcert {path} holds no usable certificate"
                )));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| StorageError(format!("TLS set-up: {e}")))
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
}

/// `%XX` escapes decoded (a path in a URL parameter).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 3 <= b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(hex, 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(url: &str) -> String {
        match Connector::new(url, &Settings::default()) {
            Ok(_) => panic!("{url} accepted"),
            Err(e) => e.0,
        }
    }

    #[test]
    fn plain_only_on_loopback_and_never_unverified() {
        for ok in [
            "postgres://u@127.0.0.1:5432/db",
            "postgres://u@localhost/db",
            "postgres://u@[::1]:5432/db?sslmode=disable",
            "postgresql://u@%2Frun%2Fpostgresql/db",
        ] {
            let c = Connector::new(ok, &Settings::default()).unwrap();
            assert!(!c.uses_tls(), "{ok}");
        }
        let c = Connector::new("postgres://u@db.example.org/db", &Settings::default()).unwrap();
        assert!(c.uses_tls(), "TLS by default off loopback");
        let e = refused("postgres://u@db.example.org/db?sslmode=disable");
        assert!(e.contains("loopback"), "{e}");
        for mode in ["require", "verify-ca", "prefer", "allow"] {
            let e = refused(&format!("postgres://u@db.example.org/db?sslmode={mode}"));
            assert!(e.contains(&format!("sslmode={mode}")), "{e}");
        }
        let e = refused("postgres://u@db.example.org/db?sslrootcert=/nonexistent.pem");
        assert!(e.contains("/nonexistent.pem"), "{e}");
        assert!(refused("postgres://127.0.0.1/db").contains("no user"));
    }

    #[test]
    fn passwords_never_in_messages() {
        let e = refused("postgres://u@127.0.0.1/db?password=hunter2");
        assert!(!e.contains("hunter2") && e.contains("password_file"), "{e}");
        let e = refused("postgres://u:hunter2@db.example.org/db?sslmode=require");
        assert!(!e.contains("hunter2"), "{e}");
        let s = Settings {
            password: Some(SecretString::from("s3cret")),
            ..Settings::default()
        };
        let c = Connector::new("postgres://u@127.0.0.1/db", &s).unwrap();
        let e = c.error("connecting", "auth with s3cret failed");
        assert!(!e.0.contains("s3cret"), "{e}");
        assert_eq!(format!("{s:?}").matches("s3cret").count(), 0);
    }
}
