//! Our extensions to the protocol (not python-passcrow's): discovery
//! (`extensions`) and the escrow health check (`status`).
//!
//! python-passcrow rejects unknown keys in its own objects, so nothing
//! here is ever added to them: each extension is a method of its own, and
//! a server answering `Unsupported: …` (python-passcrow) has none. These
//! objects are ours, so readers ignore keys they do not know (a later
//! server may list more), and nobody sends one to a server that did not
//! list the method first.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::untrusted::{check_id, clean_text, clean_time, Untrusted, MAX_LABEL_CHARS};
use super::Version;
use crate::Result;

/// The `extensions` method's name (`POST /passcrow/extensions`).
pub const EXTENSIONS_METHOD: &str = "extensions";
/// The `status` method's name (`POST /passcrow/status`).
pub const STATUS_METHOD: &str = "status";
/// The identity kind `totp` (an authenticator app, RFC 6238) in
/// [`Extensions::kinds`]: the server checks the codes itself.
pub const TOTP_KIND: &str = "totp";
/// The escrow option `delay` in [`Extensions::escrow_options`]: a
/// release delay the owner can stop; its limits carry `max-seconds`.
pub const DELAY_OPTION: &str = "delay";
/// Shortest challenge a server accepts (bytes).
pub const CHALLENGE_MIN_BYTES: usize = 16;
/// Longest challenge a server accepts (bytes).
pub const CHALLENGE_MAX_BYTES: usize = 64;

/// What a server offers beyond python-passcrow's protocol: each map is
/// keyed by name, its value the entry's limits (an object). Later
/// extensions add entries (a `totp` kind, a `delay` escrow option)
/// without changing this shape.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Extensions {
    /// Version field.
    #[serde(rename = "passcrow-extensions")]
    pub version: Version,
    /// Extension methods (`status`, ...) and their limits.
    #[serde(default)]
    pub methods: BTreeMap<String, serde_json::Value>,
    /// Identity kinds beyond the policy's `kinds` that need this server's
    /// own verification, and their limits.
    #[serde(default)]
    pub kinds: BTreeMap<String, serde_json::Value>,
    /// Options an escrow may ask for (a release delay, ...), and their limits.
    #[serde(default, rename = "escrow-options")]
    pub escrow_options: BTreeMap<String, serde_json::Value>,
}

impl Extensions {
    /// True when the server lists the method `name`.
    pub fn has_method(&self, name: &str) -> bool {
        self.methods.contains_key(name)
    }

    /// The longest release delay the server offers (`delay`'s
    /// `max-seconds`), or `None` when it offers none.
    pub fn max_delay(&self) -> Option<i64> {
        self.escrow_options
            .get(DELAY_OPTION)
            .and_then(|v| v.get("max-seconds"))
            .and_then(|v| v.as_i64())
            .filter(|s| *s > 0)
    }

    /// True when the server lists the identity kind `kind`.
    pub fn has_kind(&self, kind: &str) -> bool {
        self.kinds.contains_key(kind)
    }
}

impl Untrusted for Extensions {
    fn into_clean(self, _what: &str) -> Result<Self> {
        // Names are matched, never shown raw; limits are read by key.
        let keep = |m: BTreeMap<String, serde_json::Value>| {
            m.into_iter()
                .take(64)
                .filter(|(k, _)| clean_text(k, MAX_LABEL_CHARS) == *k)
                .collect()
        };
        Ok(Extensions {
            version: Version,
            methods: keep(self.methods),
            kinds: keep(self.kinds),
            escrow_options: keep(self.escrow_options),
        })
    }
}

/// `POST /passcrow/status`: is this escrow still held, and intact?
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusRequest {
    /// Version field.
    #[serde(rename = "passcrow-status-request")]
    pub version: Version,
    /// The escrow asked about.
    #[serde(rename = "escrow-data-id")]
    pub escrow_data_id: String,
    /// A fresh random challenge, base64 ([`CHALLENGE_MIN_BYTES`] to
    /// [`CHALLENGE_MAX_BYTES`] bytes).
    pub challenge: String,
}

/// Whether a server holds an escrow.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum HeldState {
    /// Held and live.
    Held,
    /// Not there (deleted, never made, or lost).
    Missing,
    /// Past its expiration.
    Expired,
}

/// The answer to a [`StatusRequest`]: no more than a pack holder needs
/// (no counters that would show a recovery in progress).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StatusResponse {
    /// Version field.
    #[serde(rename = "passcrow-status-response")]
    pub version: Version,
    /// The escrow asked about, as asked.
    #[serde(rename = "escrow-data-id")]
    pub escrow_data_id: String,
    /// Held, missing or expired.
    pub state: HeldState,
    /// When a held escrow expires (unix time).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub expiration: Option<i64>,
    /// Frozen (no more recovery attempts allowed by the server's budget).
    #[serde(default)]
    pub frozen: bool,
    /// [`status_digest`] of the stored escrow data under the challenge,
    /// base64; absent when the server cannot read what it stored.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub digest: Option<String>,
}

impl Untrusted for StatusResponse {
    fn into_clean(mut self, what: &str) -> Result<Self> {
        check_id(&self.escrow_data_id, what)?;
        self.expiration = self.expiration.map(clean_time);
        if self.digest.as_ref().is_some_and(|d| d.len() > 128) {
            self.digest = None;
        }
        Ok(self)
    }
}

/// The keyed digest a server proves it holds an escrow's data with:
/// HMAC-SHA256 keyed by the challenge over a domain label and the raw
/// escrow-data bytes (the base64-decoded blob the client sent at escrow
/// time, still encrypted under its recovery key). Computing it needs the
/// bytes themselves: a digest of them kept instead does not do.
pub fn status_digest(challenge: &[u8], raw: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(challenge).unwrap_or_else(|_| unreachable!());
    m.update(b"passcrow status digest v1\0");
    m.update(raw);
    m.finalize().into_bytes().into()
}
