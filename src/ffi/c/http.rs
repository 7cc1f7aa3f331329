//! HTTP done by the host: `passcrow_http_callback`, the
//! `passcrow_http_response` it fills in, and the transport that calls it.

use std::ffi::{c_char, c_int, c_void, CStr, CString};

use super::args::bytes_arg;
use super::boundary::ffi_entry;
use super::handle::{borrow_mut, live, Handle, Kind};
use super::result::passcrow_result::{self, *};
use super::result::Fail;
use crate::client::transport::MAX_RESPONSE_BYTES;
use crate::client::{HttpResponse, Transport};

/// The answer an HTTP callback fills in with `passcrow_http_response_set()`.
/// Owned by libpasscrow, valid only during the callback, on its thread.
pub struct passcrow_http_response {
    status: Option<u16>,
    body: Vec<u8>,
    error: Option<String>,
}

impl Handle for passcrow_http_response {
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
#[no_mangle]
pub unsafe extern "C" fn passcrow_http_response_set(
    response: *mut passcrow_http_response,
    status: u16,
    body: *const u8,
    body_len: usize,
) -> passcrow_result {
    ffi_entry!("passcrow_http_response_set", [response], {
        let r = borrow_mut(response, "response")?;
        let b = bytes_arg(body, body_len, "body")?;
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
#[no_mangle]
pub unsafe extern "C" fn passcrow_http_response_set_error(
    response: *mut passcrow_http_response,
    message: *const c_char,
) -> passcrow_result {
    ffi_entry!("passcrow_http_response_set_error", [response, message], {
        let r = borrow_mut(response, "response")?;
        let m = CStr::from_ptr(message).to_string_lossy().into_owned();
        r.error = Some(m);
        Ok(())
    })
}

pub(super) struct CallbackTransport {
    pub(super) callback: unsafe extern "C" fn(
        *mut c_void,
        *const c_char,
        *const u8,
        usize,
        *mut passcrow_http_response,
    ) -> c_int,
    pub(super) userdata: *mut c_void,
}

// SAFETY: the caller promises (in passcrow_client_new_with_http's contract)
// that the callback and its userdata may be used from any thread at once.
unsafe impl Send for CallbackTransport {}
unsafe impl Sync for CallbackTransport {}

impl Transport for CallbackTransport {
    fn post(&self, url: &str, body: &[u8]) -> Result<HttpResponse, String> {
        let curl = CString::new(url).map_err(|_| "URL contains NUL".to_string())?;
        let resp = passcrow_http_response {
            status: None,
            body: vec![],
            error: None,
        }
        .into_raw();
        // SAFETY: the callback gets pointers valid for the call; `resp` is
        // ours and stays alive until free_handle below.
        let rc = unsafe {
            (self.callback)(
                self.userdata,
                curl.as_ptr(),
                body.as_ptr(),
                body.len(),
                resp,
            )
        };
        live().remove(&(resp as usize));
        // SAFETY: `resp` was made by into_raw above and is taken back once.
        let r = unsafe { *Box::from_raw(resp) };
        if rc != 0 {
            return Err(r
                .error
                .unwrap_or_else(|| format!("the HTTP callback failed ({rc})")));
        }
        match r.status {
            Some(status) => Ok(HttpResponse {
                status,
                body: r.body,
            }),
            None => Err("the HTTP callback returned 0 without an answer \
                         (call passcrow_http_response_set)"
                .into()),
        }
    }
}
