//! Protect and renew a secret: `passcrow_protect()`, `passcrow_renew()`,
//! the `passcrow_ephemeral` choices and the `passcrow_protected` result
//! (its ephemeral id, warnings and authenticator-app enrolments).

use std::ffi::{c_char, CString};

use super::args::{bytes_arg, cstring, opt_str_arg, put, str_arg};
use super::boundary::ffi_entry;
use super::client::passcrow_client;
use super::handle::{borrow, bytes_to_c, free_handle, Handle, Kind};
use super::policy::passcrow_policy;
use super::result::passcrow_result::{self, *};
use super::result::Fail;
use crate::client::{Ephemeral, ProtectOptions, Protected};

/// How `passcrow_protect()` uses an ephemeral escrow: one of
/// `PASSCROW_EPHEMERAL_NO`, `PASSCROW_EPHEMERAL_BOTH`, `PASSCROW_EPHEMERAL_ONLY`.
pub type passcrow_ephemeral = u32;
/// A local pack only.
pub const PASSCROW_EPHEMERAL_NO: passcrow_ephemeral = 0;
/// A local pack, and the pack escrowed for recovery without it (needs at
/// least 2 identities; the first holds the ephemeral copy).
pub const PASSCROW_EPHEMERAL_BOTH: passcrow_ephemeral = 1;
/// Only the escrowed pack; nothing is written locally.
pub const PASSCROW_EPHEMERAL_ONLY: passcrow_ephemeral = 2;

/// What `passcrow_protect()` or `passcrow_renew()` did.
/// Thread-safety: immutable; may be read from several threads at once.
pub struct passcrow_protected {
    inner: Protected,
    /// `inner.warnings` as C strings.
    warnings: Vec<CString>,
    /// The label and server of each of `inner.totp`, as C strings.
    totp: Vec<(CString, CString)>,
}

impl passcrow_protected {
    fn new(inner: Protected) -> passcrow_protected {
        passcrow_protected {
            warnings: inner.warnings.iter().map(|w| cstring(w)).collect(),
            totp: inner
                .totp
                .iter()
                .map(|t| (cstring(&t.label), cstring(&t.server)))
                .collect(),
            inner,
        }
    }
}

/// One `totp:` identity's enrolment, from `passcrow_protected_totp()`.
/// Its strings are borrowed from the `passcrow_protected`: valid until it
/// is freed.
#[repr(C)]
pub struct passcrow_totp_enrolment {
    /// The identity's label (`phone` for `totp:phone`): the account name
    /// the authenticator app shows under the issuer "Passcrow".
    pub label: *const c_char,
    /// The server that checks its codes.
    pub server: *const c_char,
    /// The character its codes route by (typed before the 6 digits when a
    /// pack has several authenticator escrows), or 0 for the escrow of the
    /// ephemeral copy.
    pub prefix: c_char,
}

// SAFETY: `Kind::Protected` is registered for `passcrow_protected` only.
unsafe impl Handle for passcrow_protected {
    const KIND: Kind = Kind::Protected;
}

