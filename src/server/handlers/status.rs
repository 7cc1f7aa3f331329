//! `status` (ours): is an escrow still held, when does it expire, is it
//! frozen, and a keyed digest of its stored data under the caller's fresh
//! challenge, proving the bytes are still there. Sends no code, tells no
//! one, decrypts no identity (the escrow key is never asked for), and
//! logs nothing that names the escrow. Limited per escrow
//! (`status_per_hour`) and, like every method, per client address.

use crate::crypto;
use crate::proto::health::{
    status_digest, HeldState, StatusRequest, StatusResponse, CHALLENGE_MAX_BYTES,
    CHALLENGE_MIN_BYTES,
};
use crate::proto::Version;
use crate::server::answer::{ApiError, ApiResult};
use crate::server::escrow_id::parse_id;
use crate::server::storage::Lookup;
use crate::server::Server;

impl Server {
    /// Answer a status request.
    pub(in crate::server) fn status(&self, body: &[u8]) -> ApiResult<StatusResponse> {
        let req: StatusRequest = Self::parse(body, "status request")?;
        let challenge = crypto::b64decode(&req.challenge)
            .ok()
            .filter(|c| (CHALLENGE_MIN_BYTES..=CHALLENGE_MAX_BYTES).contains(&c.len()))
            .ok_or_else(|| {
                ApiError::bad(format!(
                    "Bad request: challenge must be base64 of {CHALLENGE_MIN_BYTES} to \
                     {CHALLENGE_MAX_BYTES} bytes"
                ))
            })?;
        let (key, exp) = parse_id(&req.escrow_data_id)?;
        let sid = self.keys.stored_id(&key);
        let now = self.now();
        let answer = |state, expiration, frozen, digest| StatusResponse {
            version: Version,
            escrow_data_id: req.escrow_data_id.clone(),
            state,
            expiration,
            frozen,
            digest,
        };
        let row = match self.storage.get_escrow(&sid, now)? {
            Lookup::Found(row) => row,
            Lookup::Expired => return Ok(answer(HeldState::Expired, None, false, None)),
            Lookup::Missing => {
                // An id whose own expiration has passed was swept, not lost.
                let state = match exp {
                    Some(e) if e > 0 && e <= now => HeldState::Expired,
                    _ => HeldState::Missing,
                };
                return Ok(answer(state, None, false, None));
            }
        };
        if !self
            .storage
            .count_status(&sid, now, 3600, self.cfg.status_per_hour)?
        {
            let mut e = ApiError::rate_limited();
            e.message = format!(
                "Sorry, rate limited. At most {} status requests per hour for one escrow.",
                self.cfg.status_per_hour
            );
            return Err(e);
        }
        // Opened from storage on every call: the digest is of the bytes
        // held now. Data that no longer opens is held but not intact.
        let digest = self
            .keys
            .try_open(&sid, &row.sealed)
            .map(|raw| crypto::b64encode(&status_digest(&challenge, raw.expose_secret())));
        if digest.is_none() {
            // Without the id: an operator finds damaged rows by scanning.
            tracing::error!("a status request found stored escrow data that does not open");
        }
        Ok(answer(
            HeldState::Held,
            Some(row.expires),
            row.frozen,
            digest,
        ))
    }
}
