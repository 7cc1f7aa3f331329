//! Criterion benchmarks of the core: Shamir split/combine over GF(2^521-1),
//! blob seal/open (AES-256-GCM), and the hashcash search on one core and on
//! every core.
//!
//! Run: `cargo bench --bench core` (figures in the README).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use passcrow::payment::{find_hashcash, hashcash_valid, HashcashOptions};
use passcrow::testing::{self as blob, random_key, shamir};

fn bench_shamir(c: &mut Criterion) {
    let mut g = c.benchmark_group("shamir");
    let secret = [0x5au8; 32];
    for &(n, m) in &[(2usize, 3usize), (3, 5), (5, 9), (17, 33)] {
        g.bench_with_input(
            BenchmarkId::new("split", format!("{n}of{m}")),
            &(n, m),
            |b, &(n, m)| b.iter(|| shamir::split(black_box(&secret), n, m).unwrap()),
        );
        let shares = shamir::split(&secret, n, m).unwrap();
        let subset: Vec<&str> = shares.iter().take(n).map(|s| s.expose_secret()).collect();
        g.bench_with_input(
            BenchmarkId::new("combine", format!("{n}of{m}")),
            &subset,
            |b, s| b.iter(|| shamir::combine(black_box(s)).unwrap()),
        );
    }
    g.finish();
}

fn bench_blob(c: &mut Criterion) {
    let mut g = c.benchmark_group("blob");
    let key = random_key();
    for &size in &[64usize, 4096, 65536] {
        let data = vec![7u8; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("seal", size), &data, |b, d| {
            b.iter(|| blob::seal(&key, black_box(d)).unwrap())
        });
        let sealed = blob::seal(&key, &data).unwrap();
        g.bench_with_input(BenchmarkId::new("open", size), &sealed, |b, s| {
            b.iter(|| blob::open(&key, black_box(s), "bench").unwrap())
        });
    }
    g.finish();
}

/// Hashcash: one digest (an scrypt, N=2^8), and a 10-bit search (about
/// 1,024 digests on average, geometrically distributed) on one core and on
/// every core. scripts/bench-hashcash.sh gives the steadier side-by-side
/// rate against the reference.
fn bench_hashcash(c: &mut Criterion) {
    let mut g = c.benchmark_group("hashcash");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    let data = "A".repeat(344);
    g.bench_function("digest", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            hashcash_valid(20, black_box(data.as_bytes()), i, 1_700_000_000)
        })
    });
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    for threads in [1usize, cores] {
        let mut r = 0u64;
        g.bench_function(
            BenchmarkId::new("10bit", format!("{threads}threads")),
            |b| {
                b.iter(|| {
                    r += 1;
                    let d = format!("{data}{r}");
                    let opts = HashcashOptions {
                        threads,
                        ..Default::default()
                    };
                    find_hashcash(10, d.as_bytes(), &opts).unwrap()
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, bench_shamir, bench_blob, bench_hashcash);
criterion_main!(benches);
