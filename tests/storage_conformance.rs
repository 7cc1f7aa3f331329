//! The storage contract, checked against every backend: each check below
//! is a function of a [`Db`] and runs once on a SQLite file and once on
//! its own PostgreSQL database (tests/common/pg.rs starts a real
//! server). A backend that passes them serves the protocol alike.
//!
//! [`Db::open`] opens another handle on the same database, as a second
//! instance (process) would: the concurrency checks race requests through
//! two handles and count what got through, so a limit kept in process
//! memory instead of the database fails them.
//!
//! A new method of `Storage` gets its checks here, in the `conformance!`
//! list at the bottom: both backends then run them.

mod common;

use std::sync::Barrier;

use common::pg;

use passcrow::server::storage::{
    BudgetLimit, Caps, Charge, Charged, CodeCheck, Counts, GuessLimits, Inserted, Lookup,
    ReleaseCancel, Spend, Started, Storage, StoredId, VerificationCharge, RELEASE_STOPPED,
};

/// A test's id as a stored id (its bytes, zero-padded to 32).
fn sid(s: &str) -> StoredId {
    let mut b = [0u8; 32];
    assert!(s.len() <= 32, "test id too long");
    b[..s.len()].copy_from_slice(s.as_bytes());
    StoredId::from_bytes(b)
}

/// A guessing budget too wide to matter, for the checks of the codes
/// themselves.
const LIMITS: GuessLimits = GuessLimits {
    window: 3600,
    per_window: 1000,
    lifetime: 1000,
};

/// One database of one backend, and how to open another handle on it.
struct Db {
    open: Box<dyn Fn() -> Box<dyn Storage>>,
    _dir: Option<tempfile::TempDir>,
}

impl Db {
    fn open(&self) -> Box<dyn Storage> {
        (self.open)()
    }
}

fn sqlite() -> Db {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    Db {
        open: Box::new(move || {
            Box::new(passcrow::server::storage::SqliteStorage::open(&path).unwrap())
        }),
        _dir: Some(dir),
    }
}

fn pg() -> Db {
    let c = pg::cluster();
    let url = c.new_database();
    let settings = c.settings();
    Db {
        open: Box::new(move || {
            Box::new(passcrow::server::storage::PostgresStorage::open(&url, &settings).unwrap())
        }),
        _dir: None,
    }
}

fn escrows_codes_tokens(db: &Db) {
    let s = db.open();
    assert!(s.insert_escrow(&sid("a"), 100, b"x", 10).unwrap());
    assert!(!s.insert_escrow(&sid("a"), 100, b"y", 10).unwrap());
    assert!(matches!(s.get_escrow(&sid("a"), 50).unwrap(), Lookup::Found(r) if r.sealed == b"x"));
    let v = |id: &str, now| s.start_verification(&sid(id), now, 10, 2).unwrap();
    assert_eq!(v("a", 20), Some(Started { window: 20 }));
    assert!(s.set_code(&sid("a"), b"x", b"m1", 60, 2).unwrap());
    assert_eq!(v("a", 21), Some(Started { window: 20 }));
    assert!(s.set_code(&sid("a"), b"x", b"m2", 60, 2).unwrap());
    // Requested before m2, delivered after it: m2 stays.
    assert!(s.set_code(&sid("a"), b"x", b"m0", 59, 2).unwrap());
    assert_eq!(v("a", 22), None);
    assert_eq!(v("nope", 30), None);
    assert!(!s.set_code(&sid("nope"), b"x", b"m", 60, 2).unwrap());
    assert!(
        !s.set_code(&sid("a"), b"other", b"m", 60, 2).unwrap(),
        "another escrow's data"
    );
    assert!(matches!(
        s.check_code(&sid("a"), b"m1", 25, &LIMITS).unwrap(),
        CodeCheck::Wrong { left: 1, .. }
    ));
    assert!(matches!(
        s.check_code(&sid("a"), b"m3", 25, &LIMITS).unwrap(),
        CodeCheck::Wrong { left: 0, .. }
    ));
    assert_eq!(
        s.check_code(&sid("a"), b"m2", 25, &LIMITS).unwrap(),
        CodeCheck::Void
    );
    assert_eq!(v("a", 30), Some(Started { window: 30 }));
    assert!(s.set_code(&sid("a"), b"x", b"m4", 60, 3).unwrap());
    assert_eq!(
        s.check_code(&sid("a"), b"m4", 31, &LIMITS).unwrap(),
        CodeCheck::Right
    );
    assert_eq!(
        s.check_code(&sid("a"), b"m4", 31, &LIMITS).unwrap(),
        CodeCheck::NoCode
    );
    assert!(s.set_code(&sid("a"), b"x", b"m5", 60, 3).unwrap());
    assert_eq!(
        s.check_code(&sid("a"), b"m5", 60, &LIMITS).unwrap(),
        CodeCheck::Expired
    );
    assert_eq!(
        s.check_code(&sid("a"), b"m5", 60, &LIMITS).unwrap(),
        CodeCheck::NoCode
    );
    assert!(matches!(
        s.get_escrow(&sid("a"), 100).unwrap(),
        Lookup::Expired
    ));
    assert!(matches!(
        s.get_escrow(&sid("a"), 100).unwrap(),
        Lookup::Missing
    ));
    assert!(s.insert_escrow(&sid("b"), 100, b"x", 10).unwrap());
    assert!(s.set_code(&sid("b"), b"x", b"m", 200, 3).unwrap());
    assert!(s.delete_escrow(&sid("b")).unwrap());
    assert!(!s.delete_escrow(&sid("b")).unwrap());
    assert_eq!(
        s.check_code(&sid("b"), b"m", 50, &LIMITS).unwrap(),
        CodeCheck::NoCode
    );
    assert!(s.insert_escrow(&sid("c"), 100, b"x", 10).unwrap());
    assert_eq!(
        s.counts().unwrap(),
        Counts {
            escrows: 1,
            codes: 0
        }
    );
    assert_eq!(s.sweep(100).unwrap().escrows, 1);
    assert_eq!(s.counts().unwrap(), Counts::default());
}

