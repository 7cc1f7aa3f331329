//! A client that a hostile server or network cannot hurt: our client over
//! real HTTP on loopback against small misbehaving servers, and against
//! forwarding proxies in front of a real passcrow-server that turn
//! hostile after a pack was protected honestly.
//!
//! Every case checks the error kind, that it came back within its
//! deadline, that the client's data directory is exactly as it was (no
//! pack written half-way, no `*.tmp` left, an existing pack unchanged),
//! and, where the pack has other servers, that the operation still works
//! through them.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::newest_code;
use passcrow::client::transport::MAX_RESPONSE_BYTES;
use passcrow::client::{
    Client, ClientConfig, HttpRequest, HttpResponse, ProtectOptions, Recovered, Timeouts,
    Transport, TransportError, UreqTransport,
};
use passcrow::pack::RecoveryPack;
use passcrow::policy::RecoveryPolicy;
use passcrow::proto::untrusted::MAX_TIME;
use passcrow::server::{self, config::Config};
use passcrow::testing::{random_key, seal};
use passcrow::Error;
use serde_json::{json, Value};

// ---------------------------------------------------------------------
// Deadlines of the client under test.

const MARGIN: Duration = Duration::from_millis(2500);

fn fast_timeouts() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(1),
        policy: Duration::from_millis(1500),
        escrow: Duration::from_secs(2),
        verification: Duration::from_secs(2),
        recovery: Duration::from_secs(2),
        deletion: Duration::from_millis(1500),
    }
}

fn fast_config(home: &Path) -> ClientConfig {
    std::fs::create_dir_all(home).unwrap();
    let mut cfg = ClientConfig::new(home, home);
    cfg.timeouts = fast_timeouts();
    cfg.pacing.retry_for = Duration::from_millis(500);
    cfg.pacing.backoff = Duration::from_millis(100);
    cfg
}

fn fast_client(home: &Path) -> Client {
    Client::new(fast_config(home)).unwrap()
}

/// Assert `start` was at most `limit` (+ [`MARGIN`]) ago.
fn within(start: Instant, limit: Duration, what: &str) -> Duration {
    let took = start.elapsed();
    assert!(
        took <= limit + MARGIN,
        "{what}: took {took:?}, deadline {limit:?} + {MARGIN:?}"
    );
    took
}

// ---------------------------------------------------------------------
// The client's data directory, before and after.

type Snapshot = BTreeMap<String, Vec<u8>>;

/// Every file in `dir` (hidden ones too) with its bytes (a health side
/// file by name only); no `*.tmp`.
fn snapshot(dir: &Path) -> Snapshot {
    let mut out = Snapshot::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        assert!(!name.ends_with(".tmp"), "temporary file left: {name}");
        if e.file_type().unwrap().is_file() {
            // A pack's health side file records when a recovery succeeded
            // (issue 15): its presence is compared, not its review time.
            let bytes = if name.ends_with(".passcrow.health") {
                vec![]
            } else {
                std::fs::read(e.path()).unwrap()
            };
            out.insert(name, bytes);
        }
    }
    out
}

fn assert_unchanged(before: &Snapshot, dir: &Path, what: &str) {
    let after = snapshot(dir);
    let names = |s: &Snapshot| s.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(before), names(&after), "{what}: files changed");
    assert!(before == &after, "{what}: a file's content changed");
}

// ---------------------------------------------------------------------
// Text a hostile server controls, as the client hands it on.

/// No ESC, no C0/C1 control, no bidi embedding, override or isolate.
fn is_clean(s: &str) -> bool {
    !s.chars()
        .any(|c| c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'))
}

fn assert_clean(s: &str, max_chars: usize, what: &str) {
    assert!(is_clean(s), "{what} carries unsafe characters: {s:?}");
    let n = s.chars().count();
    assert!(n <= max_chars, "{what} is {n} characters long");
}

/// An evil text: OSC title, screen clear, CSI in C1, bidi override and
/// isolates, a BEL, and 10 000 characters.
fn evil(text: &str) -> String {
    format!(
        "\u{1b}]0;pwned\u{7}\u{1b}[2J\u{9b}31m{text}\u{202e}gro.elpmaxe\u{2066}x\u{2067}\u{2068}\u{2069}\r\n{}",
        "A".repeat(10_000)
    )
}

// ---------------------------------------------------------------------
// A minimal HTTP/1.1 server that can forward faithfully or misbehave.

/// One request as the hostile server read it.
struct Req {
    /// The protocol method (`policy`, `escrowrequest`, ...).
    method: String,
    path: String,
    body: Vec<u8>,
}

impl Req {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// How a hostile server answers one request: `upstream` is the real
/// server behind it, if any.
type Behave = Arc<dyn Fn(&Req, &mut TcpStream, Option<&str>) + Send + Sync>;

#[derive(Clone)]
struct Hostile {
    url: String,
    /// Methods requested, in order.
    hits: Arc<Mutex<Vec<String>>>,
    /// `None`: forward faithfully to the upstream.
    behave: Arc<Mutex<Option<Behave>>>,
}

impl Hostile {
    /// A server misbehaving from the start (no upstream).
    fn new(behave: Behave) -> Hostile {
        Self::start("127.0.0.1", None, Some(behave))
    }

    /// A faithful proxy in front of `upstream` until [`Hostile::set`].
    fn proxy(upstream: &str) -> Hostile {
        Self::start("127.0.0.1", Some(upstream.to_string()), None)
    }

    fn start(ip: &str, upstream: Option<String>, behave: Option<Behave>) -> Hostile {
        let l = TcpListener::bind((ip, 0)).unwrap();
        let h = Hostile {
            url: format!("http://{}", l.local_addr().unwrap()),
            hits: Arc::default(),
            behave: Arc::new(Mutex::new(behave)),
        };
        let h2 = h.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(s) = s else { return };
                let (h, up) = (h2.clone(), upstream.clone());
                std::thread::spawn(move || h.serve(s, up.as_deref()));
            }
        });
        h
    }

    fn set(&self, b: Behave) {
        *self.behave.lock().unwrap() = Some(b);
    }

    fn honest(&self) {
        *self.behave.lock().unwrap() = None;
    }

    fn hits(&self) -> Vec<String> {
        self.hits.lock().unwrap().clone()
    }

    fn serve(&self, mut s: TcpStream, upstream: Option<&str>) {
        let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
        let Some(req) = read_request(&s) else { return };
        self.hits.lock().unwrap().push(req.method.clone());
        let b = self.behave.lock().unwrap().clone();
        match b {
            Some(b) => b(&req, &mut s, upstream),
            None => {
                let (status, body) = forward(&req, upstream.expect("an upstream"));
                respond(&mut s, status, "", &body);
            }
        }
    }
}

