//! Protocol tests: [`Server::handle`] driven directly (no HTTP) over an
//! in-memory or file SQLite store, a recording deliverer and a clock the
//! test moves. Each bad request checks its error and that nothing changed.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use super::*;
use crate::crypto::{self, random_key, seal};

const T0: i64 = 1_800_000_000;

/// Remembers every message instead of sending it; while `fail` is set,
/// refuses them as an unreachable mail server would.
#[derive(Default)]
struct Recorder {
    sent: Mutex<Vec<(String, Option<String>, String)>>,
    fail: AtomicBool,
}

impl Recorder {
    fn last_code(&self, to: &str) -> Option<String> {
        let s = self.sent.lock().unwrap();
        s.iter()
            .rev()
            .find(|(who, code, _)| who == to && code.is_some())
            .and_then(|(_, c, _)| c.clone())
    }
    fn count(&self) -> usize {
        self.sent.lock().unwrap().len()
    }
}

impl Deliver for Recorder {
    fn name(&self) -> &str {
        "recorder"
    }
    fn deliver(&self, msg: &Outgoing) -> ServerResult<()> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(ServerError::delivery("recorder", "connection refused"));
        }
        self.sent.lock().unwrap().push((
            msg.to.to_string(),
            msg.code().map(str::to_string),
            msg.long_text(),
        ));
        Ok(())
    }
}

struct Fixture {
    server: Server,
    rec: Arc<Recorder>,
    clock: Arc<AtomicI64>,
}

fn fixture_with(cfg: Config, storage: Box<dyn Storage>) -> Fixture {
    let rec = Arc::new(Recorder::default());
    let mut d: BTreeMap<String, Arc<dyn Deliver>> = BTreeMap::new();
    for k in ["email", "mailto", "tel", "sms"] {
        d.insert(k.into(), rec.clone());
    }
    fixture_delivering(cfg, storage, rec, d)
}

/// A server delivering through `d` (which records into `rec`), on a clock
/// the test moves.
fn fixture_delivering(
    cfg: Config,
    storage: Box<dyn Storage>,
    rec: Arc<Recorder>,
    d: BTreeMap<String, Arc<dyn Deliver>>,
) -> Fixture {
    let mut server = Server::with_parts(cfg, storage, &random_key(), d);
    let clock = Arc::new(AtomicI64::new(T0));
    let c = clock.clone();
    server.set_clock(Box::new(move || c.load(Ordering::SeqCst)));
    Fixture { server, rec, clock }
}

fn fixture() -> Fixture {
    let mut cfg = Config::new("/nonexistent");
    // Our test numbers are Icelandic (+354...).
    cfg.outbound.sms_countries = Some(vec!["354".into()]);
    fixture_with(cfg, Box::new(SqliteStorage::in_memory().unwrap()))
}

struct Escrowed {
    id: String,
    key: String,
}

fn escrow_body(
    verify: &str,
    notify: Option<&str>,
    secret: &str,
    expiration: i64,
    payment: Option<&str>,
) -> (String, String, String) {
    let rkey = random_key();
    let mut esd = serde_json::json!({
        "description": "Test secret",
        "secret": secret,
        "verify": verify,
        "timeout": 1800,
    });
    if let Some(n) = notify {
        esd["notify"] = n.into();
    }
    let blob = seal(&rkey, esd.to_string().as_bytes()).unwrap();
    let pay = payment
        .map(str::to_string)
        .unwrap_or_else(|| "free:0".into());
    let params = serde_json::json!({
        "kind": verify.split(':').next().unwrap(),
        "expiration": expiration,
        "payment": pay,
    });
    (escrow_request(&blob, &params), rkey.to_b64(), blob)
}

/// An escrow request for `blob` with these parameters, sealed under a
/// fresh parameters key.
fn escrow_request(blob: &str, params: &serde_json::Value) -> String {
    let pkey = random_key();
    serde_json::json!({
        "passcrow-escrow-request": "1.0",
        "parameters-key": pkey.to_b64(),
        "parameters": seal(&pkey, params.to_string().as_bytes()).unwrap(),
        "escrow-data": [blob],
    })
    .to_string()
}

/// A hashcash-11 token for `blob`, stamped `now`.
fn hashcash_token(blob: &str, now: i64) -> String {
    let counter = (0u64..)
        .find(|&c| crate::payment::hashcash_valid(11, blob.as_bytes(), c, now as u64))
        .unwrap();
    format!("hashcash-11:{counter:x}-{now:x}")
}

fn ok(a: &Answer) -> serde_json::Value {
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(!a.is_error(), "unexpected error: {}", a.body);
    serde_json::from_str(&a.body).unwrap()
}

fn err(a: &Answer, kind: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    assert!(v["error"].is_string(), "expected an error, got {}", a.body);
    assert_eq!(v["error-kind"], kind, "{}", a.body);
    v
}

impl Fixture {
    fn now(&self) -> i64 {
        self.clock.load(Ordering::SeqCst)
    }
    fn advance(&self, s: i64) {
        self.clock.fetch_add(s, Ordering::SeqCst);
    }
    fn escrow_with(&self, verify: &str, notify: Option<&str>, secret: &str) -> Escrowed {
        let (body, key, _) = escrow_body(verify, notify, secret, self.now() + 86400, None);
        let v = ok(&self.server.handle_named("escrowrequest", body.as_bytes()));
        assert_eq!(v["expiration"], self.now() + 86400);
        Escrowed {
            id: v["escrow-data-id"].as_str().unwrap().into(),
            key,
        }
    }
    fn escrow(&self) -> Escrowed {
        self.escrow_with("email:alice@example.org", None, "1-abcdef")
    }
    fn verify(&self, e: &Escrowed) -> Answer {
        let b = serde_json::json!({
            "passcrow-verification-request": "1.0",
            "escrow-data-id": e.id,
            "escrow-data-key": e.key,
            "language": "en",
            "prefix": "A",
        });
        self.server
            .handle_named("verificationrequest", b.to_string().as_bytes())
    }
    fn recover(&self, e: &Escrowed, code: &str) -> Answer {
        self.recover_key(e, &e.key, code)
    }
    fn recover_key(&self, e: &Escrowed, key: &str, code: &str) -> Answer {
        let b = serde_json::json!({
            "passcrow-recovery-request": "1.0",
            "escrow-data-id": e.id,
            "escrow-data-key": key,
            "verification": code,
        });
        self.server
            .handle_named("recoveryrequest", b.to_string().as_bytes())
    }
    fn counts(&self) -> storage::Counts {
        self.server.storage.counts().unwrap()
    }
}

fn wrong(code: &str) -> String {
    let (p, d) = code.split_at(1);
    let n: u32 = d.parse().unwrap();
    format!("{p}{:06}", (n + 1) % 1_000_000)
}

