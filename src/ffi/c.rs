//! The C ABI of libpasscrow (feature `capi`); `include/passcrow.h` is
//! generated from this file by cbindgen (see `build.rs`).
//!
//! Conventions (after rustls-ffi):
//!
//! - Every function returns a `passcrow_result`; `PASSCROW_OK` is 0 and the
//!   numbers never change or get reused. The one exception is
//!   `passcrow_version()`, which cannot fail. On failure,
//!   `passcrow_error_message()` copies the text of the error into a buffer
//!   (per thread, like `errno`).
//! - Results go to out-parameters (`out_*`), written only on success.
//! - Handles are opaque, made by a `passcrow_*_new`-like function and
//!   released by the matching `passcrow_*_free`; `_free(NULL)` is a no-op.
//!   The library remembers which handles are alive, so a handle freed twice,
//!   or passed where another type is expected, returns
//!   `PASSCROW_INVALID_HANDLE` instead of corrupting memory (as long as the
//!   allocator has not reused the address for another handle of that type).
//! - A `const` pointer argument is only read, and only during the call.
//! - Byte buffers come back as a `(uint8_t *, size_t)` pair released by
//!   `passcrow_bytes_free()`, which zeroes them first (they may be secrets).
//! - One macro (`ffi_entry!`) wraps every entry point: a NULL pointer
//!   argument returns `PASSCROW_NULL_ARGUMENT`, a Rust panic returns
//!   `PASSCROW_PANIC`; nothing unwinds into C. Two exceptions:
//!   `passcrow_version()` cannot fail, and `passcrow_error_message()` has
//!   its own `catch_unwind` because it must not replace the message it
//!   reports.
#![allow(non_camel_case_types)]
#![allow(clippy::missing_safety_doc)]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use zeroize::Zeroize;

use crate::client::transport::MAX_RESPONSE_BYTES;
use crate::client::{
    Client, ClientConfig, Ephemeral, HttpResponse, PackInfo, ProtectOptions, Protected, Recovered,
    Transport, Verification,
};
use crate::pack::RecoveryPack;
use crate::policy::RecoveryPolicy;
use crate::Error;

/// What a call did. `PASSCROW_OK` (0) is success; every other value is a
/// failure whose text `passcrow_error_message()` returns. The numbers are
/// fixed: new codes get new numbers, old ones are never reused.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum passcrow_result {
    /// Success.
    PASSCROW_OK = 0,
    /// A pointer argument that must not be NULL was NULL.
    PASSCROW_NULL_ARGUMENT = 1,
    /// A bug in libpasscrow (a Rust panic) was caught at the boundary.
    PASSCROW_PANIC = 2,
    /// A handle or byte buffer is not alive: freed already, never made by
    /// libpasscrow, of another type, or (for bytes) given with another length.
    PASSCROW_INVALID_HANDLE = 3,
    /// The caller's buffer is too small.
    PASSCROW_INSUFFICIENT_SIZE = 4,
    /// A string argument is not UTF-8.
    PASSCROW_INVALID_UTF8 = 5,
    /// An index is past the end.
    PASSCROW_OUT_OF_RANGE = 6,
    /// An enum-like argument has a value that is not one of its constants.
    PASSCROW_INVALID_ENUM = 7,
    /// Unusable input: a bad policy, pack name, code, ratio, ...
    PASSCROW_BAD_INPUT = 100,
    /// A server refused a verification code.
    PASSCROW_WRONG_CODE = 101,
    /// A server is rate limiting us; try again later.
    PASSCROW_RATE_LIMITED = 102,
    /// A pack, escrow or code does not exist (or no longer does).
    PASSCROW_NOT_FOUND = 103,
    /// An escrow or a verification code has expired.
    PASSCROW_EXPIRED = 104,
    /// The network or HTTP failed (including the app's HTTP callback).
    PASSCROW_TRANSPORT = 105,
    /// A server answered with another error.
    PASSCROW_SERVER = 106,
    /// A message or pack file does not follow the protocol (corrupted pack).
    PASSCROW_PROTOCOL = 107,
    /// Decryption failed: wrong key or altered data.
    PASSCROW_DECRYPT = 108,
    /// Too few servers succeeded for the operation to complete.
    PASSCROW_INCOMPLETE = 109,
    /// A local file operation failed.
    PASSCROW_IO = 110,
    /// The operation was cancelled.
    PASSCROW_CANCELLED = 111,
}

use passcrow_result::*;

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

// ---------------------------------------------------------------------------
// The boundary: errors, panics, last error.

/// A failure on its way to C.
struct Fail {
    code: passcrow_result,
    msg: String,
}

