//! `d1vec serve`: Cloudflare's D1 and Vectorize REST API (v4) over HTTP/1.1 on tokio + axum,
//! so wrangler, the `cloudflare` SDK and any HTTP client work against a local database.
//!
//! Layers: this module (listening, shutdown, the router and its middleware: request logs,
//! a time limit, authentication) → the routes ([`vectorize`], `d1`) → the public library
//! API ([`crate::Database`], [`crate::TenantSession`], [`crate::vectorize::VectorIndex`]).
//! Every library call runs on tokio's blocking pool. A tenant-bound token's calls run in
//! its tenant's session, taken from a small pool ([`sessions`]); see ARCHITECTURE.md,
//! "Server", for why such a token cannot reach anything else.
//!
//! ```no_run
//! # fn main() -> d1vec::Result<()> {
//! use std::sync::Arc;
//! let db = Arc::new(d1vec::Database::open("app.sqlite")?);
//! let mut options = d1vec::serve::ServeOptions::default();
//! options.listen = "127.0.0.1:0".parse().unwrap();
//! let server = d1vec::serve::spawn(db, options)?;
//! println!("CLOUDFLARE_API_BASE_URL={}", server.base_url());
//! server.shutdown()?;
//! # Ok(()) }
//! ```

mod auth;
mod body;
pub(crate) mod d1;
mod d1_routes;
mod envelope;
mod error;
pub(crate) mod harness;
mod sessions;
mod vectorize;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;

use crate::error::{Error, Result};
use crate::{Database, TenantSession};
use auth::{Auth, Principal};
use error::{Api, ApiError};
use sessions::Sessions;

/// How long one request may take, body included, before it is answered with 504. (A
/// library call already running goes on to its end; its result is then dropped.)
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// The path every route is under (wrangler's `CLOUDFLARE_API_BASE_URL` ends with it).
pub const API_PREFIX: &str = "/client/v4";

/// How to run the server.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The address to listen on (default `127.0.0.1:8787`; port 0 picks a free port).
    pub listen: SocketAddr,
    /// Admin token: full access to every database and index. `None` + loopback = any bearer
    /// token (or none) is admitted as admin (wrangler always sends one); `None` on another
    /// address is refused.
    pub admin_token: Option<String>,
    /// Tenant-bound tokens: requests run in `db.tenant(tenant)` (then `.as_user(user)`).
    pub tenant_tokens: Vec<TenantToken>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 8787)),
            admin_token: None,
            tenant_tokens: Vec::new(),
        }
    }
}

/// A token bound to one tenant (and, optionally, one of its users).
#[derive(Clone)]
pub struct TenantToken {
    /// The bearer token.
    pub token: String,
    /// The tenant whose session the token's requests run in.
    pub tenant: String,
    /// The user the session acts as (`TenantSession::as_user`); `None` = the tenant's
    /// service principal, which holds every permission of the tenant.
    pub user: Option<String>,
}

impl std::fmt::Debug for TenantToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantToken")
            .field("token", &"<redacted>")
            .field("tenant", &self.tenant)
            .field("user", &self.user)
            .finish()
    }
}

/// A server running on its own thread and tokio runtime (from [`spawn`]).
pub struct RunningServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
}

impl RunningServer {
    /// The bound address (the real port when the options asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API's base URL, as wrangler's `CLOUDFLARE_API_BASE_URL`:
    /// `http://127.0.0.1:PORT/client/v4`.
    pub fn base_url(&self) -> String {
        base_url(self.addr)
    }

    /// Stops accepting connections, finishes the requests in flight, then returns.
    pub fn shutdown(mut self) -> Result<()> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take().map(std::thread::JoinHandle::join) {
            None => Ok(()),
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(Error::invalid("server", "the server thread panicked")),
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        let _ = self.stop_and_join();
    }
}

fn base_url(addr: SocketAddr) -> String {
    format!("http://{addr}{API_PREFIX}")
}

/// Runs the server on its own thread and tokio runtime until [`RunningServer::shutdown`];
/// for tests, benches and the load test. The address is bound before this returns.
pub fn spawn(db: Arc<Database>, options: ServeOptions) -> Result<RunningServer> {
    let (listener, state) = bind(db, &options)?;
    let addr = listener.local_addr().map_err(Error::io("listener"))?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("d1vec-serve".into())
        .spawn(move || {
            serve(listener, state, async move {
                let _ = stopped.await;
            })
        })
        .map_err(Error::io("server thread"))?;
    Ok(RunningServer {
        addr,
        stop: Some(stop),
        thread: Some(thread),
    })
}

/// The command line's entry: runs until SIGTERM or SIGINT, then shuts down gracefully
/// (requests in flight are finished, so every acknowledged write is in the database).
pub fn run_blocking(db: Arc<Database>, options: ServeOptions) -> Result<()> {
    run_until_signal(db, options, |_| {})
}

/// [`run_blocking`], calling `ready` with the bound address once it listens.
pub(crate) fn run_until_signal(
    db: Arc<Database>,
    options: ServeOptions,
    ready: impl FnOnce(SocketAddr),
) -> Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        // Colour only on a terminal: a log file or pipe gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    let (listener, state) = bind(db, &options)?;
    ready(listener.local_addr().map_err(Error::io("listener"))?);
    serve(listener, state, shutdown_signal())
}

/// Waits for SIGINT (Ctrl-C) or, on Unix, SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

