//! `recoveryrequest`: trade the pending code (and the escrow key) for the
//! escrowed secret; wrong codes spend attempts, and the escrow's guessing
//! budget: at most `wrong_guesses_per_hour` in an hour (then none is
//! compared until the hour ends) and `wrong_guesses_lifetime` over its
//! life (then it is frozen for good). When either trips, the escrow's
//! `verify` and `notify` identities are told.

use super::totp::totp_digits;
use crate::crypto::totp;
use crate::proto::health::TOTP_KIND;
use crate::proto::{EscrowData, RecoveryRequest, RecoveryResponse, Version};
use crate::server::answer::{ApiError, ApiResult, ErrorKind};
use crate::server::delivery::{Notice, Outgoing};
use crate::server::storage::{CodeCheck, StoredId};
use crate::server::Server;

/// `HH:MM UTC (in N minutes)` for unix time `until`, seen at `now`.
pub(super) fn until_text(until: i64, now: i64) -> String {
    let s = until.rem_euclid(86_400);
    let mins = ((until - now).max(1) + 59) / 60;
    let unit = if mins == 1 { "minute" } else { "minutes" };
    format!(
        "{:02}:{:02} UTC (in {mins} {unit})",
        s / 3600,
        s % 3600 / 60
    )
}

impl Server {
    /// The answer for an escrow frozen for good.
    pub(super) fn frozen_error(&self, prefix: &str) -> ApiError {
        ApiError {
            kind: ErrorKind::Frozen,
            message: format!(
                "{prefix}This escrow is frozen for good: too many wrong verification codes \
                 were tried over its life ({}), so this server sends no more codes for it and \
                 will never release it. Its owner should protect the secret again \
                 (passcrow renew).",
                self.cfg.limits.wrong_guesses_lifetime
            ),
            attempts_left: Some(0),
            release_at: None,
        }
    }

    /// The answer for an escrow whose hour of wrong guesses is spent.
    pub(super) fn paused_error(&self, until: i64, now: i64) -> ApiError {
        ApiError {
            kind: ErrorKind::RateLimited,
            message: format!(
                "Sorry, rate limited: too many wrong verification codes were tried for this \
                 escrow (at most {} an hour); no code is sent or checked until {}.",
                self.cfg.limits.wrong_guesses_per_hour,
                until_text(until, now)
            ),
            attempts_left: Some(0),
            release_at: None,
        }
    }

    /// Tell the escrow's `verify` identity, and its `notify` identity if
    /// any, that too many wrong codes were tried: no code is checked until
    /// `paused_until`, or (`None`) it is frozen for good.
    fn alert_guessing(
        &self,
        sid: &StoredId,
        created: i64,
        esd: &EscrowData,
        paused_until: Option<i64>,
    ) {
        // An authenticator app cannot be told; its watcher can.
        let mut to = vec![];
        if esd.verify.kind() != TOTP_KIND {
            to.push(esd.verify.clone());
        }
        if let Some(n) = &esd.notify {
            if *n != esd.verify {
                to.push(n.clone());
            }
        }
        for who in to {
            let msg = Outgoing {
                to: who,
                // A recovery request names no language.
                language: "en".into(),
                description: esd.description.clone(),
                about_url: self.cfg.about_url.clone(),
                notice: Notice::TooManyWrongCodes { paused_until },
                contact: Default::default(),
            };
            if let Err(e) = self.send_alert(&msg, created) {
                tracing::warn!(id = %sid, "guessing alert not sent: {}", e.message);
            }
        }
    }

