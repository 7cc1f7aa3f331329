//! Recovery policies: who verifies, through which server, how many must.
//!
//! Text forms are python-passcrow's:
//! - identity policy: `ID[, notify=ID][ via SERVER]`
//! - server policy: `KIND[, KIND...] via SERVER`
//! - the defaults file `policy.rc`: `ratio: N/M`, `id: ...`, `server: ...`,
//!   `expiration_days: D`, `timeout_minutes: M`, `#` comments.

use std::fmt;
use std::path::Path;

use crate::pack::MAX_ESCROWS;
use crate::proto::Identity;
use crate::{Error, Result};

/// Default n of n-of-m.
pub const DEFAULT_N: u32 = 3;
/// Default m of n-of-m.
pub const DEFAULT_M: u32 = 4;
/// Default escrow lifetime asked for.
pub const DEFAULT_EXPIRATION_DAYS: u32 = 365;
/// Default lifetime of a verification code.
pub const DEFAULT_TIMEOUT_MINUTES: u32 = 30;

/// One identity that can verify, where, and who to notify.
#[derive(Clone, PartialEq, Eq)]
pub struct IdentityPolicy {
    /// Who gets the code.
    pub id: Identity,
    /// Who is told that recovery was started.
    pub notify: Option<Identity>,
    /// Which server escrows this share.
    pub server: Option<String>,
    /// Code lifetime for this identity, in seconds (else the policy's).
    pub timeout_seconds: Option<u32>,
}

impl fmt::Display for IdentityPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id.as_str())?;
        if let Some(n) = &self.notify {
            write!(f, ", notify={n}")?;
        }
        if let Some(s) = &self.server {
            write!(f, " via {s}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for IdentityPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityPolicy")
            .field("id", &self.id)
            .field("notify", &self.notify)
            .field("server", &self.server)
            .finish()
    }
}

impl IdentityPolicy {
    /// An identity policy with no notify and no server yet.
    pub fn new(id: Identity) -> Self {
        IdentityPolicy {
            id,
            notify: None,
            server: None,
            timeout_seconds: None,
        }
    }

    /// Parse `ID[, notify=ID][ via SERVER]`, filling gaps from `defaults`:
    /// a default entry for the same identity gives its notify and server;
    /// otherwise a server whose kinds cover this identity is chosen from the
    /// defaults' servers, rotating through them so identities spread out.
    /// `notify=-` means "no notification" even when a default has one.
    pub fn parse(text: &str, defaults: Option<&mut Defaults>) -> Result<IdentityPolicy> {
        let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if collapsed.is_empty() {
            return Err(Error::bad_input("an identity policy cannot be empty"));
        }
        let (rest, server) = match collapsed.rsplit_once(" via ") {
            Some((a, s)) => (a.to_string(), Some(s.trim().to_string())),
            None => (collapsed.clone(), None),
        };
        if let Some(s) = &server {
            check_server_name(s)?;
        }
        let (id_txt, notify_txt) = match rest.split_once(", notify=") {
            Some((a, n)) => {
                if n.contains(", notify=") {
                    return Err(Error::bad_input(format!(
                        "{collapsed:?}: only one notify= is allowed"
                    )));
                }
                (a.to_string(), Some(n.trim().to_string()))
            }
            None => (rest, None),
        };
        let id = Identity::parse(&id_txt)
            .map_err(|e| Error::bad_input(format!("in policy {collapsed:?}: {e}")))?;
        let mut p = IdentityPolicy::new(id);
        let explicit_no_notify = notify_txt.as_deref() == Some("-");
        if let Some(n) = notify_txt.filter(|n| n != "-") {
            p.notify =
                Some(Identity::parse(&n).map_err(|e| {
                    Error::bad_input(format!("in policy {collapsed:?}: notify: {e}"))
                })?);
        }
        p.server = server;
        if let Some(d) = defaults {
            let same = d.ids.iter().find(|x| x.id == p.id).cloned();
            if let Some(same) = same {
                if p.notify.is_none() && !explicit_no_notify {
                    p.notify = same.notify;
                }
                if p.server.is_none() {
                    p.server = same.server;
                }
            }
            if p.server.is_none() {
                p.server = d.choose_server(&p);
            }
        }
        Ok(p)
    }

