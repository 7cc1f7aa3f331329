//! Start verification: `passcrow_verify()`, the `passcrow_verification`
//! it returns and its `passcrow_hint`s.

use std::ffi::{c_char, CString};

use super::args::{cstring, put};
use super::boundary::ffi_entry;
use super::client::passcrow_client;
use super::handle::{borrow, free_handle, Handle, Kind};
use super::pack::passcrow_pack;
use super::result::passcrow_result::{self, *};
use super::result::Fail;
use crate::client::Verification;

/// Where one verification code went. The strings are borrowed from the
/// `passcrow_verification` and valid until it is freed.
#[repr(C)]
pub struct passcrow_hint {
    /// The character the code starts with.
    pub prefix: c_char,
    /// Identity kind: `"email"`, `"tel"`, `"ephemeral"`, ...
    pub kind: *const c_char,
    /// The masked address, e.g. `"b*@e*ple.org"`.
    pub hint: *const c_char,
    /// When the code stops working (unix time).
    pub expiration: i64,
    /// Where to find the code, or NULL.
    pub action_url: *const c_char,
    /// The server that sent it.
    pub server: *const c_char,
}

struct HintStrings {
    kind: CString,
    hint: CString,
    action_url: Option<CString>,
    server: CString,
}

/// Verifications started by `passcrow_verify()`.
/// Thread-safety: immutable; may be read from several threads at once.
pub struct passcrow_verification {
    inner: Verification,
    strings: Vec<HintStrings>,
}

// SAFETY: `Kind::Verification` is registered for `passcrow_verification` only.
unsafe impl Handle for passcrow_verification {
    const KIND: Kind = Kind::Verification;
}

/// Ask every escrow of `pack` for a verification code (sent by e-mail, SMS,
/// ...). Succeeds when at least the codes needed are on their way; then
/// `*out` is a new `passcrow_verification` with the hints, freed by the
/// caller with `passcrow_verification_free()`. `PASSCROW_INCOMPLETE` when
/// too few servers answered. Blocks (network).
///
/// # Safety
///
/// `client` and `pack` must be NULL or not freed during the call; `out`
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn passcrow_verify(
    client: *const passcrow_client,
    pack: *const passcrow_pack,
    out: *mut *mut passcrow_verification,
) -> passcrow_result {
    ffi_entry!("passcrow_verify", [client, pack, out], {
        // SAFETY: `client` is not freed or changed during the call (the
        // caller's contract).
        let c = unsafe { borrow(client, "client") }?;
        // SAFETY: `pack` is not freed or changed during the call (the caller's
        // contract).
        let p = unsafe { borrow(pack, "pack") }?;
        let v = c.inner.verify(&p.inner)?;
        let strings = v
            .hints
            .iter()
            .map(|h| HintStrings {
                kind: cstring(&h.kind),
                hint: cstring(&h.hint),
                action_url: h.action_url.as_deref().map(cstring),
                server: cstring(&h.server),
            })
            .collect();
        // SAFETY: `out` is not NULL (checked by `ffi_entry!`) and writable (the
        // caller's contract).
        unsafe { put(out, passcrow_verification { inner: v, strings }.into_raw()) };
        Ok(())
    })
}

/// The number of hints (`*out_hints`), of codes needed (`*out_min_shares`)
/// and of escrows that could not start verification (`*out_failures`).
///
/// # Safety
///
/// `verification` must be NULL or not freed during the call; the `out_*`
/// pointers NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn passcrow_verification_counts(
    verification: *const passcrow_verification,
    out_hints: *mut usize,
    out_min_shares: *mut u32,
    out_failures: *mut usize,
) -> passcrow_result {
    ffi_entry!(
        "passcrow_verification_counts",
        [verification, out_hints, out_min_shares, out_failures],
        {
            // SAFETY: `verification` is not freed or changed during the call
            // (the caller's contract).
            let v = unsafe { borrow(verification, "verification") }?;
            // SAFETY: `out_hints`, `out_min_shares`, `out_failures` are not
            // NULL (checked by `ffi_entry!`) and writable (the caller's
            // contract).
            unsafe {
                put(out_hints, v.inner.hints.len());
                put(out_min_shares, v.inner.min_shares);
                put(out_failures, v.inner.failures.len());
            }
            Ok(())
        }
    )
}

/// Hint number `index` (from 0, in prefix order) into `*out`; its strings
/// are borrowed from `verification`. `PASSCROW_OUT_OF_RANGE` past the end.
///
/// # Safety
///
/// `verification` must be NULL or not freed during the call; `out` NULL
/// or writable.
#[no_mangle]
pub unsafe extern "C" fn passcrow_verification_hint(
    verification: *const passcrow_verification,
    index: usize,
    out: *mut passcrow_hint,
) -> passcrow_result {
    ffi_entry!("passcrow_verification_hint", [verification, out], {
        // SAFETY: `verification` is not freed or changed during the call (the
        // caller's contract).
        let v = unsafe { borrow(verification, "verification") }?;
        let (Some(h), Some(s)) = (v.inner.hints.get(index), v.strings.get(index)) else {
            return Err(Fail::new(
                PASSCROW_OUT_OF_RANGE,
                format!("hint {index} of {}", v.inner.hints.len()),
            ));
        };
        let hint = passcrow_hint {
            prefix: h.prefix as u32 as u8 as c_char,
            kind: s.kind.as_ptr(),
            hint: s.hint.as_ptr(),
            expiration: h.expiration,
            action_url: s
                .action_url
                .as_ref()
                .map_or(std::ptr::null(), |u| u.as_ptr()),
            server: s.server.as_ptr(),
        };
        // SAFETY: `out` is not NULL (checked by `ffi_entry!`) and writable (the
        // caller's contract).
        unsafe { put(out, hint) };
        Ok(())
    })
}

/// Free a verification. NULL is a no-op.
///
/// # Safety
///
/// No other call may be using `verification` (on any thread).
#[no_mangle]
pub unsafe extern "C" fn passcrow_verification_free(
    verification: *mut passcrow_verification,
) -> passcrow_result {
    ffi_entry!("passcrow_verification_free", [], {
        // SAFETY: no other call uses `verification` any more (the caller's
        // contract).
        unsafe { free_handle(verification, "verification") }
    })
}
