//! What the master key protects: escrows sealed at rest
//! (XChaCha20-Poly1305, bound to their stored id), and the keyed hashes
//! (HMAC-SHA256) escrow ids, verification codes and spent payment tokens
//! are stored as.
//!
//! Each use has its own key, derived from the master key with its own
//! label ([`Keys::derive`]); the master key itself is used for nothing else.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::answer::{ApiError, ApiResult};
use super::storage::{Rekey, StoredId};
use crate::crypto::{self, Key32, SecretBytes, SecretString};

/// Keys derived from the master key.
pub(crate) struct Keys {
    id: Key32,
    seal: Key32,
    code: Key32,
    token: Key32,
    recipient: Key32,
    optout: Key32,
}

/// HMAC-SHA256 of `parts`, each preceded by its length (so parts cannot
/// run into each other).
fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes keys of any length.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    for p in parts {
        m.update(&(p.len() as u64).to_be_bytes());
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

/// The format byte in front of every sealed escrow: 2, sealed under its
/// stored id (the keyed hash). Format 1 (schema 1 and 2 databases) was
/// sealed under the clear storage key; it is opened only to migrate it.
const SEAL_VERSION: u8 = 2;
/// The format of escrows sealed before ids were hashed.
const SEAL_VERSION_1: u8 = 1;

/// The associated data of a sealed escrow: it opens only under its own
/// stored id.
fn seal_aad(id: &StoredId) -> Vec<u8> {
    let mut a = b"passcrow-server escrow v2:".to_vec();
    a.extend_from_slice(id.as_bytes());
    a
}

/// The associated data of a format 1 seal: the clear storage key.
fn seal_aad_v1(key: &str) -> Vec<u8> {
    let mut a = b"passcrow-server escrow v1:".to_vec();
    a.extend_from_slice(key.as_bytes());
    a
}

impl Keys {
    /// The keys of `master`.
    pub(crate) fn derive(master: &Key32) -> Keys {
        let d = |label: &str| Key32::from_bytes(hmac(master.expose_secret(), &[label.as_bytes()]));
        Keys {
            id: d("passcrow-server escrow id v1"),
            seal: d("passcrow-server escrow seal v1"),
            code: d("passcrow-server code mac v1"),
            token: d("passcrow-server spent token v1"),
            recipient: d("passcrow-server recipient v1"),
            optout: d("passcrow-server opt-out link v1"),
        }
    }

    /// The id the escrow with storage key `key` (lower-case hex, the part
    /// of its escrow id after the last dash) is stored under.
    pub(crate) fn stored_id(&self, key: &str) -> StoredId {
        StoredId::from_bytes(hmac(self.id.expose_secret(), &[key.as_bytes()]))
    }

    /// XChaCha20-Poly1305 of `raw` under the seal key with associated data
    /// `aad`: format byte `version`, 24-byte random nonce, ciphertext and
    /// tag.
    fn seal_as(&self, version: u8, aad: &[u8], raw: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; 24];
        crypto::random_bytes(&mut nonce);
        let cipher = XChaCha20Poly1305::new(self.seal.expose_secret().into());
        // Encryption fails only for absurd lengths.
        let ct = cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: raw, aad })
            .unwrap_or_default();
        let mut out = Vec::with_capacity(1 + 24 + ct.len());
        out.push(version);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    /// Open what [`Keys::seal_as`] sealed as `version` under `aad`.
    fn open_as(&self, version: u8, aad: &[u8], sealed: &[u8]) -> Result<SecretBytes, &'static str> {
        if sealed.len() < 1 + 24 + 16 || sealed[0] != version {
            return Err("is not in a format we know");
        }
        let cipher = XChaCha20Poly1305::new(self.seal.expose_secret().into());
        cipher
            .decrypt(
                XNonce::from_slice(&sealed[1..25]),
                Payload {
                    msg: &sealed[25..],
                    aad,
                },
            )
            .map(SecretBytes::new)
            .map_err(|_| "does not open under the master key")
    }

    /// Seal `raw` (an escrow's data) for storage under `id`.
    pub(crate) fn seal(&self, id: &StoredId, raw: &[u8]) -> Vec<u8> {
        self.seal_as(SEAL_VERSION, &seal_aad(id), raw)
    }

    /// Open what [`Keys::seal`] sealed under `id`, logging nothing: `None`
    /// when it does not open (the status method's "altered").
    pub(crate) fn try_open(&self, id: &StoredId, sealed: &[u8]) -> Option<SecretBytes> {
        self.open_as(SEAL_VERSION, &seal_aad(id), sealed).ok()
    }

    /// Open what [`Keys::seal`] sealed under `id`; a failure is logged (by
    /// the short stored id) and answered as an internal error.
    pub(crate) fn open(&self, id: &StoredId, sealed: &[u8]) -> ApiResult<SecretBytes> {
        self.open_as(SEAL_VERSION, &seal_aad(id), sealed)
            .map_err(|why| {
                tracing::error!("escrow {} {why}", id.short());
                ApiError::internal()
            })
    }

    /// Seal `raw` the way schema 1 and 2 did (format 1, under the clear
    /// storage key `key`): only to build old databases in tests.
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn seal_v1(&self, key: &str, raw: &[u8]) -> Vec<u8> {
        self.seal_as(SEAL_VERSION_1, &seal_aad_v1(key), raw)
    }

    /// The keyed hash a verification `code` of the escrow `key` (its clear
    /// storage key, which only the requester holds) is stored and compared
    /// as (trimmed, upper-cased first). Unchanged by the schema 3
    /// migration: codes pending then keep their hash.
    pub(crate) fn code_mac(&self, key: &str, code: &str) -> [u8; 32] {
        let norm = SecretString::new(code.trim().to_uppercase());
        hmac(
            self.code.expose_secret(),
            &[key.as_bytes(), norm.expose_secret().as_bytes()],
        )
    }

    /// The keyed hash a spent hashcash proof is remembered as: what the
    /// proof proves (its counter and timestamp, and the escrow `data` it
    /// pays for), never how the token was spelled. The bits claimed are
    /// left out on purpose: the digest does not depend on them, so a
    /// proof spent as `hashcash-12` is spent as `hashcash-11` too.
    pub(crate) fn hashcash_spent(&self, counter: u64, ts: u64, data: &str) -> [u8; 32] {
        hmac(
            self.token.expose_secret(),
            &[
                b"hashcash",
                &counter.to_be_bytes(),
                &ts.to_be_bytes(),
                data.as_bytes(),
            ],
        )
    }

    /// The keyed hash a recipient is known by in the delivery budgets and
    /// the suppression list: of its normalised address (see
    /// [`super::budgets::recipient_name`]), never the address itself.
    pub(crate) fn recipient(&self, normalised: &str) -> [u8; RECIPIENT_LEN] {
        let full = hmac(self.recipient.expose_secret(), &[normalised.as_bytes()]);
        let mut out = [0u8; RECIPIENT_LEN];
        out.copy_from_slice(&full[..RECIPIENT_LEN]);
        out
    }

    /// The tag of an opt-out link for a recipient hash: only the server
    /// can make it, so only someone who received a message can opt out.
    pub(crate) fn optout_tag(&self, recipient: &[u8; RECIPIENT_LEN]) -> [u8; OPTOUT_TAG_LEN] {
        let full = hmac(self.optout.expose_secret(), &[b"opt-out", recipient]);
        let mut out = [0u8; OPTOUT_TAG_LEN];
        out.copy_from_slice(&full[..OPTOUT_TAG_LEN]);
        out
    }
}

