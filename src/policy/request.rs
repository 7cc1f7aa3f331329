//! From what a caller asks for to a policy `protect` can carry out.
//!
//! Every way of making a policy (the CLI's options, the C ABI's numbers,
//! the UniFFI surface, the python-passcrow drop-in) builds a
//! [`PolicyRequest`] and calls [`PolicyRequest::resolve`]: the one place
//! where identities are parsed against the defaults, the ratio is checked
//! and lifetimes are clamped. [`RecoveryPolicy::absolute_ratio`] is the
//! one place where the ratio is scaled to the identities.

use super::{check_ratio, scale_ratio, Defaults, IdentityPolicy};
use crate::pack::MAX_ESCROWS;
use crate::{Error, Result};

/// A policy as a caller asks for it: every gap is filled from the
/// defaults (`policy.rc`, or the built-in ones with `ignore_defaults`).
#[derive(Clone, Debug, Default)]
pub struct PolicyRequest {
    /// Identity policies as text, `ID[, notify=ID][ via SERVER]`. Empty:
    /// the defaults' identities.
    pub identities: Vec<String>,
    /// n of n-of-m. `None` (with `m` `None`): the defaults' ratio.
    pub n: Option<u32>,
    /// m of n-of-m. `None` with `n` given: the number of identities.
    pub m: Option<u32>,
    /// How long servers should keep the shares, in days. `None`: the
    /// defaults'; 0 counts as 1.
    pub expiration_days: Option<u32>,
    /// How long a verification code lives, in minutes. `None`: the
    /// defaults'; 0 counts as 1.
    pub timeout_minutes: Option<u32>,
    /// Use the built-in defaults instead of `policy.rc`'s: no default
    /// identities, servers or notify, so every identity names its server.
    pub ignore_defaults: bool,
}

/// A lifetime a caller asked for, at least 1 (a day, a minute).
pub fn clamp_lifetime(v: u32) -> u32 {
    v.max(1)
}

impl PolicyRequest {
    /// A request for these identities, everything else from the defaults.
    pub fn new<S: AsRef<str>>(identities: &[S]) -> Self {
        PolicyRequest {
            identities: identities.iter().map(|s| s.as_ref().to_string()).collect(),
            ..Default::default()
        }
    }

    /// The same request asking for `n` of `m`.
    pub fn with_ratio(mut self, n: u32, m: u32) -> Self {
        self.n = Some(n);
        self.m = Some(m);
        self
    }

    /// Turn the request into a policy, filling gaps from `defaults` (which
    /// is not changed: python-passcrow's server rotation runs on a copy).
    /// Errors name what was wrong: an identity that does not parse, a ratio
    /// outside `1 <= N <= M`, an identity with no server.
    pub fn resolve(&self, defaults: &Defaults) -> Result<RecoveryPolicy> {
        let builtin = Defaults::default();
        let mut d = if self.ignore_defaults {
            builtin
        } else {
            defaults.clone()
        };
        let texts: Vec<String> = if self.identities.is_empty() {
            d.ids.iter().map(|i| i.to_string()).collect()
        } else {
            self.identities.clone()
        };
        let ids = texts
            .iter()
            .map(|t| IdentityPolicy::parse(t, Some(&mut d)))
            .collect::<Result<Vec<_>>>()?;
        if ids.is_empty() {
            return Err(Error::bad_input(
                "the policy has no identities to escrow with",
            ));
        }
        let count = u32::try_from(ids.len()).unwrap_or(u32::MAX);
        let (n, m) = match (self.n, self.m) {
            (None, None) => (d.n, d.m),
            (Some(n), m) => check_ratio(n, m.unwrap_or(count))?,
            (None, Some(m)) => {
                return Err(Error::bad_input(format!("ratio ?/{m}: m given without n")))
            }
        };
        let policy = RecoveryPolicy {
            ids,
            n,
            m,
            expiration_days: clamp_lifetime(self.expiration_days.unwrap_or(d.expiration_days)),
            timeout_minutes: clamp_lifetime(self.timeout_minutes.unwrap_or(d.timeout_minutes)),
        };
        policy.validate(0)?;
        Ok(policy)
    }
}

/// A complete recovery policy.
#[derive(Clone, Debug)]
pub struct RecoveryPolicy {
    /// Identities, in escrow order (the first holds the ephemeral copy).
    pub ids: Vec<IdentityPolicy>,
    /// n of n-of-m.
    pub n: u32,
    /// m of n-of-m.
    pub m: u32,
    /// Escrow lifetime to ask for.
    pub expiration_days: u32,
    /// Code lifetime (python-passcrow ignores this and always uses 30; we honour it).
    pub timeout_minutes: u32,
}

impl RecoveryPolicy {
    /// A policy from parsed identities and a ratio, lifetimes from `defaults`.
    pub fn new(ids: Vec<IdentityPolicy>, n: u32, m: u32, defaults: &Defaults) -> Self {
        RecoveryPolicy {
            ids,
            n,
            m,
            expiration_days: defaults.expiration_days,
            timeout_minutes: defaults.timeout_minutes,
        }
    }

    /// The n-of-m actually used for the identities available (all but
    /// `reserve`), as the reference scales it: one identity is 1/1; a ratio
    /// whose m matches is kept; else m = identities and n = round(n*m'/m),
    /// at least 1.
    pub fn absolute_ratio(&self, reserve: usize) -> Result<(u32, u32)> {
        scale_ratio(self.n, self.m, self.ids.len().saturating_sub(reserve))
    }

    /// Check the policy can be carried out.
    pub fn validate(&self, reserve: usize) -> Result<()> {
        let (_, m) = self.absolute_ratio(reserve)?;
        if m as usize > MAX_ESCROWS {
            return Err(Error::bad_input(format!(
                "at most {MAX_ESCROWS} identities can hold shares, not {m}"
            )));
        }
        for p in &self.ids {
            if p.server.is_none() {
                return Err(Error::bad_input(format!("no server for {}", p.id)));
            }
            // A delay must have someone to tell, and an app cannot be told.
            if p.delay_seconds.is_some()
                && p.id.kind() == crate::proto::health::TOTP_KIND
                && p.notify.is_none()
            {
                return Err(Error::bad_input(format!(
                    "{}: a release delay needs someone the server can tell, and an \
                     authenticator app cannot be told: add notify=ADDRESS",
                    p.id
                )));
            }
        }
        if self.expiration_days == 0 {
            return Err(Error::bad_input("expiration must be at least one day"));
        }
        if self.timeout_minutes == 0 {
            return Err(Error::bad_input(
                "the code timeout must be at least a minute",
            ));
        }
        Ok(())
    }
}
