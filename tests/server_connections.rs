//! Hostile connections against a real server on loopback: half-sent
//! headers, idle keep-alive connections, slow bodies from many sockets,
//! the per-address connection cap, and client addresses forwarded by a
//! trusted proxy. Each test plays the attacker and shows a legitimate
//! client still served. (The whole of 127/8 is loopback on Linux: client
//! sockets are bound to 127.0.0.2 and others to be other addresses.)

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use passcrow::server::config::Config;
use passcrow::server::{self, Handle};

fn start(tmp: &tempfile::TempDir, set: impl FnOnce(&mut Config)) -> Handle {
    let mut cfg = common::backend::server_config(tmp.path().join("data"), tmp.path().join("codes"));
    set(&mut cfg);
    server::spawn(cfg).unwrap()
}

/// A blocking socket from `src` (an address on loopback) to `to`.
fn connect_from(src: &str, to: SocketAddr) -> std::io::Result<TcpStream> {
    thread_local! {
        static RT: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
    }
    let s = RT.with(|rt| {
        rt.block_on(async {
            let sock = tokio::net::TcpSocket::new_v4()?;
            sock.bind(format!("{src}:0").parse().unwrap())?;
            sock.connect(to).await
        })
    })?;
    let s = s.into_std()?;
    s.set_nonblocking(false)?;
    Ok(s)
}

/// Read until the server closes; how long that took from `since` (None
/// if still open at `limit`).
fn wait_closed(s: &mut TcpStream, since: Instant, limit: Duration) -> Option<Duration> {
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.checked_sub(since.elapsed())?;
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match s.read(&mut buf) {
            Ok(0) => return Some(since.elapsed()),
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if since.elapsed() >= limit {
                    return None;
                }
            }
            Err(_) => return Some(since.elapsed()),
        }
    }
}

/// Whether the server has closed `s` already (without waiting).
fn closed_now(s: &TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut r = s;
    let mut buf = [0u8; 1024];
    let r = loop {
        match r.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break false,
            Err(_) => break true,
        }
    };
    s.set_nonblocking(false).unwrap();
    r
}

/// One response on a kept-alive connection: (status, body).
fn read_response(s: &mut TcpStream) -> (u16, String) {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut buf).expect("reading a response");
        assert!(
            n > 0,
            "closed before a response: {:?}",
            String::from_utf8_lossy(&data)
        );
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_string();
    let status = head[9..12].parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while data.len() < head_end + len {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0);
        data.extend_from_slice(&buf[..n]);
    }
    let body = String::from_utf8_lossy(&data[head_end..head_end + len]).to_string();
    (status, body)
}

/// `GET /passcrow/policy` from `src` with extra header lines: (status,
/// how long it took).
fn policy_from(src: &str, to: SocketAddr, extra: &str) -> (u16, Duration) {
    let t = Instant::now();
    let mut s = connect_from(src, to).unwrap();
    write!(
        s,
        "GET /passcrow/policy HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n"
    )
    .unwrap();
    let (status, body) = read_response(&mut s);
    if status == 200 {
        assert!(body.contains("max-request-bytes"), "{body}");
    }
    (status, t.elapsed())
}

const HALF_HEADER: &[u8] = b"POST /passcrow/policy HTTP/1.1\r\nHost: x\r\nContent-Le";