impl Fail {
    fn new(code: passcrow_result, msg: impl Into<String>) -> Fail {
        Fail {
            code,
            msg: msg.into(),
        }
    }
}

fn error_code(e: &Error) -> passcrow_result {
    match e {
        Error::BadInput(_) => PASSCROW_BAD_INPUT,
        Error::WrongCode { .. } => PASSCROW_WRONG_CODE,
        Error::RateLimited { .. } => PASSCROW_RATE_LIMITED,
        Error::NotFound(_) => PASSCROW_NOT_FOUND,
        Error::Expired(_) => PASSCROW_EXPIRED,
        Error::Transport(_) => PASSCROW_TRANSPORT,
        Error::Server { .. } => PASSCROW_SERVER,
        Error::Protocol(_) => PASSCROW_PROTOCOL,
        Error::Decrypt(_) => PASSCROW_DECRYPT,
        Error::Incomplete { .. } => PASSCROW_INCOMPLETE,
        Error::Io { .. } => PASSCROW_IO,
        Error::Cancelled => PASSCROW_CANCELLED,
    }
}

impl From<Error> for Fail {
    fn from(e: Error) -> Fail {
        Fail::new(error_code(&e), e.to_string())
    }
}

type FfiResult<T = ()> = Result<T, Fail>;

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

fn set_last_error(code: passcrow_result, msg: String) -> passcrow_result {
    // No NUL inside: the message is handed out as a C string.
    let msg = msg.replace('\0', "\u{FFFD}");
    let _ = LAST_ERROR.try_with(|e| {
        if let Ok(mut e) = e.try_borrow_mut() {
            *e = msg;
        }
    });
    code
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}

/// Run an entry point's body: a panic becomes `PASSCROW_PANIC`, an error
/// its code, and either one the thread's last error message.
fn boundary(name: &str, body: impl FnOnce() -> FfiResult) -> passcrow_result {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => PASSCROW_OK,
        Ok(Err(f)) => set_last_error(f.code, format!("{name}: {}", f.msg)),
        Err(p) => set_last_error(
            PASSCROW_PANIC,
            format!(
                "{name}: internal error (a bug in libpasscrow): {}",
                panic_text(&*p)
            ),
        ),
    }
}

/// Wraps every entry point: `ffi_entry!("name", [ptr args that must not be
/// NULL], { body returning FfiResult })`.
macro_rules! ffi_entry {
    ($name:literal, [$($arg:ident),* $(,)?], $body:block) => {{
        $(
            if $arg.is_null() {
                return set_last_error(
                    PASSCROW_NULL_ARGUMENT,
                    concat!($name, ": argument `", stringify!($arg), "` is NULL").to_string(),
                );
            }
        )*
        boundary($name, move || -> FfiResult { $body })
    }};
}

// ---------------------------------------------------------------------------
// Live handles.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Client,
    Policy,
    Pack,
    Verification,
    Protected,
    PackList,
    HttpResponse,
    Bytes(usize),
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Client => "passcrow_client",
            Kind::Policy => "passcrow_policy",
            Kind::Pack => "passcrow_pack",
            Kind::Verification => "passcrow_verification",
            Kind::Protected => "passcrow_protected",
            Kind::PackList => "passcrow_pack_list",
            Kind::HttpResponse => "passcrow_http_response",
            Kind::Bytes(_) => "byte buffer",
        }
    }
}

/// The handles alive now, by address. (A B-tree rather than a hash map:
/// its nodes are referenced by their start, so leak checkers see a
/// reachable block, not a "possibly lost" one, at exit.)
fn live() -> MutexGuard<'static, BTreeMap<usize, Kind>> {
    static LIVE: OnceLock<Mutex<BTreeMap<usize, Kind>>> = OnceLock::new();
    LIVE.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

fn not_alive(kind: Kind, what: &str, found: Option<Kind>) -> Fail {
    let why = match found {
        None => "freed already, or not made by libpasscrow".to_string(),
        Some(Kind::Bytes(n)) if matches!(kind, Kind::Bytes(_)) => {
            format!("its length is {n}, not the length given")
        }
        Some(k) => format!("it is a {}", k.name()),
    };
    Fail::new(
        PASSCROW_INVALID_HANDLE,
        format!("`{what}` is not a live {} ({why})", kind.name()),
    )
}

/// An opaque type handed to C by pointer.
trait Handle: Sized {
    const KIND: Kind;

    fn into_raw(self) -> *mut Self {
        let p = Box::into_raw(Box::new(self));
        live().insert(p as usize, Self::KIND);
        p
    }
}

