//! The HTTP API (axum): answers (JSON and Server-Sent Events), an
//! OpenAI-compatible chat endpoint, provenance and audit reads, admin
//! actions behind a bearer token, health and Prometheus metrics, and the web
//! page at `/`.
//!
//! The serve stage knows HTTP, limits and queueing; what an answer *is* comes
//! from the caller (`cli::serve` wires in the real answer pipeline and store)
//! through [`Backends`]. Answer jobs run on worker threads behind a bounded
//! [`JobQueue`]: a full queue is a 429 with `Retry-After`, a client that goes
//! away cancels its job, every job has a deadline and a token cap.
//!
//! Slow and faulty clients: connections are served over HTTP/1.1 by our own
//! accept loop (hyper), with a cap on open connections (more get 503 at
//! once), a time limit for a request head (which also closes idle
//! keep-alive connections) and for a request body (408), a connection whose
//! client stops reading its response is closed after the same time, and a
//! deadline per request (504). Every response carries an `x-request-id`; a 500 says only
//! that id, the details go to the log under it. A job that panics answers
//! 500, its worker is replaced, and `/healthz` turns 503 while no worker can
//! serve.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, MatchedPath, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::metrics::{Metrics, QueueGauges};
use super::queue::{CancelOnDrop, JobControl, JobQueue, StopReason};

/// One question to answer, handed to the answer runner on a worker thread.
#[derive(Debug)]
pub struct AskJob {
    /// The request's id (`x-request-id`), for the log.
    pub request_id: String,
    pub question: String,
    /// Generation cap for this request (already clamped to the server's).
    pub max_tokens: usize,
    /// Earlier turns of a chat (`user`/`assistant`, oldest first); empty
    /// for a single question.
    pub history: Vec<crate::engine::chat::ChatMessage>,
    /// Temperature, seed and stop sequences asked for.
    pub sampling: crate::answer::DraftOptions,
    /// Where the runner sends tokens and the result.
    pub events: mpsc::UnboundedSender<JobEvent>,
}

/// What an answer runner reports while it works.
#[derive(Debug, Clone)]
pub enum JobEvent {
    /// A piece of generated text (before citation checking).
    Token(String),
    /// The checked answer: the same JSON object `byline ask --json` prints.
    Done(Value),
    /// The job stopped early (client gone, deadline, shutdown).
    Stopped(StopReason),
    /// The question cannot be answered as asked (the client's mistake, e.g.
    /// a prompt too long for the model): a 400 with this message.
    Rejected(String),
    /// The job failed on our side: the text (the whole error chain) goes to
    /// the log only; the client gets a 500 with the request id.
    Failed(String),
}

/// Why a backend call failed.
#[derive(Debug, Clone)]
pub enum BackendError {
    /// The arguments are wrong (a 400 with this message).
    BadRequest(String),
    /// Our failure (a 500; the text is logged, not shown).
    Internal(String),
}

impl From<String> for BackendError {
    fn from(s: String) -> Self {
        BackendError::Internal(s)
    }
}

/// An async handler returning JSON or an error (`None` = not found).
pub type AsyncJson = Arc<
    dyn Fn(Value) -> Pin<Box<dyn Future<Output = Result<Option<Value>, BackendError>> + Send>>
        + Send
        + Sync,
>;

/// `GET /v1/sources/{id}`: the page's provenance (page id or URL in), typed
/// (`None` = not in the corpus); see [`super::sources::source_backend`].
pub type SourceFn = Arc<
    dyn Fn(
            String,
        ) -> Pin<
            Box<dyn Future<Output = Result<Option<crate::audit::WhyReport>, BackendError>> + Send>,
        > + Send
        + Sync,
>;

/// Everything the API delegates to the rest of Byline.
#[derive(Clone)]
pub struct Backends {
    /// Runs one answer job to the end, sending [`JobEvent::Token`]s as it
    /// goes and returning the final event (`Done`, `Stopped` or `Failed`,
    /// which the server sends on and counts in the metrics, whether or not
    /// the client is still there); must check [`JobControl::should_stop`]
    /// between tokens.
    pub answer: Arc<dyn Fn(AskJob, &JobControl) -> JobEvent + Send + Sync>,
    /// Page id or URL → the page's provenance ([`crate::audit::why`]).
    pub source: SourceFn,
    /// `{}` → the audit summary.
    pub audit_summary: AsyncJson,
    /// `{"origin": "<origin or null>"}` → recheck report.
    pub recheck: AsyncJson,
    /// `{"url": "…"}` or `{"origin": "…"}` → forget report.
    pub forget: AsyncJson,
    /// Shown by `/healthz` and used as the OpenAI `model` name.
    pub model_name: String,
    /// Other names a request's `model` may use for the loaded model (its
    /// registered name, `byline`).
    pub model_aliases: Vec<String>,
    /// When the model file was made (Unix seconds), for `/v1/models`.
    pub model_created: u64,
}

/// Limits and switches of one running service.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub addr: SocketAddr,
    /// Answer jobs that may wait (beyond those running).
    pub queue_capacity: usize,
    /// Answer jobs generated at once.
    pub workers: usize,
    /// Upper bound of `max_tokens` per request (and its default).
    pub max_tokens: usize,
    /// Wall-clock budget per answer, queueing included; every request is
    /// cut off (504) a little after it.
    pub deadline: Duration,
    /// Time a client has to send a request head (also how long an idle
    /// keep-alive connection stays open).
    pub header_timeout: Duration,
    /// Time a client has to send a request body once its head arrived; also
    /// how long a client may stop reading a response before its connection
    /// is closed.
    pub body_timeout: Duration,
    /// Most client connections open at once; more are answered 503 and
    /// closed.
    pub max_connections: usize,
    /// Largest accepted request body in bytes.
    pub body_limit: usize,
    /// Longest accepted question in characters.
    pub max_question_chars: usize,
    /// Bearer token for admin actions; `None` = admin endpoints off (404).
    pub admin_token: Option<String>,
    /// Origins allowed by CORS (`scheme://host[:port]`, or `*` for any);
    /// empty = no CORS headers at all. See [`parse_cors_origin`].
    pub cors_origins: Vec<String>,
    /// After a shutdown signal, how long in-flight answers may finish before
    /// they are cancelled.
    pub shutdown_grace: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            queue_capacity: 8,
            workers: 1,
            max_tokens: 256,
            deadline: Duration::from_secs(120),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            max_connections: 256,
            body_limit: 16 * 1024,
            max_question_chars: 2000,
            admin_token: None,
            cors_origins: Vec::new(),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

