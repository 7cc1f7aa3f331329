//! `passcrow-server`: the Passcrow escrow server.
//!
//! ```text
//! passcrow-server init DIR
//! passcrow-server [--config FILE] [--listen ADDR] [--data DIR] [--smtp URL]
//!                 [--mail-from ADDR] [--deliver-to-file PATH]
//!                 [--country-code CC] [--about-url URL]
//!                 [--trusted-proxies LIST] [--forwarded-header NAME]
//!                 [--header-timeout S] [--keep-alive-timeout S]
//!                 [--body-timeout S] [--max-connections-per-address N]
//! passcrow-server sweep [--config FILE] [--data DIR]
//! passcrow-server migrate --from sqlite:PATH --to postgres://USER@HOST:PORT/DB
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use passcrow::server::config::{Config, SmtpConfig};
use passcrow::server::{self, Server, ServerError};

/// What `run` fails with: a [`ServerError`], or a usage error's text.
type BoxError = Box<dyn std::error::Error>;

const USAGE: &str = "\
passcrow-server: the Passcrow escrow server

Usage:
  passcrow-server init DIR        write DIR/config.toml and DIR/master.key
  passcrow-server [serve] [OPTIONS]
  passcrow-server sweep [OPTIONS] remove expired data and exit
  passcrow-server migrate --from sqlite:PATH --to postgres://USER@HOST:PORT/DB [OPTIONS]
                                  copy a SQLite data set into an empty PostgreSQL
                                  database (the master key stays the same)

Options (override the config file):
  --config FILE           TOML config (default: DATA/config.toml if --data has one)
  --listen ADDR           listen address (default 127.0.0.1:8451; port 0 = any)
  --data DIR              data directory (database, master key)
  --database DB           sqlite:PATH, a file path, or postgres://USER@HOST:PORT/DB
                          (no password here: use postgres.password_file or
                          PASSCROW_DATABASE_PASSWORD; see docs/server.md)
  --smtp URL              smtp://HOST:PORT (plain), smtps://HOST, smtp+starttls://HOST
                          (no password here: other users see it; use
                          delivery.smtp.password_file or PASSCROW_SMTP_PASSWORD)
  --mail-from ADDR        From: address of e-mail
  --deliver-to-file PATH  append identity<TAB>code lines to PATH (tests, demos)
  --country-code CC       operator's country code
  --about-url URL         operator's page
  --trusted-proxies LIST  comma-separated addresses/CIDRs of reverse proxies whose
                          forwarding header names the client (default: none)
  --forwarded-header NAME x-forwarded-for (default) or forwarded (RFC 7239)
  --header-timeout S      seconds to send request headers (default 10)
  --keep-alive-timeout S  seconds idle between requests; 0 = no keep-alive (default 5)
  --body-timeout S        seconds to send a request body (default 10)
  --max-connections-per-address N
                          open connections per client address, IPv6 per /64;
                          0 = no limit (default 32)
  -h, --help              this text
  -V, --version           version

Logs go to stderr (RUST_LOG sets the level; default info).
";

