//! Files and directories that only their owner may read: 0700 directories,
//! 0600 files created exclusively or appended to, and atomic replacement.
//!
//! Errors are plain `std::io::Error`s; each caller names the path in its
//! own error type.

use std::fs;
use std::io::Write;
use std::path::Path;

/// Create `dir` and its missing parents with mode 0700 (an existing
/// directory is left as it is).
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

/// Options for a file only its owner may read or write (mode 0600 on unix;
/// the mode applies when the file is created).
pub fn private_file_options() -> fs::OpenOptions {
    let mut opts = fs::OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts
}

/// Create a new 0600 file at `path` holding `data`, synced; refuses to
/// overwrite an existing file (`ErrorKind::AlreadyExists`).
pub fn create_private_file(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut f = private_file_options()
        .write(true)
        .create_new(true)
        .open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

/// Make `path` mode 0600 (a no-op where there are no unix modes).
pub fn restrict_to_owner(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// True when a file's mode lets its group or others read it.
pub fn readable_by_others(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path)
            .map(|m| m.permissions().mode() & 0o077 != 0)
            .unwrap_or(false)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        false
    }
}

/// Replace `path` with `data` atomically, mode 0600: a fresh temporary
/// file in the same directory, synced, renamed over the target, then the
/// directory synced. Afterwards either the old file or the new one is
/// there, never half of one; on failure the temporary file is removed.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let base = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut rnd = [0u8; 8];
    crate::crypto::random_bytes(&mut rnd);
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        base.chars().take(100).collect::<String>(),
        data_encoding::HEXLOWER.encode(&rnd)
    ));
    let result = create_private_file(&tmp, data).and_then(|()| fs::rename(&tmp, path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
        return result;
    }
    #[cfg(unix)]
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temporary() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
        #[cfg(unix)]
        assert_eq!(mode(&p), 0o600);
    }

    #[test]
    fn a_failed_atomic_write_leaves_no_temporary() {
        let d = tempfile::tempdir().unwrap();
        // The target is a non-empty directory: the rename fails.
        let p = d.path().join("sub");
        fs::create_dir(&p).unwrap();
        fs::write(p.join("x"), b"x").unwrap();
        assert!(write_atomic(&p, b"data").is_err());
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn private_file_is_exclusive_and_0600() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("k");
        create_private_file(&p, b"k").unwrap();
        let e = create_private_file(&p, b"again").unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&p).unwrap(), b"k");
        #[cfg(unix)]
        {
            assert_eq!(mode(&p), 0o600);
            assert!(!readable_by_others(&p));
            fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
            assert!(readable_by_others(&p));
            restrict_to_owner(&p).unwrap();
            assert_eq!(mode(&p), 0o600);
        }
    }

    #[cfg(unix)]
    #[test]
    fn private_dir_is_0700() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a/b");
        create_private_dir(&p).unwrap();
        assert_eq!(mode(&p), 0o700);
        create_private_dir(&p).unwrap();
    }
}
