//! `byline crawl`: crawl sites politely into the corpus, and the shared
//! printing of progress and the closing summary (`demo` and `bench crawl`
//! use it too).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use url::Url;

use super::Global;
use crate::crawl::urls::Scope;
use crate::crawl::{self, CrawlConfig, Event, Summary};
use crate::store::Store;

/// Crawl one or more sites politely into the corpus.
///
/// Starts from the seed URLs and follows links inside --scope, one request
/// at a time per origin, honouring robots.txt (RFC 9309) for the product
/// token `BylineBot`, its Crawl-delay, Retry-After and back-off on 429/503.
/// Every fetch, robots.txt version and decision is recorded in --db.
///
/// The crawl is resumable: the frontier lives in the database, so after an
/// interruption (even kill -9) run the same command again and it continues
/// where it stopped.
///
/// Examples:
///
///   byline crawl https://example.org/
///   byline --db corpus.db crawl --max-pages 200 --scope domain https://blog.example.org/
///   sqlite3 corpus.db 'SELECT url, title FROM crawl_pages LIMIT 10'
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct CrawlArgs {
    /// Seed URLs (http or https).
    #[arg(required_unless_present = "refresh", value_name = "URL")]
    pub seeds: Vec<Url>,
    #[command(flatten)]
    pub opts: CrawlOpts,
    #[command(flatten)]
    pub refresh: RefreshOpts,
}

/// `byline crawl --refresh`: revisit the stored pages that are due.
#[derive(Debug, Clone, Args)]
pub struct RefreshOpts {
    /// Revisit the stored pages that are due (instead of crawling seeds):
    /// a conditional GET from each page's stored ETag / Last-Modified; a 304
    /// is recorded as unchanged, a new body is re-extracted, re-decided
    /// under the policy in force (--policy, else the policy of the page's
    /// verdicts) and stored as a new page version; 404/410 marks the page
    /// gone; a use that became excluded is revoked (answers citing the page
    /// flagged). New pages linked from changed ones are then crawled.
    #[arg(long, conflicts_with = "seeds")]
    pub refresh: bool,
    /// With --refresh: revisit every stored page now, whatever its schedule.
    #[arg(long, requires = "refresh")]
    pub refresh_all: bool,
    /// With --refresh: default revisit interval in seconds (a page is due
    /// this long after its last fetch until its own interval adapts).
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 86_400,
        requires = "refresh"
    )]
    pub revisit_interval: i64,
    /// The default revisit interval of one origin: ORIGIN=SECS (repeatable).
    #[arg(long, value_name = "ORIGIN=SECS", requires = "refresh")]
    pub revisit_origin: Vec<String>,
    /// Shortest revisit interval, in seconds (a page that keeps changing).
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 3_600,
        requires = "refresh"
    )]
    pub revisit_min: i64,
    /// Longest revisit interval, in seconds (a page that never changes).
    #[arg(long, value_name = "SECS", default_value_t = 30 * 86_400, requires = "refresh")]
    pub revisit_max: i64,
    /// With --refresh: print the report as JSON.
    #[arg(long, requires = "refresh")]
    pub json: bool,
}

impl RefreshOpts {
    /// The revisit schedule these options describe.
    pub fn revisit(&self) -> anyhow::Result<crate::crawl::recheck::RevisitPolicy> {
        anyhow::ensure!(
            self.revisit_interval >= 0
                && self.revisit_min >= 0
                && self.revisit_max >= self.revisit_min,
            "revisit intervals must be >= 0 and --revisit-max at least --revisit-min"
        );
        let mut per_origin = Vec::new();
        for o in &self.revisit_origin {
            let (origin, secs) = o
                .rsplit_once('=')
                .with_context(|| format!("--revisit-origin {o:?} is not ORIGIN=SECS"))?;
            let secs: i64 = secs
                .trim()
                .parse()
                .ok()
                .filter(|s| *s >= 0)
                .with_context(|| format!("--revisit-origin {o:?}: {secs:?} is not seconds"))?;
            per_origin.push((crate::crawl::recheck::parse_origin(origin.trim())?, secs));
        }
        Ok(crate::crawl::recheck::RevisitPolicy {
            default_secs: self.revisit_interval,
            min_secs: self.revisit_min,
            max_secs: self.revisit_max,
            per_origin,
            all: self.refresh_all,
        })
    }
}

