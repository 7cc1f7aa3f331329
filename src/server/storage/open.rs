//! Which backend a configuration names, and opening it.
//!
//! `database` in config.toml (or `--database`): nothing (the file
//! `passcrow.sqlite` in the data directory), `sqlite:PATH` or a plain path
//! (a SQLite file), or `postgres://USER@HOST:PORT/DB` (feature `postgres`;
//! its settings in `[postgres]`, its password from
//! `postgres.password_file`, `$PASSCROW_DATABASE_PASSWORD` or
//! `$PGPASSWORD`).

use std::path::{Path, PathBuf};

use super::Storage;
use crate::server::config::Config;
use crate::server::error::{ServerError, ServerResult};

/// A database a configuration names.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL URL (`postgres://` or `postgresql://`).
    Postgres(String),
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Database({})", self.describe())
    }
}

impl Database {
    /// Parse a `database` setting; `data_dir` gives the default file.
    pub fn parse(spec: Option<&str>, data_dir: &Path) -> ServerResult<Database> {
        let Some(spec) = spec.map(str::trim).filter(|s| !s.is_empty()) else {
            return Ok(Database::Sqlite(data_dir.join("passcrow.sqlite")));
        };
        if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
            return Ok(Database::Postgres(spec.to_string()));
        }
        if let Some(p) = spec.strip_prefix("sqlite:") {
            let p = p.strip_prefix("//").unwrap_or(p);
            if p.is_empty() {
                return Err(ServerError::config("database = \"sqlite:\" needs a path"));
            }
            return Ok(Database::Sqlite(PathBuf::from(p)));
        }
        if let Some((scheme, _)) = spec.split_once("://") {
            if !scheme.contains('/') {
                return Err(ServerError::config(format!(
                    "database: unknown kind {scheme:?} (use postgres://USER@HOST:PORT/DB, \
                     sqlite:PATH or a file path)"
                )));
            }
        }
        Ok(Database::Sqlite(PathBuf::from(spec)))
    }

    /// For messages: the path, or the URL without its login.
    pub fn describe(&self) -> String {
        match self {
            Database::Sqlite(p) => p.display().to_string(),
            Database::Postgres(u) => redact_database_url(u),
        }
    }
}

/// A database URL fit for messages: its login hidden (`[login]@`) and
/// the value of any `password=` parameter replaced.
pub(crate) fn redact_database_url(u: &str) -> String {
    let (base, query) = match u.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (u, None),
    };
    let mut out = crate::server::config::redact_url(base);
    if let Some(q) = query {
        let kept: Vec<&str> = q
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => "password=[hidden]",
                _ => kv,
            })
            .collect();
        out.push('?');
        out.push_str(&kept.join("&"));
    }
    out
}

/// Open the database `db` with `cfg`'s settings.
pub fn open_database(db: &Database, cfg: &Config) -> ServerResult<Box<dyn Storage>> {
    match db {
        Database::Sqlite(p) => Ok(Box::new(super::SqliteStorage::open(p)?)),
        Database::Postgres(url) => open_postgres(url, cfg),
    }
}

#[cfg(feature = "postgres")]
fn open_postgres(url: &str, cfg: &Config) -> ServerResult<Box<dyn Storage>> {
    let s = postgres_settings(cfg, &crate::server::credentials::process_env)?;
    Ok(Box::new(super::PostgresStorage::open(url, &s)?))
}

#[cfg(not(feature = "postgres"))]
fn open_postgres(url: &str, _cfg: &Config) -> ServerResult<Box<dyn Storage>> {
    Err(ServerError::config(format!(
        "database {}: this passcrow-server was built without PostgreSQL \
         (cargo build --features postgres)",
        redact_database_url(url)
    )))
}

/// The PostgreSQL settings of `cfg`, the password resolved.
#[cfg(feature = "postgres")]
pub fn postgres_settings(
    cfg: &Config,
    env: crate::server::credentials::Env<'_>,
) -> ServerResult<super::postgres::Settings> {
    use crate::server::credentials::{resolve, Source};
    use std::time::Duration;
    let p = &cfg.postgres;
    let password = resolve(
        &Source {
            setting: "postgres.password",
            inline: None,
            file: p.password_file.as_deref(),
            env: Some(super::postgres::ENV_DATABASE_PASSWORD),
        },
        env,
    )?
    .or_else(|| {
        env("PGPASSWORD")
            .filter(|v| !v.is_empty())
            .map(crate::crypto::SecretString::new)
    });
    Ok(super::postgres::Settings {
        password,
        pool_size: p.pool_size as usize,
        acquire_timeout: Duration::from_millis(p.acquire_timeout_ms),
        connect_timeout: Duration::from_millis(p.connect_timeout_ms),
        statement_timeout: Duration::from_millis(p.statement_timeout_ms),
        lock_timeout: Duration::from_millis(p.lock_timeout_ms),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_settings() {
        let d = Path::new("/srv/pc");
        let p = |s: Option<&str>| Database::parse(s, d);
        assert_eq!(
            p(None).unwrap(),
            Database::Sqlite(d.join("passcrow.sqlite"))
        );
        assert_eq!(
            p(Some("/var/db/x.sqlite")).unwrap(),
            Database::Sqlite("/var/db/x.sqlite".into())
        );
        assert_eq!(
            p(Some("sqlite:/var/db/x.sqlite")).unwrap(),
            Database::Sqlite("/var/db/x.sqlite".into())
        );
        assert_eq!(
            p(Some("sqlite:rel.db")).unwrap(),
            Database::Sqlite("rel.db".into())
        );
        assert_eq!(
            p(Some("postgresql://u@h/db")).unwrap(),
            Database::Postgres("postgresql://u@h/db".into())
        );
        let e = p(Some("mysql://u@h/db")).unwrap_err().to_string();
        assert!(e.contains("\"mysql\""), "{e}");
        assert!(p(Some("sqlite:")).is_err());
        let pg = p(Some("postgres://u:pw@h/db")).unwrap();
        assert!(!format!("{pg:?}").contains("pw"));
        let pg = p(Some(
            "postgres://u@h/db?password=hunter2&sslmode=verify-full",
        ))
        .unwrap();
        assert_eq!(
            pg.describe(),
            "postgres://[login]@h/db?password=[hidden]&sslmode=verify-full"
        );
    }
}