/// Protect `secret_len` bytes at `secret` under the pack name `name` with
/// `policy`: the secret is encrypted under a fresh key, the key split n-of-m
/// and each share escrowed with the server of one identity, then the pack
/// `name` is written to the pack directory. Blocks (network, proof of work).
///
/// `ephemeral` is a `passcrow_ephemeral` constant; `replace` replaces an
/// existing pack of that name (else that is `PASSCROW_BAD_INPUT`).
/// `description` (may be NULL: the default) describes the pack.
/// `out` may be NULL; if not, on success `*out` is a new
/// `passcrow_protected` the caller frees with `passcrow_protected_free()`.
/// All other arguments are borrowed for the call; `secret` is not kept.
///
/// # Safety
///
/// `client` and `policy` must be NULL or not freed during the call;
/// `name` and `description` NULL or NUL-terminated strings; `secret` NULL
/// or readable for `secret_len` bytes; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn passcrow_protect(
    client: *const passcrow_client,
    name: *const c_char,
    secret: *const u8,
    secret_len: usize,
    policy: *const passcrow_policy,
    ephemeral: passcrow_ephemeral,
    replace: bool,
    description: *const c_char,
    out: *mut *mut passcrow_protected,
) -> passcrow_result {
    ffi_entry!("passcrow_protect", [client, name, policy], {
        // SAFETY: `client` is not freed or changed during the call (the
        // caller's contract).
        let c = unsafe { borrow(client, "client") }?;
        // SAFETY: `name` is NULL or a NUL-terminated string and `secret`
        // NULL or `secret_len` readable bytes, unchanged during the call
        // (the caller's contract).
        let (name, secret) = unsafe {
            (
                str_arg(name, "name")?,
                bytes_arg(secret, secret_len, "secret")?,
            )
        };
        // SAFETY: `policy` is not freed or changed during the call (the
        // caller's contract).
        let p = unsafe { borrow(policy, "policy") }?;
        let ephemeral = match ephemeral {
            PASSCROW_EPHEMERAL_NO => Ephemeral::No,
            PASSCROW_EPHEMERAL_BOTH => Ephemeral::Both,
            PASSCROW_EPHEMERAL_ONLY => Ephemeral::Only,
            other => {
                return Err(Fail::new(
                    PASSCROW_INVALID_ENUM,
                    format!("ephemeral = {other} is not a passcrow_ephemeral"),
                ))
            }
        };
        let mut opts = ProtectOptions {
            ephemeral,
            replace,
            ..Default::default()
        };
        // SAFETY: `description` is NULL or a NUL-terminated string,
        // unchanged during the call (the caller's contract).
        if let Some(d) = unsafe { opt_str_arg(description, "description") }? {
            opts.pack_description = d.to_string();
        }
        let done = c.inner.protect(name, secret, &p.inner, &opts)?;
        if !out.is_null() {
            // SAFETY: `out` is not NULL (checked above) and writable (the
            // caller's contract).
            unsafe { put(out, passcrow_protected::new(done).into_raw()) };
        }
        Ok(())
    })
}

/// Renew the pack `name`: escrow `secret` afresh under `policy` (NULL: the
/// defaults of `policy.rc`), write the new pack over the old one, then
/// delete the old escrows. A pack with an ephemeral copy gets a new one
/// (and a new user key: read it with `passcrow_protected_ephemeral_id()`).
/// `out` may be NULL; ownership as for `passcrow_protect()`.
///
/// # Safety
///
/// As for `passcrow_protect()`.
#[no_mangle]
pub unsafe extern "C" fn passcrow_renew(
    client: *const passcrow_client,
    name: *const c_char,
    secret: *const u8,
    secret_len: usize,
    policy: *const passcrow_policy,
    out: *mut *mut passcrow_protected,
) -> passcrow_result {
    ffi_entry!("passcrow_renew", [client, name], {
        // SAFETY: `client` is not freed or changed during the call (the
        // caller's contract).
        let c = unsafe { borrow(client, "client") }?;
        // SAFETY: `name` is NULL or a NUL-terminated string and `secret`
        // NULL or `secret_len` readable bytes, unchanged during the call
        // (the caller's contract).
        let (name, secret) = unsafe {
            (
                str_arg(name, "name")?,
                bytes_arg(secret, secret_len, "secret")?,
            )
        };
        let p = if policy.is_null() {
            None
        } else {
            // SAFETY: `policy` is not freed or changed during the call (the
            // caller's contract).
            Some(&unsafe { borrow(policy, "policy") }?.inner)
        };
        let done = c.inner.renew(name, secret, p)?;
        if !out.is_null() {
            // SAFETY: `out` is not NULL (checked above) and writable (the
            // caller's contract).
            unsafe { put(out, passcrow_protected::new(done).into_raw()) };
        }
        Ok(())
    })
}