fn an_expired_escrow_gives_its_id_away_with_its_code(db: &Db) {
    let s = db.open();
    assert!(s.insert_escrow(&sid("a"), 100, b"old", 10).unwrap());
    assert!(s
        .start_verification(&sid("a"), 20, 3600, 5)
        .unwrap()
        .is_some());
    assert!(s.set_code(&sid("a"), b"old", b"m", 1000, 3).unwrap());
    // Expired at 100: the id is free again, and the old code is gone
    // with it (a new escrow cannot be opened with the old one's code).
    assert!(s.insert_escrow(&sid("a"), 5000, b"new", 100).unwrap());
    assert_eq!(
        s.check_code(&sid("a"), b"m", 101, &LIMITS).unwrap(),
        CodeCheck::NoCode
    );
    assert!(
        matches!(s.get_escrow(&sid("a"), 101).unwrap(), Lookup::Found(r) if r.sealed == b"new")
    );
    // Its verification count starts afresh (the old one's was spent).
    assert!(s
        .start_verification(&sid("a"), 102, 3600, 1)
        .unwrap()
        .is_some());
    assert_eq!(s.start_verification(&sid("a"), 103, 3600, 1).unwrap(), None);
}

fn a_paid_escrow_and_its_token_are_one_transaction(db: &Db) {
    let s = db.open();
    let t = Spend {
        hash: [7; 32],
        expires: 40,
    };
    let paid = |id: &str, now| s.insert_escrow_paid(&sid(id), 100, b"x", &t, now).unwrap();
    assert!(s.insert_escrow(&sid("a"), 100, b"x", 10).unwrap());
    assert_eq!(paid("a", 10), Inserted::IdTaken);
    assert_eq!(paid("b", 11), Inserted::Stored);
    assert_eq!(paid("c", 20), Inserted::TokenSpent);
    assert_eq!(
        paid("a", 20),
        Inserted::TokenSpent,
        "spent, whatever the id"
    );
    assert!(matches!(
        s.get_escrow(&sid("c"), 20).unwrap(),
        Lookup::Missing
    ));
    assert_eq!(s.counts().unwrap().escrows, 2);
    assert_eq!(paid("c", 40), Inserted::Stored, "its record expired");
    assert_eq!(s.sweep(39).unwrap().tokens, 0);
    assert_eq!(paid("d", 39), Inserted::TokenSpent);
    assert_eq!(s.sweep(100).unwrap().tokens, 1);
}

fn failed_deliveries_are_forgiven_up_to_a_bound(db: &Db) {
    let s = db.open();
    assert!(s.insert_escrow(&sid("a"), 100_000, b"x", 10).unwrap());
    let v = |now| s.start_verification(&sid("a"), now, 100, 2).unwrap();
    let failed = |st| s.verification_failed(&sid("a"), st, 2).unwrap();
    let first = v(10_020).unwrap();
    assert!(s.set_code(&sid("a"), b"x", b"m1", 10_500, 3).unwrap());
    let (x, y) = (v(10_021).unwrap(), v(10_022));
    assert_eq!(y, None);
    assert!(failed(x));
    let y = v(10_023).unwrap();
    assert!(failed(y));
    assert_eq!(
        s.check_code(&sid("a"), b"m1", 10_024, &LIMITS).unwrap(),
        CodeCheck::Right
    );
    let z = v(10_025).unwrap();
    assert!(!failed(z));
    assert_eq!(v(10_026), None);
    let w = v(10_200).unwrap();
    assert!(!failed(first), "first's window is over");
    assert_eq!(v(10_201), Some(Started { window: 10_200 }));
    assert_eq!(v(10_202), None);
    assert!(failed(w));
    assert!(v(10_203).is_some());
    assert!(s.delete_escrow(&sid("a")).unwrap());
    assert!(!s.set_code(&sid("a"), b"x", b"m2", 10_900, 3).unwrap());
    assert!(s.insert_escrow(&sid("a"), 100_000, b"y", 10_300).unwrap());
    assert!(!s.set_code(&sid("a"), b"x", b"m2", 10_900, 3).unwrap());
    assert_eq!(s.counts().unwrap().codes, 0);
}

