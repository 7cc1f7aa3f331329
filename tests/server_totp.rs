//! `totp:` identities (an authenticator app) over real HTTP on loopback:
//! our client and server end to end, with the codes an app would show
//! computed by the test from the enrolled `otpauth://` URI at the
//! server's clock (`Server::set_clock`, moved by the test); a replayed
//! code, before and after a restart; the guessing budget played by an
//! attacker who holds the pack's keys; a python-passcrow server refused.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use common::newest_code;
use passcrow::client::{Client, ClientConfig, ProtectOptions, Recovered};
use passcrow::server::config::Config;
use passcrow::server::{self, Handle, Server};
use passcrow::testing::{random_bytes, random_key, seal, totp_code_at};

const HOUR: i64 = 3600;
const BOB: &str = "email:bob@example.org";
const SECRET: &[u8] = b"correct horse battery staple";

/// Our server on loopback on a clock the test moves (starting at the
/// real time: hashcash tokens are stamped with it), restartable on the
/// same data and port.
struct Srv {
    url: String,
    codes: PathBuf,
    clock: Arc<AtomicI64>,
    cfg: Config,
    handle: Option<Handle>,
    _tmp: tempfile::TempDir,
}

impl Srv {
    fn start(tune: impl FnOnce(&mut Config)) -> Srv {
        let tmp = tempfile::tempdir().unwrap();
        let codes = tmp.path().join("codes.txt");
        let mut cfg = common::backend::server_config(tmp.path().join("server"), &codes);
        tune(&mut cfg);
        let clock = Arc::new(AtomicI64::new(passcrow::util::clock::unix_now()));
        let handle = Self::serve(&cfg, &clock);
        Srv {
            url: handle.url(),
            codes,
            clock,
            cfg,
            handle: Some(handle),
            _tmp: tmp,
        }
    }

    fn serve(cfg: &Config, clock: &Arc<AtomicI64>) -> Handle {
        let mut s = Server::open(cfg.clone()).unwrap();
        let c = clock.clone();
        s.set_clock(Box::new(move || c.load(Ordering::SeqCst)));
        server::http::spawn_server(Arc::new(s), &cfg.listen).unwrap()
    }

    /// Stop the server and start it again on the same data and port.
    fn restart(&mut self) {
        let h = self.handle.take().unwrap();
        self.cfg.listen = h.addr().to_string();
        h.shutdown();
        self.handle = Some(Self::serve(&self.cfg, &self.clock));
    }

    fn now(&self) -> i64 {
        self.clock.load(Ordering::SeqCst)
    }

    fn advance(&self, secs: i64) {
        self.clock.fetch_add(secs, Ordering::SeqCst);
    }

    fn post(&self, method: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        let url = format!("{}/passcrow/{method}", self.url);
        let (status, r) = match ureq::post(&url)
            .set("Content-Type", "application/json")
            .send_string(&body.to_string())
        {
            Ok(r) => (r.status(), r),
            Err(ureq::Error::Status(s, r)) => (s, r),
            Err(e) => panic!("{url}: {e}"),
        };
        let text = r.into_string().unwrap();
        let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
        (status, v)
    }

    /// A free `totp:phone` escrow watched by `notify`, made as our client
    /// makes one: the secret in the escrow data only.
    fn totp_escrow(&self, notify: Option<&str>) -> Escrow {
        let mut raw = vec![0u8; 20];
        random_bytes(&mut raw);
        let key = random_key();
        let mut esd = serde_json::json!({
            "description": "Wallet", "secret": "1-5ec7e7", "verify": "totp:phone",
            "timeout": 1800,
            "totp-secret": data_encoding::BASE32_NOPAD.encode(&raw),
        });
        if let Some(n) = notify {
            esd["notify"] = n.into();
        }
        let params = serde_json::json!({
            "kind": "totp", "expiration": self.now() + 30 * 86400, "payment": "free:0",
        });
        let pkey = random_key();
        let body = serde_json::json!({
            "passcrow-escrow-request": "1.0",
            "parameters-key": pkey.to_b64(),
            "parameters": seal(&pkey, params.to_string().as_bytes()).unwrap(),
            "escrow-data": [seal(&key, esd.to_string().as_bytes()).unwrap()],
        });
        let (s, v) = self.post("escrowrequest", &body);
        assert_eq!(s, 200, "{v}");
        Escrow {
            id: v["escrow-data-id"].as_str().unwrap().to_string(),
            key: key.to_b64(),
            raw,
        }
    }

