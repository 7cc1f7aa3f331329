//! Paying for escrow: `free` and scrypt `hashcash`.
//!
//! A hashcash token `hashcash-B:%x-%x` (counter, unix time) is valid for
//! escrow data `d` when `scrypt(d || hex(counter) || hex(ts) || d, salt="",
//! N=256, r=8, p=1, len=16)`, read as a big-endian integer, has its lowest
//! B bits zero, and ts lies in (now-125, now+5) on the server's clock.
//! That is python-passcrow 0.0.7's rule, checked here exactly as it checks it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::proto::{PaymentScheme, ServerPolicy};
use crate::{Error, Result};

/// scrypt work factor (log2 N) of a hashcash attempt.
pub const HASHCASH_LOG_N: u8 = 8;
/// Seconds into the past a hashcash timestamp may lie (exclusive).
pub const HASHCASH_PAST: i64 = 125;
/// Seconds into the future a hashcash timestamp may lie (exclusive).
pub const HASHCASH_FUTURE: i64 = 5;
/// A search keeps one timestamp at most this long, so the token is still
/// fresh when it reaches the server.
const EPOCH: Duration = Duration::from_secs(60);

/// The payment schemes we can make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `free:0`.
    Free,
    /// Proof of work with this many bits.
    Hashcash(u32),
}

/// What a scheme is, if we support it.
pub fn kind_of(s: &PaymentScheme) -> Option<Kind> {
    match s.scheme.as_str() {
        "free" => Some(Kind::Free),
        "hashcash" => match s.hashcash_bits {
            Some(b) if (1..=64).contains(&b) => Some(Kind::Hashcash(b)),
            _ => None,
        },
        _ => None,
    }
}

fn cost(k: Kind) -> u128 {
    match k {
        Kind::Free => 0,
        Kind::Hashcash(b) => 1u128 << b,
    }
}

/// Pick the cheapest scheme we can make whose lifetime covers `lifetime`
/// seconds; between equal costs, the shorter lifetime.
pub fn choose(policy: &ServerPolicy, lifetime: i64) -> Result<&PaymentScheme> {
    let best = policy
        .payment_schemes
        .iter()
        .filter(|s| s.expiration_seconds >= lifetime)
        .filter_map(|s| kind_of(s).map(|k| (cost(k), s.expiration_seconds, s)))
        .min_by_key(|(c, e, _)| (*c, *e));
    match best {
        Some((_, _, s)) => Ok(s),
        None => {
            let longest = policy
                .payment_schemes
                .iter()
                .filter(|s| kind_of(s).is_some())
                .map(|s| s.expiration_seconds)
                .max();
            Err(match longest {
                Some(l) => Error::bad_input(format!(
                    "the server keeps escrows at most {} (asked for {})",
                    human_duration(l),
                    human_duration(lifetime)
                )),
                None => Error::protocol("the server offers no payment scheme we support"),
            })
        }
    }
}

/// "3 days", "5 hours", "12 minutes".
pub fn human_duration(secs: i64) -> String {
    if secs >= 3 * 86400 {
        format!("{} days", secs / 86400)
    } else if secs >= 2 * 3600 {
        format!("{} hours", secs / 3600)
    } else {
        format!("{} minutes", secs / 60)
    }
}

/// The hashcash digest of one attempt.
pub fn hashcash_digest(data: &[u8], counter: u64, ts: u64) -> [u8; 16] {
    let mut pw = Vec::with_capacity(2 * data.len() + 32);
    attempt_password(&mut pw, data, counter, ts);
    digest_of(&pw)
}

fn attempt_password(pw: &mut Vec<u8>, data: &[u8], counter: u64, ts: u64) {
    use std::io::Write;
    pw.clear();
    pw.extend_from_slice(data);
    let _ = write!(pw, "{counter:x}{ts:x}");
    pw.extend_from_slice(data);
}

fn digest_of(pw: &[u8]) -> [u8; 16] {
    let mut out = [0u8; 16];
    // These parameters are valid constants.
    if let Ok(params) = scrypt::Params::new(HASHCASH_LOG_N, 8, 1, 16) {
        let _ = scrypt::scrypt(pw, b"", &params, &mut out);
    }
    out
}

