//! HTTP for the client: a [`Transport`] trait an app can implement with its
//! own stack (pinning, a proxy, Tor), the default over `ureq` + rustls, and
//! the rules every request obeys whatever the transport: plain `http://`
//! only to a loopback host (unless the app opts in), a deadline per
//! request, no redirects.

use std::error::Error as _;
use std::io::Read;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// Largest answer body we read from a server.
pub const MAX_RESPONSE_BYTES: u64 = 1 << 20;

/// What came back from one HTTP request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    /// HTTP status code.
    pub status: u16,
    /// The body (at most [`MAX_RESPONSE_BYTES`]).
    pub body: Vec<u8>,
}

/// One request: a JSON POST of `body` to `url`, to be answered within
/// `timeout` (connecting included). The body may hold escrow keys: it
/// has no `Debug`.
pub struct HttpRequest<'a> {
    /// Where (`https://host/passcrow/METHOD`).
    pub url: &'a str,
    /// The JSON body.
    pub body: &'a [u8],
    /// How long the whole request may take.
    pub timeout: Duration,
}

/// Why a request got no HTTP answer. Text from the network is already
/// cleaned of control characters by the client before it shows it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// No connection could be made (name lookup, refused, TLS handshake).
    #[error("could not connect: {0}")]
    Connect(String),
    /// No complete answer within the request's deadline.
    #[error("no answer within {} s", .0.as_secs_f32())]
    Timeout(Duration),
    /// The connection broke while the answer was read.
    #[error("reading the answer: {0}")]
    Read(String),
    /// An app's own transport failed, with its reason.
    #[error("{0}")]
    Other(String),
}

/// Sends one JSON POST. Implementations return `Err` only when no HTTP
/// answer was had (connection refused, TLS failure, timeout); an HTTP error
/// status is an `Ok` with that status. They must not follow redirects and
/// should honour [`HttpRequest::timeout`] (the built-in transport does; an
/// app's own transport is responsible for its own deadlines).
pub trait Transport: Send + Sync {
    /// POST the request's body (JSON) to its URL and return the answer.
    fn post(&self, request: &HttpRequest<'_>) -> Result<HttpResponse, TransportError>;
}

/// How long requests may take. The defaults keep every wait bounded: a
/// server that accepts a connection and never answers fails a `protect`
/// within a minute (with the retries of [`super::Pacing::retry_for`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Connecting (TCP and TLS).
    pub connect: Duration,
    /// `policy`: a small, cached document.
    pub policy: Duration,
    /// `escrowrequest`.
    pub escrow: Duration,
    /// `verificationrequest`. Longer than a server's own delivery time:
    /// passcrow-server sends the code before it answers (its SMTP client
    /// gives up after 30 s), and a client that gives up first reports a
    /// failure while a code is on its way.
    pub verification: Duration,
    /// `recoveryrequest`.
    pub recovery: Duration,
    /// `deletionrequest`.
    pub deletion: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            policy: Duration::from_secs(10),
            escrow: Duration::from_secs(20),
            verification: Duration::from_secs(75),
            recovery: Duration::from_secs(20),
            deletion: Duration::from_secs(20),
        }
    }
}

impl Timeouts {
    /// The deadline of one protocol method.
    pub fn for_method(&self, method: &str) -> Duration {
        match method {
            "policy" => self.policy,
            "escrowrequest" => self.escrow,
            "verificationrequest" => self.verification,
            "recoveryrequest" => self.recovery,
            _ => self.deletion,
        }
    }
}

/// The URL of `method` on `server`: `http://host:port` is used as written
/// (plain HTTP: see [`check_plain_http`]); a bare `host[:port]` means
/// HTTPS.
pub fn server_url(server: &str, method: &str) -> String {
    let base = if server.starts_with("http://") || server.starts_with("https://") {
        server.trim_end_matches('/').to_string()
    } else {
        format!("https://{}", server.trim_end_matches('/'))
    };
    format!("{base}/passcrow/{method}")
}

/// The host of a server name as written (`host`, `host:port`,
/// `[v6]:port`, with or without a scheme), lower-cased.
fn literal_host(server: &str) -> String {
    let rest = server
        .strip_prefix("http://")
        .or_else(|| server.strip_prefix("https://"))
        .unwrap_or(server);
    let authority = rest.split('/').next().unwrap_or("");
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    host.to_ascii_lowercase()
}

/// Whether a server name's literal host is a loopback address:
/// 127.0.0.0/8, `::1` or `localhost`. Judged from the text alone, never
/// from DNS (a name that resolves to 127.0.0.1 today may not tomorrow).
pub fn is_loopback(server: &str) -> bool {
    let host = literal_host(server);
    host == "localhost"
        || host
            .parse::<Ipv4Addr>()
            .map(|a| a.is_loopback())
            .unwrap_or(false)
        || host
            .parse::<Ipv6Addr>()
            .map(|a| a.is_loopback())
            .unwrap_or(false)
}