struct AppState {
    config: ServeConfig,
    backends: Backends,
    queue: JobQueue<AskJob>,
    metrics: Arc<Metrics>,
    started: Instant,
    /// One permit per connection that may be open.
    connections: Arc<tokio::sync::Semaphore>,
}

type Shared = Arc<AppState>;

/// How long after [`ServeConfig::deadline`] a request is cut off with 504
/// (the answer job itself stops at the deadline; this is for whatever does
/// not).
const REQUEST_DEADLINE_SLACK: Duration = Duration::from_secs(1);

/// Connections beyond the cap being answered 503 at once; beyond this many
/// they are just closed.
const MAX_REFUSING: usize = 64;

tokio::task_local! {
    /// The id of the request being handled (set by [`observe`]).
    static REQUEST_ID: Arc<str>;
}

/// A new request id: unique within this process, and across restarts by
/// the start time in it.
fn new_request_id() -> Arc<str> {
    static N: AtomicU64 = AtomicU64::new(0);
    static START: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let start = *START.get_or_init(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    });
    format!(
        "req-{start:x}-{}",
        N.fetch_add(1, Ordering::Relaxed).wrapping_add(1)
    )
    .into()
}

fn current_request_id() -> Option<Arc<str>> {
    REQUEST_ID.try_with(|id| id.clone()).ok()
}

/// An API error: status plus an OpenAI-style JSON body
/// `{"error": {"message", "type", "param", "code", "request_id"}}` (`param`
/// names the request field at fault, `code` is a short machine-readable
/// string; both null when there is none). Server errors
/// (500) never show their detail: it is logged with the request id, and the
/// body names only that id.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
    retry_after: Option<u64>,
    /// Logged, never sent.
    detail: Option<String>,
    close: bool,
    /// The request field at fault.
    param: Option<&'static str>,
    /// A short machine-readable code.
    code: Option<&'static str>,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            kind,
            message: message.into(),
            retry_after: None,
            detail: None,
            close: false,
            param: None,
            code: None,
        }
    }
    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }
    /// A 400 about one request field.
    fn bad_param(param: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            param: Some(param),
            code: Some("invalid_value"),
            ..ApiError::bad_request(message)
        }
    }
    fn with_code(self, code: &'static str) -> ApiError {
        ApiError {
            code: Some(code),
            ..self
        }
    }
    fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    /// A failure on our side; `detail` goes to the log only.
    fn internal(detail: impl Into<String>) -> ApiError {
        ApiError {
            detail: Some(detail.into()),
            ..ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "internal server error",
            )
        }
    }
    fn timeout(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::GATEWAY_TIMEOUT, "timeout", message)
    }
}

/// The opaque text of a 500.
fn internal_message(request_id: &str) -> String {
    format!("internal server error; the server log has the details under request id {request_id}")
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let id = current_request_id();
        let id_str = id.as_deref().unwrap_or("-");
        let message = if self.status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(
                request_id = id_str,
                error = self.detail.as_deref().unwrap_or(&self.message),
                "request failed"
            );
            internal_message(id_str)
        } else {
            self.message
        };
        let body = json!({"error": {"message": message, "type": self.kind, "param": self.param, "code": self.code, "request_id": id_str}});
        let mut r = (self.status, Json(body)).into_response();
        if let Some(s) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.close {
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        r
    }
}

/// Checks one `--cors-origin` value: `*` (any origin) or an http(s)
/// origin `scheme://host[:port]` (no path, query or user info); returns it
/// as browsers send it in `Origin`.
pub fn parse_cors_origin(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s == "*" {
        return Ok("*".into());
    }
    let shape = "an origin is scheme://host[:port], e.g. https://example.org, or * for any";
    let u = url::Url::parse(s).map_err(|e| format!("{s:?} is not an origin ({e}); {shape}"))?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return Err(format!("{s:?} is not an http(s) origin; {shape}"));
    }
    if u.path() != "/"
        || u.query().is_some()
        || u.fragment().is_some()
        || !u.username().is_empty()
        || u.password().is_some()
    {
        return Err(format!(
            "{s:?} has more than scheme, host and port; {shape}"
        ));
    }
    let origin = u.origin().ascii_serialization();
    HeaderValue::from_str(&origin).map_err(|e| format!("{s:?}: {e}"))?;
    Ok(origin)
}

/// A server bound to its address, not yet serving.
pub struct BoundServer {
    listener: tokio::net::TcpListener,
    router: Router,
    state: Shared,
}

impl BoundServer {
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves; then stops accepting, lets open
    /// connections finish their requests (idle ones close at once), gives
    /// in-flight answers `shutdown_grace` to finish, cancels the rest and
    /// closes what is still open a little later.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let BoundServer {
            listener,
            router,
            state,
        } = self;
        let config = &state.config;
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(config.header_timeout)
            .keep_alive(true);
        let slots = state.connections.clone();
        let refusing = Arc::new(tokio::sync::Semaphore::new(MAX_REFUSING));
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut conns = tokio::task::JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
                accepted = listener.accept() => {
                    let (stream, _peer) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            // Out of file descriptors and the like: back off
                            // instead of spinning.
                            tracing::warn!(error = %e, "accepting a connection failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    match slots.clone().try_acquire_owned() {
                        Ok(slot) => {
                            let (router, http, stop) = (router.clone(), http.clone(), stop_rx.clone());
                            let stream = WriteTimeout::new(stream, config.body_timeout);
                            conns.spawn(async move {
                                serve_connection(stream, router, http, stop).await;
                                drop(slot);
                            });
                        }
                        Err(_) => {
                            state.metrics.rejected_connection();
                            if let Ok(p) = refusing.clone().try_acquire_owned() {
                                conns.spawn(async move {
                                    refuse_connection(stream).await;
                                    drop(p);
                                });
                            }
                        }
                    }
                }
            }
        }
        drop(listener);
        let _ = stop_tx.send(true);
        // After the grace period, cancel whatever is still generating
        // (streams then end with a "stopped" event); a little later, close
        // what is still open.
        let grace = config.shutdown_grace;
        let drained =
            tokio::time::timeout(grace, async { while conns.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            state.queue.stop_all();
            let _ =
                tokio::time::timeout(config.header_timeout.max(Duration::from_secs(2)), async {
                    while conns.join_next().await.is_some() {}
                })
                .await;
            conns.abort_all();
        }
        state.queue.stop_all();
        Ok(())
    }
}

