//! Server configuration: a TOML file, overridden by command-line flags.
//!
//! `passcrow-server init DIR` writes [`SAMPLE_CONFIG`] (commented) and a
//! fresh master key; see `docs/server.md`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::{ServerError, ServerResult};

/// The reference's longest escrow: about ten years.
pub const DEFAULT_MAX_EXPIRATION: i64 = 10 * 366 * 24 * 3600;
/// The reference's longest code lifetime.
pub const DEFAULT_MAX_TIMEOUT: i64 = 1800;
/// The reference's request size limit.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 4096;
/// The reference's free lifetime (25 hours).
pub const DEFAULT_FREE_SECONDS: i64 = 25 * 3600;
/// The reference's hashcash offers: (bits, lifetime).
pub const DEFAULT_HASHCASH: &[(u32, i64)] = &[
    (11, 183 * 24 * 3600),
    (12, 366 * 24 * 3600),
    (13, 2 * 366 * 24 * 3600),
    (14, 5 * 366 * 24 * 3600),
    (15, 10 * 366 * 24 * 3600),
];

/// Seconds to send a request's headers.
pub const DEFAULT_HEADER_READ_TIMEOUT: u64 = 10;
/// Seconds a kept-alive connection may idle.
pub const DEFAULT_KEEP_ALIVE_TIMEOUT: u64 = 5;
/// Seconds to send a request's body.
pub const DEFAULT_BODY_READ_TIMEOUT: u64 = 10;
/// Open connections per client address.
pub const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS: u32 = 32;

/// Wrong codes one escrow may take in an hour.
pub const DEFAULT_WRONG_GUESSES_PER_HOUR: u32 = 10;
/// Wrong codes one escrow may take over its life, then it is frozen.
pub const DEFAULT_WRONG_GUESSES_LIFETIME: u32 = 30;
/// Escrows held at most.
pub const DEFAULT_MAX_ESCROWS: u64 = 1_000_000;
/// Free escrows stored per UTC day at most.
pub const DEFAULT_MAX_FREE_ESCROWS_PER_DAY: u32 = 10_000;

/// Limits on guessing codes and on what escrow requests may fill
/// (`[limits]`; see "Guessing and filling limits" in docs/server.md).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Wrong codes one escrow may take in a fixed hour (opened by the
    /// first wrong code); then none is compared until the hour ends.
    pub wrong_guesses_per_hour: u32,
    /// Wrong codes one escrow may take over its life; then it is frozen
    /// for good (its owner re-protects with `renew`).
    pub wrong_guesses_lifetime: u32,
    /// Escrows held at most (expired ones not yet swept included).
    pub max_escrows: u64,
    /// Free escrows stored per UTC day at most.
    pub max_free_escrows_per_day: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            wrong_guesses_per_hour: DEFAULT_WRONG_GUESSES_PER_HOUR,
            wrong_guesses_lifetime: DEFAULT_WRONG_GUESSES_LIFETIME,
            max_escrows: DEFAULT_MAX_ESCROWS,
            max_free_escrows_per_day: DEFAULT_MAX_FREE_ESCROWS_PER_DAY,
        }
    }
}

impl LimitsConfig {
    fn validate(&self) -> ServerResult<()> {
        let l = self;
        if l.wrong_guesses_per_hour == 0
            || l.wrong_guesses_lifetime == 0
            || l.max_escrows == 0
            || l.max_free_escrows_per_day == 0
        {
            return Err(ServerError::config(
                "limits.wrong_guesses_per_hour, limits.wrong_guesses_lifetime, \
                 limits.max_escrows and limits.max_free_escrows_per_day must be at least 1 \
                 (to give no free escrow, set payment.free_seconds = 0)",
            ));
        }
        Ok(())
    }
}

/// One hashcash offer.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HashcashOffer {
    /// Bits of work.
    pub bits: u32,
    /// Escrow lifetime it buys, in seconds.
    pub seconds: i64,
}

// ---- [outbound]: delivery budgets, SMS countries, opt-out, abuse contact ----

/// Default for [`OutboundConfig::per_recipient_per_hour`].
pub const DEFAULT_PER_RECIPIENT_PER_HOUR: u32 = 10;
/// Default for [`OutboundConfig::per_recipient_per_day`].
pub const DEFAULT_PER_RECIPIENT_PER_DAY: u32 = 30;
/// Default for [`OutboundConfig::reserve_after_seconds`] (a week).
pub const DEFAULT_RESERVE_AFTER: i64 = 7 * 24 * 3600;

