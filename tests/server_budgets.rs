//! Delivery budgets over real HTTP on loopback: the server cannot be used
//! as a mail or SMS cannon against one address, nor to run up an SMS
//! bill, nor to send to countries the operator did not choose; a refusal
//! costs the user nothing; the owner of an older escrow still gets their
//! code in the middle of a flood of fresh ones; a recipient can opt out
//! (and nobody else can do it for them); the attacker-chosen description
//! arrives only as a cleaned label; every message and the about page name
//! the abuse contact.
//!
//! Each test plays the attacker: many fresh escrows naming one victim,
//! each asked for a code.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use passcrow::server::config::{Config, WebhookConfig};
use passcrow::server::{self, Handle, Server};
use passcrow::testing::{random_key, seal};

const HOUR: i64 = 3600;
const DAY: i64 = 24 * HOUR;
const T0: i64 = 1_800_000_000;

/// A server on loopback with a clock the test moves.
struct Srv {
    handle: Handle,
    clock: Arc<AtomicI64>,
    codes: PathBuf,
    url: String,
    _tmp: tempfile::TempDir,
}

impl Srv {
    fn start(tune: impl FnOnce(&mut Config, &Path)) -> Srv {
        let tmp = tempfile::tempdir().unwrap();
        let codes = tmp.path().join("codes.txt");
        let mut cfg = common::backend::server_config(tmp.path().join("server"), &codes);
        // Free escrows that live long enough to become old.
        cfg.payment.free_seconds = 60 * DAY;
        tune(&mut cfg, tmp.path());
        let clock = Arc::new(AtomicI64::new(T0));
        let mut s = Server::open(cfg).unwrap();
        let c = clock.clone();
        s.set_clock(Box::new(move || c.load(Ordering::SeqCst)));
        let handle = server::http::spawn_server(Arc::new(s), "127.0.0.1:0").unwrap();
        let url = handle.url();
        Srv {
            handle,
            clock,
            codes,
            url,
            _tmp: tmp,
        }
    }

    fn advance(&self, secs: i64) {
        self.clock.fetch_add(secs, Ordering::SeqCst);
    }

    fn now(&self) -> i64 {
        self.clock.load(Ordering::SeqCst)
    }

    /// Make an escrow; returns (escrow-data-id, escrow-data-key).
    fn escrow(&self, verify: &str, notify: Option<&str>, description: &str) -> (String, String) {
        let rkey = random_key();
        let mut esd = serde_json::json!({
            "description": description, "secret": "1-secret-share",
            "verify": verify, "timeout": 600,
        });
        if let Some(n) = notify {
            esd["notify"] = n.into();
        }
        let blob = seal(&rkey, esd.to_string().as_bytes()).unwrap();
        let pkey = random_key();
        let params = serde_json::json!({
            "kind": verify.split(':').next().unwrap(),
            "expiration": self.now() + 30 * DAY, "payment": "free:0",
        });
        let body = serde_json::json!({
            "passcrow-escrow-request": "1.0",
            "parameters-key": pkey.to_b64(),
            "parameters": seal(&pkey, params.to_string().as_bytes()).unwrap(),
            "escrow-data": [blob],
        });
        let (st, r) = post(&self.url, "escrowrequest", &body);
        assert_eq!(st, 200, "{r}");
        let id = r["escrow-data-id"]
            .as_str()
            .unwrap_or_else(|| panic!("{r}"))
            .to_string();
        (id, rkey.to_b64())
    }

    /// Ask for a code; returns (HTTP status, answer).
    fn verify(&self, e: &(String, String)) -> (u16, serde_json::Value) {
        self.verify_lang(e, "en")
    }

    fn verify_lang(&self, e: &(String, String), lang: &str) -> (u16, serde_json::Value) {
        let v = serde_json::json!({
            "passcrow-verification-request": "1.0",
            "escrow-data-id": e.0, "escrow-data-key": e.1,
            "language": lang, "prefix": "7",
        });
        post(&self.url, "verificationrequest", &v)
    }

    fn recover(&self, e: &(String, String), code: &str) -> serde_json::Value {
        let v = serde_json::json!({
            "passcrow-recovery-request": "1.0",
            "escrow-data-id": e.0, "escrow-data-key": e.1, "verification": code,
        });
        post(&self.url, "recoveryrequest", &v).1
    }