/// Serves one connection until it closes or the server stops (then
/// gracefully: the request in progress finishes).
async fn serve_connection(
    stream: WriteTimeout<tokio::net::TcpStream>,
    router: Router,
    http: hyper::server::conn::http1::Builder,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let _ = stream.inner.set_nodelay(true);
    let service = hyper_util::service::TowerToHyperService::new(router);
    let conn = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => {
            if let Err(e) = res {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        () = stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// A connection whose writes fail once the client has taken no bytes for
/// `limit`: a client that stops reading its responses does not hold its
/// connection (and the slot) for ever.
struct WriteTimeout<S> {
    inner: S,
    limit: Duration,
    /// Running while a write is blocked.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> WriteTimeout<S> {
    fn new(inner: S, limit: Duration) -> Self {
        WriteTimeout {
            inner,
            limit,
            stalled: None,
        }
    }

    /// Passes `ready` on (and stops the clock), or starts/checks the clock
    /// while the write is blocked.
    fn watch<T>(
        &mut self,
        cx: &mut std::task::Context<'_>,
        ready: std::task::Poll<std::io::Result<T>>,
    ) -> std::task::Poll<std::io::Result<T>> {
        use std::task::Poll;
        match ready {
            Poll::Ready(r) => {
                self.stalled = None;
                Poll::Ready(r)
            }
            Poll::Pending => {
                let limit = self.limit;
                let sleep = self
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                if sleep.as_mut().poll(cx).is_ready() {
                    self.stalled = None;
                    Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the client stopped reading",
                    )))
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for WriteTimeout<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for WriteTimeout<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, r)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.watch(cx, r)
    }
}

/// Resolves once the server stops (never if it cannot tell).
async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    loop {
        if *stop.borrow_and_update() {
            return;
        }
        if stop.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

/// Answers a connection over the cap with 503 and closes it.
async fn refuse_connection(mut stream: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const BODY: &str = r#"{"error":{"message":"too many open connections; retry later","type":"overloaded","param":null,"code":"too_many_connections"}}"#;
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        // Wait for the request head (HTTP clients take a response before
        // their request as a broken connection), up to 8 KiB or 1 s.
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while head.len() < 8192 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await;
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await?;
        // Read what the client sent until it closes, so the close is a FIN
        // and not a reset that could destroy the response in flight.
        while stream.read(&mut buf).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
}

/// Binds `config.addr` and builds the router; serving starts with
/// [`BoundServer::run`]. Refuses non-loopback addresses unless
/// `allow_public` (the CLI's explicit `--public` flag).
pub async fn bind(
    config: ServeConfig,
    backends: Backends,
    allow_public: bool,
) -> std::io::Result<BoundServer> {
    if !config.addr.ip().is_loopback() && !allow_public {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "refusing to listen on {}: not a loopback address (pass --public to expose the service)",
                config.addr
            ),
        ));
    }
    for o in &config.cors_origins {
        parse_cors_origin(o).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("--cors-origin: {e}"),
            )
        })?;
    }
    let listener = tokio::net::TcpListener::bind(config.addr).await?;
    let runner = backends.answer.clone();
    let metrics = Arc::new(Metrics::default());
    let job_metrics = metrics.clone();
    let queue = JobQueue::start(
        config.queue_capacity,
        config.workers,
        move |job: AskJob, ctl: &JobControl| {
            let events = job.events.clone();
            let request_id = job.request_id.clone();
            let started = Instant::now();
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runner(job, ctl))) {
                Ok(end) => {
                    record_outcome(&job_metrics, &end, started.elapsed().as_secs_f64());
                    let _ = events.send(end);
                }
                Err(panic) => {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "(no message)".into());
                    tracing::error!(
                        request_id = %request_id,
                        panic = %what,
                        "answer worker panicked; replacing it"
                    );
                    job_metrics.answer("error", 0, 0.0, 0);
                    let _ = events.send(JobEvent::Failed(format!(
                        "the answer worker panicked: {what}"
                    )));
                    // The queue counts it and replaces this worker's thread.
                    std::panic::resume_unwind(panic);
                }
            }
        },
    )?;
    let connections = Arc::new(tokio::sync::Semaphore::new(config.max_connections.max(1)));
    let state = Arc::new(AppState {
        config,
        backends,
        queue,
        metrics,
        started: Instant::now(),
        connections,
    });
    let router = router(state.clone());
    Ok(BoundServer {
        listener,
        router,
        state,
    })
}

fn router(state: Shared) -> Router {
    let body_limit = state.config.body_limit;
    let mut r = Router::new()
        .route("/", get(index))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/answers", post(answers))
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/models", get(models))
        .route("/v1/models/{id}", get(model_by_id))
        .route("/v1/sources/{id}", get(source))
        .route("/v1/audit/summary", get(audit_summary))
        .route("/v1/admin/recheck", post(admin_recheck))
        .route("/v1/admin/forget", post(admin_forget))
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(state.clone(), observe));
    if !state.config.cors_origins.is_empty() {
        // `bind` checked them; `*` means any origin.
        let origins: Vec<String> = state
            .config
            .cors_origins
            .iter()
            .filter_map(|o| parse_cors_origin(o).ok())
            .collect();
        let allow = if origins.iter().any(|o| o == "*") {
            tower_http::cors::AllowOrigin::any()
        } else {
            tower_http::cors::AllowOrigin::list(
                origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()),
            )
        };
        r = r.layer(
            tower_http::cors::CorsLayer::new()
                .allow_origin(allow)
                .allow_methods([axum::http::Method::GET, axum::http::Method::POST])
                .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
                .expose_headers([header::HeaderName::from_static("x-request-id")]),
        );
    }
    r.with_state(state)
}

