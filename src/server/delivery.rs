//! Getting codes (and recovery notices) to people.
//!
//! A [`Deliver`] sends one [`Outgoing`] message to one identity; the server
//! picks a deliverer per identity kind. Shipped: SMTP ([`Smtp`], via
//! lettre), Twilio-compatible SMS ([`TwilioSms`]), a generic JSON webhook
//! ([`Webhook`]) and a file sink for tests and demos ([`FileSink`]).
//!
//! Deliverers are called from blocking threads. Their errors go to the
//! log, so they never contain the code, and name identities only masked.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use crate::crypto::{b64encode, SecretString};
use crate::proto::Identity;

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
}

impl Outgoing {
    /// The code, when this is a code message.
    pub fn code(&self) -> Option<&str> {
        match &self.notice {
            Notice::Code { code, .. } => Some(code.expose_secret()),
            Notice::RecoveryStarted { .. } => None,
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
    /// Send one message; the error text must not contain the code.
    fn deliver(&self, msg: &Outgoing) -> Result<(), String>;
}

/// The texts of messages, in English and Icelandic.
pub mod messages {
    use super::{Notice, Outgoing};

    fn is_icelandic(lang: &str) -> bool {
        let l = lang.trim().to_ascii_lowercase();
        l == "is" || l.starts_with("is-") || l.starts_with("is_")
    }

    fn clean(description: &str) -> String {
        // One line, no control characters, bounded.
        let d: String = description
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(100)
            .collect();
        let d = d.trim();
        if d.is_empty() {
            "Passcrow".into()
        } else {
            d.to_string()
        }
    }

    fn minutes(secs: i64) -> i64 {
        (secs.max(60) + 59) / 60
    }

    /// The subject line (the reference's: "DESCRIPTION Verification Code").
    pub fn subject(m: &Outgoing) -> String {
        let d = clean(&m.description);
        match (&m.notice, is_icelandic(&m.language)) {
            (Notice::Code { .. }, false) => format!("{d} Verification Code"),
            (Notice::Code { .. }, true) => format!("{d} Staðfestingarkóði"),
            (Notice::RecoveryStarted { .. }, false) => format!("{d} Recovery Started"),
            (Notice::RecoveryStarted { .. }, true) => format!("{d} Endurheimt hafin"),
        }
    }

    /// The e-mail text, signature included (lines under 72 characters).
    pub fn long(m: &Outgoing) -> String {
        let d = clean(&m.description);
        let is = is_icelandic(&m.language);
        let body = match (&m.notice, is) {
            (
                Notice::Code {
                    code,
                    timeout_seconds,
                },
                false,
            ) => format!(
                "{d}: {} is your verification code.\n\n\
                 This code expires in {} minutes. Don't share it with\n\
                 anyone. If you were not expecting this verification code,\n\
                 please ignore this message.",
                code.expose_secret(),
                minutes(*timeout_seconds)
            ),
            (
                Notice::Code {
                    code,
                    timeout_seconds,
                },
                true,
            ) => format!(
                "{d}: {} er staðfestingarkóðinn þinn.\n\n\
                 Kóðinn rennur út eftir {} mínútur. Ekki sýna neinum\n\
                 þennan kóða. Ef þú áttir ekki von á þessum staðfestingarkóða,\n\
                 skaltu hunsa þetta bréf.",
                code.expose_secret(),
                minutes(*timeout_seconds)
            ),
            (Notice::RecoveryStarted { code_sent_to }, false) => format!(
                "{d}: someone asked to recover this data, and a\n\
                 verification code was sent to {code_sent_to}.\n\n\
                 If that was you or someone you trust, all is well. If not,\n\
                 someone may be trying to take over the data: warn its owner."
            ),
            (Notice::RecoveryStarted { code_sent_to }, true) => format!(
                "{d}: einhver bað um að endurheimta þessi gögn og\n\
                 staðfestingarkóði var sendur á {code_sent_to}.\n\n\
                 Ef það varst þú eða einhver sem þú treystir er allt í lagi.\n\
                 Ef ekki, gæti einhver verið að reyna að komast yfir gögnin:\n\
                 láttu eigandann vita."
            ),
        };
        let sig = if is {
            format!(
                "Sent af Passcrow, opið kerfi til að endurheimta lykla og lykilorð.\n\
                 Nánari upplýsingar: {}",
                m.about_url
            )
        } else {
            format!(
                "Generated by Passcrow, an open community system for key and\n\
                 password recovery. Details: {}",
                m.about_url
            )
        };
        format!("{body}\n\n-- \n{sig}\n")
    }

    /// The SMS text.
    pub fn short(m: &Outgoing) -> String {
        let d = clean(&m.description);
        match (&m.notice, is_icelandic(&m.language)) {
            (
                Notice::Code {
                    code,
                    timeout_seconds,
                },
                false,
            ) => format!(
                "{d}: {} is your verification code. It expires in {} minutes. \
                 Don't share this code with anyone.",
                code.expose_secret(),
                minutes(*timeout_seconds)
            ),
            (
                Notice::Code {
                    code,
                    timeout_seconds,
                },
                true,
            ) => format!(
                "{d}: {} er staðfestingarkóðinn þinn. Hann rennur út eftir {} mínútur. \
                 Ekki sýna neinum þennan kóða.",
                code.expose_secret(),
                minutes(*timeout_seconds)
            ),
            (Notice::RecoveryStarted { code_sent_to }, false) => {
                format!("{d}: recovery was started, a code was sent to {code_sent_to}.")
            }
            (Notice::RecoveryStarted { code_sent_to }, true) => {
                format!("{d}: endurheimt hafin, kóði sendur á {code_sent_to}.")
            }
        }
    }
}

/// Appends `identity<TAB>code` lines to a file (for tests and demos).
/// Recovery notices are written as comment lines starting with `#`.
#[derive(Debug)]
pub struct FileSink {
    path: PathBuf,
    lock: Mutex<()>,
}

impl FileSink {
    /// Kinds the file sink serves.
    pub const KINDS: &'static [&'static str] = &["email", "mailto", "tel", "sms"];

    /// A sink appending to `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileSink {
            path: path.into(),
            lock: Mutex::new(()),
        }
    }
}