/// What the server sends, to whom, and how much (`[outbound]`): the
/// delivery budgets (per recipient, and server-wide per kind), the reserve
/// older escrows may draw on, the SMS country allow-list, the public URL
/// of the opt-out links and the abuse contact. See `docs/server.md`,
/// "Delivery budgets".
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundConfig {
    /// Messages one recipient (one normalised address) gets in an hour,
    /// whatever the number of escrows naming it.
    pub per_recipient_per_hour: u32,
    /// Messages one recipient gets in a day.
    pub per_recipient_per_day: u32,
    /// Escrows at least this old (seconds) may also draw on the reserve.
    pub reserve_after_seconds: i64,
    /// Extra messages an hour, per recipient, only older escrows may use.
    pub reserve_per_hour: u32,
    /// Extra messages a day, per recipient, only older escrows may use.
    pub reserve_per_day: u32,
    /// Messages the whole server sends an hour, by kind (`sms` counts
    /// `tel:` and `sms:`, `email` counts `email:` and `mailto:`; other
    /// kinds by their own name).
    pub per_kind_per_hour: std::collections::BTreeMap<String, u32>,
    /// The hourly budget of kinds not named in `per_kind_per_hour`.
    pub other_kinds_per_hour: u32,
    /// Percent of each server-wide budget kept on top of it for older
    /// escrows.
    pub kind_reserve_percent: u32,
    /// Warn in the log once an hour's server-wide budget of a kind is this
    /// many percent spent.
    pub warn_percent: u32,
    /// Calling codes (`"354"`, `"+44"`, `"1"`) SMS may go to; `["*"]`
    /// allows any. Unset: the calling code of `country_code`; with neither,
    /// no SMS goes out.
    pub sms_countries: Option<Vec<String>>,
    /// The server's public base URL (`https://passcrow.example.org`), for
    /// opt-out links in messages; unset, messages tell the recipient to
    /// write to the abuse contact instead.
    pub public_url: Option<String>,
    /// Who to write to about unwanted messages (an e-mail address or URL);
    /// printed in every message and on the about page.
    pub abuse_contact: Option<String>,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        OutboundConfig {
            per_recipient_per_hour: DEFAULT_PER_RECIPIENT_PER_HOUR,
            per_recipient_per_day: DEFAULT_PER_RECIPIENT_PER_DAY,
            reserve_after_seconds: DEFAULT_RESERVE_AFTER,
            reserve_per_hour: 3,
            reserve_per_day: 6,
            per_kind_per_hour: [("sms".to_string(), 100), ("email".to_string(), 1000)]
                .into_iter()
                .collect(),
            other_kinds_per_hour: 1000,
            kind_reserve_percent: 10,
            warn_percent: 80,
            sms_countries: None,
            public_url: None,
            abuse_contact: None,
        }
    }
}

impl OutboundConfig {
    /// Check the values make sense.
    pub fn validate(&self) -> ServerResult<()> {
        let bad = |m: String| Err(ServerError::config(format!("outbound.{m}")));
        if self.per_recipient_per_hour == 0 || self.per_recipient_per_day == 0 {
            return bad(
                "per_recipient_per_hour and per_recipient_per_day must be at least 1".into(),
            );
        }
        if self.reserve_after_seconds < 0 {
            return bad("reserve_after_seconds must not be negative".into());
        }
        if self.warn_percent > 100 {
            return bad("warn_percent must be at most 100".into());
        }
        for c in self.sms_countries.iter().flatten() {
            if c != "*" && super::budgets::calling_code(c).is_none() {
                return bad(format!(
                    "sms_countries: {:?} is not a calling code (digits, like \"354\" or \"+44\"), nor \"*\"",
                    c.chars().take(16).collect::<String>()
                ));
            }
        }
        if let Some(u) = &self.public_url {
            if !(u.starts_with("https://") || u.starts_with("http://")) || u.len() > 200 {
                return bad(
                    "public_url must be an http(s):// URL of at most 200 characters".into(),
                );
            }
        }
        if let Some(a) = &self.abuse_contact {
            if a.trim().is_empty() || a.len() > 200 || a.chars().any(char::is_control) {
                return bad("abuse_contact must be one line of at most 200 characters".into());
            }
        }
        Ok(())
    }
}

/// What the server charges.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct PaymentConfig {
    /// Lifetime given for free (0 = no free escrow).
    pub free_seconds: i64,
    /// Hashcash offers (capped at the maximum expiration).
    pub hashcash: Vec<HashcashOffer>,
}

