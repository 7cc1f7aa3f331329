//! Reading C arguments (strings, string arrays, byte buffers) and writing
//! out-parameters.

use std::ffi::{c_char, CStr, CString};

use super::result::passcrow_result::*;
use super::result::{Fail, FfiResult};

/// Write an out-parameter (without dropping what was there).
///
/// # Safety
///
/// `out` must be non-NULL, aligned for `T` and valid for writing one `T`
/// (what it holds is overwritten, not dropped: out-parameters hold nothing
/// to drop). `ffi_entry!` has checked it is not NULL; the rest is the C
/// caller's promise.
pub(super) unsafe fn put<T>(out: *mut T, v: T) {
    // SAFETY: `out` is valid for an aligned write of one `T` (the caller's
    // contract).
    unsafe { out.write(v) };
}

/// A string argument: `PASSCROW_NULL_ARGUMENT` when `p` is NULL,
/// `PASSCROW_INVALID_UTF8` when it is not UTF-8.
///
/// # Safety
///
/// `p` must be NULL or point to a NUL-terminated string, readable up to
/// and including its NUL and not changed while the result is in use (`'a`,
/// at most the entry point's call).
pub(super) unsafe fn str_arg<'a>(p: *const c_char, what: &str) -> FfiResult<&'a str> {
    if p.is_null() {
        return Err(Fail::new(
            PASSCROW_NULL_ARGUMENT,
            format!("argument `{what}` is NULL"),
        ));
    }
    // SAFETY: `p` is not NULL, so it is a readable NUL-terminated string
    // that stays unchanged for `'a` (the caller's contract).
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| Fail::new(PASSCROW_INVALID_UTF8, format!("`{what}` is not UTF-8")))
}

/// A string argument that may be NULL (`None`).
///
/// # Safety
///
/// As for [`str_arg`].
pub(super) unsafe fn opt_str_arg<'a>(p: *const c_char, what: &str) -> FfiResult<Option<&'a str>> {
    if p.is_null() {
        Ok(None)
    } else {
        // SAFETY: the caller's contract is `str_arg`'s.
        unsafe { str_arg(p, what) }.map(Some)
    }
}

/// `(pointer, length)` bytes; `(NULL, 0)` is empty.
///
/// # Safety
///
/// `p` must be NULL or point to `len` bytes readable and not changed while
/// the result is in use (`'a`, at most the entry point's call).
pub(super) unsafe fn bytes_arg<'a>(p: *const u8, len: usize, what: &str) -> FfiResult<&'a [u8]> {
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
    // SAFETY: `p` is not NULL and points to `len` readable bytes that stay
    // unchanged for `'a` (the caller's contract); bytes need no alignment,
    // and `len` is at most `isize::MAX`.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// An array of `n` strings; `(NULL, 0)` is empty.
///
/// # Safety
///
/// `p` must be NULL or point to `n` readable pointers (a misaligned `p` is
/// refused, not read), each of them as [`str_arg`] requires; all unchanged
/// while the result is in use (`'a`, at most the entry point's call).
pub(super) unsafe fn str_array_arg<'a>(
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
    // SAFETY: `p` is not NULL, aligned (checked above) and points to `n`
    // readable pointers that stay unchanged for `'a` (the caller's
    // contract); `n` pointers fit in `isize::MAX` bytes (checked above).
    unsafe { std::slice::from_raw_parts(p, n) }
        .iter()
        .enumerate()
        // SAFETY: each pointer is NULL or a string as `str_arg` requires
        // (the caller's contract).
        .map(|(i, s)| unsafe { str_arg(*s, &format!("{what}[{i}]")) })
        .collect()
}

/// A C string for a handle's borrowed fields (NUL bytes replaced).
pub(super) fn cstring(s: &str) -> CString {
    CString::new(s.replace('\0', "\u{FFFD}")).unwrap_or_default()
}
