//! The protocol's methods (`/passcrow/METHOD`) and their names.

use super::{ApiError, ErrorKind};

/// A protocol method, as named by `/passcrow/METHOD`.
///
/// [`Method::from_name`] accepts the canonical names and the seed
/// document's aliases; [`Method::as_str`] gives the canonical name (used
/// in logs and in the `stats` counters).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// `policy`: what this server offers.
    Policy,
    /// `stats`: counters and storage figures.
    Stats,
    /// `escrowrequest` (alias `protect`): store an escrow.
    Escrow,
    /// `verificationrequest` (alias `verify`): send a verification code.
    Verification,
    /// `recoveryrequest` (alias `recover`): trade a code for the secret.
    Recovery,
    /// `deletionrequest` (alias `delete`): remove an escrow.
    Deletion,
    /// `extensions` (ours): the extension methods, kinds and options we
    /// offer beyond python-passcrow's protocol.
    Extensions,
    /// `status` (ours): is an escrow held and intact (a keyed digest
    /// under the caller's challenge), without sending a code.
    Status,
}

impl Method {
    /// Every method, in the order above.
    pub const ALL: [Method; 8] = [
        Method::Policy,
        Method::Stats,
        Method::Escrow,
        Method::Verification,
        Method::Recovery,
        Method::Deletion,
        Method::Extensions,
        Method::Status,
    ];

    /// The method `name` stands for: a canonical name or one of the
    /// aliases `protect`, `verify`, `recover`, `delete`. Exact match only
    /// (no case folding, no trimming).
    pub fn from_name(name: &str) -> Option<Method> {
        Some(match name {
            "policy" => Method::Policy,
            "stats" => Method::Stats,
            "escrowrequest" | "protect" => Method::Escrow,
            "verificationrequest" | "verify" => Method::Verification,
            "recoveryrequest" | "recover" => Method::Recovery,
            "deletionrequest" | "delete" => Method::Deletion,
            "extensions" => Method::Extensions,
            "status" => Method::Status,
            _ => return None,
        })
    }

    /// The canonical name (`escrowrequest`, not `protect`).
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Policy => "policy",
            Method::Stats => "stats",
            Method::Escrow => "escrowrequest",
            Method::Verification => "verificationrequest",
            Method::Recovery => "recoveryrequest",
            Method::Deletion => "deletionrequest",
            Method::Extensions => "extensions",
            Method::Status => "status",
        }
    }

    /// True for the methods that may be asked with `GET` (they read only
    /// and take no body).
    pub fn allows_get(self) -> bool {
        match self {
            Method::Policy | Method::Stats | Method::Extensions => true,
            Method::Escrow
            | Method::Verification
            | Method::Recovery
            | Method::Deletion
            | Method::Status => false,
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The canonical method name for `name` (the seed document's aliases
/// `protect`, `verify`, `recover`, `delete` included); see
/// [`Method::from_name`].
pub fn canonical_method(name: &str) -> Option<&'static str> {
    Method::from_name(name).map(Method::as_str)
}

/// The answer to a method name that is none of ours: the name is quoted
/// only when short and plain.
pub(crate) fn unsupported(name: &str) -> ApiError {
    let shown: String = if name.len() <= 40
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        name.to_string()
    } else {
        "(unreadable)".into()
    };
    ApiError::new(ErrorKind::Unsupported, format!("Unsupported: {shown}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases() {
        for m in Method::ALL {
            assert_eq!(Method::from_name(m.as_str()), Some(m));
        }
        for (alias, m) in [
            ("protect", Method::Escrow),
            ("verify", Method::Verification),
            ("recover", Method::Recovery),
            ("delete", Method::Deletion),
        ] {
            assert_eq!(Method::from_name(alias), Some(m));
        }
        for bad in ["", "Policy", "escrow", "deletion", " policy", "nope"] {
            assert_eq!(Method::from_name(bad), None, "{bad:?}");
        }
        assert!(Method::Policy.allows_get() && Method::Stats.allows_get());
        assert!(!Method::Deletion.allows_get());
    }
}