impl Deliver for FileSink {
    fn name(&self) -> &str {
        "file"
    }

    fn deliver(&self, msg: &Outgoing) -> Result<(), String> {
        let line = match &msg.notice {
            Notice::Code { code, .. } => format!("{}\t{}\n", msg.to, code.expose_secret()),
            Notice::RecoveryStarted { code_sent_to } => {
                format!(
                    "# notice\t{}\trecovery started, code sent to {code_sent_to}\n",
                    msg.to
                )
            }
        };
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut f = crate::util::files::private_file_options()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| format!("opening {}: {e}", self.path.display()))?;
        // One write of the whole line (O_APPEND): readers never see half a
        // line from us. Not synced: this sink is for tests and demos.
        f.write_all(line.as_bytes())
            .map_err(|e| format!("writing {}: {e}", self.path.display()))
    }
}

/// How an SMTP connection is secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// `smtp://`: no TLS (loopback relays only).
    Plain,
    /// `smtps://`: TLS from the start (port 465).
    Tls,
    /// `smtp+starttls://`: STARTTLS required (port 587).
    StartTls,
}

/// Where and how to send mail.
#[derive(Clone)]
pub struct SmtpSettings {
    /// Host name.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Security.
    pub security: SmtpSecurity,
    /// Login (user, password).
    pub login: Option<(String, SecretString)>,
    /// The From: address (`Passcrow <noreply@example.org>`).
    pub from: String,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("login", &self.login.as_ref().map(|l| &l.0))
            .field("from", &self.from)
            .finish()
    }
}