/// Crawl options shared by `crawl`, `demo` and `bench crawl`.
#[derive(Debug, Clone, Args)]
pub struct CrawlOpts {
    /// Consent policy file (TOML, see docs/policies.md) verdicts are decided
    /// under; its sha256 is recorded with the run and every verdict. Default:
    /// the bundled policies/eu-opt-out.toml.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Fetch at most N URLs in this run (default: no limit).
    #[arg(long, value_name = "N")]
    pub max_pages: Option<u64>,
    /// Follow links at most N hops away from a seed.
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub max_depth: u32,
    /// Which links to follow: host = same origin as a seed, domain = a seed's
    /// host and its subdomains, prefix = URLs starting with a seed URL.
    #[arg(long, value_enum, default_value_t = Scope::Host)]
    pub scope: Scope,
    /// Requests in flight across all origins (always one per origin).
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub concurrency: usize,
    /// How site operators reach you, sent in our User-Agent:
    /// `BylineBot/<version> (+URL)` (a page about your crawl, or
    /// mailto:you@example.org). Required unless every seed is on this
    /// machine (loopback).
    #[arg(long, value_name = "URL", env = "BYLINE_CONTACT")]
    pub contact: Option<String>,
    /// Minimum milliseconds between two requests to one origin (robots.txt
    /// Crawl-delay can only raise it).
    #[arg(long, value_name = "MS", default_value_t = 250)]
    pub delay_ms: u64,
    /// Give up on a request after this many seconds in total (connect, headers, body).
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    pub timeout: f64,
    /// Give up when no byte arrives for this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 15.0)]
    pub read_timeout: f64,
    /// Read at most this many (decompressed) body bytes per page; the rest
    /// is dropped and the fetch flagged truncated.
    #[arg(long, value_name = "BYTES", default_value_t = 5 * 1024 * 1024)]
    pub max_body: usize,
    /// Do not keep each page's response body as fetched (by default it is
    /// stored gzip-compressed and content-addressed, at most --max-body
    /// bytes, so `audit export --format warc` writes response records and
    /// pages can be re-extracted without a recrawl).
    #[arg(long)]
    pub no_keep_raw: bool,
    /// At most this many URLs per origin enter the frontier (crawl budget
    /// per origin; links past it are recorded with reason trap.origin_cap).
    #[arg(
        long = "max-pages-per-origin",
        visible_alias = "max-urls-per-origin",
        value_name = "N",
        default_value_t = 5000
    )]
    pub max_urls_per_origin: u64,
    /// At most this many URLs of one shape per origin (digits as '#', query
    /// values dropped: a calendar's months, a listing's pages); links past it
    /// are recorded with reason budget.url_shape.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub max_urls_per_shape: u64,
    /// First back-off after 429/503 without Retry-After, in milliseconds
    /// (doubles per attempt).
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    pub backoff_ms: u64,
    /// End the run when all work left waits longer than this many seconds
    /// (an unreachable origin, a long Retry-After); the summary says what
    /// waits and why, and running the same command later continues it.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub max_wait: u64,
    /// Record at most this many links per page (the rest are dropped).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub max_links_per_page: usize,
    /// Group commit: at most this many finished URLs per database
    /// transaction. A URL counts as done only once its transaction commits.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub commit_pages: usize,
    /// Group commit: a transaction waits at most this many milliseconds for
    /// more finished URLs (it commits at once when no URL is in flight and
    /// the crawler has nothing to fetch until the transaction's new URLs are
    /// queued).
    #[arg(long, value_name = "MS", default_value_t = 100)]
    pub commit_ms: u64,
    /// Longest robots.txt Crawl-delay honoured, in seconds (a larger one is
    /// capped, and recorded).
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub max_crawl_delay: u64,
    /// This worker's id among crawlers sharing a PostgreSQL corpus (the
    /// holder named on its claims); default host:pid.
    #[arg(long, value_name = "ID", env = "BYLINE_WORKER_ID")]
    pub worker_id: Option<String>,
    /// PostgreSQL: seconds a claimed URL stays this worker's; a worker that
    /// dies loses its claims to the others after this. Must be more than
    /// --timeout plus --max-crawl-delay.
    #[arg(long, value_name = "SECS", default_value_t = crate::crawl::crawler::DEFAULT_LEASE_SECS)]
    pub lease_secs: u64,
}

