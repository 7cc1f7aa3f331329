//! The protocol operations, one file each, as `impl Server` blocks:
//! [`escrow`] (with payment), [`verification`], [`recovery`],
//! [`deletion`], [`info`] (policy and stats), and our extensions
//! [`extensions`] (discovery) and [`status`] (the health check). Here: what they share,
//! reading requests and finding escrows.

mod delay;
mod deletion;
mod escrow;
mod extensions;
mod info;
pub(super) mod pages;
mod recovery;
mod status;
mod totp;
mod verification;

use std::sync::Arc;

use super::answer::{ApiError, ApiResult, ErrorKind};
use super::budgets::MessageClass;
use super::delivery::{Deliver, Outgoing};
use super::escrow_id::parse_id;
use super::storage::{Caps, EscrowRow, GuessLimits, Lookup, StoredId};
use super::Server;
use crate::crypto::{self, SecretString};
use crate::proto::{self, EscrowData};

/// An escrow found and opened by [`Server::load_escrow`].
pub(super) struct Loaded {
    /// The clear storage key (from the request; never stored or logged).
    pub key: String,
    /// What storage knows it by.
    pub sid: StoredId,
    /// The client's escrow data blob.
    pub blob: String,
    /// The row as stored: the sealed data (which tells this escrow from a
    /// later one), when it was stored, its guessing budget.
    pub row: EscrowRow,
}

impl Server {
    /// Parse a request body, answering `bad-request` (or `unsupported`
    /// for a version we do not speak) when it is not one.
    pub(super) fn parse<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> ApiResult<T> {
        let v = proto::parse(body, what).map_err(|e| {
            let msg = e.to_string();
            let msg = msg.strip_prefix("protocol error: ").unwrap_or(&msg);
            if msg.contains("unsupported protocol version") {
                ApiError::new(ErrorKind::Unsupported, format!("Bad request: {msg}"))
            } else {
                ApiError::bad(format!("Bad request: {msg}"))
            }
        })?;
        Ok(v)
    }

    /// Find an escrow by id and open it (at rest layer only): its clear
    /// storage key, its stored id, the client's blob, and the data as
    /// stored.
    pub(super) fn load_escrow(&self, id: &str, now: i64) -> ApiResult<Loaded> {
        let (key, exp) = parse_id(id)?;
        let sid = self.keys.stored_id(&key);
        match self.storage.get_escrow(&sid, now)? {
            Lookup::Found(row) => {
                let raw = self.keys.open(&sid, &row.sealed)?;
                Ok(Loaded {
                    key,
                    sid,
                    blob: crypto::b64encode(raw.expose_secret()),
                    row,
                })
            }
            Lookup::Expired => Err(ApiError::new(ErrorKind::Expired, "This escrow has expired")),
            Lookup::Missing => match exp {
                Some(e) if e > 0 && e <= now => {
                    Err(ApiError::new(ErrorKind::Expired, "This escrow has expired"))
                }
                _ => Err(ApiError::new(
                    ErrorKind::NotFound,
                    "Not found: no such escrow (deleted, expired, or never made here)",
                )),
            },
        }
    }

    /// Open the client's escrow data blob with the recovery key.
    pub(super) fn open_client_data(
        &self,
        blob: &str,
        key_b64: &SecretString,
    ) -> ApiResult<EscrowData> {
        let key =
            crypto::key_from_b64(key_b64.expose_secret(), "escrow-data-key").map_err(|_| {
                ApiError::bad("Bad request: escrow-data-key is not a base64 32-byte key")
            })?;
        let plain = crypto::open(&key, blob, "escrow data").map_err(|_| {
            ApiError::bad("Could not decrypt the escrow data: wrong escrow-data-key")
        })?;
        proto::parse::<EscrowData>(plain.expose_secret(), "escrow data")
            .map_err(|e| ApiError::bad(format!("The escrow data is not valid: {e}")))
    }

    /// The guessing budget of every escrow (`[limits]`): per hour, per life.
    pub(super) fn guess_limits(&self) -> GuessLimits {
        GuessLimits {
            window: 3600,
            per_window: self.cfg.limits.wrong_guesses_per_hour,
            lifetime: self.cfg.limits.wrong_guesses_lifetime,
        }
    }

    /// What escrow requests may fill (`[limits]`).
    pub(super) fn caps(&self) -> Caps {
        Caps {
            max_escrows: self.cfg.limits.max_escrows,
            max_free_per_day: self.cfg.limits.max_free_escrows_per_day,
        }
    }

    /// Send an alert (a notice about an escrow's safety, such as too many
    /// wrong codes) to one of its identities: not blocked by a spent
    /// delivery budget (it is still counted), but the opt-out and the SMS
    /// countries still hold ([`MessageClass::Alert`]).
    pub(super) fn send_alert(&self, msg: &Outgoing, escrow_created: i64) -> ApiResult<()> {
        self.send(msg, escrow_created, MessageClass::Alert)
    }

    /// The deliverer for identities of `kind`, or `unsupported`.
    pub(super) fn deliverer(&self, kind: &str) -> ApiResult<&Arc<dyn Deliver>> {
        self.deliverers.get(kind).ok_or_else(|| {
            ApiError::new(
                ErrorKind::Unsupported,
                format!(
                    "Unsupported kind of Identity: {}",
                    kind.chars().take(32).collect::<String>()
                ),
            )
        })
    }
}