impl Default for PaymentConfig {
    fn default() -> Self {
        PaymentConfig {
            free_seconds: DEFAULT_FREE_SECONDS,
            hashcash: DEFAULT_HASHCASH
                .iter()
                .map(|&(bits, seconds)| HashcashOffer { bits, seconds })
                .collect(),
        }
    }
}

/// SMTP delivery (kinds `email`, `mailto`).
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    /// `smtp://HOST:PORT` (plain, loopback only), `smtps://HOST[:465]`,
    /// `smtp+starttls://HOST[:587]`.
    pub url: String,
    /// Login user name.
    pub username: Option<String>,
    /// Login password.
    pub password: Option<String>,
    /// Or a file holding the login password (its trailing newline
    /// dropped); `PASSCROW_SMTP_PASSWORD` overrides both.
    pub password_file: Option<PathBuf>,
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("url", &redact_url(&self.url))
            .field("username", &self.username)
            .field("password_file", &self.password_file)
            .finish()
    }
}

/// `u` with any `user:password@` replaced by `[login]@`, with or without
/// a scheme: fit for logs and error messages.
pub(crate) fn redact_url(u: &str) -> String {
    match (u.split_once("://"), u.rsplit_once('@')) {
        (Some((s, _)), Some((_, host))) => format!("{s}://[login]@{host}"),
        (None, Some((_, host))) => format!("[login]@{host}"),
        _ => u.to_string(),
    }
}

/// Twilio-compatible SMS delivery (kinds `sms`, `tel`).
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SmsConfig {
    /// API base URL (default `https://api.twilio.com`).
    pub base_url: Option<String>,
    /// Account SID.
    pub account_sid: String,
    /// Auth token.
    pub auth_token: String,
    /// Sender number.
    pub from: Option<String>,
    /// Or a messaging service SID.
    pub messaging_service_sid: Option<String>,
    /// Kinds served (default `["sms", "tel"]`).
    pub kinds: Option<Vec<String>>,
    /// Or a file holding the auth token (its trailing newline dropped);
    /// `PASSCROW_SMS_AUTH_TOKEN` overrides both.
    pub auth_token_file: Option<PathBuf>,
}

impl std::fmt::Debug for SmsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmsConfig")
            .field("base_url", &self.base_url)
            .field("account_sid", &self.account_sid)
            .field("from", &self.from)
            .field("auth_token_file", &self.auth_token_file)
            .finish()
    }
}

/// A JSON webhook serving some kinds.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    /// Where to POST.
    pub url: String,
    /// Identity kinds it delivers to.
    pub kinds: Vec<String>,
    /// Sent as `Authorization: Bearer ...`.
    pub bearer_token: Option<String>,
    /// Or a file holding the bearer token (its trailing newline dropped);
    /// `PASSCROW_WEBHOOK_TOKEN` overrides both when there is one webhook.
    pub bearer_token_file: Option<PathBuf>,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url)
            .field("kinds", &self.kinds)
            .field("bearer_token_file", &self.bearer_token_file)
            .finish()
    }
}

/// How codes reach people.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// The From: address of e-mail.
    pub mail_from: Option<String>,
    /// SMTP.
    pub smtp: Option<SmtpConfig>,
    /// SMS.
    pub sms: Option<SmsConfig>,
    /// Webhooks.
    pub webhooks: Vec<WebhookConfig>,
    /// Append `identity<TAB>code` lines to this file (tests and demos);
    /// serves the kinds no other channel serves among email, mailto, tel, sms.
    pub file: Option<PathBuf>,
}

/// PostgreSQL settings (`[postgres]`), used when `database` is a
/// `postgres://` URL. The password is never in the URL: it comes from
/// `$PASSCROW_DATABASE_PASSWORD`, `password_file`, or libpq's `$PGPASSWORD`,
/// in that order.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresConfig {
    /// A file holding the database password (its trailing newline dropped).
    pub password_file: Option<PathBuf>,
    /// Connections each instance keeps open at most.
    pub pool_size: u32,
    /// Longest wait for a free connection, in ms (shorter than the request
    /// timeout).
    pub acquire_timeout_ms: u64,
    /// Longest wait to open a connection, in ms.
    pub connect_timeout_ms: u64,
    /// `statement_timeout` of every session, in ms.
    pub statement_timeout_ms: u64,
    /// `lock_timeout` of every session, in ms.
    pub lock_timeout_ms: u64,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        PostgresConfig {
            password_file: None,
            pool_size: 16,
            acquire_timeout_ms: 5000,
            connect_timeout_ms: 5000,
            statement_timeout_ms: 10_000,
            lock_timeout_ms: 5000,
        }
    }
}

