//! Several passcrow-server instances on one PostgreSQL database, over real
//! HTTP on loopback (tests/common/pg.rs starts a real PostgreSQL):
//! what one instance is told holds on the other, every limit counts the
//! requests of both, a SIGKILLed instance loses no acknowledged escrow,
//! `migrate` moves a SQLite data set over, and the backend's own
//! guarantees (schema, durability settings, TLS, sweeping, secrets).

mod common;

use common::pg;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use common::newest_code;
use passcrow::payment;
use passcrow::server::config::{Config, HashcashOffer};
use passcrow::server::storage::postgres::{PostgresStorage, Settings};
use passcrow::server::storage::{Lookup, Storage, StoredId};

/// A test's id as a stored id (its bytes, zero-padded to 32).
fn sid(s: &str) -> StoredId {
    let mut b = [0u8; 32];
    b[..s.len()].copy_from_slice(s.as_bytes());
    StoredId::from_bytes(b)
}
use passcrow::server::{self, Handle, Server};
use passcrow::testing::{random_key, seal};

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A configuration for one instance on the database `url`, codes
/// appended to `dir/codes.txt` (shared by the instances), the master key
/// `dir/master.key` (shared too).
fn instance_config(dir: &Path, name: &str, url: &str) -> Config {
    let mut cfg = Config::for_testing(dir.join(name), dir.join("codes.txt"));
    cfg.database = Some(url.to_string());
    cfg.master_key_file = Some(dir.join("master.key"));
    cfg.postgres.password_file = Some(pg::password_file().to_path_buf());
    cfg
}

/// Two instances on one fresh database, on one clock the test moves.
struct Pair {
    a: Handle,
    b: Handle,
    clock: Arc<AtomicI64>,
    codes: std::path::PathBuf,
    _tmp: tempfile::TempDir,
}

fn pair(tune: impl Fn(&mut Config)) -> Pair {
    let tmp = tempfile::tempdir().unwrap();
    let url = pg::cluster().new_database();
    let clock = Arc::new(AtomicI64::new(now()));
    let start = |name: &str| {
        let mut cfg = instance_config(tmp.path(), name, &url);
        tune(&mut cfg);
        let mut s = Server::open(cfg).unwrap();
        let c = clock.clone();
        s.set_clock(Box::new(move || c.load(Ordering::SeqCst)));
        server::http::spawn_server(Arc::new(s), "127.0.0.1:0").unwrap()
    };
    // A creates the master key (the database is empty); B loads it.
    let a = start("a");
    let b = start("b");
    Pair {
        a,
        b,
        clock,
        codes: tmp.path().join("codes.txt"),
        _tmp: tmp,
    }
}

fn call(url: &str, method: &str, v: &serde_json::Value) -> serde_json::Value {
    let r = match ureq::post(&format!("{url}/passcrow/{method}"))
        .set("Content-Type", "application/json")
        .send_bytes(v.to_string().as_bytes())
    {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{url}: {e}"),
    };
    serde_json::from_str(&r.into_string().unwrap()).unwrap()
}

/// An escrow request as a client makes it; returns (body, recovery key).
fn escrow_body(
    verify: &str,
    secret: &str,
    expiration: i64,
    payment: &str,
) -> (serde_json::Value, String) {
    let rkey = random_key();
    let esd = serde_json::json!({
        "description": "Test secret", "secret": secret, "verify": verify, "timeout": 600,
    });
    let blob = seal(&rkey, esd.to_string().as_bytes()).unwrap();
    (
        escrow_request(&blob, verify, expiration, payment),
        rkey.to_b64(),
    )
}

fn escrow_request(blob: &str, verify: &str, expiration: i64, payment: &str) -> serde_json::Value {
    let pkey = random_key();
    let params = serde_json::json!({
        "kind": verify.split(':').next().unwrap(),
        "expiration": expiration, "payment": payment,
    });
    serde_json::json!({
        "passcrow-escrow-request": "1.0",
        "parameters-key": pkey.to_b64(),
        "parameters": seal(&pkey, params.to_string().as_bytes()).unwrap(),
        "escrow-data": [blob],
    })
}

/// An acknowledged escrow: (id, key).
fn escrow(url: &str, verify: &str, secret: &str, expiration: i64) -> (String, String) {
    let (body, key) = escrow_body(verify, secret, expiration, "free:0");
    let v = call(url, "escrowrequest", &body);
    let id = v["escrow-data-id"]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"));
    (id.to_string(), key)
}

