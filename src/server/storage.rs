//! Where the server keeps its state: escrows, pending codes, spent tokens.
//!
//! [`Storage`] is small on purpose, so another backend is easy to add;
//! [`SqliteStorage`] is the one we ship. Everything handed to storage is
//! already sealed or hashed by the protocol layer: storage never sees an
//! escrow in clear, a verification code, or a key.
//!
//! Every operation that must not race (spending an attempt, counting
//! verifications, spending a token) is a single atomic call.

use std::path::Path;
use std::sync::Mutex;

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

/// The outcome of spending one attempt at a pending code.
#[derive(Debug, PartialEq, Eq)]
pub enum Attempt {
    /// No code was issued (or it was used or deleted).
    NoCode,
    /// The code's time is up (it is removed).
    Expired,
    /// Every attempt was spent; the code is void.
    Void,
    /// One attempt was spent: compare against `mac`; `left` remain.
    Try {
        /// The keyed hash of the issued code.
        mac: Vec<u8>,
        /// Attempts left after this one.
        left: u32,
    },
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
    /// Look an escrow up.
    fn get_escrow(&self, id: &str, now: i64) -> StorageResult<Lookup>;
    /// Remove an escrow and its code; returns whether it existed.
    fn delete_escrow(&self, id: &str) -> StorageResult<bool>;
    /// Count a verification request for `id` in a fixed window of `window`
    /// seconds; false (and nothing counted) when `max` were already made.
    fn count_verification(&self, id: &str, now: i64, window: i64, max: u32)
        -> StorageResult<bool>;
    /// Set the pending code of `id` (replacing any earlier one).
    fn put_code(&self, id: &str, mac: &[u8], expires: i64, attempts: u32) -> StorageResult<()>;
    /// Spend one attempt at the pending code of `id`.
    fn take_attempt(&self, id: &str, now: i64) -> StorageResult<Attempt>;
    /// Remove the pending code of `id`.
    fn delete_code(&self, id: &str) -> StorageResult<()>;
    /// Record a payment token (by its hash) as spent until `expires`;
    /// false when it was already spent.
    fn spend_token(&self, hash: &[u8], expires: i64, now: i64) -> StorageResult<bool>;
    /// Remove everything expired.
    fn sweep(&self, now: i64) -> StorageResult<Swept>;
    /// Counts for `stats`.
    fn counts(&self) -> StorageResult<Counts>;
}

/// The schema version this code writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 1;

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

/// SQLite storage: one file, WAL, `synchronous=FULL`.
pub struct SqliteStorage {
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for SqliteStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteStorage")
    }
}

impl SqliteStorage {
    /// Open (creating and migrating as needed) the database at `path`.
    pub fn open(path: &Path) -> StorageResult<SqliteStorage> {
        let conn = Connection::open(path)
            .map_err(|e| StorageError(format!("opening {}: {e}", path.display())))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
        Self::setup(conn)
    }

    /// A private in-memory database (for tests).
    pub fn in_memory() -> StorageResult<SqliteStorage> {
        Self::setup(Connection::open_in_memory()?)
    }

