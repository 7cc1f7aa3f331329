//! The SQLite schema: its version (`PRAGMA user_version`), the statements
//! of each version, and the migrations between them.

use rusqlite::{params, Connection};

use super::{Rekey, StorageError, StorageResult};

/// The schema version this code writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 9;

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

/// Version 3: escrows and codes keyed by their stored id (a keyed hash,
/// 32 bytes) instead of the clear storage key, escrows sealed under it
/// (seal format 2), and the version of the master key an escrow's id and
/// seal were made with (`kv`, 1 until key rotation is built; see
/// docs/server.md). Made as new tables that replace the old ones.
pub(super) const SCHEMA_V3: &str = "
CREATE TABLE escrow_v3 (
    id      BLOB PRIMARY KEY,
    expires INTEGER NOT NULL,
    data    BLOB NOT NULL,
    vwin    INTEGER NOT NULL DEFAULT 0,
    vcount  INTEGER NOT NULL DEFAULT 0,
    vfail   INTEGER NOT NULL DEFAULT 0,
    kv      INTEGER NOT NULL DEFAULT 1
) WITHOUT ROWID;
CREATE TABLE code_v3 (
    id       BLOB PRIMARY KEY,
    mac      BLOB NOT NULL,
    expires  INTEGER NOT NULL,
    attempts INTEGER NOT NULL
) WITHOUT ROWID;
";

/// Version 3, once the rows are copied: the new tables replace the old.
const SCHEMA_V3_SWAP: &str = "
DROP TABLE escrow;
DROP TABLE code;
ALTER TABLE escrow_v3 RENAME TO escrow;
ALTER TABLE code_v3 RENAME TO code;
CREATE INDEX escrow_expires ON escrow(expires);
";

/// Left by the schema 3 migration until the old ids are wiped from the
/// file's free pages and the WAL (see `SqliteStorage::setup`).
const WIPE_PENDING: &str = "CREATE TABLE wipe_pending (since INTEGER);";

/// Schema 3: every escrow and pending code of a schema 2 database re-keyed
/// from its clear id to its stored id, every escrow re-sealed for it. Any
/// row that cannot be (an escrow whose seal does not open) fails the
/// whole migration, which the caller rolls back.
fn rekey_ids(conn: &Connection, rekey: Option<&dyn Rekey>) -> StorageResult<u64> {
    conn.execute_batch(SCHEMA_V3)?;
    let rows: i64 = conn.query_row(
        "SELECT (SELECT COUNT(*) FROM escrow) + (SELECT COUNT(*) FROM code)",
        [],
        |r| r.get(0),
    )?;
    let rekey = match rekey {
        Some(r) => r,
        None if rows == 0 => {
            conn.execute_batch(SCHEMA_V3_SWAP)?;
            return Ok(0);
        }
        None => {
            return Err(StorageError(
                "migrating to schema 3: the database holds escrows under clear ids, \
                 which only the server (with its master key) can re-key; \
                 start passcrow-server on it once"
                    .into(),
            ))
        }
    };
    let mut n = 0u64;
    {
        let mut read = conn.prepare("SELECT id, expires, data, vwin, vcount, vfail FROM escrow")?;
        let mut write = conn.prepare(
            "INSERT INTO escrow_v3 (id, expires, data, vwin, vcount, vfail, kv)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1)",
        )?;
        let mut rows = read.query([])?;
        while let Some(r) = rows.next()? {
            let key: String = r.get(0)?;
            let sealed: Vec<u8> = r.get(2)?;
            let sid = rekey.stored_id(&key);
            let resealed = rekey.reseal(&key, &sid, &sealed).map_err(|why| {
                StorageError(format!(
                    "migrating to schema 3: {why} (is this the master key the \
                         database was made with?); the database was left as it was"
                ))
            })?;
            let (expires, vwin, vcount, vfail): (i64, i64, i64, i64) =
                (r.get(1)?, r.get(3)?, r.get(4)?, r.get(5)?);
            write.execute(params![
                &sid.as_bytes()[..],
                expires,
                resealed,
                vwin,
                vcount,
                vfail
            ])?;
            n += 1;
        }
    }
    {
        let mut read = conn.prepare("SELECT id, mac, expires, attempts FROM code")?;
        let mut write = conn
            .prepare("INSERT INTO code_v3 (id, mac, expires, attempts) VALUES (?1, ?2, ?3, ?4)")?;
        let mut rows = read.query([])?;
        while let Some(r) = rows.next()? {
            let key: String = r.get(0)?;
            let sid = rekey.stored_id(&key);
            let (mac, expires, attempts): (Vec<u8>, i64, i64) = (r.get(1)?, r.get(2)?, r.get(3)?);
            write.execute(params![&sid.as_bytes()[..], mac, expires, attempts])?;
            n += 1;
        }
    }
    conn.execute_batch(SCHEMA_V3_SWAP)?;
    Ok(n)
}

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

