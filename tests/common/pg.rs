//! A real PostgreSQL server for the tests: one throwaway cluster per test
//! binary (scripts/pg-test-cluster.sh: installs Debian's postgresql
//! package when missing, `initdb` into a temporary directory, run as the
//! `postgres` user when we are root, on a free loopback port), and a
//! fresh database for each test.
//!
//! When the cluster cannot be started the tests fail, never skip.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use passcrow::server::storage::postgres::Settings;

/// The running cluster.
pub struct Cluster {
    pub port: u16,
    pub password: String,
    pub password_file: PathBuf,
    /// The CA that signed the server's certificate (TLS is on).
    pub ca: Option<PathBuf>,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();
static NEXT: AtomicUsize = AtomicUsize::new(0);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The cluster, started on first use.
pub fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(|| {
        let script = repo().join("scripts/pg-test-cluster.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg(std::process::id().to_string())
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "PostgreSQL could not be started for the tests, so they fail (they never \
             skip): {} exited with {}.\n{stderr}\nIt installs Debian's postgresql package \
             with apt-get when initdb is missing (as root, or with sudo).",
            script.display(),
            out.status
        );
        let get = |k: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")).map(str::to_string))
        };
        let password_file = PathBuf::from(get("password_file").expect("password_file="));
        Cluster {
            port: get("port").and_then(|p| p.parse().ok()).expect("port="),
            password: std::fs::read_to_string(&password_file).unwrap(),
            password_file,
            ca: get("ca").map(PathBuf::from),
        }
    })
}

impl Cluster {
    /// A URL for `db` on the cluster (no password in it).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://passcrow_test@127.0.0.1:{}/{db}", self.port)
    }

    /// Settings with the password.
    pub fn settings(&self) -> Settings {
        Settings {
            password: Some(self.password.clone().into()),
            ..Settings::default()
        }
    }

    /// A superuser connection to `db`.
    pub fn admin(&self, db: &str) -> postgres::Client {
        postgres::Config::new()
            .host("127.0.0.1")
            .port(self.port)
            .user("passcrow_test")
            .password(&self.password)
            .dbname(db)
            .connect(postgres::NoTls)
            .unwrap()
    }

    /// A new, empty database; returns its URL.
    pub fn new_database(&self) -> String {
        let name = format!(
            "t{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        self.admin("postgres")
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        self.url(&name)
    }
}

/// The database name of a test URL.
pub fn db_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap()
}

/// The password file of the cluster (for configs).
pub fn password_file() -> &'static Path {
    &cluster().password_file
}