#[test]
fn half_sent_headers_are_closed_at_the_header_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let h = start(&tmp, |c| {
        c.header_read_timeout_seconds = 1;
        c.keep_alive_timeout_seconds = 30; // the header timeout must do it
        c.max_connections_per_address = 200;
    });
    let limit = Duration::from_millis(2500);

    // One half-sent header.
    let t = Instant::now();
    let mut s = connect_from("127.0.0.1", h.addr()).unwrap();
    s.write_all(HALF_HEADER).unwrap();
    let closed = wait_closed(&mut s, t, limit).expect("still open after 2.5 s");
    eprintln!("one half-sent header: closed after {closed:?}");
    assert!(closed >= Duration::from_millis(900), "{closed:?}");

    // A header dripped a byte per 200 ms is cut at the same deadline.
    let t = Instant::now();
    let mut s = connect_from("127.0.0.1", h.addr()).unwrap();
    let mut dripped = 0;
    let closed = loop {
        if s.write_all(&HALF_HEADER[dripped % HALF_HEADER.len()..][..1])
            .is_err()
        {
            break t.elapsed();
        }
        dripped += 1;
        if closed_now(&s) {
            break t.elapsed();
        }
        assert!(t.elapsed() < limit, "dripped header still open");
        std::thread::sleep(Duration::from_millis(200));
    };
    eprintln!("header dripped a byte per 200 ms: closed after {closed:?} ({dripped} bytes)");

    // 150 of them at once, and a legitimate client meanwhile.
    let t = Instant::now();
    let mut held: Vec<TcpStream> = (0..150)
        .map(|_| {
            let mut s = connect_from("127.0.0.1", h.addr()).unwrap();
            s.write_all(HALF_HEADER).unwrap();
            s
        })
        .collect();
    let opened = t.elapsed();
    let (status, took) = policy_from("127.0.0.2", h.addr(), "");
    assert_eq!(status, 200);
    eprintln!(
        "150 half-sent headers opened in {opened:?}; policy from 127.0.0.2 meanwhile: {took:?}"
    );
    assert!(took < Duration::from_secs(1), "{took:?}");
    let mut worst = Duration::ZERO;
    for s in &mut held {
        let c = wait_closed(s, t, limit + opened).expect("a half-sent header still open");
        worst = worst.max(c);
    }
    eprintln!("150 half-sent headers: all closed, the last after {worst:?}");
    let (status, _) = policy_from("127.0.0.1", h.addr(), "");
    assert_eq!(status, 200);
    h.shutdown();
}

#[test]
fn idle_keep_alive_connections_are_closed() {
    let tmp = tempfile::tempdir().unwrap();
    let h = start(&tmp, |c| {
        c.header_read_timeout_seconds = 30; // the idle timeout must do it
        c.keep_alive_timeout_seconds = 1;
    });
    let mut s = connect_from("127.0.0.1", h.addr()).unwrap();
    let req = b"GET /passcrow/policy HTTP/1.1\r\nHost: x\r\n\r\n";
    // Kept alive: two requests, half a second apart, on one connection.
    s.write_all(req).unwrap();
    assert_eq!(read_response(&mut s).0, 200);
    std::thread::sleep(Duration::from_millis(500));
    s.write_all(req).unwrap();
    assert_eq!(read_response(&mut s).0, 200);
    // Then idle.
    let t = Instant::now();
    let closed = wait_closed(&mut s, t, Duration::from_secs(3)).expect("idle connection open");
    eprintln!("idle keep-alive connection closed {closed:?} after its last answer");
    assert!(closed >= Duration::from_millis(800), "{closed:?}");

    // A connection that never sends a byte is idle too.
    let t = Instant::now();
    let mut s = connect_from("127.0.0.1", h.addr()).unwrap();
    let closed = wait_closed(&mut s, t, Duration::from_secs(3)).expect("silent connection open");
    eprintln!("silent connection closed after {closed:?}");

    // keep-alive 0: one request per connection.
    drop(h);
    let tmp = tempfile::tempdir().unwrap();
    let h = start(&tmp, |c| c.keep_alive_timeout_seconds = 0);
    let t = Instant::now();
    let mut s = connect_from("127.0.0.1", h.addr()).unwrap();
    s.write_all(req).unwrap();
    assert_eq!(read_response(&mut s).0, 200);
    let closed = wait_closed(&mut s, t, Duration::from_secs(2)).expect("kept alive");
    eprintln!("keep-alive off: closed {closed:?} after the request");
    h.shutdown();
}

fn slow_body_headers() -> Vec<u8> {
    b"POST /passcrow/policy HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
      Content-Length: 1000\r\n\r\n"
        .to_vec()
}

