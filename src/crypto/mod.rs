//! Cryptography: encrypted blobs, key derivation, Shamir's secret sharing,
//! random keys, and the types that hold secrets.
//!
//! Nothing here knows about the network or files.

pub mod blob;
pub mod kdf;
pub mod secret;
pub mod shamir;
pub mod totp;

pub use blob::{open, seal};
pub use secret::{Key32, SecretBytes, SecretString};

use rand::rngs::OsRng;
use rand::RngCore;

/// Fill `buf` from the operating system's generator.
pub fn random_bytes(buf: &mut [u8]) {
    OsRng.fill_bytes(buf);
}

/// A fresh random 32-byte key from the OS generator.
pub fn random_key() -> Key32 {
    let mut k = Key32::zero();
    random_bytes(k.expose_secret_mut());
    k
}

/// A fresh random 32-byte key whose first byte is not zero.
///
/// Pack keys are shared as big integers; python-passcrow 0.0.7 drops
/// leading zero bytes when it turns the integer back into a key, so a key
/// starting with 0x00 could never be recovered by it. We never make one.
pub fn random_pack_key() -> Key32 {
    loop {
        let k = random_key();
        if k.expose_secret()[0] != 0 {
            return k;
        }
    }
}

/// Constant-time equality of two byte strings (length is not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Standard base64 with padding, as the reference writes it.
pub fn b64encode(data: &[u8]) -> String {
    use base64ct::Encoding;
    base64ct::Base64::encode_string(data)
}

/// Decode standard base64 (padding required), constant-time in the data.
pub fn b64decode(text: &str) -> Result<Vec<u8>, base64ct::Error> {
    use base64ct::Encoding;
    base64ct::Base64::decode_vec(text.trim())
}

/// Decode a base64 32-byte key (the server's and the tests' use).
#[cfg_attr(not(any(feature = "server", feature = "testing")), allow(dead_code))]
pub fn key_from_b64(text: &str, what: &str) -> crate::Result<Key32> {
    let mut raw = SecretBytes::new(
        b64decode(text).map_err(|_| crate::Error::protocol(format!("{what} is not base64")))?,
    );
    if raw.len() != 32 {
        return Err(crate::Error::protocol(format!(
            "{what} must be 32 bytes, not {}",
            raw.len()
        )));
    }
    let mut k = Key32::zero();
    k.expose_secret_mut().copy_from_slice(raw.expose_secret());
    raw.zeroize_now();
    Ok(k)
}
