//! `byline serve`: the attributed Q&A as an HTTP service (API, OpenAI-compatible
//! endpoint, streaming, web page at `/`).

use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use serde_json::{Value, json};

use super::Global;
use super::ask::{ask_options, open_model};
use crate::answer::{self, AnswerError, AskOptions, Generator};
use crate::serve::api::{self, AskJob, AsyncJson, BackendError, Backends, JobEvent, ServeConfig};
use crate::serve::queue::{JobControl, StopReason};
use crate::store::Store;

/// Serve attributed answers over HTTP on 127.0.0.1.
///
/// Endpoints: `POST /v1/answers` (JSON, or Server-Sent Events with
/// `"stream": true`), `POST /v1/chat/completions` (OpenAI-compatible, with
/// the checked citations in an extra `citations` field), `GET /v1/sources/{id}`,
/// `GET /v1/audit/summary`, `GET /healthz`, `GET /metrics` (Prometheus), and
/// a web page at `/`. Admin actions (`POST /v1/admin/recheck`,
/// `POST /v1/admin/forget`) exist only when an admin token is configured and
/// need `Authorization: Bearer <token>`.
///
/// Examples:
///
///   byline demo                      # builds byline.db from the sample site
///   byline serve                     # then open http://127.0.0.1:8080/
///   curl -s localhost:8080/v1/answers -H 'content-type: application/json' \
///        -d '{"question":"Who built the Old Fulling Mill?"}' | jq .citations
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct ServeArgs {
    /// Address to listen on. Only loopback addresses unless --public.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Allow a non-loopback --addr (put a TLS proxy in front).
    #[arg(long)]
    pub public: bool,
    /// The GGUF model: a file, or a name registered with `byline model add`
    /// (default: the default model).
    #[arg(long, env = "BYLINE_MODEL")]
    pub model: Option<PathBuf>,
    /// Only use verdicts decided under this policy file.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Answer requests that may wait; more get 429 with Retry-After.
    #[arg(long, default_value_t = 8)]
    pub queue: usize,
    /// Answers this replica generates at once. The workers share the
    /// loaded model; each generation already uses every core, so more than
    /// one mainly helps when requests also wait on the database (several
    /// replicas on one PostgreSQL corpus) or on slow clients.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub workers: u64,
    /// Most tokens generated per answer (and the default).
    #[arg(long, default_value_t = 96)]
    pub max_tokens: usize,
    /// Seconds an answer may take, waiting included (every request is cut
    /// off with 504 a second after).
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..))]
    pub deadline: u64,
    /// Seconds a client has to send a request's head (also how long an
    /// idle keep-alive connection stays open).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout: u64,
    /// Seconds a client has to send a request's body (408 otherwise), and
    /// the longest it may stop reading a response before it is cut off.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub body_timeout: u64,
    /// Most client connections open at once; more get 503 and are closed.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub max_connections: u64,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = 16 * 1024)]
    pub body_limit: usize,
    /// Bearer token enabling the admin endpoints (off without one).
    #[arg(long, env = "BYLINE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Origins allowed by CORS (repeatable): scheme://host[:port], or '*'
    /// for any origin; none = no CORS headers.
    #[arg(long = "cors-origin", value_parser = api::parse_cors_origin)]
    pub cors_origins: Vec<String>,
    /// Seconds in-flight answers may finish after Ctrl-C/SIGTERM.
    #[arg(long, default_value_t = 10)]
    pub shutdown_grace: u64,
}