#[test]
fn full_cycle_and_code_consumed() {
    let f = fixture();
    let e = f.escrow();
    assert_eq!(e.id.split_once('-').unwrap().0, format!("{:x}", T0 + 86400));
    let v = ok(&f.verify(&e));
    assert_eq!(v["hint"], "a*@e*ple.org");
    assert_eq!(v["expiration"], T0 + 1800);
    // Exactly the reference's keys.
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "escrow-data-id",
            "expiration",
            "hint",
            "passcrow-verification-response"
        ]
    );
    let code = f.rec.last_code("email:alice@example.org").unwrap();
    assert!(code.starts_with('A') && code.len() == 7);
    assert!(code[1..].bytes().all(|b| b.is_ascii_digit()));
    // Codes compare case-insensitively, blanks trimmed.
    let r = ok(&f.recover(&e, &format!("  {}  ", code.to_lowercase())));
    assert_eq!(r["escrow-secret"], "1-abcdef");
    // Consumed by its use.
    let again = f.recover(&e, &code);
    let v = err(&again, "not-found");
    assert!(v["error"]
        .as_str()
        .unwrap()
        .contains("No verification code"));
    // The escrow itself stays.
    assert_eq!(f.counts().escrows, 1);
    // Aliases of the seed document.
    ok(&f.server.handle_named("policy", b""));
    ok(&f.server.handle_named("policy", b"{}"));
    let v = ok(&f.verify(&e));
    assert!(v["hint"].is_string());
    let code = f.rec.last_code("email:alice@example.org").unwrap();
    let b = serde_json::json!({
        "passcrow-recovery-request": "1.0",
        "escrow-data-id": e.id,
        "escrow-data-key": e.key,
        "verification": code,
    });
    ok(&f.server.handle_named("recover", b.to_string().as_bytes()));
    let d = serde_json::json!({"passcrow-deletion-request": "1.0", "escrow-data-id": e.id});
    ok(&f.server.handle_named("delete", d.to_string().as_bytes()));
    assert_eq!(f.counts().escrows, 0);
}

#[test]
fn lockout_after_three_wrong_codes() {
    let f = fixture();
    let e = f.escrow();
    ok(&f.verify(&e));
    let code = f.rec.last_code("email:alice@example.org").unwrap();
    let bad = wrong(&code);
    let v = err(&f.recover(&e, &bad), "wrong-code");
    assert_eq!(v["attempts-left"], 2);
    assert_eq!(v["error"], "Incorrect verification code (2 attempts left)");
    let v = err(&f.recover(&e, &bad), "wrong-code");
    assert_eq!(v["attempts-left"], 1);
    let v = err(&f.recover(&e, &bad), "wrong-code");
    assert_eq!(v["attempts-left"], 0);
    assert!(v["error"].as_str().unwrap().contains("void"));
    // Now even the right code is refused, and says why.
    let v = err(&f.recover(&e, &code), "wrong-code");
    assert!(v["error"].as_str().unwrap().contains("void"), "{v}");
    assert_eq!(f.counts().escrows, 1);
    // A new code works.
    ok(&f.verify(&e));
    let code2 = f.rec.last_code("email:alice@example.org").unwrap();
    err(&f.recover(&e, &wrong(&code2)), "wrong-code");
    err(&f.recover(&e, &wrong(&code2)), "wrong-code");
    // The right code on the last attempt still works.
    ok(&f.recover(&e, &code2));
}

#[test]
fn wrong_key_spends_no_attempt_and_changes_nothing() {
    let f = fixture();
    let e = f.escrow();
    ok(&f.verify(&e));
    let code = f.rec.last_code("email:alice@example.org").unwrap();
    let other = random_key().to_b64();
    for _ in 0..5 {
        let v = err(&f.recover_key(&e, &other, &code), "bad-request");
        assert!(v["error"]
            .as_str()
            .unwrap()
            .contains("wrong escrow-data-key"));
    }
    err(&f.recover_key(&e, "not base64!", &code), "bad-request");
    // Wrong key on verification: no code sent, nothing counted.
    let n = f.rec.count();
    let b = serde_json::json!({
        "passcrow-verification-request": "1.0",
        "escrow-data-id": e.id, "escrow-data-key": other, "prefix": "B",
    });
    err(
        &f.server
            .handle_named("verificationrequest", b.to_string().as_bytes()),
        "bad-request",
    );
    assert_eq!(f.rec.count(), n);
    // The pending code and all its attempts are intact.
    ok(&f.recover(&e, &code));
}

#[test]
fn verifications_per_hour() {
    let f = fixture();
    let e = f.escrow();
    for _ in 0..5 {
        ok(&f.verify(&e));
    }
    let sent = f.rec.count();
    let code = f.rec.last_code("email:alice@example.org").unwrap();
    let v = err(&f.verify(&e), "rate-limited");
    assert!(v["error"].as_str().unwrap().contains("per hour"));
    assert_eq!(f.rec.count(), sent, "no code sent when limited");
    // The code issued last is still the one pending.
    f.advance(60);
    ok(&f.recover(&e, &code));
    f.advance(3600);
    ok(&f.verify(&e));
}

#[test]
fn a_failed_delivery_costs_neither_the_code_nor_the_hour() {
    let f = fixture();
    let e = f.escrow();
    ok(&f.verify(&e));
    let code = f.rec.last_code("email:alice@example.org").unwrap();
    f.rec.fail.store(true, Ordering::SeqCst);
    for _ in 0..5 {
        let v = err(&f.verify(&e), "internal");
        assert!(v["error"].as_str().unwrap().contains("deliver"), "{v}");
    }
    f.rec.fail.store(false, Ordering::SeqCst);
    // The code sent before the failures is still the pending one.
    ok(&f.recover(&e, &code));
    // None of the five counted: four more of the hour's five go out.
    for _ in 0..4 {
        ok(&f.verify(&e));
    }
    err(&f.verify(&e), "rate-limited");
}

#[test]
fn failed_deliveries_are_forgiven_at_most_five_an_hour() {
    let f = fixture();
    let e = f.escrow();
    f.rec.fail.store(true, Ordering::SeqCst);
    // Five failures are given back, the next five count: an outage or a
    // flaky provider gets at most ten attempts an hour out of one escrow.
    for _ in 0..10 {
        err(&f.verify(&e), "internal");
    }
    err(&f.verify(&e), "rate-limited");
    assert_eq!(f.counts().codes, 0, "no undelivered code is stored");
    f.advance(3600);
    f.rec.fail.store(false, Ordering::SeqCst);
    ok(&f.verify(&e));
}

/// How long a gated test waits for a step before it fails (not hangs).
const WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Holds every message until the test says how its delivery ends: hands
/// the code over `entered`, then waits for a verdict (true: delivered to
/// the recorder; false: refused).
struct Gate {
    rec: Arc<Recorder>,
    entered: Mutex<std::sync::mpsc::Sender<String>>,
    verdicts: Mutex<std::sync::mpsc::Receiver<bool>>,
}