    /// Answer a recovery request.
    pub(in crate::server) fn recovery(&self, body: &[u8]) -> ApiResult<RecoveryResponse> {
        let req: RecoveryRequest = Self::parse(body, "recovery request")?;
        let now = self.now();
        let found = self.load_escrow(&req.escrow_data_id, now)?;
        let (key, sid, blob, row) = (&found.key, found.sid, &found.blob, &found.row);
        // The key first: without it nobody can spend this code's attempts.
        let esd = self.open_client_data(blob, &req.escrow_data_key)?;
        let limits = self.guess_limits();
        // Refusals the row already shows need no write (check_code makes
        // the same checks in its transaction, for requests racing these).
        // A delayed release started before: its state decides, no code is
        // compared (handlers/delay.rs).
        if esd.release_delay.is_some() {
            if let Some(released) = self.release_gate(row, &esd, &sid, now)? {
                return Ok(released);
            }
        }
        if row.frozen {
            return Err(self.frozen_error(""));
        }
        if let Some(until) = row.guesses.paused_until(&limits, now) {
            return Err(self.paused_error(until, now));
        }
        // An authenticator app's code is checked here against the steps
        // around now, and taken by storage only for a step later than the
        // last one it took (each code opens once); `matched` tells a
        // replayed code from a wrong one in the answer.
        let (check, matched) = if esd.verify.kind() == TOTP_KIND {
            let secret = self.totp_secret(&esd)?;
            let digits = totp_digits(&req.verification)?;
            let step = totp::matching_step(secret.expose_secret(), digits.expose_secret(), now);
            (
                self.storage.check_totp(&sid, step, now, &limits)?,
                step.is_some(),
            )
        } else {
            let given = self.keys.code_mac(key, req.verification.expose_secret());
            (self.storage.check_code(&sid, &given, now, &limits)?, false)
        };
        match check {
            CodeCheck::NoCode => Err(ApiError::new(
                ErrorKind::NotFound,
                "No verification code is pending for this escrow; ask for one first",
            )),
            CodeCheck::Expired => Err(ApiError::new(
                ErrorKind::Expired,
                "The verification code has expired; ask for a new one",
            )),
            CodeCheck::Void => Err(ApiError {
                kind: ErrorKind::WrongCode,
                message: "Incorrect verification code: no attempts left, the code is void; \
                          ask for a new one"
                    .into(),
                attempts_left: Some(0),
                release_at: None,
            }),
            CodeCheck::Frozen => Err(self.frozen_error("")),
            CodeCheck::Paused { until } => Err(self.paused_error(until, now)),
            CodeCheck::Right => {
                if let Some(delay) = esd.release_delay {
                    return Err(self.start_release(&sid, row.created, &esd, delay, now));
                }
                tracing::info!(id = %sid, "recovered");
                Ok(RecoveryResponse {
                    version: Version,
                    escrow_secret: esd.secret.clone(),
                })
            }
            CodeCheck::Wrong { left, guesses } => {
                if guesses.lifetime == 0 {
                    tracing::warn!(id = %sid, "frozen: too many wrong codes");
                    self.alert_guessing(&sid, row.created, &esd, None);
                    return Err(self.frozen_error("Incorrect verification code. "));
                }
                if guesses.in_window == 0 {
                    tracing::warn!(
                        id = %sid,
                        "paused: too many wrong codes this hour"
                    );
                    self.alert_guessing(&sid, row.created, &esd, Some(guesses.window_ends));
                    return Err(ApiError {
                        kind: ErrorKind::WrongCode,
                        message: format!(
                            "Incorrect verification code: too many wrong codes for this \
                             escrow this hour; none is checked until {}",
                            until_text(guesses.window_ends, now)
                        ),
                        attempts_left: Some(0),
                        release_at: None,
                    });
                }
                // Honest: the least of what this code, this hour and this
                // escrow's life still take.
                let n = left.min(guesses.in_window).min(guesses.lifetime);
                let why = if n == left {
                    ""
                } else if n == guesses.lifetime {
                    " before this escrow is frozen for good"
                } else {
                    " this hour"
                };
                let wrong = if matched {
                    "This authenticator code was used already (each code opens once; wait \
                     for the app's next one)"
                } else {
                    "Incorrect verification code"
                };
                let message = match n {
                    0 => format!(
                        "{wrong}: no attempts left, the code is now void; ask for a new one"
                    ),
                    1 => format!("{wrong} (1 attempt left{why})"),
                    n => format!("{wrong} ({n} attempts left{why})"),
                };
                Err(ApiError {
                    kind: ErrorKind::WrongCode,
                    message,
                    attempts_left: Some(n),
                    release_at: None,
                })
            }
        }
    }
}