fn verify(url: &str, id: &str, key: &str) -> serde_json::Value {
    call(
        url,
        "verificationrequest",
        &serde_json::json!({"passcrow-verification-request": "1.0",
            "escrow-data-id": id, "escrow-data-key": key, "prefix": "1"}),
    )
}

fn recover(url: &str, id: &str, key: &str, code: &str) -> serde_json::Value {
    call(
        url,
        "recoveryrequest",
        &serde_json::json!({"passcrow-recovery-request": "1.0",
            "escrow-data-id": id, "escrow-data-key": key, "verification": code}),
    )
}

#[test]
fn protect_on_one_verify_on_the_other_recover_on_the_first() {
    let p = pair(|_| {});
    let (a, b) = (p.a.url(), p.b.url());
    let who = "email:alice@example.org";
    let (id, key) = escrow(&a, who, "1-secret", now() + 3600);
    let v = verify(&b, &id, &key);
    assert!(v["error"].is_null(), "{v}");
    let code = newest_code(&p.codes, who).unwrap();
    let v = recover(&a, &id, &key, &code);
    assert_eq!(v["escrow-secret"], "1-secret", "{v}");
    // The code was consumed on A: B refuses it.
    let v = recover(&b, &id, &key, &code);
    assert_eq!(v["error-kind"], "not-found", "{v}");
    // Deleted through B, gone for A.
    let v = call(
        &b,
        "deletionrequest",
        &serde_json::json!({"passcrow-deletion-request": "1.0", "escrow-data-id": id}),
    );
    assert!(v["error"].is_null(), "{v}");
    assert!(!verify(&a, &id, &key)["error"].is_null());
}

#[test]
fn wrong_codes_split_between_instances_void_the_code_at_the_same_count() {
    let p = pair(|c| c.code_attempts = 3);
    let (a, b) = (p.a.url(), p.b.url());
    let who = "email:bob@example.org";
    let (id, key) = escrow(&a, who, "1-bob", now() + 3600);
    assert!(verify(&a, &id, &key)["error"].is_null());
    let code = newest_code(&p.codes, who).unwrap();
    // The attacker: three wrong guesses, A, B, A.
    for (i, url) in [&a, &b, &a].into_iter().enumerate() {
        let v = recover(url, &id, &key, &format!("1-{i}00000"));
        assert_eq!(v["error-kind"], "wrong-code", "{v}");
    }
    // The code is void on both: the right one is refused now.
    for url in [&b, &a] {
        let v = recover(url, &id, &key, &code);
        assert!(
            v["escrow-secret"].is_null(),
            "a void code opened the escrow: {v}"
        );
        assert_eq!(v["error-kind"], "wrong-code", "{v}");
    }
    // The user: a new code, two slips on B, then the right one on A.
    assert!(verify(&b, &id, &key)["error"].is_null());
    let code = newest_code(&p.codes, who).unwrap();
    for _ in 0..2 {
        assert_eq!(
            recover(&b, &id, &key, "1-999999")["error-kind"],
            "wrong-code"
        );
    }
    assert_eq!(recover(&a, &id, &key, &code)["escrow-secret"], "1-bob");
}

#[test]
fn verifications_per_hour_count_both_instances() {
    let p = pair(|c| c.verifications_per_hour = 4);
    let (a, b) = (p.a.url(), p.b.url());
    let who = "email:carol@example.org";
    let (id, key) = escrow(&a, who, "1-carol", now() + 10 * 3600);
    // The attacker asks 10 times at once, through both.
    let barrier = Barrier::new(10);
    let ok: usize = std::thread::scope(|s| {
        let ts: Vec<_> = (0..10)
            .map(|i| {
                let (barrier, url, id, key) =
                    (&barrier, if i % 2 == 0 { &a } else { &b }, &id, &key);
                s.spawn(move || {
                    barrier.wait();
                    usize::from(verify(url, id, key)["error"].is_null())
                })
            })
            .collect();
        ts.into_iter().map(|t| t.join().unwrap()).sum()
    });
    assert_eq!(
        ok, 4,
        "{ok} verifications in one hour through two instances"
    );
    assert_eq!(verify(&b, &id, &key)["error-kind"], "rate-limited");
    // An hour later, the user gets one.
    p.clock.fetch_add(3601, Ordering::SeqCst);
    assert!(verify(&a, &id, &key)["error"].is_null());
    let code = newest_code(&p.codes, who).unwrap();
    assert_eq!(recover(&b, &id, &key, &code)["escrow-secret"], "1-carol");
}

