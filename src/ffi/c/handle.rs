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
    Health,
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
            Kind::Health => "passcrow_health",
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

/// An opaque type handed to C by pointer: boxed, and registered as alive
/// under `KIND` until [`free_handle`] takes it back.
///
/// # Safety
///
/// `KIND` must be this type's alone (no other `Handle` and not
/// `Kind::Bytes`): [`borrow`] and [`free_handle`] trust an address
/// registered under `KIND` to be a live `Box<Self>`.
pub(super) unsafe trait Handle: Sized {
    /// The kind this type is registered under.
    const KIND: Kind;

    /// Box `self`, register it and give up ownership: the pointer is
    /// released by [`free_handle`] (or taken back by its maker).
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

/// Borrow a live handle: `PASSCROW_NULL_ARGUMENT` when `p` is NULL,
/// `PASSCROW_INVALID_HANDLE` when it is not a live `T`.
///
/// # Safety
///
/// `p` may be any address: it is only dereferenced once the registry says
/// it is a live `T`. The caller must ensure that, while the result is in
/// use (`'a`, at most the entry point's call), the handle is neither freed
/// nor borrowed mutably: C callers promise that by not freeing a handle, or
/// calling a function that changes it, while another call uses it.
pub(super) unsafe fn borrow<'a, T: Handle>(p: *const T, what: &str) -> FfiResult<&'a T> {
    if p.is_null() {
        return Err(Fail::new(
            PASSCROW_NULL_ARGUMENT,
            format!("argument `{what}` is NULL"),
        ));
    }
    check_live(p as usize, T::KIND, what)?;
    // SAFETY: `p` is registered under `T::KIND`, so it came from
    // `Box::into_raw` in `Handle::into_raw` (the `Handle` contract) and has
    // not been freed (`free_handle` unregisters it first): it is aligned and
    // points to a valid `T`, which the caller's contract keeps alive and
    // unchanged for `'a`.
    Ok(unsafe { &*p })
}

/// Borrow a live handle mutably (errors as for [`borrow`]).
///
/// # Safety
///
/// As for [`borrow`], and no other reference to the handle may exist while
/// the result is in use: C callers do not use the handle from another
/// thread during a call that changes it.
pub(super) unsafe fn borrow_mut<'a, T: Handle>(p: *mut T, what: &str) -> FfiResult<&'a mut T> {
    // SAFETY: the caller's contract includes `borrow`'s.
    unsafe { borrow(p as *const T, what) }?;
    // SAFETY: `borrow` found `p` to be a live `T` (aligned and valid, see
    // there); the caller's contract makes this the only reference for `'a`.
    Ok(unsafe { &mut *p })
}

/// Free a handle; NULL is a no-op, and a pointer that is not a live `T` is
/// refused (`PASSCROW_INVALID_HANDLE`) and left alone.
///
/// # Safety
///
/// `p` may be any address (it is checked as for [`borrow`]); no reference
/// to the handle may be in use any more, on any thread: C callers do not
/// free a handle while another call uses it.
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
    // SAFETY: `p` was registered under `T::KIND`, so it came from
    // `Box::into_raw` (the `Handle` contract); unregistering it under the
    // lock made this call the only one to take it back, and the caller's
    // contract says nothing uses it any more.
    drop(unsafe { Box::from_raw(p) });
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