    /// Codes delivered to `identity` so far (FileSink lines), in order.
    fn codes_to(&self, identity: &str) -> Vec<String> {
        let text = std::fs::read_to_string(&self.codes).unwrap_or_default();
        text.lines()
            .filter_map(|l| l.split_once('\t'))
            .filter(|(id, _)| *id == identity)
            .map(|(_, c)| c.to_string())
            .collect()
    }

    /// Notices delivered to `identity` so far.
    fn notices_to(&self, identity: &str) -> usize {
        let text = std::fs::read_to_string(&self.codes).unwrap_or_default();
        let head = format!("# notice\t{identity}\t");
        text.lines().filter(|l| l.starts_with(&head)).count()
    }
}

fn post(url: &str, method: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
    let (status, r) = match ureq::post(&format!("{url}/passcrow/{method}"))
        .set("Content-Type", "application/json")
        .send_string(&body.to_string())
    {
        Ok(r) => (r.status(), r),
        Err(ureq::Error::Status(s, r)) => (s, r),
        Err(e) => panic!("{method}: {e}"),
    };
    let text = r.into_string().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")),
    )
}

/// GET or POST a page; returns (status, body).
fn page(method: &str, url: &str) -> (u16, String) {
    let r = match ureq::request(method, url).call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{url}: {e}"),
    };
    (r.status(), r.into_string().unwrap())
}

/// Assert a budget refusal: rate-limited, 429, names the budget, not the
/// address.
fn assert_budget_refusal(st: u16, r: &serde_json::Value, budget: &str, address: &str) {
    assert_eq!(st, 429, "{r}");
    assert_eq!(r["error-kind"], "rate-limited", "{r}");
    let msg = r["error"].as_str().unwrap();
    assert!(msg.contains(budget), "{msg}");
    assert!(msg.contains("Nothing was sent or counted"), "{msg}");
    let local = address.split([':', '@']).nth(1).unwrap_or(address);
    assert!(!msg.contains(local), "{msg}");
}

#[test]
fn fresh_escrows_cannot_flood_one_address_and_refusals_cost_nothing() {
    let s = Srv::start(|_, _| {});
    let victim = "email:victim@example.org";
    // The attack: 24 fresh escrows naming the victim (spelled three ways,
    // one recipient), each asked for a code at once.
    let spellings = [
        "email:victim@example.org",
        "email:victim@EXAMPLE.org",
        "mailto:victim@Example.Org",
    ];
    let escrows: Vec<_> = (0..24)
        .map(|i| s.escrow(spellings[i % 3], None, "Flood"))
        .collect();
    let mut ok = 0;
    for e in &escrows {
        let (st, r) = s.verify(e);
        if st == 200 {
            ok += 1;
        } else {
            assert_budget_refusal(st, &r, "10 messages an hour", "victim@example.org");
        }
    }
    let delivered: usize = spellings.iter().map(|i| s.codes_to(i).len()).sum();
    assert_eq!((ok, delivered), (10, 10), "at most 10 messages an hour");

    // Refusals cost nothing. A legitimate escrow E asks for its code five
    // minutes later (the victim's hour is then spent; the codes already
    // sent live for ten minutes)...
    s.advance(5 * 60);
    let e = s.escrow(victim, None, "E");
    let (st, r) = s.verify(&e);
    assert_budget_refusal(st, &r, "10 messages an hour", "victim@example.org");
    // ... a refused request replaced no code: an earlier escrow's code
    // still recovers after its own refused retries.
    let first = &escrows[0];
    let code = s.codes_to(spellings[0])[0].clone();
    for _ in 0..3 {
        let (st, r) = s.verify(first);
        assert_budget_refusal(st, &r, "10 messages an hour", "victim@example.org");
    }
    let r = s.recover(first, &code);
    assert!(r.get("error").is_none(), "the code was replaced: {r}");
    // ... and counted no verification: E, refused 6 times in this hour,
    // still has its 5 verifications per hour once the victim's hour ends.
    for _ in 0..5 {
        let (st, r) = s.verify(&e);
        assert_eq!(st, 429, "{r}");
    }
    s.advance(HOUR - 5 * 60 + 1);
    for i in 0..5 {
        let (st, r) = s.verify(&e);
        assert_eq!(st, 200, "verification {i} after the flood: {r}");
    }
    let (st, r) = s.verify(&e);
    assert_eq!(st, 429, "{r}");
    assert!(r["error"]
        .as_str()
        .unwrap()
        .contains("per hour for one escrow"));
    s.handle.shutdown();
}

