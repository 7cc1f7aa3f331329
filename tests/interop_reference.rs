//! Interop with the real python-passcrow 0.0.7 from PyPI: our CLI against
//! its server, and recovery packs moving both ways between the clients.

mod common;

use common::*;
use std::path::Path;

const IDS: [&str; 3] = [
    "email:alice@example.org",
    "email:bob@example.org",
    "email:carol@example.net",
];

fn new_home() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let (ok, _, err) = run(passcrow().args(["init", "-H", d.path().to_str().unwrap()]));
    assert!(ok, "init: {err}");
    d
}

fn h(d: &tempfile::TempDir) -> &str {
    d.path().to_str().unwrap()
}

fn protect_ours(home: &str, name: &str, secret: &Path, ratio: &str, days: &str, servers: &[&str]) {
    let mut cmd = passcrow();
    cmd.args([
        "protect",
        "-H",
        home,
        "-n",
        name,
        "-r",
        ratio,
        "-d",
        days,
        secret.to_str().unwrap(),
    ]);
    for (i, id) in IDS.iter().enumerate() {
        cmd.args(["-p", &format!("{id} via {}", servers[i % servers.len()])]);
    }
    let (ok, _, err) = run(&mut cmd);
    assert!(ok, "protect {name}: {err}");
}

/// Ask for codes with our CLI (batch), return the hints JSON.
fn verify_ours(home: &str, name: &str) -> serde_json::Value {
    let (ok, out, err) = run(passcrow().args(["recover", "-b", "-H", home, name]));
    assert!(ok, "verify {name}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("batch output {out:?}: {e}"))
}

fn codes_from(servers: &[&RefServer], ids: &[&str]) -> Vec<String> {
    let mut all = vec![];
    for id in ids {
        let mut newest = None;
        for s in servers {
            if let Some(c) = newest_code(&s.codes, id) {
                newest = Some(c);
            }
        }
        all.push(newest.unwrap_or_else(|| panic!("no code for {id}")));
    }
    all
}

#[test]
fn our_cli_against_the_reference_server() {
    let a = RefServer::start();
    let b = RefServer::start();
    let home = new_home();
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret.bin");
    let secret: Vec<u8> = (0u8..=255)
        .chain(b"correct horse battery staple".iter().copied())
        .collect();
    std::fs::write(&secret_file, &secret).unwrap();

    // 2-of-3, 1 day: paid `free`; two servers, so requests go out concurrently.
    protect_ours(
        h(&home),
        "two of three",
        &secret_file,
        "2/3",
        "1",
        &[&a.url, &a.url, &b.url],
    );
    let pack: serde_json::Value =
        serde_json::from_slice(&std::fs::read(home.path().join("two of three.passcrow")).unwrap())
            .unwrap();
    assert_eq!(pack["min-shares"], 2);
    assert_eq!(
        pack["shares"].as_array().unwrap().len(),
        1,
        "n=2 keeps one local share"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(home.path().join("two of three.passcrow"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let v = verify_ours(h(&home), "two of three");
    assert_eq!(v["min-shares"], 2);
    assert_eq!(v["verifications"].as_array().unwrap().len(), 3);
    assert_eq!(v["verifications"][0]["kind"], "e-mail to");
    let codes = codes_from(&[&a, &b], &IDS);
    let out = dir.path().join("out.bin");
    // Any two codes; typed in lower case with the letter O for zero.
    let typed: Vec<String> = [&codes[0], &codes[2]]
        .iter()
        .map(|c| c.to_lowercase().replace('0', "O"))
        .collect();
    let (ok, _, err) = run(passcrow()
        .args([
            "recover",
            "-H",
            h(&home),
            "-o",
            out.to_str().unwrap(),
            "two of three",
        ])
        .args(&typed));
    assert!(ok, "recover: {err}");
    assert_eq!(std::fs::read(&out).unwrap(), secret);

    // 3-of-3, 200 days: paid with hashcash-12; no local shares (the
    // reference client crashes making such packs; we do not).
    protect_ours(
        h(&home),
        "three/three",
        &secret_file,
        "3/3",
        "200",
        &[&a.url, &b.url, &b.url],
    );
    let v = verify_ours(h(&home), "three/three");
    assert_eq!(v["min-shares"], 3);
    let codes = codes_from(&[&a, &b], &IDS);
    let (ok, stdout, err) = run(passcrow()
        .args(["recover", "-b", "-H", h(&home), "three/three"])
        .args(&codes));
    assert!(ok, "recover 3/3: {err}");
    let r: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(r["recovered"], true);
    assert_eq!(
        passcrow::testing::b64decode(r["data"].as_str().unwrap()).unwrap(),
        secret
    );

    // list shows both; forget removes escrows and packs.
    let (ok, out, _) = run(passcrow().args(["list", "-b", "-H", h(&home)]));
    assert!(ok);
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(out.contains("two of three") && out.contains("three/three"));
    let escrows_before = count_files(&a.data.join("escrow")) + count_files(&b.data.join("escrow"));
    let (ok, _, err) =
        run(passcrow().args(["forget", "-H", h(&home), "two of three", "three/three"]));
    assert!(ok, "forget: {err}");
    let escrows_after = count_files(&a.data.join("escrow")) + count_files(&b.data.join("escrow"));
    assert_eq!(
        escrows_before - escrows_after,
        6,
        "all six escrows deleted on the servers"
    );
    let (ok, out, _) = run(passcrow().args(["list", "-b", "-H", h(&home)]));
    assert!(ok && out.trim().is_empty(), "{out}");
}

fn count_files(dir: &Path) -> usize {
    let mut n = 0;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                n += count_files(&p);
            } else {
                n += 1;
            }
        }
    }
    n
}

#[test]
fn packs_move_both_ways_between_clients() {
    let s = RefServer::start();
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret.txt");
    let secret = "Þetta er leyndarmál: hunter2".as_bytes().to_vec();
    std::fs::write(&secret_file, &secret).unwrap();

    // The reference client makes a pack; our client recovers it.
    let ref_home = tempfile::tempdir().unwrap();
    let mut cmd = ref_client("protect", ref_home.path());
    cmd.args([
        "--name",
        "made by python",
        "--secret-file",
        secret_file.to_str().unwrap(),
    ])
    .args(["--ratio", "2/3", "--days", "1"]);
    for id in IDS {
        cmd.args(["--id", &format!("{id} via {}", s.url)]);
    }
    let (ok, out, err) = run(&mut cmd);
    assert!(ok, "reference protect: {out} {err}");
    verify_ours(ref_home.path().to_str().unwrap(), "made by python");
    let codes = codes_from(&[&s], &IDS);
    let out_file = dir.path().join("from-python.bin");
    let (ok, _, err) = run(passcrow()
        .args([
            "recover",
            "-H",
            ref_home.path().to_str().unwrap(),
            "-o",
            out_file.to_str().unwrap(),
        ])
        .arg("made by python")
        .args(&codes[1..]));
    assert!(ok, "our recover of a reference pack: {err}");
    assert_eq!(std::fs::read(&out_file).unwrap(), secret);

    // We make packs (2-of-3 and 3-of-3); the reference client recovers them.
    let our_home = new_home();
    for (name, ratio) in [("made by rust", "2/3"), ("rust three", "3/3")] {
        protect_ours(h(&our_home), name, &secret_file, ratio, "1", &[&s.url]);
        let (ok, out, err) = run(ref_client("verify", our_home.path()).args(["--name", name]));
        assert!(ok, "reference verify of our pack: {out} {err}");
        let codes = codes_from(&[&s], &IDS);
        let out_file = dir.path().join("from-rust.bin");
        let mut cmd = ref_client("recover", our_home.path());
        cmd.args(["--name", name, "--out", out_file.to_str().unwrap()]);
        let use_codes = if ratio == "2/3" {
            &codes[..2]
        } else {
            &codes[..]
        };
        for c in use_codes {
            cmd.args(["--code", c]);
        }
        let (ok, out, err) = run(&mut cmd);
        assert!(ok, "reference recover of our pack {name}: {out} {err}");
        assert_eq!(std::fs::read(&out_file).unwrap(), secret, "{name}");
    }
}

#[test]
fn ephemeral_recovery_without_a_local_file() {
    let s = RefServer::start();
    let home = new_home();
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("s");
    std::fs::write(&secret_file, b"wallet seed words").unwrap();
    // -E: ephemeral only; the first identity holds the escrowed pack.
    let mut cmd = passcrow();
    cmd.args([
        "protect",
        "-b",
        "-E",
        "-H",
        h(&home),
        "-r",
        "2/2",
        "-d",
        "1",
        secret_file.to_str().unwrap(),
    ]);
    for id in IDS {
        cmd.args(["-p", &format!("{id} via {}", s.url)]);
    }
    let (ok, out, err) = run(&mut cmd);
    assert!(ok, "ephemeral protect: {err}");
    let rec: serde_json::Value = serde_json::from_str(&out).unwrap();
    let user_key = rec["recovery-key"].as_str().unwrap().to_string();
    let server = rec["server"].as_str().unwrap().to_string();
    assert_eq!(user_key.len(), 19);
    let (_, list, _) = run(passcrow().args(["list", "-b", "-H", h(&home)]));
    assert!(list.trim().is_empty(), "no local pack with -E");

    // A new device: only SERVER:KEY.
    let fresh = new_home();
    let id = format!("{server}:{user_key}");
    verify_ours(h(&fresh), &id);
    let c0 = newest_code(&s.codes, IDS[0]).unwrap();
    let (ok, out, err) = run(passcrow().args(["recover", "-b", "-H", h(&fresh), &id, &c0]));
    assert!(ok, "ephemeral stage 1: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["name"], user_key.as_str());
    assert_eq!(v["min-shares"], 2);
    let codes = codes_from(&[&s], &IDS[1..]);
    let out_file = dir.path().join("o");
    let (ok, _, err) = run(passcrow()
        .args([
            "recover",
            "-H",
            h(&fresh),
            "-o",
            out_file.to_str().unwrap(),
            &user_key,
        ])
        .args(&codes));
    assert!(ok, "ephemeral stage 2: {err}");
    assert_eq!(std::fs::read(&out_file).unwrap(), b"wallet seed words");
}
