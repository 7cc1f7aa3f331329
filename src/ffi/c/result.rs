//! What a call did: `passcrow_result`, the errors on their way to C, the
//! per-thread last error message, `passcrow_version()` and
//! `passcrow_error_message()`.

use std::cell::RefCell;
use std::ffi::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::args::put;
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
    /// Not enough memory for the operation (the ephemeral key derivation
    /// needs 1 GiB); nothing was changed.
    PASSCROW_OUT_OF_MEMORY = 112,
    /// Not a failure: the codes were right, but the escrows asked for a
    /// release delay, and the recovery completes at a time
    /// `passcrow_pending_release_at()` returns unless the owner stops it
    /// (every identity was told). Recover again then, with the same codes.
    PASSCROW_PENDING = 113,
    /// Too many wrong codes over an escrow's life: its server froze it for
    /// good. Protect the secret again (`passcrow_renew()`) while it can be
    /// had.
    PASSCROW_FROZEN = 114,
    /// The owner stopped this delayed recovery from its notice: the share
    /// is never released for it.
    PASSCROW_STOPPED = 115,
}

use passcrow_result::*;

/// A failure on its way to C.
pub(super) struct Fail {
    pub(super) code: passcrow_result,
    pub(super) msg: String,
    /// For `PASSCROW_PENDING`: when the release is due (unix time).
    pub(super) release_at: Option<i64>,
}

impl Fail {
    pub(super) fn new(code: passcrow_result, msg: impl Into<String>) -> Fail {
        Fail {
            code,
            msg: msg.into(),
            release_at: None,
        }
    }
}

pub(super) fn error_code(e: &Error) -> passcrow_result {
    match e {
        Error::BadInput(_) => PASSCROW_BAD_INPUT,
        Error::WrongCode { .. } => PASSCROW_WRONG_CODE,
        Error::RateLimited { .. } => PASSCROW_RATE_LIMITED,
        Error::NotFound(_) => PASSCROW_NOT_FOUND,
        Error::Expired(_) => PASSCROW_EXPIRED,
        Error::Transport(_) => PASSCROW_TRANSPORT,
        Error::Server { .. } => PASSCROW_SERVER,
        Error::Pending { .. } => PASSCROW_PENDING,
        Error::Frozen { .. } => PASSCROW_FROZEN,
        Error::Stopped { .. } => PASSCROW_STOPPED,
        Error::Protocol(_) => PASSCROW_PROTOCOL,
        Error::Decrypt(_) => PASSCROW_DECRYPT,
        Error::Incomplete { .. } => PASSCROW_INCOMPLETE,
        Error::Io { .. } => PASSCROW_IO,
        Error::Cancelled => PASSCROW_CANCELLED,
        Error::OutOfMemory(_) => PASSCROW_OUT_OF_MEMORY,
    }
}

impl From<Error> for Fail {
    fn from(e: Error) -> Fail {
        let mut f = Fail::new(error_code(&e), e.to_string());
        if let Error::Pending { release_at, .. } = e {
            f.release_at = Some(release_at);
        }
        f
    }
}

pub(super) type FfiResult<T = ()> = Result<T, Fail>;

/// The last failure of a call on one thread.
struct LastError {
    message: String,
    /// When it was `PASSCROW_PENDING`: the release time.
    release_at: Option<i64>,
}

thread_local! {
    static LAST_ERROR: RefCell<LastError> = const {
        RefCell::new(LastError { message: String::new(), release_at: None })
    };
}

pub(super) fn set_last_error(code: passcrow_result, msg: String) -> passcrow_result {
    set_last_failure(code, msg, None)
}

