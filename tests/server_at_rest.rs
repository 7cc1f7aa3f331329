//! What the server's files hold at rest, tried as someone holding a copy
//! of them would: no escrow id appears in the database, its WAL, its
//! shared-memory file, or a copy taken while the server runs (in lower or
//! upper case hex, or as raw bytes), so a copy can neither name nor
//! delete an escrow; and a database from before ids were hashed (schema
//! 2, made here with that schema's SQL and format 1 seals) is migrated on
//! start, after which its old ids are gone from every file while the
//! escrows still verify and recover over HTTP under their unchanged ids.

mod common;

use std::path::{Path, PathBuf};

use common::newest_code;
use passcrow::server::config::Config;
use passcrow::server::{self, create_master_key};
use passcrow::testing::{b64decode, old_server_database, random_key, seal};
use serde_json::{json, Value};

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// POST `body` to `/passcrow/METHOD`: (status, answer). Refusals come
/// as the reference's do, JSON with an `error-kind`.
fn post(url: &str, method: &str, body: &Value) -> (u16, Value) {
    let r = ureq::post(&format!("{url}/passcrow/{method}")).send_string(&body.to_string());
    let resp = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method}: {e}"),
    };
    let status = resp.status();
    (
        status,
        serde_json::from_str(&resp.into_string().unwrap()).unwrap(),
    )
}

fn ok(url: &str, method: &str, body: &Value) -> Value {
    let (status, v) = post(url, method, body);
    assert_eq!(status, 200, "{method}: {v}");
    assert!(v.get("error").is_none(), "{method}: {v}");
    v
}

/// An escrow as a client makes it: (escrow-data blob, escrow-data key).
fn client_escrow(verify: &str, secret: &str) -> (String, String) {
    let rkey = random_key();
    let esd = json!({
        "description": "Test secret", "secret": secret, "verify": verify, "timeout": 600,
    });
    (
        seal(&rkey, esd.to_string().as_bytes()).unwrap(),
        rkey.to_b64(),
    )
}

fn escrow_request(verify: &str, blob: &str, prefer: Option<&str>) -> Value {
    let pkey = random_key();
    let mut params = json!({
        "kind": verify.split(':').next().unwrap(),
        "expiration": now() + 86400, "payment": "free:0",
    });
    if let Some(p) = prefer {
        params["prefer-id"] = p.into();
    }
    json!({
        "passcrow-escrow-request": "1.0",
        "parameters-key": pkey.to_b64(),
        "parameters": seal(&pkey, params.to_string().as_bytes()).unwrap(),
        "escrow-data": [blob],
    })
}

fn verification(id: &str, key: &str) -> Value {
    json!({
        "passcrow-verification-request": "1.0",
        "escrow-data-id": id, "escrow-data-key": key, "prefix": "7",
    })
}

fn recovery(id: &str, key: &str, code: &str) -> Value {
    json!({
        "passcrow-recovery-request": "1.0",
        "escrow-data-id": id, "escrow-data-key": key, "verification": code,
    })
}

fn deletion(id: &str) -> Value {
    json!({"passcrow-deletion-request": "1.0", "escrow-data-id": id})
}

/// The byte strings that would name the escrow `id` (`EXPIRATION-KEY` or
/// a bare `KEY`): the id and its storage key in lower and upper case hex,
/// and the key's bytes decoded from hex.
fn needles(id: &str) -> Vec<(String, Vec<u8>)> {
    let key = id.rsplit('-').next().unwrap();
    let mut out = vec![];
    for s in [id, key] {
        out.push((s.to_lowercase(), s.to_lowercase().into_bytes()));
        out.push((s.to_uppercase(), s.to_uppercase().into_bytes()));
    }
    // Odd-length keys (python-passcrow's `%3.3x`) decode with or without
    // a leading zero.
    for k in [key.to_string(), format!("0{key}")] {
        if k.len() % 2 == 0 {
            let raw: Vec<u8> = (0..k.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&k[i..i + 2], 16).unwrap())
                .collect();
            out.push((format!("raw bytes of {k}"), raw));
        }
    }
    out
}

/// The files whose bytes must not name an escrow: everything in `dir`
/// whose name starts with `passcrow.sqlite` (the database, `-wal`,
/// `-shm`).
fn db_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("passcrow.sqlite")
        })
        .collect();
    v.sort();
    v
}

/// Which of `ids` appear (by any of their [`needles`]) in which of
/// `files`: "file: what" for each.
fn found(files: &[PathBuf], ids: &[String]) -> Vec<String> {
    let mut hits = vec![];
    for f in files {
        let bytes = std::fs::read(f).unwrap();
        for id in ids {
            for (what, n) in needles(id) {
                if bytes.windows(n.len()).any(|w| w == n.as_slice()) {
                    hits.push(format!("{}: {what}", f.display()));
                }
            }
        }
    }
    hits
}

/// A copy of the database files taken while the server runs, as a file
/// backup would take them (the database, then its WAL and shared memory).
fn backup(data: &Path, to: &Path) -> Vec<PathBuf> {
    std::fs::create_dir_all(to).unwrap();
    db_files(data)
        .iter()
        .map(|f| {
            let dst = to.join(f.file_name().unwrap());
            std::fs::copy(f, &dst).unwrap();
            dst
        })
        .collect()
}

