//! Our server with the outside world: the python-passcrow 0.0.7 client
//! (PyPI) protects, verifies, recovers and deletes against it; and real
//! e-mail through an SMTP server on loopback (aiosmtpd from the reference
//! venv), the code read out of the received message.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use passcrow::client::{Client, ClientConfig, ProtectOptions, Recovered};
use passcrow::server::config::SmtpConfig;
use passcrow::server::{self, Handle};

const IDS: [&str; 3] = [
    "email:alice@example.org",
    "email:bob@example.org",
    "tel:+3545885522",
];

fn our_server(dir: &Path) -> (Handle, PathBuf) {
    let codes = dir.join("codes.txt");
    let h = server::spawn(common::backend::server_config(dir.join("server"), &codes)).unwrap();
    (h, codes)
}

fn escrow_count(url: &str) -> u64 {
    let r = ureq::post(&format!("{url}/passcrow/stats"))
        .send_bytes(b"{}")
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&r.into_string().unwrap()).unwrap();
    v["storage"]["escrows"].as_u64().unwrap()
}

fn ref_protect(home: &Path, name: &str, secret: &Path, days: &str, url: &str) {
    let mut cmd = ref_client("protect", home);
    cmd.args(["--name", name, "--secret-file", secret.to_str().unwrap()])
        .args(["--ratio", "2/3", "--days", days]);
    for id in IDS {
        cmd.args(["--id", &format!("{id} via {url}")]);
    }
    let (ok, out, err) = run(&mut cmd);
    assert!(ok, "reference protect {name}: {out} {err}");
}

fn ref_verify_recover(home: &Path, name: &str, codes: &Path, which: [usize; 2], out: &Path) {
    let (ok, o, err) = run(ref_client("verify", home).args(["--name", name]));
    assert!(ok, "reference verify {name}: {o} {err}");
    let mut cmd = ref_client("recover", home);
    cmd.args(["--name", name, "--out", out.to_str().unwrap()]);
    for i in which {
        cmd.args(["--code", &newest_code(codes, IDS[i]).unwrap()]);
    }
    let (ok, o, err) = run(&mut cmd);
    assert!(ok, "reference recover {name}: {o} {err}");
}

#[test]
fn reference_client_against_our_server() {
    let dir = tempfile::tempdir().unwrap();
    let (h, codes) = our_server(dir.path());
    let url = h.url();
    let secret = "Þetta er leyndarmál: hunter2".as_bytes().to_vec();
    let secret_file = dir.path().join("secret.txt");
    std::fs::write(&secret_file, &secret).unwrap();
    let home = dir.path().join("ref-home");
    std::fs::create_dir_all(&home).unwrap();
    let out = dir.path().join("out.bin");

    // 1 day: paid free.
    ref_protect(&home, "free one", &secret_file, "1", &url);
    assert_eq!(escrow_count(&url), 3);
    ref_verify_recover(&home, "free one", &codes, [0, 2], &out);
    assert_eq!(std::fs::read(&out).unwrap(), secret);

    // A wrong code: the reference client fails cleanly, then a right one works.
    let (ok, o, err) = run(ref_client("verify", &home).args(["--name", "free one"]));
    assert!(ok, "{o} {err}");
    let good = newest_code(&codes, IDS[1]).unwrap();
    let bad = format!(
        "{}{:06}",
        &good[..1],
        (good[1..].parse::<u32>().unwrap() + 1) % 1_000_000
    );
    let (ok, _, _) = run(ref_client("recover", &home).args([
        "--name",
        "free one",
        "--out",
        out.to_str().unwrap(),
        "--code",
        &bad,
    ]));
    assert!(!ok, "a wrong code must not recover");
    // The reference client retries a failed task, so the wrong code used
    // up every attempt and the code is void: ask for new codes.
    let (ok, o, err) = run(ref_client("verify", &home).args(["--name", "free one"]));
    assert!(ok, "{o} {err}");
    let good = newest_code(&codes, IDS[1]).unwrap();
    let mut cmd = ref_client("recover", &home);
    cmd.args(["--name", "free one", "--out", out.to_str().unwrap()])
        .args([
            "--code",
            &good,
            "--code",
            &newest_code(&codes, IDS[0]).unwrap(),
        ]);
    let (ok, o, err) = run(&mut cmd);
    assert!(ok, "{o} {err}");

    // 200 days: paid with hashcash, checked and spent by our server.
    ref_protect(&home, "hashcash one", &secret_file, "200", &url);
    assert_eq!(escrow_count(&url), 6);
    let pack: serde_json::Value =
        serde_json::from_slice(&std::fs::read(home.join("hashcash one.passcrow")).unwrap())
            .unwrap();
    let exp = pack["escrow"][0]["response"]["expiration"]
        .as_i64()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(exp > now + 199 * 86400, "hashcash bought the lifetime");
    ref_verify_recover(&home, "hashcash one", &codes, [1, 2], &out);
    assert_eq!(std::fs::read(&out).unwrap(), secret);

    // Delete: the reference client removes its escrows from our server.
    let (ok, o, err) = run(ref_client("delete", &home).args(["--name", "free one"]));
    assert!(ok, "{o} {err}");
    assert_eq!(escrow_count(&url), 3);
    h.shutdown();
}

