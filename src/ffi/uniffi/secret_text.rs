//! [`SecretText`]: text that holds a secret, opaque to foreign code until
//! it asks for it, so a record that carries one never prints it (UniFFI's
//! records become Kotlin data classes and Python classes whose string
//! forms list every field).

use super::*;
use crate::crypto::SecretString;

/// A secret string (an enrolment URI holding a TOTP secret): read it with
/// [`SecretText::expose`], show it, and drop the object. Zeroed when
/// dropped; its string form in every language is not the secret.
#[derive(uniffi::Object)]
pub struct SecretText {
    inner: SecretString,
}

impl SecretText {
    pub(crate) fn new(inner: SecretString) -> Arc<SecretText> {
        Arc::new(SecretText { inner })
    }
}

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretText([redacted])")
    }
}

#[uniffi::export]
impl SecretText {
    /// The secret text itself. The copy it returns belongs to the caller's
    /// language: keep it no longer than needed, and never log it.
    pub fn expose(&self) -> String {
        self.inner.expose_secret().to_string()
    }
}
