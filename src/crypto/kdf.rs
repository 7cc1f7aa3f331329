//! scrypt key derivation, with the parameters python-passcrow uses.

use super::SecretBytes;
use crate::{Error, Result};

/// scrypt(password, salt, N = 2^log_n, r, p) producing `len` bytes.
pub fn scrypt(
    password: &[u8],
    salt: &[u8],
    log_n: u8,
    r: u32,
    p: u32,
    len: usize,
) -> Result<SecretBytes> {
    let params = scrypt::Params::new(log_n, r, p, len)
        .map_err(|e| Error::bad_input(format!("scrypt parameters: {e}")))?;
    let need = scrypt_memory(log_n, r);
    if need >= PROBE_FROM {
        ensure_memory(need)?;
    }
    let mut out = vec![0u8; len];
    scrypt::scrypt(password, salt, &params, &mut out)
        .map_err(|e| Error::bad_input(format!("scrypt output length: {e}")))?;
    Ok(SecretBytes::new(out))
}

/// The reference's `derive_aesgcm_key` default: scrypt N=2^20, r=8, p=1.
pub const EPHEMERAL_LOG_N: u8 = 20;

/// Derive a 32-byte key with N=2^20, r=8, p=1 (the ephemeral-escrow KDF).
pub fn derive_key_2_20(password: &[u8], salt: &[u8]) -> Result<super::Key32> {
    let raw = scrypt(password, salt, EPHEMERAL_LOG_N, 8, 1, 32)?;
    let mut k = super::Key32::zero();
    k.expose_secret_mut().copy_from_slice(raw.expose_secret());
    Ok(k)
}

/// Run two independent derivations, `a` and `b`, each working in `each`
/// bytes: at the same time, on two threads, when `concurrent` is asked
/// for, a second core is there and memory for both can be had
/// ([`ensure_memory`] of `2 * each`); otherwise one after the other, so
/// peak memory is `each`. The results are the same either way. A thread
/// that cannot be started is not an error: that derivation runs here.
pub fn run_pair<A: Send, B: Send>(
    concurrent: bool,
    each: usize,
    a: impl FnOnce() -> Result<A> + Send,
    b: impl FnOnce() -> Result<B> + Send,
) -> Result<(A, B)> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let together = concurrent
        && cores >= 2
        && each
            .checked_mul(2)
            .is_some_and(|both| ensure_memory(both).is_ok());
    if !together {
        let ra = a()?;
        return Ok((ra, b()?));
    }
    // `b` waits in a slot: the thread takes it, or, if no thread could be
    // started, this one does.
    let slot = std::sync::Mutex::new(Some(b));
    let take = || slot.lock().ok().and_then(|mut g| g.take());
    std::thread::scope(|s| {
        let hb = std::thread::Builder::new()
            .name("passcrow-kdf".into())
            .spawn_scoped(s, || take().map(|b| b()));
        let ra = a();
        let rb = match hb.ok().map(|h| h.join()) {
            Some(Ok(Some(rb))) => rb,
            Some(Err(_)) => Err(Error::bad_input("the key derivation thread failed")),
            // No thread was started (or it found nothing to run): b runs here.
            Some(Ok(None)) | None => match take() {
                Some(b) => b(),
                None => Err(Error::bad_input("the key derivation did not run")),
            },
        };
        Ok((ra?, rb?))
    })
}

/// Bytes scrypt works in for N = 2^log_n and r: 128·r·N (1 GiB for the
/// ephemeral parameters), saturating.
pub fn scrypt_memory(log_n: u8, r: u32) -> usize {
    1usize
        .checked_shl(u32::from(log_n))
        .and_then(|n| n.checked_mul(128))
        .and_then(|b| b.checked_mul(r as usize))
        .unwrap_or(usize::MAX)
}

/// Derivations that need at least this much are checked first (hashcash,
/// at 256 KiB, is not: it runs thousands of times a second).
const PROBE_FROM: usize = 16 << 20;