    fn setup(conn: Connection) -> StorageResult<SqliteStorage> {
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        // journal_mode answers with a row; read and ignore it.
        let _: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(StorageError(format!(
                "database schema {version} is newer than this server understands ({SCHEMA_VERSION})"
            )));
        }
        if version < 1 {
            conn.execute_batch(&format!(
                "BEGIN; {SCHEMA_V1} PRAGMA user_version = 1; COMMIT;"
            ))?;
        }
        // Later migrations go here: `if version < 2 { ... }`.
        Ok(SqliteStorage {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> StorageResult<i64> {
        Ok(self
            .conn()
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
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
        let mut c = self.conn();
        let tx = c.transaction()?;
        tx.execute(
            "DELETE FROM escrow WHERE id = ?1 AND expires <= ?2",
            params![id, now],
        )?;
        tx.execute("DELETE FROM code WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM escrow WHERE id = ?1)", params![id])?;
        let n = tx.execute(
            "INSERT OR IGNORE INTO escrow (id, expires, data) VALUES (?1, ?2, ?3)",
            params![id, expires, sealed],
        )?;
        tx.commit()?;
        Ok(n == 1)
    }

    fn get_escrow(&self, id: &str, now: i64) -> StorageResult<Lookup> {
        let c = self.conn();
        let row: Option<(i64, Vec<u8>)> = c
            .query_row(
                "SELECT expires, data FROM escrow WHERE id = ?1",
                params![id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(match row {
            None => Lookup::Missing,
            Some((expires, _)) if expires <= now => {
                c.execute("DELETE FROM escrow WHERE id = ?1", params![id])?;
                c.execute("DELETE FROM code WHERE id = ?1", params![id])?;
                Lookup::Expired
            }
            Some((expires, sealed)) => Lookup::Found(EscrowRow { expires, sealed }),
        })
    }

    fn delete_escrow(&self, id: &str) -> StorageResult<bool> {
        let mut c = self.conn();
        let tx = c.transaction()?;
        let n = tx.execute("DELETE FROM escrow WHERE id = ?1", params![id])?;
        tx.execute("DELETE FROM code WHERE id = ?1", params![id])?;
        tx.commit()?;
        Ok(n > 0)
    }

    fn count_verification(
        &self,
        id: &str,
        now: i64,
        window: i64,
        max: u32,
    ) -> StorageResult<bool> {
        let c = self.conn();
        // One statement: start a new window, or count in the current one
        // while under the limit.
        let n = c.execute(
            "UPDATE escrow SET
                 vcount = CASE WHEN vwin + ?3 <= ?2 THEN 1 ELSE vcount + 1 END,
                 vwin   = CASE WHEN vwin + ?3 <= ?2 THEN ?2 ELSE vwin END
             WHERE id = ?1 AND (vwin + ?3 <= ?2 OR vcount < ?4)",
            params![id, now, window, max],
        )?;
        Ok(n == 1)
    }

    fn put_code(&self, id: &str, mac: &[u8], expires: i64, attempts: u32) -> StorageResult<()> {
        self.conn().execute(
            "INSERT OR REPLACE INTO code (id, mac, expires, attempts) VALUES (?1, ?2, ?3, ?4)",
            params![id, mac, expires, attempts],
        )?;
        Ok(())
    }

    fn take_attempt(&self, id: &str, now: i64) -> StorageResult<Attempt> {
        let mut c = self.conn();
        let tx = c.transaction()?;
        let row: Option<(Vec<u8>, i64, u32)> = tx
            .query_row(
                "SELECT mac, expires, attempts FROM code WHERE id = ?1",
                params![id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let out = match row {
            None => Attempt::NoCode,
            Some((_, expires, _)) if expires <= now => {
                tx.execute("DELETE FROM code WHERE id = ?1", params![id])?;
                Attempt::Expired
            }
            Some((_, _, 0)) => Attempt::Void,
            Some((mac, _, attempts)) => {
                tx.execute(
                    "UPDATE code SET attempts = attempts - 1 WHERE id = ?1",
                    params![id],
                )?;
                Attempt::Try {
                    mac,
                    left: attempts - 1,
                }
            }
        };
        tx.commit()?;
        Ok(out)
    }

    fn delete_code(&self, id: &str) -> StorageResult<()> {
        self.conn()
            .execute("DELETE FROM code WHERE id = ?1", params![id])?;
        Ok(())
    }

    fn spend_token(&self, hash: &[u8], expires: i64, now: i64) -> StorageResult<bool> {
        let mut c = self.conn();
        let tx = c.transaction()?;
        tx.execute(
            "DELETE FROM token WHERE hash = ?1 AND expires <= ?2",
            params![hash, now],
        )?;
        let n = tx.execute(
            "INSERT OR IGNORE INTO token (hash, expires) VALUES (?1, ?2)",
            params![hash, expires],
        )?;
        tx.commit()?;
        Ok(n == 1)
    }

    fn sweep(&self, now: i64) -> StorageResult<Swept> {
        let mut c = self.conn();
        let tx = c.transaction()?;
        let escrows = tx.execute("DELETE FROM escrow WHERE expires <= ?1", params![now])?;
        let mut codes = tx.execute("DELETE FROM code WHERE expires <= ?1", params![now])?;
        codes += tx.execute(
            "DELETE FROM code WHERE id NOT IN (SELECT id FROM escrow)",
            [],
        )?;
        let tokens = tx.execute("DELETE FROM token WHERE expires <= ?1", params![now])?;
        tx.commit()?;
        Ok(Swept {
            escrows: escrows as u64,
            codes: codes as u64,
            tokens: tokens as u64,
        })
    }

    fn counts(&self) -> StorageResult<Counts> {
        let c = self.conn();
        let escrows: i64 = c.query_row("SELECT COUNT(*) FROM escrow", [], |r| r.get(0))?;
        let codes: i64 = c.query_row("SELECT COUNT(*) FROM code", [], |r| r.get(0))?;
        Ok(Counts {
            escrows: escrows.max(0) as u64,
            codes: codes.max(0) as u64,
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
        assert!(s.count_verification("a", 20, 10, 2).unwrap());
        assert!(s.count_verification("a", 21, 10, 2).unwrap());
        assert!(!s.count_verification("a", 22, 10, 2).unwrap());
        assert!(s.count_verification("a", 30, 10, 2).unwrap());
        assert!(!s.count_verification("nope", 30, 10, 2).unwrap());

        s.put_code("a", b"mac", 60, 2).unwrap();
        assert_eq!(
            s.take_attempt("a", 50).unwrap(),
            Attempt::Try {
                mac: b"mac".to_vec(),
                left: 1
            }
        );
        assert!(matches!(s.take_attempt("a", 50).unwrap(), Attempt::Try { left: 0, .. }));
        assert_eq!(s.take_attempt("a", 50).unwrap(), Attempt::Void);
        assert_eq!(s.take_attempt("a", 60).unwrap(), Attempt::Expired);
        assert_eq!(s.take_attempt("a", 60).unwrap(), Attempt::NoCode);

        assert!(s.spend_token(b"t", 40, 10).unwrap());
        assert!(!s.spend_token(b"t", 40, 20).unwrap());
        assert!(s.spend_token(b"t", 80, 40).unwrap());

        assert!(matches!(s.get_escrow("a", 100).unwrap(), Lookup::Expired));
        assert!(matches!(s.get_escrow("a", 100).unwrap(), Lookup::Missing));
        assert!(s.insert_escrow("b", 100, b"x", 10).unwrap());
        s.put_code("b", b"m", 200, 3).unwrap();
        assert!(s.delete_escrow("b").unwrap());
        assert_eq!(s.take_attempt("b", 50).unwrap(), Attempt::NoCode);
        assert!(s.insert_escrow("c", 100, b"x", 10).unwrap());
        let sw = s.sweep(100).unwrap();
        assert_eq!(sw.escrows, 1);
        assert_eq!(s.counts().unwrap(), Counts::default());
    }
}
