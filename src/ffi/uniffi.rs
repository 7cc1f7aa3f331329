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

// ---------------------------------------------------------------- errors

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
            Error::Server { server, .. } => PasscrowError::Server { detail, server },
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

type Res<T> = std::result::Result<T, PasscrowError>;

// ------------------------------------------------------------- transport

/// What one HTTP request got back.
#[derive(Clone, uniffi::Record)]
pub struct HttpResponse {
    /// The HTTP status.
    pub status: u16,
    /// The body (the client reads at most 1 MiB of it).
    pub body: Vec<u8>,
}

/// Bodies carry shares and packs: only their length is printed.
impl std::fmt::Debug for HttpResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpResponse")
            .field("status", &self.status)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// An app's own HTTP stack (pinning, proxy, Tor). `post` sends `body`
/// (JSON) to `url` with `Content-Type: application/json` and returns the
/// answer; an HTTP error status is a normal return. Raise
/// `PasscrowError.Transport` only when no answer was had. Called from the
/// library's worker threads, several at a time: make it thread-safe.
#[uniffi::export(with_foreign)]
pub trait HttpTransport: Send + Sync {
    /// POST `body` to `url`.
    fn post(&self, url: String, body: Vec<u8>) -> Res<HttpResponse>;
}

struct ForeignTransport(Arc<dyn HttpTransport>);

impl client::Transport for ForeignTransport {
    fn post(
        &self,
        request: &client::HttpRequest<'_>,
    ) -> Result<client::HttpResponse, client::TransportError> {
        // The app's transport owns its deadlines (`request.timeout` is not
        // in the foreign trait, whose signature apps implement).
        match self.0.post(request.url.to_string(), request.body.to_vec()) {
            Ok(r) => {
                let mut body = r.body;
                body.truncate(client::transport::MAX_RESPONSE_BYTES as usize);
                Ok(client::HttpResponse {
                    status: r.status,
                    body,
                })
            }
            Err(e) => Err(client::TransportError::Other(e.to_string())),
        }
    }
}

/// Receives progress lines (never secrets). Called from worker threads.
#[uniffi::export(with_foreign)]
pub trait LogSink: Send + Sync {
    /// One line.
    fn log(&self, message: String);
}

// --------------------------------------------------------------- records

/// Where the ephemeral copy of a pack goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum EphemeralMode {
    /// Local pack only.
    No,
    /// Local pack, and a copy escrowed for recovery without it.
    Both,
    /// Only the escrowed copy; nothing is written locally.
    Only,
}

impl From<EphemeralMode> for Ephemeral {
    fn from(m: EphemeralMode) -> Self {
        match m {
            EphemeralMode::No => Ephemeral::No,
            EphemeralMode::Both => Ephemeral::Both,
            EphemeralMode::Only => Ephemeral::Only,
        }
    }
}

/// What to keep to recover an ephemerally escrowed pack.
#[derive(Clone, uniffi::Record)]
pub struct EphemeralDetails {
    /// The server holding the pack.
    pub server: String,
    /// The user key (`AbCd-23Ef-GhJk-MnPq`): the user writes it down.
    pub user_key: String,
    /// `SERVER:USER_KEY`: give it to [`PasscrowClient::pack`] to recover.
    pub recovery_id: String,
    /// When the escrowed copy expires (unix time).
    pub expiration: i64,
}

impl std::fmt::Debug for EphemeralDetails {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EphemeralDetails")
            .field("server", &self.server)
            .field("user_key", &"[redacted]")
            .field("expiration", &self.expiration)
            .finish()
    }
}

/// The result of [`PasscrowClient::protect`] and [`PasscrowClient::renew`].
#[derive(Debug, Clone, uniffi::Record)]
pub struct ProtectResult {
    /// The pack's name.
    pub name: String,
    /// Where it was written (none for ephemeral-only).
    pub path: Option<String>,
    /// Codes needed to recover.
    pub min_shares: u32,
    /// Escrows made (not counting the ephemeral copy).
    pub escrows: u32,
    /// When the first escrow expires (unix time).
    pub expires_ts: i64,
    /// Ephemeral recovery details.
    pub ephemeral: Option<EphemeralDetails>,
    /// Old escrows that could not be deleted after a replace.
    pub cleanup_failures: Vec<FailureInfo>,
}

