//! The recovery health check over real HTTP: our client's `check` against
//! our server (healthy, deleted, stopped, expired, restored from an old
//! backup, altered on disk, a server that kept only a digest), against
//! python-passcrow 0.0.7 servers ("unknown, reachable"), the CLI's exit
//! statuses, and the `status` method's per-escrow limit played by an
//! attacker. In every case no code is delivered and no notice sent.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use passcrow::client::{
    Client, ClientConfig, EscrowState, Pacing, ProtectOptions, Recoverable, RenewalReason,
};
use passcrow::server::{self, Server};

/// A client whose retries are quick (a stopped server is given up on
/// within a second or two).
fn client(home: &Path) -> Client {
    std::fs::create_dir_all(home).unwrap();
    let mut cfg = ClientConfig::new(home, home);
    cfg.pacing = Pacing {
        delay: None,
        backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        rate_limit_gap: Duration::from_millis(50),
        retry_for: Duration::from_secs(1),
    };
    Client::new(cfg).unwrap()
}

/// One of our servers on a loopback port, with a clock the test moves.
struct Ours {
    handle: Option<server::Handle>,
    data: PathBuf,
    codes: PathBuf,
    clock: Arc<AtomicI64>,
    addr: std::net::SocketAddr,
}

impl Ours {
    fn start(dir: &Path, name: &str) -> Ours {
        let data = dir.join(name);
        let codes = dir.join(format!("{name}-codes.txt"));
        let clock = Arc::new(AtomicI64::new(passcrow_now()));
        let handle = Self::spawn(&data, &codes, &clock, "127.0.0.1:0");
        let addr = handle.addr();
        Ours {
            handle: Some(handle),
            data,
            codes,
            clock,
            addr,
        }
    }

    fn spawn(data: &Path, codes: &Path, clock: &Arc<AtomicI64>, listen: &str) -> server::Handle {
        let mut cfg = common::backend::server_config(data, codes);
        cfg.listen = listen.into();
        let mut s = Server::open(cfg).unwrap();
        let c = clock.clone();
        s.set_clock(Box::new(move || c.load(Ordering::SeqCst)));
        server::http::spawn_server(Arc::new(s), listen).unwrap()
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn stop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown();
        }
    }

    fn restart(&mut self) {
        self.stop();
        self.handle = Some(Self::spawn(
            &self.data,
            &self.codes,
            &self.clock,
            &self.addr.to_string(),
        ));
    }

    /// What the delivery file holds (codes and notices).
    fn delivered(&self) -> String {
        std::fs::read_to_string(&self.codes).unwrap_or_default()
    }
}

fn passcrow_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

const WHO: [&str; 3] = ["alice@example.org", "bob@example.org", "carol@example.org"];

/// A 2-of-3 pack, one escrow per server.
fn protect_2_of_3(c: &Client, servers: &[&Ours], name: &str) -> passcrow::pack::RecoveryPack {
    let ids: Vec<String> = WHO
        .iter()
        .zip(servers)
        .map(|(w, s)| format!("{w} via {}", s.url()))
        .collect();
    let mut policy = c.make_policy(&ids, Some((2, 3))).unwrap();
    policy.expiration_days = 1;
    let p = c
        .protect(name, b"the secret", &policy, &ProtectOptions::default())
        .unwrap();
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    c.pack(name).unwrap()
}

fn states(h: &passcrow::client::PackHealth) -> Vec<EscrowState> {
    h.escrows.iter().map(|e| e.state).collect()
}

fn three(dir: &Path) -> Vec<Ours> {
    (0..3).map(|i| Ours::start(dir, &format!("s{i}"))).collect()
}

fn delivered_all(servers: &[Ours]) -> Vec<String> {
    servers.iter().map(|s| s.delivered()).collect()
}

