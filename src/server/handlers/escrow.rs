//! `escrowrequest`: store an escrow, paid for (free or hashcash); and
//! [`Server::import_escrows`], the same storage without HTTP or payment.

use rand::Rng;

use crate::crypto;
use crate::payment;
use crate::proto::{EscrowParameters, EscrowRequest, EscrowResponse, Version};
use crate::server::answer::{ApiError, ApiResult, ErrorKind};
use crate::server::error::{ServerError, ServerResult};
use crate::server::storage::{Inserted, Spend, StoredId};
use crate::server::Server;

impl Server {
    /// Answer an escrow request.
    pub(in crate::server) fn escrow(&self, body: &[u8]) -> ApiResult<EscrowResponse> {
        let req: EscrowRequest = Self::parse(body, "escrow request")?;
        let pkey = crypto::key_from_b64(&req.parameters_key, "parameters-key").map_err(|_| {
            ApiError::bad("Bad request: parameters-key is not a base64 32-byte key")
        })?;
        let pplain = crypto::open(&pkey, &req.parameters, "parameters")
            .map_err(|_| ApiError::bad("Bad request: could not decrypt the parameters"))?;
        let params: EscrowParameters = Self::parse(pplain.expose_secret(), "parameters")?;
        // An authenticator app's escrow needs no deliverer: this server
        // checks its codes (handlers/totp.rs).
        if !self.offers_totp(&params.kind) {
            self.deliverer(&params.kind)?;
        }

        let data = req.escrow_data.concat();
        let raw = crypto::b64decode(&data)
            .map_err(|_| ApiError::bad("Bad request: escrow-data is not base64"))?;
        if raw.len() < 32 + 1 {
            return Err(ApiError::bad("Bad request: escrow-data is too short"));
        }

        // Everything that can refuse the request without looking at the
        // payment is checked first: a refused request must not spend its
        // hashcash token.
        let now = self.now();
        if params.expiration <= now {
            // The same kind as a payment that buys no time at all.
            return Err(ApiError::new(
                ErrorKind::Payment,
                "Insufficient payment: the requested expiration is already past",
            ));
        }
        if let Some(pref) = &params.prefer_id {
            let ok = !pref.is_empty()
                && pref.len() <= 64
                && pref
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !ok {
                return Err(ApiError::bad(
                    "Bad request: prefer-id must be lower-case hex, at most 64 digits",
                ));
            }
        }
        let (paid, spend) = self.take_payment(&params.payment, &data, now)?;
        let expiration = params
            .expiration
            .min(now.saturating_add(paid.min(self.cfg.max_expiration_seconds)));
        if expiration <= now {
            return Err(ApiError::new(ErrorKind::Payment, "Insufficient payment"));
        }

        // The escrow is stored and its token spent in one transaction: a
        // store that fails spends nothing, and a token pays once.
        // The caps on escrows held and free escrows a day are checked in
        // that same transaction: a refused escrow stores nothing, counts
        // nothing and spends no token.
        let caps = self.caps();
        let store = |sid: &StoredId| -> ApiResult<Inserted> {
            let sealed = self.keys.seal(sid, &raw);
            Ok(self.storage.insert_escrow_capped(
                sid,
                expiration,
                &sealed,
                spend.as_ref(),
                &caps,
                now,
            )?)
        };
        // The refusals after which no other id is tried.
        let refusal = |r: Inserted| -> ApiError {
            match r {
                Inserted::TokenSpent => ApiError::new(
                    ErrorKind::Payment,
                    "Invalid payment: this hashcash token was already used",
                ),
                Inserted::Full => {
                    tracing::warn!(max = caps.max_escrows, "refused: the server is full");
                    ApiError::new(
                        ErrorKind::Payment,
                        "This server is full: it holds as many escrows as its operator \
                         allows. Nothing was stored and no payment was spent; use another \
                         server, or try again later.",
                    )
                }
                Inserted::FreeCapReached => ApiError::new(
                    ErrorKind::Payment,
                    format!(
                        "This server has made all its free escrows for today (at most {} a \
                         day); nothing was stored. Ask for a longer expiration (paid with \
                         hashcash), or try again after 00:00 UTC.",
                        caps.max_free_per_day
                    ),
                ),
                // Not refusals (handled by the callers).
                Inserted::Stored | Inserted::IdTaken => ApiError::internal(),
            }
        };
        if let Some(pref) = &params.prefer_id {
            let sid = self.keys.stored_id(pref);
            match store(&sid)? {
                Inserted::Stored => {
                    tracing::info!(kind = %params.kind, id = %sid, expiration, "escrowed (preferred id)");
                    return Ok(EscrowResponse {
                        version: Version,
                        expiration,
                        escrow_data_id: pref.clone(),
                    });
                }
                Inserted::IdTaken => tracing::info!("preferred id taken; assigning another"),
                r => return Err(refusal(r)),
            }
        }
        loop {
            let r: u128 = rand::rngs::OsRng.gen();
            let key = format!("{r:032x}");
            let sid = self.keys.stored_id(&key);
            match store(&sid)? {
                Inserted::Stored => {
                    tracing::info!(kind = %params.kind, id = %sid, expiration, "escrowed");
                    return Ok(EscrowResponse {
                        version: Version,
                        expiration,
                        escrow_data_id: format!("{expiration:x}-{key}"),
                    });
                }
                Inserted::IdTaken => {}
                r => return Err(refusal(r)),
            }
        }
    }