#[test]
fn owner_with_an_old_escrow_gets_the_code_during_a_flood() {
    let s = Srv::start(|_, _| {});
    let victim = "email:owner@example.org";
    let owner = s.escrow(victim, None, "My wallet");
    s.advance(8 * DAY);
    let flood: Vec<_> = (0..24).map(|_| s.escrow(victim, None, "x")).collect();
    let mut ok = 0;
    for (i, e) in flood.iter().enumerate() {
        let (st, _) = s.verify(e);
        ok += usize::from(st == 200);
        if i == 15 {
            // Mid-flood, the owner asks: the reserve answers.
            let (st, r) = s.verify(&owner);
            assert_eq!(st, 200, "the owner was locked out: {r}");
        }
    }
    assert_eq!(ok, 10, "fresh escrows got only the budget");
    let code = s.codes_to(victim).last().unwrap().clone();
    // Fresh escrows cannot spend the reserve the owner drew on.
    let (st, r) = s.verify(&flood[0]);
    assert_budget_refusal(st, &r, "10 messages an hour", "owner@example.org");
    let r = s.recover(&owner, &code);
    assert!(r.get("error").is_none(), "{r}");
    assert_eq!(s.codes_to(victim).len(), 11);
}

#[test]
fn daily_cap_holds_across_hours() {
    let s = Srv::start(|_, _| {});
    let victim = "email:daily@example.org";
    let mut sent = 0;
    for hour in 0..4 {
        for _ in 0..12 {
            let e = s.escrow(victim, None, "x");
            let (st, r) = s.verify(&e);
            if st == 200 {
                sent += 1;
            } else if hour < 3 {
                assert_budget_refusal(st, &r, "10 messages an hour", "daily@example.org");
            } else {
                assert_budget_refusal(st, &r, "30 messages a day", "daily@example.org");
            }
        }
        s.advance(HOUR + 1);
    }
    assert_eq!(sent, 30);
    assert_eq!(s.codes_to(victim).len(), 30);
    // A day after the first message, the budget is back.
    s.advance(DAY);
    let (st, r) = s.verify(&s.escrow(victim, None, "x"));
    assert_eq!(st, 200, "{r}");
}

#[test]
fn notices_to_a_watcher_count_against_its_budget() {
    let s = Srv::start(|_, _| {});
    let watcher = "email:watcher@example.org";
    for i in 0..24 {
        let verify = format!("email:attacker{i}@example.net");
        let e = s.escrow(&verify, Some(watcher), "x");
        let (st, r) = s.verify(&e);
        // The code goes out; the watcher's notice is what the budget holds back.
        assert_eq!(st, 200, "{r}");
    }
    assert_eq!(s.notices_to(watcher), 10);
    // Codes to the watcher itself are then refused too: one budget.
    let (st, r) = s.verify(&s.escrow(watcher, None, "x"));
    assert_budget_refusal(st, &r, "10 messages an hour", "watcher@example.org");
}

#[test]
fn server_wide_sms_budget() {
    let s = Srv::start(|c, _| {
        c.outbound.per_kind_per_hour.insert("sms".into(), 5);
        c.outbound.kind_reserve_percent = 0;
    });
    let mut ok = 0;
    for i in 0..8 {
        // A different number each time (SMS pumping uses many numbers),
        // half of them tel:, half sms:.
        let kind = if i % 2 == 0 { "tel" } else { "sms" };
        let e = s.escrow(&format!("{kind}:+354 58855{i:02}"), None, "x");
        let (st, r) = s.verify(&e);
        if st == 200 {
            ok += 1;
        } else {
            assert_budget_refusal(st, &r, "budget of 5 sms messages an hour", "58855");
        }
    }
    assert_eq!(ok, 5);
    // E-mail has its own budget.
    let (st, r) = s.verify(&s.escrow("email:a@example.org", None, "x"));
    assert_eq!(st, 200, "{r}");
    s.advance(HOUR);
    let (st, r) = s.verify(&s.escrow("tel:+3545885599", None, "x"));
    assert_eq!(st, 200, "{r}");
}