impl Deliver for Gate {
    fn name(&self) -> &str {
        "gate"
    }
    fn deliver(&self, msg: &Outgoing) -> ServerResult<()> {
        let code = msg.code().unwrap_or_default().to_string();
        self.entered.lock().unwrap().send(code).unwrap();
        let verdict = self.verdicts.lock().unwrap().recv_timeout(WAIT);
        if verdict == Ok(true) {
            self.rec.deliver(msg)
        } else {
            Err(ServerError::delivery("gate", "refused"))
        }
    }
}

/// A fixture whose e-mail goes through a [`Gate`]: the codes handed over,
/// and where to send verdicts.
fn gated_fixture() -> (
    Fixture,
    std::sync::mpsc::Receiver<String>,
    std::sync::mpsc::Sender<bool>,
) {
    let rec = Arc::new(Recorder::default());
    let (entered, codes) = std::sync::mpsc::channel();
    let (verdict, verdicts) = std::sync::mpsc::channel();
    let gate: Arc<dyn Deliver> = Arc::new(Gate {
        rec: rec.clone(),
        entered: Mutex::new(entered),
        verdicts: Mutex::new(verdicts),
    });
    let mut d: BTreeMap<String, Arc<dyn Deliver>> = BTreeMap::new();
    d.insert("email".into(), gate);
    let f = fixture_delivering(
        Config::new("/nonexistent"),
        Box::new(SqliteStorage::in_memory().unwrap()),
        rec,
        d,
    );
    (f, codes, verdict)
}

#[test]
fn a_code_on_its_way_is_not_pending_and_failures_in_any_order_keep_the_delivered_one() {
    let (f, codes, verdict) = gated_fixture();
    let e = f.escrow();
    verdict.send(true).unwrap();
    ok(&f.verify(&e));
    let delivered = codes.recv_timeout(WAIT).expect("a delivery");
    std::thread::scope(|s| {
        let first = s.spawn(|| f.verify(&e));
        let on_its_way = codes.recv_timeout(WAIT).expect("a delivery");
        // Not received by anybody yet: it can't be used, or guessed at.
        if on_its_way != delivered {
            let v = err(&f.recover(&e, &on_its_way), "wrong-code");
            assert_eq!(v["attempts-left"], 2, "{v}");
        }
        let second = s.spawn(|| f.verify(&e));
        codes.recv_timeout(WAIT).expect("a delivery");
        // Both fail; the first to start is the first to hear.
        verdict.send(false).unwrap();
        verdict.send(false).unwrap();
        err(&first.join().unwrap(), "internal");
        err(&second.join().unwrap(), "internal");
    });
    ok(&f.recover(&e, &delivered));
}

#[test]
fn a_code_delivered_after_its_escrow_was_deleted_is_not_kept() {
    let (f, codes, verdict) = gated_fixture();
    let e = f.escrow();
    std::thread::scope(|s| {
        let v = s.spawn(|| f.verify(&e));
        codes.recv_timeout(WAIT).expect("a delivery");
        let d = serde_json::json!({"passcrow-deletion-request": "1.0", "escrow-data-id": e.id});
        ok(&f.server.handle_named("delete", d.to_string().as_bytes()));
        verdict.send(true).unwrap();
        err(&v.join().unwrap(), "not-found");
    });
    assert_eq!(f.counts(), storage::Counts::default());
}

#[test]
fn an_smtp_server_that_refuses_leaves_no_code_and_gives_the_hour_back() {
    // A real SMTP client against a loopback server that refuses every
    // session in its greeting (554), as one that is out of service does.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let sessions = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = sessions.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            seen.fetch_add(1, Ordering::SeqCst);
            let _ = std::io::Write::write_all(&mut conn, b"554 5.3.2 Service unavailable\r\n");
        }
    });
    let settings = delivery::SmtpSettings::from_url(
        &format!("smtp://127.0.0.1:{port}"),
        "Passcrow <noreply@example.org>",
    )
    .unwrap();
    let smtp: Arc<dyn Deliver> = Arc::new(delivery::Smtp::new(settings).unwrap());
    let mut d: BTreeMap<String, Arc<dyn Deliver>> = BTreeMap::new();
    d.insert("email".into(), smtp);
    let f = fixture_delivering(
        Config::new("/nonexistent"),
        Box::new(SqliteStorage::in_memory().unwrap()),
        Arc::new(Recorder::default()),
        d,
    );
    let e = f.escrow();
    // More than the hour's five: every one fails to deliver, five are
    // given back, so none is answered "rate limited"; no code is stored.
    for _ in 0..7 {
        err(&f.verify(&e), "internal");
    }
    assert!(
        sessions.load(Ordering::SeqCst) >= 7,
        "each one reached the SMTP server"
    );
    assert_eq!(f.counts().codes, 0);
}

#[test]
fn notify_is_told_without_the_code() {
    let f = fixture();
    let e = f.escrow_with("email:alice@example.org", Some("tel:+3545885522"), "2-abc");
    ok(&f.verify(&e));
    let sent = f.rec.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 2);
    let code = sent[0].1.clone().unwrap();
    assert_eq!(sent[1].0, "tel:+3545885522");
    assert_eq!(sent[1].1, None);
    assert!(sent[1].2.contains("a*@e*ple.org"), "{}", sent[1].2);
    assert!(!sent[1].2.contains(&code));
    assert!(!sent[1].2.contains("alice"));
}

#[test]
fn expiry_on_read_and_sweep() {
    let f = fixture();
    let e = f.escrow();
    ok(&f.verify(&e));
    let code = f.rec.last_code("email:alice@example.org").unwrap();
    // The code expires after its timeout.
    f.advance(1801);
    err(&f.recover(&e, &code), "expired");
    ok(&f.verify(&e));
    // The escrow expires after a day: refused on read, even before a sweep.
    f.advance(86400);
    let v = err(&f.verify(&e), "expired");
    assert!(v["error"].as_str().unwrap().contains("expired"));
    err(&f.verify(&e), "expired"); // the id's prefix still tells
    let e2 = f.escrow();
    assert_eq!(f.counts().escrows, 1);
    f.advance(86401);
    let sw = f.server.sweep().unwrap();
    assert_eq!(sw.escrows, 1);
    err(&f.verify(&e2), "expired");
    assert_eq!(f.counts(), storage::Counts::default());
}

/// An escrow with a pending code, for the refusal tests.
fn pending() -> (Fixture, Escrowed, String) {
    let f = fixture();
    let e = f.escrow();
    ok(&f.verify(&e));
    let code = f.rec.last_code("email:alice@example.org").unwrap();
    (f, e, code)
}

