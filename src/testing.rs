//! What the crate's own tests, benchmarks, examples and fuzz targets need
//! of its internals: the crypto primitives (to build requests by hand, to
//! check the vectors). Feature `testing`, hidden from the documentation,
//! not part of the API: apps use `client`, `pack` and `policy`, which
//! cannot be called with a weak parameter or a repeated nonce.

pub use crate::crypto::blob::{open, open_with_aad, seal, seal_with_nonce, AAD, NONCE_LEN};
pub use crate::crypto::kdf::{derive_key_2_20, scrypt};
pub use crate::crypto::{
    b64decode, b64encode, ct_eq, key_from_b64, random_bytes, random_key, random_pack_key, shamir,
};
