//! HTTP for the client: a [`Transport`] trait an app can implement with its
//! own stack (pinning, a proxy, Tor), and the default over `ureq` + rustls.

use std::io::Read;
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

/// Sends one JSON POST. Implementations return `Err` only when no HTTP
/// answer was had (connection refused, TLS failure, timeout); an HTTP error
/// status is an `Ok` with that status.
pub trait Transport: Send + Sync {
    /// POST `body` (JSON) to `url` and return the answer.
    fn post(&self, url: &str, body: &[u8]) -> Result<HttpResponse, String>;
}

/// The URL of `method` on `server`: `http://host:port` is used as written
/// (plain HTTP, for loopback and tests); a bare `host[:port]` means HTTPS.
pub fn server_url(server: &str, method: &str) -> String {
    let base = if server.starts_with("http://") || server.starts_with("https://") {
        server.trim_end_matches('/').to_string()
    } else {
        format!("https://{}", server.trim_end_matches('/'))
    };
    format!("{base}/passcrow/{method}")
}

/// The default transport: `ureq` with rustls and the webpki roots.
pub struct UreqTransport {
    agent: ureq::Agent,
}

impl UreqTransport {
    /// A transport with sensible timeouts (10 s connect, 120 s overall:
    /// a server may send e-mail before it answers).
    pub fn new() -> Self {
        UreqTransport {
            agent: ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(10))
                .timeout(Duration::from_secs(120))
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

fn read_limited(resp: ureq::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    resp.into_reader()
        .take(MAX_RESPONSE_BYTES)
        .read_to_end(&mut body)
        .map_err(|e| format!("reading the answer: {e}"))?;
    Ok(body)
}

impl Transport for UreqTransport {
    fn post(&self, url: &str, body: &[u8]) -> Result<HttpResponse, String> {
        match self
            .agent
            .post(url)
            .set("Content-Type", "application/json")
            .send_bytes(body)
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
            Err(ureq::Error::Transport(t)) => Err(t.to_string()),
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
}