/// The ephemeral recovery id `SERVER:USER_KEY` of a protection made with
/// `PASSCROW_EPHEMERAL_BOTH` or `_ONLY` (the user writes it down; it opens
/// the pack with `passcrow_pack_open()`), and when the escrowed copy
/// expires (unix time). `PASSCROW_NOT_FOUND` without an ephemeral copy.
/// On success `*out_id`/`*out_id_len` is a secret buffer (not
/// NUL-terminated) the caller frees with `passcrow_bytes_free()`.
///
/// # Safety
///
/// `protection` must be NULL or not freed during the call; the `out_*`
/// pointers NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn passcrow_protected_ephemeral_id(
    protection: *const passcrow_protected,
    out_id: *mut *mut u8,
    out_id_len: *mut usize,
    out_expiration: *mut i64,
) -> passcrow_result {
    ffi_entry!(
        "passcrow_protected_ephemeral_id",
        [protection, out_id, out_id_len, out_expiration],
        {
            // SAFETY: `protection` is not freed or changed during the call (the
            // caller's contract).
            let p = unsafe { borrow(protection, "protection") }?;
            let Some(e) = &p.inner.ephemeral else {
                return Err(Fail::new(
                    PASSCROW_NOT_FOUND,
                    "this protection has no ephemeral copy",
                ));
            };
            let id = e.recovery_id();
            let (ptr, len) = bytes_to_c(id.expose_secret().as_bytes());
            // SAFETY: `out_id`, `out_id_len`, `out_expiration` are not NULL
            // (checked by `ffi_entry!`) and writable (the caller's contract).
            unsafe {
                put(out_id, ptr);
                put(out_id_len, len);
                put(out_expiration, e.expiration);
            }
            Ok(())
        }
    )
}

/// How many old escrows could not be deleted after a replace or renew (the
/// servers forget them when they expire).
///
/// # Safety
///
/// `protection` must be NULL or not freed during the call; `out` NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn passcrow_protected_cleanup_failures(
    protection: *const passcrow_protected,
    out: *mut usize,
) -> passcrow_result {
    ffi_entry!("passcrow_protected_cleanup_failures", [protection, out], {
        // SAFETY: `protection` is not freed or changed during the call (the
        // caller's contract).
        let p = unsafe { borrow(protection, "protection") }?;
        // SAFETY: `out` is not NULL (checked by `ffi_entry!`) and writable (the
        // caller's contract).
        unsafe { put(out, p.inner.cleanup_failures.len()) };
        Ok(())
    })
}

/// How many policy warnings the protection carries (a threshold one
/// server can meet alone; the pack was made anyway): read each with
/// `passcrow_protected_warning()`.
///
/// # Safety
///
/// `protection` must be NULL or not freed during the call; `out_count`
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn passcrow_protected_warning_count(
    protection: *const passcrow_protected,
    out_count: *mut usize,
) -> passcrow_result {
    ffi_entry!(
        "passcrow_protected_warning_count",
        [protection, out_count],
        {
            // SAFETY: `protection` is not freed or changed during the call (the
            // caller's contract).
            let p = unsafe { borrow(protection, "protection") }?;
            // SAFETY: `out_count` is not NULL (checked by `ffi_entry!`) and
            // writable (the caller's contract).
            unsafe { put(out_count, p.warnings.len()) };
            Ok(())
        }
    )
}

