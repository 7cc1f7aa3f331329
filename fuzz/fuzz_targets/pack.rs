//! `pack::RecoveryPack::from_json`: pack files are read from disk and
//! may be corrupted or planted. Invariants: no panic; a pack that parses
//! validates, routes at most MAX_ESCROWS escrows with distinct prefixes,
//! and its `to_json` (the reference layout) parses back to the same JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passcrow::pack::{RecoveryPack, MAX_ESCROWS};

fuzz_target!(|data: &[u8]| {
    let Ok(p) = RecoveryPack::from_json(data, "fuzz pack") else {
        return;
    };
    p.validate("fuzz pack").expect("from_json validated it");
    let routed = p.prefixed_escrows();
    assert!(routed.len() <= MAX_ESCROWS);
    assert!(p.min_shares as usize <= routed.len().max(1));
    let mut prefixes: Vec<char> = routed.iter().map(|(c, _)| *c).collect();
    prefixes.dedup();
    assert_eq!(prefixes.len(), routed.len(), "prefixes are distinct");
    let _ = p.expires_ts();
    let _ = p.is_ephemeral_stub();
    let _ = format!("{p:?}");
    let json = p.to_json();
    let q = RecoveryPack::from_json(json.as_bytes(), "re-serialised pack")
        .expect("a serialised pack parses");
    assert_eq!(q.to_json(), json, "to_json round-trips");
});
