//! Identities: `kind:address`, normalised and checked as the reference
//! does, and the words the reference shows for each kind.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Error, Result};

/// The kinds python-passcrow can verify, with the words it shows users.
pub fn explain_kind(kind: &str) -> &str {
    match kind {
        "email" | "mailto" => "e-mail to",
        "tel" => "SMS or a phone call to",
        "sms" => "SMS to",
        "totp" => "authenticator app",
        other => other,
    }
}

/// Longest label of a `totp:LABEL` identity (the account name shown in
/// the authenticator app).
pub const MAX_TOTP_LABEL_CHARS: usize = 64;

/// An identity a code can be sent to: `kind:address`.
///
/// Bare e-mail addresses become `email:`, bare phone numbers `tel:`, as in
/// the reference. `email`/`mailto` and `tel`/`sms` addresses are checked
/// the way the reference checks them; other kinds need a plain kind name
/// and a non-empty address.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identity(String);

/// The reference's phone pattern `^\+?(\d[- ]?)+\d\d$`, without a regex engine.
fn is_phone(s: &str) -> bool {
    let s = s.strip_prefix('+').unwrap_or(s);
    let b = s.as_bytes();
    if b.len() < 3 || !b[0].is_ascii_digit() {
        return false;
    }
    let n = b.len();
    if !b[n - 1].is_ascii_digit() || !b[n - 2].is_ascii_digit() {
        return false;
    }
    let mut digits = 0;
    let mut prev_sep = false;
    for &c in b {
        match c {
            b'0'..=b'9' => {
                digits += 1;
                prev_sep = false;
            }
            b'-' | b' ' => {
                if prev_sep {
                    return false;
                }
                prev_sep = true;
            }
            _ => return false,
        }
    }
    digits >= 3
}

/// The reference's weak e-mail pattern `^\S+@[A-Za-z0-9][A-Za-z0-9-\.]*[A-Za-z0-9]$`.
fn is_email(s: &str) -> bool {
    let Some(at) = s.rfind('@') else {
        return false;
    };
    let (user, domain) = (&s[..at], &s[at + 1..]);
    if user.is_empty() || user.chars().any(char::is_whitespace) {
        return false;
    }
    let d = domain.as_bytes();
    if d.len() < 2 {
        return false;
    }
    let edge = |c: u8| c.is_ascii_alphanumeric();
    edge(d[0])
        && edge(d[d.len() - 1])
        && d.iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.')
}

impl Identity {
    /// Parse and normalise an identity.
    pub fn parse(text: &str) -> Result<Identity> {
        let t = text.trim();
        let full = if t.contains(':') {
            t.to_string()
        } else if t.contains('@') {
            format!("email:{t}")
        } else if t.len() < 25 && is_phone(t) {
            format!("tel:{t}")
        } else {
            return Err(Error::bad_input(format!(
                "{t:?} is not an identity (want an e-mail address, a phone number or kind:address)"
            )));
        };
        let (kind, addr) = full.split_once(':').unwrap_or(("", ""));
        let kind_ok = !kind.is_empty()
            && kind.len() <= 32
            && kind.as_bytes()[0].is_ascii_lowercase()
            && kind
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"+.-".contains(&c));
        if !kind_ok {
            return Err(Error::bad_input(format!(
                "{full:?}: identity kind {kind:?} is not a plain lower-case name"
            )));
        }
        if addr.is_empty() || addr.chars().any(char::is_control) || full.len() > 320 {
            return Err(Error::bad_input(format!(
                "{kind}: identity address is empty, too long or contains control characters"
            )));
        }
        match kind {
            "email" | "mailto" if !is_email(addr) => {
                return Err(Error::bad_input(format!(
                    "{full:?} does not look like an e-mail address"
                )))
            }
            "tel" | "sms" if full.len() > 24 || !is_phone(addr) => {
                return Err(Error::bad_input(format!(
                    "{full:?}: phone numbers should be digits, dashes and spaces"
                )))
            }
            "totp" if addr.chars().count() > MAX_TOTP_LABEL_CHARS => {
                return Err(Error::bad_input(format!(
                    "totp: the label (the name shown in the authenticator app) is longer \
                     than {MAX_TOTP_LABEL_CHARS} characters"
                )))
            }
            _ => {}
        }
        Ok(Identity(full))
    }

    /// The kind (`email`, `tel`, ...).
    pub fn kind(&self) -> &str {
        self.0.split_once(':').map(|x| x.0).unwrap_or("")
    }

    /// The address part.
    pub fn address(&self) -> &str {
        self.0.split_once(':').map(|x| x.1).unwrap_or("")
    }

    /// The full `kind:address` text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Identities are personal data: Debug shows the kind and a masked address.
impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = self.address();
        let first: String = a.chars().take(1).collect();
        write!(f, "Identity({}:{}***)", self.kind(), first)
    }
}

impl std::str::FromStr for Identity {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Identity::parse(s)
    }
}

impl Serialize for Identity {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Identity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Identity::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_normalise() {
        assert_eq!(
            Identity::parse("bre@example.org").unwrap().as_str(),
            "email:bre@example.org"
        );
        assert_eq!(
            Identity::parse("+354 588-5522").unwrap().as_str(),
            "tel:+354 588-5522"
        );
        assert_eq!(Identity::parse("mailto:a@b.cd").unwrap().kind(), "mailto");
        assert_eq!(
            Identity::parse("signal:+3545885522").unwrap().kind(),
            "signal"
        );
        for bad in [
            "",
            "12",
            "nobody",
            "email:nobody",
            "email:a@b",
            "tel:abc",
            "Email:a@b.cd",
            ":x",
            "x:",
            "tel:+1234567890123456789012",
        ] {
            assert!(Identity::parse(bad).is_err(), "{bad}");
        }
        assert!(is_phone("1-23") && is_phone("123") && !is_phone("12-3") && !is_phone("1--23"));
        assert!(
            !format!("{:?}", Identity::parse("secret@example.org").unwrap()).contains("secret")
        );
        let t = Identity::parse("totp:my phone").unwrap();
        assert_eq!((t.kind(), t.address()), ("totp", "my phone"));
        assert!(Identity::parse(&format!("totp:{}", "x".repeat(65))).is_err());
        assert!(Identity::parse("totp:").is_err());
    }
}
