//! `passcrow-server` and its credentials: `init` writes a private config,
//! credentials come from files or the environment, and a password on the
//! command line or in a readable config file is warned about, never
//! quoted.

use std::path::Path;
use std::process::Command;

fn server_bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_passcrow-server"));
    for v in [
        "PASSCROW_SMTP_PASSWORD",
        "PASSCROW_SMS_AUTH_TOKEN",
        "PASSCROW_WEBHOOK_TOKEN",
    ] {
        c.env_remove(v);
    }
    c.env("RUST_LOG", "info");
    c
}

/// (exit ok, stdout + stderr).
fn run(c: &mut Command) -> (bool, String) {
    let out = c.output().expect("run passcrow-server");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn init(dir: &Path) {
    let (ok, out) = run(server_bin().args(["init", dir.to_str().unwrap()]));
    assert!(ok, "init: {out}");
}

#[cfg(unix)]
#[test]
fn init_writes_config_0600() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("pcs");
    init(&d);
    for f in ["config.toml", "master.key"] {
        let mode = std::fs::metadata(d.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{f}");
    }
}

#[test]
fn a_password_on_the_command_line_is_warned_about_and_never_quoted() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("pcs");
    init(&d);
    let data = d.to_str().unwrap();
    // It still works ...
    let (ok, out) = run(server_bin().args([
        "sweep",
        "--data",
        data,
        "--mail-from",
        "a@b.cd",
        "--smtp",
        "smtps://u:hunter2@mail.example.org",
    ]));
    assert!(ok, "{out}");
    // ... with a warning that names no password.
    assert!(out.contains("visible to other users"), "{out}");
    assert!(!out.contains("hunter2"), "{out}");
    // Without a password in the URL: no warning.
    let (ok, out) = run(server_bin().args([
        "sweep",
        "--data",
        data,
        "--mail-from",
        "a@b.cd",
        "--smtp",
        "smtps://u@mail.example.org",
    ]));
    assert!(ok, "{out}");
    assert!(!out.contains("visible to other users"), "{out}");
    // A URL without a scheme is refused without quoting its login.
    let (ok, out) = run(server_bin().args([
        "sweep",
        "--data",
        data,
        "--mail-from",
        "a@b.cd",
        "--smtp",
        "u:hunter2@mail.example.org",
    ]));
    assert!(!ok, "{out}");
    assert!(out.contains("needs a scheme"), "{out}");
    assert!(out.contains("[login]@mail.example.org"), "{out}");
    assert!(!out.contains("hunter2"), "{out}");
}

#[test]
fn the_smtp_password_from_a_file_or_the_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("pcs");
    init(&d);
    let conf = d.join("config.toml");
    let base = std::fs::read_to_string(&conf).unwrap();
    let pw = tmp.path().join("smtp-password");
    std::fs::write(&pw, "hunter2\n").unwrap();
    let with = |extra: &str| {
        let smtp = "[delivery.smtp]\nurl = \"smtps://mail.example.org\"\nusername = \"u\"\n";
        std::fs::write(&conf, format!("{base}\n{smtp}{extra}\n")).unwrap();
    };
    let sweep = || {
        let mut c = server_bin();
        c.args(["sweep", "--config", conf.to_str().unwrap()]);
        c
    };
    with(&format!("password_file = {:?}", pw.to_str().unwrap()));
    let (ok, out) = run(&mut sweep());
    assert!(ok, "{out}");
    // The file is missing: a clear error naming it, never its content.
    std::fs::remove_file(&pw).unwrap();
    let (ok, out) = run(&mut sweep());
    assert!(!ok, "{out}");
    assert!(out.contains(pw.to_str().unwrap()), "{out}");
    // The environment serves instead (and is never echoed).
    let (ok, out) = run(sweep().env("PASSCROW_SMTP_PASSWORD", "env-pw-xyz"));
    assert!(ok, "{out}");
    assert!(!out.contains("env-pw-xyz"), "{out}");
}
