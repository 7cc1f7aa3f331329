//! Tests of the SQLite backend: the trait's contract, migrations, and
//! what callers hear when another process holds the file.

use super::super::schema::{SCHEMA_V1, SCHEMA_V2, SCHEMA_VERSION};
use super::*;
use crate::crypto::Key32;
use crate::server::seal::Keys;

/// A stored id for a test name (at most 32 bytes), one per name.
fn id(name: &str) -> StoredId {
    let mut b = [0u8; 32];
    b[..name.len()].copy_from_slice(name.as_bytes());
    StoredId::from_bytes(b)
}

/// A guessing budget the tests of other things never reach.
const L: GuessLimits = GuessLimits {
    window: 3600,
    per_window: 1000,
    lifetime: 1000,
};

/// The code check's answer to a wrong code when the budget `L` is far.
fn wrong(left: u32, in_window: u32, total: u32, window: i64) -> CodeCheck {
    CodeCheck::Wrong {
        left,
        guesses: GuessesLeft {
            in_window: L.per_window - in_window,
            lifetime: L.lifetime - total,
            window_ends: window + L.window,
        },
    }
}

#[test]
fn escrows_codes_tokens() {
    let s = SqliteStorage::in_memory().unwrap();
    assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    assert!(s.insert_escrow(&id("a"), 100, b"x", 10).unwrap());
    assert!(!s.insert_escrow(&id("a"), 100, b"y", 10).unwrap());
    assert!(matches!(s.get_escrow(&id("a"), 50).unwrap(), Lookup::Found(r) if r.sealed == b"x"));
    // Window of 10 s, at most 2.
    let v = |name: &str, now| s.start_verification(&id(name), now, 10, 2).unwrap();
    assert_eq!(v("a", 20), Some(Started { window: 20 }));
    assert!(s.set_code(&id("a"), b"x", b"m1", 60, 2).unwrap());
    assert_eq!(v("a", 21), Some(Started { window: 20 }));
    assert!(s.set_code(&id("a"), b"x", b"m2", 60, 2).unwrap());
    // A code requested before m2 but delivered after it: m2 stays.
    assert!(s.set_code(&id("a"), b"x", b"m0", 59, 2).unwrap());
    assert_eq!(v("a", 22), None);
    assert_eq!(v("nope", 30), None);
    assert!(
        !s.set_code(&id("nope"), b"x", b"m", 60, 2).unwrap(),
        "no escrow, no code"
    );
    // m2 replaced m1.
    assert_eq!(
        s.check_code(&id("a"), b"m1", 25, &L).unwrap(),
        wrong(1, 1, 1, 25)
    );
    assert_eq!(
        s.check_code(&id("a"), b"m3", 25, &L).unwrap(),
        wrong(0, 2, 2, 25)
    );
    assert_eq!(
        s.check_code(&id("a"), b"m2", 25, &L).unwrap(),
        CodeCheck::Void
    );
    assert_eq!(v("a", 30), Some(Started { window: 30 }));
    assert!(s.set_code(&id("a"), b"x", b"m4", 60, 3).unwrap());
    assert_eq!(
        s.check_code(&id("a"), b"m4", 31, &L).unwrap(),
        CodeCheck::Right
    );
    assert_eq!(
        s.check_code(&id("a"), b"m4", 31, &L).unwrap(),
        CodeCheck::NoCode
    );
    assert!(s.set_code(&id("a"), b"x", b"m5", 60, 3).unwrap());
    assert_eq!(
        s.check_code(&id("a"), b"m5", 60, &L).unwrap(),
        CodeCheck::Expired
    );
    assert_eq!(
        s.check_code(&id("a"), b"m5", 60, &L).unwrap(),
        CodeCheck::NoCode
    );

    assert!(matches!(
        s.get_escrow(&id("a"), 100).unwrap(),
        Lookup::Expired
    ));
    assert!(matches!(
        s.get_escrow(&id("a"), 100).unwrap(),
        Lookup::Missing
    ));
    assert!(s.insert_escrow(&id("b"), 100, b"x", 10).unwrap());
    assert!(s.set_code(&id("b"), b"x", b"m", 200, 3).unwrap());
    assert!(s.delete_escrow(&id("b")).unwrap());
    assert_eq!(
        s.check_code(&id("b"), b"m", 50, &L).unwrap(),
        CodeCheck::NoCode
    );
    assert!(s.insert_escrow(&id("c"), 100, b"x", 10).unwrap());
    let sw = s.sweep(100).unwrap();
    assert_eq!(sw.escrows, 1);
    assert_eq!(s.counts().unwrap(), Counts::default());
}

