//! `passcrow-server init DIR`: a fresh data directory.

use std::path::{Path, PathBuf};

use super::config;
use super::keyfile::create_master_key;

/// `passcrow-server init DIR`: make DIR (0700), a master key
/// (`DIR/master.key`, 0600) and a commented `DIR/config.toml`. Returns the
/// config path. Existing files are never overwritten.
pub fn init(dir: &Path) -> Result<PathBuf, String> {
    private_dir(dir)?;
    let dir = dir
        .canonicalize()
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let conf = dir.join("config.toml");
    if conf.exists() {
        return Err(format!("{} exists; not overwriting it", conf.display()));
    }
    let key = dir.join("master.key");
    if key.exists() {
        return Err(format!("{} exists; not overwriting it", key.display()));
    }
    create_master_key(&key)?;
    std::fs::write(&conf, config::sample_config(&dir))
        .map_err(|e| format!("writing {}: {e}", conf.display()))?;
    Ok(conf)
}

/// Make `dir` (and its parents) if needed, mode 0700.
pub(crate) fn private_dir(dir: &Path) -> Result<(), String> {
    crate::util::files::create_private_dir(dir)
        .map_err(|e| format!("creating {}: {e}", dir.display()))
}
