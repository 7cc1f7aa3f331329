//! scrypt key derivation, with the parameters python-passcrow uses.

use super::SecretBytes;
use crate::{Error, Result};

/// scrypt(password, salt, N = 2^log_n, r, p) producing `len` bytes.
pub fn scrypt(
    password: &[u8],
    salt: &[u8],
    log_n: u8,
    r: u32,
    p: u32,
    len: usize,
) -> Result<SecretBytes> {
    let params = scrypt::Params::new(log_n, r, p, len)
        .map_err(|e| Error::bad_input(format!("scrypt parameters: {e}")))?;
    let mut out = vec![0u8; len];
    scrypt::scrypt(password, salt, &params, &mut out)
        .map_err(|e| Error::bad_input(format!("scrypt output length: {e}")))?;
    Ok(SecretBytes::new(out))
}

/// The reference's `derive_aesgcm_key` default: scrypt N=2^20, r=8, p=1.
pub const EPHEMERAL_LOG_N: u8 = 20;

/// Derive a 32-byte key with N=2^20, r=8, p=1 (the ephemeral-escrow KDF).
pub fn derive_key_2_20(password: &[u8], salt: &[u8]) -> Result<super::Key32> {
    let raw = scrypt(password, salt, EPHEMERAL_LOG_N, 8, 1, 32)?;
    let mut k = super::Key32::zero();
    k.expose_secret_mut().copy_from_slice(raw.expose_secret());
    Ok(k)
}
