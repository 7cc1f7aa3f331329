//! The app's own HTTP stack ([`HttpTransport`]) and log sink
//! ([`LogSink`]), foreign traits a binding may implement.

use super::*;

/// What one HTTP request got back.
#[derive(Clone, uniffi::Record)]
pub struct HttpResponse {
    /// The HTTP status.
    pub status: u16,
    /// The body (the client reads at most 1 MiB of it).
    pub body: Vec<u8>,
}

/// Bodies carry shares and packs: only their length is printed.
impl std::fmt::Debug for HttpResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpResponse")
            .field("status", &self.status)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// An app's own HTTP stack (pinning, proxy, Tor). `post` sends `body`
/// (JSON) to `url` with `Content-Type: application/json` and returns the
/// answer; an HTTP error status is a normal return. Raise
/// `PasscrowError.Transport` only when no answer was had. Called from the
/// library's worker threads, several at a time: make it thread-safe.
#[uniffi::export(with_foreign)]
pub trait HttpTransport: Send + Sync {
    /// POST `body` to `url`.
    fn post(&self, url: String, body: Vec<u8>) -> Res<HttpResponse>;
}

pub(crate) struct ForeignTransport(pub(crate) Arc<dyn HttpTransport>);

impl client::Transport for ForeignTransport {
    fn post(
        &self,
        request: &client::HttpRequest<'_>,
    ) -> Result<client::HttpResponse, client::TransportError> {
        // The app's transport owns its deadlines (`request.timeout` is not
        // in the foreign trait, whose signature apps implement).
        match self.0.post(request.url.to_string(), request.body.to_vec()) {
            Ok(r) => {
                let mut body = r.body;
                body.truncate(client::transport::MAX_RESPONSE_BYTES as usize);
                Ok(client::HttpResponse {
                    status: r.status,
                    body,
                })
            }
            Err(e) => Err(client::TransportError::Other(e.to_string())),
        }
    }
}

/// Receives progress lines (never secrets). Called from worker threads.
#[uniffi::export(with_foreign)]
pub trait LogSink: Send + Sync {
    /// One line.
    fn log(&self, message: String);
}
