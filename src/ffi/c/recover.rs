//! Recover: `passcrow_recover()`, `passcrow_recover_ephemeral()`, and
//! `passcrow_bytes_free()` for the byte buffers libpasscrow returns.

use std::ffi::c_char;

use zeroize::Zeroize;

use super::args::{put, str_array_arg};
use super::boundary::ffi_entry;
use super::client::passcrow_client;
use super::handle::{borrow, bytes_to_c, live, not_alive, Handle, Kind};
use super::pack::passcrow_pack;
use super::result::passcrow_result::{self, *};
use super::result::Fail;
use crate::client::Recovered;

/// Recover the secret of `pack` with `n_codes` verification codes the user
/// received (typed any way: blanks, dashes and case are forgiven). On
/// success `*out_secret`/`*out_secret_len` is the secret (`(NULL, 0)` when
/// empty), owned by the caller and freed with `passcrow_bytes_free()`,
/// which zeroes it. `PASSCROW_WRONG_CODE` when a server refused a code,
/// `PASSCROW_BAD_INPUT` with too few codes, or for an ephemeral stand-in
/// (use `passcrow_recover_ephemeral()`). `PASSCROW_PENDING` when the codes
/// were right but the escrows asked for a release delay: nothing is
/// returned yet, `passcrow_pending_release_at()` says when to call again
/// with the same codes (the owner was told, and may stop it). A code of an
/// authenticator app is typed as it shows it (6 digits; with the prefix
/// of its escrow in front when a pack has several). Blocks (network).
///
/// # Safety
///
/// `client` and `pack` must be NULL or not freed during the call; `codes`
/// NULL or `n_codes` readable pointers to NUL-terminated strings; the
/// `out_*` pointers NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn passcrow_recover(
    client: *const passcrow_client,
    pack: *const passcrow_pack,
    codes: *const *const c_char,
    n_codes: usize,
    out_secret: *mut *mut u8,
    out_secret_len: *mut usize,
) -> passcrow_result {
    ffi_entry!(
        "passcrow_recover",
        [client, pack, codes, out_secret, out_secret_len],
        {
            // SAFETY: `client` is not freed or changed during the call (the
            // caller's contract).
            let c = unsafe { borrow(client, "client") }?;
            // SAFETY: `pack` is not freed or changed during the call (the
            // caller's contract).
            let p = unsafe { borrow(pack, "pack") }?;
            // SAFETY: `codes` is not NULL (checked by `ffi_entry!`), so it is
            // `n_codes` readable pointers to NUL-terminated strings, unchanged during
            // the call (the caller's contract).
            let codes = unsafe { str_array_arg(codes, n_codes, "codes") }?;
            if p.inner.is_ephemeral_stub() {
                return Err(Fail::new(
                    PASSCROW_BAD_INPUT,
                    "this is an ephemeral recovery id: use passcrow_recover_ephemeral",
                ));
            }
            match c.inner.recover(&p.inner, &codes)? {
                Recovered::Secret(s) => {
                    let (ptr, len) = bytes_to_c(s.expose_secret());
                    // SAFETY: `out_secret`, `out_secret_len` are not NULL
                    // (checked by `ffi_entry!`) and writable (the caller's
                    // contract).
                    unsafe {
                        put(out_secret, ptr);
                        put(out_secret_len, len);
                    }
                    Ok(())
                }
                Recovered::Pack { .. } => Err(Fail::new(
                    PASSCROW_PROTOCOL,
                    "the escrow returned a pack, not a secret",
                )),
            }
        }
    )
}

/// Recover the pack escrowed under an ephemeral recovery id: `pack` is the
/// stand-in `passcrow_pack_open(client, "SERVER:USER_KEY", ...)` made, and
/// the code is the one its verification sent. The pack is saved in the
/// pack directory (named after the user key) and `*out` is a new
/// `passcrow_pack` of it, freed by the caller; verify and recover it next.
///
/// # Safety
///
/// As for `passcrow_recover()`, with `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn passcrow_recover_ephemeral(
    client: *const passcrow_client,
    pack: *const passcrow_pack,
    codes: *const *const c_char,
    n_codes: usize,
    out: *mut *mut passcrow_pack,
) -> passcrow_result {
    ffi_entry!("passcrow_recover_ephemeral", [client, pack, codes, out], {
        // SAFETY: `client` is not freed or changed during the call (the
        // caller's contract).
        let c = unsafe { borrow(client, "client") }?;
        // SAFETY: `pack` is not freed or changed during the call (the caller's
        // contract).
        let p = unsafe { borrow(pack, "pack") }?;
        // SAFETY: `codes` is not NULL (checked by `ffi_entry!`), so it is
        // `n_codes` readable pointers to NUL-terminated strings, unchanged during
        // the call (the caller's contract).
        let codes = unsafe { str_array_arg(codes, n_codes, "codes") }?;
        if !p.inner.is_ephemeral_stub() {
            return Err(Fail::new(
                PASSCROW_BAD_INPUT,
                "not an ephemeral recovery id: use passcrow_recover",
            ));
        }
        match c.inner.recover(&p.inner, &codes)? {
            Recovered::Pack { pack, .. } => {
                // SAFETY: `out` is not NULL (checked by `ffi_entry!`) and
                // writable (the caller's contract).
                unsafe { put(out, passcrow_pack { inner: pack }.into_raw()) };
                Ok(())
            }
            Recovered::Secret(_) => Err(Fail::new(
                PASSCROW_PROTOCOL,
                "the ephemeral escrow returned a secret, not a pack",
            )),
        }
    })
}

/// Zero and free a byte buffer libpasscrow returned, given with the length
/// it came with. `(NULL, any)` is a no-op. A buffer freed twice, not made
/// by libpasscrow or given with another length returns
/// `PASSCROW_INVALID_HANDLE` and is left alone.
///
/// # Safety
///
/// Nothing may be using the buffer any more (on any thread).
#[no_mangle]
pub unsafe extern "C" fn passcrow_bytes_free(data: *mut u8, len: usize) -> passcrow_result {
    ffi_entry!("passcrow_bytes_free", [], {
        if data.is_null() {
            return Ok(());
        }
        {
            let mut l = live();
            match l.get(&(data as usize)) {
                Some(Kind::Bytes(n)) if *n == len => {
                    l.remove(&(data as usize));
                }
                other => return Err(not_alive(Kind::Bytes(len), "data", other.copied())),
            }
        }
        // SAFETY: `data` was registered as `len` bytes, so `bytes_to_c` made
        // it from a `Box<[u8]>` of that length; unregistering it under the
        // lock made this call the only one to take it back, and nothing uses
        // it any more (the caller's contract).
        let mut b: Box<[u8]> =
            unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(data, len)) };
        b.zeroize();
        drop(b);
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip() {
        let (p, n) = bytes_to_c(b"secret");
        // SAFETY: nothing else uses the buffer.
        unsafe {
            assert_eq!(passcrow_bytes_free(p, n + 1), PASSCROW_INVALID_HANDLE);
            assert_eq!(passcrow_bytes_free(p, n), PASSCROW_OK);
            assert_eq!(passcrow_bytes_free(p, n), PASSCROW_INVALID_HANDLE);
            assert_eq!(passcrow_bytes_free(std::ptr::null_mut(), 3), PASSCROW_OK);
        }
        assert_eq!(bytes_to_c(b""), (std::ptr::null_mut(), 0));
    }
}
