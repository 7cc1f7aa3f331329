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

impl Handle for passcrow_pack {
    const KIND: Kind = Kind::Pack;
}

/// Load the pack `name`, or, for an ephemeral recovery id
/// `SERVER:USER_KEY`, make the stand-in to verify and recover with
/// (`passcrow_recover_ephemeral()`; a few seconds of scrypt).
/// `PASSCROW_NOT_FOUND` when there is no such pack, `PASSCROW_PROTOCOL` or
/// `PASSCROW_BAD_INPUT` when the file is corrupted. On success `*out` is a
/// new pack the caller frees with `passcrow_pack_free()`.
#[no_mangle]
pub unsafe extern "C" fn passcrow_pack_open(
    client: *const passcrow_client,
    name: *const c_char,
    out: *mut *mut passcrow_pack,
) -> passcrow_result {
    ffi_entry!("passcrow_pack_open", [client, name, out], {
        let c = borrow(client, "client")?;
        let p = c.inner.pack(str_arg(name, "name")?)?;
        put(out, passcrow_pack { inner: p }.into_raw());
        Ok(())
    })
}

/// How many codes recovering `pack` needs (`*out_min_shares`), how many
/// escrows codes can come from (`*out_escrows`), and whether it is the
/// stand-in for an ephemeral recovery id (`*out_is_ephemeral`).
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
            let p = borrow(pack, "pack")?;
            put(out_min_shares, p.inner.min_shares);
            put(out_escrows, p.inner.prefixed_escrows().len());
            put(out_is_ephemeral, p.inner.is_ephemeral_stub());
            Ok(())
        }
    )
}

/// Free a pack (its secrets are zeroed). NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn passcrow_pack_free(pack: *mut passcrow_pack) -> passcrow_result {
    ffi_entry!("passcrow_pack_free", [], { free_handle(pack, "pack") })
}
