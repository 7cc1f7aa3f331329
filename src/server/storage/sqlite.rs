//! [`SqliteStorage`]: the [`Storage`] backend we ship, one SQLite file in
//! WAL mode, one writer thread committing in groups, a few readers.

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};

use rusqlite::{params, Connection, OptionalExtension};

use super::schema;
use super::{
    Caps, Charge, Charged, CodeCheck, Counted, Counts, EscrowRow, GuessLimits, Guesses,
    GuessesLeft, Inserted, Lookup, Probe, Rekey, ReleaseCancel, Spend, Started, Storage,
    StorageError, StorageResult, StoredId, Swept, VerificationCharge, RELEASE_STOPPED,
};

/// A unit of work for the writer thread: runs inside the open
/// transaction and gives back what to do once the commit is known.
struct Job {
    /// Must be on disk before the caller hears of it.
    durable: bool,
    run: Run,
}
/// Runs a job inside the group's transaction; given no connection when the
/// transaction could not begin, only why. Gives back, with what to do
/// once the commit is known, whether the transaction is still sound (false:
/// the job's changes could not be undone, so the whole group must not
/// commit).
type Run = Box<dyn FnOnce(Result<&Connection, &str>) -> (Done, bool) + Send>;
/// Called with whether the transaction committed (and reached the disk).
type Done = Box<dyn FnOnce(bool) + Send>;

impl From<rusqlite::Error> for StorageError {
    fn from(e: rusqlite::Error) -> Self {
        StorageError(e.to_string())
    }
}

impl rusqlite::ToSql for StoredId {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(rusqlite::types::ToSqlOutput::Borrowed(
            rusqlite::types::ValueRef::Blob(self.as_bytes()),
        ))
    }
}

/// Most jobs one transaction takes.
const GROUP_MAX: usize = 512;

/// What the writer did, for tests: commits answered only after their
/// WAL frames were synced (by the syncer thread's `fdatasync`, counted
/// once it returned, or by a COMMIT made at `synchronous=FULL`, the level
/// read back from SQLite, not assumed) and commits answered without, and
/// the size of every group.
#[cfg(test)]
#[derive(Default)]
struct Trace {
    /// Jobs handed to the writer.
    submitted: AtomicUsize,
    /// Commits synced before their answers.
    synced_commits: AtomicUsize,
    /// Commits answered without a sync.
    unsynced_commits: AtomicUsize,
    /// Jobs per group, in order.
    groups: Mutex<Vec<usize>>,
}

/// SQLite storage: one file, WAL, every answered write synced.
///
/// Writes go to one writer thread that commits them in groups: every job
/// waiting when a transaction starts joins it (each in its own savepoint,
/// so one failing job does not undo the others), then one commit; a
/// second thread syncs the WAL, and only then are the callers answered,
/// while the writer already runs the next group (see `syncer_loop`).
/// Under load many requests share a sync; alone, a request waits for just
/// its own. Reads
/// use a small pool of read-only connections (WAL readers see the last
/// commit and never wait for a sync).
pub struct SqliteStorage {
    writer: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    #[cfg(test)]
    trace: std::sync::Arc<Trace>,
}

impl std::fmt::Debug for SqliteStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteStorage")
    }
}

/// Answers waiting for the disk: the `Done`s of one committed group
/// whose caller must not hear of it before its WAL frames are synced.
type Waiting = Vec<Done>;

/// The other half of group commit: the thread that makes committed groups
/// durable while the writer already runs the next one.
///
/// The writer's connection runs with `synchronous=NORMAL`, so a COMMIT
/// writes the group's frames to the WAL without syncing them and returns;
/// the group's answers are then handed here, and given only once an
/// `fdatasync` of the WAL file, begun after that commit, has returned.
/// WAL frames are appended in order, so one sync makes every group
/// committed before it durable: all groups waiting when a sync starts share
/// it. That is the durability of `synchronous=FULL` (whose COMMIT syncs the
/// WAL itself) for every answer given, without the writer idling through
/// each sync. What SQLite itself syncs is unchanged: before a checkpoint
/// copies frames into the database file it syncs the WAL, after it the
/// database, and a WAL reused from its start has its header synced, so a
/// frame is never overwritten before the database file holds it. The
/// window in which another request can read a committed group that is not
/// yet on disk is harmless: every answer that depends on a write goes
/// through this thread after that write's sync, and a later group's sync
/// covers the earlier group's frames.
fn syncer_loop(
    wal: std::path::PathBuf,
    rx: mpsc::Receiver<Waiting>,
    #[cfg(test)] trace: std::sync::Arc<Trace>,
) {
    while let Ok(first) = rx.recv() {
        let mut groups = vec![first];
        while let Ok(g) = rx.try_recv() {
            groups.push(g);
        }
        // Opened for each sync: the file is SQLite's, and this way no
        // descriptor outlives a WAL that SQLite recreated.
        let synced = std::fs::File::open(&wal).and_then(|f| f.sync_data());
        if let Err(e) = &synced {
            tracing::error!(
                "syncing the write-ahead log failed ({e}); {} groups of writes are \
                 answered as failed",
                groups.len()
            );
        }
        #[cfg(test)]
        if synced.is_ok() {
            trace
                .synced_commits
                .fetch_add(groups.len(), Ordering::SeqCst);
        }
        for d in groups.into_iter().flatten() {
            d(synced.is_ok());
        }
    }
}