/// One verification started: where a code went.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct VerificationHint {
    /// The character the code starts with.
    pub prefix: String,
    /// Identity kind (`email`, `tel`, `ephemeral`).
    pub kind: String,
    /// Masked address (`b*@e*ple.org`).
    pub hint: String,
    /// When the code stops working (unix time).
    pub expiration: i64,
    /// Where to find the code, for some kinds.
    pub action_url: Option<String>,
    /// The server that sent it.
    pub server: String,
}

/// The result of [`PasscrowClient::verify`].
#[derive(Debug, Clone, uniffi::Record)]
pub struct Verification {
    /// Codes on their way, in prefix order.
    pub hints: Vec<VerificationHint>,
    /// Escrows that could not start verification.
    pub failures: Vec<FailureInfo>,
    /// Codes needed.
    pub min_shares: u32,
}

/// A pack in the listing.
#[derive(Debug, Clone, uniffi::Record)]
pub struct PackSummary {
    /// The name.
    pub name: String,
    /// The file.
    pub path: String,
    /// Creation time (unix).
    pub created_ts: i64,
    /// When the first escrow expires (unix).
    pub expires_ts: i64,
    /// Description.
    pub description: String,
    /// Codes needed.
    pub min_shares: u32,
    /// Escrows codes route to.
    pub escrows: u32,
    /// Identity kinds, sorted.
    pub kinds: Vec<String>,
    /// Whether an ephemeral copy exists.
    pub ephemeral: bool,
    /// Why the pack could not be read, if it could not.
    pub error: Option<String>,
}

impl From<client::PackInfo> for PackSummary {
    fn from(p: client::PackInfo) -> Self {
        PackSummary {
            name: p.name,
            path: p.path.display().to_string(),
            created_ts: p.created_ts,
            expires_ts: p.expires_ts,
            description: p.description,
            min_shares: p.min_shares,
            escrows: sat_u32(p.escrows),
            kinds: p.kinds,
            ephemeral: p.ephemeral,
            error: p.error,
        }
    }
}

/// The defaults (`policy.rc`): what a policy leaves out is filled from here.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PolicyDefaults {
    /// Default n of n-of-m.
    pub n: u32,
    /// Default m.
    pub m: u32,
    /// Default identities (`alice@example.org via server`).
    pub identities: Vec<String>,
    /// Server choices (`email, tel via server`).
    pub servers: Vec<String>,
    /// Escrow lifetime, days.
    pub expiration_days: u32,
    /// Code lifetime, minutes.
    pub timeout_minutes: u32,
}

/// A random delay between `min_seconds` and `max_seconds` (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct DelayRange {
    /// The shortest delay, seconds.
    pub min_seconds: u32,
    /// The longest delay, seconds (at least `min_seconds`).
    pub max_seconds: u32,
}

/// Options of one call (`protect`, `verify`, `recover`, `forget`,
/// `renew`), given with it and for it only. Leaving the argument out is the
/// same as `CallOptions()` with every field at its default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, uniffi::Record)]
pub struct CallOptions {
    /// The anonymity delay: before each request to a server after the
    /// first, wait a random time in this range, so a server cannot link
    /// the requests of one operation by their timing (python-passcrow
    /// waits 0..600 s). `None` (the default): no delay. Requests to
    /// different servers still go out concurrently.
    #[uniffi(default = None)]
    pub anonymity_delay: Option<DelayRange>,
}