const BITS: u32 = 8;

#[test]
fn one_hashcash_token_pays_once_across_instances() {
    let p = pair(|c| {
        c.payment.free_seconds = 0;
        c.payment.hashcash = vec![HashcashOffer {
            bits: BITS,
            seconds: 100 * 86400,
        }];
    });
    let (a, b) = (p.a.url(), p.b.url());
    let esd = serde_json::json!({"description": "x", "secret": "1-x",
        "verify": "email:dave@example.org", "timeout": 600});
    let blob = seal(&random_key(), esd.to_string().as_bytes()).unwrap();
    let ts = p.clock.load(Ordering::SeqCst);
    let counter = (1u64..)
        .find(|&c| payment::hashcash_valid(BITS, blob.as_bytes(), c, ts as u64))
        .unwrap();
    let token = format!("hashcash-{BITS}:{counter:x}-{ts:x}");
    let exp = ts + 30 * 86400;
    // Twelve requests at once with one token, half to each instance.
    let barrier = Barrier::new(12);
    let paid: usize = std::thread::scope(|s| {
        let ts: Vec<_> = (0..12)
            .map(|i| {
                let body = escrow_request(&blob, "email:dave@example.org", exp, &token);
                let (barrier, url) = (&barrier, if i % 2 == 0 { &a } else { &b });
                s.spawn(move || {
                    barrier.wait();
                    usize::from(call(url, "escrowrequest", &body)["expiration"] == exp)
                })
            })
            .collect();
        ts.into_iter().map(|t| t.join().unwrap()).sum()
    });
    assert_eq!(
        paid, 1,
        "one token paid for {paid} escrows on two instances"
    );
    let stats = call(&b, "stats", &serde_json::json!({}));
    assert_eq!(stats["storage"]["escrows"], 1, "{stats}");
    // Another proof pays (the legitimate user's next escrow).
    let blob2 = seal(&random_key(), esd.to_string().as_bytes()).unwrap();
    let c2 = (1u64..)
        .find(|&c| payment::hashcash_valid(BITS, blob2.as_bytes(), c, ts as u64))
        .unwrap();
    let body = escrow_request(
        &blob2,
        "email:dave@example.org",
        exp,
        &format!("hashcash-{BITS}:{c2:x}-{ts:x}"),
    );
    assert_eq!(call(&a, "escrowrequest", &body)["expiration"], exp);
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_bin(config: &Path) -> (Proc, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_passcrow-server"))
        .args(["--config", config.to_str().unwrap()])
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

/// A config.toml for a passcrow-server process on `url`.
fn write_config(dir: &Path, name: &str, url: &str) -> std::path::PathBuf {
    let data = dir.join(name);
    std::fs::create_dir_all(&data).unwrap();
    let conf = data.join("config.toml");
    std::fs::write(
        &conf,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\ndatabase = {url:?}\n\
             master_key_file = {:?}\ncreate_master_key = true\nrate_limit_burst = 0\n\
             postgres.password_file = {:?}\n[delivery]\nfile = {:?}\n",
            data.to_str().unwrap(),
            dir.join("master.key").to_str().unwrap(),
            pg::password_file().to_str().unwrap(),
            dir.join("codes.txt").to_str().unwrap(),
        ),
    )
    .unwrap();
    conf
}

#[test]
fn sigkill_of_one_instance_loses_no_acknowledged_escrow() {
    let tmp = tempfile::tempdir().unwrap();
    let url = pg::cluster().new_database();
    let (proc_a, a) = start_bin(&write_config(tmp.path(), "a", &url));
    let (_proc_b, b) = start_bin(&write_config(tmp.path(), "b", &url));
    type Acked = Vec<(String, String, String, String)>;
    let acked: Arc<Mutex<Acked>> = Default::default();
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (acked, stop, a) = (acked.clone(), stop.clone(), a.clone());
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new()
                    .timeout(Duration::from_secs(5))
                    .build();
                for i in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let who = format!("email:w{w}n{i}@example.org");
                    let secret = format!("{w:x}-{i:x}");
                    let (body, key) = escrow_body(&who, &secret, now() + 3600, "free:0");
                    match agent
                        .post(&format!("{a}/passcrow/escrowrequest"))
                        .send_bytes(body.to_string().as_bytes())
                    {
                        Ok(r) => {
                            let v: serde_json::Value =
                                serde_json::from_str(&r.into_string().unwrap_or_default())
                                    .unwrap_or_default();
                            if let Some(id) = v["escrow-data-id"].as_str() {
                                acked.lock().unwrap().push((id.into(), key, who, secret));
                            }
                        }
                        Err(_) => return, // A is gone
                    }
                }
            })
        })
        .collect();
    let t0 = Instant::now();
    while acked.lock().unwrap().len() < 100 && t0.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(proc_a); // SIGKILL, mid-stream
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 100, "only {} acknowledged", acked.len());
    for (id, key, who, secret) in &acked {
        let v = verify(&b, id, key);
        assert!(v["error"].is_null(), "{id}: {v}");
        let code = newest_code(&tmp.path().join("codes.txt"), who).unwrap();
        assert_eq!(
            recover(&b, id, key, &code)["escrow-secret"].as_str(),
            Some(secret.as_str())
        );
    }
    eprintln!(
        "{} escrows acknowledged by A all recovered through B after A's SIGKILL",
        acked.len()
    );
}