/// Refuse plain `http://` to a host that is not loopback, unless the app
/// opted in (`ClientConfig::allow_plain_http`): over plain HTTP the
/// shares and escrow keys would cross the network in clear. Returns why,
/// for an error the user can act on.
pub fn check_plain_http(server: &str, allow_plain_http: bool) -> Result<(), String> {
    if !server.starts_with("http://") || allow_plain_http || is_loopback(server) {
        return Ok(());
    }
    Err(format!(
        "refusing plain HTTP to {server}: shares and escrow keys would cross the network \
         unencrypted. Use https (write the server without http://); plain http:// is for \
         loopback (127.0.0.0/8, ::1, localhost) unless the app allows plain HTTP"
    ))
}

/// The default transport: `ureq` with rustls and the webpki roots; each
/// request's own deadline, no redirects followed.
pub struct UreqTransport {
    agent: ureq::Agent,
}

impl UreqTransport {
    /// A transport with the default connect timeout.
    pub fn new() -> Self {
        Self::with_connect_timeout(Timeouts::default().connect)
    }

    /// A transport that gives up connecting after `connect`.
    pub fn with_connect_timeout(connect: Duration) -> Self {
        UreqTransport {
            agent: ureq::AgentBuilder::new()
                .timeout_connect(connect)
                // A redirect would turn our POST into a GET to any host.
                .redirects(0)
                .user_agent(concat!("libpasscrow/", env!("CARGO_PKG_VERSION")))
                .build(),
        }
    }
}

impl Default for UreqTransport {
    fn default() -> Self {
        Self::new()
    }
}

fn read_limited(resp: ureq::Response) -> Result<Vec<u8>, TransportError> {
    let mut body = Vec::new();
    resp.into_reader()
        .take(MAX_RESPONSE_BYTES)
        .read_to_end(&mut body)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
                TransportError::Read("timed out".into())
            }
            _ => TransportError::Read(e.to_string()),
        })?;
    Ok(body)
}

fn transport_error(t: &ureq::Transport, timeout: Duration) -> TransportError {
    use ureq::ErrorKind as K;
    let timed_out = t
        .source()
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .is_some_and(|e| {
            matches!(
                e.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            )
        });
    match t.kind() {
        _ if timed_out => TransportError::Timeout(timeout),
        K::Dns | K::ConnectionFailed | K::InvalidUrl | K::UnknownScheme => {
            TransportError::Connect(t.to_string())
        }
        _ => TransportError::Other(t.to_string()),
    }
}

impl Transport for UreqTransport {
    fn post(&self, request: &HttpRequest<'_>) -> Result<HttpResponse, TransportError> {
        match self
            .agent
            .post(request.url)
            .timeout(request.timeout)
            .set("Content-Type", "application/json")
            .send_bytes(request.body)
        {
            Ok(resp) => {
                let status = resp.status();
                Ok(HttpResponse {
                    status,
                    body: read_limited(resp)?,
                })
            }
            Err(ureq::Error::Status(status, resp)) => Ok(HttpResponse {
                status,
                body: read_limited(resp).unwrap_or_default(),
            }),
            Err(ureq::Error::Transport(t)) => Err(transport_error(&t, request.timeout)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            server_url("a.example", "policy"),
            "https://a.example/passcrow/policy"
        );
        assert_eq!(
            server_url("http://127.0.0.1:8451/", "escrowrequest"),
            "http://127.0.0.1:8451/passcrow/escrowrequest"
        );
    }

    #[test]
    fn loopback_is_judged_from_the_literal_host() {
        for s in [
            "http://127.0.0.1:8451",
            "http://127.9.8.7",
            "http://[::1]:80",
            "http://localhost:1",
            "http://LOCALHOST",
        ] {
            assert!(is_loopback(s), "{s}");
            assert!(check_plain_http(s, false).is_ok(), "{s}");
        }
        for s in [
            "http://passcrow.example.org",
            "http://128.0.0.1",
            "http://localhost.example.org",
            "http://127.0.0.1.nip.io",
            "http://[::ffff:127.0.0.1]",
            "http://10.0.0.1:8451",
        ] {
            assert!(!is_loopback(s), "{s}");
            let e = check_plain_http(s, false).unwrap_err();
            assert!(e.contains("refusing plain HTTP"), "{e}");
            assert!(check_plain_http(s, true).is_ok());
        }
        // HTTPS anywhere is fine.
        assert!(check_plain_http("passcrow.example.org", false).is_ok());
        assert!(check_plain_http("https://passcrow.example.org", false).is_ok());
    }

    #[test]
    fn every_method_has_a_bounded_deadline() {
        let t = Timeouts::default();
        assert!(t.connect <= Duration::from_secs(10));
        for m in [
            "policy",
            "escrowrequest",
            "verificationrequest",
            "recoveryrequest",
            "deletionrequest",
        ] {
            assert!(t.for_method(m) <= Duration::from_secs(90), "{m}");
        }
        assert!(
            t.verification > Duration::from_secs(30),
            "longer than SMTP's 30 s"
        );
    }
}