fn check_live(addr: usize, kind: Kind, what: &str) -> FfiResult {
    match live().get(&addr) {
        Some(k) if *k == kind => Ok(()),
        other => Err(not_alive(kind, what, other.copied())),
    }
}

/// Borrow a live handle.
unsafe fn borrow<'a, T: Handle>(p: *const T, what: &str) -> FfiResult<&'a T> {
    if p.is_null() {
        return Err(Fail::new(
            PASSCROW_NULL_ARGUMENT,
            format!("argument `{what}` is NULL"),
        ));
    }
    check_live(p as usize, T::KIND, what)?;
    Ok(&*p)
}

/// Borrow a live handle mutably.
unsafe fn borrow_mut<'a, T: Handle>(p: *mut T, what: &str) -> FfiResult<&'a mut T> {
    borrow(p as *const T, what)?;
    Ok(&mut *p)
}

/// Free a handle; NULL is a no-op.
unsafe fn free_handle<T: Handle>(p: *mut T, what: &str) -> FfiResult {
    if p.is_null() {
        return Ok(());
    }
    {
        let mut l = live();
        match l.get(&(p as usize)) {
            Some(k) if *k == T::KIND => {
                l.remove(&(p as usize));
            }
            other => return Err(not_alive(T::KIND, what, other.copied())),
        }
    }
    drop(Box::from_raw(p));
    Ok(())
}

/// Write an out-parameter (without dropping what was there).
unsafe fn put<T>(out: *mut T, v: T) {
    out.write(v);
}

/// Give bytes to C as a `(pointer, length)` pair; empty is `(NULL, 0)`.
fn bytes_to_c(b: &[u8]) -> (*mut u8, usize) {
    if b.is_empty() {
        return (std::ptr::null_mut(), 0);
    }
    let boxed: Box<[u8]> = b.into();
    let len = boxed.len();
    let p = Box::into_raw(boxed) as *mut u8;
    live().insert(p as usize, Kind::Bytes(len));
    (p, len)
}

// ---------------------------------------------------------------------------
// Arguments.

unsafe fn str_arg<'a>(p: *const c_char, what: &str) -> FfiResult<&'a str> {
    if p.is_null() {
        return Err(Fail::new(
            PASSCROW_NULL_ARGUMENT,
            format!("argument `{what}` is NULL"),
        ));
    }
    CStr::from_ptr(p)
        .to_str()
        .map_err(|_| Fail::new(PASSCROW_INVALID_UTF8, format!("`{what}` is not UTF-8")))
}

unsafe fn opt_str_arg<'a>(p: *const c_char, what: &str) -> FfiResult<Option<&'a str>> {
    if p.is_null() {
        Ok(None)
    } else {
        str_arg(p, what).map(Some)
    }
}

/// `(pointer, length)` bytes; `(NULL, 0)` is empty.
unsafe fn bytes_arg<'a>(p: *const u8, len: usize, what: &str) -> FfiResult<&'a [u8]> {
    if p.is_null() {
        if len == 0 {
            return Ok(&[]);
        }
        return Err(Fail::new(
            PASSCROW_NULL_ARGUMENT,
            format!("argument `{what}` is NULL but its length is {len}"),
        ));
    }
    if len > isize::MAX as usize {
        return Err(Fail::new(
            PASSCROW_BAD_INPUT,
            format!("argument `{what}`: length {len} is impossible"),
        ));
    }
    Ok(std::slice::from_raw_parts(p, len))
}

/// An array of `n` strings; `(NULL, 0)` is empty.
unsafe fn str_array_arg<'a>(
    p: *const *const c_char,
    n: usize,
    what: &str,
) -> FfiResult<Vec<&'a str>> {
    if p.is_null() {
        if n == 0 {
            return Ok(vec![]);
        }
        return Err(Fail::new(
            PASSCROW_NULL_ARGUMENT,
            format!("argument `{what}` is NULL but its length is {n}"),
        ));
    }
    if n > isize::MAX as usize / std::mem::size_of::<*const c_char>() || !p.is_aligned() {
        return Err(Fail::new(
            PASSCROW_BAD_INPUT,
            format!("argument `{what}`: {n} strings at a misaligned or impossible address"),
        ));
    }
    std::slice::from_raw_parts(p, n)
        .iter()
        .enumerate()
        .map(|(i, s)| str_arg(*s, &format!("{what}[{i}]")))
        .collect()
}

/// A C string for a handle's borrowed fields (NUL bytes replaced).
fn cstring(s: &str) -> CString {
    CString::new(s.replace('\0', "\u{FFFD}")).unwrap_or_default()
}

// ---------------------------------------------------------------------------
// Version and errors.