pub async fn run(args: ServeArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let store = super::open_corpus(global).await?;
    crate::index::refresh(&store)
        .await
        .context("refreshing the passage index")?;
    let opts = ask_options(&store, args.policy.as_deref(), args.max_tokens, 2).await?;
    let (path, file) = open_model(args.model.clone())?;
    // A model asked for by its registered name answers to that name too.
    let registered_name: Option<String> = args
        .model
        .as_ref()
        .and_then(|m| m.to_str())
        .filter(|m| !std::path::Path::new(m).is_file())
        .map(str::to_string);
    let sha = answer::model_sha256(&store, &path).await?;
    // The model lives as long as the server process.
    let file: &'static _ = Box::leak(Box::new(file));
    let generator = Generator::new(file, &path, sha)?;
    let model_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "byline".into());
    let model_created = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let mut model_aliases = vec!["byline".to_string()];
    model_aliases.extend(registered_name);
    let backends = backends(store.clone(), generator, opts, model_name);
    let backends = Backends {
        model_aliases,
        model_created,
        ..backends
    };
    let config = ServeConfig {
        addr: args.addr,
        queue_capacity: args.queue,
        workers: usize::try_from(args.workers).unwrap_or(1),
        max_tokens: args.max_tokens,
        deadline: Duration::from_secs(args.deadline),
        header_timeout: Duration::from_secs(args.header_timeout),
        body_timeout: Duration::from_secs(args.body_timeout),
        max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
        body_limit: args.body_limit,
        max_question_chars: answer::MAX_QUESTION_CHARS,
        admin_token: args.admin_token.filter(|t| !t.is_empty()),
        cors_origins: args.cors_origins,
        shutdown_grace: Duration::from_secs(args.shutdown_grace),
    };
    let server = api::bind(config, backends, args.public)
        .await
        .with_context(|| format!("listening on {}", args.addr))?;
    let addr = server.local_addr()?;
    // Tests and scripts read this line to find the port.
    println!("byline serve: listening on http://{addr}/");
    server.run(shutdown_signal()).await?;
    eprintln!("byline serve: stopped");
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
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
}

/// The real answer pipeline and store behind the API.
fn backends(
    store: Store,
    generator: Generator<'static>,
    opts: AskOptions,
    model_name: String,
) -> Backends {
    let rt = tokio::runtime::Handle::current();
    let faults = fault_injection_enabled();
    // Shared by every worker: generation reads the weights and keeps its
    // state (KV cache, sampler) per call.
    let generator = Arc::new(generator);
    let answer_store = store.clone();
    let answer = Arc::new(move |job: AskJob, ctl: &JobControl| -> JobEvent {
        let AskJob {
            request_id: _,
            question,
            max_tokens,
            history,
            sampling,
            events,
        } = job;
        if let Some(r) = ctl.should_stop() {
            return JobEvent::Stopped(r);
        }
        let question = if faults {
            inject_fault(&question)
        } else {
            question
        };
        let opts = AskOptions {
            max_tokens,
            history,
            sampling,
            ..opts.clone()
        };
        let mut stopped: Option<StopReason> = None;
        let mut on_text = |t: &str| {
            if let Some(r) = ctl.should_stop() {
                stopped = Some(r);
                return ControlFlow::Break(());
            }
            let _ = events.send(JobEvent::Token(t.to_string()));
            ControlFlow::Continue(())
        };
        let result = rt.block_on(answer::ask(
            &answer_store,
            generator.as_ref(),
            &question,
            &opts,
            &mut on_text,
        ));
        match result {
            Ok(a) => match serde_json::to_value(&a) {
                Ok(v) => JobEvent::Done(v),
                Err(e) => JobEvent::Failed(format!("encoding the answer: {e}")),
            },
            Err(AnswerError::Cancelled) => {
                JobEvent::Stopped(stopped.unwrap_or(StopReason::Cancelled))
            }
            // The question as asked cannot be answered: the client's to fix.
            Err(e @ (AnswerError::EmptyQuestion | AnswerError::QuestionTooLong { .. })) => {
                JobEvent::Rejected(e.to_string())
            }
            Err(AnswerError::PromptTooLong { tokens, limit }) => JobEvent::Rejected(format!(
                "the question is too long for the model: with its sources the prompt needs {tokens} tokens, more than the {limit} allowed; ask a shorter question"
            )),
            Err(e) => JobEvent::Failed(error_chain(&e)),
        }
    });
    Backends {
        answer,
        source: crate::serve::sources::source_backend(store.clone()),
        audit_summary: audit_summary_backend(store.clone()),
        recheck: recheck_backend(store.clone()),
        forget: forget_backend(store),
        model_name,
        model_aliases: Vec::new(),
        model_created: 0,
    }
}

/// Fault injection for the service's own tests (`tests/it/serve_hardening.rs`):
/// compiled into debug builds only, and even there honoured only when
/// `BYLINE_FAULT_INJECTION=1` was set when the server started. A question
/// containing `[[byline-fault:panic]]` panics the worker while it holds the
/// model; `[[byline-fault:hang:N]]` blocks it for N seconds (at most 60),
/// ignoring cancellation and deadlines, before answering normally (the
/// marker is removed from the question). Release builds never look at the
/// question for markers.
fn fault_injection_enabled() -> bool {
    cfg!(debug_assertions) && std::env::var_os("BYLINE_FAULT_INJECTION").is_some_and(|v| v == "1")
}