fn migrate_cmd(from: &str, to: &str) -> (bool, String, String) {
    common::run(
        Command::new(env!("CARGO_BIN_EXE_passcrow-server"))
            .args(["migrate", "--from", from, "--to", to])
            .env("PASSCROW_DATABASE_PASSWORD", &pg::cluster().password)
            .env("RUST_LOG", "warn"),
    )
}

#[test]
fn migrate_moves_a_sqlite_data_set_and_refuses_a_full_target() {
    let tmp = tempfile::tempdir().unwrap();
    let codes = tmp.path().join("codes.txt");
    // A SQLite server holds escrows, a pending code and a spent token.
    let mut cfg = Config::for_testing(tmp.path().join("data"), &codes);
    cfg.master_key_file = Some(tmp.path().join("master.key"));
    let h = server::spawn(cfg.clone()).unwrap();
    let s = h.url();
    let mut held = vec![];
    for i in 0..30 {
        let who = format!("email:m{i}@example.org");
        let (id, key) = escrow(&s, &who, &format!("1-m{i}"), now() + 3600);
        held.push((id, key, who, format!("1-m{i}")));
    }
    let (pid, pkey, pwho, _) = held[0].clone();
    assert!(verify(&s, &pid, &pkey)["error"].is_null());
    let pending = newest_code(&codes, &pwho).unwrap();
    h.shutdown();
    let sqlite = tmp.path().join("data/passcrow.sqlite");
    let from = format!("sqlite:{}", sqlite.display());

    let url = pg::cluster().new_database();
    let (ok, out, err) = migrate_cmd(&from, &url);
    assert!(ok, "migrate: {out} {err}");
    assert!(out.contains("30 escrow, 1 code"), "{out}");

    // On PostgreSQL with the same key: every escrow recovers, and the code
    // sent before the move still works.
    let mut pcfg = instance_config(tmp.path(), "pg", &url);
    pcfg.delivery.file = Some(codes.clone());
    let h = server::spawn(pcfg).unwrap();
    let u = h.url();
    assert_eq!(recover(&u, &pid, &pkey, &pending)["escrow-secret"], "1-m0");
    for (id, key, who, secret) in &held[1..] {
        assert!(verify(&u, id, key)["error"].is_null());
        let code = newest_code(&codes, who).unwrap();
        assert_eq!(
            recover(&u, id, key, &code)["escrow-secret"].as_str(),
            Some(secret.as_str())
        );
    }
    h.shutdown();

    // Again into the same database: refused, nothing changed.
    let (ok, out, err) = migrate_cmd(&from, &url);
    assert!(!ok, "{out}");
    assert!(err.contains("not empty") && err.contains("escrow"), "{err}");
    // Clear errors for what is not a migration.
    let (ok, _, err) = migrate_cmd(&url, &url);
    assert!(!ok && err.contains("--from sqlite:PATH"), "{err}");
    let (ok, _, err) = migrate_cmd(&from, &from);
    assert!(!ok && err.contains("--to postgres://"), "{err}");
    let (ok, _, err) = migrate_cmd(
        "sqlite:/nonexistent/x.sqlite",
        &pg::cluster().new_database(),
    );
    assert!(!ok && err.contains("/nonexistent/x.sqlite"), "{err}");
}