    /// Check the payment `token` for escrow `data`: the seconds of escrow
    /// it pays for, and for hashcash what to spend with the escrow (the
    /// token is not spent here). A hashcash token is accepted only in its
    /// canonical spelling, and spent by what it proves.
    fn take_payment(&self, token: &str, data: &str, now: i64) -> ApiResult<(i64, Option<Spend>)> {
        let (scheme, _) = token
            .split_once(':')
            .ok_or_else(|| ApiError::new(ErrorKind::Payment, "Invalid payment token"))?;
        let max = self.cfg.max_expiration_seconds;
        let p = &self.cfg.payment;
        if scheme == "free" {
            if p.free_seconds > 0 {
                return Ok((p.free_seconds.min(max), None));
            }
            return Err(ApiError::new(
                ErrorKind::Payment,
                "This server offers no free escrow",
            ));
        }
        // Only the spelling the policy names (`hashcash-11`, never
        // `hashcash-011`) is a scheme we offer.
        let offer = p
            .hashcash
            .iter()
            .find(|h| scheme == format!("hashcash-{}", h.bits));
        let Some(offer) = offer else {
            return Err(ApiError::new(
                ErrorKind::Payment,
                format!(
                    "Unknown payment scheme: {}",
                    scheme.chars().take(32).collect::<String>()
                ),
            ));
        };
        // One proof, one spelling: `%x-%x`, lower-case, no leading zeros.
        let proof = payment::HashcashToken::parse(token).filter(|t| t.bits == offer.bits);
        let valid = proof.filter(|t| {
            let cash = token.split_once(':').map(|(_, c)| c).unwrap_or_default();
            payment::check_hashcash(t.bits, cash, data.as_bytes(), now)
        });
        let Some(t) = valid else {
            return Err(ApiError::new(
                ErrorKind::Payment,
                "Invalid payment: the hashcash is wrong, too old, or not in its canonical spelling",
            ));
        };
        let spend = Spend {
            hash: self.keys.hashcash_spent(t.counter, t.ts, data),
            // Past this the token is too old to pay: the record can go.
            expires: (t.ts as i64).saturating_add(payment::HASHCASH_PAST + 60),
        };
        Ok((offer.seconds.min(max), Some(spend)))
    }

    /// Store escrows without HTTP or payment (bulk import, benchmarks):
    /// each `(escrow-data blob, expiration)` is sealed under the master key
    /// exactly as an escrow request's would be, and all go in one
    /// transaction. Returns the escrow ids, in order.
    pub fn import_escrows(&self, items: &[(String, i64)]) -> ServerResult<Vec<String>> {
        let now = self.now();
        let mut rows = Vec::with_capacity(items.len());
        let mut ids = Vec::with_capacity(items.len());
        for (blob, expiration) in items {
            let raw = crypto::b64decode(blob).map_err(|_| ServerError::Import {
                detail: "escrow data is not base64".into(),
            })?;
            let r: u128 = rand::rngs::OsRng.gen();
            let key = format!("{r:032x}");
            let sid = self.keys.stored_id(&key);
            rows.push((sid, *expiration, self.keys.seal(&sid, &raw)));
            ids.push(format!("{expiration:x}-{key}"));
        }
        let n = self.storage.insert_escrows(&rows, now)?;
        if n != rows.len() {
            return Err(ServerError::Import {
                detail: format!("{} of {} ids were taken", rows.len() - n, rows.len()),
            });
        }
        Ok(ids)
    }
}