#[test]
fn a_paid_escrow_and_its_token_are_one_transaction() {
    let s = SqliteStorage::in_memory().unwrap();
    let t = Spend {
        hash: [7; 32],
        expires: 40,
    };
    let paid = |name: &str, now| s.insert_escrow_paid(&id(name), 100, b"x", &t, now).unwrap();
    // A taken id spends nothing: the token still pays for another id.
    assert!(s.insert_escrow(&id("a"), 100, b"x", 10).unwrap());
    assert_eq!(paid("a", 10), Inserted::IdTaken);
    assert_eq!(paid("b", 11), Inserted::Stored);
    // Spent: nothing is stored, whatever the id.
    assert_eq!(paid("c", 20), Inserted::TokenSpent);
    assert!(matches!(
        s.get_escrow(&id("c"), 20).unwrap(),
        Lookup::Missing
    ));
    assert_eq!(s.counts().unwrap().escrows, 2);
    // Once its record expires the token is spendable again (by then it
    // is too old to pass the payment check anyway).
    assert_eq!(paid("c", 40), Inserted::Stored);
    assert_eq!(s.sweep(39).unwrap().tokens, 0);
    assert_eq!(paid("d", 39), Inserted::TokenSpent);
}

#[test]
fn a_failed_paid_insert_changes_nothing() {
    let s = SqliteStorage::in_memory().unwrap();
    let t = Spend {
        hash: [9; 32],
        expires: 1000,
    };
    let rows = |table: &'static str| -> i64 {
        s.read(
            move |c| Ok(c.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))?),
        )
        .unwrap()
    };
    let exec = |sql: &'static str| s.write(move |c| Ok(c.execute_batch(sql)?)).unwrap();
    // The escrow cannot be stored: the token is not spent.
    exec("CREATE TRIGGER no_escrow BEFORE INSERT ON escrow BEGIN SELECT RAISE(ABORT, 'disk full'); END");
    assert!(s.insert_escrow_paid(&id("a"), 100, b"x", &t, 10).is_err());
    assert_eq!((rows("escrow"), rows("token")), (0, 0));
    exec("DROP TRIGGER no_escrow");
    // The token cannot be recorded: the escrow is not stored either.
    exec("CREATE TRIGGER no_token BEFORE INSERT ON token BEGIN SELECT RAISE(ABORT, 'disk full'); END");
    assert!(s.insert_escrow_paid(&id("a"), 100, b"x", &t, 10).is_err());
    assert_eq!((rows("escrow"), rows("token")), (0, 0));
    exec("DROP TRIGGER no_token");
    assert_eq!(
        s.insert_escrow_paid(&id("a"), 100, b"x", &t, 10).unwrap(),
        Inserted::Stored
    );
    assert_eq!((rows("escrow"), rows("token")), (1, 1));
}

#[test]
fn failed_deliveries_are_forgiven_up_to_a_bound() {
    let s = SqliteStorage::in_memory().unwrap();
    assert!(s.insert_escrow(&id("a"), 100_000, b"x", 10).unwrap());
    // At most 2 in a window of 100 s; at most 2 failures forgiven.
    let v = |now| s.start_verification(&id("a"), now, 100, 2).unwrap();
    let failed = |st| s.verification_failed(&id("a"), st, 2).unwrap();
    let first = v(10_020).unwrap();
    assert!(s.set_code(&id("a"), b"x", b"m1", 10_500, 3).unwrap());
    // Two failures in a row are both given back, and leave the
    // delivered code pending (protocol_tests runs them concurrently).
    let (x, y) = (v(10_021).unwrap(), v(10_022));
    assert_eq!(y, None, "the window is full while both are under way");
    assert!(failed(x));
    let y = v(10_023).unwrap();
    assert!(failed(y));
    assert_eq!(
        s.check_code(&id("a"), b"m1", 10_024, &L).unwrap(),
        CodeCheck::Right
    );
    // The bound is reached: a third failure counts like a delivery.
    let z = v(10_025).unwrap();
    assert!(!failed(z));
    assert_eq!(v(10_026), None);
    // A new window forgives again, and an old window's failure does
    // not uncount the new one.
    let w = v(10_200).unwrap();
    assert!(!failed(first), "first's window is over");
    assert_eq!(v(10_201), Some(Started { window: 10_200 }));
    assert_eq!(v(10_202), None);
    assert!(failed(w));
    assert!(v(10_203).is_some());
    // A code delivered after its escrow was deleted is not stored, nor
    // given to a new escrow that took the id meanwhile.
    assert!(s.delete_escrow(&id("a")).unwrap());
    assert!(!s.set_code(&id("a"), b"x", b"m2", 10_900, 3).unwrap());
    assert!(s.insert_escrow(&id("a"), 100_000, b"y", 10_300).unwrap());
    assert!(!s.set_code(&id("a"), b"x", b"m2", 10_900, 3).unwrap());
    assert_eq!(s.counts().unwrap().codes, 0);
}

/// A schema `version` (1 or 2) database at `path` as the server before
/// hashed ids made it (WAL mode, clear TEXT ids, escrows sealed in format
/// 1 under their clear id): the escrows `(clear key, expires, data)` and
/// the codes `(clear key, code)` given, sealed and hashed under `keys`.
fn old_database(
    path: &Path,
    version: i64,
    keys: &Keys,
    escrows: &[(&str, i64, &[u8])],
    codes: &[(&str, &str)],
) {
    let c = Connection::open(path).unwrap();
    let v2 = if version >= 2 { SCHEMA_V2 } else { "" };
    c.execute_batch(&format!(
        "PRAGMA journal_mode=WAL; BEGIN; {SCHEMA_V1} {v2} PRAGMA user_version = {version}; COMMIT;"
    ))
    .unwrap();
    for (key, expires, data) in escrows {
        c.execute(
            "INSERT INTO escrow (id, expires, data, vwin, vcount) VALUES (?1, ?2, ?3, 10000, 2)",
            params![key, expires, keys.seal_v1(key, data)],
        )
        .unwrap();
    }
    for (key, code) in codes {
        c.execute(
            "INSERT INTO code (id, mac, expires, attempts) VALUES (?1, ?2, 20000, 3)",
            params![key, &keys.code_mac(key, code)[..]],
        )
        .unwrap();
    }
}