/// Every table and column of the current schema moves: hashed ids, a
/// frozen escrow and another's guessing budget and creation time, the
/// suppression list, delivery budgets, free escrows of the day, the
/// escrows held (the cap) and `status` counts; each limit is as spent on
/// PostgreSQL as it was on SQLite.
#[test]
fn migrate_copies_every_table_and_every_limit_stays_spent() {
    use passcrow::server::storage::{
        BudgetLimit, Caps, Charge, Charged, CodeCheck, GuessLimits, Inserted, SqliteStorage,
    };
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("db.sqlite");
    let limits = GuessLimits {
        window: 3600,
        per_window: 10,
        lifetime: 2,
    };
    let caps = Caps {
        max_escrows: 3,
        max_free_per_day: 2,
    };
    let day = 86_400 * 200;
    let budget = || Charge {
        recipient: [5; 16],
        limits: vec![BudgetLimit {
            scope: "all".into(),
            window: 86_400,
            limit: 1,
            reserve: 0,
            shared: true,
        }],
        reserve_ok: false,
        force: false,
    };
    {
        let q = SqliteStorage::open(&path).unwrap();
        for id in ["frozen", "guessed"] {
            let r = q.insert_escrow_capped(&sid(id), day * 9, b"x", None, &caps, day);
            assert_eq!(r.unwrap(), Inserted::Stored);
            assert!(q.set_code(&sid(id), b"x", b"right", day + 900, 5).unwrap());
        }
        for _ in 0..2 {
            q.check_code(&sid("frozen"), b"wrong", day + 1, &limits)
                .unwrap();
        }
        q.check_code(&sid("guessed"), b"wrong", day + 2, &limits)
            .unwrap();
        assert!(q.suppress(&[7; 16], day).unwrap());
        assert!(matches!(
            q.charge_delivery(&budget(), day).unwrap(),
            Charged::Counted(_)
        ));
        assert!(q.count_status(&sid("guessed"), day, 3600, 1).unwrap());
    }
    let url = pg::cluster().new_database();
    let pg = open(&url);
    let copied = passcrow::server::storage::postgres::copy_from_sqlite(&path, &pg).unwrap();
    let n = |t: &str| copied.tables.iter().find(|x| x.0 == t).map(|x| x.1);
    assert_eq!(n("escrow"), Some(2));
    assert_eq!(n("code"), Some(1), "the frozen escrow's code went");
    for t in ["suppressed", "delivery_budget", "free_day", "status_count"] {
        assert_eq!(n(t), Some(1), "{t}");
    }
    let Lookup::Found(f) = pg.get_escrow(&sid("frozen"), day + 3).unwrap() else {
        panic!("copied")
    };
    assert!(f.frozen);
    assert_eq!(f.created, day);
    let Lookup::Found(g) = pg.get_escrow(&sid("guessed"), day + 3).unwrap() else {
        panic!("copied")
    };
    assert_eq!(
        (g.frozen, g.guesses.total, g.guesses.window),
        (false, 1, day + 2)
    );
    assert_eq!(
        pg.check_code(&sid("frozen"), b"right", day + 3, &limits)
            .unwrap(),
        CodeCheck::Frozen
    );
    // One wrong guess left of its life: the next freezes it.
    assert!(matches!(
        pg.check_code(&sid("guessed"), b"wrong", day + 4, &limits)
            .unwrap(),
        CodeCheck::Wrong { left: 0, .. }
    ));
    assert!(pg.is_suppressed(&[7; 16]).unwrap());
    assert_eq!(
        pg.charge_delivery(&budget(), day + 5).unwrap(),
        Charged::Over(0)
    );
    assert!(!pg.count_status(&sid("guessed"), day + 5, 3600, 1).unwrap());
    // Two free escrows were made today: the third is refused; a paid one
    // takes the last place held, and then the server is full.
    let free = pg.insert_escrow_capped(&sid("c"), day * 9, b"x", None, &caps, day + 6);
    assert_eq!(free.unwrap(), Inserted::FreeCapReached);
    let t = |b: u8| passcrow::server::storage::Spend {
        hash: [b; 32],
        expires: day * 9,
    };
    let paid = pg.insert_escrow_capped(&sid("p"), day * 9, b"x", Some(&t(1)), &caps, day + 6);
    assert_eq!(paid.unwrap(), Inserted::Stored);
    let full = pg.insert_escrow_capped(&sid("q"), day * 9, b"x", Some(&t(2)), &caps, day + 6);
    assert_eq!(full.unwrap(), Inserted::Full);
}

