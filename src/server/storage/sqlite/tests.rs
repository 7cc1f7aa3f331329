//! Tests of the SQLite backend: the trait's contract, migrations, and
//! what callers hear when another process holds the file.

use super::super::schema::{SCHEMA_V1, SCHEMA_VERSION};
use super::*;

#[test]
fn escrows_codes_tokens() {
    let s = SqliteStorage::in_memory().unwrap();
    assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    assert!(s.insert_escrow("a", 100, b"x", 10).unwrap());
    assert!(!s.insert_escrow("a", 100, b"y", 10).unwrap());
    assert!(matches!(s.get_escrow("a", 50).unwrap(), Lookup::Found(r) if r.sealed == b"x"));
    // Window of 10 s, at most 2.
    let v = |id: &str, now| s.start_verification(id, now, 10, 2).unwrap();
    assert_eq!(v("a", 20), Some(Started { window: 20 }));
    assert!(s.set_code("a", b"x", b"m1", 60, 2).unwrap());
    assert_eq!(v("a", 21), Some(Started { window: 20 }));
    assert!(s.set_code("a", b"x", b"m2", 60, 2).unwrap());
    // A code requested before m2 but delivered after it: m2 stays.
    assert!(s.set_code("a", b"x", b"m0", 59, 2).unwrap());
    assert_eq!(v("a", 22), None);
    assert_eq!(v("nope", 30), None);
    assert!(
        !s.set_code("nope", b"x", b"m", 60, 2).unwrap(),
        "no escrow, no code"
    );
    // m2 replaced m1.
    assert_eq!(
        s.check_code("a", b"m1", 25).unwrap(),
        CodeCheck::Wrong { left: 1 }
    );
    assert_eq!(
        s.check_code("a", b"m3", 25).unwrap(),
        CodeCheck::Wrong { left: 0 }
    );
    assert_eq!(s.check_code("a", b"m2", 25).unwrap(), CodeCheck::Void);
    assert_eq!(v("a", 30), Some(Started { window: 30 }));
    assert!(s.set_code("a", b"x", b"m4", 60, 3).unwrap());
    assert_eq!(s.check_code("a", b"m4", 31).unwrap(), CodeCheck::Right);
    assert_eq!(s.check_code("a", b"m4", 31).unwrap(), CodeCheck::NoCode);
    assert!(s.set_code("a", b"x", b"m5", 60, 3).unwrap());
    assert_eq!(s.check_code("a", b"m5", 60).unwrap(), CodeCheck::Expired);
    assert_eq!(s.check_code("a", b"m5", 60).unwrap(), CodeCheck::NoCode);

    assert!(matches!(s.get_escrow("a", 100).unwrap(), Lookup::Expired));
    assert!(matches!(s.get_escrow("a", 100).unwrap(), Lookup::Missing));
    assert!(s.insert_escrow("b", 100, b"x", 10).unwrap());
    assert!(s.set_code("b", b"x", b"m", 200, 3).unwrap());
    assert!(s.delete_escrow("b").unwrap());
    assert_eq!(s.check_code("b", b"m", 50).unwrap(), CodeCheck::NoCode);
    assert!(s.insert_escrow("c", 100, b"x", 10).unwrap());
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
    let paid = |id: &str, now| s.insert_escrow_paid(id, 100, b"x", &t, now).unwrap();
    // A taken id spends nothing: the token still pays for another id.
    assert!(s.insert_escrow("a", 100, b"x", 10).unwrap());
    assert_eq!(paid("a", 10), Inserted::IdTaken);
    assert_eq!(paid("b", 11), Inserted::Stored);
    // Spent: nothing is stored, whatever the id.
    assert_eq!(paid("c", 20), Inserted::TokenSpent);
    assert!(matches!(s.get_escrow("c", 20).unwrap(), Lookup::Missing));
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
    assert!(s.insert_escrow_paid("a", 100, b"x", &t, 10).is_err());
    assert_eq!((rows("escrow"), rows("token")), (0, 0));
    exec("DROP TRIGGER no_escrow");
    // The token cannot be recorded: the escrow is not stored either.
    exec("CREATE TRIGGER no_token BEFORE INSERT ON token BEGIN SELECT RAISE(ABORT, 'disk full'); END");
    assert!(s.insert_escrow_paid("a", 100, b"x", &t, 10).is_err());
    assert_eq!((rows("escrow"), rows("token")), (0, 0));
    exec("DROP TRIGGER no_token");
    assert_eq!(
        s.insert_escrow_paid("a", 100, b"x", &t, 10).unwrap(),
        Inserted::Stored
    );
    assert_eq!((rows("escrow"), rows("token")), (1, 1));
}

