//! Shared test support: the python-passcrow 0.0.7 reference (server and
//! client) in a venv made by scripts/ref-venv.sh, and code-file reading.
#![allow(dead_code)]

pub mod backend;
pub mod pg;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The venv python with passcrow==0.0.7 (made on first use; fails loudly).
pub fn ref_python() -> PathBuf {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        let out = Command::new("bash")
            .arg(repo().join("scripts/ref-venv.sh"))
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/ref-venv.sh");
        assert!(out.status.success(), "scripts/ref-venv.sh failed");
        let text = String::from_utf8(out.stdout).unwrap();
        PathBuf::from(text.lines().last().expect("venv python path").trim())
    })
    .clone()
}

/// A running reference server on a free loopback port.
pub struct RefServer {
    child: Child,
    pub url: String,
    pub codes: PathBuf,
    pub data: PathBuf,
    _dir: tempfile::TempDir,
}

impl RefServer {
    pub fn start() -> RefServer {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let codes = dir.path().join("codes.txt");
        let port_file = dir.path().join("port");
        let child = Command::new(ref_python())
            .arg(repo().join("tests/support/ref_server.py"))
            .args([
                "--data",
                data.to_str().unwrap(),
                "--codes",
                codes.to_str().unwrap(),
            ])
            .args(["--port", "0", "--port-file", port_file.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the reference server");
        let t0 = Instant::now();
        let port = loop {
            if let Ok(p) = std::fs::read_to_string(&port_file) {
                if !p.trim().is_empty() {
                    break p.trim().to_string();
                }
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "reference server did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        RefServer {
            child,
            url: format!("http://127.0.0.1:{port}"),
            codes,
            data,
            _dir: dir,
        }
    }
}

impl Drop for RefServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The newest code delivered to `identity` (lines `identity<TAB>code`).
pub fn newest_code(codes: &Path, identity: &str) -> Option<String> {
    let text = std::fs::read_to_string(codes).ok()?;
    text.lines()
        .rev()
        .filter_map(|l| l.split_once('\t'))
        .find(|(id, _)| *id == identity)
        .map(|(_, c)| c.trim().to_string())
}

/// All codes currently in the file, newest per identity.
pub fn newest_codes(codes: &Path, identities: &[&str]) -> Vec<String> {
    identities
        .iter()
        .filter_map(|i| newest_code(codes, i))
        .collect()
}

/// Run a command, returning (status ok, stdout, stderr).
pub fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().expect("run command");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Our CLI.
pub fn passcrow() -> Command {
    Command::new(env!("CARGO_BIN_EXE_passcrow"))
}

/// The reference client driver.
pub fn ref_client(sub: &str, home: &Path) -> Command {
    let mut c = Command::new(ref_python());
    c.arg(repo().join("tests/support/ref_client.py"))
        .arg(sub)
        .args(["--home", home.to_str().unwrap()]);
    c
}
