//! What the crate's own tests, benchmarks, examples and fuzz targets need
//! of its internals: the crypto primitives (to build requests by hand, to
//! check the vectors). Feature `testing`, hidden from the documentation,
//! not part of the API: apps use `client`, `pack` and `policy`, which
//! cannot be called with a weak parameter or a repeated nonce.

pub use crate::crypto::blob::{open, open_with_aad, seal, seal_with_nonce, AAD, NONCE_LEN};
pub use crate::crypto::kdf::{derive_key_2_20, scrypt};
pub use crate::crypto::{
    b64decode, b64encode, ct_eq, key_from_b64, random_bytes, random_key, random_pack_key, shamir,
};

/// Write, at `path`, a database as the server wrote it before escrow ids
/// were hashed (schema `version`, 1 or 2: clear TEXT ids, escrows sealed
/// in format 1 under their clear storage key with keys derived from
/// `master`): `escrows` as `(storage key, expires, data as the server
/// stores it)`, pending `codes` as `(storage key, code, expires,
/// attempts)`. For tests of the migration to hashed ids.
#[cfg(feature = "server")]
pub fn old_server_database(
    path: &std::path::Path,
    master: &crate::Key32,
    version: i64,
    escrows: &[(&str, i64, &[u8])],
    codes: &[(&str, &str, i64, u32)],
) -> crate::server::ServerResult<()> {
    crate::server::write_old_database(path, master, version, escrows, codes)
}

/// The key under which the server whose master key is in `master_key_file`
/// stores the escrow `escrow_id` (a keyed hash of the part after the last
/// dash): for tests that reach into a stopped server's database.
#[cfg(feature = "server")]
#[doc(hidden)]
pub fn stored_escrow_key(
    master_key_file: &std::path::Path,
    escrow_id: &str,
) -> Result<[u8; 32], String> {
    let key = escrow_id.rsplit('-').next().unwrap_or(escrow_id);
    let master = crate::server::load_master_key(master_key_file).map_err(|e| e.to_string())?;
    Ok(crate::server::stored_id_bytes(
        &master,
        &key.to_ascii_lowercase(),
    ))
}

/// Alter the stored escrow `escrow_id` in the SQLite file `db` of a
/// stopped `passcrow-server` (its `master.key` beside it) (one byte of its
/// sealed data flipped), as a failing disk or a careless restore would:
/// for the health check's tests. Returns an error naming what was not
/// found.
#[cfg(feature = "server")]
#[doc(hidden)]
pub fn alter_stored_escrow(db: &std::path::Path, escrow_id: &str) -> Result<(), String> {
    let key = stored_escrow_key(&db.with_file_name("master.key"), escrow_id)?.to_vec();
    let c = rusqlite::Connection::open(db).map_err(|e| e.to_string())?;
    let mut data: Vec<u8> = c
        .query_row(
            "SELECT data FROM escrow WHERE id = ?1",
            rusqlite::params![key],
            |r| r.get(0),
        )
        .map_err(|e| format!("no such escrow: {e}"))?;
    let last = data.len().checked_sub(1).ok_or("empty escrow data")?;
    data[last] ^= 0x01;
    c.execute(
        "UPDATE escrow SET data = ?2 WHERE id = ?1",
        rusqlite::params![key, data],
    )
    .map_err(|e| e.to_string())?;
    Ok(())
}

/// TOTP (RFC 6238) as the server checks it: the 6-digit code of a raw
/// secret at a unix time, and the time step of a unix time.
#[cfg(feature = "server")]
pub use crate::crypto::totp::{code_at as totp_code_at, step_at as totp_step_at};
