//! [`Webhook`]: each message POSTed as JSON to a URL.

use super::{http_agent, http_error, Deliver, Outgoing};
use crate::crypto::SecretString;
use crate::server::error::ServerResult;

/// POSTs each message as JSON to a URL:
/// `{"to", "kind", "address", "language", "type": "code"|"notice",
/// "code"?, "subject", "text", "short-text"}`.
pub struct Webhook {
    url: String,
    bearer: Option<SecretString>,
    agent: ureq::Agent,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Webhook({})", self.url)
    }
}

impl Webhook {
    /// A webhook; `bearer` is sent as `Authorization: Bearer ...`.
    pub fn new(url: &str, bearer: Option<SecretString>) -> Webhook {
        Webhook {
            url: url.to_string(),
            bearer,
            agent: http_agent(),
        }
    }
}

impl Deliver for Webhook {
    fn name(&self) -> &str {
        "webhook"
    }

    fn deliver(&self, msg: &Outgoing) -> ServerResult<()> {
        let body = serde_json::json!({
            "to": msg.to.as_str(),
            "kind": msg.to.kind(),
            "address": msg.to.address(),
            "language": msg.language,
            "type": if msg.code().is_some() { "code" } else { "notice" },
            "code": msg.code(),
            "subject": msg.subject(),
            "text": msg.long_text(),
            "short-text": msg.short_text(),
        });
        let mut req = self
            .agent
            .post(&self.url)
            .set("Content-Type", "application/json");
        if let Some(b) = &self.bearer {
            req = req.set("Authorization", &format!("Bearer {}", b.expose_secret()));
        }
        req.send_bytes(body.to_string().as_bytes())
            .map(|_| ())
            .map_err(|e| http_error("webhook", "webhook", e))
    }
}