impl CrawlOpts {
    /// The crawl configuration for `seeds`.
    pub fn config(&self, seeds: Vec<Url>) -> anyhow::Result<CrawlConfig> {
        let mut c = CrawlConfig::new(seeds);
        c.max_pages = self.max_pages;
        c.max_depth = self.max_depth;
        c.scope = self.scope;
        c.concurrency = self.concurrency.max(1);
        if let Some(contact) = &self.contact {
            Url::parse(contact).with_context(|| format!("--contact {contact:?} is not a URL"))?;
            c.contact_url = Some(contact.clone());
        }
        c.min_delay_ms = self.delay_ms;
        anyhow::ensure!(
            self.timeout > 0.0 && self.read_timeout > 0.0,
            "timeouts must be positive, got --timeout {} --read-timeout {}",
            self.timeout,
            self.read_timeout
        );
        // At most a day: a larger deadline would overflow the timer.
        c.total_timeout_ms = (self.timeout.min(86_400.0) * 1000.0) as u64;
        c.read_timeout_ms = (self.read_timeout.min(86_400.0) * 1000.0) as u64;
        c.connect_timeout_ms = c.connect_timeout_ms.min(c.total_timeout_ms);
        c.max_body_bytes = self.max_body.max(1);
        c.keep_raw = !self.no_keep_raw;
        c.max_urls_per_origin = self.max_urls_per_origin;
        c.max_urls_per_shape = self.max_urls_per_shape;
        c.backoff_base_ms = self.backoff_ms;
        c.max_wait_ms = self.max_wait.saturating_mul(1000);
        c.max_links_per_page = self.max_links_per_page;
        c.max_crawl_delay_ms = self.max_crawl_delay.saturating_mul(1000);
        if let Some(w) = &self.worker_id {
            anyhow::ensure!(
                !w.trim().is_empty() && w.len() <= 200,
                "--worker-id must be 1 to 200 characters"
            );
            c.worker_id = w.clone();
        }
        c.lease_secs = self.lease_secs;
        c.group_commit = crate::store::writer::GroupCommit {
            max_pages: self.commit_pages.max(1),
            max_wait: std::time::Duration::from_millis(self.commit_ms),
        };
        if let Some(p) = &self.policy {
            let bytes =
                std::fs::read(p).with_context(|| format!("reading policy file {}", p.display()))?;
            let consent =
                crate::crawl::signals::ConsentPolicy::from_bytes(&bytes, &p.display().to_string())?;
            c.policy_sha256 = Some(consent.policy.sha256.clone());
            c.policy = Some(consent);
        }
        Ok(c)
    }
}

pub async fn run(args: CrawlArgs, global: &Global) -> anyhow::Result<ExitCode> {
    if args.refresh.refresh {
        return run_refresh(args, global).await;
    }
    let cfg = args.opts.config(args.seeds).map_err(super::exit::input)?;
    // Before the corpus is created: a refused crawl leaves nothing behind.
    cfg.check_contact().map_err(super::exit::input)?;
    if matches!(
        crate::store::Location::of(&global.db),
        crate::store::Location::Postgres(_)
    ) {
        cfg.check_lease().map_err(super::exit::input)?;
    }
    let store = Store::open_for_crawl(&global.db)
        .await
        .with_context(|| format!("opening corpus at {}", crate::store::display_db(&global.db)))?;
    let summary = crawl_with_progress(store.clone(), cfg, global.verbose).await?;
    print_summary(&summary, &global.db);
    refresh_index(&store).await?;
    store.close().await;
    Ok(if summary.interrupted {
        // The shell's convention for "stopped by SIGINT".
        ExitCode::from(130)
    } else {
        ExitCode::SUCCESS
    })
}

/// Splits new or changed pages into retrieval passages and says so.
pub async fn refresh_index(store: &Store) -> anyhow::Result<()> {
    let r = crate::index::refresh(store)
        .await
        .context("refreshing the passage index")?;
    outln!(
        "index: {} page(s) split into {} passage(s); {} passages in the index",
        r.pages,
        r.passages,
        r.total_passages
    );
    Ok(())
}

