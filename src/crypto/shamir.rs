//! Shamir's secret sharing over the prime field GF(2^521 - 1).
//!
//! This is the field python-passcrow 0.0.7 uses, and no maintained crate
//! offers it (sharks and friends share bytes over GF(256), which the
//! reference cannot read), so this is the one piece of cryptography we
//! write ourselves. The arithmetic is crypto-bigint's constant-time
//! Montgomery residues; only the share *format* parsing branches on data,
//! and that data is the share text itself.
//!
//! Shares are written as the reference writes them: `"%x-%x" % (x, y)`,
//! lower-case hex without leading zeros.

use crypto_bigint::modular::constant_mod::{Residue, ResidueParams};
use crypto_bigint::{Encoding, U640};
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::{random_bytes, SecretString};
use crate::{Error, Result};

mod field {
    #![allow(missing_docs)]
    use crypto_bigint::{impl_modulus, U640};
    impl_modulus!(
        P521,
        U640,
        "000000000000000000000000000001ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
    );
}
use field::P521;

type Fe = Residue<P521, { U640::LIMBS }>;

/// Bytes in a U640.
const WIDE: usize = 80;
/// Most hex digits a share's y can have (521 bits).
const MAX_Y_HEX: usize = 131;
/// The most shares one secret may be split into (and so the largest x).
pub const MAX_SHARES: usize = 255;

// Byte conversions go through crypto-bigint's `Encoding` (big-endian
// bytes, whatever the limb width: 64-bit phones and 32-bit `armeabi-v7a`
// alike), never through the limbs themselves.

/// A big-endian number of at most [`WIDE`] bytes.
fn u640_from_be(bytes: &[u8]) -> U640 {
    let mut buf = [0u8; WIDE];
    buf[WIDE - bytes.len()..].copy_from_slice(bytes);
    let v = U640::from_be_bytes(buf);
    buf.zeroize();
    v
}

/// The number as [`WIDE`] big-endian bytes.
fn u640_to_be(v: &U640) -> [u8; WIDE] {
    v.to_be_bytes()
}

/// A uniformly random field element (rejection sampling from 521 bits).
fn random_fe() -> Fe {
    loop {
        let mut buf = [0u8; 66];
        random_bytes(&mut buf);
        buf[0] &= 0x01; // keep 521 bits
        let mut v = u640_from_be(&buf);
        buf.zeroize();
        if v < P521::MODULUS {
            let fe = Fe::new(&v);
            v.zeroize();
            return fe;
        }
    }
}

fn fe_small(x: u64) -> Fe {
    Fe::new(&U640::from_u64(x))
}

/// Split a 32-byte secret into `shares` shares, any `threshold` of which
/// recover it. Returns the share strings for x = 1..=shares.
pub fn split(secret: &[u8; 32], threshold: usize, shares: usize) -> Result<Vec<SecretString>> {
    if threshold < 1 || threshold > shares {
        return Err(Error::bad_input(format!(
            "a threshold of {threshold} cannot work with {shares} shares"
        )));
    }
    if shares > MAX_SHARES {
        return Err(Error::bad_input(format!(
            "at most {MAX_SHARES} shares, not {shares}"
        )));
    }
    let mut s = u640_from_be(secret);
    let mut coeffs: Vec<Fe> = Vec::with_capacity(threshold);
    coeffs.push(Fe::new(&s));
    s.zeroize();
    for _ in 1..threshold {
        coeffs.push(random_fe());
    }
    let mut out = Vec::with_capacity(shares);
    for x in 1..=shares as u64 {
        let xf = fe_small(x);
        let mut acc = Fe::ZERO;
        for c in coeffs.iter().rev() {
            acc = acc * xf + c;
        }
        let mut y = acc.retrieve();
        out.push(format_share(x, &y));
        y.zeroize();
        acc.zeroize();
    }
    // Residues are `DefaultIsZeroes`: `zeroize` writes through a volatile
    // pointer, which the optimiser cannot drop as it may `*c = ZERO`.
    coeffs.zeroize();
    Ok(out)
}

