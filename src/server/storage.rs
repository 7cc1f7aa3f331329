//! Where the server keeps its state: escrows, pending codes, spent tokens.
//!
//! [`Storage`] is small on purpose, so another backend is easy to add;
//! [`SqliteStorage`] is the one we ship. Everything handed to storage is
//! already sealed or hashed by the protocol layer: storage never sees an
//! escrow in clear, a verification code, or a key.
//!
//! Every operation that must not race (checking a code and spending an
//! attempt, counting a verification and issuing its code, spending a token)
//! is a single call and a single transaction (one disk sync).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};

use rusqlite::{params, Connection, OptionalExtension};

/// A storage failure (always answered as an internal error).
#[derive(Debug)]
pub struct StorageError(pub String);

impl std::fmt::Display for StorageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "storage: {}", self.0)
    }
}

impl std::error::Error for StorageError {}

impl From<rusqlite::Error> for StorageError {
    fn from(e: rusqlite::Error) -> Self {
        StorageError(e.to_string())
    }
}

/// Storage result.
pub type StorageResult<T> = std::result::Result<T, StorageError>;

/// A stored escrow.
#[derive(Clone)]
pub struct EscrowRow {
    /// Unix time it expires.
    pub expires: i64,
    /// The escrow data, sealed under the server's master key.
    pub sealed: Vec<u8>,
}

impl std::fmt::Debug for EscrowRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "EscrowRow {{ expires: {}, sealed: {} bytes }}",
            self.expires,
            self.sealed.len()
        )
    }
}

/// What looking an escrow up found.
#[derive(Debug)]
pub enum Lookup {
    /// Live.
    Found(EscrowRow),
    /// Present but past its expiration (it is removed).
    Expired,
    /// Not there.
    Missing,
}

/// The outcome of trying a code against the pending one.
#[derive(Debug, PartialEq, Eq)]
pub enum CodeCheck {
    /// No code was issued (or it was used or deleted).
    NoCode,
    /// The code's time is up (it is removed).
    Expired,
    /// Every attempt was spent earlier; the code is void.
    Void,
    /// It matched: the code is consumed (removed).
    Right,
    /// It did not match; one attempt was spent and `left` remain.
    Wrong {
        /// Attempts left (0: the code is now void).
        left: u32,
    },
}

/// A verification [`Storage::start_verification`] counted: what
/// [`Storage::verification_failed`] needs if its code is not delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Started {
    /// Start of the rate-limit window it was counted in.
    pub window: i64,
}

/// What a sweep removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Escrows.
    pub escrows: u64,
    /// Codes.
    pub codes: u64,
    /// Spent-token records.
    pub tokens: u64,
}

/// Counts for `stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Escrows held (including expired ones not yet swept).
    pub escrows: u64,
    /// Pending codes.
    pub codes: u64,
}

