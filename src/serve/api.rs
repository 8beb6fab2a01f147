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

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::metrics::{Metrics, QueueGauges};
use super::queue::{CancelOnDrop, JobControl, JobQueue, StopReason};

/// One question to answer, handed to the answer runner on a worker thread.
#[derive(Debug)]
pub struct AskJob {
    pub question: String,
    /// Generation cap for this request (already clamped to the server's).
    pub max_tokens: usize,
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
    /// The job failed; the message is safe to show.
    Failed(String),
}

/// An async handler returning JSON or an error (`None` = not found).
pub type AsyncJson = Arc<
    dyn Fn(Value) -> Pin<Box<dyn Future<Output = Result<Option<Value>, String>> + Send>>
        + Send
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
    /// `{"id": "<page id or URL>"}` → the page's provenance (`audit why`).
    pub source: AsyncJson,
    /// `{}` → the audit summary.
    pub audit_summary: AsyncJson,
    /// `{"origin": "<origin or null>"}` → recheck report.
    pub recheck: AsyncJson,
    /// `{"url": "…"}` or `{"origin": "…"}` → forget report.
    pub forget: AsyncJson,
    /// Shown by `/healthz` and used as the OpenAI `model` name.
    pub model_name: String,
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
    /// Wall-clock budget per answer, queueing included.
    pub deadline: Duration,
    /// Largest accepted request body in bytes.
    pub body_limit: usize,
    /// Longest accepted question in characters.
    pub max_question_chars: usize,
    /// Bearer token for admin actions; `None` = admin endpoints off (404).
    pub admin_token: Option<String>,
    /// Origins allowed by CORS; empty = no CORS headers at all.
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
}

type Shared = Arc<AppState>;

/// An API error: status plus an OpenAI-style JSON body
/// `{"error": {"message", "type", "code"}}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            message: message.into(),
            retry_after: None,
        }
    }
    fn not_found(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            kind: "not_found",
            message: message.into(),
            retry_after: None,
        }
    }
    fn internal(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            kind: "server_error",
            message: message.into(),
            retry_after: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"message": self.message, "type": self.kind, "code": self.status.as_u16()}});
        let mut r = (self.status, Json(body)).into_response();
        if let Some(s) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        r
    }
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

    /// Serves until `shutdown` resolves; then stops accepting, gives
    /// in-flight answers `shutdown_grace` to finish, cancels the rest and
    /// waits for the workers.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let state = self.state.clone();
        let grace = state.config.shutdown_grace;
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
        let signal = async move {
            shutdown.await;
            let _ = stopping_tx.send(());
        };
        // After the signal, cancel whatever is still generating once the
        // grace period is over (streams then end with a "stopped" event).
        let canceller = {
            let state = state.clone();
            tokio::spawn(async move {
                if stopping_rx.await.is_ok() {
                    tokio::time::sleep(grace).await;
                    state.queue.stop_all();
                }
            })
        };
        let result = axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(signal)
        .await;
        canceller.abort();
        state.queue.stop_all();
        result
    }
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
    let listener = tokio::net::TcpListener::bind(config.addr).await?;
    let runner = backends.answer.clone();
    let metrics = Arc::new(Metrics::default());
    let job_metrics = metrics.clone();
    let queue = JobQueue::start(
        config.queue_capacity,
        config.workers,
        move |job: AskJob, ctl: &JobControl| {
            let events = job.events.clone();
            let started = Instant::now();
            let end = runner(job, ctl);
            record_outcome(&job_metrics, &end, started.elapsed().as_secs_f64());
            let _ = events.send(end);
        },
    );
    let state = Arc::new(AppState {
        config,
        backends,
        queue,
        metrics,
        started: Instant::now(),
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
        .route("/v1/sources/{id}", get(source))
        .route("/v1/audit/summary", get(audit_summary))
        .route("/v1/admin/recheck", post(admin_recheck))
        .route("/v1/admin/forget", post(admin_forget))
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(state.clone(), observe));
    if !state.config.cors_origins.is_empty() {
        let origins: Vec<HeaderValue> = state
            .config
            .cors_origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        r = r.layer(
            tower_http::cors::CorsLayer::new()
                .allow_origin(origins)
                .allow_methods([axum::http::Method::GET, axum::http::Method::POST])
                .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION]),
        );
    }
    r.with_state(state)
}

