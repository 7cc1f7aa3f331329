//! The SQLite schema: its version (`PRAGMA user_version`), the statements
//! of each version, and the migrations between them.

use rusqlite::Connection;

use super::{StorageError, StorageResult};

/// The schema version this code writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 6;

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

/// Version 6 (the health check): `status` calls counted per escrow in a
/// fixed window that ends at `until`. Self-contained: it touches no other
/// table, so it applies after whatever versions 3 to 5 add.
pub(super) const SCHEMA_V6: &str = "
CREATE TABLE IF NOT EXISTS status_count (
    id    TEXT PRIMARY KEY,
    until INTEGER NOT NULL,
    count INTEGER NOT NULL
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
    // Versions 3 to 5 go here.
    if version < 6 {
        conn.execute_batch(SCHEMA_V6)?;
    }
    if version < SCHEMA_VERSION {
        conn.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))?;
    }
    Ok(())
}