#[test]
fn healthy_deleted_stopped_and_expired() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = three(dir.path());
    let c = client(&dir.path().join("home"));
    let pack = protect_2_of_3(&c, &[&s[0], &s[1], &s[2]], "wallet");
    let before = delivered_all(&s);

    // Healthy: all held and proven, margin 1.
    let h = c.check(&pack).unwrap();
    assert_eq!(states(&h), [EscrowState::Held; 3]);
    assert!(h.escrows.iter().all(|e| e.proven));
    assert_eq!(
        (h.recoverable, h.healthy, h.margin),
        (Recoverable::Yes, 3, 1)
    );
    let expiry = pack.escrow[0].response.expiration;
    assert_eq!(h.escrows[0].expires, expiry);

    // One escrow deleted on its server: missing, margin 0, still recoverable.
    let del = serde_json::json!({
        "passcrow-deletion-request": "1.0",
        "escrow-data-id": pack.escrow[1].response.escrow_data_id,
    });
    ureq::post(&format!("{}/passcrow/deletionrequest", s[1].url()))
        .send_string(&del.to_string())
        .unwrap();
    let h = c.check(&pack).unwrap();
    assert_eq!(
        states(&h),
        [EscrowState::Held, EscrowState::Missing, EscrowState::Held]
    );
    assert_eq!((h.recoverable, h.margin), (Recoverable::Yes, 0));

    // A server stopped too: unreachable, not recoverable, margin -1.
    s[2].stop();
    let h = c.check(&pack).unwrap();
    assert_eq!(
        states(&h),
        [
            EscrowState::Held,
            EscrowState::Missing,
            EscrowState::Unreachable
        ]
    );
    assert_eq!((h.recoverable, h.margin), (Recoverable::No, -1));
    let due = c
        .renewal_due_for(
            "wallet",
            &pack,
            Duration::from_secs(3600),
            &Default::default(),
        )
        .unwrap();
    assert!(due.due);
    assert!(due.reasons.contains(&RenewalReason::Missing { escrows: 1 }));
    assert!(due.reasons.contains(&RenewalReason::NotRecoverable));

    // The first server's clock past the escrow's expiration: expired.
    s[2].restart();
    s[0].clock.store(expiry + 1, Ordering::SeqCst);
    let h = c.check(&pack).unwrap();
    assert_eq!(
        states(&h),
        [
            EscrowState::Expired,
            EscrowState::Missing,
            EscrowState::Held
        ]
    );
    assert_eq!((h.recoverable, h.margin), (Recoverable::No, -1));

    // No code was delivered and no notice sent by any of it.
    assert_eq!(delivered_all(&s), before);
    assert!(before.iter().all(|d| d.is_empty()), "{before:?}");
}

#[test]
fn restored_from_an_old_backup_and_altered_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = three(dir.path());
    let c = client(&dir.path().join("home"));
    // A backup of the first server's database, made before the escrow.
    s[0].stop();
    let backup = common::backend::backup(&s[0].data, &dir.path().join("backup.sqlite"));
    s[0].restart();
    let pack = protect_2_of_3(&c, &[&s[0], &s[1], &s[2]], "wallet");
    assert_eq!(c.check(&pack).unwrap().margin, 1);

    // The database restored from that backup: the escrow is missing.
    s[0].stop();
    common::backend::restore(&s[0].data, &backup);
    s[0].restart();
    let h = c.check(&pack).unwrap();
    assert_eq!(
        states(&h),
        [EscrowState::Missing, EscrowState::Held, EscrowState::Held]
    );
    assert_eq!((h.recoverable, h.margin), (Recoverable::Yes, 0));

    // A stored blob altered on disk (one byte flipped): altered.
    s[1].stop();
    common::backend::alter_stored_escrow(&s[1].data, &pack.escrow[1].response.escrow_data_id);
    s[1].restart();
    let h = c.check(&pack).unwrap();
    assert_eq!(
        states(&h),
        [
            EscrowState::Missing,
            EscrowState::Altered,
            EscrowState::Held
        ]
    );
    assert_eq!((h.recoverable, h.margin), (Recoverable::No, -1));
    assert!(s.iter().all(|x| x.delivered().is_empty()));
}

/// An HTTP proxy in front of `upstream` that records the methods asked;
/// with `digest_only`, it plays a server that kept only a SHA-256 of each
/// escrow's data (deleting the data upstream) and answers `status`
/// itself as best it can without the bytes.
struct Proxy {
    url: String,
    methods: Arc<Mutex<Vec<String>>>,
}

/// What the digest-only server keeps of an escrow: id, SHA-256 of the
/// data, expiration.
type Kept = (String, Vec<u8>, i64);

fn read_http(s: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut r = BufReader::new(s.try_clone().ok()?);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_string();
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        if h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some((path, body))
}

