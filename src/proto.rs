//! The Passcrow wire protocol: messages, versions and identities.
//!
//! Every message is a JSON object with dash-named keys and a version field
//! equal to `"1.0"`. python-passcrow 0.0.7 rejects any key it does not know,
//! so these types carry exactly the reference's keys, and we reject unknown
//! keys too. Fields are declared in the order the reference writes them.
//!
//! Nothing here knows about the network.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::crypto::SecretString;
use crate::{Error, Result};

/// The protocol version we speak.
pub const PROTO_VERSION: &str = "1.0";

/// The `"1.0"` version field; anything else is refused when parsing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Version;

impl Serialize for Version {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(PROTO_VERSION)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let v = String::deserialize(d)?;
        if v == PROTO_VERSION {
            Ok(Version)
        } else {
            Err(serde::de::Error::custom(format!(
                "unsupported protocol version {v:?} (we speak {PROTO_VERSION})"
            )))
        }
    }
}

/// The kinds python-passcrow can verify, with the words it shows users.
pub fn explain_kind(kind: &str) -> &str {
    match kind {
        "email" | "mailto" => "e-mail to",
        "tel" => "SMS or a phone call to",
        "sms" => "SMS to",
        other => other,
    }
}

/// An identity a code can be sent to: `kind:address`.
///
/// Bare e-mail addresses become `email:`, bare phone numbers `tel:`, as in
/// the reference. `email`/`mailto` and `tel`/`sms` addresses are checked
/// the way the reference checks them; other kinds need a plain kind name
/// and a non-empty address.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identity(String);

/// The reference's phone pattern `^\+?(\d[- ]?)+\d\d$`, without a regex engine.
fn is_phone(s: &str) -> bool {
    let s = s.strip_prefix('+').unwrap_or(s);
    let b = s.as_bytes();
    if b.len() < 3 || !b[0].is_ascii_digit() {
        return false;
    }
    let n = b.len();
    if !b[n - 1].is_ascii_digit() || !b[n - 2].is_ascii_digit() {
        return false;
    }
    let mut digits = 0;
    let mut prev_sep = false;
    for &c in b {
        match c {
            b'0'..=b'9' => {
                digits += 1;
                prev_sep = false;
            }
            b'-' | b' ' => {
                if prev_sep {
                    return false;
                }
                prev_sep = true;
            }
            _ => return false,
        }
    }
    digits >= 3
}

/// The reference's weak e-mail pattern `^\S+@[A-Za-z0-9][A-Za-z0-9-\.]*[A-Za-z0-9]$`.
fn is_email(s: &str) -> bool {
    let Some(at) = s.rfind('@') else {
        return false;
    };
    let (user, domain) = (&s[..at], &s[at + 1..]);
    if user.is_empty() || user.chars().any(char::is_whitespace) {
        return false;
    }
    let d = domain.as_bytes();
    if d.len() < 2 {
        return false;
    }
    let edge = |c: u8| c.is_ascii_alphanumeric();
    edge(d[0])
        && edge(d[d.len() - 1])
        && d.iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.')
}

impl Identity {
    /// Parse and normalise an identity.
    pub fn parse(text: &str) -> Result<Identity> {
        let t = text.trim();
        let full = if t.contains(':') {
            t.to_string()
        } else if t.contains('@') {
            format!("email:{t}")
        } else if t.len() < 25 && is_phone(t) {
            format!("tel:{t}")
        } else {
            return Err(Error::bad_input(format!(
                "{t:?} is not an identity (want an e-mail address, a phone number or kind:address)"
            )));
        };
        let (kind, addr) = full.split_once(':').unwrap_or(("", ""));
        let kind_ok = !kind.is_empty()
            && kind.len() <= 32
            && kind.as_bytes()[0].is_ascii_lowercase()
            && kind
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"+.-".contains(&c));
        if !kind_ok {
            return Err(Error::bad_input(format!(
                "{full:?}: identity kind {kind:?} is not a plain lower-case name"
            )));
        }
        if addr.is_empty() || addr.chars().any(char::is_control) || full.len() > 320 {
            return Err(Error::bad_input(format!(
                "{kind}: identity address is empty, too long or contains control characters"
            )));
        }
        match kind {
            "email" | "mailto" if !is_email(addr) => {
                return Err(Error::bad_input(format!(
                    "{full:?} does not look like an e-mail address"
                )))
            }
            "tel" | "sms" if full.len() > 24 || !is_phone(addr) => {
                return Err(Error::bad_input(format!(
                    "{full:?}: phone numbers should be digits, dashes and spaces"
                )))
            }
            _ => {}
        }
        Ok(Identity(full))
    }

    /// The kind (`email`, `tel`, ...).
    pub fn kind(&self) -> &str {
        self.0.split_once(':').map(|x| x.0).unwrap_or("")
    }

    /// The address part.
    pub fn address(&self) -> &str {
        self.0.split_once(':').map(|x| x.1).unwrap_or("")
    }

    /// The full `kind:address` text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Identities are personal data: Debug shows the kind and a masked address.
impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = self.address();
        let first: String = a.chars().take(1).collect();
        write!(f, "Identity({}:{}***)", self.kind(), first)
    }
}

impl std::str::FromStr for Identity {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Identity::parse(s)
    }
}

impl Serialize for Identity {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Identity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Identity::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// `POST /passcrow/escrowrequest`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscrowRequest {
    /// Version field.
    #[serde(rename = "passcrow-escrow-request")]
    pub version: Version,
    /// Encrypted [`EscrowParameters`].
    pub parameters: String,
    /// The key that opens `parameters` (base64).
    #[serde(rename = "parameters-key")]
    pub parameters_key: String,
    /// Encrypted [`EscrowData`] blobs (the reference sends exactly one).
    #[serde(rename = "escrow-data")]
    pub escrow_data: Vec<String>,
}

/// The parameters of an escrow request, readable by the server at once.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscrowParameters {
    /// Identity kind only (not the address).
    pub kind: String,
    /// Absolute unix time the client wants the escrow kept until.
    pub expiration: i64,
    /// Payment token (`free:0`, `hashcash-B:%x-%x`).
    pub payment: String,
    /// An escrow id the client would like (ephemeral escrow).
    #[serde(rename = "prefer-id", skip_serializing_if = "Option::is_none", default)]
    pub prefer_id: Option<String>,
}

/// The escrowed data, readable only with the recovery key.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscrowData {
    /// Short text shown to the user in the verification message.
    pub description: String,
    /// A share string, or for ephemeral escrow an encrypted pack.
    pub secret: SecretString,
    /// Where the verification code goes.
    pub verify: Identity,
    /// Seconds the code stays valid.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub timeout: Option<i64>,
    /// Who is told when recovery starts.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub notify: Option<Identity>,
}

impl fmt::Debug for EscrowData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EscrowData")
            .field("description", &self.description)
            .field("secret", &"[redacted]")
            .field("verify", &self.verify)
            .field("timeout", &self.timeout)
            .field("notify", &self.notify)
            .finish()
    }
}

/// The answer to an escrow request.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EscrowResponse {
    /// Version field.
    #[serde(rename = "passcrow-escrow-response")]
    pub version: Version,
    /// Unix time the escrow expires.
    pub expiration: i64,
    /// The id to ask for this escrow by.
    #[serde(rename = "escrow-data-id")]
    pub escrow_data_id: String,
}

/// `POST /passcrow/verificationrequest`: please send me a code.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerificationRequest {
    /// Version field.
    #[serde(rename = "passcrow-verification-request")]
    pub version: Version,
    /// Language for the message (`en`, `is`).
    #[serde(default = "default_language")]
    pub language: String,
    /// The one character the code must start with.
    pub prefix: String,
    /// Which escrow.
    #[serde(rename = "escrow-data-id")]
    pub escrow_data_id: String,
    /// The recovery key (base64) that opens the escrow data.
    #[serde(rename = "escrow-data-key")]
    pub escrow_data_key: SecretString,
}

fn default_language() -> String {
    "en".into()
}

impl fmt::Debug for VerificationRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerificationRequest")
            .field("language", &self.language)
            .field("prefix", &self.prefix)
            .field("escrow_data_id", &self.escrow_data_id)
            .field("escrow_data_key", &"[redacted]")
            .finish()
    }
}

