//! What `pack::ephemeral::open_pack` parses once AES-GCM has opened the
//! blob: a zlib stream (at most 1 MiB inflated) holding pack JSON. The
//! fuzz input is sealed under a fixed key (`testing::seal_with_nonce`), so
//! the decryption always succeeds and the fuzzer works on what is behind
//! it. First byte even: the rest is the zlib stream itself (inflate is
//! fuzzed); odd: the rest is pack JSON, compressed here first (the JSON
//! checks behind inflate are fuzzed). Invariants: no panic; a pack that
//! opens re-seals (`seal_pack`) and re-opens to the same JSON.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use passcrow::pack::ephemeral::{open_pack, seal_pack};
use passcrow::testing::seal_with_nonce;
use passcrow::Key32;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let key = Key32::from_bytes([7u8; 32]);
    let z = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(rest).unwrap();
        enc.finish().unwrap()
    };
    let Ok(blob) = seal_with_nonce(&key, &[9u8; 16], &z) else {
        return;
    };
    let Ok(p) = open_pack(&blob, &key) else {
        return;
    };
    let json = p.to_json();
    let again = seal_pack(&p, &key).expect("an opened pack seals");
    let q = open_pack(&again, &key).expect("a sealed pack opens");
    assert_eq!(q.to_json(), json, "seal_pack/open_pack round-trips");
});