/// A database of schema 8 (one counter row of escrows held, one row of
/// free escrows a day) migrated to 9 (sharded counters) keeps its counts:
/// the caps go on from them, deletions and sweeps take from them.
#[test]
fn a_schema_8_database_keeps_its_counters_through_the_migration() {
    use passcrow::server::storage::{Caps, Inserted, Spend};
    let c = pg::cluster();
    let url = c.new_database();
    let mut admin = c.admin(pg::db_name(&url));
    passcrow::server::storage::postgres::create_schema_at(&mut admin, 8).unwrap();
    let today: i64 = 400;
    let now = today * 86_400 + 60;
    let expires = now + 10 * 86_400;
    // As a schema 8 server left it: three escrows (counted by its
    // triggers), two free ones made today, five the day before.
    for id in ["old-a", "old-b", "old-c"] {
        let id = sid(id).as_bytes().to_vec();
        admin
            .execute(
                "INSERT INTO escrow (id, expires, data, created) VALUES ($1, $2, $3, $4)",
                &[&id, &expires, &b"x".to_vec(), &now],
            )
            .unwrap();
    }
    admin
        .execute(
            "INSERT INTO free_day (day, n) VALUES ($1, 2), ($2, 5)",
            &[&today, &(today - 1)],
        )
        .unwrap();
    let count = |admin: &mut postgres::Client, sql: &str| -> i64 {
        admin.query_one(sql, &[]).unwrap().get(0)
    };
    assert_eq!(
        count(&mut admin, "SELECT n FROM tally WHERE name = 'escrows'"),
        3
    );

    let s = open(&url);
    assert_eq!(
        s.schema_version().unwrap(),
        passcrow::server::storage::SCHEMA_VERSION
    );
    let held = "SELECT sum(n)::int8 FROM tally WHERE name = 'escrows'";
    assert_eq!(count(&mut admin, held), 3);
    // A deletion takes one from the migrated count: two held.
    assert!(s.delete_escrow(&sid("old-a")).unwrap());
    assert_eq!(count(&mut admin, held), 2);
    let caps = Caps {
        max_escrows: 5,
        max_free_per_day: 3,
    };
    let insert = |id: &str, spend: Option<u8>| {
        let spend = spend.map(|b| Spend {
            hash: [b; 32],
            expires,
        });
        s.insert_escrow_capped(&sid(id), expires, b"x", spend.as_ref(), &caps, now)
            .unwrap()
    };
    // Two of today's three free escrows were made before the migration.
    assert_eq!(insert("new-f1", None), Inserted::Stored);
    assert_eq!(insert("new-f2", None), Inserted::FreeCapReached);
    // Three held: two places left.
    assert_eq!(insert("new-p1", Some(1)), Inserted::Stored);
    assert_eq!(insert("new-p2", Some(2)), Inserted::Stored);
    assert_eq!(insert("new-p3", Some(3)), Inserted::Full);
    assert_eq!(count(&mut admin, held), 5);
    assert_eq!(count(&mut admin, "SELECT count(*) FROM escrow"), 5);
    // A sweep two days later drops the old days' counts, every shard.
    s.sweep(now + 2 * 86_400).unwrap();
    assert_eq!(count(&mut admin, "SELECT count(*) FROM free_day"), 0);
    assert_eq!(count(&mut admin, held), 5);
}

fn open(url: &str) -> PostgresStorage {
    PostgresStorage::open(url, &pg::cluster().settings()).unwrap()
}

#[test]
fn schema_created_once_by_instances_starting_together_and_newer_refused() {
    let url = pg::cluster().new_database();
    let barrier = Barrier::new(4);
    std::thread::scope(|s| {
        let ts: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    PostgresStorage::open(&url, &pg::cluster().settings())
                        .map(|s| s.schema_version().unwrap())
                })
            })
            .collect();
        for t in ts {
            assert_eq!(
                t.join().unwrap().unwrap(),
                passcrow::server::storage::SCHEMA_VERSION
            );
        }
    });
    let c = pg::cluster();
    c.admin(pg::db_name(&url))
        .batch_execute("UPDATE passcrow_schema SET version = 99")
        .unwrap();
    let e = PostgresStorage::open(&url, &c.settings()).unwrap_err();
    assert!(e.0.contains("schema 99 is newer"), "{e}");
}

