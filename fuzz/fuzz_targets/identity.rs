//! `proto::Identity::parse` (and its serde form): identities come from the
//! user, from policy.rc, from packs and, on the server, from decrypted
//! escrow data. Invariants: no panic; the normalised form parses to
//! itself; `kind:address` rebuilds it; the JSON form round-trips; the
//! server's masked hint of it does not panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passcrow::proto::Identity;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<Identity>(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(id) = Identity::parse(text) else {
        return;
    };
    let again = Identity::parse(id.as_str()).expect("a normalised identity parses");
    assert_eq!(again.as_str(), id.as_str(), "normalisation is idempotent");
    assert_eq!(format!("{}:{}", id.kind(), id.address()), id.as_str());
    assert_eq!(id.to_string(), id.as_str());
    let _ = format!("{id:?}");
    let json = serde_json::to_string(&id).unwrap();
    let back: Identity = serde_json::from_str(&json).expect("serialised identity parses");
    assert_eq!(back.as_str(), id.as_str());
    let _ = passcrow::server::hint_for(&id);
    let _ = passcrow::server::email_hint(id.address());
    let _ = passcrow::server::tel_hint(id.address());
});
