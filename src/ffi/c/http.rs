//! HTTP done by the host: `passcrow_http_callback`, the
//! `passcrow_http_response` it fills in, and the transport that calls it.

use std::ffi::{c_char, c_int, c_void, CStr, CString};

use super::args::bytes_arg;
use super::boundary::ffi_entry;
use super::handle::{borrow_mut, live, Handle, Kind};
use super::result::passcrow_result::{self, *};
use super::result::Fail;
use crate::client::transport::MAX_RESPONSE_BYTES;
use crate::client::{HttpRequest, HttpResponse, Transport, TransportError};

/// The answer an HTTP callback fills in with `passcrow_http_response_set()`.
/// Owned by libpasscrow, valid only during the callback, on its thread.
pub struct passcrow_http_response {
    status: Option<u16>,
    body: Vec<u8>,
    error: Option<String>,
}

// SAFETY: `Kind::HttpResponse` is registered for `passcrow_http_response` only.
unsafe impl Handle for passcrow_http_response {
    const KIND: Kind = Kind::HttpResponse;
}

/// The host's HTTP: POST `body_len` bytes of JSON at `body` to `url`
/// (`http://` or `https://`) with `Content-Type: application/json`, and
/// report the answer with `passcrow_http_response_set(response, ...)`.
///
/// Return 0 when the server answered (whatever the HTTP status), non-zero
/// when no answer was had (connection refused, TLS failure, timeout),
/// optionally with `passcrow_http_response_set_error()`.
///
/// Ownership: `url`, `body` and `response` are borrowed for the call only.
/// The body carries secret material (shares, keys): do not log or keep it.
/// Thread-safety: the callback may run on several threads at once (one per
/// server contacted), so it and `userdata` must be thread-safe.
pub type passcrow_http_callback = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        url: *const c_char,
        body: *const u8,
        body_len: usize,
        response: *mut passcrow_http_response,
    ) -> c_int,
>;

/// Report an HTTP answer from inside a `passcrow_http_callback`: `status` and
/// `body_len` bytes at `body` (at most 1 MiB; `(NULL, 0)` for none).
/// Ownership: the body is copied; `body` stays the caller's.
///
/// # Safety
///
/// `response` must be the callback's own, used on its thread before it
/// returns; `body` NULL or readable for `body_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn passcrow_http_response_set(
    response: *mut passcrow_http_response,
    status: u16,
    body: *const u8,
    body_len: usize,
) -> passcrow_result {
    ffi_entry!("passcrow_http_response_set", [response], {
        // SAFETY: `response` is used only by this callback, on its thread,
        // while `post` waits for it (the caller's contract).
        let r = unsafe { borrow_mut(response, "response") }?;
        // SAFETY: `body` is NULL or readable for `body_len` bytes, for the
        // call (the caller's contract).
        let b = unsafe { bytes_arg(body, body_len, "body") }?;
        if b.len() as u64 > MAX_RESPONSE_BYTES {
            return Err(Fail::new(
                PASSCROW_BAD_INPUT,
                format!("a body of {} bytes is larger than 1 MiB", b.len()),
            ));
        }
        r.status = Some(status);
        r.body = b.to_vec();
        Ok(())
    })
}

/// Say why no HTTP answer was had, from inside a `passcrow_http_callback`
/// that then returns non-zero. Ownership: `message` is copied.
///
/// # Safety
///
/// `response` as for `passcrow_http_response_set()`; `message` NULL or a
/// NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn passcrow_http_response_set_error(
    response: *mut passcrow_http_response,
    message: *const c_char,
) -> passcrow_result {
    ffi_entry!("passcrow_http_response_set_error", [response, message], {
        // SAFETY: as in `passcrow_http_response_set`.
        let r = unsafe { borrow_mut(response, "response") }?;
        // SAFETY: `message` is not NULL (checked by `ffi_entry!`), so it is
        // a readable NUL-terminated string, for the call (the caller's
        // contract). Not `str_arg`: a message need not be UTF-8.
        let m = unsafe { CStr::from_ptr(message) }
            .to_string_lossy()
            .into_owned();
        r.error = Some(m);
        Ok(())
    })
}

/// The host's HTTP callback (`passcrow_client_new_with_http()`) as a
/// `Transport`.
pub(super) struct CallbackTransport {
    callback: unsafe extern "C" fn(
        *mut c_void,
        *const c_char,
        *const u8,
        usize,
        *mut passcrow_http_response,
    ) -> c_int,
    userdata: *mut c_void,
}

impl CallbackTransport {
    /// # Safety
    ///
    /// For as long as the transport lives, `callback` must behave as
    /// `passcrow_http_callback` says (read `url` and `body` only during the
    /// call, use `response` only on its thread before returning) and may be
    /// called with `userdata` from any thread, several at once.
    pub(super) unsafe fn new(
        callback: unsafe extern "C" fn(
            *mut c_void,
            *const c_char,
            *const u8,
            usize,
            *mut passcrow_http_response,
        ) -> c_int,
        userdata: *mut c_void,
    ) -> CallbackTransport {
        CallbackTransport { callback, userdata }
    }
}

// SAFETY: only made by `CallbackTransport::new`, whose caller promises that
// the callback and its userdata may be used from any thread.
unsafe impl Send for CallbackTransport {}
// SAFETY: as for `Send`: the callback may run on several threads at once.
unsafe impl Sync for CallbackTransport {}

impl Transport for CallbackTransport {
    fn post(&self, request: &HttpRequest<'_>) -> Result<HttpResponse, TransportError> {
        // The host's callback owns its deadlines (`request.timeout` has no
        // place in the callback's signature, which is stable).
        let (url, body) = (request.url, request.body);
        let curl =
            CString::new(url).map_err(|_| TransportError::Other("URL contains NUL".into()))?;
        let resp = passcrow_http_response {
            status: None,
            body: vec![],
            error: None,
        }
        .into_raw();
        // SAFETY: the callback behaves as `passcrow_http_callback` says and
        // may run on this thread with `userdata` (`new`'s contract); `curl`
        // is a NUL-terminated string and `body` `body.len()` readable bytes,
        // both alive until it returns; `resp` is a live handle, ours until
        // it is taken back below.
        let rc = unsafe {
            (self.callback)(
                self.userdata,
                curl.as_ptr(),
                body.as_ptr(),
                body.len(),
                resp,
            )
        };
        // After this no libpasscrow call can reach `resp` (a late one gets
        // `PASSCROW_INVALID_HANDLE`).
        live().remove(&(resp as usize));
        // SAFETY: `resp` was made by `into_raw` above (a `Box`), is taken
        // back once, and the callback, which returned, no longer uses it.
        let r = unsafe { *Box::from_raw(resp) };
        if rc != 0 {
            return Err(TransportError::Other(
                r.error
                    .unwrap_or_else(|| format!("the HTTP callback failed ({rc})")),
            ));
        }
        match r.status {
            Some(status) => Ok(HttpResponse {
                status,
                body: r.body,
            }),
            None => Err(TransportError::Other(
                "the HTTP callback returned 0 without an answer \
                 (call passcrow_http_response_set)"
                    .into(),
            )),
        }
    }
}
