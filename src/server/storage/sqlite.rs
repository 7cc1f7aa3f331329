//! [`SqliteStorage`]: the [`Storage`] backend we ship, one SQLite file in
//! WAL mode, one writer thread committing in groups, a few readers.

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};

use rusqlite::{params, Connection, OptionalExtension};

use super::schema;
use super::{
    CodeCheck, Counts, EscrowRow, Inserted, Lookup, Spend, Started, Storage, StorageError,
    StorageResult, Swept,
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

/// Most jobs one transaction takes.
const GROUP_MAX: usize = 512;

/// What the writer did, for tests: commits by the `synchronous` level in
/// force when they were made (read back from SQLite, not assumed), and
/// the size of every group.
#[cfg(test)]
#[derive(Default)]
struct Trace {
    /// Jobs handed to the writer.
    submitted: AtomicUsize,
    /// Commits made with `synchronous=FULL` (synced before the answer).
    synced_commits: AtomicUsize,
    /// Commits made with a weaker `synchronous`.
    unsynced_commits: AtomicUsize,
    /// Jobs per group, in order.
    groups: Mutex<Vec<usize>>,
}

/// SQLite storage: one file, WAL, `synchronous=FULL`.
///
/// Writes go to one writer thread that commits them in groups: every job
/// waiting when a transaction starts joins it (each in its own savepoint,
/// so one failing job does not undo the others), then one commit, one
/// disk sync, and only then are the callers answered. Under load many
/// requests share a sync; alone, a request waits for just its own. Reads
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

fn writer_loop(
    conn: Connection,
    rx: mpsc::Receiver<Job>,
    #[cfg(test)] trace: std::sync::Arc<Trace>,
) {
    let mut synced = true; // synchronous=FULL, as set up
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
        // at commit, so a power cut cannot hand back spent guesses; a
        // group of housekeeping only (sweeps, expired escrows removed) is
        // committed to the OS (safe from a crash of this process, not from
        // a power cut). WAL frames are sequential, so the next synced
        // commit syncs the ones before it too.
        let want = jobs.iter().any(|j| j.durable);
        if want != synced {
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
        #[cfg(test)]
        if committed {
            // 2 is FULL, 3 EXTRA.
            let n = if level >= 2 {
                &trace.synced_commits
            } else {
                &trace.unsynced_commits
            };
            n.fetch_add(1, Ordering::SeqCst);
        }
        if !committed {
            let _ = conn.execute_batch("ROLLBACK");
        }
        for d in dones {
            d(committed);
        }
    }
}

/// Store an escrow under `id` unless a live one has it (an expired one
/// and its code are removed first); returns whether it was stored. Runs
/// inside the caller's transaction.
fn insert_row(
    c: &Connection,
    id: &str,
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
        .prepare_cached("INSERT OR IGNORE INTO escrow (id, expires, data) VALUES (?1, ?2, ?3)")?
        .execute(params![id, expires, sealed])?;
    Ok(n == 1)
}

/// How long a statement waits for another process holding the file.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl SqliteStorage {
    /// Open (creating and migrating as needed) the database at `path`.
    pub fn open(path: &Path) -> StorageResult<SqliteStorage> {
        Self::open_waiting(path, BUSY_TIMEOUT)
    }

    /// [`SqliteStorage::open`], waiting at most `busy` for another process
    /// holding the file.
    fn open_waiting(path: &Path, busy: std::time::Duration) -> StorageResult<SqliteStorage> {
        let conn = Connection::open(path)
            .map_err(|e| StorageError(format!("opening {}: {e}", path.display())))?;
        let _ = crate::util::files::restrict_to_owner(path);
        Self::setup(&conn, busy)?;
        let mut readers = vec![];
        for _ in 0..2 {
            let r = Connection::open_with_flags(
                path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                    | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            r.busy_timeout(busy)?;
            r.execute_batch("PRAGMA cache_size=-2048;")?;
            readers.push(Mutex::new(r));
        }
        Self::start(conn, readers)
    }

    /// A private in-memory database (for tests).
    pub fn in_memory() -> StorageResult<SqliteStorage> {
        let conn = Connection::open_in_memory()?;
        Self::setup(&conn, BUSY_TIMEOUT)?;
        // Another connection would see another database: reads go
        // through the writer.
        Self::start(conn, vec![])
    }

    fn setup(conn: &Connection, busy: std::time::Duration) -> StorageResult<()> {
        conn.busy_timeout(busy)?;
        // journal_mode answers with a row; read and ignore it.
        let _: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        conn.execute_batch(
            "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA cache_size=-65536;",
        )?;
        // The version is read and the migrations run under the write lock,
        // so two processes opening an old file (the server and a `sweep`
        // from cron) migrate it once: the second finds it done.
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let migrated = schema::migrate(conn);
        let end = if migrated.is_ok() {
            "COMMIT"
        } else {
            "ROLLBACK"
        };
        conn.execute_batch(end)?;
        migrated
    }

    fn start(conn: Connection, readers: Vec<Mutex<Connection>>) -> StorageResult<SqliteStorage> {
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
                    Ok(_) if !committed => {
                        Err(StorageError("the transaction did not commit".into()))
                    }
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
        id: &str,
        expires: i64,
        sealed: &[u8],
        now: i64,
    ) -> StorageResult<bool> {
        let (id, sealed) = (id.to_string(), sealed.to_vec());
        self.write_durable(move |c| insert_row(c, &id, expires, &sealed, now))
    }

    fn insert_escrow_paid(
        &self,
        id: &str,
        expires: i64,
        sealed: &[u8],
        spend: &Spend,
        now: i64,
    ) -> StorageResult<Inserted> {
        let (id, sealed, spend) = (id.to_string(), sealed.to_vec(), *spend);
        // One job, so one savepoint of one transaction: the token row and
        // the escrow row are committed (and synced) together or not at all.
        self.write_durable(move |c| {
            let spent: bool = c
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM token WHERE hash = ?1 AND expires > ?2)",
                )?
                .query_row(params![&spend.hash[..], now], |r| r.get(0))?;
            if spent {
                return Ok(Inserted::TokenSpent);
            }
            if !insert_row(c, &id, expires, &sealed, now)? {
                return Ok(Inserted::IdTaken);
            }
            c.prepare_cached("INSERT OR REPLACE INTO token (hash, expires) VALUES (?1, ?2)")?
                .execute(params![&spend.hash[..], spend.expires])?;
            Ok(Inserted::Stored)
        })
    }

    fn insert_escrows(&self, rows: &[(String, i64, Vec<u8>)], _now: i64) -> StorageResult<usize> {
        let rows = rows.to_vec();
        self.write_durable(move |c| {
            let mut st = c.prepare_cached(
                "INSERT OR IGNORE INTO escrow (id, expires, data) VALUES (?1, ?2, ?3)",
            )?;
            let mut n = 0;
            for (id, expires, sealed) in &rows {
                n += st.execute(params![id, expires, sealed])?;
            }
            Ok(n)
        })
    }

    fn get_escrow(&self, id: &str, now: i64) -> StorageResult<Lookup> {
        let key = id.to_string();
        let row: Option<(i64, Vec<u8>)> = self.read(move |c| {
            Ok(
                c.prepare_cached("SELECT expires, data FROM escrow WHERE id = ?1")?
                    .query_row(params![key], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?,
            )
        })?;
        Ok(match row {
            None => Lookup::Missing,
            Some((expires, _)) if expires <= now => {
                let id = id.to_string();
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
            Some((expires, sealed)) => Lookup::Found(EscrowRow {
                expires,
                sealed,
                // set by the guessing budget (issue 12)
                frozen: false,
            }),
        })
    }

    fn delete_escrow(&self, id: &str) -> StorageResult<bool> {
        let id = id.to_string();
        self.write_durable(move |c| {
            let n = c.execute("DELETE FROM escrow WHERE id = ?1", params![id])?;
            c.execute("DELETE FROM code WHERE id = ?1", params![id])?;
            Ok(n > 0)
        })
    }

    fn start_verification(
        &self,
        id: &str,
        now: i64,
        window: i64,
        max: u32,
    ) -> StorageResult<Option<Started>> {
        let id = id.to_string();
        self.write_durable(move |c| {
            // Start a new window, or count in the current one while under max.
            let window: Option<i64> = c
                .prepare_cached(
                    "UPDATE escrow SET
                         vcount = CASE WHEN vwin + ?3 <= ?2 THEN 1 ELSE vcount + 1 END,
                         vfail  = CASE WHEN vwin + ?3 <= ?2 THEN 0 ELSE vfail END,
                         vwin   = CASE WHEN vwin + ?3 <= ?2 THEN ?2 ELSE vwin END
                     WHERE id = ?1 AND (vwin + ?3 <= ?2 OR vcount < ?4)
                     RETURNING vwin",
                )?
                .query_row(params![id, now, window, max], |r| r.get(0))
                .optional()?;
            Ok(window.map(|window| Started { window }))
        })
    }

    fn set_code(
        &self,
        id: &str,
        sealed: &[u8],
        mac: &[u8],
        expires: i64,
        attempts: u32,
    ) -> StorageResult<bool> {
        let (id, sealed, mac) = (id.to_string(), sealed.to_vec(), mac.to_vec());
        self.write_durable(move |c| {
            // The data is sealed at rest with a fresh nonce: it tells this
            // escrow from a later one that took its id.
            let same: bool = c
                .prepare_cached("SELECT EXISTS (SELECT 1 FROM escrow WHERE id = ?1 AND data = ?2)")?
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

    fn verification_failed(&self, id: &str, started: Started, forgive: u32) -> StorageResult<bool> {
        let id = id.to_string();
        self.write_durable(move |c| {
            let n = c.execute(
                "UPDATE escrow SET vcount = vcount - 1, vfail = vfail + 1
                 WHERE id = ?1 AND vwin = ?2 AND vcount > 0 AND vfail < ?3",
                params![id, started.window, forgive],
            )?;
            Ok(n == 1)
        })
    }

    fn check_code(&self, id: &str, given: &[u8], now: i64) -> StorageResult<CodeCheck> {
        let (id, given) = (id.to_string(), given.to_vec());
        self.write_durable(move |c| {
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
                    if crate::crypto::ct_eq(&mac, &given) {
                        c.prepare_cached("DELETE FROM code WHERE id = ?1")?
                            .execute(params![id])?;
                        CodeCheck::Right
                    } else {
                        c.execute(
                            "UPDATE code SET attempts = attempts - 1 WHERE id = ?1",
                            params![id],
                        )?;
                        CodeCheck::Wrong { left: attempts - 1 }
                    }
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

    fn count_status(&self, id: &str, now: i64, window: i64, max: u32) -> StorageResult<bool> {
        let id = id.to_string();
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
