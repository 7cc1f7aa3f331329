//! libpasscrow: "forgot my password?" for software that encrypts locally.
//!
//! A random key encrypts the user's secret; the key is split with Shamir's
//! secret sharing over GF(2^521-1) and each share is escrowed with an
//! independent server, which releases it only after the user proves control
//! of an e-mail address or phone number. Wire- and file-compatible with
//! python-passcrow 0.0.7.
//!
//! ```no_run
//! use passcrow::client::{Client, ClientConfig, ProtectOptions, Recovered};
//! # fn main() -> passcrow::Result<()> {
//! let client = Client::new(ClientConfig::new("/tmp/pc", "/tmp/pc"))?;
//! let policy = client.make_policy(
//!     &["a@example.org via passcrow.example.org",
//!       "b@example.org via passcrow.example.org",
//!       "+3545885522 via sms.example.org"],
//!     Some((2, 3)),
//! )?;
//! client.protect("wallet", b"correct horse", &policy, &ProtectOptions::default())?;
//! let pack = client.pack("wallet")?;
//! let hints = client.verify(&pack)?;          // codes are sent
//! # let codes: Vec<String> = vec![];
//! if let Recovered::Secret(s) = client.recover(&pack, &codes)? {
//!     assert_eq!(s.expose_secret(), b"correct horse");
//! }
//! # Ok(()) }
//! ```
#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod client;
pub(crate) mod crypto;
pub mod error;
pub mod pack;
pub mod payment;
pub mod policy;
pub mod proto;
#[cfg(feature = "server")]
pub mod server;
pub mod util;
// The foreign-function interfaces must export `#[no_mangle]` symbols, which
// `unsafe_code` forbids; the allowance is confined to this module;
// everything else stays `deny(unsafe_code)`.
#[allow(unsafe_code)]
pub mod ffi;

// UniFFI's scaffolding (the `UniFfiTag` and the exported `ffi_passcrow_*`
// buffer/future functions) must live at the crate root. Its
// `#[unsafe(no_mangle)]` items come from an external proc macro, where
// rustc does not report `unsafe_code` (not a `report_in_external_macro`
// lint), so the crate-wide deny stands unchanged; code written in this
// crate that exports symbols lives in `ffi`, the one allowed module.
#[cfg(feature = "uniffi")]
uniffi::setup_scaffolding!();

pub use crypto::{Key32, SecretBytes, SecretString};
pub use error::{Error, Failure, Result};

#[cfg(feature = "testing")]
#[doc(hidden)]
pub mod testing;
