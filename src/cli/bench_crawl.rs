//! `byline bench crawl`: serves a generated linked site from many loopback
//! origins (one listener per origin, in this process), crawls it with the
//! real crawler into a fresh SQLite corpus, and reports pages/s, totals,
//! errors by kind, the crawler's CPU time per page (user + system, from
//! `getrusage`) and its peak memory. The test servers run in a child
//! process (this binary with the hidden `--serve-only`), so the crawler's
//! CPU and memory are its own; the servers' are reported beside them.

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
    /// Group commit: at most this many finished URLs per transaction.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub commit_pages: usize,
    /// Group commit: longest wait in milliseconds for more finished URLs.
    #[arg(long, value_name = "MS", default_value_t = 100)]
    pub commit_ms: u64,
    /// After the crawl, run the passage index pass as `byline crawl` does
    /// and report its own CPU time (the peak memory then covers it too).
    #[arg(long)]
    pub index: bool,
    /// Internal: only serve the generated sites (the benchmark's child
    /// process): prints one port per line, serves until stdin closes, then
    /// prints its own CPU time and peak memory.
    #[arg(long, hide = true)]
    pub serve_only: bool,
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

/// User and system CPU seconds of this process so far (`getrusage`).
fn cpu_secs() -> (f64, f64) {
    // SAFETY: getrusage only writes the struct we pass; an all-zero rusage
    // is a valid value of the type.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer to an rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return (0.0, 0.0);
    }
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    (t(ru.ru_utime), t(ru.ru_stime))
}

/// Serves `origins` generated sites on loopback listeners; returns their ports.
async fn serve(origins: usize, pages: usize) -> anyhow::Result<Vec<u16>> {
    let mut ports = Vec::with_capacity(origins);
    for o in 0..origins {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding a loopback listener")?;
        ports.push(listener.local_addr()?.port());
        let app = axum::Router::new()
            .route("/p/{i}", axum::routing::get(page))
            .route("/robots.txt", axum::routing::get(robots))
            .with_state(Arc::new(SiteState { origin: o, pages }));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
    }
    Ok(ports)
}

/// The child process: serve, print the ports, serve until stdin closes,
/// then print `servers <user s> <sys s> <VmHWM KiB>`.
async fn serve_only(args: &BenchCrawlArgs) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    let ports = serve(args.origins, args.pages).await?;
    {
        let mut out = std::io::stdout().lock();
        for p in &ports {
            writeln!(out, "{p}")?;
        }
        out.flush()?;
    }
    let mut sink = Vec::new();
    let _ = tokio::io::AsyncReadExt::read_to_end(&mut tokio::io::stdin(), &mut sink).await;
    let (u, s) = cpu_secs();
    println!("servers {u} {s} {}", vm_hwm_kib().unwrap_or(0));
    Ok(ExitCode::SUCCESS)
}

