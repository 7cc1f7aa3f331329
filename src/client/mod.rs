//! The client: protect, verify, recover, forget, list and renew.
//!
//! All calls block; apps run them off their UI thread. Requests to
//! distinct servers go out concurrently.

mod tasks;
pub mod transport;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::crypto::{self, shamir, Key32, SecretBytes, SecretString};
use crate::pack::{ephemeral, EscrowRecord, PackDir, RecoveryPack};
use crate::payment::{self, HashcashOptions};
use crate::policy::{Defaults, IdentityPolicy, RecoveryPolicy};
use crate::proto::{self, *};
use crate::{Error, Failure, Result};

pub use tasks::{Pacing, Sleeper};
pub use transport::{server_url, HttpResponse, Transport, UreqTransport};

/// The pack description python-passcrow writes.
pub const DEFAULT_PACK_DESCRIPTION: &str = "Created using python Passcrow";
/// The description shown in verification messages.
pub const DEFAULT_VERIFY_DESCRIPTION: &str = "Passcrow Data";

/// Where the ephemeral copy of a pack goes, and whether a local pack is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Ephemeral {
    /// Local pack only.
    #[default]
    No,
    /// Local pack, and the pack escrowed for recovery without it (`-e`).
    Both,
    /// Only the escrowed pack; nothing is written locally (`-E`).
    Only,
}

/// Options of [`Client::protect`].
#[derive(Clone, Debug)]
pub struct ProtectOptions {
    /// Ephemeral mode.
    pub ephemeral: Ephemeral,
    /// The pack's description.
    pub pack_description: String,
    /// The text in verification messages.
    pub verify_description: String,
    /// Replace an existing pack of the same name (its old escrows are
    /// deleted after the new pack is written). Without it, an existing
    /// pack is an error.
    pub replace: bool,
}

impl Default for ProtectOptions {
    fn default() -> Self {
        ProtectOptions {
            ephemeral: Ephemeral::No,
            pack_description: DEFAULT_PACK_DESCRIPTION.into(),
            verify_description: DEFAULT_VERIFY_DESCRIPTION.into(),
            replace: false,
        }
    }
}

/// What to keep to recover an ephemerally escrowed pack.
#[derive(Clone)]
pub struct EphemeralInfo {
    /// The server holding the pack.
    pub server: String,
    /// The user key (`AbCd-23Ef-GhJk-MnPq`): write it down.
    pub user_key: SecretString,
    /// When the escrowed pack expires.
    pub expiration: i64,
    /// The escrow as the reference prints it for `protect -e -b`.
    pub record: EscrowRecord,
}

impl EphemeralInfo {
    /// `SERVER:USER_KEY`, what `recover` takes.
    pub fn recovery_id(&self) -> SecretString {
        SecretString::new(format!("{}:{}", self.server, self.user_key.expose_secret()))
    }
}

impl std::fmt::Debug for EphemeralInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EphemeralInfo")
            .field("server", &self.server)
            .field("user_key", &"[redacted]")
            .field("expiration", &self.expiration)
            .finish()
    }
}

/// The result of [`Client::protect`].
#[derive(Debug)]
pub struct Protected {
    /// The pack (also written to disk unless ephemeral-only).
    pub pack: RecoveryPack,
    /// Where it was written.
    pub path: Option<PathBuf>,
    /// Ephemeral recovery details.
    pub ephemeral: Option<EphemeralInfo>,
    /// Old escrows that could not be deleted after a replace.
    pub cleanup_failures: Vec<Failure>,
}

/// One verification started: where the code went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hint {
    /// The character the code starts with.
    pub prefix: char,
    /// Identity kind (`email`, `tel`, `ephemeral`).
    pub kind: String,
    /// Masked address (`b*@e*ple.org`).
    pub hint: String,
    /// When the code stops working (unix time).
    pub expiration: i64,
    /// Where to find the code, for some kinds.
    pub action_url: Option<String>,
    /// The server that sent it.
    pub server: String,
}

/// The result of [`Client::verify`].
#[derive(Clone, Debug)]
pub struct Verification {
    /// Codes on their way, in prefix order.
    pub hints: Vec<Hint>,
    /// Escrows that could not start verification.
    pub failures: Vec<Failure>,
    /// Codes needed.
    pub min_shares: u32,
}

/// The result of [`Client::recover`].
pub enum Recovered {
    /// The protected secret.
    Secret(SecretBytes),
    /// An ephemeral escrow gave back its pack, now saved locally under
    /// `name` (the user key); verify and recover that pack next.
    Pack {
        /// The name it was saved under.
        name: String,
        /// The pack.
        pack: RecoveryPack,
    },
}

impl std::fmt::Debug for Recovered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Recovered::Secret(s) => write!(f, "Recovered::Secret({s:?})"),
            Recovered::Pack { pack, .. } => write!(f, "Recovered::Pack({pack:?})"),
        }
    }
}

