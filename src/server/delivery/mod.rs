//! Getting codes (and recovery notices) to people.
//!
//! A [`Deliver`] sends one [`Outgoing`] message to one identity; the server
//! picks a deliverer per identity kind. Shipped: SMTP ([`Smtp`], via
//! lettre), Twilio-compatible SMS ([`TwilioSms`]), a generic JSON webhook
//! ([`Webhook`]) and a file sink for tests and demos ([`FileSink`]).
//!
//! Deliverers are called from blocking threads. Their errors go to the
//! log, so they never contain the code, and name identities only masked.

mod file;
pub mod messages;
mod sms;
mod smtp;
mod webhook;

use std::time::Duration;

use crate::crypto::SecretString;
use crate::proto::Identity;
use crate::server::error::{ServerError, ServerResult};

pub use file::FileSink;
pub use sms::TwilioSms;
pub use smtp::{is_loopback_host, Smtp, SmtpSecurity, SmtpSettings};
pub use webhook::Webhook;

/// What to send.
#[derive(Clone, Debug)]
pub enum Notice {
    /// A verification code.
    Code {
        /// The code (prefix + digits).
        code: SecretString,
        /// Seconds it stays valid.
        timeout_seconds: i64,
    },
    /// Recovery was started for an escrow this identity watches.
    RecoveryStarted {
        /// Masked identity the code went to.
        code_sent_to: String,
    },
    /// The right code arrived for an escrow with a release delay: it is
    /// released at `due` unless stopped at `cancel_url` (a page that
    /// stops it on an explicit POST only).
    ReleasePending {
        /// When the release is due (unix time).
        due: i64,
        /// The cancel page.
        cancel_url: String,
    },
    /// Too many wrong codes were tried for an escrow this identity
    /// verifies or watches.
    TooManyWrongCodes {
        /// Until when (unix time) no code is checked; `None`: the escrow
        /// is frozen for good.
        paused_until: Option<i64>,
    },
}

/// One message to one identity.
#[derive(Clone, Debug)]
pub struct Outgoing {
    /// Who gets it.
    pub to: Identity,
    /// Language asked for (`en`, `is`; others fall back to English).
    pub language: String,
    /// The escrow's description (chosen by the client).
    pub description: String,
    /// The server's about URL (for signatures).
    pub about_url: String,
    /// What it says.
    pub notice: Notice,
    /// Who to contact about it and how to opt out (filled in by
    /// `Server::send`; leave it `Default::default()`).
    pub contact: Contact,
}

/// The footer facts of a message: where to complain, how to stop them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Contact {
    /// The abuse contact (or where to find the operator).
    pub abuse: String,
    /// The opt-out link, when the server's public URL is known.
    pub optout_url: Option<String>,
}

impl Outgoing {
    /// The code, when this is a code message.
    pub fn code(&self) -> Option<&str> {
        match &self.notice {
            Notice::Code { code, .. } => Some(code.expose_secret()),
            Notice::RecoveryStarted { .. }
            | Notice::TooManyWrongCodes { .. }
            | Notice::ReleasePending { .. } => None,
        }
    }

    /// A one-line subject.
    pub fn subject(&self) -> String {
        messages::subject(self)
    }

    /// The full text (e-mail).
    pub fn long_text(&self) -> String {
        messages::long(self)
    }

    /// The short text (SMS).
    pub fn short_text(&self) -> String {
        messages::short(self)
    }
}

/// Sends messages to identities of some kinds.
pub trait Deliver: Send + Sync {
    /// A name for logs (`smtp`, `twilio`, `webhook`, `file`).
    fn name(&self) -> &str;
    /// Send one message. The error (usually [`ServerError::Delivery`])
    /// must not contain the code, and names identities only masked.
    fn deliver(&self, msg: &Outgoing) -> ServerResult<()>;
}

/// The HTTP client of the HTTP deliverers (SMS, webhook): bounded waits.
fn http_agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .user_agent(concat!("passcrow-server/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// A delivery error from an HTTP error: the status or the transport
/// failure's kind, never the reply (it may quote the message).
fn http_error(kind: &'static str, what: &str, e: ureq::Error) -> ServerError {
    ServerError::delivery(
        kind,
        match e {
            ureq::Error::Status(code, _) => format!("{what}: HTTP {code}"),
            ureq::Error::Transport(t) => format!("{what}: {}", t.kind()),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A code message to `a@example.org` in `lang`.
    pub(super) fn out(lang: &str) -> Outgoing {
        Outgoing {
            to: Identity::parse("a@example.org").unwrap(),
            language: lang.into(),
            description: "Wallet".into(),
            about_url: "https://x.example/".into(),
            notice: Notice::Code {
                code: SecretString::from("A123456"),
                timeout_seconds: 1800,
            },
            contact: Contact {
                abuse: "abuse@x.example".into(),
                optout_url: Some("https://x.example/passcrow/optout/TOKEN".into()),
            },
        }
    }

    #[test]
    fn texts() {
        let en = out("en");
        assert!(en.long_text().contains("A123456"));
        assert!(en.long_text().contains("30 minutes"));
        assert!(en.short_text().contains("A123456"));
        let is = out("is");
        assert!(is.long_text().contains("mínútur"));
        assert!(!is.long_text().contains("minutes"));
        // Unknown languages fall back to English.
        assert_eq!(out("xx").long_text(), en.long_text());
        let mut n = out("en");
        n.notice = Notice::RecoveryStarted {
            code_sent_to: "b*@e*ple.org".into(),
        };
        assert!(!n.long_text().contains("A123456"));
        assert!(n.long_text().contains("b*@e*ple.org"));
        // 2027-01-15 14:05:00 UTC.
        let t = 1_799_935_500;
        for (lang, until, frozen) in [
            (
                "en",
                "until 14:05 UTC",
                "frozen its part of the data for good",
            ),
            ("is", "fyrr en kl. 14:05 (UTC)", "fryst"),
        ] {
            let mut n = out(lang);
            n.notice = Notice::TooManyWrongCodes {
                paused_until: Some(t),
            };
            assert!(n.long_text().contains(until), "{}", n.long_text());
            assert!(n.short_text().contains("14:05"), "{}", n.short_text());
            assert!(n.subject().starts_with("Passcrow"), "{}", n.subject());
            assert!(n.code().is_none());
            n.notice = Notice::TooManyWrongCodes { paused_until: None };
            assert!(n.long_text().contains(frozen), "{}", n.long_text());
            assert!(n.long_text().contains("passcrow renew"));
            assert!(n.short_text().contains("passcrow renew"));
            assert!(n.long_text().lines().all(|l| l.chars().count() < 72));
        }
    }
}