#[test]
fn commits_are_synchronous_even_when_the_database_default_is_off() {
    let c = pg::cluster();
    let url = c.new_database();
    let db = pg::db_name(&url);
    c.admin("postgres")
        .batch_execute(&format!("ALTER DATABASE {db} SET synchronous_commit = off"))
        .unwrap();
    let raw: String = c
        .admin(db)
        .query_one("SHOW synchronous_commit", &[])
        .unwrap()
        .get(0);
    assert_eq!(raw, "off", "the test's premise");
    let s = open(&url);
    assert_eq!(s.session_setting("synchronous_commit").unwrap(), "on");
    assert_eq!(s.session_setting("statement_timeout").unwrap(), "10s");
    assert_eq!(s.session_setting("lock_timeout").unwrap(), "5s");
}

#[test]
fn tls_with_certificate_verification() {
    let c = pg::cluster();
    let ca = c.ca.as_ref().expect("the test cluster has TLS (openssl)");
    let url = c.new_database();
    let db = pg::db_name(&url);
    let tls = format!(
        "postgres://passcrow_test@localhost:{}/{db}?sslmode=verify-full&sslrootcert={}",
        c.port,
        ca.display()
    );
    let s = open(&tls);
    assert!(s.insert_escrow(&sid("a"), 100, b"x", 10).unwrap());
    let n: i64 = c
        .admin(db)
        .query_one(
            "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid)
             WHERE ssl AND application_name = 'passcrow-server' AND datname = $1",
            &[&db],
        )
        .unwrap()
        .get(0);
    assert!(n >= 1, "no TLS connection seen");
    // A server whose certificate no trusted root signed is refused.
    let untrusted = format!(
        "postgres://passcrow_test@localhost:{}/{db}?sslmode=verify-full",
        c.port
    );
    let e = PostgresStorage::open(&untrusted, &c.settings()).unwrap_err();
    assert!(
        e.0.contains("certificate") || e.0.contains("Certificate"),
        "{e}"
    );
    // The password is in no error.
    assert!(!e.0.contains(&c.password), "{e}");
}

#[test]
fn a_wrong_password_is_named_never_quoted() {
    let c = pg::cluster();
    let url = c.new_database();
    let s = Settings {
        password: Some("not-the-password-1234".to_string().into()),
        ..Settings::default()
    };
    let e = PostgresStorage::open(&url, &s).unwrap_err();
    assert!(e.0.contains("password authentication failed"), "{e}");
    assert!(!e.0.contains("not-the-password-1234"), "{e}");
}

#[test]
fn one_instance_sweeps_at_a_time() {
    let c = pg::cluster();
    let url = c.new_database();
    let s = open(&url);
    for i in 0..10 {
        assert!(s
            .insert_escrow(&sid(&format!("e{i}")), 100, b"x", 10)
            .unwrap());
    }
    // Another instance is sweeping (holds the sweep lock): we skip.
    let mut other = c.admin(pg::db_name(&url));
    other
        .batch_execute("SELECT pg_advisory_lock(x'7063727773776570'::bigint)")
        .unwrap();
    assert_eq!(s.sweep(200).unwrap().escrows, 0);
    assert_eq!(s.counts().unwrap().escrows, 10);
    other
        .batch_execute("SELECT pg_advisory_unlock(x'7063727773776570'::bigint)")
        .unwrap();
    assert_eq!(s.sweep(200).unwrap().escrows, 10);
    assert!(matches!(
        s.get_escrow(&sid("e1"), 50).unwrap(),
        Lookup::Missing
    ));
}

