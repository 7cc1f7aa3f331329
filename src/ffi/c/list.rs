//! The pack directory: `passcrow_forget()`, `passcrow_list()`,
//! `passcrow_expiring()` and the `passcrow_pack_list` they return.

use std::ffi::{c_char, CString};
use std::time::Duration;

use super::args::{cstring, put, str_arg};
use super::boundary::ffi_entry;
use super::client::passcrow_client;
use super::handle::{borrow, free_handle, Handle, Kind};
use super::result::passcrow_result::{self, *};
use super::result::Fail;
use crate::client::PackInfo;

/// Forget the pack `name`: delete its escrows on the servers (unless
/// `local_only`), then the file. When a server cannot be reached the file is
/// kept (`PASSCROW_INCOMPLETE`) so the user can try again. `out_deleted`
/// may be NULL; else it receives how many escrows were deleted.
///
/// # Safety
///
/// `client` must be NULL or not freed during the call; `name` NULL or a
/// NUL-terminated string; `out_deleted` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn passcrow_forget(
    client: *const passcrow_client,
    name: *const c_char,
    local_only: bool,
    out_deleted: *mut usize,
) -> passcrow_result {
    ffi_entry!("passcrow_forget", [client, name], {
        // SAFETY: `client` is not freed or changed during the call (the
        // caller's contract).
        let c = unsafe { borrow(client, "client") }?;
        // SAFETY: `name` is not NULL (checked by `ffi_entry!`), so it is a
        // NUL-terminated string unchanged during the call (the caller's
        // contract).
        let name = unsafe { str_arg(name, "name") }?;
        let f = c.inner.forget(name, local_only)?;
        if !out_deleted.is_null() {
            // SAFETY: `out_deleted` is not NULL (checked above) and writable
            // (the caller's contract).
            unsafe { put(out_deleted, f.deleted) };
        }
        Ok(())
    })
}

/// One pack in a listing. The strings are borrowed from the
/// `passcrow_pack_list` and valid until it is freed.
#[repr(C)]
pub struct passcrow_pack_info {
    /// The pack's name.
    pub name: *const c_char,
    /// The file's path.
    pub path: *const c_char,
    /// Its description (may be empty).
    pub description: *const c_char,
    /// Identity kinds, sorted, comma-separated (`"email,email,tel"`).
    pub kinds: *const c_char,
    /// Why the pack could not be read, or NULL when it could.
    pub error: *const c_char,
    /// Creation time (unix; 0 if unknown).
    pub created: i64,
    /// When the first escrow expires (unix).
    pub expires: i64,
    /// Codes needed.
    pub min_shares: u32,
    /// Escrows codes route to.
    pub escrows: usize,
    /// Whether an ephemeral copy exists.
    pub ephemeral: bool,
}

struct InfoStrings {
    name: CString,
    path: CString,
    description: CString,
    kinds: CString,
    error: Option<CString>,
}

/// A listing of packs, from `passcrow_list()` or `passcrow_expiring()`.
/// Thread-safety: immutable; may be read from several threads at once.
pub struct passcrow_pack_list {
    infos: Vec<PackInfo>,
    strings: Vec<InfoStrings>,
}

// SAFETY: `Kind::PackList` is registered for `passcrow_pack_list` only.
unsafe impl Handle for passcrow_pack_list {
    const KIND: Kind = Kind::PackList;
}

fn pack_list(infos: Vec<PackInfo>) -> *mut passcrow_pack_list {
    let strings = infos
        .iter()
        .map(|i| InfoStrings {
            name: cstring(&i.name),
            path: cstring(&i.path.to_string_lossy()),
            description: cstring(&i.description),
            kinds: cstring(&i.kinds.join(",")),
            error: i.error.as_deref().map(cstring),
        })
        .collect();
    passcrow_pack_list { infos, strings }.into_raw()
}