/// True when the lowest `bits` bits of the big-endian digest are zero.
pub fn low_bits_zero(digest: &[u8; 16], bits: u32) -> bool {
    if bits > 128 {
        return false;
    }
    let v = u128::from_be_bytes(*digest);
    let mask = if bits == 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    };
    v & mask == 0
}

/// Check one hashcash proof as the reference does (without the clock).
pub fn hashcash_valid(bits: u32, data: &[u8], counter: u64, ts: u64) -> bool {
    low_bits_zero(&hashcash_digest(data, counter, ts), bits)
}

/// One hex number in its canonical spelling (`%x`): lower-case digits,
/// no leading zero (the number 0 is `0`), no sign, no space, at most 16
/// digits. Every other spelling of the number is refused, so a token has
/// exactly one spelling.
fn canonical_hex(s: &str) -> Option<u64> {
    let digits_ok = !s.is_empty()
        && s.len() <= 16
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && (s == "0" || !s.starts_with('0'));
    if !digits_ok {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

/// Parse the `%x-%x` part of a hashcash token into (counter, ts), in its
/// canonical spelling only: what python-passcrow 0.0.7 and
/// [`make_token`] write (`'%x-%x' % (counter, ts)`). Upper-case digits,
/// leading zeros, signs and spaces are refused.
pub fn parse_hashcash_cash(cash: &str) -> Option<(u64, u64)> {
    let (c, t) = cash.split_once('-')?;
    Some((canonical_hex(c)?, canonical_hex(t)?))
}

/// A hashcash token, parsed from its one canonical spelling
/// `hashcash-B:%x-%x` ([`HashcashToken::parse`]); `Display` writes that
/// spelling back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashcashToken {
    /// Bits claimed (the scheme id `hashcash-B`).
    pub bits: u32,
    /// The counter.
    pub counter: u64,
    /// The unix time it was made at.
    pub ts: u64,
}

impl HashcashToken {
    /// Parse `hashcash-B:%x-%x`: B in decimal without a leading zero or a
    /// sign, counter and ts as [`parse_hashcash_cash`] takes them. `None`
    /// for every other spelling, so that one proof of work has one token.
    pub fn parse(token: &str) -> Option<HashcashToken> {
        let (scheme, cash) = token.split_once(':')?;
        let b = scheme.strip_prefix("hashcash-")?;
        let bits_ok = !b.is_empty()
            && b.len() <= 3
            && b.bytes().all(|c| c.is_ascii_digit())
            && !b.starts_with('0');
        if !bits_ok {
            return None;
        }
        let bits = b.parse::<u32>().ok()?;
        let (counter, ts) = parse_hashcash_cash(cash)?;
        Some(HashcashToken { bits, counter, ts })
    }
}

impl std::fmt::Display for HashcashToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "hashcash-{}:{:x}-{:x}", self.bits, self.counter, self.ts)
    }
}

/// Progress of a hashcash search, for a progress display.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Attempts so far.
    pub attempts: u64,
    /// Expected attempts for this many bits (2^bits).
    pub expected: u64,
    /// Time spent.
    pub elapsed: Duration,
}

/// Options for a hashcash search.
pub struct HashcashOptions<'a> {
    /// Worker threads; 0 means one per core.
    pub threads: usize,
    /// Give up after this long.
    pub max_time: Duration,
    /// Set to true from elsewhere to stop the search.
    pub cancel: Option<&'a AtomicBool>,
    /// Called now and then from one worker with the search's progress.
    pub progress: Option<&'a (dyn Fn(Progress) + Sync)>,
}

impl Default for HashcashOptions<'_> {
    fn default() -> Self {
        HashcashOptions {
            threads: 0,
            max_time: Duration::from_secs(600),
            cancel: None,
            progress: None,
        }
    }
}

fn unix_now() -> u64 {
    u64::try_from(crate::util::clock::unix_now()).unwrap_or(0)
}