fn format_share(x: u64, y: &U640) -> SecretString {
    let mut bytes = u640_to_be(y);
    let mut hex = data_encoding::HEXLOWER.encode(&bytes);
    bytes.zeroize();
    let trimmed = hex.trim_start_matches('0');
    let y_txt = if trimmed.is_empty() { "0" } else { trimmed };
    let s = format!("{x:x}-{y_txt}");
    hex.zeroize();
    SecretString::new(s)
}

/// A parsed share: x and the field element y (wiped on drop).
#[derive(Zeroize, ZeroizeOnDrop)]
struct Point {
    x: u64,
    y: Fe,
}

fn parse_share(share: &str) -> Result<Point> {
    let bad = |why: &str| Error::protocol(format!("malformed share: {why}"));
    let (xs, ys) = share.trim().split_once('-').ok_or_else(|| bad("no '-'"))?;
    let hexdigits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
    if !hexdigits(xs) || !hexdigits(ys) {
        return Err(bad("not hexadecimal"));
    }
    let xs = xs.trim_start_matches('0');
    if xs.is_empty() || xs.len() > 4 {
        return Err(bad("x out of range"));
    }
    let x = u64::from_str_radix(xs, 16).map_err(|_| bad("x out of range"))?;
    let ys = ys.trim_start_matches('0');
    if ys.len() > MAX_Y_HEX {
        return Err(bad("y out of range"));
    }
    let mut padded = String::with_capacity(MAX_Y_HEX + 1);
    if ys.len() % 2 == 1 {
        padded.push('0');
    }
    padded.push_str(ys);
    let mut raw = data_encoding::HEXLOWER_PERMISSIVE
        .decode(padded.as_bytes())
        .map_err(|_| bad("not hexadecimal"))?;
    padded.zeroize();
    let mut v = u640_from_be(&raw);
    raw.zeroize();
    if v >= P521::MODULUS {
        v.zeroize();
        return Err(bad("y out of range"));
    }
    let y = Fe::new(&v);
    v.zeroize();
    Ok(Point { x, y })
}

