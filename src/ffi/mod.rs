//! Foreign-function interfaces: the C ABI and the UniFFI surface. The only
//! place unsafe code is allowed.

#[cfg(feature = "capi")]
pub mod c;
#[cfg(feature = "uniffi")]
pub mod uniffi;
// The python-passcrow drop-in's additions, in the Python wheel only.
#[cfg(feature = "python-compat")]
pub mod python_compat;