fn read_request(s: &TcpStream) -> Option<Req> {
    let mut r = BufReader::new(s.try_clone().ok()?);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_string();
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; len.min(1 << 20)];
    r.read_exact(&mut body).ok()?;
    let method = path.rsplit('/').next().unwrap_or("").to_string();
    Some(Req { method, path, body })
}

/// Send `req` on to the real server; its status and body.
fn forward(req: &Req, upstream: &str) -> (u16, Vec<u8>) {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .redirects(0)
        .build();
    let r = agent
        .post(&format!("{upstream}{}", req.path))
        .set("Content-Type", "application/json")
        .send_bytes(&req.body);
    let resp = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("forwarding to {upstream}: {e}"),
    };
    let status = resp.status();
    let mut body = vec![];
    resp.into_reader().read_to_end(&mut body).unwrap();
    (status, body)
}

fn respond(s: &mut TcpStream, status: u16, extra_headers: &str, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {status} Whatever\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n{extra_headers}\r\n",
        body.len()
    );
    let _ = s.write_all(head.as_bytes());
    let _ = s.write_all(body);
    let _ = s.flush();
}

// Behaviours.

/// Forward, then rewrite the real answer's JSON.
fn rewrite(f: impl Fn(&str, &mut Value) + Send + Sync + 'static) -> Behave {
    Arc::new(move |req, s, up| {
        let (status, body) = forward(req, up.expect("an upstream"));
        let mut v: Value = serde_json::from_slice(&body).unwrap();
        f(&req.method, &mut v);
        respond(s, status, "", &serde_json::to_vec(&v).unwrap());
    })
}

/// Only for `method`; forward everything else faithfully.
fn only(method: &'static str, b: Behave) -> Behave {
    Arc::new(move |req, s, up| {
        if req.method == method {
            b(req, s, up)
        } else {
            let (status, body) = forward(req, up.expect("an upstream"));
            respond(s, status, "", &body);
        }
    })
}

/// The same answer to every request.
fn fixed(status: u16, extra_headers: &'static str, body: Vec<u8>) -> Behave {
    Arc::new(move |_, s, _| respond(s, status, extra_headers, &body))
}

/// A body of `total` JSON-ish bytes (an endless list of "1.0"), written
/// until the client hangs up; `written` counts what got out.
fn oversized(total: u64, written: Arc<AtomicUsize>) -> Behave {
    Arc::new(move |_, s, _| {
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {total}\r\n\r\n"
        );
        if s.write_all(head.as_bytes()).is_err() {
            return;
        }
        let mut chunk = br#"{"passcrow-versions": ["#.to_vec();
        while chunk.len() < 64 * 1024 {
            chunk.extend_from_slice(br#""1.0", "#);
        }
        let mut sent = 0u64;
        // Stop at the total, or at 512 MiB for a "never-ending" body.
        while sent < total.min(512 << 20) {
            let n = chunk.len().min((total - sent) as usize);
            if s.write_all(&chunk[..n]).is_err() {
                return;
            }
            sent += n as u64;
            written.fetch_add(n, Ordering::SeqCst);
        }
    })
}

/// Headers (all at once, or dripped too), then one body byte every
/// `every`, until the client hangs up (at most two minutes).
fn drip(drip_headers: bool, every: Duration) -> Behave {
    Arc::new(move |_, s, _| {
        let head =
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n";
        let t0 = Instant::now();
        if drip_headers {
            for b in head {
                if s.write_all(&[*b]).is_err() {
                    return;
                }
                std::thread::sleep(every);
            }
        } else if s.write_all(head).is_err() {
            return;
        }
        while t0.elapsed() < Duration::from_secs(120) {
            if s.write_all(b" ").is_err() {
                return;
            }
            std::thread::sleep(every);
        }
    })
}