#[test]
fn sms_only_to_allowed_countries() {
    // The test server allows +354 only.
    let s = Srv::start(|_, _| {});
    let (st, r) = s.verify(&s.escrow("tel:+44 7700 900123", None, "x"));
    assert_eq!(
        (st, r["error-kind"].as_str()),
        (200, Some("unsupported")),
        "{r}"
    );
    let msg = r["error"].as_str().unwrap();
    assert!(msg.contains("+354") && !msg.contains("7700"), "{msg}");
    assert!(s.codes_to("tel:+44 7700 900123").is_empty());
    let (st, r) = s.verify(&s.escrow("tel:+3545885522", None, "x"));
    assert_eq!(st, 200, "{r}");

    // Nothing configured, no country: no SMS at all.
    let s = Srv::start(|c, _| c.outbound.sms_countries = None);
    let (_, r) = s.verify(&s.escrow("tel:+3545885522", None, "x"));
    assert_eq!(r["error-kind"], "unsupported", "{r}");
    assert!(
        r["error"].as_str().unwrap().contains("sms_countries"),
        "{r}"
    );
    assert!(s.codes_to("tel:+3545885522").is_empty());

    // The server's own country by default; national numbers are its own.
    let s = Srv::start(|c, _| {
        c.outbound.sms_countries = None;
        c.country_code = "IS".into();
    });
    assert_eq!(s.verify(&s.escrow("tel:5885522", None, "x")).0, 200);
    let (_, r) = s.verify(&s.escrow("sms:+1 876 555 0100", None, "x"));
    assert_eq!(r["error-kind"], "unsupported", "{r}");
}

/// A loopback webhook receiver: every JSON body posted to it.
fn hook() -> (String, mpsc::Receiver<serde_json::Value>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut len = 0;
            loop {
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                let line = line.trim_end().to_ascii_lowercase();
                if line.is_empty() {
                    break;
                }
                if let Some(v) = line.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}");
            let _ = tx.send(serde_json::from_slice(&body).unwrap());
        }
    });
    (url, rx)
}

/// A server sending e-mail through a webhook we read.
fn hooked(public: bool) -> (Srv, mpsc::Receiver<serde_json::Value>) {
    let (url, rx) = hook();
    let s = Srv::start(move |c, _| {
        c.delivery.webhooks = vec![WebhookConfig {
            url,
            kinds: vec!["email".into()],
            ..Default::default()
        }];
        c.outbound.abuse_contact = Some("abuse@operator.example".into());
        if public {
            // The port is not known yet: links name this base, and the
            // test follows their path on the server's real address.
            c.outbound.public_url = Some("https://passcrow.example.org/".into());
        }
    });
    (s, rx)
}

fn next(rx: &mpsc::Receiver<serde_json::Value>) -> serde_json::Value {
    rx.recv_timeout(Duration::from_secs(10)).expect("a message")
}