impl SmtpSettings {
    /// Parse `smtp://HOST[:PORT]`, `smtps://...`, `smtp+starttls://...`
    /// (an optional `USER:PASSWORD@` before the host is accepted too).
    pub fn from_url(url: &str, from: &str) -> Result<SmtpSettings, String> {
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            format!("SMTP URL {url:?} needs a scheme (smtp://, smtps://, smtp+starttls://)")
        })?;
        let (security, default_port) = match scheme {
            "smtp" => (SmtpSecurity::Plain, 25),
            "smtps" => (SmtpSecurity::Tls, 465),
            "smtp+starttls" => (SmtpSecurity::StartTls, 587),
            other => return Err(format!("unknown SMTP scheme {other:?}")),
        };
        let rest = rest.trim_end_matches('/');
        let (login, hostport) = match rest.rsplit_once('@') {
            Some((cred, hp)) => {
                let (u, p) = cred.split_once(':').unwrap_or((cred, ""));
                (Some((u.to_string(), SecretString::from(p))), hp)
            }
            None => (None, rest),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || hostport.starts_with('[') => (
                h.trim_matches(|c| c == '[' || c == ']').to_string(),
                p.parse::<u16>()
                    .map_err(|_| format!("bad SMTP port in {hostport:?}"))?,
            ),
            _ => (hostport.to_string(), default_port),
        };
        if host.is_empty() {
            return Err("SMTP URL has no host".into());
        }
        Ok(SmtpSettings {
            host,
            port,
            security,
            login,
            from: from.to_string(),
        })
    }
}

/// True for `localhost` and loopback addresses.
pub fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_matches(|c| c == '[' || c == ']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

/// Sends e-mail through an SMTP server.
pub struct Smtp {
    settings: SmtpSettings,
    transport: lettre::SmtpTransport,
}

impl std::fmt::Debug for Smtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Smtp({:?})", self.settings)
    }
}

impl Smtp {
    /// Kinds SMTP serves.
    pub const KINDS: &'static [&'static str] = &["email", "mailto"];

    /// A mailer for `settings`.
    pub fn new(settings: SmtpSettings) -> Result<Smtp, String> {
        use lettre::transport::smtp::authentication::Credentials;
        use lettre::transport::smtp::client::{Tls, TlsParameters};
        settings
            .from
            .parse::<lettre::message::Mailbox>()
            .map_err(|e| format!("bad mail-from address: {e}"))?;
        if settings.security == SmtpSecurity::Plain && !is_loopback_host(&settings.host) {
            return Err(format!(
                "plain smtp:// is only for a relay on this machine (not {}); \
                 use smtps:// or smtp+starttls://",
                settings.host
            ));
        }
        let builder = match settings.security {
            SmtpSecurity::Plain => {
                lettre::SmtpTransport::builder_dangerous(&settings.host).port(settings.port)
            }
            SmtpSecurity::Tls | SmtpSecurity::StartTls => {
                let tls = TlsParameters::new(settings.host.clone())
                    .map_err(|e| format!("TLS setup for {}: {e}", settings.host))?;
                let t = if settings.security == SmtpSecurity::Tls {
                    Tls::Wrapper(tls)
                } else {
                    Tls::Required(tls)
                };
                lettre::SmtpTransport::builder_dangerous(&settings.host)
                    .port(settings.port)
                    .tls(t)
            }
        };
        let mut builder = builder.timeout(Some(Duration::from_secs(30)));
        if let Some((u, p)) = &settings.login {
            builder =
                builder.credentials(Credentials::new(u.clone(), p.expose_secret().to_string()));
        }
        Ok(Smtp {
            transport: builder.build(),
            settings,
        })
    }
}

impl Deliver for Smtp {
    fn name(&self) -> &str {
        "smtp"
    }