/// Send each request, expect an error of `kind` whose text contains
/// `says`, and check that nothing changed: escrows, codes, messages sent,
/// and the pending code's attempts (all three left, then it still works).
type Requests = Vec<(&'static str, Vec<u8>)>;

fn refused_without_change(make: impl Fn(&Escrowed, &str) -> Requests, kind: &str, says: &str) {
    let (f, e, code) = pending();
    let before = (f.counts(), f.rec.count());
    for (method, body) in make(&e, &code) {
        let a = f.server.handle_named(method, &body);
        let v = err(&a, kind);
        let text = v["error"].as_str().unwrap();
        assert!(text.contains(says), "{method}: {text:?} lacks {says:?}");
        assert_eq!(
            (f.counts(), f.rec.count()),
            before,
            "{method}: state changed"
        );
    }
    let v = err(&f.recover(&e, &wrong(&code)), "wrong-code");
    assert_eq!(v["attempts-left"], 2, "attempts were spent");
    ok(&f.recover(&e, &code));
}

#[test]
fn oversize_body() {
    let big = |n| {
        let mut v = b"{\"passcrow-escrow-request\": \"1.0\", \"x\": \"".to_vec();
        v.resize(n, b'a');
        v
    };
    refused_without_change(
        |_, _| {
            vec![
                ("escrowrequest", big(4097)),
                ("recoveryrequest", big(100_000)),
            ]
        },
        "bad-request",
        "too large (the limit is 4096 bytes)",
    );
    let f = fixture();
    assert_eq!(f.server.handle_named("verify", &big(5000)).status, 413);
}

#[test]
fn malformed_json() {
    refused_without_change(
        |_, _| {
            vec![
                ("escrowrequest", b"{not json".to_vec()),
                ("escrowrequest", b"".to_vec()),
                ("verificationrequest", b"[1,2]".to_vec()),
                ("recoveryrequest", vec![0xff, 0xfe, 0x00]),
                ("deletionrequest", b"null".to_vec()),
                (
                    "verificationrequest",
                    b"{\"passcrow-verification-request\": \"1.0\"}".to_vec(),
                ),
            ]
        },
        "bad-request",
        "Bad request",
    );
}

#[test]
fn wrong_types_and_unknown_keys() {
    refused_without_change(
        |e, code| {
            vec![
                (
                    "recoveryrequest",
                    serde_json::json!({"passcrow-recovery-request": "1.0",
                    "escrow-data-id": e.id, "escrow-data-key": e.key, "verification": 123456})
                    .to_string()
                    .into_bytes(),
                ),
                (
                    "recoveryrequest",
                    serde_json::json!({"passcrow-recovery-request": "1.0",
                    "escrow-data-id": e.id, "escrow-data-key": e.key,
                    "verification": code, "extra": 1})
                    .to_string()
                    .into_bytes(),
                ),
            ]
        },
        "bad-request",
        "Bad request",
    );
}

#[test]
fn wrong_version() {
    let body = |v: &str| {
        serde_json::json!({"passcrow-recovery-request": v, "escrow-data-id": "00",
            "escrow-data-key": random_key().to_b64(), "verification": "1000000"})
        .to_string()
        .into_bytes()
    };
    refused_without_change(
        |_, _| vec![("recoveryrequest", body("2.0")), ("recover", body("0.9"))],
        "unsupported",
        "version",
    );
}

#[test]
fn unknown_method() {
    refused_without_change(
        |_, _| {
            vec![
                ("nosuchmethod", b"{}".to_vec()),
                ("../../etc/passwd", b"{}".to_vec()),
            ]
        },
        "unsupported",
        "Unsupported: ",
    );
}

#[test]
fn unknown_id() {
    let key = random_key().to_b64();
    let reqs: Requests = [
        "0123456789abcdef0123456789abcdef",
        "ffffffffff-00",
        "zz",
        "",
        "-",
        "a-b-c",
        "../etc",
    ]
    .iter()
    .flat_map(|id| {
        [
            (
                "verificationrequest",
                serde_json::json!({"passcrow-verification-request": "1.0",
                    "escrow-data-id": id, "escrow-data-key": key, "prefix": "A"})
                .to_string()
                .into_bytes(),
            ),
            (
                "recoveryrequest",
                serde_json::json!({"passcrow-recovery-request": "1.0",
                    "escrow-data-id": id, "escrow-data-key": key, "verification": "A123456"})
                .to_string()
                .into_bytes(),
            ),
        ]
    })
    .collect();
    refused_without_change(|_, _| reqs.clone(), "not-found", "Not found");
}

#[test]
fn bad_prefix() {
    let make = |e: &Escrowed, _: &str| -> Requests {
        ["AB", "", " ", "\u{e9}"]
            .iter()
            .map(|p| {
                (
                    "verificationrequest",
                    serde_json::json!({"passcrow-verification-request": "1.0",
                    "escrow-data-id": e.id, "escrow-data-key": e.key, "prefix": p})
                    .to_string()
                    .into_bytes(),
                )
            })
            .collect()
    };
    refused_without_change(make, "bad-request", "prefix");
}

#[test]
fn escrow_refusals() {
    let f = fixture();
    let now = f.now();
    // A kind we cannot deliver to is refused at once.
    let (b, _, _) = escrow_body("signal:+3545885522", None, "1-a", now + 3600, None);
    let v = err(
        &f.server.handle_named("escrowrequest", b.as_bytes()),
        "unsupported",
    );
    assert!(v["error"]
        .as_str()
        .unwrap()
        .starts_with("Unsupported kind of Identity"));
    // Unknown payment scheme, expired escrow, bad token.
    let (b, _, _) = escrow_body(
        "email:a@example.org",
        None,
        "1-a",
        now + 3600,
        Some("gold:1"),
    );
    err(
        &f.server.handle_named("escrowrequest", b.as_bytes()),
        "payment",
    );
    let (b, _, _) = escrow_body("email:a@example.org", None, "1-a", now - 1, None);
    err(
        &f.server.handle_named("escrowrequest", b.as_bytes()),
        "payment",
    );
    let (b, _, _) = escrow_body(
        "email:a@example.org",
        None,
        "1-a",
        now + 3600,
        Some("hashcash-11:1-2"),
    );
    err(
        &f.server.handle_named("escrowrequest", b.as_bytes()),
        "payment",
    );
    // Parameters that do not open.
    let (b, _, _) = escrow_body("email:a@example.org", None, "1-a", now + 3600, None);
    let mut v: serde_json::Value = serde_json::from_str(&b).unwrap();
    v["parameters-key"] = random_key().to_b64().into();
    err(
        &f.server
            .handle_named("escrowrequest", v.to_string().as_bytes()),
        "bad-request",
    );
    assert_eq!(f.counts().escrows, 0);
    // Free escrow is capped at 25 h.
    let (b, _, _) = escrow_body("email:a@example.org", None, "1-a", now + 10 * 86400, None);
    let v = ok(&f.server.handle_named("escrowrequest", b.as_bytes()));
    assert_eq!(v["expiration"], now + 25 * 3600);
}

#[test]
fn hashcash_is_accepted_once() {
    let f = fixture();
    let now = f.now();
    let (_, _, blob) = escrow_body("email:a@example.org", None, "1-a", now + 86400 * 100, None);
    let token = hashcash_token(&blob, now);
    let params = serde_json::json!({
        "kind": "email", "expiration": now + 86400 * 100, "payment": token});
    let body = escrow_request(&blob, &params);
    let v = ok(&f.server.handle_named("escrowrequest", body.as_bytes()));
    assert_eq!(v["expiration"], now + 86400 * 100);
    f.advance(10);
    let v = err(
        &f.server.handle_named("escrowrequest", body.as_bytes()),
        "payment",
    );
    assert!(v["error"].as_str().unwrap().contains("already used"));
    assert_eq!(f.counts().escrows, 1);
    // Too old, even if never used.
    f.advance(200);
    let v = err(
        &f.server.handle_named("escrowrequest", body.as_bytes()),
        "payment",
    );
    assert!(v["error"].as_str().unwrap().contains("too old"));
}

#[test]
fn a_refused_escrow_keeps_its_hashcash_token() {
    let f = fixture();
    let now = f.now();
    let (_, _, blob) = escrow_body("email:a@example.org", None, "1-a", now + 86400 * 100, None);
    let token = hashcash_token(&blob, now);
    let body = |params: serde_json::Value| escrow_request(&blob, &params);
    // Refused for reasons that have nothing to do with the payment.
    let bad_pref = body(serde_json::json!({
        "kind": "email", "expiration": now + 86400 * 100, "payment": token,
        "prefer-id": "NOT HEX"}));
    let v = err(
        &f.server.handle_named("escrowrequest", bad_pref.as_bytes()),
        "bad-request",
    );
    assert!(v["error"].as_str().unwrap().contains("prefer-id"));
    let past = body(serde_json::json!({
        "kind": "email", "expiration": now - 1, "payment": token}));
    let v = err(
        &f.server.handle_named("escrowrequest", past.as_bytes()),
        "payment",
    );
    assert!(v["error"].as_str().unwrap().contains("expiration"));
    assert_eq!(f.counts().escrows, 0);
    // The token was not spent: a good request still pays with it.
    let good = body(serde_json::json!({
        "kind": "email", "expiration": now + 86400 * 100, "payment": token}));
    let v = ok(&f.server.handle_named("escrowrequest", good.as_bytes()));
    assert_eq!(v["expiration"], now + 86400 * 100);
}

/// Each other spelling of one hashcash proof: the server must refuse them
/// all (before the fix each paid for another escrow).
fn respellings(bits: u32, counter: u64, ts: i64) -> Vec<String> {
    vec![
        format!("hashcash-0{bits}:{counter:x}-{ts:x}"),
        format!("hashcash-+{bits}:{counter:x}-{ts:x}"),
        format!("hashcash-{bits}:{counter:X}-{ts:x}"),
        format!("hashcash-{bits}:{counter:x}-{ts:X}"),
        format!("hashcash-{bits}:0{counter:x}-{ts:x}"),
        format!("hashcash-{bits}:{counter:x}-0{ts:x}"),
        format!("hashcash-{bits}:{counter:x}-00{ts:x}"),
        format!("hashcash-{bits}:+{counter:x}-{ts:x}"),
        format!("hashcash-{bits}: {counter:x}-{ts:x}"),
        format!("hashcash-{bits}:{counter:x}-{ts:x} "),
        format!("hashcash-{bits}:0x{counter:x}-{ts:x}"),
    ]
}

#[test]
fn a_hashcash_proof_pays_once_however_it_is_spelled() {
    let f = fixture();
    let now = f.now();
    let (_, _, blob) = escrow_body("email:a@example.org", None, "1-a", now + 86400 * 100, None);
    // A counter with a letter in it, so upper-casing changes it.
    let counter = (0u64..)
        .find(|&c| {
            format!("{c:x}").bytes().any(|b| b.is_ascii_alphabetic())
                && crate::payment::hashcash_valid(11, blob.as_bytes(), c, now as u64)
        })
        .unwrap();
    let canonical = format!("hashcash-11:{counter:x}-{now:x}");
    let body = |token: &str| {
        escrow_request(
            &blob,
            &serde_json::json!({
                "kind": "email", "expiration": now + 86400 * 100, "payment": token}),
        )
    };
    // Not yet spent: every other spelling is refused, and spends nothing.
    for t in respellings(11, counter, now) {
        assert_ne!(t, canonical);
        let v = err(
            &f.server.handle_named("escrowrequest", body(&t).as_bytes()),
            "payment",
        );
        assert!(
            !v["error"].as_str().unwrap().contains("already used"),
            "{t}: {v}"
        );
    }
    assert_eq!(f.counts().escrows, 0);
    // The canonical spelling pays, once.
    ok(&f
        .server
        .handle_named("escrowrequest", body(&canonical).as_bytes()));
    let v = err(
        &f.server
            .handle_named("escrowrequest", body(&canonical).as_bytes()),
        "payment",
    );
    assert!(v["error"].as_str().unwrap().contains("already used"));
    // Spent: still no other spelling pays.
    for t in respellings(11, counter, now) {
        err(
            &f.server.handle_named("escrowrequest", body(&t).as_bytes()),
            "payment",
        );
    }
    assert_eq!(f.counts().escrows, 1);
}

#[test]
fn a_hashcash_proof_spent_for_more_bits_is_spent_for_fewer() {
    // The digest does not depend on the bits claimed: a 12-bit proof is an
    // 11-bit proof too, and spending it once spends it for both.
    let f = fixture();
    let now = f.now();
    let (_, _, blob) = escrow_body("email:a@example.org", None, "1-a", now + 86400 * 100, None);
    let counter = (0u64..)
        .find(|&c| crate::payment::hashcash_valid(12, blob.as_bytes(), c, now as u64))
        .unwrap();
    let body = |bits: u32| {
        escrow_request(
            &blob,
            &serde_json::json!({
                "kind": "email", "expiration": now + 86400 * 100,
                "payment": format!("hashcash-{bits}:{counter:x}-{now:x}")}),
        )
    };
    ok(&f.server.handle_named("escrowrequest", body(12).as_bytes()));
    let v = err(
        &f.server.handle_named("escrowrequest", body(11).as_bytes()),
        "payment",
    );
    assert!(v["error"].as_str().unwrap().contains("already used"));
    assert_eq!(f.counts().escrows, 1);
}

#[test]
fn a_paid_escrow_whose_preferred_id_is_taken_spends_its_token_once() {
    let f = fixture();
    let now = f.now();
    let pref = "00112233445566778899aabbccddeeff";
    let free = escrow_request(
        &escrow_body("email:a@example.org", None, "1-a", now + 3600, None).2,
        &serde_json::json!({
            "kind": "email", "expiration": now + 3600, "payment": "free:0", "prefer-id": pref}),
    );
    ok(&f.server.handle_named("escrowrequest", free.as_bytes()));
    let (_, _, blob) = escrow_body("email:a@example.org", None, "1-a", now + 86400 * 100, None);
    let token = hashcash_token(&blob, now);
    let paid = escrow_request(
        &blob,
        &serde_json::json!({
            "kind": "email", "expiration": now + 86400 * 100, "payment": token,
            "prefer-id": pref}),
    );
    // The preferred id is taken: another id is assigned, paid once.
    let v = ok(&f.server.handle_named("escrowrequest", paid.as_bytes()));
    assert_ne!(v["escrow-data-id"], pref);
    let v = err(
        &f.server.handle_named("escrowrequest", paid.as_bytes()),
        "payment",
    );
    assert!(v["error"].as_str().unwrap().contains("already used"));
    assert_eq!(f.counts().escrows, 2);
}

#[test]
fn preferred_ids() {
    let f = fixture();
    let now = f.now();
    let make = |pref: &str| {
        let (_, _, blob) = escrow_body("email:a@example.org", None, "1-a", now + 3600, None);
        let params = serde_json::json!({
            "kind": "email", "expiration": now + 3600, "payment": "free:0", "prefer-id": pref});
        escrow_request(&blob, &params)
    };
    let pref = "00112233445566778899aabbccddeeff";
    let v = ok(&f
        .server
        .handle_named("escrowrequest", make(pref).as_bytes()));
    assert_eq!(
        v["escrow-data-id"], pref,
        "an accepted prefer-id is returned bare"
    );
    let v = ok(&f
        .server
        .handle_named("escrowrequest", make(pref).as_bytes()));
    assert_ne!(v["escrow-data-id"], pref, "taken: another id");
    err(
        &f.server
            .handle_named("escrowrequest", make("../x").as_bytes()),
        "bad-request",
    );
}

#[test]
fn at_rest_sealed_and_codes_hashed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db.sqlite");
    let f = fixture_with(
        Config::new(dir.path()),
        Box::new(SqliteStorage::open(&db).unwrap()),
    );
    let (body, key, blob) = escrow_body("email:alice@example.org", None, "1-a", T0 + 3600, None);
    let v = ok(&f.server.handle_named("escrowrequest", body.as_bytes()));
    let e = Escrowed {
        id: v["escrow-data-id"].as_str().unwrap().into(),
        key,
    };
    ok(&f.verify(&e));
    let code = f.rec.last_code("email:alice@example.org").unwrap();
    drop(f);
    let mut all = vec![];
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        all.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    let raw = crypto::b64decode(&blob).unwrap();
    let has = |needle: &[u8]| all.windows(needle.len()).any(|w| w == needle);
    assert!(!has(&raw[16..48]), "escrow data stored unsealed");
    assert!(!has(&blob.as_bytes()[..40]));
    assert!(!has(code.as_bytes()), "code stored in clear");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let m = std::fs::metadata(&db).unwrap().permissions().mode();
        assert_eq!(m & 0o077, 0);
    }
    // Nor the escrow's id, in any form (ids are stored as keyed hashes).
    let key = e.id.rsplit('-').next().unwrap();
    assert!(!has(key.as_bytes()) && !has(key.to_uppercase().as_bytes()));
    // Under a different master key an escrow cannot even be found (its id
    // hashes to another stored id), let alone opened.
    let f2 = fixture_with(
        Config::new(dir.path()),
        Box::new(SqliteStorage::open(&db).unwrap()),
    );
    err(&f2.verify(&e), "not-found");
}

