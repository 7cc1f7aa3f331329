//! Which storage backend the protocol tests' servers run on.
//!
//! `PASSCROW_TEST_BACKEND=postgres` puts every server a protocol test
//! starts through [`server_config`] on a fresh database of its own on the
//! test cluster ([`super::pg`]: a real PostgreSQL on loopback); unset or
//! `sqlite`, on the SQLite file in its data directory. scripts/test.sh
//! runs the protocol test files once with each, so both backends answer
//! the same attacks.
//!
//! A server restarted on the same data directory finds the same database
//! (its URL is kept in a file there). The few things a test does to a
//! stopped server's storage (a backup and its restore, a stored escrow
//! altered) go through [`backup`], [`restore`] and [`alter_stored_escrow`],
//! which do it on whichever backend the server runs on.

use std::path::{Path, PathBuf};

use passcrow::server::config::Config;

use super::pg;

/// The backends a test server may run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The backend `PASSCROW_TEST_BACKEND` names (SQLite when unset). An
/// unknown name fails the test rather than quietly testing SQLite.
pub fn backend() -> Backend {
    match std::env::var("PASSCROW_TEST_BACKEND").as_deref() {
        Err(_) | Ok("") | Ok("sqlite") => Backend::Sqlite,
        Ok("postgres") => Backend::Postgres,
        Ok(other) => panic!("PASSCROW_TEST_BACKEND={other:?}: expected sqlite or postgres"),
    }
}

/// The file in a data directory that names its PostgreSQL database.
fn url_file(data_dir: &Path) -> PathBuf {
    data_dir.join("test-database-url")
}

/// `Config::for_testing(data_dir, codes)` on the backend of this run: on
/// PostgreSQL, the database of `data_dir` (made on first use) and the
/// cluster's password file.
pub fn server_config(data_dir: impl Into<PathBuf>, codes: impl Into<PathBuf>) -> Config {
    let data_dir = data_dir.into();
    let mut cfg = Config::for_testing(&data_dir, codes);
    if backend() == Backend::Postgres {
        cfg.database = Some(database_of(&data_dir));
        cfg.postgres.password_file = Some(pg::password_file().to_path_buf());
    }
    cfg
}

/// The PostgreSQL database of `data_dir`: the one named in its URL file,
/// or a new one (then named there).
fn database_of(data_dir: &Path) -> String {
    let file = url_file(data_dir);
    if let Ok(url) = std::fs::read_to_string(&file) {
        return url;
    }
    std::fs::create_dir_all(data_dir).unwrap();
    let url = pg::cluster().new_database();
    std::fs::write(&file, &url).unwrap();
    url
}

/// A copy of a stopped server's stored data, to put back with [`restore`].
pub enum Backup {
    /// A copy of the SQLite file.
    File(PathBuf),
    /// A copy of every table, in a schema of the same database.
    Schema { url: String, schema: String },
}

/// The tables of the server's schema, in the public schema of `c`.
fn tables(c: &mut impl postgres::GenericClient) -> Vec<String> {
    c.query(
        "SELECT table_name FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// Back up the storage of the stopped server of `data_dir` into `to` (a
/// path for the SQLite copy; on PostgreSQL the copy stays in the
/// database, in a schema of its own).
pub fn backup(data_dir: &Path, to: &Path) -> Backup {
    match backend() {
        Backend::Sqlite => {
            std::fs::copy(data_dir.join("passcrow.sqlite"), to).unwrap();
            Backup::File(to.to_path_buf())
        }
        Backend::Postgres => {
            let url = database_of(data_dir);
            let schema = format!("backup_{}", std::process::id());
            let mut c = pg::cluster().admin(pg::db_name(&url));
            c.batch_execute(&format!("CREATE SCHEMA {schema}")).unwrap();
            for t in tables(&mut c) {
                c.batch_execute(&format!("CREATE TABLE {schema}.{t} AS TABLE public.{t}"))
                    .unwrap();
            }
            Backup::Schema { url, schema }
        }
    }
}

/// Put `backup` back as the storage of the stopped server of `data_dir`,
/// as an operator restoring an old backup would: whatever was stored
/// since is gone.
pub fn restore(data_dir: &Path, backup: &Backup) {
    match backup {
        Backup::File(file) => {
            let db = data_dir.join("passcrow.sqlite");
            for ext in ["-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{ext}", db.display()));
            }
            std::fs::copy(file, db).unwrap();
        }
        Backup::Schema { url, schema } => {
            let mut c = pg::cluster().admin(pg::db_name(url));
            let mut tx = c.transaction().unwrap();
            let names = tables(&mut tx);
            // The rows go back as they were: no trigger counts them again.
            tx.batch_execute("SET LOCAL session_replication_role = replica")
                .unwrap();
            tx.batch_execute(&format!("TRUNCATE {}", names.join(", ")))
                .unwrap();
            for t in names {
                tx.batch_execute(&format!(
                    "INSERT INTO public.{t} SELECT * FROM {schema}.{t}"
                ))
                .unwrap();
            }
            tx.commit().unwrap();
        }
    }
}

/// Flip one byte of the sealed data of the stored escrow `escrow_id` of
/// the stopped server of `data_dir` (its master key in that directory),
/// as a failing disk or a careless restore would.
pub fn alter_stored_escrow(data_dir: &Path, escrow_id: &str) {
    match backend() {
        Backend::Sqlite => {
            passcrow::testing::alter_stored_escrow(&data_dir.join("passcrow.sqlite"), escrow_id)
                .unwrap()
        }
        Backend::Postgres => {
            let key = passcrow::testing::stored_escrow_key(&data_dir.join("master.key"), escrow_id)
                .unwrap();
            let url = database_of(data_dir);
            let mut c = pg::cluster().admin(pg::db_name(&url));
            let n = c
                .execute(
                    "UPDATE escrow SET data = overlay(data PLACING \
                     set_byte(substring(data FROM length(data) FOR 1), 0, \
                     get_byte(data, length(data) - 1) # 1) FROM length(data)) \
                     WHERE id = $1",
                    &[&key.as_slice()],
                )
                .unwrap();
            assert_eq!(n, 1, "no such escrow");
        }
    }
}