    /// Kinds this policy needs a server to handle.
    fn kinds(&self) -> Vec<&str> {
        let mut k = vec![self.id.kind()];
        if let Some(n) = &self.notify {
            k.push(n.kind());
        }
        k
    }
}

/// Check a server name: `host[:port]` or `http(s)://host[:port]`.
pub fn check_server_name(s: &str) -> Result<()> {
    let host = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"))
        .unwrap_or(s);
    let ok = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b".-:[]_".contains(&c));
    if ok {
        Ok(())
    } else {
        Err(Error::bad_input(format!("{s:?} is not a server name")))
    }
}

/// `KIND[, KIND...] via SERVER`: a server and the identity kinds it serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerChoice {
    /// Kinds served.
    pub kinds: Vec<String>,
    /// The server.
    pub server: String,
}

impl ServerChoice {
    /// Parse `email, tel via server`.
    pub fn parse(text: &str) -> Result<ServerChoice> {
        let (kinds, server) = text.split_once(" via ").ok_or_else(|| {
            Error::bad_input(format!("{text:?}: a server line is KINDS via SERVER"))
        })?;
        let server = server.trim().to_string();
        check_server_name(&server)?;
        let kinds: Vec<String> = kinds
            .replace(' ', "")
            .split(',')
            .filter(|k| !k.is_empty())
            .map(str::to_string)
            .collect();
        if kinds.is_empty() {
            return Err(Error::bad_input(format!("{text:?}: no kinds before via")));
        }
        Ok(ServerChoice { kinds, server })
    }
}

impl fmt::Display for ServerChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} via {}", self.kinds.join(", "), self.server)
    }
}

/// The user's defaults (the contents of `policy.rc`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Defaults {
    /// Default n.
    pub n: u32,
    /// Default m.
    pub m: u32,
    /// Default identities.
    pub ids: Vec<IdentityPolicy>,
    /// Servers to choose from, by kind.
    pub servers: Vec<ServerChoice>,
    /// Escrow lifetime to ask for.
    pub expiration_days: u32,
    /// Code lifetime.
    pub timeout_minutes: u32,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            n: DEFAULT_N,
            m: DEFAULT_M,
            ids: vec![],
            servers: vec![],
            expiration_days: DEFAULT_EXPIRATION_DAYS,
            timeout_minutes: DEFAULT_TIMEOUT_MINUTES,
        }
    }
}

impl Defaults {
    /// Choose a server for `p` from the server list (rotating the chosen
    /// one to the back), or else from the default identities' servers.
    fn choose_server(&mut self, p: &IdentityPolicy) -> Option<String> {
        let need = p.kinds();
        if let Some(i) = self
            .servers
            .iter()
            .position(|s| need.iter().all(|k| s.kinds.iter().any(|x| x == k)))
        {
            let s = self.servers.remove(i);
            let name = s.server.clone();
            self.servers.push(s);
            return Some(name);
        }
        if let Some(i) = self.ids.iter().position(|x| x.server.is_some()) {
            let x = self.ids.remove(i);
            let name = x.server.clone();
            self.ids.push(x);
            return name;
        }
        None
    }

    /// Parse `policy.rc` text. Unknown settings are an error naming the line.
    pub fn parse(text: &str) -> Result<Defaults> {
        let mut d = Defaults::default();
        for (no, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let err = |m: String| Error::bad_input(format!("policy.rc line {}: {m}", no + 1));
            let (op, what) = line
                .split_once(':')
                .ok_or_else(|| err(format!("{line:?} is not `setting: value`")))?;
            let (op, what) = (op.trim(), what.trim());
            let num = |w: &str| {
                w.parse::<u32>()
                    .map_err(|_| err(format!("{op}: {w:?} is not a number")))
            };
            match op {
                "ratio" => {
                    let (n, m) = parse_ratio(what, None).map_err(|e| err(e.to_string()))?;
                    d.n = n;
                    d.m = m;
                }
                "id" => d
                    .ids
                    .push(IdentityPolicy::parse(what, None).map_err(|e| err(e.to_string()))?),
                "server" => d
                    .servers
                    .push(ServerChoice::parse(what).map_err(|e| err(e.to_string()))?),
                "expiration_days" => d.expiration_days = num(what)?.max(1),
                "timeout_minutes" => d.timeout_minutes = num(what)?.max(1),
                _ => return Err(err(format!("unknown setting {op:?}"))),
            }
        }
        Ok(d)
    }