/// Every row of `table` in `path`, as text (to compare before and after).
fn dump(path: &Path, table: &str) -> Vec<String> {
    let c = Connection::open(path).unwrap();
    let mut st = c
        .prepare(&format!(
            "SELECT quote(id), quote({table}.expires) FROM {table} ORDER BY 1"
        ))
        .unwrap();
    let rows = st
        .query_map([], |r| {
            Ok(format!(
                "{}:{}",
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?
            ))
        })
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    rows
}

fn has_table(path: &Path, name: &str) -> bool {
    Connection::open(path)
        .unwrap()
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = ?1)",
            [name],
            |r| r.get(0),
        )
        .unwrap()
}

#[test]
fn a_wipe_that_cannot_finish_is_retried_at_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v2.sqlite");
    let keys = Keys::derive(&Key32::from_bytes([3; 32]));
    let key = "a0a0a0a0deadbeefcafef00d5eed1e55";
    old_database(&path, 2, &keys, &[(key, 100_000, b"first")], &[]);
    let named = || {
        [path.clone(), dir.path().join("v2.sqlite-wal")]
            .iter()
            .filter_map(|p| std::fs::read(p).ok())
            .any(|b| b.windows(key.len()).any(|w| w == key.as_bytes()))
    };
    assert!(named(), "the old file names its escrow");
    // Another process reads (an old snapshot) while the server migrates:
    // the WAL cannot be truncated under it.
    let reader = Connection::open(&path).unwrap();
    reader.execute_batch("BEGIN").unwrap();
    let _: i64 = reader
        .query_row("SELECT COUNT(*) FROM escrow", [], |r| r.get(0))
        .unwrap();
    let s = SqliteStorage::open_waiting(&path, std::time::Duration::from_millis(50), Some(&keys))
        .unwrap();
    assert_eq!(s.counts().unwrap().escrows, 1, "it serves anyway");
    drop(s);
    assert!(has_table(&path, "wipe_pending"), "the wipe is still owed");
    assert!(named(), "the old pages are still in the file");
    reader.execute_batch("COMMIT").unwrap();
    drop(reader);
    let s = SqliteStorage::open(&path).unwrap();
    assert!(!has_table(&path, "wipe_pending"));
    assert!(!named(), "the old id is still in the file or its WAL");
    assert_eq!(s.counts().unwrap().escrows, 1);
}