impl CallOptions {
    /// The core's options for one call of `c`: the client's pacing with
    /// this delay (BadInput when the range is upside down).
    pub(crate) fn to_core(self, c: &Client) -> Res<client::CallOptions> {
        let delay = match self.anonymity_delay {
            None => None,
            Some(r) if r.min_seconds > r.max_seconds => {
                return Err(PasscrowError::BadInput {
                    detail: format!(
                        "bad input: delay {}..{} s: the minimum exceeds the maximum",
                        r.min_seconds, r.max_seconds
                    ),
                })
            }
            Some(r) => Some((
                Duration::from_secs(r.min_seconds.into()),
                Duration::from_secs(r.max_seconds.into()),
            )),
        };
        Ok(client::CallOptions {
            pacing: Some(client::Pacing {
                delay,
                ..c.pacing()
            }),
        })
    }
}

/// The core's options for a call made with `options` (none: the defaults).
fn call_options(c: &Client, options: Option<CallOptions>) -> Res<client::CallOptions> {
    options.unwrap_or_default().to_core(c)
}

// ------------------------------------------------------------------ pack

/// A recovery pack, loaded (or the stand-in for `SERVER:USER_KEY`).
/// Holds key material: drop it when done.
#[derive(uniffi::Object)]
pub struct Pack {
    inner: RecoveryPack,
}

#[uniffi::export]
impl Pack {
    /// The name.
    pub fn name(&self) -> String {
        self.inner.name.clone()
    }

    /// The description.
    pub fn description(&self) -> Option<String> {
        self.inner.description.clone()
    }

    /// Codes needed.
    pub fn min_shares(&self) -> u32 {
        self.inner.min_shares
    }

    /// Escrows codes can come from.
    pub fn escrows(&self) -> u32 {
        sat_u32(self.inner.prefixed_escrows().len())
    }

    /// Creation time (unix), when known.
    pub fn created_ts(&self) -> Option<i64> {
        self.inner.created_ts
    }

    /// When the first escrow expires (unix).
    pub fn expires_ts(&self) -> i64 {
        self.inner.expires_ts()
    }

    /// True for the stand-in of an ephemeral recovery id: recovering it
    /// gives back the real pack.
    pub fn is_ephemeral_stub(&self) -> bool {
        self.inner.is_ephemeral_stub()
    }
}

/// What [`PasscrowClient::recover`] gives back.
#[derive(uniffi::Enum)]
pub enum RecoveryResult {
    /// The protected secret.
    Secret {
        /// Its bytes.
        secret: Vec<u8>,
    },
    /// An ephemeral escrow gave back its pack, now saved locally under
    /// `name` (the user key): verify and recover `pack` next.
    Pack {
        /// The name it was saved under.
        name: String,
        /// The pack.
        pack: Arc<Pack>,
    },
}

impl std::fmt::Debug for RecoveryResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecoveryResult::Secret { .. } => f.write_str("RecoveryResult::Secret([redacted])"),
            // The name is the user key: a secret.
            RecoveryResult::Pack { .. } => f.write_str("RecoveryResult::Pack([redacted])"),
        }
    }
}

// ---------------------------------------------------------------- client

/// The Passcrow client. Every method blocks: call it off the UI thread.
/// Thread-safe.
#[derive(uniffi::Object)]
pub struct PasscrowClient {
    inner: Client,
}

/// A core client over `transport` (none: the built-in HTTPS stack),
/// logging to `log`: what every constructor here and in the drop-in's
/// module does.
pub(crate) fn core_client(
    cfg: ClientConfig,
    transport: Option<Arc<dyn HttpTransport>>,
    log: Option<Arc<dyn LogSink>>,
) -> crate::Result<Client> {
    let mut inner = match transport {
        Some(t) => Client::with_transport(cfg, Arc::new(ForeignTransport(t)))?,
        None => Client::new(cfg)?,
    };
    if let Some(l) = log {
        inner.set_log(Arc::new(move |m: &str| l.log(m.to_string())));
    }
    Ok(inner)
}