    fn verify(&self, e: &Escrow) -> (u16, serde_json::Value) {
        self.post(
            "verificationrequest",
            &serde_json::json!({
                "passcrow-verification-request": "1.0",
                "escrow-data-id": e.id, "escrow-data-key": e.key,
                "language": "en", "prefix": "1",
            }),
        )
    }

    fn verify_ok(&self, e: &Escrow) -> serde_json::Value {
        let (s, v) = self.verify(e);
        assert!(s == 200 && v.get("error").is_none(), "verify: {s} {v}");
        v
    }

    fn recover(&self, e: &Escrow, code: &str) -> (u16, serde_json::Value) {
        self.post(
            "recoveryrequest",
            &serde_json::json!({
                "passcrow-recovery-request": "1.0",
                "escrow-data-id": e.id, "escrow-data-key": e.key, "verification": code,
            }),
        )
    }

    /// The code the app shows now (server clock).
    fn app_code(&self, e: &Escrow) -> String {
        totp_code_at(&e.raw, self.now())
    }

    fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.codes)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
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

struct Escrow {
    id: String,
    key: String,
    raw: Vec<u8>,
}

fn client(home: &Path) -> Client {
    std::fs::create_dir_all(home).unwrap();
    Client::new(ClientConfig::new(home, home)).unwrap()
}

fn secret_of(r: Recovered) -> Vec<u8> {
    match r {
        Recovered::Secret(s) => s.expose_secret().to_vec(),
        Recovered::Pack { name, .. } => panic!("expected a secret, got pack {name}"),
    }
}

fn error_of(v: &serde_json::Value) -> String {
    v["error"].as_str().unwrap_or_default().to_string()
}

/// The raw secret of an `otpauth://` URI, checking the Key Uri Format
/// fields an authenticator app reads.
fn secret_of_uri(uri: &str, label: &str) -> (String, Vec<u8>) {
    let rest = uri.strip_prefix("otpauth://totp/").expect(uri);
    let (path, query) = rest.split_once('?').expect(uri);
    assert_eq!(path, format!("Passcrow:{label}"));
    let q: Vec<(&str, &str)> = query
        .split('&')
        .map(|kv| kv.split_once('=').unwrap())
        .collect();
    let get = |k: &str| q.iter().find(|(x, _)| *x == k).map(|(_, v)| *v);
    assert_eq!(get("issuer"), Some("Passcrow"));
    assert_eq!(get("algorithm"), Some("SHA1"));
    assert_eq!(get("digits"), Some("6"));
    assert_eq!(get("period"), Some("30"));
    let b32 = get("secret").unwrap().to_string();
    let raw = data_encoding::BASE32_NOPAD.decode(b32.as_bytes()).unwrap();
    assert_eq!(raw.len(), 20);
    (b32, raw)
}

#[test]
fn two_of_three_email_sms_and_totp_recover_with_the_enrolled_app() {
    let srv = Srv::start(|_| {});
    let u = &srv.url;
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let c = client(&home);
    let ids = [
        format!("alice@example.org via {u}"),
        format!("+3545885522 via {u}"),
        format!("totp:phone, notify={BOB} via {u}"),
    ];
    let mut policy = c.make_policy(&ids, Some((2, 3))).unwrap();
    policy.expiration_days = 1;
    let p = c
        .protect("wallet", SECRET, &policy, &ProtectOptions::default())
        .unwrap();
    assert_eq!(p.pack.escrow.len(), 3);
    assert_eq!(p.pack.escrow[2].kind, "totp");
    assert_eq!(p.totp.len(), 1);
    let t = &p.totp[0];
    assert_eq!((t.label.as_str(), t.prefix), ("phone", Some('3')));
    assert!(!format!("{t:?}").contains("otpauth"), "{t:?}");
    let (b32, raw) = secret_of_uri(t.uri.expose_secret(), "phone");
    // The secret is nowhere on this device: not in the pack, not in its
    // side file (the escrow data holds it, sealed for the server).
    for f in std::fs::read_dir(&home).unwrap() {
        let text = std::fs::read(f.unwrap().path()).unwrap_or_default();
        assert!(!String::from_utf8_lossy(&text).contains(&b32));
    }

    let pack = c.pack("wallet").unwrap();
    let v = c.verify(&pack).unwrap();
    assert!(v.failures.is_empty(), "{:?}", v.failures);
    let app = v.hints.iter().find(|h| h.kind == "totp").unwrap();
    assert_eq!(app.hint, "authenticator app: Passcrow (phone)");
    assert_eq!(app.prefix, '3');
    // Nothing was sent for the app; its watcher was told.
    let lines = srv.lines();
    assert!(!lines.iter().any(|l| l.starts_with("totp:")), "{lines:?}");
    assert!(
        lines.iter().any(
            |l| l.starts_with(&format!("# notice\t{BOB}\t")) && l.contains("authenticator app")
        ),
        "{lines:?}"
    );

    // E-mail and the app, typed as it shows the code (6 digits).
    let typed = [
        newest_code(&srv.codes, "email:alice@example.org").unwrap(),
        totp_code_at(&raw, srv.now()),
    ];
    assert_eq!(secret_of(c.recover(&pack, &typed).unwrap()), SECRET);

    // SMS and the app, its next code (each code opens once), typed with
    // the escrow's prefix and a blank.
    srv.advance(30);
    c.verify(&pack).unwrap();
    let typed = [
        newest_code(&srv.codes, "tel:+3545885522").unwrap(),
        format!("3 {}", totp_code_at(&raw, srv.now())),
    ];
    assert_eq!(secret_of(c.recover(&pack, &typed).unwrap()), SECRET);

    // A 6-digit code of the wrong secret is a wrong guess, not a share.
    srv.advance(30);
    c.verify(&pack).unwrap();
    let other = totp_code_at(&[7u8; 20], srv.now());
    let right = totp_code_at(&raw, srv.now());
    if other != right {
        let typed = [newest_code(&srv.codes, "tel:+3545885522").unwrap(), other];
        let e = c.recover(&pack, &typed).unwrap_err();
        assert!(
            matches!(
                e,
                passcrow::Error::WrongCode {
                    prefix: Some('3'),
                    ..
                }
            ),
            "{e:?}"
        );
    }
}

