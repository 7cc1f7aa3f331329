//! Our client against our server over real HTTP on loopback, the HTTP
//! layer's refusals, SMS/webhook delivery as the APIs would see it, and
//! crash safety of acknowledged escrows (SIGKILL of passcrow-server).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::newest_code;
use passcrow::client::{Client, ClientConfig, Ephemeral, ProtectOptions, Recovered};
use passcrow::server::config::{SmsConfig, WebhookConfig};
use passcrow::server::{self, Server};
use passcrow::testing::{b64encode, random_key, seal};

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

fn stats(url: &str) -> serde_json::Value {
    let r = ureq::post(&format!("{url}/passcrow/stats"))
        .send_bytes(b"{}")
        .unwrap();
    serde_json::from_str(&r.into_string().unwrap()).unwrap()
}

#[test]
fn client_against_our_server_with_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("server");
    let codes = tmp.path().join("codes.txt");
    let handle = server::spawn(common::backend::server_config(&data, &codes)).unwrap();
    let url = handle.url();
    let addr = handle.addr();
    let c = client(&tmp.path().join("home"));
    let ids = [
        format!("alice@example.org via {url}"),
        format!("bob@example.org via {url}"),
        format!("+3545885522 via {url}"),
    ];
    let mut policy = c.make_policy(&ids, Some((2, 3))).unwrap();
    policy.expiration_days = 1;
    let secret = b"correct horse battery staple".to_vec();
    let p = c
        .protect("wallet", &secret, &policy, &ProtectOptions::default())
        .unwrap();
    assert_eq!(p.pack.escrow.len(), 3);
    assert_eq!(stats(&url)["storage"]["escrows"], 3);

    // Restart on the same port and data: nothing is lost.
    handle.shutdown();
    let mut cfg = common::backend::server_config(&data, &codes);
    cfg.listen = addr.to_string();
    let handle = server::spawn(cfg).unwrap();
    assert_eq!(stats(&url)["storage"]["escrows"], 3);

    let pack = c.pack("wallet").unwrap();
    let v = c.verify(&pack).unwrap();
    assert!(v.failures.is_empty(), "{:?}", v.failures);
    let hints: Vec<&str> = v.hints.iter().map(|h| h.hint.as_str()).collect();
    assert_eq!(hints, ["a*@e*ple.org", "b*@e*ple.org", "+35458****2"]);
    let typed = [
        newest_code(&codes, "email:alice@example.org").unwrap(),
        newest_code(&codes, "tel:+3545885522").unwrap(),
    ];
    assert_eq!(secret_of(c.recover(&pack, &typed).unwrap()), secret);
    // Codes are consumed: the same codes again fail.
    assert!(c.recover(&pack, &typed).is_err());

    // Renew: new escrows, the old ones deleted.
    let before: Vec<String> = pack
        .escrow
        .iter()
        .map(|e| e.response.escrow_data_id.clone())
        .collect();
    let r = c.renew("wallet", &secret, Some(&policy)).unwrap();
    let after: Vec<String> = r
        .pack
        .escrow
        .iter()
        .map(|e| e.response.escrow_data_id.clone())
        .collect();
    assert!(before.iter().all(|b| !after.contains(b)));
    assert_eq!(stats(&url)["storage"]["escrows"], 3);
    let pack = c.pack("wallet").unwrap();
    c.verify(&pack).unwrap();
    let typed = [
        newest_code(&codes, "email:bob@example.org").unwrap(),
        newest_code(&codes, "tel:+3545885522").unwrap(),
    ];
    assert_eq!(secret_of(c.recover(&pack, &typed).unwrap()), secret);

    // Forget: escrows deleted on the server, pack gone.
    let f = c.forget("wallet", false).unwrap();
    assert_eq!(f.deleted, 3);
    assert_eq!(stats(&url)["storage"]["escrows"], 0);
    assert!(c.pack("wallet").is_err());

    // Ephemeral: recover on a fresh client with only SERVER:USER_KEY.
    let opts = ProtectOptions {
        ephemeral: Ephemeral::Only,
        ..Default::default()
    };
    let p = c.protect("eph", &secret, &policy, &opts).unwrap();
    let info = p.ephemeral.expect("ephemeral info");
    assert!(p.path.is_none());
    let c2 = client(&tmp.path().join("home2"));
    let stub = c2.pack(info.recovery_id().expose_secret()).unwrap();
    let v = c2.verify(&stub).unwrap();
    assert_eq!(v.hints.len(), 1);
    let code = newest_code(&codes, "email:alice@example.org").unwrap();
    let (name, pack) = match c2.recover(&stub, &[code]).unwrap() {
        Recovered::Pack { name, pack } => (name, pack),
        Recovered::Secret(_) => panic!("expected the pack"),
    };
    assert_eq!(name, info.user_key.expose_secret());
    c2.verify(&pack).unwrap();
    let typed = [
        newest_code(&codes, "email:alice@example.org").unwrap(),
        newest_code(&codes, "email:bob@example.org").unwrap(),
    ];
    assert_eq!(secret_of(c2.recover(&pack, &typed).unwrap()), secret);
    handle.shutdown();
}

