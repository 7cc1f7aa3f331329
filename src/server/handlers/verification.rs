//! `verificationrequest`: send a fresh code to the escrow's identity
//! (rate-limited per escrow, and by the delivery budgets of
//! `budgets.rs`), and a notice to its watcher if any.
//!
//! The checks are ordered so that a refusal changes nothing: the
//! destination first, then the delivery budgets and the escrow's own
//! hourly count in one transaction (one sync) that counts only if every
//! budget and the hour have room, then the delivery (a failure gives both
//! back), and only then is the new code stored.

use rand::Rng;

use crate::crypto::SecretString;
use crate::proto::health::TOTP_KIND;
use crate::proto::{EscrowData, VerificationRequest, VerificationResponse, Version};
use crate::server::answer::{ApiError, ApiResult, ErrorKind};
use crate::server::budgets::MessageClass;
use crate::server::delivery::{Notice, Outgoing};
use crate::server::hints::hint_for;
use crate::server::storage::StoredId;
use crate::server::Server;

impl Server {
    /// Tell the escrow's watcher (`notify`), if any, that a recovery
    /// started and where its code went (`hint`).
    pub(super) fn notify_watcher(
        &self,
        language: &str,
        esd: &EscrowData,
        hint: &str,
        created: i64,
        sid: &StoredId,
    ) {
        let Some(watcher) = &esd.notify else {
            return;
        };
        let n = Outgoing {
            to: watcher.clone(),
            language: language.to_string(),
            description: esd.description.clone(),
            about_url: self.cfg.about_url.clone(),
            notice: Notice::RecoveryStarted {
                code_sent_to: hint.to_string(),
            },
            contact: Default::default(),
        };
        // The watcher's budgets count notices too; one refused (or
        // failed) is logged, the code is out already.
        if let Err(e) = self.send(&n, created, MessageClass::Notice) {
            tracing::warn!(
                id = %sid,
                kind = e.kind.as_str(),
                "recovery notice not sent: {}",
                e.message
            );
        }
    }

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
        let found = self.load_escrow(&req.escrow_data_id, now)?;
        let sid = found.sid;
        let esd = self.open_client_data(&found.blob, &req.escrow_data_key)?;
        // No code for an escrow that could not check it: frozen for good,
        // or its hour of wrong guesses spent (the code would expire unused
        // and only bother its owner).
        if found.row.frozen {
            return Err(self.frozen_error(""));
        }
        // A delayed release started or stopped: no new code.
        if esd.release_delay.is_some() {
            match found.row.release_due {
                0 => {}
                crate::server::storage::RELEASE_STOPPED => return Err(self.stopped_error()),
                due => return Err(self.pending_error(due, now)),
            }
        }
        if let Some(until) = found.row.guesses.paused_until(&self.guess_limits(), now) {
            return Err(self.paused_error(until, now));
        }
        if esd.verify.kind() == TOTP_KIND {
            // The code is in the user's authenticator app (handlers/totp.rs).
            return self.verification_totp(&req, &found, &esd, now);
        }
        let dlv_name = self.deliverer(esd.verify.kind())?.name().to_string();
        let max = self.cfg.max_timeout_seconds;
        let tmo = esd.timeout.unwrap_or(max).clamp(1, max);
        let n: u32 = rand::rngs::OsRng.gen_range(0..1_000_000);
        let code = SecretString::new(format!("{prefix}{n:06}"));
        let expiration = now + tmo;
        let mac = self.keys.code_mac(&found.key, code.expose_secret());
        // Opt-out, SMS country, delivery budgets and the escrow's own hour,
        // in one transaction: a refusal counts nothing.
        let per_hour = self.cfg.verifications_per_hour;
        let Some((charged, started)) =
            self.charge_code(&esd.verify, found.row.created, &sid, per_hour)?
        else {
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
            contact: Default::default(),
        };
        // The new code is stored only once delivered: until then the code
        // sent before stays the pending one, and nobody can guess at a code
        // that may never arrive.
        if self.deliver_charged(&msg, charged).is_err() {
            // The user got nothing, so this hour's count is given back, up
            // to as many failures as deliveries allowed (a bound on the
            // messages an outage or a flaky provider can make us send).
            if let Err(e) = self.storage.verification_failed(&sid, started, per_hour) {
                tracing::error!(id = %sid, "recording the failed delivery: {e}");
            }
            return Err(ApiError::new(
                ErrorKind::Internal,
                "Could not deliver the verification code; try again later",
            ));
        }
        if !self.storage.set_code(
            &sid,
            &found.row.sealed,
            &mac,
            expiration,
            self.cfg.code_attempts,
        )? {
            return Err(ApiError::new(
                ErrorKind::NotFound,
                "Not found: the escrow was deleted, expired or frozen while its code was being sent",
            ));
        }
        tracing::info!(via = dlv_name, id = %sid, "code sent");
        self.notify_watcher(&req.language, &esd, &hint, found.row.created, &sid);
        Ok(VerificationResponse {
            version: Version,
            escrow_data_id: req.escrow_data_id.clone(),
            expiration,
            hint,
            action_url: None,
        })
    }
}