/// Version 6 (the health check): `status` calls counted per escrow in a
/// fixed window that ends at `until`. Self-contained: it touches no other
/// table, so it applies after whatever versions 3 to 5 add.
pub(super) const SCHEMA_V6: &str = "
CREATE TABLE IF NOT EXISTS status_count (
    id    BLOB PRIMARY KEY,
    until INTEGER NOT NULL,
    count INTEGER NOT NULL
) WITHOUT ROWID;
";

/// Version 7 (authenticator apps): the last TOTP time step accepted for
/// each escrow (-1: none), so each code opens once. Self-contained: one
/// column with a default, whatever other versions add.
pub(super) const SCHEMA_V7: &str = "
ALTER TABLE escrow ADD COLUMN totp_step INTEGER NOT NULL DEFAULT -1;
";

/// Version 8 (the release delay): when each escrow's pending release is
/// due (`rdue`: 0 none, -1 stopped by its owner) and the keyed hash of
/// its cancel token (`rcancel`, empty when none), indexed for the cancel
/// page. Self-contained: two columns with defaults and an index.
pub(super) const SCHEMA_V8: &str = "
ALTER TABLE escrow ADD COLUMN rdue INTEGER NOT NULL DEFAULT 0;
ALTER TABLE escrow ADD COLUMN rcancel BLOB NOT NULL DEFAULT x'';
CREATE INDEX IF NOT EXISTS escrow_rcancel ON escrow(rcancel);
";

/// Bring the database `conn` to [`SCHEMA_VERSION`], from any older
/// version; refuse a newer one. Runs inside the caller's transaction.
/// `rekey` is needed only to migrate a schema 1 or 2 database that holds
/// escrows or codes (their clear ids are re-keyed, see [`Rekey`]).
pub(super) fn migrate(conn: &Connection, rekey: Option<&dyn Rekey>) -> StorageResult<()> {
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
    if version < 3 {
        let n = rekey_ids(conn, rekey)?;
        // A file made before (even an empty one) may hold clear ids in
        // its free pages or its WAL: once this commits, the caller wipes
        // them and then drops the marker.
        if version >= 1 {
            conn.execute_batch(WIPE_PENDING)?;
        }
        if n > 0 {
            tracing::info!("migrated {n} escrows and codes to hashed ids (schema 3)");
        }
    }
    if version < 4 {
        conn.execute_batch(SCHEMA_V4)?;
    }
    if version < 5 {
        conn.execute_batch(SCHEMA_V5)?;
    }
    if version < 6 {
        conn.execute_batch(SCHEMA_V6)?;
    }
    if version < 7 {
        conn.execute_batch(SCHEMA_V7)?;
    }
    if version < 8 {
        conn.execute_batch(SCHEMA_V8)?;
    }
    // Version 9 changes nothing here: it is PostgreSQL's sharded counters
    // (`postgres/schema.rs`), numbered for both backends because their
    // versions are one sequence. A SQLite file is only marked 9.
    // Later migrations go here: `if version < 10 { ... }`.
    if version < SCHEMA_VERSION {
        conn.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))?;
    }
    Ok(())
}

/// An escrow row of a schema 1 or 2 database: clear storage key, expiry,
/// data sealed in format 1 under that key.
#[cfg(feature = "testing")]
pub(crate) type OldEscrow = (String, i64, Vec<u8>);
/// A code row of a schema 1 or 2 database: clear storage key, keyed hash,
/// expiry, attempts left.
#[cfg(feature = "testing")]
pub(crate) type OldCode = (String, [u8; 32], i64, u32);

/// Write a schema `version` (1 or 2) database at `path` as the server
/// wrote it before ids were hashed, in WAL mode, with the SQL of those
/// versions: for tests of the migration.
#[cfg(feature = "testing")]
pub(crate) fn write_old_database(
    path: &std::path::Path,
    version: i64,
    escrows: &[OldEscrow],
    codes: &[OldCode],
) -> StorageResult<()> {
    if !(1..3).contains(&version) {
        return Err(StorageError(format!(
            "old databases are schema 1 or 2, not {version}"
        )));
    }
    let c = Connection::open(path)?;
    let _: String = c.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    let v2 = if version >= 2 { SCHEMA_V2 } else { "" };
    c.execute_batch(&format!(
        "BEGIN; {SCHEMA_V1} {v2} PRAGMA user_version = {version}; COMMIT;"
    ))?;
    for (key, expires, sealed) in escrows {
        c.execute(
            "INSERT INTO escrow (id, expires, data) VALUES (?1, ?2, ?3)",
            params![key, expires, sealed],
        )?;
    }
    for (key, mac, expires, attempts) in codes {
        c.execute(
            "INSERT INTO code (id, mac, expires, attempts) VALUES (?1, ?2, ?3, ?4)",
            params![key, &mac[..], expires, attempts],
        )?;
    }
    Ok(())
}
