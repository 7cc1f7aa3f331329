//! [`PasscrowClient`]: the client object every binding has; each method
//! builds the core's request and calls the core.

use super::*;

/// The Passcrow client. Every method blocks: call it off the UI thread.
/// Thread-safe.
#[derive(uniffi::Object)]
pub struct PasscrowClient {
    inner: Client,
}

/// A core client over `transport` (none: the built-in HTTPS stack),
/// logging to `log`: what every constructor here and in the drop-in's
/// module does.
pub(crate) fn core_client(
    cfg: ClientConfig,
    transport: Option<Arc<dyn HttpTransport>>,
    log: Option<Arc<dyn LogSink>>,
) -> crate::Result<Client> {
    let mut inner = match transport {
        Some(t) => Client::with_transport(cfg, Arc::new(ForeignTransport(t)))?,
        None => Client::new(cfg)?,
    };
    if let Some(l) = log {
        inner.set_log(Arc::new(move |m: &str| l.log(m.to_string())));
    }
    Ok(inner)
}

impl PasscrowClient {
    /// The binding over a core client (the drop-in's `CompatClient` wraps
    /// one).
    #[cfg_attr(not(feature = "python-compat"), allow(dead_code))]
    pub(crate) fn from_core(inner: Client) -> Self {
        PasscrowClient { inner }
    }

    pub(crate) fn core(&self) -> &Client {
        &self.inner
    }
}

/// The request for `identities` and an n/m given or not: the core fills
/// the gaps from the defaults and checks the ratio.
fn policy_request(identities: Vec<String>, n: Option<u32>, m: Option<u32>) -> PolicyRequest {
    PolicyRequest {
        identities,
        n,
        m,
        ..Default::default()
    }
}

