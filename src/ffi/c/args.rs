//! Reading C arguments (strings, string arrays, byte buffers) and writing
//! out-parameters.

use std::ffi::{c_char, CStr, CString};

use super::result::passcrow_result::*;
use super::result::{Fail, FfiResult};

/// Write an out-parameter (without dropping what was there).
pub(super) unsafe fn put<T>(out: *mut T, v: T) {
    out.write(v);
}

pub(super) unsafe fn str_arg<'a>(p: *const c_char, what: &str) -> FfiResult<&'a str> {
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

pub(super) unsafe fn opt_str_arg<'a>(p: *const c_char, what: &str) -> FfiResult<Option<&'a str>> {
    if p.is_null() {
        Ok(None)
    } else {
        str_arg(p, what).map(Some)
    }
}

/// `(pointer, length)` bytes; `(NULL, 0)` is empty.
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
    Ok(std::slice::from_raw_parts(p, len))
}

/// An array of `n` strings; `(NULL, 0)` is empty.
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
    std::slice::from_raw_parts(p, n)
        .iter()
        .enumerate()
        .map(|(i, s)| str_arg(*s, &format!("{what}[{i}]")))
        .collect()
}

/// A C string for a handle's borrowed fields (NUL bytes replaced).
pub(super) fn cstring(s: &str) -> CString {
    CString::new(s.replace('\0', "\u{FFFD}")).unwrap_or_default()
}
