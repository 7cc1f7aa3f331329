//! The hints shown for identities (`b*@e*ple.org`, `+35458****2`), as
//! the reference computes them.

use crate::proto::Identity;

/// The e-mail hint of the reference: a third of the user part, `*@`, the
/// first letter of the domain, `*`, its last two thirds (`b*@e*ple.org`);
/// gmail.com and hotmail.com are shown whole.
pub fn email_hint(email: &str) -> String {
    let (user, domain) = email.split_once('@').unwrap_or((email, ""));
    let user = user.rsplit(':').next().unwrap_or(user);
    let uc: Vec<char> = user.chars().collect();
    let u1: String = uc[..(uc.len() / 3).max(1).min(uc.len())].iter().collect();
    let (d1, d2) = if domain == "gmail.com" || domain == "hotmail.com" {
        (String::new(), domain.to_string())
    } else {
        let dc: Vec<char> = domain.chars().collect();
        let n = dc.len();
        let first: String = dc.iter().take(1).collect();
        // Python: domain[-(2*(n-1))//3:], floor division of a negative.
        let keep = (2 * n.saturating_sub(1)).div_ceil(3);
        let tail: String = if keep == 0 || keep >= n {
            domain.to_string()
        } else {
            dc[n - keep..].iter().collect()
        };
        (first, tail)
    };
    format!("{u1}*@{d1}*{d2}")
}

/// Country codes of three digits or more, by their first two digits.
const LONG_COUNTRY_CODES: &[&str] = &[
    "+21", "+22", "+23", "+24", "+25", "+26", "+27", "+29", "+35", "+37", "+38", "+42", "+50",
    "+59", "+67", "+68", "+69", "+80", "+85", "+87", "+88", "+96", "+97", "+99",
];

/// The phone hint of the reference: leading digits and the last one or
/// two, the middle starred (`+35458****2`).
pub fn tel_hint(tel: &str) -> String {
    let c: Vec<char> = tel.chars().collect();
    let n = c.len() as i64;
    let head: String = c.iter().take(3).collect();
    let (l1, l2) = if LONG_COUNTRY_CODES.contains(&head.as_str()) {
        (n / 2 + 1, 1i64)
    } else {
        (n / 3, 2i64)
    };
    let start: String = c.iter().take(l1.max(0) as usize).collect();
    let stars = "*".repeat((n - l1 - l2).max(0) as usize);
    let end: String = c[(n - l2).max(0) as usize..].iter().collect();
    format!("{start}{stars}{end}")
}

/// The hint shown for an identity.
pub fn hint_for(id: &Identity) -> String {
    match id.kind() {
        "email" | "mailto" => email_hint(id.address()),
        "tel" | "sms" => tel_hint(id.address()),
        _ => {
            let a: Vec<char> = id.address().chars().collect();
            let keep = (a.len() / 4).min(4);
            let start: String = a[..keep].iter().collect();
            let end: String = a[a.len() - keep..].iter().collect();
            format!("{}:{start}***{end}", id.kind())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_match_reference() {
        assert_eq!(email_hint("bre@example.org"), "b*@e*ple.org");
        assert_eq!(email_hint("someone@gmail.com"), "so*@*gmail.com");
        assert_eq!(email_hint("a@b.c"), "a*@b*.c");
        assert_eq!(tel_hint("+3545885522"), "+35458****2");
        assert_eq!(tel_hint("+15551234567"), "+155******67");
        assert_eq!(tel_hint("12"), "12");
    }
}