/// Binds the listener and builds the shared state (checking the tokens).
fn bind(
    db: Arc<Database>,
    options: &ServeOptions,
) -> Result<(std::net::TcpListener, Arc<AppState>)> {
    let auth = Auth::new(options, options.listen)?;
    let listener = std::net::TcpListener::bind(options.listen)
        .map_err(Error::io(format!("listen address {}", options.listen)))?;
    listener
        .set_nonblocking(true)
        .map_err(Error::io("listener"))?;
    let addr = listener.local_addr().map_err(Error::io("listener"))?;
    Ok((listener, new_state(db, options, auth, addr)?))
}

/// The shared state of a server at `addr`.
fn new_state(
    db: Arc<Database>,
    options: &ServeOptions,
    auth: Auth,
    addr: SocketAddr,
) -> Result<Arc<AppState>> {
    let d1 = d1_routes::D1::open(Arc::clone(&db))?;
    Ok(Arc::new(AppState {
        addr,
        db,
        auth,
        tokens: options.tenant_tokens.clone(),
        sessions: Sessions::default(),
        d1,
    }))
}

/// Serves on `listener` until `stop` completes, then drains requests in flight.
fn serve(
    listener: std::net::TcpListener,
    state: Arc<AppState>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("d1vec-serve-worker")
        .build()
        .map_err(Error::io("tokio runtime"))?;
    runtime.block_on(async move {
        let listener =
            tokio::net::TcpListener::from_std(listener).map_err(Error::io("listener"))?;
        axum::serve(listener, router(state))
            .with_graceful_shutdown(stop)
            .await
            .map_err(Error::io("server"))
    })
}

/// What every request shares.
pub(crate) struct AppState {
    /// The bound address.
    addr: SocketAddr,
    db: Arc<Database>,
    auth: Auth,
    tokens: Vec<TenantToken>,
    sessions: Sessions,
    d1: d1_routes::D1,
}

/// The surface a request's library calls go through: the unscoped admin database, or the
/// tenant session of its token.
pub(crate) enum Surface<'a> {
    /// Everything, unscoped.
    Admin(&'a Database),
    /// One tenant, with every rule of the library.
    Tenant(&'a TenantSession),
}

/// The key of the `--db` file in the session pool.
const PRIMARY_KEY: &str = "";

impl AppState {
    /// Runs `f` on the blocking pool, on the primary database as `who`.
    pub(crate) async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        who: Principal,
        api: Api,
        f: impl FnOnce(Surface<'_>) -> Result<T> + Send + 'static,
    ) -> std::result::Result<T, ApiError> {
        let db = Arc::clone(&self.db);
        self.run_on(db, PRIMARY_KEY.to_owned(), who, api, f).await
    }

    /// Runs `f` on the blocking pool, on `db` (known to the pool as `db_key`) as `who`: a
    /// tenant principal gets a session of its tenant, held for `f` alone.
    pub(crate) async fn run_on<T: Send + 'static>(
        self: &Arc<Self>,
        db: Arc<Database>,
        db_key: String,
        who: Principal,
        api: Api,
        f: impl FnOnce(Surface<'_>) -> Result<T> + Send + 'static,
    ) -> std::result::Result<T, ApiError> {
        let state = Arc::clone(self);
        let joined = tokio::task::spawn_blocking(move || match who {
            Principal::Admin => f(Surface::Admin(&db)),
            Principal::Tenant(at) => {
                let token = &state.tokens[at];
                let session = state.sessions.take(&db, &db_key, at, token)?;
                let out = f(Surface::Tenant(&session));
                state.sessions.give(&db_key, at, token, session);
                out
            }
        })
        .await;
        match joined {
            Ok(result) => result.map_err(|e| ApiError::from_error(&e, api)),
            Err(_) => Err(ApiError::internal(
                "the request's worker stopped before answering; nothing it did was acknowledged",
            )),
        }
    }
}

/// The routes, with authentication on every matched route, and logs and a time limit on
/// every request.
fn router(state: Arc<AppState>) -> Router {
    let accounts = Router::new()
        .merge(vectorize::routes())
        .merge(d1_routes::routes())
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            authenticate,
        ));
    Router::new()
        .nest(&format!("{API_PREFIX}/accounts/{{account_id}}"), accounts)
        .merge(d1_routes::unauthenticated_routes())
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(middleware::from_fn(time_limit))
        .layer(middleware::from_fn(log))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

/// Puts the request's [`Principal`] in its extensions, or refuses it.
async fn authenticate(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    match state.auth.authenticate(request.headers()) {
        Ok(who) => {
            request.extensions_mut().insert(who);
            next.run(request).await
        }
        Err(e) => e.into_response(),
    }
}

async fn no_route(request: Request) -> Response {
    // The path is the client's own; echoing it back tells nothing new. Cut it, though.
    let path: String = request.uri().path().chars().take(200).collect();
    ApiError::new(
        StatusCode::NOT_FOUND,
        error::NO_ROUTE,
        format!("Could not route to {path}, perhaps your object identifier is invalid?"),
    )
    .into_response()
}

async fn wrong_method(request: Request) -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        error::METHOD_NOT_ALLOWED,
        format!("Method {} not allowed for this route", request.method()),
    )
    .into_response()
}

async fn time_limit(request: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            error::TIMEOUT,
            format!(
                "the request took longer than {} s; a write it made may still complete",
                REQUEST_TIMEOUT.as_secs()
            ),
        )
        .into_response(),
    }
}

/// One log line per request: method, route template, status, error code, latency. Never
/// the URL's values, a header, or a body (so no token, SQL or vector reaches the log).
async fn log(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "<no route>".to_owned(), |m| m.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    let code = response.extensions().get::<ApiError>().map(|e| e.code);
    tracing::info!(
        method = %method,
        route = %route,
        status = response.status().as_u16(),
        error_code = ?code,
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    response
}