#[test]
fn the_database_its_wal_and_a_backup_name_no_escrow() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("server");
    let codes = tmp.path().join("codes.txt");
    let handle = server::spawn(Config::for_testing(&data, &codes)).unwrap();
    let url = handle.url();

    // Escrows made over HTTP, one under a preferred id.
    let mut made: Vec<(String, String, String)> = vec![]; // (id, key, identity)
    for (i, prefer) in [None, None, None, Some("c0ffee0123456789abcdef")]
        .into_iter()
        .enumerate()
    {
        let identity = format!("email:user{i}@example.org");
        let (blob, key) = client_escrow(&identity, &format!("{i}-secret"));
        let v = ok(
            &url,
            "escrowrequest",
            &escrow_request(&identity, &blob, prefer),
        );
        let id = v["escrow-data-id"].as_str().unwrap().to_string();
        if let Some(p) = prefer {
            assert_eq!(id, p);
        }
        made.push((id, key, identity));
    }
    let ids: Vec<String> = made.iter().map(|m| m.0.clone()).collect();
    // Codes asked for three; a wrong guess at one; one recovered; one
    // deleted (its code pending).
    for (id, key, _) in &made[..3] {
        ok(&url, "verificationrequest", &verification(id, key));
    }
    let (_, v) = post(
        &url,
        "recoveryrequest",
        &recovery(&made[0].0, &made[0].1, "7000000"),
    );
    assert_eq!(v["error-kind"], "wrong-code", "{v}");
    let code = newest_code(&codes, &made[1].2).unwrap();
    let v = ok(
        &url,
        "recoveryrequest",
        &recovery(&made[1].0, &made[1].1, &code),
    );
    assert_eq!(v["escrow-secret"], "1-secret");
    ok(&url, "deletionrequest", &deletion(&made[2].0));

    // A copy taken while the server runs, and the live files.
    let copy = backup(&data, &tmp.path().join("backup"));
    assert!(
        copy.iter().any(|p| p.to_string_lossy().ends_with("-wal")),
        "the WAL was copied too: {copy:?}"
    );
    let live = db_files(&data);
    assert_eq!(live.len(), 3, "database, WAL and shm: {live:?}");
    assert_eq!(found(&live, &ids), Vec::<String>::new());
    assert_eq!(found(&copy, &ids), Vec::<String>::new());

    // Someone holding the copy tries every stored id (in hex) as an
    // escrow id: none names an escrow, so none deletes one.
    let stored: Vec<String> = {
        let c = rusqlite::Connection::open(tmp.path().join("backup/passcrow.sqlite")).unwrap();
        let mut st = c.prepare("SELECT lower(hex(id)) FROM escrow").unwrap();
        let rows = st.query_map([], |r| r.get(0)).unwrap();
        rows.map(|r| r.unwrap()).collect()
    };
    assert_eq!(stored.len(), 3, "the copy holds the 3 escrows left");
    for s in &stored {
        assert_eq!(s.len(), 64, "stored ids are 32-byte hashes");
        ok(&url, "deletionrequest", &deletion(s));
        ok(&url, "deletionrequest", &deletion(&format!("ffffffff-{s}")));
    }
    let stats = ok(&url, "stats", &json!({}));
    assert_eq!(
        stats["storage"]["escrows"], 3,
        "a stored id deleted an escrow"
    );
    // The owner still gets a code and recovers.
    ok(
        &url,
        "verificationrequest",
        &verification(&made[3].0, &made[3].1),
    );
    let code = newest_code(&codes, &made[3].2).unwrap();
    let v = ok(
        &url,
        "recoveryrequest",
        &recovery(&made[3].0, &made[3].1, &code),
    );
    assert_eq!(v["escrow-secret"], "3-secret");

    // And after the server stopped (the WAL checkpointed into the file).
    handle.shutdown();
    let files = db_files(&data);
    assert!(!files.is_empty());
    assert_eq!(found(&files, &ids), Vec::<String>::new());
}