/// Warning `index` (from 0) of the protection: `*out` is a NUL-terminated
/// string borrowed from `protection` (valid until it is freed).
/// `PASSCROW_OUT_OF_RANGE` past the last.
///
/// # Safety
///
/// `protection` must be NULL or not freed during the call; `out` NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn passcrow_protected_warning(
    protection: *const passcrow_protected,
    index: usize,
    out: *mut *const c_char,
) -> passcrow_result {
    ffi_entry!("passcrow_protected_warning", [protection, out], {
        // SAFETY: `protection` is not freed or changed during the call (the
        // caller's contract).
        let p = unsafe { borrow(protection, "protection") }?;
        let Some(w) = p.warnings.get(index) else {
            return Err(Fail::new(
                PASSCROW_OUT_OF_RANGE,
                format!("warning {index} of {}", p.warnings.len()),
            ));
        };
        // SAFETY: `out` is not NULL (checked by `ffi_entry!`) and writable
        // (the caller's contract).
        unsafe { put(out, w.as_ptr()) };
        Ok(())
    })
}

/// How many `totp:` identities the protection enrolled: show each to the
/// user now (`passcrow_protected_totp()`); their secrets are nowhere else
/// on this device.
///
/// # Safety
///
/// `protection` must be NULL or not freed during the call; `out_count`
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn passcrow_protected_totp_count(
    protection: *const passcrow_protected,
    out_count: *mut usize,
) -> passcrow_result {
    ffi_entry!("passcrow_protected_totp_count", [protection, out_count], {
        // SAFETY: `protection` is not freed or changed during the call (the
        // caller's contract).
        let p = unsafe { borrow(protection, "protection") }?;
        // SAFETY: `out_count` is not NULL (checked by `ffi_entry!`) and
        // writable (the caller's contract).
        unsafe { put(out_count, p.totp.len()) };
        Ok(())
    })
}

/// Enrolment `index` (from 0) of a `totp:` identity: `*out` its label,
/// server and prefix, and `*out_uri`/`*out_uri_len` the
/// `otpauth://totp/Passcrow:LABEL?secret=...` URI an authenticator app
/// reads from a QR code. The URI holds the secret: a buffer (not
/// NUL-terminated) the caller frees with `passcrow_bytes_free()`, which
/// zeroes it. `PASSCROW_OUT_OF_RANGE` past the last.
///
/// # Safety
///
/// `protection` must be NULL or not freed during the call; the `out*`
/// pointers NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn passcrow_protected_totp(
    protection: *const passcrow_protected,
    index: usize,
    out: *mut passcrow_totp_enrolment,
    out_uri: *mut *mut u8,
    out_uri_len: *mut usize,
) -> passcrow_result {
    ffi_entry!(
        "passcrow_protected_totp",
        [protection, out, out_uri, out_uri_len],
        {
            // SAFETY: `protection` is not freed or changed during the call
            // (the caller's contract).
            let p = unsafe { borrow(protection, "protection") }?;
            let (Some(t), Some((label, server))) = (p.inner.totp.get(index), p.totp.get(index))
            else {
                return Err(Fail::new(
                    PASSCROW_OUT_OF_RANGE,
                    format!("enrolment {index} of {}", p.totp.len()),
                ));
            };
            let e = passcrow_totp_enrolment {
                label: label.as_ptr(),
                server: server.as_ptr(),
                // Prefixes are ASCII letters and digits.
                prefix: t
                    .prefix
                    .filter(char::is_ascii)
                    .map_or(0, |c| c as u8 as c_char),
            };
            let (ptr, len) = bytes_to_c(t.uri.expose_secret().as_bytes());
            // SAFETY: the `out*` pointers are not NULL (checked by
            // `ffi_entry!`) and writable (the caller's contract).
            unsafe {
                put(out, e);
                put(out_uri, ptr);
                put(out_uri_len, len);
            }
            Ok(())
        }
    )
}

/// Free a `passcrow_protected` (its secrets are zeroed). NULL is a no-op.
///
/// # Safety
///
/// No other call may be using `protection` (on any thread).
#[no_mangle]
pub unsafe extern "C" fn passcrow_protected_free(
    protection: *mut passcrow_protected,
) -> passcrow_result {
    ffi_entry!("passcrow_protected_free", [], {
        // SAFETY: no other call uses `protection` any more (the caller's
        // contract).
        unsafe { free_handle(protection, "protection") }
    })
}