fn user_version(path: &Path) -> i64 {
    Connection::open(path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn a_version_1_database_is_migrated_to_hashed_ids() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.sqlite");
    let keys = Keys::derive(&Key32::from_bytes([3; 32]));
    old_database(
        &path,
        1,
        &keys,
        &[("a0", 100_000, b"first"), ("b1", 100_000, b"second")],
        &[("a0", "7123456")],
    );
    let s = SqliteStorage::open_migrating(&path, &keys).unwrap();
    assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    let a = keys.stored_id("a0");
    let Lookup::Found(row) = s.get_escrow(&a, 10_010).unwrap() else {
        panic!("a0 is not found by its stored id")
    };
    assert_eq!(row.sealed[0], 2, "re-sealed in format 2");
    assert_eq!(
        keys.open(&a, &row.sealed).unwrap().expose_secret(),
        b"first"
    );
    let b = keys.stored_id("b1");
    let Lookup::Found(row) = s.get_escrow(&b, 10_010).unwrap() else {
        panic!("b1 is not found by its stored id")
    };
    assert_eq!(
        keys.open(&b, &row.sealed).unwrap().expose_secret(),
        b"second"
    );
    // The old window's count is kept, and no failure was forgiven in it.
    assert_eq!(s.start_verification(&a, 10_010, 100, 2).unwrap(), None);
    let st = s.start_verification(&a, 10_011, 100, 3).unwrap().unwrap();
    assert_eq!(st.window, 10_000);
    assert!(s.verification_failed(&a, st, 1).unwrap());
    // The pending code moved with its escrow, its hash unchanged.
    assert_eq!(
        s.check_code(&a, &keys.code_mac("a0", "7123457"), 10_020, &L)
            .unwrap(),
        wrong(2, 1, 1, 10_020)
    );
    assert_eq!(
        s.check_code(&a, &keys.code_mac("a0", "7123456"), 10_020, &L)
            .unwrap(),
        CodeCheck::Right
    );
    // Every row is at key version 1; ids are 32-byte blobs; deleting
    // overwrites with zeros.
    let (kv, blobs, secure): (Vec<i64>, i64, i64) = s
        .write(|c| {
            let kv = c
                .prepare("SELECT kv FROM escrow")?
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            let blobs = c.query_row(
                "SELECT COUNT(*) FROM escrow WHERE typeof(id) = 'blob' AND length(id) = 32",
                [],
                |r| r.get(0),
            )?;
            let secure = c.query_row("PRAGMA secure_delete", [], |r| r.get(0))?;
            Ok((kv, blobs, secure))
        })
        .unwrap();
    assert_eq!((kv, blobs, secure), (vec![1, 1], 2, 1));
    // Opening it again (as a second process would) finds it migrated,
    // even without the keys; the old pages were wiped.
    drop(s);
    assert!(!has_table(&path, "wipe_pending"));
    let s = SqliteStorage::open(&path).unwrap();
    assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(s.counts().unwrap().escrows, 2);
}

#[test]
fn a_failed_migration_leaves_the_old_database_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v2.sqlite");
    let keys = Keys::derive(&Key32::from_bytes([3; 32]));
    old_database(
        &path,
        2,
        &keys,
        &[("a0", 100_000, b"first"), ("b1", 100_000, b"second")],
        &[("a0", "7123456")],
    );
    // One escrow whose seal does not open (a copy of another's).
    Connection::open(&path)
        .unwrap()
        .execute(
            "INSERT INTO escrow (id, expires, data) SELECT 'c2', expires, data FROM escrow WHERE id = 'a0'",
            [],
        )
        .unwrap();
    let before = (dump(&path, "escrow"), dump(&path, "code"));
    let e = SqliteStorage::open_migrating(&path, &keys).unwrap_err();
    let c2 = keys.stored_id("c2").short();
    assert!(
        e.0.contains(&format!("escrow {c2} does not open under the master key"))
            && e.0.contains("left as it was"),
        "{e}"
    );
    assert!(
        !e.0.contains("c2'") && !e.0.contains("a0"),
        "names a clear id: {e}"
    );
    assert_eq!(user_version(&path), 2);
    assert_eq!((dump(&path, "escrow"), dump(&path, "code")), before);
    // Under another master key nothing opens: refused the same way.
    let other = Keys::derive(&Key32::from_bytes([4; 32]));
    assert!(SqliteStorage::open_migrating(&path, &other).is_err());
    // Without keys at all: refused, saying why.
    let e = SqliteStorage::open(&path).unwrap_err();
    assert!(e.0.contains("clear ids"), "{e}");
    assert_eq!(user_version(&path), 2);
    assert_eq!((dump(&path, "escrow"), dump(&path, "code")), before);
    // The bad row gone, it migrates.
    Connection::open(&path)
        .unwrap()
        .execute("DELETE FROM escrow WHERE id = 'c2'", [])
        .unwrap();
    let s = SqliteStorage::open_migrating(&path, &keys).unwrap();
    assert_eq!(
        s.counts().unwrap(),
        Counts {
            escrows: 2,
            codes: 1
        }
    );
}

/// Schema 4: budgets count, refuse without counting, refund, reset with
/// their window; the suppression list refuses even forced charges.
#[test]
fn delivery_budgets_in_one_transaction() {
    use crate::server::storage::{BudgetLimit, Charge, Charged};
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStorage::open(&dir.path().join("b.sqlite")).unwrap();
    let lim = |scope: &str, window, limit, reserve| BudgetLimit {
        scope: scope.into(),
        window,
        limit,
        reserve,
        shared: scope.starts_with("kind:"),
    };
    let charge = |reserve_ok, force| Charge {
        recipient: [7; 16],
        limits: vec![lim("rcpt:a", 3600, 2, 1), lim("kind:sms", 3600, 3, 0)],
        reserve_ok,
        force,
    };
    let counted = |c: Charged| match c {
        Charged::Counted(v) => v,
        other => panic!("{other:?}"),
    };
    counted(s.charge_delivery(&charge(false, false), 100).unwrap());
    let second = counted(s.charge_delivery(&charge(false, false), 101).unwrap());
    assert_eq!(second[0].used, 2);
    // Over the first budget: nothing counted, in either budget.
    assert_eq!(
        s.charge_delivery(&charge(false, false), 102).unwrap(),
        Charged::Over(0)
    );
    // The reserve, for those allowed: then the second budget is spent.
    let r = counted(s.charge_delivery(&charge(true, false), 103).unwrap());
    assert!(r[0].reserve && !r[1].reserve && r[1].used == 3);
    assert_eq!(
        s.charge_delivery(&charge(true, false), 104).unwrap(),
        Charged::Over(0)
    );
    // A refund gives one back.
    s.refund_delivery(&r).unwrap();
    let again = counted(s.charge_delivery(&charge(true, false), 105).unwrap());
    assert!(again[0].reserve);
    // Forced charges pass (and count) over every budget.
    let f = counted(s.charge_delivery(&charge(false, true), 106).unwrap());
    assert_eq!(f[1].used, 4);
    // A new window starts afresh.
    assert_eq!(
        counted(s.charge_delivery(&charge(false, false), 3700).unwrap())[0].used,
        1
    );
    // Suppressed: refused, even forced.
    assert!(!s.is_suppressed(&[7; 16]).unwrap());
    assert!(s.suppress(&[7; 16], 3701).unwrap());
    assert!(!s.suppress(&[7; 16], 3702).unwrap());
    assert!(s.is_suppressed(&[7; 16]).unwrap());
    assert_eq!(
        s.charge_delivery(&charge(true, true), 3703).unwrap(),
        Charged::Suppressed
    );
    // Sweeping removes ended windows.
    s.sweep(100_000).unwrap();
}

