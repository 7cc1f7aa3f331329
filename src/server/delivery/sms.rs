//! [`TwilioSms`]: SMS through a Twilio-compatible REST API.

use super::{http_agent, http_error, Deliver, Outgoing};
use crate::crypto::{b64encode, SecretString};
use crate::server::error::{ServerError, ServerResult};

/// Sends SMS through a Twilio-compatible REST API: a form POST of
/// `To`, `From` (or `MessagingServiceSid`) and `Body` with basic auth to
/// `{base_url}/2010-04-01/Accounts/{sid}/Messages.json`.
pub struct TwilioSms {
    url: String,
    sid: String,
    token: SecretString,
    from: Option<String>,
    service: Option<String>,
    agent: ureq::Agent,
}

impl std::fmt::Debug for TwilioSms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TwilioSms({})", self.url)
    }
}

impl TwilioSms {
    /// Kinds SMS serves.
    pub const KINDS: &'static [&'static str] = &["sms", "tel"];
    /// Twilio's own API.
    pub const DEFAULT_BASE_URL: &'static str = "https://api.twilio.com";

    /// An SMS sender; `base_url` = `None` means Twilio itself.
    pub fn new(
        base_url: Option<&str>,
        account_sid: &str,
        auth_token: SecretString,
        from: Option<String>,
        messaging_service_sid: Option<String>,
    ) -> ServerResult<TwilioSms> {
        if from.is_none() && messaging_service_sid.is_none() {
            return Err(ServerError::delivery(
                "twilio",
                "SMS needs a from number or a messaging service SID",
            ));
        }
        let base = base_url
            .unwrap_or(Self::DEFAULT_BASE_URL)
            .trim_end_matches('/');
        Ok(TwilioSms {
            url: format!("{base}/2010-04-01/Accounts/{account_sid}/Messages.json"),
            sid: account_sid.to_string(),
            token: auth_token,
            from,
            service: messaging_service_sid,
            agent: http_agent(),
        })
    }
}

impl Deliver for TwilioSms {
    fn name(&self) -> &str {
        "twilio"
    }

    fn deliver(&self, msg: &Outgoing) -> ServerResult<()> {
        let to: String = msg
            .to
            .address()
            .chars()
            .filter(|c| c.is_ascii_digit() || *c == '+')
            .collect();
        let body = msg.short_text();
        let auth = b64encode(format!("{}:{}", self.sid, self.token.expose_secret()).as_bytes());
        let mut form: Vec<(&str, &str)> = vec![("To", &to), ("Body", &body)];
        if let Some(f) = &self.from {
            form.push(("From", f));
        }
        if let Some(s) = &self.service {
            form.push(("MessagingServiceSid", s));
        }
        self.agent
            .post(&self.url)
            .set("Authorization", &format!("Basic {auth}"))
            .send_form(&form)
            .map(|_| ())
            .map_err(|e| http_error("twilio", "SMS API", e))
    }
}