/// Make sure `need` bytes can be had before scrypt allocates them: the
/// `scrypt` crate allocates its work area infallibly, so a failure there
/// aborts the whole app, and with overcommit a phone's out-of-memory
/// killer strikes before any allocation fails. So: on Linux and Android
/// the kernel's `MemAvailable` estimate must cover it; everywhere, a
/// fallible reservation of the whole size must succeed (it fails cleanly
/// under an address-space limit). Either failing is
/// [`Error::OutOfMemory`], never an abort.
pub fn ensure_memory(need: usize) -> Result<()> {
    let mib = |b: u64| b >> 20;
    if let Some(avail) = available_memory() {
        if avail < need as u64 {
            return Err(Error::OutOfMemory(format!(
                "the key derivation needs {} MiB and {} MiB are available",
                mib(need as u64),
                mib(avail)
            )));
        }
    }
    let mut probe: Vec<u8> = Vec::new();
    probe.try_reserve_exact(need).map_err(|_| {
        Error::OutOfMemory(format!(
            "the key derivation needs {} MiB and they cannot be allocated",
            mib(need as u64)
        ))
    })?;
    drop(probe);
    Ok(())
}

/// The kernel's estimate of memory available without swapping
/// (`MemAvailable` in `/proc/meminfo`), where there is one.
fn available_memory() -> Option<u64> {
    if !cfg!(any(target_os = "linux", target_os = "android")) {
        return None;
    }
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_mem_available(&text)
}

fn parse_mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line
        .trim_start_matches("MemAvailable:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asked to, with two cores, the pair runs at once: each side waits
    /// for the other to have started (a pair run one after the other
    /// would time out). Not asked to, both run on the caller's thread.
    #[test]
    fn a_pair_runs_together_or_in_turn() {
        use std::sync::mpsc::channel;
        use std::time::Duration;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        if cores >= 2 {
            let (to_b, from_a) = channel();
            let (to_a, from_b) = channel();
            let wait = Duration::from_secs(30);
            let (a, b) = run_pair(
                true,
                1 << 20,
                move || {
                    to_b.send(()).ok();
                    Ok(from_b.recv_timeout(wait).is_ok())
                },
                move || {
                    to_a.send(()).ok();
                    Ok(from_a.recv_timeout(wait).is_ok())
                },
            )
            .unwrap();
            assert!(a && b, "the two derivations did not overlap");
        }
        let here = std::thread::current().id();
        let (a, b) = run_pair(
            false,
            1 << 20,
            || Ok(std::thread::current().id()),
            || Ok(std::thread::current().id()),
        )
        .unwrap();
        assert_eq!((a, b), (here, here));
        // An error on either side is the pair's error.
        let e = run_pair(
            true,
            1 << 20,
            || Ok(1),
            || -> Result<u8> { Err(Error::Cancelled) },
        );
        assert!(matches!(e, Err(Error::Cancelled)));
        let e = run_pair(
            true,
            1 << 20,
            || -> Result<u8> { Err(Error::Cancelled) },
            || Ok(1),
        );
        assert!(matches!(e, Err(Error::Cancelled)));
    }

    #[test]
    fn memory_needs() {
        assert_eq!(scrypt_memory(EPHEMERAL_LOG_N, 8), 1 << 30);
        assert_eq!(scrypt_memory(8, 8), 256 << 10);
        assert_eq!(scrypt_memory(63, 8), usize::MAX);
    }

    #[test]
    fn meminfo_is_read() {
        let t = "MemTotal:       24000000 kB\nMemFree:  1 kB\nMemAvailable:    2048 kB\n";
        assert_eq!(parse_mem_available(t), Some(2048 * 1024));
        assert_eq!(parse_mem_available("MemTotal: 1 kB\n"), None);
    }

    #[test]
    fn an_impossible_size_is_an_error_not_an_abort() {
        let e = ensure_memory(usize::MAX / 2).unwrap_err();
        assert!(matches!(e, Error::OutOfMemory(_)), "{e}");
        assert!(ensure_memory(1 << 20).is_ok());
    }
}