#[test]
fn while_another_process_holds_the_file_nothing_runs_and_each_caller_hears() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.sqlite");
    let s = SqliteStorage::open_waiting(&path, std::time::Duration::from_millis(50), None).unwrap();
    let other = Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let e = s.insert_escrow(&id("a"), 100, b"x", 10).unwrap_err();
    assert!(
        e.0.starts_with("could not begin a transaction: database is locked"),
        "{e:?}"
    );
    other.execute_batch("COMMIT").unwrap();
    assert!(matches!(
        s.get_escrow(&id("a"), 50).unwrap(),
        Lookup::Missing
    ));
    assert!(s.insert_escrow(&id("a"), 100, b"x", 10).unwrap());
}

#[test]
fn a_version_1_database_opened_by_several_at_once_is_migrated_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.sqlite");
    Connection::open(&path)
        .unwrap()
        // In WAL mode, as every file this server made.
        .execute_batch(&format!(
            "PRAGMA journal_mode=WAL; BEGIN; {SCHEMA_V1} PRAGMA user_version = 1; COMMIT;"
        ))
        .unwrap();
    // As the server and a `sweep` from cron might: each one either
    // migrates or finds it done, never fails on "duplicate column".
    let barrier = std::sync::Barrier::new(4);
    std::thread::scope(|s| {
        let opens: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    SqliteStorage::open(&path).map(|s| s.schema_version().unwrap())
                })
            })
            .collect();
        for o in opens {
            assert_eq!(o.join().unwrap().unwrap(), SCHEMA_VERSION);
        }
    });
}

#[test]
fn sweep_in_slices_and_bulk_insert() {
    let s = SqliteStorage::in_memory().unwrap();
    let rows: Vec<(StoredId, i64, Vec<u8>)> = (0..12_345)
        .map(|i| {
            (
                id(&format!("{i:032x}")),
                if i % 2 == 0 { 50 } else { 500 },
                vec![1; 8],
            )
        })
        .collect();
    assert_eq!(s.insert_escrows(&rows, 10).unwrap(), 12_345);
    assert_eq!(s.insert_escrows(&rows[..10], 10).unwrap(), 0, "ids taken");
    assert!(s.set_code(&rows[0].0, &[1; 8], b"m", 40, 3).unwrap());
    let sw = s.sweep(100).unwrap();
    assert_eq!((sw.escrows, sw.codes), (6_173, 1));
    assert_eq!(s.counts().unwrap().escrows, 6_172);
    assert_eq!(
        s.escrows_held().unwrap(),
        6_172,
        "the counter kept by the sweep"
    );
}

/// (synced, unsynced) commits so far.
fn commits(s: &SqliteStorage) -> (usize, usize) {
    (
        s.trace.synced_commits.load(Ordering::SeqCst),
        s.trace.unsynced_commits.load(Ordering::SeqCst),
    )
}

#[test]
fn a_write_whose_log_cannot_be_synced_is_answered_as_failed() {
    // The writer commits at synchronous=NORMAL and leaves the sync to its
    // syncer thread: if that sync fails, no durable write may be answered
    // as done. A WAL path that does not exist makes every sync fail.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let conn = Connection::open(&path).unwrap();
    SqliteStorage::setup(&conn, BUSY_TIMEOUT, None).unwrap();
    let s = SqliteStorage::start(conn, vec![], Some(dir.path().join("no-such-wal"))).unwrap();
    let e = s.insert_escrow(&id("a"), 100_000, b"x", 10).unwrap_err();
    assert!(e.0.contains("synced to disk"), "{e:?}");
    assert_eq!(commits(&s).0, 0, "nothing counted as synced");
    // Housekeeping does not wait for a sync, so it still answers.
    assert_eq!(s.sweep(10).unwrap().escrows, 0);
}

#[test]
fn writes_go_on_while_a_sync_is_in_flight() {
    // Many durable writes from many threads: the groups they form are
    // answered after a shared sync each, and every write is answered.
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStorage::open(&dir.path().join("db.sqlite")).unwrap();
    std::thread::scope(|sc| {
        for t in 0..8 {
            let s = &s;
            sc.spawn(move || {
                for i in 0..25 {
                    assert!(s
                        .insert_escrow(&id(&format!("t{t}i{i}")), 100_000, b"x", 10)
                        .unwrap());
                }
            });
        }
    });
    assert_eq!(s.escrows_held().unwrap(), 200);
    let (synced, unsynced) = commits(&s);
    assert_eq!(unsynced, 0);
    assert!((1..=200).contains(&synced), "{synced} synced groups");
    drop(s);
    // Everything answered is in the file after the writer closed it.
    let s = SqliteStorage::open(&dir.path().join("db.sqlite")).unwrap();
    assert_eq!(s.escrows_held().unwrap(), 200);
}

