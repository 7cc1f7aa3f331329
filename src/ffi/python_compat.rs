//! The python-passcrow drop-in's room (feature `python-compat`, enabled
//! only by the Python wheel): what `passcrow.client` in the wheel
//! (`bindings/python/python/passcrow/client.py`, imitating python-passcrow
//! 0.0.7's app API) needs beyond the UniFFI surface every binding has.
//!
//! [`CompatClient`] wraps the same core client as
//! [`super::uniffi::PasscrowClient`] and adds python-passcrow's
//! conventions: an anonymity delay of `sleep_min..sleep_max` seconds slept
//! by the app's `sleep_func` unless a call is `quick` (mapped to
//! [`CallOptions`]), a policy spelt out in full, `policy.rc` loaded on
//! request. The free functions give the drop-in python-passcrow's defaults,
//! directories, policy text parsing with its server rotation, and its ratio
//! rule, so that no protocol or policy logic lives in Python.
//!
//! Nothing in `uniffi.rs` depends on this module. The Kotlin and Swift
//! sources are generated from a library built without this feature (UniFFI
//! library mode exports whatever the cdylib holds), and a test below checks
//! the checked-in ones name nothing from here.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::uniffi::{
    core_client, defaults_from_core, defaults_to_core, CallOptions, DelayRange, EphemeralMode,
    HttpTransport, LogSink, Pack, PackSummary, PasscrowClient, PasscrowError, PolicyDefaults,
    ProtectResult, RecoveryResult, Verification,
};
use crate::client::{self, ClientConfig, ProtectOptions};
use crate::policy::{IdentityPolicy, PolicyRequest, ServerChoice};

type Res<T> = std::result::Result<T, PasscrowError>;

/// python-passcrow's `DEFAULT_SLEEP_MIN`: the shortest anonymity delay, s.
pub const DEFAULT_SLEEP_MIN: u32 = 0;
/// python-passcrow's `DEFAULT_SLEEP_MAX`: the longest anonymity delay, s.
pub const DEFAULT_SLEEP_MAX: u32 = 600;

// -------------------------------------------------------------- defaults

/// python-passcrow 0.0.7's module constants (`DEFAULT_N`, ...), which apps
/// import from `passcrow.client`.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CompatDefaults {
    /// `DEFAULT_N`.
    pub n: u32,
    /// `DEFAULT_M`.
    pub m: u32,
    /// `DEFAULT_EXP_DAYS`.
    pub expiration_days: u32,
    /// `DEFAULT_TMO_MINS`.
    pub timeout_minutes: u32,
    /// `DEFAULT_SLEEP_MIN`.
    pub sleep_min: u32,
    /// `DEFAULT_SLEEP_MAX`.
    pub sleep_max: u32,
    /// `DEFAULT_PACK_DESC`.
    pub pack_description: String,
    /// `DEFAULT_VERIFY_DESC`.
    pub verify_description: String,
}

/// The values of python-passcrow's `DEFAULT_*` constants.
#[uniffi::export]
pub fn compat_defaults() -> CompatDefaults {
    use crate::policy::{DEFAULT_EXPIRATION_DAYS, DEFAULT_M, DEFAULT_N, DEFAULT_TIMEOUT_MINUTES};
    CompatDefaults {
        n: DEFAULT_N,
        m: DEFAULT_M,
        expiration_days: DEFAULT_EXPIRATION_DAYS,
        timeout_minutes: DEFAULT_TIMEOUT_MINUTES,
        sleep_min: DEFAULT_SLEEP_MIN,
        sleep_max: DEFAULT_SLEEP_MAX,
        pack_description: client::DEFAULT_PACK_DESCRIPTION.to_string(),
        verify_description: client::DEFAULT_VERIFY_DESCRIPTION.to_string(),
    }
}

/// A (config, data) directory pair.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CompatDirs {
    /// Where `policy.rc` lives.
    pub config_dir: String,
    /// Where the packs live.
    pub data_dir: String,
}