struct Args {
    command: String,
    init_dir: Option<PathBuf>,
    config: Option<PathBuf>,
    listen: Option<String>,
    data: Option<PathBuf>,
    smtp: Option<String>,
    mail_from: Option<String>,
    file: Option<PathBuf>,
    country_code: Option<String>,
    about_url: Option<String>,
    trusted_proxies: Option<Vec<String>>,
    forwarded_header: Option<String>,
    header_timeout: Option<u64>,
    keep_alive_timeout: Option<u64>,
    body_timeout: Option<u64>,
    max_connections_per_address: Option<u32>,
    database: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

fn number<T: std::str::FromStr>(flag: &str, v: String) -> Result<T, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("{flag} needs a whole number, not {v:?}"))
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        command: "serve".into(),
        init_dir: None,
        config: None,
        listen: None,
        data: None,
        smtp: None,
        mail_from: None,
        file: None,
        country_code: None,
        about_url: None,
        trusted_proxies: None,
        forwarded_header: None,
        header_timeout: None,
        keep_alive_timeout: None,
        body_timeout: None,
        max_connections_per_address: None,
        database: None,
        from: None,
        to: None,
    };
    let mut it = std::env::args().skip(1).peekable();
    if let Some(first) = it.peek() {
        if !first.starts_with('-') {
            a.command = it.next().unwrap_or_default();
        }
    }
    match a.command.as_str() {
        "serve" | "sweep" | "migrate" => {}
        "init" => {
            a.init_dir = Some(PathBuf::from(it.next().ok_or("init needs a directory")?));
        }
        other => return Err(format!("unknown command {other:?}")),
    }
    while let Some(flag) = it.next() {
        let (flag, inline) = match flag.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (flag, None),
        };
        if flag == "-h" || flag == "--help" {
            print!("{USAGE}");
            std::process::exit(0);
        }
        if flag == "-V" || flag == "--version" {
            println!("passcrow-server {}", env!("CARGO_PKG_VERSION"));
            std::process::exit(0);
        }
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or(format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--config" => a.config = Some(value()?.into()),
            "--listen" => a.listen = Some(value()?),
            "--data" => a.data = Some(value()?.into()),
            "--smtp" => a.smtp = Some(value()?),
            "--mail-from" => a.mail_from = Some(value()?),
            "--deliver-to-file" => a.file = Some(value()?.into()),
            "--country-code" => a.country_code = Some(value()?),
            "--about-url" => a.about_url = Some(value()?),
            "--trusted-proxies" => {
                let v = value()?;
                a.trusted_proxies = Some(
                    v.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect(),
                );
            }
            "--database" => a.database = Some(value()?),
            "--from" if a.command == "migrate" => a.from = Some(value()?),
            "--to" if a.command == "migrate" => a.to = Some(value()?),
            "--forwarded-header" => a.forwarded_header = Some(value()?),
            "--header-timeout" => a.header_timeout = Some(number(&flag, value()?)?),
            "--keep-alive-timeout" => a.keep_alive_timeout = Some(number(&flag, value()?)?),
            "--body-timeout" => a.body_timeout = Some(number(&flag, value()?)?),
            "--max-connections-per-address" => {
                a.max_connections_per_address = Some(number(&flag, value()?)?)
            }
            other => return Err(format!("unknown option {other:?} (see --help)")),
        }
    }
    Ok(a)
}

fn load_config(a: &Args) -> Result<Config, BoxError> {
    let file = a.config.clone().or_else(|| {
        a.data
            .as_ref()
            .map(|d| d.join("config.toml"))
            .filter(|p| p.is_file())
    });
    let mut c = match &file {
        Some(f) => Config::load(f)?,
        None => match &a.data {
            Some(d) => Config::new(d),
            // migrate needs no data directory.
            None if a.command == "migrate" => Config::default(),
            None => return Err("give --config FILE or --data DIR (see --help)".into()),
        },
    };
    if let Some(db) = &a.database {
        if server::credentials::url_has_password(db) {
            tracing::warn!(
                "the database password in --database is visible to other users of this \
                 machine (ps, /proc): use postgres.password_file or $PASSCROW_DATABASE_PASSWORD"
            );
        }
        c.database = Some(db.clone());
    }
    if let Some(d) = &a.data {
        c.data_dir = d.clone();
    }
    if let Some(l) = &a.listen {
        c.listen = l.clone();
    }
    if let Some(s) = &a.smtp {
        // Works, but anyone on the machine can read it (ps).
        server::credentials::warn_if_password_on_command_line(s);
        let old = c.delivery.smtp.take().unwrap_or_default();
        c.delivery.smtp = Some(SmtpConfig {
            url: s.clone(),
            ..old
        });
    }
    if let Some(m) = &a.mail_from {
        c.delivery.mail_from = Some(m.clone());
    }
    if let Some(f) = &a.file {
        c.delivery.file = Some(f.clone());
    }
    if let Some(cc) = &a.country_code {
        c.country_code = cc.clone();
    }
    if let Some(u) = &a.about_url {
        c.about_url = u.clone();
    }
    if let Some(p) = &a.trusted_proxies {
        c.trusted_proxies = p.clone();
    }
    if let Some(h) = &a.forwarded_header {
        c.forwarded_header = h.clone();
    }
    if let Some(s) = a.header_timeout {
        c.header_read_timeout_seconds = s;
    }
    if let Some(s) = a.keep_alive_timeout {
        c.keep_alive_timeout_seconds = s;
    }
    if let Some(s) = a.body_timeout {
        c.body_read_timeout_seconds = s;
    }
    if let Some(n) = a.max_connections_per_address {
        c.max_connections_per_address = n;
    }
    Ok(c)
}