/// Find a hashcash proof for `data` with every core (a scoped pool of
/// threads that stops as soon as one finds it). Returns (counter, ts).
pub fn find_hashcash(bits: u32, data: &[u8], opts: &HashcashOptions<'_>) -> Result<(u64, u64)> {
    if bits == 0 || bits > 64 {
        return Err(Error::bad_input(format!(
            "hashcash with {bits} bits is not supported"
        )));
    }
    let threads = if opts.threads == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    } else {
        opts.threads
    };
    let start = Instant::now();
    let attempts = AtomicU64::new(0);
    let mut next_counter = 1u64;
    loop {
        let ts = unix_now();
        let epoch_end = Instant::now() + EPOCH;
        let found = AtomicBool::new(false);
        let result: Mutex<Option<u64>> = Mutex::new(None);
        // Counters handed out in chunks so workers never overlap.
        let next = AtomicU64::new(next_counter);
        const CHUNK: u64 = 16;
        std::thread::scope(|s| {
            for w in 0..threads {
                let (found, result, next, attempts) = (&found, &result, &next, &attempts);
                s.spawn(move || {
                    let mut pw = Vec::with_capacity(2 * data.len() + 32);
                    loop {
                        if found.load(Ordering::Relaxed)
                            || opts.cancel.is_some_and(|c| c.load(Ordering::Relaxed))
                            || Instant::now() >= epoch_end
                            || start.elapsed() >= opts.max_time
                        {
                            return;
                        }
                        let base = next.fetch_add(CHUNK, Ordering::Relaxed);
                        for counter in base..base + CHUNK {
                            attempt_password(&mut pw, data, counter, ts);
                            if low_bits_zero(&digest_of(&pw), bits) {
                                found.store(true, Ordering::Relaxed);
                                let mut r = result.lock().unwrap_or_else(|p| p.into_inner());
                                if r.is_none() {
                                    *r = Some(counter);
                                }
                                return;
                            }
                        }
                        let total = attempts.fetch_add(CHUNK, Ordering::Relaxed) + CHUNK;
                        if w == 0 {
                            if let Some(p) = opts.progress {
                                p(Progress {
                                    attempts: total,
                                    expected: 1u64 << bits.min(63),
                                    elapsed: start.elapsed(),
                                });
                            }
                        }
                    }
                });
            }
        });
        if let Some(counter) = *result.lock().unwrap_or_else(|p| p.into_inner()) {
            return Ok((counter, ts));
        }
        if opts.cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
            return Err(Error::Cancelled);
        }
        if start.elapsed() >= opts.max_time {
            return Err(Error::bad_input(format!(
                "no {bits}-bit hashcash found in {} s",
                opts.max_time.as_secs()
            )));
        }
        next_counter = next.load(Ordering::Relaxed);
    }
}

/// Make the payment token for `scheme` over escrow data `data`.
pub fn make_token(
    scheme: &PaymentScheme,
    data: &str,
    opts: &HashcashOptions<'_>,
) -> Result<String> {
    match kind_of(scheme) {
        Some(Kind::Free) => Ok(format!("{}:0", scheme.scheme_id)),
        Some(Kind::Hashcash(bits)) => {
            let (counter, ts) = find_hashcash(bits, data.as_bytes(), opts)?;
            Ok(format!("{}:{counter:x}-{ts:x}", scheme.scheme_id))
        }
        None => Err(Error::protocol(format!(
            "payment scheme {:?} is not supported",
            scheme.scheme
        ))),
    }
}