fn dirs((config, data): (PathBuf, PathBuf)) -> CompatDirs {
    CompatDirs {
        config_dir: config.display().to_string(),
        data_dir: data.display().to_string(),
    }
}

/// python-passcrow's `SHARED_CONFIG_DIR` and `SHARED_DATA_DIR` (appdirs'
/// `user_config_dir('passcrow', roaming=False)` and `user_data_dir`).
#[uniffi::export]
pub fn default_dirs() -> CompatDirs {
    dirs(client::default_dirs())
}

/// The directories a python-passcrow client uses: the ones given (else the
/// defaults), then with `env_override` `PASSCROW_HOME`, `PASSCROW_CONFIG`
/// and `PASSCROW_DATA` over them, in python-passcrow's order.
#[uniffi::export]
pub fn resolve_dirs(
    config_dir: Option<String>,
    data_dir: Option<String>,
    env_override: bool,
) -> CompatDirs {
    dirs(client::resolve_dirs(
        config_dir.map(PathBuf::from),
        data_dir.map(PathBuf::from),
        env_override,
    ))
}

// ---------------------------------------------------------------- policy

/// An identity policy, parsed and normalised.
#[derive(Debug, Clone, uniffi::Record)]
pub struct CompatIdentityPolicy {
    /// `kind:address`.
    pub id: String,
    /// Who is told that recovery started.
    pub notify: Option<String>,
    /// The server chosen (as written, or from the defaults).
    pub server: Option<String>,
    /// python-passcrow's rotation of the defaults' identities, as the new
    /// order of the indices of `defaults.identities` (empty without
    /// defaults): the drop-in reorders its own objects by it.
    pub identity_order: Vec<u32>,
    /// The same for `defaults.servers`.
    pub server_order: Vec<u32>,
}

/// `KINDS via SERVER`.
#[derive(Debug, Clone, uniffi::Record)]
pub struct CompatServerChoice {
    /// Identity kinds the server takes.
    pub kinds: Vec<String>,
    /// The server.
    pub server: String,
}

/// n of m.
#[derive(Debug, Clone, Copy, uniffi::Record)]
pub struct CompatRatio {
    /// Needed.
    pub n: u32,
    /// Made.
    pub m: u32,
}

/// The order of `after` as indices into `before`, when `after` is
/// `before` rearranged (the core's rotation moves one entry to the back;
/// among equal entries the first moves, as the core picks the first
/// match). Anything else maps equal entries in order.
fn new_order<T: PartialEq>(before: &[T], after: &[T]) -> Vec<u32> {
    let idx = |i: usize| u32::try_from(i).unwrap_or(u32::MAX);
    let moved = (0..before.len()).find(|&i| {
        after.len() == before.len()
            && after.last() == Some(&before[i])
            && before[..i] == after[..i]
            && before[i + 1..] == after[i..after.len() - 1]
    });
    if before == after {
        return (0..before.len()).map(idx).collect();
    }
    if let Some(i) = moved {
        return (0..before.len())
            .filter(|&j| j != i)
            .chain(std::iter::once(i))
            .map(idx)
            .collect();
    }
    let mut used = vec![false; before.len()];
    after
        .iter()
        .filter_map(|a| {
            let j = (0..before.len()).find(|&j| !used[j] && &before[j] == a)?;
            used[j] = true;
            Some(idx(j))
        })
        .collect()
}

