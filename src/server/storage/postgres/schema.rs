//! The PostgreSQL schema: its version (the one row of `passcrow_schema`),
//! the statements of each version, and the migrations between them.
//!
//! Versions are numbered as SQLite's ([`super::super::SCHEMA_VERSION`]):
//! version N here holds what version N there holds, so a data set moves
//! between them table for table (`passcrow-server migrate`). PostgreSQL
//! started at version 2, created whole. All integers are BIGINT.

use postgres::Client;

use super::super::{StorageError, SCHEMA_VERSION};

/// Key of the advisory lock the migrations run under (any constant that
/// nothing else on the database uses: "pcrw" "schm").
const MIGRATION_LOCK: i64 = 0x7063_7277_7363_686d;

/// Version 2, created whole: escrows (with their verification window and
/// forgiven failures), codes, spent tokens.
const SCHEMA_V2: &str = "
CREATE TABLE escrow (
    id      TEXT PRIMARY KEY,
    expires BIGINT NOT NULL,
    data    BYTEA NOT NULL,
    vwin    BIGINT NOT NULL DEFAULT 0,
    vcount  BIGINT NOT NULL DEFAULT 0,
    vfail   BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX escrow_expires ON escrow (expires);
CREATE TABLE code (
    id       TEXT PRIMARY KEY,
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
";

/// The statements that bring a database from version `v - 1` to `v`.
fn step(v: i64) -> Option<&'static str> {
    match v {
        // Version 1 never existed here: version 2 creates everything.
        1 => Some(""),
        2 => Some(SCHEMA_V2),
        // Later versions go here: `3 => Some(SCHEMA_V3)`.
        _ => None,
    }
}

/// Bring the database to [`SCHEMA_VERSION`] in one transaction, under an
/// advisory lock so that instances starting together migrate it once (the
/// others wait, then find it done); refuse a newer one. Returns the
/// version found.
pub(super) fn migrate(c: &mut Client) -> Result<i64, MigrateError> {
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
    for v in found + 1..=SCHEMA_VERSION {
        let sql = step(v).ok_or(MigrateError::Missing(v))?;
        if !sql.is_empty() {
            t.batch_execute(sql)?;
        }
    }
    if found < SCHEMA_VERSION {
        t.execute("DELETE FROM passcrow_schema", &[])?;
        t.execute(
            "INSERT INTO passcrow_schema (version) VALUES ($1)",
            &[&SCHEMA_VERSION],
        )?;
    }
    t.commit()?;
    Ok(found)
}

/// Why the schema could not be brought up to date.
pub(super) enum MigrateError {
    Db(postgres::Error),
    Newer(i64),
    Missing(i64),
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
            MigrateError::Missing(v) => StorageError(format!(
                "postgres {}: this build has no PostgreSQL migration to schema {v}",
                conn.label
            )),
        }
    }
}