fn run() -> Result<(), BoxError> {
    let a = parse_args()?;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    if let Some(dir) = &a.init_dir {
        let conf = server::init(dir)?;
        println!("wrote {} and the master key beside it", conf.display());
        println!("start with: passcrow-server --config {}", conf.display());
        return Ok(());
    }
    let cfg = load_config(&a)?;
    if a.command == "migrate" {
        return migrate(&a, &cfg);
    }
    if a.command == "sweep" {
        let s = Server::open(cfg)?;
        let sw = s.sweep()?;
        println!(
            "removed {} escrows, {} codes, {} spent tokens",
            sw.escrows, sw.codes, sw.tokens
        );
        return Ok(());
    }
    let listen = cfg.listen.clone();
    let srv = Arc::new(Server::open(cfg)?);
    tracing::info!(kinds = ?srv.kinds(), "delivering to");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| ServerError::Http { source })?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .map_err(|source| ServerError::Bind {
                addr: listen.clone(),
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| ServerError::Http { source })?;
        {
            use std::io::Write;
            let mut out = std::io::stdout();
            let _ = writeln!(out, "listening on http://{addr}");
            let _ = out.flush();
        }
        server::http::serve(srv, listener, server::http::shutdown_signal())
            .await
            .map_err(|source| ServerError::Http { source })?;
        Ok(())
    })
}

/// `migrate --from sqlite:PATH --to postgres://...`.
#[cfg(feature = "postgres")]
fn migrate(a: &Args, cfg: &Config) -> Result<(), BoxError> {
    use server::storage::{postgres, Database};
    let here = std::path::Path::new(".");
    let from = match Database::parse(a.from.as_deref(), here)? {
        Database::Sqlite(p) if a.from.is_some() => p,
        _ => return Err("migrate needs --from sqlite:PATH (the SQLite file to copy)".into()),
    };
    let to = match a.to.as_deref().map(|t| Database::parse(Some(t), here)) {
        Some(Ok(Database::Postgres(u))) => u,
        Some(Err(e)) => return Err(e.into()),
        _ => return Err("migrate needs --to postgres://USER@HOST:PORT/DB".into()),
    };
    if server::credentials::url_has_password(&to) {
        tracing::warn!(
            "the database password in --to is visible to other users of this machine: \
             use $PASSCROW_DATABASE_PASSWORD or postgres.password_file (--config)"
        );
    }
    let settings = server::storage::postgres_settings(cfg, &|n: &str| std::env::var(n).ok())?;
    let dst = postgres::PostgresStorage::open(&to, &settings)?;
    let copied = postgres::copy_from_sqlite(&from, &dst)?;
    let rows: Vec<String> = copied
        .tables
        .iter()
        .map(|(t, n)| format!("{n} {t}"))
        .collect();
    println!(
        "copied {} from {} into {} (counts verified); every instance needs the same master key",
        rows.join(", "),
        from.display(),
        server::storage::Database::Postgres(to).describe()
    );
    Ok(())
}

#[cfg(not(feature = "postgres"))]
fn migrate(_a: &Args, _cfg: &Config) -> Result<(), BoxError> {
    Err(
        "this passcrow-server was built without PostgreSQL (cargo build --features postgres)"
            .into(),
    )
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("passcrow-server: {e}");
            ExitCode::FAILURE
        }
    }
}
