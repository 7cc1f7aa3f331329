//! The Passcrow wire protocol: messages, versions and identities.
//!
//! Every message is a JSON object with dash-named keys and a version field
//! equal to `"1.0"`. python-passcrow 0.0.7 rejects any key it does not know,
//! so these types carry exactly the reference's keys, and we reject unknown
//! keys too. Fields are declared in the order the reference writes them.
//!
//! Nothing here knows about the network.

pub mod health;
mod identity;
mod json;
pub mod untrusted;

pub use identity::{explain_kind, Identity, MAX_TOTP_LABEL_CHARS};
pub use json::{error_answer, parse, sanitize_json_error, to_reference_json, ErrorAnswer};
pub use untrusted::Untrusted;

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::crypto::SecretString;

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
    /// Ours, for a `totp:` identity only: its TOTP secret (base32). Such
    /// escrow data goes only to a server that lists the `totp` kind in its
    /// extensions (python-passcrow never reads it); every other escrow's
    /// data has exactly the reference's keys.
    #[serde(
        rename = "totp-secret",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub totp_secret: Option<SecretString>,
    /// Ours: seconds the server waits, after the right code, before it
    /// releases the secret (telling every identity, who may stop it). Only
    /// sent to a server that lists the `delay` escrow option.
    #[serde(
        rename = "release-delay",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub release_delay: Option<i64>,
}

impl fmt::Debug for EscrowData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EscrowData")
            .field("description", &self.description)
            .field("secret", &"[redacted]")
            .field("verify", &self.verify)
            .field("timeout", &self.timeout)
            .field("notify", &self.notify)
            .field(
                "totp_secret",
                &self.totp_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("release_delay", &self.release_delay)
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
#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