/// The operations the protocol needs.
pub trait Storage: Send + Sync {
    /// Store an escrow under `id` unless a live one has it; returns whether
    /// it was stored. Durable before it returns.
    fn insert_escrow(&self, id: &str, expires: i64, sealed: &[u8], now: i64)
        -> StorageResult<bool>;
    /// Store many escrows at once (bulk import, benchmarks): ids must be
    /// new; rows whose id is taken are skipped. Returns how many were
    /// stored. The default inserts one by one.
    fn insert_escrows(&self, rows: &[(String, i64, Vec<u8>)], now: i64) -> StorageResult<usize> {
        let mut n = 0;
        for (id, expires, sealed) in rows {
            if self.insert_escrow(id, *expires, sealed, now)? {
                n += 1;
            }
        }
        Ok(n)
    }
    /// Look an escrow up.
    fn get_escrow(&self, id: &str, now: i64) -> StorageResult<Lookup>;
    /// Remove an escrow and its code; returns whether it existed.
    fn delete_escrow(&self, id: &str) -> StorageResult<bool>;
    /// Count a verification of `id` in a fixed window of `window` seconds,
    /// before its code is sent. Returns `None`, changing nothing, when
    /// `max` were already counted in the window (or there is no such
    /// escrow). The pending code is left as it is: the new one replaces it
    /// only once delivered ([`Storage::set_code`]), so a code nobody
    /// received can never be guessed at or displace one somebody did.
    fn start_verification(
        &self,
        id: &str,
        now: i64,
        window: i64,
        max: u32,
    ) -> StorageResult<Option<Started>>;
    /// Make `mac` (the keyed hash of a code just delivered) the pending
    /// code of the escrow `id` whose stored data is `sealed` (as read
    /// before the delivery), replacing a code that expires no later: of
    /// two codes delivered at once, the one requested last stays pending,
    /// whichever arrived last. Returns false, storing nothing, if that
    /// escrow is gone (deleted, swept, or replaced by another escrow with
    /// the same id while the code was on its way).
    fn set_code(
        &self,
        id: &str,
        sealed: &[u8],
        mac: &[u8],
        expires: i64,
        attempts: u32,
    ) -> StorageResult<bool>;
    /// Record that the code of a counted verification could not be
    /// delivered. While its window is the current one and fewer than
    /// `forgive` failures were forgiven in it, the verification is
    /// uncounted (returns true); past that, failures count like
    /// deliveries, so an escrow never gets more than `max + forgive`
    /// delivery attempts in a window.
    fn verification_failed(&self, id: &str, started: Started, forgive: u32) -> StorageResult<bool>;
    /// Try `mac` (the keyed hash of a code the user typed) against the
    /// pending code of `id`, compared in constant time, in one
    /// transaction: a match consumes the code, a mismatch spends an attempt.
    fn check_code(&self, id: &str, mac: &[u8], now: i64) -> StorageResult<CodeCheck>;
    /// Record a payment token (by its hash) as spent until `expires`;
    /// false when it was already spent.
    fn spend_token(&self, hash: &[u8], expires: i64, now: i64) -> StorageResult<bool>;
    /// Remove everything expired.
    fn sweep(&self, now: i64) -> StorageResult<Swept>;
    /// Counts for `stats`.
    fn counts(&self) -> StorageResult<Counts>;
}

/// The schema version this code writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 2;

const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS escrow (
    id      TEXT PRIMARY KEY,
    expires INTEGER NOT NULL,
    data    BLOB NOT NULL,
    vwin    INTEGER NOT NULL DEFAULT 0,
    vcount  INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS escrow_expires ON escrow(expires);
CREATE TABLE IF NOT EXISTS code (
    id       TEXT PRIMARY KEY,
    mac      BLOB NOT NULL,
    expires  INTEGER NOT NULL,
    attempts INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS token (
    hash    BLOB PRIMARY KEY,
    expires INTEGER NOT NULL
) WITHOUT ROWID;
";

/// Version 2: failed deliveries forgiven in the current window.
const SCHEMA_V2: &str = "
ALTER TABLE escrow ADD COLUMN vfail INTEGER NOT NULL DEFAULT 0;
";

/// A unit of work for the writer thread: runs inside the open
/// transaction and gives back what to do once the commit is known.
struct Job {
    /// Must be on disk before the caller hears of it.
    durable: bool,
    run: Run,
}
/// Runs a job inside the group's transaction; given no connection when the
/// transaction could not begin, only why.
type Run = Box<dyn FnOnce(Result<&Connection, &str>) -> Done + Send>;
/// Called with whether the transaction committed (and reached the disk).
type Done = Box<dyn FnOnce(bool) + Send>;

/// Most jobs one transaction takes.
const GROUP_MAX: usize = 512;

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
}

impl std::fmt::Debug for SqliteStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteStorage")
    }
}

