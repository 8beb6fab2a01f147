//! `byline bench crawl`: serves a generated linked site from many loopback
//! origins (one listener per origin, in this process), crawls it with the
//! real crawler into a fresh SQLite corpus, and reports pages/s, totals,
//! errors by kind and peak memory (VmHWM of this process, which includes
//! the test servers).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::Context;
use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse};
use clap::Args;
use url::Url;

use super::Global;
use crate::crawl::{self, CrawlConfig, Event};
use crate::store::Store;

/// Crawl a generated local site of many origins; report pages/s and peak memory.
///
/// Starts --origins HTTP listeners on 127.0.0.1, each serving --pages linked
/// pages (about 3 KB of text each, five links per page), and crawls all of
/// them with the real crawler (robots.txt, politeness with no extra delay,
/// extraction, consent hook, one SQLite transaction per page) into a
/// temporary corpus that is removed afterwards unless --out is given.
///
/// Example:
///
///   byline bench crawl --origins 20 --pages 500
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct BenchCrawlArgs {
    /// Number of local origins (one listener and port each).
    #[arg(long, default_value_t = 20)]
    pub origins: usize,
    /// Pages per origin.
    #[arg(long, default_value_t = 500)]
    pub pages: usize,
    /// Requests in flight across all origins (always one per origin).
    #[arg(long, default_value_t = 20)]
    pub concurrency: usize,
    /// Keep the corpus at this path (default: a temporary file, removed after).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// The generated site of one origin.
struct SiteState {
    origin: usize,
    pages: usize,
}

const WORDS: &[&str] = &[
    "river", "harbour", "lantern", "meadow", "archive", "signal", "granite", "orchard", "compass",
    "ledger", "willow", "beacon", "quarry", "thistle", "mosaic", "cobalt", "furrow", "saddle",
    "tundra", "prism",
];

async fn page(State(st): State<Arc<SiteState>>, Path(i): Path<usize>) -> impl IntoResponse {
    let (o, n) = (st.origin, st.pages.max(1));
    let mut body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Origin {o} page {i}</title>\
         <meta name=\"author\" content=\"Writer {o}\"><link rel=\"canonical\" href=\"/p/{i}\"></head>\
         <body><nav><a href=\"/p/0\">home</a> <a href=\"/p/{}\">index</a></nav><main><article><h1>Page {i} of origin {o}</h1>",
        n / 2
    );
    for k in 0..12 {
        body.push_str("<p>");
        for w in 0..40 {
            body.push_str(WORDS[(i * 7 + k * 13 + w * 3 + o) % WORDS.len()]);
            body.push(' ');
        }
        body.push_str(&format!("(paragraph {k}, page {i}, origin {o}).</p>"));
    }
    for d in [1, 2, 3, 7, 31] {
        body.push_str(&format!("<a href=\"/p/{}\">related {d}</a> ", (i + d) % n));
    }
    body.push_str(
        "</article></main><footer>Generated for byline bench crawl.</footer></body></html>",
    );
    Html(body)
}

async fn robots() -> &'static str {
    "User-agent: *\nDisallow: /private/\n"
}

/// Peak resident set size of this process in KiB (`VmHWM`), on Linux.
fn vm_hwm_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

pub async fn run(args: BenchCrawlArgs, _global: &Global) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.origins >= 1 && args.pages >= 1,
        "--origins and --pages must be at least 1, got {} and {}",
        args.origins,
        args.pages
    );
    let mut seeds = Vec::with_capacity(args.origins);
    for o in 0..args.origins {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding a loopback listener")?;
        let port = listener.local_addr()?.port();
        let app = axum::Router::new()
            .route("/p/{i}", axum::routing::get(page))
            .route("/robots.txt", axum::routing::get(robots))
            .with_state(Arc::new(SiteState {
                origin: o,
                pages: args.pages,
            }));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        seeds.push(Url::parse(&format!("http://127.0.0.1:{port}/p/0"))?);
    }
    let tmp = std::env::temp_dir().join(format!("byline-bench-crawl-{}.db", std::process::id()));
    let db = args.out.clone().unwrap_or_else(|| tmp.clone());
    anyhow::ensure!(
        !db.exists(),
        "corpus {} already exists; the benchmark needs a fresh one",
        db.display()
    );
    let store = Store::open(&db)
        .await
        .with_context(|| format!("opening corpus at {}", db.display()))?;
    let mut cfg = CrawlConfig::new(seeds);
    cfg.min_delay_ms = 0;
    cfg.concurrency = args.concurrency.max(1);
    cfg.max_depth = u32::try_from(args.pages).unwrap_or(u32::MAX);
    cfg.max_urls_per_origin = args.pages as u64 + 10;
    // The generated pages are all one shape (/p<N>); no trap here.
    cfg.max_urls_per_shape = cfg.max_urls_per_origin;
    cfg.contact_url = Some("http://127.0.0.1/bench".into());
    let done = Arc::new(AtomicU64::new(0));
    let d2 = done.clone();
    let every = (args.origins * args.pages / 10).max(1) as u64;
    let start = Instant::now();
    let sink = move |ev: &Event| {
        if let Event::Fetched { .. } = ev {
            let n = d2.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_multiple_of(every) && !super::quiet() {
                eprintln!("  {n} fetched, {:.1}s", start.elapsed().as_secs_f64());
            }
        }
    };
    outln!(
        "bench crawl: {} origins x {} pages on 127.0.0.1, concurrency {}, corpus {}",
        args.origins,
        args.pages,
        cfg.concurrency,
        db.display()
    );
    let summary = crawl::run(store.clone(), cfg, sink)
        .await
        .context("crawling")?;
    let secs = start.elapsed().as_secs_f64();
    let counts = store.frontier_counts().await?;
    store.close().await;
    if args.out.is_none() {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", tmp.display()));
        }
    }
    let expected = (args.origins * args.pages) as u64;
    outln!(
        "  fetched {} URLs ({} pages stored, {} expected) in {:.2}s = {:.1} pages/s",
        summary.fetched,
        summary.pages,
        expected,
        secs,
        summary.pages as f64 / secs
    );
    outln!(
        "  frontier: {} done, {} failed, {} skipped, {} queued",
        counts.done,
        counts.failed,
        counts.skipped,
        counts.queued
    );
    if summary.errors_by_kind.is_empty() {
        outln!("  errors: none");
    } else {
        let e: Vec<String> = summary
            .errors_by_kind
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        outln!("  errors: {}", e.join(", "));
    }
    match vm_hwm_kib() {
        Some(k) => outln!(
            "  peak memory (VmHWM, crawler + servers): {:.1} MiB",
            k as f64 / 1024.0
        ),
        None => outln!("  peak memory: unavailable (no /proc/self/status)"),
    }
    Ok(ExitCode::SUCCESS)
}