    /// Load `policy.rc`; a missing file gives the built-in defaults.
    pub fn load(path: &Path) -> Result<Defaults> {
        match std::fs::read_to_string(path) {
            Ok(t) => Defaults::parse(&t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Defaults::default()),
            Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
        }
    }

    /// The file text, in the reference's syntax, with our commentary.
    pub fn to_text(&self) -> String {
        let mut t = String::new();
        t.push_str("## Default Passcrow policy ##\n#\n");
        t.push_str("# Applications and the `passcrow` tool fill in what a policy leaves out\n");
        t.push_str("# (ratio, identities, servers, lifetimes) from this file.\n#\n");
        t.push_str("## Your settings ##\n");
        t.push_str(&format!("ratio: {}/{}\n", self.n, self.m));
        for i in &self.ids {
            t.push_str(&format!("id: {i}\n"));
        }
        for s in &self.servers {
            t.push_str(&format!("server: {s}\n"));
        }
        t.push_str(&format!("expiration_days: {}\n", self.expiration_days));
        t.push_str(&format!("timeout_minutes: {}\n", self.timeout_minutes));
        t.push_str(
            "\n## Examples ## (remove the leading # to use one)\n\
             #\n\
             # ratio: N/M asks that N of M identities verify. When the number of\n\
             # identities differs from M, N is scaled to match.\n\
             #ratio: 2/3\n\
             #\n\
             # id: IDENTITY[, notify=IDENTITY][ via SERVER]\n\
             # A bare e-mail address or phone number is fine; notify= names someone\n\
             # told when recovery starts (notify=- for nobody).\n\
             #id: user@example.org\n\
             #id: user@example.org, notify=friend@example.org\n\
             #id: +9995885522 via sms.passcrow.example.org\n\
             #\n\
             # server: KINDS via SERVER picks a server for identities without one.\n\
             # `http://host:port` means plain HTTP (for testing on loopback only).\n\
             #server: email via passcrow-test.mailpile.is\n\
             #server: sms, tel via sms.passcrow.example.org\n\
             #\n\
             #expiration_days: 365   # how long servers should keep the shares\n\
             #timeout_minutes: 30    # how long a verification code lives\n",
        );
        t
    }

    /// Write `policy.rc` atomically (mode 0600).
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::pack::write_atomic(path, self.to_text().as_bytes())
    }
}

/// python-passcrow's ratio rule for `available` identities: one identity
/// is 1/1; a ratio whose m matches is kept; else m = identities and
/// n = round(n*m'/m) (half to even, as Python rounds), at least 1.
pub fn scale_ratio(n: u32, m: u32, available: usize) -> Result<(u32, u32)> {
    if available == 0 {
        return Err(Error::bad_input(
            "the policy has no identities to escrow with",
        ));
    }
    if available == 1 {
        return Ok((1, 1));
    }
    let avail = u32::try_from(available).unwrap_or(u32::MAX);
    if n > 0 && n <= m && m == avail {
        return Ok((n, m));
    }
    if m == 0 {
        return Err(Error::bad_input("ratio N/M needs M >= 1"));
    }
    let adjust = f64::from(avail) / f64::from(m);
    let rn = round_half_even(f64::from(n) * adjust).max(1) as u32;
    Ok((rn.min(avail), avail))
}

/// Parse `N/M` or `N` (then M is `count`).
pub fn parse_ratio(text: &str, count: Option<u32>) -> Result<(u32, u32)> {
    let bad = || Error::bad_input(format!("ratio {text:?} is not N/M"));
    let (n, m) = match text.split_once('/') {
        Some((n, m)) => (
            n.trim().parse::<u32>().map_err(|_| bad())?,
            m.trim().parse::<u32>().map_err(|_| bad())?,
        ),
        None => {
            let n = text.trim().parse::<u32>().map_err(|_| bad())?;
            (n, count.unwrap_or(n))
        }
    };
    if n == 0 || m == 0 || n > m {
        return Err(Error::bad_input(format!(
            "ratio {text:?}: need 1 <= N <= M"
        )));
    }
    Ok((n, m))
}

