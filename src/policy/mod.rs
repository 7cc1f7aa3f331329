//! Recovery policies: who verifies, through which server, how many must.
//!
//! Text forms are python-passcrow's:
//! - identity policy: `ID[, notify=ID][ via SERVER]`; ours also takes
//!   `totp:LABEL` as ID (an authenticator app, on servers that list the
//!   `totp` extension) and `, delay=48h` (a release delay its owner can
//!   stop, on servers that list the `delay` escrow option)
//! - server policy: `KIND[, KIND...] via SERVER`
//! - the defaults file `policy.rc`: `ratio: N/M`, `id: ...`, `server: ...`,
//!   `expiration_days: D`, `timeout_minutes: M`, `#` comments.

mod defaults;
mod ratio;
mod request;

pub use defaults::Defaults;
pub use ratio::{check_ratio, parse_ratio, scale_ratio};
pub use request::{clamp_lifetime, PolicyRequest, RecoveryPolicy};

use std::fmt;

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
    /// Release delay in seconds (`delay=48h`): the server releases the
    /// share that long after the right code, telling every identity,
    /// unless one of them stops it.
    pub delay_seconds: Option<u32>,
}

/// Longest release delay a policy may ask for (a server may offer less).
pub const MAX_DELAY_SECONDS: u32 = 366 * 86400;

/// Parse a delay: a number and a unit, `s`, `m`, `h` or `d` (`48h`,
/// `2d`, `90m`), 1 second to [`MAX_DELAY_SECONDS`].
pub fn parse_delay(text: &str) -> Result<u32> {
    let t = text.trim();
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let mult: u64 = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => {
            return Err(Error::bad_input(format!(
                "delay={t:?}: want a number and a unit, s, m, h or d (delay=48h)"
            )))
        }
    };
    let n: u64 = num
        .parse()
        .map_err(|_| Error::bad_input(format!("delay={t:?}: want a number before the unit")))?;
    let secs = n.saturating_mul(mult);
    if secs == 0 || secs > u64::from(MAX_DELAY_SECONDS) {
        return Err(Error::bad_input(format!(
            "delay={t:?}: a delay is 1 second to 366 days"
        )));
    }
    Ok(secs as u32)
}

/// A delay as `parse_delay` reads it, in its largest exact unit.
fn delay_text(secs: u32) -> String {
    for (unit, n) in [("d", 86400), ("h", 3600), ("m", 60)] {
        if secs % n == 0 {
            return format!("{}{unit}", secs / n);
        }
    }
    format!("{secs}s")
}

impl fmt::Display for IdentityPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id.as_str())?;
        if let Some(n) = &self.notify {
            write!(f, ", notify={n}")?;
        }
        if let Some(d) = self.delay_seconds {
            write!(f, ", delay={}", delay_text(d))?;
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
            .field("delay_seconds", &self.delay_seconds)
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
            delay_seconds: None,
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
        // `, delay=D` may stand before or after `, notify=ID`.
        let (rest, delay) = match rest.find(", delay=") {
            Some(i) => {
                let after = &rest[i + ", delay=".len()..];
                let end = after.find(", ").unwrap_or(after.len());
                let d = parse_delay(&after[..end])
                    .map_err(|e| Error::bad_input(format!("in policy {collapsed:?}: {e}")))?;
                let kept = format!("{}{}", &rest[..i], &after[end..]);
                if kept.contains(", delay=") {
                    return Err(Error::bad_input(format!(
                        "{collapsed:?}: only one delay= is allowed"
                    )));
                }
                (kept, Some(d))
            }
            None => (rest, None),
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
            let n = Identity::parse(&n)
                .map_err(|e| Error::bad_input(format!("in policy {collapsed:?}: notify: {e}")))?;
            if n.kind() == crate::proto::health::TOTP_KIND {
                return Err(Error::bad_input(format!(
                    "in policy {collapsed:?}: notify= must be someone a message can reach \
                     (an e-mail address or a phone), not an authenticator app"
                )));
            }
            p.notify = Some(n);
        }
        p.server = server;
        p.delay_seconds = delay;
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
        // Kinds are protocol names (`email`, `tel`, `sms`, `totp`): one
        // with other characters matches no identity, and could hold a
        // second " via " once written back.
        if let Some(bad) = kinds.iter().find(|k| {
            k.len() > 32
                || !k
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        }) {
            return Err(Error::bad_input(format!(
                "{text:?}: {bad:?} is not an identity kind (such as email, tel, sms or totp)"
            )));
        }
        Ok(ServerChoice { kinds, server })
    }
}

impl fmt::Display for ServerChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} via {}", self.kinds.join(", "), self.server)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_lines_take_only_kind_names() {
        let s = ServerChoice::parse("email, tel via srv.example").unwrap();
        assert_eq!(s.to_string(), "email, tel via srv.example");
        // Found by the policy_text fuzz target: a "kind" ending in "via"
        // wrote back as a line with another server.
        let e = ServerChoice::parse("a@b.org via, via, via srv.example").unwrap_err();
        assert!(e.to_string().contains("is not an identity kind"), "{e}");
        assert!(ServerChoice::parse("e-mail_2 via srv.example").is_ok());
    }

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
        let t = IdentityPolicy::parse("totp:phone, notify=a@b.org via srv", None).unwrap();
        assert_eq!(t.id.kind(), "totp");
        let e = IdentityPolicy::parse("a@b.org, notify=totp:phone via srv", None).unwrap_err();
        assert!(e.to_string().contains("authenticator"), "{e}");
        let d = IdentityPolicy::parse("a@b.org, delay=48h, notify=c@d.org via srv", None).unwrap();
        assert_eq!(d.delay_seconds, Some(48 * 3600));
        assert_eq!(d.notify.as_ref().unwrap().as_str(), "email:c@d.org");
        assert_eq!(
            d.to_string(),
            "email:a@b.org, notify=email:c@d.org, delay=2d via srv"
        );
        let d = IdentityPolicy::parse(&d.to_string(), None).unwrap();
        assert_eq!(d.delay_seconds, Some(2 * 86400));
        assert_eq!(parse_delay("90m").unwrap(), 5400);
        for bad in [
            "",
            "0h",
            "48",
            "h",
            "3w",
            "367d",
            "-1h",
            "99999999999999999999d",
        ] {
            assert!(parse_delay(bad).is_err(), "{bad}");
        }
        assert!(IdentityPolicy::parse("a@b.org, delay=1h, delay=2h via s", None).is_err());
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