fn sweep_in_slices_and_bulk_insert(db: &Db) {
    let s = db.open();
    let rows: Vec<(StoredId, i64, Vec<u8>)> = (0..12_345)
        .map(|i| {
            (
                sid(&format!("{i:032x}")),
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

/// Run `f(i, storage)` for i in 0..n on n threads, split between two
/// handles (two instances), all let go at once.
fn race<T: Send>(db: &Db, n: usize, f: impl Fn(usize, &dyn Storage) -> T + Sync) -> Vec<T> {
    let handles = [db.open(), db.open()];
    let barrier = Barrier::new(n);
    std::thread::scope(|sc| {
        let ts: Vec<_> = (0..n)
            .map(|i| {
                let (f, b, s) = (&f, &barrier, &*handles[i % 2]);
                sc.spawn(move || {
                    b.wait();
                    f(i, s)
                })
            })
            .collect();
        ts.into_iter().map(|t| t.join().unwrap()).collect()
    })
}

fn wrong_guesses_on_two_instances_spend_one_budget(db: &Db) {
    let s = db.open();
    assert!(s.insert_escrow(&sid("a"), 100_000, b"x", 10).unwrap());
    assert!(s
        .start_verification(&sid("a"), 20, 3600, 5)
        .unwrap()
        .is_some());
    assert!(s.set_code(&sid("a"), b"x", b"right", 10_000, 3).unwrap());
    // 12 wrong guesses at once, half through each instance: 3 are
    // counted (2, 1, 0 left), the rest find the code void.
    let got = race(db, 12, |i, s| {
        s.check_code(&sid("a"), format!("wrong{i}").as_bytes(), 30, &LIMITS)
            .unwrap()
    });
    let wrong: Vec<u32> = got
        .iter()
        .filter_map(|c| match c {
            CodeCheck::Wrong { left, .. } => Some(*left),
            _ => None,
        })
        .collect();
    let mut left = wrong.clone();
    left.sort();
    assert_eq!(left, [0, 1, 2], "{got:?}");
    assert!(
        got.iter().filter(|c| **c == CodeCheck::Void).count() == 9,
        "{got:?}"
    );
    assert_eq!(
        s.check_code(&sid("a"), b"right", 30, &LIMITS).unwrap(),
        CodeCheck::Void
    );
    // A fresh code for the legitimate user works.
    assert!(s
        .start_verification(&sid("a"), 40, 3600, 5)
        .unwrap()
        .is_some());
    assert!(s.set_code(&sid("a"), b"x", b"fresh", 10_000, 3).unwrap());
    assert_eq!(
        s.check_code(&sid("a"), b"fresh", 41, &LIMITS).unwrap(),
        CodeCheck::Right
    );
}

fn a_right_code_opens_once_across_instances(db: &Db) {
    let s = db.open();
    assert!(s.insert_escrow(&sid("a"), 100_000, b"x", 10).unwrap());
    assert!(s.set_code(&sid("a"), b"x", b"right", 10_000, 3).unwrap());
    let got = race(db, 8, |_, s| {
        s.check_code(&sid("a"), b"right", 30, &LIMITS).unwrap()
    });
    assert_eq!(
        got.iter().filter(|c| **c == CodeCheck::Right).count(),
        1,
        "{got:?}"
    );
    assert!(got
        .iter()
        .all(|c| matches!(c, CodeCheck::Right | CodeCheck::NoCode)));
}

fn verifications_per_window_hold_across_instances(db: &Db) {
    let s = db.open();
    assert!(s.insert_escrow(&sid("a"), 100_000, b"x", 10).unwrap());
    let got = race(db, 16, |i, s| {
        s.start_verification(&sid("a"), 100 + (i as i64 % 3), 3600, 5)
            .unwrap()
    });
    assert_eq!(got.iter().filter(|g| g.is_some()).count(), 5, "{got:?}");
    assert_eq!(s.start_verification(&sid("a"), 200, 3600, 5).unwrap(), None);
    // The next window, for the legitimate user.
    assert!(s
        .start_verification(&sid("a"), 3700, 3600, 5)
        .unwrap()
        .is_some());
}

fn one_token_pays_once_across_instances(db: &Db) {
    let t = Spend {
        hash: [3; 32],
        expires: 1_000_000,
    };
    let got = race(db, 12, |i, s| {
        s.insert_escrow_paid(&sid(&format!("id{i}")), 100_000, b"x", &t, 10)
            .unwrap()
    });
    assert_eq!(
        got.iter().filter(|g| **g == Inserted::Stored).count(),
        1,
        "{got:?}"
    );
    assert!(got
        .iter()
        .all(|g| matches!(g, Inserted::Stored | Inserted::TokenSpent)));
    assert_eq!(db.open().counts().unwrap().escrows, 1);
}

fn one_id_is_stored_once_across_instances(db: &Db) {
    let got = race(db, 10, |i, s| {
        s.insert_escrow(&sid("same"), 100_000, format!("data{i}").as_bytes(), 10)
            .unwrap()
    });
    assert_eq!(got.iter().filter(|g| **g).count(), 1, "{got:?}");
    // Paid ones: one token each, one id: one stored, no token spent by
    // the others (each can pay for another id afterwards).
    let got = race(db, 6, |i, s| {
        let t = Spend {
            hash: [i as u8 + 10; 32],
            expires: 1_000_000,
        };
        s.insert_escrow_paid(&sid("paid"), 100_000, b"x", &t, 10)
            .unwrap()
    });
    assert_eq!(
        got.iter().filter(|g| **g == Inserted::Stored).count(),
        1,
        "{got:?}"
    );
    let s = db.open();
    let mut stored_again = 0;
    for (i, g) in got.iter().enumerate() {
        let t = Spend {
            hash: [i as u8 + 10; 32],
            expires: 1_000_000,
        };
        let r = s
            .insert_escrow_paid(&sid(&format!("other{i}")), 100_000, b"x", &t, 10)
            .unwrap();
        match g {
            Inserted::IdTaken => {
                assert_eq!(r, Inserted::Stored, "a refused request spent its token");
                stored_again += 1;
            }
            _ => assert_eq!(r, Inserted::TokenSpent),
        }
    }
    assert_eq!(stored_again, 5);
}

fn a_code_delivered_while_its_escrow_is_deleted_does_not_outlive_it(db: &Db) {
    let s = db.open();
    for round in 0..20 {
        let id = format!("r{round}");
        assert!(s.insert_escrow(&sid(&id), 100_000, b"x", 10).unwrap());
        race(db, 2, |i, s| {
            if i == 0 {
                let _ = s.set_code(&sid(&id), b"x", b"m", 10_000, 3).unwrap();
            } else {
                assert!(s.delete_escrow(&sid(&id)).unwrap());
            }
        });
        assert_eq!(
            s.check_code(&sid(&id), b"m", 20, &LIMITS).unwrap(),
            CodeCheck::NoCode,
            "round {round}"
        );
    }
    assert_eq!(s.counts().unwrap(), Counts::default());
}

/// A budget of 3 wrong guesses an hour and 5 a life.
const TIGHT: GuessLimits = GuessLimits {
    window: 3600,
    per_window: 3,
    lifetime: 5,
};

fn the_guessing_budget_pauses_then_freezes(db: &Db) {
    let s = db.open();
    let a = sid("a");
    assert!(s.insert_escrow(&a, 1_000_000, b"x", 10).unwrap());
    let Lookup::Found(r) = s.get_escrow(&a, 11).unwrap() else {
        panic!("stored")
    };
    assert_eq!((r.created, r.frozen, r.guesses.total), (10, false, 0));
    let code = |now| {
        assert!(s.start_verification(&a, now, 1, 1000).unwrap().is_some());
        assert!(s.set_code(&a, b"x", b"right", now + 9000, 100).unwrap());
    };
    code(100);
    for (i, now) in [100, 101, 102].into_iter().enumerate() {
        match s.check_code(&a, b"wrong", now, &TIGHT).unwrap() {
            CodeCheck::Wrong { guesses, .. } => {
                assert_eq!(guesses.in_window, 2 - i as u32);
                assert_eq!(guesses.lifetime, 4 - i as u32);
                assert_eq!(guesses.window_ends, 100 + 3600);
            }
            other => panic!("{other:?}"),
        }
    }
    // Paused: even the right code is not compared, nothing is spent.
    assert_eq!(
        s.check_code(&a, b"right", 103, &TIGHT).unwrap(),
        CodeCheck::Paused { until: 3700 }
    );
    let Lookup::Found(r) = s.get_escrow(&a, 104).unwrap() else {
        panic!("stored")
    };
    assert_eq!(
        (r.guesses.window, r.guesses.in_window, r.guesses.total),
        (100, 3, 3)
    );
    // The next window: the owner gets in with the right code.
    assert_eq!(
        s.check_code(&a, b"right", 3700, &TIGHT).unwrap(),
        CodeCheck::Right
    );
    code(3800);
    assert!(matches!(
        s.check_code(&a, b"wrong", 3801, &TIGHT).unwrap(),
        CodeCheck::Wrong { .. }
    ));
    // The fifth wrong guess of its life freezes it for good.
    assert!(matches!(
        s.check_code(&a, b"wrong", 3802, &TIGHT).unwrap(),
        CodeCheck::Wrong { left: 0, .. }
    ));
    assert_eq!(
        s.check_code(&a, b"right", 3803, &TIGHT).unwrap(),
        CodeCheck::Frozen
    );
    let Lookup::Found(r) = s.get_escrow(&a, 3804).unwrap() else {
        panic!("stored")
    };
    assert!(r.frozen);
    assert_eq!(r.guesses.total, 5);
    assert_eq!(s.start_verification(&a, 9000, 1, 1000).unwrap(), None);
    assert!(!s.set_code(&a, b"x", b"m", 9900, 3).unwrap());
    assert_eq!(s.counts().unwrap().codes, 0, "its code is void");
    assert_eq!(
        s.check_code(&sid("none"), b"m", 10, &TIGHT).unwrap(),
        CodeCheck::NoCode
    );
}

fn a_guessing_window_holds_across_instances(db: &Db) {
    let s = db.open();
    let a = sid("a");
    assert!(s.insert_escrow(&a, 1_000_000, b"x", 10).unwrap());
    assert!(s.set_code(&a, b"x", b"right", 10_000, 100).unwrap());
    let got = race(db, 12, |i, s| {
        s.check_code(&a, format!("wrong{i}").as_bytes(), 30, &TIGHT)
            .unwrap()
    });
    let wrong = got
        .iter()
        .filter(|c| matches!(c, CodeCheck::Wrong { .. }))
        .count();
    assert_eq!(wrong, 3, "{got:?}");
    assert!(got
        .iter()
        .all(|c| matches!(c, CodeCheck::Wrong { .. } | CodeCheck::Paused { .. })));
    let Lookup::Found(r) = s.get_escrow(&a, 31).unwrap() else {
        panic!("stored")
    };
    assert_eq!((r.guesses.in_window, r.guesses.total), (3, 3));
    assert_eq!(
        s.check_code(&a, b"right", 3630, &TIGHT).unwrap(),
        CodeCheck::Right
    );
}

fn caps_on_escrows_held_and_free_ones_a_day(db: &Db) {
    let s = db.open();
    let caps = Caps {
        max_escrows: 3,
        max_free_per_day: 2,
    };
    let day = 86_400 * 100;
    let tok = |b: u8| Spend {
        hash: [b; 32],
        expires: day * 10,
    };
    let free = |id: &str, now| {
        s.insert_escrow_capped(&sid(id), day + 5000, b"x", None, &caps, now)
            .unwrap()
    };
    assert_eq!(free("a", day), Inserted::Stored);
    assert_eq!(free("a", day), Inserted::IdTaken);
    assert_eq!(free("b", day + 1), Inserted::Stored);
    assert_eq!(free("c", day + 2), Inserted::FreeCapReached);
    assert!(matches!(
        s.get_escrow(&sid("c"), day + 3).unwrap(),
        Lookup::Missing
    ));
    // Paid ones are not counted against the free cap.
    let paid = s
        .insert_escrow_capped(&sid("p"), day * 3, b"x", Some(&tok(1)), &caps, day + 3)
        .unwrap();
    assert_eq!(paid, Inserted::Stored);
    // Full: refused free and paid, the token not spent.
    assert_eq!(free("d", day + 86_400), Inserted::Full);
    let full = s
        .insert_escrow_capped(&sid("q"), day * 3, b"x", Some(&tok(2)), &caps, day + 4)
        .unwrap();
    assert_eq!(full, Inserted::Full);
    // A deletion frees a place; the token refused above still pays.
    assert!(s.delete_escrow(&sid("a")).unwrap());
    let again = s
        .insert_escrow_capped(&sid("q"), day * 3, b"x", Some(&tok(2)), &caps, day + 5)
        .unwrap();
    assert_eq!(again, Inserted::Stored);
    // The sweep frees places too (a and b expire at day + 5000), and
    // the next day has its own free count.
    assert_eq!(free("e", day + 6), Inserted::Full);
    assert_eq!(s.sweep(day + 5000).unwrap().escrows, 1);
    assert_eq!(free("e", day + 5001), Inserted::FreeCapReached);
    assert_eq!(free("e", day + 86_400), Inserted::Stored);
    assert_eq!(s.counts().unwrap().escrows, 3);
}

fn the_last_places_are_taken_once_across_instances(db: &Db) {
    let caps = Caps {
        max_escrows: 5,
        max_free_per_day: 3,
    };
    let got = race(db, 12, |i, s| {
        s.insert_escrow_capped(&sid(&format!("f{i}")), 100_000, b"x", None, &caps, 10)
            .unwrap()
    });
    let stored = got.iter().filter(|g| **g == Inserted::Stored).count();
    assert_eq!(stored, 3, "free ones a day: {got:?}");
    let got = race(db, 12, |i, s| {
        let t = Spend {
            hash: [i as u8 + 1; 32],
            expires: 1_000_000,
        };
        s.insert_escrow_capped(&sid(&format!("p{i}")), 100_000, b"x", Some(&t), &caps, 10)
            .unwrap()
    });
    let stored = got.iter().filter(|g| **g == Inserted::Stored).count();
    assert_eq!(stored, 2, "places held: {got:?}");
    assert!(got
        .iter()
        .all(|g| matches!(g, Inserted::Stored | Inserted::Full)));
    assert_eq!(db.open().counts().unwrap().escrows, 5);
}

/// A token that pays for thread `i`'s `k`th escrow (no two alike).
fn token(i: usize, k: usize, expires: i64) -> Spend {
    let mut hash = [0xa5; 32];
    hash[..8].copy_from_slice(&(i as u64).to_be_bytes());
    hash[8..16].copy_from_slice(&(k as u64).to_be_bytes());
    Spend { hash, expires }
}

/// Many more inserts than either cap allows race through two handles,
/// free and paid ones, well past both caps (a PostgreSQL backend that
/// decides far from a cap without a lock and near it with one crosses
/// from one to the other on the way): exactly `max_escrows` are held,
/// never more free ones than the day's cap, every refusal names a cap
/// that was reached, and the count is the rows.
fn the_caps_hold_exactly_when_many_inserts_race_past_them(db: &Db) {
    let caps = Caps {
        max_escrows: 400,
        max_free_per_day: 220,
    };
    let now = 86_400 * 300 + 7;
    let got = race(db, 20, |i, s| {
        (0..25)
            .map(|k| {
                let id = sid(&format!("r{i}-{k}"));
                let spend = (i % 2 == 1).then(|| token(i, k, now * 2));
                let r = s
                    .insert_escrow_capped(&id, now + 100_000, b"x", spend.as_ref(), &caps, now)
                    .unwrap();
                (spend.is_none(), r)
            })
            .collect::<Vec<_>>()
    });
    let all: Vec<_> = got.into_iter().flatten().collect();
    let stored = |free: bool| {
        all.iter()
            .filter(|(f, r)| *f == free && *r == Inserted::Stored)
            .count()
    };
    let (free, paid) = (stored(true), stored(false));
    assert_eq!(free + paid, 400, "{free} free and {paid} paid stored");
    assert!(free <= 220, "{free} free stored");
    for (f, r) in &all {
        match r {
            Inserted::Stored | Inserted::Full => {}
            Inserted::FreeCapReached if *f => assert_eq!(free, 220),
            other => panic!("{other:?}"),
        }
    }
    let s = db.open();
    assert_eq!(s.counts().unwrap().escrows, 400);
    let again = s
        .insert_escrow_capped(
            &sid("late"),
            now + 9,
            b"x",
            Some(&token(99, 0, now * 2)),
            &caps,
            now,
        )
        .unwrap();
    assert_eq!(again, Inserted::Full);
}

/// Far from the caps, inserts and deletions race through two handles
/// (each deletion counted wherever its session counts it): afterwards
/// the escrows held and the day's free escrows are counted exactly, so
/// a cap just above them takes exactly the places left.
fn far_from_the_caps_racing_inserts_and_deletions_keep_exact_counts(db: &Db) {
    let far = Caps {
        max_escrows: 1_000_000,
        max_free_per_day: 1_000_000,
    };
    let now = 86_400 * 301 + 7;
    let kept = race(db, 16, |i, s| {
        let mut kept = 0u64;
        for k in 0..20 {
            let id = sid(&format!("m{i}-{k}"));
            let spend = (i % 2 == 1).then(|| token(i, k, now * 2));
            let r = s
                .insert_escrow_capped(&id, now + 100_000, b"x", spend.as_ref(), &far, now)
                .unwrap();
            assert_eq!(r, Inserted::Stored);
            if k % 4 == 0 {
                assert!(s.delete_escrow(&id).unwrap());
            } else {
                kept += 1;
            }
        }
        kept
    });
    let held: u64 = kept.iter().sum();
    assert_eq!(held, 16 * 15);
    let s = db.open();
    assert_eq!(s.counts().unwrap().escrows, held);
    // Two places left: two paid escrows are stored, the third is refused.
    let near = Caps {
        max_escrows: held + 2,
        max_free_per_day: 1_000_000,
    };
    let paid = |n: usize| {
        s.insert_escrow_capped(
            &sid(&format!("p{n}")),
            now + 100_000,
            b"x",
            Some(&token(100, n, now * 2)),
            &near,
            now,
        )
        .unwrap()
    };
    assert_eq!(paid(0), Inserted::Stored);
    assert_eq!(paid(1), Inserted::Stored);
    assert_eq!(paid(2), Inserted::Full);
    // 8 threads made 20 free escrows each today (deleting one gives no
    // place back): a cap of 161 takes one more.
    let day = Caps {
        max_escrows: 1_000_000,
        max_free_per_day: 161,
    };
    let free = |id: &str| {
        s.insert_escrow_capped(&sid(id), now + 100_000, b"x", None, &day, now)
            .unwrap()
    };
    assert_eq!(free("f0"), Inserted::Stored);
    assert_eq!(free("f1"), Inserted::FreeCapReached);
    assert_eq!(s.counts().unwrap().escrows, held + 3);
}

/// A budget; `all` is the server-wide one (shared by every recipient).
fn budget(scope: &str, window: i64, limit: u32, reserve: u32) -> BudgetLimit {
    BudgetLimit {
        scope: scope.into(),
        window,
        limit,
        reserve,
        shared: scope == "all",
    }
}

fn delivery_budgets_refunds_and_suppression(db: &Db) {
    let s = db.open();
    let charge = |limits: Vec<BudgetLimit>, reserve_ok, force| Charge {
        recipient: [9; 16],
        limits,
        reserve_ok,
        force,
    };
    let two = || vec![budget("r:x", 100, 2, 0), budget("all", 1000, 3, 1)];
    let Charged::Counted(c1) = s.charge_delivery(&charge(two(), false, false), 10).unwrap() else {
        panic!("counted")
    };
    assert_eq!(c1.len(), 2);
    assert_eq!((c1[0].start, c1[0].used, c1[0].reserve), (10, 1, false));
    assert!(matches!(
        s.charge_delivery(&charge(two(), false, false), 11).unwrap(),
        Charged::Counted(_)
    ));
    // The recipient's budget is spent: refused, the server-wide one not
    // counted either.
    assert_eq!(
        s.charge_delivery(&charge(two(), false, false), 12).unwrap(),
        Charged::Over(0)
    );
    // A refund gives one back, in its window.
    s.refund_delivery(&c1).unwrap();
    let Charged::Counted(c3) = s.charge_delivery(&charge(two(), false, false), 13).unwrap() else {
        panic!("refunded")
    };
    assert_eq!((c3[0].used, c3[1].used), (2, 2), "the refund of both");
    // The server-wide budget is spent: its reserve serves alerts once.
    let all = || vec![budget("all", 1000, 3, 1)];
    assert!(matches!(
        s.charge_delivery(&charge(all(), false, false), 14).unwrap(),
        Charged::Counted(_)
    ));
    assert_eq!(
        s.charge_delivery(&charge(all(), false, false), 14).unwrap(),
        Charged::Over(0)
    );
    let Charged::Counted(r) = s.charge_delivery(&charge(all(), true, false), 15).unwrap() else {
        panic!("reserve")
    };
    assert!(r[0].reserve);
    assert_eq!(
        s.charge_delivery(&charge(all(), true, false), 16).unwrap(),
        Charged::Over(0)
    );
    s.refund_delivery(&r).unwrap();
    assert!(matches!(
        s.charge_delivery(&charge(all(), true, false), 17).unwrap(),
        Charged::Counted(_)
    ));
    // Forced (an owner's notice) counts past the limit.
    let Charged::Counted(f) = s.charge_delivery(&charge(all(), false, true), 18).unwrap() else {
        panic!("forced")
    };
    assert_eq!(f[0].used, 4);
    // A new window starts with its first message.
    let Charged::Counted(n) = s
        .charge_delivery(&charge(all(), false, false), 1010)
        .unwrap()
    else {
        panic!("new window")
    };
    assert_eq!((n[0].start, n[0].used), (1010, 1));
    // A refund of an ended window changes nothing.
    s.refund_delivery(&f).unwrap();
    // Suppression.
    assert!(!s.is_suppressed(&[9; 16]).unwrap());
    assert!(s.suppress(&[9; 16], 20).unwrap());
    assert!(!s.suppress(&[9; 16], 21).unwrap(), "already on the list");
    assert!(s.is_suppressed(&[9; 16]).unwrap());
    assert!(!s.is_suppressed(&[8; 16]).unwrap());
    assert_eq!(
        s.charge_delivery(&charge(all(), true, true), 1011).unwrap(),
        Charged::Suppressed
    );
    let other = Charge {
        recipient: [8; 16],
        ..charge(all(), false, false)
    };
    let Charged::Counted(n) = s.charge_delivery(&other, 1012).unwrap() else {
        panic!("counted")
    };
    assert_eq!(n[0].used, 2, "the suppressed one counted nothing");
}

/// A message over both its recipient's budget and the server's is refused
/// by the recipient's (the first in `limits`), as in one transaction; over
/// the server's alone, by the server's; neither refusal counts anything.
fn a_refusal_names_the_first_budget_spent(db: &Db) {
    let s = db.open();
    let charge = |recipient: u8| Charge {
        recipient: [recipient; 16],
        limits: vec![budget("r:x", 3600, 1, 0), budget("all", 3600, 2, 0)],
        reserve_ok: false,
        force: false,
    };
    assert!(matches!(
        s.charge_delivery(&charge(1), 10).unwrap(),
        Charged::Counted(_)
    ));
    assert_eq!(s.charge_delivery(&charge(1), 11).unwrap(), Charged::Over(0));
    let other = Charge {
        limits: vec![budget("r:y", 3600, 5, 0), budget("all", 3600, 2, 0)],
        ..charge(2)
    };
    assert!(matches!(
        s.charge_delivery(&other, 12).unwrap(),
        Charged::Counted(_)
    ));
    // Both spent now: the recipient's is named.
    assert_eq!(s.charge_delivery(&charge(1), 13).unwrap(), Charged::Over(0));
    // The server's alone: named.
    assert_eq!(s.charge_delivery(&other, 14).unwrap(), Charged::Over(1));
    let v = sid("v");
    assert!(s.insert_escrow(&v, 100_000, b"x", 10).unwrap());
    assert_eq!(
        s.charge_and_start_verification(&other, &v, 15, 3600, 5)
            .unwrap(),
        VerificationCharge::Refused(Charged::Over(1))
    );
    // Nothing was counted by the refusals: the verification's place is
    // free, and a new hour has the server's whole budget.
    assert!(s.start_verification(&v, 16, 3600, 1).unwrap().is_some());
    let third = Charge {
        limits: vec![budget("r:z", 3600, 5, 0), budget("all", 3600, 2, 0)],
        ..charge(3)
    };
    let Charged::Counted(c) = s.charge_delivery(&third, 3610).unwrap() else {
        panic!("a new hour")
    };
    assert_eq!((c[0].used, c[1].used), (1, 1));
}

fn a_delivery_budget_holds_across_instances(db: &Db) {
    let got = race(db, 12, |i, s| {
        let c = Charge {
            recipient: [i as u8; 16],
            limits: vec![budget("r:same", 3600, 100, 0), budget("all", 3600, 4, 0)],
            reserve_ok: false,
            force: false,
        };
        s.charge_delivery(&c, 10).unwrap()
    });
    let counted = got
        .iter()
        .filter(|g| matches!(g, Charged::Counted(_)))
        .count();
    assert_eq!(counted, 4, "{got:?}");
    assert!(got
        .iter()
        .all(|g| matches!(g, Charged::Counted(_) | Charged::Over(1))));
}

/// How many messages the budget `all` (limit 1000 an hour) has counted at
/// `now`: one more charge's count, less that one.
fn counted_so_far(s: &dyn Storage, now: i64) -> u32 {
    let c = Charge {
        recipient: [7; 16],
        limits: vec![budget("all", 3600, 1000, 0)],
        reserve_ok: false,
        force: false,
    };
    let Charged::Counted(n) = s.charge_delivery(&c, now).unwrap() else {
        panic!("counted")
    };
    n[0].used - 1
}

fn a_code_and_its_verification_count_together_or_not_at_all(db: &Db) {
    let s = db.open();
    let charge = |recipient_limit| Charge {
        recipient: [9; 16],
        limits: vec![
            budget("r:x", 3600, recipient_limit, 0),
            budget("all", 3600, 1000, 0),
        ],
        reserve_ok: false,
        force: false,
    };
    let (v, w) = (sid("v"), sid("w"));
    assert!(s.insert_escrow(&v, 100_000, b"x", 10).unwrap());
    assert!(s.insert_escrow(&w, 100_000, b"x", 10).unwrap());
    // Two of two in the escrow's hour: both counted, message and hour.
    for used in 1..=2 {
        let VerificationCharge::Started(counted, started) = s
            .charge_and_start_verification(&charge(10), &v, 20, 3600, 2)
            .unwrap()
        else {
            panic!("started")
        };
        assert_eq!((counted[0].used, counted[1].used), (used, used));
        assert_eq!(started.window, 0, "the escrow's first window");
    }
    // The hour is full: refused, and the message is not counted either.
    assert_eq!(
        s.charge_and_start_verification(&charge(10), &v, 21, 3600, 2)
            .unwrap(),
        VerificationCharge::WindowFull
    );
    assert_eq!(
        counted_so_far(&*s, 22),
        2,
        "the refused one charged nothing"
    );
    // No such escrow, or a frozen one: the same.
    assert_eq!(
        s.charge_and_start_verification(&charge(10), &sid("none"), 23, 3600, 2)
            .unwrap(),
        VerificationCharge::WindowFull
    );
    assert_eq!(counted_so_far(&*s, 24), 3, "only the probe itself");
    // The recipient's budget is spent: the charge's refusal, reported
    // first, and no verification counted (w's single place is still free).
    assert_eq!(
        s.charge_and_start_verification(&charge(2), &w, 25, 3600, 1)
            .unwrap(),
        VerificationCharge::Refused(Charged::Over(0))
    );
    assert!(s.start_verification(&w, 26, 3600, 1).unwrap().is_some());
    // A failed delivery's refund gives the message back as before (an
    // hour later: new windows, the message the first of its own).
    let VerificationCharge::Started(counted, _) = s
        .charge_and_start_verification(&charge(10), &v, 3620, 3600, 2)
        .unwrap()
    else {
        panic!("a new hour")
    };
    s.refund_delivery(&counted).unwrap();
    assert_eq!(counted[0].used, 1);
    let VerificationCharge::Started(again, _) = s
        .charge_and_start_verification(&charge(10), &v, 3621, 3600, 2)
        .unwrap()
    else {
        panic!("the second of the new hour")
    };
    assert_eq!(again[0].used, 1, "the refund gave it back");
}

fn a_code_and_its_verification_hold_across_instances(db: &Db) {
    let s = db.open();
    let v = sid("v");
    assert!(s.insert_escrow(&v, 100_000, b"x", 10).unwrap());
    let got = race(db, 12, |i, s| {
        let c = Charge {
            recipient: [i as u8; 16],
            limits: vec![budget("r:same", 3600, 100, 0), budget("all", 3600, 1000, 0)],
            reserve_ok: false,
            force: false,
        };
        s.charge_and_start_verification(&c, &v, 20, 3600, 4)
            .unwrap()
    });
    let started = got
        .iter()
        .filter(|g| matches!(g, VerificationCharge::Started(..)))
        .count();
    assert_eq!(started, 4, "{got:?}");
    assert!(got.iter().all(|g| matches!(
        g,
        VerificationCharge::Started(..) | VerificationCharge::WindowFull
    )));
    assert_eq!(counted_so_far(&*s, 30), 4, "the 8 refused charged nothing");
}

fn status_calls_are_counted_per_window(db: &Db) {
    let s = db.open();
    let a = sid("a");
    assert!(s.count_status(&a, 10, 3600, 2).unwrap());
    assert!(s.count_status(&a, 11, 3600, 2).unwrap());
    assert!(!s.count_status(&a, 12, 3600, 2).unwrap());
    assert!(
        s.count_status(&sid("b"), 12, 3600, 2).unwrap(),
        "per escrow"
    );
    assert!(
        s.count_status(&a, 3610, 3600, 2).unwrap(),
        "the next window"
    );
    let got = race(db, 12, |_, s| s.count_status(&a, 3620, 3600, 5).unwrap());
    assert_eq!(got.iter().filter(|g| **g).count(), 4, "{got:?}");
    s.sweep(7210).unwrap();
    assert!(s.count_status(&a, 7210, 3600, 1).unwrap());
}

/// Authenticator codes (schema 7): a step is taken only while a window
/// is pending and only if later than the last step taken, which is kept
/// (on another handle too); a step not later, or none, is a wrong guess
/// of the same budget; many racing the same step take it once.
fn totp_steps_open_once_and_spend_the_budget(db: &Db) {
    let s = db.open();
    let a = sid("a");
    assert!(s.insert_escrow(&a, 100_000, b"x", 10).unwrap());
    // Nothing pending (no verify): nothing compared, nothing spent.
    assert_eq!(
        s.check_totp(&a, Some(5), 20, &LIMITS).unwrap(),
        CodeCheck::NoCode
    );
    assert!(s.set_code(&a, b"x", b"mark", 1000, 3).unwrap());
    assert_eq!(
        s.check_totp(&a, Some(5), 20, &LIMITS).unwrap(),
        CodeCheck::Right
    );
    // The window is consumed; a new one does not take step 5 again, nor 4.
    assert!(s.set_code(&a, b"x", b"mark", 1000, 3).unwrap());
    let other = db.open();
    for (step, left) in [(Some(5), 2), (Some(4), 1), (None, 0)] {
        match other.check_totp(&a, step, 30, &LIMITS).unwrap() {
            CodeCheck::Wrong { left: l, guesses } => {
                assert_eq!(l, left, "{step:?}");
                assert_eq!(guesses.lifetime, LIMITS.lifetime - (3 - left), "{step:?}");
            }
            c => panic!("{step:?}: {c:?}"),
        }
    }
    assert_eq!(
        s.check_totp(&a, Some(6), 30, &LIMITS).unwrap(),
        CodeCheck::Void
    );
    // A window that expired takes nothing.
    let b = sid("b");
    assert!(s.insert_escrow(&b, 100_000, b"y", 10).unwrap());
    assert!(s.set_code(&b, b"y", b"mark", 40, 3).unwrap());
    assert_eq!(
        s.check_totp(&b, Some(6), 40, &LIMITS).unwrap(),
        CodeCheck::Expired
    );
    // Step 6 raced through two handles: taken once, the rest wrong or
    // finding the window gone.
    assert!(s.set_code(&a, b"x", b"mark", 1000, 20).unwrap());
    let got = race(db, 8, |_, s| {
        s.check_totp(&a, Some(6), 50, &LIMITS).unwrap()
    });
    assert_eq!(
        got.iter().filter(|c| **c == CodeCheck::Right).count(),
        1,
        "{got:?}"
    );
    assert!(got
        .iter()
        .all(|c| matches!(c, CodeCheck::Right | CodeCheck::NoCode)));
    // The budget of sent codes holds: a frozen escrow takes no step.
    let tight = GuessLimits {
        window: 3600,
        per_window: 10,
        lifetime: 4,
    };
    assert!(s.set_code(&a, b"x", b"mark", 1000, 3).unwrap());
    assert!(matches!(
        s.check_totp(&a, None, 60, &tight).unwrap(),
        CodeCheck::Wrong { guesses, .. } if guesses.lifetime == 0
    ));
    assert!(!s.set_code(&a, b"x", b"mark", 1000, 3).unwrap());
    assert_eq!(
        s.check_totp(&a, Some(9), 70, &tight).unwrap(),
        CodeCheck::Frozen
    );
}

/// The release delay (schema 8): started once, read by its cancel hash,
/// undone, stopped for good only before it is due, and one stop wins when
/// many race.
fn releases_start_stop_and_race(db: &Db) {
    let s = db.open();
    let (a, b) = (sid("a"), sid("b"));
    assert!(s.insert_escrow(&a, 100_000, b"x", 10).unwrap());
    assert!(s.insert_escrow(&b, 100_000, b"y", 10).unwrap());
    let due = |s: &dyn Storage, id| match s.get_escrow(id, 20).unwrap() {
        Lookup::Found(r) => r.release_due,
        other => panic!("{other:?}"),
    };
    assert_eq!(due(&*s, &a), 0);
    assert!(s.start_release(&a, 500, b"cancel-a").unwrap());
    assert!(
        !s.start_release(&a, 900, b"other").unwrap(),
        "one at a time"
    );
    let other = db.open();
    assert_eq!(due(&*other, &a), 500);
    assert_eq!(other.release_by_cancel(b"cancel-a").unwrap(), Some(500));
    assert_eq!(other.release_by_cancel(b"nothing").unwrap(), None);
    // Undone (a notice failed): nothing pending, the hash forgotten.
    s.abort_release(&a).unwrap();
    assert_eq!(due(&*s, &a), 0);
    assert_eq!(s.release_by_cancel(b"cancel-a").unwrap(), None);
    assert_eq!(
        s.cancel_release(b"cancel-a", 30).unwrap(),
        ReleaseCancel::Unknown
    );
    // Due at 500: too late at 500, stopped before.
    assert!(s.start_release(&a, 500, b"cancel-a2").unwrap());
    assert_eq!(
        s.cancel_release(b"cancel-a2", 500).unwrap(),
        ReleaseCancel::TooLate { due: 500 }
    );
    let got = race(db, 8, |_, s| s.cancel_release(b"cancel-a2", 100).unwrap());
    assert_eq!(
        got.iter()
            .filter(|c| **c == ReleaseCancel::Stopped { due: 500 })
            .count(),
        1,
        "{got:?}"
    );
    assert!(got
        .iter()
        .all(|c| matches!(c, ReleaseCancel::Stopped { .. } | ReleaseCancel::Already)));
    assert_eq!(due(&*s, &a), RELEASE_STOPPED);
    assert_eq!(
        s.release_by_cancel(b"cancel-a2").unwrap(),
        Some(RELEASE_STOPPED)
    );
    // Stopped stays stopped: no new start, no undo.
    assert!(!s.start_release(&a, 900, b"again").unwrap());
    s.abort_release(&a).unwrap();
    assert_eq!(due(&*s, &a), RELEASE_STOPPED);
    // The other escrow was never touched.
    assert_eq!(due(&*s, &b), 0);
}

/// One test per check and backend: `sqlite::NAME` and `postgres::NAME`.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $name() { super::$name(&super::sqlite()) } )*
        }
        mod on_postgres {
            $( #[test] fn $name() { super::$name(&super::pg()) } )*
        }
    };
}

conformance!(
    escrows_codes_tokens,
    an_expired_escrow_gives_its_id_away_with_its_code,
    a_paid_escrow_and_its_token_are_one_transaction,
    failed_deliveries_are_forgiven_up_to_a_bound,
    sweep_in_slices_and_bulk_insert,
    wrong_guesses_on_two_instances_spend_one_budget,
    a_right_code_opens_once_across_instances,
    verifications_per_window_hold_across_instances,
    one_token_pays_once_across_instances,
    one_id_is_stored_once_across_instances,
    a_code_delivered_while_its_escrow_is_deleted_does_not_outlive_it,
    the_guessing_budget_pauses_then_freezes,
    a_guessing_window_holds_across_instances,
    caps_on_escrows_held_and_free_ones_a_day,
    the_last_places_are_taken_once_across_instances,
    the_caps_hold_exactly_when_many_inserts_race_past_them,
    far_from_the_caps_racing_inserts_and_deletions_keep_exact_counts,
    delivery_budgets_refunds_and_suppression,
    a_delivery_budget_holds_across_instances,
    a_refusal_names_the_first_budget_spent,
    status_calls_are_counted_per_window,
    a_code_and_its_verification_count_together_or_not_at_all,
    a_code_and_its_verification_hold_across_instances,
    totp_steps_open_once_and_spend_the_budget,
    releases_start_stop_and_race,
);
