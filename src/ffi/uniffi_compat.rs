//! What the Python drop-in (`passcrow.client` in the wheel, imitating
//! python-passcrow 0.0.7's app API) needs beyond the UniFFI surface:
//! policy text parsing with python-passcrow's default rotation, the ratio
//! rule, an anonymity delay through a foreign sleeper, per-call `quick`,
//! and protect with an explicit policy. No Python-only logic lives in
//! Rust here, and no protocol logic in Python: the layer in
//! `bindings/python/python/passcrow/client.py` only adapts conventions.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::uniffi::{
    defaults_from_core, defaults_to_core, EphemeralMode, HttpTransport, LogSink, Pack,
    PasscrowClient, PasscrowError, PolicyDefaults, ProtectResult, RecoveryResult, Verification,
};
use crate::client::{self, Client, ClientConfig, Pacing, ProtectOptions};
use crate::policy::{IdentityPolicy, RecoveryPolicy, ServerChoice};

type Res<T> = std::result::Result<T, PasscrowError>;

/// Sleeps on the app's behalf (python-passcrow's `sleep_func`). Called
/// from worker threads.
#[uniffi::export(with_foreign)]
pub trait Sleeper: Send + Sync {
    /// Sleep this many seconds.
    fn sleep(&self, seconds: f64);
}

/// An identity policy, parsed and normalised.
#[derive(Debug, Clone, uniffi::Record)]
pub struct ParsedIdentityPolicy {
    /// `kind:address`.
    pub id: String,
    /// Who is told that recovery started.
    pub notify: Option<String>,
    /// The server chosen (as written, or from the defaults).
    pub server: Option<String>,
    /// The defaults after python-passcrow's rotation (when given).
    pub defaults: Option<PolicyDefaults>,
}

/// `KINDS via SERVER`.
#[derive(Debug, Clone, uniffi::Record)]
pub struct ServerChoiceParts {
    /// Identity kinds the server takes.
    pub kinds: Vec<String>,
    /// The server.
    pub server: String,
}

/// n of m.
#[derive(Debug, Clone, Copy, uniffi::Record)]
pub struct Ratio {
    /// Needed.
    pub n: u32,
    /// Made.
    pub m: u32,
}

/// Parse `ID[, notify=ID][ via SERVER]`; with `defaults`, fill in the
/// notify identity and server from them, rotating them as python-passcrow
/// does, and return the rotated defaults.
#[uniffi::export]
pub fn parse_identity_policy(
    text: String,
    defaults: Option<PolicyDefaults>,
) -> Res<ParsedIdentityPolicy> {
    let mut core = defaults.as_ref().map(defaults_to_core).transpose()?;
    let p = IdentityPolicy::parse(&text, core.as_mut())?;
    Ok(ParsedIdentityPolicy {
        id: p.id.as_str().to_string(),
        notify: p.notify.as_ref().map(|n| n.as_str().to_string()),
        server: p.server.clone(),
        defaults: core.as_ref().map(defaults_from_core),
    })
}

/// Parse `KINDS via SERVER`.
#[uniffi::export]
pub fn parse_server_choice(text: String) -> Res<ServerChoiceParts> {
    let s = ServerChoice::parse(&text)?;
    Ok(ServerChoiceParts {
        kinds: s.kinds.clone(),
        server: s.server.clone(),
    })
}

/// Normalise an identity (`a@b.org` → `email:a@b.org`).
#[uniffi::export]
pub fn normalize_identity(text: String) -> Res<String> {
    Ok(crate::proto::Identity::parse(&text)?.as_str().to_string())
}

/// How a kind reads in a sentence (`email` → `e-mail to`).
#[uniffi::export]
pub fn explain_kind(kind: String) -> String {
    crate::proto::explain_kind(&kind).to_string()
}

/// python-passcrow's ratio rule: n-of-m scaled to the identities available.
#[uniffi::export]
pub fn absolute_ratio(n: u32, m: u32, available: u32) -> Res<Ratio> {
    let (n, m) = crate::policy::scale_ratio(n, m, available as usize)?;
    Ok(Ratio { n, m })
}

/// The platform's default directory for `config` or `data`.
#[uniffi::export]
pub fn default_directory(kind: String) -> String {
    let (config, data) = client::default_dirs();
    let p = if kind == "config" { config } else { data };
    p.display().to_string()
}

struct ForeignSleeper(Arc<dyn Sleeper>);

