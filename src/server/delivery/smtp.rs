//! [`Smtp`]: e-mail through an SMTP server (lettre), TLS or STARTTLS
//! except for a relay on this machine.

use std::time::Duration;

use super::{Deliver, Outgoing};
use crate::crypto::SecretString;
use crate::server::error::{ServerError, ServerResult};

/// An SMTP error.
fn err(detail: impl Into<String>) -> ServerError {
    ServerError::delivery("smtp", detail)
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
    pub fn from_url(url: &str, from: &str) -> ServerResult<SmtpSettings> {
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            err(format!(
                "SMTP URL {:?} needs a scheme (smtp://, smtps://, smtp+starttls://)",
                crate::server::config::redact_url(url)
            ))
        })?;
        let (security, default_port) = match scheme {
            "smtp" => (SmtpSecurity::Plain, 25),
            "smtps" => (SmtpSecurity::Tls, 465),
            "smtp+starttls" => (SmtpSecurity::StartTls, 587),
            other
                if other
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b)) =>
            {
                return Err(err(format!("unknown SMTP scheme {other:?}")))
            }
            _ => return Err(err("unknown SMTP scheme")),
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
                    .map_err(|_| err(format!("bad SMTP port in {hostport:?}")))?,
            ),
            _ => (hostport.to_string(), default_port),
        };
        if host.is_empty() {
            return Err(err("SMTP URL has no host"));
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
    pub fn new(settings: SmtpSettings) -> ServerResult<Smtp> {
        use lettre::transport::smtp::authentication::Credentials;
        use lettre::transport::smtp::client::{Tls, TlsParameters};
        settings
            .from
            .parse::<lettre::message::Mailbox>()
            .map_err(|e| err(format!("bad mail-from address: {e}")))?;
        if settings.security == SmtpSecurity::Plain && !is_loopback_host(&settings.host) {
            return Err(err(format!(
                "plain smtp:// is only for a relay on this machine (not {}); \
                 use smtps:// or smtp+starttls://",
                settings.host
            )));
        }
        let builder = match settings.security {
            SmtpSecurity::Plain => {
                lettre::SmtpTransport::builder_dangerous(&settings.host).port(settings.port)
            }
            SmtpSecurity::Tls | SmtpSecurity::StartTls => {
                let tls = TlsParameters::new(settings.host.clone())
                    .map_err(|e| err(format!("TLS setup for {}: {e}", settings.host)))?;
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

    fn deliver(&self, msg: &Outgoing) -> ServerResult<()> {
        use lettre::message::header::ContentType;
        use lettre::Transport as _;
        let from: lettre::message::Mailbox = self
            .settings
            .from
            .parse()
            .map_err(|_| err("bad mail-from address"))?;
        let to: lettre::message::Mailbox = msg
            .to
            .address()
            .parse()
            .map_err(|_| err("the recipient address is not deliverable"))?;
        let email = lettre::Message::builder()
            .from(from)
            .to(to)
            .subject(msg.subject())
            .message_id(None)
            .header(ContentType::TEXT_PLAIN)
            .body(msg.long_text())
            .map_err(|e| err(format!("building the message: {e}")))?;
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
                err(format!(
                    "SMTP to {}:{}: {class}{status}",
                    self.settings.host, self.settings.port
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        // Errors never quote a password.
        for url in [
            "user:hunter2@mail.example.org",
            "gopher://user:hunter2@mail.example.org",
            "smtps://user:hunter2@mail.example.org:notaport",
            "user:hunter2@mail://x",
        ] {
            let e = SmtpSettings::from_url(url, "a@b.cd")
                .unwrap_err()
                .to_string();
            assert!(!e.contains("hunter2"), "{e}");
        }
        let e = SmtpSettings::from_url("user:hunter2@mail.example.org", "a@b.cd")
            .unwrap_err()
            .to_string();
        assert!(e.contains("[login]@mail.example.org"), "{e}");
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
        assert!(Smtp::new(s)
            .unwrap_err()
            .to_string()
            .contains("plain smtp://"));
        let s = SmtpSettings::from_url("smtps://mail.example.org", "not an address").unwrap();
        assert!(Smtp::new(s).is_err());
        // The password never shows in Debug.
        let s = SmtpSettings::from_url("smtps://u:hunter2@mail.example.org", "a@b.cd").unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
