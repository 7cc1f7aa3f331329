//! The live-handle registry (rustls-ffi's `ffi.rs`): every handle and
//! byte buffer given to C is remembered by address and kind until it is
//! freed, so a stale, foreign or mistyped pointer is refused
//! (`PASSCROW_INVALID_HANDLE`) instead of being dereferenced.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, OnceLock};

use super::result::passcrow_result::*;
use super::result::{Fail, FfiResult};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
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
pub(super) fn live() -> MutexGuard<'static, BTreeMap<usize, Kind>> {
    static LIVE: OnceLock<Mutex<BTreeMap<usize, Kind>>> = OnceLock::new();
    LIVE.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

pub(super) fn not_alive(kind: Kind, what: &str, found: Option<Kind>) -> Fail {
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
pub(super) trait Handle: Sized {
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
pub(super) unsafe fn borrow<'a, T: Handle>(p: *const T, what: &str) -> FfiResult<&'a T> {
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
pub(super) unsafe fn borrow_mut<'a, T: Handle>(p: *mut T, what: &str) -> FfiResult<&'a mut T> {
    borrow(p as *const T, what)?;
    Ok(&mut *p)
}

/// Free a handle; NULL is a no-op.
pub(super) unsafe fn free_handle<T: Handle>(p: *mut T, what: &str) -> FfiResult {
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

/// Give bytes to C as a `(pointer, length)` pair; empty is `(NULL, 0)`.
pub(super) fn bytes_to_c(b: &[u8]) -> (*mut u8, usize) {
    if b.is_empty() {
        return (std::ptr::null_mut(), 0);
    }
    let boxed: Box<[u8]> = b.into();
    let len = boxed.len();
    let p = Box::into_raw(boxed) as *mut u8;
    live().insert(p as usize, Kind::Bytes(len));
    (p, len)
}
