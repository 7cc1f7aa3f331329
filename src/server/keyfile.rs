//! The master key file: base64 of 32 random bytes, one line, mode 0600.
//! Every escrow is sealed under keys derived from it (see `seal.rs`):
//! lose it and the database is useless; keep it apart from the database's
//! backups.

use std::path::Path;

use super::error::{ServerError, ServerResult};
use crate::crypto::{self, Key32, SecretString};

/// Read the master key file (base64 of 32 bytes).
pub fn load_master_key(path: &Path) -> ServerResult<Key32> {
    let text = SecretString::new(
        std::fs::read_to_string(path).map_err(|e| ServerError::io("reading", path, e))?,
    );
    if crate::util::files::readable_by_others(path) {
        tracing::warn!(
            "master key {} is readable by others; chmod 600 it",
            path.display()
        );
    }
    crypto::key_from_b64(text.expose_secret().trim(), "master key")
        .map_err(|e| ServerError::master_key(e.to_string()))
}

/// Write a fresh master key to `path` (mode 0600); refuses to overwrite.
pub fn create_master_key(path: &Path) -> ServerResult<Key32> {
    let key = crypto::random_key();
    let text = SecretString::new(format!("{}\n", key.to_b64()));
    crate::util::files::create_private_file(path, text.expose_secret().as_bytes())
        .map_err(|e| ServerError::io("creating", path, e))?;
    Ok(key)
}