impl PostgresConfig {
    fn validate(&self, request_timeout_seconds: u64) -> ServerResult<()> {
        if self.pool_size == 0 || self.pool_size > 1000 {
            return Err(ServerError::config("postgres.pool_size must be 1 to 1000"));
        }
        let ms = [
            ("acquire_timeout_ms", self.acquire_timeout_ms),
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("statement_timeout_ms", self.statement_timeout_ms),
            ("lock_timeout_ms", self.lock_timeout_ms),
        ];
        for (name, v) in ms {
            if v == 0 {
                return Err(ServerError::config(format!(
                    "postgres.{name} must be at least 1"
                )));
            }
        }
        if self.acquire_timeout_ms >= request_timeout_seconds.saturating_mul(1000) {
            return Err(ServerError::config(
                "postgres.acquire_timeout_ms must be shorter than request_timeout_seconds",
            ));
        }
        Ok(())
    }
}
/// `status` calls per escrow per hour: a client checks a pack now and
/// then (daily at most, an app on launch), so 6 leaves room for retries
/// and several devices while bounding the work (an HMAC over the escrow)
/// one escrow can cost.
pub const DEFAULT_STATUS_PER_HOUR: u32 = 6;

/// Authenticator-app identities (`[totp]`; see "Authenticator apps
/// (TOTP)" in docs/server.md).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct TotpConfig {
    /// Offer the `totp` identity kind: listed in `extensions`, its codes
    /// checked by this server (RFC 6238, ±1 step of 30 s: the server's
    /// clock must be NTP-synced). On by default: it sends nothing.
    pub enabled: bool,
}

impl Default for TotpConfig {
    fn default() -> Self {
        TotpConfig { enabled: true }
    }
}

/// Longest release delay an escrow may ask for, by default: a week.
pub const DEFAULT_MAX_DELAY_SECONDS: i64 = 7 * 86400;

/// Release delays (`[delay]`; see "Release delay" in docs/server.md).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct DelayConfig {
    /// Longest delay an escrow may ask for; a longer one is cut to it.
    /// 0: no delay offered. Offered only with `[outbound] public_url`
    /// (the notices link to the cancel page there).
    pub max_seconds: i64,
}

impl Default for DelayConfig {
    fn default() -> Self {
        DelayConfig {
            max_seconds: DEFAULT_MAX_DELAY_SECONDS,
        }
    }
}