/// A summary of one pack, for listings.
#[derive(Clone, Debug)]
pub struct PackInfo {
    /// The pack's name.
    pub name: String,
    /// Where the file is.
    pub path: PathBuf,
    /// Creation time (unix).
    pub created_ts: i64,
    /// When the first escrow expires (unix).
    pub expires_ts: i64,
    /// Description.
    pub description: String,
    /// Codes needed.
    pub min_shares: u32,
    /// Escrows codes route to.
    pub escrows: usize,
    /// Identity kinds, sorted.
    pub kinds: Vec<String>,
    /// Whether an ephemeral copy exists.
    pub ephemeral: bool,
    /// Why the pack could not be read, if it could not.
    pub error: Option<String>,
}

/// The result of [`Client::forget`].
#[derive(Clone, Debug, Default)]
pub struct Forgotten {
    /// Escrows deleted on servers.
    pub deleted: usize,
}

/// A log line callback (progress; never secrets).
pub type LogFn = dyn Fn(&str) + Send + Sync;
/// A hashcash progress callback.
pub type ProgressFn = dyn Fn(payment::Progress) + Send + Sync;

/// Settings of a [`Client`].
#[derive(Clone)]
pub struct ClientConfig {
    /// Where packs live.
    pub data_dir: PathBuf,
    /// Where `policy.rc` lives.
    pub config_dir: PathBuf,
    /// Request pacing (anonymity delay off by default).
    pub pacing: Pacing,
    /// Language asked for in verification messages.
    pub language: String,
    /// Hashcash worker threads (0 = one per core).
    pub hashcash_threads: usize,
    /// Longest a hashcash search may take.
    pub hashcash_max_time: Duration,
}

impl ClientConfig {
    /// Packs in `data_dir`, `policy.rc` in `config_dir`.
    pub fn new(config_dir: impl Into<PathBuf>, data_dir: impl Into<PathBuf>) -> Self {
        ClientConfig {
            data_dir: data_dir.into(),
            config_dir: config_dir.into(),
            pacing: Pacing::default(),
            language: "en".into(),
            hashcash_threads: 0,
            hashcash_max_time: Duration::from_secs(600),
        }
    }
}

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
    defaults: Mutex<Defaults>,
}

fn now() -> i64 {
    crate::util::clock::unix_now()
}

/// Normalise a typed code: trim, drop inner blanks and dashes, upper-case,
/// and forgive `O`→`0`, `L`→`1`, `I`→`1` (no prefix uses those letters).
pub fn normalize_code(code: &str) -> SecretString {
    let s: String = code
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| match c.to_ascii_uppercase() {
            'O' => '0',
            'L' | 'I' => '1',
            u => u,
        })
        .collect();
    SecretString::new(s)
}