/// Gives every request an id (`x-request-id`, and [`REQUEST_ID`] while it
/// is handled) and its deadline (504 after it), and counts it by route
/// pattern and status, with its latency.
async fn observe(State(state): State<Shared>, mut req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let id = new_request_id();
    req.extensions_mut().insert(RequestId(id.clone()));
    let t0 = Instant::now();
    let limit = state.config.deadline + REQUEST_DEADLINE_SLACK;
    let run = tokio::time::timeout(limit, next.run(req));
    let mut resp = match REQUEST_ID.scope(id.clone(), run).await {
        Ok(r) => r,
        Err(_) => REQUEST_ID.sync_scope(id.clone(), || {
            ApiError::timeout("the request did not finish before its deadline").into_response()
        }),
    };
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    state
        .metrics
        .request(&route, resp.status().as_u16(), t0.elapsed().as_secs_f64());
    resp
}

/// The id of a request (set by [`observe`]).
#[derive(Debug, Clone)]
struct RequestId(Arc<str>);

/// A request body read within [`ServeConfig::body_timeout`] (408 and the
/// connection closed otherwise) and [`ServeConfig::body_limit`] (413).
struct TimedBody(Bytes);

impl FromRequest<Shared> for TimedBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Shared) -> Result<Self, ApiError> {
        let limit = state.config.body_timeout;
        match tokio::time::timeout(limit, Bytes::from_request(req, state)).await {
            Ok(Ok(b)) => Ok(TimedBody(b)),
            Ok(Err(rejection)) => {
                let status = rejection.status();
                let mut e = ApiError::new(status, "invalid_request_error", rejection.body_text());
                if status.is_server_error() {
                    e = ApiError::internal(rejection.body_text());
                }
                Err(e)
            }
            Err(_) => Err(ApiError {
                close: true,
                ..ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "request_timeout",
                    format!(
                        "the request body did not arrive within {} s",
                        limit.as_secs_f64()
                    ),
                )
            }),
        }
    }
}

async fn index() -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "no-store")],
        Html(super::page::INDEX_HTML),
    )
}

/// `200 {"status": "ok"}`, or `503 {"status": "unhealthy"}` while no
/// answer worker can serve (all dead, or stuck well past a job's deadline).
async fn healthz(State(state): State<Shared>) -> Response {
    let serving = state.queue.serving();
    let ok = serving > 0;
    let body = Json(json!({
        "status": if ok { "ok" } else { "unhealthy" },
        "model": state.backends.model_name,
        "uptime_seconds": state.started.elapsed().as_secs(),
        "queue": {"waiting": state.queue.waiting(), "running": state.queue.running(), "capacity": state.queue.capacity()},
        "workers": {"configured": state.queue.workers(), "serving": serving, "panics": state.queue.panics()},
    }));
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, [(header::CACHE_CONTROL, "no-store")], body).into_response()
}

async fn metrics(State(state): State<Shared>) -> impl IntoResponse {
    let max = state.config.max_connections.max(1);
    let text = state.metrics.render(QueueGauges {
        waiting: state.queue.waiting(),
        running: state.queue.running(),
        capacity: state.queue.capacity(),
        worker_panics: state.queue.panics(),
        workers: state.queue.workers(),
        workers_serving: state.queue.serving(),
        connections_open: max.saturating_sub(state.connections.available_permits()),
        connections_max: max,
    });
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}

/// Parses a JSON body with messages that say what is wrong and where.
fn parse_json<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<T, ApiError> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("");
        if !ct
            .trim_start()
            .to_ascii_lowercase()
            .starts_with("application/json")
        {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "invalid_request_error",
                format!("content-type must be application/json, got {ct:?}"),
            ));
        }
    }
    serde_json::from_slice(body).map_err(|e| {
        let code = if e.is_syntax() || e.is_eof() {
            "invalid_json"
        } else {
            "invalid_value"
        };
        ApiError::bad_request(format!(
            "invalid JSON body at line {} column {}: {e}",
            e.line(),
            e.column()
        ))
        .with_code(code)
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnswersRequest {
    question: String,
    #[serde(default)]
    max_tokens: Option<i64>,
    #[serde(default)]
    stream: bool,
}

impl AppState {
    fn validate_question(&self, q: &str) -> Result<String, ApiError> {
        let q = q.trim();
        if q.is_empty() {
            return Err(ApiError::bad_request("question must not be empty"));
        }
        let n = q.chars().count();
        if n > self.config.max_question_chars {
            return Err(ApiError::bad_request(format!(
                "question is {n} characters, the limit is {}",
                self.config.max_question_chars
            )));
        }
        Ok(q.to_string())
    }

    fn validate_max_tokens(&self, m: Option<i64>) -> Result<usize, ApiError> {
        match m {
            None => Ok(self.config.max_tokens),
            Some(m) if m < 1 => Err(ApiError::bad_param(
                "max_tokens",
                format!("max_tokens must be at least 1, got {m}"),
            )),
            Some(m) if usize::try_from(m).map_or(true, |m| m > self.config.max_tokens) => {
                Err(ApiError::bad_param(
                    "max_tokens",
                    format!(
                        "max_tokens is {m}, this server allows at most {}",
                        self.config.max_tokens
                    ),
                ))
            }
            Some(m) => Ok(usize::try_from(m).unwrap_or(self.config.max_tokens)),
        }
    }

    /// Queues a job; 429 with `Retry-After` when the queue is full.
    fn enqueue(
        &self,
        request_id: &str,
        question: String,
        max_tokens: usize,
        history: Vec<crate::engine::chat::ChatMessage>,
        sampling: crate::answer::DraftOptions,
    ) -> Result<(mpsc::UnboundedReceiver<JobEvent>, CancelOnDrop), ApiError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let job = AskJob {
            request_id: request_id.to_string(),
            question,
            max_tokens,
            history,
            sampling,
            events: tx,
        };
        let deadline = Instant::now() + self.config.deadline;
        match self.queue.submit(job, deadline) {
            Ok(guard) => Ok((rx, guard)),
            Err(full) => {
                self.metrics.rejected_queue_full();
                let waiting = (self.queue.waiting() + self.queue.running()).max(1) as u64;
                Err(ApiError {
                    retry_after: Some(waiting.clamp(1, 60)),
                    ..ApiError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "rate_limit_error",
                        format!(
                            "the answer queue is full ({} waiting); retry later",
                            full.capacity
                        ),
                    )
                })
            }
        }
    }
}