fn sha256(b: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(b).to_vec()
}

impl Proxy {
    fn start(upstream: String, digest_only: bool) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let methods: Arc<Mutex<Vec<String>>> = Arc::default();
        let kept: Arc<Mutex<Vec<Kept>>> = Arc::default();
        let m = methods.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { return };
                let Some((path, body)) = read_http(&mut s) else {
                    continue;
                };
                let method = path.rsplit('/').next().unwrap_or("").to_string();
                m.lock().unwrap().push(method.clone());
                let status = std::cell::Cell::new(200u16);
                let forward = |body: &[u8]| -> String {
                    match ureq::post(&format!("{upstream}/passcrow/{method}")).send_bytes(body) {
                        Ok(r) => r.into_string().unwrap(),
                        Err(ureq::Error::Status(code, r)) => {
                            status.set(code);
                            r.into_string().unwrap()
                        }
                        Err(e) => format!("{{\"error\": \"{e}\"}}"),
                    }
                };
                let answer = if digest_only && method == "escrowrequest" {
                    let a = forward(&body);
                    let req: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    let resp: serde_json::Value = serde_json::from_str(&a).unwrap();
                    let blob = req["escrow-data"][0].as_str().unwrap();
                    let raw = passcrow::testing::b64decode(blob).unwrap();
                    let id = resp["escrow-data-id"].as_str().unwrap().to_string();
                    kept.lock().unwrap().push((
                        id.clone(),
                        sha256(&raw),
                        resp["expiration"].as_i64().unwrap(),
                    ));
                    // The data itself is dropped: only its digest is kept.
                    let del = serde_json::json!({
                        "passcrow-deletion-request": "1.0", "escrow-data-id": id,
                    });
                    ureq::post(&format!("{upstream}/passcrow/deletionrequest"))
                        .send_string(&del.to_string())
                        .unwrap();
                    a
                } else if digest_only && method == "status" {
                    let req: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    let id = req["escrow-data-id"].as_str().unwrap();
                    let ch =
                        passcrow::testing::b64decode(req["challenge"].as_str().unwrap()).unwrap();
                    let kept = kept.lock().unwrap();
                    let (_, digest, exp) = kept.iter().find(|k| k.0 == id).unwrap();
                    // The best it can do: the keyed digest of its digest.
                    let d = passcrow::proto::health::status_digest(&ch, digest);
                    serde_json::json!({
                        "passcrow-status-response": "1.0",
                        "escrow-data-id": id,
                        "state": "held",
                        "expiration": exp,
                        "frozen": false,
                        "digest": passcrow::testing::b64encode(&d),
                    })
                    .to_string()
                } else {
                    forward(&body)
                };
                let _ = write!(
                    s,
                    "HTTP/1.1 {} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                    status.get(),
                    answer.len()
                );
            }
        });
        Proxy { url, methods }
    }

    fn methods(&self) -> Vec<String> {
        self.methods.lock().unwrap().clone()
    }
}

#[test]
fn a_server_that_kept_only_a_digest_cannot_answer_the_challenge() {
    let dir = tempfile::tempdir().unwrap();
    let s = three(dir.path());
    let cheat = Proxy::start(s[0].url(), true);
    let c = client(&dir.path().join("home"));
    let ids = [
        format!("{} via {}", WHO[0], cheat.url),
        format!("{} via {}", WHO[1], s[1].url()),
        format!("{} via {}", WHO[2], s[2].url()),
    ];
    let mut policy = c.make_policy(&ids, Some((2, 3))).unwrap();
    policy.expiration_days = 1;
    c.protect("wallet", b"x", &policy, &ProtectOptions::default())
        .unwrap();
    let pack = c.pack("wallet").unwrap();
    // Its data is really gone upstream; it says "held" all the same.
    for _ in 0..2 {
        let h = c.check(&pack).unwrap();
        assert_eq!(
            states(&h),
            [EscrowState::Altered, EscrowState::Held, EscrowState::Held]
        );
        assert_eq!((h.recoverable, h.margin), (Recoverable::Yes, 0));
    }
    assert!(cheat.methods().iter().filter(|m| *m == "status").count() == 2);
    assert!(s.iter().all(|x| x.delivered().is_empty()));
}

