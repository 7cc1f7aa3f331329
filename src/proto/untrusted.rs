//! Text that comes from a server is untrusted. Before any of it reaches an
//! app, a binding or a terminal, the client cleans it here: control
//! characters (ESC among them: no terminal escape sequences), bidi
//! overrides and isolates and other invisible format characters are
//! dropped, every text is bounded in length, URLs must be `http(s)://`,
//! and ids must be printable ASCII. This runs where the client reads an
//! answer ([`Untrusted::into_clean`], called by the client's one request
//! function), so every binding and the CLI get clean text.

use super::{
    DeletionResponse, ErrorAnswer, EscrowResponse, PaymentScheme, RecoveryResponse, ServerPolicy,
    VerificationResponse,
};
use crate::{Error, Result};

/// Longest hint kept (`b*@e*ple.org`).
pub const MAX_HINT_CHARS: usize = 200;
/// Longest error text kept.
pub const MAX_ERROR_CHARS: usize = 300;
/// Longest short label kept (a kind, a scheme, a country code).
pub const MAX_LABEL_CHARS: usize = 40;
/// Longest description kept (payment schemes).
pub const MAX_DESCRIPTION_CHARS: usize = 500;
/// Longest URL kept.
pub const MAX_URL_CHARS: usize = 2048;
/// Longest escrow id accepted.
pub const MAX_ID_CHARS: usize = 256;
/// Latest time a server may name (9999-12-31T23:59:59Z); earlier than 0
/// and later than this are clamped, so `expiration - now` and dates
/// shown from it cannot overflow.
pub const MAX_TIME: i64 = 253_402_300_799;

/// A unix time a server gave, clamped to 0..=[`MAX_TIME`].
pub fn clean_time(t: i64) -> i64 {
    t.clamp(0, MAX_TIME)
}

/// A character we never pass on: C0 and C1 controls and DEL, zero-width
/// and bidi formatting characters (LRM/RLM, embeddings, overrides,
/// isolates, the Arabic letter mark), line and paragraph separators, the
/// byte-order mark and word joiners.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
        )
}

/// One line of text fit to show: tabs and line breaks become spaces,
/// unsafe characters are dropped, and the result is cut to `max`
/// characters (the last one then `…`).
pub fn clean_text(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max * 4));
    let mut n = 0;
    for c in s.chars() {
        let c = match c {
            '\t' | '\n' | '\r' => ' ',
            c if is_unsafe(c) => continue,
            c => c,
        };
        if n == max {
            out.pop();
            out.push('…');
            return out;
        }
        out.push(c);
        n += 1;
    }
    out
}

/// A URL an app may show or open: `http://` or `https://` only, with no
/// unsafe character, space or quote, at most [`MAX_URL_CHARS`]; anything
/// else (`javascript:`, `file:`, an escape sequence) is dropped.
pub fn clean_url(s: &str) -> Option<String> {
    let lower = s.get(..8).unwrap_or(s).to_ascii_lowercase();
    let scheme_ok = lower.starts_with("https://") || lower.starts_with("http://");
    let chars_ok = s
        .chars()
        .all(|c| !is_unsafe(c) && !c.is_whitespace() && !matches!(c, '"' | '<' | '>' | '`'));
    (scheme_ok && chars_ok && s.chars().count() <= MAX_URL_CHARS).then(|| s.to_string())
}

/// Check an escrow id a server gave: printable ASCII, 1 to
/// [`MAX_ID_CHARS`] characters. It goes into packs, logs and errors
/// verbatim, so it is refused rather than altered.
pub fn check_id(id: &str, what: &str) -> Result<()> {
    let ok = !id.is_empty() && id.len() <= MAX_ID_CHARS && id.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(Error::protocol(format!(
            "{what} has an escrow id that is not 1 to {MAX_ID_CHARS} printable ASCII characters"
        )))
    }
}

/// A server's answer, cleaned before the client uses it.
pub trait Untrusted: Sized {
    /// The answer with every text cleaned; an error when a field that
    /// cannot be cleaned (an id) is unusable. `what` names the answer.
    fn into_clean(self, what: &str) -> Result<Self>;
}

impl Untrusted for ServerPolicy {
    fn into_clean(mut self, _what: &str) -> Result<Self> {
        self.versions = self
            .versions
            .iter()
            .take(16)
            .map(|v| clean_text(v, MAX_LABEL_CHARS))
            .collect();
        self.country_code = clean_text(&self.country_code, MAX_LABEL_CHARS);
        self.about_url = clean_url(&self.about_url).unwrap_or_default();
        self.kinds = self
            .kinds
            .iter()
            .take(64)
            .map(|k| clean_text(k, MAX_LABEL_CHARS))
            .collect();
        self.payment_schemes.truncate(64);
        for p in &mut self.payment_schemes {
            clean_scheme(p);
        }
        Ok(self)
    }
}

