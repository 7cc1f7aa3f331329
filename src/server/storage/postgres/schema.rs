//! The PostgreSQL schema: its version (the one row of `passcrow_schema`),
//! the statements of each version, and the migrations between them.
//!
//! Versions are numbered as SQLite's ([`super::super::SCHEMA_VERSION`]):
//! version N here holds what version N there holds, so a data set moves
//! between them table for table (`passcrow-server migrate`); version 9
//! changes only how PostgreSQL keeps its counters (SQLite's version 9 is
//! the same data as its 8). PostgreSQL starts at version 6, created
//! whole. All integers are BIGINT.

use postgres::Client;

use super::super::{StorageError, SCHEMA_VERSION};

/// Key of the advisory lock the migrations run under (any constant that
/// nothing else on the database uses: "pcrw" "schm").
const MIGRATION_LOCK: i64 = 0x7063_7277_7363_686d;

/// Version 6, created whole (PostgreSQL databases start there): escrows
/// under their keyed-hash ids (BYTEA, 32 bytes) with their verification
/// window and forgiven failures, key version, creation time and guessing
/// budget; codes; spent tokens; delivery budgets and the suppression
/// list; the escrows held as a counter kept by statement triggers in the
/// transaction that inserts or deletes (so the cap costs no `count(*)`);
/// free escrows per UTC day; `status` calls per escrow. Columns and
/// meanings are SQLite's (`storage/schema.rs`), integers BIGINT, `frozen`
/// 0 or 1 as there.
const SCHEMA_V6: &str = "
CREATE TABLE escrow (
    id      BYTEA PRIMARY KEY,
    expires BIGINT NOT NULL,
    data    BYTEA NOT NULL,
    vwin    BIGINT NOT NULL DEFAULT 0,
    vcount  BIGINT NOT NULL DEFAULT 0,
    vfail   BIGINT NOT NULL DEFAULT 0,
    kv      BIGINT NOT NULL DEFAULT 1,
    created BIGINT NOT NULL DEFAULT 0,
    gwin    BIGINT NOT NULL DEFAULT 0,
    gcount  BIGINT NOT NULL DEFAULT 0,
    gtotal  BIGINT NOT NULL DEFAULT 0,
    frozen  BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX escrow_expires ON escrow (expires);
CREATE TABLE code (
    id       BYTEA PRIMARY KEY,
    mac      BYTEA NOT NULL,
    expires  BIGINT NOT NULL,
    attempts BIGINT NOT NULL
);
CREATE INDEX code_expires ON code (expires);
CREATE TABLE token (
    hash    BYTEA PRIMARY KEY,
    expires BIGINT NOT NULL
);
CREATE INDEX token_expires ON token (expires);
CREATE TABLE delivery_budget (
    scope   TEXT NOT NULL,
    win     BIGINT NOT NULL,
    start   BIGINT NOT NULL,
    used    BIGINT NOT NULL,
    reserve BIGINT NOT NULL,
    PRIMARY KEY (scope, win)
);
CREATE TABLE suppressed (
    hash  BYTEA PRIMARY KEY,
    since BIGINT NOT NULL
);
CREATE TABLE tally (
    name TEXT PRIMARY KEY,
    n    BIGINT NOT NULL
);
INSERT INTO tally (name, n) VALUES ('escrows', 0);
CREATE FUNCTION passcrow_tally_insert() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE k BIGINT;
BEGIN
    SELECT count(*) INTO k FROM new_rows;
    IF k > 0 THEN UPDATE tally SET n = n + k WHERE name = 'escrows'; END IF;
    RETURN NULL;
END $$;
CREATE FUNCTION passcrow_tally_delete() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE k BIGINT;
BEGIN
    SELECT count(*) INTO k FROM old_rows;
    IF k > 0 THEN UPDATE tally SET n = n - k WHERE name = 'escrows'; END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER escrow_tally_insert AFTER INSERT ON escrow
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION passcrow_tally_insert();
CREATE TRIGGER escrow_tally_delete AFTER DELETE ON escrow
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION passcrow_tally_delete();
CREATE TABLE free_day (
    day BIGINT PRIMARY KEY,
    n   BIGINT NOT NULL
);
CREATE TABLE status_count (
    id    BYTEA PRIMARY KEY,
    until BIGINT NOT NULL,
    count BIGINT NOT NULL
);
";

/// Version 7 (authenticator apps): the last TOTP time step accepted for
/// each escrow (-1: none), as SQLite's version 7.
const SCHEMA_V7: &str = "
ALTER TABLE escrow ADD COLUMN totp_step BIGINT NOT NULL DEFAULT -1;
";

/// Version 8 (the release delay), as SQLite's version 8.
const SCHEMA_V8: &str = "
ALTER TABLE escrow ADD COLUMN rdue BIGINT NOT NULL DEFAULT 0;
ALTER TABLE escrow ADD COLUMN rcancel BYTEA NOT NULL DEFAULT ''::bytea;
CREATE INDEX escrow_rcancel ON escrow (rcancel);
";

/// Version 9 (PostgreSQL only; SQLite's version 9 changes nothing): the
/// counters of escrows held (`tally`) and of free escrows a day
/// (`free_day`) split into 64 rows each (the shards), keyed by a `shard`
/// column, so that concurrent inserts do not queue on one row lock held
/// through each commit. A transaction adds to (or takes from) the shard
/// of its session, `pg_backend_pid() % 64`; a counter is the `sum(n)` of
/// its shards (one shard alone means nothing, and may go negative: a
/// deletion counts on the deleting session's shard). The values of
/// version 8 stay as shard 0, in the same transaction; `shard` defaults
/// to 0 so that `migrate --from sqlite` copies SQLite's `free_day` rows
/// as they are. (The 64 is written out here and in the free-day insert
/// of `postgres.rs`.) How the caps stay exact without a lock on one row: see
/// `insert_escrow_capped` in `postgres.rs`.
const SCHEMA_V9: &str = "
ALTER TABLE tally ADD COLUMN shard BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tally DROP CONSTRAINT tally_pkey;
ALTER TABLE tally ADD PRIMARY KEY (name, shard);
ALTER TABLE free_day ADD COLUMN shard BIGINT NOT NULL DEFAULT 0;
ALTER TABLE free_day DROP CONSTRAINT free_day_pkey;
ALTER TABLE free_day ADD PRIMARY KEY (day, shard);
CREATE OR REPLACE FUNCTION passcrow_tally_insert() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE k BIGINT;
BEGIN
    SELECT count(*) INTO k FROM new_rows;
    IF k > 0 THEN
        INSERT INTO tally (name, shard, n) VALUES ('escrows', pg_backend_pid() % 64, k)
        ON CONFLICT (name, shard) DO UPDATE SET n = tally.n + EXCLUDED.n;
    END IF;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION passcrow_tally_delete() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE k BIGINT;
BEGIN
    SELECT count(*) INTO k FROM old_rows;
    IF k > 0 THEN
        INSERT INTO tally (name, shard, n) VALUES ('escrows', pg_backend_pid() % 64, -k)
        ON CONFLICT (name, shard) DO UPDATE SET n = tally.n + EXCLUDED.n;
    END IF;
    RETURN NULL;
END $$;
";

/// The statements that bring a database from version `v - 1` to `v`.
/// Versions 1 to 5 never existed here (a development build's version 2,
/// with clear ids, is refused: see [`MigrateError::Old`]); version 6
/// creates everything.
fn step(v: i64) -> Option<&'static str> {
    match v {
        1..=5 => Some(""),
        6 => Some(SCHEMA_V6),
        7 => Some(SCHEMA_V7),
        8 => Some(SCHEMA_V8),
        9 => Some(SCHEMA_V9),
        // Later versions go here: `10 => Some(SCHEMA_V10)`.
        _ => None,
    }
}