#[test]
fn status_is_limited_per_escrow_and_says_nothing_more() {
    let dir = tempfile::tempdir().unwrap();
    let s = three(dir.path());
    let c = client(&dir.path().join("home"));
    let pack = protect_2_of_3(&c, &[&s[0], &s[1], &s[2]], "wallet");
    let id = pack.escrow[0].response.escrow_data_id.clone();
    let status = |challenge: &str| -> serde_json::Value {
        let body = serde_json::json!({
            "passcrow-status-request": "1.0", "escrow-data-id": id, "challenge": challenge,
        });
        let r = match ureq::post(&format!("{}/passcrow/status", s[0].url()))
            .send_string(&body.to_string())
        {
            Ok(r) => r.into_string().unwrap(),
            Err(ureq::Error::Status(_, r)) => r.into_string().unwrap(),
            Err(e) => panic!("{e}"),
        };
        serde_json::from_str(&r).unwrap()
    };
    let ch = passcrow::testing::b64encode(&[7u8; 32]);
    // Bad challenges are refused, changing nothing (no count spent).
    for bad in ["", "!!", &passcrow::testing::b64encode(&[1u8; 8])] {
        let r = status(bad);
        assert_eq!(r["error-kind"], "bad-request", "{r}");
    }
    // The attacker (anyone holding the id) polls: 6 answers an hour, then refused.
    let first = status(&ch);
    let mut keys: Vec<&String> = first.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "digest",
            "escrow-data-id",
            "expiration",
            "frozen",
            "passcrow-status-response",
            "state"
        ]
    );
    for _ in 1..6 {
        assert_eq!(status(&ch)["state"], "held");
    }
    let r = status(&ch);
    assert_eq!(r["error-kind"], "rate-limited", "{r}");
    // The other escrows are not affected; the owner's check still
    // answers for them, and the limited one shows as unreachable.
    let h = c.check(&pack).unwrap();
    assert_eq!(
        states(&h),
        [
            EscrowState::Unreachable,
            EscrowState::Held,
            EscrowState::Held
        ]
    );
    // An hour later the owner is answered again.
    s[0].clock.fetch_add(3600, Ordering::SeqCst);
    assert_eq!(c.check(&pack).unwrap().margin, 1);
    assert!(s.iter().all(|x| x.delivered().is_empty()));
}

#[test]
fn the_cli_check_exit_statuses_and_side_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = three(dir.path());
    let home = dir.path().join("home");
    let (ok, _, err) = run(passcrow().args(["init", "-H", home.to_str().unwrap()]));
    assert!(ok, "{err}");
    let c = client(&home);
    protect_2_of_3(&c, &[&s[0], &s[1], &s[2]], "wallet");
    let side = home.join("wallet.passcrow.health");
    assert!(side.exists());
    let text = std::fs::read_to_string(&side).unwrap();
    // The side file holds no escrowed blob and no key.
    let pack_text = std::fs::read_to_string(home.join("wallet.passcrow")).unwrap();
    let pack: serde_json::Value = serde_json::from_str(&pack_text).unwrap();
    for e in pack["escrow"].as_array().unwrap() {
        assert!(!text.contains(e["recovery-key"].as_str().unwrap()));
    }
    let check = |args: &[&str]| {
        let out = passcrow()
            .arg("check")
            .args(["-H", home.to_str().unwrap()])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = check(&[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("wallet: recoverable, margin 1"), "{out}");
    let (code, out) = check(&["-b", "wallet"]);
    assert_eq!(code, Some(0));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["packs"][0]["recoverable"], "yes");
    assert_eq!(v["packs"][0]["escrows"][0]["state"], "held");
    s[1].stop();
    s[2].stop();
    let (code, out) = check(&["wallet"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("NOT recoverable"), "{out}");
    assert_eq!(check(&["-q"]).0, Some(2));
    assert_eq!(check(&["nosuch"]).0, Some(1));
    // forget removes the side file with the pack.
    let (ok, _, err) =
        run(passcrow().args(["forget", "-l", "-H", home.to_str().unwrap(), "wallet"]));
    assert!(ok, "{err}");
    assert!(!side.exists());
}

#[test]
fn policy_warnings_when_one_server_can_meet_the_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let s = three(dir.path());
    let c = client(&dir.path().join("home"));
    let ids = [
        format!("{} via {}", WHO[0], s[0].url()),
        format!("{} via {}", WHO[1], s[0].url()),
        format!("{} via {}", WHO[2], s[1].url()),
    ];
    let mut policy = c.make_policy(&ids, Some((2, 3))).unwrap();
    policy.expiration_days = 1;
    let p = c
        .protect("w", b"x", &policy, &ProtectOptions::default())
        .unwrap();
    assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
    assert!(p.warnings[0].contains(&s[0].url()), "{:?}", p.warnings);
    // Ephemeral: its server also holding enough shares is warned of.
    let ids = [
        format!("{} via {}", WHO[0], s[2].url()),
        format!("{} via {}", WHO[1], s[2].url()),
        format!("{} via {}", WHO[2], s[1].url()),
    ];
    let mut policy = c.make_policy(&ids, Some((1, 2))).unwrap();
    policy.expiration_days = 1;
    let opts = ProtectOptions {
        ephemeral: passcrow::client::Ephemeral::Both,
        ..Default::default()
    };
    let p = c.protect("e", b"x", &policy, &opts).unwrap();
    assert!(
        p.warnings.iter().any(|w| w.contains("ephemeral")),
        "{:?}",
        p.warnings
    );
}

