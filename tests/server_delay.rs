//! The release delay over real HTTP on loopback, with a clock the test
//! moves (`Server::set_clock`) and messages delivered to a file
//! (FileSink): an escrow that asks for `delay=48h` is pending after its
//! right code, every identity is told with a link to the cancel page,
//! and it is released after T with the same codes; stopped through that
//! page in headless Chromium (the button clicked as the person reading
//! the notice would), it is never released; a notice that cannot be
//! delivered stops the release; and the policies a delay cannot serve
//! are refused at protect.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use common::newest_code;
use passcrow::client::{Client, ClientConfig, ProtectOptions, Recovered};
use passcrow::server::config::Config;
use passcrow::server::{self, Handle, Server};
use passcrow::Error;

const HOUR: i64 = 3600;
const ALICE: &str = "email:alice@example.org";
const BOB: &str = "email:bob@example.org";
const SECRET: &[u8] = b"correct horse battery staple";

/// Our server on loopback, its `public_url` its own address (the cancel
/// links point there), on a clock the test moves.
struct Srv {
    url: String,
    codes: PathBuf,
    clock: Arc<AtomicI64>,
    handle: Option<Handle>,
    _tmp: tempfile::TempDir,
}

impl Srv {
    fn start(public: bool, tune: impl FnOnce(&mut Config)) -> Srv {
        let tmp = tempfile::tempdir().unwrap();
        let codes = tmp.path().join("codes.txt");
        let mut cfg = common::backend::server_config(tmp.path().join("server"), &codes);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        cfg.listen = format!("127.0.0.1:{port}");
        if public {
            cfg.outbound.public_url = Some(format!("http://127.0.0.1:{port}"));
        }
        // Free escrows that outlive the delays (no hashcash to compute).
        cfg.payment.free_seconds = 10 * 86400;
        tune(&mut cfg);
        let clock = Arc::new(AtomicI64::new(passcrow::util::clock::unix_now()));
        let mut s = Server::open(cfg.clone()).unwrap();
        let c = clock.clone();
        s.set_clock(Box::new(move || c.load(Ordering::SeqCst)));
        let handle = server::http::spawn_server(Arc::new(s), &cfg.listen).unwrap();
        Srv {
            url: handle.url(),
            codes,
            clock,
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

    fn extensions(&self) -> serde_json::Value {
        let r = ureq::post(&format!("{}/passcrow/extensions", self.url))
            .send_string("{}")
            .unwrap();
        serde_json::from_str(&r.into_string().unwrap()).unwrap()
    }

    /// The release notices delivered to `who`: (due, cancel URL).
    fn release_notices(&self, who: &str) -> Vec<(i64, String)> {
        let prefix = format!("# notice\t{who}\trelease pending until ");
        std::fs::read_to_string(&self.codes)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.strip_prefix(&prefix))
            .map(|rest| {
                let (due, url) = rest.split_once(", stop it at ").unwrap();
                (due.parse().unwrap(), url.to_string())
            })
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

fn client(home: &Path) -> Client {
    std::fs::create_dir_all(home).unwrap();
    Client::new(ClientConfig::new(home, home)).unwrap()
}

/// Protect SECRET as "wallet" with these identity policies (all of them
/// needed), ask for the codes, and give back the codes as delivered.
fn protect_and_verify(srv: &Srv, c: &Client, ids: &[String], who: &[&str]) -> Vec<String> {
    let n = ids.len() as u32;
    let mut policy = c.make_policy(ids, Some((n, n))).unwrap();
    policy.expiration_days = 5;
    c.protect("wallet", SECRET, &policy, &ProtectOptions::default())
        .unwrap();
    c.verify(&c.pack("wallet").unwrap()).unwrap();
    who.iter()
        .map(|w| newest_code(&srv.codes, w).unwrap())
        .collect()
}

fn page(url: &str, post: bool) -> (u16, String) {
    let r = if post {
        ureq::post(url).send_string("")
    } else {
        ureq::get(url).call()
    };
    let r = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{url}: {e}"),
    };
    (r.status(), r.into_string().unwrap())
}

#[test]
fn a_delayed_escrow_is_pending_until_its_time_then_released_with_the_same_codes() {
    let srv = Srv::start(true, |_| {});
    assert_eq!(
        srv.extensions()["escrow-options"]["delay"],
        serde_json::json!({"max-seconds": 7 * 86400})
    );
    let u = &srv.url;
    let tmp = tempfile::tempdir().unwrap();
    let c = client(&tmp.path().join("home"));
    let ids = [
        format!("alice@example.org, notify={BOB}, delay=48h via {u}"),
        format!("+3545885522, delay=48h via {u}"),
    ];
    let typed = protect_and_verify(&srv, &c, &ids, &[ALICE, "tel:+3545885522"]);
    let pack = c.pack("wallet").unwrap();
    let t0 = srv.now();
    match c.recover(&pack, &typed) {
        Err(Error::Pending { release_at, .. }) => assert_eq!(release_at, t0 + 48 * HOUR),
        other => panic!("expected pending, got {other:?}"),
    }
    // Every identity was told, with a link under the public URL.
    for who in [ALICE, BOB, "tel:+3545885522"] {
        let n = srv.release_notices(who);
        assert_eq!(n.len(), 1, "{who}: {n:?}");
        assert_eq!(n[0].0, t0 + 48 * HOUR);
        assert!(
            n[0].1.starts_with(&format!("{u}/passcrow/cancel/")),
            "{n:?}"
        );
    }
    // One hour before T: still pending, and no new code is sent.
    srv.advance(47 * HOUR);
    assert!(matches!(
        c.recover(&pack, &typed),
        Err(Error::Pending { .. })
    ));
    assert!(c.verify(&pack).is_err());
    // At T the same client, with the same codes, gets the secret.
    srv.advance(HOUR);
    match c.recover(&pack, &typed).unwrap() {
        Recovered::Secret(s) => assert_eq!(s.expose_secret(), SECRET),
        other => panic!("expected the secret, got {other:?}"),
    }
}

/// Headless Chromium (installed by scripts/chromium.sh when missing).
fn chromium() -> PathBuf {
    let out = Command::new("bash")
        .arg(common::repo().join("scripts/chromium.sh"))
        .output()
        .expect("run scripts/chromium.sh");
    assert!(
        out.status.success(),
        "scripts/chromium.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

#[test]
fn a_recovery_stopped_from_its_notice_in_a_browser_is_never_released() {
    let srv = Srv::start(true, |_| {});
    let tmp = tempfile::tempdir().unwrap();
    let c = client(&tmp.path().join("home"));
    let ids = [format!(
        "alice@example.org, notify={BOB}, delay=48h via {}",
        srv.url
    )];
    // The thief has the pack and the e-mail account; the owner reads
    // the notice at bob's address.
    let typed = protect_and_verify(&srv, &c, &ids, &[ALICE]);
    let pack = c.pack("wallet").unwrap();
    assert!(matches!(
        c.recover(&pack, &typed),
        Err(Error::Pending { .. })
    ));
    let (_, url) = srv.release_notices(BOB).pop().unwrap();

    // A mail scanner or link preview fetches the link: nothing changes.
    let (s, body) = page(&url, false);
    assert_eq!(s, 200);
    assert!(body.contains("Stop this recovery?"), "{body}");
    assert!(body.contains("<form method=\"post\">"), "{body}");
    assert!(matches!(
        c.recover(&pack, &typed),
        Err(Error::Pending { .. })
    ));

    // The owner opens it in a browser and clicks the button.
    let shots = tempfile::tempdir().unwrap();
    let (before, after) = (
        shots.path().join("before.png"),
        shots.path().join("after.png"),
    );
    let out = Command::new("python3")
        .arg(common::repo().join("tests/support/cdp_click.py"))
        .arg(chromium())
        .arg(&url)
        .args([&before, &after])
        .output()
        .expect("run cdp_click.py");
    assert!(
        out.status.success(),
        "cdp_click.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        seen["before"]
            .as_str()
            .unwrap()
            .contains("Stop this recovery?"),
        "{seen}"
    );
    assert_eq!(seen["button"], "Stop this recovery", "{seen}");
    assert!(
        seen["after"].as_str().unwrap().contains("Recovery stopped"),
        "{seen}"
    );
    for p in [&before, &after] {
        assert!(std::fs::read(p).unwrap().starts_with(b"\x89PNG"));
    }
    // The README's picture of the page (refreshed on demand).
    if std::env::var_os("PASSCROW_UPDATE_SCREENSHOTS").is_some() {
        std::fs::copy(&before, common::repo().join("docs/cancel-page.png")).unwrap();
        std::fs::copy(&after, common::repo().join("docs/cancel-page-stopped.png")).unwrap();
    }

    // Never released: not now, not after T; the link says so.
    for _ in 0..2 {
        let e = c.recover(&pack, &typed).unwrap_err();
        assert!(matches!(e, passcrow::Error::Stopped { .. }), "{e}");
        assert!(
            e.to_string().contains("the owner stopped this recovery"),
            "{e}"
        );
        srv.advance(49 * HOUR);
    }
    let (_, body) = page(&url, false);
    assert!(body.contains("Recovery stopped"), "{body}");
    // A forged or cut link is no link.
    let (s, body) = page(
        &format!("{}/passcrow/cancel/{}", srv.url, "0".repeat(64)),
        true,
    );
    assert_eq!(s, 400, "{body}");
    let (s, _) = page(&format!("{}/passcrow/cancel/%3Cscript%3E", srv.url), false);
    assert_eq!(s, 400);
}

#[test]
fn a_notice_that_cannot_be_delivered_stops_the_release() {
    // SMS goes only to +354 here: the watcher's +1 number is refused.
    let srv = Srv::start(true, |_| {});
    let tmp = tempfile::tempdir().unwrap();
    let c = client(&tmp.path().join("home"));
    let ids = [format!(
        "alice@example.org, notify=+15555550100, delay=1h via {}",
        srv.url
    )];
    let typed = protect_and_verify(&srv, &c, &ids, &[ALICE]);
    let pack = c.pack("wallet").unwrap();
    let e = c.recover(&pack, &typed).unwrap_err().to_string();
    assert!(e.contains("does not proceed"), "{e}");
    // Nothing is pending: later, even with a new code, the same refusal.
    srv.advance(2 * HOUR);
    c.verify(&pack).unwrap();
    let code = newest_code(&srv.codes, ALICE).unwrap();
    let e = c.recover(&pack, &[code]).unwrap_err().to_string();
    assert!(e.contains("does not proceed"), "{e}");
}

#[test]
fn delays_are_checked_at_protect() {
    let srv = Srv::start(true, |_| {});
    let u = &srv.url;
    let tmp = tempfile::tempdir().unwrap();
    let c = client(&tmp.path().join("home"));
    let protect = |ids: &[String]| {
        let policy = c.make_policy(ids, None)?;
        c.protect("wallet", SECRET, &policy, &ProtectOptions::default())
    };
    // An authenticator app with a delay and nobody to tell.
    let e = protect(&[format!("totp:phone, delay=48h via {u}")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot be told"), "{e}");
    // Longer than the server offers.
    let e = protect(&[format!("alice@example.org, delay=30d via {u}")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("at most 604800 seconds"), "{e}");
    // A server with no public URL (no cancel page) offers none.
    let closed = Srv::start(false, |_| {});
    assert!(closed.extensions()["escrow-options"].get("delay").is_none());
    let e = protect(&[format!("alice@example.org, delay=1h via {}", closed.url)])
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not offer a release delay"), "{e}");
    // Nor does python-passcrow's.
    let r = common::RefServer::start();
    let e = protect(&[format!("alice@example.org, delay=1h via {}", r.url)])
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not offer a release delay"), "{e}");
    assert!(c.pack("wallet").is_err());
}