fn post(url: &str, body: &[u8]) -> (u16, serde_json::Value) {
    let (status, r) = match ureq::post(url)
        .set("Content-Type", "application/json")
        .send_bytes(body)
    {
        Ok(r) => (r.status(), r),
        Err(ureq::Error::Status(s, r)) => (s, r),
        Err(e) => panic!("{url}: {e}"),
    };
    let text = r.into_string().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")),
    )
}

#[test]
fn http_refusals_and_aliases() {
    let tmp = tempfile::tempdir().unwrap();
    let h = server::spawn(common::backend::server_config(
        tmp.path().join("s"),
        tmp.path().join("codes"),
    ))
    .unwrap();
    let u = h.url();
    // policy by GET and POST, under both names for escrow.
    let p: serde_json::Value = serde_json::from_str(
        &ureq::get(&format!("{u}/passcrow/policy"))
            .call()
            .unwrap()
            .into_string()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(p["max-request-bytes"], 4096);
    assert_eq!(
        p["kinds"],
        serde_json::json!(["email", "mailto", "sms", "tel"])
    );
    let (s, v) = post(&format!("{u}/passcrow/policy"), b"{}");
    assert_eq!((s, &v), (200, &p));
    for m in ["escrowrequest", "protect"] {
        let (s, v) = post(&format!("{u}/passcrow/{m}"), b"{bad json");
        assert_eq!(s, 200);
        assert_eq!(v["error-kind"], "bad-request", "{v}");
        assert!(v["error"].as_str().unwrap().starts_with("Bad request"));
    }
    // Oversize: declared, and chunked with no length.
    let big = vec![b' '; 5000];
    let (s, v) = post(&format!("{u}/passcrow/escrowrequest"), &big);
    assert_eq!(s, 413, "{v}");
    assert!(v["error"].as_str().unwrap().contains("too large"));
    let r =
        ureq::post(&format!("{u}/passcrow/verify")).send(std::io::Cursor::new(vec![b' '; 100_000]));
    match r {
        Err(ureq::Error::Status(413, _)) => {}
        Err(ureq::Error::Transport(_)) => {} // the server may close early
        other => panic!("chunked oversize: {other:?}"),
    }
    // Wrong version, unknown id, unknown method, wrong verb, wrong path.
    let (_, v) = post(
        &format!("{u}/passcrow/verificationrequest"),
        br#"{"passcrow-verification-request": "9.9", "escrow-data-id": "a", "escrow-data-key": "a", "prefix": "1"}"#,
    );
    assert_eq!(v["error-kind"], "unsupported", "{v}");
    let (_, v) = post(
        &format!("{u}/passcrow/recover"),
        format!(
            r#"{{"passcrow-recovery-request": "1.0", "escrow-data-id": "7a000000-{}", "escrow-data-key": "{}", "verification": "1123456"}}"#,
            "ab".repeat(16),
            random_key().to_b64()
        )
        .as_bytes(),
    );
    assert_eq!(v["error-kind"], "not-found", "{v}");
    let (_, v) = post(&format!("{u}/passcrow/launch"), b"{}");
    assert_eq!(v["error"], "Unsupported: launch");
    match ureq::get(&format!("{u}/passcrow/escrowrequest")).call() {
        Err(ureq::Error::Status(405, _)) => {}
        other => panic!("GET escrowrequest: {other:?}"),
    }
    match ureq::get(&format!("{u}/elsewhere")).call() {
        Err(ureq::Error::Status(404, _)) => {}
        other => panic!("GET /elsewhere: {other:?}"),
    }
    assert_eq!(stats(&u)["storage"]["escrows"], 0);
    h.shutdown();
}

#[test]
fn rate_limit_per_address() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = common::backend::server_config(tmp.path().join("s"), tmp.path().join("codes"));
    cfg.rate_limit_burst = 3;
    cfg.rate_limit_per_second = 0.5;
    let h = server::spawn(cfg).unwrap();
    let u = format!("{}/passcrow/policy", h.url());
    for _ in 0..3 {
        assert_eq!(post(&u, b"{}").0, 200);
    }
    let (s, v) = post(&u, b"{}");
    assert_eq!(s, 429);
    assert_eq!(v["error"], "Sorry, rate limited.");
    assert_eq!(v["error-kind"], "rate-limited");
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(post(&u, b"{}").0, 200);
    h.shutdown();
}

