//! The health check: `passcrow_check()`, the `passcrow_health` it returns
//! and its `passcrow_escrow_health` entries; `passcrow_renewal_due()` and
//! `passcrow_mark_reviewed()`. No code is sent by any of them.

use std::ffi::{c_char, CString};

use super::args::{cstring, put, str_arg};
use super::boundary::ffi_entry;
use super::client::passcrow_client;
use super::handle::{borrow, free_handle, Handle, Kind};
use super::pack::passcrow_pack;
use super::result::passcrow_result::{self, *};
use super::result::Fail;
use crate::client::{CallOptions, EscrowState, PackHealth, Recoverable, RenewalReason};

/// What one escrow's server says about it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum passcrow_escrow_state {
    /// Held, live, not frozen (and proven intact when `proven`).
    PASSCROW_ESCROW_HELD = 0,
    /// The server does not have it.
    PASSCROW_ESCROW_MISSING = 1,
    /// The server holds other bytes under its id.
    PASSCROW_ESCROW_ALTERED = 2,
    /// Past its expiration.
    PASSCROW_ESCROW_EXPIRED = 3,
    /// Frozen: no more recovery attempts allowed.
    PASSCROW_ESCROW_FROZEN = 4,
    /// The server did not answer.
    PASSCROW_ESCROW_UNREACHABLE = 5,
    /// The server has no status method (python-passcrow): reachable only.
    PASSCROW_ESCROW_UNKNOWN = 6,
}

/// Whether a pack can be recovered now.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum passcrow_recoverable {
    /// Enough escrows are held.
    PASSCROW_RECOVERABLE_YES = 0,
    /// Not enough, even counting the unknown ones.
    PASSCROW_RECOVERABLE_NO = 1,
    /// Servers without the status method decide it.
    PASSCROW_RECOVERABLE_UNKNOWN = 2,
}

/// Renewal reasons, as bits of `passcrow_renewal_due()`'s `*out_reasons`.
/// An escrow expires within the window.
pub const PASSCROW_RENEW_EXPIRING: u32 = 1;
/// An escrow is missing.
pub const PASSCROW_RENEW_MISSING: u32 = 2;
/// An escrow is altered.
pub const PASSCROW_RENEW_ALTERED: u32 = 4;
/// An escrow has expired.
pub const PASSCROW_RENEW_EXPIRED: u32 = 8;
/// An escrow is frozen.
pub const PASSCROW_RENEW_FROZEN: u32 = 16;
/// The pack cannot be recovered now.
pub const PASSCROW_RENEW_NOT_RECOVERABLE: u32 = 32;
/// Losing one more escrow would make it unrecoverable.
pub const PASSCROW_RENEW_MARGIN_ZERO: u32 = 64;
/// A year since protect or the last review.
pub const PASSCROW_RENEW_REVIEW_DUE: u32 = 128;

/// One escrow's health. The strings are borrowed from the
/// `passcrow_health` and valid until it is freed.
#[repr(C)]
pub struct passcrow_escrow_health {
    /// The code prefix of the escrow, or 0 for a pack's ephemeral copy.
    pub prefix: c_char,
    /// Identity kind: `"email"`, `"tel"`, ...
    pub kind: *const c_char,
    /// The server.
    pub server: *const c_char,
    /// What the server says.
    pub state: passcrow_escrow_state,
    /// When it expires (unix time).
    pub expires: i64,
    /// Proven intact with a challenge never sent before.
    pub proven: bool,
    /// Why, or NULL.
    pub detail: *const c_char,
}

struct EscrowStrings {
    kind: CString,
    server: CString,
    detail: Option<CString>,
}

/// A pack's health, from `passcrow_check()`.
/// Thread-safety: immutable; may be read from several threads at once.
pub struct passcrow_health {
    inner: PackHealth,
    strings: Vec<EscrowStrings>,
}

// SAFETY: `Kind::Health` is registered for `passcrow_health` only.
unsafe impl Handle for passcrow_health {
    const KIND: Kind = Kind::Health;
}

fn state_to_c(s: EscrowState) -> passcrow_escrow_state {
    use passcrow_escrow_state::*;
    match s {
        EscrowState::Held => PASSCROW_ESCROW_HELD,
        EscrowState::Missing => PASSCROW_ESCROW_MISSING,
        EscrowState::Altered => PASSCROW_ESCROW_ALTERED,
        EscrowState::Expired => PASSCROW_ESCROW_EXPIRED,
        EscrowState::Frozen => PASSCROW_ESCROW_FROZEN,
        EscrowState::Unreachable => PASSCROW_ESCROW_UNREACHABLE,
        EscrowState::Unknown => PASSCROW_ESCROW_UNKNOWN,
    }
}

