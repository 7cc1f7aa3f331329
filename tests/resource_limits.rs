//! A device short of memory gets an error, not an abort: the ephemeral key
//! derivation (scrypt, 1 GiB) under a lowered address-space limit fails
//! with "not enough memory" and exit status 1, never SIGABRT or SIGKILL;
//! with enough room the same command gets past the derivation.

use std::process::Command;

/// `passcrow recover -H DIR SERVER:USER_KEY` with the address space
/// limited to `limit_kib` (`ulimit -v`). The server is a closed loopback
/// port: the command can only get as far as the derivation and a refused
/// connection.
fn recover_ephemeral_limited(limit_kib: u64) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {limit_kib} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_passcrow"))
        .arg("recover")
        .arg("-H")
        .arg(dir.path())
        .arg("http://127.0.0.1:9:abcd-EFGH-jkmn-PQRS")
        .output()
        .unwrap()
}

#[test]
fn too_little_memory_for_scrypt_is_an_error_not_an_abort() {
    let out = recover_ephemeral_limited(600 * 1024);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "exit status {:?} (a signal is an abort); stderr: {stderr}",
        out.status
    );
    assert!(stderr.contains("not enough memory"), "{stderr}");
    assert!(stderr.contains("1024 MiB"), "{stderr}");
}

#[test]
fn with_enough_memory_the_derivation_runs() {
    let out = recover_ephemeral_limited(4 * 1024 * 1024);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("not enough memory"), "{stderr}");
    // It got to the network: the closed port refuses.
    assert!(
        stderr.contains("127.0.0.1:9"),
        "expected a connection failure; stderr: {stderr}"
    );
}

/// Room for one 1 GiB derivation but not two: the derivations that would
/// run two at a time run one after the other instead (two at once would
/// abort inside scrypt's allocation).
#[test]
fn with_memory_for_one_derivation_they_run_in_turn() {
    let out = recover_ephemeral_limited(1600 * 1024);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "exit status {:?} (a signal is an abort); stderr: {stderr}",
        out.status
    );
    assert!(!stderr.contains("not enough memory"), "{stderr}");
    assert!(
        stderr.contains("127.0.0.1:9"),
        "expected a connection failure; stderr: {stderr}"
    );
}