/// Counts one finished job: outcome, tokens (from the answer's
/// `generated_tokens`), speed and citations.
fn record_outcome(metrics: &Metrics, end: &JobEvent, seconds: f64) {
    match end {
        JobEvent::Done(v) => {
            let refused = v.get("refused").and_then(Value::as_bool) == Some(true);
            let citations = v
                .get("citations")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let tokens = v
                .get("generated_tokens")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            metrics.answer(
                if refused { "refused" } else { "answered" },
                tokens,
                seconds,
                citations,
            );
        }
        JobEvent::Stopped(r) => metrics.answer(r.as_str(), 0, 0.0, 0),
        JobEvent::Rejected(_) => metrics.answer("rejected", 0, 0.0, 0),
        JobEvent::Failed(_) => metrics.answer("error", 0, 0.0, 0),
        JobEvent::Token(_) => {}
    }
}

#[derive(Debug)]
enum End {
    Stopped(StopReason),
    Rejected(String),
    Failed(String),
}

#[derive(Debug)]
struct Outcome {
    result: Result<Value, End>,
}

/// Waits for a job's final event.
async fn wait_for(mut rx: mpsc::UnboundedReceiver<JobEvent>) -> Outcome {
    let result = loop {
        match rx.recv().await {
            Some(JobEvent::Token(_)) => {}
            Some(JobEvent::Done(v)) => break Ok(v),
            Some(JobEvent::Stopped(r)) => break Err(End::Stopped(r)),
            Some(JobEvent::Rejected(m)) => break Err(End::Rejected(m)),
            Some(JobEvent::Failed(m)) => break Err(End::Failed(m)),
            None => {
                break Err(End::Failed(
                    "the answer worker ended without a result".into(),
                ));
            }
        }
    };
    Outcome { result }
}

fn end_error(end: End) -> ApiError {
    match end {
        End::Stopped(StopReason::Deadline) => {
            ApiError::timeout("the answer did not finish before the request deadline")
        }
        End::Stopped(StopReason::Shutdown) => ApiError {
            retry_after: Some(5),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "the server is shutting down",
            )
        },
        End::Stopped(StopReason::Cancelled) => ApiError::internal("the answer was cancelled"),
        End::Rejected(m) => ApiError::bad_request(m),
        End::Failed(m) => ApiError::internal(m),
    }
}

/// When a stream gives up waiting for its job (the job itself stops at the
/// deadline; this is for a worker that does not).
fn stream_deadline(state: &AppState) -> tokio::time::Instant {
    tokio::time::Instant::now() + state.config.deadline + REQUEST_DEADLINE_SLACK
}

async fn answers(
    State(state): State<Shared>,
    Extension(RequestId(id)): Extension<RequestId>,
    headers: HeaderMap,
    TimedBody(body): TimedBody,
) -> Result<Response, ApiError> {
    let req: AnswersRequest = parse_json(&headers, &body)?;
    let question = state.validate_question(&req.question)?;
    let max_tokens = state.validate_max_tokens(req.max_tokens)?;
    let (rx, guard) = state.enqueue(
        &id,
        question,
        max_tokens,
        Vec::new(),
        crate::answer::DraftOptions::default(),
    )?;
    if req.stream {
        return Ok(answer_sse(rx, guard, id, stream_deadline(&state)).into_response());
    }
    let mut guard = guard;
    let outcome = wait_for(rx).await;
    guard.disarm();
    match outcome.result {
        Ok(v) => Ok(Json(v).into_response()),
        Err(e) => Err(end_error(e)),
    }
}

/// SSE for `/v1/answers`: `token` events (`{"text"}`), then one `answer`
/// event with the checked answer, or one `error` event. The stream owns the
/// job's cancel guard: a client that disconnects drops it and stops the job.
fn answer_sse(
    rx: mpsc::UnboundedReceiver<JobEvent>,
    guard: CancelOnDrop,
    request_id: Arc<str>,
    deadline: tokio::time::Instant,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    struct St {
        rx: mpsc::UnboundedReceiver<JobEvent>,
        guard: CancelOnDrop,
        done: bool,
        request_id: Arc<str>,
        deadline: tokio::time::Instant,
    }
    let st = St {
        rx,
        guard,
        done: false,
        request_id,
        deadline,
    };
    let stream = futures_util::stream::unfold(st, |mut st| async move {
        if st.done {
            return None;
        }
        let ev = next_event(&mut st.rx, st.deadline).await;
        let (event, end) = match ev {
            Some(JobEvent::Token(t)) => (
                Event::default().event("token").json_data(json!({"text": t})).ok()?,
                false,
            ),
            Some(JobEvent::Done(v)) => {
                (Event::default().event("answer").json_data(&v).ok()?, true)
            }
            Some(JobEvent::Stopped(r)) => (
                Event::default()
                    .event("error")
                    .json_data(json!({"error": {"message": format!("answer stopped: {}", r.as_str()), "type": r.as_str()}}))
                    .ok()?,
                true,
            ),
            Some(JobEvent::Rejected(m)) => (
                Event::default()
                    .event("error")
                    .json_data(stream_error(&st.request_id, JobEvent::Rejected(m)))
                    .ok()?,
                true,
            ),
            Some(JobEvent::Failed(m)) => (
                Event::default()
                    .event("error")
                    .json_data(stream_error(&st.request_id, JobEvent::Failed(m)))
                    .ok()?,
                true,
            ),
            None => return None,
        };
        if end {
            st.done = true;
            st.guard.disarm();
        }
        Some((Ok(event), st))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// The next event of a streamed job; past `deadline` (a worker that does
/// not stop), a `Stopped(Deadline)`; `None` if the job vanished without a
/// result (reported as a failure).
async fn next_event(
    rx: &mut mpsc::UnboundedReceiver<JobEvent>,
    deadline: tokio::time::Instant,
) -> Option<JobEvent> {
    match tokio::time::timeout_at(deadline, rx.recv()).await {
        Ok(Some(e)) => Some(e),
        Ok(None) => Some(JobEvent::Failed(
            "the answer worker ended without a result".into(),
        )),
        Err(_) => Some(JobEvent::Stopped(StopReason::Deadline)),
    }
}

/// The `error` object of a stream's failure: a rejection's message as it
/// is, a failure's only as the request id (its text is logged here).
fn stream_error(request_id: &str, end: JobEvent) -> Value {
    match end {
        JobEvent::Rejected(m) => {
            json!({"error": {"message": m, "type": "invalid_request_error", "param": null, "code": null, "request_id": request_id}})
        }
        JobEvent::Failed(detail) => {
            tracing::error!(request_id, error = %detail, "streamed answer failed");
            json!({"error": {"message": internal_message(request_id), "type": "server_error", "param": null, "code": null, "request_id": request_id}})
        }
        _ => {
            json!({"error": {"message": "unexpected event", "type": "server_error", "request_id": request_id}})
        }
    }
}

#[derive(Debug, Deserialize)]
struct ChatRequest {
    #[serde(default)]
    model: Option<Value>,
    #[serde(default)]
    messages: Option<Value>,
    #[serde(default)]
    stream: Option<Value>,
    #[serde(default)]
    max_tokens: Option<Value>,
    #[serde(default)]
    max_completion_tokens: Option<Value>,
    #[serde(default)]
    n: Option<Value>,
    #[serde(default)]
    temperature: Option<Value>,
    #[serde(default)]
    top_p: Option<Value>,
    #[serde(default)]
    seed: Option<Value>,
    #[serde(default)]
    stop: Option<Value>,
}

/// Most stop sequences a request may give (as OpenAI allows).
const MAX_STOP_SEQUENCES: usize = 4;

/// A chat request, checked: the question (last user message), the earlier
/// turns, and the generation settings.
#[derive(Debug)]
struct ChatCall {
    model: String,
    question: String,
    history: Vec<crate::engine::chat::ChatMessage>,
    stream: bool,
    max_tokens: usize,
    sampling: crate::answer::DraftOptions,
}

/// Roles a message may have; `system` and `developer` messages are read
/// but not used (Byline's answer prompt is its own), `tool` likewise.
const CHAT_ROLES: &[&str] = &["system", "developer", "user", "assistant", "tool"];

fn opt_number(v: &Option<Value>, param: &'static str) -> Result<Option<f64>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_f64()
            .map(Some)
            .ok_or_else(|| ApiError::bad_param(param, format!("{param} is not a number"))),
        Some(other) => Err(ApiError::bad_param(
            param,
            format!("{param} must be a number, got {other}"),
        )),
    }
}

fn opt_integer(v: &Option<Value>, param: &'static str) -> Result<Option<i64>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| {
            ApiError::bad_param(param, format!("{param} must be an integer, got {n}"))
        }),
        Some(other) => Err(ApiError::bad_param(
            param,
            format!("{param} must be an integer, got {other}"),
        )),
    }
}

