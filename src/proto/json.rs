//! JSON in and out: parsing a message of a known type (errors that never
//! echo a value), error answers, and a formatter producing Python's
//! `json.dumps(indent=2)` byte for byte.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{Error, Result};

/// Strip values out of a serde_json error message, keeping its shape.
///
/// serde quotes offending values ("invalid type: string \"123456\""), and a
/// value may be a code or a key; we keep only what was expected and where.
pub fn sanitize_json_error(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    let loc = format!(" at line {} column {}", e.line(), e.column());
    let core = msg.strip_suffix(&loc).unwrap_or(&msg);
    let cleaned = if core.starts_with("invalid type") || core.starts_with("invalid value") {
        let what = if core.starts_with("invalid type") {
            "invalid type"
        } else {
            "invalid value"
        };
        match core.find(", expected") {
            Some(i) => format!("{what}{}", &core[i..]),
            None => what.to_string(),
        }
    } else if core.contains('"') && !core.starts_with("unknown field") {
        // Custom messages (identity, version) are built by us and are safe;
        // anything else quoting a value is cut at the quote.
        core.split('"')
            .next()
            .unwrap_or(core)
            .trim_end()
            .to_string()
    } else {
        core.to_string()
    };
    if e.line() > 0 {
        format!("{cleaned}{loc}")
    } else {
        cleaned
    }
}

/// Parse a JSON message of a known type; `what` names it in errors.
pub fn parse<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::protocol(format!("{what}: {}", sanitize_json_error(&e))))
}

/// An error answer: `{"error": "..."}` plus anything else the server adds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorAnswer {
    /// The error text.
    pub error: String,
    /// Our servers say how many tries a code has left.
    pub attempts_left: Option<u32>,
    /// Our servers classify their errors (`wrong-code`, `not-found`, ...).
    pub error_kind: Option<String>,
    /// Ours, with `error-kind` `pending`: when a delayed release is due
    /// (unix time).
    pub release_at: Option<i64>,
}

/// If `bytes` is a JSON object with an `"error"` string, return it.
///
/// The reference puts `error` inside typed responses, so this is read
/// before parsing the typed answer.
pub fn error_answer(bytes: &[u8]) -> Option<ErrorAnswer> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let obj = v.as_object()?;
    let error = obj.get("error")?.as_str()?.to_string();
    Some(ErrorAnswer {
        error,
        attempts_left: obj
            .get("attempts-left")
            .and_then(|a| a.as_u64())
            .map(|a| a.min(u32::MAX as u64) as u32),
        error_kind: obj
            .get("error-kind")
            .and_then(|a| a.as_str())
            .map(str::to_string),
        release_at: obj.get("release-at").and_then(|a| a.as_i64()),
    })
}

/// A serde_json formatter that writes like Python's
/// `json.dumps(obj, indent=2)`: two-space indent, `": "` separators,
/// non-ASCII escaped as `\uXXXX`, no trailing newline.
struct PythonFormatter<'a> {
    inner: serde_json::ser::PrettyFormatter<'a>,
}

impl serde_json::ser::Formatter for PythonFormatter<'_> {
    fn begin_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.inner.begin_array(w)
    }
    fn end_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.inner.end_array(w)
    }
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.inner.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.inner.end_array_value(w)
    }
    fn begin_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.inner.begin_object(w)
    }
    fn end_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.inner.end_object(w)
    }
    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.inner.begin_object_key(w, first)
    }
    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.inner.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.inner.end_object_value(w)
    }
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        if fragment.is_ascii() {
            return w.write_all(fragment.as_bytes());
        }
        let mut buf = [0u16; 2];
        for c in fragment.chars() {
            if c.is_ascii() {
                w.write_all(&[c as u8])?;
            } else {
                for unit in c.encode_utf16(&mut buf) {
                    write!(w, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }
}

/// Serialise as python-passcrow does (`json.dumps(indent=2)`, ASCII-escaped).
pub fn to_reference_json<T: Serialize>(value: &T) -> String {
    let mut out = Vec::with_capacity(512);
    let fmt = PythonFormatter {
        inner: serde_json::ser::PrettyFormatter::with_indent(b"  "),
    };
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    // Serialising our own types to memory cannot fail (no maps with
    // non-string keys, no I/O errors).
    if value.serialize(&mut ser).is_err() {
        return String::from("{}");
    }
    // The formatter only writes ASCII.
    String::from_utf8(out).unwrap_or_default()
}
