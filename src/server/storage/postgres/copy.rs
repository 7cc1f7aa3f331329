//! `passcrow-server migrate`: copy a SQLite data set into an empty
//! PostgreSQL database, table for table, row for row. Nothing is opened or
//! re-sealed: the sealed escrows and the keyed hashes move as they are, so
//! the same master key serves them.
//!
//! [`TABLES`] lists every table of the schema and its columns: a table or
//! column a migration adds is one more entry.

use std::path::Path;

use postgres::types::{ToSql, Type};

use super::super::{SqliteStorage, StorageError, StorageResult};
use super::PostgresStorage;

/// The kind of a column (SQLite's and PostgreSQL's types).
#[derive(Clone, Copy)]
enum Col {
    /// TEXT / TEXT.
    Text,
    /// INTEGER / BIGINT.
    Int,
    /// BLOB / BYTEA.
    Blob,
}

/// Every table of [`super::super::SCHEMA_VERSION`], with its columns.
/// (`tally` is not copied: the triggers count the escrows as they are
/// inserted, on the copying session's shard, and the copy checks the
/// counter's sum against the rows. SQLite's `free_day` has one row a
/// day; each lands in the day's shard 0, the default of PostgreSQL's
/// `shard` column.)
const TABLES: &[(&str, &[(&str, Col)])] = &[
    (
        "escrow",
        &[
            ("id", Col::Blob),
            ("expires", Col::Int),
            ("data", Col::Blob),
            ("vwin", Col::Int),
            ("vcount", Col::Int),
            ("vfail", Col::Int),
            ("kv", Col::Int),
            ("created", Col::Int),
            ("gwin", Col::Int),
            ("gcount", Col::Int),
            ("gtotal", Col::Int),
            ("frozen", Col::Int),
            ("totp_step", Col::Int),
            ("rdue", Col::Int),
            ("rcancel", Col::Blob),
        ],
    ),
    (
        "code",
        &[
            ("id", Col::Blob),
            ("mac", Col::Blob),
            ("expires", Col::Int),
            ("attempts", Col::Int),
        ],
    ),
    ("token", &[("hash", Col::Blob), ("expires", Col::Int)]),
    (
        "delivery_budget",
        &[
            ("scope", Col::Text),
            ("win", Col::Int),
            ("start", Col::Int),
            ("used", Col::Int),
            ("reserve", Col::Int),
        ],
    ),
    ("suppressed", &[("hash", Col::Blob), ("since", Col::Int)]),
    ("free_day", &[("day", Col::Int), ("n", Col::Int)]),
    (
        "status_count",
        &[("id", Col::Blob), ("until", Col::Int), ("count", Col::Int)],
    ),
];

/// Rows sent per statement.
const BATCH: usize = 5000;

/// What was copied: rows per table, in [`TABLES`] order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Copied {
    /// (table, rows).
    pub tables: Vec<(&'static str, u64)>,
}

/// One column's values of a batch.
enum Values {
    Text(Vec<String>),
    Int(Vec<i64>),
    Blob(Vec<Vec<u8>>),
}

impl Values {
    fn new(c: Col) -> Values {
        match c {
            Col::Text => Values::Text(Vec::new()),
            Col::Int => Values::Int(Vec::new()),
            Col::Blob => Values::Blob(Vec::new()),
        }
    }
    fn push(&mut self, r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<()> {
        match self {
            Values::Text(v) => v.push(r.get(i)?),
            Values::Int(v) => v.push(r.get(i)?),
            Values::Blob(v) => v.push(r.get(i)?),
        }
        Ok(())
    }
    fn param(&self) -> (&(dyn ToSql + Sync), Type) {
        match self {
            Values::Text(v) => (v as &(dyn ToSql + Sync), Type::TEXT_ARRAY),
            Values::Int(v) => (v as &(dyn ToSql + Sync), Type::INT8_ARRAY),
            Values::Blob(v) => (v as &(dyn ToSql + Sync), Type::BYTEA_ARRAY),
        }
    }
    fn cast(c: Col) -> &'static str {
        match c {
            Col::Text => "text[]",
            Col::Int => "int8[]",
            Col::Blob => "bytea[]",
        }
    }
    fn clear(&mut self) {
        match self {
            Values::Text(v) => v.clear(),
            Values::Int(v) => v.clear(),
            Values::Blob(v) => v.clear(),
        }
    }
}