/// The answer to a verification request.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct VerificationResponse {
    /// Version field.
    #[serde(rename = "passcrow-verification-response")]
    pub version: Version,
    /// Which escrow.
    #[serde(rename = "escrow-data-id")]
    pub escrow_data_id: String,
    /// Unix time the code stops working.
    pub expiration: i64,
    /// Where the code went, masked (`b*@e*ple.org`).
    pub hint: String,
    /// A page where the user can find the code, for some kinds.
    #[serde(
        rename = "action-url",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub action_url: Option<String>,
}

/// `POST /passcrow/recoveryrequest`: here is my code, give me the secret.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoveryRequest {
    /// Version field.
    #[serde(rename = "passcrow-recovery-request")]
    pub version: Version,
    /// The verification code.
    pub verification: SecretString,
    /// Which escrow.
    #[serde(rename = "escrow-data-id")]
    pub escrow_data_id: String,
    /// The recovery key (base64).
    #[serde(rename = "escrow-data-key")]
    pub escrow_data_key: SecretString,
}

impl fmt::Debug for RecoveryRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecoveryRequest")
            .field("escrow_data_id", &self.escrow_data_id)
            .field("verification", &"[redacted]")
            .field("escrow_data_key", &"[redacted]")
            .finish()
    }
}

/// The answer to a recovery request: the escrowed secret.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoveryResponse {
    /// Version field.
    #[serde(rename = "passcrow-recovery-response")]
    pub version: Version,
    /// The share (or encrypted pack, for ephemeral escrow).
    #[serde(rename = "escrow-secret")]
    pub escrow_secret: SecretString,
}

impl fmt::Debug for RecoveryResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecoveryResponse { escrow_secret: [redacted] }")
    }
}

/// `POST /passcrow/deletionrequest`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeletionRequest {
    /// Version field.
    #[serde(rename = "passcrow-deletion-request")]
    pub version: Version,
    /// Which escrow.
    #[serde(rename = "escrow-data-id")]
    pub escrow_data_id: String,
}

/// The answer to a deletion request.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeletionResponse {
    /// Version field.
    #[serde(rename = "passcrow-deletion-response")]
    pub version: Version,
    /// Which escrow (the reference's server leaves it out).
    #[serde(
        rename = "escrow-data-id",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub escrow_data_id: Option<String>,
}

/// One way to pay for an escrow.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PaymentScheme {
    /// `free` or `hashcash`.
    pub scheme: String,
    /// The token prefix (`free`, `hashcash-11`).
    #[serde(rename = "scheme-id")]
    pub scheme_id: String,
    /// Human text.
    pub description: String,
    /// How long an escrow paid this way is kept.
    #[serde(rename = "expiration-seconds")]
    pub expiration_seconds: i64,
    /// Bits of work for hashcash.
    #[serde(
        rename = "hashcash-bits",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub hashcash_bits: Option<u32>,
    /// Reserved by the reference; never sent by it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tokens: Option<Vec<String>>,
}