/// The library's version, `"MAJOR.MINOR.PATCH"` (compare with the header's
/// `PASSCROW_VERSION`). A static string: never free it. Cannot fail, so it
/// returns the string rather than a `passcrow_result`.
#[no_mangle]
pub extern "C" fn passcrow_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr() as *const c_char
}

/// Copy the message of the last failed call on this thread into `buf`
/// (`buf_len` bytes, NUL-terminated) and its length without the NUL into
/// `*out_len`. With no failure yet on this thread, the message is empty.
/// A successful call does not clear the message.
///
/// If `buf_len` is too small, returns `PASSCROW_INSUFFICIENT_SIZE`, writes
/// nothing into `buf`, sets `*out_len` to the size needed (message plus
/// NUL) and keeps the message: `(NULL, 0)` asks for the size. A NULL
/// `out_len` (or NULL `buf` with a non-zero `buf_len`) returns
/// `PASSCROW_NULL_ARGUMENT` and also keeps the message. Ownership: `buf` and `out_len` stay the
/// caller's. Thread-safe (each thread has its own message).
#[no_mangle]
pub unsafe extern "C" fn passcrow_error_message(
    buf: *mut c_char,
    buf_len: usize,
    out_len: *mut usize,
) -> passcrow_result {
    if out_len.is_null() || (buf.is_null() && buf_len > 0) {
        // Not through the macro: reporting must not replace the message.
        return PASSCROW_NULL_ARGUMENT;
    }
    let r = catch_unwind(AssertUnwindSafe(|| {
        LAST_ERROR.with(|e| {
            let e = e.borrow();
            let msg = e.as_bytes();
            if msg.len() + 1 > buf_len {
                put(out_len, msg.len() + 1);
                return PASSCROW_INSUFFICIENT_SIZE;
            }
            std::ptr::copy_nonoverlapping(msg.as_ptr(), buf as *mut u8, msg.len());
            *buf.add(msg.len()) = 0;
            put(out_len, msg.len());
            PASSCROW_OK
        })
    }));
    r.unwrap_or(PASSCROW_PANIC)
}

// ---------------------------------------------------------------------------
// HTTP supplied by the host.

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

struct CallbackTransport {
    callback: unsafe extern "C" fn(
        *mut c_void,
        *const c_char,
        *const u8,
        usize,
        *mut passcrow_http_response,
    ) -> c_int,
    userdata: *mut c_void,
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

// ---------------------------------------------------------------------------
// Client.

/// A client over one pack directory. Make it with `passcrow_client_new()`
/// or `passcrow_client_new_with_http()`, release it with
/// `passcrow_client_free()`.
///
/// Thread-safety: a client may be used from several threads at once (every
/// function takes it `const`); it must not be freed while a call is using it.
pub struct passcrow_client {
    inner: Client,
}

impl Handle for passcrow_client {
    const KIND: Kind = Kind::Client;
}

unsafe fn new_client(
    config_dir: *const c_char,
    data_dir: *const c_char,
    transport: Option<Arc<dyn Transport>>,
    out: *mut *mut passcrow_client,
) -> FfiResult {
    let cfg = ClientConfig::new(
        str_arg(config_dir, "config_dir")?,
        str_arg(data_dir, "data_dir")?,
    );
    let inner = match transport {
        Some(t) => Client::with_transport(cfg, t)?,
        None => Client::new(cfg)?,
    };
    put(out, passcrow_client { inner }.into_raw());
    Ok(())
}

/// Open the pack directory `data_dir` (packs are `NAME.passcrow` files) with
/// defaults from `config_dir/policy.rc` (absent is fine); both directories
/// must exist. Uses the built-in HTTPS transport. On success `*out` is a new
/// client the caller owns and frees with `passcrow_client_free()`.
/// `config_dir` and `data_dir` are borrowed for the call.
#[no_mangle]
pub unsafe extern "C" fn passcrow_client_new(
    config_dir: *const c_char,
    data_dir: *const c_char,
    out: *mut *mut passcrow_client,
) -> passcrow_result {
    ffi_entry!("passcrow_client_new", [config_dir, data_dir, out], {
        new_client(config_dir, data_dir, None, out)
    })
}

/// Like `passcrow_client_new()`, with HTTP done by the host: every request
/// goes to `callback(userdata, ...)` (see `passcrow_http_callback`).
/// `userdata` is borrowed for the client's whole life and may be NULL;
/// the library never frees it. The callback may be called from several
/// threads at once.
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
            let t: Arc<dyn Transport> = Arc::new(CallbackTransport { callback, userdata });
            new_client(config_dir, data_dir, Some(t), out)
        }
    )
}

