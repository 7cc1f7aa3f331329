#!/usr/bin/env bash
# The scrypt core we use (RustCrypto scrypt 0.11.0) against the next
# release (0.12.0, 2026-04-22: "SSE2/simd128 RoMix data layout
# optimization"), at the two parameter sets we run: the ephemeral KDF
# (N=2^20, r=8, p=1: 1 GiB) and hashcash (N=2^8, r=8, p=1). One process
# alternates the two crates, round after round (ratios; this machine is
# shared), and checks that they derive the same bytes. Built in a
# throwaway crate under target/, so neither version enters our Cargo.lock.
#
# Usage: scripts/bench-scrypt-versions.sh [ROUNDS]     (default 3)
#   BENCH_NATIVE=1   build with -C target-cpu=native (AVX2/AVX-512 here)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
dir=${CARGO_TARGET_DIR:-target}/scrypt-versions
mkdir -p "$dir/src"
cat >"$dir/Cargo.toml" <<'TOML'
[package]
name = "scrypt-versions"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
scrypt011 = { package = "scrypt", version = "=0.11.0", default-features = false }
scrypt012 = { package = "scrypt", version = "=0.12.0", default-features = false }

[profile.release]
codegen-units = 1

[workspace]
TOML
cat >"$dir/src/main.rs" <<'RS'
use std::time::Instant;

fn old(log_n: u8, pw: &[u8], out: &mut [u8; 32]) {
    let p = scrypt011::Params::new(log_n, 8, 1, 32).unwrap();
    scrypt011::scrypt(pw, b"passcrow-bench", &p, out).unwrap();
}

fn new(log_n: u8, pw: &[u8], out: &mut [u8; 32]) {
    let p = scrypt012::Params::new(log_n, 8, 1).unwrap();
    scrypt012::scrypt(pw, b"passcrow-bench", &p, out).unwrap();
}

fn main() {
    let rounds: u32 = std::env::args().nth(1).unwrap().parse().unwrap();
    println!("| parameters | round | 0.11.0 | 0.12.0 | 0.12.0 / 0.11.0 |");
    println!("|---|---|---|---|---|");
    for (log_n, calls, what) in [(20u8, 1u32, "N=2^20 r=8 (ephemeral KDF)"), (8, 3000, "N=2^8 r=8 (hashcash), 3000 calls")] {
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        old(log_n, b"check", &mut a);
        new(log_n, b"check", &mut b);
        assert_eq!(a, b, "the two versions derive different bytes");
        for round in 1..=rounds {
            let t = Instant::now();
            for i in 0..calls {
                old(log_n, &i.to_le_bytes(), &mut a);
            }
            let t_old = t.elapsed().as_secs_f64();
            let t = Instant::now();
            for i in 0..calls {
                new(log_n, &i.to_le_bytes(), &mut b);
            }
            let t_new = t.elapsed().as_secs_f64();
            println!("| {what} | {round} | {t_old:.3} s | {t_new:.3} s | {:.2} |", t_new / t_old);
        }
    }
}
RS
flags=${RUSTFLAGS:-}
[ "${BENCH_NATIVE:-}" = 1 ] && flags="$flags -C target-cpu=native"
echo "bench-scrypt-versions: building (release${BENCH_NATIVE:+, target-cpu=native})" >&2
RUSTFLAGS=$flags cargo build --quiet --release --manifest-path "$dir/Cargo.toml" \
    --target-dir "$dir/target"
"$dir/target/release/scrypt-versions" "$rounds"