/// Copy the SQLite database at `src` (brought to the current schema
/// first) into `dst`, in one transaction: refused, changing nothing, when
/// `dst` holds any row; the row counts of every table are compared after
/// the copy, before the commit.
pub fn copy_from_sqlite(src: &Path, dst: &PostgresStorage) -> StorageResult<Copied> {
    if !src.is_file() {
        return Err(StorageError(format!(
            "migrate: {} is not a SQLite database file",
            src.display()
        )));
    }
    // Migrates an older file in place, as the server would.
    drop(SqliteStorage::open(src)?);
    let mut sq = rusqlite::Connection::open_with_flags(
        src,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| StorageError(format!("migrate: opening {}: {e}", src.display())))?;
    let sqerr =
        |e: rusqlite::Error| StorageError(format!("migrate: reading {}: {e}", src.display()));
    // One read transaction: a consistent snapshot of every table.
    let snap = sq.transaction().map_err(sqerr)?;

    let mut lent = dst.pool.get()?;
    let c = &mut lent.conn().client;
    let pgerr = |what: &str, e: postgres::Error| dst.err(what, &e);
    let mut t = c.transaction().map_err(|e| pgerr("beginning", e))?;
    // Nobody writes while we check and copy (other instances wait).
    let names: Vec<&str> = TABLES.iter().map(|(n, _)| *n).collect();
    t.batch_execute(&format!(
        "LOCK TABLE {} IN EXCLUSIVE MODE",
        names.join(", ")
    ))
    .map_err(|e| pgerr("locking the tables", e))?;
    for (name, _) in TABLES {
        let n: i64 = t
            .query_one(&format!("SELECT count(*) FROM {name}"), &[])
            .map_err(|e| pgerr("counting", e))?
            .get(0);
        if n > 0 {
            return Err(StorageError(format!(
                "migrate: the target database {} is not empty (table {name} has {n} rows): \
                 migrate only into a new database",
                dst.pool.connector().label
            )));
        }
    }
    let mut out = Copied { tables: vec![] };
    for (name, cols) in TABLES {
        let list: Vec<&str> = cols.iter().map(|(c, _)| *c).collect();
        let casts: Vec<String> = cols
            .iter()
            .enumerate()
            .map(|(i, (_, k))| format!("${}::{}", i + 1, Values::cast(*k)))
            .collect();
        let insert = format!(
            "INSERT INTO {name} ({}) SELECT * FROM unnest({})",
            list.join(", "),
            casts.join(", ")
        );
        let mut st = snap
            .prepare(&format!("SELECT {} FROM {name}", list.join(", ")))
            .map_err(sqerr)?;
        let mut rows = st.query([]).map_err(sqerr)?;
        let mut vals: Vec<Values> = cols.iter().map(|(_, k)| Values::new(*k)).collect();
        let mut pending = 0usize;
        let mut copied = 0u64;
        let mut flush = |vals: &mut Vec<Values>, pending: &mut usize| -> StorageResult<()> {
            if *pending == 0 {
                return Ok(());
            }
            let params: Vec<(&(dyn ToSql + Sync), Type)> = vals.iter().map(Values::param).collect();
            let n = t
                .execute_typed(&insert, &params)
                .map_err(|e| pgerr("copying", e))?;
            copied += n;
            for v in vals.iter_mut() {
                v.clear();
            }
            *pending = 0;
            Ok(())
        };
        while let Some(r) = rows.next().map_err(sqerr)? {
            for (i, v) in vals.iter_mut().enumerate() {
                v.push(r, i).map_err(sqerr)?;
            }
            pending += 1;
            if pending == BATCH {
                flush(&mut vals, &mut pending)?;
            }
        }
        flush(&mut vals, &mut pending)?;
        let want: i64 = snap
            .query_row(&format!("SELECT count(*) FROM {name}"), [], |r| r.get(0))
            .map_err(sqerr)?;
        let have: i64 = t
            .query_one(&format!("SELECT count(*) FROM {name}"), &[])
            .map_err(|e| pgerr("counting", e))?
            .get(0);
        if have != want || copied != want as u64 {
            return Err(StorageError(format!(
                "migrate: table {name}: {want} rows in {}, {have} in the target after the copy: \
                 nothing was committed",
                src.display()
            )));
        }
        out.tables.push((name, copied));
    }
    // The counter of escrows held (the sum of the triggers' shards)
    // matches the rows.
    let (held, rows): (i64, i64) = {
        let r = t
            .query_one(
                "SELECT (SELECT COALESCE(sum(n), 0) FROM tally WHERE name = 'escrows')::int8,
                        (SELECT count(*) FROM escrow)",
                &[],
            )
            .map_err(|e| pgerr("counting", e))?;
        (r.get(0), r.get(1))
    };
    if held != rows {
        return Err(StorageError(format!(
            "migrate: the escrows held are counted {held} but {rows} rows were copied: \
             nothing was committed"
        )));
    }
    t.commit().map_err(|e| pgerr("committing", e))?;
    Ok(out)
}
