//! Escrow ids: `EXPIRATION-KEY` as we hand them out (both parts lower-case
//! hex), or a bare `KEY` for a preferred id. Storage knows escrows only by
//! a keyed hash of KEY (a `StoredId`, see `seal.rs`), and logs show only
//! the first digits of that hash: neither the database nor a log line
//! names an escrow.

use super::answer::{ApiError, ApiResult, ErrorKind};

/// A parsed escrow id: the storage key (the part after the last dash) and
/// the expiration prefix, if any.
pub(crate) fn parse_id(id: &str) -> ApiResult<(String, Option<i64>)> {
    let id = id.trim();
    let (prefix, key) = match id.rsplit_once('-') {
        Some((p, k)) => (Some(p), k),
        None => (None, id),
    };
    let hex = |s: &str| !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
    if !hex(key) || prefix.is_some_and(|p| !hex(p) || p.len() > 15) {
        return Err(ApiError::new(
            ErrorKind::NotFound,
            "Not found: invalid escrow-data-id",
        ));
    }
    let exp = prefix.and_then(|p| i64::from_str_radix(p, 16).ok());
    Ok((key.to_ascii_lowercase(), exp))
}

#[cfg(test)]
mod tests {
    use super::super::canonical_method;
    use super::*;

    #[test]
    fn ids() {
        assert_eq!(parse_id("6a-00ff").unwrap(), ("00ff".into(), Some(0x6a)));
        assert_eq!(parse_id("ABC").unwrap(), ("abc".into(), None));
        assert!(parse_id("x-").is_err());
        assert!(parse_id("../etc").is_err());
        assert_eq!(canonical_method("protect"), Some("escrowrequest"));
        assert_eq!(canonical_method("nope"), None);
    }
}