/// A writer the tracing subscriber appends to.
#[derive(Clone, Default)]
struct LogBuf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The global subscriber of this test binary. It receives nothing, but
/// answers "sometimes" for every callsite so that the thread's own
/// subscriber decides.
///
/// tracing caches each callsite's interest for the whole process, computed
/// by the first thread that reaches it. Without a global subscriber, a
/// sibling test thread (which has none) caches `never`, and the capturing
/// test below then loses that event: "code sent" went missing in CI this
/// way (tokio-rs/tracing, `Rebuilder::JustOne` consults the registering
/// thread's default).
struct InterestKeeper;

impl tracing::Subscriber for InterestKeeper {
    fn register_callsite(
        &self,
        _: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::sometimes()
    }
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        false
    }
    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::TRACE)
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

fn keep_interest() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        tracing::subscriber::set_global_default(InterestKeeper)
            .expect("nothing else in the library tests sets a global subscriber");
        // A callsite whose registration raced the line above.
        tracing::callsite::rebuild_interest_cache();
    });
}

#[test]
fn logs_hold_no_secrets() {
    keep_interest();
    let buf = LogBuf::default();
    let b2 = buf.clone();
    let sub = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || b2.clone())
        .with_ansi(false)
        .finish();
    let f = fixture();
    let (e, code) = tracing::subscriber::with_default(sub, || {
        // As a sibling test would, reach the server's log lines first from
        // a thread that has no subscriber. Without the keeper, this pins
        // the callsites it registers to "never" (when this test runs alone).
        std::thread::spawn(|| {
            let f = fixture();
            let e = f.escrow_with("email:bob@example.org", None, "2-0a0b0c");
            ok(&f.verify(&e));
            err(&f.recover(&e, "000000"), "wrong-code");
        })
        .join()
        .unwrap();
        let e = f.escrow_with(
            "email:alice@example.org",
            Some("tel:+3545885522"),
            "1-5ec7e7",
        );
        ok(&f.verify(&e));
        let code = f.rec.last_code("email:alice@example.org").unwrap();
        err(&f.recover(&e, &wrong(&code)), "wrong-code");
        let v = serde_json::json!({"passcrow-recovery-request": "1.0",
            "escrow-data-id": e.id, "escrow-data-key": e.key, "verification": 999999});
        err(
            &f.server
                .handle_named("recoveryrequest", v.to_string().as_bytes()),
            "bad-request",
        );
        ok(&f.recover(&e, &code));
        (e, code)
    });
    let log = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("code sent"), "{log}");
    for secret in [
        code.as_str(),
        &code[1..],
        "999999",
        "alice",
        "5885522",
        "5ec7e7",
        e.key.as_str(),
        e.id.rsplit('-').next().unwrap(),
        // Not even the first digits of the id (logs show its stored hash's).
        &e.id.rsplit('-').next().unwrap()[..8],
    ] {
        assert!(!log.contains(secret), "log contains {secret:?}:\n{log}");
    }
    let sid = f.server.keys.stored_id(e.id.rsplit('-').next().unwrap());
    assert!(log.contains(&format!("id={}", sid.short())), "{log}");
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn methods() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "escrowrequest",
            "verificationrequest",
            "recoveryrequest",
            "deletionrequest",
            "protect",
            "verify",
            "recover",
            "delete",
            "policy",
            "stats",
            "x",
        ])
    }

    /// JSON objects with the right version keys and junk values.
    fn junk_json() -> impl Strategy<Value = String> {
        let value = prop_oneof![
            Just(serde_json::Value::Null),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(|f| serde_json::json!(f)),
            ".{0,40}".prop_map(serde_json::Value::from),
            prop::collection::vec(".{0,8}", 0..3).prop_map(|v| serde_json::json!(v)),
        ];
        let key = prop::sample::select(vec![
            "passcrow-escrow-request",
            "passcrow-verification-request",
            "passcrow-recovery-request",
            "passcrow-deletion-request",
            "escrow-data-id",
            "escrow-data-key",
            "escrow-data",
            "parameters",
            "parameters-key",
            "verification",
            "prefix",
            "language",
        ]);
        prop::collection::btree_map(key, value, 0..8)
            .prop_map(|m| serde_json::to_string(&m).unwrap())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn random_bytes_never_panic_or_change_state(
            m in methods(),
            body in prop::collection::vec(any::<u8>(), 0..600),
        ) {
            let (f, e, code) = pending();
            let before = (f.counts(), f.rec.count());
            let a = f.server.handle_named(m, &body);
            if !matches!(m, "policy" | "stats") {
                prop_assert!(a.is_error(), "{}", a.body);
            }
            prop_assert_eq!((f.counts(), f.rec.count()), before);
            prop_assert!(!f.recover(&e, &code).is_error());
        }

        #[test]
        fn junk_json_never_panics_or_changes_state(m in methods(), body in junk_json()) {
            let (f, e, code) = pending();
            let before = (f.counts(), f.rec.count());
            let a = f.server.handle_named(m, body.as_bytes());
            if !matches!(m, "policy" | "stats") {
                prop_assert!(a.is_error(), "{}", a.body);
            }
            prop_assert_eq!((f.counts(), f.rec.count()), before);
            prop_assert!(!f.recover(&e, &code).is_error());
        }
    }
}

