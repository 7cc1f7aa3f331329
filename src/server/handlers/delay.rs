//! The release delay (ours): an escrow whose data asks for
//! `release-delay` seconds is not released when its right code arrives.
//! The server records that the release is due at T (durably, with the
//! keyed hash of a fresh cancel token), tells **every** identity of the
//! escrow (`verify` unless it is an authenticator app, and `notify`) that
//! the recovery completes at T unless stopped, with a link to the cancel
//! page under `[outbound] public_url` (never built from a request), and
//! answers `pending` with `release-at`. If any notice cannot be delivered
//! (a spent budget, an opted-out address, a failing provider) the release
//! is undone: nothing proceeds unannounced. Until T every recovery
//! request is answered `pending` (no code is compared); from T the same
//! request (the same escrow key, any code) gets the secret; once stopped,
//! never (`stopped`).
//!
//! The cancel page (`/passcrow/cancel/TOKEN`) shows a button on `GET`
//! (what a mail scanner or a link preview does) and stops the release
//! only on its `POST`. Everything it shows is fixed text and times.

use crate::crypto::{self, SecretString};
use crate::proto::health::TOTP_KIND;
use crate::proto::{EscrowData, RecoveryResponse, Version};
use crate::server::answer::{ApiError, ApiResult, ErrorKind};
use crate::server::budgets::MessageClass;
use crate::server::delivery::messages::utc_date_time;
use crate::server::delivery::{Notice, Outgoing};
use crate::server::storage::{EscrowRow, ReleaseCancel, StoredId, RELEASE_STOPPED};
use crate::server::Server;

use super::pages::{esc, html, Page};

/// Hex digits of a cancel token (32 random bytes).
const TOKEN_CHARS: usize = 64;

/// `YYYY-MM-DD HH:MM UTC (in N hours)` of `due`, seen at `now`.
fn due_text(due: i64, now: i64) -> String {
    let left = (due - now).max(0);
    let rel = if left >= 2 * 3600 {
        format!("in {} hours", (left + 1800) / 3600)
    } else {
        let m = (left + 59) / 60;
        format!("in {m} minute{}", if m == 1 { "" } else { "s" })
    };
    format!("{} ({rel})", utc_date_time(due))
}

impl Server {
    /// The longest release delay this server offers, or `None` (no
    /// `public_url` for the cancel page, or `[delay] max_seconds = 0`).
    pub(super) fn max_delay(&self) -> Option<i64> {
        let max = self.cfg.delay.max_seconds;
        (max > 0 && self.optout_base().is_some()).then_some(max)
    }

    /// The `pending` answer for a release due at `due`.
    pub(super) fn pending_error(&self, due: i64, now: i64) -> ApiError {
        ApiError {
            kind: ErrorKind::Pending,
            message: format!(
                "Recovery pending: this escrow is released at {} unless its owner stops it; \
                 ask again then (no new code is needed)",
                due_text(due, now)
            ),
            attempts_left: None,
            release_at: Some(due),
        }
    }

    /// The `stopped` answer.
    pub(super) fn stopped_error(&self) -> ApiError {
        ApiError::new(
            ErrorKind::Stopped,
            "Its owner stopped a recovery of this escrow: this server will never release it. \
             If you are the owner, protect the secret again (passcrow renew).",
        )
    }

    /// For an escrow with a release delay, before any code is compared:
    /// the secret once a pending release is due, `pending` before then,
    /// `stopped` after a cancel; `None` when no release was started.
    pub(super) fn release_gate(
        &self,
        row: &EscrowRow,
        esd: &EscrowData,
        sid: &StoredId,
        now: i64,
    ) -> ApiResult<Option<RecoveryResponse>> {
        match row.release_due {
            RELEASE_STOPPED => Err(self.stopped_error()),
            0 => Ok(None),
            due if due <= now => {
                tracing::info!(id = %sid, "recovered after its release delay");
                Ok(Some(RecoveryResponse {
                    version: Version,
                    escrow_secret: esd.secret.clone(),
                }))
            }
            due => Err(self.pending_error(due, now)),
        }
    }