/// Accept, read the request, never answer (until the client hangs up).
fn silent() -> Behave {
    Arc::new(|_, s, _| {
        let _ = s.set_read_timeout(Some(Duration::from_secs(120)));
        let mut b = [0u8; 16];
        let _ = s.read(&mut b);
    })
}

// ---------------------------------------------------------------------
// A world: one real passcrow-server behind three proxies A, B, C, and a
// 2-of-3 pack "wallet" protected honestly (alice via A, bob via B, carol
// via C). A is the one that turns hostile.

const SECRET: &[u8] = b"correct horse battery staple";
const WHO: [&str; 3] = ["alice@example.org", "bob@example.org", "carol@example.org"];

struct World {
    a: Hostile,
    b: Hostile,
    c: Hostile,
    codes: PathBuf,
    home: PathBuf,
    pack: RecoveryPack,
    _real: server::Handle,
    _tmp: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        let tmp = tempfile::tempdir().unwrap();
        let codes = tmp.path().join("codes.txt");
        let real = server::spawn(Config::for_testing(tmp.path().join("server"), &codes)).unwrap();
        let (a, b, c) = (
            Hostile::proxy(&real.url()),
            Hostile::proxy(&real.url()),
            Hostile::proxy(&real.url()),
        );
        let home = tmp.path().join("home");
        let client = fast_client(&home);
        let policy = Self::policy_for(&client, [&a.url, &b.url, &c.url]);
        let p = client
            .protect("wallet", SECRET, &policy, &ProtectOptions::default())
            .unwrap();
        World {
            a,
            b,
            c,
            codes,
            home,
            pack: p.pack,
            _real: real,
            _tmp: tmp,
        }
    }

    fn policy_for(client: &Client, servers: [&str; 3]) -> RecoveryPolicy {
        let ids: Vec<String> = WHO
            .iter()
            .zip(servers)
            .map(|(w, s)| format!("{w} via {s}"))
            .collect();
        let mut policy = client.make_policy(&ids, Some((2, 3))).unwrap();
        policy.expiration_days = 1;
        policy
    }

    /// A fresh client (no cached server policies) on the world's home.
    fn client(&self) -> Client {
        fast_client(&self.home)
    }

    fn code(&self, who: usize) -> String {
        newest_code(&self.codes, &format!("email:{}", WHO[who])).expect("a code")
    }

    /// Ask all three (honest) servers for codes; the codes, in order.
    fn honest_codes(&self) -> Vec<String> {
        let hostile = self.a.behave.lock().unwrap().take();
        let v = self.client().verify(&self.pack).unwrap();
        assert_eq!(v.hints.len(), 3, "{:?}", v.failures);
        *self.a.behave.lock().unwrap() = hostile;
        (0..3).map(|i| self.code(i)).collect()
    }

    /// With A answering as `b` from the start: protect fails (nothing
    /// written), and verify and recover of the honest pack still work
    /// through B and C. `kind` is how A's failure reads
    /// (`"protocol error"`, `"transport error"`, ...).
    fn survives(&self, b: Behave, kind: &str) {
        self.survives_at(b, kind, &["protect", "recover", "verify"]);
    }

    /// [`World::survives`] for a behaviour that makes A fail only `at`
    /// (of `protect`, `recover`, `verify`).
    fn survives_at(&self, b: Behave, kind: &str, at: &[&str]) {
        let t = fast_timeouts();
        let before = snapshot(&self.home);
        let a_failed = |e: &Error, what: &str| match e {
            Error::Incomplete { failures, .. } => {
                assert!(
                    failures
                        .iter()
                        .any(|f| f.server == self.a.url && f.message.starts_with(kind)),
                    "{what}: expected a {kind:?} from A, got {failures:?}"
                );
                assert!(
                    failures.iter().all(|f| f.server == self.a.url),
                    "{what}: only A fails: {failures:?}"
                );
            }
            other => panic!("{what}: expected Incomplete, got {other:?}"),
        };

        // Codes from all three while A is honest; then A turns.
        let codes = self.honest_codes();
        let before_codes = snapshot(&self.home);
        assert_eq!(before, before_codes);
        self.a.set(b);

        // protect: A's escrow fails, B's and C's are undone, no pack.
        let c = self.client();
        if at.contains(&"protect") {
            let policy = Self::policy_for(&c, [&self.a.url, &self.b.url, &self.c.url]);
            let t0 = Instant::now();
            let e = c
                .protect("fresh", SECRET, &policy, &ProtectOptions::default())
                .unwrap_err();
            within(t0, t.policy + t.escrow + t.deletion, "protect");
            a_failed(&e, "protect");
            assert_clean(&e.to_string(), 4000, "protect's error");
            assert_unchanged(&before, &self.home, "protect");
        }

        // recover with A's and B's codes: A fails, one share is too few.
        let c = self.client();
        if at.contains(&"recover") {
            let t0 = Instant::now();
            let e = c.recover(&self.pack, &codes[..2]).unwrap_err();
            within(t0, t.recovery, "recover via A and B");
            a_failed(&e, "recover via A and B");
            assert_clean(&e.to_string(), 4000, "recover's error");
            assert_unchanged(&before, &self.home, "recover via A and B");
        }

        // verify: B and C send codes, A fails.
        let t0 = Instant::now();
        let v = c.verify(&self.pack).unwrap();
        within(t0, t.verification, "verify");
        assert_eq!(v.hints.len(), 2, "{v:?}");
        assert!(v.hints.iter().all(|h| h.server != self.a.url));
        assert_eq!(v.failures.len(), 1, "{v:?}");
        assert_eq!(v.failures[0].server, self.a.url);
        assert!(v.failures[0].message.starts_with(kind), "{v:?}");
        for h in &v.hints {
            assert_clean(&h.hint, 200, "hint");
        }

        // recover with all three codes: B and C are enough.
        let typed = [codes[0].clone(), self.code(1), self.code(2)];
        let t0 = Instant::now();
        let r = c.recover(&self.pack, &typed).unwrap();
        within(t0, t.recovery, "recover via B and C");
        assert_eq!(secret_of(r), SECRET);
        assert_unchanged(&before, &self.home, "recover via B and C");
        self.a.honest();
    }
}

