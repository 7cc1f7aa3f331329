//! Shamir shares (`X-Y` hex, over 2^521-1) as they come back from servers
//! and out of packs: `testing::shamir::combine` on 1..4 share strings,
//! the input split at newlines. Invariants: no panic; combining is
//! order-independent when it succeeds (Lagrange interpolation at 0); and
//! when the input is at least 33 bytes, its first 32 bytes split into
//! shares that any threshold of them combine back to.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passcrow::testing::shamir::{combine, split};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let shares: Vec<&str> = text.split('\n').take(4).collect();
    if let Ok(k) = combine(&shares) {
        let mut rev = shares.clone();
        rev.reverse();
        let k2 = combine(&rev).expect("the same shares in another order combine");
        assert!(k.ct_eq(&k2), "order-independent");
    }

    if data.len() >= 33 {
        let mut secret = [0u8; 32];
        secret.copy_from_slice(&data[1..33]);
        let threshold = 1 + (data[0] & 3) as usize;
        let n = threshold + ((data[0] >> 2) & 3) as usize;
        let all = split(&secret, threshold, n).expect("split");
        assert_eq!(all.len(), n);
        let start = (data[0] >> 4) as usize % (n - threshold + 1);
        let some: Vec<&str> = all[start..start + threshold]
            .iter()
            .map(|s| s.expose_secret())
            .collect();
        let k = combine(&some).expect("a threshold of shares combines");
        assert_eq!(k.expose_secret(), &secret, "split/combine round-trips");
    }
});