#[test]
fn code_bookkeeping_is_synced_before_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStorage::open(&dir.path().join("db.sqlite")).unwrap();
    assert!(s.insert_escrow(&id("a"), 100_000, b"x", 10).unwrap());
    // Each call returns only once its own commit's WAL frames were synced
    // (the syncer thread's fdatasync returned, or a commit made at
    // synchronous=FULL, the level read back from SQLite): an attempt
    // spent, a code used, a verification counted or forgiven is on disk
    // before the caller is answered.
    let synced = |what: &str, f: &dyn Fn()| {
        let (y0, n0) = commits(&s);
        f();
        let (y1, n1) = commits(&s);
        assert_eq!(n1, n0, "{what}: committed without a sync");
        assert!(y1 > y0, "{what}: no synced commit before the answer");
    };
    let st = std::cell::Cell::new(None);
    synced("start_verification", &|| {
        st.set(s.start_verification(&id("a"), 20, 3600, 5).unwrap())
    });
    synced("set_code", &|| {
        assert!(s.set_code(&id("a"), b"x", b"m1", 1000, 3).unwrap())
    });
    synced("check_code (wrong)", &|| {
        assert_eq!(
            s.check_code(&id("a"), b"zz", 30, &L).unwrap(),
            wrong(2, 1, 1, 30)
        )
    });
    synced("check_code (right)", &|| {
        assert_eq!(
            s.check_code(&id("a"), b"m1", 30, &L).unwrap(),
            CodeCheck::Right
        )
    });
    synced("verification_failed", &|| {
        assert!(s
            .verification_failed(&id("a"), st.get().unwrap(), 2)
            .unwrap())
    });
    synced("check_code (expired)", &|| {
        assert!(s.set_code(&id("a"), b"x", b"m2", 1000, 3).unwrap());
        assert_eq!(
            s.check_code(&id("a"), b"m2", 1000, &L).unwrap(),
            CodeCheck::Expired
        )
    });
    // Housekeeping may stay unsynced (it is redone if lost).
    let (_, n0) = commits(&s);
    s.sweep(50).unwrap();
    assert!(commits(&s).1 > n0, "sweeps are not synced");
}