fn secret_of(r: Recovered) -> Vec<u8> {
    match r {
        Recovered::Secret(s) => s.expose_secret().to_vec(),
        Recovered::Pack { name, .. } => panic!("expected a secret, got pack {name}"),
    }
}

/// A client on an empty home of its own, and that home.
fn lone_client(tmp: &tempfile::TempDir) -> (Client, PathBuf) {
    let home = tmp.path().join("lone");
    (fast_client(&home), home)
}

// ---------------------------------------------------------------------
// 1. Oversized answers.

#[test]
fn oversized_answers_are_cut_and_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (c, home) = lone_client(&tmp);
    let before = snapshot(&home);
    let t = fast_timeouts();

    // 5 MiB of JSON-ish bytes: the first MiB does not parse.
    let written = Arc::new(AtomicUsize::new(0));
    let h = Hostile::new(oversized(5 << 20, written.clone()));
    let t0 = Instant::now();
    let e = c.server_policy(&h.url).unwrap_err();
    within(t0, t.policy, "5 MiB policy");
    assert!(matches!(e, Error::Protocol(_)), "{e:?}");
    assert_clean(&e.to_string(), 1000, "the error");

    // A body that never ends: the client stops at MAX_RESPONSE_BYTES and
    // answers before its deadline (it does not read on until it).
    let written = Arc::new(AtomicUsize::new(0));
    let h = Hostile::new(oversized(10 << 30, written.clone()));
    let t0 = Instant::now();
    let e = c.server_policy(&h.url).unwrap_err();
    let took = t0.elapsed();
    assert!(matches!(e, Error::Protocol(_)), "{e:?}");
    assert!(took < t.policy, "{took:?}: read on to the deadline");
    std::thread::sleep(Duration::from_millis(300));
    let sent = written.load(Ordering::SeqCst) as u64;
    assert!(
        (MAX_RESPONSE_BYTES..64 << 20).contains(&sent),
        "the server got {sent} bytes out"
    );
    assert_unchanged(&before, &home, "policy");

    // The operations: A answers everything with 5 MiB.
    let w = World::new();
    w.survives(oversized(5 << 20, Arc::default()), "protocol error");
}

// ---------------------------------------------------------------------
// 2. Slow drip and silence.

#[test]
fn slow_and_silent_servers_time_out() {
    let tmp = tempfile::tempdir().unwrap();
    let (c, home) = lone_client(&tmp);
    let before = snapshot(&home);
    let t = fast_timeouts();
    let cases: [(&str, Behave); 3] = [
        (
            "headers, then a byte every 200 ms",
            drip(false, Duration::from_millis(200)),
        ),
        ("headers dripped", drip(true, Duration::from_millis(200))),
        ("never an answer", silent()),
    ];
    for (what, b) in cases {
        let h = Hostile::new(b);
        let t0 = Instant::now();
        let e = c.server_policy(&h.url).unwrap_err();
        let took = within(t0, t.policy, what);
        assert!(
            took >= t.policy - Duration::from_millis(200),
            "{what}: gave up early"
        );
        assert!(matches!(e, Error::Transport(_)), "{what}: {e:?}");
    }
    assert_unchanged(&before, &home, "policy");

    let w = World::new();
    w.survives(drip(false, Duration::from_millis(200)), "transport error");
    w.survives(silent(), "transport error");
}