#[uniffi::export]
impl PasscrowClient {
    /// A client keeping packs in `data_dir` and `policy.rc` in
    /// `config_dir` (created, mode 0700, when `create_dirs`). `transport`
    /// replaces the built-in HTTPS stack; `log` receives progress lines.
    /// `language` is asked for in verification messages; hashcash uses
    /// `hashcash_threads` threads (0: one per core). A transient failure
    /// (no answer, rate limited) is retried after `retry_backoff_ms`,
    /// doubling up to `max_backoff_ms`.
    #[uniffi::constructor(default(
        transport = None,
        log = None,
        create_dirs = true,
        language = "en",
        hashcash_threads = 0,
        retry_backoff_ms = 1100,
        max_backoff_ms = 8000
    ))]
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config_dir: String,
        data_dir: String,
        transport: Option<Arc<dyn HttpTransport>>,
        log: Option<Arc<dyn LogSink>>,
        create_dirs: bool,
        language: String,
        hashcash_threads: u32,
        retry_backoff_ms: u32,
        max_backoff_ms: u32,
    ) -> Res<Arc<Self>> {
        let (config_dir, data_dir) = (PathBuf::from(config_dir), PathBuf::from(data_dir));
        if create_dirs {
            client::create_private_dir(&config_dir)?;
            client::create_private_dir(&data_dir)?;
        }
        let mut cfg = ClientConfig::new(config_dir, data_dir);
        cfg.language = language;
        cfg.hashcash_threads = hashcash_threads as usize;
        cfg.pacing.backoff = Duration::from_millis(retry_backoff_ms.into());
        cfg.pacing.max_backoff = Duration::from_millis(max_backoff_ms.into());
        Ok(Arc::new(PasscrowClient {
            inner: core_client(cfg, transport, log)?,
        }))
    }

    /// The defaults in use (loaded from `policy.rc`, or built in).
    pub fn defaults(&self) -> PolicyDefaults {
        defaults_from_core(&self.inner.defaults())
    }

    /// Replace the defaults; with `save`, also write `policy.rc`.
    #[uniffi::method(default(save = false))]
    pub fn set_defaults(&self, defaults: PolicyDefaults, save: bool) -> Res<()> {
        self.inner.set_defaults(defaults_to_core(&defaults)?);
        if save {
            self.inner.save_defaults()?;
        }
        Ok(())
    }

    /// Protect `secret` under `name`: split a fresh key n-of-m over
    /// `identities` (`alice@example.org via server`; empty: the defaults),
    /// escrow the shares and write the pack. `n`/`m` default to the
    /// defaults' ratio (scaled to the identities); `n` alone means n of
    /// all the identities. `options`: this call's [`CallOptions`] (none:
    /// no anonymity delay). Blocks: one round trip per server plus
    /// hashcash.
    #[uniffi::method(default(
        n = None,
        m = None,
        ephemeral = None,
        replace = false,
        pack_description = None,
        verify_description = None,
        options = None
    ))]
    #[allow(clippy::too_many_arguments)]
    pub fn protect(
        &self,
        name: String,
        secret: Vec<u8>,
        identities: Vec<String>,
        n: Option<u32>,
        m: Option<u32>,
        ephemeral: Option<EphemeralMode>,
        replace: bool,
        pack_description: Option<String>,
        verify_description: Option<String>,
        options: Option<CallOptions>,
    ) -> Res<ProtectResult> {
        let secret = crate::crypto::SecretBytes::new(secret);
        let call = call_options(&self.inner, options)?;
        let policy = self.inner.policy(&policy_request(identities, n, m))?;
        let mut opts = ProtectOptions {
            ephemeral: ephemeral.unwrap_or(EphemeralMode::No).into(),
            replace,
            ..Default::default()
        };
        if let Some(d) = pack_description {
            opts.pack_description = d;
        }
        if let Some(d) = verify_description {
            opts.verify_description = d;
        }
        let p = self
            .inner
            .protect_with(&name, secret.expose_secret(), &policy, &opts, &call)?;
        Ok(protect_result(p))
    }

    /// Load the pack `name`, or make the stand-in for an ephemeral
    /// recovery id `SERVER:USER_KEY` (scrypt: a few seconds).
    pub fn pack(&self, name: String) -> Res<Arc<Pack>> {
        Ok(Arc::new(Pack {
            inner: self.inner.pack(&name)?,
        }))
    }

    /// Ask every escrow's server to send its verification code, with
    /// this call's `options` (none: no anonymity delay). Blocks.
    #[uniffi::method(default(options = None))]
    pub fn verify(&self, pack: Arc<Pack>, options: Option<CallOptions>) -> Res<Verification> {
        let call = call_options(&self.inner, options)?;
        Ok(verification(self.inner.verify_with(&pack.inner, &call)?))
    }

    /// Recover with the codes the user received (any order; blanks,
    /// dashes and case are forgiven), with this call's `options` (none: no
    /// anonymity delay). A refused code raises `WrongCode` with the
    /// attempts left. Blocks.
    #[uniffi::method(default(options = None))]
    pub fn recover(
        &self,
        pack: Arc<Pack>,
        codes: Vec<String>,
        options: Option<CallOptions>,
    ) -> Res<RecoveryResult> {
        let call = call_options(&self.inner, options)?;
        Ok(recovery_result(self.inner.recover_with(
            &pack.inner,
            &codes,
            &call,
        )?))
    }

    /// Delete the pack `name`: its escrows on the servers (unless
    /// `local_only`), then the file, with this call's `options` (none: no
    /// anonymity delay). Returns the escrows deleted. Blocks.
    #[uniffi::method(default(local_only = false, options = None))]
    pub fn forget(&self, name: String, local_only: bool, options: Option<CallOptions>) -> Res<u32> {
        let call = call_options(&self.inner, options)?;
        Ok(sat_u32(
            self.inner.forget_with(&name, local_only, &call)?.deleted,
        ))
    }

    /// Every pack, sorted by file name (unreadable ones carry `error`).
    pub fn list(&self) -> Res<Vec<PackSummary>> {
        Ok(self
            .inner
            .list()?
            .into_iter()
            .map(PackSummary::from)
            .collect())
    }

    /// Packs whose first escrow expires within `within_seconds`, and
    /// packs that could not be read.
    pub fn expiring(&self, within_seconds: u64) -> Res<Vec<PackSummary>> {
        Ok(self
            .inner
            .expiring(Duration::from_secs(within_seconds))?
            .into_iter()
            .map(PackSummary::from)
            .collect())
    }

    /// Renew `name`: escrow `secret` afresh (over `identities`, or the
    /// defaults when empty and no ratio is given), replace the pack, then
    /// delete the old escrows, with this call's `options` (none: no
    /// anonymity delay). Blocks.
    #[uniffi::method(default(identities = [], n = None, m = None, options = None))]
    pub fn renew(
        &self,
        name: String,
        secret: Vec<u8>,
        identities: Vec<String>,
        n: Option<u32>,
        m: Option<u32>,
        options: Option<CallOptions>,
    ) -> Res<ProtectResult> {
        let secret = crate::crypto::SecretBytes::new(secret);
        let call = call_options(&self.inner, options)?;
        let policy = if identities.is_empty() && n.is_none() && m.is_none() {
            None
        } else {
            Some(self.inner.policy(&policy_request(identities, n, m))?)
        };
        let p = self
            .inner
            .renew_with(&name, secret.expose_secret(), policy.as_ref(), &call)?;
        Ok(protect_result(p))
    }

    /// Cancel hashcash work in progress (the call raises `Cancelled`).
    /// Later calls work again once [`PasscrowClient::reset_cancel`] is
    /// called.
    pub fn cancel(&self) {
        self.inner.cancel_flag().store(true, Ordering::SeqCst);
    }

    /// Clear a [`PasscrowClient::cancel`].
    pub fn reset_cancel(&self) {
        self.inner.cancel_flag().store(false, Ordering::SeqCst);
    }
}