/// The whole configuration.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on (`127.0.0.1:8451`; port 0 = any free port).
    pub listen: String,
    /// Where the database (and by default the master key) live.
    pub data_dir: PathBuf,
    /// The database: a SQLite file (a path or `sqlite:PATH`; default
    /// `DATA_DIR/passcrow.sqlite`) or `postgres://USER@HOST:PORT/DB`
    /// (settings in [`Config::postgres`]).
    pub database: Option<String>,
    /// PostgreSQL settings (used when `database` is a `postgres://` URL).
    pub postgres: PostgresConfig,
    /// The master key file (default `DATA_DIR/master.key`).
    pub master_key_file: Option<PathBuf>,
    /// Create the master key on first start if it is missing and there is no
    /// database yet (`init` always creates it).
    pub create_master_key: bool,
    /// ISO country code of the operator (`??` when unsaid).
    pub country_code: String,
    /// The operator's page.
    pub about_url: String,
    /// Largest request body.
    pub max_request_bytes: usize,
    /// Longest escrow lifetime, in seconds.
    pub max_expiration_seconds: i64,
    /// Longest code lifetime, in seconds.
    pub max_timeout_seconds: i64,
    /// Wrong guesses allowed per issued code.
    pub code_attempts: u32,
    /// Verification requests allowed per escrow per hour.
    pub verifications_per_hour: u32,
    /// `status` calls (the health check) allowed per escrow per hour.
    pub status_per_hour: u32,
    /// Seconds a request may take.
    pub request_timeout_seconds: u64,
    /// Per client address: requests allowed at once (0 = no rate limit).
    pub rate_limit_burst: u32,
    /// Per client address: requests per second refilled (0 = no rate limit).
    pub rate_limit_per_second: f64,
    /// Seconds between sweeps of expired data.
    pub sweep_interval_seconds: u64,
    /// Seconds the storage counts `stats` answers with are reused before
    /// they are counted again (0 = counted on every call).
    pub stats_cache_seconds: u64,
    /// Payment.
    pub payment: PaymentConfig,
    /// Guessing and filling limits.
    pub limits: LimitsConfig,
    /// Delivery.
    pub delivery: DeliveryConfig,
    /// Delivery budgets, SMS countries, opt-out and abuse contact.
    pub outbound: OutboundConfig,
    /// Authenticator-app (`totp:`) identities.
    pub totp: TotpConfig,
    /// Release delays the owner can stop.
    pub delay: DelayConfig,
    /// Seconds a client has to send a request's headers (from the start of
    /// the connection, or the end of the previous answer).
    pub header_read_timeout_seconds: u64,
    /// Seconds a kept-alive connection may sit idle between requests
    /// (0 = no keep-alive: one request per connection).
    pub keep_alive_timeout_seconds: u64,
    /// Seconds a client has to send a request's body once its headers are in.
    pub body_read_timeout_seconds: u64,
    /// Open connections per client address (IPv6: per /64); trusted proxies
    /// are exempt (0 = no limit).
    pub max_connections_per_address: u32,
    /// Client addresses the rate limiter remembers (the least recently seen
    /// is forgotten first).
    pub rate_limit_max_clients: usize,
    /// Reverse proxies (addresses or CIDR blocks) whose forwarding header
    /// names the client; empty: every forwarding header is ignored.
    pub trusted_proxies: Vec<String>,
    /// The header trusted proxies set: `x-forwarded-for` or `forwarded`
    /// (RFC 7239).
    pub forwarded_header: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8451".into(),
            data_dir: PathBuf::from("/var/lib/passcrow-server"),
            database: None,
            postgres: PostgresConfig::default(),
            master_key_file: None,
            create_master_key: false,
            country_code: "??".into(),
            about_url: "https://passcrow.org/".into(),
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            max_expiration_seconds: DEFAULT_MAX_EXPIRATION,
            max_timeout_seconds: DEFAULT_MAX_TIMEOUT,
            code_attempts: 3,
            verifications_per_hour: 5,
            status_per_hour: DEFAULT_STATUS_PER_HOUR,
            request_timeout_seconds: 60,
            rate_limit_burst: 20,
            rate_limit_per_second: 2.0,
            sweep_interval_seconds: 600,
            stats_cache_seconds: 60,
            payment: PaymentConfig::default(),
            limits: LimitsConfig::default(),
            delivery: DeliveryConfig::default(),
            outbound: OutboundConfig::default(),
            totp: TotpConfig::default(),
            delay: DelayConfig::default(),
            header_read_timeout_seconds: DEFAULT_HEADER_READ_TIMEOUT,
            keep_alive_timeout_seconds: DEFAULT_KEEP_ALIVE_TIMEOUT,
            body_read_timeout_seconds: DEFAULT_BODY_READ_TIMEOUT,
            max_connections_per_address: DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
            rate_limit_max_clients: super::http::DEFAULT_RATE_LIMIT_CLIENTS,
            trusted_proxies: Vec::new(),
            forwarded_header: "x-forwarded-for".into(),
        }
    }
}