#[test]
fn the_reference_client_against_two_instances_alternately() {
    let p = pair(|_| {});
    let (a, b) = (p.a.url(), p.b.url());
    let tmp = tempfile::tempdir().unwrap();
    let secret = b"shared by two instances".to_vec();
    let secret_file = tmp.path().join("secret.txt");
    std::fs::write(&secret_file, &secret).unwrap();
    let home = tmp.path().join("ref-home");
    std::fs::create_dir_all(&home).unwrap();
    let ids = [
        "email:alice@example.org",
        "email:bob@example.org",
        "tel:+3545885522",
    ];
    // Shares escrowed on A, B, A.
    let mut cmd = common::ref_client("protect", &home);
    cmd.args([
        "--name",
        "two",
        "--secret-file",
        secret_file.to_str().unwrap(),
    ])
    .args(["--ratio", "2/3", "--days", "1"]);
    for (i, id) in ids.iter().enumerate() {
        let url = if i % 2 == 0 { &a } else { &b };
        cmd.args(["--id", &format!("{id} via {url}")]);
    }
    let (ok, out, err) = common::run(&mut cmd);
    assert!(ok, "reference protect: {out} {err}");
    let stats = call(&b, "stats", &serde_json::json!({}));
    assert_eq!(
        stats["storage"]["escrows"], 3,
        "B counts A's escrows too: {stats}"
    );
    let (ok, o, err) = common::run(common::ref_client("verify", &home).args(["--name", "two"]));
    assert!(ok, "reference verify: {o} {err}");
    // The codes of the share on B and of one on A.
    let out_file = tmp.path().join("out.bin");
    let mut cmd = common::ref_client("recover", &home);
    cmd.args(["--name", "two", "--out", out_file.to_str().unwrap()]);
    for id in &ids[..2] {
        cmd.args(["--code", &newest_code(&p.codes, id).unwrap()]);
    }
    let (ok, o, err) = common::run(&mut cmd);
    assert!(ok, "reference recover: {o} {err}");
    assert_eq!(std::fs::read(&out_file).unwrap(), secret);
}

/// Cut every connection of ours to `db`, and wait until they are gone.
fn terminate_our_sessions(c: &pg::Cluster, db: &str) -> i64 {
    let mut admin = c.admin(db);
    let n: i64 = admin
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE datname = $1 AND application_name = 'passcrow-server'",
            &[&db],
        )
        .unwrap()
        .get(0);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = $1 AND application_name = 'passcrow-server'",
                &[&db],
            )
            .unwrap()
            .get(0);
        if left == 0 {
            return n;
        }
        assert!(
            Instant::now() < deadline,
            "{left} sessions outlived pg_terminate_backend"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_connection_the_database_closed_is_replaced_before_a_transaction() {
    let c = pg::cluster();
    let url = c.new_database();
    let db = pg::db_name(&url);
    let s = open(&url);
    assert!(s.insert_escrow(&sid("a"), 100_000, b"x", 10).unwrap());
    // As a restart or failover would: every connection of ours is cut
    // while idle in the pool.
    assert!(terminate_our_sessions(c, db) >= 1);
    // The next transaction finds its connection closed at BEGIN (nothing
    // ran) and runs on a new one.
    assert!(s.delete_escrow(&sid("a")).unwrap());
    assert!(matches!(
        s.get_escrow(&sid("a"), 50).unwrap(),
        Lookup::Missing
    ));
}

#[test]
fn a_transaction_whose_session_is_cut_before_commit_runs_again() {
    let c = pg::cluster();
    let url = c.new_database();
    let db = pg::db_name(&url);
    let s = Arc::new(open(&url));
    assert!(s.insert_escrow(&sid("a"), 100_000, b"x", 10).unwrap());
    // Hold the escrow's row, so our delete waits inside its transaction.
    let mut holder = c.admin(db);
    let mut lock = holder.transaction().unwrap();
    lock.execute("SELECT 1 FROM escrow FOR UPDATE", &[])
        .unwrap();
    let deleting = {
        let s = s.clone();
        std::thread::spawn(move || s.delete_escrow(&sid("a")))
    };
    // Once it waits for the lock, cut its session: the database answers
    // 57P01 in the middle of the transaction, which it rolls back.
    let mut admin = c.admin(db);
    let deadline = Instant::now() + Duration::from_secs(10);
    let cut = loop {
        let n: i64 = admin
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                 WHERE datname = $1 AND application_name = 'passcrow-server'
                   AND wait_event_type = 'Lock'",
                &[&db],
            )
            .unwrap()
            .get(0);
        if n > 0 {
            break n;
        }
        assert!(
            Instant::now() < deadline,
            "the delete never waited for the lock"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(cut, 1);
    // The retry waits for the lock again on a new connection; let it go.
    std::thread::sleep(Duration::from_millis(200));
    lock.rollback().unwrap();
    assert!(deleting.join().unwrap().unwrap());
    assert!(matches!(
        s.get_escrow(&sid("a"), 50).unwrap(),
        Lookup::Missing
    ));
}