/// Free a client. NULL is a no-op; a client freed already returns
/// `PASSCROW_INVALID_HANDLE`. Handles made with the client (policies, packs,
/// ...) stay valid and are freed separately.
#[no_mangle]
pub unsafe extern "C" fn passcrow_client_free(client: *mut passcrow_client) -> passcrow_result {
    ffi_entry!("passcrow_client_free", [], {
        free_handle(client, "client")
    })
}

// ---------------------------------------------------------------------------
// Policies.

/// A recovery policy: identities, n-of-m, lifetimes. Immutable once made
/// except by `passcrow_policy_set_lifetimes()`.
///
/// Thread-safety: may be read from several threads at once; not while
/// `passcrow_policy_set_lifetimes()` runs on it.
pub struct passcrow_policy {
    inner: RecoveryPolicy,
}

impl Handle for passcrow_policy {
    const KIND: Kind = Kind::Policy;
}

/// Parse a ratio `"N/M"` (or `"N"`, then M is `count`, or N when `count` is
/// 0) into `*out_n` and `*out_m`. `text` is borrowed for the call.
#[no_mangle]
pub unsafe extern "C" fn passcrow_parse_ratio(
    text: *const c_char,
    count: u32,
    out_n: *mut u32,
    out_m: *mut u32,
) -> passcrow_result {
    ffi_entry!("passcrow_parse_ratio", [text, out_n, out_m], {
        let t = str_arg(text, "text")?;
        let (n, m) = crate::policy::parse_ratio(t, if count == 0 { None } else { Some(count) })?;
        put(out_n, n);
        put(out_m, m);
        Ok(())
    })
}

/// Make a policy from `n_identities` identity texts (`"user@example.org"`,
/// `"+3545885522 via sms.example.org"`, `"a@b.org, notify=c@d.org via
/// SERVER"`, ...), asking that `n` of `m` verify. Servers, and identities
/// when `n_identities` is 0, come from the client's `policy.rc`; `n` = `m` =
/// 0 takes its ratio too. On success `*out` is a new policy the caller frees
/// with `passcrow_policy_free()`. Every argument is borrowed for the call.
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
        let c = borrow(client, "client")?;
        let ids = str_array_arg(identities, n_identities, "identities")?;
        let ratio = match (n, m) {
            (0, 0) => None,
            (n, m) if n == 0 || m == 0 || n > m => {
                return Err(Fail::new(
                    PASSCROW_BAD_INPUT,
                    format!("ratio {n}/{m}: need 1 <= n <= m (or 0/0 for the default)"),
                ))
            }
            r => Some(r),
        };
        let p = c.inner.make_policy(&ids, ratio)?;
        put(out, passcrow_policy { inner: p }.into_raw());
        Ok(())
    })
}

/// Set how long servers keep the shares (`expiration_days`; free escrows
/// last about a day, longer ones cost proof of work) and how long a code
/// lives (`timeout_minutes`). 0 keeps the current value.
#[no_mangle]
pub unsafe extern "C" fn passcrow_policy_set_lifetimes(
    policy: *mut passcrow_policy,
    expiration_days: u32,
    timeout_minutes: u32,
) -> passcrow_result {
    ffi_entry!("passcrow_policy_set_lifetimes", [policy], {
        let p = borrow_mut(policy, "policy")?;
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
#[no_mangle]
pub unsafe extern "C" fn passcrow_policy_ratio(
    policy: *const passcrow_policy,
    out_n: *mut u32,
    out_m: *mut u32,
    out_ids: *mut usize,
) -> passcrow_result {
    ffi_entry!("passcrow_policy_ratio", [policy, out_n, out_m, out_ids], {
        let p = borrow(policy, "policy")?;
        let (n, m) = p.inner.absolute_ratio(0)?;
        put(out_n, n);
        put(out_m, m);
        put(out_ids, p.inner.ids.len());
        Ok(())
    })
}

/// Free a policy. NULL is a no-op; freed twice returns
/// `PASSCROW_INVALID_HANDLE`.
#[no_mangle]
pub unsafe extern "C" fn passcrow_policy_free(policy: *mut passcrow_policy) -> passcrow_result {
    ffi_entry!("passcrow_policy_free", [], {
        free_handle(policy, "policy")
    })
}

// ---------------------------------------------------------------------------
// Protect and renew.

/// What `passcrow_protect()` or `passcrow_renew()` did.
/// Thread-safety: immutable; may be read from several threads at once.
pub struct passcrow_protected {
    inner: Protected,
}

impl Handle for passcrow_protected {
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
        let c = borrow(client, "client")?;
        let name = str_arg(name, "name")?;
        let secret = bytes_arg(secret, secret_len, "secret")?;
        let p = borrow(policy, "policy")?;
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
        if let Some(d) = opt_str_arg(description, "description")? {
            opts.pack_description = d.to_string();
        }
        let done = c.inner.protect(name, secret, &p.inner, &opts)?;
        if !out.is_null() {
            put(out, passcrow_protected { inner: done }.into_raw());
        }
        Ok(())
    })
}

/// Renew the pack `name`: escrow `secret` afresh under `policy` (NULL: the
/// defaults of `policy.rc`), write the new pack over the old one, then
/// delete the old escrows. A pack with an ephemeral copy gets a new one
/// (and a new user key: read it with `passcrow_protected_ephemeral_id()`).
/// `out` may be NULL; ownership as for `passcrow_protect()`.
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
        let c = borrow(client, "client")?;
        let name = str_arg(name, "name")?;
        let secret = bytes_arg(secret, secret_len, "secret")?;
        let p = if policy.is_null() {
            None
        } else {
            Some(&borrow(policy, "policy")?.inner)
        };
        let done = c.inner.renew(name, secret, p)?;
        if !out.is_null() {
            put(out, passcrow_protected { inner: done }.into_raw());
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
            let p = borrow(protection, "protection")?;
            let Some(e) = &p.inner.ephemeral else {
                return Err(Fail::new(
                    PASSCROW_NOT_FOUND,
                    "this protection has no ephemeral copy",
                ));
            };
            let id = e.recovery_id();
            let (ptr, len) = bytes_to_c(id.expose_secret().as_bytes());
            put(out_id, ptr);
            put(out_id_len, len);
            put(out_expiration, e.expiration);
            Ok(())
        }
    )
}

