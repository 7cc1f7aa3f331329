//! The guessing budget of an escrow and the caps on what escrow requests
//! may fill, attacked over real HTTP on loopback, with a clock the test
//! moves (`Server::set_clock`) and codes delivered to a file (FileSink).
//!
//! The attacker holds a stolen pack, so it has the escrow keys: it may ask
//! for codes (they go to the owner) and guess at them. Before the budget,
//! 5 verifications an hour × 3 attempts per code gave it 15 guesses an
//! hour for the escrow's whole life, and 12 wrong guesses within a minute
//! did not stop the right code from releasing the escrow.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use common::newest_code;
use passcrow::payment;
use passcrow::server::config::{Config, HashcashOffer};
use passcrow::server::{self, Handle, Server};
use passcrow::testing::{random_key, seal};

const HOUR: i64 = 3600;
const DAY: i64 = 86400;
const ALICE: &str = "email:alice@example.org";
const BOB: &str = "email:bob@example.org";

/// Our server on loopback over `Config::for_testing` (tuned by `tune`), on
/// a clock the test moves, starting at the real time (hashcash tokens are
/// stamped with it).
struct Srv {
    url: String,
    codes: PathBuf,
    clock: Arc<AtomicI64>,
    server: Arc<Server>,
    handle: Option<Handle>,
    _tmp: tempfile::TempDir,
}

impl Srv {
    fn start(tune: impl FnOnce(&mut Config)) -> Srv {
        let tmp = tempfile::tempdir().unwrap();
        let codes = tmp.path().join("codes.txt");
        let mut cfg = common::backend::server_config(tmp.path().join("server"), &codes);
        tune(&mut cfg);
        let mut s = Server::open(cfg).unwrap();
        let clock = Arc::new(AtomicI64::new(passcrow::util::clock::unix_now()));
        let c = clock.clone();
        s.set_clock(Box::new(move || c.load(Ordering::SeqCst)));
        let server = Arc::new(s);
        let handle = server::http::spawn_server(server.clone(), "127.0.0.1:0").unwrap();
        Srv {
            url: handle.url(),
            codes,
            clock,
            server,
            handle: Some(handle),
            _tmp: tmp,
        }
    }

    fn now(&self) -> i64 {
        self.clock.load(Ordering::SeqCst)
    }

    fn advance(&self, secs: i64) {
        self.clock.fetch_add(secs, Ordering::SeqCst);
    }

    fn post(&self, method: &str, body: &[u8]) -> (u16, serde_json::Value) {
        let url = format!("{}/passcrow/{method}", self.url);
        let (status, r) = match ureq::post(&url)
            .set("Content-Type", "application/json")
            .send_bytes(body)
        {
            Ok(r) => (r.status(), r),
            Err(ureq::Error::Status(s, r)) => (s, r),
            Err(e) => panic!("{url}: {e}"),
        };
        let text = r.into_string().unwrap();
        let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
        (status, v)
    }

    fn escrows(&self) -> serde_json::Value {
        self.post("stats", b"{}").1["storage"]["escrows"].clone()
    }

    /// Store an escrow for `blob` paid with `token`: the answer.
    fn escrow_paid(&self, blob: &Blob, token: &str) -> serde_json::Value {
        let params = serde_json::json!({
            "kind": "email", "expiration": self.now() + 30 * DAY, "payment": token,
        });
        let pkey = random_key();
        let body = serde_json::json!({
            "passcrow-escrow-request": "1.0",
            "parameters-key": pkey.to_b64(),
            "parameters": seal(&pkey, params.to_string().as_bytes()).unwrap(),
            "escrow-data": [blob.text],
        });
        self.post("escrowrequest", body.to_string().as_bytes()).1
    }

    /// Store a free escrow verified by `verify` and watched by `notify`.
    fn escrow(&self, verify: &str, notify: Option<&str>, timeout: i64) -> Escrow {
        let b = Blob::new(verify, notify, timeout);
        let v = self.escrow_paid(&b, "free:0");
        let id = v["escrow-data-id"]
            .as_str()
            .unwrap_or_else(|| panic!("escrow refused: {v}"))
            .to_string();
        Escrow {
            id,
            key: b.key,
            verify: verify.into(),
        }
    }

