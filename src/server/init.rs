//! `passcrow-server init DIR`: a fresh data directory.

use std::path::{Path, PathBuf};

use super::config;
use super::error::{ServerError, ServerResult};
use super::keyfile::create_master_key;

/// `passcrow-server init DIR`: make DIR (0700), a master key
/// (`DIR/master.key`, 0600) and a commented `DIR/config.toml`. Returns the
/// config path. Existing files are never overwritten.
pub fn init(dir: &Path) -> ServerResult<PathBuf> {
    private_dir(dir)?;
    let dir = dir
        .canonicalize()
        .map_err(|e| ServerError::io("", dir, e))?;
    let conf = dir.join("config.toml");
    if conf.exists() {
        return Err(ServerError::Exists { path: conf });
    }
    let key = dir.join("master.key");
    if key.exists() {
        return Err(ServerError::Exists { path: key });
    }
    create_master_key(&key)?;
    std::fs::write(&conf, config::sample_config(&dir))
        .map_err(|e| ServerError::io("writing", &conf, e))?;
    Ok(conf)
}

/// Make `dir` (and its parents) if needed, mode 0700.
pub(crate) fn private_dir(dir: &Path) -> ServerResult<()> {
    crate::util::files::create_private_dir(dir).map_err(|e| ServerError::io("creating", dir, e))
}