// Used by the drop-in's module (feature `python-compat`) only.
#[cfg_attr(not(feature = "python-compat"), allow(dead_code))]
impl PasscrowClient {
    /// The binding over a core client (the drop-in's `CompatClient` wraps
    /// one).
    pub(crate) fn from_core(inner: Client) -> Self {
        PasscrowClient { inner }
    }

    pub(crate) fn core(&self) -> &Client {
        &self.inner
    }
}

/// The request for `identities` and an n/m given or not: the core fills
/// the gaps from the defaults and checks the ratio.
fn policy_request(identities: Vec<String>, n: Option<u32>, m: Option<u32>) -> PolicyRequest {
    PolicyRequest {
        identities,
        n,
        m,
        ..Default::default()
    }
}

#[uniffi::export]
impl PasscrowClient {
    /// A client keeping packs in `data_dir` and `policy.rc` in
    /// `config_dir` (created, mode 0700, when `create_dirs`). `transport`
    /// replaces the built-in HTTPS stack; `log` receives progress lines.
    /// `language` is asked for in verification messages; hashcash uses
    /// `hashcash_threads` threads (0: one per core). A transient failure
    /// (no answer, rate limited) is retried after `retry_backoff_ms`,
    /// doubling up to `max_backoff_ms`.
    #[uniffi::constructor(default(
        transport = None,
        log = None,
        create_dirs = true,
        language = "en",
        hashcash_threads = 0,
        retry_backoff_ms = 1100,
        max_backoff_ms = 8000
    ))]
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config_dir: String,
        data_dir: String,
        transport: Option<Arc<dyn HttpTransport>>,
        log: Option<Arc<dyn LogSink>>,
        create_dirs: bool,
        language: String,
        hashcash_threads: u32,
        retry_backoff_ms: u32,
        max_backoff_ms: u32,
    ) -> Res<Arc<Self>> {
        let (config_dir, data_dir) = (PathBuf::from(config_dir), PathBuf::from(data_dir));
        if create_dirs {
            client::create_private_dir(&config_dir)?;
            client::create_private_dir(&data_dir)?;
        }
        let mut cfg = ClientConfig::new(config_dir, data_dir);
        cfg.language = language;
        cfg.hashcash_threads = hashcash_threads as usize;
        cfg.pacing.backoff = Duration::from_millis(retry_backoff_ms.into());
        cfg.pacing.max_backoff = Duration::from_millis(max_backoff_ms.into());
        Ok(Arc::new(PasscrowClient {
            inner: core_client(cfg, transport, log)?,
        }))
    }

    /// The defaults in use (loaded from `policy.rc`, or built in).
    pub fn defaults(&self) -> PolicyDefaults {
        defaults_from_core(&self.inner.defaults())
    }

    /// Replace the defaults; with `save`, also write `policy.rc`.
    #[uniffi::method(default(save = false))]
    pub fn set_defaults(&self, defaults: PolicyDefaults, save: bool) -> Res<()> {
        self.inner.set_defaults(defaults_to_core(&defaults)?);
        if save {
            self.inner.save_defaults()?;
        }
        Ok(())
    }

    /// Protect `secret` under `name`: split a fresh key n-of-m over
    /// `identities` (`alice@example.org via server`; empty: the defaults),
    /// escrow the shares and write the pack. `n`/`m` default to the
    /// defaults' ratio (scaled to the identities); `n` alone means n of
    /// all the identities. `options`: this call's [`CallOptions`] (none:
    /// no anonymity delay). Blocks: one round trip per server plus
    /// hashcash.
    #[uniffi::method(default(
        n = None,
        m = None,
        ephemeral = None,
        replace = false,
        pack_description = None,
        verify_description = None,
        options = None
    ))]
    #[allow(clippy::too_many_arguments)]
    pub fn protect(
        &self,
        name: String,
        secret: Vec<u8>,
        identities: Vec<String>,
        n: Option<u32>,
        m: Option<u32>,
        ephemeral: Option<EphemeralMode>,
        replace: bool,
        pack_description: Option<String>,
        verify_description: Option<String>,
        options: Option<CallOptions>,
    ) -> Res<ProtectResult> {
        let secret = crate::crypto::SecretBytes::new(secret);
        let call = call_options(&self.inner, options)?;
        let policy = self.inner.policy(&policy_request(identities, n, m))?;
        let mut opts = ProtectOptions {
            ephemeral: ephemeral.unwrap_or(EphemeralMode::No).into(),
            replace,
            ..Default::default()
        };
        if let Some(d) = pack_description {
            opts.pack_description = d;
        }
        if let Some(d) = verify_description {
            opts.verify_description = d;
        }
        let p = self
            .inner
            .protect_with(&name, secret.expose_secret(), &policy, &opts, &call)?;
        Ok(protect_result(p))
    }

    /// Load the pack `name`, or make the stand-in for an ephemeral
    /// recovery id `SERVER:USER_KEY` (scrypt: a few seconds).
    pub fn pack(&self, name: String) -> Res<Arc<Pack>> {
        Ok(Arc::new(Pack {
            inner: self.inner.pack(&name)?,
        }))
    }

    /// Ask every escrow's server to send its verification code, with
    /// this call's `options` (none: no anonymity delay). Blocks.
    #[uniffi::method(default(options = None))]
    pub fn verify(&self, pack: Arc<Pack>, options: Option<CallOptions>) -> Res<Verification> {
        let call = call_options(&self.inner, options)?;
        Ok(verification(self.inner.verify_with(&pack.inner, &call)?))
    }

    /// Recover with the codes the user received (any order; blanks,
    /// dashes and case are forgiven), with this call's `options` (none: no
    /// anonymity delay). A refused code raises `WrongCode` with the
    /// attempts left. Blocks.
    #[uniffi::method(default(options = None))]
    pub fn recover(
        &self,
        pack: Arc<Pack>,
        codes: Vec<String>,
        options: Option<CallOptions>,
    ) -> Res<RecoveryResult> {
        let call = call_options(&self.inner, options)?;
        Ok(recovery_result(self.inner.recover_with(
            &pack.inner,
            &codes,
            &call,
        )?))
    }

    /// Delete the pack `name`: its escrows on the servers (unless
    /// `local_only`), then the file, with this call's `options` (none: no
    /// anonymity delay). Returns the escrows deleted. Blocks.
    #[uniffi::method(default(local_only = false, options = None))]
    pub fn forget(&self, name: String, local_only: bool, options: Option<CallOptions>) -> Res<u32> {
        let call = call_options(&self.inner, options)?;
        Ok(sat_u32(
            self.inner.forget_with(&name, local_only, &call)?.deleted,
        ))
    }

    /// Every pack, sorted by file name (unreadable ones carry `error`).
    pub fn list(&self) -> Res<Vec<PackSummary>> {
        Ok(self
            .inner
            .list()?
            .into_iter()
            .map(PackSummary::from)
            .collect())
    }

    /// Packs whose first escrow expires within `within_seconds`, and
    /// packs that could not be read.
    pub fn expiring(&self, within_seconds: u64) -> Res<Vec<PackSummary>> {
        Ok(self
            .inner
            .expiring(Duration::from_secs(within_seconds))?
            .into_iter()
            .map(PackSummary::from)
            .collect())
    }

    /// Renew `name`: escrow `secret` afresh (over `identities`, or the
    /// defaults when empty and no ratio is given), replace the pack, then
    /// delete the old escrows, with this call's `options` (none: no
    /// anonymity delay). Blocks.
    #[uniffi::method(default(identities = [], n = None, m = None, options = None))]
    pub fn renew(
        &self,
        name: String,
        secret: Vec<u8>,
        identities: Vec<String>,
        n: Option<u32>,
        m: Option<u32>,
        options: Option<CallOptions>,
    ) -> Res<ProtectResult> {
        let secret = crate::crypto::SecretBytes::new(secret);
        let call = call_options(&self.inner, options)?;
        let policy = if identities.is_empty() && n.is_none() && m.is_none() {
            None
        } else {
            Some(self.inner.policy(&policy_request(identities, n, m))?)
        };
        let p = self
            .inner
            .renew_with(&name, secret.expose_secret(), policy.as_ref(), &call)?;
        Ok(protect_result(p))
    }

    /// Cancel hashcash work in progress (the call raises `Cancelled`).
    /// Later calls work again once [`PasscrowClient::reset_cancel`] is
    /// called.
    pub fn cancel(&self) {
        self.inner.cancel_flag().store(true, Ordering::SeqCst);
    }

    /// Clear a [`PasscrowClient::cancel`].
    pub fn reset_cancel(&self) {
        self.inner.cancel_flag().store(false, Ordering::SeqCst);
    }
}

