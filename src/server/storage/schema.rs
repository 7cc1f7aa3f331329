//! The SQLite schema: its version (`PRAGMA user_version`), the statements
//! of each version, and the migrations between them.

use rusqlite::Connection;

use super::{StorageError, StorageResult};

/// The schema version this code writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 5;

/// Version 1: escrows (with their verification window), codes, spent
/// tokens.
pub(super) const SCHEMA_V1: &str = "
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
pub(super) const SCHEMA_V2: &str = "
ALTER TABLE escrow ADD COLUMN vfail INTEGER NOT NULL DEFAULT 0;
";

/// Version 5: the guessing budget of each escrow (wrong guesses in the
/// current window and over its life, and whether that froze it), the
/// escrows held as a counter kept by triggers (so the cap on escrows held
/// costs no `COUNT(*)` per insert), and free escrows stored per UTC day.
/// The triggers see every insert and deletion, whoever makes it (requests,
/// sweeps, bulk imports, `sweep` from cron); a later migration that
/// rebuilds the `escrow` table must create them again and recount.
pub(super) const SCHEMA_V5: &str = "
ALTER TABLE escrow ADD COLUMN gwin INTEGER NOT NULL DEFAULT 0;
ALTER TABLE escrow ADD COLUMN gcount INTEGER NOT NULL DEFAULT 0;
ALTER TABLE escrow ADD COLUMN gtotal INTEGER NOT NULL DEFAULT 0;
ALTER TABLE escrow ADD COLUMN frozen INTEGER NOT NULL DEFAULT 0;
CREATE TABLE IF NOT EXISTS tally (
    name TEXT PRIMARY KEY,
    n    INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR REPLACE INTO tally (name, n) SELECT 'escrows', COUNT(*) FROM escrow;
CREATE TRIGGER IF NOT EXISTS escrow_tally_insert AFTER INSERT ON escrow
BEGIN UPDATE tally SET n = n + 1 WHERE name = 'escrows'; END;
CREATE TRIGGER IF NOT EXISTS escrow_tally_delete AFTER DELETE ON escrow
BEGIN UPDATE tally SET n = n - 1 WHERE name = 'escrows'; END;
CREATE TABLE IF NOT EXISTS free_day (
    day INTEGER PRIMARY KEY,
    n   INTEGER NOT NULL
);
";

/// Bring the database `conn` to [`SCHEMA_VERSION`], from any older
/// version; refuse a newer one. Runs inside the caller's transaction.
pub(super) fn migrate(conn: &Connection) -> StorageResult<()> {
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
    if version < 5 {
        conn.execute_batch(SCHEMA_V5)?;
    }
    // Later migrations go here: `if version < 6 { ... }`.
    if version < SCHEMA_VERSION {
        conn.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))?;
    }
    Ok(())
}