    /// Ask for a code: (HTTP status, answer).
    fn verify(&self, e: &Escrow) -> (u16, serde_json::Value) {
        let v = serde_json::json!({
            "passcrow-verification-request": "1.0",
            "escrow-data-id": e.id, "escrow-data-key": e.key,
            "language": "en", "prefix": "7",
        });
        self.post("verificationrequest", v.to_string().as_bytes())
    }

    /// Ask for a code, which must be sent: the code.
    fn new_code(&self, e: &Escrow) -> String {
        let (s, v) = self.verify(e);
        assert!(
            s == 200 && v.get("error").is_none(),
            "verification: {s} {v}"
        );
        newest_code(&self.codes, &e.verify).unwrap()
    }

    /// Try a code: (HTTP status, answer).
    fn recover(&self, e: &Escrow, code: &str) -> (u16, serde_json::Value) {
        let v = serde_json::json!({
            "passcrow-recovery-request": "1.0",
            "escrow-data-id": e.id, "escrow-data-key": e.key, "verification": code,
        });
        self.post("recoveryrequest", v.to_string().as_bytes())
    }

    /// The guessing alerts (`# notice` lines) delivered so far.
    fn notices(&self) -> Vec<String> {
        lines(&self.codes)
            .into_iter()
            .filter(|l| l.starts_with("# notice") && l.contains("wrong codes"))
            .collect()
    }
}

impl Drop for Srv {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown();
        }
    }
}

fn lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Escrow data as a client seals it, and its key.
struct Blob {
    text: String,
    key: String,
}

impl Blob {
    fn new(verify: &str, notify: Option<&str>, timeout: i64) -> Blob {
        let key = random_key();
        let mut esd = serde_json::json!({
            "description": "Wallet", "secret": "1-5ec7e7", "verify": verify, "timeout": timeout,
        });
        if let Some(n) = notify {
            esd["notify"] = n.into();
        }
        Blob {
            text: seal(&key, esd.to_string().as_bytes()).unwrap(),
            key: key.to_b64(),
        }
    }
}

struct Escrow {
    id: String,
    key: String,
    verify: String,
}

/// Another code than `code` (same prefix, last digit changed).
fn wrong(code: &str) -> String {
    let mut c: Vec<u8> = code.bytes().collect();
    let last = c.last_mut().unwrap();
    *last = if *last == b'9' { b'0' } else { *last + 1 };
    String::from_utf8(c).unwrap()
}

fn kind(v: &serde_json::Value) -> &str {
    v["error-kind"].as_str().unwrap_or("")
}

fn text(v: &serde_json::Value) -> &str {
    v["error"].as_str().unwrap_or("")
}

/// What the test expects of the escrow's budget, played alongside.
struct Budget {
    per_hour: u32,
    lifetime: u32,
    code_left: u32,
    in_hour: u32,
    total: u32,
}

impl Budget {
    fn new() -> Budget {
        Budget {
            per_hour: 10,
            lifetime: 30,
            code_left: 3,
            in_hour: 0,
            total: 0,
        }
    }
    /// A wrong guess compared: what `attempts-left` must say.
    fn wrong(&mut self) -> u32 {
        self.code_left -= 1;
        self.in_hour += 1;
        self.total += 1;
        self.code_left
            .min(self.per_hour - self.in_hour)
            .min(self.lifetime - self.total)
    }
}

/// Guess wrong until the hour's budget trips, asking for codes as needed,
/// a few seconds apart; checks `attempts-left` at each step. Returns the
/// last code sent (still pending, its attempts not all spent).
fn guess_out_an_hour(s: &Srv, e: &Escrow, b: &mut Budget) -> String {
    b.in_hour = 0;
    let mut code = s.new_code(e);
    b.code_left = 3;
    loop {
        if b.code_left == 0 {
            code = s.new_code(e);
            b.code_left = 3;
        }
        s.advance(3);
        let (status, v) = s.recover(e, &wrong(&code));
        let left = b.wrong();
        assert_eq!(v["attempts-left"], left, "guess {}: {v}", b.total);
        if b.total == b.lifetime {
            assert_eq!(
                (status, kind(&v)),
                (200, "frozen"),
                "guess {}: {v}",
                b.total
            );
            assert!(text(&v).starts_with("Incorrect verification code"), "{v}");
            assert!(text(&v).contains("passcrow renew"), "{v}");
            return code;
        }
        assert_eq!(
            (status, kind(&v)),
            (200, "wrong-code"),
            "guess {}: {v}",
            b.total
        );
        if b.in_hour == b.per_hour {
            assert!(text(&v).contains("none is checked until"), "{v}");
            assert!(text(&v).contains(" UTC (in 60 minutes)"), "{v}");
            return code;
        }
        if left < b.code_left {
            let why = if left == b.lifetime - b.total {
                "before this escrow is frozen for good"
            } else {
                "this hour"
            };
            assert!(text(&v).contains(why), "guess {}: {v}", b.total);
        }
    }
}

