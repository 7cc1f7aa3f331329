//! Types that hold secrets: zeroized on drop, `[redacted]` in Debug, read
//! only through `expose_secret()`, compared only in constant time
//! (`ct_eq`): none of them implements `PartialEq`, `AsRef` or `Display`,
//! so a secret cannot reach an `==`, a `format!` or a byte-slice API by
//! accident.

use std::fmt;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// A 32-byte symmetric key.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Key32([u8; 32]);

impl Key32 {
    /// An all-zero key, to be filled in.
    pub fn zero() -> Self {
        Key32([0u8; 32])
    }
    /// Wrap raw bytes.
    pub fn from_bytes(b: [u8; 32]) -> Self {
        Key32(b)
    }
    /// The raw bytes, for the one place that needs them (a cipher, an
    /// encoding).
    pub fn expose_secret(&self) -> &[u8; 32] {
        &self.0
    }
    /// The raw bytes, to be filled in place.
    pub fn expose_secret_mut(&mut self) -> &mut [u8; 32] {
        &mut self.0
    }
    /// Constant-time equality.
    pub fn ct_eq(&self, other: &Key32) -> bool {
        super::ct_eq(&self.0, &other.0)
    }
    /// Standard base64, as keys are written on the wire and in packs.
    pub fn to_b64(&self) -> String {
        super::b64encode(&self.0)
    }
}

impl fmt::Debug for Key32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key32([redacted])")
    }
}

/// Secret bytes of any length (plaintext, decrypted JSON, ...).
#[derive(Clone, Default, Zeroize, ZeroizeOnDrop)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// Take ownership of `v`.
    pub fn new(v: Vec<u8>) -> Self {
        SecretBytes(v)
    }
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Borrow the bytes.
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }
    /// Constant-time equality (the length is not secret).
    pub fn ct_eq(&self, other: &[u8]) -> bool {
        super::ct_eq(&self.0, other)
    }
    /// Wipe now (also happens on drop).
    pub fn zeroize_now(&mut self) {
        self.0.zeroize();
    }
    /// Give the bytes to a caller who takes responsibility for them.
    pub fn into_vec(mut self) -> Vec<u8> {
        std::mem::take(&mut self.0)
    }
}

impl From<Vec<u8>> for SecretBytes {
    fn from(v: Vec<u8>) -> Self {
        SecretBytes(v)
    }
}

impl From<&[u8]> for SecretBytes {
    fn from(v: &[u8]) -> Self {
        SecretBytes(v.to_vec())
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes([redacted; {} bytes])", self.0.len())
    }
}

/// A secret string (a share, a code, a user key, ...).
#[derive(Clone, Default, Zeroize, ZeroizeOnDrop)]
pub struct SecretString(String);

impl SecretString {
    /// Take ownership of `s`.
    pub fn new(s: String) -> Self {
        SecretString(s)
    }
    /// Borrow the text.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
    /// Constant-time equality (the length is not secret).
    pub fn ct_eq(&self, other: &str) -> bool {
        super::ct_eq(self.0.as_bytes(), other.as_bytes())
    }
    /// Give the string to a caller who takes responsibility for it.
    pub fn into_string(mut self) -> String {
        std::mem::take(&mut self.0)
    }
}

impl From<String> for SecretString {
    fn from(s: String) -> Self {
        SecretString(s)
    }
}

impl From<&str> for SecretString {
    fn from(s: &str) -> Self {
        SecretString(s.to_string())
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString([redacted])")
    }
}

impl serde::Serialize for SecretString {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for SecretString {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(SecretString)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let k = Key32::from_bytes([7u8; 32]);
        assert_eq!(format!("{k:?}"), "Key32([redacted])");
        let s = SecretBytes::new(b"hunter2".to_vec());
        assert!(!format!("{s:?}").contains("hunter2"));
        let t = SecretString::from("1-abcdef");
        assert!(!format!("{t:?}").contains("abcdef"));
    }
}