/// The core's defaults as the record foreign code sees.
pub(crate) fn defaults_from_core(d: &crate::policy::Defaults) -> PolicyDefaults {
    PolicyDefaults {
        n: d.n,
        m: d.m,
        identities: d.ids.iter().map(|i| i.to_string()).collect(),
        servers: d.servers.iter().map(|s| s.to_string()).collect(),
        expiration_days: d.expiration_days,
        timeout_minutes: d.timeout_minutes,
    }
}

/// The record back to the core's defaults, every text parsed and checked
/// (the ratio by [`check_ratio`], lifetimes by [`clamp_lifetime`]).
pub(crate) fn defaults_to_core(d: &PolicyDefaults) -> Res<crate::policy::Defaults> {
    use crate::policy::{Defaults, IdentityPolicy, ServerChoice};
    let (n, m) = check_ratio(d.n, d.m)?;
    Ok(Defaults {
        n,
        m,
        ids: d
            .identities
            .iter()
            .map(|t| IdentityPolicy::parse(t, None))
            .collect::<crate::Result<_>>()?,
        servers: d
            .servers
            .iter()
            .map(|t| ServerChoice::parse(t))
            .collect::<crate::Result<_>>()?,
        expiration_days: clamp_lifetime(d.expiration_days),
        timeout_minutes: clamp_lifetime(d.timeout_minutes),
    })
}