fn inject_fault(question: &str) -> String {
    if !cfg!(debug_assertions) {
        return question.to_string();
    }
    if question.contains("[[byline-fault:panic]]") {
        panic!("injected fault: worker panic requested by the question");
    }
    if let Some(rest) = question.split("[[byline-fault:hang:").nth(1) {
        let secs = rest
            .split("]]")
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
            .min(60);
        std::thread::sleep(Duration::from_secs(secs));
    }
    match (question.find("[[byline-fault:"), question.rfind("]]")) {
        (Some(a), Some(b)) if a < b => format!("{}{}", &question[..a], &question[b + 2..])
            .trim()
            .to_string(),
        _ => question.to_string(),
    }
}

/// An error and all its sources, `a: b: c` (for the log).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        let t = x.to_string();
        if !s.ends_with(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = x.source();
    }
    s
}

fn async_json<F, Fut>(f: F) -> AsyncJson
where
    F: Fn(Value) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Option<Value>, BackendError>> + Send + 'static,
{
    Arc::new(move |v| Box::pin(f(v)))
}

/// `GET /v1/audit/summary`: verdict counts per purpose and decision, frontier
/// states per origin, indexed passages.
fn audit_summary_backend(store: Store) -> AsyncJson {
    async_json(move |_| {
        let store = store.clone();
        async move {
            let e = |e: crate::store::StoreError| e.to_string();
            let verdicts = store.verdict_counts().await.map_err(e)?;
            let origins = store.crawl_origin_counts().await.map_err(e)?;
            let passages = store.passage_count().await.map_err(e)?;
            Ok(Some(json!({
                "verdicts": verdicts.iter().map(|(p, d, n)| json!({"purpose": p, "decision": d, "pages": n})).collect::<Vec<_>>(),
                "origins": origins.iter().map(|(o, s, n)| json!({"origin": o, "state": s, "urls": n})).collect::<Vec<_>>(),
                "passages": passages,
            })))
        }
    })
}

/// `POST /v1/admin/recheck`: the same as `byline audit recheck [--origin O]`
/// (`{"origin": "<origin or null>"}` in, the `--json` report out).
fn recheck_backend(store: Store) -> AsyncJson {
    async_json(move |arg| {
        let store = store.clone();
        async move {
            let origin = arg["origin"].as_str().map(str::to_string);
            if let Some(o) = &origin {
                url::Url::parse(o).map_err(|e| {
                    BackendError::BadRequest(format!(
                        "origin {o:?} is not scheme://host[:port]: {e}"
                    ))
                })?;
            }
            let cfg = super::recheck::config(None, None).map_err(|e| format!("{e:#}"))?;
            let r = super::recheck::run_recheck(&store, origin.as_deref(), cfg)
                .await
                .map_err(|e| format!("{e:#}"))?;
            Ok(Some(super::recheck::report_json(&r)))
        }
    })
}

/// `POST /v1/admin/forget`: the same as `byline forget` (content erased,
/// tombstone kept, audit event logged).
fn forget_backend(store: Store) -> AsyncJson {
    async_json(move |arg| {
        let store = store.clone();
        async move {
            let mut norms = Vec::new();
            if let Some(u) = arg["url"].as_str() {
                let p = url::Url::parse(u).map_err(|e| {
                    BackendError::BadRequest(format!("{u:?} is not an absolute URL: {e}"))
                })?;
                let n = crate::crawl::urls::normalise(&p).ok_or_else(|| {
                    BackendError::BadRequest(format!("{u:?} is not an http(s) URL"))
                })?;
                norms.push(n.to_string());
            }
            let origin = match arg["origin"].as_str() {
                Some(o) => Some(
                    url::Url::parse(o)
                        .map_err(|e| {
                            BackendError::BadRequest(format!(
                                "origin {o:?} is not scheme://host[:port]: {e}"
                            ))
                        })?
                        .origin()
                        .ascii_serialization(),
                ),
                None => None,
            };
            let reason = arg["reason"]
                .as_str()
                .unwrap_or("owner request (admin API)");
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let done = crate::audit::erase::forget(&store, &norms, origin.as_deref(), reason, now)
                .await
                .map_err(|e| e.to_string())?;
            Ok(Some(
                serde_json::to_value(&done).map_err(|e| e.to_string())?,
            ))
        }
    })
}
