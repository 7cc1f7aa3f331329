//! The Passcrow escrow server (feature `server`).
//!
//! This module is the protocol: it takes a method name and a request body
//! and gives an answer, with no HTTP in it ([`Server::handle`]). Around it:
//! [`storage`] (SQLite), [`delivery`] (SMTP, SMS, webhook, file),
//! [`config`] (TOML) and [`http`] (axum, rate limits, [`spawn`]).
//!
//! Answers are those of python-passcrow 0.0.7's server, key for key; the
//! reference's weaknesses are fixed (see `docs/server.md`): codes are kept
//! only as keyed hashes, compared in constant time, voided after a few
//! wrong guesses and consumed on use; escrows are sealed at rest under a
//! master key and stored under a keyed hash of their id; hashcash tokens cannot be replayed; verification requests
//! are limited per escrow; `notify` is honoured.
//!
//! Here: the [`Server`] and its wiring. The operations are in `handlers/`
//! (one file each), answers and their errors in `answer.rs`, method names
//! in `method.rs`, sealing at rest and keyed hashes in `seal.rs`, the
//! master key file in `keyfile.rs`, `init` in `init.rs`, identity hints in
//! `hints.rs`, escrow ids in `escrow_id.rs`, delivery budgets, SMS
//! countries and opt-out tokens in `budgets.rs`.
//!
//! ```no_run
//! # fn main() -> Result<(), passcrow::server::ServerError> {
//! use passcrow::server::{config::Config, spawn};
//! let handle = spawn(Config::for_testing("/tmp/pcs", "/tmp/pcs/codes.txt"))?;
//! println!("serving on http://{}", handle.addr());
//! handle.shutdown();
//! # Ok(()) }
//! ```

mod answer;
mod budgets;
pub mod config;
pub mod credentials;
pub mod delivery;
mod error;
mod escrow_id;
mod handlers;
mod hints;
pub mod http;
mod init;
mod keyfile;
mod method;
mod seal;
pub mod storage;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::crypto::{Key32, SecretString};
use crate::proto;

pub use answer::{Answer, ApiError, ErrorKind};
pub use budgets::{calling_code, country_calling_code, recipient_name, MessageClass};
pub use config::Config;
pub use delivery::{Contact, Deliver, Notice, Outgoing};
pub use error::{ServerError, ServerResult};
pub use hints::{email_hint, hint_for, tel_hint};
pub use http::{serve, spawn, Handle};
pub use init::init;
pub use keyfile::{create_master_key, load_master_key};
pub use method::{canonical_method, Method};
pub use storage::{SqliteStorage, Storage};

use init::private_dir;
use seal::Keys;

/// A clock (unix seconds); tests may supply their own.
pub type Clock = dyn Fn() -> i64 + Send + Sync;

fn system_now() -> i64 {
    crate::util::clock::unix_now()
}

/// Build the deliverers a configuration asks for, by identity kind. Their
/// credentials come from the configuration, the files it names, or the
/// environment (see [`credentials`]).
pub fn deliverers_from_config(cfg: &Config) -> ServerResult<BTreeMap<String, Arc<dyn Deliver>>> {
    deliverers_with_env(cfg, &credentials::process_env)
}