#[test]
fn a_dozen_wrong_guesses_in_a_minute_then_the_right_code_is_refused_that_hour() {
    // Codes live two hours here, so the one pending when the hour trips
    // is still pending when it ends: it shows what was compared meanwhile.
    let s = Srv::start(|c| c.max_timeout_seconds = 2 * HOUR);
    let e = s.escrow(ALICE, Some(BOB), 2 * HOUR);
    let start = s.now();
    let mut b = Budget::new();
    // Wrong guesses 1 to 10, within 30 s (4 codes, all sent to alice).
    let code = guess_out_an_hour(&s, &e, &mut b);
    assert_eq!(b.total, 10);
    assert!(s.now() - start < 60);
    // The owner and the watcher are told, once each.
    let until = start + 3 + HOUR;
    assert_eq!(
        s.notices(),
        [
            format!("# notice\t{ALICE}\ttoo many wrong codes, none checked until {until}"),
            format!("# notice\t{BOB}\ttoo many wrong codes, none checked until {until}"),
        ]
    );
    let sent = lines(&s.codes).len();
    // Guesses 11 and 12, then the right code: refused without comparing.
    for guess in [wrong(&code), wrong(&wrong(&code)), code.clone()] {
        s.advance(5);
        let (status, v) = s.recover(&e, &guess);
        assert_eq!((status, kind(&v)), (429, "rate-limited"), "{v}");
        assert_eq!(v["attempts-left"], 0, "{v}");
        assert!(text(&v).contains("no code is sent or checked until"), "{v}");
        assert!(!v.to_string().contains("5ec7e7"), "the secret: {v}");
    }
    // No code is sent in that hour either (it could not be checked).
    let (status, v) = s.verify(&e);
    assert_eq!((status, kind(&v)), (429, "rate-limited"), "{v}");
    assert!(s.now() - start < 60, "all within a minute");
    assert_eq!(lines(&s.codes).len(), sent, "nothing sent, no new notice");

    // Late in the hour: still refused, and it says when it ends.
    s.advance(HOUR - 60);
    let (status, v) = s.recover(&e, &code);
    assert_eq!(status, 429, "{v}");
    assert!(text(&v).contains("(in 1 minute)"), "{v}");

    // After the hour: the pending code still has the 2 attempts it had
    // when the hour tripped (guesses 11 and 12 spent none of them).
    s.advance(60);
    let (_, v) = s.recover(&e, &wrong(&code));
    assert_eq!(kind(&v), "wrong-code", "{v}");
    assert_eq!(v["attempts-left"], 1, "{v}");
    // The owner asks for a new code and recovers.
    let fresh = s.new_code(&e);
    let (status, v) = s.recover(&e, &fresh);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["escrow-secret"], "1-5ec7e7", "{v}");
}

