//! [`Pack`]: a recovery pack, opaque to foreign code, and what a recovery
//! returns ([`RecoveryResult`]).

use super::*;

/// A recovery pack, loaded (or the stand-in for `SERVER:USER_KEY`).
/// Holds key material: drop it when done.
#[derive(uniffi::Object)]
pub struct Pack {
    pub(crate) inner: RecoveryPack,
}

#[uniffi::export]
impl Pack {
    /// The name.
    pub fn name(&self) -> String {
        self.inner.name.clone()
    }

    /// The description.
    pub fn description(&self) -> Option<String> {
        self.inner.description.clone()
    }

    /// Codes needed.
    pub fn min_shares(&self) -> u32 {
        self.inner.min_shares
    }

    /// Escrows codes can come from.
    pub fn escrows(&self) -> u32 {
        sat_u32(self.inner.prefixed_escrows().len())
    }

    /// Creation time (unix), when known.
    pub fn created_ts(&self) -> Option<i64> {
        self.inner.created_ts
    }

    /// When the first escrow expires (unix).
    pub fn expires_ts(&self) -> i64 {
        self.inner.expires_ts()
    }

    /// True for the stand-in of an ephemeral recovery id: recovering it
    /// gives back the real pack.
    pub fn is_ephemeral_stub(&self) -> bool {
        self.inner.is_ephemeral_stub()
    }
}

/// What [`PasscrowClient::recover`] gives back.
#[derive(uniffi::Enum)]
pub enum RecoveryResult {
    /// The protected secret.
    Secret {
        /// Its bytes.
        secret: Vec<u8>,
    },
    /// An ephemeral escrow gave back its pack, now saved locally under
    /// `name` (the user key): verify and recover `pack` next.
    Pack {
        /// The name it was saved under.
        name: String,
        /// The pack.
        pack: Arc<Pack>,
    },
}

impl std::fmt::Debug for RecoveryResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecoveryResult::Secret { .. } => f.write_str("RecoveryResult::Secret([redacted])"),
            // The name is the user key: a secret.
            RecoveryResult::Pack { .. } => f.write_str("RecoveryResult::Pack([redacted])"),
        }
    }
}
