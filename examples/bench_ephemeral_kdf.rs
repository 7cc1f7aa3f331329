//! The ephemeral mode's three scrypt derivations (N=2^20, r=8: 1 GiB each),
//! two at a time against one at a time, alternated in one process.
//!
//!     cargo run --release --example bench_ephemeral_kdf [ROUNDS]
//!
//! Prints one JSON line per round and the medians.
use std::time::Instant;

use passcrow::client::KdfConcurrency;
use passcrow::pack::ephemeral;

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let key = ephemeral::new_user_key();
    let mut two = vec![];
    let mut one = vec![];
    for r in 0..rounds {
        let order = if r % 2 == 0 {
            [KdfConcurrency::TwoAtATime, KdfConcurrency::OneAtATime]
        } else {
            [KdfConcurrency::OneAtATime, KdfConcurrency::TwoAtATime]
        };
        for conc in order {
            let t = Instant::now();
            let keys = ephemeral::all_keys(key.expose_secret(), conc).expect("derive");
            let s = t.elapsed().as_secs_f64();
            drop(keys);
            println!("{{\"round\": {r}, \"mode\": \"{conc:?}\", \"seconds\": {s:.3}}}");
            match conc {
                KdfConcurrency::TwoAtATime => two.push(s),
                KdfConcurrency::OneAtATime => one.push(s),
            }
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (t, o) = (median(&mut two), median(&mut one));
    println!(
        "three derivations: two at a time {t:.2} s, one at a time {o:.2} s, ratio {:.2}",
        t / o
    );
}