fn clean_scheme(p: &mut PaymentScheme) {
    p.scheme = clean_text(&p.scheme, MAX_LABEL_CHARS);
    p.scheme_id = clean_text(&p.scheme_id, MAX_LABEL_CHARS);
    p.description = clean_text(&p.description, MAX_DESCRIPTION_CHARS);
    p.tokens = None;
}

impl Untrusted for EscrowResponse {
    fn into_clean(mut self, what: &str) -> Result<Self> {
        check_id(&self.escrow_data_id, what)?;
        self.expiration = clean_time(self.expiration);
        Ok(self)
    }
}

impl Untrusted for VerificationResponse {
    fn into_clean(mut self, what: &str) -> Result<Self> {
        check_id(&self.escrow_data_id, what)?;
        self.expiration = clean_time(self.expiration);
        self.hint = clean_text(&self.hint, MAX_HINT_CHARS);
        self.action_url = self.action_url.as_deref().and_then(clean_url);
        Ok(self)
    }
}

impl Untrusted for RecoveryResponse {
    fn into_clean(self, _what: &str) -> Result<Self> {
        // The secret is a share or a sealed pack: it is parsed, never shown.
        Ok(self)
    }
}

impl Untrusted for DeletionResponse {
    fn into_clean(mut self, _what: &str) -> Result<Self> {
        if let Some(id) = &self.escrow_data_id {
            if check_id(id, "").is_err() {
                self.escrow_data_id = None;
            }
        }
        Ok(self)
    }
}

impl Untrusted for ErrorAnswer {
    fn into_clean(mut self, _what: &str) -> Result<Self> {
        self.error = clean_text(&self.error, MAX_ERROR_CHARS);
        self.error_kind = self
            .error_kind
            .as_deref()
            .map(|k| clean_text(k, MAX_LABEL_CHARS));
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_bidi_are_dropped() {
        let hostile = "b*@e*ple.org\u{1b}]0;pwned\u{7}\u{1b}[2J\u{202e}gro.live\u{2066}x\u{9b}31m";
        let clean = clean_text(hostile, MAX_HINT_CHARS);
        assert!(!clean.chars().any(is_unsafe), "{clean:?}");
        assert!(!clean.contains('\u{1b}') && !clean.contains('\u{202e}'));
        assert_eq!(clean, "b*@e*ple.org]0;pwned[2Jgro.livex31m");
        assert_eq!(clean_text("a\nb\tc", 10), "a b c");
    }

    #[test]
    fn length_is_bounded_in_characters() {
        assert_eq!(clean_text("abcdef", 4), "abc…");
        assert_eq!(clean_text("abcd", 4), "abcd");
        let long = "é".repeat(10_000);
        assert_eq!(clean_text(&long, 300).chars().count(), 300);
    }

    #[test]
    fn urls_must_be_http() {
        assert_eq!(
            clean_url("https://ex.org/a?b=c").as_deref(),
            Some("https://ex.org/a?b=c")
        );
        assert!(clean_url("HTTP://ex.org").is_some());
        for bad in [
            "javascript:alert(1)",
            "file:///etc/passwd",
            "https://ex.org/\u{1b}[2J",
            "https://ex.org/ a",
            "https://ex.org/\"onclick",
            "",
        ] {
            assert_eq!(clean_url(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn times_are_clamped() {
        assert_eq!(clean_time(i64::MIN), 0);
        assert_eq!(clean_time(-1), 0);
        assert_eq!(clean_time(1_700_000_000), 1_700_000_000);
        assert_eq!(clean_time(i64::MAX), MAX_TIME);
        assert!(clean_time(i64::MAX).checked_sub(i64::MAX).is_some());
    }

    #[test]
    fn ids_are_checked_not_altered() {
        assert!(check_id("1699999999-abcDEF_0:=+/", "t").is_ok());
        for bad in ["", "a b", "id\u{1b}[2J", "é", &"x".repeat(257)] {
            assert!(check_id(bad, "t").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn answers_are_cleaned() {
        let v = VerificationResponse {
            version: super::super::Version,
            escrow_data_id: "abc".into(),
            expiration: 1,
            hint: "\u{1b}[31mred".into(),
            action_url: Some("javascript:x".into()),
        };
        let v = v.into_clean("t").unwrap();
        assert_eq!(v.hint, "[31mred");
        assert_eq!(v.action_url, None);
        let e = ErrorAnswer {
            error: format!("{}\u{1b}]0;x", "e".repeat(1000)),
            attempts_left: Some(2),
            error_kind: Some("wrong-code".into()),
            release_at: None,
        }
        .into_clean("t")
        .unwrap();
        assert_eq!(e.error.chars().count(), MAX_ERROR_CHARS);
        assert_eq!(e.error_kind.as_deref(), Some("wrong-code"));
    }
}