#[test]
fn guessing_across_hours_freezes_the_escrow_for_good() {
    let s = Srv::start(|_| {});
    let e = s.escrow(ALICE, Some(BOB), 1800);
    let mut b = Budget::new();
    let mut until = vec![];
    // Hour after hour, 10 wrong guesses each: the 30th freezes it.
    for hour in 1..=3 {
        let opened = s.now() + 3;
        guess_out_an_hour(&s, &e, &mut b);
        assert_eq!(b.total, 10 * hour);
        if hour < 3 {
            until.push(opened + HOUR);
            // The hour is spent: refused, and nothing counted.
            let (status, v) = s.recover(&e, "7000000");
            assert_eq!((status, v["attempts-left"].clone()), (429, 0.into()), "{v}");
            s.advance(HOUR);
        }
    }
    let mut want = vec![];
    for t in &until {
        for who in [ALICE, BOB] {
            want.push(format!(
                "# notice\t{who}\ttoo many wrong codes, none checked until {t}"
            ));
        }
    }
    for who in [ALICE, BOB] {
        want.push(format!("# notice\t{who}\ttoo many wrong codes, frozen"));
    }
    assert_eq!(s.notices(), want);

    // Frozen: no code is sent, none is compared, whatever the time.
    let sent = lines(&s.codes).len();
    for later in [0, HOUR, 10 * HOUR] {
        s.advance(later);
        let (status, v) = s.verify(&e);
        assert_eq!((status, kind(&v)), (200, "frozen"), "{v}");
        assert!(text(&v).contains("frozen for good"), "{v}");
        assert!(text(&v).contains("passcrow renew"), "{v}");
        let (status, v) = s.recover(&e, "7123456");
        assert_eq!((status, kind(&v)), (200, "frozen"), "{v}");
        assert_eq!(v["attempts-left"], 0, "{v}");
    }
    assert_eq!(lines(&s.codes).len(), sent, "no code, no notice");
    // Even the right code of the last verification, had it been pending:
    // freezing voided it. The escrow itself is still held (its owner may
    // delete it, or let it expire).
    let last = newest_code(&s.codes, ALICE).unwrap();
    let (_, v) = s.recover(&e, &last);
    assert_eq!(kind(&v), "frozen", "{v}");
    assert_eq!(s.escrows(), 1);
    // A wrong escrow key is refused before anything (no budget to spend).
    let stolen = Escrow {
        key: random_key().to_b64(),
        ..e
    };
    let (_, v) = s.recover(&stolen, &last);
    assert_eq!(kind(&v), "bad-request", "{v}");

    // The owner re-protects: a new escrow for the same identity works.
    let e2 = s.escrow(ALICE, Some(BOB), 1800);
    let code = s.new_code(&e2);
    let (_, v) = s.recover(&e2, &code);
    assert_eq!(v["escrow-secret"], "1-5ec7e7", "{v}");
}

#[test]
fn frozen_with_the_right_code_pending_releases_nothing() {
    // The 30th wrong guess, with the right code still pending: frozen,
    // and that code no longer works.
    let s = Srv::start(|c| {
        c.limits.wrong_guesses_per_hour = 30;
        c.code_attempts = 40;
    });
    let e = s.escrow(ALICE, None, 1800);
    let code = s.new_code(&e);
    for n in 1..=30u32 {
        let (_, v) = s.recover(&e, &wrong(&code));
        assert_eq!(v["attempts-left"], 30 - n, "guess {n}: {v}");
        let k = if n < 30 { "wrong-code" } else { "frozen" };
        assert_eq!(kind(&v), k, "guess {n}: {v}");
        if n == 29 {
            assert!(text(&v).contains("1 attempt left before this escrow is frozen"));
        }
    }
    let (_, v) = s.recover(&e, &code);
    assert_eq!(kind(&v), "frozen", "{v}");
    assert!(!v.to_string().contains("5ec7e7"));
}

#[test]
fn attempts_left_says_which_budget_binds() {
    let s = Srv::start(|c| c.limits.wrong_guesses_per_hour = 5);
    let e = s.escrow(ALICE, None, 1800);
    let code = s.new_code(&e);
    for _ in 0..3 {
        s.recover(&e, &wrong(&code));
    }
    let code = s.new_code(&e);
    let (_, v) = s.recover(&e, &wrong(&code));
    assert_eq!(v["attempts-left"], 1, "{v}");
    assert_eq!(
        text(&v),
        "Incorrect verification code (1 attempt left this hour)"
    );
    let (_, v) = s.recover(&e, &wrong(&code));
    assert_eq!(v["attempts-left"], 0, "{v}");
    assert!(text(&v).contains("none is checked until"), "{v}");
    let (status, _) = s.recover(&e, &code);
    assert_eq!(status, 429);
}