/// Server side: is `cash` (the part after `hashcash-B:`, in its canonical
/// spelling, see [`parse_hashcash_cash`]) a valid proof of `bits` bits for
/// `data` at unix time `now`?
pub fn check_hashcash(bits: u32, cash: &str, data: &[u8], now: i64) -> bool {
    let Some((counter, ts)) = parse_hashcash_cash(cash) else {
        return false;
    };
    let ts_i = ts as i64;
    if ts > i64::MAX as u64 || !(now - HASHCASH_PAST < ts_i && ts_i < now + HASHCASH_FUTURE) {
        return false;
    }
    hashcash_valid(bits, data, counter, ts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scheme(id: &str, exp: i64, bits: Option<u32>) -> PaymentScheme {
        PaymentScheme {
            scheme: if bits.is_some() { "hashcash" } else { id }.into(),
            scheme_id: id.into(),
            description: String::new(),
            expiration_seconds: exp,
            hashcash_bits: bits,
            tokens: None,
        }
    }

    fn policy(s: Vec<PaymentScheme>) -> ServerPolicy {
        ServerPolicy {
            versions: vec!["1.0".into()],
            country_code: "??".into(),
            about_url: String::new(),
            kinds: vec![],
            max_request_bytes: 4096,
            max_expiration_seconds: 0,
            max_timeout_seconds: 0,
            payment_schemes: s,
        }
    }

    #[test]
    fn chooses_cheapest_sufficient() {
        let p = policy(vec![
            scheme("hashcash-12", 366 * 86400, Some(12)),
            scheme("free", 25 * 3600, None),
            scheme("hashcash-11", 183 * 86400, Some(11)),
            scheme("gold", 999 * 86400, None),
        ]);
        assert_eq!(choose(&p, 86400).unwrap().scheme_id, "free");
        assert_eq!(choose(&p, 200 * 86400).unwrap().scheme_id, "hashcash-12");
        assert_eq!(choose(&p, 100 * 86400).unwrap().scheme_id, "hashcash-11");
        let e = choose(&p, 500 * 86400).unwrap_err().to_string();
        assert!(e.contains("366 days"), "{e}");
    }

    #[test]
    fn find_and_check() {
        let data = b"some escrow data";
        let opts = HashcashOptions::default();
        let (c, ts) = find_hashcash(6, data, &opts).unwrap();
        assert!(hashcash_valid(6, data, c, ts));
        let now = ts as i64;
        let cash = format!("{c:x}-{ts:x}");
        assert!(check_hashcash(6, &cash, data, now));
        assert!(!check_hashcash(6, &cash, data, now + 125));
        assert!(!check_hashcash(6, &cash, data, now - 5));
        // The proof is bound to its data: for other data the same stamp
        // meets 6 bits only by chance (1 in 64), so not for 8 of them at once.
        let others =
            (0..8).filter(|i| check_hashcash(6, &cash, format!("other {i}").as_bytes(), now));
        assert!(others.count() < 8);
        assert!(!check_hashcash(6, "zz-1", data, now));
        assert!(!check_hashcash(6, "", data, now));
    }

    #[test]
    fn only_the_canonical_spelling_parses() {
        let t = HashcashToken::parse("hashcash-11:1a2-6b037331").unwrap();
        assert_eq!((t.bits, t.counter, t.ts), (11, 0x1a2, 0x6b03_7331));
        assert_eq!(t.to_string(), "hashcash-11:1a2-6b037331");
        assert!(HashcashToken::parse("hashcash-8:0-6b037331").is_some());
        for bad in [
            "hashcash-011:1a2-6b037331",
            "hashcash-+11:1a2-6b037331",
            "hashcash- 11:1a2-6b037331",
            "hashcash-:1a2-6b037331",
            "hashcash-11:1A2-6b037331",
            "hashcash-11:01a2-6b037331",
            "hashcash-11:1a2-06b037331",
            "hashcash-11:1a2-6B037331",
            "hashcash-11:+1a2-6b037331",
            "hashcash-11: 1a2-6b037331",
            "hashcash-11:1a2-6b037331 ",
            "hashcash-11:1a2-6b037331\n",
            "hashcash-11:1a2--6b037331",
            "hashcash-11:1a2-6b037331-1",
            "hashcash-11:0x1a2-6b037331",
            "hashcash-11:1_a2-6b037331",
            "hashcash-11:00-6b037331",
            "hashcash-11:1a2-",
            "hashcash-11:-6b037331",
            "hashcash-11:11111111111111111-6b037331",
            "HASHCASH-11:1a2-6b037331",
            "hashcash-11",
        ] {
            assert_eq!(HashcashToken::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn our_tokens_are_canonical() {
        let s = scheme("hashcash-4", 86400, Some(4));
        let data = "c29tZSBlc2Nyb3cgZGF0YQ==";
        let tok = make_token(&s, data, &HashcashOptions::default()).unwrap();
        let t = HashcashToken::parse(&tok).unwrap();
        assert_eq!(t.to_string(), tok);
        assert_eq!(t.bits, 4);
        assert!(hashcash_valid(4, data.as_bytes(), t.counter, t.ts));
    }

    #[test]
    fn cancel_stops() {
        let cancel = AtomicBool::new(true);
        let opts = HashcashOptions {
            cancel: Some(&cancel),
            ..Default::default()
        };
        assert!(matches!(
            find_hashcash(40, b"x", &opts),
            Err(Error::Cancelled)
        ));
    }
}