fn reason_bit(r: &RenewalReason) -> u32 {
    match r {
        RenewalReason::Expiring { .. } => PASSCROW_RENEW_EXPIRING,
        RenewalReason::Missing { .. } => PASSCROW_RENEW_MISSING,
        RenewalReason::Altered { .. } => PASSCROW_RENEW_ALTERED,
        RenewalReason::Expired { .. } => PASSCROW_RENEW_EXPIRED,
        RenewalReason::Frozen { .. } => PASSCROW_RENEW_FROZEN,
        RenewalReason::NotRecoverable => PASSCROW_RENEW_NOT_RECOVERABLE,
        RenewalReason::MarginZero => PASSCROW_RENEW_MARGIN_ZERO,
        RenewalReason::ReviewDue { .. } => PASSCROW_RENEW_REVIEW_DUE,
        RenewalReason::Unreadable { .. } => PASSCROW_RENEW_NOT_RECOVERABLE,
    }
}

/// Ask each escrow's server of `pack` whether it still holds the escrow
/// intact, sending no code and telling no one. Servers that cannot be
/// reached are reported per escrow, not as a failure. On success `*out` is
/// a new `passcrow_health` the caller frees with `passcrow_health_free()`.
/// Blocks (network).
///
/// # Safety
///
/// `client` and `pack` must be NULL or not freed during the call; `out`
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn passcrow_check(
    client: *const passcrow_client,
    pack: *const passcrow_pack,
    out: *mut *mut passcrow_health,
) -> passcrow_result {
    ffi_entry!("passcrow_check", [client, pack, out], {
        // SAFETY: `client` is not freed or changed during the call (the
        // caller's contract).
        let c = unsafe { borrow(client, "client") }?;
        // SAFETY: `pack` is not freed or changed during the call (the caller's
        // contract).
        let p = unsafe { borrow(pack, "pack") }?;
        let h = c.inner.check(&p.inner)?;
        let strings = h
            .escrows
            .iter()
            .map(|e| EscrowStrings {
                kind: cstring(&e.kind),
                server: cstring(&e.server),
                detail: e.detail.as_deref().map(cstring),
            })
            .collect();
        // SAFETY: `out` is not NULL (checked by `ffi_entry!`) and writable (the
        // caller's contract).
        unsafe { put(out, passcrow_health { inner: h, strings }.into_raw()) };
        Ok(())
    })
}

/// The verdict of a check: `*out_recoverable`, the escrows held
/// (`*out_healthy`), the margin (`*out_margin` = held − needed; how many
/// more escrows can be lost), the escrows needed (`*out_min_shares`) and
/// the number of entries (`*out_escrows`).
///
/// # Safety
///
/// `health` must be NULL or not freed during the call; the `out_*`
/// pointers NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn passcrow_health_summary(
    health: *const passcrow_health,
    out_recoverable: *mut passcrow_recoverable,
    out_healthy: *mut usize,
    out_margin: *mut i64,
    out_min_shares: *mut u32,
    out_escrows: *mut usize,
) -> passcrow_result {
    ffi_entry!(
        "passcrow_health_summary",
        [
            health,
            out_recoverable,
            out_healthy,
            out_margin,
            out_min_shares,
            out_escrows
        ],
        {
            // SAFETY: `health` is not freed or changed during the call (the
            // caller's contract).
            let h = unsafe { borrow(health, "health") }?;
            let r = match h.inner.recoverable {
                Recoverable::Yes => passcrow_recoverable::PASSCROW_RECOVERABLE_YES,
                Recoverable::No => passcrow_recoverable::PASSCROW_RECOVERABLE_NO,
                Recoverable::Unknown => passcrow_recoverable::PASSCROW_RECOVERABLE_UNKNOWN,
            };
            // SAFETY: the `out_*` pointers are not NULL (checked by
            // `ffi_entry!`) and writable (the caller's contract).
            unsafe {
                put(out_recoverable, r);
                put(out_healthy, h.inner.healthy);
                put(out_margin, h.inner.margin);
                put(out_min_shares, h.inner.min_shares);
                put(out_escrows, h.inner.escrows.len());
            }
            Ok(())
        }
    )
}