#[test]
fn one_typo_then_the_right_code_recovers() {
    let s = Srv::start(|_| {});
    let e = s.escrow(ALICE, Some(BOB), 1800);
    let code = s.new_code(&e);
    let (_, v) = s.recover(&e, &wrong(&code));
    assert_eq!(kind(&v), "wrong-code", "{v}");
    assert_eq!(v["attempts-left"], 2, "{v}");
    assert_eq!(text(&v), "Incorrect verification code (2 attempts left)");
    let (status, v) = s.recover(&e, &code);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["escrow-secret"], "1-5ec7e7");
    // No alert for one typo.
    assert!(s.notices().iter().all(|n| !n.contains("wrong codes")));

    // And our client, a typo then the right code, recovers too.
    let tmp = tempfile::tempdir().unwrap();
    let c =
        passcrow::client::Client::new(passcrow::client::ClientConfig::new(tmp.path(), tmp.path()))
            .unwrap();
    let mut policy = c
        .make_policy(&[format!("carol@example.org via {}", s.url)], None)
        .unwrap();
    policy.expiration_days = 1;
    c.protect("w", b"s3cret", &policy, &Default::default())
        .unwrap();
    let pack = c.pack("w").unwrap();
    c.verify(&pack).unwrap();
    let code = newest_code(&s.codes, "email:carol@example.org").unwrap();
    let e = c.recover(&pack, &[wrong(&code)]).unwrap_err();
    assert!(
        matches!(
            e,
            passcrow::Error::WrongCode {
                attempts_left: Some(2),
                ..
            }
        ),
        "{e:?}"
    );
    match c.recover(&pack, &[code]).unwrap() {
        passcrow::client::Recovered::Secret(x) => assert_eq!(x.expose_secret(), b"s3cret"),
        passcrow::client::Recovered::Pack { .. } => panic!("a pack"),
    }
}

const BITS: u32 = 8;

/// A canonical hashcash token of `BITS` bits for `blob`, stamped `ts`.
fn token(blob: &Blob, ts: i64) -> String {
    let counter = (0u64..)
        .find(|&c| payment::hashcash_valid(BITS, blob.text.as_bytes(), c, ts as u64))
        .unwrap();
    format!("hashcash-{BITS}:{counter:x}-{ts:x}")
}

fn paying(c: &mut Config) {
    c.payment.hashcash = vec![HashcashOffer {
        bits: BITS,
        seconds: 100 * DAY,
    }];
}

#[test]
fn a_flood_of_free_escrows_stops_at_the_days_cap() {
    let s = Srv::start(|c| {
        paying(c);
        c.limits.max_free_escrows_per_day = 3;
    });
    // Start of a UTC day, so the day does not end during the test.
    s.advance(DAY - s.now().rem_euclid(DAY) + 10);
    let made: Vec<Escrow> = (0..3).map(|_| s.escrow(ALICE, None, 1800)).collect();
    assert_eq!(s.escrows(), 3);
    // The flood goes on: refused, nothing stored.
    for _ in 0..5 {
        let v = s.escrow_paid(&Blob::new(ALICE, None, 1800), "free:0");
        assert_eq!(kind(&v), "payment", "{v}");
        assert!(
            text(&v).contains("free escrows for today (at most 3 a day)"),
            "{v}"
        );
        assert!(text(&v).contains("nothing was stored"), "{v}");
    }
    assert_eq!(s.escrows(), 3);
    // Deleting one gives no free place back today: the cap is on escrows
    // made, not held (else a flood could make and delete its way on).
    let d = serde_json::json!({"passcrow-deletion-request": "1.0", "escrow-data-id": made[0].id});
    assert_eq!(s.post("deletionrequest", d.to_string().as_bytes()).0, 200);
    assert_eq!(s.escrows(), 2);
    let v = s.escrow_paid(&Blob::new(ALICE, None, 1800), "free:0");
    assert_eq!(kind(&v), "payment", "{v}");
    assert_eq!(s.escrows(), 2);
    // A paid escrow is not held back by the free cap.
    let b = Blob::new(ALICE, None, 1800);
    let v = s.escrow_paid(&b, &token(&b, s.now()));
    assert!(v["escrow-data-id"].is_string(), "{v}");
    assert_eq!(s.escrows(), 3);
    // The next UTC day: free escrows again, up to the cap.
    s.advance(DAY);
    for _ in 0..3 {
        s.escrow(ALICE, None, 1800);
    }
    let v = s.escrow_paid(&Blob::new(ALICE, None, 1800), "free:0");
    assert_eq!(kind(&v), "payment", "{v}");
    // (Yesterday's free escrows last 25 hours: still held, unswept.)
    assert_eq!(s.escrows(), 6);
}