    /// The right code arrived for an escrow asking for `delay` seconds:
    /// start the release, tell every identity, answer `pending` (or, when
    /// a notice could not go out, undo it and say so).
    pub(super) fn start_release(
        &self,
        sid: &StoredId,
        created: i64,
        esd: &EscrowData,
        delay: i64,
        now: i64,
    ) -> ApiError {
        let (Some(max), Some(base)) = (self.max_delay(), self.optout_base()) else {
            return ApiError::new(
                ErrorKind::Unsupported,
                "This escrow asks for a release delay, which this server no longer offers \
                 (its operator turned it off): it cannot be released",
            );
        };
        let mut to = vec![];
        if esd.verify.kind() != TOTP_KIND {
            to.push(esd.verify.clone());
        }
        if let Some(n) = &esd.notify {
            if *n != esd.verify {
                to.push(n.clone());
            }
        }
        if to.is_empty() {
            return ApiError::new(
                ErrorKind::BadRequest,
                "This escrow asks for a release delay but names nobody this server can \
                 tell (an authenticator app with no notify): it cannot be released",
            );
        }
        let due = now.saturating_add(delay.clamp(1, max));
        let mut raw = [0u8; TOKEN_CHARS / 2];
        crypto::random_bytes(&mut raw);
        let token = SecretString::new(data_encoding::HEXLOWER.encode(&raw));
        let hash = self.cancel_hash(token.expose_secret());
        match self.storage.start_release(sid, due, &hash) {
            Ok(true) => {}
            Ok(false) => {
                return ApiError::new(
                    ErrorKind::NotFound,
                    "Not found: the escrow was deleted, frozen or stopped meanwhile",
                )
            }
            Err(e) => return ApiError::from(e),
        }
        let url = format!("{base}/passcrow/cancel/{}", token.expose_secret());
        for who in to {
            let msg = Outgoing {
                to: who,
                // A recovery request names no language.
                language: "en".into(),
                description: esd.description.clone(),
                about_url: self.cfg.about_url.clone(),
                notice: Notice::ReleasePending {
                    due,
                    cancel_url: url.clone(),
                },
                contact: Default::default(),
            };
            if let Err(e) = self.send(&msg, created, MessageClass::Notice) {
                tracing::warn!(
                    id = %sid,
                    kind = e.kind.as_str(),
                    "release notice not sent, release undone: {}",
                    e.message
                );
                if let Err(e) = self.storage.abort_release(sid) {
                    tracing::error!(id = %sid, "undoing a release: {e}");
                }
                return ApiError::new(
                    ErrorKind::Internal,
                    "The notice of this release could not be delivered to every identity of \
                     the escrow, so the release does not proceed; ask for a new code and try \
                     again later",
                );
            }
        }
        tracing::info!(id = %sid, due, "release pending");
        self.pending_error(due, now)
    }

    /// The keyed hash a cancel token is stored as.
    fn cancel_hash(&self, token: &str) -> [u8; 32] {
        self.keys.code_mac("release-cancel", token)
    }

    /// `/passcrow/cancel/TOKEN`: `confirm` false (GET) shows the button,
    /// true (POST) stops the release.
    pub(crate) fn cancel_page(&self, token: &str, confirm: bool) -> Page {
        let ok = token.len() == TOKEN_CHARS && token.bytes().all(|b| b.is_ascii_hexdigit());
        let invalid = || {
            html(
                400,
                "This link is not valid",
                &format!(
                    "<p>This link was not made by this server, or it was cut short.\n\
                     Copy the whole link from the message, or write to {}.</p>",
                    esc(&self.abuse_contact())
                ),
            )
        };
        if !ok {
            return invalid();
        }
        let hash = self.cancel_hash(&token.to_ascii_lowercase());
        let now = self.now();
        let failed = |e: String| {
            tracing::error!("cancel page: {e}");
            html(
                500,
                "Something went wrong",
                "<p>Nothing was changed; please try again in a moment.</p>",
            )
        };
        let stopped = html(
            200,
            "Recovery stopped",
            "<p>This server will never release its part of this recovery data.</p>\n\
             <p>If you are its owner, your secret is still safe, but this copy can no\n\
             longer recover it: protect the secret again (passcrow renew).</p>",
        );
        let too_late = |due: i64| {
            html(
                200,
                "Too late to stop",
                &format!(
                    "<p>This recovery completed on {}; it can no longer be stopped.</p>",
                    esc(&utc_date_time(due))
                ),
            )
        };
        if !confirm {
            return match self.storage.release_by_cancel(&hash) {
                Err(e) => failed(e.to_string()),
                Ok(None) => invalid(),
                Ok(Some(RELEASE_STOPPED)) => stopped,
                Ok(Some(due)) if due <= now => too_late(due),
                Ok(Some(due)) => html(
                    200,
                    "Stop this recovery?",
                    &format!(
                        "<p>Someone proved an identity of your Passcrow recovery data to this\n\
                         server and asked for the data. It will be released on\n\
                         <strong>{}</strong> unless you stop it.</p>\n\
                         <p>If this was not you, stop it now. If it was you, close this page.</p>\n\
                         <form method=\"post\"><button type=\"submit\">Stop this recovery</button></form>",
                        esc(&due_text(due, now))
                    ),
                ),
            };
        }
        match self.storage.cancel_release(&hash, now) {
            Err(e) => failed(e.to_string()),
            Ok(ReleaseCancel::Unknown) => invalid(),
            Ok(ReleaseCancel::Stopped { .. }) => {
                tracing::info!("a pending release was stopped by its owner");
                stopped
            }
            Ok(ReleaseCancel::Already) => stopped,
            Ok(ReleaseCancel::TooLate { due }) => too_late(due),
        }
    }
}
