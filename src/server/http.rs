//! HTTP with axum: `POST /passcrow/{method}` (and `GET` for `policy` and
//! `stats`), a body limit of `max-request-bytes`, a request timeout, a
//! token-bucket rate limit per client address, graceful shutdown; and
//! [`spawn`], a server on its own thread for tests and demos.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, Request, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;

use super::{method, Answer, ApiError, Config, ErrorKind, Method, Server};
use super::{ServerError, ServerResult};

/// A token bucket per client address.
#[derive(Debug)]
pub struct RateLimiter {
    burst: f64,
    per_second: f64,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl RateLimiter {
    /// `burst` requests at once, refilled at `per_second`; a burst or a
    /// rate of 0 lets everything through.
    pub fn new(burst: u32, per_second: f64) -> Self {
        let off = burst == 0 || per_second.is_nan() || per_second <= 0.0;
        RateLimiter {
            burst: if off { 0.0 } else { burst as f64 },
            per_second: per_second.max(0.0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Take a token for `ip`; false when it has none.
    pub fn allow(&self, ip: IpAddr) -> bool {
        if self.burst <= 0.0 {
            return true;
        }
        let now = Instant::now();
        let mut b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if b.len() > 50_000 {
            let (burst, rate) = (self.burst, self.per_second);
            b.retain(|_, (t, at)| *t + now.duration_since(*at).as_secs_f64() * rate < burst);
        }
        let e = b.entry(ip).or_insert((self.burst, now));
        e.0 = (e.0 + now.duration_since(e.1).as_secs_f64() * self.per_second).min(self.burst);
        e.1 = now;
        if e.0 >= 1.0 {
            e.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Requests served at once (the others queue).
pub const MAX_REQUESTS_IN_PROGRESS: usize = 256;

struct App {
    server: Arc<Server>,
    limiter: RateLimiter,
    timeout: Duration,
    max_bytes: usize,
}

fn json(a: Answer) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(a.status).unwrap_or(StatusCode::OK))
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::from(a.body))
        .unwrap_or_default()
}

fn error(kind: ErrorKind, msg: &str, status: Option<u16>) -> Response {
    let mut a = ApiError::new(kind, msg).to_answer();
    if let Some(s) = status {
        a.status = s;
    }
    json(a)
}

async fn endpoint(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(method): Path<String>,
    req: Request<Body>,
) -> Response {
    if !app.limiter.allow(peer.ip()) {
        return json(ApiError::rate_limited().to_answer());
    }
    let canon = Method::from_name(&method);
    if req.method() == axum::http::Method::GET && !canon.is_some_and(Method::allows_get) {
        return error(ErrorKind::BadRequest, "Use POST for this method", Some(405));
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = || {
        json(
            ApiError::new(
                ErrorKind::TooLarge,
                format!("Request too large (the limit is {} bytes)", app.max_bytes),
            )
            .to_answer(),
        )
    };
    if declared.is_some_and(|n| n > app.max_bytes as u64) {
        return too_large();
    }
    let work = async {
        let body = match axum::body::to_bytes(req.into_body(), app.max_bytes).await {
            Ok(b) => b,
            Err(e) => {
                let s = e.to_string();
                return if s.contains("length limit") {
                    too_large()
                } else {
                    error(
                        ErrorKind::BadRequest,
                        "Bad request: could not read the body",
                        Some(400),
                    )
                };
            }
        };
        let server = app.server.clone();
        let answer = move || match canon {
            Some(m) => server.handle(m, &body),
            None => method::unsupported(&method).to_answer(),
        };
        match tokio::task::spawn_blocking(answer).await {
            Ok(a) => json(a),
            Err(_) => error(ErrorKind::Internal, "Internal Error", Some(500)),
        }
    };
    match tokio::time::timeout(app.timeout, work).await {
        Ok(r) => r,
        Err(_) => error(ErrorKind::Internal, "Request timed out", Some(503)),
    }
}

async fn not_found() -> Response {
    error(
        ErrorKind::NotFound,
        "Not found: use /passcrow/METHOD",
        Some(404),
    )
}

/// The axum router for a server.
pub fn router(server: Arc<Server>) -> Router {
    let cfg = server.config();
    let app = Arc::new(App {
        limiter: RateLimiter::new(cfg.rate_limit_burst, cfg.rate_limit_per_second),
        timeout: Duration::from_secs(cfg.request_timeout_seconds.max(1)),
        max_bytes: cfg.max_request_bytes,
        server,
    });
    Router::new()
        .route("/passcrow/{method}", get(endpoint).post(endpoint))
        .fallback(not_found)
        .with_state(app)
        // Bound the requests in progress (each may hold a blocking thread);
        // more wait for a slot instead of piling up threads.
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
            MAX_REQUESTS_IN_PROGRESS,
        ))
}

/// Serve `server` on `listener` until `shutdown` completes, sweeping
/// expired data every `sweep_interval_seconds`.
pub async fn serve<F>(
    server: Arc<Server>,
    listener: tokio::net::TcpListener,
    shutdown: F,
) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let sweeper = {
        let server = server.clone();
        let every = Duration::from_secs(server.config().sweep_interval_seconds.max(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let s = server.clone();
                match tokio::task::spawn_blocking(move || s.sweep()).await {
                    Ok(Ok(sw)) if sw != Default::default() => tracing::info!(
                        escrows = sw.escrows,
                        codes = sw.codes,
                        tokens = sw.tokens,
                        "swept expired data"
                    ),
                    Ok(Err(e)) => tracing::error!("sweep failed: {e}"),
                    _ => {}
                }
            }
        })
    };
    let app = router(server).into_make_service_with_connect_info::<SocketAddr>();
    let r = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    sweeper.abort();
    r
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}

/// A server running on its own thread (see [`spawn`]).
#[derive(Debug)]
pub struct Handle {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Handle {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, as a client's policy names the server.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stop serving (finishing requests in flight) and wait for it.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// Open the server a configuration describes and serve it on its own
/// thread (with its own small tokio runtime). Binds `config.listen`
/// before returning, so `127.0.0.1:0` gives a free port: see
/// [`Handle::addr`].
pub fn spawn(config: Config) -> ServerResult<Handle> {
    let listen = config.listen.clone();
    let server = Arc::new(Server::open(config)?);
    spawn_server(server, &listen)
}

/// Serve an already opened [`Server`] on its own thread.
pub fn spawn_server(server: Arc<Server>, listen: &str) -> ServerResult<Handle> {
    let http = |source| ServerError::Http { source };
    let std_listener = std::net::TcpListener::bind(listen).map_err(|source| ServerError::Bind {
        addr: listen.to_string(),
        source,
    })?;
    std_listener.set_nonblocking(true).map_err(http)?;
    let addr = std_listener.local_addr().map_err(http)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(16)
        .enable_all()
        .thread_name("passcrow-server")
        .build()
        .map_err(http)?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("passcrow-server".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(std_listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!("listener: {e}");
                        return;
                    }
                };
                let stop = async move {
                    let _ = rx.await;
                };
                if let Err(e) = serve(server, listener, stop).await {
                    tracing::error!("server: {e}");
                }
            });
            runtime.shutdown_timeout(Duration::from_secs(5));
        })
        .map_err(http)?;
    Ok(Handle {
        addr,
        stop: Some(tx),
        thread: Some(thread),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_bucket() {
        let r = RateLimiter::new(3, 0.001);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(r.allow(ip) && r.allow(ip) && r.allow(ip));
        assert!(!r.allow(ip));
        assert!(r.allow("10.0.0.1".parse().unwrap()));
        let off = RateLimiter::new(0, 2.0);
        assert!((0..100).all(|_| off.allow(ip)));
        let off = RateLimiter::new(20, 0.0);
        assert!((0..100).all(|_| off.allow(ip)));
    }
}