/// What `f` logs (every level), captured as `logs_hold_no_secrets` does.
fn logs_of(f: impl FnOnce()) -> String {
    keep_interest();
    let buf = LogBuf::default();
    let b2 = buf.clone();
    let sub = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || b2.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(sub, f);
    let log = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    log
}

#[cfg(unix)]
#[test]
fn a_config_file_others_can_read_is_warned_about_when_it_holds_a_credential() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str, mode: u32| {
        let p = d.path().join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    };
    let with_password = "[delivery.smtp]\nurl = \"smtps://mail.example.org\"\n\
                         username = \"u\"\npassword = \"hunter2-in-config\"\n";
    let in_url = "[delivery.smtp]\nurl = \"smtps://u:hunter2-in-url@mail.example.org\"\n";
    let sms = "[delivery.sms]\naccount_sid = \"AC1\"\nauth_token = \"sms-token-xyz\"\n";
    let hook = "[[delivery.webhooks]]\nurl = \"https://h.example.org\"\nkinds = [\"x\"]\n\
                bearer_token = \"hook-token-xyz\"\n";
    let by_file = "[delivery.smtp]\nurl = \"smtps://mail.example.org\"\nusername = \"u\"\n\
                   password_file = \"/etc/passcrow/smtp-password\"\n";
    for (text, mode, warned) in [
        (with_password, 0o644, true),
        (with_password, 0o640, true),
        (in_url, 0o604, true),
        (sms, 0o644, true),
        (hook, 0o644, true),
        (with_password, 0o600, false),
        (by_file, 0o644, false),
        ("country_code = \"IS\"\n", 0o644, false),
    ] {
        let p = write("config.toml", text, mode);
        let log = logs_of(|| {
            Config::load(&p).unwrap();
        });
        assert_eq!(
            log.contains("holds credentials and can be read by other users"),
            warned,
            "{text} at {mode:o}: {log:?}"
        );
        if warned {
            assert!(log.contains(&*p.to_string_lossy()), "{log}");
            assert!(log.contains("WARN"), "{log}");
        }
        for secret in ["hunter2", "sms-token-xyz", "hook-token-xyz"] {
            assert!(!log.contains(secret), "{secret} in {log}");
        }
        std::fs::remove_file(&p).unwrap();
    }
}

