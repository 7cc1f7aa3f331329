//! TOTP (RFC 6238) as every authenticator app reads it: HMAC-SHA-1,
//! 6 digits, 30-second steps from the Unix epoch, and the Key Uri Format
//! (`otpauth://totp/ISSUER:LABEL?secret=BASE32&issuer=ISSUER...`).
//!
//! The client makes the secret and the URI (no HMAC needed); the server
//! checks codes (feature `server`, the only user of SHA-1).

use super::SecretString;

/// Bytes of a fresh TOTP secret: 160 bits, the HMAC-SHA-1 output size
/// RFC 4226 recommends.
pub const SECRET_BYTES: usize = 20;
#[cfg(feature = "server")]
/// Shortest secret a server accepts (RFC 4226 requires 128 bits).
pub const MIN_SECRET_BYTES: usize = 16;
#[cfg(feature = "server")]
/// Longest secret a server accepts.
pub const MAX_SECRET_BYTES: usize = 64;
/// Seconds per time step.
pub const PERIOD: i64 = 30;
/// Digits of a code.
pub const DIGITS: u32 = 6;
#[cfg(feature = "server")]
/// Steps of clock skew accepted on either side of the current one.
pub const SKEW_STEPS: i64 = 1;
/// The issuer shown by authenticator apps.
pub const ISSUER: &str = "Passcrow";

/// A fresh random secret, base32 without padding (as the URI carries it).
pub fn new_secret() -> SecretString {
    let mut raw = [0u8; SECRET_BYTES];
    super::random_bytes(&mut raw);
    let s = SecretString::new(data_encoding::BASE32_NOPAD.encode(&raw));
    zeroize::Zeroize::zeroize(&mut raw);
    s
}

#[cfg(feature = "server")]
/// The raw bytes of a base32 secret (padding, blanks and case forgiven),
/// or `None` when it is not base32 or not [`MIN_SECRET_BYTES`] to
/// [`MAX_SECRET_BYTES`] long.
pub fn decode_secret(b32: &str) -> Option<super::SecretBytes> {
    let clean: String = b32
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '=')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let clean = SecretString::new(clean);
    let raw = data_encoding::BASE32_NOPAD
        .decode(clean.expose_secret().as_bytes())
        .ok()?;
    let raw = super::SecretBytes::new(raw);
    (MIN_SECRET_BYTES..=MAX_SECRET_BYTES)
        .contains(&raw.len())
        .then_some(raw)
}

/// Percent-encode everything but RFC 3986's unreserved characters.
fn percent(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `otpauth://` URI an authenticator app enrols from (Key Uri
/// Format): issuer [`ISSUER`], account `label`, SHA1, 6 digits, 30 s.
pub fn otpauth_uri(label: &str, secret_b32: &SecretString) -> SecretString {
    SecretString::new(format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={PERIOD}",
        percent(ISSUER),
        percent(label),
        secret_b32.expose_secret(),
        percent(ISSUER),
    ))
}

#[cfg(feature = "server")]
/// The time step of unix time `t`.
pub fn step_at(t: i64) -> i64 {
    t.div_euclid(PERIOD)
}

/// The code of `secret` at time step `step` with `digits` digits (RFC
/// 4226 HOTP with the step as counter: HMAC-SHA-1, dynamic truncation).
#[cfg(feature = "server")]
pub fn code_at_step(secret: &[u8], step: u64, digits: u32) -> u32 {
    use hmac::{Hmac, Mac};
    // HMAC takes keys of any length.
    let mut m =
        <Hmac<sha1::Sha1> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    m.update(&step.to_be_bytes());
    let h = m.finalize().into_bytes();
    let off = (h[h.len() - 1] & 0x0f) as usize;
    let bin = u32::from_be_bytes([h[off] & 0x7f, h[off + 1], h[off + 2], h[off + 3]]);
    bin % 10u32.pow(digits.min(9))
}

/// The 6-digit code of `secret` at unix time `t`, zero-padded (what an
/// app shows; for tests).
#[cfg(all(feature = "server", any(test, feature = "testing")))]
pub fn code_at(secret: &[u8], t: i64) -> String {
    let step = u64::try_from(step_at(t)).unwrap_or(0);
    format!("{:06}", code_at_step(secret, step, DIGITS))
}

/// The latest time step within [`SKEW_STEPS`] of `now`'s whose code is
/// `code` (6 ASCII digits), or `None`. Every candidate is computed and
/// compared in constant time, whatever matches.
#[cfg(feature = "server")]
pub fn matching_step(secret: &[u8], code: &str, now: i64) -> Option<i64> {
    let now_step = step_at(now);
    let mut found: Option<i64> = None;
    for s in now_step - SKEW_STEPS..=now_step + SKEW_STEPS {
        let Ok(counter) = u64::try_from(s) else {
            continue;
        };
        let want = SecretString::new(format!("{:06}", code_at_step(secret, counter, DIGITS)));
        if super::ct_eq(want.expose_secret().as_bytes(), code.as_bytes()) {
            found = Some(s);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_and_secret() {
        let s = new_secret();
        assert_eq!(s.expose_secret().len(), 32);
        assert_eq!(
            decode_secret(s.expose_secret()).unwrap().len(),
            SECRET_BYTES
        );
        assert!(decode_secret("JBSWY3DPEHPK3PXP").is_none()); // 10 bytes: too short
        assert!(decode_secret("not base32!").is_none());
        let u = otpauth_uri("my phone", &SecretString::new("ABCD".into()));
        assert_eq!(
            u.expose_secret(),
            "otpauth://totp/Passcrow:my%20phone?secret=ABCD&issuer=Passcrow&algorithm=SHA1&digits=6&period=30"
        );
    }

    /// RFC 6238 Appendix B, the SHA-1 rows (seed "12345678901234567890",
    /// 8 digits), and their last 6 digits as 6-digit codes.
    #[cfg(feature = "server")]
    #[test]
    fn rfc6238_appendix_b_sha1() {
        let seed = b"12345678901234567890";
        let rows: [(i64, u32); 6] = [
            (59, 94287082),
            (1111111109, 7081804),
            (1111111111, 14050471),
            (1234567890, 89005924),
            (2000000000, 69279037),
            (20000000000, 65353130),
        ];
        for (t, want) in rows {
            let step = step_at(t) as u64;
            assert_eq!(code_at_step(seed, step, 8), want, "T = {t}");
            assert_eq!(
                code_at(seed, t),
                format!("{:06}", want % 1_000_000),
                "T = {t}"
            );
        }
        // ±1 step of skew, and no further.
        let t = 1111111111;
        let code = code_at(seed, t);
        assert_eq!(matching_step(seed, &code, t), Some(step_at(t)));
        assert_eq!(matching_step(seed, &code, t + 30), Some(step_at(t)));
        assert_eq!(matching_step(seed, &code, t - 30), Some(step_at(t)));
        assert_eq!(matching_step(seed, &code, t + 90), None);
        assert_eq!(matching_step(seed, "12345", t), None);
    }
}