/// How many old escrows could not be deleted after a replace or renew (the
/// servers forget them when they expire).
#[no_mangle]
pub unsafe extern "C" fn passcrow_protected_cleanup_failures(
    protection: *const passcrow_protected,
    out: *mut usize,
) -> passcrow_result {
    ffi_entry!("passcrow_protected_cleanup_failures", [protection, out], {
        let p = borrow(protection, "protection")?;
        put(out, p.inner.cleanup_failures.len());
        Ok(())
    })
}

/// Free a `passcrow_protected` (its secrets are zeroed). NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn passcrow_protected_free(
    protection: *mut passcrow_protected,
) -> passcrow_result {
    ffi_entry!("passcrow_protected_free", [], {
        free_handle(protection, "protection")
    })
}

// ---------------------------------------------------------------------------
// Packs.

/// A recovery pack loaded from the pack directory (or the stand-in for an
/// ephemeral recovery id). Holds secrets; zeroed when freed.
/// Thread-safety: immutable; may be used from several threads at once.
pub struct passcrow_pack {
    inner: RecoveryPack,
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

// ---------------------------------------------------------------------------
// Verify.

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

impl Handle for passcrow_verification {
    const KIND: Kind = Kind::Verification;
}

/// Ask every escrow of `pack` for a verification code (sent by e-mail, SMS,
/// ...). Succeeds when at least the codes needed are on their way; then
/// `*out` is a new `passcrow_verification` with the hints, freed by the
/// caller with `passcrow_verification_free()`. `PASSCROW_INCOMPLETE` when
/// too few servers answered. Blocks (network).
#[no_mangle]
pub unsafe extern "C" fn passcrow_verify(
    client: *const passcrow_client,
    pack: *const passcrow_pack,
    out: *mut *mut passcrow_verification,
) -> passcrow_result {
    ffi_entry!("passcrow_verify", [client, pack, out], {
        let c = borrow(client, "client")?;
        let p = borrow(pack, "pack")?;
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
        put(out, passcrow_verification { inner: v, strings }.into_raw());
        Ok(())
    })
}

/// The number of hints (`*out_hints`), of codes needed (`*out_min_shares`)
/// and of escrows that could not start verification (`*out_failures`).
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
            let v = borrow(verification, "verification")?;
            put(out_hints, v.inner.hints.len());
            put(out_min_shares, v.inner.min_shares);
            put(out_failures, v.inner.failures.len());
            Ok(())
        }
    )
}