impl AppState {
    /// Checks a chat request; every error names the field at fault.
    fn chat_call(&self, req: ChatRequest) -> Result<ChatCall, ApiError> {
        let stream = match &req.stream {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(ApiError::bad_param(
                    "stream",
                    format!("stream must be true or false, got {other}"),
                ));
            }
        };
        if let Some(n) = opt_integer(&req.n, "n")?
            && n != 1
        {
            return Err(ApiError::bad_param("n", "only n = 1 is supported"));
        }
        let messages = match &req.messages {
            Some(Value::Array(m)) if !m.is_empty() => m,
            Some(Value::Array(_)) => {
                return Err(ApiError::bad_param(
                    "messages",
                    "messages must not be empty",
                ));
            }
            None | Some(Value::Null) => {
                return Err(ApiError::bad_param(
                    "messages",
                    "messages is required: the conversation, ending with a user message",
                ));
            }
            Some(other) => {
                return Err(ApiError::bad_param(
                    "messages",
                    format!("messages must be an array of messages, got {other}"),
                ));
            }
        };
        let mut turns: Vec<(String, Option<String>)> = Vec::with_capacity(messages.len());
        for (i, m) in messages.iter().enumerate() {
            let role = m.get("role").and_then(Value::as_str).unwrap_or("");
            if !CHAT_ROLES.contains(&role) {
                return Err(ApiError::bad_param(
                    "messages",
                    format!(
                        "messages[{i}].role must be one of {}, got {:?}",
                        CHAT_ROLES.join(", "),
                        m.get("role").cloned().unwrap_or(Value::Null)
                    ),
                ));
            }
            let text = content_text(m.get("content").unwrap_or(&Value::Null));
            turns.push((role.to_string(), text));
        }
        let last_user = turns
            .iter()
            .rposition(|(r, _)| r == "user")
            .ok_or_else(|| {
                ApiError::bad_param("messages", "messages must contain a user message")
            })?;
        let text = turns
            .get(last_user)
            .and_then(|(_, t)| t.clone())
            .ok_or_else(|| {
                ApiError::bad_param("messages", "the last user message has no text content")
            })?;
        let question = self.validate_question(&text)?;
        // Earlier user and assistant turns with text, in order.
        let mut history = Vec::new();
        let mut history_chars = 0usize;
        for (role, text) in turns.iter().take(last_user) {
            if let ("user" | "assistant", Some(t)) = (role.as_str(), text) {
                let t = t.trim();
                if t.is_empty() {
                    continue;
                }
                history_chars = history_chars.saturating_add(t.chars().count());
                history.push(crate::engine::chat::ChatMessage::new(role.as_str(), t));
            }
        }
        // The body limit bounds this already; a conversation's words count
        // against the question limit several times over at most.
        let history_limit = self.config.max_question_chars.saturating_mul(8);
        if history_chars > history_limit {
            return Err(ApiError::bad_param(
                "messages",
                format!(
                    "the earlier turns hold {history_chars} characters, the limit is {history_limit}"
                ),
            ));
        }
        let max = match opt_integer(&req.max_completion_tokens, "max_completion_tokens")? {
            Some(m) => Some(m),
            None => opt_integer(&req.max_tokens, "max_tokens")?,
        };
        let max_tokens = self.validate_max_tokens(max)?;
        let temperature = match opt_number(&req.temperature, "temperature")? {
            None => 0.0,
            Some(t) if (0.0..=2.0).contains(&t) => t as f32,
            Some(t) => {
                return Err(ApiError::bad_param(
                    "temperature",
                    format!("temperature must be between 0 and 2, got {t}"),
                ));
            }
        };
        let top_p = match opt_number(&req.top_p, "top_p")? {
            None => None,
            Some(p) if p > 0.0 && p <= 1.0 => Some(p as f32),
            Some(p) => {
                return Err(ApiError::bad_param(
                    "top_p",
                    format!("top_p must be above 0 and at most 1, got {p}"),
                ));
            }
        };
        // Any integer; negative ones keep their bits.
        // Any integer is a seed: a negative one keeps its bits (two's complement).
        let seed = opt_integer(&req.seed, "seed")?.map(i64::cast_unsigned);
        let stop: Vec<String> = match &req.stop {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| {
                    x.as_str().map(str::to_string).ok_or_else(|| {
                        ApiError::bad_param(
                            "stop",
                            format!("stop entries must be strings, got {x}"),
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
            Some(other) => {
                return Err(ApiError::bad_param(
                    "stop",
                    format!("stop must be a string or an array of strings, got {other}"),
                ));
            }
        };
        if stop.len() > MAX_STOP_SEQUENCES {
            return Err(ApiError::bad_param(
                "stop",
                format!(
                    "at most {MAX_STOP_SEQUENCES} stop sequences, got {}",
                    stop.len()
                ),
            ));
        }
        if stop.iter().any(|s| s.is_empty()) {
            return Err(ApiError::bad_param(
                "stop",
                "stop sequences must not be empty",
            ));
        }
        // The model last: a request wrong in several ways hears about its
        // messages and parameters first.
        let model = match &req.model {
            None | Some(Value::Null) => self.backends.model_name.clone(),
            Some(Value::String(m)) => {
                if *m != self.backends.model_name && !self.backends.model_aliases.contains(m) {
                    return Err(ApiError {
                        param: Some("model"),
                        code: Some("model_not_found"),
                        ..ApiError::new(
                            StatusCode::NOT_FOUND,
                            "invalid_request_error",
                            format!(
                                "the model {m:?} does not exist here; this server runs {:?} (GET /v1/models)",
                                self.backends.model_name
                            ),
                        )
                    });
                }
                m.clone()
            }
            Some(other) => {
                return Err(ApiError::bad_param(
                    "model",
                    format!("model must be a string, got {other}"),
                ));
            }
        };
        Ok(ChatCall {
            model,
            question,
            history,
            stream,
            max_tokens,
            sampling: crate::answer::DraftOptions {
                temperature,
                top_p,
                seed,
                stop,
            },
        })
    }
}

/// The text of an OpenAI message `content`: a string, or an array of parts
/// of which the `text` ones count.
fn content_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => {
            let texts: Vec<&str> = parts
                .iter()
                .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect();
            (!texts.is_empty()).then(|| texts.join("\n"))
        }
        _ => None,
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn completion_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "chatcmpl-byline-{}-{}",
        unix_now(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The text an OpenAI client shows: the checked answer, or the refusal
/// with its reason; cut before the first of the request's stop sequences.
fn answer_content(v: &Value, stop: &[String]) -> String {
    let answer = v.get("answer").and_then(Value::as_str).unwrap_or("");
    let text = if v.get("refused").and_then(Value::as_bool) == Some(true) && answer.is_empty() {
        let reason = v.get("reason").and_then(Value::as_str).unwrap_or("");
        format!("I can't answer that from sources I'm allowed to use. {reason}")
            .trim()
            .to_string()
    } else {
        answer.to_string()
    };
    cut_at_stop(&text, stop).0
}

/// `text` before the first stop sequence, and whether one was found.
fn cut_at_stop(text: &str, stop: &[String]) -> (String, bool) {
    match stop
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s.as_str()))
        .min()
    {
        Some(at) => (text.get(..at).unwrap_or_default().to_string(), true),
        None => (text.to_string(), false),
    }
}

/// OpenAI's `finish_reason`: `length` when the draft ran into `max_tokens`,
/// else `stop` (end of turn, a stop sequence, or a refusal).
fn finish_reason(v: &Value) -> &'static str {
    if v.get("draft_stop").and_then(Value::as_str) == Some("max_tokens") {
        "length"
    } else {
        "stop"
    }
}

/// OpenAI `usage` from the answer: prompt and generated tokens as the
/// model's tokenizer counted them (0 and 0 when the question was refused
/// before generating).
fn usage(v: &Value) -> Value {
    let prompt = v.get("prompt_tokens").and_then(Value::as_u64).unwrap_or(0);
    let completion = v
        .get("generated_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt.saturating_add(completion)})
}

async fn chat_completions(
    State(state): State<Shared>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    headers: HeaderMap,
    TimedBody(body): TimedBody,
) -> Result<Response, ApiError> {
    let req: ChatRequest = parse_json(&headers, &body)?;
    let call = state.chat_call(req)?;
    let ChatCall {
        model,
        question,
        history,
        stream,
        max_tokens,
        sampling,
    } = call;
    let stop = sampling.stop.clone();
    let (rx, guard) = state.enqueue(&request_id, question, max_tokens, history, sampling)?;
    let id = completion_id();
    let created = unix_now();
    if stream {
        let deadline = stream_deadline(&state);
        return Ok(
            chat_sse(rx, guard, id, created, model, request_id, deadline, stop).into_response(),
        );
    }
    let mut guard = guard;
    let outcome = wait_for(rx).await;
    guard.disarm();
    let v = outcome.result.map_err(end_error)?;
    Ok(Json(json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": answer_content(&v, &stop), "refusal": null},
            "finish_reason": finish_reason(&v),
            "logprobs": null,
        }],
        "usage": usage(&v),
        "citations": v.get("citations").cloned().unwrap_or(Value::Array(vec![])),
        "byline": v,
    }))
    .into_response())
}