#[test]
fn a_panicking_job_fails_alone() {
    use std::sync::Arc;
    use std::time::Duration;
    let s = Arc::new(SqliteStorage::in_memory().unwrap());
    let wait_submitted = |n: usize| {
        for _ in 0..1000 {
            if s.trace.submitted.load(Ordering::SeqCst) >= n {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("jobs were not submitted");
    };
    // Each job's answer, by name, with a bound on the wait (a hang fails).
    let (res_tx, res_rx) = mpsc::channel::<(&'static str, bool)>();
    let spawn = |name: &'static str, f: Box<dyn FnOnce(&SqliteStorage) -> bool + Send>| {
        let (s, tx) = (s.clone(), res_tx.clone());
        std::thread::spawn(move || {
            let ok = f(&s);
            let _ = tx.send((name, ok));
        });
    };
    // Hold the writer in a job of its own, so that the next three queue
    // up and run as one group: an ordinary job, one that writes and then
    // panics, another ordinary job.
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (busy_tx, busy_rx) = mpsc::channel::<()>();
    spawn(
        "blocker",
        Box::new(move |s| {
            s.write(move |_| {
                let _ = busy_tx.send(());
                let _ = go_rx.recv();
                Ok(())
            })
            .is_ok()
        }),
    );
    busy_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    spawn(
        "before",
        Box::new(|s| s.insert_escrow(&id("b"), 100, b"x", 10).unwrap_or(false)),
    );
    wait_submitted(2);
    spawn(
        "panics",
        Box::new(|s| {
            s.write(|c| -> StorageResult<()> {
                c.execute(
                    "INSERT INTO escrow (id, expires, data) VALUES (?1, 100, x'00')",
                    params![id("p")],
                )?;
                panic!("a bug in a storage job");
            })
            .is_ok()
        }),
    );
    wait_submitted(3);
    spawn(
        "after",
        Box::new(|s| s.insert_escrow(&id("c"), 100, b"x", 10).unwrap_or(false)),
    );
    wait_submitted(4);
    go_tx.send(()).unwrap();
    let mut got: Vec<(&str, bool)> = (0..4)
        .map(|_| {
            res_rx
                .recv_timeout(Duration::from_secs(10))
                .expect("an answer, not a hang")
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("after", true),
            ("before", true),
            ("blocker", true),
            ("panics", false)
        ]
    );
    assert_eq!(
        *s.trace.groups.lock().unwrap(),
        [1, 3],
        "the panicking job shared its group with the others"
    );
    // Its write was rolled back; the others' were committed.
    assert!(matches!(
        s.get_escrow(&id("p"), 50).unwrap(),
        Lookup::Missing
    ));
    assert!(matches!(
        s.get_escrow(&id("b"), 50).unwrap(),
        Lookup::Found(_)
    ));
    assert!(matches!(
        s.get_escrow(&id("c"), 50).unwrap(),
        Lookup::Found(_)
    ));
    // The writer carries on, and the error says what happened, no more.
    let e = s
        .write(|_| -> StorageResult<()> { panic!("again") })
        .unwrap_err();
    assert!(e.to_string().contains("panicked"), "{e}");
    assert!(!e.to_string().contains("again"), "{e}");
    assert!(s.insert_escrow(&id("d"), 100, b"x", 10).unwrap());
    assert_eq!(s.counts().unwrap().escrows, 3);
}

#[test]
fn the_guessing_budget_pauses_then_freezes() {
    let s = SqliteStorage::in_memory().unwrap();
    let l = GuessLimits {
        window: 100,
        per_window: 3,
        lifetime: 5,
    };
    assert!(s.insert_escrow(&id("a"), 100_000, b"x", 10).unwrap());
    assert!(s.set_code(&id("a"), b"x", b"m", 100_000, 9).unwrap());
    let left = |left, in_window, lifetime, window_ends| CodeCheck::Wrong {
        left,
        guesses: GuessesLeft {
            in_window,
            lifetime,
            window_ends,
        },
    };
    assert_eq!(
        s.check_code(&id("a"), b"w", 1000, &l).unwrap(),
        left(8, 2, 4, 1100)
    );
    assert_eq!(
        s.check_code(&id("a"), b"w", 1050, &l).unwrap(),
        left(7, 1, 3, 1100)
    );
    assert_eq!(
        s.check_code(&id("a"), b"w", 1099, &l).unwrap(),
        left(6, 0, 2, 1100)
    );
    // The window is spent: nothing compared, not even the right code,
    // and nothing changes.
    for now in [1099, 1099] {
        assert_eq!(
            s.check_code(&id("a"), b"m", now, &l).unwrap(),
            CodeCheck::Paused { until: 1100 }
        );
    }
    let Lookup::Found(r) = s.get_escrow(&id("a"), 1099).unwrap() else {
        panic!()
    };
    assert_eq!(
        (r.frozen, r.guesses),
        (
            false,
            Guesses {
                window: 1000,
                in_window: 3,
                total: 3
            }
        )
    );
    assert_eq!(r.guesses.paused_until(&l, 1099), Some(1100));
    assert_eq!(r.guesses.paused_until(&l, 1100), None);
    // A new window opens with the next wrong guess; the 5th of its life
    // freezes it and voids its code.
    assert_eq!(
        s.check_code(&id("a"), b"w", 1100, &l).unwrap(),
        left(5, 2, 1, 1200)
    );
    assert_eq!(
        s.check_code(&id("a"), b"w", 1101, &l).unwrap(),
        left(0, 1, 0, 1200)
    );
    assert_eq!(s.counts().unwrap().codes, 0, "the code is void");
    for now in [1102, 5000, 99_999] {
        assert_eq!(
            s.check_code(&id("a"), b"m", now, &l).unwrap(),
            CodeCheck::Frozen
        );
    }
    assert!(matches!(s.get_escrow(&id("a"), 1200).unwrap(), Lookup::Found(r) if r.frozen));
    // No verification is counted for it, no code stored.
    assert_eq!(s.start_verification(&id("a"), 2000, 3600, 5).unwrap(), None);
    assert!(!s.set_code(&id("a"), b"x", b"m", 100_000, 3).unwrap());
    assert_eq!(s.counts().unwrap().codes, 0);
    // The right code, before the budget is spent, is not a wrong guess.
    assert!(s.insert_escrow(&id("b"), 100_000, b"x", 10).unwrap());
    assert!(s.set_code(&id("b"), b"x", b"m", 100_000, 3).unwrap());
    assert_eq!(
        s.check_code(&id("b"), b"m", 1000, &l).unwrap(),
        CodeCheck::Right
    );
    assert!(matches!(s.get_escrow(&id("b"), 1000).unwrap(),
        Lookup::Found(r) if r.guesses == Guesses::default()));
    // Nothing pending is not a guess either.
    assert_eq!(
        s.check_code(&id("b"), b"m", 1000, &l).unwrap(),
        CodeCheck::NoCode
    );
    assert!(matches!(s.get_escrow(&id("b"), 1000).unwrap(),
        Lookup::Found(r) if r.guesses == Guesses::default()));
}

#[test]
fn caps_on_escrows_held_and_free_escrows_a_day() {
    let s = SqliteStorage::in_memory().unwrap();
    let caps = Caps {
        max_escrows: 4,
        max_free_per_day: 2,
    };
    let day = 20_000 * 86_400;
    let free = |k: &str, now| {
        s.insert_escrow_capped(&id(k), now + 1000, b"x", None, &caps, now)
            .unwrap()
    };
    let t = |n: u8| Spend {
        hash: [n; 32],
        expires: day + 10 * 86_400,
    };
    let paid = |k: &str, n, now| {
        s.insert_escrow_capped(&id(k), now + 1000, b"x", Some(&t(n)), &caps, now)
            .unwrap()
    };
    let free_today = |now: i64| -> i64 {
        s.read(move |c| {
            Ok(c.query_row(
                "SELECT COALESCE((SELECT n FROM free_day WHERE day = ?1), 0)",
                params![now / 86_400],
                |r| r.get(0),
            )?)
        })
        .unwrap()
    };
    assert_eq!(free("a", day), Inserted::Stored);
    assert_eq!(free("a", day), Inserted::IdTaken);
    assert_eq!(free("b", day + 1), Inserted::Stored);
    assert_eq!(free("c", day + 2), Inserted::FreeCapReached);
    assert_eq!(free_today(day), 2, "refusals and taken ids are not counted");
    assert_eq!(
        paid("c", 1, day + 3),
        Inserted::Stored,
        "paid: not a free one"
    );
    assert_eq!(paid("d", 1, day + 3), Inserted::TokenSpent);
    assert_eq!(free("d", day + 86_400), Inserted::Stored, "a new day");
    assert_eq!(s.escrows_held().unwrap(), 4);
    // Full: refused before anything, the token not spent.
    assert_eq!(paid("e", 2, day + 86_401), Inserted::Full);
    assert_eq!(free("e", day + 86_401), Inserted::Full);
    assert_eq!(free_today(day + 86_400), 1);
    assert!(s.delete_escrow(&id("a")).unwrap());
    assert!(!s.delete_escrow(&id("a")).unwrap());
    assert_eq!(s.escrows_held().unwrap(), 3);
    assert_eq!(
        paid("e", 2, day + 86_402),
        Inserted::Stored,
        "its token was not spent"
    );
    assert_eq!(s.escrows_held().unwrap(), 4);
    // Expired escrows removed on reading, on reuse of their id, by the
    // sweep and by bulk import: the counter follows every path.
    let later = day + 86_400 + 1000;
    assert!(matches!(
        s.get_escrow(&id("b"), later).unwrap(),
        Lookup::Expired
    ));
    assert_eq!(s.escrows_held().unwrap(), 3);
    assert_eq!(
        free("c", later + 1),
        Inserted::Stored,
        "the expired c replaced"
    );
    assert_eq!(s.escrows_held().unwrap(), 3);
    assert_eq!(s.sweep(later + 5000).unwrap().escrows, 3);
    assert_eq!(s.escrows_held().unwrap(), 0);
    let rows: Vec<_> = (0..7)
        .map(|i| (id(&format!("r{i}")), later + 9000, vec![1]))
        .collect();
    assert_eq!(s.insert_escrows(&rows, later).unwrap(), 7);
    assert_eq!(s.escrows_held().unwrap(), 7);
    assert_eq!(s.counts().unwrap().escrows, 7);
    assert_eq!(free("z", later + 5000), Inserted::Full);
    // Old days are swept, yesterday's kept.
    assert_eq!(s.sweep(day + 3 * 86_400).unwrap().escrows, 7);
    assert_eq!(s.escrows_held().unwrap(), 0);
    let days: i64 = s
        .read(|c| Ok(c.query_row("SELECT COUNT(*) FROM free_day", [], |r| r.get(0))?))
        .unwrap();
    assert_eq!(days, 0);
}

#[test]
fn a_version_2_database_is_migrated_with_its_escrows_counted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v2.sqlite");
    let keys = Keys::derive(&Key32::from_bytes([3; 32]));
    old_database(
        &path,
        2,
        &keys,
        &[
            ("a", 100_000, b"x"),
            ("b", 100_000, b"x"),
            ("c", 100_000, b"x"),
        ],
        &[],
    );
    let s = SqliteStorage::open_migrating(&path, &keys).unwrap();
    assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(s.escrows_held().unwrap(), 3);
    let caps = Caps {
        max_escrows: 3,
        max_free_per_day: 10,
    };
    assert_eq!(
        s.insert_escrow_capped(&id("d"), 100_000, b"x", None, &caps, 10)
            .unwrap(),
        Inserted::Full
    );
}

#[test]
fn status_calls_are_counted_per_escrow_in_a_window() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    let s = SqliteStorage::open(&path).unwrap();
    for _ in 0..3 {
        assert!(s.count_status(&id("a"), 1000, 3600, 3).unwrap());
    }
    assert!(!s.count_status(&id("a"), 1001, 3600, 3).unwrap());
    // Another escrow has its own count.
    assert!(s.count_status(&id("b"), 1001, 3600, 3).unwrap());
    // Kept across a reopen (durable), then a new window starts afresh.
    drop(s);
    let s = SqliteStorage::open(&path).unwrap();
    assert!(!s.count_status(&id("a"), 4599, 3600, 3).unwrap());
    assert!(s.count_status(&id("a"), 4600, 3600, 3).unwrap());
    // A sweep removes counts whose window is over, nothing else.
    s.sweep(8200).unwrap();
    assert!(s.count_status(&id("a"), 8200, 3600, 1).unwrap());
    assert!(!s.count_status(&id("a"), 8201, 3600, 1).unwrap());
}

#[test]
fn a_version_2_database_gains_the_status_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v2.sqlite");
    let keys = Keys::derive(&Key32::from_bytes([3; 32]));
    old_database(&path, 2, &keys, &[("a", 100_000, b"x")], &[]);
    let s = SqliteStorage::open_migrating(&path, &keys).unwrap();
    let a = keys.stored_id("a");
    assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    match s.get_escrow(&a, 10).unwrap() {
        Lookup::Found(row) => assert!(!row.frozen),
        other => panic!("{other:?}"),
    }
    assert!(s.count_status(&a, 10, 3600, 1).unwrap());
}
