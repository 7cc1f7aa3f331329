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
