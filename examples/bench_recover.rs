//! The Rust side of the bindings benchmark (bindings/python/bench): time
//! `Client::recover` on an existing pack, against a live server that
//! delivers codes to a file. Each round asks for fresh codes (`verify`,
//! untimed: codes are one-shot), reads them, and times `recover` alone.
//!
//! ```text
//! bench_recover CONFIG_DIR DATA_DIR PACK CODES_FILE NAME...
//! ```
//! runs one round per line read on stdin (`go PAUSE_MS`) and answers each
//! with a line: the seconds `recover` took. PAUSE_MS is an idle pause
//! between reading the codes and the timed call (0: the call follows at
//! once, with warm caches). The driver alternates rounds between this
//! process and the binding, so both are long-lived and see the same load.

use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use passcrow::client::{Client, ClientConfig, Recovered};

fn newest_code(codes: &str, name: &str) -> String {
    let want = format!("{name}@example.org");
    let text = std::fs::read_to_string(codes).expect("read the codes file");
    text.lines()
        .filter_map(|l| l.split_once('\t'))
        .filter(|(id, _)| id.rsplit(':').next() == Some(want.as_str()))
        .map(|(_, c)| c.trim().to_string())
        .next_back()
        .unwrap_or_else(|| panic!("no code for {want}"))
}

fn main() -> passcrow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 6 {
        eprintln!("usage: bench_recover CONFIG_DIR DATA_DIR PACK CODES_FILE NAME...");
        std::process::exit(2);
    }
    let client = Client::new(ClientConfig::new(&args[1], &args[2]))?;
    let names = &args[5..];
    let pack = client.pack(&args[3])?;
    let mut out = std::io::stdout().lock();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let pause_ms: u64 = line
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        client.verify(&pack)?;
        let codes: Vec<String> = names.iter().map(|n| newest_code(&args[4], n)).collect();
        // The same pause before the timed call on both sides (see the driver).
        if pause_ms > 0 {
            std::thread::sleep(Duration::from_millis(pause_ms));
        }
        let t = Instant::now();
        let r = client.recover(&pack, &codes)?;
        let dt = t.elapsed().as_secs_f64();
        assert!(matches!(r, Recovered::Secret(_)), "expected the secret");
        writeln!(out, "{dt:.9}")
            .and_then(|()| out.flush())
            .expect("stdout");
    }
    Ok(())
}