#[test]
fn an_old_database_is_migrated_on_start_and_its_ids_leave_no_trace() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("server");
    let codes = tmp.path().join("codes.txt");
    let cfg = Config::for_testing(&data, &codes);
    std::fs::create_dir_all(&data).unwrap();
    let master = create_master_key(&cfg.master_key_path()).unwrap();

    // Escrows under ids as python-passcrow 0.0.7 makes them
    // (`%x-%3.3x`: expiration, then a random number below 2^128 in hex,
    // unpadded, so sometimes of fewer than 32 digits), and one under a
    // bare preferred id. (Keys of a few digits would be found by chance in
    // any file of random bytes: the search needs realistic lengths.)
    let exp = now() + 86400;
    let keys = [
        "5d8f0e7c1a2b3c4d5e6f708192a3b4".to_string(), // 30 digits
        "9f86d081884c7d659a2feaa0c55ad015".to_string(),
        "3c6ef372fe94f82ba54ff53a5f1d36f".to_string(), // 31 digits
        "0123456789abcdef0123456789abcdef0123".to_string(), // preferred, bare
    ];
    let ids: Vec<String> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            if i == 3 {
                k.clone()
            } else {
                format!("{exp:x}-{k}")
            }
        })
        .collect();
    let escrows: Vec<(String, String, String)> = (0..4)
        .map(|i| {
            let identity = format!("email:old{i}@example.org");
            let (blob, key) = client_escrow(&identity, &format!("{i}-old"));
            (blob, key, identity)
        })
        .collect();
    let raws: Vec<Vec<u8>> = escrows.iter().map(|e| b64decode(&e.0).unwrap()).collect();
    let rows: Vec<(&str, i64, &[u8])> = keys
        .iter()
        .zip(&raws)
        .map(|(k, r)| (k.as_str(), exp, r.as_slice()))
        .collect();
    // A code pending for the first escrow when the old server stopped.
    let db = cfg.database_path();
    old_server_database(
        &db,
        &master,
        2,
        &rows,
        &[(&keys[0], "7424242", now() + 600, 3)],
    )
    .unwrap();
    // Before: the old file names its escrows (the search finds them).
    let before = found(&db_files(&data), &ids);
    assert!(
        before.len() >= 4,
        "the old database should name its escrows: {before:?}"
    );

    let handle = server::spawn(cfg).unwrap();
    let url = handle.url();
    // After the migration on start: no file names an escrow, not even in
    // free pages or WAL frames.
    let after = found(&db_files(&data), &ids);
    assert_eq!(after, Vec::<String>::new());
    let copy = backup(&data, &tmp.path().join("backup"));
    assert_eq!(found(&copy, &ids), Vec::<String>::new());
    {
        let c = rusqlite::Connection::open(tmp.path().join("backup/passcrow.sqlite")).unwrap();
        let v: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert!(v >= 3, "schema {v}");
        let (n, kv): (i64, i64) = c
            .query_row(
                "SELECT COUNT(*), MIN(kv) FROM escrow WHERE length(id) = 32",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((n, kv), (4, 1));
    }

    // The pending code survived the migration: recovered with it.
    let v = ok(
        &url,
        "recoveryrequest",
        &recovery(&ids[0], &escrows[0].1, "7424242"),
    );
    assert_eq!(v["escrow-secret"], "0-old");
    // The others verify and recover under their unchanged ids.
    for i in 1..4 {
        let v = ok(
            &url,
            "verificationrequest",
            &verification(&ids[i], &escrows[i].1),
        );
        assert_eq!(v["escrow-data-id"], ids[i]);
        let code = newest_code(&codes, &escrows[i].2).unwrap();
        let v = ok(
            &url,
            "recoveryrequest",
            &recovery(&ids[i], &escrows[i].1, &code),
        );
        assert_eq!(v["escrow-secret"], format!("{i}-old"));
    }
    // And delete under them.
    ok(&url, "deletionrequest", &deletion(&ids[2]));
    let (_, v) = post(
        &url,
        "verificationrequest",
        &verification(&ids[2], &escrows[2].1),
    );
    assert_eq!(v["error-kind"], "not-found", "{v}");
    assert_eq!(ok(&url, "stats", &json!({}))["storage"]["escrows"], 3);
    handle.shutdown();
    assert_eq!(found(&db_files(&data), &ids), Vec::<String>::new());
}

#[test]
fn a_migration_that_cannot_open_an_escrow_refuses_to_start_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("server");
    let codes = tmp.path().join("codes.txt");
    let cfg = Config::for_testing(&data, &codes);
    std::fs::create_dir_all(&data).unwrap();
    create_master_key(&cfg.master_key_path()).unwrap();
    // Made under another master key: its seals do not open under ours.
    let wrong = random_key();
    let db = cfg.database_path();
    old_server_database(&db, &wrong, 2, &[("abc123", now() + 3600, b"data")], &[]).unwrap();
    let before: Vec<(PathBuf, Vec<u8>)> = db_files(&data)
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    let e = server::spawn(cfg).unwrap_err().to_string();
    assert!(
        e.contains("does not open under the master key") && e.contains("left as it was"),
        "{e}"
    );
    assert!(!e.contains("abc123"), "the error names the escrow id: {e}");
    // The database is as it was (same files, same bytes, still schema 2).
    let after: Vec<(PathBuf, Vec<u8>)> = db_files(&data)
        .into_iter()
        .filter(|p| !p.to_string_lossy().ends_with("-shm"))
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    let before: Vec<(PathBuf, Vec<u8>)> = before
        .into_iter()
        .filter(|(p, _)| !p.to_string_lossy().ends_with("-shm"))
        .collect();
    assert_eq!(
        after.iter().map(|a| &a.0).collect::<Vec<_>>(),
        before.iter().map(|b| &b.0).collect::<Vec<_>>()
    );
    for ((p, a), (_, b)) in after.iter().zip(&before) {
        assert!(a == b, "{} changed", p.display());
    }
    let c = rusqlite::Connection::open(&db).unwrap();
    let v: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, 2);
}
