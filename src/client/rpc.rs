//! One request to a server and its typed answer; a server's error
//! answers mapped to error kinds.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::transport::check_plain_http;
use super::{server_url, Client, HttpRequest};
use crate::crypto::SecretBytes;
use crate::pack::EscrowRecord;
use crate::proto::{self, untrusted, ErrorAnswer, ServerPolicy, Untrusted, PROTO_VERSION};
use crate::{Error, Failure, Result};

impl Client {
    /// Send one request and parse the typed answer, its texts cleaned
    /// ([`proto::untrusted`]): nothing a server says reaches the caller
    /// raw.
    pub(crate) fn rpc<Req: Serialize, Resp: DeserializeOwned + Untrusted>(
        &self,
        server: &str,
        method: &str,
        req: &Req,
    ) -> Result<Resp> {
        check_plain_http(server, self.cfg.allow_plain_http).map_err(Error::BadInput)?;
        let url = server_url(server, method);
        let body =
            SecretBytes::new(serde_json::to_vec(req).map_err(|e| Error::protocol(e.to_string()))?);
        let request = HttpRequest {
            url: &url,
            body: body.expose_secret(),
            timeout: self.cfg.timeouts.for_method(method),
        };
        let resp = self.transport.post(&request).map_err(|e| {
            Error::Transport(format!(
                "{server}: {}",
                untrusted::clean_text(&e.to_string(), untrusted::MAX_ERROR_CHARS)
            ))
        })?;
        let what = format!("answer from {server} to {method}");
        if let Some(err) = proto::error_answer(&resp.body) {
            return Err(map_server_error(server, err.into_clean(&what)?));
        }
        if resp.status >= 500 {
            return Err(Error::Transport(format!(
                "HTTP {} from {server}",
                resp.status
            )));
        }
        if (300..400).contains(&resp.status) {
            return Err(Error::Server {
                server: server.into(),
                message: format!("HTTP {} (a redirect: not followed)", resp.status),
            });
        }
        if resp.status != 200 {
            return Err(Error::Server {
                server: server.into(),
                message: format!("HTTP {}", resp.status),
            });
        }
        // serde names an unknown field as the server wrote it: clean it.
        let answer: Resp = proto::parse(&resp.body, &what).map_err(|e| match e {
            Error::Protocol(m) => {
                Error::Protocol(untrusted::clean_text(&m, untrusted::MAX_ERROR_CHARS))
            }
            other => other,
        })?;
        answer.into_clean(&what)
    }

    /// A server's policy (fetched once per client).
    pub fn server_policy(&self, server: &str) -> Result<ServerPolicy> {
        if let Some(p) = self
            .policies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(server)
        {
            return Ok(p.clone());
        }
        let p: ServerPolicy = self.rpc(server, "policy", &serde_json::json!({}))?;
        if !p.versions.iter().any(|v| v == PROTO_VERSION) {
            return Err(Error::protocol(format!(
                "{server} does not speak protocol {PROTO_VERSION}"
            )));
        }
        self.policies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(server.into(), p.clone());
        Ok(p)
    }
}

pub(crate) fn failure(e: &EscrowRecord, err: Error) -> Failure {
    Failure {
        server: e.server.clone(),
        escrow_id: Some(e.response.escrow_data_id.clone()),
        message: err.to_string(),
    }
}

/// Map a server's `{"error": ...}` to an error kind.
fn map_server_error(server: &str, e: ErrorAnswer) -> Error {
    let kind = e.error_kind.as_deref().unwrap_or("");
    let msg = e.error.as_str();
    if kind == "wrong-code"
        || msg.starts_with("Incorrect verfication code")
        || msg.starts_with("Incorrect verification code")
    {
        Error::WrongCode {
            prefix: None,
            attempts_left: e.attempts_left,
        }
    } else if kind == "pending" && e.release_at.is_some() {
        Error::Pending {
            server: server.into(),
            release_at: crate::proto::untrusted::clean_time(e.release_at.unwrap_or(0)),
        }
    } else if kind == "frozen" {
        Error::Frozen {
            server: server.into(),
        }
    } else if kind == "stopped" {
        Error::Stopped {
            server: server.into(),
        }
    } else if kind == "rate-limited" || msg.starts_with("Sorry, rate limited") {
        Error::RateLimited {
            server: server.into(),
        }
    } else if kind == "not-found" {
        Error::NotFound(format!("{server}: {msg}"))
    } else if kind == "expired" {
        Error::Expired(format!("{server}: {msg}"))
    } else {
        Error::Server {
            server: server.into(),
            message: msg.chars().take(300).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_map_to_kinds() {
        let e = |s: &str| ErrorAnswer {
            error: s.into(),
            attempts_left: None,
            error_kind: None,
            release_at: None,
        };
        let pending = ErrorAnswer {
            error_kind: Some("pending".into()),
            release_at: Some(1_900_000_000),
            ..e("Recovery pending")
        };
        assert!(matches!(
            map_server_error("s", pending),
            Error::Pending {
                release_at: 1_900_000_000,
                ..
            }
        ));
        let kind = |k: &str| ErrorAnswer {
            error_kind: Some(k.into()),
            ..e("whatever the text says")
        };
        assert!(matches!(
            map_server_error("s", kind("frozen")),
            Error::Frozen { .. }
        ));
        assert!(matches!(
            map_server_error("s", kind("stopped")),
            Error::Stopped { .. }
        ));
        assert!(matches!(
            map_server_error("s", e("Incorrect verfication code")),
            Error::WrongCode { .. }
        ));
        assert!(matches!(
            map_server_error("s", e("Sorry, rate limited.")),
            Error::RateLimited { .. }
        ));
        assert!(matches!(
            map_server_error("s", e("Internal Error")),
            Error::Server { .. }
        ));
    }
}
