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
//! master key; hashcash tokens cannot be replayed; verification requests
//! are limited per escrow; `notify` is honoured.
//!
//! ```no_run
//! # fn main() -> Result<(), String> {
//! use passcrow::server::{config::Config, spawn};
//! let handle = spawn(Config::for_testing("/tmp/pcs", "/tmp/pcs/codes.txt"))?;
//! println!("serving on http://{}", handle.addr());
//! handle.shutdown();
//! # Ok(()) }
//! ```

pub mod config;
pub mod delivery;
pub mod http;
mod method;
pub mod storage;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand::Rng;
use serde::Serialize;
use sha2::Sha256;

use crate::crypto::{self, Key32, SecretString};
use crate::payment;
use crate::proto::{self, *};

pub use config::Config;
pub use delivery::{Deliver, Notice, Outgoing};
pub use http::{serve, spawn, Handle};
pub use method::{canonical_method, Method};
pub use storage::{SqliteStorage, Storage};

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
    /// Missing, invalid or spent payment.
    Payment,
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
    /// For wrong codes: tries left on this code.
    pub attempts_left: Option<u32>,
}

impl ApiError {
    /// An error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
            attempts_left: None,
        }
    }

    fn bad(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, message)
    }

    fn internal() -> Self {
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

impl From<storage::StorageError> for ApiError {
    fn from(e: storage::StorageError) -> Self {
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
    fn ok<T: Serialize>(v: &T) -> Answer {
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

type ApiResult<T> = Result<T, ApiError>;

/// A clock (unix seconds); tests may supply their own.
pub type Clock = dyn Fn() -> i64 + Send + Sync;

fn system_now() -> i64 {
    crate::util::clock::unix_now()
}

/// Keys derived from the master key.
struct Keys {
    seal: Key32,
    code: Key32,
    token: Key32,
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes keys of any length.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    for p in parts {
        m.update(&(p.len() as u64).to_be_bytes());
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

impl Keys {
    fn derive(master: &Key32) -> Keys {
        let d = |label: &str| Key32::from_bytes(hmac(master.expose_secret(), &[label.as_bytes()]));
        Keys {
            seal: d("passcrow-server escrow seal v1"),
            code: d("passcrow-server code mac v1"),
            token: d("passcrow-server spent token v1"),
        }
    }
}

const SEAL_VERSION: u8 = 1;

fn seal_aad(id: &str) -> Vec<u8> {
    let mut a = b"passcrow-server escrow v1:".to_vec();
    a.extend_from_slice(id.as_bytes());
    a
}

/// Read the master key file (base64 of 32 bytes).
pub fn load_master_key(path: &Path) -> Result<Key32, String> {
    let text = SecretString::new(
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?,
    );
    if crate::util::files::readable_by_others(path) {
        tracing::warn!(
            "master key {} is readable by others; chmod 600 it",
            path.display()
        );
    }
    crypto::key_from_b64(text.expose_secret().trim(), "master key").map_err(|e| e.to_string())
}

/// Write a fresh master key to `path` (mode 0600); refuses to overwrite.
pub fn create_master_key(path: &Path) -> Result<Key32, String> {
    let key = crypto::random_key();
    let text = SecretString::new(format!("{}\n", key.to_b64()));
    crate::util::files::create_private_file(path, text.expose_secret().as_bytes())
        .map_err(|e| format!("creating {}: {e}", path.display()))?;
    Ok(key)
}

fn private_dir(dir: &Path) -> Result<(), String> {
    crate::util::files::create_private_dir(dir)
        .map_err(|e| format!("creating {}: {e}", dir.display()))
}

/// `passcrow-server init DIR`: make DIR (0700), a master key
/// (`DIR/master.key`, 0600) and a commented `DIR/config.toml`. Returns the
/// config path. Existing files are never overwritten.
pub fn init(dir: &Path) -> Result<PathBuf, String> {
    private_dir(dir)?;
    let dir = dir
        .canonicalize()
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let conf = dir.join("config.toml");
    if conf.exists() {
        return Err(format!("{} exists; not overwriting it", conf.display()));
    }
    let key = dir.join("master.key");
    if key.exists() {
        return Err(format!("{} exists; not overwriting it", key.display()));
    }
    create_master_key(&key)?;
    std::fs::write(&conf, config::sample_config(&dir))
        .map_err(|e| format!("writing {}: {e}", conf.display()))?;
    Ok(conf)
}

/// Build the deliverers a configuration asks for, by identity kind.
pub fn deliverers_from_config(cfg: &Config) -> Result<BTreeMap<String, Arc<dyn Deliver>>, String> {
    let mut out: BTreeMap<String, Arc<dyn Deliver>> = BTreeMap::new();
    let d = &cfg.delivery;
    if let Some(s) = &d.smtp {
        let from = d
            .mail_from
            .as_deref()
            .ok_or("delivery.mail_from is needed to send e-mail")?;
        let mut settings = delivery::SmtpSettings::from_url(&s.url, from)?;
        if let Some(u) = &s.username {
            settings.login = Some((
                u.clone(),
                SecretString::from(s.password.clone().unwrap_or_default()),
            ));
        }
        let smtp: Arc<dyn Deliver> = Arc::new(delivery::Smtp::new(settings)?);
        for k in delivery::Smtp::KINDS {
            out.insert(k.to_string(), smtp.clone());
        }
    }
    if let Some(s) = &d.sms {
        let sms: Arc<dyn Deliver> = Arc::new(delivery::TwilioSms::new(
            s.base_url.as_deref(),
            &s.account_sid,
            SecretString::from(s.auth_token.clone()),
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
    for w in &d.webhooks {
        let hook: Arc<dyn Deliver> = Arc::new(delivery::Webhook::new(
            &w.url,
            w.bearer_token.clone().map(SecretString::from),
        ));
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

/// The e-mail hint of the reference: a third of the user part, `*@`, the
/// first letter of the domain, `*`, its last two thirds (`b*@e*ple.org`);
/// gmail.com and hotmail.com are shown whole.
pub fn email_hint(email: &str) -> String {
    let (user, domain) = email.split_once('@').unwrap_or((email, ""));
    let user = user.rsplit(':').next().unwrap_or(user);
    let uc: Vec<char> = user.chars().collect();
    let u1: String = uc[..(uc.len() / 3).max(1).min(uc.len())].iter().collect();
    let (d1, d2) = if domain == "gmail.com" || domain == "hotmail.com" {
        (String::new(), domain.to_string())
    } else {
        let dc: Vec<char> = domain.chars().collect();
        let n = dc.len();
        let first: String = dc.iter().take(1).collect();
        // Python: domain[-(2*(n-1))//3:], floor division of a negative.
        let keep = (2 * n.saturating_sub(1)).div_ceil(3);
        let tail: String = if keep == 0 || keep >= n {
            domain.to_string()
        } else {
            dc[n - keep..].iter().collect()
        };
        (first, tail)
    };
    format!("{u1}*@{d1}*{d2}")
}

const LONG_COUNTRY_CODES: &[&str] = &[
    "+21", "+22", "+23", "+24", "+25", "+26", "+27", "+29", "+35", "+37", "+38", "+42", "+50",
    "+59", "+67", "+68", "+69", "+80", "+85", "+87", "+88", "+96", "+97", "+99",
];

/// The phone hint of the reference: leading digits and the last one or
/// two, the middle starred (`+35458****2`).
pub fn tel_hint(tel: &str) -> String {
    let c: Vec<char> = tel.chars().collect();
    let n = c.len() as i64;
    let head: String = c.iter().take(3).collect();
    let (l1, l2) = if LONG_COUNTRY_CODES.contains(&head.as_str()) {
        (n / 2 + 1, 1i64)
    } else {
        (n / 3, 2i64)
    };
    let start: String = c.iter().take(l1.max(0) as usize).collect();
    let stars = "*".repeat((n - l1 - l2).max(0) as usize);
    let end: String = c[(n - l2).max(0) as usize..].iter().collect();
    format!("{start}{stars}{end}")
}

/// The hint shown for an identity.
pub fn hint_for(id: &Identity) -> String {
    match id.kind() {
        "email" | "mailto" => email_hint(id.address()),
        "tel" | "sms" => tel_hint(id.address()),
        _ => {
            let a: Vec<char> = id.address().chars().collect();
            let keep = (a.len() / 4).min(4);
            let start: String = a[..keep].iter().collect();
            let end: String = a[a.len() - keep..].iter().collect();
            format!("{}:{start}***{end}", id.kind())
        }
    }
}

/// A parsed escrow id: the storage key (the part after the last dash) and
/// the expiration prefix, if any.
fn parse_id(id: &str) -> ApiResult<(String, Option<i64>)> {
    let id = id.trim();
    let (prefix, key) = match id.rsplit_once('-') {
        Some((p, k)) => (Some(p), k),
        None => (None, id),
    };
    let hex = |s: &str| !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
    if !hex(key) || prefix.is_some_and(|p| !hex(p) || p.len() > 15) {
        return Err(ApiError::new(
            ErrorKind::NotFound,
            "Not found: invalid escrow-data-id",
        ));
    }
    let exp = prefix.and_then(|p| i64::from_str_radix(p, 16).ok());
    Ok((key.to_ascii_lowercase(), exp))
}

fn short_id(key: &str) -> &str {
    &key[..key.len().min(8)]
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
    pub fn open(cfg: Config) -> Result<Server, String> {
        cfg.validate()?;
        private_dir(&cfg.data_dir)?;
        let key_path = cfg.master_key_path();
        let db_path = cfg.database_path();
        let master = if key_path.exists() {
            load_master_key(&key_path)?
        } else if cfg.create_master_key && !db_path.exists() {
            tracing::info!("creating master key {}", key_path.display());
            create_master_key(&key_path)?
        } else if db_path.exists() {
            return Err(format!(
                "master key {} is missing but the database {} exists: restore the key",
                key_path.display(),
                db_path.display()
            ));
        } else {
            return Err(format!(
                "master key {} is missing; run `passcrow-server init DIR` first",
                key_path.display()
            ));
        };
        let storage = SqliteStorage::open(&db_path).map_err(|e| e.to_string())?;
        let deliverers = deliverers_from_config(&cfg)?;
        if deliverers.is_empty() {
            tracing::warn!("no delivery configured: every escrow will be refused");
        }
        Ok(Server::with_parts(
            cfg,
            Box::new(storage),
            &master,
            deliverers,
        ))
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
    pub fn sweep(&self) -> Result<storage::Swept, String> {
        self.storage.sweep(self.now()).map_err(|e| e.to_string())
    }

    /// Store escrows without HTTP or payment (bulk import, benchmarks):
    /// each `(escrow-data blob, expiration)` is sealed under the master key
    /// exactly as an escrow request's would be, and all go in one
    /// transaction. Returns the escrow ids, in order.
    pub fn import_escrows(&self, items: &[(String, i64)]) -> Result<Vec<String>, String> {
        let now = self.now();
        let mut rows = Vec::with_capacity(items.len());
        let mut ids = Vec::with_capacity(items.len());
        for (blob, expiration) in items {
            let raw =
                crypto::b64decode(blob).map_err(|_| "escrow data is not base64".to_string())?;
            let r: u128 = rand::rngs::OsRng.gen();
            let key = format!("{r:032x}");
            rows.push((key.clone(), *expiration, self.seal_at_rest(&key, &raw)));
            ids.push(format!("{expiration:x}-{key}"));
        }
        let n = self
            .storage
            .insert_escrows(&rows, now)
            .map_err(|e| e.to_string())?;
        if n != rows.len() {
            return Err(format!(
                "{} of {} ids were taken",
                rows.len() - n,
                rows.len()
            ));
        }
        Ok(ids)
    }

    /// Our policy.
    pub fn policy(&self) -> ServerPolicy {
        let max = self.cfg.max_expiration_seconds;
        let mut schemes = vec![];
        let p = &self.cfg.payment;
        if p.free_seconds > 0 {
            schemes.push(PaymentScheme {
                scheme: "free".into(),
                scheme_id: "free".into(),
                description: "Freebies".into(),
                expiration_seconds: p.free_seconds.min(max),
                hashcash_bits: None,
                tokens: None,
            });
        }
        for h in &p.hashcash {
            schemes.push(PaymentScheme {
                scheme: "hashcash".into(),
                scheme_id: format!("hashcash-{}", h.bits),
                description: format!("{}-bit scrypt(len=16,n=256,r=8,p=1) collisions", h.bits),
                expiration_seconds: h.seconds.min(max),
                hashcash_bits: Some(h.bits),
                tokens: None,
            });
            if h.seconds >= max {
                break;
            }
        }
        ServerPolicy {
            versions: vec![PROTO_VERSION.into()],
            country_code: self.cfg.country_code.clone(),
            about_url: self.cfg.about_url.clone(),
            kinds: self.kinds(),
            max_request_bytes: self.cfg.max_request_bytes as u64,
            max_expiration_seconds: max,
            max_timeout_seconds: self.cfg.max_timeout_seconds,
            payment_schemes: schemes,
        }
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

    fn stats(&self) -> ApiResult<serde_json::Value> {
        let counts = self.storage.counts()?;
        let requests = self
            .counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .requests
            .clone();
        Ok(serde_json::json!({
            "version": concat!("libpasscrow-server v", env!("CARGO_PKG_VERSION")),
            "start-ts": self.start_ts,
            "requests": requests,
            "storage": {
                "type": "sqlite",
                "encrypted": true,
                "escrows": counts.escrows,
                "codes": counts.codes,
            },
            "handlers": self.kinds(),
        }))
    }

    fn parse<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> ApiResult<T> {
        let v = proto::parse(body, what).map_err(|e| {
            let msg = e.to_string();
            let msg = msg.strip_prefix("protocol error: ").unwrap_or(&msg);
            if msg.contains("unsupported protocol version") {
                ApiError::new(ErrorKind::Unsupported, format!("Bad request: {msg}"))
            } else {
                ApiError::bad(format!("Bad request: {msg}"))
            }
        })?;
        Ok(v)
    }

    fn seal_at_rest(&self, key: &str, raw: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; 24];
        crypto::random_bytes(&mut nonce);
        let cipher = XChaCha20Poly1305::new(self.keys.seal.expose_secret().into());
        let aad = seal_aad(key);
        // Encryption fails only for absurd lengths.
        let ct = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: raw,
                    aad: &aad,
                },
            )
            .unwrap_or_default();
        let mut out = Vec::with_capacity(1 + 24 + ct.len());
        out.push(SEAL_VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    fn open_at_rest(&self, key: &str, sealed: &[u8]) -> ApiResult<crypto::SecretBytes> {
        if sealed.len() < 1 + 24 + 16 || sealed[0] != SEAL_VERSION {
            tracing::error!("escrow {} is not in a format we know", short_id(key));
            return Err(ApiError::internal());
        }
        let cipher = XChaCha20Poly1305::new(self.keys.seal.expose_secret().into());
        let aad = seal_aad(key);
        cipher
            .decrypt(
                XNonce::from_slice(&sealed[1..25]),
                Payload {
                    msg: &sealed[25..],
                    aad: &aad,
                },
            )
            .map(crypto::SecretBytes::new)
            .map_err(|_| {
                tracing::error!(
                    "escrow {} does not open under the master key",
                    short_id(key)
                );
                ApiError::internal()
            })
    }

    /// Find an escrow by id and open it (at rest layer only).
    fn load_escrow(&self, id: &str, now: i64) -> ApiResult<(String, String, Vec<u8>)> {
        let (key, exp) = parse_id(id)?;
        match self.storage.get_escrow(&key, now)? {
            storage::Lookup::Found(row) => {
                let raw = self.open_at_rest(&key, &row.sealed)?;
                Ok((key, crypto::b64encode(raw.expose_secret()), row.sealed))
            }
            storage::Lookup::Expired => {
                Err(ApiError::new(ErrorKind::Expired, "This escrow has expired"))
            }
            storage::Lookup::Missing => match exp {
                Some(e) if e > 0 && e <= now => {
                    Err(ApiError::new(ErrorKind::Expired, "This escrow has expired"))
                }
                _ => Err(ApiError::new(
                    ErrorKind::NotFound,
                    "Not found: no such escrow (deleted, expired, or never made here)",
                )),
            },
        }
    }

    /// Open the client's escrow data blob with the recovery key.
    fn open_client_data(&self, blob: &str, key_b64: &SecretString) -> ApiResult<EscrowData> {
        let key =
            crypto::key_from_b64(key_b64.expose_secret(), "escrow-data-key").map_err(|_| {
                ApiError::bad("Bad request: escrow-data-key is not a base64 32-byte key")
            })?;
        let plain = crypto::open(&key, blob, "escrow data").map_err(|_| {
            ApiError::bad("Could not decrypt the escrow data: wrong escrow-data-key")
        })?;
        proto::parse::<EscrowData>(plain.expose_secret(), "escrow data")
            .map_err(|e| ApiError::bad(format!("The escrow data is not valid: {e}")))
    }

    fn code_mac(&self, key: &str, code: &str) -> [u8; 32] {
        let norm = SecretString::new(code.trim().to_uppercase());
        hmac(
            self.keys.code.expose_secret(),
            &[key.as_bytes(), norm.expose_secret().as_bytes()],
        )
    }

    fn deliverer(&self, kind: &str) -> ApiResult<&Arc<dyn Deliver>> {
        self.deliverers.get(kind).ok_or_else(|| {
            ApiError::new(
                ErrorKind::Unsupported,
                format!(
                    "Unsupported kind of Identity: {}",
                    kind.chars().take(32).collect::<String>()
                ),
            )
        })
    }

    fn escrow(&self, body: &[u8]) -> ApiResult<EscrowResponse> {
        let req: EscrowRequest = Self::parse(body, "escrow request")?;
        let pkey = crypto::key_from_b64(&req.parameters_key, "parameters-key").map_err(|_| {
            ApiError::bad("Bad request: parameters-key is not a base64 32-byte key")
        })?;
        let pplain = crypto::open(&pkey, &req.parameters, "parameters")
            .map_err(|_| ApiError::bad("Bad request: could not decrypt the parameters"))?;
        let params: EscrowParameters = Self::parse(pplain.expose_secret(), "parameters")?;
        self.deliverer(&params.kind)?;

        let data = req.escrow_data.concat();
        let raw = crypto::b64decode(&data)
            .map_err(|_| ApiError::bad("Bad request: escrow-data is not base64"))?;
        if raw.len() < 32 + 1 {
            return Err(ApiError::bad("Bad request: escrow-data is too short"));
        }

        // Everything that can refuse the request without looking at the
        // payment is checked first: a refused request must not spend its
        // hashcash token.
        let now = self.now();
        if params.expiration <= now {
            // The same kind as a payment that buys no time at all.
            return Err(ApiError::new(
                ErrorKind::Payment,
                "Insufficient payment: the requested expiration is already past",
            ));
        }
        if let Some(pref) = &params.prefer_id {
            let ok = !pref.is_empty()
                && pref.len() <= 64
                && pref
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !ok {
                return Err(ApiError::bad(
                    "Bad request: prefer-id must be lower-case hex, at most 64 digits",
                ));
            }
        }
        let paid = self.take_payment(&params.payment, &data, now)?;
        let expiration = params
            .expiration
            .min(now.saturating_add(paid.min(self.cfg.max_expiration_seconds)));
        if expiration <= now {
            return Err(ApiError::new(ErrorKind::Payment, "Insufficient payment"));
        }

        let sealed_for = |key: &str| self.seal_at_rest(key, &raw);
        if let Some(pref) = &params.prefer_id {
            if self
                .storage
                .insert_escrow(pref, expiration, &sealed_for(pref), now)?
            {
                tracing::info!(kind = %params.kind, id = short_id(pref), expiration, "escrowed (preferred id)");
                return Ok(EscrowResponse {
                    version: Version,
                    expiration,
                    escrow_data_id: pref.clone(),
                });
            }
            tracing::info!("preferred id taken; assigning another");
        }
        loop {
            let r: u128 = rand::rngs::OsRng.gen();
            let key = format!("{r:032x}");
            if self
                .storage
                .insert_escrow(&key, expiration, &sealed_for(&key), now)?
            {
                tracing::info!(kind = %params.kind, id = short_id(&key), expiration, "escrowed");
                return Ok(EscrowResponse {
                    version: Version,
                    expiration,
                    escrow_data_id: format!("{expiration:x}-{key}"),
                });
            }
        }
    }

    /// Seconds of escrow the token pays for.
    fn take_payment(&self, token: &str, data: &str, now: i64) -> ApiResult<i64> {
        let (scheme, cash) = token
            .split_once(':')
            .ok_or_else(|| ApiError::new(ErrorKind::Payment, "Invalid payment token"))?;
        let max = self.cfg.max_expiration_seconds;
        let p = &self.cfg.payment;
        if scheme == "free" {
            if p.free_seconds > 0 {
                return Ok(p.free_seconds.min(max));
            }
            return Err(ApiError::new(
                ErrorKind::Payment,
                "This server offers no free escrow",
            ));
        }
        let offer = scheme
            .strip_prefix("hashcash-")
            .and_then(|b| b.parse::<u32>().ok())
            .and_then(|bits| p.hashcash.iter().find(|h| h.bits == bits));
        let Some(offer) = offer else {
            return Err(ApiError::new(
                ErrorKind::Payment,
                format!(
                    "Unknown payment scheme: {}",
                    scheme.chars().take(32).collect::<String>()
                ),
            ));
        };
        if !payment::check_hashcash(offer.bits, cash, data.as_bytes(), now) {
            return Err(ApiError::new(
                ErrorKind::Payment,
                "Invalid payment: the hashcash is wrong or too old",
            ));
        }
        let ts = payment::parse_hashcash_cash(cash)
            .map(|c| c.1 as i64)
            .unwrap_or(now);
        let hash = hmac(
            self.keys.token.expose_secret(),
            &[token.as_bytes(), data.as_bytes()],
        );
        let until = ts + payment::HASHCASH_PAST + 60;
        if !self.storage.spend_token(&hash, until, now)? {
            return Err(ApiError::new(
                ErrorKind::Payment,
                "Invalid payment: this hashcash token was already used",
            ));
        }
        Ok(offer.seconds.min(max))
    }

    fn verification(&self, body: &[u8]) -> ApiResult<VerificationResponse> {
        let req: VerificationRequest = Self::parse(body, "verification request")?;
        let mut pc = req.prefix.chars();
        let prefix = match (pc.next(), pc.next()) {
            (Some(c), None) if c.is_ascii_graphic() => c,
            _ => {
                return Err(ApiError::bad(
                    "Bad request: prefix must be exactly one printable character",
                ))
            }
        };
        let now = self.now();
        let (key, blob, sealed) = self.load_escrow(&req.escrow_data_id, now)?;
        let esd = self.open_client_data(&blob, &req.escrow_data_key)?;
        let dlv = self.deliverer(esd.verify.kind())?.clone();
        let max = self.cfg.max_timeout_seconds;
        let tmo = esd.timeout.unwrap_or(max).clamp(1, max);
        let n: u32 = rand::rngs::OsRng.gen_range(0..1_000_000);
        let code = SecretString::new(format!("{prefix}{n:06}"));
        let expiration = now + tmo;
        let mac = self.code_mac(&key, code.expose_secret());
        let per_hour = self.cfg.verifications_per_hour;
        let Some(started) = self.storage.start_verification(&key, now, 3600, per_hour)? else {
            let mut e = ApiError::rate_limited();
            e.message = format!(
                "Sorry, rate limited. At most {per_hour} verification requests per hour for one escrow."
            );
            return Err(e);
        };
        let hint = hint_for(&esd.verify);
        let msg = Outgoing {
            to: esd.verify.clone(),
            language: req.language.clone(),
            description: esd.description.clone(),
            about_url: self.cfg.about_url.clone(),
            notice: Notice::Code {
                code,
                timeout_seconds: tmo,
            },
        };
        // The new code is stored only once delivered: until then the code
        // sent before stays the pending one, and nobody can guess at a code
        // that may never arrive.
        if let Err(e) = dlv.deliver(&msg) {
            tracing::warn!(
                via = dlv.name(),
                id = short_id(&key),
                "delivery failed: {e}"
            );
            // The user got nothing, so this hour's count is given back, up
            // to as many failures as deliveries allowed (a bound on the
            // messages an outage or a flaky provider can make us send).
            if let Err(e) = self.storage.verification_failed(&key, started, per_hour) {
                tracing::error!(id = short_id(&key), "recording the failed delivery: {e}");
            }
            return Err(ApiError::new(
                ErrorKind::Internal,
                "Could not deliver the verification code; try again later",
            ));
        }
        if !self
            .storage
            .set_code(&key, &sealed, &mac, expiration, self.cfg.code_attempts)?
        {
            return Err(ApiError::new(
                ErrorKind::NotFound,
                "Not found: the escrow was deleted or expired while its code was being sent",
            ));
        }
        tracing::info!(via = dlv.name(), id = short_id(&key), "code sent");
        if let Some(watcher) = &esd.notify {
            match self.deliverers.get(watcher.kind()) {
                Some(d) => {
                    let n = Outgoing {
                        to: watcher.clone(),
                        language: req.language.clone(),
                        description: esd.description.clone(),
                        about_url: self.cfg.about_url.clone(),
                        notice: Notice::RecoveryStarted {
                            code_sent_to: hint.clone(),
                        },
                    };
                    if let Err(e) = d.deliver(&n) {
                        tracing::warn!(via = d.name(), id = short_id(&key), "notice failed: {e}");
                    }
                }
                None => tracing::warn!(
                    id = short_id(&key),
                    "cannot notify {} identities",
                    watcher.kind()
                ),
            }
        }
        Ok(VerificationResponse {
            version: Version,
            escrow_data_id: req.escrow_data_id.clone(),
            expiration,
            hint,
            action_url: None,
        })
    }

    fn recovery(&self, body: &[u8]) -> ApiResult<RecoveryResponse> {
        let req: RecoveryRequest = Self::parse(body, "recovery request")?;
        let now = self.now();
        let (key, blob, _) = self.load_escrow(&req.escrow_data_id, now)?;
        // The key first: without it nobody can spend this code's attempts.
        let esd = self.open_client_data(&blob, &req.escrow_data_key)?;
        let given = self.code_mac(&key, req.verification.expose_secret());
        match self.storage.check_code(&key, &given, now)? {
            storage::CodeCheck::NoCode => Err(ApiError::new(
                ErrorKind::NotFound,
                "No verification code is pending for this escrow; ask for one first",
            )),
            storage::CodeCheck::Expired => Err(ApiError::new(
                ErrorKind::Expired,
                "The verification code has expired; ask for a new one",
            )),
            storage::CodeCheck::Void => Err(ApiError {
                kind: ErrorKind::WrongCode,
                message: "Incorrect verification code: no attempts left, the code is void; \
                          ask for a new one"
                    .into(),
                attempts_left: Some(0),
            }),
            storage::CodeCheck::Right => {
                tracing::info!(id = short_id(&key), "recovered");
                Ok(RecoveryResponse {
                    version: Version,
                    escrow_secret: esd.secret.clone(),
                })
            }
            storage::CodeCheck::Wrong { left } => {
                let message = match left {
                    0 => "Incorrect verification code: no attempts left, the code is now void; \
                          ask for a new one"
                        .to_string(),
                    1 => "Incorrect verification code (1 attempt left)".to_string(),
                    n => format!("Incorrect verification code ({n} attempts left)"),
                };
                Err(ApiError {
                    kind: ErrorKind::WrongCode,
                    message,
                    attempts_left: Some(left),
                })
            }
        }
    }

    fn deletion(&self, body: &[u8]) -> ApiResult<DeletionResponse> {
        let req: DeletionRequest = Self::parse(body, "deletion request")?;
        let (key, _) = parse_id(&req.escrow_data_id)?;
        let existed = self.storage.delete_escrow(&key)?;
        tracing::info!(id = short_id(&key), existed, "deleted");
        Ok(DeletionResponse {
            version: Version,
            escrow_data_id: Some(req.escrow_data_id),
        })
    }
}

#[cfg(test)]
mod protocol_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_match_reference() {
        assert_eq!(email_hint("bre@example.org"), "b*@e*ple.org");
        assert_eq!(email_hint("someone@gmail.com"), "so*@*gmail.com");
        assert_eq!(email_hint("a@b.c"), "a*@b*.c");
        assert_eq!(tel_hint("+3545885522"), "+35458****2");
        assert_eq!(tel_hint("+15551234567"), "+155******67");
        assert_eq!(tel_hint("12"), "12");
    }

    #[test]
    fn ids() {
        assert_eq!(parse_id("6a-00ff").unwrap(), ("00ff".into(), Some(0x6a)));
        assert_eq!(parse_id("ABC").unwrap(), ("abc".into(), None));
        assert!(parse_id("x-").is_err());
        assert!(parse_id("../etc").is_err());
        assert_eq!(canonical_method("protect"), Some("escrowrequest"));
        assert_eq!(canonical_method("nope"), None);
    }
}
