//! `passcrow_pack`: a recovery pack, or the stand-in for an ephemeral
//! recovery id.

use std::ffi::c_char;

use super::args::{put, str_arg};
use super::boundary::ffi_entry;
use super::client::passcrow_client;
use super::handle::{borrow, free_handle, Handle, Kind};
use super::result::passcrow_result;
use crate::pack::RecoveryPack;

/// A recovery pack loaded from the pack directory (or the stand-in for an
/// ephemeral recovery id). Holds secrets; zeroed when freed.
/// Thread-safety: immutable; may be used from several threads at once.
pub struct passcrow_pack {
    pub(super) inner: RecoveryPack,
}

// SAFETY: `Kind::Pack` is registered for `passcrow_pack` only.
unsafe impl Handle for passcrow_pack {
    const KIND: Kind = Kind::Pack;
}

/// Load the pack `name`, or, for an ephemeral recovery id
/// `SERVER:USER_KEY`, make the stand-in to verify and recover with
/// (`passcrow_recover_ephemeral()`; a few seconds of scrypt).
/// `PASSCROW_NOT_FOUND` when there is no such pack, `PASSCROW_PROTOCOL` or
/// `PASSCROW_BAD_INPUT` when the file is corrupted. On success `*out` is a
/// new pack the caller frees with `passcrow_pack_free()`.
///
/// # Safety
///
/// `client` must be NULL or not freed during the call; `name` NULL or a
/// NUL-terminated string; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn passcrow_pack_open(
    client: *const passcrow_client,
    name: *const c_char,
    out: *mut *mut passcrow_pack,
) -> passcrow_result {
    ffi_entry!("passcrow_pack_open", [client, name, out], {
        // SAFETY: `client` is not freed or changed during the call (the
        // caller's contract).
        let c = unsafe { borrow(client, "client") }?;
        // SAFETY: `name` is not NULL (checked by `ffi_entry!`), so it is a
        // NUL-terminated string unchanged during the call (the caller's
        // contract).
        let name = unsafe { str_arg(name, "name") }?;
        let p = c.inner.pack(name)?;
        // SAFETY: `out` is not NULL (checked by `ffi_entry!`) and writable (the
        // caller's contract).
        unsafe { put(out, passcrow_pack { inner: p }.into_raw()) };
        Ok(())
    })
}

/// How many codes recovering `pack` needs (`*out_min_shares`), how many
/// escrows codes can come from (`*out_escrows`), and whether it is the
/// stand-in for an ephemeral recovery id (`*out_is_ephemeral`).
///
/// # Safety
///
/// `pack` must be NULL or not freed during the call; the `out_*` pointers
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn passcrow_pack_counts(
    pack: *const passcrow_pack,
    out_min_shares: *mut u32,
    out_escrows: *mut usize,
    out_is_ephemeral: *mut bool,
) -> passcrow_result {
    ffi_entry!(
        "passcrow_pack_counts",
        [pack, out_min_shares, out_escrows, out_is_ephemeral],
        {
            // SAFETY: `pack` is not freed or changed during the call (the
            // caller's contract).
            let p = unsafe { borrow(pack, "pack") }?;
            // SAFETY: `out_min_shares`, `out_escrows`, `out_is_ephemeral` are
            // not NULL (checked by `ffi_entry!`) and writable (the caller's
            // contract).
            unsafe {
                put(out_min_shares, p.inner.min_shares);
                put(out_escrows, p.inner.prefixed_escrows().len());
                put(out_is_ephemeral, p.inner.is_ephemeral_stub());
            }
            Ok(())
        }
    )
}

/// Free a pack (its secrets are zeroed). NULL is a no-op.
///
/// # Safety
///
/// No other call may be using `pack` (on any thread).
#[no_mangle]
pub unsafe extern "C" fn passcrow_pack_free(pack: *mut passcrow_pack) -> passcrow_result {
    ffi_entry!("passcrow_pack_free", [], {
        // SAFETY: no other call uses `pack` any more (the caller's contract).
        unsafe { free_handle(pack, "pack") }
    })
}
