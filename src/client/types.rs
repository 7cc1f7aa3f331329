//! What the client's operations take and return.

use std::path::PathBuf;
use std::time::Duration;

use super::{Pacing, Timeouts};
use crate::crypto::{SecretBytes, SecretString};
use crate::pack::{EscrowRecord, RecoveryPack};
use crate::{payment, Failure};

pub use crate::pack::ephemeral::KdfConcurrency;

/// The pack description python-passcrow writes.
pub const DEFAULT_PACK_DESCRIPTION: &str = "Created using python Passcrow";
/// The description shown in verification messages.
pub const DEFAULT_VERIFY_DESCRIPTION: &str = "Passcrow Data";

/// Where the ephemeral copy of a pack goes, and whether a local pack is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Ephemeral {
    /// Local pack only.
    #[default]
    No,
    /// Local pack, and the pack escrowed for recovery without it (`-e`).
    Both,
    /// Only the escrowed pack; nothing is written locally (`-E`).
    Only,
}

/// Options of [`Client::protect`].
#[derive(Clone, Debug)]
pub struct ProtectOptions {
    /// Ephemeral mode.
    pub ephemeral: Ephemeral,
    /// The pack's description.
    pub pack_description: String,
    /// The text in verification messages.
    pub verify_description: String,
    /// Replace an existing pack of the same name (its old escrows are
    /// deleted after the new pack is written). Without it, an existing
    /// pack is an error.
    pub replace: bool,
}

impl Default for ProtectOptions {
    fn default() -> Self {
        ProtectOptions {
            ephemeral: Ephemeral::No,
            pack_description: DEFAULT_PACK_DESCRIPTION.into(),
            verify_description: DEFAULT_VERIFY_DESCRIPTION.into(),
            replace: false,
        }
    }
}

/// Options for one call, given with it (`protect_with`, `verify_with`,
/// `recover_with`, `forget_with`, `renew_with`); every binding passes
/// them the same way. The plain calls use `CallOptions::default()`.
#[derive(Clone, Debug, Default)]
pub struct CallOptions {
    /// This call's request pacing in place of the client's
    /// ([`super::Client::pacing`]), e.g. the anonymity delay for one call
    /// only. `None`: the client's.
    pub pacing: Option<Pacing>,
}

/// What to keep to recover an ephemerally escrowed pack.
#[derive(Clone)]
pub struct EphemeralInfo {
    /// The server holding the pack.
    pub server: String,
    /// The user key (`AbCd-23Ef-GhJk-MnPq`): write it down.
    pub user_key: SecretString,
    /// When the escrowed pack expires.
    pub expiration: i64,
    /// The escrow as the reference prints it for `protect -e -b`.
    pub record: EscrowRecord,
}

impl EphemeralInfo {
    /// `SERVER:USER_KEY`, what `recover` takes.
    pub fn recovery_id(&self) -> SecretString {
        SecretString::new(format!("{}:{}", self.server, self.user_key.expose_secret()))
    }
}

impl std::fmt::Debug for EphemeralInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EphemeralInfo")
            .field("server", &self.server)
            .field("user_key", &"[redacted]")
            .field("expiration", &self.expiration)
            .finish()
    }
}

/// The result of [`Client::protect`].
#[derive(Debug)]
pub struct Protected {
    /// The pack (also written to disk unless ephemeral-only).
    pub pack: RecoveryPack,
    /// Where it was written.
    pub path: Option<PathBuf>,
    /// Ephemeral recovery details.
    pub ephemeral: Option<EphemeralInfo>,
    /// Old escrows that could not be deleted after a replace.
    pub cleanup_failures: Vec<Failure>,
    /// Policy warnings: a threshold one server can meet alone (see
    /// `docs/security.md`). The pack was made anyway.
    pub warnings: Vec<String>,
    /// One enrolment per `totp:` identity, for the user's authenticator
    /// app. Its secret is nowhere else on this device: show it now (a QR
    /// code of [`TotpEnrolment::uri`]); it cannot be shown again.
    pub totp: Vec<TotpEnrolment>,
}

/// A `totp:` identity's secret as an authenticator app enrols it.
#[derive(Clone)]
pub struct TotpEnrolment {
    /// The identity's label (`phone` for `totp:phone`), the account name
    /// the app shows under the issuer "Passcrow".
    pub label: String,
    /// The server that checks its codes.
    pub server: String,
    /// The character its codes route by in this pack (type it before the
    /// 6 digits when the pack has several authenticator escrows); `None`
    /// for the escrow of the ephemeral copy.
    pub prefix: Option<char>,
    /// The `otpauth://totp/Passcrow:LABEL?secret=...` URI (Key Uri
    /// Format): what the QR code encodes. It holds the secret.
    pub uri: SecretString,
}