#[uniffi::export]
impl PasscrowClient {
    /// A client for the python-passcrow drop-in: like `new`, plus an
    /// anonymity delay of `sleep_min`..`sleep_max` seconds between requests
    /// to a server (used when a call is not `quick`), slept by `sleeper`
    /// (default: the thread sleeps). Directories must exist.
    #[uniffi::constructor(default(
        transport = None,
        log = None,
        sleeper = None,
        sleep_min = 0,
        sleep_max = 600,
        language = "en"
    ))]
    #[allow(clippy::too_many_arguments)]
    pub fn compat(
        config_dir: String,
        data_dir: String,
        transport: Option<Arc<dyn HttpTransport>>,
        log: Option<Arc<dyn LogSink>>,
        sleeper: Option<Arc<dyn Sleeper>>,
        sleep_min: u32,
        sleep_max: u32,
        language: String,
    ) -> Res<Arc<Self>> {
        let mut cfg = ClientConfig::new(PathBuf::from(config_dir), PathBuf::from(data_dir));
        cfg.language = language;
        let mut inner = match transport {
            Some(t) => PasscrowClient::client_with_foreign_transport(cfg, t)?,
            None => Client::new(cfg)?,
        };
        if let Some(l) = log {
            inner.set_log(Arc::new(move |m: &str| l.log(m.to_string())));
        }
        if let Some(s) = sleeper {
            let s = ForeignSleeper(s);
            inner.set_sleeper(Arc::new(move |d: Duration| s.0.sleep(d.as_secs_f64())));
        }
        let lo = Duration::from_secs(u64::from(sleep_min.min(sleep_max)));
        let hi = Duration::from_secs(u64::from(sleep_max.max(sleep_min)));
        Ok(Arc::new(PasscrowClient::from_core(
            inner,
            Some(CompatPacing {
                slow: Some((lo, hi)),
            }),
        )))
    }

    /// Load `policy.rc` (NotFound when there is none) and use it.
    pub fn load_defaults(&self) -> Res<PolicyDefaults> {
        let c = self.core();
        let path = c.defaults_path();
        if !path.is_file() {
            return Err(PasscrowError::NotFound {
                detail: format!("{} does not exist", path.display()),
            });
        }
        Ok(defaults_from_core(&c.load_defaults()?))
    }

    /// Protect with a policy spelt out: identities as
    /// `ID[, notify=ID] via SERVER`, the ratio (scaled to the identities
    /// as python-passcrow does) and lifetimes. An existing pack of that
    /// name is replaced, its old escrows deleted after the new pack is
    /// written. `quick` skips the anonymity delay.
    #[allow(clippy::too_many_arguments)]
    pub fn protect_policy(
        &self,
        name: String,
        secret: Vec<u8>,
        identities: Vec<String>,
        n: u32,
        m: u32,
        expiration_days: u32,
        timeout_minutes: u32,
        ephemeral: EphemeralMode,
        quick: bool,
        pack_description: String,
        verify_description: String,
    ) -> Res<ProtectResult> {
        let secret = crate::crypto::SecretBytes::new(secret);
        let ids = identities
            .iter()
            .map(|t| IdentityPolicy::parse(t, None))
            .collect::<crate::Result<Vec<_>>>()?;
        let policy = RecoveryPolicy {
            ids,
            n,
            m,
            expiration_days: expiration_days.max(1),
            timeout_minutes: timeout_minutes.max(1),
        };
        let opts = ProtectOptions {
            ephemeral: ephemeral.into(),
            replace: true,
            pack_description,
            verify_description,
        };
        self.paced(quick, |c, call| {
            c.protect_with(&name, secret.expose_secret(), &policy, &opts, call)
        })
        .map(super::uniffi::protect_result)
    }

    /// `verify`, with or without the anonymity delay.
    pub fn verify_quick(&self, pack: Arc<Pack>, quick: bool) -> Res<Verification> {
        let v = self.paced(quick, |c, call| c.verify_with(pack.core(), call))?;
        Ok(super::uniffi::verification(v))
    }

    /// `recover`, with or without the anonymity delay.
    pub fn recover_quick(
        &self,
        pack: Arc<Pack>,
        codes: Vec<String>,
        quick: bool,
    ) -> Res<RecoveryResult> {
        let r = self.paced(quick, |c, call| c.recover_with(pack.core(), &codes, call))?;
        Ok(super::uniffi::recovery_result(r))
    }

    /// `forget`, with or without the anonymity delay.
    pub fn forget_quick(&self, name: String, local_only: bool, quick: bool) -> Res<u32> {
        let f = self.paced(quick, |c, call| c.forget_with(&name, local_only, call))?;
        Ok(super::uniffi::sat_u32(f.deleted))
    }
}

/// The drop-in's pacing: the anonymity delay for calls that are not
/// `quick`, set per call ([`Client::with_pacing`]), so one call's pacing
/// never leaks into another's, whichever thread makes it.
pub(crate) struct CompatPacing {
    slow: Option<(Duration, Duration)>,
}

impl PasscrowClient {
    fn paced<T>(
        &self,
        quick: bool,
        f: impl FnOnce(&Client, &client::CallOptions) -> crate::Result<T>,
    ) -> Res<T> {
        let c = self.core();
        let Some(cp) = self.compat_pacing() else {
            return Ok(f(c, &client::CallOptions::default())?);
        };
        let call = client::CallOptions {
            pacing: Some(Pacing {
                delay: if quick { None } else { cp.slow },
                ..c.pacing()
            }),
        };
        Ok(f(c, &call)?)
    }
}