/// Bytes of a recipient hash (128 bits: collisions need 2^64 addresses).
pub(crate) const RECIPIENT_LEN: usize = 16;
/// Bytes of an opt-out link's tag (96 bits: forging one takes 2^96 tries).
pub(crate) const OPTOUT_TAG_LEN: usize = 12;
impl Rekey for Keys {
    fn stored_id(&self, key: &str) -> StoredId {
        Keys::stored_id(self, key)
    }

    fn reseal(&self, key: &str, id: &StoredId, sealed: &[u8]) -> Result<Vec<u8>, String> {
        let raw = self
            .open_as(SEAL_VERSION_1, &seal_aad_v1(key), sealed)
            .map_err(|why| format!("escrow {} {why}", id.short()))?;
        Ok(self.seal(id, raw.expose_secret()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_ids_and_seals() {
        let keys = Keys::derive(&Key32::from_bytes([7; 32]));
        let other = Keys::derive(&Key32::from_bytes([8; 32]));
        let a = keys.stored_id("00ff");
        assert_eq!(a, keys.stored_id("00ff"));
        assert_ne!(a, keys.stored_id("00fe"));
        assert_ne!(a, other.stored_id("00ff"), "keyed by the master key");
        // Debug and Display name only a prefix of the hash.
        let dbg = format!("{a:?}");
        assert_eq!(dbg, format!("StoredId({}…)", a.short()));
        assert!(!dbg.contains("00ff"));
        assert_eq!(a.short().len(), 8);

        let sealed = keys.seal(&a, b"data");
        assert_eq!(sealed[0], 2);
        assert_eq!(keys.open(&a, &sealed).unwrap().expose_secret(), b"data");
        // Bound to its stored id, and to the master key.
        assert!(keys.open(&keys.stored_id("00fe"), &sealed).is_err());
        assert!(other.open(&a, &sealed).is_err());
        // Format 1 opens only to be re-sealed, under its clear key.
        let old = keys.seal_v1("00ff", b"data");
        assert_eq!(old[0], 1);
        assert!(keys.open(&a, &old).is_err(), "format 1 is not served");
        let new = Rekey::reseal(&keys, "00ff", &a, &old).unwrap();
        assert_eq!(keys.open(&a, &new).unwrap().expose_secret(), b"data");
        let e = Rekey::reseal(&keys, "00fe", &a, &old).unwrap_err();
        assert!(e.contains("does not open under the master key"), "{e}");
        assert!(!e.contains("00f"), "{e}");
        let e = Rekey::reseal(&keys, "00ff", &a, &sealed).unwrap_err();
        assert!(e.contains("not in a format we know"), "{e}");
    }
}
