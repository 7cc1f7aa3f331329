//! A loopback TCP proxy that adds a fixed one-way delay, for the bindings
//! benchmark (bindings/python/bench/bench_recover.py): the client's
//! requests meet a network's latency while the server stays on loopback.
//!
//! ```text
//! delay_proxy UPSTREAM ONE_WAY_MS LISTENERS
//! ```
//! listens on LISTENERS loopback ports (one per benchmark side, so each
//! side's connections are counted apart), prints
//! `listening on 127.0.0.1:P1 127.0.0.1:P2 ...`, and forwards every
//! connection to UPSTREAM (`127.0.0.1:PORT`). Every chunk read from one
//! end is written to the other ONE_WAY_MS (a decimal, 0 allowed) after it
//! was read, in both directions: each direction has its own reader and a
//! writer working through a FIFO of (deadline, bytes), so the two
//! directions never wait for each other, order is kept, and a burst of
//! chunks is delayed as a whole rather than one after another. A new
//! connection's first chunk towards the server also waits one round
//! trip more: the TCP handshake a real network charges before a request
//! can be sent (here the kernel completes it at once), so a client that
//! does not reuse its connection pays for it as it would over a network.
//! TLS's own round trips are not modelled.
//!
//! Commands on stdin: `stats` answers `conns N1 N2 ...`, the connections
//! accepted so far on each listener; end of input stops the proxy.

use std::io::{BufRead, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

/// A chunk to write at its deadline, or the end of that direction.
enum Item {
    Data(Instant, Vec<u8>),
    Eof(Instant),
}

/// Copy `from` to `to`, each chunk `delay` after it was read; the first
/// chunk `first_extra` later still.
fn pipe(mut from: TcpStream, mut to: TcpStream, delay: Duration, first_extra: Duration) {
    let (tx, rx) = mpsc::channel::<Item>();
    let reader_end = from.try_clone().expect("clone the socket");
    let reader = thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        let mut extra = first_extra;
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => {
                    let _ = tx.send(Item::Eof(Instant::now() + delay));
                    return;
                }
                Ok(n) => {
                    let due = Instant::now() + delay + extra;
                    extra = Duration::ZERO;
                    if tx.send(Item::Data(due, buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
            }
        }
    });
    let wait_until = |due: Instant| {
        let now = Instant::now();
        if due > now {
            thread::sleep(due - now);
        }
    };
    for item in rx {
        match item {
            Item::Data(due, bytes) => {
                wait_until(due);
                if to.write_all(&bytes).is_err() {
                    // The far end is gone: stop reading this direction too.
                    let _ = reader_end.shutdown(Shutdown::Both);
                    break;
                }
            }
            Item::Eof(due) => {
                wait_until(due);
                let _ = to.shutdown(Shutdown::Write);
                break;
            }
        }
    }
    let _ = reader.join();
}

fn serve(client: TcpStream, upstream: SocketAddr, delay: Duration) {
    let Ok(server) = TcpStream::connect(upstream) else {
        eprintln!("delay_proxy: cannot connect to {upstream}");
        return;
    };
    for s in [&client, &server] {
        let _ = s.set_nodelay(true);
    }
    let (c2, s2) = match (client.try_clone(), server.try_clone()) {
        (Ok(c), Ok(s)) => (c, s),
        _ => return,
    };
    // Towards the server: the handshake's round trip on the first chunk.
    let up = thread::spawn(move || pipe(client, server, delay, 2 * delay));
    pipe(s2, c2, delay, Duration::ZERO);
    let _ = up.join();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let parsed = (|| {
        let upstream: SocketAddr = args.get(1)?.parse().ok()?;
        let ms: f64 = args.get(2)?.parse().ok()?;
        let n: usize = args.get(3)?.parse().ok()?;
        (ms >= 0.0 && ms.is_finite() && n > 0).then_some((upstream, ms, n))
    })();
    let Some((upstream, ms, n)) = parsed else {
        eprintln!("usage: delay_proxy UPSTREAM_ADDR ONE_WAY_MS LISTENERS");
        std::process::exit(2);
    };
    let delay = Duration::from_secs_f64(ms / 1000.0);
    let mut addrs = vec![];
    let mut counts = vec![];
    for _ in 0..n {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        addrs.push(listener.local_addr().expect("local address").to_string());
        let count = Arc::new(AtomicU64::new(0));
        counts.push(Arc::clone(&count));
        thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                count.fetch_add(1, Ordering::SeqCst);
                thread::spawn(move || serve(conn, upstream, delay));
            }
        });
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening on {}", addrs.join(" "))
        .and_then(|()| out.flush())
        .expect("stdout");
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if line.trim() == "stats" {
            let c: Vec<String> = counts
                .iter()
                .map(|c| c.load(Ordering::SeqCst).to_string())
                .collect();
            writeln!(out, "conns {}", c.join(" "))
                .and_then(|()| out.flush())
                .expect("stdout");
        }
    }
}
