//! `passcrow_client`: a client over one pack directory.

use std::ffi::{c_char, c_void};
use std::sync::Arc;

use super::args::{put, str_arg};
use super::boundary::ffi_entry;
use super::handle::{free_handle, Handle, Kind};
use super::http::{passcrow_http_callback, CallbackTransport};
use super::result::passcrow_result::{self, *};
use super::result::{Fail, FfiResult};
use crate::client::{Client, ClientConfig, Transport};

/// A client over one pack directory. Make it with `passcrow_client_new()`
/// or `passcrow_client_new_with_http()`, release it with
/// `passcrow_client_free()`.
///
/// Thread-safety: a client may be used from several threads at once (every
/// function takes it `const`); it must not be freed while a call is using it.
pub struct passcrow_client {
    pub(super) inner: Client,
}

// SAFETY: `Kind::Client` is registered for `passcrow_client` only.
unsafe impl Handle for passcrow_client {
    const KIND: Kind = Kind::Client;
}

/// Make a client over `data_dir` with `transport` (the built-in one when
/// `None`) into `*out`.
///
/// # Safety
///
/// `config_dir` and `data_dir` must be as `str_arg` requires, for the
/// call; `out` non-NULL and writable for one pointer.
unsafe fn new_client(
    config_dir: *const c_char,
    data_dir: *const c_char,
    transport: Option<Arc<dyn Transport>>,
    out: *mut *mut passcrow_client,
) -> FfiResult {
    // SAFETY: both are NULL or readable NUL-terminated strings, for the call
    // (the caller's contract).
    let cfg = unsafe {
        ClientConfig::new(
            str_arg(config_dir, "config_dir")?,
            str_arg(data_dir, "data_dir")?,
        )
    };
    let inner = match transport {
        Some(t) => Client::with_transport(cfg, t)?,
        None => Client::new(cfg)?,
    };
    // SAFETY: `out` is non-NULL and writable (the caller's contract).
    unsafe { put(out, passcrow_client { inner }.into_raw()) };
    Ok(())
}

/// Open the pack directory `data_dir` (packs are `NAME.passcrow` files) with
/// defaults from `config_dir/policy.rc` (absent is fine); both directories
/// must exist. Uses the built-in HTTPS transport. On success `*out` is a new
/// client the caller owns and frees with `passcrow_client_free()`.
/// `config_dir` and `data_dir` are borrowed for the call.
///
/// # Safety
///
/// `config_dir` and `data_dir` must be NULL or NUL-terminated strings;
/// `out` NULL or writable for one pointer.
#[no_mangle]
pub unsafe extern "C" fn passcrow_client_new(
    config_dir: *const c_char,
    data_dir: *const c_char,
    out: *mut *mut passcrow_client,
) -> passcrow_result {
    ffi_entry!("passcrow_client_new", [config_dir, data_dir, out], {
        // SAFETY: `out` is not NULL (checked by `ffi_entry!`); the rest is
        // this function's contract, which is `new_client`'s.
        unsafe { new_client(config_dir, data_dir, None, out) }
    })
}

/// Like `passcrow_client_new()`, with HTTP done by the host: every request
/// goes to `callback(userdata, ...)` (see `passcrow_http_callback`).
/// `userdata` is borrowed for the client's whole life and may be NULL;
/// the library never frees it. The callback may be called from several
/// threads at once.
///
/// # Safety
///
/// As for `passcrow_client_new()`; and until the client is freed,
/// `callback` must follow `passcrow_http_callback`'s contract and be safe
/// to call with `userdata` from any thread, several at once.
#[no_mangle]
pub unsafe extern "C" fn passcrow_client_new_with_http(
    config_dir: *const c_char,
    data_dir: *const c_char,
    callback: passcrow_http_callback,
    userdata: *mut c_void,
    out: *mut *mut passcrow_client,
) -> passcrow_result {
    ffi_entry!(
        "passcrow_client_new_with_http",
        [config_dir, data_dir, out],
        {
            let Some(callback) = callback else {
                return Err(Fail::new(
                    PASSCROW_NULL_ARGUMENT,
                    "argument `callback` is NULL",
                ));
            };
            // SAFETY: the callback's contract is this function's (above).
            let t = unsafe { CallbackTransport::new(callback, userdata) };
            let t: Arc<dyn Transport> = Arc::new(t);
            // SAFETY: as in `passcrow_client_new`.
            unsafe { new_client(config_dir, data_dir, Some(t), out) }
        }
    )
}

/// Free a client. NULL is a no-op; a client freed already returns
/// `PASSCROW_INVALID_HANDLE`. Handles made with the client (policies, packs,
/// ...) stay valid and are freed separately.
///
/// # Safety
///
/// No other call may be using `client` (on any thread).
#[no_mangle]
pub unsafe extern "C" fn passcrow_client_free(client: *mut passcrow_client) -> passcrow_result {
    ffi_entry!("passcrow_client_free", [], {
        // SAFETY: nothing else uses `client` (the caller's contract).
        unsafe { free_handle(client, "client") }
    })
}

#[cfg(test)]
mod tests {
    use std::ffi::CString;

    use super::*;
    use crate::ffi::c::pack::{passcrow_pack, passcrow_pack_free, passcrow_pack_open};
    use crate::ffi::c::result::last_error;

    #[test]
    fn null_and_double_free() {
        let dir = tempfile::tempdir().unwrap();
        let d = CString::new(dir.path().to_str().unwrap()).unwrap();
        let mut c: *mut passcrow_client = std::ptr::null_mut();
        // SAFETY: the strings are NUL-terminated and the out-pointers
        // writable; handles are not used by another thread.
        unsafe {
            assert_eq!(
                passcrow_client_new(std::ptr::null(), d.as_ptr(), &mut c),
                PASSCROW_NULL_ARGUMENT
            );
            assert!(last_error().contains("config_dir"));
            assert!(c.is_null());
            assert_eq!(
                passcrow_client_new(d.as_ptr(), d.as_ptr(), &mut c),
                PASSCROW_OK
            );
            let mut p: *mut passcrow_pack = std::ptr::null_mut();
            let name = CString::new("nope").unwrap();
            assert_eq!(
                passcrow_pack_open(c, name.as_ptr(), &mut p),
                PASSCROW_NOT_FOUND
            );
            // A client is not a pack.
            assert_eq!(
                passcrow_pack_free(c as *mut passcrow_pack),
                PASSCROW_INVALID_HANDLE
            );
            assert_eq!(passcrow_client_free(c), PASSCROW_OK);
            assert_eq!(passcrow_client_free(c), PASSCROW_INVALID_HANDLE);
            assert!(last_error().contains("not a live passcrow_client"));
            assert_eq!(passcrow_client_free(std::ptr::null_mut()), PASSCROW_OK);
        }
    }
}