#[test]
fn a_full_server_refuses_stores_nothing_and_spends_no_token() {
    let s = Srv::start(|c| {
        paying(c);
        c.limits.max_escrows = 3;
    });
    let e1 = s.escrow(ALICE, None, 1800);
    s.escrow(ALICE, None, 1800);
    let b = Blob::new(ALICE, None, 1800);
    assert!(s.escrow_paid(&b, &token(&b, s.now()))["escrow-data-id"].is_string());
    assert_eq!(s.escrows(), 3);
    // Full: a free escrow and a paid one are refused.
    let v = s.escrow_paid(&Blob::new(ALICE, None, 1800), "free:0");
    assert_eq!(kind(&v), "payment", "{v}");
    assert!(text(&v).contains("This server is full"), "{v}");
    let paid = Blob::new(ALICE, None, 1800);
    let tok = token(&paid, s.now());
    let v = s.escrow_paid(&paid, &tok);
    assert_eq!(kind(&v), "payment", "{v}");
    assert!(text(&v).contains("no payment was spent"), "{v}");
    assert_eq!(s.escrows(), 3);
    // A deletion frees a place, and the refused token was not spent: it
    // pays now.
    let d = serde_json::json!({"passcrow-deletion-request": "1.0", "escrow-data-id": e1.id});
    assert_eq!(s.post("deletionrequest", d.to_string().as_bytes()).0, 200);
    assert_eq!(s.escrows(), 2);
    let v = s.escrow_paid(&paid, &tok);
    assert!(v["escrow-data-id"].is_string(), "{v}");
    assert_eq!(s.escrows(), 3);
    let v = s.escrow_paid(&Blob::new(ALICE, None, 1800), "free:0");
    assert!(text(&v).contains("full"), "{v}");
    // Expired but not yet swept, the free one still holds its place; the
    // sweep frees it (the free escrow lasts 25 h, the paid ones 30 days).
    s.advance(26 * HOUR);
    let v = s.escrow_paid(&Blob::new(ALICE, None, 1800), "free:0");
    assert!(text(&v).contains("full"), "{v}");
    assert_eq!(s.server.sweep().unwrap().escrows, 1);
    assert_eq!(s.escrows(), 2);
    // Exactly one place: the counter kept with the sweep is right.
    s.escrow(ALICE, None, 1800);
    let v = s.escrow_paid(&Blob::new(ALICE, None, 1800), "free:0");
    assert!(text(&v).contains("full"), "{v}");
    assert_eq!(s.escrows(), 3);
}

/// Through the client: a wrong code is `WrongCode` until the lifetime
/// budget is spent, then every recovery is the typed `Frozen` (protect
/// again), even with the right code; not a bare server error.
#[test]
fn the_client_sees_a_frozen_escrow_as_frozen() {
    use passcrow::client::{Client, ClientConfig, ProtectOptions};
    let s = Srv::start(|c| {
        c.limits.wrong_guesses_per_hour = 4;
        c.limits.wrong_guesses_lifetime = 4;
    });
    let tmp = tempfile::tempdir().unwrap();
    let c = Client::new(ClientConfig::new(tmp.path(), tmp.path())).unwrap();
    let policy = c
        .make_policy(&[format!("alice@example.org via {}", s.url)], Some((1, 1)))
        .unwrap();
    c.protect("wallet", b"hunter2", &policy, &ProtectOptions::default())
        .unwrap();
    let pack = c.pack("wallet").unwrap();
    let mut wrong_codes = 0;
    let frozen = loop {
        // The guess that spends the budget is refused as wrong; the escrow
        // is frozen from then on, so the next verification says so.
        match c.verify(&pack) {
            Ok(_) => {}
            Err(e @ passcrow::Error::Frozen { .. }) => break e,
            Err(e) => panic!("verify after {wrong_codes} wrong codes: {e}"),
        }
        let code = newest_code(&s.codes, ALICE).unwrap();
        match c.recover(&pack, &[wrong(&code)]) {
            Err(passcrow::Error::WrongCode { .. }) => wrong_codes += 1,
            Err(e @ passcrow::Error::Frozen { .. }) => break e,
            other => panic!("after {wrong_codes} wrong codes: {other:?}"),
        }
        assert!(wrong_codes < 10, "never frozen");
        s.advance(HOUR);
    };
    assert!(wrong_codes >= 3, "frozen after {wrong_codes} wrong codes");
    assert!(frozen.to_string().contains("renew"), "{frozen}");
    // The right code of the last verification opens nothing now.
    let right = newest_code(&s.codes, ALICE).unwrap();
    let e = c.recover(&pack, &[right]).unwrap_err();
    assert!(matches!(e, passcrow::Error::Frozen { .. }), "{e}");
}