impl Config {
    /// Defaults with data in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Config {
            data_dir: data_dir.into(),
            ..Default::default()
        }
    }

    /// A loopback test server: any free port, data in `data_dir`, codes
    /// appended to `codes_file`, no per-address rate limit, master key
    /// created on first start, `stats` counted afresh on every call, SMS
    /// allowed to +354 numbers.
    pub fn for_testing(data_dir: impl Into<PathBuf>, codes_file: impl Into<PathBuf>) -> Self {
        let mut c = Config::new(data_dir);
        c.listen = "127.0.0.1:0".into();
        c.create_master_key = true;
        c.rate_limit_burst = 0;
        c.sweep_interval_seconds = 60;
        c.stats_cache_seconds = 0;
        c.delivery.file = Some(codes_file.into());
        // SMS to Icelandic numbers (the tests' +354), as a server in IS
        // would; the default is no SMS until the operator says where.
        c.outbound.sms_countries = Some(vec!["354".into()]);
        c
    }

    /// Parse TOML text.
    pub fn from_toml(text: &str) -> ServerResult<Config> {
        toml::from_str(text).map_err(|e| ServerError::config(e.to_string()))
    }

    /// Read a TOML file; warns (in the log) when it holds a credential
    /// and others than its owner may read it.
    pub fn load(path: &Path) -> ServerResult<Config> {
        let text =
            std::fs::read_to_string(path).map_err(|e| ServerError::io("reading", path, e))?;
        let c = Self::from_toml(&text)
            .map_err(|e| ServerError::config(format!("{}: {e}", path.display())))?;
        super::credentials::warn_if_exposed(path, &c);
        Ok(c)
    }

    /// The database `database` names.
    pub fn database(&self) -> ServerResult<super::storage::Database> {
        super::storage::Database::parse(self.database.as_deref(), &self.data_dir)
    }

    /// The SQLite file, when the database is SQLite (otherwise the file
    /// the data directory would hold).
    pub fn database_path(&self) -> PathBuf {
        match self.database() {
            Ok(super::storage::Database::Sqlite(p)) => p,
            _ => self.data_dir.join("passcrow.sqlite"),
        }
    }

    /// The master key path.
    pub fn master_key_path(&self) -> PathBuf {
        self.master_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("master.key"))
    }

    /// Check values make sense.
    pub fn validate(&self) -> ServerResult<()> {
        if self.max_request_bytes < 512 {
            return Err(ServerError::config(
                "max_request_bytes must be at least 512",
            ));
        }
        if self.max_expiration_seconds < 60 || self.max_timeout_seconds < 60 {
            return Err(ServerError::config(
                "max_expiration_seconds and max_timeout_seconds must be at least 60",
            ));
        }
        if self.code_attempts == 0 || self.verifications_per_hour == 0 {
            return Err(ServerError::config(
                "code_attempts and verifications_per_hour must be at least 1",
            ));
        }
        if self.status_per_hour == 0 {
            return Err(ServerError::config("status_per_hour must be at least 1"));
        }
        if self.rate_limit_per_second.is_nan() || self.rate_limit_per_second < 0.0 {
            return Err(ServerError::config(
                "rate_limit_per_second must be 0 (off) or positive",
            ));
        }
        if self.header_read_timeout_seconds == 0 || self.body_read_timeout_seconds == 0 {
            return Err(ServerError::config(
                "header_read_timeout_seconds and body_read_timeout_seconds must be at least 1",
            ));
        }
        if self.rate_limit_max_clients == 0 {
            return Err(ServerError::config(
                "rate_limit_max_clients must be at least 1",
            ));
        }
        self.database()?;
        self.postgres.validate(self.request_timeout_seconds)?;
        self.limits.validate()?;
        super::http::TrustedProxies::parse(&self.trusted_proxies, &self.forwarded_header)?;
        if self.country_code.is_empty() || self.country_code.len() > 8 {
            return Err(ServerError::config(
                "country_code should be a short code like IS or ??",
            ));
        }
        self.outbound.validate()?;
        if self.delay.max_seconds < 0 || self.delay.max_seconds > 366 * 86400 {
            return Err(ServerError::config(
                "delay.max_seconds must be 0 (no delay offered) to 366 days",
            ));
        }
        Ok(())
    }
}

/// The commented configuration `init` writes; `{DATA_DIR}` is filled in.
pub const SAMPLE_CONFIG: &str = r#"# passcrow-server configuration (TOML).
#
# Every setting has a default; command-line flags override this file.
# See docs/server.md.

# Where to listen. Put a TLS-terminating reverse proxy in front: clients
# contact https://HOST/passcrow/METHOD.
listen = "127.0.0.1:8451"

# Database and master key. The master key encrypts every escrow at rest;
# keep it (mode 0600) and back it up apart from the database.
data_dir = "{DATA_DIR}"
# database = "{DATA_DIR}/passcrow.sqlite"
# Or PostgreSQL, shared by several instances (see "Deployment" in
# docs/server.md); the password from PASSCROW_DATABASE_PASSWORD or a file:
# database = "postgres://passcrow@db.example.org:5432/passcrow?sslrootcert=/etc/passcrow-server/db-ca.pem"
# postgres.password_file = "/etc/passcrow-server/db-password"
# postgres.pool_size = 16               # connections per instance
# postgres.acquire_timeout_ms = 5000    # wait for a free one (< request timeout)
# postgres.connect_timeout_ms = 5000
# postgres.statement_timeout_ms = 10000
# postgres.lock_timeout_ms = 5000
# master_key_file = "{DATA_DIR}/master.key"

# Who you are. Why should users trust you with their recovery data?
country_code = "??"
about_url = "https://passcrow.example.org/"

# Limits (the values shown are the defaults).
# max_request_bytes = 4096
# max_expiration_seconds = 316224000   # about 10 years
# max_timeout_seconds = 1800           # how long a code stays valid
# code_attempts = 3                    # wrong guesses per code, then it is void
# verifications_per_hour = 5           # per escrow
# status_per_hour = 6                  # health checks per escrow
# request_timeout_seconds = 60
# rate_limit_burst = 20                # per client address; 0 disables
# rate_limit_per_second = 2.0
# sweep_interval_seconds = 600
# stats_cache_seconds = 60            # storage counts in `stats` reused this long

