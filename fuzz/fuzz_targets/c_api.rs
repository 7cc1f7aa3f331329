//! The C ABI's string and byte inputs, called as C would call them (with
//! NUL-terminated copies of the input), on one client over a temporary
//! pack directory whose HTTP callback refuses every request (no network).
//! Only the names `passcrow::ffi::c::passcrow_*` are used.
//!
//! First byte: which entry point. 0: `passcrow_parse_ratio`; 1:
//! `passcrow_policy_new` (identities at newlines, n/m from the next
//! bytes) then `_policy_ratio`, `_policy_set_lifetimes`, `_policy_free`;
//! 2: `passcrow_pack_open` by name (':' replaced: a `SERVER:KEY` name
//! would run scrypt N=2^20); 3: the rest written as the pack file
//! `fuzz.passcrow`, then `passcrow_pack_open` + `_pack_counts` +
//! `_pack_free`; 4: `passcrow_list` + `_pack_list_len` / `_get` / `_free` over that directory.
//! After each call, `passcrow_error_message` with a short and a big
//! buffer. Invariants: every call returns a result code, never
//! `PASSCROW_PANIC` (and never crashes).
#![no_main]

use std::ffi::{c_char, c_int, c_void, CString};
use std::ptr;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use passcrow::ffi::c::*;

struct Fixture {
    dir: tempfile::TempDir,
    client: usize,
}

unsafe extern "C" fn refuse(
    _userdata: *mut c_void,
    _url: *const c_char,
    _body: *const u8,
    _body_len: usize,
    response: *mut passcrow_http_response,
) -> c_int {
    let msg = CString::new("fuzzing: no network").unwrap();
    passcrow_http_response_set_error(response, msg.as_ptr());
    1
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let d = CString::new(dir.path().to_str().unwrap()).unwrap();
        let mut client: *mut passcrow_client = ptr::null_mut();
        let r = unsafe {
            passcrow_client_new_with_http(
                d.as_ptr(),
                d.as_ptr(),
                Some(refuse),
                ptr::null_mut(),
                &mut client,
            )
        };
        assert_eq!(r, passcrow_result::PASSCROW_OK);
        Fixture {
            dir,
            client: client as usize,
        }
    })
}

fn cstr(b: &[u8]) -> CString {
    // A C string ends at the first NUL.
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    CString::new(&b[..end]).unwrap()
}

fn ok(r: passcrow_result) -> bool {
    assert_ne!(
        r,
        passcrow_result::PASSCROW_PANIC,
        "a panic behind the C ABI"
    );
    if r != passcrow_result::PASSCROW_OK {
        let mut len = 0usize;
        let mut small = [0 as c_char; 4];
        let mut big = vec![0 as c_char; 4096];
        unsafe {
            let _ = passcrow_error_message(small.as_mut_ptr(), small.len(), &mut len);
            let e = passcrow_error_message(big.as_mut_ptr(), big.len(), &mut len);
            assert_ne!(e, passcrow_result::PASSCROW_PANIC);
        }
    }
    r == passcrow_result::PASSCROW_OK
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let f = fixture();
    let client = f.client as *const passcrow_client;
    unsafe {
        match sel % 5 {
            0 => {
                let (count, text) = rest.split_first().unwrap_or((&0, &[]));
                let t = cstr(text);
                let (mut n, mut m) = (0u32, 0u32);
                if ok(passcrow_parse_ratio(
                    t.as_ptr(),
                    *count as u32,
                    &mut n,
                    &mut m,
                )) {
                    assert!(1 <= n && n <= m, "ratio {n}/{m}");
                }
            }
            1 => {
                let (n, m, text) = match rest {
                    [n, m, t @ ..] => ((*n % 8) as u32, (*m % 8) as u32, t),
                    _ => (0, 0, rest),
                };
                let ids: Vec<CString> = text.split(|&b| b == b'\n').take(8).map(cstr).collect();
                let ptrs: Vec<*const c_char> = ids.iter().map(|s| s.as_ptr()).collect();
                let mut policy: *mut passcrow_policy = ptr::null_mut();
                let p = if ptrs.is_empty() {
                    ptr::null()
                } else {
                    ptrs.as_ptr()
                };
                if ok(passcrow_policy_new(
                    client,
                    p,
                    ptrs.len(),
                    n,
                    m,
                    &mut policy,
                )) {
                    let (mut pn, mut pm, mut pids) = (0u32, 0u32, 0usize);
                    if ok(passcrow_policy_ratio(policy, &mut pn, &mut pm, &mut pids)) {
                        assert!(1 <= pn && pn <= pm);
                        assert_eq!(pids, ids.len());
                    }
                    ok(passcrow_policy_set_lifetimes(policy, n, m));
                    assert!(ok(passcrow_policy_free(policy)));
                }
            }
            2 => {
                let name: Vec<u8> = rest
                    .iter()
                    .map(|&b| if b == b':' { b'_' } else { b })
                    .collect();
                let n = cstr(&name);
                let mut pack: *mut passcrow_pack = ptr::null_mut();
                if ok(passcrow_pack_open(client, n.as_ptr(), &mut pack)) {
                    assert!(ok(passcrow_pack_free(pack)));
                }
            }
            3 => {
                std::fs::write(f.dir.path().join("fuzz.passcrow"), rest).unwrap();
                let n = CString::new("fuzz").unwrap();
                let mut pack: *mut passcrow_pack = ptr::null_mut();
                if ok(passcrow_pack_open(client, n.as_ptr(), &mut pack)) {
                    let (mut min, mut esc, mut eph) = (0u32, 0usize, false);
                    if ok(passcrow_pack_counts(pack, &mut min, &mut esc, &mut eph)) {
                        assert!(min as usize <= esc.max(1));
                    }
                    assert!(ok(passcrow_pack_free(pack)));
                }
            }
            _ => {
                std::fs::write(f.dir.path().join("fuzz.passcrow"), rest).unwrap();
                let mut list: *mut passcrow_pack_list = ptr::null_mut();
                if ok(passcrow_list(client, &mut list)) {
                    let mut len = 0usize;
                    if ok(passcrow_pack_list_len(list, &mut len)) {
                        assert!(len <= 1);
                        for i in 0..=len {
                            let mut info: passcrow_pack_info = std::mem::zeroed();
                            if ok(passcrow_pack_list_get(list, i, &mut info)) {
                                assert!(i < len && !info.name.is_null());
                            }
                        }
                    }
                    assert!(ok(passcrow_pack_list_free(list)));
                }
            }
        }
    }
});