impl Client {
    /// A client with the default transport; directories must exist.
    pub fn new(cfg: ClientConfig) -> Result<Client> {
        Self::with_transport(cfg, Arc::new(UreqTransport::new()))
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
            defaults: Mutex::new(defaults),
        })
    }

    /// The request pacing in use (initially `ClientConfig::pacing`; inside
    /// [`Client::with_pacing`], that call's pacing).
    pub fn pacing(&self) -> Pacing {
        let own = self as *const Client as usize;
        if let Some(p) = PACING_OVERRIDE.with(|o| {
            o.borrow()
                .iter()
                .rev()
                .find(|(c, _)| *c == own)
                .map(|(_, p)| p.clone())
        }) {
            return p;
        }
        self.pacing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Run `f` with `pacing` in place of this client's for the operations
    /// `f` starts on this thread (e.g. one call without the anonymity
    /// delay). Other threads' calls on the same client keep the client's
    /// pacing, and it is back in place when `f` returns or panics.
    pub fn with_pacing<T>(&self, pacing: Pacing, f: impl FnOnce(&Client) -> T) -> T {
        struct Restore;
        impl Drop for Restore {
            fn drop(&mut self) {
                PACING_OVERRIDE.with(|o| o.borrow_mut().pop());
            }
        }
        let own = self as *const Client as usize;
        PACING_OVERRIDE.with(|o| o.borrow_mut().push((own, pacing)));
        let _restore = Restore;
        f(self)
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

    /// A policy from identity texts and an optional ratio; gaps filled from
    /// the defaults (identities, ratio, lifetimes).
    pub fn make_policy<S: AsRef<str>>(
        &self,
        ids: &[S],
        ratio: Option<(u32, u32)>,
    ) -> Result<RecoveryPolicy> {
        let d = self.defaults();
        let ids = if ids.is_empty() {
            let texts: Vec<String> = d.ids.iter().map(|i| i.to_string()).collect();
            self.parse_identities(&texts)?
        } else {
            self.parse_identities(ids)?
        };
        let (n, m) = ratio.unwrap_or((d.n, d.m));
        Ok(RecoveryPolicy::new(ids, n, m, &d))
    }

    fn log(&self, msg: &str) {
        if let Some(l) = &self.log {
            l(msg);
        }
    }

    /// Send one request and parse the typed answer.
    fn rpc<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        server: &str,
        method: &str,
        req: &Req,
    ) -> Result<Resp> {
        let url = server_url(server, method);
        let body =
            SecretBytes::new(serde_json::to_vec(req).map_err(|e| Error::protocol(e.to_string()))?);
        let resp = self
            .transport
            .post(&url, body.expose_secret())
            .map_err(|e| Error::Transport(format!("{server}: {e}")))?;
        if let Some(err) = proto::error_answer(&resp.body) {
            return Err(map_server_error(server, err));
        }
        if resp.status >= 500 {
            return Err(Error::Transport(format!(
                "HTTP {} from {server}",
                resp.status
            )));
        }
        if resp.status != 200 {
            return Err(Error::Server {
                server: server.into(),
                message: format!("HTTP {}", resp.status),
            });
        }
        proto::parse(&resp.body, &format!("answer from {server} to {method}"))
    }

    /// A server's policy (fetched once per client).
    pub fn server_policy(&self, server: &str) -> Result<ServerPolicy> {
        if let Some(p) = self
            .policies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(server)
        {
            return Ok(p.clone());
        }
        let p: ServerPolicy = self.rpc(server, "policy", &serde_json::json!({}))?;
        if !p.versions.iter().any(|v| v == PROTO_VERSION) {
            return Err(Error::protocol(format!(
                "{server} does not speak protocol {PROTO_VERSION}"
            )));
        }
        self.policies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(server.into(), p.clone());
        Ok(p)
    }

    fn hashcash_opts(&self) -> HashcashOptions<'_> {
        HashcashOptions {
            threads: self.cfg.hashcash_threads,
            max_time: self.cfg.hashcash_max_time,
            cancel: Some(&self.cancel),
            progress: None,
        }
    }

    /// Build and send one escrow request; returns the record for the pack.
    fn escrow_one(&self, job: &EscrowJob<'_>) -> Result<EscrowRecord> {
        let idp = job.idp;
        let server = idp
            .server
            .as_deref()
            .ok_or_else(|| Error::bad_input(format!("no server for {}", idp.id)))?;
        let sp = self.server_policy(server)?;
        for k in std::iter::once(idp.id.kind()).chain(idp.notify.as_ref().map(|n| n.kind())) {
            if !sp.kinds.iter().any(|x| x == k) {
                return Err(Error::bad_input(format!(
                    "{server} cannot deliver to {k}: identities (it serves {})",
                    sp.kinds.join(", ")
                )));
            }
        }
        let lifetime = job.policy.expiration_days as i64 * 86400;
        let scheme = payment::choose(&sp, lifetime)?.clone();
        let timeout = idp
            .timeout_seconds
            .map(|t| t as i64)
            .unwrap_or(job.policy.timeout_minutes as i64 * 60);
        let data = EscrowData {
            description: job.verify_description.to_string(),
            secret: job.secret.clone(),
            verify: idp.id.clone(),
            timeout: Some(timeout),
            notify: idp.notify.clone(),
        };
        let recovery_key = match job.key {
            Some(k) => k.clone(),
            None => crypto::random_key(),
        };
        let data_json = SecretBytes::new(proto::to_reference_json(&data).into_bytes());
        let data_blob = crypto::seal(&recovery_key, data_json.expose_secret());
        let progress = self.progress.clone();
        let pf = move |p: payment::Progress| {
            if let Some(f) = &progress {
                f(p)
            }
        };
        let mut opts = self.hashcash_opts();
        opts.progress = Some(&pf);
        let token = payment::make_token(&scheme, &data_blob, &opts)?;
        let params = EscrowParameters {
            kind: idp.id.kind().to_string(),
            expiration: now().saturating_add(lifetime),
            payment: token,
            prefer_id: job.prefer_id.clone(),
        };
        let pkey = crypto::random_key();
        let req = EscrowRequest {
            version: Version,
            parameters: crypto::seal(&pkey, proto::to_reference_json(&params).as_bytes()),
            parameters_key: pkey.to_b64(),
            escrow_data: vec![data_blob],
        };
        let resp: EscrowResponse = self.rpc(server, "escrowrequest", &req)?;
        self.log(&format!(
            "escrowed share {} ({}) with {server}, paid {}",
            job.label,
            idp.id.kind(),
            scheme.scheme_id
        ));
        Ok(EscrowRecord {
            kind: idp.id.kind().to_string(),
            server: server.to_string(),
            recovery_key: SecretString::new(recovery_key.to_b64()),
            response: resp,
        })
    }

    /// Delete escrows on their servers; returns failures.
    fn delete_escrows(&self, records: &[EscrowRecord]) -> (usize, Vec<Failure>) {
        let results = tasks::run_tasks(
            records,
            &self.pacing(),
            &*self.sleeper,
            |r| r.server.clone(),
            |r| {
                let req = DeletionRequest {
                    version: Version,
                    escrow_data_id: r.response.escrow_data_id.clone(),
                };
                let _: DeletionResponse = self.rpc(&r.server, "deletionrequest", &req)?;
                self.log(&format!("deleted escrow on {}", r.server));
                Ok(())
            },
        );
        let mut ok = 0;
        let mut failures = vec![];
        for (r, res) in records.iter().zip(results) {
            match res {
                Ok(()) => ok += 1,
                Err(e) => failures.push(failure(r, e)),
            }
        }
        (ok, failures)
    }

    /// Protect `secret` under `name` with `policy`.
    ///
    /// Splits a fresh pack key n-of-m (padded to a threshold of 3 with local
    /// shares when n < 3, as the reference does), escrows one share per
    /// identity, then writes the pack. If any escrow fails, the escrows that
    /// were made are deleted again and nothing is written.
    pub fn protect(
        &self,
        name: &str,
        secret: &[u8],
        policy: &RecoveryPolicy,
        opts: &ProtectOptions,
    ) -> Result<Protected> {
        crate::pack::pack_file_name(name)?;
        let old = if opts.ephemeral == Ephemeral::Only {
            None
        } else {
            match self.packs.load(name) {
                Ok(p) if opts.replace => Some(p),
                Ok(_) => {
                    return Err(Error::bad_input(format!(
                    "a recovery pack named {name:?} exists; forget it first, or replace (renew) it"
                )))
                }
                Err(Error::NotFound(_)) => None,
                Err(_) if opts.replace => None,
                Err(e) => {
                    return Err(Error::bad_input(format!(
                        "a pack named {name:?} exists but cannot be read ({e}); remove it first"
                    )))
                }
            }
        };
        let reserve = if opts.ephemeral == Ephemeral::No {
            0
        } else {
            1
        };
        if reserve == 1 && policy.ids.len() < 2 {
            return Err(Error::bad_input(
                "ephemeral protection needs at least 2 identities",
            ));
        }
        policy.validate(reserve)?;
        let (n, m) = policy.absolute_ratio(reserve)?;
        let extra = 3u32.saturating_sub(n);
        let key = crypto::random_pack_key();
        let shares = shamir::split(
            key.expose_secret(),
            (n + extra) as usize,
            (m + extra) as usize,
        )?;
        self.log(&format!(
            "prepared {} shares ({} local, {} needed) for {name}",
            m + extra,
            extra,
            n + extra
        ));
        let secret_blob = RecoveryPack::seal_secret(&key, secret);
        drop(key);

        let jobs: Vec<EscrowJob<'_>> = (0..m as usize)
            .map(|i| EscrowJob {
                idp: &policy.ids[reserve + i],
                policy,
                secret: shares[i].clone(),
                key: None,
                prefer_id: None,
                verify_description: &opts.verify_description,
                label: format!("{}/{}", i + 1, m),
            })
            .collect();
        let results = tasks::run_tasks(
            &jobs,
            &self.pacing(),
            &*self.sleeper,
            |j| j.idp.server.clone().unwrap_or_default(),
            |j| self.escrow_one(j),
        );
        let mut records = vec![];
        let mut failures = vec![];
        for (j, r) in jobs.iter().zip(results) {
            match r {
                Ok(rec) => records.push(rec),
                Err(e) => failures.push(Failure {
                    server: j.idp.server.clone().unwrap_or_default(),
                    escrow_id: None,
                    message: e.to_string(),
                }),
            }
        }
        if !failures.is_empty() {
            let got = records.len();
            self.delete_escrows(&records);
            return Err(Error::Incomplete {
                operation: "protect",
                got,
                needed: m as usize,
                failures,
            });
        }
        let mut pack = RecoveryPack {
            name: name.to_string(),
            created_ts: Some(now()),
            description: Some(opts.pack_description.clone()),
            secret: Some(secret_blob),
            min_shares: n,
            shares: shares[m as usize..].to_vec(),
            escrow: records,
            is_ephemeral: None,
            ephemeral_id: None,
        };

        let mut eph_info = None;
        if reserve == 1 {
            match self.escrow_ephemeral(&mut pack, policy, opts) {
                Ok(info) => eph_info = Some(info),
                Err(e) => {
                    self.delete_escrows(&pack.escrow);
                    return Err(e);
                }
            }
        }
        let mut path = None;
        if opts.ephemeral != Ephemeral::Only {
            match self.packs.save(name, &pack) {
                Ok(p) => path = Some(p),
                Err(e) => {
                    self.delete_escrows(&pack.escrow);
                    return Err(e);
                }
            }
        }
        let mut cleanup_failures = vec![];
        if let Some(old) = old {
            let (_, f) = self.delete_escrows(&old.escrow);
            cleanup_failures = f;
        }
        Ok(Protected {
            pack,
            path,
            ephemeral: eph_info,
            cleanup_failures,
        })
    }

    fn escrow_ephemeral(
        &self,
        pack: &mut RecoveryPack,
        policy: &RecoveryPolicy,
        opts: &ProtectOptions,
    ) -> Result<EphemeralInfo> {
        let user_key = ephemeral::new_user_key();
        self.log("deriving the ephemeral keys (scrypt, a few seconds)");
        let id = ephemeral::escrow_id(user_key.expose_secret())?;
        let ekey = ephemeral::escrow_key(user_key.expose_secret())?;
        let pkey = ephemeral::pack_key(user_key.expose_secret())?;
        let blob = ephemeral::seal_pack(pack, &pkey)?;
        let job = EscrowJob {
            idp: &policy.ids[0],
            policy,
            secret: SecretString::new(blob),
            key: Some(&ekey),
            prefer_id: Some(id.clone()),
            verify_description: &opts.verify_description,
            label: "ephemeral".into(),
        };
        let jobs = [job];
        let mut results = tasks::run_tasks(
            &jobs,
            &self.pacing(),
            &*self.sleeper,
            |j| j.idp.server.clone().unwrap_or_default(),
            |j| self.escrow_one(j),
        );
        let rec = results
            .pop()
            .unwrap_or_else(|| Err(Error::Transport("not run".into())))?;
        let got = &rec.response.escrow_data_id;
        if got != &id && !got.ends_with(&format!("-{id}")) {
            self.delete_escrows(std::slice::from_ref(&rec));
            return Err(Error::Server {
                server: rec.server.clone(),
                message: "the server refused the ephemeral escrow id".into(),
            });
        }
        let server = rec.server.clone();
        let expiration = rec.response.expiration;
        let mut printed = rec.clone();
        printed.recovery_key = user_key.clone();
        if opts.ephemeral == Ephemeral::Both {
            pack.escrow.push(rec);
            pack.ephemeral_id = Some(SecretString::new(format!(
                "{server}:{}",
                user_key.expose_secret()
            )));
        }
        Ok(EphemeralInfo {
            server,
            user_key,
            expiration,
            record: printed,
        })
    }

    /// Load a pack by name, or make the stand-in for `SERVER:USER_KEY`
    /// (ephemeral recovery: three scrypt derivations, a few seconds).
    pub fn pack(&self, name: &str) -> Result<RecoveryPack> {
        match self.packs.load(name) {
            Err(Error::NotFound(msg)) => {
                if !name.contains(':') {
                    return Err(Error::NotFound(msg));
                }
                let (server, key) = ephemeral::split_id(name)?;
                let id = ephemeral::escrow_id(key.expose_secret())?;
                let ekey = ephemeral::escrow_key(key.expose_secret())?;
                Ok(RecoveryPack {
                    name: name.to_string(),
                    created_ts: None,
                    description: None,
                    secret: None,
                    min_shares: 1,
                    shares: vec![],
                    escrow: vec![EscrowRecord {
                        kind: "ephemeral".into(),
                        server,
                        recovery_key: SecretString::new(ekey.to_b64()),
                        response: EscrowResponse {
                            version: Version,
                            expiration: 0,
                            escrow_data_id: id,
                        },
                    }],
                    is_ephemeral: Some(true),
                    ephemeral_id: None,
                })
            }
            other => other,
        }
    }

    /// Ask every escrow's server to send a verification code.
    pub fn verify(&self, pack: &RecoveryPack) -> Result<Verification> {
        let escrows: Vec<(char, EscrowRecord)> = pack
            .prefixed_escrows()
            .into_iter()
            .map(|(c, e)| (c, e.clone()))
            .collect();
        let results = tasks::run_tasks(
            &escrows,
            &self.pacing(),
            &*self.sleeper,
            |(_, e)| e.server.clone(),
            |(prefix, e)| {
                let req = VerificationRequest {
                    version: Version,
                    language: self.cfg.language.clone(),
                    prefix: prefix.to_string(),
                    escrow_data_id: e.response.escrow_data_id.clone(),
                    escrow_data_key: e.recovery_key.clone(),
                };
                let r: VerificationResponse = self.rpc(&e.server, "verificationrequest", &req)?;
                self.log(&format!("verification {prefix} started on {}", e.server));
                Ok(r)
            },
        );
        let mut hints = vec![];
        let mut failures = vec![];
        for ((prefix, e), r) in escrows.iter().zip(results) {
            match r {
                Ok(v) => hints.push(Hint {
                    prefix: *prefix,
                    kind: e.kind.clone(),
                    hint: v.hint,
                    expiration: v.expiration,
                    action_url: v.action_url,
                    server: e.server.clone(),
                }),
                Err(err) => failures.push(failure(e, err)),
            }
        }
        if hints.len() < pack.min_shares as usize {
            return Err(Error::Incomplete {
                operation: "verify",
                got: hints.len(),
                needed: pack.min_shares as usize,
                failures,
            });
        }
        Ok(Verification {
            hints,
            failures,
            min_shares: pack.min_shares,
        })
    }

    /// Recover with the codes the user received.
    pub fn recover<S: AsRef<str>>(&self, pack: &RecoveryPack, codes: &[S]) -> Result<Recovered> {
        let routes = pack.prefixed_escrows();
        let mut by_prefix: Vec<(char, SecretString, EscrowRecord)> = vec![];
        for c in codes {
            let code = normalize_code(c.as_ref());
            let Some(p) = code.expose_secret().chars().next() else {
                continue;
            };
            let Some((_, esc)) = routes.iter().find(|(x, _)| *x == p) else {
                return Err(Error::bad_input(format!(
                    "a code starts with {p:?}, which matches none of this pack's {} escrows",
                    routes.len()
                )));
            };
            by_prefix.retain(|(x, _, _)| *x != p);
            by_prefix.push((p, code, (*esc).clone()));
        }
        let need = pack.min_shares as usize;
        if by_prefix.len() < need {
            return Err(Error::bad_input(format!(
                "need at least {need} verification codes, got {}",
                by_prefix.len()
            )));
        }
        let results = tasks::run_tasks(
            &by_prefix,
            &self.pacing(),
            &*self.sleeper,
            |(_, _, e)| e.server.clone(),
            |(p, code, e)| {
                let req = RecoveryRequest {
                    version: Version,
                    verification: code.clone(),
                    escrow_data_id: e.response.escrow_data_id.clone(),
                    escrow_data_key: e.recovery_key.clone(),
                };
                let r: RecoveryResponse =
                    self.rpc(&e.server, "recoveryrequest", &req)
                        .map_err(|err| match err {
                            Error::WrongCode { attempts_left, .. } => Error::WrongCode {
                                prefix: Some(*p),
                                attempts_left,
                            },
                            other => other,
                        })?;
                self.log(&format!("share {p} recovered from {}", e.server));
                Ok(r.escrow_secret)
            },
        );
        let mut got: Vec<SecretString> = vec![];
        let mut failures = vec![];
        let mut wrong: Option<Error> = None;
        for ((_, _, e), r) in by_prefix.iter().zip(results) {
            match r {
                Ok(s) => got.push(s),
                Err(err) => {
                    if matches!(err, Error::WrongCode { .. }) && wrong.is_none() {
                        wrong = Some(Error::WrongCode {
                            prefix: match &err {
                                Error::WrongCode { prefix, .. } => *prefix,
                                _ => None,
                            },
                            attempts_left: match &err {
                                Error::WrongCode { attempts_left, .. } => *attempts_left,
                                _ => None,
                            },
                        });
                    }
                    failures.push(failure(e, err));
                }
            }
        }
        if got.len() < need {
            if let Some(w) = wrong {
                return Err(w);
            }
            return Err(Error::Incomplete {
                operation: "recover",
                got: got.len(),
                needed: need,
                failures,
            });
        }
        if pack.is_ephemeral_stub() {
            let (_, user_key) = ephemeral::split_id(&pack.name)?;
            let pkey = ephemeral::pack_key(user_key.expose_secret())?;
            let mut ep = ephemeral::open_pack(got[0].expose_secret(), &pkey)?;
            let name = user_key.expose_secret().to_string();
            ep.name = name.clone();
            self.packs.save(&name, &ep)?;
            return Ok(Recovered::Pack { name, pack: ep });
        }
        let secret = combine_and_open(pack, &got)?;
        Ok(Recovered::Secret(secret))
    }

    /// Delete a pack: its escrows on the servers (unless `local_only`), then
    /// the file. When a server cannot be reached the file is kept, so the
    /// user can try again (or forget locally only).
    pub fn forget(&self, name: &str, local_only: bool) -> Result<Forgotten> {
        let pack = self.packs.load(name).or_else(|e| match e {
            Error::NotFound(_) => Err(e),
            // An unreadable pack can only be removed locally.
            other if local_only => {
                self.log(&format!("pack unreadable ({other}); removing the file"));
                Ok(RecoveryPack {
                    name: name.into(),
                    created_ts: None,
                    description: None,
                    secret: None,
                    min_shares: 1,
                    shares: vec![],
                    escrow: vec![],
                    is_ephemeral: None,
                    ephemeral_id: None,
                })
            }
            other => Err(other),
        })?;
        let mut out = Forgotten::default();
        if !local_only {
            let (ok, failures) = self.delete_escrows(&pack.escrow);
            out.deleted = ok;
            if !failures.is_empty() {
                return Err(Error::Incomplete {
                    operation: "forget",
                    got: ok,
                    needed: pack.escrow.len(),
                    failures,
                });
            }
        }
        self.packs.remove(name)?;
        Ok(out)
    }

    /// Every pack, sorted by file name.
    pub fn list(&self) -> Result<Vec<PackInfo>> {
        Ok(self
            .packs
            .list()?
            .into_iter()
            .map(|(name, r)| {
                let path = self.packs.path_for(&name).unwrap_or_default();
                match r {
                    Ok(p) => {
                        let mut kinds: Vec<String> =
                            p.escrow.iter().map(|e| e.kind.clone()).collect();
                        kinds.sort();
                        PackInfo {
                            path,
                            created_ts: p.created_ts.unwrap_or(0),
                            expires_ts: p.expires_ts(),
                            description: p.description.clone().unwrap_or_default(),
                            min_shares: p.min_shares,
                            escrows: p.prefixed_escrows().len(),
                            kinds,
                            ephemeral: p.ephemeral_id.is_some(),
                            error: None,
                            name,
                        }
                    }
                    Err(e) => PackInfo {
                        name,
                        path,
                        created_ts: 0,
                        expires_ts: 0,
                        description: String::new(),
                        min_shares: 0,
                        escrows: 0,
                        kinds: vec![],
                        ephemeral: false,
                        error: Some(e.to_string()),
                    },
                }
            })
            .collect())
    }

    /// Packs whose first escrow expires within `within` from now (and
    /// packs that could not be read, so they are not forgotten).
    pub fn expiring(&self, within: Duration) -> Result<Vec<PackInfo>> {
        let limit = crate::util::clock::unix_after(now(), within);
        Ok(self
            .list()?
            .into_iter()
            .filter(|p| p.error.is_some() || p.expires_ts <= limit)
            .collect())
    }

    /// Renew a pack: escrow `secret` afresh (under `policy`, or the
    /// defaults when `None`), write the new pack over the old one, and only
    /// then delete the old escrows. A pack that had an ephemeral copy gets
    /// a new one (and a new user key).
    pub fn renew(
        &self,
        name: &str,
        secret: &[u8],
        policy: Option<&RecoveryPolicy>,
    ) -> Result<Protected> {
        let old = self.packs.load(name)?;
        let default_policy;
        let policy = match policy {
            Some(p) => p,
            None => {
                default_policy = self.make_policy::<&str>(&[], None)?;
                &default_policy
            }
        };
        let opts = ProtectOptions {
            ephemeral: if old.ephemeral_id.is_some() {
                Ephemeral::Both
            } else {
                Ephemeral::No
            },
            pack_description: old
                .description
                .clone()
                .unwrap_or_else(|| DEFAULT_PACK_DESCRIPTION.into()),
            replace: true,
            ..Default::default()
        };
        self.protect(name, secret, policy, &opts)
    }
}

