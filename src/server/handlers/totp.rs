//! `totp:` identities (ours): an authenticator app verifies the user, and
//! this server checks its codes itself (RFC 6238: SHA-1, 6 digits, 30 s,
//! ±1 step of clock skew; the server's clock must be NTP-synced).
//!
//! The secret is in the escrow data (`totp-secret`), so the server learns
//! it only when a recovery starts, as it learns an e-mail address.
//! `verify` sends nothing to the app: it counts the verification like any
//! other (at most `verifications_per_hour`), tells the `notify` identity,
//! and opens a window of the code timeout in which `recover` takes the
//! app's code, stored as a pending "code" row with `code_attempts`
//! attempts whose MAC nothing ever matches. `recover` then checks the code
//! against the steps around now and, in one storage transaction with the
//! guessing budget ([`crate::server::storage::Storage::check_totp`]),
//! accepts it only for a step later than the last one accepted (stored
//! per escrow, durably): each code opens once. A wrong or replayed code
//! spends an attempt and a wrong guess, as a wrong sent code does.

use crate::crypto::{self, totp, SecretBytes, SecretString};
use crate::proto::health::TOTP_KIND;
use crate::proto::{EscrowData, VerificationRequest, VerificationResponse, Version};
use crate::server::answer::{ApiError, ApiResult, ErrorKind};
use crate::server::Server;

use super::Loaded;

/// The hint of a `totp:` identity: where the code is (its label is the
/// account name the owner gave it, shown so they find the entry).
pub(super) fn totp_hint(label: &str) -> String {
    let clean: String = label
        .chars()
        .filter(|c| !c.is_control())
        .take(crate::proto::MAX_TOTP_LABEL_CHARS)
        .collect();
    format!("authenticator app: {} ({clean})", totp::ISSUER)
}

impl Server {
    /// True when `kind` is `totp` and this server offers it.
    pub(super) fn offers_totp(&self, kind: &str) -> bool {
        kind == TOTP_KIND && self.cfg.totp.enabled
    }

    /// The TOTP secret of a `totp:` escrow, or why not.
    pub(super) fn totp_secret(&self, esd: &EscrowData) -> ApiResult<SecretBytes> {
        if !self.cfg.totp.enabled {
            return Err(ApiError::new(
                ErrorKind::Unsupported,
                "Unsupported kind of Identity: totp (this server's operator turned \
                 authenticator apps off)",
            ));
        }
        esd.totp_secret
            .as_ref()
            .and_then(|s| totp::decode_secret(s.expose_secret()))
            .ok_or_else(|| {
                ApiError::bad(
                    "The escrow data is not valid: a totp: identity needs its totp-secret \
                     (base32, 16 to 64 bytes)",
                )
            })
    }

    /// `verify` of a `totp:` escrow (not frozen, not paused): count it,
    /// open the window for the app's code, tell the watcher.
    pub(super) fn verification_totp(
        &self,
        req: &VerificationRequest,
        found: &Loaded,
        esd: &EscrowData,
        now: i64,
    ) -> ApiResult<VerificationResponse> {
        self.totp_secret(esd)?;
        let sid = found.sid;
        let max = self.cfg.max_timeout_seconds;
        let tmo = esd.timeout.unwrap_or(max).clamp(1, max);
        let expiration = now + tmo;
        let per_hour = self.cfg.verifications_per_hour;
        if self
            .storage
            .start_verification(&sid, now, 3600, per_hour)?
            .is_none()
        {
            let mut e = ApiError::rate_limited();
            e.message = format!(
                "Sorry, rate limited. At most {per_hour} verification requests per hour for one escrow."
            );
            return Err(e);
        }
        // The pending row only marks the window and holds its attempts:
        // its MAC is of a random string nobody knows.
        let mut mark = [0u8; 32];
        crypto::random_bytes(&mut mark);
        let mark = SecretString::new(crypto::b64encode(&mark));
        let mac = self.keys.code_mac(&found.key, mark.expose_secret());
        if !self.storage.set_code(
            &sid,
            &found.row.sealed,
            &mac,
            expiration,
            self.cfg.code_attempts,
        )? {
            return Err(ApiError::new(
                ErrorKind::NotFound,
                "Not found: the escrow was deleted, expired or frozen meanwhile",
            ));
        }
        let hint = totp_hint(esd.verify.address());
        tracing::info!(id = %sid, "totp recovery started");
        self.notify_watcher(&req.language, esd, &hint, found.row.created, &sid);
        Ok(VerificationResponse {
            version: Version,
            escrow_data_id: req.escrow_data_id.clone(),
            expiration,
            hint,
            action_url: None,
        })
    }
}

/// The 6 digits of a typed authenticator code: blanks and dashes dropped,
/// a routing prefix before them (7 characters) dropped. Anything else is
/// refused before any state changes.
pub(super) fn totp_digits(typed: &SecretString) -> ApiResult<SecretString> {
    let s: String = typed
        .expose_secret()
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    let s = SecretString::new(s);
    let t = s.expose_secret();
    let digits = match t.chars().count() {
        6 => t,
        7 => {
            let first = t.chars().next().map(char::len_utf8).unwrap_or(0);
            &t[first..]
        }
        _ => "",
    };
    if digits.len() == totp::DIGITS as usize && digits.bytes().all(|b| b.is_ascii_digit()) {
        Ok(SecretString::new(digits.to_string()))
    } else {
        Err(ApiError::bad(
            "Bad request: an authenticator code is the 6 digits the app shows",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_codes() {
        let ok = |s: &str| {
            totp_digits(&SecretString::new(s.into())).map(|d| d.expose_secret().to_string())
        };
        assert_eq!(ok(" 123 456 ").unwrap(), "123456");
        assert_eq!(ok("3123-456").unwrap(), "123456");
        assert_eq!(ok("Z123456").unwrap(), "123456");
        for bad in ["12345", "1234567x", "abcdef", "", "éé12345"] {
            assert!(ok(bad).is_err(), "{bad}");
        }
        assert_eq!(totp_hint("phone\n"), "authenticator app: Passcrow (phone)");
    }
}
