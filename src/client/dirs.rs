//! Where packs and `policy.rc` live: the platform's default directories
//! (exactly the paths python-passcrow finds with `appdirs`), and the
//! `PASSCROW_HOME`, `PASSCROW_CONFIG` and `PASSCROW_DATA` overrides. The
//! CLI, the C ABI, every binding and the Python drop-in take these from
//! here.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The default (config, data) directories, as python-passcrow 0.0.7
/// finds them with `appdirs.user_config_dir('passcrow', roaming=False)`
/// and `appdirs.user_data_dir(...)`:
///
/// - Linux and other unix: `$XDG_CONFIG_HOME/passcrow` (else
///   `~/.config/passcrow`) and `$XDG_DATA_HOME/passcrow` (else
///   `~/.local/share/passcrow`); like appdirs, a variable that is set is
///   taken as it is;
/// - macOS: `~/Library/Application Support/passcrow` for both;
/// - Windows: `%LOCALAPPDATA%\passcrow\passcrow` for both.
pub fn default_dirs() -> (PathBuf, PathBuf) {
    default_dirs_from(|k| std::env::var_os(k))
}

fn default_dirs_from(var: impl Fn(&str) -> Option<OsString>) -> (PathBuf, PathBuf) {
    let home = var("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    if cfg!(target_os = "macos") {
        let p = home.join("Library/Application Support/passcrow");
        return (p.clone(), p);
    }
    if cfg!(windows) {
        let base = var("LOCALAPPDATA")
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join("AppData").join("Local"));
        let p = base.join("passcrow").join("passcrow");
        return (p.clone(), p);
    }
    let xdg = |name: &str, fallback: &str| {
        var(name)
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join(fallback))
            .join("passcrow")
    };
    (
        xdg("XDG_CONFIG_HOME", ".config"),
        xdg("XDG_DATA_HOME", ".local/share"),
    )
}

/// The (config, data) directories to use: the ones given, else the
/// defaults; then, with `env_override`, `PASSCROW_HOME` (both),
/// `PASSCROW_CONFIG` and `PASSCROW_DATA` over them, in that order, as
/// python-passcrow's client does. (The CLI passes `env_override` only
/// when none of `-H`, `-C`, `-D` was given.)
pub fn resolve_dirs(
    config_dir: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    env_override: bool,
) -> (PathBuf, PathBuf) {
    resolve_dirs_from(config_dir, data_dir, env_override, |k| std::env::var_os(k))
}

fn resolve_dirs_from(
    config_dir: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    env_override: bool,
    var: impl Fn(&str) -> Option<OsString>,
) -> (PathBuf, PathBuf) {
    let (default_config, default_data) = default_dirs_from(&var);
    let mut config = config_dir.unwrap_or(default_config);
    let mut data = data_dir.unwrap_or(default_data);
    if env_override {
        if let Some(home) = var("PASSCROW_HOME") {
            config = PathBuf::from(&home);
            data = PathBuf::from(&home);
        }
        if let Some(c) = var("PASSCROW_CONFIG") {
            config = PathBuf::from(c);
        }
        if let Some(d) = var("PASSCROW_DATA") {
            data = PathBuf::from(d);
        }
    }
    (config, data)
}

/// Create a directory (and parents) with mode 0700.
pub fn create_private_dir(p: &Path) -> Result<()> {
    crate::util::files::create_private_dir(p)
        .map_err(|e| Error::io(format!("creating {}", p.display()), e))
}

#[cfg(all(test, unix, not(target_os = "macos")))]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn defaults_follow_appdirs() {
        let (c, d) = default_dirs_from(env(&[("HOME", "/home/u")]));
        assert_eq!(c, PathBuf::from("/home/u/.config/passcrow"));
        assert_eq!(d, PathBuf::from("/home/u/.local/share/passcrow"));
        let (c, d) = default_dirs_from(env(&[
            ("HOME", "/home/u"),
            ("XDG_CONFIG_HOME", "/x/conf"),
            ("XDG_DATA_HOME", "rel"),
        ]));
        assert_eq!(c, PathBuf::from("/x/conf/passcrow"));
        // appdirs takes a set variable as it is, relative or not.
        assert_eq!(d, PathBuf::from("rel/passcrow"));
    }

    #[test]
    fn environment_overrides_in_python_passcrows_order() {
        let vars = [
            ("HOME", "/home/u"),
            ("PASSCROW_HOME", "/ph"),
            ("PASSCROW_DATA", "/pd"),
        ];
        let (c, d) = resolve_dirs_from(Some("/given".into()), None, true, env(&vars));
        assert_eq!((c, d), (PathBuf::from("/ph"), PathBuf::from("/pd")));
        let (c, d) = resolve_dirs_from(Some("/given".into()), None, false, env(&vars));
        assert_eq!(
            (c, d),
            (
                PathBuf::from("/given"),
                PathBuf::from("/home/u/.local/share/passcrow")
            )
        );
        let (c, _) = resolve_dirs_from(None, None, true, env(&[("PASSCROW_CONFIG", "/pc")]));
        assert_eq!(c, PathBuf::from("/pc"));
    }
}