/// One escrow to make.
struct EscrowJob<'a> {
    idp: &'a IdentityPolicy,
    policy: &'a RecoveryPolicy,
    secret: SecretString,
    key: Option<&'a Key32>,
    prefer_id: Option<String>,
    verify_description: &'a str,
    label: String,
}

fn failure(e: &EscrowRecord, err: Error) -> Failure {
    Failure {
        server: e.server.clone(),
        escrow_id: Some(e.response.escrow_data_id.clone()),
        message: err.to_string(),
    }
}

/// Map a server's `{"error": ...}` to an error kind.
fn map_server_error(server: &str, e: ErrorAnswer) -> Error {
    let kind = e.error_kind.as_deref().unwrap_or("");
    let msg = e.error.as_str();
    if kind == "wrong-code"
        || msg.starts_with("Incorrect verfication code")
        || msg.starts_with("Incorrect verification code")
    {
        Error::WrongCode {
            prefix: None,
            attempts_left: e.attempts_left,
        }
    } else if kind == "rate-limited" || msg.starts_with("Sorry, rate limited") {
        Error::RateLimited {
            server: server.into(),
        }
    } else if kind == "not-found" {
        Error::NotFound(format!("{server}: {msg}"))
    } else if kind == "expired" {
        Error::Expired(format!("{server}: {msg}"))
    } else {
        Error::Server {
            server: server.into(),
            message: msg.chars().take(300).collect(),
        }
    }
}