/// Hint number `index` (from 0, in prefix order) into `*out`; its strings
/// are borrowed from `verification`. `PASSCROW_OUT_OF_RANGE` past the end.
#[no_mangle]
pub unsafe extern "C" fn passcrow_verification_hint(
    verification: *const passcrow_verification,
    index: usize,
    out: *mut passcrow_hint,
) -> passcrow_result {
    ffi_entry!("passcrow_verification_hint", [verification, out], {
        let v = borrow(verification, "verification")?;
        let (Some(h), Some(s)) = (v.inner.hints.get(index), v.strings.get(index)) else {
            return Err(Fail::new(
                PASSCROW_OUT_OF_RANGE,
                format!("hint {index} of {}", v.inner.hints.len()),
            ));
        };
        put(
            out,
            passcrow_hint {
                prefix: h.prefix as u32 as u8 as c_char,
                kind: s.kind.as_ptr(),
                hint: s.hint.as_ptr(),
                expiration: h.expiration,
                action_url: s
                    .action_url
                    .as_ref()
                    .map_or(std::ptr::null(), |u| u.as_ptr()),
                server: s.server.as_ptr(),
            },
        );
        Ok(())
    })
}

/// Free a verification. NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn passcrow_verification_free(
    verification: *mut passcrow_verification,
) -> passcrow_result {
    ffi_entry!("passcrow_verification_free", [], {
        free_handle(verification, "verification")
    })
}

// ---------------------------------------------------------------------------
// Recover.

