//! The client: protect, verify, recover, forget, list and renew.
//!
//! All calls block; apps run them off their UI thread. Requests to
//! distinct servers go out concurrently.
//!
//! - `types.rs`: what the operations take and return;
//! - `protect.rs`: protect and renew (escrow, ephemeral copy);
//! - `recover.rs`: packs, verify and recover (codes, combining shares);
//! - `manage.rs`: forget, list, expiring (deleting escrows);
//! - `check.rs`: extension discovery and the health check;
//! - `renewal.rs`: renewal due (whether to ask the user to review a pack);
//! - `sidecar.rs`: the side file beside each pack the check needs;
//! - `warnings.rs`: policy warnings at protect;
//! - `rpc.rs`: one request to a server and its typed answer;
//! - `dirs.rs`: where packs and `policy.rc` live by default;
//! - `tasks.rs`: running requests to many servers (pacing, retries);
//! - `transport.rs`: the HTTP transport (ureq, or the app's own).

mod check;
mod dirs;
mod manage;
mod protect;
mod recover;
mod renewal;
mod rpc;
mod sidecar;
mod tasks;
pub mod transport;
mod types;
mod warnings;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use crate::pack::PackDir;
use crate::policy::{Defaults, IdentityPolicy, PolicyRequest, RecoveryPolicy};
use crate::proto::ServerPolicy;
use crate::{Error, Result};

pub use check::{EscrowHealth, EscrowState, PackHealth, Recoverable};
pub use dirs::{create_private_dir, default_dirs, resolve_dirs};
pub use recover::normalize_code;
pub use renewal::{renewal_reasons, RenewalDue, RenewalReason, REVIEW_INTERVAL};
pub use sidecar::{CHALLENGES, SIDE_FILE_SUFFIX};
pub use tasks::{Pacing, Sleeper};
pub use transport::{
    server_url, HttpRequest, HttpResponse, Timeouts, Transport, TransportError, UreqTransport,
};
pub use types::*;

/// The Passcrow client. `Send + Sync`; calls block.
pub struct Client {
    cfg: ClientConfig,
    packs: PackDir,
    transport: Arc<dyn Transport>,
    sleeper: Arc<Sleeper>,
    pacing: Mutex<Pacing>,
    log: Option<Arc<LogFn>>,
    progress: Option<Arc<ProgressFn>>,
    cancel: Arc<AtomicBool>,
    policies: Mutex<HashMap<String, ServerPolicy>>,
    /// What each server's `extensions` said (`None`: it has none).
    extensions: Mutex<HashMap<String, Option<crate::proto::health::Extensions>>>,
    defaults: Mutex<Defaults>,
    /// The pack key of the last ephemeral stand-in [`Client::pack`] made,
    /// being derived while the user waits for codes.
    pending_pack_key: Mutex<Option<recover::PendingPackKey>>,
}

fn now() -> i64 {
    crate::util::clock::unix_now()
}

impl Client {
    /// A client with the default transport; directories must exist.
    pub fn new(cfg: ClientConfig) -> Result<Client> {
        let transport = UreqTransport::with_connect_timeout(cfg.timeouts.connect);
        Self::with_transport(cfg, Arc::new(transport))
    }

    /// A client over an app's own HTTP transport.
    pub fn with_transport(cfg: ClientConfig, transport: Arc<dyn Transport>) -> Result<Client> {
        for (what, d) in [("data", &cfg.data_dir), ("config", &cfg.config_dir)] {
            if !d.is_dir() {
                return Err(Error::NotFound(format!(
                    "{what} directory {} does not exist",
                    d.display()
                )));
            }
        }
        let defaults = Defaults::load(&cfg.config_dir.join("policy.rc"))?;
        Ok(Client {
            packs: PackDir::new(&cfg.data_dir),
            pacing: Mutex::new(cfg.pacing.clone()),
            cfg,
            transport,
            sleeper: Arc::new(std::thread::sleep),
            log: None,
            progress: None,
            cancel: Arc::new(AtomicBool::new(false)),
            policies: Mutex::new(HashMap::new()),
            extensions: Mutex::new(HashMap::new()),
            defaults: Mutex::new(defaults),
            pending_pack_key: Mutex::new(None),
        })
    }

    /// The request pacing in use (initially `ClientConfig::pacing`; see
    /// [`Client::set_pacing`]). One call can use another: [`CallOptions`].
    pub fn pacing(&self) -> Pacing {
        self.pacing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The pacing of one call: its own ([`CallOptions::pacing`]) or else
    /// the client's.
    pub(crate) fn pacing_for(&self, call: &CallOptions) -> Pacing {
        call.pacing.clone().unwrap_or_else(|| self.pacing())
    }

    /// Change the request pacing for later operations (e.g. turn the
    /// anonymity delay on or off between calls).
    pub fn set_pacing(&self, pacing: Pacing) {
        *self.pacing.lock().unwrap_or_else(|e| e.into_inner()) = pacing;
    }

    /// Receive progress lines (never secrets).
    pub fn set_log(&mut self, f: Arc<LogFn>) {
        self.log = Some(f);
    }

    /// Receive hashcash progress.
    pub fn set_progress(&mut self, f: Arc<ProgressFn>) {
        self.progress = Some(f);
    }

    /// Replace how the client sleeps between requests.
    pub fn set_sleeper(&mut self, f: Arc<Sleeper>) {
        self.sleeper = f;
    }

    /// A flag that cancels hashcash work in progress when set.
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.cancel.clone()
    }