/// Python's `round()`: halves go to the even neighbour.
fn round_half_even(x: f64) -> i64 {
    let r = x.round();
    if (x - x.trunc()).abs() == 0.5 && (r as i64) % 2 != 0 {
        (r - x.signum()) as i64
    } else {
        r as i64
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_policies() {
        let p =
            IdentityPolicy::parse("  a@b.org,  notify=c@d.org   via  srv.example  ", None).unwrap();
        assert_eq!(p.id.as_str(), "email:a@b.org");
        assert_eq!(p.notify.as_ref().unwrap().as_str(), "email:c@d.org");
        assert_eq!(p.server.as_deref(), Some("srv.example"));
        assert_eq!(
            p.to_string(),
            "email:a@b.org, notify=email:c@d.org via srv.example"
        );
        let p = IdentityPolicy::parse("+3545885522 via http://127.0.0.1:8451", None).unwrap();
        assert_eq!(p.id.kind(), "tel");
        assert!(IdentityPolicy::parse("a@b.org via bad/server", None).is_err());
        assert!(IdentityPolicy::parse("nobody via x", None).is_err());
    }

    #[test]
    fn defaults_fill_and_rotate() {
        let mut d = Defaults::parse(
            "ratio: 2/3\nid: a@b.org, notify=n@b.org via s0\nserver: email via s1\nserver: email, tel via s2 # c\n",
        )
        .unwrap();
        assert_eq!((d.n, d.m), (2, 3));
        let a = IdentityPolicy::parse("a@b.org", Some(&mut d)).unwrap();
        assert_eq!(a.server.as_deref(), Some("s0"));
        assert_eq!(a.notify.as_ref().unwrap().as_str(), "email:n@b.org");
        let a2 = IdentityPolicy::parse("a@b.org, notify=-", Some(&mut d)).unwrap();
        assert!(a2.notify.is_none());
        let x = IdentityPolicy::parse("x@b.org", Some(&mut d)).unwrap();
        let y = IdentityPolicy::parse("y@b.org", Some(&mut d)).unwrap();
        let t = IdentityPolicy::parse("+3545885522", Some(&mut d)).unwrap();
        assert_eq!(x.server.as_deref(), Some("s1"));
        assert_eq!(y.server.as_deref(), Some("s2"));
        assert_eq!(t.server.as_deref(), Some("s2"));
        assert!(x.notify.is_none());
        let again = Defaults::parse(&d.to_text()).unwrap();
        assert_eq!(again.ids.len(), 1);
        assert_eq!(again.servers.len(), 2);
        assert!(Defaults::parse("colour: blue")
            .unwrap_err()
            .to_string()
            .contains("line 1"));
        assert!(Defaults::parse("ratio: 3/2").is_err());
    }

    #[test]
    fn ratios_scale_like_the_reference() {
        let ids = |k: usize| {
            (0..k)
                .map(|i| IdentityPolicy::parse(&format!("u{i}@x.org via s"), None).unwrap())
                .collect::<Vec<_>>()
        };
        let pol = |n, m, k| RecoveryPolicy::new(ids(k), n, m, &Defaults::default());
        assert_eq!(pol(3, 4, 1).absolute_ratio(0).unwrap(), (1, 1));
        assert_eq!(pol(2, 3, 3).absolute_ratio(0).unwrap(), (2, 3));
        assert_eq!(pol(3, 4, 2).absolute_ratio(0).unwrap(), (2, 2)); // round(1.5) = 2
        assert_eq!(pol(3, 4, 6).absolute_ratio(0).unwrap(), (4, 6)); // round(4.5) = 4
        assert_eq!(pol(1, 4, 2).absolute_ratio(0).unwrap(), (1, 2)); // round(0.5) = 0 -> 1
        assert_eq!(pol(2, 3, 4).absolute_ratio(1).unwrap(), (2, 3));
        assert!(pol(2, 3, 1).absolute_ratio(1).is_err());
        assert_eq!(parse_ratio("2", Some(5)).unwrap(), (2, 5));
        assert!(parse_ratio("0/3", None).is_err());
        assert!(parse_ratio("x", None).is_err());
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(s in ".{0,300}") {
            let mut d = Defaults::parse("ratio: 2/3\nid: a@b.org via x.org\nserver: email via y.org\n").unwrap();
            let _ = IdentityPolicy::parse(&s, None);
            let _ = IdentityPolicy::parse(&s, Some(&mut d));
            let _ = ServerChoice::parse(&s);
            let _ = Defaults::parse(&s);
            let _ = parse_ratio(&s, None);
            let _ = parse_ratio(&s, Some(3));
        }
    }
}
