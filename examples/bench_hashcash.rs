//! Times our hashcash: `cargo run --release --example bench_hashcash -- BITS RUNS THREADS`.
//! Prints one JSON line: runs, total attempts, seconds, attempts/s, median
//! seconds per payment. Used by scripts/bench-hashcash.sh beside the
//! reference's PaymentHashcash.MakePayment.

use std::time::Instant;

use passcrow::payment::{find_hashcash, HashcashOptions};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, d: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let (bits, runs, threads) = (num(0, 11) as u32, num(1, 21), num(2, 0));
    // Escrow data of the size a real request pays for (~350 base64 chars).
    let data = "A".repeat(344);
    let mut times = vec![];
    let mut attempts = 0u64;
    let t0 = Instant::now();
    for r in 0..runs {
        let d = format!("{data}{r}");
        let opts = HashcashOptions {
            threads,
            ..Default::default()
        };
        let t = Instant::now();
        let (counter, _) = find_hashcash(bits, d.as_bytes(), &opts).expect("hashcash");
        times.push(t.elapsed().as_secs_f64());
        attempts += counter;
    }
    let total = t0.elapsed().as_secs_f64();
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "{{\"impl\": \"libpasscrow\", \"bits\": {bits}, \"threads\": {threads}, \"runs\": {runs}, \"attempts\": {attempts}, \"seconds\": {total:.3}, \"rate\": {:.1}, \"median\": {:.4}}}",
        attempts as f64 / total,
        times[times.len() / 2]
    );
}
