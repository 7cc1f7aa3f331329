//! HTTP: axum's router served by hyper directly. `POST /passcrow/{method}`
//! (and `GET` for `policy` and `stats`), a body limit of
//! `max-request-bytes`, timeouts for a request's headers, its body, the
//! idle time between requests and the whole request, a token-bucket rate
//! limit per client (bounded table, IPv6 per /64), a cap on connections per
//! client address, the client address from trusted reverse proxies'
//! forwarding headers, graceful shutdown; and [`spawn`], a server on its
//! own thread for tests and demos.

mod clientaddr;
mod conn;
mod limits;

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, Request, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;

use super::handlers::pages::Page;
use super::{method, Answer, ApiError, Config, ErrorKind, Method, Server};
use super::{ServerError, ServerResult};

pub use clientaddr::{bucket_key, Cidr, ForwardedHeader, TrustedProxies};
pub use limits::{ConnLimiter, ConnSlot, RateLimiter, DEFAULT_RATE_LIMIT_CLIENTS};

/// The client's address as the server judged it (the TCP peer, or what a
/// trusted proxy forwarded); in every request's extensions, beside
/// [`ConnectInfo<SocketAddr>`] (the TCP peer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// Requests served at once (the others queue).
pub const MAX_REQUESTS_IN_PROGRESS: usize = 256;

