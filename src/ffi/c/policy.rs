//! `passcrow_policy`: identities, n-of-m and lifetimes; and
//! `passcrow_parse_ratio()`.

use std::ffi::c_char;

use super::args::{put, str_arg, str_array_arg};
use super::boundary::ffi_entry;
use super::client::passcrow_client;
use super::handle::{borrow, borrow_mut, free_handle, Handle, Kind};
use super::result::passcrow_result;
use crate::policy::{PolicyRequest, RecoveryPolicy};

/// A recovery policy: identities, n-of-m, lifetimes. Immutable once made
/// except by `passcrow_policy_set_lifetimes()`.
///
/// Thread-safety: may be read from several threads at once; not while
/// `passcrow_policy_set_lifetimes()` runs on it.
pub struct passcrow_policy {
    pub(super) inner: RecoveryPolicy,
}

// SAFETY: `Kind::Policy` is registered for `passcrow_policy` only.
unsafe impl Handle for passcrow_policy {
    const KIND: Kind = Kind::Policy;
}

/// Parse a ratio `"N/M"` (or `"N"`, then M is `count`, or N when `count` is
/// 0) into `*out_n` and `*out_m`. `text` is borrowed for the call.
///
/// # Safety
///
/// `text` must be NULL or a NUL-terminated string; `out_n` and `out_m`
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn passcrow_parse_ratio(
    text: *const c_char,
    count: u32,
    out_n: *mut u32,
    out_m: *mut u32,
) -> passcrow_result {
    ffi_entry!("passcrow_parse_ratio", [text, out_n, out_m], {
        // SAFETY: `text` is NULL or a NUL-terminated string, unchanged during
        // the call (the caller's contract).
        let t = unsafe { str_arg(text, "text") }?;
        let (n, m) = crate::policy::parse_ratio(t, if count == 0 { None } else { Some(count) })?;
        // SAFETY: `out_n`, `out_m` are not NULL (checked by `ffi_entry!`) and
        // writable (the caller's contract).
        unsafe {
            put(out_n, n);
            put(out_m, m);
        }
        Ok(())
    })
}

/// Make a policy from `n_identities` identity texts (`"user@example.org"`,
/// `"+3545885522 via sms.example.org"`, `"a@b.org, notify=c@d.org via
/// SERVER"`, ...), asking that `n` of `m` verify. Servers, and identities
/// when `n_identities` is 0, come from the client's `policy.rc`; `n` = `m` =
/// 0 takes its ratio too. On success `*out` is a new policy the caller frees
/// with `passcrow_policy_free()`. Every argument is borrowed for the call.
///
/// # Safety
///
/// `client` must be NULL or not freed during the call; `identities` NULL
/// or `n_identities` readable pointers to NUL-terminated strings; `out`
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn passcrow_policy_new(
    client: *const passcrow_client,
    identities: *const *const c_char,
    n_identities: usize,
    n: u32,
    m: u32,
    out: *mut *mut passcrow_policy,
) -> passcrow_result {
    ffi_entry!("passcrow_policy_new", [client, out], {
        // SAFETY: `client` is not freed or changed during the call (the
        // caller's contract).
        let c = unsafe { borrow(client, "client") }?;
        // SAFETY: `identities` is NULL or `n_identities` readable pointers
        // to NUL-terminated strings, unchanged during the call (the caller's
        // contract).
        let ids = unsafe { str_array_arg(identities, n_identities, "identities") }?;
        // 0/0 asks for the defaults' ratio; any other pair is checked by
        // the core (`policy::check_ratio`), like every other way in.
        let mut request = PolicyRequest::new(&ids);
        if (n, m) != (0, 0) {
            request = request.with_ratio(n, m);
        }
        let p = c.inner.policy(&request)?;
        // SAFETY: `out` is not NULL (checked by `ffi_entry!`) and writable (the
        // caller's contract).
        unsafe { put(out, passcrow_policy { inner: p }.into_raw()) };
        Ok(())
    })
}

/// Set how long servers keep the shares (`expiration_days`; free escrows
/// last about a day, longer ones cost proof of work) and how long a code
/// lives (`timeout_minutes`). 0 keeps the current value.
///
/// # Safety
///
/// No other call may be using `policy` (on any thread).
#[no_mangle]
pub unsafe extern "C" fn passcrow_policy_set_lifetimes(
    policy: *mut passcrow_policy,
    expiration_days: u32,
    timeout_minutes: u32,
) -> passcrow_result {
    ffi_entry!("passcrow_policy_set_lifetimes", [policy], {
        // SAFETY: no other call uses `policy` meanwhile (the caller's
        // contract).
        let p = unsafe { borrow_mut(policy, "policy") }?;
        if expiration_days > 0 {
            p.inner.expiration_days = expiration_days;
        }
        if timeout_minutes > 0 {
            p.inner.timeout_minutes = timeout_minutes;
        }
        Ok(())
    })
}

/// The n-of-m a policy will use for its identities, after scaling (and the
/// number of identities it names in `*out_ids`).
///
/// # Safety
///
/// `policy` must be NULL or not freed or changed during the call; the
/// `out_*` pointers NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn passcrow_policy_ratio(
    policy: *const passcrow_policy,
    out_n: *mut u32,
    out_m: *mut u32,
    out_ids: *mut usize,
) -> passcrow_result {
    ffi_entry!("passcrow_policy_ratio", [policy, out_n, out_m, out_ids], {
        // SAFETY: `policy` is not freed or changed during the call (the
        // caller's contract).
        let p = unsafe { borrow(policy, "policy") }?;
        let (n, m) = p.inner.absolute_ratio(0)?;
        // SAFETY: `out_n`, `out_m`, `out_ids` are not NULL (checked by
        // `ffi_entry!`) and writable (the caller's contract).
        unsafe {
            put(out_n, n);
            put(out_m, m);
            put(out_ids, p.inner.ids.len());
        }
        Ok(())
    })
}

/// Free a policy. NULL is a no-op; freed twice returns
/// `PASSCROW_INVALID_HANDLE`.
///
/// # Safety
///
/// No other call may be using `policy` (on any thread).
#[no_mangle]
pub unsafe extern "C" fn passcrow_policy_free(policy: *mut passcrow_policy) -> passcrow_result {
    ffi_entry!("passcrow_policy_free", [], {
        // SAFETY: no other call uses `policy` any more (the caller's contract).
        unsafe { free_handle(policy, "policy") }
    })
}