/// aiosmtpd on a free loopback port, saving messages to a directory.
struct SmtpSink {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl SmtpSink {
    fn start(dir: &Path) -> SmtpSink {
        let port_file = dir.join("smtp-port");
        let out = dir.join("mail");
        let child = Command::new(ref_python())
            .arg(repo().join("tests/support/smtp_sink.py"))
            .args(["--dir", out.to_str().unwrap()])
            .args(["--port-file", port_file.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        let port = loop {
            if let Ok(p) = std::fs::read_to_string(&port_file) {
                if let Ok(p) = p.trim().parse() {
                    break p;
                }
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "SMTP sink did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        SmtpSink {
            child,
            port,
            dir: out,
        }
    }

    /// (recipients, raw message) of every message so far.
    fn messages(&self) -> Vec<(String, String)> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        names.retain(|p| p.extension().is_some_and(|e| e == "eml"));
        names.sort();
        names
            .iter()
            .map(|p| {
                (
                    std::fs::read_to_string(p.with_extension("rcpt")).unwrap(),
                    std::fs::read_to_string(p).unwrap(),
                )
            })
            .collect()
    }

    /// The code in the newest message to `addr`.
    fn code_for(&self, addr: &str) -> String {
        let (_, msg) = self
            .messages()
            .into_iter()
            .rev()
            .find(|(rcpt, _)| rcpt.lines().any(|l| l == addr))
            .unwrap_or_else(|| panic!("no mail to {addr}"));
        let body = msg
            .split("\r\n\r\n")
            .nth(1)
            .or_else(|| msg.split("\n\n").nth(1))
            .unwrap();
        let word = body
            .split_whitespace()
            .find(|w| w.len() == 7 && w[1..].bytes().all(|b| b.is_ascii_digit()))
            .unwrap_or_else(|| panic!("no code in {msg}"));
        word.to_string()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn email_over_smtp_for_real() {
    let dir = tempfile::tempdir().unwrap();
    let sink = SmtpSink::start(dir.path());
    let mut cfg =
        common::backend::server_config(dir.path().join("server"), dir.path().join("unused"));
    cfg.delivery.file = None;
    cfg.delivery.mail_from = Some("Passcrow Test <noreply@passcrow.test>".into());
    cfg.delivery.smtp = Some(SmtpConfig {
        url: format!("smtp://127.0.0.1:{}", sink.port),
        ..Default::default()
    });
    cfg.about_url = "https://passcrow.test/about".into();
    let h = server::spawn(cfg).unwrap();
    let url = h.url();

    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let c = Client::new(ClientConfig::new(&home, &home)).unwrap();
    let ids = [
        format!("alice@example.org via {url}"),
        format!("bob@example.org via {url}"),
    ];
    let mut policy = c.make_policy(&ids, Some((2, 2))).unwrap();
    policy.expiration_days = 1;
    let opts = ProtectOptions {
        verify_description: "Test Wallet".into(),
        ..Default::default()
    };
    c.protect("mail", b"sent by mail", &policy, &opts).unwrap();
    let pack = c.pack("mail").unwrap();
    let v = c.verify(&pack).unwrap();
    assert_eq!(v.hints.len(), 2);
    let msgs = sink.messages();
    assert_eq!(msgs.len(), 2);
    let (_, first) = &msgs[0];
    assert!(
        first.contains("From: \"Passcrow Test\" <noreply@passcrow.test>"),
        "{first}"
    );
    assert!(first.contains("Message-ID: <"), "{first}");
    assert!(
        first.contains("Subject: Passcrow Verification Code")
            && first.contains("Label given by the requester: \"Test Wallet\""),
        "{first}"
    );
    assert!(first.contains("https://passcrow.test/about"), "{first}");
    let codes = [
        sink.code_for("alice@example.org"),
        sink.code_for("bob@example.org"),
    ];
    assert!(
        codes[0].starts_with('1') && codes[1].starts_with('2'),
        "{codes:?}"
    );
    match c.recover(&pack, &codes).unwrap() {
        Recovered::Secret(s) => assert_eq!(s.expose_secret(), b"sent by mail"),
        Recovered::Pack { .. } => panic!("expected the secret"),
    }

    // Plain SMTP is refused for anything but loopback.
    let mut bad =
        common::backend::server_config(dir.path().join("server2"), dir.path().join("unused"));
    bad.delivery.mail_from = Some("noreply@passcrow.test".into());
    bad.delivery.smtp = Some(SmtpConfig {
        url: "smtp://mail.example.org:25".into(),
        ..Default::default()
    });
    let e = server::Server::open(bad).unwrap_err().to_string();
    assert!(e.contains("plain smtp://"), "{e}");
    h.shutdown();
}