#[test]
fn failed_deliveries_are_forgiven_up_to_a_bound() {
    let s = SqliteStorage::in_memory().unwrap();
    assert!(s.insert_escrow("a", 100_000, b"x", 10).unwrap());
    // At most 2 in a window of 100 s; at most 2 failures forgiven.
    let v = |now| s.start_verification("a", now, 100, 2).unwrap();
    let failed = |st| s.verification_failed("a", st, 2).unwrap();
    let first = v(10_020).unwrap();
    assert!(s.set_code("a", b"x", b"m1", 10_500, 3).unwrap());
    // Two failures in a row are both given back, and leave the
    // delivered code pending (protocol_tests runs them concurrently).
    let (x, y) = (v(10_021).unwrap(), v(10_022));
    assert_eq!(y, None, "the window is full while both are under way");
    assert!(failed(x));
    let y = v(10_023).unwrap();
    assert!(failed(y));
    assert_eq!(s.check_code("a", b"m1", 10_024).unwrap(), CodeCheck::Right);
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
    assert!(s.delete_escrow("a").unwrap());
    assert!(!s.set_code("a", b"x", b"m2", 10_900, 3).unwrap());
    assert!(s.insert_escrow("a", 100_000, b"y", 10_300).unwrap());
    assert!(!s.set_code("a", b"x", b"m2", 10_900, 3).unwrap());
    assert_eq!(s.counts().unwrap().codes, 0);
}

#[test]
fn a_version_1_database_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.sqlite");
    {
        let c = Connection::open(&path).unwrap();
        c.execute_batch(&format!(
            "BEGIN; {SCHEMA_V1} PRAGMA user_version = 1; COMMIT;"
        ))
        .unwrap();
        c.execute(
            "INSERT INTO escrow (id, expires, data, vwin, vcount) VALUES ('a', 100000, x'00', 10000, 2)",
            [],
        )
        .unwrap();
    }
    let s = SqliteStorage::open(&path).unwrap();
    assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    assert!(matches!(
        s.get_escrow("a", 10_010).unwrap(),
        Lookup::Found(_)
    ));
    // The old window's count is kept, and no failure was forgiven in it.
    assert_eq!(s.start_verification("a", 10_010, 100, 2).unwrap(), None);
    let st = s.start_verification("a", 10_011, 100, 3).unwrap().unwrap();
    assert_eq!(st.window, 10_000);
    assert!(s.verification_failed("a", st, 1).unwrap());
    // Opening it again (as a second process would) finds it migrated.
    drop(s);
    let s = SqliteStorage::open(&path).unwrap();
    assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
}

