//! `verificationrequest`: send a fresh code to the escrow's identity
//! (rate-limited per escrow), and a notice to its watcher if any.

use rand::Rng;

use crate::crypto::SecretString;
use crate::proto::{VerificationRequest, VerificationResponse, Version};
use crate::server::answer::{ApiError, ApiResult, ErrorKind};
use crate::server::delivery::{Notice, Outgoing};
use crate::server::escrow_id::short_id;
use crate::server::hints::hint_for;
use crate::server::Server;

impl Server {
    /// Answer a verification request.
    pub(in crate::server) fn verification(&self, body: &[u8]) -> ApiResult<VerificationResponse> {
        let req: VerificationRequest = Self::parse(body, "verification request")?;
        let mut pc = req.prefix.chars();
        let prefix = match (pc.next(), pc.next()) {
            (Some(c), None) if c.is_ascii_graphic() => c,
            _ => {
                return Err(ApiError::bad(
                    "Bad request: prefix must be exactly one printable character",
                ))
            }
        };
        let now = self.now();
        let (key, blob, row) = self.load_escrow(&req.escrow_data_id, now)?;
        let esd = self.open_client_data(&blob, &req.escrow_data_key)?;
        // No code for an escrow that could not check it: frozen for good,
        // or its hour of wrong guesses spent (the code would expire unused
        // and only bother its owner).
        if row.frozen {
            return Err(self.frozen_error(""));
        }
        if let Some(until) = row.guesses.paused_until(&self.guess_limits(), now) {
            return Err(self.paused_error(until, now));
        }
        let sealed = row.sealed;
        let dlv = self.deliverer(esd.verify.kind())?.clone();
        let max = self.cfg.max_timeout_seconds;
        let tmo = esd.timeout.unwrap_or(max).clamp(1, max);
        let n: u32 = rand::rngs::OsRng.gen_range(0..1_000_000);
        let code = SecretString::new(format!("{prefix}{n:06}"));
        let expiration = now + tmo;
        let mac = self.keys.code_mac(&key, code.expose_secret());
        let per_hour = self.cfg.verifications_per_hour;
        let Some(started) = self.storage.start_verification(&key, now, 3600, per_hour)? else {
            let mut e = ApiError::rate_limited();
            e.message = format!(
                "Sorry, rate limited. At most {per_hour} verification requests per hour for one escrow."
            );
            return Err(e);
        };
        let hint = hint_for(&esd.verify);
        let msg = Outgoing {
            to: esd.verify.clone(),
            language: req.language.clone(),
            description: esd.description.clone(),
            about_url: self.cfg.about_url.clone(),
            notice: Notice::Code {
                code,
                timeout_seconds: tmo,
            },
        };
        // The new code is stored only once delivered: until then the code
        // sent before stays the pending one, and nobody can guess at a code
        // that may never arrive.
        if let Err(e) = dlv.deliver(&msg) {
            tracing::warn!(
                via = dlv.name(),
                id = short_id(&key),
                "delivery failed: {e}"
            );
            // The user got nothing, so this hour's count is given back, up
            // to as many failures as deliveries allowed (a bound on the
            // messages an outage or a flaky provider can make us send).
            if let Err(e) = self.storage.verification_failed(&key, started, per_hour) {
                tracing::error!(id = short_id(&key), "recording the failed delivery: {e}");
            }
            return Err(ApiError::new(
                ErrorKind::Internal,
                "Could not deliver the verification code; try again later",
            ));
        }
        if !self
            .storage
            .set_code(&key, &sealed, &mac, expiration, self.cfg.code_attempts)?
        {
            return Err(ApiError::new(
                ErrorKind::NotFound,
                "Not found: the escrow was deleted, expired or frozen while its code was being sent",
            ));
        }
        tracing::info!(via = dlv.name(), id = short_id(&key), "code sent");
        if let Some(watcher) = &esd.notify {
            match self.deliverers.get(watcher.kind()) {
                Some(d) => {
                    let n = Outgoing {
                        to: watcher.clone(),
                        language: req.language.clone(),
                        description: esd.description.clone(),
                        about_url: self.cfg.about_url.clone(),
                        notice: Notice::RecoveryStarted {
                            code_sent_to: hint.clone(),
                        },
                    };
                    if let Err(e) = d.deliver(&n) {
                        tracing::warn!(via = d.name(), id = short_id(&key), "notice failed: {e}");
                    }
                }
                None => tracing::warn!(
                    id = short_id(&key),
                    "cannot notify {} identities",
                    watcher.kind()
                ),
            }
        }
        Ok(VerificationResponse {
            version: Version,
            escrow_data_id: req.escrow_data_id.clone(),
            expiration,
            hint,
            action_url: None,
        })
    }
}
