//! Foreign-function interfaces: the C ABI and the UniFFI surface. The only
//! place unsafe code is allowed.

#[cfg(feature = "capi")]
pub mod c;
#[cfg(feature = "uniffi")]
pub mod uniffi;
#[cfg(feature = "uniffi")]
pub mod uniffi_compat;
