//! [`PostgresStorage`]: the [`Storage`] backend for several
//! `passcrow-server` instances sharing one PostgreSQL database (feature
//! `postgres`).
//!
//! Every piece of state a limit depends on (codes and their attempts,
//! verification counts and their windows, spent tokens, guessing budgets
//! and frozen escrows, the escrows held and free escrows a day, delivery
//! budgets and the suppression list, `status` counts) is in rows, and
//! every operation that must not race is serialised by the database, never
//! by process memory: a single statement (`UPDATE ... WHERE ... RETURNING`,
//! `INSERT ... ON CONFLICT ... DO UPDATE ... WHERE ... RETURNING`, which
//! re-check their condition on the newest row version after waiting for
//! its lock) or one transaction holding the rows' locks (`SELECT ... FOR
//! UPDATE` / `FOR SHARE`). The two caps (escrows held, free escrows a
//! day) are sums of sharded counters, kept exact by advisory locks and a
//! bound on the transactions in flight (see `capped_in`), so that escrow
//! inserts do not take turns on one row; the server-wide delivery budgets
//! are counted in a short transaction of their own for the same reason
//! (`budget.rs`). Deadlocks and serialization
//! failures (both rolled back by the database) are retried a bounded
//! number of times; no transaction is held open across a delivery (the
//! protocol calls [`Storage::start_verification`], delivers, then
//! [`Storage::set_code`]).
//!
//! Each operation is one function below with its SQL in it: a new method
//! of the trait is one more function. Statements are sent with their
//! parameter types (`query_typed`: parse, bind and execute in one round
//! trip on the unnamed statement), so no prepared statement outlives a
//! request.
//!
//! Durability: every connection runs with `synchronous_commit` on (set at
//! connect when the server's default is `off`), so a commit, and so every
//! answer, waits for the WAL flush; PostgreSQL groups the flushes of
//! concurrent commits itself. Housekeeping (sweeps, expired rows removed
//! on read) commits with `synchronous_commit = off`, like SQLite's, and so
//! does a server-wide budget's count, which the durable commit after it
//! flushes (`budget.rs`).
//!
//! Clock: the instances' (the `now` each call is given), so their clocks
//! must agree (NTP); see docs/server.md.

mod budget;
mod connect;
mod copy;
mod pool;
mod schema;

use std::time::Duration;

use postgres::types::{ToSql, Type};
use postgres::{Client, Row};

use super::{
    Caps, Charge, Charged, CodeCheck, Counted, Counts, EscrowRow, GuessLimits, Guesses,
    GuessesLeft, Inserted, Lookup, Probe, ReleaseCancel, Spend, Started, Storage, StorageError,
    StorageResult, StoredId, Swept, VerificationCharge, RELEASE_STOPPED,
};
use budget::Outcome;

pub use connect::Settings;
pub use copy::{copy_from_sqlite, Copied};

/// The environment variable holding the database password (overrides
/// `postgres.password_file`; libpq's `PGPASSWORD` is read after it).
pub const ENV_DATABASE_PASSWORD: &str = "PASSCROW_DATABASE_PASSWORD";

/// Deadlocks and serialization failures retried before giving up.
const RETRIES: u32 = 4;

/// Key of the advisory lock a sweep holds, so instances do not sweep at
/// once ("pcrw" "swep"): the others skip their turn.
const SWEEP_LOCK: i64 = 0x7063_7277_7377_6570;

/// Rows a sweep removes per transaction.
const SWEEP_SLICE: i64 = 5000;

/// PostgreSQL storage; see the module documentation.
pub struct PostgresStorage {
    pool: pool::Pool,
}

impl std::fmt::Debug for PostgresStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PostgresStorage({})", self.pool.connector().label)
    }
}

/// One parameter and its type.
type P<'a> = (&'a (dyn ToSql + Sync), Type);

fn text<'a, 'b: 'a>(v: &'a &'b str) -> P<'a> {
    (v as &(dyn ToSql + Sync), Type::TEXT)
}
fn int(v: &i64) -> P<'_> {
    (v as &(dyn ToSql + Sync), Type::INT8)
}
fn bytes<'a, 'b: 'a>(v: &'a &'b [u8]) -> P<'a> {
    (v as &(dyn ToSql + Sync), Type::BYTEA)
}

/// How an operation runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// One statement, committed by itself (durable).
    Statement,
    /// A transaction, durable before its answer.
    Durable,
    /// A transaction of housekeeping that may be lost and redone
    /// (committed with `synchronous_commit = off`).
    Housekeeping,
    /// A short transaction whose row locks must not wait for a flush
    /// (committed with `synchronous_commit = off`): its caller makes a
    /// durable commit after it before answering, whose flush writes the
    /// WAL out in order and so this one too; lost in a crash before that,
    /// it must be harmless (`budget.rs`).
    Prelude,
}

/// An open transaction (or one statement, in [`Mode::Statement`]).
struct Tx<'a> {
    c: &'a mut Client,
    /// Roll back instead of committing (a refused request changes nothing).
    rollback: bool,
}