    /// The settings.
    pub fn config(&self) -> &ClientConfig {
        &self.cfg
    }

    /// The pack directory.
    pub fn packs(&self) -> &PackDir {
        &self.packs
    }

    /// `policy.rc`'s path.
    pub fn defaults_path(&self) -> PathBuf {
        self.cfg.config_dir.join("policy.rc")
    }

    /// The current defaults.
    pub fn defaults(&self) -> Defaults {
        self.defaults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replace the defaults (in memory; see [`Client::save_defaults`]).
    pub fn set_defaults(&self, d: Defaults) {
        *self.defaults.lock().unwrap_or_else(|p| p.into_inner()) = d;
    }

    /// Reload `policy.rc`.
    pub fn load_defaults(&self) -> Result<Defaults> {
        let d = Defaults::load(&self.defaults_path())?;
        self.set_defaults(d.clone());
        Ok(d)
    }

    /// Write the defaults to `policy.rc`.
    pub fn save_defaults(&self) -> Result<PathBuf> {
        let p = self.defaults_path();
        self.defaults().save(&p)?;
        Ok(p)
    }

    /// Parse identity policies, filling servers and notify from the defaults.
    pub fn parse_identities<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<IdentityPolicy>> {
        let mut d = self.defaults();
        texts
            .iter()
            .map(|t| IdentityPolicy::parse(t.as_ref(), Some(&mut d)))
            .collect()
    }

    /// The policy a caller asks for, gaps filled from this client's
    /// defaults ([`PolicyRequest::resolve`]: the one path every binding
    /// and the CLI take).
    pub fn policy(&self, request: &PolicyRequest) -> Result<RecoveryPolicy> {
        request.resolve(&self.defaults())
    }

    /// Shorthand for [`Client::policy`]: these identities (none: the
    /// defaults') and ratio (none: the defaults').
    pub fn make_policy<S: AsRef<str>>(
        &self,
        ids: &[S],
        ratio: Option<(u32, u32)>,
    ) -> Result<RecoveryPolicy> {
        let mut request = PolicyRequest::new(ids);
        if let Some((n, m)) = ratio {
            request = request.with_ratio(n, m);
        }
        self.policy(&request)
    }

    pub(crate) fn log(&self, msg: &str) {
        if let Some(l) = &self.log {
            l(msg);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SecretString;
    use crate::pack::{EscrowRecord, RecoveryPack};
    use crate::proto::{EscrowResponse, Version};
    use std::time::Duration;

    /// Answers every request with a server error (so nothing is retried).
    struct Refusing;
    impl Transport for Refusing {
        fn post(&self, _: &HttpRequest<'_>) -> std::result::Result<HttpResponse, TransportError> {
            Ok(HttpResponse {
                status: 200,
                body: br#"{"error": "Internal Error"}"#.to_vec(),
            })
        }
    }

    fn two_escrows_on_one_server() -> RecoveryPack {
        let rec = |id: &str| EscrowRecord {
            kind: "email".into(),
            server: "http://127.0.0.1:1".into(),
            recovery_key: SecretString::from("a2V5"),
            response: EscrowResponse {
                version: Version,
                expiration: 0,
                escrow_data_id: id.into(),
            },
        };
        RecoveryPack {
            name: "p".into(),
            created_ts: None,
            description: None,
            secret: None,
            min_shares: 1,
            shares: vec![],
            escrow: vec![rec("a"), rec("b")],
            is_ephemeral: None,
            ephemeral_id: None,
        }
    }

    #[test]
    fn pacing_of_one_call_stays_in_that_call() {
        let dir = tempfile::tempdir().unwrap();
        let mut client = Client::with_transport(
            ClientConfig::new(dir.path(), dir.path()),
            Arc::new(Refusing),
        )
        .unwrap();
        let slept: Arc<Mutex<Vec<Duration>>> = Arc::default();
        let s = slept.clone();
        client.set_sleeper(Arc::new(move |d| s.lock().unwrap().push(d)));
        let slow = Pacing {
            delay: Some((Duration::from_secs(100), Duration::from_secs(200))),
            ..Pacing::default()
        };
        let pack = two_escrows_on_one_server();
        let call = CallOptions {
            pacing: Some(slow.clone()),
        };
        assert!(client.verify_with(&pack, &call).is_err());
        let delays: Vec<Duration> = std::mem::take(&mut *slept.lock().unwrap());
        assert_eq!(delays.len(), 1, "one delay between the two requests");
        assert!(delays[0] >= Duration::from_secs(100) && delays[0] <= Duration::from_secs(200));
        // The next call without options keeps the client's (no delay).
        assert_eq!(client.pacing().delay, None);
        assert!(client.verify(&pack).is_err());
        assert!(slept.lock().unwrap().is_empty());
        // Calls with and without options at once, on two threads.
        std::thread::scope(|t| {
            t.spawn(|| client.verify_with(&pack, &call));
            t.spawn(|| client.forget_with("nothing-here", false, &CallOptions::default()));
        });
        assert_eq!(client.pacing().delay, None);
    }
}