/// Counts every request by route pattern and status, with its latency.
async fn observe(State(state): State<Shared>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let t0 = Instant::now();
    let resp = next.run(req).await;
    state
        .metrics
        .request(&route, resp.status().as_u16(), t0.elapsed().as_secs_f64());
    resp
}

async fn index() -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "no-store")],
        Html(super::page::INDEX_HTML),
    )
}

async fn healthz(State(state): State<Shared>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "model": state.backends.model_name,
        "uptime_seconds": state.started.elapsed().as_secs(),
        "queue": {"waiting": state.queue.waiting(), "running": state.queue.running(), "capacity": state.queue.capacity()},
    }))
}

async fn metrics(State(state): State<Shared>) -> impl IntoResponse {
    let text = state.metrics.render(QueueGauges {
        waiting: state.queue.waiting(),
        running: state.queue.running(),
        capacity: state.queue.capacity(),
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
            return Err(ApiError {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                kind: "invalid_request_error",
                message: format!("content-type must be application/json, got {ct:?}"),
                retry_after: None,
            });
        }
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "invalid JSON body at line {} column {}: {e}",
            e.line(),
            e.column()
        ))
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnswersRequest {
    question: String,
    #[serde(default)]
    max_tokens: Option<usize>,
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

    fn validate_max_tokens(&self, m: Option<usize>) -> Result<usize, ApiError> {
        match m {
            None => Ok(self.config.max_tokens),
            Some(0) => Err(ApiError::bad_request("max_tokens must be at least 1")),
            Some(m) if m > self.config.max_tokens => Err(ApiError::bad_request(format!(
                "max_tokens is {m}, this server allows at most {}",
                self.config.max_tokens
            ))),
            Some(m) => Ok(m),
        }
    }

    /// Queues a job; 429 with `Retry-After` when the queue is full.
    fn enqueue(
        &self,
        question: String,
        max_tokens: usize,
    ) -> Result<(mpsc::UnboundedReceiver<JobEvent>, CancelOnDrop), ApiError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let job = AskJob {
            question,
            max_tokens,
            events: tx,
        };
        let deadline = Instant::now() + self.config.deadline;
        match self.queue.submit(job, deadline) {
            Ok(guard) => Ok((rx, guard)),
            Err(full) => {
                self.metrics.rejected_queue_full();
                let waiting = (self.queue.waiting() + self.queue.running()).max(1) as u64;
                Err(ApiError {
                    status: StatusCode::TOO_MANY_REQUESTS,
                    kind: "rate_limit_error",
                    message: format!(
                        "the answer queue is full ({} waiting); retry later",
                        full.capacity
                    ),
                    retry_after: Some(waiting.clamp(1, 60)),
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
        JobEvent::Failed(_) => metrics.answer("error", 0, 0.0, 0),
        JobEvent::Token(_) => {}
    }
}

#[derive(Debug)]
enum End {
    Stopped(StopReason),
    Failed(String),
}

#[derive(Debug)]
struct Outcome {
    result: Result<Value, End>,
    tokens: u64,
}

/// Waits for a job's final event, counting the tokens streamed before it.
async fn wait_for(mut rx: mpsc::UnboundedReceiver<JobEvent>) -> Outcome {
    let mut tokens = 0u64;
    let result = loop {
        match rx.recv().await {
            Some(JobEvent::Token(_)) => tokens += 1,
            Some(JobEvent::Done(v)) => break Ok(v),
            Some(JobEvent::Stopped(r)) => break Err(End::Stopped(r)),
            Some(JobEvent::Failed(m)) => break Err(End::Failed(m)),
            None => {
                break Err(End::Failed(
                    "the answer worker ended without a result".into(),
                ));
            }
        }
    };
    Outcome { result, tokens }
}

fn end_error(end: End) -> ApiError {
    match end {
        End::Stopped(StopReason::Deadline) => ApiError {
            status: StatusCode::GATEWAY_TIMEOUT,
            kind: "timeout",
            message: "the answer did not finish before the request deadline".into(),
            retry_after: None,
        },
        End::Stopped(StopReason::Shutdown) => ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            kind: "shutting_down",
            message: "the server is shutting down".into(),
            retry_after: Some(5),
        },
        End::Stopped(StopReason::Cancelled) => ApiError::internal("the answer was cancelled"),
        End::Failed(m) => ApiError::internal(m),
    }
}

async fn answers(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: AnswersRequest = parse_json(&headers, &body)?;
    let question = state.validate_question(&req.question)?;
    let max_tokens = state.validate_max_tokens(req.max_tokens)?;
    let (rx, guard) = state.enqueue(question, max_tokens)?;
    if req.stream {
        return Ok(answer_sse(rx, guard).into_response());
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
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    struct St {
        rx: mpsc::UnboundedReceiver<JobEvent>,
        guard: CancelOnDrop,
        done: bool,
    }
    let st = St {
        rx,
        guard,
        done: false,
    };
    let stream = futures_util::stream::unfold(st, |mut st| async move {
        if st.done {
            return None;
        }
        let ev = st.rx.recv().await;
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
            Some(JobEvent::Failed(m)) => (
                Event::default()
                    .event("error")
                    .json_data(json!({"error": {"message": m, "type": "server_error"}}))
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

#[derive(Debug, Deserialize)]
struct ChatMessageIn {
    role: String,
    #[serde(default)]
    content: Value,
}

#[derive(Debug, Deserialize)]
struct ChatRequest {
    #[serde(default)]
    model: Option<String>,
    messages: Vec<ChatMessageIn>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    max_tokens: Option<usize>,
    #[serde(default)]
    max_completion_tokens: Option<usize>,
    #[serde(default)]
    n: Option<u32>,
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
/// with its reason.
fn answer_content(v: &Value) -> String {
    let answer = v.get("answer").and_then(Value::as_str).unwrap_or("");
    if v.get("refused").and_then(Value::as_bool) == Some(true) && answer.is_empty() {
        let reason = v.get("reason").and_then(Value::as_str).unwrap_or("");
        format!("I can't answer that from sources I'm allowed to use. {reason}")
            .trim()
            .to_string()
    } else {
        answer.to_string()
    }
}

async fn chat_completions(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: ChatRequest = parse_json(&headers, &body)?;
    if req.n.is_some_and(|n| n != 1) {
        return Err(ApiError::bad_request("only n = 1 is supported"));
    }
    let last_user = req
        .messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .ok_or_else(|| ApiError::bad_request("messages must contain a user message"))?;
    let text = content_text(&last_user.content)
        .ok_or_else(|| ApiError::bad_request("the last user message has no text content"))?;
    let question = state.validate_question(&text)?;
    let max_tokens = state.validate_max_tokens(req.max_completion_tokens.or(req.max_tokens))?;
    let model = req
        .model
        .clone()
        .unwrap_or_else(|| state.backends.model_name.clone());
    let (rx, guard) = state.enqueue(question, max_tokens)?;
    let id = completion_id();
    let created = unix_now();
    if req.stream {
        return Ok(chat_sse(rx, guard, id, created, model).into_response());
    }
    let mut guard = guard;
    let outcome = wait_for(rx).await;
    guard.disarm();
    let tokens = outcome.tokens;
    let v = outcome.result.map_err(end_error)?;
    Ok(Json(json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": answer_content(&v)},
            "finish_reason": "stop",
            "logprobs": null,
        }],
        "usage": {"prompt_tokens": v.get("prompt_tokens").and_then(Value::as_u64).unwrap_or(0),
                  "completion_tokens": tokens,
                  "total_tokens": v.get("prompt_tokens").and_then(Value::as_u64).unwrap_or(0) + tokens},
        "citations": v.get("citations").cloned().unwrap_or(Value::Array(vec![])),
        "byline": v,
    }))
    .into_response())
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
    }
    let st = St {
        rx,
        guard,
        chunk,
        phase: 0,
        pending: Vec::new(),
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
                    let events = match st.rx.recv().await {
                        Some(JobEvent::Token(_)) => continue,
                        Some(JobEvent::Done(v)) => {
                            let content = (st.chunk)(
                                json!({"content": answer_content(&v)}),
                                Value::Null,
                                None,
                            );
                            let last = (st.chunk)(
                                json!({}),
                                json!("stop"),
                                Some(
                                    json!({"citations": v.get("citations").cloned().unwrap_or(json!([])), "byline": v}),
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
                        Some(JobEvent::Failed(m)) => {
                            let e = Event::default().data(
                                json!({"error": {"message": m, "type": "server_error"}})
                                    .to_string(),
                            );
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
        Err(e) => Err(ApiError::internal(e)),
    }
}

async fn source(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    call(&state.backends.source, json!({"id": id}), "source").await
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
        Err(ApiError {
            status: StatusCode::UNAUTHORIZED,
            kind: "authentication_error",
            message: "admin actions need Authorization: Bearer <admin token>".into(),
            retry_after: None,
        })
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
    body: Bytes,
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
    body: Bytes,
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