fn writer_loop(
    conn: Connection,
    rx: mpsc::Receiver<Job>,
    wal: Option<std::path::PathBuf>,
    #[cfg(test)] trace: std::sync::Arc<Trace>,
) {
    // A file database: commits are synced by the syncer thread (see
    // `syncer_loop`), so COMMIT itself does not wait for the disk. If that
    // thread cannot be started, every commit syncs itself (FULL).
    let syncer = wal.and_then(|wal| {
        let (tx, srx) = mpsc::channel::<Waiting>();
        #[cfg(test)]
        let t = trace.clone();
        let thread = std::thread::Builder::new()
            .name("passcrow-sqlite-sync".into())
            .spawn(move || {
                syncer_loop(
                    wal,
                    srx,
                    #[cfg(test)]
                    t,
                )
            });
        match thread {
            Ok(h) if conn.execute_batch("PRAGMA synchronous=NORMAL").is_ok() => Some((tx, h)),
            Ok(h) => {
                drop(tx);
                let _ = h.join();
                None
            }
            Err(e) => {
                tracing::warn!("could not start the WAL sync thread ({e}); commits sync inline");
                None
            }
        }
    });
    let mut synced = syncer.is_none(); // synchronous=FULL, as set up
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < GROUP_MAX {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        // A group holding anything a caller is answered on (an escrow, a
        // deletion, a spent token, and all code bookkeeping: verification
        // counts, codes set, attempts spent, codes used) is synced to disk
        // before its answers, so a power cut cannot hand back spent
        // guesses; a group of housekeeping only (sweeps, expired escrows
        // removed) is committed to the OS (safe from a crash of this
        // process, not from a power cut). WAL frames are sequential, so the
        // next synced commit syncs the ones before it too.
        let want = jobs.iter().any(|j| j.durable);
        if syncer.is_none() && want != synced {
            let pragma = if want {
                "PRAGMA synchronous=FULL"
            } else {
                "PRAGMA synchronous=NORMAL"
            };
            if conn.execute_batch(pragma).is_ok() {
                synced = want;
            }
        }
        // A job run outside a transaction would commit on its own while
        // its caller is told it did not: without one, none runs.
        let begin = conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| e.to_string());
        let began = begin.is_ok();
        let c = match &begin {
            Ok(()) => Ok(&conn),
            Err(e) => Err(e.as_str()),
        };
        #[cfg(test)]
        trace
            .groups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(jobs.len());
        let mut sound = true;
        let dones: Vec<Done> = jobs
            .into_iter()
            .map(|j| {
                let (done, ok) = (j.run)(c);
                sound &= ok;
                done
            })
            .collect();
        #[cfg(test)]
        let level: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap_or(-1);
        let committed = began && sound && conn.execute_batch("COMMIT").is_ok();
        if !committed {
            let _ = conn.execute_batch("ROLLBACK");
        }
        match &syncer {
            // Answered once the WAL is synced, by the syncer thread.
            Some((to_sync, _)) if committed && want => {
                if let Err(mpsc::SendError(dones)) = to_sync.send(dones) {
                    tracing::error!("the WAL sync thread stopped; writes answered as failed");
                    for d in dones {
                        d(false);
                    }
                }
            }
            _ => {
                #[cfg(test)]
                if committed {
                    // 2 is FULL, 3 EXTRA: a commit that synced itself.
                    let n = if level >= 2 {
                        &trace.synced_commits
                    } else {
                        &trace.unsynced_commits
                    };
                    n.fetch_add(1, Ordering::SeqCst);
                }
                for d in dones {
                    d(committed);
                }
            }
        }
    }
    // Every answer waiting for the disk is given before the connection
    // closes (closing may checkpoint and remove the WAL).
    if let Some((to_sync, thread)) = syncer {
        drop(to_sync);
        let _ = thread.join();
    }
}