#[test]
fn each_totp_code_opens_once_even_across_a_restart() {
    let mut srv = Srv::start(|_| {});
    let e = srv.totp_escrow(Some(BOB));
    // No recovery without `verify` (which tells the watcher): the app's
    // right code is refused, nothing is spent.
    let (_, v) = srv.recover(&e, &srv.app_code(&e));
    assert_eq!(v["error-kind"], "not-found", "{v}");
    assert!(error_of(&v).contains("ask for one first"), "{v}");
    let v = srv.verify_ok(&e);
    assert_eq!(v["hint"], "authenticator app: Passcrow (phone)");
    assert!(srv
        .lines()
        .iter()
        .any(|l| l.starts_with(&format!("# notice\t{BOB}\trecovery started"))));

    let code = srv.app_code(&e);
    let (s, v) = srv.recover(&e, &code);
    assert_eq!((s, &v["escrow-secret"]), (200, &"1-5ec7e7".into()), "{v}");

    // The same code again, in the same 30 s: refused as used, an attempt spent.
    srv.verify_ok(&e);
    let (_, v) = srv.recover(&e, &code);
    assert_eq!(v["error-kind"], "wrong-code", "{v}");
    assert!(error_of(&v).contains("used already"), "{v}");
    assert_eq!(v["attempts-left"], 2, "{v}");
    // The step before (still inside the skew allowed) is refused too.
    let before = totp_code_at(&e.raw, srv.now() - 30);
    if before != code {
        let (_, v) = srv.recover(&e, &before);
        assert_eq!(v["error-kind"], "wrong-code", "{v}");
    }

    // After a restart the last step taken is still known.
    srv.restart();
    srv.verify_ok(&e);
    let (_, v) = srv.recover(&e, &code);
    assert!(error_of(&v).contains("used already"), "{v}");
    // The owner, with the app's next code, gets in.
    srv.advance(30);
    let (s, v) = srv.recover(&e, &srv.app_code(&e));
    assert_eq!((s, &v["escrow-secret"]), (200, &"1-5ec7e7".into()), "{v}");
}

/// A code around now that is not the app's (no step within the skew
/// matches it).
fn wrong_code(e: &Escrow, now: i64) -> String {
    let near: Vec<String> = (-1..=1)
        .map(|k| totp_code_at(&e.raw, now + 30 * k))
        .collect();
    (0..1_000_000)
        .map(|n| format!("{n:06}"))
        .find(|c| !near.contains(c))
        .unwrap()
}