/// Runs a crawl with a progress bar on a terminal (URLs handled out of URLs
/// known, growing as links are discovered), or one log line per URL
/// otherwise.
pub async fn crawl_with_progress(
    store: Store,
    cfg: CrawlConfig,
    verbose: u8,
) -> anyhow::Result<Summary> {
    let tty = !super::quiet() && std::io::stderr().is_terminal();
    let bar = if tty {
        // Known work: what a previous run left queued, else the seeds.
        let left = store.frontier_counts().await?;
        let known = (left.queued + left.in_flight).max(0) as u64;
        let b = indicatif::ProgressBar::new(known.max(cfg.seeds.len() as u64));
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {elapsed_precise} [{bar:30}] {pos}/{len} urls  {per_sec}  {wide_msg}",
            )
            .expect("static template")
            .progress_chars("=> "),
        );
        b.enable_steady_tick(Duration::from_millis(120));
        Some(b)
    } else {
        None
    };
    let b2 = bar.clone();
    let sink = move |ev: &Event| {
        let line = match ev {
            Event::Robots {
                origin,
                outcome,
                status,
            } => {
                format!(
                    "robots {origin}/robots.txt {} -> {outcome}",
                    status.map_or("-".into(), |s| s.to_string())
                )
            }
            Event::Fetched {
                url,
                status,
                error,
                new_urls,
            } => {
                if let Some(b) = &b2 {
                    b.inc_length(*new_urls);
                    b.inc(1);
                }
                format!(
                    "fetch {} {url}{}{}",
                    status.map_or("---".into(), |s| s.to_string()),
                    error.as_ref().map_or(String::new(), |e| format!(" [{e}]")),
                    if *new_urls > 0 {
                        format!(" (+{new_urls} urls)")
                    } else {
                        String::new()
                    }
                )
            }
            Event::Skipped { url, reason } => {
                if let Some(b) = &b2 {
                    b.inc(1);
                }
                format!("skip  {url} [{reason}]")
            }
            Event::Retry { url, reason, after } => {
                format!("retry {url} in {:.1}s [{reason}]", after.as_secs_f64())
            }
        };
        match &b2 {
            Some(b) => {
                b.set_message(line.clone());
                if verbose > 0 {
                    b.println(line);
                }
            }
            None if !super::quiet() => eprintln!("{line}"),
            None => {}
        }
    };
    // Ctrl-C: stop taking work, release what is in flight, print the summary.
    let stop = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let r = crawl::run_until(store, cfg, sink, stop).await;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    r.context("crawling")
}

/// Prints the closing summary.
pub fn print_summary(s: &Summary, db: &std::path::Path) {
    let secs = s.elapsed.as_secs_f64();
    if s.interrupted {
        outln!(
            "crawl run {} interrupted after {:.1}s (requests in flight released; run the same command to continue)",
            s.run_id,
            secs
        );
    } else {
        outln!("crawl run {} finished in {:.1}s", s.run_id, secs);
    }
    if s.requeued_on_start > 0 {
        outln!(
            "  resumed: {} interrupted fetches re-queued",
            s.requeued_on_start
        );
    }
    if s.quarantined_on_start > 0 {
        outln!(
            "  quarantined: {} URL(s) in flight when earlier runs stopped too often; marked failed, not retried",
            s.quarantined_on_start
        );
    }
    if s.lease_lost > 0 {
        outln!(
            "  lease lost:        {} result(s) dropped: this worker's lease on the URL expired first (another worker records it)",
            s.lease_lost
        );
    }
    if s.internal_errors > 0 {
        outln!(
            "  internal errors:   {} URL(s) failed inside Byline (error kind internal; see fetches.error_detail)",
            s.internal_errors
        );
    }
    outln!("  fetched:           {}", s.fetched);
    outln!(
        "  pages stored:      {} ({} exact duplicates)",
        s.pages,
        s.duplicates
    );
    outln!("  skipped by robots: {}", s.skipped_by_robots);
    outln!("  retries scheduled: {}", s.retries);
    if s.errors_by_kind.is_empty() {
        outln!("  errors:            none");
    } else {
        outln!("  errors by kind:");
        for (k, n) in &s.errors_by_kind {
            outln!("    {k:<18} {n}");
        }
    }
    outln!("  per origin (whole corpus frontier):");
    let mut last = "";
    for (origin, state, n) in &s.per_origin {
        if origin != last {
            outln!("    {origin}");
            last = origin;
        }
        outln!("      {state:<10} {n}");
    }
    if !s.waiting.is_empty() {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        outln!("  waiting (queued work left; run the same command again to continue):");
        for w in &s.waiting {
            let when = w.next_attempt_at.saturating_sub(now);
            let at = time::OffsetDateTime::from_unix_timestamp(w.next_attempt_at)
                .ok()
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .unwrap_or_else(|| w.next_attempt_at.to_string());
            outln!(
                "    {} {} URL(s), retry {} ({}): {}",
                w.origin,
                w.queued,
                if when > 0 {
                    format!("in {when}s")
                } else {
                    "now".into()
                },
                at,
                w.last_error.as_deref().unwrap_or("not yet tried")
            );
        }
    }
    outln!(
        "corpus: {} (try: sqlite3 {} 'SELECT url, title FROM crawl_pages')",
        db.display(),
        db.display()
    );
}

