//! What crosses the boundary by value: records and enums, and their
//! conversions from the core's types.

use super::*;

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

/// What to keep to recover an ephemerally escrowed pack. The user key and
/// the recovery id are [`SecretText`] objects (`.expose()`): with a code,
/// either one recovers the secret, so printing the record never shows
/// them.
#[derive(Debug, Clone, uniffi::Record)]
pub struct EphemeralDetails {
    /// The server holding the pack.
    pub server: String,
    /// The user key (`AbCd-23Ef-GhJk-MnPq`): the user writes it down.
    pub user_key: Arc<SecretText>,
    /// `SERVER:USER_KEY`: give it (exposed) to [`PasscrowClient::pack`] to
    /// recover.
    pub recovery_id: Arc<SecretText>,
    /// When the escrowed copy expires (unix time).
    pub expiration: i64,
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
    /// Policy warnings (a threshold one server can meet alone); the pack
    /// was made anyway.
    pub warnings: Vec<String>,
    /// One enrolment per `totp:` identity: show each to the user now (a QR
    /// code of its `uri`), as it is nowhere else on this device.
    pub totp: Vec<TotpEnrolmentInfo>,
}

/// A `totp:` identity's secret as an authenticator app enrols it.
#[derive(Debug, Clone, uniffi::Record)]
pub struct TotpEnrolmentInfo {
    /// The identity's label (`phone` for `totp:phone`): the account name
    /// the app shows under the issuer "Passcrow".
    pub label: String,
    /// The server that checks its codes.
    pub server: String,
    /// The character its codes route by (typed before the 6 digits when
    /// a pack has several authenticator escrows); none for the escrow of
    /// the ephemeral copy.
    pub prefix: Option<String>,
    /// The `otpauth://totp/Passcrow:LABEL?secret=...` URI a QR code
    /// encodes (`uri.expose()`). It holds the secret, so it is not plain
    /// text: printing the record does not show it.
    pub uri: Arc<SecretText>,
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
pub(crate) fn call_options(c: &Client, options: Option<CallOptions>) -> Res<client::CallOptions> {
    options.unwrap_or_default().to_core(c)
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
            recovery_id: SecretText::new(e.recovery_id()),
            server: e.server,
            user_key: SecretText::new(e.user_key),
            expiration: e.expiration,
        }),
        cleanup_failures: p
            .cleanup_failures
            .into_iter()
            .map(FailureInfo::from)
            .collect(),
        warnings: p.warnings,
        totp: p
            .totp
            .into_iter()
            .map(|t| TotpEnrolmentInfo {
                label: t.label,
                server: t.server,
                prefix: t.prefix.map(String::from),
                uri: SecretText::new(t.uri),
            })
            .collect(),
    }
}