#[test]
fn while_another_process_holds_the_file_nothing_runs_and_each_caller_hears() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.sqlite");
    let s = SqliteStorage::open_waiting(&path, std::time::Duration::from_millis(50)).unwrap();
    let other = Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let e = s.insert_escrow("a", 100, b"x", 10).unwrap_err();
    assert!(
        e.0.starts_with("could not begin a transaction: database is locked"),
        "{e:?}"
    );
    other.execute_batch("COMMIT").unwrap();
    assert!(matches!(s.get_escrow("a", 50).unwrap(), Lookup::Missing));
    assert!(s.insert_escrow("a", 100, b"x", 10).unwrap());
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
    let rows: Vec<(String, i64, Vec<u8>)> = (0..12_345)
        .map(|i| {
            (
                format!("{i:032x}"),
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
}

/// (synced, unsynced) commits so far.
fn commits(s: &SqliteStorage) -> (usize, usize) {
    (
        s.trace.synced_commits.load(Ordering::SeqCst),
        s.trace.unsynced_commits.load(Ordering::SeqCst),
    )
}

#[test]
fn code_bookkeeping_is_synced_before_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStorage::open(&dir.path().join("db.sqlite")).unwrap();
    assert!(s.insert_escrow("a", 100_000, b"x", 10).unwrap());
    // Each call returns only once its own commit was made with
    // synchronous=FULL (the level read back from SQLite at commit time):
    // an attempt spent, a code used, a verification counted or forgiven
    // is on disk before the caller is answered.
    let synced = |what: &str, f: &dyn Fn()| {
        let (y0, n0) = commits(&s);
        f();
        let (y1, n1) = commits(&s);
        assert_eq!(n1, n0, "{what}: committed without a sync");
        assert!(y1 > y0, "{what}: no synced commit before the answer");
    };
    let st = std::cell::Cell::new(None);
    synced("start_verification", &|| {
        st.set(s.start_verification("a", 20, 3600, 5).unwrap())
    });
    synced("set_code", &|| {
        assert!(s.set_code("a", b"x", b"m1", 1000, 3).unwrap())
    });
    synced("check_code (wrong)", &|| {
        assert_eq!(
            s.check_code("a", b"zz", 30).unwrap(),
            CodeCheck::Wrong { left: 2 }
        )
    });
    synced("check_code (right)", &|| {
        assert_eq!(s.check_code("a", b"m1", 30).unwrap(), CodeCheck::Right)
    });
    synced("verification_failed", &|| {
        assert!(s.verification_failed("a", st.get().unwrap(), 2).unwrap())
    });
    synced("check_code (expired)", &|| {
        assert!(s.set_code("a", b"x", b"m2", 1000, 3).unwrap());
        assert_eq!(s.check_code("a", b"m2", 1000).unwrap(), CodeCheck::Expired)
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
        Box::new(|s| s.insert_escrow("b", 100, b"x", 10).unwrap_or(false)),
    );
    wait_submitted(2);
    spawn(
        "panics",
        Box::new(|s| {
            s.write(|c| -> StorageResult<()> {
                c.execute(
                    "INSERT INTO escrow (id, expires, data) VALUES ('p', 100, x'00')",
                    [],
                )?;
                panic!("a bug in a storage job");
            })
            .is_ok()
        }),
    );
    wait_submitted(3);
    spawn(
        "after",
        Box::new(|s| s.insert_escrow("c", 100, b"x", 10).unwrap_or(false)),
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
    assert!(matches!(s.get_escrow("p", 50).unwrap(), Lookup::Missing));
    assert!(matches!(s.get_escrow("b", 50).unwrap(), Lookup::Found(_)));
    assert!(matches!(s.get_escrow("c", 50).unwrap(), Lookup::Found(_)));
    // The writer carries on, and the error says what happened, no more.
    let e = s
        .write(|_| -> StorageResult<()> { panic!("again") })
        .unwrap_err();
    assert!(e.to_string().contains("panicked"), "{e}");
    assert!(!e.to_string().contains("again"), "{e}");
    assert!(s.insert_escrow("d", 100, b"x", 10).unwrap());
    assert_eq!(s.counts().unwrap().escrows, 3);
}

#[test]
fn status_calls_are_counted_per_escrow_in_a_window() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    let s = SqliteStorage::open(&path).unwrap();
    for _ in 0..3 {
        assert!(s.count_status("a", 1000, 3600, 3).unwrap());
    }
    assert!(!s.count_status("a", 1001, 3600, 3).unwrap());
    // Another escrow has its own count.
    assert!(s.count_status("b", 1001, 3600, 3).unwrap());
    // Kept across a reopen (durable), then a new window starts afresh.
    drop(s);
    let s = SqliteStorage::open(&path).unwrap();
    assert!(!s.count_status("a", 4599, 3600, 3).unwrap());
    assert!(s.count_status("a", 4600, 3600, 3).unwrap());
    // A sweep removes counts whose window is over, nothing else.
    s.sweep(8200).unwrap();
    assert!(s.count_status("a", 8200, 3600, 1).unwrap());
    assert!(!s.count_status("a", 8201, 3600, 1).unwrap());
}

#[test]
fn a_version_2_database_gains_the_status_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v2.sqlite");
    {
        let c = Connection::open(&path).unwrap();
        c.execute_batch(&format!(
            "BEGIN; {SCHEMA_V1} {} PRAGMA user_version = 2; COMMIT;",
            super::super::schema::SCHEMA_V2
        ))
        .unwrap();
        c.execute(
            "INSERT INTO escrow (id, expires, data) VALUES ('a', 100000, x'00')",
            [],
        )
        .unwrap();
    }
    let s = SqliteStorage::open(&path).unwrap();
    assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    match s.get_escrow("a", 10).unwrap() {
        Lookup::Found(row) => assert!(!row.frozen),
        other => panic!("{other:?}"),
    }
    assert!(s.count_status("a", 10, 3600, 1).unwrap());
}