/// Combine server shares with the pack's local shares and open the secret.
/// When more shares than needed arrived and they do not agree (a server
/// returned garbage), subsets are tried.
fn combine_and_open(pack: &RecoveryPack, got: &[SecretString]) -> Result<SecretBytes> {
    let mut all: Vec<&str> = got.iter().map(|s| s.expose_secret()).collect();
    all.extend(pack.shares.iter().map(|s| s.expose_secret()));
    let threshold = pack.min_shares as usize + pack.shares.len();
    let attempt = |subset: &[&str]| -> Result<SecretBytes> {
        let key = shamir::combine(subset)?;
        pack.open_secret(&key)
    };
    let first = attempt(&all);
    if first.is_ok() || all.len() <= threshold {
        return first;
    }
    // Try subsets of size `threshold` that keep all local shares.
    let remote: Vec<&str> = got.iter().map(|s| s.expose_secret()).collect();
    let need_remote = pack.min_shares as usize;
    let mut tried = 0;
    let mut idx: Vec<usize> = (0..need_remote).collect();
    loop {
        let mut subset: Vec<&str> = idx.iter().map(|i| remote[*i]).collect();
        subset.extend(pack.shares.iter().map(|s| s.expose_secret()));
        if let Ok(s) = attempt(&subset) {
            return Ok(s);
        }
        tried += 1;
        if tried > 500 || !next_combination(&mut idx, remote.len()) {
            return first;
        }
    }
}