#[test]
fn reference_servers_unknown_reachable_and_recoverable_by_the_reference_client() {
    let r = RefServer::start();
    let spy = Proxy::start(r.url.clone(), false);
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let (ok, _, err) = run(passcrow().args(["init", "-H", home.to_str().unwrap()]));
    assert!(ok, "{err}");
    let secret_file = dir.path().join("secret.txt");
    std::fs::write(&secret_file, b"hunter2").unwrap();
    let ids = [
        "email:alice@example.org",
        "email:bob@example.org",
        "email:carol@example.net",
    ];
    let mut cmd = passcrow();
    cmd.args([
        "protect",
        "-H",
        home.to_str().unwrap(),
        "-n",
        "refpack",
        "-r",
        "2/3",
        "-d",
        "1",
    ])
    .arg(&secret_file);
    for id in ids {
        cmd.args(["-p", &format!("{id} via {}", spy.url)]);
    }
    let (ok, _, err) = run(&mut cmd);
    assert!(ok, "protect: {err}");
    // One server holds every share: warned on stderr, not refused.
    assert!(err.contains("warning:"), "{err}");
    // Protect sent the reference nothing but its own methods.
    let sent = spy.methods();
    assert!(
        sent.iter().all(|m| m == "policy" || m == "escrowrequest"),
        "{sent:?}"
    );
    assert!(home.join("refpack.passcrow.health").exists());

    let before = std::fs::read_to_string(&r.codes).unwrap_or_default();
    let out = passcrow()
        .args(["check", "-b", "-H", home.to_str().unwrap(), "refpack"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["packs"][0]["recoverable"], "unknown");
    for e in v["packs"][0]["escrows"].as_array().unwrap() {
        assert_eq!(e["state"], "unknown");
        assert!(e["detail"].as_str().unwrap().contains("reachable"));
    }
    // Only discovery was asked (retried if rate limited), never `status`.
    let asked: Vec<String> = spy.methods()[sent.len()..].to_vec();
    assert!(
        !asked.is_empty() && asked.iter().all(|m| m == "extensions"),
        "{asked:?}"
    );
    assert_eq!(
        std::fs::read_to_string(&r.codes).unwrap_or_default(),
        before
    );

    // The python-passcrow client recovers the pack in that directory,
    // side file and all.
    let (ok, out, err) = run(ref_client("verify", &home).args(["--name", "refpack"]));
    assert!(ok, "reference verify: {out} {err}");
    let codes: Vec<String> = ids
        .iter()
        .filter_map(|i| newest_code(&r.codes, i))
        .collect();
    let out_file = dir.path().join("out.bin");
    let mut cmd = ref_client("recover", &home);
    cmd.args(["--name", "refpack", "--out", out_file.to_str().unwrap()]);
    for c in &codes[..2] {
        cmd.args(["--code", c]);
    }
    let (ok, out, err) = run(&mut cmd);
    assert!(ok, "reference recover: {out} {err}");
    assert_eq!(std::fs::read(&out_file).unwrap(), b"hunter2");
}

#[test]
fn status_is_also_limited_per_client_address() {
    // The per-address token bucket every method shares covers `status`:
    // one address polling (here: ids that do not exist, which cost no
    // per-escrow count) is cut off at the burst and served again once the
    // bucket refills.
    let dir = tempfile::tempdir().unwrap();
    let mut cfg =
        common::backend::server_config(dir.path().join("s"), dir.path().join("codes.txt"));
    cfg.rate_limit_burst = 3;
    cfg.rate_limit_per_second = 4.0;
    let h = server::spawn(cfg).unwrap();
    let ask = |i: u32| -> (u16, serde_json::Value) {
        let body = serde_json::json!({
            "passcrow-status-request": "1.0",
            "escrow-data-id": format!("{i:032x}"),
            "challenge": passcrow::testing::b64encode(&[i as u8; 32]),
        });
        let (code, text) = match ureq::post(&format!("{}/passcrow/status", h.url()))
            .send_string(&body.to_string())
        {
            Ok(r) => (r.status(), r.into_string().unwrap()),
            Err(ureq::Error::Status(c, r)) => (c, r.into_string().unwrap()),
            Err(e) => panic!("{e}"),
        };
        (code, serde_json::from_str(&text).unwrap())
    };
    for i in 0..3 {
        assert_eq!(ask(i).1["state"], "missing");
    }
    let (code, r) = ask(3);
    assert_eq!(
        (code, r["error"].as_str()),
        (429, Some("Sorry, rate limited."))
    );
    // The bucket refills (4 a second): the address is served again.
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(ask(4).1["state"], "missing");
}

/// An escrow frozen by the guessing budget (someone holding the pack tried
/// 30 wrong codes) is reported `frozen`, not held: the pack's margin
/// drops, and the check itself delivers nothing.
#[test]
fn an_escrow_frozen_by_wrong_guesses_is_reported_frozen() {
    let dir = tempfile::tempdir().unwrap();
    let s = three(dir.path());
    let c = client(&dir.path().join("home"));
    let pack = protect_2_of_3(&c, &[&s[0], &s[1], &s[2]], "wallet");
    let e = &pack.escrow[0];
    let post = |method: &str, body: serde_json::Value| -> serde_json::Value {
        let r = match ureq::post(&format!("{}/passcrow/{method}", s[0].url()))
            .send_string(&body.to_string())
        {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method}: {e}"),
        };
        serde_json::from_str(&r.into_string().unwrap()).unwrap()
    };
    // The attacker: 10 wrong codes an hour (the most the hour allows),
    // three hours running, a fresh code asked for when the last is void
    // (3 attempts each, so 4 codes an hour, within the 5 allowed).
    for hour in 0..3 {
        for g in 0..10 {
            if g % 3 == 0 {
                let v = post(
                    "verificationrequest",
                    serde_json::json!({
                        "passcrow-verification-request": "1.0",
                        "escrow-data-id": e.response.escrow_data_id,
                        "escrow-data-key": e.recovery_key.expose_secret(),
                        "prefix": "1",
                        "language": "en",
                    }),
                );
                assert!(v.get("error").is_none(), "hour {hour}, guess {g}: {v}");
            }
            post(
                "recoveryrequest",
                serde_json::json!({
                    "passcrow-recovery-request": "1.0",
                    "escrow-data-id": e.response.escrow_data_id,
                    "escrow-data-key": e.recovery_key.expose_secret(),
                    "verification": "1000000",
                }),
            );
        }
        s[0].clock.fetch_add(3601, Ordering::SeqCst);
    }
    let r = post(
        "recoveryrequest",
        serde_json::json!({
            "passcrow-recovery-request": "1.0",
            "escrow-data-id": e.response.escrow_data_id,
            "escrow-data-key": e.recovery_key.expose_secret(),
            "verification": "1000000",
        }),
    );
    assert_eq!(r["error-kind"], "frozen", "{r}");
    let before = delivered_all(&s);
    let h = c.check(&pack).unwrap();
    assert_eq!(
        states(&h),
        [EscrowState::Frozen, EscrowState::Held, EscrowState::Held]
    );
    assert_eq!(
        (h.recoverable, h.healthy, h.margin),
        (Recoverable::Yes, 2, 0)
    );
    assert_eq!(delivered_all(&s), before, "the check delivered something");
}
