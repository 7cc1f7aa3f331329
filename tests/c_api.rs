//! The C ABI driven from Rust against an in-process server: the paths the
//! C programs under valgrind leave out because they are slow there
//! (ephemeral protection and recovery: scrypt with N=2^20), plus renew,
//! list and expiring.

use std::ffi::{c_char, CStr, CString};
use std::path::Path;
use std::ptr::{null, null_mut};

use passcrow::ffi::c::*;
use passcrow::server::{self, config::Config};

fn last_error() -> String {
    let mut buf = vec![0 as c_char; 4096];
    let mut n = 0usize;
    let r = unsafe { passcrow_error_message(buf.as_mut_ptr(), buf.len(), &mut n) };
    assert_eq!(r, passcrow_result::PASSCROW_OK);
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

#[track_caller]
fn ok(r: passcrow_result) {
    assert_eq!(r, passcrow_result::PASSCROW_OK, "{}", last_error());
}

fn newest_code(codes: &Path, identity: &str) -> CString {
    let text = std::fs::read_to_string(codes).unwrap();
    let code = text
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .filter(|(who, _)| *who == identity)
        .map(|(_, c)| c.to_string())
        .next_back()
        .unwrap_or_else(|| panic!("no code for {identity}"));
    CString::new(code).unwrap()
}

fn take_bytes(p: *mut u8, n: usize) -> Vec<u8> {
    let v = unsafe { std::slice::from_raw_parts(p, n) }.to_vec();
    ok(unsafe { passcrow_bytes_free(p, n) });
    v
}

#[test]
fn ephemeral_renew_list_through_the_c_abi() {
    let tmp = tempfile::tempdir().unwrap();
    let codes = tmp.path().join("codes.txt");
    let srv = server::spawn(Config::for_testing(tmp.path().join("server"), &codes)).unwrap();
    let url = srv.url();
    let home = tmp.path().join("client");
    std::fs::create_dir_all(&home).unwrap();
    let home_c = CString::new(home.to_str().unwrap()).unwrap();

    unsafe {
        let mut client = null_mut();
        ok(passcrow_client_new(
            home_c.as_ptr(),
            home_c.as_ptr(),
            &mut client,
        ));
        let ids: Vec<CString> = ["e@example.org", "a@example.org", "b@example.org"]
            .iter()
            .map(|i| CString::new(format!("{i} via {url}")).unwrap())
            .collect();
        let id_ptrs: Vec<*const c_char> = ids.iter().map(|c| c.as_ptr()).collect();
        let mut policy = null_mut();
        ok(passcrow_policy_new(
            client,
            id_ptrs.as_ptr(),
            id_ptrs.len(),
            1,
            2,
            &mut policy,
        ));
        ok(passcrow_policy_set_lifetimes(policy, 1, 0));

        // Protect with an ephemeral copy: the first identity holds it.
        let name = CString::new("wallet").unwrap();
        let mut done = null_mut();
        ok(passcrow_protect(
            client,
            name.as_ptr(),
            b"s3cret".as_ptr(),
            6,
            policy,
            PASSCROW_EPHEMERAL_BOTH,
            false,
            null(),
            &mut done,
        ));
        let (mut idp, mut id_len, mut exp) = (null_mut(), 0usize, 0i64);
        ok(passcrow_protected_ephemeral_id(
            done,
            &mut idp,
            &mut id_len,
            &mut exp,
        ));
        let eph_id = String::from_utf8(take_bytes(idp, id_len)).unwrap();
        assert!(eph_id.starts_with(&format!("{url}:")), "{eph_id}");
        assert!(exp > 0);
        ok(passcrow_protected_free(done));
        assert_eq!(
            passcrow_protected_free(done),
            passcrow_result::PASSCROW_INVALID_HANDLE
        );

        // Listing and expiring (a one-day escrow expires within two days).
        let mut list = null_mut();
        ok(passcrow_expiring(client, 2 * 86400, &mut list));
        let mut n = 0usize;
        ok(passcrow_pack_list_len(list, &mut n));
        assert_eq!(n, 1);
        let mut info = std::mem::zeroed::<passcrow_pack_info>();
        ok(passcrow_pack_list_get(list, 0, &mut info));
        assert_eq!(CStr::from_ptr(info.name).to_str().unwrap(), "wallet");
        assert_eq!(
            CStr::from_ptr(info.kinds).to_str().unwrap(),
            "email,email,email"
        );
        assert!(info.error.is_null() && info.ephemeral && info.min_shares == 1);
        ok(passcrow_pack_list_free(list));

        // Recover without the local pack: from the ephemeral id.
        std::fs::remove_file(home.join("wallet.passcrow")).unwrap();
        let eph_c = CString::new(eph_id.clone()).unwrap();
        let mut stub = null_mut();
        ok(passcrow_pack_open(client, eph_c.as_ptr(), &mut stub));
        let (mut min, mut escrows, mut is_eph) = (0u32, 0usize, false);
        ok(passcrow_pack_counts(
            stub,
            &mut min,
            &mut escrows,
            &mut is_eph,
        ));
        assert!(is_eph && min == 1 && escrows == 1);
        let mut v = null_mut();
        ok(passcrow_verify(client, stub, &mut v));
        ok(passcrow_verification_free(v));
        let code = newest_code(&codes, "email:e@example.org");
        let typed = [code.as_ptr()];
        let (mut sp, mut sl) = (null_mut(), 0usize);
        assert_eq!(
            passcrow_recover(client, stub, typed.as_ptr(), 1, &mut sp, &mut sl),
            passcrow_result::PASSCROW_BAD_INPUT
        );
        let mut pack = null_mut();
        ok(passcrow_recover_ephemeral(
            client,
            stub,
            typed.as_ptr(),
            1,
            &mut pack,
        ));
        ok(passcrow_pack_free(stub));

        // Then the restored pack, as usual.
        let mut v = null_mut();
        ok(passcrow_verify(client, pack, &mut v));
        let (mut hints, mut min, mut fails) = (0usize, 0u32, 0usize);
        ok(passcrow_verification_counts(
            v, &mut hints, &mut min, &mut fails,
        ));
        assert_eq!((hints, min, fails), (2, 1, 0));
        ok(passcrow_verification_free(v));
        let code = newest_code(&codes, "email:a@example.org");
        let typed = [code.as_ptr()];
        ok(passcrow_recover(
            client,
            pack,
            typed.as_ptr(),
            1,
            &mut sp,
            &mut sl,
        ));
        assert_eq!(take_bytes(sp, sl), b"s3cret");
        ok(passcrow_pack_free(pack));

        // Renew the restored pack (saved under the user key) with the
        // defaults' policy missing: NULL policy means policy.rc, which has
        // no identities, so renew with the explicit policy.
        let key_name = CString::new(eph_id.rsplit_once(':').unwrap().1).unwrap();
        let mut renewed = null_mut();
        ok(passcrow_renew(
            client,
            key_name.as_ptr(),
            b"new".as_ptr(),
            3,
            policy,
            &mut renewed,
        ));
        let mut cleanup = 9usize;
        ok(passcrow_protected_cleanup_failures(renewed, &mut cleanup));
        assert_eq!(cleanup, 0);
        ok(passcrow_protected_free(renewed));
        let mut deleted = 0usize;
        ok(passcrow_forget(
            client,
            key_name.as_ptr(),
            false,
            &mut deleted,
        ));
        assert_eq!(deleted, 3);

        ok(passcrow_policy_free(policy));
        ok(passcrow_client_free(client));
    }
    srv.shutdown();
}

#[test]
fn check_and_renewal_due_through_the_c_abi() {
    let tmp = tempfile::tempdir().unwrap();
    let codes = tmp.path().join("codes.txt");
    let srv = server::spawn(Config::for_testing(tmp.path().join("server"), &codes)).unwrap();
    let url = srv.url();
    let home = tmp.path().join("client");
    std::fs::create_dir_all(&home).unwrap();
    let home_c = CString::new(home.to_str().unwrap()).unwrap();
    unsafe {
        let mut client = null_mut();
        ok(passcrow_client_new(
            home_c.as_ptr(),
            home_c.as_ptr(),
            &mut client,
        ));
        let ids: Vec<CString> = ["a@example.org", "b@example.org"]
            .iter()
            .map(|i| CString::new(format!("{i} via {url}")).unwrap())
            .collect();
        let id_ptrs: Vec<*const c_char> = ids.iter().map(|c| c.as_ptr()).collect();
        let mut policy = null_mut();
        ok(passcrow_policy_new(
            client,
            id_ptrs.as_ptr(),
            id_ptrs.len(),
            1,
            2,
            &mut policy,
        ));
        ok(passcrow_policy_set_lifetimes(policy, 1, 0));
        let name = CString::new("wallet").unwrap();
        ok(passcrow_protect(
            client,
            name.as_ptr(),
            b"s3cret".as_ptr(),
            6,
            policy,
            PASSCROW_EPHEMERAL_NO,
            false,
            null(),
            null_mut(),
        ));
        let mut pack = null_mut();
        ok(passcrow_pack_open(client, name.as_ptr(), &mut pack));
        let mut health = null_mut();
        ok(passcrow_check(client, pack, &mut health));
        let (mut rec, mut healthy, mut margin, mut min, mut n) = (
            passcrow_recoverable::PASSCROW_RECOVERABLE_NO,
            0usize,
            0i64,
            0u32,
            0usize,
        );
        ok(passcrow_health_summary(
            health,
            &mut rec,
            &mut healthy,
            &mut margin,
            &mut min,
            &mut n,
        ));
        assert_eq!(rec, passcrow_recoverable::PASSCROW_RECOVERABLE_YES);
        assert_eq!((healthy, margin, min, n), (2, 1, 1, 2));
        let mut e = std::mem::zeroed::<passcrow_escrow_health>();
        ok(passcrow_health_escrow(health, 1, &mut e));
        assert_eq!(e.state, passcrow_escrow_state::PASSCROW_ESCROW_HELD);
        assert!(e.proven && e.detail.is_null() && e.prefix == b'2' as c_char);
        assert_eq!(CStr::from_ptr(e.server).to_str().unwrap(), url);
        assert_eq!(
            passcrow_health_escrow(health, 2, &mut e),
            passcrow_result::PASSCROW_OUT_OF_RANGE
        );
        ok(passcrow_health_free(health));
        assert_eq!(
            passcrow_health_free(health),
            passcrow_result::PASSCROW_INVALID_HANDLE
        );
        assert_eq!(
            passcrow_check(client, null(), &mut health),
            passcrow_result::PASSCROW_NULL_ARGUMENT
        );
        // Expiring within two days: due, for that reason only.
        let (mut due, mut why) = (false, 0u32);
        ok(passcrow_renewal_due(
            client,
            name.as_ptr(),
            2 * 86400,
            &mut due,
            &mut why,
        ));
        assert!(due);
        assert_eq!(why, PASSCROW_RENEW_EXPIRING);
        ok(passcrow_renewal_due(
            client,
            name.as_ptr(),
            60,
            &mut due,
            &mut why,
        ));
        assert!(!due && why == 0);
        ok(passcrow_mark_reviewed(client, name.as_ptr()));
        ok(passcrow_pack_free(pack));
        ok(passcrow_policy_free(policy));
        ok(passcrow_client_free(client));
    }
    // No code was sent by any of it.
    assert!(std::fs::read_to_string(&codes)
        .unwrap_or_default()
        .is_empty());
}