    fn deliver(&self, msg: &Outgoing) -> Result<(), String> {
        use lettre::message::header::ContentType;
        use lettre::Transport as _;
        let from: lettre::message::Mailbox = self
            .settings
            .from
            .parse()
            .map_err(|_| "bad mail-from address".to_string())?;
        let to: lettre::message::Mailbox = msg
            .to
            .address()
            .parse()
            .map_err(|_| "the recipient address is not deliverable".to_string())?;
        let email = lettre::Message::builder()
            .from(from)
            .to(to)
            .subject(msg.subject())
            .message_id(None)
            .header(ContentType::TEXT_PLAIN)
            .body(msg.long_text())
            .map_err(|e| format!("building the message: {e}"))?;
        self.transport
            .send(&email)
            .map(|_| ())
            // lettre's errors may quote the server's reply, which can name
            // the recipient: log only the class and the status code.
            .map_err(|e| {
                let class = if e.is_permanent() {
                    "permanent failure"
                } else if e.is_transient() {
                    "transient failure"
                } else if e.is_timeout() {
                    "timeout"
                } else if e.is_tls() {
                    "TLS failure"
                } else {
                    "failure"
                };
                let status = e
                    .status()
                    .map(|c| format!(" (SMTP {c})"))
                    .unwrap_or_default();
                format!(
                    "SMTP to {}:{}: {class}{status}",
                    self.settings.host, self.settings.port
                )
            })
    }
}

fn http_agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .user_agent(concat!("passcrow-server/", env!("CARGO_PKG_VERSION")))
        .build()
}

fn http_error(what: &str, e: ureq::Error) -> String {
    match e {
        ureq::Error::Status(code, _) => format!("{what}: HTTP {code}"),
        ureq::Error::Transport(t) => format!("{what}: {}", t.kind()),
    }
}

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
    ) -> Result<TwilioSms, String> {
        if from.is_none() && messaging_service_sid.is_none() {
            return Err("SMS needs a from number or a messaging service SID".into());
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

    fn deliver(&self, msg: &Outgoing) -> Result<(), String> {
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
            .map_err(|e| http_error("SMS API", e))
    }
}

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

    fn deliver(&self, msg: &Outgoing) -> Result<(), String> {
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
            .map_err(|e| http_error("webhook", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(lang: &str) -> Outgoing {
        Outgoing {
            to: Identity::parse("a@example.org").unwrap(),
            language: lang.into(),
            description: "Wallet".into(),
            about_url: "https://x.example/".into(),
            notice: Notice::Code {
                code: SecretString::from("A123456"),
                timeout_seconds: 1800,
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
    }

    #[test]
    fn smtp_urls() {
        let s = SmtpSettings::from_url("smtp://127.0.0.1:2525", "a@b.cd").unwrap();
        assert_eq!(
            (s.host.as_str(), s.port, s.security),
            ("127.0.0.1", 2525, SmtpSecurity::Plain)
        );
        let s = SmtpSettings::from_url("smtps://u:p@mail.example.org", "a@b.cd").unwrap();
        assert_eq!((s.port, s.security), (465, SmtpSecurity::Tls));
        assert_eq!(s.login.as_ref().unwrap().0, "u");
        let s = SmtpSettings::from_url("smtp+starttls://mail.example.org", "a@b.cd").unwrap();
        assert_eq!((s.port, s.security), (587, SmtpSecurity::StartTls));
        assert!(SmtpSettings::from_url("http://x", "a@b.cd").is_err());
        assert!(SmtpSettings::from_url("mail.example.org", "a@b.cd").is_err());
    }

    #[test]
    fn smtp_transports_build() {
        for url in [
            "smtps://mail.example.org",
            "smtp+starttls://mail.example.org:587",
            "smtp://127.0.0.1:2525",
            "smtp://[::1]:2525",
            "smtp://localhost:25",
        ] {
            let s = SmtpSettings::from_url(url, "Passcrow <noreply@example.org>").unwrap();
            Smtp::new(s).unwrap_or_else(|e| panic!("{url}: {e}"));
        }
        let s = SmtpSettings::from_url("smtp://mail.example.org", "noreply@example.org").unwrap();
        assert!(Smtp::new(s).unwrap_err().contains("plain smtp://"));
        let s = SmtpSettings::from_url("smtps://mail.example.org", "not an address").unwrap();
        assert!(Smtp::new(s).is_err());
        // The password never shows in Debug.
        let s = SmtpSettings::from_url("smtps://u:hunter2@mail.example.org", "a@b.cd").unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn file_sink() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("codes.txt");
        let f = FileSink::new(&p);
        f.deliver(&out("en")).unwrap();
        let t = std::fs::read_to_string(&p).unwrap();
        assert_eq!(t, "email:a@example.org\tA123456\n");
    }
}