/// Store an escrow under `id` unless a live one has it (an expired one
/// and its code are removed first); returns whether it was stored. Runs
/// inside the caller's transaction.
fn insert_row(
    c: &Connection,
    id: &StoredId,
    expires: i64,
    sealed: &[u8],
    now: i64,
) -> StorageResult<bool> {
    c.prepare_cached("DELETE FROM escrow WHERE id = ?1 AND expires <= ?2")?
        .execute(params![id, now])?;
    c.prepare_cached(
        "DELETE FROM code WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM escrow WHERE id = ?1)",
    )?
    .execute(params![id])?;
    let n = c
        .prepare_cached(
            "INSERT OR IGNORE INTO escrow (id, expires, data, created) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![id, expires, sealed, now])?;
    Ok(n == 1)
}

/// Count a verification of `id` in its window of `window` seconds (see
/// [`Storage::start_verification`]); `None`, changing nothing, when the
/// window is full, the escrow frozen or missing.
fn start_verification_in(
    c: &Connection,
    id: &StoredId,
    now: i64,
    window: i64,
    max: u32,
) -> StorageResult<Option<Started>> {
    // Start a new window, or count in the current one while under max.
    let window: Option<i64> = c
        .prepare_cached(
            "UPDATE escrow SET
                 vcount = CASE WHEN vwin + ?3 <= ?2 THEN 1 ELSE vcount + 1 END,
                 vfail  = CASE WHEN vwin + ?3 <= ?2 THEN 0 ELSE vfail END,
                 vwin   = CASE WHEN vwin + ?3 <= ?2 THEN ?2 ELSE vwin END
             WHERE id = ?1 AND frozen = 0 AND (vwin + ?3 <= ?2 OR vcount < ?4)
             RETURNING vwin",
        )?
        .query_row(params![id, now, window, max], |r| r.get(0))
        .optional()?;
    Ok(window.map(|window| Started { window }))
}

/// [`Storage::charge_delivery`] inside a transaction: decide every budget
/// first, then write them all (or nothing).
fn charge_in(c: &Connection, charge: &Charge, now: i64) -> StorageResult<Charged> {
    let suppressed: bool = c
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM suppressed WHERE hash = ?1)")?
        .query_row(params![&charge.recipient[..]], |r| r.get(0))?;
    if suppressed {
        return Ok(Charged::Suppressed);
    }
    let mut counted = Vec::with_capacity(charge.limits.len());
    for (i, l) in charge.limits.iter().enumerate() {
        let row: Option<(i64, u32, u32)> = c
            .prepare_cached(
                "SELECT start, used, reserve FROM delivery_budget WHERE scope = ?1 AND win = ?2",
            )?
            .query_row(params![l.scope, l.window], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?;
        // A window starts with the first message counted in it.
        let (start, used, reserve) = match row {
            Some((start, used, reserve)) if start + l.window > now && start <= now => {
                (start, used, reserve)
            }
            _ => (now, 0, 0),
        };
        let (reserve_hit, used, reserve) = if used < l.limit {
            (false, used + 1, reserve)
        } else if charge.reserve_ok && reserve < l.reserve {
            (true, used, reserve + 1)
        } else if charge.force {
            (false, used.saturating_add(1), reserve)
        } else {
            return Ok(Charged::Over(i));
        };
        counted.push((
            Counted {
                scope: l.scope.clone(),
                window: l.window,
                start,
                reserve: reserve_hit,
                used,
            },
            reserve,
        ));
    }
    let mut st = c.prepare_cached(
        "INSERT OR REPLACE INTO delivery_budget (scope, win, start, used, reserve)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (k, reserve) in &counted {
        st.execute(params![k.scope, k.window, k.start, k.used, reserve])?;
    }
    Ok(Charged::Counted(counted.into_iter().map(|x| x.0).collect()))
}

/// Store an escrow paid with `spend` and spend the token, unless it was
/// spent before or a live escrow has the id. Runs inside the caller's
/// transaction; changes nothing when refused.
fn insert_paid_row(
    c: &Connection,
    id: &StoredId,
    expires: i64,
    sealed: &[u8],
    spend: &Spend,
    now: i64,
) -> StorageResult<Inserted> {
    let spent: bool = c
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM token WHERE hash = ?1 AND expires > ?2)")?
        .query_row(params![&spend.hash[..], now], |r| r.get(0))?;
    if spent {
        return Ok(Inserted::TokenSpent);
    }
    if !insert_row(c, id, expires, sealed, now)? {
        return Ok(Inserted::IdTaken);
    }
    c.prepare_cached("INSERT OR REPLACE INTO token (hash, expires) VALUES (?1, ?2)")?
        .execute(params![&spend.hash[..], spend.expires])?;
    Ok(Inserted::Stored)
}