#[test]
fn opt_out_needs_the_link_and_a_post() {
    let (s, rx) = hooked(true);
    let victim = "email:optout@example.org";
    let e = s.escrow(victim, None, "x");
    assert_eq!(s.verify(&e).0, 200);
    let text = next(&rx)["text"].as_str().unwrap().to_string();
    assert!(text.contains("abuse@operator.example"), "{text}");
    let link = text
        .split_whitespace()
        .find(|w| w.contains("/passcrow/optout/"))
        .unwrap_or_else(|| panic!("no opt-out link: {text}"));
    // The link names the server's public URL; we reach the same path here.
    let path = &link[link.find("/passcrow/").unwrap()..];
    let here = format!("{}{path}", s.url);
    assert!(!link.contains("optout@"), "{link}");

    // A mail scanner following the link (GET) opts nobody out.
    let (st, body) = page("GET", &here);
    assert_eq!(st, 200);
    assert!(body.contains("<form method=\"post\">"), "{body}");
    assert_eq!(s.verify(&e).0, 200);
    next(&rx);

    // A forged token (one character changed, or another's made up) does nothing.
    let token = path.rsplit('/').next().unwrap();
    let mut forged: Vec<char> = token.chars().collect();
    let last = forged.len() - 2;
    forged[last] = if forged[last] == 'A' { 'B' } else { 'A' };
    let forged: String = forged.into_iter().collect();
    for t in [
        forged.as_str(),
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "x",
    ] {
        let (st, body) = page("POST", &format!("{}/passcrow/optout/{t}", s.url));
        assert_eq!(st, 400, "{body}");
        assert!(body.contains("not valid"), "{body}");
    }
    assert_eq!(s.verify(&e).0, 200);
    next(&rx);

    // The recipient's POST opts out: nothing more is sent to the address,
    // and asking for a code says so clearly.
    let (st, body) = page("POST", &here);
    assert_eq!(st, 200, "{body}");
    assert!(body.contains("send nothing more"), "{body}");
    let (_, r) = s.verify(&s.escrow("email:optout@EXAMPLE.ORG", None, "x"));
    assert_eq!(r["error-kind"], "bad-request", "{r}");
    let msg = r["error"].as_str().unwrap();
    assert!(
        msg.contains("opted out") && !msg.contains("optout@"),
        "{msg}"
    );
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
    // Another address is not affected.
    assert_eq!(
        s.verify(&s.escrow("email:other@example.org", None, "x")).0,
        200
    );
    let (st, body) = page("GET", &here);
    assert!(st == 200 && body.contains("Already stopped"), "{body}");
}

#[test]
fn description_arrives_as_a_clean_label() {
    let (s, rx) = hooked(false);
    let lure = "Wallet <a href=\"https://evil.example/login\">verify now</a> at \
                www.evil.example or evil.com/x, call\u{202E} us \"urgently\"";
    for lang in ["en", "is"] {
        let e = s.escrow("email:label@example.org", None, lure);
        assert_eq!(s.verify_lang(&e, lang).0, 200);
        let m = next(&rx);
        let (subject, text, short) = (
            m["subject"].as_str().unwrap(),
            m["text"].as_str().unwrap(),
            m["short-text"].as_str().unwrap(),
        );
        let want = if lang == "en" {
            "Label given by the requester: \"Wallet verify now at or call us 'urgently'\""
        } else {
            "Merki sem beiðandinn gaf: \"Wallet verify now at or call us 'urgently'\""
        };
        assert!(text.contains(want), "{text}");
        for t in [subject, text, short] {
            assert!(
                !t.contains("evil") && !t.contains('<') && !t.contains('\u{202E}'),
                "{t}"
            );
        }
        assert!(!subject.contains("Wallet"), "{subject}");
        assert!(short.contains("'urgently'"), "{short}");
        // No opt-out URL configured: the message says whom to write to.
        assert!(text.contains("abuse@operator.example"), "{text}");
        assert!(short.contains("abuse@operator.example"), "{short}");
        if lang == "en" {
            assert!(text.contains("write to abuse@operator.example"), "{text}");
        }
    }
    // A description over the limit is cut.
    let e = s.escrow("email:label@example.org", None, &"long ".repeat(100));
    assert_eq!(s.verify(&e).0, 200);
    let text = next(&rx)["text"].as_str().unwrap().to_string();
    let line = text.lines().find(|l| l.starts_with("Label")).unwrap();
    assert!(line.chars().count() < 100, "{line}");
}

#[test]
fn about_page_names_the_abuse_contact_and_policy_is_unchanged() {
    let (s, _rx) = hooked(false);
    for path in ["/", "/passcrow/about"] {
        let r = ureq::get(&format!("{}{path}", s.url)).call().unwrap();
        assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
        let body = r.into_string().unwrap();
        assert!(
            body.contains("Abuse contact: abuse@operator.example"),
            "{body}"
        );
        assert!(body.contains("stop all messages"), "{body}");
    }
    // policy keeps the reference's keys, and only those.
    let (_, p) = post(&s.url, "policy", &serde_json::json!({}));
    let mut keys: Vec<&str> = p.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "about-url",
            "country-code",
            "kinds",
            "max-expiration-seconds",
            "max-request-bytes",
            "max-timeout-seconds",
            "passcrow-versions",
            "payment-schemes"
        ]
    );
}