# Connections (see "Connections and reverse proxies" in docs/server.md).
# header_read_timeout_seconds = 10     # to send the request line and headers
# keep_alive_timeout_seconds = 5       # idle between requests; 0 = no keep-alive
# body_read_timeout_seconds = 10       # to send the body once the headers are in
# max_connections_per_address = 32     # IPv6: per /64; 0 disables
# rate_limit_max_clients = 65536       # addresses the rate limiter remembers
# Behind a reverse proxy: its address(es), so that the client address is
# taken from the header it sets (and the proxy is not connection-capped).
# trusted_proxies = ["127.0.0.1", "::1"]
# forwarded_header = "x-forwarded-for" # or "forwarded" (RFC 7239)

# What an escrow costs. Free escrows last 25 hours; longer ones are paid
# with proof of work (the reference server's offers).
# [payment]
# free_seconds = 90000
# hashcash = [
#   { bits = 11, seconds = 15811200 },
#   { bits = 12, seconds = 31622400 },
#   { bits = 13, seconds = 63244800 },
#   { bits = 14, seconds = 158112000 },
#   { bits = 15, seconds = 316224000 },
# ]

# Guessing and filling (see "Guessing and filling limits" in docs/server.md).
# [limits]
# wrong_guesses_per_hour = 10          # per escrow; then no code is checked until the hour ends
# wrong_guesses_lifetime = 30          # per escrow; then it is frozen for good (owner: renew)
# max_escrows = 1000000                # escrows held; more are refused
# max_free_escrows_per_day = 10000     # free escrows made per UTC day
# Authenticator apps (totp: identities, see "Authenticator apps (TOTP)" in
# docs/server.md): this server checks their codes, so its clock must be
# NTP-synced.
# [totp]
# enabled = true
# Release delays an escrow may ask for (see "Release delay" in
# docs/server.md); offered only with [outbound] public_url. 0: none.
# [delay]
# max_seconds = 604800                 # a week
# What goes out, to whom, and how much (see "Delivery budgets" in
# docs/server.md). The values shown are the defaults.
[outbound]
# Who to write to about unwanted messages: printed in every message.
# abuse_contact = "abuse@passcrow.example.org"
# Where this server is reached, for the opt-out link in every message.
# public_url = "https://passcrow.example.org"
# SMS goes only to these calling codes; unset: the calling code of
# country_code above ("??": no SMS at all until you set one). "*" = any.
# sms_countries = ["354"]
# per_recipient_per_hour = 10         # messages to one address, all escrows
# per_recipient_per_day = 30
# reserve_after_seconds = 604800      # escrows older than this (a week) ...
# reserve_per_hour = 3                # ... may also use these extra messages
# reserve_per_day = 6
# per_kind_per_hour = { sms = 100, email = 1000 }   # server-wide
# other_kinds_per_hour = 1000
# kind_reserve_percent = 10           # on top, for older escrows only
# warn_percent = 80                   # log a warning when this much is spent

[delivery]
mail_from = "Passcrow <noreply@passcrow.example.org>"

# E-mail (kinds email, mailto). smtp:// is plain (loopback relays only),
# smtps:// is TLS, smtp+starttls:// upgrades with STARTTLS.
# [delivery.smtp]
# url = "smtp+starttls://mail.example.org:587"
# username = "passcrow"
# password = "secret"
# Or keep the password out of this file (or set PASSCROW_SMTP_PASSWORD):
# password_file = "/etc/passcrow-server/smtp-password"

# SMS through a Twilio-compatible API (kinds sms, tel).
# [delivery.sms]
# base_url = "https://api.twilio.com"
# account_sid = "AC..."
# auth_token = "..."                    # or auth_token_file, PASSCROW_SMS_AUTH_TOKEN
# from = "+15551234567"

# A JSON webhook for other kinds.
# [[delivery.webhooks]]
# url = "https://hooks.example.org/passcrow"
# kinds = ["signal"]
# bearer_token = "..."                  # or bearer_token_file, PASSCROW_WEBHOOK_TOKEN

# For tests and demos only: append "identity<TAB>code" lines to a file.
# file = "{DATA_DIR}/codes.txt"
"#;