fn next_combination(idx: &mut [usize], n: usize) -> bool {
    let k = idx.len();
    for i in (0..k).rev() {
        if idx[i] < n - k + i {
            idx[i] += 1;
            for j in i + 1..k {
                idx[j] = idx[j - 1] + 1;
            }
            return true;
        }
    }
    false
}

/// Default directories as python-passcrow finds them (appdirs):
/// `$XDG_CONFIG_HOME/passcrow` and `$XDG_DATA_HOME/passcrow` on Linux.
pub fn default_dirs() -> (PathBuf, PathBuf) {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    if cfg!(target_os = "macos") {
        let p = home.join("Library/Application Support/passcrow");
        return (p.clone(), p);
    }
    let xdg = |var: &str, fallback: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .unwrap_or_else(|| home.join(fallback))
            .join("passcrow")
    };
    (
        xdg("XDG_CONFIG_HOME", ".config"),
        xdg("XDG_DATA_HOME", ".local/share"),
    )
}

/// Create a directory (and parents) with mode 0700.
pub fn create_private_dir(p: &Path) -> Result<()> {
    crate::util::files::create_private_dir(p)
        .map_err(|e| Error::io(format!("creating {}", p.display()), e))
}

thread_local! {
    /// [`Client::with_pacing`]'s overrides on this thread: (client, pacing).
    static PACING_OVERRIDE: std::cell::RefCell<Vec<(usize, Pacing)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacing_of_one_call_stays_in_that_call() {
        let dir = tempfile::tempdir().unwrap();
        let client = Client::new(ClientConfig::new(dir.path(), dir.path())).unwrap();
        let other = Client::new(ClientConfig::new(dir.path(), dir.path())).unwrap();
        let slow = Pacing {
            delay: Some((Duration::from_secs(1), Duration::from_secs(2))),
            ..Pacing::default()
        };
        assert_eq!(client.pacing().delay, None);
        let inside = std::sync::Barrier::new(2);
        let checked = std::sync::Barrier::new(2);
        std::thread::scope(|s| {
            s.spawn(|| {
                client.with_pacing(slow.clone(), |c| {
                    assert_eq!(c.pacing().delay, slow.delay);
                    // Nested: the innermost wins, then the outer is back.
                    c.with_pacing(Pacing::default(), |c| assert_eq!(c.pacing().delay, None));
                    assert_eq!(c.pacing().delay, slow.delay);
                    // Another client on this thread is not affected.
                    assert_eq!(other.pacing().delay, None);
                    inside.wait();
                    checked.wait();
                })
            });
            inside.wait();
            // Another thread's call on the same client, meanwhile.
            assert_eq!(client.pacing().delay, None);
            checked.wait();
        });
        // Back after a panic, too.
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            client.with_pacing(slow.clone(), |_| panic!("boom"))
        }));
        assert!(r.is_err());
        assert_eq!(client.pacing().delay, None);
    }

    #[test]
    fn codes_are_forgiven() {
        assert_eq!(normalize_code(" a12o45l ").expose_secret(), "A120451");
        assert_eq!(normalize_code("1 234-567").expose_secret(), "1234567");
    }

    #[test]
    fn combinations() {
        let mut idx = vec![0, 1];
        let mut seen = vec![idx.clone()];
        while next_combination(&mut idx, 4) {
            seen.push(idx.clone());
        }
        assert_eq!(seen.len(), 6);
    }

    #[test]
    fn server_errors_map_to_kinds() {
        let e = |s: &str| ErrorAnswer {
            error: s.into(),
            attempts_left: None,
            error_kind: None,
        };
        assert!(matches!(
            map_server_error("s", e("Incorrect verfication code")),
            Error::WrongCode { .. }
        ));
        assert!(matches!(
            map_server_error("s", e("Sorry, rate limited.")),
            Error::RateLimited { .. }
        ));
        assert!(matches!(
            map_server_error("s", e("Internal Error")),
            Error::Server { .. }
        ));
    }
}