/// The UTC day of `now` (free escrows are counted per day).
/// [`Storage::check_code`] and [`Storage::check_totp`] in the caller's
/// transaction: the guessing budget, the pending code, then `probe`.
fn check_in(
    c: &Connection,
    id: &StoredId,
    probe: Probe<'_>,
    now: i64,
    limits: &GuessLimits,
) -> StorageResult<CodeCheck> {
    let (id, limits) = (*id, *limits);
    // The budget first: a frozen escrow, or one whose window is
    // spent, compares nothing (not even the right code).
    let state: Option<(bool, Guesses, i64)> = c
        .prepare_cached("SELECT frozen, gwin, gcount, gtotal, totp_step FROM escrow WHERE id = ?1")?
        .query_row(params![id], |r| {
            Ok((
                r.get(0)?,
                Guesses {
                    window: r.get(1)?,
                    in_window: r.get(2)?,
                    total: r.get(3)?,
                },
                r.get(4)?,
            ))
        })
        .optional()?;
    let Some((frozen, g, last_step)) = state else {
        return Ok(CodeCheck::NoCode);
    };
    if frozen {
        return Ok(CodeCheck::Frozen);
    }
    if let Some(until) = g.paused_until(&limits, now) {
        return Ok(CodeCheck::Paused { until });
    }
    let row: Option<(Vec<u8>, i64, u32)> = c
        .prepare_cached("SELECT mac, expires, attempts FROM code WHERE id = ?1")?
        .query_row(params![id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    Ok(match row {
        None => CodeCheck::NoCode,
        Some((_, expires, _)) if expires <= now => {
            c.execute("DELETE FROM code WHERE id = ?1", params![id])?;
            CodeCheck::Expired
        }
        Some((_, _, 0)) => CodeCheck::Void,
        Some((mac, _, attempts)) => {
            if probe.matches(&mac, last_step) {
                c.prepare_cached("DELETE FROM code WHERE id = ?1")?
                    .execute(params![id])?;
                if let Some(step) = probe.step() {
                    c.prepare_cached("UPDATE escrow SET totp_step = ?2 WHERE id = ?1")?
                        .execute(params![id, step])?;
                }
                CodeCheck::Right
            } else {
                c.prepare_cached("UPDATE code SET attempts = attempts - 1 WHERE id = ?1")?
                    .execute(params![id])?;
                // A new window opens with the first wrong guess
                // after the last one ended.
                let (window, in_window) =
                    if g.in_window == 0 || g.window.saturating_add(limits.window) <= now {
                        (now, 1)
                    } else {
                        (g.window, g.in_window.saturating_add(1))
                    };
                let total = g.total.saturating_add(1);
                let freeze = total >= limits.lifetime;
                c.prepare_cached(
                    "UPDATE escrow SET gwin = ?2, gcount = ?3, gtotal = ?4, frozen = ?5
                     WHERE id = ?1",
                )?
                .execute(params![id, window, in_window, total, freeze])?;
                if freeze {
                    // Frozen for good: its code is void too.
                    c.prepare_cached("DELETE FROM code WHERE id = ?1")?
                        .execute(params![id])?;
                }
                CodeCheck::Wrong {
                    left: if freeze { 0 } else { attempts - 1 },
                    guesses: GuessesLeft {
                        in_window: limits.per_window.saturating_sub(in_window),
                        lifetime: limits.lifetime.saturating_sub(total),
                        window_ends: window.saturating_add(limits.window),
                    },
                }
            }
        }
    })
}

fn day_of(now: i64) -> i64 {
    now.div_euclid(86_400)
}

/// Escrows held, by the counter the triggers keep.
fn escrows_held(c: &Connection) -> StorageResult<i64> {
    Ok(
        c.prepare_cached("SELECT n FROM tally WHERE name = 'escrows'")?
            .query_row([], |r| r.get(0))
            .optional()?
            .unwrap_or(0),
    )
}

/// How long a statement waits for another process holding the file.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl SqliteStorage {
    /// Open (creating and migrating as needed) the database at `path`. A
    /// database from before schema 3 that holds escrows is refused: its
    /// clear ids can be re-keyed only with the master key
    /// ([`SqliteStorage::open_migrating`], what the server uses).
    pub fn open(path: &Path) -> StorageResult<SqliteStorage> {
        Self::open_waiting(path, BUSY_TIMEOUT, None)
    }

    /// [`SqliteStorage::open`], migrating a database from before schema 3
    /// with `rekey`: in one transaction every escrow and pending code is
    /// re-keyed from its clear id to its stored id and every escrow
    /// re-sealed (a row that cannot be fails it all, leaving the file as
    /// it was); then the file is vacuumed and the WAL truncated, so the
    /// clear ids linger in no free page and no WAL frame.
    pub fn open_migrating(path: &Path, rekey: &dyn Rekey) -> StorageResult<SqliteStorage> {
        Self::open_waiting(path, BUSY_TIMEOUT, Some(rekey))
    }

    /// [`SqliteStorage::open_migrating`], waiting at most `busy` for
    /// another process holding the file.
    fn open_waiting(
        path: &Path,
        busy: std::time::Duration,
        rekey: Option<&dyn Rekey>,
    ) -> StorageResult<SqliteStorage> {
        let conn = Connection::open(path)
            .map_err(|e| StorageError(format!("opening {}: {e}", path.display())))?;
        let _ = crate::util::files::restrict_to_owner(path);
        Self::setup(&conn, busy, rekey)?;
        let mut readers = vec![];
        for _ in 0..2 {
            let r = Connection::open_with_flags(
                path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                    | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            r.busy_timeout(busy)?;
            r.execute_batch("PRAGMA cache_size=-2048; PRAGMA secure_delete=ON;")?;
            readers.push(Mutex::new(r));
        }
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        Self::start(conn, readers, Some(wal.into()))
    }

    /// A private in-memory database (for tests).
    pub fn in_memory() -> StorageResult<SqliteStorage> {
        let conn = Connection::open_in_memory()?;
        Self::setup(&conn, BUSY_TIMEOUT, None)?;
        // Another connection would see another database: reads go
        // through the writer.
        Self::start(conn, vec![], None)
    }

    fn setup(
        conn: &Connection,
        busy: std::time::Duration,
        rekey: Option<&dyn Rekey>,
    ) -> StorageResult<()> {
        conn.busy_timeout(busy)?;
        // journal_mode answers with a row; read and ignore it.
        let _: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        // secure_delete: what is deleted (a deleted escrow, a used code,
        // the rows a migration replaced) is overwritten with zeros, not
        // left in free pages.
        conn.execute_batch(
            "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA cache_size=-65536;
             PRAGMA secure_delete=ON;",
        )?;
        // The version is read and the migrations run under the write lock,
        // so two processes opening an old file (the server and a `sweep`
        // from cron) migrate it once: the second finds it done.
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let migrated = schema::migrate(conn, rekey);
        let end = if migrated.is_ok() {
            "COMMIT"
        } else {
            "ROLLBACK"
        };
        conn.execute_batch(end)?;
        migrated?;
        Self::wipe_old_pages(conn)
    }

    /// After the ids were re-keyed (the migration left the marker table
    /// `wipe_pending`): rebuild the file (no free page keeps an old row),
    /// then truncate the WAL to nothing (no old frame keeps one either; a
    /// WAL is otherwise reused from its start, never cut). The marker goes
    /// only once both are done, so a server stopped or refused in between
    /// wipes at its next start.
    fn wipe_old_pages(conn: &Connection) -> StorageResult<()> {
        let pending: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'wipe_pending')",
            [],
            |r| r.get(0),
        )?;
        if !pending {
            return Ok(());
        }
        let wipe = |conn: &Connection| -> StorageResult<bool> {
            conn.execute_batch("VACUUM")?;
            let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
            Ok(busy == 0)
        };
        match wipe(conn) {
            Ok(true) => {
                conn.execute_batch("DROP TABLE IF EXISTS wipe_pending")?;
                Ok(())
            }
            // Another process (a `sweep` from cron) holds the file or an
            // old snapshot: serve anyway, and wipe at the next start.
            Ok(false) => {
                tracing::warn!(
                    "after migrating to hashed ids the WAL could not be truncated \
                     (another process is using the database); retried at the next start"
                );
                Ok(())
            }
            Err(e) => {
                tracing::warn!(
                    "after migrating to hashed ids the file could not be vacuumed ({e}); \
                     retried at the next start"
                );
                Ok(())
            }
        }
    }

    /// Start the writer thread on `conn`; `wal` is the database's
    /// write-ahead log (none in memory), synced by its syncer thread.
    fn start(
        conn: Connection,
        readers: Vec<Mutex<Connection>>,
        wal: Option<std::path::PathBuf>,
    ) -> StorageResult<SqliteStorage> {
        let (tx, rx) = mpsc::channel::<Job>();
        #[cfg(test)]
        let trace = std::sync::Arc::new(Trace::default());
        #[cfg(test)]
        let t = trace.clone();
        let thread = std::thread::Builder::new()
            .name("passcrow-sqlite".into())
            .spawn(move || {
                writer_loop(
                    conn,
                    rx,
                    wal,
                    #[cfg(test)]
                    t,
                )
            })
            .map_err(|e| StorageError(format!("starting the writer: {e}")))?;
        Ok(SqliteStorage {
            writer: Some(tx),
            thread: Some(thread),
            readers,
            next_reader: AtomicUsize::new(0),
            #[cfg(test)]
            trace,
        })
    }

    /// Run `f` in the next group transaction; returns once committed and
    /// synced to disk.
    fn write_durable<T, F>(&self, f: F) -> StorageResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StorageResult<T> + Send + 'static,
    {
        self.submit(true, f)
    }

    /// Run `f` in the next group transaction; returns once committed
    /// (synced only if another job of the group needs it). Only for
    /// housekeeping that may be lost and redone: anything a limit depends
    /// on goes through [`SqliteStorage::write_durable`].
    fn write<T, F>(&self, f: F) -> StorageResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StorageResult<T> + Send + 'static,
    {
        self.submit(false, f)
    }

    fn submit<T, F>(&self, durable: bool, f: F) -> StorageResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StorageResult<T> + Send + 'static,
    {
        let (tx, rx) = mpsc::sync_channel::<StorageResult<T>>(1);
        let run = Box::new(move |c: Result<&Connection, &str>| -> (Done, bool) {
            let mut sound = true;
            let r = match c.map(|c| (c, c.execute_batch("SAVEPOINT job"))) {
                Err(why) => Err(StorageError(format!(
                    "could not begin a transaction: {why}"
                ))),
                Ok((_, Err(e))) => Err(StorageError::from(e)),
                // A panic in one job (a bug) fails that job only: its
                // savepoint is rolled back, its caller hears an error, and
                // the writer thread and the rest of the group carry on.
                // The panic's message is not passed on (it could quote
                // data); the panic hook has already reported where.
                Ok((c, Ok(()))) => match std::panic::catch_unwind(AssertUnwindSafe(|| f(c))) {
                    Ok(Ok(v)) => c
                        .execute_batch("RELEASE job")
                        .map(|_| v)
                        .map_err(Into::into),
                    outcome => {
                        sound = c.execute_batch("ROLLBACK TO job; RELEASE job").is_ok();
                        match outcome {
                            Ok(Err(e)) => Err(e),
                            _ => {
                                tracing::error!("a storage job panicked; it was rolled back");
                                Err(StorageError(
                                    "internal error in a storage job (it panicked and was rolled back)"
                                        .into(),
                                ))
                            }
                        }
                    }
                },
            };
            let done: Done = Box::new(move |committed: bool| {
                let _ = tx.send(match r {
                    Err(e) => Err(e),
                    Ok(_) if !committed => Err(StorageError(
                        "the transaction did not commit (or could not be synced to disk)".into(),
                    )),
                    ok => ok,
                });
            });
            (done, sound)
        });
        let job = Job { durable, run };
        self.writer
            .as_ref()
            .ok_or_else(|| StorageError("storage closed".into()))?
            .send(job)
            .map_err(|_| StorageError("the writer thread stopped".into()))?;
        #[cfg(test)]
        self.trace.submitted.fetch_add(1, Ordering::SeqCst);
        rx.recv()
            .map_err(|_| StorageError("the writer thread stopped".into()))?
    }

    /// Run a read on a reader connection (or the writer, in memory).
    fn read<T, F>(&self, f: F) -> StorageResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StorageResult<T> + Send + 'static,
    {
        if self.readers.is_empty() {
            return self.write(f);
        }
        for r in &self.readers {
            if let Ok(c) = r.try_lock() {
                return f(&c);
            }
        }
        let i = self.next_reader.fetch_add(1, Ordering::Relaxed) % self.readers.len();
        let c = self.readers[i].lock().unwrap_or_else(|p| p.into_inner());
        f(&c)
    }

    /// Escrows held, by the counter kept with every insert and deletion
    /// (what the cap on escrows held is checked against).
    pub fn escrows_held(&self) -> StorageResult<u64> {
        self.read(|c| Ok(escrows_held(c)?.max(0) as u64))
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> StorageResult<i64> {
        self.read(|c| Ok(c.query_row("PRAGMA user_version", [], |r| r.get(0))?))
    }
}

impl Drop for SqliteStorage {
    fn drop(&mut self) {
        self.writer.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Storage for SqliteStorage {
    fn insert_escrow(
        &self,
        id: &StoredId,
        expires: i64,
        sealed: &[u8],
        now: i64,
    ) -> StorageResult<bool> {
        let (id, sealed) = (*id, sealed.to_vec());
        self.write_durable(move |c| insert_row(c, &id, expires, &sealed, now))
    }

    fn insert_escrow_paid(
        &self,
        id: &StoredId,
        expires: i64,
        sealed: &[u8],
        spend: &Spend,
        now: i64,
    ) -> StorageResult<Inserted> {
        let (id, sealed, spend) = (*id, sealed.to_vec(), *spend);
        // One job, so one savepoint of one transaction: the token row and
        // the escrow row are committed (and synced) together or not at all.
        self.write_durable(move |c| insert_paid_row(c, &id, expires, &sealed, &spend, now))
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
        let (id, sealed, spend, caps) = (*id, sealed.to_vec(), spend.copied(), *caps);
        // The caps are read and the escrow stored in one job of one
        // transaction (the writer runs jobs one after another), so two
        // requests at once cannot both take the last place. Every refusal
        // comes before the first change.
        self.write_durable(move |c| {
            let held = escrows_held(c)?;
            if held >= i64::try_from(caps.max_escrows).unwrap_or(i64::MAX) {
                return Ok(Inserted::Full);
            }
            match spend {
                Some(sp) => insert_paid_row(c, &id, expires, &sealed, &sp, now),
                None => {
                    let day = day_of(now);
                    let made: i64 = c
                        .prepare_cached("SELECT n FROM free_day WHERE day = ?1")?
                        .query_row(params![day], |r| r.get(0))
                        .optional()?
                        .unwrap_or(0);
                    if made >= i64::from(caps.max_free_per_day) {
                        return Ok(Inserted::FreeCapReached);
                    }
                    if !insert_row(c, &id, expires, &sealed, now)? {
                        return Ok(Inserted::IdTaken);
                    }
                    c.prepare_cached(
                        "INSERT INTO free_day (day, n) VALUES (?1, 1)
                         ON CONFLICT (day) DO UPDATE SET n = n + 1",
                    )?
                    .execute(params![day])?;
                    Ok(Inserted::Stored)
                }
            }
        })
    }

    fn insert_escrows(&self, rows: &[(StoredId, i64, Vec<u8>)], now: i64) -> StorageResult<usize> {
        let rows = rows.to_vec();
        self.write_durable(move |c| {
            let mut st = c.prepare_cached(
                "INSERT OR IGNORE INTO escrow (id, expires, data, created) VALUES (?1, ?2, ?3, ?4)",
            )?;
            let mut n = 0;
            for (id, expires, sealed) in &rows {
                n += st.execute(params![id, expires, sealed, now])?;
            }
            Ok(n)
        })
    }

    fn get_escrow(&self, id: &StoredId, now: i64) -> StorageResult<Lookup> {
        let key = *id;
        let row: Option<EscrowRow> = self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT expires, data, frozen, gwin, gcount, gtotal, created, rdue
                 FROM escrow WHERE id = ?1",
            )?
            .query_row(params![key], |r| {
                Ok(EscrowRow {
                    expires: r.get(0)?,
                    sealed: r.get(1)?,
                    created: r.get(6)?,
                    frozen: r.get(2)?,
                    guesses: Guesses {
                        window: r.get(3)?,
                        in_window: r.get(4)?,
                        total: r.get(5)?,
                    },
                    release_due: r.get(7)?,
                })
            })
            .optional()?)
        })?;
        Ok(match row {
            None => Lookup::Missing,
            Some(row) if row.expires <= now => {
                let id = *id;
                self.write(move |c| {
                    c.execute(
                        "DELETE FROM escrow WHERE id = ?1 AND expires <= ?2",
                        params![id, now],
                    )?;
                    c.execute(
                        "DELETE FROM code WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM escrow WHERE id = ?1)",
                        params![id],
                    )?;
                    Ok(())
                })?;
                Lookup::Expired
            }
            Some(row) => Lookup::Found(row),
        })
    }

    fn delete_escrow(&self, id: &StoredId) -> StorageResult<bool> {
        let id = *id;
        self.write_durable(move |c| {
            let n = c.execute("DELETE FROM escrow WHERE id = ?1", params![id])?;
            c.execute("DELETE FROM code WHERE id = ?1", params![id])?;
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
        let id = *id;
        self.write_durable(move |c| start_verification_in(c, &id, now, window, max))
    }

    fn charge_and_start_verification(
        &self,
        charge: &Charge,
        id: &StoredId,
        now: i64,
        window: i64,
        max: u32,
    ) -> StorageResult<VerificationCharge> {
        let (charge, id) = (charge.clone(), *id);
        self.write_durable(move |c| {
            // A savepoint inside the group's transaction: a full window
            // undoes the charge, and only this job's changes.
            c.execute_batch("SAVEPOINT verification")?;
            let outcome = (|| {
                let counted = match charge_in(c, &charge, now)? {
                    Charged::Counted(counted) => counted,
                    refused => return Ok(VerificationCharge::Refused(refused)),
                };
                Ok(match start_verification_in(c, &id, now, window, max)? {
                    Some(started) => VerificationCharge::Started(counted, started),
                    None => VerificationCharge::WindowFull,
                })
            })();
            let keep = matches!(outcome, Ok(VerificationCharge::Started(..)));
            c.execute_batch(if keep {
                "RELEASE verification"
            } else {
                "ROLLBACK TO verification; RELEASE verification"
            })?;
            outcome
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
        let (id, sealed, mac) = (*id, sealed.to_vec(), mac.to_vec());
        self.write_durable(move |c| {
            // The data is sealed at rest with a fresh nonce: it tells this
            // escrow from a later one that took its id.
            let same: bool = c
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM escrow WHERE id = ?1 AND data = ?2 AND frozen = 0)",
                )?
                .query_row(params![id, sealed], |r| r.get(0))?;
            if same {
                // Codes of one escrow share a timeout, so the later
                // request expires no earlier.
                c.prepare_cached(
                    "INSERT OR REPLACE INTO code (id, mac, expires, attempts)
                     SELECT ?1, ?2, ?3, ?4
                     WHERE NOT EXISTS (SELECT 1 FROM code WHERE id = ?1 AND expires > ?3)",
                )?
                .execute(params![id, mac, expires, attempts])?;
            }
            Ok(same)
        })
    }

    fn verification_failed(
        &self,
        id: &StoredId,
        started: Started,
        forgive: u32,
    ) -> StorageResult<bool> {
        let id = *id;
        self.write_durable(move |c| {
            let n = c.execute(
                "UPDATE escrow SET vcount = vcount - 1, vfail = vfail + 1
                 WHERE id = ?1 AND vwin = ?2 AND vcount > 0 AND vfail < ?3",
                params![id, started.window, forgive],
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
        let (id, given, limits) = (*id, given.to_vec(), *limits);
        self.write_durable(move |c| check_in(c, &id, Probe::Mac(&given), now, &limits))
    }

    fn check_totp(
        &self,
        id: &StoredId,
        step: Option<i64>,
        now: i64,
        limits: &GuessLimits,
    ) -> StorageResult<CodeCheck> {
        let (id, limits) = (*id, *limits);
        self.write_durable(move |c| check_in(c, &id, Probe::Step(step), now, &limits))
    }

    fn start_release(&self, id: &StoredId, due: i64, cancel: &[u8]) -> StorageResult<bool> {
        let (id, cancel) = (*id, cancel.to_vec());
        self.write_durable(move |c| {
            let n = c.execute(
                "UPDATE escrow SET rdue = ?2, rcancel = ?3 WHERE id = ?1 AND rdue = 0 AND frozen = 0",
                params![id, due, cancel],
            )?;
            Ok(n == 1)
        })
    }

    fn abort_release(&self, id: &StoredId) -> StorageResult<()> {
        let id = *id;
        self.write_durable(move |c| {
            c.execute(
                "UPDATE escrow SET rdue = 0, rcancel = x'' WHERE id = ?1 AND rdue > 0",
                params![id],
            )?;
            Ok(())
        })
    }

    fn release_by_cancel(&self, cancel: &[u8]) -> StorageResult<Option<i64>> {
        let cancel = cancel.to_vec();
        self.read(move |c| {
            Ok(
                c.prepare_cached("SELECT rdue FROM escrow WHERE rcancel = ?1 AND rdue != 0")?
                    .query_row(params![cancel], |r| r.get(0))
                    .optional()?,
            )
        })
    }

    fn cancel_release(&self, cancel: &[u8], now: i64) -> StorageResult<ReleaseCancel> {
        let cancel = cancel.to_vec();
        self.write_durable(move |c| {
            let row: Option<(Vec<u8>, i64)> = c
                .prepare_cached("SELECT id, rdue FROM escrow WHERE rcancel = ?1 AND rdue != 0")?
                .query_row(params![cancel], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            Ok(match row {
                None => ReleaseCancel::Unknown,
                Some((_, RELEASE_STOPPED)) => ReleaseCancel::Already,
                Some((_, due)) if due <= now => ReleaseCancel::TooLate { due },
                Some((id, due)) => {
                    c.execute(
                        "UPDATE escrow SET rdue = ?2 WHERE id = ?1",
                        params![id, RELEASE_STOPPED],
                    )?;
                    ReleaseCancel::Stopped { due }
                }
            })
        })
    }

    fn sweep(&self, now: i64) -> StorageResult<Swept> {
        // In slices, so requests waiting for the writer are never held up
        // for long by a day's worth of expired escrows.
        const SLICE: i64 = 5000;
        let mut escrows = 0u64;
        loop {
            let n = self.write(move |c| {
                Ok(c.execute(
                    "DELETE FROM escrow WHERE id IN
                         (SELECT id FROM escrow WHERE expires <= ?1 LIMIT ?2)",
                    params![now, SLICE],
                )?)
            })?;
            escrows += n as u64;
            if (n as i64) < SLICE {
                break;
            }
        }
        let mut out = self.write(move |c| {
            let mut codes = c.execute("DELETE FROM code WHERE expires <= ?1", params![now])?;
            codes += c.execute(
                "DELETE FROM code WHERE id NOT IN (SELECT id FROM escrow)",
                [],
            )?;
            let tokens = c.execute("DELETE FROM token WHERE expires <= ?1", params![now])?;
            c.execute(
                "DELETE FROM delivery_budget WHERE start + win <= ?1",
                params![now],
            )?;
            // Yesterday's count is kept (a clock a little behind must not
            // find it gone); older days are of no use.
            c.execute(
                "DELETE FROM free_day WHERE day < ?1",
                params![day_of(now) - 1],
            )?;
            // Status counts whose window is over count nothing any more.
            c.execute("DELETE FROM status_count WHERE until <= ?1", params![now])?;
            Ok(Swept {
                escrows: 0,
                codes: codes as u64,
                tokens: tokens as u64,
            })
        })?;
        out.escrows = escrows;
        Ok(out)
    }

    fn counts(&self) -> StorageResult<Counts> {
        self.read(|c| {
            let escrows: i64 = c.query_row("SELECT COUNT(*) FROM escrow", [], |r| r.get(0))?;
            let codes: i64 = c.query_row("SELECT COUNT(*) FROM code", [], |r| r.get(0))?;
            Ok(Counts {
                escrows: escrows.max(0) as u64,
                codes: codes.max(0) as u64,
            })
        })
    }

    fn charge_delivery(&self, charge: &Charge, now: i64) -> StorageResult<Charged> {
        let charge = charge.clone();
        self.write_durable(move |c| charge_in(c, &charge, now))
    }

    fn refund_delivery(&self, counted: &[Counted]) -> StorageResult<()> {
        let counted = counted.to_vec();
        self.write_durable(move |c| {
            for k in &counted {
                let col = if k.reserve { "reserve" } else { "used" };
                c.execute(
                    &format!(
                        "UPDATE delivery_budget SET {col} = {col} - 1
                         WHERE scope = ?1 AND win = ?2 AND start = ?3 AND {col} > 0"
                    ),
                    params![k.scope, k.window, k.start],
                )?;
            }
            Ok(())
        })
    }

    fn suppress(&self, recipient: &[u8; 16], now: i64) -> StorageResult<bool> {
        let r = *recipient;
        self.write_durable(move |c| {
            let n = c.execute(
                "INSERT OR IGNORE INTO suppressed (hash, since) VALUES (?1, ?2)",
                params![&r[..], now],
            )?;
            Ok(n == 1)
        })
    }

    fn is_suppressed(&self, recipient: &[u8; 16]) -> StorageResult<bool> {
        let r = *recipient;
        self.read(move |c| {
            Ok(
                c.prepare_cached("SELECT EXISTS (SELECT 1 FROM suppressed WHERE hash = ?1)")?
                    .query_row(params![&r[..]], |row| row.get(0))?,
            )
        })
    }

    fn count_status(&self, id: &StoredId, now: i64, window: i64, max: u32) -> StorageResult<bool> {
        let id = *id;
        self.write_durable(move |c| {
            // A new window, or one more in the current one while under max.
            let n = c
                .prepare_cached(
                    "INSERT INTO status_count (id, until, count) VALUES (?1, ?2 + ?3, 1)
                     ON CONFLICT (id) DO UPDATE SET
                         count = CASE WHEN until <= ?2 THEN 1 ELSE count + 1 END,
                         until = CASE WHEN until <= ?2 THEN ?2 + ?3 ELSE until END
                     WHERE until <= ?2 OR count < ?4",
                )?
                .execute(params![id, now, window, max])?;
            Ok(n == 1)
        })
    }
}

#[cfg(test)]
mod tests;