/// Why building the deliverers of `cfg` fails.
fn build_err(cfg: &Config, env: credentials::Env<'_>) -> ServerError {
    match deliverers_with_env(cfg, env) {
        Ok(d) => panic!("built {:?}", d.keys().collect::<Vec<_>>()),
        Err(e) => e,
    }
}

#[test]
fn delivery_credentials_from_files_and_the_environment() {
    let d = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str| {
        let p = d.path().join(name);
        crate::util::files::create_private_file(&p, text.as_bytes()).unwrap();
        p
    };
    let mut cfg = Config::new(d.path());
    cfg.delivery.mail_from = Some("a@b.cd".into());
    cfg.delivery.smtp = Some(config::SmtpConfig {
        url: "smtps://mail.example.org".into(),
        username: Some("u".into()),
        password_file: Some(file("smtp", "smtp-pw\n")),
        ..Default::default()
    });
    cfg.delivery.sms = Some(config::SmsConfig {
        account_sid: "AC1".into(),
        from: Some("+15550001111".into()),
        auth_token_file: Some(file("sms", "sms-token\n")),
        ..Default::default()
    });
    cfg.delivery.webhooks = vec![config::WebhookConfig {
        url: "https://h.example.org/x".into(),
        kinds: vec!["signal".into()],
        bearer_token_file: Some(file("hook", "hook-token\n")),
        ..Default::default()
    }];
    let none = |_: &str| None;
    let ds = deliverers_with_env(&cfg, &none).unwrap();
    assert_eq!(ds.len(), 5);
    // From the environment, overriding the files.
    let env = |n: &str| match n {
        credentials::ENV_SMTP_PASSWORD => Some("env-smtp".to_string()),
        credentials::ENV_SMS_AUTH_TOKEN => Some("env-sms".to_string()),
        credentials::ENV_WEBHOOK_TOKEN => Some("env-hook".to_string()),
        _ => None,
    };
    deliverers_with_env(&cfg, &env).unwrap();
    // One webhook token in the environment cannot serve two webhooks.
    let mut two = cfg.clone();
    two.delivery.webhooks.push(two.delivery.webhooks[0].clone());
    let e = build_err(&two, &env).to_string();
    assert!(e.contains(credentials::ENV_WEBHOOK_TOKEN), "{e}");
    assert!(!e.contains("env-hook"), "{e}");
    // An SMS configuration with no token anywhere is refused, clearly.
    let mut bare = cfg.clone();
    bare.delivery.sms.as_mut().unwrap().auth_token_file = None;
    let e = build_err(&bare, &none).to_string();
    assert!(e.contains("auth token"), "{e}");
    assert!(deliverers_with_env(&bare, &env).is_ok());
    // A credential file that is not there: named, and the server does not
    // start.
    let mut gone = cfg.clone();
    let missing = d.path().join("no-such-password");
    gone.delivery.smtp.as_mut().unwrap().password_file = Some(missing.clone());
    let e = build_err(&gone, &none);
    assert!(matches!(e, ServerError::Io { .. }), "{e:?}");
    assert!(e.to_string().contains(&*missing.to_string_lossy()), "{e}");
    // ... unless the environment holds the password: it is not read then.
    assert!(deliverers_with_env(&gone, &env).is_ok());
    gone.create_master_key = true;
    let e = Server::open(gone).unwrap_err().to_string();
    assert!(e.contains("no-such-password"), "{e}");
}

