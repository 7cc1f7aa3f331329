//! `passcrow-server init DIR`: a fresh data directory.

use std::path::{Path, PathBuf};

use super::config;
use super::error::{ServerError, ServerResult};
use super::keyfile::create_master_key;

/// `passcrow-server init DIR`: make DIR (0700), a master key
/// (`DIR/master.key`, 0600) and a commented `DIR/config.toml` (0600, as it
/// may come to hold SMTP passwords and API tokens). Returns the
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
    // 0600: it is where SMTP passwords and API tokens go.
    crate::util::files::create_private_file(&conf, config::sample_config(&dir).as_bytes())
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => ServerError::Exists { path: conf.clone() },
            _ => ServerError::io("writing", &conf, e),
        })?;
    Ok(conf)
}

/// Make `dir` (and its parents) if needed, mode 0700.
pub(crate) fn private_dir(dir: &Path) -> ServerResult<()> {
    crate::util::files::create_private_dir(dir).map_err(|e| ServerError::io("creating", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn init_writes_a_private_config() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let conf = init(&d.path().join("pcs")).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&conf), 0o600);
        assert_eq!(mode(&conf.with_file_name("master.key")), 0o600);
        assert_eq!(mode(conf.parent().unwrap()), 0o700);
        assert!(!crate::util::files::readable_by_others(&conf));
        assert!(matches!(
            init(&d.path().join("pcs")),
            Err(ServerError::Exists { .. })
        ));
    }
}