pub async fn run(args: BenchCrawlArgs, _global: &Global) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.origins >= 1 && args.pages >= 1,
        "--origins and --pages must be at least 1, got {} and {}",
        args.origins,
        args.pages
    );
    if args.serve_only {
        return serve_only(&args).await;
    }
    // The servers run in a child process so that this process's CPU time
    // and peak memory are the crawler's alone.
    let exe = std::env::current_exe().context("finding this executable")?;
    let mut child = tokio::process::Command::new(exe)
        .args(["--quiet", "bench", "crawl", "--serve-only", "--origins"])
        .arg(args.origins.to_string())
        .arg("--pages")
        .arg(args.pages.to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting the benchmark's server process")?;
    let child_in = child.stdin.take().context("server stdin")?;
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(
        child.stdout.take().context("server stdout")?,
    ));
    let mut seeds = Vec::with_capacity(args.origins);
    while seeds.len() < args.origins {
        let line = lines
            .next_line()
            .await?
            .context("the server process ended before listing its ports")?;
        let port: u16 = line.trim().parse().context("reading a server port")?;
        seeds.push(Url::parse(&format!("http://127.0.0.1:{port}/p/0"))?);
    }
    let tmp = std::env::temp_dir().join(format!("byline-bench-crawl-{}.db", std::process::id()));
    let db = args.out.clone().unwrap_or_else(|| tmp.clone());
    anyhow::ensure!(
        !db.exists(),
        "corpus {} already exists; the benchmark needs a fresh one",
        db.display()
    );
    let store = Store::open_for_crawl(&db)
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
    cfg.group_commit = crate::store::writer::GroupCommit {
        max_pages: args.commit_pages.max(1),
        max_wait: std::time::Duration::from_millis(args.commit_ms),
    };
    let done = Arc::new(AtomicU64::new(0));
    let d2 = done.clone();
    let every = (args.origins * args.pages / 10).max(1) as u64;
    // Seconds at which each tenth of the expected pages was reached, and
    // the crawler's CPU seconds (user + system) by then.
    let tenths = Arc::new(std::sync::Mutex::new(Vec::<(f64, f64)>::new()));
    let t2 = tenths.clone();
    let (u0, s0) = cpu_secs();
    let start = Instant::now();
    let sink = move |ev: &Event| {
        if let Event::Fetched { .. } = ev {
            let n = d2.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_multiple_of(every) {
                let at = start.elapsed().as_secs_f64();
                let (u, s) = cpu_secs();
                t2.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push((at, u + s - u0 - s0));
                if !super::quiet() {
                    eprintln!("  {n} fetched, {at:.1}s");
                }
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
    outln!(
        "  crawler runtime: {} tokio worker threads, {} CPUs",
        tokio::runtime::Handle::current().metrics().num_workers(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let summary = crawl::run(store.clone(), cfg, sink)
        .await
        .context("crawling")?;
    let secs = start.elapsed().as_secs_f64();
    let (u1, s1) = cpu_secs();
    let (user, sys) = (u1 - u0, s1 - s0);
    let counts = store.frontier_counts().await?;
    // The index pass, timed on its own: it runs after the crawl, on one
    // thread, and is not part of the per-page crawl figures above.
    let indexed = if args.index {
        let t = Instant::now();
        let (iu0, is0) = cpu_secs();
        let r = crate::index::refresh(&store)
            .await
            .context("refreshing the passage index")?;
        let (iu1, is1) = cpu_secs();
        Some((r, t.elapsed().as_secs_f64(), iu1 - iu0, is1 - is0))
    } else {
        None
    };
    store.close().await;
    if args.out.is_none() {
        for suffix in ["", "-wal", "-shm", ".crawl-lock"] {
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
    outln!(
        "  crawler CPU: {:.2}s user + {:.2}s system = {:.3} ms per page stored",
        user,
        sys,
        (user + sys) * 1000.0 / summary.pages.max(1) as f64
    );
    {
        let t = tenths
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if t.len() >= 10 {
            // Each tenth's (seconds, CPU seconds).
            let each: Vec<(f64, f64)> = std::iter::once(t[0])
                .chain(t.windows(2).map(|w| (w[1].0 - w[0].0, w[1].1 - w[0].1)))
                .take(10)
                .collect();
            let rate = |d: f64| every as f64 / d.max(1e-9);
            outln!(
                "  pages/s in the first tenth {:.1}, in the last tenth {:.1}",
                rate(each[0].0),
                rate(each[9].0)
            );
            // Every tenth, so a slowdown shows where it starts; and the
            // crawler's CPU per page in each, which a busy or shared host
            // disturbs less than the wall clock.
            let rates: Vec<String> = each.iter().map(|e| format!("{:.0}", rate(e.0))).collect();
            outln!("  pages/s by tenth: {}", rates.join(" "));
            let cpu: Vec<String> = each
                .iter()
                .map(|e| format!("{:.3}", e.1.max(0.0) * 1000.0 / every as f64))
                .collect();
            outln!("  crawler CPU ms per page by tenth: {}", cpu.join(" "));
        }
    }
    if let Some((r, secs, u, s)) = &indexed {
        outln!(
            "  index pass: {} pages into {} passages in {:.2}s, CPU {:.2}s user + {:.2}s system = {:.3} ms per page",
            r.pages,
            r.passages,
            secs,
            u,
            s,
            (u + s) * 1000.0 / r.pages.max(1) as f64
        );
    }
    match vm_hwm_kib() {
        Some(k) => outln!(
            "  crawler peak memory (VmHWM{}): {:.1} MiB",
            if indexed.is_some() {
                ", index pass included"
            } else {
                ""
            },
            k as f64 / 1024.0
        ),
        None => outln!("  peak memory: unavailable (no /proc/self/status)"),
    }
    // Closing its stdin ends the server process, which reports itself.
    drop(child_in);
    while let Ok(Some(line)) = lines.next_line().await {
        let f: Vec<&str> = line.split_whitespace().collect();
        if let ["servers", u, s, k] = f[..] {
            let (u, s, k): (f64, f64, f64) = (
                u.parse().unwrap_or(0.0),
                s.parse().unwrap_or(0.0),
                k.parse().unwrap_or(0.0),
            );
            outln!(
                "  test servers (separate process): {u:.2}s user + {s:.2}s system CPU, peak memory {:.1} MiB",
                k / 1024.0
            );
        }
    }
    let _ = child.wait().await;
    Ok(ExitCode::SUCCESS)
}