/// Every pack in the pack directory, sorted by file name (unreadable ones
/// too, with their `error`). On success `*out` is a new list the caller
/// frees with `passcrow_pack_list_free()`.
///
/// # Safety
///
/// `client` must be NULL or not freed during the call; `out` NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn passcrow_list(
    client: *const passcrow_client,
    out: *mut *mut passcrow_pack_list,
) -> passcrow_result {
    ffi_entry!("passcrow_list", [client, out], {
        // SAFETY: `client` is not freed or changed during the call (the
        // caller's contract).
        let c = unsafe { borrow(client, "client") }?;
        let list = pack_list(c.inner.list()?);
        // SAFETY: `out` is not NULL (checked by `ffi_entry!`) and writable (the
        // caller's contract).
        unsafe { put(out, list) };
        Ok(())
    })
}

/// The packs whose first escrow expires within `within_seconds` from now
/// (renew them with `passcrow_renew()`), and unreadable packs. Ownership as
/// for `passcrow_list()`.
///
/// # Safety
///
/// As for `passcrow_list()`.
#[no_mangle]
pub unsafe extern "C" fn passcrow_expiring(
    client: *const passcrow_client,
    within_seconds: u64,
    out: *mut *mut passcrow_pack_list,
) -> passcrow_result {
    ffi_entry!("passcrow_expiring", [client, out], {
        // SAFETY: `client` is not freed or changed during the call (the
        // caller's contract).
        let c = unsafe { borrow(client, "client") }?;
        let list = pack_list(c.inner.expiring(Duration::from_secs(within_seconds))?);
        // SAFETY: `out` is not NULL (checked by `ffi_entry!`) and writable (the
        // caller's contract).
        unsafe { put(out, list) };
        Ok(())
    })
}

/// The number of packs in a listing.
///
/// # Safety
///
/// `list` must be NULL or not freed during the call; `out_len` NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn passcrow_pack_list_len(
    list: *const passcrow_pack_list,
    out_len: *mut usize,
) -> passcrow_result {
    ffi_entry!("passcrow_pack_list_len", [list, out_len], {
        // SAFETY: `list` is not freed or changed during the call (the caller's
        // contract).
        let l = unsafe { borrow(list, "list") }?;
        // SAFETY: `out_len` is not NULL (checked by `ffi_entry!`) and writable
        // (the caller's contract).
        unsafe { put(out_len, l.infos.len()) };
        Ok(())
    })
}

/// Pack number `index` (from 0) into `*out`; its strings are borrowed from
/// `list`. `PASSCROW_OUT_OF_RANGE` past the end.
///
/// # Safety
///
/// `list` must be NULL or not freed during the call; `out` NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn passcrow_pack_list_get(
    list: *const passcrow_pack_list,
    index: usize,
    out: *mut passcrow_pack_info,
) -> passcrow_result {
    ffi_entry!("passcrow_pack_list_get", [list, out], {
        // SAFETY: `list` is not freed or changed during the call (the caller's
        // contract).
        let l = unsafe { borrow(list, "list") }?;
        let (Some(i), Some(s)) = (l.infos.get(index), l.strings.get(index)) else {
            return Err(Fail::new(
                PASSCROW_OUT_OF_RANGE,
                format!("pack {index} of {}", l.infos.len()),
            ));
        };
        let info = passcrow_pack_info {
            name: s.name.as_ptr(),
            path: s.path.as_ptr(),
            description: s.description.as_ptr(),
            kinds: s.kinds.as_ptr(),
            error: s.error.as_ref().map_or(std::ptr::null(), |e| e.as_ptr()),
            created: i.created_ts,
            expires: i.expires_ts,
            min_shares: i.min_shares,
            escrows: i.escrows,
            ephemeral: i.ephemeral,
        };
        // SAFETY: `out` is not NULL (checked by `ffi_entry!`) and writable (the
        // caller's contract).
        unsafe { put(out, info) };
        Ok(())
    })
}

/// Free a listing. NULL is a no-op.
///
/// # Safety
///
/// No other call may be using `list` (on any thread).
#[no_mangle]
pub unsafe extern "C" fn passcrow_pack_list_free(list: *mut passcrow_pack_list) -> passcrow_result {
    ffi_entry!("passcrow_pack_list_free", [], {
        // SAFETY: no other call uses `list` any more (the caller's contract).
        unsafe { free_handle(list, "list") }
    })
}