/// Recover the secret of `pack` with `n_codes` verification codes the user
/// received (typed any way: blanks, dashes and case are forgiven). On
/// success `*out_secret`/`*out_secret_len` is the secret (`(NULL, 0)` when
/// empty), owned by the caller and freed with `passcrow_bytes_free()`,
/// which zeroes it. `PASSCROW_WRONG_CODE` when a server refused a code,
/// `PASSCROW_BAD_INPUT` with too few codes, or for an ephemeral stand-in
/// (use `passcrow_recover_ephemeral()`). Blocks (network).
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
            let c = borrow(client, "client")?;
            let p = borrow(pack, "pack")?;
            let codes = str_array_arg(codes, n_codes, "codes")?;
            if p.inner.is_ephemeral_stub() {
                return Err(Fail::new(
                    PASSCROW_BAD_INPUT,
                    "this is an ephemeral recovery id: use passcrow_recover_ephemeral",
                ));
            }
            match c.inner.recover(&p.inner, &codes)? {
                Recovered::Secret(s) => {
                    let (ptr, len) = bytes_to_c(s.expose_secret());
                    put(out_secret, ptr);
                    put(out_secret_len, len);
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
#[no_mangle]
pub unsafe extern "C" fn passcrow_recover_ephemeral(
    client: *const passcrow_client,
    pack: *const passcrow_pack,
    codes: *const *const c_char,
    n_codes: usize,
    out: *mut *mut passcrow_pack,
) -> passcrow_result {
    ffi_entry!("passcrow_recover_ephemeral", [client, pack, codes, out], {
        let c = borrow(client, "client")?;
        let p = borrow(pack, "pack")?;
        let codes = str_array_arg(codes, n_codes, "codes")?;
        if !p.inner.is_ephemeral_stub() {
            return Err(Fail::new(
                PASSCROW_BAD_INPUT,
                "not an ephemeral recovery id: use passcrow_recover",
            ));
        }
        match c.inner.recover(&p.inner, &codes)? {
            Recovered::Pack { pack, .. } => {
                put(out, passcrow_pack { inner: pack }.into_raw());
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
        let mut b: Box<[u8]> = Box::from_raw(std::ptr::slice_from_raw_parts_mut(data, len));
        b.zeroize();
        drop(b);
        Ok(())
    })
}

// ---------------------------------------------------------------------------
// Forget, list, expiring.

/// Forget the pack `name`: delete its escrows on the servers (unless
/// `local_only`), then the file. When a server cannot be reached the file is
/// kept (`PASSCROW_INCOMPLETE`) so the user can try again. `out_deleted`
/// may be NULL; else it receives how many escrows were deleted.
#[no_mangle]
pub unsafe extern "C" fn passcrow_forget(
    client: *const passcrow_client,
    name: *const c_char,
    local_only: bool,
    out_deleted: *mut usize,
) -> passcrow_result {
    ffi_entry!("passcrow_forget", [client, name], {
        let c = borrow(client, "client")?;
        let f = c.inner.forget(str_arg(name, "name")?, local_only)?;
        if !out_deleted.is_null() {
            put(out_deleted, f.deleted);
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

impl Handle for passcrow_pack_list {
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
#[no_mangle]
pub unsafe extern "C" fn passcrow_list(
    client: *const passcrow_client,
    out: *mut *mut passcrow_pack_list,
) -> passcrow_result {
    ffi_entry!("passcrow_list", [client, out], {
        let c = borrow(client, "client")?;
        put(out, pack_list(c.inner.list()?));
        Ok(())
    })
}

/// The packs whose first escrow expires within `within_seconds` from now
/// (renew them with `passcrow_renew()`), and unreadable packs. Ownership as
/// for `passcrow_list()`.
#[no_mangle]
pub unsafe extern "C" fn passcrow_expiring(
    client: *const passcrow_client,
    within_seconds: u64,
    out: *mut *mut passcrow_pack_list,
) -> passcrow_result {
    ffi_entry!("passcrow_expiring", [client, out], {
        let c = borrow(client, "client")?;
        put(
            out,
            pack_list(c.inner.expiring(Duration::from_secs(within_seconds))?),
        );
        Ok(())
    })
}

/// The number of packs in a listing.
#[no_mangle]
pub unsafe extern "C" fn passcrow_pack_list_len(
    list: *const passcrow_pack_list,
    out_len: *mut usize,
) -> passcrow_result {
    ffi_entry!("passcrow_pack_list_len", [list, out_len], {
        put(out_len, borrow(list, "list")?.infos.len());
        Ok(())
    })
}

/// Pack number `index` (from 0) into `*out`; its strings are borrowed from
/// `list`. `PASSCROW_OUT_OF_RANGE` past the end.
#[no_mangle]
pub unsafe extern "C" fn passcrow_pack_list_get(
    list: *const passcrow_pack_list,
    index: usize,
    out: *mut passcrow_pack_info,
) -> passcrow_result {
    ffi_entry!("passcrow_pack_list_get", [list, out], {
        let l = borrow(list, "list")?;
        let (Some(i), Some(s)) = (l.infos.get(index), l.strings.get(index)) else {
            return Err(Fail::new(
                PASSCROW_OUT_OF_RANGE,
                format!("pack {index} of {}", l.infos.len()),
            ));
        };
        put(
            out,
            passcrow_pack_info {
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
            },
        );
        Ok(())
    })
}

/// Free a listing. NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn passcrow_pack_list_free(list: *mut passcrow_pack_list) -> passcrow_result {
    ffi_entry!("passcrow_pack_list_free", [], { free_handle(list, "list") })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last_error() -> String {
        let mut buf = vec![0 as c_char; 512];
        let mut n = 0usize;
        let r = unsafe { passcrow_error_message(buf.as_mut_ptr(), buf.len(), &mut n) };
        assert_eq!(r, PASSCROW_OK);
        let b: Vec<u8> = buf[..n].iter().map(|c| *c as u8).collect();
        String::from_utf8(b).unwrap()
    }

    #[test]
    fn panics_become_a_code() {
        let r = boundary("test_fn", || panic!("boom"));
        assert_eq!(r, PASSCROW_PANIC);
        let m = last_error();
        assert!(m.contains("test_fn") && m.contains("boom"), "{m}");
    }

    #[test]
    fn null_and_double_free() {
        let dir = tempfile::tempdir().unwrap();
        let d = CString::new(dir.path().to_str().unwrap()).unwrap();
        let mut c: *mut passcrow_client = std::ptr::null_mut();
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

    #[test]
    fn bytes_round_trip() {
        let (p, n) = bytes_to_c(b"secret");
        unsafe {
            assert_eq!(passcrow_bytes_free(p, n + 1), PASSCROW_INVALID_HANDLE);
            assert_eq!(passcrow_bytes_free(p, n), PASSCROW_OK);
            assert_eq!(passcrow_bytes_free(p, n), PASSCROW_INVALID_HANDLE);
            assert_eq!(passcrow_bytes_free(std::ptr::null_mut(), 3), PASSCROW_OK);
        }
        assert_eq!(bytes_to_c(b""), (std::ptr::null_mut(), 0));
    }

    #[test]
    fn small_error_buffer_keeps_the_message() {
        set_last_error(PASSCROW_BAD_INPUT, "twelve chars".into());
        let mut buf = [0 as c_char; 4];
        let mut n = 0usize;
        let r = unsafe { passcrow_error_message(buf.as_mut_ptr(), buf.len(), &mut n) };
        assert_eq!(r, PASSCROW_INSUFFICIENT_SIZE);
        assert_eq!(n, 13);
        assert_eq!(last_error(), "twelve chars");
    }

    #[test]
    fn every_error_kind_has_a_code() {
        assert_eq!(
            error_code(&Error::WrongCode {
                prefix: None,
                attempts_left: None
            }),
            PASSCROW_WRONG_CODE
        );
        assert_eq!(error_code(&Error::Cancelled), PASSCROW_CANCELLED);
        assert_eq!(PASSCROW_INCOMPLETE as u32, 109);
    }
}