/// A server's policy: what it offers and requires.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ServerPolicy {
    /// Protocol versions spoken.
    #[serde(rename = "passcrow-versions")]
    pub versions: Vec<String>,
    /// Where the operator is (ISO country code or `??`).
    #[serde(rename = "country-code")]
    pub country_code: String,
    /// The operator's page.
    #[serde(rename = "about-url")]
    pub about_url: String,
    /// Identity kinds the server can deliver codes to.
    pub kinds: Vec<String>,
    /// Largest request body accepted.
    #[serde(rename = "max-request-bytes")]
    pub max_request_bytes: u64,
    /// Longest escrow lifetime.
    #[serde(rename = "max-expiration-seconds")]
    pub max_expiration_seconds: i64,
    /// Longest code lifetime.
    #[serde(rename = "max-timeout-seconds")]
    pub max_timeout_seconds: i64,
    /// Ways to pay.
    #[serde(rename = "payment-schemes")]
    pub payment_schemes: Vec<PaymentScheme>,
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn identities_normalise() {
        assert_eq!(
            Identity::parse("bre@example.org").unwrap().as_str(),
            "email:bre@example.org"
        );
        assert_eq!(
            Identity::parse("+354 588-5522").unwrap().as_str(),
            "tel:+354 588-5522"
        );
        assert_eq!(Identity::parse("mailto:a@b.cd").unwrap().kind(), "mailto");
        assert_eq!(
            Identity::parse("signal:+3545885522").unwrap().kind(),
            "signal"
        );
        for bad in [
            "",
            "12",
            "nobody",
            "email:nobody",
            "email:a@b",
            "tel:abc",
            "Email:a@b.cd",
            ":x",
            "x:",
            "tel:+1234567890123456789012",
        ] {
            assert!(Identity::parse(bad).is_err(), "{bad}");
        }
        assert!(is_phone("1-23") && is_phone("123") && !is_phone("12-3") && !is_phone("1--23"));
        assert!(
            !format!("{:?}", Identity::parse("secret@example.org").unwrap()).contains("secret")
        );
    }

    #[test]
    fn python_style_json() {
        let r = DeletionResponse {
            version: Version,
            escrow_data_id: Some("é-x".into()),
        };
        assert_eq!(
            to_reference_json(&r),
            "{\n  \"passcrow-deletion-response\": \"1.0\",\n  \"escrow-data-id\": \"\\u00e9-x\"\n}"
        );
        let s: Vec<String> = vec![];
        assert_eq!(to_reference_json(&s), "[]");
        assert_eq!(to_reference_json(&"😀"), "\"\\ud83d\\ude00\"");
    }

    #[test]
    fn versions_and_unknown_keys() {
        let ok = br#"{"passcrow-deletion-request": "1.0", "escrow-data-id": "x"}"#;
        assert!(parse::<DeletionRequest>(ok, "t").is_ok());
        let v2 = br#"{"passcrow-deletion-request": "2.0", "escrow-data-id": "x"}"#;
        let e = parse::<DeletionRequest>(v2, "t").unwrap_err().to_string();
        assert!(e.contains("unsupported protocol version"), "{e}");
        let extra = br#"{"passcrow-deletion-request": "1.0", "escrow-data-id": "x", "z": 1}"#;
        let e = parse::<DeletionRequest>(extra, "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `z`"), "{e}");
        let missing = br#"{"passcrow-deletion-request": "1.0"}"#;
        let e = parse::<DeletionRequest>(missing, "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing field `escrow-data-id`"), "{e}");
    }

    #[test]
    fn errors_do_not_echo_values() {
        let b = br#"{"passcrow-recovery-request": "1.0", "verification": 1234567, "escrow-data-id": "x", "escrow-data-key": "k"}"#;
        let e = parse::<RecoveryRequest>(b, "t").unwrap_err().to_string();
        assert!(!e.contains("1234567"), "{e}");
        let b = br#"{"passcrow-recovery-request": "1.0", "verification": "A123456", "escrow-data-id": 5, "escrow-data-key": "k"}"#;
        let e = parse::<RecoveryRequest>(b, "t").unwrap_err().to_string();
        assert!(!e.contains("A123456"), "{e}");
    }

    #[test]
    fn error_answers() {
        let e = error_answer(
            br#"{"passcrow-recovery-response": "1.0", "error": "Incorrect verfication code"}"#,
        )
        .unwrap();
        assert_eq!(e.error, "Incorrect verfication code");
        assert_eq!(
            error_answer(br#"{"error": "x", "attempts-left": 2}"#)
                .unwrap()
                .attempts_left,
            Some(2)
        );
        assert!(error_answer(b"<html>").is_none());
        assert!(error_answer(br#"{"error": 5}"#).is_none());
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in ".{0,400}") {
            let b = s.as_bytes();
            let _ = parse::<EscrowRequest>(b, "t");
            let _ = parse::<EscrowData>(b, "t");
            let _ = parse::<VerificationResponse>(b, "t");
            let _ = parse::<ServerPolicy>(b, "t");
            let _ = error_answer(b);
            let _ = Identity::parse(&s);
        }

        #[test]
        fn json_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse::<RecoveryRequest>(&b, "t");
            let _ = error_answer(&b);
        }
    }
}