/// The sample configuration for `data_dir`.
pub fn sample_config(data_dir: &Path) -> String {
    let d = data_dir
        .display()
        .to_string()
        .replace('\\', "\\\\")
        .replace('"', "\\\"");
    SAMPLE_CONFIG.replace("{DATA_DIR}", &d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_parses() {
        let c = Config::from_toml(&sample_config(Path::new("/srv/pc"))).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/srv/pc"));
        assert_eq!(c.max_request_bytes, 4096);
        assert_eq!(c.payment, PaymentConfig::default());
        c.validate().unwrap();
        assert!(Config::from_toml("bogus = 1").is_err());
    }

    #[test]
    fn postgres_settings() {
        let c = Config::from_toml(
            "database = \"postgres://pc@db.example.org/pc\"\n[postgres]\npool_size = 4\n",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.postgres.pool_size, 4);
        let old = Config::from_toml("database = \"/var/lib/pc/old.sqlite\"").unwrap();
        assert_eq!(old.database_path(), PathBuf::from("/var/lib/pc/old.sqlite"));
        let bad = |t: &str| {
            Config::from_toml(t)
                .and_then(|c| c.validate())
                .unwrap_err()
                .to_string()
        };
        assert!(bad("[postgres]\npool_size = 0").contains("postgres.pool_size"));
        assert!(bad("[postgres]\nacquire_timeout_ms = 60000").contains("acquire_timeout_ms"));
        assert!(bad("database = \"mysql://x@y/z\"").contains("mysql"));
        assert!(bad("[postgres]\npassword = \"x\"").contains("password"));
    }

    #[test]
    fn connection_settings() {
        let c = Config::from_toml(
            "trusted_proxies = [\"10.0.0.0/8\", \"::1\"]\nheader_read_timeout_seconds = 3\n",
        )
        .unwrap();
        assert_eq!(c.header_read_timeout_seconds, 3);
        c.validate().unwrap();
        let bad = |t: &str| {
            Config::from_toml(t)
                .and_then(|c| c.validate())
                .unwrap_err()
                .to_string()
        };
        let e = bad("trusted_proxies = [\"10.0.0.0/8\", \"10.0.0.0/99\"]");
        assert!(
            e.contains("\"10.0.0.0/99\"") && e.contains("trusted_proxies"),
            "{e}"
        );
        assert!(bad("trusted_proxies = [\"proxy.example\"]").contains("proxy.example"));
        assert!(bad("forwarded_header = \"x-real-ip\"").contains("x-real-ip"));
        assert!(bad("body_read_timeout_seconds = 0").contains("body_read_timeout_seconds"));
        assert!(bad("rate_limit_max_clients = 0").contains("rate_limit_max_clients"));
    }

    #[test]
    fn limits_settings() {
        let c = Config::from_toml("[limits]\nmax_escrows = 5\n").unwrap();
        assert_eq!(c.limits.max_escrows, 5);
        assert_eq!(c.limits.wrong_guesses_lifetime, 30);
        c.validate().unwrap();
        for t in [
            "[limits]\nwrong_guesses_per_hour = 0",
            "[limits]\nwrong_guesses_lifetime = 0",
            "[limits]\nmax_escrows = 0",
            "[limits]\nmax_free_escrows_per_day = 0",
        ] {
            let e = Config::from_toml(t).unwrap().validate().unwrap_err();
            assert!(e.to_string().contains("limits."), "{e}");
        }
        assert!(Config::from_toml("[limits]\nwrong_guesses = 3").is_err());
    }

    #[test]
    fn debug_hides_secrets() {
        let mut c = Config::new("/srv/pc");
        c.delivery.smtp = Some(SmtpConfig {
            url: "smtps://user:pw-in-url@mail.example.org".into(),
            username: Some("user".into()),
            password: Some("smtp-password".into()),
            ..Default::default()
        });
        c.delivery.sms = Some(SmsConfig {
            account_sid: "AC1".into(),
            auth_token: "sms-token".into(),
            ..Default::default()
        });
        c.delivery.webhooks = vec![WebhookConfig {
            url: "https://hooks.example.org/x".into(),
            kinds: vec!["signal".into()],
            bearer_token: Some("hook-token".into()),
            ..Default::default()
        }];
        let d = format!("{c:?}");
        for secret in ["pw-in-url", "smtp-password", "sms-token", "hook-token"] {
            assert!(!d.contains(secret), "{secret} in {d}");
        }
    }

    #[test]
    fn redacted_urls_hold_no_login() {
        for (u, want) in [
            (
                "smtps://user:pw@mail.example.org",
                "smtps://[login]@mail.example.org",
            ),
            (
                "user:pw@mail.example.org:587",
                "[login]@mail.example.org:587",
            ),
            ("smtps://mail.example.org", "smtps://mail.example.org"),
        ] {
            assert_eq!(redact_url(u), want);
        }
    }
}