/// `byline crawl --refresh`: revisit the due pages (the recheck machinery
/// with bodies and a schedule), crawl the pages their new links queued,
/// split changed text into passages.
async fn run_refresh(args: CrawlArgs, global: &Global) -> anyhow::Result<ExitCode> {
    use crate::crawl::recheck::RecheckOptions;
    let cfg = args.opts.config(Vec::new()).map_err(super::exit::input)?;
    let revisit = args.refresh.revisit().map_err(super::exit::input)?;
    // Refreshing needs a corpus: a missing one is an input error.
    let store = super::open_corpus(global).await?;
    let opts = RecheckOptions {
        bodies: true,
        revisit,
        policy: cfg.policy.clone(),
    };
    let r = super::recheck::run_recheck_with(&store, None, cfg.clone(), &opts).await?;
    // New pages linked from changed ones: crawled as a crawl crawls them,
    // under --policy or else the policy the newest verdicts were decided under.
    let mut crawled = None;
    if r.new_urls > 0 {
        let mut c = cfg;
        c.seeds = r
            .origins
            .iter()
            .filter_map(|o| Url::parse(&format!("{}/", o.origin)).ok())
            .collect();
        if c.policy.is_none()
            && let Some(sha) = store.newest_verdict_policy().await?
            && let Some((id, bytes)) = store.policy_body(&sha).await?
        {
            c.policy = Some(crate::crawl::signals::ConsentPolicy::from_bytes(
                &bytes, &id,
            )?);
        }
        let s = if args.refresh.json {
            crawl::run(store.clone(), c, |_| {}).await?
        } else {
            crawl_with_progress(store.clone(), c, global.verbose).await?
        };
        crawled = Some(s);
    }
    let idx = crate::index::refresh(&store)
        .await
        .context("refreshing the passage index")?;
    let code = super::recheck::status(&r);
    if args.refresh.json {
        let mut v = super::recheck::report_json(&r);
        v["body_evidence"] = serde_json::Value::Null;
        outln!(
            "{}",
            serde_json::json!({
                "refresh": v,
                "crawl": crawled.as_ref().map(|s| serde_json::json!({
                    "run_id": s.run_id, "fetched": s.fetched, "pages": s.pages,
                })),
                "index": {"pages": idx.pages, "passages": idx.passages, "total_passages": idx.total_passages},
            })
        );
    } else {
        super::recheck::print_pages(&r);
        for x in &r.revoked {
            outln!(
                "revoked  {} for {}: {} -> {} ({})",
                x.url,
                x.purpose,
                x.old_decision,
                x.new_decision,
                x.reasons.join(", ")
            );
        }
        outln!(
            "refresh: {} page(s) checked ({} unchanged, {} same body, {} changed, {} gone), {} not due, {} use(s) revoked, {} answer(s) flagged, {} new URL(s), {} error(s)",
            r.checked,
            r.unchanged.len(),
            r.same_body.len(),
            r.changed.len(),
            r.gone.len(),
            r.not_due,
            r.revoked.len(),
            r.flagged_answers.len(),
            r.new_urls,
            r.errors.len()
        );
        if let Some(s) = &crawled {
            print_summary(s, &global.db);
        }
        outln!(
            "index: {} page(s) split into {} passage(s); {} passages in the index",
            idx.pages,
            idx.passages,
            idx.total_passages
        );
        if r.nothing_checked() {
            outln!("nothing was checked: every request failed");
        }
    }
    store.close().await;
    Ok(code)
}
