//! The policy texts a user or an app hands the client: `policy.rc`
//! (`Defaults::parse`), identity policies (`IdentityPolicy::parse`, with
//! and without defaults), server lines (`ServerChoice::parse`), ratios
//! (`parse_ratio`) and whole requests (`PolicyRequest::resolve`).
//!
//! Input: `RC \0 LINES` (without a NUL, all of it is both). Invariants: no
//! panic; `Defaults` round-trip through `to_text`; a parsed identity
//! policy's Display parses back to it; a server line's Display parses back
//! to it; a parsed ratio has 1 <= n <= m; a resolved policy validates and
//! names a server for every identity.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passcrow::policy::{parse_ratio, Defaults, IdentityPolicy, PolicyRequest, ServerChoice};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (rc, lines) = text.split_once('\0').unwrap_or((text, text));

    let defaults = match Defaults::parse(rc) {
        Ok(d) => {
            let again = Defaults::parse(&d.to_text()).expect("to_text parses");
            assert_eq!(again, d, "policy.rc round-trips through to_text");
            d
        }
        Err(_) => Defaults::default(),
    };

    for line in lines.lines().take(8) {
        if let Ok(p) = IdentityPolicy::parse(line, None) {
            let shown = p.to_string();
            let q = IdentityPolicy::parse(&shown, None).expect("Display parses");
            assert_eq!(q, p, "identity policy round-trips through Display");
        }
        let mut d = defaults.clone();
        let _ = IdentityPolicy::parse(line, Some(&mut d));
        if let Ok(s) = ServerChoice::parse(line) {
            let q = ServerChoice::parse(&s.to_string()).expect("Display parses");
            assert_eq!(q, s, "server line round-trips through Display");
        }
        for count in [None, Some(1), Some(line.len() as u32)] {
            if let Ok((n, m)) = parse_ratio(line, count) {
                assert!(1 <= n && n <= m, "ratio {n}/{m}");
            }
        }
    }

    let ids: Vec<&str> = lines.lines().skip(1).take(40).collect();
    let mut req = PolicyRequest::new(&ids);
    if let Some(first) = lines.lines().next() {
        if let Ok((n, m)) = parse_ratio(first, None) {
            req = req.with_ratio(n, m);
        }
    }
    for ignore in [false, true] {
        req.ignore_defaults = ignore;
        if let Ok(p) = req.resolve(&defaults) {
            p.validate(0).expect("a resolved policy validates");
            assert!(p.ids.iter().all(|i| i.server.is_some()));
            let _ = p.absolute_ratio(1);
        }
    }
});
