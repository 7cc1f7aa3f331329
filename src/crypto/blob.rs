//! Encrypted blobs: `base64(nonce[16] || AES-256-GCM(key, nonce, plaintext, aad))`.
//!
//! The 16-byte nonce (GCM with a non-96-bit IV, hashed through GHASH) and
//! the associated data "Passcrow Encrypted Data" are what python-passcrow
//! 0.0.7 uses; we must match them byte for byte.

use aes_gcm::aead::consts::U16;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::aes::Aes256;
use aes_gcm::AesGcm;

use super::{b64decode, b64encode, random_bytes, Key32, SecretBytes};
use crate::{Error, Result};

/// AES-256-GCM with a 16-byte nonce.
type Aes256Gcm16 = AesGcm<Aes256, U16>;

/// The associated data every Passcrow blob is sealed with.
pub const AAD: &[u8] = b"Passcrow Encrypted Data";

/// Nonce length in bytes.
pub const NONCE_LEN: usize = 16;
/// Tag length in bytes.
pub const TAG_LEN: usize = 16;

/// Seal `plaintext` under `key` with a fresh random nonce.
pub fn seal(key: &Key32, plaintext: &[u8]) -> Result<String> {
    let mut nonce = [0u8; NONCE_LEN];
    random_bytes(&mut nonce);
    seal_with_nonce(key, &nonce, plaintext)
}

/// Seal with a given nonce. Only for test vectors: a nonce must never repeat
/// under one key. Fails only for a plaintext GCM cannot take (over 64 GiB).
pub fn seal_with_nonce(key: &Key32, nonce: &[u8; NONCE_LEN], plaintext: &[u8]) -> Result<String> {
    let cipher = Aes256Gcm16::new(key.expose_secret().into());
    let ct = cipher
        .encrypt(
            nonce.into(),
            Payload {
                msg: plaintext,
                aad: AAD,
            },
        )
        .map_err(|_| {
            Error::bad_input(format!(
                "{} bytes are too many to encrypt in one blob",
                plaintext.len()
            ))
        })?;
    let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
    out.extend_from_slice(nonce);
    out.extend_from_slice(&ct);
    Ok(b64encode(&out))
}

/// Open a blob sealed under `key`. `what` names the blob in errors.
pub fn open(key: &Key32, blob: &str, what: &str) -> Result<SecretBytes> {
    open_with_aad(key, blob, AAD, what)
}

/// Open a blob with explicit associated data.
pub fn open_with_aad(key: &Key32, blob: &str, aad: &[u8], what: &str) -> Result<SecretBytes> {
    let raw =
        b64decode(blob).map_err(|_| Error::protocol(format!("{what} is not valid base64")))?;
    if raw.len() < NONCE_LEN + TAG_LEN {
        return Err(Error::protocol(format!(
            "{what} is too short to be an encrypted blob ({} bytes)",
            raw.len()
        )));
    }
    let (nonce, ct) = raw.split_at(NONCE_LEN);
    let cipher = Aes256Gcm16::new(key.expose_secret().into());
    cipher
        .decrypt(nonce.into(), Payload { msg: ct, aad })
        .map(SecretBytes::new)
        .map_err(|_| Error::Decrypt(format!("{what}: wrong key or altered data")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip_and_tamper() {
        let k = super::super::random_key();
        let b = seal(&k, b"hello").unwrap();
        assert_eq!(open(&k, &b, "t").unwrap().expose_secret(), b"hello");
        let mut raw = b64decode(&b).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        let bad = b64encode(&raw);
        assert!(matches!(open(&k, &bad, "t"), Err(Error::Decrypt(_))));
        let k2 = super::super::random_key();
        assert!(matches!(open(&k2, &b, "t"), Err(Error::Decrypt(_))));
        assert!(matches!(open(&k, "!!", "t"), Err(Error::Protocol(_))));
        assert!(matches!(open(&k, "AAAA", "t"), Err(Error::Protocol(_))));
    }

    proptest! {
        #[test]
        fn blob_round_trips(pt in proptest::collection::vec(any::<u8>(), 0..2048), key in any::<[u8; 32]>()) {
            let k = Key32::from_bytes(key);
            let b = seal(&k, &pt).unwrap();
            let got = open(&k, &b, "t").unwrap();
            prop_assert_eq!(got.expose_secret(), &pt[..]);
        }

        #[test]
        fn open_never_panics(s in ".{0,300}", key in any::<[u8; 32]>()) {
            let _ = open(&Key32::from_bytes(key), &s, "t");
        }
    }
}