#[test]
fn the_guessing_budget_holds_for_authenticator_codes() {
    let srv = Srv::start(|c| {
        c.limits.wrong_guesses_per_hour = 4;
        c.limits.wrong_guesses_lifetime = 6;
        c.verifications_per_hour = 20;
    });
    let e = srv.totp_escrow(Some(BOB));
    srv.verify_ok(&e);
    // Not a code at all: refused before anything is spent.
    let (_, v) = srv.recover(&e, "12ab56");
    assert_eq!(v["error-kind"], "bad-request", "{v}");
    assert!(error_of(&v).contains("6 digits"), "{v}");
    // Three wrong codes void the window of this verification ...
    let wrong = wrong_code(&e, srv.now());
    for left in [2, 1, 0] {
        let (_, v) = srv.recover(&e, &wrong);
        assert_eq!(v["attempts-left"], left, "{v}");
    }
    // ... and then not even the app's right code opens it.
    let (_, v) = srv.recover(&e, &srv.app_code(&e));
    assert!(error_of(&v).contains("void"), "{v}");
    // A new window; the fourth wrong code of the hour pauses the escrow
    // and its owner and watcher are told.
    srv.verify_ok(&e);
    let (_, v) = srv.recover(&e, &wrong);
    assert!(error_of(&v).contains("none is checked until"), "{v}");
    assert!(srv.lines().iter().any(|l| l.starts_with(&format!(
        "# notice\t{BOB}\ttoo many wrong codes, none checked"
    ))));
    let (s, v) = srv.recover(&e, &srv.app_code(&e));
    assert_eq!(
        (s, v["error-kind"].as_str()),
        (429, Some("rate-limited")),
        "{v}"
    );
    let (s, _) = srv.verify(&e);
    assert_eq!(s, 429);

    // The next hour the owner, with the app, gets in.
    srv.advance(HOUR);
    srv.verify_ok(&e);
    let (_, v) = srv.recover(&e, &srv.app_code(&e));
    assert_eq!(v["escrow-secret"], "1-5ec7e7", "{v}");

    // Over its life: two more wrong codes (six in all) freeze it for good,
    // and then the right code never opens it.
    srv.advance(HOUR);
    srv.verify_ok(&e);
    let wrong = wrong_code(&e, srv.now());
    srv.recover(&e, &wrong);
    let (_, v) = srv.recover(&e, &wrong);
    assert_eq!(v["error-kind"], "frozen", "{v}");
    assert!(srv
        .lines()
        .iter()
        .any(|l| l == &format!("# notice\t{BOB}\ttoo many wrong codes, frozen")));
    srv.advance(HOUR);
    let (_, v) = srv.recover(&e, &srv.app_code(&e));
    assert_eq!(v["error-kind"], "frozen", "{v}");
    let (_, v) = srv.verify(&e);
    assert_eq!(v["error-kind"], "frozen", "{v}");
}

#[test]
fn totp_identities_go_only_to_servers_that_list_them() {
    // python-passcrow's server: no extensions at all.
    let r = common::RefServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let c = client(&tmp.path().join("home"));
    let ids = [
        format!("alice@example.org via {}", r.url),
        format!("totp:phone via {}", r.url),
    ];
    let policy = c.make_policy(&ids, Some((2, 2))).unwrap();
    let e = c
        .protect("wallet", SECRET, &policy, &ProtectOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("does not offer totp: identities") && e.contains("python-passcrow"),
        "{e}"
    );
    assert!(c.pack("wallet").is_err());

    // Ours with authenticator apps turned off: no `totp` listed.
    let srv = Srv::start(|c| c.totp.enabled = false);
    let (_, x) = srv.post("extensions", &serde_json::json!({}));
    assert!(x["kinds"].get("totp").is_none(), "{x}");
    let ids = [format!("totp:phone via {}", srv.url)];
    let policy = c.make_policy(&ids, Some((1, 1))).unwrap();
    let e = c
        .protect("wallet", SECRET, &policy, &ProtectOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("its extensions do not list"), "{e}");
    // Nor does the server take such an escrow from a client that skips
    // the check.
    let params =
        serde_json::json!({"kind": "totp", "expiration": srv.now() + 86400, "payment": "free:0"});
    let pkey = random_key();
    let body = serde_json::json!({
        "passcrow-escrow-request": "1.0",
        "parameters-key": pkey.to_b64(),
        "parameters": seal(&pkey, params.to_string().as_bytes()).unwrap(),
        "escrow-data": [seal(&random_key(), b"{}").unwrap()],
    });
    let (_, v) = srv.post("escrowrequest", &body);
    assert_eq!(v["error-kind"], "unsupported", "{v}");

    // Ours as it ships: listed with what apps make.
    let on = Srv::start(|_| {});
    let (_, x) = on.post("extensions", &serde_json::json!({}));
    assert_eq!(
        x["kinds"]["totp"],
        serde_json::json!({"algorithm": "SHA1", "digits": 6, "period": 30, "skew-steps": 1})
    );
}