/// Parse `ID[, notify=ID][ via SERVER]`; with `defaults`, fill in the
/// notify identity and server from them, rotating them as python-passcrow
/// does, and say how they were rotated.
#[uniffi::export]
pub fn parse_identity_policy(
    text: String,
    defaults: Option<PolicyDefaults>,
) -> Res<CompatIdentityPolicy> {
    let before = defaults.as_ref().map(defaults_to_core).transpose()?;
    let mut after = before.clone();
    let p = IdentityPolicy::parse(&text, after.as_mut())?;
    let (identity_order, server_order) = match (&before, &after) {
        (Some(b), Some(a)) => (new_order(&b.ids, &a.ids), new_order(&b.servers, &a.servers)),
        _ => (vec![], vec![]),
    };
    Ok(CompatIdentityPolicy {
        id: p.id.as_str().to_string(),
        notify: p.notify.as_ref().map(|n| n.as_str().to_string()),
        server: p.server.clone(),
        identity_order,
        server_order,
    })
}

/// Parse `KINDS via SERVER`.
#[uniffi::export]
pub fn parse_server_choice(text: String) -> Res<CompatServerChoice> {
    let s = ServerChoice::parse(&text)?;
    Ok(CompatServerChoice {
        kinds: s.kinds,
        server: s.server,
    })
}

/// python-passcrow's ratio rule: n-of-m scaled to the identities available.
#[uniffi::export]
pub fn absolute_ratio(n: u32, m: u32, available: u32) -> Res<CompatRatio> {
    let (n, m) = crate::policy::scale_ratio(n, m, available as usize)?;
    Ok(CompatRatio { n, m })
}

/// The policy of a python-passcrow `protect`: its identities parsed
/// without defaults (each names its server, or the core says which does
/// not) and its lifetimes clamped, by the core's one policy path. The
/// ratio is kept as the app set it: python-passcrow scales any n/m to the
/// identities at protect time (`absolute_ratio`, where 0/3 becomes 1/3)
/// and never refuses one, so it does not go through `check_ratio`.
fn compat_policy(
    identities: Vec<String>,
    n: u32,
    m: u32,
    expiration_days: u32,
    timeout_minutes: u32,
) -> crate::Result<crate::policy::RecoveryPolicy> {
    let request = PolicyRequest {
        identities,
        expiration_days: Some(expiration_days),
        timeout_minutes: Some(timeout_minutes),
        ignore_defaults: true,
        ..Default::default()
    };
    let mut policy = request.resolve(&crate::policy::Defaults::default())?;
    policy.n = n;
    policy.m = m;
    Ok(policy)
}

// ---------------------------------------------------------------- client

/// Sleeps on the app's behalf (python-passcrow's `sleep_func`). Called
/// from worker threads.
#[uniffi::export(with_foreign)]
pub trait CompatSleeper: Send + Sync {
    /// Sleep this many seconds.
    fn sleep(&self, seconds: f64);
}

/// The python-passcrow drop-in's client: [`PasscrowClient`]'s operations
/// with python-passcrow's pacing (`quick`) and policies.
#[derive(uniffi::Object)]
pub struct CompatClient {
    client: PasscrowClient,
    /// The anonymity delay of calls that are not `quick`.
    slow: DelayRange,
}

impl CompatClient {
    /// What a call with this `quick` passes on: no delay when quick, else
    /// the client's `sleep_min..sleep_max`.
    fn options(&self, quick: bool) -> Option<CallOptions> {
        Some(CallOptions {
            anonymity_delay: if quick { None } else { Some(self.slow) },
        })
    }
}