struct App {
    server: Arc<Server>,
    limiter: RateLimiter,
    proxies: TrustedProxies,
    timeout: Duration,
    body_timeout: Duration,
    max_bytes: usize,
    permits: tokio::sync::Semaphore,
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

/// An answer after which the connection is closed (the body may be unread).
fn closing(mut r: Response) -> Response {
    r.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    r
}

/// The client of a request: [`ClientAddr`] when [`serve`] put it there,
/// else judged from [`ConnectInfo`] (a router served some other way).
fn client_of(app: &App, req: &Request<Body>) -> IpAddr {
    if let Some(ClientAddr(ip)) = req.extensions().get::<ClientAddr>() {
        return *ip;
    }
    match req.extensions().get::<ConnectInfo<SocketAddr>>() {
        Some(ConnectInfo(peer)) => app.proxies.client_ip(peer.ip(), req.headers()),
        None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    }
}

async fn endpoint(
    State(app): State<Arc<App>>,
    Path(method): Path<String>,
    req: Request<Body>,
) -> Response {
    if !app.limiter.allow(client_of(&app, &req)) {
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
        closing(json(
            ApiError::new(
                ErrorKind::TooLarge,
                format!("Request too large (the limit is {} bytes)", app.max_bytes),
            )
            .to_answer(),
        ))
    };
    if declared.is_some_and(|n| n > app.max_bytes as u64) {
        return too_large();
    }
    let work = async {
        // The body first, under its own deadline and without a permit: a
        // client dripping its body holds nothing the others need.
        let read = axum::body::to_bytes(req.into_body(), app.max_bytes);
        let body = match tokio::time::timeout(app.body_timeout, read).await {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => {
                let s = e.to_string();
                return if s.contains("length limit") {
                    too_large()
                } else {
                    closing(error(
                        ErrorKind::BadRequest,
                        "Bad request: could not read the body",
                        Some(400),
                    ))
                };
            }
            Err(_) => {
                return closing(error(
                    ErrorKind::BadRequest,
                    "Request timed out reading the body",
                    Some(408),
                ))
            }
        };
        // Bound the requests in progress (each may hold a blocking thread);
        // more wait for a permit instead of piling up threads.
        let Ok(_permit) = app.permits.acquire().await else {
            return error(ErrorKind::Internal, "Shutting down", Some(503));
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
        Err(_) => closing(error(ErrorKind::Internal, "Request timed out", Some(503))),
    }
}

/// A page for people (about, opt-out): rate-limited like the API, answered
/// on a blocking thread (it may touch storage), never cached or indexed.
async fn page(
    app: &App,
    client: IpAddr,
    f: impl FnOnce(&Server) -> Page + Send + 'static,
) -> Response {
    if !app.limiter.allow(client) {
        return json(ApiError::rate_limited().to_answer());
    }
    let server = app.server.clone();
    let p = match tokio::task::spawn_blocking(move || f(&server)).await {
        Ok(p) => p,
        Err(_) => return error(ErrorKind::Internal, "Internal Error", Some(500)),
    };
    Response::builder()
        .status(StatusCode::from_u16(p.status).unwrap_or(StatusCode::OK))
        .header(header::CONTENT_TYPE, p.content_type)
        .header(header::CACHE_CONTROL, "no-store")
        .header("x-robots-tag", "noindex")
        .header("referrer-policy", "no-referrer")
        .header(
            "content-security-policy",
            "default-src 'none'; form-action 'self'",
        )
        .body(Body::from(p.body))
        .unwrap_or_default()
}

async fn about(State(app): State<Arc<App>>, req: Request<Body>) -> Response {
    page(&app, client_of(&app, &req), |s| s.about_page()).await
}

async fn optout_get(
    State(app): State<Arc<App>>,
    Path(token): Path<String>,
    req: Request<Body>,
) -> Response {
    page(&app, client_of(&app, &req), move |s| {
        s.optout_page(&token, false)
    })
    .await
}

async fn optout_post(
    State(app): State<Arc<App>>,
    Path(token): Path<String>,
    req: Request<Body>,
) -> Response {
    page(&app, client_of(&app, &req), move |s| {
        s.optout_page(&token, true)
    })
    .await
}

async fn cancel_get(
    State(app): State<Arc<App>>,
    Path(token): Path<String>,
    req: Request<Body>,
) -> Response {
    page(&app, client_of(&app, &req), move |s| {
        s.cancel_page(&token, false)
    })
    .await
}

async fn cancel_post(
    State(app): State<Arc<App>>,
    Path(token): Path<String>,
    req: Request<Body>,
) -> Response {
    page(&app, client_of(&app, &req), move |s| {
        s.cancel_page(&token, true)
    })
    .await
}

async fn not_found() -> Response {
    error(
        ErrorKind::NotFound,
        "Not found: use /passcrow/METHOD",
        Some(404),
    )
}

/// The reverse proxies a configuration trusts (none if its list does not
/// parse: [`Config::validate`] refuses such a configuration).
fn proxies_of(cfg: &Config) -> TrustedProxies {
    TrustedProxies::parse(&cfg.trusted_proxies, &cfg.forwarded_header).unwrap_or_else(|e| {
        tracing::error!("{e}; trusting no proxy");
        TrustedProxies::none()
    })
}

/// The axum router for a server. Handlers find the TCP peer as
/// [`ConnectInfo<SocketAddr>`] and the client as [`ClientAddr`].
pub fn router(server: Arc<Server>) -> Router {
    let cfg = server.config();
    let app = Arc::new(App {
        limiter: RateLimiter::with_capacity(
            cfg.rate_limit_burst,
            cfg.rate_limit_per_second,
            cfg.rate_limit_max_clients,
        ),
        proxies: proxies_of(cfg),
        timeout: Duration::from_secs(cfg.request_timeout_seconds.max(1)),
        body_timeout: Duration::from_secs(cfg.body_read_timeout_seconds.max(1)),
        max_bytes: cfg.max_request_bytes,
        permits: tokio::sync::Semaphore::new(MAX_REQUESTS_IN_PROGRESS),
        server,
    });
    Router::new()
        .route("/passcrow/{method}", get(endpoint).post(endpoint))
        .route("/", get(about))
        .route("/passcrow/about", get(about))
        .route(
            "/passcrow/optout/{token}",
            get(optout_get).post(optout_post),
        )
        .route(
            "/passcrow/cancel/{token}",
            get(cancel_get).post(cancel_post),
        )
        .fallback(not_found)
        .with_state(app)
}

/// Serve `server` on `listener` until `shutdown` completes, sweeping
/// expired data every `sweep_interval_seconds`. Then it stops accepting,
/// closes idle connections, lets requests in flight finish (for at most
/// the request timeout and a second) and returns.
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
    let settings = conn::Settings::from_config(server.config(), proxies_of(server.config()));
    let app = router(server);
    let r = conn::serve(listener, app, settings, shutdown).await;
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

/// Connections the kernel queues before they are accepted (std's 128 is
/// soon full when many connect at once: the next wait a second for a SYN
/// to be resent).
const LISTEN_BACKLOG: u32 = 1024;

/// Bind `listen` (the first of its addresses that binds), in a runtime.
fn bind(listen: &str) -> std::io::Result<tokio::net::TcpListener> {
    use std::net::ToSocketAddrs;
    let mut last = None;
    for a in listen.to_socket_addrs()? {
        let sock = match a {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        #[cfg(unix)]
        sock.set_reuseaddr(true)?;
        match sock.bind(a).and_then(|()| sock.listen(LISTEN_BACKLOG)) {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address to bind")
    }))
}

/// Serve an already opened [`Server`] on its own thread.
pub fn spawn_server(server: Arc<Server>, listen: &str) -> ServerResult<Handle> {
    let http = |source| ServerError::Http { source };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(16)
        .enable_all()
        .thread_name("passcrow-server")
        .build()
        .map_err(http)?;
    let bind_error = |source| ServerError::Bind {
        addr: listen.to_string(),
        source,
    };
    let listener = {
        let _in_runtime = runtime.enter();
        bind(listen).map_err(bind_error)?
    };
    let addr = listener.local_addr().map_err(http)?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("passcrow-server".into())
        .spawn(move || {
            runtime.block_on(async move {
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