pub(super) fn set_last_failure(
    code: passcrow_result,
    msg: String,
    release_at: Option<i64>,
) -> passcrow_result {
    // No NUL inside: the message is handed out as a C string.
    let message = msg.replace('\0', "\u{FFFD}");
    let _ = LAST_ERROR.try_with(|e| {
        if let Ok(mut e) = e.try_borrow_mut() {
            *e = LastError {
                message,
                release_at,
            };
        }
    });
    code
}

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
///
/// # Safety
///
/// `buf` must be NULL or writable for `buf_len` bytes, and `out_len` NULL
/// or writable for one `size_t`.
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
            let msg = e.message.as_bytes();
            if msg.len() + 1 > buf_len {
                // SAFETY: `out_len` is not NULL (checked above), so it is
                // writable for one `size_t` (the caller's contract).
                unsafe { put(out_len, msg.len() + 1) };
                return PASSCROW_INSUFFICIENT_SIZE;
            }
            // SAFETY: `buf_len` >= 1, so `buf` is not NULL (checked above)
            // and is writable for `buf_len` >= `msg.len() + 1` bytes (the
            // caller's contract); `msg` is our own string, not C's buffer.
            unsafe {
                std::ptr::copy_nonoverlapping(msg.as_ptr(), buf as *mut u8, msg.len());
                *buf.add(msg.len()) = 0;
            }
            // SAFETY: as above, `out_len` is writable.
            unsafe { put(out_len, msg.len()) };
            PASSCROW_OK
        })
    }));
    r.unwrap_or(PASSCROW_PANIC)
}

/// When the recovery that the last failed call on this thread answered
/// with `PASSCROW_PENDING` completes: `*out_release_at` is that unix time.
/// `PASSCROW_NOT_FOUND` (and `*out_release_at` untouched) when the last
/// failed call on this thread was not `PASSCROW_PENDING`. Like
/// `passcrow_error_message()`, it does not replace the last error.
///
/// # Safety
///
/// `out_release_at` must be NULL or writable for one `int64_t`.
#[no_mangle]
pub unsafe extern "C" fn passcrow_pending_release_at(out_release_at: *mut i64) -> passcrow_result {
    if out_release_at.is_null() {
        return PASSCROW_NULL_ARGUMENT;
    }
    let r = catch_unwind(AssertUnwindSafe(|| {
        LAST_ERROR.with(|e| match e.borrow().release_at {
            Some(t) => {
                // SAFETY: not NULL (checked above), so writable (the
                // caller's contract).
                unsafe { put(out_release_at, t) };
                PASSCROW_OK
            }
            None => PASSCROW_NOT_FOUND,
        })
    }));
    r.unwrap_or(PASSCROW_PANIC)
}

/// The thread's last error message, for the tests of every file.
#[cfg(test)]
pub(super) fn last_error() -> String {
    let mut buf = vec![0 as c_char; 512];
    let mut n = 0usize;
    // SAFETY: `buf` is writable for `buf.len()` bytes, `n` for one usize.
    let r = unsafe { passcrow_error_message(buf.as_mut_ptr(), buf.len(), &mut n) };
    assert_eq!(r, PASSCROW_OK);
    let b: Vec<u8> = buf[..n].iter().map(|c| *c as u8).collect();
    String::from_utf8(b).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_error_buffer_keeps_the_message() {
        set_last_error(PASSCROW_BAD_INPUT, "twelve chars".into());
        let mut buf = [0 as c_char; 4];
        let mut n = 0usize;
        // SAFETY: `buf` is writable for `buf.len()` bytes, `n` for one usize.
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
        assert_eq!(PASSCROW_PENDING as u32, 113);
        assert_eq!(
            error_code(&Error::Frozen { server: "s".into() }),
            PASSCROW_FROZEN
        );
        assert_eq!(
            error_code(&Error::Stopped { server: "s".into() }),
            PASSCROW_STOPPED
        );
    }

    #[test]
    fn a_pending_recovery_leaves_its_release_time() {
        let pending = Error::Pending {
            server: "s".into(),
            release_at: 1_900_000_000,
        };
        let code = super::super::boundary::boundary("recover", || Err(pending.into()));
        assert_eq!(code, PASSCROW_PENDING);
        let mut t = 0i64;
        // SAFETY: `t` is writable.
        assert_eq!(unsafe { passcrow_pending_release_at(&mut t) }, PASSCROW_OK);
        assert_eq!(t, 1_900_000_000);
        assert!(last_error().contains("pending"), "{}", last_error());
        // Any other failure clears it.
        set_last_error(PASSCROW_BAD_INPUT, "x".into());
        let mut t = 7i64;
        assert_eq!(
            // SAFETY: `t` is writable.
            unsafe { passcrow_pending_release_at(&mut t) },
            PASSCROW_NOT_FOUND
        );
        assert_eq!(t, 7);
        assert_eq!(
            // SAFETY: NULL is refused before any write.
            unsafe { passcrow_pending_release_at(std::ptr::null_mut()) },
            PASSCROW_NULL_ARGUMENT
        );
    }
}