#[test]
fn slow_bodies_are_cut_off_and_do_not_block_other_clients() {
    let tmp = tempfile::tempdir().unwrap();
    let h = start(&tmp, |c| {
        c.body_read_timeout_seconds = 2;
        c.header_read_timeout_seconds = 10;
        c.keep_alive_timeout_seconds = 10;
        c.max_connections_per_address = 32;
    });
    let addr = h.addr();
    let head = slow_body_headers();
    let t0 = Instant::now();
    // 300 from 127.0.0.1: over the cap of 32.
    let mut one: Vec<TcpStream> = (0..300)
        .map(|_| {
            let mut s = connect_from("127.0.0.1", addr).unwrap();
            let _ = s.write_all(&head);
            s
        })
        .collect();
    // 300 more from ten other addresses, 30 each: all under the cap, and
    // more than the 256 requests served at once.
    let mut many: Vec<TcpStream> = (3..13)
        .flat_map(|i| (0..30).map(move |_| i))
        .map(|i| {
            let mut s = connect_from(&format!("127.0.0.{i}"), addr).unwrap();
            let _ = s.write_all(&head);
            s
        })
        .collect();
    let opened = t0.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    let refused = one.iter().filter(|s| closed_now(s)).count();
    let refused_many = many.iter().filter(|s| closed_now(s)).count();
    eprintln!(
        "600 slow-body connections opened in {opened:?}: from 127.0.0.1 {} refused, {} held; \
         from 127.0.0.3-12 {} refused",
        refused,
        300 - refused,
        refused_many
    );
    assert!(opened < Duration::from_millis(1500), "{opened:?}");
    assert_eq!(refused, 300 - 32);
    assert_eq!(refused_many, 0);

    // Drip a byte per 200 ms into every held connection, and meanwhile
    // ask for the policy from 127.0.0.2.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let dripper = {
        let stop = stop.clone();
        let mut socks: Vec<TcpStream> = one
            .iter()
            .chain(many.iter())
            .map(|s| s.try_clone().unwrap())
            .collect();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for s in &mut socks {
                    let _ = s.write(b" ");
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    let mut waits = Vec::new();
    for _ in 0..5 {
        let (status, took) = policy_from("127.0.0.2", addr, "");
        assert_eq!(status, 200);
        waits.push(took);
        std::thread::sleep(Duration::from_millis(200));
    }
    // 127.0.0.1 is at its cap: refused.
    let mut over = connect_from("127.0.0.1", addr).unwrap();
    let _ = over.write_all(b"GET /passcrow/policy HTTP/1.1\r\nHost: x\r\n\r\n");
    let refused_at = wait_closed(&mut over, Instant::now(), Duration::from_secs(1));
    let waited = waits.iter().max().unwrap();
    eprintln!("policy from 127.0.0.2 while 332 bodies drip: {waits:?}; a 33rd from 127.0.0.1 closed after {refused_at:?}");
    assert!(*waited < Duration::from_secs(1), "{waits:?}");
    assert!(refused_at.is_some());

    // Every slow body is cut off at the body timeout (from its headers).
    let mut cut = Vec::new();
    for s in one.iter_mut().chain(many.iter_mut()) {
        let c = wait_closed(s, t0, Duration::from_secs(6)).expect("a slow body still open");
        cut.push(c);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    dripper.join().unwrap();
    cut.sort();
    eprintln!(
        "slow bodies closed {:?} .. {:?} after the first connect (body timeout 2 s)",
        cut[refused],
        cut.last().unwrap()
    );
    assert!(
        cut[refused] >= Duration::from_millis(1900),
        "{:?}",
        cut[refused]
    );

    // The cut-off bodies were told 408; the cap is free again.
    let mut s = connect_from("127.0.0.1", addr).unwrap();
    s.write_all(&head).unwrap();
    let t = Instant::now();
    let (status, body) = read_response(&mut s);
    eprintln!("a lone slow body: {status} after {:?}: {body}", t.elapsed());
    assert_eq!(status, 408);
    assert!(body.contains("bad-request"), "{body}");
    assert_eq!(policy_from("127.0.0.1", addr, "").0, 200);
    h.shutdown();
}

#[test]
fn forwarded_for_is_believed_only_from_trusted_proxies() {
    let tmp = tempfile::tempdir().unwrap();
    let h = start(&tmp, |c| {
        c.rate_limit_burst = 2;
        c.rate_limit_per_second = 0.001;
        c.trusted_proxies = vec!["127.0.0.1".into(), "10.0.0.0/8".into()];
        c.max_connections_per_address = 4;
    });
    let a = h.addr();
    let xff = |v: &str| format!("X-Forwarded-For: {v}\r\n");
    let from_proxy = |v: &str| policy_from("127.0.0.1", a, &xff(v)).0;

    // Two clients behind the proxy: a bucket each.
    assert_eq!(from_proxy("203.0.113.1"), 200);
    assert_eq!(from_proxy("203.0.113.1"), 200);
    assert_eq!(from_proxy("203.0.113.1"), 429);
    assert_eq!(from_proxy("203.0.113.2"), 200);
    assert_eq!(from_proxy("203.0.113.2"), 200);
    assert_eq!(from_proxy("203.0.113.2"), 429);
    // The limited client prepends an address of its choosing: the
    // rightmost untrusted hop is still its own.
    assert_eq!(from_proxy("198.51.100.7, 203.0.113.1"), 429);
    // A chain through an inner trusted proxy (10.0.0.5).
    assert_eq!(from_proxy("198.51.100.7, 203.0.113.1, 10.0.0.5"), 429);
    assert_eq!(from_proxy("198.51.100.7, 203.0.113.3, 10.0.0.5"), 200);
    // IPv6 clients behind the proxy share a bucket per /64.
    assert_eq!(from_proxy("2001:db8:1:2::1"), 200);
    assert_eq!(from_proxy("[2001:db8:1:2::ffff]:4711"), 200);
    assert_eq!(from_proxy("2001:db8:1:2:3::9"), 429);
    assert_eq!(from_proxy("2001:db8:1:3::1"), 200);
    // Garbage: the proxy's own bucket (here fresh).
    assert_eq!(from_proxy("unknown"), 200);

    // The same header from an untrusted peer is ignored.
    let direct = |v: &str| policy_from("127.0.0.2", a, &xff(v)).0;
    assert_eq!(direct("203.0.113.50"), 200);
    assert_eq!(direct("203.0.113.51"), 200);
    assert_eq!(direct("203.0.113.52"), 429);
    // A legitimate client elsewhere is unaffected.
    assert_eq!(policy_from("127.0.0.3", a, "").0, 200);

    // The trusted proxy is exempt from the connection cap of 4; others not.
    let held: Vec<TcpStream> = (0..10)
        .map(|_| connect_from("127.0.0.1", a).unwrap())
        .collect();
    let others: Vec<TcpStream> = (0..10)
        .map(|_| connect_from("127.0.0.4", a).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let proxied = held;
    let proxy_closed = proxied.iter().filter(|s| closed_now(s)).count();
    let others_closed = others.iter().filter(|s| closed_now(s)).count();
    eprintln!("10 connections each: trusted proxy {proxy_closed} refused, 127.0.0.4 {others_closed} refused");
    assert_eq!(proxy_closed, 0);
    assert_eq!(others_closed, 6);
    assert_eq!(from_proxy("203.0.113.9"), 200);
    h.shutdown();

    // RFC 7239 Forwarded, when configured; X-Forwarded-For then ignored.
    let tmp = tempfile::tempdir().unwrap();
    let h = start(&tmp, |c| {
        c.rate_limit_burst = 1;
        c.rate_limit_per_second = 0.001;
        c.trusted_proxies = vec!["127.0.0.1".into()];
        c.forwarded_header = "forwarded".into();
    });
    let a = h.addr();
    let fwd = |v: &str| policy_from("127.0.0.1", a, &format!("Forwarded: {v}\r\n")).0;
    assert_eq!(fwd("for=203.0.113.1;proto=https"), 200);
    assert_eq!(fwd("for=203.0.113.1"), 429);
    assert_eq!(fwd("for=198.51.100.7, for=\"203.0.113.1:4711\""), 429);
    assert_eq!(fwd("for=\"[2001:db8::1]:4711\""), 200);
    assert_eq!(fwd("for=203.0.113.2"), 200);
    // X-Forwarded-For is not what this proxy sets: the proxy's bucket.
    assert_eq!(policy_from("127.0.0.1", a, &xff("203.0.113.3")).0, 200);
    assert_eq!(policy_from("127.0.0.1", a, &xff("203.0.113.4")).0, 429);
    h.shutdown();
}

#[test]
fn shutdown_finishes_requests_in_flight() {
    let tmp = tempfile::tempdir().unwrap();
    let h = start(&tmp, |c| c.body_read_timeout_seconds = 5);
    let addr = h.addr();
    // A request whose body is still on its way when shutdown starts.
    let mut s = connect_from("127.0.0.1", addr).unwrap();
    s.write_all(b"POST /passcrow/policy HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{")
        .unwrap();
    // An idle kept-alive connection.
    let mut idle = connect_from("127.0.0.2", addr).unwrap();
    idle.write_all(b"GET /passcrow/policy HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut idle).0, 200);
    let stopper = std::thread::spawn(move || {
        let t = Instant::now();
        h.shutdown();
        t.elapsed()
    });
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    assert!(wait_closed(&mut idle, t, Duration::from_secs(1)).is_some());
    s.write_all(b"}").unwrap();
    let (status, body) = read_response(&mut s);
    assert_eq!(status, 200, "{body}");
    let took = stopper.join().unwrap();
    eprintln!("shutdown with a request in flight took {took:?}");
    assert!(connect_from("127.0.0.1", addr).is_err());
}