/// Entry number `index` (from 0, in pack order) into `*out`; its strings
/// are borrowed from `health`. `PASSCROW_OUT_OF_RANGE` past the end.
///
/// # Safety
///
/// `health` must be NULL or not freed during the call; `out` NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn passcrow_health_escrow(
    health: *const passcrow_health,
    index: usize,
    out: *mut passcrow_escrow_health,
) -> passcrow_result {
    ffi_entry!("passcrow_health_escrow", [health, out], {
        // SAFETY: `health` is not freed or changed during the call (the
        // caller's contract).
        let h = unsafe { borrow(health, "health") }?;
        let (Some(e), Some(s)) = (h.inner.escrows.get(index), h.strings.get(index)) else {
            return Err(Fail::new(
                PASSCROW_OUT_OF_RANGE,
                format!("escrow {index} of {}", h.inner.escrows.len()),
            ));
        };
        let entry = passcrow_escrow_health {
            prefix: e.prefix.map_or(0, |c| c as u32 as u8 as c_char),
            kind: s.kind.as_ptr(),
            server: s.server.as_ptr(),
            state: state_to_c(e.state),
            expires: e.expires,
            proven: e.proven,
            detail: s.detail.as_ref().map_or(std::ptr::null(), |d| d.as_ptr()),
        };
        // SAFETY: `out` is not NULL (checked by `ffi_entry!`) and writable (the
        // caller's contract).
        unsafe { put(out, entry) };
        Ok(())
    })
}

/// Free a health check. NULL is a no-op.
///
/// # Safety
///
/// No other call may be using `health` (on any thread).
#[no_mangle]
pub unsafe extern "C" fn passcrow_health_free(health: *mut passcrow_health) -> passcrow_result {
    ffi_entry!("passcrow_health_free", [], {
        // SAFETY: no other call uses `health` any more (the caller's contract).
        unsafe { free_handle(health, "health") }
    })
}

/// Whether the app should ask the user to review the pack `name` now
/// (`*out_due`) and why (`*out_reasons`, `PASSCROW_RENEW_*` bits): escrows
/// expiring within `within_seconds`, an escrow missing, altered, expired
/// or frozen, the pack not recoverable or with a margin of zero, or a
/// year since protect or the last review. Runs a check (network).
///
/// # Safety
///
/// `client` must be NULL or not freed during the call; `name` NULL or a
/// NUL-terminated string; `out_due`, `out_reasons` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn passcrow_renewal_due(
    client: *const passcrow_client,
    name: *const c_char,
    within_seconds: u64,
    out_due: *mut bool,
    out_reasons: *mut u32,
) -> passcrow_result {
    ffi_entry!(
        "passcrow_renewal_due",
        [client, name, out_due, out_reasons],
        {
            // SAFETY: `client` is not freed or changed during the call (the
            // caller's contract).
            let c = unsafe { borrow(client, "client") }?;
            // SAFETY: `name` is not NULL (checked by `ffi_entry!`), so it is a
            // NUL-terminated string unchanged during the call (the caller's
            // contract).
            let name = unsafe { str_arg(name, "name") }?;
            let pack = c.inner.pack(name)?;
            let due = c.inner.renewal_due_for(
                name,
                &pack,
                std::time::Duration::from_secs(within_seconds),
                &CallOptions::default(),
            )?;
            let bits = due.reasons.iter().fold(0u32, |b, r| b | reason_bit(r));
            // SAFETY: `out_due` and `out_reasons` are not NULL (checked by
            // `ffi_entry!`) and writable (the caller's contract).
            unsafe {
                put(out_due, due.due);
                put(out_reasons, bits);
            }
            Ok(())
        }
    )
}

/// Record that the user reviewed the pack `name` now (the year until the
/// next review starts again). A successful recovery records it too.
///
/// # Safety
///
/// `client` must be NULL or not freed during the call; `name` NULL or a
/// NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn passcrow_mark_reviewed(
    client: *const passcrow_client,
    name: *const c_char,
) -> passcrow_result {
    ffi_entry!("passcrow_mark_reviewed", [client, name], {
        // SAFETY: `client` is not freed or changed during the call (the
        // caller's contract).
        let c = unsafe { borrow(client, "client") }?;
        // SAFETY: `name` is not NULL (checked by `ffi_entry!`), so it is a
        // NUL-terminated string unchanged during the call (the caller's
        // contract).
        let name = unsafe { str_arg(name, "name") }?;
        c.inner.mark_reviewed(name)?;
        Ok(())
    })
}