/// [`deliverers_from_config`] reading the environment through `env`.
fn deliverers_with_env(
    cfg: &Config,
    env: credentials::Env<'_>,
) -> ServerResult<BTreeMap<String, Arc<dyn Deliver>>> {
    use credentials::{resolve, Source};
    let mut out: BTreeMap<String, Arc<dyn Deliver>> = BTreeMap::new();
    let d = &cfg.delivery;
    if let Some(s) = &d.smtp {
        let from = d.mail_from.as_deref().ok_or_else(|| {
            ServerError::delivery("smtp", "delivery.mail_from is needed to send e-mail")
        })?;
        let mut settings = delivery::SmtpSettings::from_url(&s.url, from)?;
        let password = resolve(
            &Source {
                setting: "delivery.smtp.password",
                inline: s.password.as_deref(),
                file: s.password_file.as_deref(),
                env: Some(credentials::ENV_SMTP_PASSWORD),
            },
            env,
        )?;
        if let Some(u) = &s.username {
            settings.login = Some((
                u.clone(),
                password.unwrap_or_else(|| SecretString::from("")),
            ));
        } else if let (Some(p), Some(login)) = (password, settings.login.as_mut()) {
            // A user name in the URL, its password kept elsewhere.
            login.1 = p;
        }
        let smtp: Arc<dyn Deliver> = Arc::new(delivery::Smtp::new(settings)?);
        for k in delivery::Smtp::KINDS {
            out.insert(k.to_string(), smtp.clone());
        }
    }
    if let Some(s) = &d.sms {
        let token = resolve(
            &Source {
                setting: "delivery.sms.auth_token",
                inline: Some(s.auth_token.as_str()),
                file: s.auth_token_file.as_deref(),
                env: Some(credentials::ENV_SMS_AUTH_TOKEN),
            },
            env,
        )?
        .ok_or_else(|| {
            ServerError::config(format!(
                "delivery.sms needs its auth token: auth_token_file, ${} or auth_token",
                credentials::ENV_SMS_AUTH_TOKEN
            ))
        })?;
        let sms: Arc<dyn Deliver> = Arc::new(delivery::TwilioSms::new(
            s.base_url.as_deref(),
            &s.account_sid,
            token,
            s.from.clone(),
            s.messaging_service_sid.clone(),
        )?);
        let kinds: Vec<String> = s.kinds.clone().unwrap_or_else(|| {
            delivery::TwilioSms::KINDS
                .iter()
                .map(|k| k.to_string())
                .collect()
        });
        for k in kinds {
            out.insert(k, sms.clone());
        }
    }
    let hook_env = env(credentials::ENV_WEBHOOK_TOKEN).filter(|v| !v.is_empty());
    if hook_env.is_some() && d.webhooks.len() > 1 {
        return Err(ServerError::config(format!(
            "${} is set but {} webhooks are configured: give each its bearer_token_file",
            credentials::ENV_WEBHOOK_TOKEN,
            d.webhooks.len()
        )));
    }
    for w in &d.webhooks {
        let token = resolve(
            &Source {
                setting: "delivery.webhooks.bearer_token",
                inline: w.bearer_token.as_deref(),
                file: w.bearer_token_file.as_deref(),
                env: Some(credentials::ENV_WEBHOOK_TOKEN),
            },
            env,
        )?;
        let hook: Arc<dyn Deliver> = Arc::new(delivery::Webhook::new(&w.url, token));
        for k in &w.kinds {
            out.insert(k.clone(), hook.clone());
        }
    }
    if let Some(p) = &d.file {
        let sink: Arc<dyn Deliver> = Arc::new(delivery::FileSink::new(p));
        for k in delivery::FileSink::KINDS {
            out.entry(k.to_string()).or_insert_with(|| sink.clone());
        }
    }
    Ok(out)
}

/// Per-method counters for `stats`.
#[derive(Default)]
struct Counters {
    requests: BTreeMap<String, u64>,
}

/// The protocol server. `Send + Sync`; [`Server::handle`] blocks (storage,
/// delivery), so async callers run it on a blocking thread.
pub struct Server {
    cfg: Config,
    storage: Box<dyn Storage>,
    deliverers: BTreeMap<String, Arc<dyn Deliver>>,
    keys: Keys,
    clock: Box<Clock>,
    start_ts: i64,
    counters: Mutex<Counters>,
    /// The storage counts `stats` last took, and when (server clock).
    counts_cache: Mutex<Option<(storage::Counts, i64)>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("kinds", &self.kinds())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Open the database and master key a configuration names, and build
    /// its deliverers.
    pub fn open(cfg: Config) -> ServerResult<Server> {
        cfg.validate()?;
        private_dir(&cfg.data_dir)?;
        let key_path = cfg.master_key_path();
        let db = cfg.database()?;
        // Whether the database holds data already (then a missing key is
        // a lost key, not a first start). A SQLite file is opened only
        // once the key is there; PostgreSQL is asked.
        let (opened, db_exists) = match &db {
            storage::Database::Sqlite(p) => (None, p.exists()),
            storage::Database::Postgres(_) => {
                let s = storage::open_database(&db, &cfg)?;
                let c = s.counts()?;
                let held = c.escrows > 0 || c.codes > 0;
                (Some(s), held)
            }
        };
        let master = if key_path.exists() {
            load_master_key(&key_path)?
        } else if cfg.create_master_key && !db_exists {
            tracing::info!("creating master key {}", key_path.display());
            create_master_key(&key_path)?
        } else if db_exists {
            return Err(ServerError::master_key(format!(
                "master key {} is missing but the database {} exists: restore the key",
                key_path.display(),
                db.describe()
            )));
        } else {
            return Err(ServerError::master_key(format!(
                "master key {} is missing; run `passcrow-server init DIR` first",
                key_path.display()
            )));
        };
        let storage: Box<dyn Storage> = match opened {
            Some(s) => s,
            // A SQLite database from before schema 3 holds clear escrow
            // ids: they are re-keyed (and the escrows re-sealed) now,
            // before serving.
            None => match &db {
                storage::Database::Sqlite(p) => {
                    Box::new(SqliteStorage::open_migrating(p, &Keys::derive(&master))?)
                }
                storage::Database::Postgres(_) => storage::open_database(&db, &cfg)?,
            },
        };
        let deliverers = deliverers_from_config(&cfg)?;
        if deliverers.is_empty() {
            tracing::warn!("no delivery configured: every escrow will be refused");
        }
        Ok(Server::with_parts(cfg, storage, &master, deliverers))
    }

