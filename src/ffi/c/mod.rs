//! The C ABI of libpasscrow (feature `capi`); `include/passcrow.h` is
//! generated from the files of this directory by cbindgen (see `build.rs`).
//!
//! Conventions (after rustls-ffi):
//!
//! - Every function returns a `passcrow_result`; `PASSCROW_OK` is 0 and the
//!   numbers never change or get reused. The one exception is
//!   `passcrow_version()`, which cannot fail. On failure,
//!   `passcrow_error_message()` copies the text of the error into a buffer
//!   (per thread, like `errno`).
//! - Results go to out-parameters (`out_*`), written only on success.
//! - Handles are opaque, made by a `passcrow_*_new`-like function and
//!   released by the matching `passcrow_*_free`; `_free(NULL)` is a no-op.
//!   The library remembers which handles are alive, so a handle freed twice,
//!   or passed where another type is expected, returns
//!   `PASSCROW_INVALID_HANDLE` instead of corrupting memory (as long as the
//!   allocator has not reused the address for another handle of that type).
//! - A `const` pointer argument is only read, and only during the call.
//! - Byte buffers come back as a `(uint8_t *, size_t)` pair released by
//!   `passcrow_bytes_free()`, which zeroes them first (they may be secrets).
//! - One macro (`ffi_entry!`) wraps every entry point: a NULL pointer
//!   argument returns `PASSCROW_NULL_ARGUMENT`, a Rust panic returns
//!   `PASSCROW_PANIC`; nothing unwinds into C. Two exceptions:
//!   `passcrow_version()` cannot fail, and `passcrow_error_message()` has
//!   its own `catch_unwind` because it must not replace the message it
//!   reports.
//!
//! Files (after rustls-ffi's `librustls/src/`): the shared machinery in
//! `result.rs` (result codes, errors, the last error message),
//! `boundary.rs` (`ffi_entry!`: NULL and panic guard), `handle.rs` (the
//! live-handle registry) and `args.rs` (argument readers, out-parameters);
//! then one file per C object: `http.rs`, `client.rs`, `policy.rs`,
//! `protect.rs`, `pack.rs`, `verify.rs`, `recover.rs`, `list.rs`,
//! `check.rs`.
//!
//! cbindgen reads these files one by one in the order `build.rs` lists
//! them (`CAPI_FILES`), and the header lists the functions in that order.
#![allow(non_camel_case_types)]
// Every unsafe operation sits in its own `unsafe` block with a `SAFETY:`
// comment, even inside an `unsafe fn`; every unsafe function documents its
// caller's contract in a `# Safety` section.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod args;
mod boundary;
mod check;
mod client;
mod handle;
mod http;
mod list;
mod pack;
mod policy;
mod protect;
mod recover;
mod result;
mod verify;

pub use self::check::*;
pub use self::client::*;
pub use self::http::*;
pub use self::list::*;
pub use self::pack::*;
pub use self::policy::*;
pub use self::protect::*;
pub use self::recover::*;
pub use self::result::*;
pub use self::verify::*;
