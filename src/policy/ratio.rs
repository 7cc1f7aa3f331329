//! n-of-m ratios: the one validation rule and python-passcrow's scaling.

use crate::{Error, Result};

/// Check a ratio a caller asked for: `1 <= n <= m`. Every way in (the
/// policy text, `policy.rc`, the bindings' numbers) ends here.
pub fn check_ratio(n: u32, m: u32) -> Result<(u32, u32)> {
    if n == 0 || m == 0 || n > m {
        return Err(Error::bad_input(format!("ratio {n}/{m}: need 1 <= N <= M")));
    }
    Ok((n, m))
}

/// python-passcrow's ratio rule for `available` identities: one identity
/// is 1/1; a ratio whose m matches is kept; else m = identities and
/// n = round(n*m'/m) (half to even, as Python rounds), at least 1.
pub fn scale_ratio(n: u32, m: u32, available: usize) -> Result<(u32, u32)> {
    if available == 0 {
        return Err(Error::bad_input(
            "the policy has no identities to escrow with",
        ));
    }
    if available == 1 {
        return Ok((1, 1));
    }
    let avail = u32::try_from(available).unwrap_or(u32::MAX);
    if n > 0 && n <= m && m == avail {
        return Ok((n, m));
    }
    if m == 0 {
        return Err(Error::bad_input("ratio N/M needs M >= 1"));
    }
    let adjust = f64::from(avail) / f64::from(m);
    let rn = round_half_even(f64::from(n) * adjust).max(1) as u32;
    Ok((rn.min(avail), avail))
}

/// Parse `N/M` or `N` (then M is `count`).
pub fn parse_ratio(text: &str, count: Option<u32>) -> Result<(u32, u32)> {
    let bad = || Error::bad_input(format!("ratio {text:?} is not N/M"));
    let (n, m) = match text.split_once('/') {
        Some((n, m)) => (
            n.trim().parse::<u32>().map_err(|_| bad())?,
            m.trim().parse::<u32>().map_err(|_| bad())?,
        ),
        None => {
            let n = text.trim().parse::<u32>().map_err(|_| bad())?;
            (n, count.unwrap_or(n))
        }
    };
    check_ratio(n, m).map_err(|_| Error::bad_input(format!("ratio {text:?}: need 1 <= N <= M")))
}

/// Python's `round()`: halves go to the even neighbour.
fn round_half_even(x: f64) -> i64 {
    let r = x.round();
    if (x - x.trunc()).abs() == 0.5 && (r as i64) % 2 != 0 {
        (r - x.signum()) as i64
    } else {
        r as i64
    }
}