impl std::fmt::Debug for TotpEnrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpEnrolment")
            .field("label", &self.label)
            .field("server", &self.server)
            .field("prefix", &self.prefix)
            .field("uri", &"[redacted]")
            .finish()
    }
}

/// One verification started: where the code went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hint {
    /// The character the code starts with.
    pub prefix: char,
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

/// The result of [`Client::verify`].
#[derive(Clone, Debug)]
pub struct Verification {
    /// Codes on their way, in prefix order.
    pub hints: Vec<Hint>,
    /// Escrows that could not start verification.
    pub failures: Vec<Failure>,
    /// Codes needed.
    pub min_shares: u32,
}

/// The result of [`Client::recover`].
pub enum Recovered {
    /// The protected secret.
    Secret(SecretBytes),
    /// An ephemeral escrow gave back its pack, now saved locally under
    /// `name` (the user key); verify and recover that pack next.
    Pack {
        /// The name it was saved under.
        name: String,
        /// The pack.
        pack: RecoveryPack,
    },
}

impl std::fmt::Debug for Recovered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Recovered::Secret(s) => write!(f, "Recovered::Secret({s:?})"),
            Recovered::Pack { pack, .. } => write!(f, "Recovered::Pack({pack:?})"),
        }
    }
}

/// A summary of one pack, for listings.
#[derive(Clone, Debug)]
pub struct PackInfo {
    /// The pack's name.
    pub name: String,
    /// Where the file is.
    pub path: PathBuf,
    /// Creation time (unix).
    pub created_ts: i64,
    /// When the first escrow expires (unix).
    pub expires_ts: i64,
    /// Description.
    pub description: String,
    /// Codes needed.
    pub min_shares: u32,
    /// Escrows codes route to.
    pub escrows: usize,
    /// Identity kinds, sorted.
    pub kinds: Vec<String>,
    /// Whether an ephemeral copy exists.
    pub ephemeral: bool,
    /// Why the pack could not be read, if it could not.
    pub error: Option<String>,
}

/// The result of [`Client::forget`].
#[derive(Clone, Debug, Default)]
pub struct Forgotten {
    /// Escrows deleted on servers.
    pub deleted: usize,
}

/// A log line callback (progress; never secrets).
pub type LogFn = dyn Fn(&str) + Send + Sync;
/// A hashcash progress callback.
pub type ProgressFn = dyn Fn(payment::Progress) + Send + Sync;

/// Settings of a [`Client`].
#[derive(Clone)]
pub struct ClientConfig {
    /// Where packs live.
    pub data_dir: PathBuf,
    /// Where `policy.rc` lives.
    pub config_dir: PathBuf,
    /// Request pacing (anonymity delay off by default).
    pub pacing: Pacing,
    /// Language asked for in verification messages.
    pub language: String,
    /// Hashcash worker threads (0 = one per core).
    pub hashcash_threads: usize,
    /// Longest a hashcash search may take.
    pub hashcash_max_time: Duration,
    /// How long each kind of request may take.
    pub timeouts: Timeouts,
    /// Allow plain `http://` to hosts that are not loopback. Off by
    /// default: over plain HTTP, shares and escrow keys cross the network
    /// in clear. Only for a test network the app controls.
    pub allow_plain_http: bool,
    /// How the ephemeral mode's scrypt derivations (1 GiB each) run: two
    /// at a time by default (2 GiB at the peak, about a third less wall
    /// time), or one at a time for memory-starved devices.
    pub ephemeral_kdf: KdfConcurrency,
}

impl ClientConfig {
    /// Packs in `data_dir`, `policy.rc` in `config_dir`.
    pub fn new(config_dir: impl Into<PathBuf>, data_dir: impl Into<PathBuf>) -> Self {
        ClientConfig {
            data_dir: data_dir.into(),
            config_dir: config_dir.into(),
            pacing: Pacing::default(),
            language: "en".into(),
            hashcash_threads: 0,
            hashcash_max_time: Duration::from_secs(600),
            timeouts: Timeouts::default(),
            allow_plain_http: false,
            ephemeral_kdf: KdfConcurrency::default(),
        }
    }
}