    /// A server over given parts.
    pub fn with_parts(
        cfg: Config,
        storage: Box<dyn Storage>,
        master: &Key32,
        deliverers: BTreeMap<String, Arc<dyn Deliver>>,
    ) -> Server {
        Server {
            keys: Keys::derive(master),
            storage,
            deliverers,
            clock: Box::new(system_now),
            start_ts: system_now(),
            counters: Mutex::new(Counters::default()),
            counts_cache: Mutex::new(None),
            cfg,
        }
    }

    /// Replace the clock (tests).
    pub fn set_clock(&mut self, clock: Box<Clock>) {
        self.clock = clock;
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Identity kinds we can deliver to.
    pub fn kinds(&self) -> Vec<String> {
        self.deliverers.keys().cloned().collect()
    }

    fn now(&self) -> i64 {
        (self.clock)()
    }

    /// Remove expired escrows, codes and spent tokens.
    pub fn sweep(&self) -> ServerResult<storage::Swept> {
        Ok(self.storage.sweep(self.now())?)
    }

    fn count(&self, method: &str, ok: bool) {
        let mut c = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        let key = format!("{method}_{}", if ok { "ok" } else { "err" });
        *c.requests.entry(key).or_insert(0) += 1;
    }

    /// Answer one request for `method`; `body` is the JSON text (may be
    /// empty for `policy` and `stats`).
    pub fn handle(&self, method: Method, body: &[u8]) -> Answer {
        if body.len() > self.cfg.max_request_bytes {
            return ApiError::new(
                ErrorKind::TooLarge,
                format!(
                    "Request too large (the limit is {} bytes)",
                    self.cfg.max_request_bytes
                ),
            )
            .to_answer();
        }
        let r = match method {
            Method::Policy => Ok(Answer::ok(&self.policy())),
            Method::Stats => self.stats().map(|v| Answer {
                status: 200,
                body: proto::to_reference_json(&v),
            }),
            Method::Escrow => self.escrow(body).map(|r| Answer::ok(&r)),
            Method::Verification => self.verification(body).map(|r| Answer::ok(&r)),
            Method::Recovery => self.recovery(body).map(|r| Answer::ok(&r)),
            Method::Deletion => self.deletion(body).map(|r| Answer::ok(&r)),
            Method::Extensions => Ok(Answer::ok(&self.extensions())),
            Method::Status => self.status(body).map(|r| Answer::ok(&r)),
        };
        let m = method.as_str();
        self.count(m, r.is_ok());
        match r {
            Ok(a) => a,
            Err(e) => {
                tracing::info!(method = m, kind = e.kind.as_str(), "refused: {}", e.message);
                e.to_answer()
            }
        }
    }

    /// Answer one request for the method named `name`, as in
    /// `/passcrow/NAME` (aliases accepted, see [`Method::from_name`]); an
    /// unknown name is answered `unsupported`.
    pub fn handle_named(&self, name: &str, body: &[u8]) -> Answer {
        match Method::from_name(name) {
            Some(m) => self.handle(m, body),
            None => method::unsupported(name).to_answer(),
        }
    }
}

/// See `crate::testing::old_server_database`.
/// The bytes storage knows the escrow with storage key `key` by, under
/// the master key `master` (tests that edit a database file directly).
#[cfg(feature = "testing")]
pub(crate) fn stored_id_bytes(master: &Key32, key: &str) -> [u8; 32] {
    *Keys::derive(master).stored_id(key).as_bytes()
}

#[cfg(feature = "testing")]
pub(crate) fn write_old_database(
    path: &std::path::Path,
    master: &Key32,
    version: i64,
    escrows: &[(&str, i64, &[u8])],
    codes: &[(&str, &str, i64, u32)],
) -> ServerResult<()> {
    let keys = Keys::derive(master);
    let escrows: Vec<storage::OldEscrow> = escrows
        .iter()
        .map(|(k, exp, raw)| (k.to_string(), *exp, keys.seal_v1(k, raw)))
        .collect();
    let codes: Vec<storage::OldCode> = codes
        .iter()
        .map(|(k, code, exp, att)| (k.to_string(), keys.code_mac(k, code), *exp, *att))
        .collect();
    Ok(storage::write_old_database(
        path, version, &escrows, &codes,
    )?)
}

#[cfg(test)]
mod protocol_tests;
