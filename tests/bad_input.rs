//! Bad input, table-driven: wrong codes, unknown packs, corrupted pack
//! files, wrong keys, server errors. Each gives a clear error of the right
//! kind, and no file is changed. Runs against the real python-passcrow
//! 0.0.7 server.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use passcrow::client::{Client, ClientConfig, ProtectOptions, Recovered};
use passcrow::pack::RecoveryPack;
use passcrow::Error;

const IDS: [&str; 3] = [
    "email:alice@example.org",
    "email:bob@example.org",
    "email:carol@example.net",
];

fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap_or_default(),
            )
        })
        .collect();
    v.sort();
    v
}

fn client(dir: &Path) -> Client {
    let mut c = Client::new(ClientConfig::new(dir, dir)).unwrap();
    c.set_log(Arc::new(|_| {}));
    c
}

/// Write a variant of the good pack under `name`.
fn write_variant(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(format!("{name}.passcrow")), text).unwrap();
}

/// One bad-input case: the operation, run against a fresh setup.
type Case<'a> = Box<dyn Fn() -> Result<(), Error> + 'a>;

#[test]
fn bad_input_gives_clear_errors_and_changes_nothing() {
    let s = RefServer::start();
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let c = client(dir);
    let ids: Vec<String> = IDS.iter().map(|i| format!("{i} via {}", s.url)).collect();
    let policy = c.make_policy(&ids, Some((2, 3))).unwrap();
    c.protect("good", b"the secret", &policy, &ProtectOptions::default())
        .unwrap();
    let good = std::fs::read_to_string(dir.join("good.passcrow")).unwrap();
    let pack = c.pack("good").unwrap();

    // Variants of the good pack, each broken in one way.
    let mut json: serde_json::Value = serde_json::from_str(&good).unwrap();
    json["escrow"][0]["recovery-key"] = passcrow::testing::random_key().to_b64().into();
    write_variant(
        dir,
        "wrong key",
        &serde_json::to_string_pretty(&json).unwrap(),
    );
    let mut json: serde_json::Value = serde_json::from_str(&good).unwrap();
    json["escrow"][1]["response"]["escrow-data-id"] =
        "6b04c1d5-00000000000000000000000000000bad".into();
    json["escrow"][0]["response"]["escrow-data-id"] =
        "6b04c1d5-00000000000000000000000000000bae".into();
    write_variant(
        dir,
        "unknown ids",
        &serde_json::to_string_pretty(&json).unwrap(),
    );
    let mut json: serde_json::Value = serde_json::from_str(&good).unwrap();
    for e in json["escrow"].as_array_mut().unwrap() {
        e["server"] = "http://127.0.0.1:9".into(); // nothing listens on discard
    }
    write_variant(
        dir,
        "server down",
        &serde_json::to_string_pretty(&json).unwrap(),
    );
    write_variant(dir, "truncated", &good[..good.len() / 2]);
    let mut json: serde_json::Value = serde_json::from_str(&good).unwrap();
    json["colour"] = "blue".into();
    write_variant(
        dir,
        "unknown key",
        &serde_json::to_string_pretty(&json).unwrap(),
    );
    let mut json: serde_json::Value = serde_json::from_str(&good).unwrap();
    json["min-shares"] = 0.into();
    write_variant(
        dir,
        "zero shares",
        &serde_json::to_string_pretty(&json).unwrap(),
    );
    let mut json: serde_json::Value = serde_json::from_str(&good).unwrap();
    let sec = json["secret"].as_str().unwrap().to_string();
    let flipped = format!(
        "{}{}",
        if sec.starts_with('A') { "B" } else { "A" },
        &sec[1..]
    );
    json["secret"] = flipped.into();
    write_variant(
        dir,
        "altered secret",
        &serde_json::to_string_pretty(&json).unwrap(),
    );
    let mut json: serde_json::Value = serde_json::from_str(&good).unwrap();
    json["shares"][0] = "4-123456789abcdef".into();
    write_variant(
        dir,
        "bad local share",
        &serde_json::to_string_pretty(&json).unwrap(),
    );

    let before = snapshot(dir);

    // Ask for real codes for the good pack, so wrong codes meet a live code.
    c.verify(&pack).unwrap();
    let codes = newest_codes(&s.codes, &IDS);
    assert_eq!(codes.len(), 3);
    let wrong = |c: &str| {
        format!(
            "{}{}",
            &c[..1],
            if &c[1..] == "000000" {
                "111111"
            } else {
                "000000"
            }
        )
    };

    type Check = Box<dyn Fn(&Error) -> bool>;
    let cases: Vec<(&str, Case<'_>, Check, &str)> = vec![
        (
            "wrong code",
            Box::new(|| {
                c.recover(&pack, &[wrong(&codes[0]), wrong(&codes[1])])
                    .map(|_| ())
            }),
            Box::new(|e| {
                matches!(
                    e,
                    Error::WrongCode {
                        prefix: Some('1'),
                        ..
                    }
                )
            }),
            "wrong verification code",
        ),
        (
            "a code for no escrow",
            Box::new(|| c.recover(&pack, &["Z123456", &codes[0]]).map(|_| ())),
            Box::new(|e| matches!(e, Error::BadInput(_))),
            "matches none",
        ),
        (
            "too few codes",
            Box::new(|| c.recover(&pack, &[codes[0].as_str()]).map(|_| ())),
            Box::new(|e| matches!(e, Error::BadInput(_))),
            "need at least 2",
        ),
        (
            "unknown pack",
            Box::new(|| c.pack("no such pack").map(|_| ())),
            Box::new(|e| matches!(e, Error::NotFound(_))),
            "no recovery pack",
        ),
        (
            "truncated pack file",
            Box::new(|| c.pack("truncated").map(|_| ())),
            Box::new(|e| matches!(e, Error::Protocol(_))),
            "truncated.passcrow",
        ),
        (
            "unknown key in pack",
            Box::new(|| c.pack("unknown key").map(|_| ())),
            Box::new(|e| matches!(e, Error::Protocol(_))),
            "unknown field `colour`",
        ),
        (
            "min-shares 0",
            Box::new(|| c.pack("zero shares").map(|_| ())),
            Box::new(|e| matches!(e, Error::Protocol(_))),
            "min-shares is 0",
        ),
        (
            "wrong recovery key",
            Box::new(|| {
                let p = c.pack("wrong key").unwrap();
                c.recover(&p, &[codes[0].as_str(), codes[1].as_str()])
                    .map(|_| ())
            }),
            Box::new(|e| {
                matches!(
                    e,
                    Error::Incomplete {
                        operation: "recover",
                        got: 1,
                        needed: 2,
                        ..
                    }
                )
            }),
            "Internal Error",
        ),
        (
            "unknown escrow ids",
            Box::new(|| {
                let p = c.pack("unknown ids").unwrap();
                c.verify(&p).map(|_| ())
            }),
            Box::new(|e| {
                matches!(
                    e,
                    Error::Incomplete {
                        operation: "verify",
                        got: 1,
                        ..
                    }
                )
            }),
            "Internal Error",
        ),
        (
            "server down",
            Box::new(|| {
                let p = c.pack("server down").unwrap();
                c.verify(&p).map(|_| ())
            }),
            Box::new(|e| {
                matches!(
                    e,
                    Error::Incomplete {
                        operation: "verify",
                        got: 0,
                        ..
                    }
                )
            }),
            "127.0.0.1:9",
        ),
        (
            "altered secret blob",
            Box::new(|| {
                let p = c.pack("altered secret").unwrap();
                c.verify(&p).unwrap();
                let codes = newest_codes(&s.codes, &IDS);
                c.recover(&p, &codes[..2]).map(|_| ())
            }),
            Box::new(|e| matches!(e, Error::Decrypt(_) | Error::Protocol(_))),
            "secret",
        ),
        (
            "corrupted local share",
            Box::new(|| {
                let p = c.pack("bad local share").unwrap();
                c.verify(&p).unwrap();
                let codes = newest_codes(&s.codes, &IDS);
                c.recover(&p, &codes[..2]).map(|_| ())
            }),
            Box::new(|e| matches!(e, Error::Decrypt(_))),
            "decryption failed",
        ),
        (
            "protect over an existing pack",
            Box::new(|| {
                c.protect("good", b"other", &policy, &ProtectOptions::default())
                    .map(|_| ())
            }),
            Box::new(|e| matches!(e, Error::BadInput(_))),
            "exists",
        ),
        (
            "bad identity in policy",
            Box::new(|| {
                c.make_policy(&["not an address via x.org"], None)
                    .map(|_| ())
            }),
            Box::new(|e| matches!(e, Error::BadInput(_))),
            "is not an identity",
        ),
        (
            "ratio N > M",
            Box::new(|| passcrow::policy::parse_ratio("3/2", None).map(|_| ())),
            Box::new(|e| matches!(e, Error::BadInput(_))),
            "need 1 <= N <= M",
        ),
    ];
    for (what, f, check, needle) in &cases {
        let e = match f() {
            Ok(()) => panic!("{what}: expected an error"),
            Err(e) => e,
        };
        let msg = e.to_string();
        assert!(check(&e), "{what}: wrong kind: {msg}");
        assert!(
            msg.contains(needle),
            "{what}: message {msg:?} lacks {needle:?}"
        );
        for code in &codes {
            assert!(
                !msg.contains(&code[1..]),
                "{what}: a code leaked into {msg:?}"
            );
        }
        assert!(!msg.contains("the secret"), "{what}: plaintext leaked");
        assert_eq!(snapshot(dir), before, "{what}: files changed");
    }

    // After all that, the good pack still recovers.
    c.verify(&pack).unwrap();
    let codes = newest_codes(&s.codes, &IDS);
    match c.recover(&pack, &codes[1..]).unwrap() {
        Recovered::Secret(v) => assert_eq!(v.expose_secret(), b"the secret"),
        other => panic!("{other:?}"),
    }
    // A successful recovery records the review in the pack's health side
    // file (issue 15); the packs themselves are unchanged.
    let packs = |v: Vec<(String, Vec<u8>)>| -> Vec<(String, Vec<u8>)> {
        v.into_iter()
            .filter(|(n, _)| !n.ends_with(".health"))
            .collect()
    };
    assert_eq!(
        packs(snapshot(dir)),
        packs(before.clone()),
        "recovery changes no pack"
    );
    let _ = RecoveryPack::from_json(good.as_bytes(), "good").unwrap();
}

#[test]
fn cli_usage_errors_exit_2_and_name_the_problem() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path().to_str().unwrap();
    assert!(run(passcrow().args(["init", "-H", h])).0);
    let before = snapshot(home.path());
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "protect",
                "-H",
                h,
                "-n",
                "x",
                "-r",
                "2/3",
                "-",
                "nobody via srv",
            ],
            "Bad policy",
        ),
        (&["protect", "-H", h, "-z"], "Bad option: -z"),
        (&["protect", "-H", h, "-r"], "needs a value"),
        (&["protect", "-H", h, "-"], "Please provide a name"),
        (&["recover", "-H", h], "Recover what?"),
        (&["list", "-H", h, "-H", h], "Too many options"),
        (&["list", "-H", h, "-C", h], "but not both"),
        (&["frobnicate"], "Need a valid command"),
    ];
    for (args, needle) in cases {
        let out = passcrow()
            .args(*args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    let out = passcrow()
        .args(["recover", "-H", h, "missing"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no recovery pack"));
    assert_eq!(snapshot(home.path()), before);
}