impl Tx<'_> {
    fn exec(&mut self, sql: &str, p: &[P<'_>]) -> Result<u64, postgres::Error> {
        self.c.execute_typed(sql, p)
    }
    fn opt(&mut self, sql: &str, p: &[P<'_>]) -> Result<Option<Row>, postgres::Error> {
        self.c.query_typed_opt(sql, p)
    }
    fn one(&mut self, sql: &str, p: &[P<'_>]) -> Result<Row, postgres::Error> {
        self.c.query_typed_one(sql, p)
    }
    /// Undo everything this transaction did, and answer all the same.
    fn abandon(&mut self) {
        self.rollback = true;
    }
}

/// Count a verification of `id` in its window (see
/// [`Storage::start_verification`]); `None`, changing nothing, when the
/// window is full, the escrow frozen or missing.
fn start_verification_in(
    t: &mut Tx<'_>,
    id: &StoredId,
    now: i64,
    window: i64,
    max: u32,
) -> Result<Option<Started>, postgres::Error> {
    let id: &[u8] = id.as_bytes();
    let max = i64::from(max);
    // One UPDATE: after waiting for the row's lock it re-reads the row, so
    // `vcount < max` holds across instances.
    let row = t.opt(
        "UPDATE escrow SET
             vcount = CASE WHEN vwin + $3 <= $2 THEN 1 ELSE vcount + 1 END,
             vfail  = CASE WHEN vwin + $3 <= $2 THEN 0 ELSE vfail END,
             vwin   = CASE WHEN vwin + $3 <= $2 THEN $2 ELSE vwin END
         WHERE id = $1 AND frozen = 0 AND (vwin + $3 <= $2 OR vcount < $4)
         RETURNING vwin",
        &[bytes(&id), int(&now), int(&window), int(&max)],
    )?;
    Ok(row.map(|r| Started { window: r.get(0) }))
}

fn retryable(e: &postgres::Error) -> bool {
    use postgres::error::SqlState;
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    )
}

/// Why an attempt failed.
enum Failed {
    /// Before COMMIT was sent (at BEGIN, or in the transaction's body):
    /// the database rolled back whatever ran, or nothing ran. In
    /// [`Mode::Statement`] the statement itself is its commit, so a
    /// failure there is [`Failed::Commit`].
    BeforeCommit(postgres::Error),
    /// At COMMIT, or during an autocommitted statement: it may or may not
    /// have committed.
    Commit(postgres::Error),
}

impl Failed {
    fn error(&self) -> &postgres::Error {
        match self {
            Failed::BeforeCommit(e) | Failed::Commit(e) => e,
        }
    }
}

/// Whether `e` says the database ended the session (a restart, a
/// failover, `pg_terminate_backend`): the connection is gone.
fn session_ended(e: &postgres::Error) -> bool {
    use postgres::error::SqlState;
    matches!(
        e.code(),
        Some(c) if *c == SqlState::ADMIN_SHUTDOWN
            || *c == SqlState::CRASH_SHUTDOWN
            || *c == SqlState::CANNOT_CONNECT_NOW
    )
}

/// Run `f` once on `c` in `mode`.
fn attempt<T>(
    c: &mut Client,
    mode: Mode,
    f: &mut dyn FnMut(&mut Tx<'_>) -> Result<T, postgres::Error>,
) -> Result<T, Failed> {
    let begin = match mode {
        Mode::Statement => {
            let mut tx = Tx {
                c: &mut *c,
                rollback: false,
            };
            return f(&mut tx).map_err(Failed::Commit);
        }
        Mode::Durable => "BEGIN",
        Mode::Housekeeping | Mode::Prelude => "BEGIN; SET LOCAL synchronous_commit = off",
    };
    c.batch_execute(begin).map_err(Failed::BeforeCommit)?;
    let mut tx = Tx {
        c: &mut *c,
        rollback: false,
    };
    let v = f(&mut tx).map_err(Failed::BeforeCommit)?;
    let end = if tx.rollback { "ROLLBACK" } else { "COMMIT" };
    c.batch_execute(end).map_err(Failed::Commit)?;
    Ok(v)
}

/// Session set-up of every new connection: the timeouts, and
/// `synchronous_commit` on if the server's default is off. Returns
/// whether it was off.
fn session_setup(c: &mut Client, s: &Settings) -> Result<bool, postgres::Error> {
    c.batch_execute(&format!(
        "SET statement_timeout = {}; SET lock_timeout = {}",
        s.statement_timeout.as_millis().max(1),
        s.lock_timeout.as_millis().max(1)
    ))?;
    let sc = show(c, "synchronous_commit")?;
    let off = sc == "off";
    if off {
        c.batch_execute("SET synchronous_commit = on")?;
    }
    Ok(off)
}

fn show(c: &mut Client, name: &str) -> Result<String, postgres::Error> {
    // Names are ours (no user input): SHOW takes no parameter.
    let rows = c.simple_query(&format!("SHOW {name}"))?;
    Ok(rows
        .iter()
        .find_map(|m| match m {
            postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .unwrap_or_default())
}

impl PostgresStorage {
    /// Connect to `url` (see [`Settings`] and the `connect` module for the
    /// URL's TLS parameters), create or migrate the schema (under an
    /// advisory lock: instances starting together migrate it once), and
    /// refuse a schema newer than this build knows.
    pub fn open(url: &str, settings: &Settings) -> StorageResult<PostgresStorage> {
        let connector = connect::Connector::new(url, settings)?;
        let s = settings.clone();
        let warned = std::sync::atomic::AtomicBool::new(false);
        let label = connector.label.clone();
        let setup = Box::new(move |c: &mut Client| -> StorageResult<()> {
            let off = session_setup(c, &s).map_err(|e| {
                StorageError(format!(
                    "postgres {label}: session set-up: {}",
                    connect::error_text(&e)
                ))
            })?;
            if off && !warned.swap(true, std::sync::atomic::Ordering::Relaxed) {
                tracing::warn!(
                    "postgres {label}: synchronous_commit is off by default there; \
                     passcrow-server turns it on for its own sessions"
                );
            }
            Ok(())
        });
        let pool = pool::Pool::new(
            connector,
            settings.pool_size,
            settings.acquire_timeout,
            setup,
        );
        let storage = PostgresStorage { pool };
        {
            let mut lent = storage.pool.get()?;
            let c = &mut lent.conn().client;
            schema::migrate(c).map_err(|e| e.into_storage(storage.pool.connector()))?;
            let fsync = show(c, "fsync").map_err(|e| storage.err("reading fsync", &e))?;
            if fsync == "off" {
                tracing::warn!(
                    "postgres {}: fsync is off on the database server: a power cut there can \
                     undo acknowledged escrows",
                    storage.pool.connector().label
                );
            }
        }
        Ok(storage)
    }

    fn err(&self, what: &str, e: &postgres::Error) -> StorageError {
        self.pool.connector().error(what, connect::error_text(e))
    }

    /// Run `f` in `mode` on a pooled connection, retrying (a bounded
    /// number of times) deadlocks and serialization failures, and a
    /// transaction whose session ended before its COMMIT was sent: in each
    /// case the database rolled it back. A failure at COMMIT, or of an
    /// autocommitted statement, is never retried (it may have committed).
    fn run<T>(
        &self,
        what: &'static str,
        mode: Mode,
        mut f: impl FnMut(&mut Tx<'_>) -> Result<T, postgres::Error>,
    ) -> StorageResult<T> {
        let mut tries = 0;
        loop {
            let mut lent = self.pool.get()?;
            let c = &mut lent.conn().client;
            match attempt(c, mode, &mut f) {
                Ok(v) => return Ok(v),
                // The session ended (the database restarted or failed
                // over, or an operator cut it) before COMMIT was sent: the
                // database rolled back what ran, so run it again on a new
                // connection.
                Err(Failed::BeforeCommit(e))
                    if (c.is_closed() || session_ended(&e)) && tries < RETRIES =>
                {
                    tracing::info!(
                        "postgres {}: a pooled connection was closed ({}); reconnecting",
                        self.pool.connector().label,
                        connect::error_text(&e)
                    );
                    tries += 1;
                    lent.broken = true;
                    drop(lent);
                    continue;
                }
                Err(failed) => {
                    let e = failed.error();
                    // Leave the connection outside any transaction, or
                    // drop it.
                    let gone = c.is_closed() || session_ended(e);
                    if gone || (mode != Mode::Statement && c.batch_execute("ROLLBACK").is_err()) {
                        lent.broken = true;
                    }
                    // Deadlocks and serialization failures are reported
                    // before the commit takes effect, at any statement.
                    if retryable(e) && tries < RETRIES {
                        tries += 1;
                        drop(lent);
                        let jitter = rand::RngCore::next_u64(&mut rand::rngs::OsRng) % 10;
                        std::thread::sleep(Duration::from_millis((5 << tries) + jitter));
                        continue;
                    }
                    return Err(self.err(what, e));
                }
            }
        }
    }

    /// The schema version of the database.
    pub fn schema_version(&self) -> StorageResult<i64> {
        self.run("reading the schema version", Mode::Statement, |t| {
            Ok(t.one("SELECT max(version) FROM passcrow_schema", &[])?
                .get(0))
        })
    }

    /// The value of a setting in this backend's sessions (`SHOW name`;
    /// `name` is a setting's name, not user input).
    pub fn session_setting(&self, name: &str) -> StorageResult<String> {
        let mut lent = self.pool.get()?;
        show(&mut lent.conn().client, name).map_err(|e| self.err("SHOW", &e))
    }

    /// Whether the database holds no escrow, code or spent token.
    pub fn is_empty(&self) -> StorageResult<bool> {
        self.run("counting rows", Mode::Statement, |t| {
            Ok(t.one(
                "SELECT NOT EXISTS (SELECT 1 FROM escrow) AND NOT EXISTS (SELECT 1 FROM code)
                     AND NOT EXISTS (SELECT 1 FROM token)",
                &[],
            )?
            .get(0))
        })
    }
}

/// Create the schema as a build of schema `version` (6 up to
/// [`super::SCHEMA_VERSION`]) made it, in the database `c` is connected
/// to (empty, or older): for tests of the migrations.
#[cfg(feature = "testing")]
#[doc(hidden)]
pub fn create_schema_at(c: &mut Client, version: i64) -> Result<(), String> {
    if !(6..=super::SCHEMA_VERSION).contains(&version) {
        return Err(format!("no PostgreSQL schema {version}"));
    }
    match schema::migrate_to(c, version) {
        Ok(_) => Ok(()),
        Err(schema::MigrateError::Db(e)) => Err(connect::error_text(&e)),
        Err(_) => Err("the database holds another schema".into()),
    }
}

impl Drop for PostgresStorage {
    fn drop(&mut self) {
        // Each client owns a small runtime, which must not be dropped on
        // an async thread (the server may drop us on one).
        let idle = self.pool.drain();
        if !idle.is_empty() {
            let _ = std::thread::Builder::new()
                .name("passcrow-pg-close".into())
                .spawn(move || drop(idle))
                .map(|t| t.join());
        }
    }
}

/// Store a new escrow unless the id is taken (by anything, live or not);
/// any code left under the id (an orphan) goes. One statement.
fn insert_new(
    t: &mut Tx<'_>,
    id: &[u8],
    expires: i64,
    sealed: &[u8],
    now: i64,
) -> Result<bool, postgres::Error> {
    let n: i64 = t
        .one(
            "WITH ins AS (
                 INSERT INTO escrow (id, expires, data, created) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (id) DO NOTHING RETURNING id),
             orphan AS (DELETE FROM code WHERE id IN (SELECT id FROM ins))
             SELECT count(*) FROM ins",
            &[bytes(&id), int(&expires), bytes(&sealed), int(&now)],
        )?
        .get(0);
    Ok(n == 1)
}

/// [`insert_new`], or, when an expired escrow holds the id, remove it and
/// its code and store the new one. In the caller's transaction.
fn insert_row(
    t: &mut Tx<'_>,
    id: &[u8],
    expires: i64,
    sealed: &[u8],
    now: i64,
) -> Result<bool, postgres::Error> {
    if insert_new(t, id, expires, sealed, now)? {
        return Ok(true);
    }
    let gone = t.exec(
        "DELETE FROM escrow WHERE id = $1 AND expires <= $2",
        &[bytes(&id), int(&now)],
    )?;
    if gone == 0 {
        return Ok(false);
    }
    insert_new(t, id, expires, sealed, now)
}

/// Store an escrow paid with `spend` and spend the token, in the caller's
/// transaction; a refusal rolls everything back.
fn insert_paid(
    t: &mut Tx<'_>,
    id: &[u8],
    expires: i64,
    sealed: &[u8],
    spend: &Spend,
    now: i64,
) -> Result<Inserted, postgres::Error> {
    let hash: &[u8] = &spend.hash;
    // The token's row first (its lock serialises every request paying
    // with it, on every instance): inserted, or its expired record
    // renewed; a live record returns nothing.
    let fresh = t
        .opt(
            "INSERT INTO token (hash, expires) VALUES ($1, $2)
             ON CONFLICT (hash) DO UPDATE SET expires = EXCLUDED.expires
                 WHERE token.expires <= $3
             RETURNING 1",
            &[bytes(&hash), int(&spend.expires), int(&now)],
        )?
        .is_some();
    if !fresh {
        t.abandon();
        return Ok(Inserted::TokenSpent);
    }
    if !insert_row(t, id, expires, sealed, now)? {
        // The token is not spent: all of it is rolled back.
        t.abandon();
        return Ok(Inserted::IdTaken);
    }
    Ok(Inserted::Stored)
}

/// Key of the advisory lock every capped insert takes on the escrows held
/// ("pcrw" "held"), shared or exclusive: see [`capped_in`].
const HELD_LOCK: i64 = 0x7063_7277_6865_6c64;

/// Key of the advisory lock every capped free insert takes on the free
/// escrows of a day ("pcrw" "free"), after [`HELD_LOCK`].
const FREE_LOCK: i64 = 0x7063_7277_6672_6565;

/// The caps of one capped insert, and its UTC day.
struct CapsAt {
    max: i64,
    max_free: i64,
    day: i64,
}

/// Which of a capped insert's advisory locks it takes exclusively (the
/// others shared).
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
struct Exclusive {
    held: bool,
    free: bool,
}

/// What one attempt of a capped insert came to.
enum Capped {
    Done(Inserted),
    /// Too near a cap to decide under a shared lock: rolled back, to run
    /// again as a new transaction with these locks exclusive.
    Again(Exclusive),
}

/// One attempt of [`Storage::insert_escrow_capped`], in the caller's
/// transaction; every refusal, and `Again`, rolls it back.
///
/// The counters are sharded (schema 9, `postgres/schema.rs`): each is
/// the sum of 64 rows, and a transaction adds to its own session's row,
/// so concurrent inserts seldom wait for each other's row locks (and so
/// for each other's commit flush). Reading the sum locks nothing, so the
/// caps are kept exact another way, with the number of sessions the
/// database admits, `M = max_connections` (read in the same statement as
/// the sums, so it is the database's of the moment):
///
/// 1. Every capped insert first takes the advisory lock [`HELD_LOCK`]
///    (and a free one then [`FREE_LOCK`]), shared, in a statement of its
///    own, so that the next statement's snapshot (READ COMMITTED: one per
///    statement) is taken with the lock held. That statement reads the
///    sum, `S` (what had committed at its snapshot: the triggers count in
///    the inserting or deleting transaction, so `S` is the escrows then
///    visible). `S >= max`: refused (the server was full at that moment).
///    `S + M <= max`: inserted. Between the two: rolled back and run
///    again with the lock exclusive, which PostgreSQL grants once every
///    shared holder has ended (committed, and so visible to the next
///    snapshot: a commit is visible before its locks are released); under
///    it no other capped insert is in flight, and `S < max` decides
///    exactly. A lock is never upgraded within a transaction (two
///    upgraders would deadlock): the exclusive attempt is a new one.
/// 2. Why no more than `max` are ever held: suppose a commit makes the
///    escrows visible exceed `max`. Of the capped inserts visible then,
///    take W, the one whose sum was read last (snapshot s). Every other
///    one that was not yet visible at s read its sum before s and commits
///    after s, so at s its transaction was open, on a session of its own:
///    there are at most M - 1 of them, plus W, so at most `S + M` are
///    visible (deletions only lower it). If W was shared, `S + M <= max`;
///    if W was exclusive, no other capped insert was open at s (each holds
///    the lock from before its snapshot to its commit, and the lock was
///    W's), so at most `S + 1 <= max`. Either way not more than `max`.
/// 3. The free escrows of a day: the same, with [`FREE_LOCK`], the day's
///    sum and `max_free` (paid inserts do not count there, nor take it).
///
/// Only capped inserts are bounded: the operator's bulk import and the
/// uncapped inserts are counted but not held back, as before. Every
/// session of ours counts in `max_connections`; we never use prepared
/// (two-phase) transactions, which could outlive their session. Far from
/// the caps (the common case) inserts share the locks and take turns on
/// nothing; within `M` of a cap they take turns, as every insert did with
/// the single counter row.
#[allow(clippy::too_many_arguments)]
fn capped_in(
    t: &mut Tx<'_>,
    id: &[u8],
    expires: i64,
    sealed: &[u8],
    spend: Option<&Spend>,
    caps: &CapsAt,
    now: i64,
    exclusive: Exclusive,
) -> Result<Capped, postgres::Error> {
    let free = spend.is_none();
    let lock = |x: bool| {
        if x {
            "pg_advisory_xact_lock"
        } else {
            "pg_advisory_xact_lock_shared"
        }
    };
    // Before any row lock, in this order (HELD_LOCK first) on every
    // session: a target list is evaluated left to right.
    if free {
        let sql = format!(
            "SELECT {}($1), {}($2)",
            lock(exclusive.held),
            lock(exclusive.free)
        );
        t.exec(&sql, &[int(&HELD_LOCK), int(&FREE_LOCK)])?;
    } else {
        let sql = format!("SELECT {}($1)", lock(exclusive.held));
        t.exec(&sql, &[int(&HELD_LOCK)])?;
    }
    let r = t.one(
        "SELECT (SELECT COALESCE(sum(n), 0) FROM tally WHERE name = 'escrows')::int8,
                (SELECT COALESCE(sum(n), 0) FROM free_day WHERE day = $1)::int8,
                current_setting('max_connections')::int8",
        &[int(&caps.day)],
    )?;
    let (held, made, sessions): (i64, i64, i64) = (r.get(0), r.get(1), r.get(2));
    if held >= caps.max {
        t.abandon();
        return Ok(Capped::Done(Inserted::Full));
    }
    if !exclusive.held && held.saturating_add(sessions) > caps.max {
        t.abandon();
        return Ok(Capped::Again(Exclusive {
            held: true,
            ..exclusive
        }));
    }
    let Some(sp) = spend else {
        if made >= caps.max_free {
            t.abandon();
            return Ok(Capped::Done(Inserted::FreeCapReached));
        }
        if !exclusive.free && made.saturating_add(sessions) > caps.max_free {
            t.abandon();
            return Ok(Capped::Again(Exclusive {
                free: true,
                ..exclusive
            }));
        }
        if !insert_row(t, id, expires, sealed, now)? {
            t.abandon();
            return Ok(Capped::Done(Inserted::IdTaken));
        }
        // This session's shard of the day (as the triggers' `tally`).
        t.exec(
            "INSERT INTO free_day (day, shard, n) VALUES ($1, pg_backend_pid() % 64, 1)
             ON CONFLICT (day, shard) DO UPDATE SET n = free_day.n + 1",
            &[int(&caps.day)],
        )?;
        return Ok(Capped::Done(Inserted::Stored));
    };
    insert_paid(t, id, expires, sealed, sp, now).map(Capped::Done)
}

/// The UTC day of `now` (free escrows are counted per day).
fn day_of(now: i64) -> i64 {
    now.div_euclid(86_400)
}

/// A counter read back from a BIGINT column.
/// [`Storage::check_code`] and [`Storage::check_totp`] in one
/// transaction: the guessing budget, the pending code, then `probe`.
fn check_in(
    t: &mut Tx<'_>,
    id: &StoredId,
    probe: Probe<'_>,
    now: i64,
    limits: &GuessLimits,
) -> Result<CodeCheck, postgres::Error> {
    let id: &[u8] = id.as_bytes();
    // The escrow's row is locked first (its guessing budget), then the
    // code's, until the guess is counted or the code consumed: two
    // guesses on two instances take turns. Same order as set_code
    // and delete_escrow (escrow, then code).
    let state = t.opt(
        "SELECT frozen, gwin, gcount, gtotal, totp_step FROM escrow WHERE id = $1 FOR UPDATE",
        &[bytes(&id)],
    )?;
    let Some(state) = state else {
        return Ok(CodeCheck::NoCode);
    };
    let frozen = state.get::<_, i64>(0) != 0;
    let g = Guesses {
        window: state.get(1),
        in_window: count32(state.get(2)),
        total: count32(state.get(3)),
    };
    let last_step: i64 = state.get(4);
    // The budget first: a frozen escrow, or one whose window is
    // spent, compares nothing (not even the right code).
    if frozen {
        return Ok(CodeCheck::Frozen);
    }
    if let Some(until) = g.paused_until(limits, now) {
        return Ok(CodeCheck::Paused { until });
    }
    let row = t.opt(
        "SELECT mac, expires, attempts FROM code WHERE id = $1 FOR UPDATE",
        &[bytes(&id)],
    )?;
    let Some(row) = row else {
        return Ok(CodeCheck::NoCode);
    };
    let (mac, expires, attempts): (Vec<u8>, i64, i64) = (row.get(0), row.get(1), row.get(2));
    if expires <= now {
        t.exec("DELETE FROM code WHERE id = $1", &[bytes(&id)])?;
        return Ok(CodeCheck::Expired);
    }
    if attempts <= 0 {
        return Ok(CodeCheck::Void);
    }
    if probe.matches(&mac, last_step) {
        t.exec("DELETE FROM code WHERE id = $1", &[bytes(&id)])?;
        if let Some(step) = probe.step() {
            t.exec(
                "UPDATE escrow SET totp_step = $2 WHERE id = $1",
                &[bytes(&id), int(&step)],
            )?;
        }
        return Ok(CodeCheck::Right);
    }
    t.exec(
        "UPDATE code SET attempts = attempts - 1 WHERE id = $1",
        &[bytes(&id)],
    )?;
    // A new window opens with the first wrong guess after the
    // last one ended.
    let (window, in_window) = if g.in_window == 0 || g.window.saturating_add(limits.window) <= now {
        (now, 1)
    } else {
        (g.window, g.in_window.saturating_add(1))
    };
    let total = g.total.saturating_add(1);
    let freeze = total >= limits.lifetime;
    let (in_w, tot, fr) = (i64::from(in_window), i64::from(total), i64::from(freeze));
    t.exec(
        "UPDATE escrow SET gwin = $2, gcount = $3, gtotal = $4, frozen = $5
         WHERE id = $1",
        &[bytes(&id), int(&window), int(&in_w), int(&tot), int(&fr)],
    )?;
    if freeze {
        // Frozen for good: its code is void too.
        t.exec("DELETE FROM code WHERE id = $1", &[bytes(&id)])?;
    }
    Ok(CodeCheck::Wrong {
        left: if freeze {
            0
        } else {
            u32::try_from(attempts - 1).unwrap_or(0)
        },
        guesses: GuessesLeft {
            in_window: limits.per_window.saturating_sub(in_window),
            lifetime: limits.lifetime.saturating_sub(total),
            window_ends: window.saturating_add(limits.window),
        },
    })
}

fn count32(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

impl Storage for PostgresStorage {
    fn insert_escrow(
        &self,
        id: &StoredId,
        expires: i64,
        sealed: &[u8],
        now: i64,
    ) -> StorageResult<bool> {
        let id: &[u8] = id.as_bytes();
        // The common case, a new id, in one statement; a taken id in a
        // transaction that replaces an expired escrow.
        if self.run("storing an escrow", Mode::Statement, |t| {
            insert_new(t, id, expires, sealed, now)
        })? {
            return Ok(true);
        }
        self.run("storing an escrow", Mode::Durable, |t| {
            insert_row(t, id, expires, sealed, now)
        })
    }

    fn insert_escrow_paid(
        &self,
        id: &StoredId,
        expires: i64,
        sealed: &[u8],
        spend: &Spend,
        now: i64,
    ) -> StorageResult<Inserted> {
        let id: &[u8] = id.as_bytes();
        self.run("storing a paid escrow", Mode::Durable, |t| {
            insert_paid(t, id, expires, sealed, spend, now)
        })
    }

    fn insert_escrow_capped(
        &self,
        id: &StoredId,
        expires: i64,
        sealed: &[u8],
        spend: Option<&Spend>,
        caps: &Caps,
        now: i64,
    ) -> StorageResult<Inserted> {
        let id: &[u8] = id.as_bytes();
        let caps = CapsAt {
            max: i64::try_from(caps.max_escrows).unwrap_or(i64::MAX),
            max_free: i64::from(caps.max_free_per_day),
            day: day_of(now),
        };
        // Under shared locks first; near a cap, again under exclusive
        // ones (see capped_in). Each attempt is its own transaction, and
        // each `Again` makes one more lock exclusive: at most three.
        let mut exclusive = Exclusive::default();
        loop {
            let out = self.run("storing an escrow", Mode::Durable, |t| {
                capped_in(t, id, expires, sealed, spend, &caps, now, exclusive)
            })?;
            match out {
                Capped::Done(inserted) => return Ok(inserted),
                Capped::Again(more) => {
                    debug_assert!(more != exclusive);
                    exclusive = more;
                }
            }
        }
    }

    fn insert_escrows(&self, rows: &[(StoredId, i64, Vec<u8>)], now: i64) -> StorageResult<usize> {
        let ids: Vec<&[u8]> = rows.iter().map(|r| &r.0.as_bytes()[..]).collect();
        let exp: Vec<i64> = rows.iter().map(|r| r.1).collect();
        let data: Vec<&[u8]> = rows.iter().map(|r| r.2.as_slice()).collect();
        self.run("storing escrows", Mode::Statement, |t| {
            let n = t.exec(
                "INSERT INTO escrow (id, expires, data, created)
                 SELECT i, e, d, $4 FROM unnest($1::bytea[], $2::int8[], $3::bytea[]) AS u(i, e, d)
                 ON CONFLICT (id) DO NOTHING",
                &[
                    (&ids as &(dyn ToSql + Sync), Type::BYTEA_ARRAY),
                    (&exp as &(dyn ToSql + Sync), Type::INT8_ARRAY),
                    (&data as &(dyn ToSql + Sync), Type::BYTEA_ARRAY),
                    int(&now),
                ],
            )?;
            Ok(n as usize)
        })
    }

    fn get_escrow(&self, id: &StoredId, now: i64) -> StorageResult<Lookup> {
        let id: &[u8] = id.as_bytes();
        let row = self.run("reading an escrow", Mode::Statement, |t| {
            t.opt(
                "SELECT expires, data, frozen, gwin, gcount, gtotal, created, rdue
                 FROM escrow WHERE id = $1",
                &[bytes(&id)],
            )
        })?;
        let Some(row) = row else {
            return Ok(Lookup::Missing);
        };
        let expires: i64 = row.get(0);
        if expires > now {
            return Ok(Lookup::Found(EscrowRow {
                expires,
                sealed: row.get(1),
                frozen: row.get::<_, i64>(2) != 0,
                guesses: Guesses {
                    window: row.get(3),
                    in_window: count32(row.get(4)),
                    total: count32(row.get(5)),
                },
                created: row.get(6),
                release_due: row.get(7),
            }));
        }
        self.run("removing an expired escrow", Mode::Housekeeping, |t| {
            if t.exec(
                "DELETE FROM escrow WHERE id = $1 AND expires <= $2",
                &[bytes(&id), int(&now)],
            )? > 0
            {
                t.exec("DELETE FROM code WHERE id = $1", &[bytes(&id)])?;
            }
            Ok(())
        })?;
        Ok(Lookup::Expired)
    }

    fn delete_escrow(&self, id: &StoredId) -> StorageResult<bool> {
        let id: &[u8] = id.as_bytes();
        // Two statements, so the second sees a code set_code committed
        // while the first waited for the escrow's row.
        self.run("deleting an escrow", Mode::Durable, |t| {
            let n = t.exec("DELETE FROM escrow WHERE id = $1", &[bytes(&id)])?;
            t.exec("DELETE FROM code WHERE id = $1", &[bytes(&id)])?;
            Ok(n > 0)
        })
    }

    fn start_verification(
        &self,
        id: &StoredId,
        now: i64,
        window: i64,
        max: u32,
    ) -> StorageResult<Option<Started>> {
        self.run("counting a verification", Mode::Statement, |t| {
            start_verification_in(t, id, now, window, max)
        })
    }

    fn charge_and_start_verification(
        &self,
        charge: &Charge,
        id: &StoredId,
        now: i64,
        window: i64,
        max: u32,
    ) -> StorageResult<VerificationCharge> {
        let outcome = budget::charge_with(
            self,
            "counting a code's message and its verification",
            charge,
            now,
            |t| start_verification_in(t, id, now, window, max).map(|s| s.ok_or(())),
        )?;
        Ok(match outcome {
            Outcome::Refused(refused) => VerificationCharge::Refused(refused),
            // The message's charge went with it.
            Outcome::Declined(()) => VerificationCharge::WindowFull,
            Outcome::Counted(counted, started) => VerificationCharge::Started(counted, started),
        })
    }

    fn set_code(
        &self,
        id: &StoredId,
        sealed: &[u8],
        mac: &[u8],
        expires: i64,
        attempts: u32,
    ) -> StorageResult<bool> {
        let id: &[u8] = id.as_bytes();
        let attempts = i64::from(attempts);
        // The escrow's row is locked (FOR SHARE) while the code is
        // stored, so a deletion (or a wrong guess that freezes it) waits
        // and then removes the code too. The sealed data (fresh nonce)
        // tells this escrow from a later one that took its id. A code
        // expiring later stays.
        self.run("storing a code", Mode::Statement, |t| {
            Ok(t.one(
                "WITH e AS (SELECT id FROM escrow
                            WHERE id = $1 AND data = $2 AND frozen = 0 FOR SHARE),
                 up AS (
                     INSERT INTO code (id, mac, expires, attempts)
                     SELECT id, $3, $4, $5 FROM e
                     ON CONFLICT (id) DO UPDATE SET
                         mac = EXCLUDED.mac, expires = EXCLUDED.expires,
                         attempts = EXCLUDED.attempts
                     WHERE code.expires <= EXCLUDED.expires)
                 SELECT EXISTS (SELECT 1 FROM e)",
                &[
                    bytes(&id),
                    bytes(&sealed),
                    bytes(&mac),
                    int(&expires),
                    int(&attempts),
                ],
            )?
            .get(0))
        })
    }

    fn verification_failed(
        &self,
        id: &StoredId,
        started: Started,
        forgive: u32,
    ) -> StorageResult<bool> {
        let id: &[u8] = id.as_bytes();
        let forgive = i64::from(forgive);
        self.run("forgiving a failed delivery", Mode::Statement, |t| {
            let n = t.exec(
                "UPDATE escrow SET vcount = vcount - 1, vfail = vfail + 1
                 WHERE id = $1 AND vwin = $2 AND vcount > 0 AND vfail < $3",
                &[bytes(&id), int(&started.window), int(&forgive)],
            )?;
            Ok(n == 1)
        })
    }

    fn check_code(
        &self,
        id: &StoredId,
        given: &[u8],
        now: i64,
        limits: &GuessLimits,
    ) -> StorageResult<CodeCheck> {
        self.run("checking a code", Mode::Durable, |t| {
            check_in(t, id, Probe::Mac(given), now, limits)
        })
    }

    fn check_totp(
        &self,
        id: &StoredId,
        step: Option<i64>,
        now: i64,
        limits: &GuessLimits,
    ) -> StorageResult<CodeCheck> {
        self.run("checking an authenticator code", Mode::Durable, |t| {
            check_in(t, id, Probe::Step(step), now, limits)
        })
    }

    fn start_release(&self, id: &StoredId, due: i64, cancel: &[u8]) -> StorageResult<bool> {
        let id: &[u8] = id.as_bytes();
        self.run("starting a release", Mode::Statement, |t| {
            let n = t.exec(
                "UPDATE escrow SET rdue = $2, rcancel = $3
                 WHERE id = $1 AND rdue = 0 AND frozen = 0",
                &[bytes(&id), int(&due), bytes(&cancel)],
            )?;
            Ok(n == 1)
        })
    }

    fn abort_release(&self, id: &StoredId) -> StorageResult<()> {
        let id: &[u8] = id.as_bytes();
        self.run("aborting a release", Mode::Statement, |t| {
            t.exec(
                "UPDATE escrow SET rdue = 0, rcancel = ''::bytea WHERE id = $1 AND rdue > 0",
                &[bytes(&id)],
            )?;
            Ok(())
        })
    }

    fn release_by_cancel(&self, cancel: &[u8]) -> StorageResult<Option<i64>> {
        self.run("reading a release", Mode::Statement, |t| {
            Ok(t.opt(
                "SELECT rdue FROM escrow WHERE rcancel = $1 AND rdue <> 0",
                &[bytes(&cancel)],
            )?
            .map(|r| r.get(0)))
        })
    }

    fn cancel_release(&self, cancel: &[u8], now: i64) -> StorageResult<ReleaseCancel> {
        self.run("stopping a release", Mode::Durable, |t| {
            let row = t.opt(
                "SELECT id, rdue FROM escrow WHERE rcancel = $1 AND rdue <> 0 FOR UPDATE",
                &[bytes(&cancel)],
            )?;
            let Some(row) = row else {
                return Ok(ReleaseCancel::Unknown);
            };
            let (id, due): (Vec<u8>, i64) = (row.get(0), row.get(1));
            if due == RELEASE_STOPPED {
                return Ok(ReleaseCancel::Already);
            }
            if due <= now {
                return Ok(ReleaseCancel::TooLate { due });
            }
            let id: &[u8] = &id;
            t.exec(
                "UPDATE escrow SET rdue = $2 WHERE id = $1",
                &[bytes(&id), int(&RELEASE_STOPPED)],
            )?;
            Ok(ReleaseCancel::Stopped { due })
        })
    }

    fn sweep(&self, now: i64) -> StorageResult<Swept> {
        // In slices (short transactions), each under the sweep lock: while
        // one instance sweeps, the others skip their turn.
        let mut out = Swept::default();
        loop {
            let n = self.run("sweeping escrows", Mode::Housekeeping, |t| {
                let mine: bool = t
                    .one("SELECT pg_try_advisory_xact_lock($1)", &[int(&SWEEP_LOCK)])?
                    .get(0);
                if !mine {
                    return Ok(None);
                }
                Ok(Some(t.exec(
                    "DELETE FROM escrow WHERE id IN (
                         SELECT id FROM escrow WHERE expires <= $1
                         LIMIT $2 FOR UPDATE SKIP LOCKED)",
                    &[int(&now), int(&SWEEP_SLICE)],
                )?))
            })?;
            let Some(n) = n else { return Ok(out) };
            out.escrows += n;
            if (n as i64) < SWEEP_SLICE {
                break;
            }
        }
        let yesterday = day_of(now) - 1;
        self.run("sweeping codes and tokens", Mode::Housekeeping, |t| {
            let mine: bool = t
                .one("SELECT pg_try_advisory_xact_lock($1)", &[int(&SWEEP_LOCK)])?
                .get(0);
            if mine {
                out.codes = t.exec("DELETE FROM code WHERE expires <= $1", &[int(&now)])?;
                out.codes += t.exec(
                    "DELETE FROM code c WHERE NOT EXISTS (SELECT 1 FROM escrow e WHERE e.id = c.id)",
                    &[],
                )?;
                out.tokens = t.exec("DELETE FROM token WHERE expires <= $1", &[int(&now)])?;
                t.exec(
                    "DELETE FROM delivery_budget WHERE start + win <= $1",
                    &[int(&now)],
                )?;
                // Yesterday's count is kept (a clock a little behind must
                // not find it gone); older days are of no use.
                t.exec("DELETE FROM free_day WHERE day < $1", &[int(&yesterday)])?;
                t.exec("DELETE FROM status_count WHERE until <= $1", &[int(&now)])?;
            }
            Ok(())
        })?;
        Ok(out)
    }

    fn counts(&self) -> StorageResult<Counts> {
        self.run("counting", Mode::Statement, |t| {
            let r = t.one(
                "SELECT (SELECT count(*) FROM escrow), (SELECT count(*) FROM code)",
                &[],
            )?;
            let (e, c): (i64, i64) = (r.get(0), r.get(1));
            Ok(Counts {
                escrows: e.max(0) as u64,
                codes: c.max(0) as u64,
            })
        })
    }

    fn charge_delivery(&self, charge: &Charge, now: i64) -> StorageResult<Charged> {
        let outcome = budget::charge_with(self, "counting a message", charge, now, |_| {
            Ok(Ok::<(), std::convert::Infallible>(()))
        })?;
        Ok(match outcome {
            Outcome::Refused(refused) => refused,
            Outcome::Counted(counted, ()) => Charged::Counted(counted),
            Outcome::Declined(never) => match never {},
        })
    }

    fn refund_delivery(&self, counted: &[Counted]) -> StorageResult<()> {
        self.run("giving back a message's count", Mode::Durable, |t| {
            budget::refund_in(t, counted)
        })
    }

    fn suppress(&self, recipient: &[u8; 16], now: i64) -> StorageResult<bool> {
        let r: &[u8] = recipient;
        self.run("suppressing a recipient", Mode::Statement, |t| {
            let n = t.exec(
                "INSERT INTO suppressed (hash, since) VALUES ($1, $2)
                 ON CONFLICT (hash) DO NOTHING",
                &[bytes(&r), int(&now)],
            )?;
            Ok(n == 1)
        })
    }

    fn is_suppressed(&self, recipient: &[u8; 16]) -> StorageResult<bool> {
        let r: &[u8] = recipient;
        self.run("reading the suppression list", Mode::Statement, |t| {
            Ok(t.one(
                "SELECT EXISTS (SELECT 1 FROM suppressed WHERE hash = $1)",
                &[bytes(&r)],
            )?
            .get(0))
        })
    }

    fn count_status(&self, id: &StoredId, now: i64, window: i64, max: u32) -> StorageResult<bool> {
        let id: &[u8] = id.as_bytes();
        let max = i64::from(max);
        // One statement: a new window, or one more in the current one
        // while under max (re-checked on the newest row after its lock).
        self.run("counting a status call", Mode::Statement, |t| {
            let n = t.exec(
                "INSERT INTO status_count (id, until, count) VALUES ($1, $2 + $3, 1)
                 ON CONFLICT (id) DO UPDATE SET
                     count = CASE WHEN status_count.until <= $2 THEN 1
                                  ELSE status_count.count + 1 END,
                     until = CASE WHEN status_count.until <= $2 THEN $2 + $3
                                  ELSE status_count.until END
                 WHERE status_count.until <= $2 OR status_count.count < $4",
                &[bytes(&id), int(&now), int(&window), int(&max)],
            )?;
            Ok(n == 1)
        })
    }
}