/// One model object of `/v1/models`.
fn model_object(state: &AppState) -> Value {
    json!({
        "id": state.backends.model_name,
        "object": "model",
        "created": state.backends.model_created,
        "owned_by": "byline",
    })
}

/// `GET /v1/models`: the one loaded model, OpenAI's list shape.
async fn models(State(state): State<Shared>) -> Json<Value> {
    Json(json!({"object": "list", "data": [model_object(&state)]}))
}

/// `GET /v1/models/{id}`: the loaded model by its id (or an alias).
async fn model_by_id(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if id == state.backends.model_name || state.backends.model_aliases.contains(&id) {
        Ok(Json(model_object(&state)))
    } else {
        Err(ApiError {
            param: Some("model"),
            code: Some("model_not_found"),
            ..ApiError::new(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                format!("the model {id:?} does not exist here"),
            )
        })
    }
}

/// OpenAI chat streaming: `chat.completion.chunk` objects as `data:` lines,
/// then `data: [DONE]`. Raw model tokens are not streamed as content: the
/// citation checker may rewrite or refuse the answer, so the checked text is
/// sent as one content delta when it is ready, with the citations in the
/// last chunk (`citations`, `byline`); the role chunk goes out at once so
/// clients see the stream start.
fn chat_sse(
    rx: mpsc::UnboundedReceiver<JobEvent>,
    guard: CancelOnDrop,
    id: String,
    created: u64,
    model: String,
    request_id: Arc<str>,
    deadline: tokio::time::Instant,
    stop: Vec<String>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let chunk = move |delta: Value, finish: Value, extra: Option<Value>| {
        let mut c = json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}],
        });
        if let Some(Value::Object(extra)) = extra {
            for (k, v) in extra {
                c[k] = v;
            }
        }
        Event::default().data(c.to_string())
    };
    struct St<F> {
        rx: mpsc::UnboundedReceiver<JobEvent>,
        guard: CancelOnDrop,
        chunk: F,
        phase: u8,
        pending: Vec<Event>,
        request_id: Arc<str>,
        deadline: tokio::time::Instant,
        stop: Vec<String>,
    }
    let st = St {
        rx,
        guard,
        chunk,
        phase: 0,
        pending: Vec::new(),
        request_id,
        deadline,
        stop,
    };
    let stream = futures_util::stream::unfold(st, |mut st| async move {
        loop {
            if let Some(e) = st.pending.pop() {
                return Some((Ok(e), st));
            }
            match st.phase {
                0 => {
                    st.phase = 1;
                    let e = (st.chunk)(
                        json!({"role": "assistant", "content": ""}),
                        Value::Null,
                        None,
                    );
                    return Some((Ok(e), st));
                }
                1 => {
                    let events = match next_event(&mut st.rx, st.deadline).await {
                        Some(JobEvent::Token(_)) => continue,
                        Some(JobEvent::Done(v)) => {
                            let content = (st.chunk)(
                                json!({"content": answer_content(&v, &st.stop)}),
                                Value::Null,
                                None,
                            );
                            let last = (st.chunk)(
                                json!({}),
                                json!(finish_reason(&v)),
                                Some(
                                    json!({"citations": v.get("citations").cloned().unwrap_or(json!([])), "usage": usage(&v), "byline": v}),
                                ),
                            );
                            vec![content, last]
                        }
                        Some(JobEvent::Stopped(r)) => {
                            let e = Event::default().data(
                                json!({"error": {"message": format!("answer stopped: {}", r.as_str()), "type": r.as_str()}})
                                    .to_string(),
                            );
                            vec![e]
                        }
                        Some(end @ (JobEvent::Rejected(_) | JobEvent::Failed(_))) => {
                            let e = Event::default()
                                .data(stream_error(&st.request_id, end).to_string());
                            vec![e]
                        }
                        None => return None,
                    };
                    st.guard.disarm();
                    st.phase = 2;
                    // `pending` is popped from the end.
                    st.pending = events.into_iter().rev().collect();
                }
                2 => {
                    st.phase = 3;
                    return Some((Ok(Event::default().data("[DONE]")), st));
                }
                _ => return None,
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

async fn call(f: &AsyncJson, arg: Value, what: &str) -> Result<Json<Value>, ApiError> {
    match f(arg).await {
        Ok(Some(v)) => Ok(Json(v)),
        Ok(None) => Err(ApiError::not_found(format!("{what} not found"))),
        Err(BackendError::BadRequest(m)) => Err(ApiError::bad_request(m)),
        Err(BackendError::Internal(e)) => Err(ApiError::internal(e)),
    }
}

async fn source(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<crate::audit::WhyReport>, ApiError> {
    match (state.backends.source)(id).await {
        Ok(Some(r)) => Ok(Json(r)),
        Ok(None) => Err(ApiError::not_found("source not found")),
        Err(BackendError::BadRequest(m)) => Err(ApiError::bad_request(m)),
        Err(BackendError::Internal(e)) => Err(ApiError::internal(e)),
    }
}

async fn audit_summary(State(state): State<Shared>) -> Result<Json<Value>, ApiError> {
    call(&state.backends.audit_summary, json!({}), "audit summary").await
}

/// Admin endpoints exist only with a configured token (404 otherwise, so a
/// scan learns nothing) and need `Authorization: Bearer <token>`; compared
/// in constant time.
fn check_admin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(token) = &state.config.admin_token else {
        return Err(ApiError::not_found("no such endpoint"));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let ok = given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "admin actions need Authorization: Bearer <admin token>",
        ))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecheckRequest {
    #[serde(default)]
    origin: Option<String>,
}

async fn admin_recheck(
    State(state): State<Shared>,
    headers: HeaderMap,
    TimedBody(body): TimedBody,
) -> Result<Json<Value>, ApiError> {
    check_admin(&state, &headers)?;
    let req: RecheckRequest = if body.is_empty() {
        RecheckRequest { origin: None }
    } else {
        parse_json(&headers, &body)?
    };
    call(
        &state.backends.recheck,
        json!({"origin": req.origin}),
        "origin",
    )
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ForgetRequest {
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    origin: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

async fn admin_forget(
    State(state): State<Shared>,
    headers: HeaderMap,
    TimedBody(body): TimedBody,
) -> Result<Json<Value>, ApiError> {
    check_admin(&state, &headers)?;
    let req: ForgetRequest = parse_json(&headers, &body)?;
    if req.url.is_some() == req.origin.is_some() {
        return Err(ApiError::bad_request("give exactly one of url or origin"));
    }
    call(
        &state.backends.forget,
        json!({"url": req.url, "origin": req.origin, "reason": req.reason}),
        "page",
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cors_origins_are_star_or_scheme_host_port() {
        assert_eq!(parse_cors_origin("*").unwrap(), "*");
        assert_eq!(
            parse_cors_origin("https://Example.org").unwrap(),
            "https://example.org"
        );
        assert_eq!(
            parse_cors_origin("http://127.0.0.1:5173/").unwrap(),
            "http://127.0.0.1:5173"
        );
        for bad in [
            "",
            "example.org",
            "https://example.org/app",
            "https://example.org?x=1",
            "https://user@example.org",
            "ftp://example.org",
            "file:///etc",
            "**",
        ] {
            let e = parse_cors_origin(bad).unwrap_err();
            assert!(e.contains("origin"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn request_ids_are_distinct() {
        let a = new_request_id();
        let b = new_request_id();
        assert_ne!(a, b);
        assert!(a.starts_with("req-"));
    }
}
