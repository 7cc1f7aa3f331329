//! The protocol operations, one file each, as `impl Server` blocks:
//! [`escrow`] (with payment), [`verification`], [`recovery`],
//! [`deletion`], [`info`] (policy and stats), and our extensions
//! [`extensions`] (discovery) and [`status`] (the health check). Here: what they share,
//! reading requests and finding escrows.

mod deletion;
mod escrow;
mod extensions;
mod info;
mod recovery;
mod status;
mod verification;

use std::sync::Arc;

use super::answer::{ApiError, ApiResult, ErrorKind};
use super::delivery::Deliver;
use super::escrow_id::parse_id;
use super::storage::Lookup;
use super::Server;
use crate::crypto::{self, SecretString};
use crate::proto::{self, EscrowData};

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

    /// Find an escrow by id and open it (at rest layer only).
    pub(super) fn load_escrow(&self, id: &str, now: i64) -> ApiResult<(String, String, Vec<u8>)> {
        let (key, exp) = parse_id(id)?;
        match self.storage.get_escrow(&key, now)? {
            Lookup::Found(row) => {
                let raw = self.keys.open(&key, &row.sealed)?;
                Ok((key, crypto::b64encode(raw.expose_secret()), row.sealed))
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