fn writer_loop(conn: Connection, rx: mpsc::Receiver<Job>) {
    let mut synced = true; // synchronous=FULL, as set up
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < GROUP_MAX {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        // A group holding an escrow (or a deletion, or a spent token) is
        // synced to disk at commit; a group of code bookkeeping only is
        // committed to the OS (safe from a crash of this process, not
        // from a power cut). WAL frames are sequential, so the next synced
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
        let dones: Vec<Done> = jobs.into_iter().map(|j| (j.run)(c)).collect();
        let committed = began && conn.execute_batch("COMMIT").is_ok();
        if !committed {
            let _ = conn.execute_batch("ROLLBACK");
        }
        for d in dones {
            d(committed);
        }
    }
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
        let migrated = Self::migrate(conn);
        let end = if migrated.is_ok() {
            "COMMIT"
        } else {
            "ROLLBACK"
        };
        conn.execute_batch(end)?;
        migrated
    }

    fn migrate(conn: &Connection) -> StorageResult<()> {
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(StorageError(format!(
                "database schema {version} is newer than this server understands ({SCHEMA_VERSION})"
            )));
        }
        if version < 1 {
            conn.execute_batch(SCHEMA_V1)?;
        }
        if version < 2 {
            conn.execute_batch(SCHEMA_V2)?;
        }
        // Later migrations go here: `if version < 3 { ... }`.
        if version < SCHEMA_VERSION {
            conn.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))?;
        }
        Ok(())
    }

    fn start(conn: Connection, readers: Vec<Mutex<Connection>>) -> StorageResult<SqliteStorage> {
        let (tx, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("passcrow-sqlite".into())
            .spawn(move || writer_loop(conn, rx))
            .map_err(|e| StorageError(format!("starting the writer: {e}")))?;
        Ok(SqliteStorage {
            writer: Some(tx),
            thread: Some(thread),
            readers,
            next_reader: AtomicUsize::new(0),
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
    /// (synced only if another job of the group needs it).
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
        let run = Box::new(move |c: Result<&Connection, &str>| -> Done {
            let r = match c.map(|c| (c, c.execute_batch("SAVEPOINT job"))) {
                Err(why) => Err(StorageError(format!(
                    "could not begin a transaction: {why}"
                ))),
                Ok((_, Err(e))) => Err(StorageError::from(e)),
                Ok((c, Ok(()))) => match f(c) {
                    Ok(v) => c
                        .execute_batch("RELEASE job")
                        .map(|_| v)
                        .map_err(Into::into),
                    Err(e) => {
                        let _ = c.execute_batch("ROLLBACK TO job; RELEASE job");
                        Err(e)
                    }
                },
            };
            Box::new(move |committed: bool| {
                let _ = tx.send(match r {
                    Err(e) => Err(e),
                    Ok(_) if !committed => {
                        Err(StorageError("the transaction did not commit".into()))
                    }
                    ok => ok,
                });
            })
        });
        let job = Job { durable, run };
        self.writer
            .as_ref()
            .ok_or_else(|| StorageError("storage closed".into()))?
            .send(job)
            .map_err(|_| StorageError("the writer thread stopped".into()))?;
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
        self.write_durable(move |c| {
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
            Some((expires, sealed)) => Lookup::Found(EscrowRow { expires, sealed }),
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
        self.write(move |c| {
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
        self.write(move |c| {
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
        self.write(move |c| {
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
        self.write(move |c| {
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

    fn spend_token(&self, hash: &[u8], expires: i64, now: i64) -> StorageResult<bool> {
        let hash = hash.to_vec();
        self.write_durable(move |c| {
            c.execute(
                "DELETE FROM token WHERE hash = ?1 AND expires <= ?2",
                params![hash, now],
            )?;
            let n = c.execute(
                "INSERT OR IGNORE INTO token (hash, expires) VALUES (?1, ?2)",
                params![hash, expires],
            )?;
            Ok(n == 1)
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
}

#[cfg(test)]
mod tests {
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

        assert!(s.spend_token(b"t", 40, 10).unwrap());
        assert!(!s.spend_token(b"t", 40, 20).unwrap());
        assert!(s.spend_token(b"t", 80, 40).unwrap());

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
        assert_eq!(s.schema_version().unwrap(), 2);
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
        assert_eq!(s.schema_version().unwrap(), 2);
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
                assert_eq!(o.join().unwrap().unwrap(), 2);
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
}
