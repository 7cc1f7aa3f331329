//! What the master key protects: escrows sealed at rest
//! (XChaCha20-Poly1305, bound to their storage id), and the keyed hashes
//! (HMAC-SHA256) of verification codes and spent payment tokens.
//!
//! Each use has its own key, derived from the master key with its own
//! label ([`Keys::derive`]); the master key itself is used for nothing else.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::answer::{ApiError, ApiResult};
use super::escrow_id::short_id;
use crate::crypto::{self, Key32, SecretBytes, SecretString};

/// Keys derived from the master key.
pub(crate) struct Keys {
    seal: Key32,
    code: Key32,
    token: Key32,
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

/// The format byte in front of every sealed escrow.
const SEAL_VERSION: u8 = 1;

/// The associated data of a sealed escrow: it opens only under its own id.
fn seal_aad(id: &str) -> Vec<u8> {
    let mut a = b"passcrow-server escrow v1:".to_vec();
    a.extend_from_slice(id.as_bytes());
    a
}

impl Keys {
    /// The keys of `master`.
    pub(crate) fn derive(master: &Key32) -> Keys {
        let d = |label: &str| Key32::from_bytes(hmac(master.expose_secret(), &[label.as_bytes()]));
        Keys {
            seal: d("passcrow-server escrow seal v1"),
            code: d("passcrow-server code mac v1"),
            token: d("passcrow-server spent token v1"),
        }
    }

    /// Seal `raw` (an escrow's data) for storage under the id `key`:
    /// version byte, 24-byte random nonce, ciphertext and tag.
    pub(crate) fn seal(&self, key: &str, raw: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; 24];
        crypto::random_bytes(&mut nonce);
        let cipher = XChaCha20Poly1305::new(self.seal.expose_secret().into());
        let aad = seal_aad(key);
        // Encryption fails only for absurd lengths.
        let ct = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: raw,
                    aad: &aad,
                },
            )
            .unwrap_or_default();
        let mut out = Vec::with_capacity(1 + 24 + ct.len());
        out.push(SEAL_VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    /// Open what [`Keys::seal`] sealed under the id `key`, logging
    /// nothing: `None` when it does not open.
    pub(crate) fn try_open(&self, key: &str, sealed: &[u8]) -> Option<SecretBytes> {
        if sealed.len() < 1 + 24 + 16 || sealed[0] != SEAL_VERSION {
            return None;
        }
        let cipher = XChaCha20Poly1305::new(self.seal.expose_secret().into());
        let aad = seal_aad(key);
        cipher
            .decrypt(
                XNonce::from_slice(&sealed[1..25]),
                Payload {
                    msg: &sealed[25..],
                    aad: &aad,
                },
            )
            .ok()
            .map(SecretBytes::new)
    }

    /// Open what [`Keys::seal`] sealed under the id `key`; a failure is
    /// logged (by short id) and answered as an internal error.
    pub(crate) fn open(&self, key: &str, sealed: &[u8]) -> ApiResult<SecretBytes> {
        if sealed.len() < 1 + 24 + 16 || sealed[0] != SEAL_VERSION {
            tracing::error!("escrow {} is not in a format we know", short_id(key));
            return Err(ApiError::internal());
        }
        let cipher = XChaCha20Poly1305::new(self.seal.expose_secret().into());
        let aad = seal_aad(key);
        cipher
            .decrypt(
                XNonce::from_slice(&sealed[1..25]),
                Payload {
                    msg: &sealed[25..],
                    aad: &aad,
                },
            )
            .map(SecretBytes::new)
            .map_err(|_| {
                tracing::error!(
                    "escrow {} does not open under the master key",
                    short_id(key)
                );
                ApiError::internal()
            })
    }

    /// The keyed hash a verification `code` of the escrow `key` is stored
    /// and compared as (trimmed, upper-cased first).
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
}