pub(crate) fn verification(v: client::Verification) -> Verification {
    Verification {
        hints: v
            .hints
            .into_iter()
            .map(|h| VerificationHint {
                prefix: h.prefix.to_string(),
                kind: h.kind,
                hint: h.hint,
                expiration: h.expiration,
                action_url: h.action_url,
                server: h.server,
            })
            .collect(),
        failures: v.failures.into_iter().map(FailureInfo::from).collect(),
        min_shares: v.min_shares,
    }
}

pub(crate) fn recovery_result(r: Recovered) -> RecoveryResult {
    match r {
        Recovered::Secret(s) => RecoveryResult::Secret {
            secret: s.into_vec(),
        },
        Recovered::Pack { name, pack } => RecoveryResult::Pack {
            name,
            pack: Arc::new(Pack { inner: pack }),
        },
    }
}

pub(crate) fn protect_result(p: client::Protected) -> ProtectResult {
    ProtectResult {
        name: p.pack.name.clone(),
        path: p.path.map(|x| x.display().to_string()),
        min_shares: p.pack.min_shares,
        escrows: sat_u32(p.pack.prefixed_escrows().len()),
        expires_ts: p.pack.expires_ts(),
        ephemeral: p.ephemeral.map(|e| EphemeralDetails {
            recovery_id: e.recovery_id().expose_secret().to_string(),
            server: e.server,
            user_key: e.user_key.expose_secret().to_string(),
            expiration: e.expiration,
        }),
        cleanup_failures: p
            .cleanup_failures
            .into_iter()
            .map(FailureInfo::from)
            .collect(),
    }
}

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
            user_key: "AbCd-23Ef".into(),
            recovery_id: "s:AbCd-23Ef".into(),
            expiration: 0,
        };
        assert!(!format!("{e:?}").contains("AbCd"));
    }
}