/// With the default timeouts and retry budget, a protect against a server
/// that accepts and never answers fails within a minute.
#[test]
fn protect_against_a_silent_server_fails_within_a_minute_by_default() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let c = Client::new(ClientConfig::new(&home, &home)).unwrap();
    let h = Hostile::new(silent());
    let policy = c
        .make_policy(&[format!("alice@example.org via {}", h.url)], Some((1, 1)))
        .unwrap();
    let before = snapshot(&home);
    let t0 = Instant::now();
    let e = c
        .protect("p", SECRET, &policy, &ProtectOptions::default())
        .unwrap_err();
    let took = t0.elapsed();
    eprintln!("protect against a silent server (default timeouts): {took:?}");
    assert!(took < Duration::from_secs(60), "{took:?}");
    match &e {
        Error::Incomplete { failures, .. } => {
            assert!(failures[0].message.starts_with("transport error"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    assert_unchanged(&before, &home, "protect");
}

// ---------------------------------------------------------------------
// 3. Wrong versions, unknown keys.

#[test]
fn wrong_versions_and_unknown_keys_are_protocol_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let (c, _) = lone_client(&tmp);
    let w = World::new();

    // Unknown key in a policy.
    w.a.set(rewrite(|_, v| v["surprise"] = json!(true)));
    let e = c.server_policy(&w.a.url).unwrap_err();
    assert!(matches!(e, Error::Protocol(_)), "{e:?}");
    w.a.honest();

    let version_2 = || {
        rewrite(|_, v| {
            for k in [
                "passcrow-escrow-response",
                "passcrow-verification-response",
                "passcrow-recovery-response",
                "passcrow-deletion-response",
            ] {
                if v.get(k).is_some() {
                    v[k] = json!("2.0");
                }
            }
        })
    };
    w.survives(version_2(), "protocol error");
    w.survives(
        rewrite(|_, v| v["surprise"] = json!({"a": [1, 2]})),
        "protocol error",
    );
}

// ---------------------------------------------------------------------
// 4. A policy with no "1.0".

#[test]
fn a_policy_without_version_1_0_is_refused() {
    let w = World::new();
    let before = snapshot(&w.home);
    w.a.set(rewrite(|m, v| {
        if m == "policy" {
            v["passcrow-versions"] = json!(["0.9", "2.0", "1.0.1", " 1.0"]);
        }
    }));
    let c = w.client();
    let t0 = Instant::now();
    let e = c.server_policy(&w.a.url).unwrap_err();
    within(t0, fast_timeouts().policy, "policy");
    assert!(
        matches!(&e, Error::Protocol(m) if m.contains("does not speak protocol 1.0")),
        "{e:?}"
    );
    let policy = World::policy_for(&c, [&w.a.url, &w.b.url, &w.c.url]);
    let e = c
        .protect("fresh", SECRET, &policy, &ProtectOptions::default())
        .unwrap_err();
    match &e {
        Error::Incomplete { failures, .. } => {
            assert_eq!(failures.len(), 1, "{failures:?}");
            assert_eq!(failures[0].server, w.a.url);
            assert!(failures[0].message.contains("does not speak"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert_unchanged(&before, &w.home, "protect");
    // The pack already made with A still recovers (no policy needed).
    let codes = w.honest_codes();
    let r = c.recover(&w.pack, &codes[..2]).unwrap();
    assert_eq!(secret_of(r), SECRET);
    assert_unchanged(&before, &w.home, "recover");
}

// ---------------------------------------------------------------------
// 5. A share that does not combine.

/// A's real share with its y replaced by random hex (same x, same length).
fn bad_share() -> Behave {
    only(
        "recoveryrequest",
        rewrite(|_, v| {
            let s = v["escrow-secret"].as_str().unwrap().to_string();
            let (x, y) = s.split_once('-').unwrap();
            let mut rnd: String = random_key()
                .expose_secret()
                .iter()
                .chain(random_key().expose_secret().iter())
                .map(|b| format!("{b:02x}"))
                .collect();
            // Keep the first digit (so it stays below the prime).
            rnd.truncate(y.len() - 1);
            let bad = format!("{x}-{}{rnd}", &y[..1]);
            assert_ne!(bad, s);
            v["escrow-secret"] = json!(bad);
        }),
    )
}

#[test]
fn a_share_that_does_not_combine() {
    let w = World::new();
    let before = snapshot(&w.home);
    let t = fast_timeouts();
    w.a.set(bad_share());

    // A's bad share with B's only: a clean error, nothing changed.
    let codes = w.honest_codes();
    let c = w.client();
    let t0 = Instant::now();
    let e = c.recover(&w.pack, &codes[..2]).unwrap_err();
    within(t0, t.recovery, "recover via A and B");
    assert!(matches!(e, Error::Decrypt(_) | Error::Protocol(_)), "{e:?}");
    assert_clean(&e.to_string(), 1000, "the error");
    assert_unchanged(&before, &w.home, "recover via A and B");

    // With all three: the client tries subsets, B and C open it.
    let codes = w.honest_codes();
    let t0 = Instant::now();
    let r = c.recover(&w.pack, &codes).unwrap();
    within(t0, t.recovery, "recover via A, B and C");
    assert_eq!(secret_of(r), SECRET);
    assert_eq!(
        w.a.hits()
            .iter()
            .filter(|m| *m == "recoveryrequest")
            .count(),
        2
    );
    assert_unchanged(&before, &w.home, "recover via A, B and C");
}

// ---------------------------------------------------------------------
// 6. An ephemeral pack that does not decrypt.

#[test]
fn an_ephemeral_pack_that_does_not_decrypt() {
    let tmp = tempfile::tempdir().unwrap();
    let (c, home) = lone_client(&tmp);
    let before = snapshot(&home);
    let sealed = seal(&random_key(), b"not the pack").unwrap();
    let h = Hostile::new(Arc::new(move |req, s, _| {
        let id = req.json()["escrow-data-id"].clone();
        let body = match req.method.as_str() {
            "recoveryrequest" => json!({
                "passcrow-recovery-response": "1.0",
                "escrow-secret": sealed,
            }),
            _ => json!({
                "passcrow-verification-response": "1.0",
                "escrow-data-id": id,
                "expiration": 4_000_000_000i64,
                "hint": "a*@e*ple.org",
            }),
        };
        respond(s, 200, "", body.to_string().as_bytes());
    }));
    let stub = c.pack(&format!("{}:AbCd-EfGh-JkMn-PqRs", h.url)).unwrap();
    let t0 = Instant::now();
    let e = c.recover(&stub, &["1123456"]).unwrap_err();
    // One scrypt (2^20) after the answer.
    within(
        t0,
        fast_timeouts().recovery + Duration::from_secs(20),
        "recover",
    );
    assert!(matches!(e, Error::Decrypt(_)), "{e:?}");
    assert_eq!(h.hits(), ["recoveryrequest"]);
    assert_unchanged(&before, &home, "ephemeral recover");
}

// ---------------------------------------------------------------------
// 7. Escape sequences and bidi characters.

/// A verification answer with an evil hint and action URL; recovery
/// answers with an evil error text.
fn evil_texts(action_url: &'static str, expiration: i64) -> Behave {
    Arc::new(move |req, s, up| match req.method.as_str() {
        "verificationrequest" => {
            let id = req.json()["escrow-data-id"].clone();
            let body = json!({
                "passcrow-verification-response": "1.0",
                "escrow-data-id": id,
                "expiration": expiration,
                "hint": evil("b*@e*ple.org"),
                "action-url": action_url,
            });
            respond(s, 200, "", body.to_string().as_bytes());
        }
        "recoveryrequest" => {
            let body =
                json!({"error": evil("Incorrect verification code"), "error-kind": evil("x")});
            respond(s, 200, "", body.to_string().as_bytes());
        }
        _ => {
            let (status, body) = forward(req, up.unwrap());
            respond(s, status, "", &body);
        }
    })
}

/// A harmless verification answer that asks the real server nothing (the
/// real server sends at most five codes an hour per escrow).
fn fake_verification() -> Behave {
    Arc::new(|req, s, up| {
        if req.method == "verificationrequest" {
            let body = json!({
                "passcrow-verification-response": "1.0",
                "escrow-data-id": req.json()["escrow-data-id"],
                "expiration": passcrow::util::clock::unix_now() + 600,
                "hint": "b*@e*ple.org",
            });
            respond(s, 200, "", body.to_string().as_bytes());
        } else {
            let (status, body) = forward(req, up.unwrap());
            respond(s, status, "", &body);
        }
    })
}

#[test]
fn escapes_and_bidi_never_reach_the_caller() {
    let w = World::new();
    let before = snapshot(&w.home);
    let now = passcrow::util::clock::unix_now();
    // B and C answer verifications themselves until codes are needed.
    w.b.set(fake_verification());
    w.c.set(fake_verification());
    for url in [
        "javascript:alert(1)",
        "https://ex.org/\u{1b}[2J",
        "https://ex.org/\u{202e}fdp.exe",
    ] {
        w.a.set(evil_texts(url, now + 600));
        let c = w.client();
        let v = c.verify(&w.pack).unwrap();
        assert_eq!(v.hints.len(), 3, "{v:?}");
        let a = v.hints.iter().find(|h| h.server == w.a.url).unwrap();
        assert_clean(&a.hint, 200, "A's hint");
        assert!(
            a.hint.starts_with("]0;pwned[2J31mb*@e*ple.org"),
            "{:?}",
            a.hint
        );
        assert_eq!(a.action_url, None, "{url:?}");
    }

    // Times out of range are clamped (no overflow in `expiration - now`).
    for (t, want) in [(i64::MIN, 0), (-1, 0), (i64::MAX, MAX_TIME)] {
        w.a.set(evil_texts("https://ex.org/", t));
        let v = w.client().verify(&w.pack).unwrap();
        let a = v.hints.iter().find(|h| h.server == w.a.url).unwrap();
        assert_eq!(a.expiration, want, "{t}");
    }

    // A 200 with a JSON error, and other status codes.
    let c = w.client();
    for status in [200, 400, 500] {
        let h = Hostile::new(fixed(
            status,
            "",
            json!({"error": evil("Internal Error")})
                .to_string()
                .into_bytes(),
        ));
        let e = c.server_policy(&h.url).unwrap_err();
        assert_clean(&e.to_string(), 1000, "an error answer");
    }
    // An unknown key made of escapes, and a garbage status line.
    let key = evil("k");
    w.a.set(rewrite(move |_, v| v[key.as_str()] = json!(1)));
    let e = c.server_policy(&w.a.url).unwrap_err();
    assert!(matches!(e, Error::Protocol(_)), "{e:?}");
    assert_clean(&e.to_string(), 1000, "an unknown key's error");
    let h = Hostile::new(Arc::new(|_, s, _| {
        let _ = s.write_all(evil("HTTP/1.1 200").as_bytes());
        let _ = s.write_all(b"\r\n\r\n");
    }));
    let e = c.server_policy(&h.url).unwrap_err();
    assert_clean(&e.to_string(), 1000, "a bad status line's error");
    assert_unchanged(&before, &w.home, "client");

    // The CLI: verify (recover without codes) and recover, plain and -b.
    let cli = |args: &[&str]| -> (bool, String, String) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_passcrow"));
        cmd.arg("recover")
            .args(["-H", w.home.to_str().unwrap()])
            .args(args);
        common::run(&mut cmd)
    };
    let check = |(ok, out, err): (bool, String, String), what: &str| {
        for (s, n) in [(&out, "stdout"), (&err, "stderr")] {
            assert!(!s.contains('\u{1b}'), "{what} {n}: ESC in {s:?}");
            assert!(!s.contains('\u{9b}'), "{what} {n}: CSI in {s:?}");
            assert!(!s.contains('\u{202e}'), "{what} {n}: RLO in {s:?}");
            assert!(!s.contains("panicked"), "{what} {n}: {s}");
        }
        ok
    };
    w.a.set(evil_texts("javascript:alert(1)", now + 600));
    assert!(check(cli(&["wallet"]), "verify"));
    assert!(check(cli(&["-b", "wallet"]), "verify -b"));
    // A hostile expiration must not crash the CLI either.
    w.a.set(evil_texts("javascript:alert(1)", i64::MIN));
    assert!(check(cli(&["wallet"]), "verify, expiration i64::MIN"));
    w.a.set(evil_texts("javascript:alert(1)", i64::MAX));
    assert!(check(cli(&["wallet"]), "verify, expiration i64::MAX"));
    w.b.honest();
    w.c.honest();
    // Error texts: A's refusal of a code, and a failure overall.
    let codes = w.honest_codes();
    w.a.set(evil_texts("https://ex.org/", now + 600));
    let c = w.client();
    let e = c.recover(&w.pack, &codes[..2]).unwrap_err();
    assert_clean(&e.to_string(), 4000, "recover's error");
    assert!(e.to_string().contains("Incorrect"), "{e}");
    let codes = w.honest_codes();
    assert!(!check(cli(&["wallet", &codes[0], &codes[1]]), "recover"));
    let codes = w.honest_codes();
    assert!(!check(
        cli(&["-b", "wallet", &codes[0], &codes[1]]),
        "recover -b"
    ));
    assert_unchanged(&before, &w.home, "CLI");
}

// ---------------------------------------------------------------------
// 8. Redirects.

#[test]
fn redirects_are_not_followed() {
    let elsewhere = Hostile::start(
        "127.0.0.2",
        None,
        Some(fixed(
            200,
            "",
            br#"{"error": "you followed a redirect"}"#.to_vec(),
        )),
    );
    let tmp = tempfile::tempdir().unwrap();
    let (c, home) = lone_client(&tmp);
    let before = snapshot(&home);
    for status in [301, 302, 303, 307, 308] {
        let loc = format!("Location: {}/passcrow/policy\r\n", elsewhere.url);
        let loc: &'static str = Box::leak(loc.into_boxed_str());
        let h = Hostile::new(fixed(status, loc, b"{}".to_vec()));
        let t0 = Instant::now();
        let e = c.server_policy(&h.url).unwrap_err();
        within(t0, fast_timeouts().policy, "redirect");
        assert!(
            matches!(&e, Error::Server { message, .. } if message.contains("redirect")),
            "{status}: {e:?}"
        );
        assert_eq!(h.hits(), ["policy"]);
    }
    assert_unchanged(&before, &home, "policy");

    let w = World::new();
    let loc = format!("Location: {}/passcrow/x\r\n", elsewhere.url);
    w.survives(
        fixed(307, Box::leak(loc.into_boxed_str()), b"{}".to_vec()),
        "server ",
    );
    assert!(
        elsewhere.hits().is_empty(),
        "followed: {:?}",
        elsewhere.hits()
    );
}

// ---------------------------------------------------------------------
// 9. Plain HTTP to hosts that are not loopback.

/// Sends only to 127.0.0.1 (through ureq); counts what else it was asked
/// to send, and sends none of it.
struct LoopbackOnly {
    inner: UreqTransport,
    elsewhere: AtomicUsize,
}

impl Transport for LoopbackOnly {
    fn post(&self, r: &HttpRequest<'_>) -> Result<HttpResponse, TransportError> {
        if r.url.starts_with("http://127.0.0.1:") {
            self.inner.post(r)
        } else {
            self.elsewhere.fetch_add(1, Ordering::SeqCst);
            Err(TransportError::Connect("not sent (test)".into()))
        }
    }
}

#[test]
fn plain_http_to_other_hosts_is_refused_before_any_request() {
    let w = World::new();
    let before = snapshot(&w.home);
    let guarded = |allow: bool| {
        let mut cfg = fast_config(&w.home);
        cfg.allow_plain_http = allow;
        let t = Arc::new(LoopbackOnly {
            inner: UreqTransport::with_connect_timeout(Duration::from_secs(1)),
            elsewhere: AtomicUsize::new(0),
        });
        (Client::with_transport(cfg, t.clone()).unwrap(), t)
    };
    let far = ["http://passcrow.example.org", "http://10.0.0.1:1"];
    let (c, t) = guarded(false);
    for s in far {
        let e = c.server_policy(s).unwrap_err();
        assert!(
            matches!(&e, Error::BadInput(m) if m.contains("refusing plain HTTP")),
            "{s}: {e:?}"
        );
    }
    // protect with one far server: refused, nothing written or sent.
    let policy = World::policy_for(&c, [far[1], &w.b.url, &w.c.url]);
    let e = c
        .protect("fresh", SECRET, &policy, &ProtectOptions::default())
        .unwrap_err();
    assert!(e.to_string().contains("refusing plain HTTP"), "{e}");
    // verify and recover of a pack whose first escrow is on a far server:
    // B and C still work.
    let mut pack = w.pack.clone();
    pack.escrow[0].server = far[1].into();
    let v = c.verify(&pack).unwrap();
    assert_eq!(v.hints.len(), 2);
    assert!(
        v.failures[0].message.contains("refusing plain HTTP"),
        "{v:?}"
    );
    let typed = ["1123456".to_string(), w.code(1), w.code(2)];
    assert_eq!(secret_of(c.recover(&pack, &typed).unwrap()), SECRET);
    assert_eq!(t.elsewhere.load(Ordering::SeqCst), 0, "a request went out");
    assert_unchanged(&before, &w.home, "refused");

    // Allowed: the refusal is gone, the request reaches the transport.
    let (c, t) = guarded(true);
    let e = c.server_policy(far[1]).unwrap_err();
    assert!(matches!(&e, Error::Transport(_)), "{e:?}");
    assert!(!e.to_string().contains("refusing"), "{e}");
    assert_eq!(t.elsewhere.load(Ordering::SeqCst), 1);
    // And over the real transport: a name that never resolves (RFC 6761).
    let mut cfg = fast_config(&w.home);
    cfg.allow_plain_http = true;
    let c = Client::new(cfg).unwrap();
    let t0 = Instant::now();
    let e = c.server_policy("http://passcrow.invalid:1").unwrap_err();
    within(t0, fast_timeouts().policy, "passcrow.invalid");
    assert!(matches!(&e, Error::Transport(_)), "{e:?}");
    assert!(!e.to_string().contains("refusing"), "{e}");
    assert_unchanged(&before, &w.home, "allowed");
}

/// The CLI's `--allow-plain-http`: without it a plain http:// server that is
/// not on loopback is refused before anything is sent or written; with it
/// the request is made (and fails here only because the name never
/// resolves, RFC 6761).
#[test]
fn the_cli_refuses_plain_http_unless_allowed() {
    let home = tempfile::tempdir().unwrap();
    let before = snapshot(home.path());
    let protect = |allow: bool| {
        let mut cmd = common::passcrow();
        cmd.args([
            "protect",
            "-H",
            home.path().to_str().unwrap(),
            "-I",
            "-b",
            "-r",
            "1/1",
        ]);
        if allow {
            cmd.arg("--allow-plain-http");
        }
        cmd.args([
            "-n",
            "wallet",
            "-p",
            "a@example.org via http://passcrow.invalid:1",
            "-",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        child.stdin.take().unwrap().write_all(b"secret").unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, err) = protect(false);
    assert!(!ok && err.contains("refusing plain HTTP"), "{err}");
    assert!(
        err.contains("--allow-plain-http"),
        "the refusal names the flag: {err}"
    );
    assert_unchanged(&before, home.path(), "refused");
    let (ok, err) = protect(true);
    assert!(!ok, "{err}");
    assert!(!err.contains("refusing"), "{err}");
    assert!(err.contains("passcrow.invalid"), "{err}");
    assert_unchanged(&before, home.path(), "failed");
}

// ---------------------------------------------------------------------
// 10. Escrow ids with control characters, or too long.

#[test]
fn bad_escrow_ids_are_refused() {
    let w = World::new();
    let before = snapshot(&w.home);
    let t = fast_timeouts();
    for bad in [
        "1700000000-ab\u{1b}[2Jcd".to_string(),
        "1700000000-ab\u{0}cd".to_string(),
        "x".repeat(10_000),
        String::new(),
    ] {
        let b = bad.clone();
        w.a.set(only(
            "escrowrequest",
            rewrite(move |_, v| v["escrow-data-id"] = json!(b)),
        ));
        let c = w.client();
        let policy = World::policy_for(&c, [&w.a.url, &w.b.url, &w.c.url]);
        let t0 = Instant::now();
        let e = c
            .protect("fresh", SECRET, &policy, &ProtectOptions::default())
            .unwrap_err();
        within(t0, t.policy + t.escrow + t.deletion, "protect");
        match &e {
            Error::Incomplete { failures, .. } => {
                assert_eq!(failures.len(), 1, "{failures:?}");
                assert_eq!(failures[0].server, w.a.url);
                assert!(
                    failures[0].message.starts_with("protocol error")
                        && failures[0].message.contains("escrow id"),
                    "{e}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert_clean(&e.to_string(), 2000, "the error");
        assert_unchanged(&before, &w.home, "protect");
    }
    // The same id in a verification answer: A fails, B and C work.
    w.survives_at(
        only(
            "verificationrequest",
            rewrite(|_, v| v["escrow-data-id"] = json!("x".repeat(10_000))),
        ),
        "protocol error",
        &["verify"],
    );
}