/// Bring the database to [`SCHEMA_VERSION`] in one transaction, under an
/// advisory lock so that instances starting together migrate it once (the
/// others wait, then find it done); refuse a newer one. Returns the
/// version found.
pub(super) fn migrate(c: &mut Client) -> Result<i64, MigrateError> {
    migrate_to(c, SCHEMA_VERSION)
}

/// [`migrate`], to version `to` (at most [`SCHEMA_VERSION`]; tests make
/// older databases with it).
pub(super) fn migrate_to(c: &mut Client, to: i64) -> Result<i64, MigrateError> {
    let mut t = c.transaction()?;
    t.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    t.batch_execute("CREATE TABLE IF NOT EXISTS passcrow_schema (version BIGINT NOT NULL)")?;
    let found: Option<i64> = t
        .query_opt("SELECT max(version) FROM passcrow_schema", &[])?
        .and_then(|r| r.get(0));
    let found = found.unwrap_or(0);
    if found > SCHEMA_VERSION {
        return Err(MigrateError::Newer(found));
    }
    if (1..6).contains(&found) {
        return Err(MigrateError::Old(found));
    }
    for v in found + 1..=to {
        let sql = step(v).ok_or(MigrateError::Missing(v))?;
        if !sql.is_empty() {
            t.batch_execute(sql)?;
        }
    }
    if found < to {
        t.execute("DELETE FROM passcrow_schema", &[])?;
        t.execute("INSERT INTO passcrow_schema (version) VALUES ($1)", &[&to])?;
    }
    t.commit()?;
    Ok(found)
}

/// Why the schema could not be brought up to date.
pub(super) enum MigrateError {
    Db(postgres::Error),
    Newer(i64),
    Missing(i64),
    /// A schema of a development build (clear ids): nothing migrates it.
    Old(i64),
}

impl From<postgres::Error> for MigrateError {
    fn from(e: postgres::Error) -> Self {
        MigrateError::Db(e)
    }
}

impl MigrateError {
    pub(super) fn into_storage(self, conn: &super::connect::Connector) -> StorageError {
        match self {
            MigrateError::Db(e) => conn.error(
                "creating or migrating the schema",
                super::connect::error_text(&e),
            ),
            MigrateError::Newer(v) => StorageError(format!(
                "postgres {}: database schema {v} is newer than this server understands \
                 ({SCHEMA_VERSION}): upgrade passcrow-server",
                conn.label
            )),
            MigrateError::Old(v) => StorageError(format!(
                "postgres {}: database schema {v} was made by a development build \
                 (clear escrow ids) and cannot be migrated: use a new database and \
                 `passcrow-server migrate --from sqlite:PATH`",
                conn.label
            )),
            MigrateError::Missing(v) => StorageError(format!(
                "postgres {}: this build has no PostgreSQL migration to schema {v}",
                conn.label
            )),
        }
    }
}
