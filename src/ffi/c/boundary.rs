//! The boundary every entry point crosses (rustls-ffi's `panic.rs`):
//! `ffi_entry!` refuses NULL pointer arguments and turns a panic or an
//! error into its code and the thread's last error message.

use std::panic::{catch_unwind, AssertUnwindSafe};

use super::result::passcrow_result::{self, *};
use super::result::{set_last_error, set_last_failure, FfiResult};

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
pub(super) fn boundary(name: &str, body: impl FnOnce() -> FfiResult) -> passcrow_result {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => PASSCROW_OK,
        Ok(Err(f)) => set_last_failure(f.code, format!("{name}: {}", f.msg), f.release_at),
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
                return $crate::ffi::c::result::set_last_error(
                    $crate::ffi::c::result::passcrow_result::PASSCROW_NULL_ARGUMENT,
                    concat!($name, ": argument `", stringify!($arg), "` is NULL").to_string(),
                );
            }
        )*
        $crate::ffi::c::boundary::boundary(
            $name,
            move || -> $crate::ffi::c::result::FfiResult { $body },
        )
    }};
}
pub(super) use ffi_entry;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::c::result::last_error;

    #[test]
    fn panics_become_a_code() {
        let r = boundary("test_fn", || panic!("boom"));
        assert_eq!(r, PASSCROW_PANIC);
        let m = last_error();
        assert!(m.contains("test_fn") && m.contains("boom"), "{m}");
    }
}
