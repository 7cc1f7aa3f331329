//! The accept loop and each connection, with hyper directly (axum's own
//! `serve` sets no timer, so no header-read timeout ever ran):
//!
//! - at most `max_connections_per_address` open per client address (IPv6
//!   per /64; trusted proxies exempt): more are closed at once, unread;
//! - hyper's header-read timeout (`header_read_timeout_seconds`), which
//!   also runs from the end of one answer to the next request's headers;
//! - an idle timeout (`keep_alive_timeout_seconds`): a connection with no
//!   request in progress that neither reads nor writes a byte for that
//!   long is closed (keep-alive idling, or a client that stops reading its
//!   answer);
//! - graceful shutdown: stop accepting, close idle connections, let
//!   answers in progress finish for at most the request timeout and a
//!   second.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

use super::clientaddr::TrustedProxies;
use super::limits::{ConnLimiter, ConnSlot};
use super::ClientAddr;
use crate::server::Config;

/// How connections are served.
#[derive(Clone, Debug)]
pub(super) struct Settings {
    header_timeout: Duration,
    idle_timeout: Option<Duration>,
    grace: Duration,
    max_per_address: u32,
    proxies: TrustedProxies,
}

impl Settings {
    pub(super) fn from_config(c: &Config, proxies: TrustedProxies) -> Settings {
        Settings {
            header_timeout: Duration::from_secs(c.header_read_timeout_seconds.max(1)),
            idle_timeout: match c.keep_alive_timeout_seconds {
                0 => None,
                s => Some(Duration::from_secs(s)),
            },
            grace: Duration::from_secs(c.request_timeout_seconds.max(1) + 1),
            max_per_address: c.max_connections_per_address,
            proxies,
        }
    }
}

/// When a connection last moved a byte, and how many of its requests are
/// being answered.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// The instant of the last byte.
    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// Counts a request in progress until dropped.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// A stream that records its activity.
struct Tracked {
    io: TcpStream,
    act: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.act.touch();
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.act.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.act.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Errors of `accept` that concern one connection only.
fn per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

/// Accept and serve connections until `shutdown` completes, then drain.
pub(super) async fn serve<F>(
    listener: TcpListener,
    app: Router,
    settings: Settings,
    shutdown: F,
) -> io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let settings = Arc::new(settings);
    let limiter = ConnLimiter::new(settings.max_per_address);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    let mut refused: u64 = 0;
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) if per_connection(&e) => continue,
                    Err(e) => {
                        // Out of file descriptors, say: wait, don't spin.
                        tracing::error!("accept: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let exempt = settings.proxies.is_trusted(peer.ip());
                let Some(slot) = limiter.try_open(peer.ip(), exempt) else {
                    refused += 1;
                    if refused.is_power_of_two() {
                        tracing::warn!(peer = %peer.ip(), refused, "too many connections from one address; closing");
                    }
                    drop(stream);
                    continue;
                };
                tasks.spawn(connection(
                    stream,
                    peer,
                    slot,
                    app.clone(),
                    settings.clone(),
                    stop_rx.clone(),
                ));
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(settings.grace, drain).await.is_err() {
        tracing::warn!(
            left = tasks.len(),
            "closing connections still busy after the grace period"
        );
        tasks.abort_all();
    }
    Ok(())
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    _slot: ConnSlot,
    app: Router,
    settings: Arc<Settings>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let act = Arc::new(Activity {
        start: Instant::now(),
        last_ms: AtomicU64::new(0),
        in_flight: AtomicUsize::new(0),
    });
    let io = TokioIo::new(Tracked {
        io: stream,
        act: act.clone(),
    });
    let proxies = settings.proxies.clone();
    let svc_act = act.clone();
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        svc_act.in_flight.fetch_add(1, Ordering::Relaxed);
        let guard = InFlight(svc_act.clone());
        let client = proxies.client_ip(peer.ip(), req.headers());
        req.extensions_mut().insert(ConnectInfo(peer));
        req.extensions_mut().insert(ClientAddr(client));
        let app = app.clone();
        async move {
            let r: Result<_, Infallible> = app.oneshot(req).await;
            drop(guard);
            r
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_timeout)
        .keep_alive(settings.idle_timeout.is_some())
        .max_buf_size(64 * 1024);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    // Without keep-alive a connection still may not sit quiet (a client
    // not reading its answer) for longer than the header timeout.
    let quiet = settings.idle_timeout.unwrap_or(settings.header_timeout);
    let mut check = tokio::time::Instant::now() + quiet;
    let mut stopping = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(peer = %peer, "connection: {e}");
                }
                return;
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = tokio::time::sleep_until(check) => {
                let now = Instant::now();
                let quiet_until = act.last() + quiet;
                let next = if act.in_flight.load(Ordering::Relaxed) > 0 {
                    now + quiet
                } else if now >= quiet_until {
                    tracing::debug!(peer = %peer, "closing idle connection");
                    return;
                } else {
                    quiet_until
                };
                check = tokio::time::Instant::from_std(next);
            }
        }
    }
}