/// SQLite storage that counts its `counts` scans.
struct CountingScans {
    inner: SqliteStorage,
    scans: Arc<std::sync::atomic::AtomicUsize>,
}

impl Storage for CountingScans {
    fn insert_escrow(
        &self,
        id: &storage::StoredId,
        expires: i64,
        sealed: &[u8],
        now: i64,
    ) -> storage::StorageResult<bool> {
        self.inner.insert_escrow(id, expires, sealed, now)
    }
    fn insert_escrow_paid(
        &self,
        id: &storage::StoredId,
        expires: i64,
        sealed: &[u8],
        spend: &storage::Spend,
        now: i64,
    ) -> storage::StorageResult<storage::Inserted> {
        self.inner
            .insert_escrow_paid(id, expires, sealed, spend, now)
    }
    fn insert_escrow_capped(
        &self,
        id: &storage::StoredId,
        expires: i64,
        sealed: &[u8],
        spend: Option<&storage::Spend>,
        caps: &storage::Caps,
        now: i64,
    ) -> storage::StorageResult<storage::Inserted> {
        self.inner
            .insert_escrow_capped(id, expires, sealed, spend, caps, now)
    }
    fn get_escrow(
        &self,
        id: &storage::StoredId,
        now: i64,
    ) -> storage::StorageResult<storage::Lookup> {
        self.inner.get_escrow(id, now)
    }
    fn delete_escrow(&self, id: &storage::StoredId) -> storage::StorageResult<bool> {
        self.inner.delete_escrow(id)
    }
    fn start_verification(
        &self,
        id: &storage::StoredId,
        now: i64,
        window: i64,
        max: u32,
    ) -> storage::StorageResult<Option<storage::Started>> {
        self.inner.start_verification(id, now, window, max)
    }
    fn charge_and_start_verification(
        &self,
        charge: &storage::Charge,
        id: &storage::StoredId,
        now: i64,
        window: i64,
        max: u32,
    ) -> storage::StorageResult<storage::VerificationCharge> {
        self.inner
            .charge_and_start_verification(charge, id, now, window, max)
    }
    fn set_code(
        &self,
        id: &storage::StoredId,
        sealed: &[u8],
        mac: &[u8],
        expires: i64,
        attempts: u32,
    ) -> storage::StorageResult<bool> {
        self.inner.set_code(id, sealed, mac, expires, attempts)
    }
    fn verification_failed(
        &self,
        id: &storage::StoredId,
        started: storage::Started,
        forgive: u32,
    ) -> storage::StorageResult<bool> {
        self.inner.verification_failed(id, started, forgive)
    }
    fn check_code(
        &self,
        id: &storage::StoredId,
        mac: &[u8],
        now: i64,
        limits: &storage::GuessLimits,
    ) -> storage::StorageResult<storage::CodeCheck> {
        self.inner.check_code(id, mac, now, limits)
    }
    fn check_totp(
        &self,
        id: &storage::StoredId,
        step: Option<i64>,
        now: i64,
        limits: &storage::GuessLimits,
    ) -> storage::StorageResult<storage::CodeCheck> {
        self.inner.check_totp(id, step, now, limits)
    }
    fn start_release(
        &self,
        id: &storage::StoredId,
        due: i64,
        cancel: &[u8],
    ) -> storage::StorageResult<bool> {
        self.inner.start_release(id, due, cancel)
    }
    fn abort_release(&self, id: &storage::StoredId) -> storage::StorageResult<()> {
        self.inner.abort_release(id)
    }
    fn release_by_cancel(&self, cancel: &[u8]) -> storage::StorageResult<Option<i64>> {
        self.inner.release_by_cancel(cancel)
    }
    fn cancel_release(
        &self,
        cancel: &[u8],
        now: i64,
    ) -> storage::StorageResult<storage::ReleaseCancel> {
        self.inner.cancel_release(cancel, now)
    }
    fn sweep(&self, now: i64) -> storage::StorageResult<storage::Swept> {
        self.inner.sweep(now)
    }
    fn counts(&self) -> storage::StorageResult<storage::Counts> {
        self.scans.fetch_add(1, Ordering::SeqCst);
        self.inner.counts()
    }
    fn charge_delivery(
        &self,
        charge: &storage::Charge,
        now: i64,
    ) -> storage::StorageResult<storage::Charged> {
        self.inner.charge_delivery(charge, now)
    }
    fn refund_delivery(&self, counted: &[storage::Counted]) -> storage::StorageResult<()> {
        self.inner.refund_delivery(counted)
    }
    fn suppress(&self, recipient: &[u8; 16], now: i64) -> storage::StorageResult<bool> {
        self.inner.suppress(recipient, now)
    }
    fn is_suppressed(&self, recipient: &[u8; 16]) -> storage::StorageResult<bool> {
        self.inner.is_suppressed(recipient)
    }
    fn count_status(
        &self,
        id: &storage::StoredId,
        now: i64,
        window: i64,
        max: u32,
    ) -> storage::StorageResult<bool> {
        self.inner.count_status(id, now, window, max)
    }
}

#[test]
fn stats_counts_are_scanned_once_a_minute() {
    let scans = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let f = fixture_with(
        Config::new("/nonexistent"),
        Box::new(CountingScans {
            inner: SqliteStorage::in_memory().unwrap(),
            scans: scans.clone(),
        }),
    );
    let stats = || ok(&f.server.handle_named("stats", b"{}"));
    f.escrow();
    let first = stats();
    assert_eq!(scans.load(Ordering::SeqCst), 1);
    assert_eq!(first["storage"]["escrows"], 1);
    // The answer's shape is unchanged.
    let keys: Vec<&String> = first.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["handlers", "requests", "start-ts", "storage", "version"]
    );
    let keys: Vec<&String> = first["storage"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["codes", "encrypted", "escrows", "type"]);
    // Within the minute: the same counts, no scan (a new escrow is not
    // seen yet).
    f.escrow();
    f.advance(59);
    let second = stats();
    assert_eq!(
        scans.load(Ordering::SeqCst),
        1,
        "a second scan within the minute"
    );
    assert_eq!(second["storage"], first["storage"]);
    // Past it: counted afresh.
    f.advance(2);
    let third = stats();
    assert_eq!(scans.load(Ordering::SeqCst), 2);
    assert_eq!(third["storage"]["escrows"], 2);
    assert_eq!(third["storage"]["codes"], 0);
    // A clock set back counts afresh too.
    f.advance(-3600);
    stats();
    assert_eq!(scans.load(Ordering::SeqCst), 3);
}
