//! The SQLite schema: its version (`PRAGMA user_version`), the statements
//! of each version, and the migrations between them.

use rusqlite::Connection;

use super::{StorageError, StorageResult};

/// The schema version this code writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 4;

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

/// Version 4: delivery budgets (by keyed hash of the recipient, or kind),
/// the suppression list (keyed hashes of recipients who opted out), and
/// when each escrow was made (0 for older rows: they count as old).
pub(super) const SCHEMA_V4: &str = "
ALTER TABLE escrow ADD COLUMN created INTEGER NOT NULL DEFAULT 0;
CREATE TABLE IF NOT EXISTS delivery_budget (
    scope   TEXT NOT NULL,
    win     INTEGER NOT NULL,
    start   INTEGER NOT NULL,
    used    INTEGER NOT NULL,
    reserve INTEGER NOT NULL,
    PRIMARY KEY (scope, win)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS suppressed (
    hash  BLOB PRIMARY KEY,
    since INTEGER NOT NULL
) WITHOUT ROWID;
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
    // Version 3 is another branch's (escrow ids hashed at rest).
    if version < 4 {
        conn.execute_batch(SCHEMA_V4)?;
    }
    if version < SCHEMA_VERSION {
        conn.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))?;
    }
    Ok(())
}