/// One HTTP request as a listener received it.
#[derive(Debug)]
struct Seen {
    request_line: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A loopback HTTP listener answering `201 {}` and reporting requests.
fn listener() -> (String, mpsc::Receiver<Seen>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut request_line = String::new();
            r.read_line(&mut request_line).unwrap();
            let mut headers = vec![];
            loop {
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                let (k, v) = line.split_once(':').unwrap();
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
            let len: usize = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .map(|(_, v)| v.parse().unwrap())
                .unwrap_or(0);
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            let _ = s.write_all(
                b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
            );
            let _ = tx.send(Seen {
                request_line: request_line.trim_end().to_string(),
                headers,
                body: String::from_utf8(body).unwrap(),
            });
        }
    });
    (url, rx)
}

fn form(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (url_decode(k), url_decode(v))
        })
        .collect()
}

fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = vec![];
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                out.push(
                    u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap(), 16).unwrap(),
                );
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

/// An escrow request as the client makes it; returns (body, key, blob).
fn escrow_body(verify: &str, secret: &str, expiration: i64) -> (String, String) {
    let rkey = random_key();
    let esd = serde_json::json!({
        "description": "Test secret", "secret": secret, "verify": verify, "timeout": 600,
    });
    let blob = seal(&rkey, esd.to_string().as_bytes()).unwrap();
    let pkey = random_key();
    let params = serde_json::json!({
        "kind": verify.split(':').next().unwrap(),
        "expiration": expiration, "payment": "free:0",
    });
    let body = serde_json::json!({
        "passcrow-escrow-request": "1.0",
        "parameters-key": pkey.to_b64(),
        "parameters": seal(&pkey, params.to_string().as_bytes()).unwrap(),
        "escrow-data": [blob],
    });
    (body.to_string(), rkey.to_b64())
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn handle_ok(s: &Server, method: &str, body: &str) -> serde_json::Value {
    let a = s.handle_named(method, body.as_bytes());
    assert!(!a.is_error(), "{method}: {}", a.body);
    serde_json::from_str(&a.body).unwrap()
}

#[test]
fn sms_and_webhook_delivery() {
    let (sms_url, sms_rx) = listener();
    let (hook_url, hook_rx) = listener();
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = common::backend::server_config(tmp.path(), tmp.path().join("codes"));
    cfg.delivery.file = None;
    cfg.delivery.sms = Some(SmsConfig {
        base_url: Some(sms_url),
        account_sid: "AC0123".into(),
        auth_token: "s3cr3t-token".into(),
        from: Some("+15550001111".into()),
        ..Default::default()
    });
    cfg.delivery.webhooks = vec![WebhookConfig {
        url: format!("{hook_url}/hook"),
        kinds: vec!["signal".into()],
        bearer_token: Some("hook-token".into()),
        ..Default::default()
    }];
    let s = Server::open(cfg).unwrap();
    assert_eq!(s.kinds(), ["signal", "sms", "tel"]);
    // E-mail is not deliverable here: refused at once.
    let (b, _) = escrow_body("email:a@example.org", "1-a", now() + 3600);
    let a = s.handle_named("escrowrequest", b.as_bytes());
    assert!(
        a.body.contains("Unsupported kind of Identity: email"),
        "{}",
        a.body
    );

    let verify = |identity: &str, lang: &str| {
        let (b, key) = escrow_body(identity, "1-a", now() + 3600);
        let r = handle_ok(&s, "escrowrequest", &b);
        let v = serde_json::json!({
            "passcrow-verification-request": "1.0",
            "escrow-data-id": r["escrow-data-id"], "escrow-data-key": key,
            "language": lang, "prefix": "7",
        });
        handle_ok(&s, "verificationrequest", &v.to_string())
    };
    let v = verify("tel:+354 588-5522", "is");
    assert_eq!(v["hint"], "+354 58*****2");
    let seen = sms_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(
        seen.request_line,
        "POST /2010-04-01/Accounts/AC0123/Messages.json HTTP/1.1"
    );
    assert_eq!(
        seen.header("authorization").unwrap(),
        format!("Basic {}", b64encode(b"AC0123:s3cr3t-token"))
    );
    assert!(seen
        .header("content-type")
        .unwrap()
        .starts_with("application/x-www-form-urlencoded"));
    let f = form(&seen.body);
    let get = |k: &str| f.iter().find(|(kk, _)| kk == k).map(|(_, v)| v.as_str());
    assert_eq!(get("To"), Some("+3545885522"));
    assert_eq!(get("From"), Some("+15550001111"));
    let text = get("Body").unwrap();
    assert!(text.contains("staðfestingarkóðinn"), "{text}");
    let code: String = text
        .split_whitespace()
        .find(|w| w.starts_with('7') && w.len() == 7)
        .unwrap()
        .into();
    assert!(code[1..].bytes().all(|b| b.is_ascii_digit()));

    verify("signal:+3545885522", "en");
    let seen = hook_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(seen.request_line, "POST /hook HTTP/1.1");
    assert_eq!(seen.header("authorization"), Some("Bearer hook-token"));
    assert_eq!(seen.header("content-type"), Some("application/json"));
    let j: serde_json::Value = serde_json::from_str(&seen.body).unwrap();
    assert_eq!(j["to"], "signal:+3545885522");
    assert_eq!(j["kind"], "signal");
    assert_eq!(j["type"], "code");
    let code = j["code"].as_str().unwrap();
    assert!(code.starts_with('7') && code.len() == 7);
    assert!(j["text"].as_str().unwrap().contains(code));
    assert!(j["short-text"].as_str().unwrap().contains(code));
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start passcrow-server; returns the process and its URL.
fn start_bin(config: &Path, data: &Path, listen: &str) -> (Proc, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_passcrow-server"))
        .args(["--config", config.to_str().unwrap()])
        .args(["--data", data.to_str().unwrap(), "--listen", listen])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    (Proc(child), url)
}

#[test]
fn acknowledged_escrows_survive_sigkill() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let codes = tmp.path().join("codes.txt");
    let (ok, out, err) = common::run(
        Command::new(env!("CARGO_BIN_EXE_passcrow-server")).args(["init", data.to_str().unwrap()]),
    );
    assert!(ok, "init: {out} {err}");
    let conf = data.join("config.toml");
    let text = std::fs::read_to_string(&conf).unwrap();
    assert!(text.contains("# code_attempts = 3"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let m = std::fs::metadata(data.join("master.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(m & 0o777, 0o600);
    }
    // No rate limit, and file delivery, for the test.
    std::fs::write(
        &conf,
        text.replace("# rate_limit_burst = 20", "rate_limit_burst = 0")
            + &format!("file = {:?}\n", codes.to_str().unwrap()),
    )
    .unwrap();
    let (proc1, url) = start_bin(&conf, &data, "127.0.0.1:0");
    let addr = url.trim_start_matches("http://").to_string();

    // (escrow id, recovery key, identity, secret) of every acknowledged escrow.
    type Acked = Vec<(String, String, String, String)>;
    let acked: Arc<Mutex<Acked>> = Default::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = vec![];
    for w in 0..4 {
        let (acked, stop, url) = (acked.clone(), stop.clone(), url.clone());
        workers.push(std::thread::spawn(move || {
            let agent = ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(5))
                .build();
            for i in 0.. {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let who = format!("email:w{w}n{i}@example.org");
                let secret = format!("{w:x}-{i:x}");
                let (b, key) = escrow_body(&who, &secret, now() + 3600);
                let r = agent
                    .post(&format!("{url}/passcrow/escrowrequest"))
                    .send_bytes(b.as_bytes());
                match r {
                    Ok(r) => {
                        let v: serde_json::Value =
                            serde_json::from_str(&r.into_string().unwrap_or_default())
                                .unwrap_or_default();
                        if let Some(id) = v["escrow-data-id"].as_str() {
                            acked.lock().unwrap().push((id.into(), key, who, secret));
                        }
                    }
                    Err(_) => return, // the server is gone
                }
            }
        }));
    }
    let t0 = Instant::now();
    while acked.lock().unwrap().len() < 150 && t0.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(proc1); // SIGKILL, mid-stream
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 150, "only {} acknowledged", acked.len());

    let (_proc2, url2) = start_bin(&conf, &data, &addr);
    assert_eq!(url2, url);
    let agent = ureq::AgentBuilder::new().build();
    let call = |m: &str, v: serde_json::Value| -> serde_json::Value {
        let r = agent
            .post(&format!("{url}/passcrow/{m}"))
            .send_bytes(v.to_string().as_bytes())
            .unwrap();
        serde_json::from_str(&r.into_string().unwrap()).unwrap()
    };
    for (id, key, who, secret) in &acked {
        let v = call(
            "verificationrequest",
            serde_json::json!({"passcrow-verification-request": "1.0",
                "escrow-data-id": id, "escrow-data-key": key, "prefix": "1"}),
        );
        assert!(v["error"].is_null(), "{id}: {v}");
        let code = newest_code(&codes, who).unwrap();
        let v = call(
            "recoveryrequest",
            serde_json::json!({"passcrow-recovery-request": "1.0",
                "escrow-data-id": id, "escrow-data-key": key, "verification": code}),
        );
        assert_eq!(
            v["escrow-secret"].as_str(),
            Some(secret.as_str()),
            "{id}: {v}"
        );
    }
    eprintln!(
        "{} acknowledged escrows all recovered after SIGKILL",
        acked.len()
    );

    // SIGTERM: a graceful stop, exit status 0.
    let mut p = _proc2;
    let (ok, _, _) = common::run(Command::new("kill").args(["-TERM", &p.0.id().to_string()]));
    assert!(ok);
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = p.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
}