/// Recover the 32-byte secret from shares (at least the threshold, any
/// order; more is fine when they are consistent).
///
/// Fails when two shares have the same x, a share is malformed, or the
/// interpolated value is not a 32-byte secret (which means the shares do
/// not belong together).
pub fn combine<S: AsRef<str>>(shares: &[S]) -> Result<crate::crypto::Key32> {
    if shares.is_empty() {
        return Err(Error::bad_input("no shares to combine"));
    }
    let mut pts = Vec::with_capacity(shares.len());
    for s in shares {
        let p = parse_share(s.as_ref())?;
        if pts.iter().any(|q: &Point| q.x == p.x) {
            return Err(Error::protocol(format!(
                "two shares have the same x ({:x})",
                p.x
            )));
        }
        pts.push(p);
    }
    // Lagrange interpolation at 0: sum y_i * prod_{j != i} x_j / (x_j - x_i).
    let mut acc = Fe::ZERO;
    for (i, pi) in pts.iter().enumerate() {
        let mut num = Fe::ONE;
        let mut den = Fe::ONE;
        for (j, pj) in pts.iter().enumerate() {
            if i != j {
                let xj = fe_small(pj.x);
                num *= xj;
                den *= xj - fe_small(pi.x);
            }
        }
        let (inv, ok) = den.invert();
        if !bool::from(ok) {
            return Err(Error::protocol("shares are not independent"));
        }
        let mut term = pi.y * num * inv;
        acc += term;
        term.zeroize();
    }
    let mut v = acc.retrieve();
    acc.zeroize();
    let mut bytes = u640_to_be(&v);
    v.zeroize();
    let fits = bytes[..WIDE - 32].iter().all(|b| *b == 0);
    let mut key = crate::crypto::Key32::zero();
    if fits {
        key.expose_secret_mut().copy_from_slice(&bytes[WIDE - 32..]);
    }
    bytes.zeroize();
    if !fits {
        return Err(Error::Decrypt(
            "the shares do not combine to a key (wrong or mismatched shares)".into(),
        ));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The byte conversion, pinned with numbers written as hex (which
    /// crypto-bigint parses the same way on every limb width): on a
    /// 32-bit target, where the old limb-by-limb code would have copied
    /// 4-byte words into 8-byte slots and panicked, these hold as well.
    #[test]
    fn byte_conversion_is_independent_of_the_limb_width() {
        let mut want = [0u8; WIDE];
        want[15] = 1; // a 513-bit number below the modulus
        for (i, b) in want.iter_mut().enumerate().skip(16) {
            *b = i as u8;
        }
        let hex = data_encoding::HEXLOWER.encode(&want);
        assert_eq!(hex.len(), 2 * WIDE);
        let v = U640::from_be_hex(&hex);
        let bytes = u640_to_be(&v);
        assert_eq!(data_encoding::HEXLOWER.encode(&bytes), hex);
        assert_eq!(u640_from_be(&bytes), v);
        // Short inputs are right-aligned.
        assert_eq!(u640_from_be(&[1, 2]), U640::from_u64(0x0102));
        assert_eq!(u640_to_be(&U640::from_u64(0x0102))[WIDE - 2..], [1, 2]);
        // A share's text is the same number: "%x-%x" without leading zeros.
        let s = format_share(0x1f, &v);
        assert_eq!(
            s.expose_secret(),
            format!("1f-{}", hex.trim_start_matches('0'))
        );
        let p = parse_share(s.expose_secret()).unwrap();
        assert_eq!(p.x, 0x1f);
        assert_eq!(p.y.retrieve(), Fe::new(&v).retrieve());
    }

    #[test]
    fn small_round_trip() {
        let secret = [0x42u8; 32];
        let shares = split(&secret, 3, 5).unwrap();
        let subset = [shares[4].clone(), shares[0].clone(), shares[2].clone()];
        assert_eq!(
            combine(&subset.iter().map(|s| s.expose_secret()).collect::<Vec<_>>())
                .unwrap()
                .expose_secret(),
            &secret
        );
        assert!(shares[0].expose_secret().starts_with("1-"));
    }

    #[test]
    fn leading_zero_secret_survives() {
        let mut secret = [0u8; 32];
        secret[31] = 5;
        let shares = split(&secret, 3, 3).unwrap();
        let v: Vec<&str> = shares.iter().map(|s| s.expose_secret()).collect();
        assert_eq!(combine(&v).unwrap().expose_secret(), &secret);
    }

    #[test]
    fn rejects_bad_shares() {
        for bad in [
            "", "1", "1-", "-1", "x-1", "1-zz", "0-1", "10000-1", "1-2-3",
        ] {
            assert!(combine(&[bad]).is_err(), "{bad}");
        }
        let too_big = format!("1-{}", "f".repeat(132));
        assert!(combine(&[too_big]).is_err());
        let p = format!("1-1{}", "f".repeat(130));
        assert!(combine(&[p]).is_err(), "y = p is out of range");
        assert!(combine(&["1-5", "1-6"]).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn split_combine(secret in any::<[u8; 32]>(), m in 1usize..=33, nseed in any::<usize>(), pick in any::<u64>()) {
            let n = 1 + nseed % m;
            let shares = split(&secret, n, m).unwrap();
            prop_assert_eq!(shares.len(), m);
            // choose n distinct shares pseudo-randomly
            let mut idx: Vec<usize> = (0..m).collect();
            let mut r = pick;
            for i in (1..idx.len()).rev() {
                r = r.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                idx.swap(i, (r >> 33) as usize % (i + 1));
            }
            let chosen: Vec<&str> = idx[..n].iter().map(|i| shares[*i].expose_secret()).collect();
            let got = combine(&chosen).unwrap();
            prop_assert_eq!(got.expose_secret(), &secret);
            if n > 1 {
                // n-1 shares reveal (almost surely) something else
                let fewer: Vec<&str> = idx[..n-1].iter().map(|i| shares[*i].expose_secret()).collect();
                let got = combine(&fewer);
                prop_assert!(got.map(|k| k.expose_secret() != &secret).unwrap_or(true));
            }
        }

        #[test]
        fn parse_never_panics(s in ".{0,200}") {
            let _ = combine(&[s]);
        }
    }
}