#[uniffi::export]
impl CompatClient {
    /// A client in existing directories, with an anonymity delay of
    /// `sleep_min`..`sleep_max` seconds between requests to a server (for
    /// calls that are not `quick`), slept by `sleeper` (default: the thread
    /// sleeps).
    #[uniffi::constructor(default(
        transport = None,
        log = None,
        sleeper = None,
        sleep_min = 0,
        sleep_max = 600,
        language = "en"
    ))]
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config_dir: String,
        data_dir: String,
        transport: Option<Arc<dyn HttpTransport>>,
        log: Option<Arc<dyn LogSink>>,
        sleeper: Option<Arc<dyn CompatSleeper>>,
        sleep_min: u32,
        sleep_max: u32,
        language: String,
    ) -> Res<Arc<Self>> {
        let mut cfg = ClientConfig::new(PathBuf::from(config_dir), PathBuf::from(data_dir));
        cfg.language = language;
        let mut inner = core_client(cfg, transport, log)?;
        if let Some(s) = sleeper {
            inner.set_sleeper(Arc::new(move |d: Duration| s.sleep(d.as_secs_f64())));
        }
        Ok(Arc::new(CompatClient {
            client: PasscrowClient::from_core(inner),
            slow: DelayRange {
                min_seconds: sleep_min.min(sleep_max),
                max_seconds: sleep_max.max(sleep_min),
            },
        }))
    }

    /// Load `policy.rc` (NotFound when there is none) and use it.
    pub fn load_defaults(&self) -> Res<PolicyDefaults> {
        let c = self.client.core();
        let path = c.defaults_path();
        if !path.is_file() {
            return Err(PasscrowError::NotFound {
                detail: format!("{} does not exist", path.display()),
            });
        }
        Ok(defaults_from_core(&c.load_defaults()?))
    }

    /// Replace the defaults; with `save`, also write `policy.rc`.
    pub fn set_defaults(&self, defaults: PolicyDefaults, save: bool) -> Res<()> {
        self.client.set_defaults(defaults, save)
    }

    /// Every pack, sorted by file name (unreadable ones carry `error`).
    pub fn list(&self) -> Res<Vec<PackSummary>> {
        self.client.list()
    }

    /// Load the pack `name`, or make the stand-in for an ephemeral
    /// recovery id `SERVER:USER_KEY`.
    pub fn pack(&self, name: String) -> Res<Arc<Pack>> {
        self.client.pack(name)
    }

    /// Protect with a policy spelt out: identities as
    /// `ID[, notify=ID] via SERVER`, the ratio (scaled to the identities
    /// as python-passcrow does) and lifetimes. An existing pack of that
    /// name is replaced, its old escrows deleted after the new pack is
    /// written. Ephemeral protection needs 2 identities (BadInput).
    /// `quick` skips the anonymity delay.
    #[allow(clippy::too_many_arguments)]
    pub fn protect(
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
        let c = self.client.core();
        let call = self.options(quick).unwrap_or_default().to_core(c)?;
        let policy = compat_policy(identities, n, m, expiration_days, timeout_minutes)?;
        let opts = ProtectOptions {
            ephemeral: ephemeral.into(),
            replace: true,
            pack_description,
            verify_description,
        };
        let p = c.protect_with(&name, secret.expose_secret(), &policy, &opts, &call)?;
        Ok(super::uniffi::protect_result(p))
    }

    /// `verify`, with or without the anonymity delay.
    pub fn verify(&self, pack: Arc<Pack>, quick: bool) -> Res<Verification> {
        self.client.verify(pack, self.options(quick))
    }

    /// `recover`, with or without the anonymity delay.
    pub fn recover(&self, pack: Arc<Pack>, codes: Vec<String>, quick: bool) -> Res<RecoveryResult> {
        self.client.recover(pack, codes, self.options(quick))
    }

    /// `forget`, with or without the anonymity delay.
    pub fn forget(&self, name: String, local_only: bool, quick: bool) -> Res<u32> {
        self.client.forget(name, local_only, self.options(quick))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_python_passcrows() {
        let d = compat_defaults();
        assert_eq!(
            (d.n, d.m, d.expiration_days, d.timeout_minutes),
            (3, 4, 365, 30)
        );
        assert_eq!((d.sleep_min, d.sleep_max), (0, 600));
        assert_eq!(d.pack_description, "Created using python Passcrow");
        assert_eq!(d.verify_description, "Passcrow Data");
    }

    #[test]
    fn rotation_comes_back_as_an_order() {
        assert_eq!(new_order(&[1, 2, 3], &[1, 2, 3]), vec![0, 1, 2]);
        assert_eq!(new_order(&[1, 2, 3], &[2, 3, 1]), vec![1, 2, 0]);
        assert_eq!(new_order(&[1, 2, 3], &[1, 3, 2]), vec![0, 2, 1]);
        // Equal entries: the first of them moved (the core's choice).
        assert_eq!(new_order(&[7, 2, 7], &[2, 7, 7]), vec![1, 2, 0]);
        assert_eq!(new_order::<u8>(&[], &[]), Vec::<u32>::new());

        let defaults = PolicyDefaults {
            n: 2,
            m: 3,
            identities: vec![],
            servers: vec!["email via a.example".into(), "email via b.example".into()],
            expiration_days: 1,
            timeout_minutes: 30,
        };
        let p = parse_identity_policy("x@example.org".into(), Some(defaults.clone())).unwrap();
        assert_eq!(p.id, "email:x@example.org");
        assert_eq!(p.server.as_deref(), Some("a.example"));
        assert_eq!((p.identity_order, p.server_order), (vec![], vec![1, 0]));
        let p =
            parse_identity_policy("x@example.org via c.example".into(), Some(defaults)).unwrap();
        assert_eq!(p.server_order, vec![0, 1]);
        let p = parse_identity_policy("x@example.org".into(), None).unwrap();
        assert!(p.server.is_none() && p.server_order.is_empty());
    }

    #[test]
    fn protect_policy_keeps_python_passcrows_ratio_and_needs_servers() {
        let ids = vec![
            "a@example.org via s".to_string(),
            "b@example.org via s".into(),
        ];
        let p = compat_policy(ids.clone(), 0, 3, 0, 0).unwrap();
        assert_eq!(
            (p.n, p.m, p.expiration_days, p.timeout_minutes),
            (0, 3, 1, 1)
        );
        assert_eq!(p.absolute_ratio(0).unwrap(), (1, 2));
        let no_server = compat_policy(vec!["a@example.org".into()], 1, 1, 1, 1);
        assert!(matches!(no_server, Err(crate::Error::BadInput(_))));
    }

    /// Nothing of the drop-in reaches the Kotlin and Swift APIs: the
    /// checked-in sources (scripts/test.d/30-bindings.sh checks they are
    /// what the library without `python-compat` generates) name none of it.
    #[test]
    fn kotlin_and_swift_know_nothing_of_the_drop_in() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let files = [
            "bindings/kotlin/src/main/kotlin/uniffi/passcrow/passcrow.kt",
            "bindings/swift/Sources/Passcrow/passcrow.swift",
            "bindings/swift/Headers/passcrowFFI.h",
        ];
        for f in files {
            let text = std::fs::read_to_string(root.join(f)).unwrap();
            let found = drop_in_names(&text);
            assert!(found.is_empty(), "{f} names the drop-in: {found:?}");
        }
        // The check itself catches them.
        assert_eq!(
            drop_in_names("fun verifyQuick(); class CompatClient; // compatible"),
            ["verifyQuick", "compat"]
        );
    }

    /// The drop-in's names (as Kotlin and Swift spell them) found in `text`;
    /// `compat` in any case and position, except in `compatible`.
    fn drop_in_names(text: &str) -> Vec<&'static str> {
        const NAMES: &[&str] = &[
            "protectPolicy",
            "verifyQuick",
            "recoverQuick",
            "forgetQuick",
            "loadDefaults",
            "parseIdentityPolicy",
            "parseServerChoice",
            "absoluteRatio",
            "defaultDirectory",
            "defaultDirs",
            "resolveDirs",
            "Sleeper",
            "sleepMin",
            "sleepMax",
            "identityOrder",
            "serverOrder",
        ];
        let mut found: Vec<&'static str> =
            NAMES.iter().copied().filter(|n| text.contains(n)).collect();
        let lower = text.to_ascii_lowercase();
        if lower
            .match_indices("compat")
            .any(|(i, _)| !lower[i..].starts_with("compatible"))
        {
            found.push("compat");
        }
        found
    }
}
