//! The crawl loop: claims frontier entries from the store, keeps one request
//! per origin in flight (politeness), applies robots.txt, fetches, extracts,
//! and commits each entry's outcome in one transaction.
//!
//! Crash safety: an entry is claimed (`in_flight`, committed) before its
//! request and completed (fetch + page + links + new frontier rows + state,
//! one transaction) after it. A run that starts re-queues the claims a dead
//! run left behind, so a `kill -9` loses nothing and duplicates nothing; the
//! only re-fetch possible is of a page whose response arrived in the
//! microseconds between the end of the read and the commit.

use crate::crawl::reasons::SkipReason;
use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use serde::Serialize;
use tokio::task::JoinSet;
use url::Url;

use super::budget;
use super::charset;
use super::conduct::{self, Conduct, ConductConfig, Purpose, RobotsState, now_unix, sha256_hex};
use super::error::CrawlError;
use super::extract::{self, EXTRACTOR_VERSION};
use super::fetch::{ClientConfig, ErrorKind, Fetched, Fetcher, Limits};
use super::guard::Guard;
use super::robots::{self, PRODUCT_TOKEN};
use super::signals::{ConsentPolicy, PageSeen, RobotsSeen, Signals};
use super::urls::{self, Scope, ScopeRule};
use crate::policy::evidence::FetchRef;
use crate::store::Store;
use crate::store::crawl::{
    Completed, DecisionRecord, FetchRecord, FrontierOutcome, LinkBudget, LinkRecord, PageRecord,
    RunRecord,
};
use crate::store::frontier::{FrontierEntry, Lease, NewEntry, Waiting};
use crate::store::raw::RawCapture;
use crate::store::writer::{Completion, CrawlWriter, GroupCommit};

/// Everything that shapes a crawl. Serialised into `crawl_runs.config_json`.
#[derive(Debug, Clone, Serialize)]
pub struct CrawlConfig {
    #[serde(serialize_with = "urls_as_strings")]
    pub seeds: Vec<Url>,
    pub scope: Scope,
    /// Stop after this many URLs were fetched in this run.
    pub max_pages: Option<u64>,
    pub max_depth: u32,
    pub max_urls_per_origin: u64,
    /// URLs of one shape (`crawl::budget::shape`) per origin: the budget a
    /// calendar or an endless listing can spend.
    pub max_urls_per_shape: u64,
    /// Requests in flight across all origins (one per origin at a time).
    pub concurrency: usize,
    /// The operator's contact URL in our User-Agent. Without one, only
    /// loopback seeds may be crawled ([`CrawlError::NoContact`]).
    pub contact_url: Option<String>,
    pub connect_timeout_ms: u64,
    pub read_timeout_ms: u64,
    pub total_timeout_ms: u64,
    pub max_redirects: usize,
    pub max_body_bytes: usize,
    /// Keep each page's response body as fetched (gzip, content-addressed,
    /// at most `max_body_bytes`) for WARC `response` records and
    /// re-extraction; `byline crawl --no-keep-raw` turns it off.
    pub keep_raw: bool,
    /// Minimum gap between two request starts to one origin; robots.txt
    /// Crawl-delay raises it, never lowers it.
    pub min_delay_ms: u64,
    /// Longest Crawl-delay honoured (a larger one is capped, and recorded).
    pub max_crawl_delay_ms: u64,
    /// Attempts per URL (429/503/network errors/robots unreachable are retried).
    pub max_attempts: i64,
    /// First back-off step; doubles per attempt.
    pub backoff_base_ms: u64,
    /// How long an unreachable robots.txt keeps an origin closed before a refetch.
    pub robots_retry_ms: u64,
    /// When everything left waits longer than this (an unreachable origin,
    /// a long Retry-After), the run ends and reports what waits; the next
    /// run continues it.
    pub max_wait_ms: u64,
    /// Links recorded per page (the rest are dropped, and counted).
    pub max_links_per_page: usize,
    /// sha256 of the policy file, recorded with the run.
    pub policy_sha256: Option<String>,
    /// Bytes of robots.txt read and parsed: the policy's `robots.max_bytes`
    /// (set from the policy when the run starts; at least 512,000).
    pub robots_max_bytes: usize,
    /// The consent policy verdicts are decided under (default: the bundled
    /// `policies/eu-opt-out.toml`).
    #[serde(skip)]
    pub policy: Option<ConsentPolicy>,
    /// This worker's id among the crawlers sharing a PostgreSQL corpus
    /// (`--worker-id`, default `host:pid`): the holder of its frontier
    /// leases and origin slots.
    pub worker_id: String,
    /// How long a claimed URL stays this worker's before other workers may
    /// take it (PostgreSQL; `--lease-secs`): longer than the longest fetch.
    pub lease_secs: u64,
    /// How finished entries are grouped into transactions (a throughput
    /// knob; it changes when rows commit, never which rows). Not part of
    /// the recorded config.
    #[serde(skip)]
    pub group_commit: GroupCommit,
}

impl CrawlConfig {
    /// Defaults for `seeds`.
    pub fn new(seeds: Vec<Url>) -> CrawlConfig {
        CrawlConfig {
            seeds,
            scope: Scope::Host,
            max_pages: None,
            max_depth: 8,
            max_urls_per_origin: 5000,
            max_urls_per_shape: budget::DEFAULT_MAX_PER_SHAPE,
            concurrency: 8,
            contact_url: None,
            connect_timeout_ms: 10_000,
            read_timeout_ms: 15_000,
            total_timeout_ms: 30_000,
            max_redirects: 10,
            max_body_bytes: 5 * 1024 * 1024,
            keep_raw: true,
            min_delay_ms: 250,
            max_crawl_delay_ms: 60_000,
            max_attempts: 4,
            backoff_base_ms: 2_000,
            robots_retry_ms: 300_000,
            max_wait_ms: 60_000,
            max_links_per_page: 1000,
            policy_sha256: None,
            robots_max_bytes: robots::PARSE_LIMIT,
            policy: None,
            worker_id: default_worker_id(),
            lease_secs: DEFAULT_LEASE_SECS,
            group_commit: GroupCommit::default(),
        }
    }

    /// Refuses a lease that a fetch could outlive: shorter than the total
    /// timeout plus the longest Crawl-delay a request may wait for.
    pub fn check_lease(&self) -> Result<(), CrawlError> {
        let need = self
            .total_timeout_ms
            .saturating_add(self.max_crawl_delay_ms.max(self.min_delay_ms))
            .div_ceil(1000);
        if self.lease_secs <= need {
            return Err(CrawlError::ShortLease {
                secs: self.lease_secs,
                need,
            });
        }
        Ok(())
    }

    /// The frontier lease of this worker.
    pub fn lease(&self) -> Lease {
        Lease {
            worker: self.worker_id.clone(),
            ms: i64::try_from(self.lease_secs.saturating_mul(1000)).unwrap_or(i64::MAX),
        }
    }

    /// Refuses a crawl that reaches beyond this machine (a seed that is not
    /// loopback) without a contact URL for site operators.
    pub fn check_contact(&self) -> Result<(), CrawlError> {
        match self.seeds.iter().find(|s| !is_loopback_host(s)) {
            Some(s) if self.contact_url.is_none() => {
                Err(CrawlError::NoContact { url: s.to_string() })
            }
            _ => Ok(()),
        }
    }

    /// `BylineBot/<version> (+<contact URL>)`, or `BylineBot/<version>`
    /// without a contact: our product token, never another agent's.
    pub fn user_agent(&self) -> String {
        match &self.contact_url {
            Some(c) => format!("{PRODUCT_TOKEN}/{} (+{c})", env!("CARGO_PKG_VERSION")),
            None => format!("{PRODUCT_TOKEN}/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// Default `--lease-secs`: ten minutes, well past the default total
/// timeout (30 s) plus the longest Crawl-delay honoured (60 s).
pub const DEFAULT_LEASE_SECS: u64 = 600;

/// `host:pid`, the default worker id.
pub fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}:{}", std::process::id())
}

/// Progress reported to the caller (the CLI prints it).
#[derive(Debug, Clone)]
pub enum Event {
    /// A robots.txt version was fetched (or a cached copy kept).
    Robots {
        origin: String,
        outcome: String,
        status: Option<u16>,
    },
    /// A page was fetched (with or without an error).
    Fetched {
        url: String,
        status: Option<u16>,
        error: Option<String>,
        new_urls: u64,
    },
    /// A URL was not fetched (robots, for now or for good).
    Skipped { url: String, reason: String },
    /// A URL will be retried later.
    Retry {
        url: String,
        reason: String,
        after: Duration,
    },
}

/// The closing numbers of one run.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub run_id: i64,
    pub requeued_on_start: u64,
    pub fetched: u64,
    pub pages: u64,
    pub duplicates: u64,
    pub skipped_by_robots: u64,
    pub retries: u64,
    /// Entries that failed inside Byline (caught at the per-page boundary).
    pub internal_errors: u64,
    /// Entries quarantined at the start: claimed `max_attempts` times by
    /// runs that died with them in flight.
    pub quarantined_on_start: u64,
    pub errors_by_kind: Vec<(String, i64)>,
    /// (origin, state, count) over the whole frontier.
    pub per_origin: Vec<(String, String, i64)>,
    /// Queued work left when the run ended, per origin: what waits, why and
    /// when it may be retried (empty when the frontier is drained).
    pub waiting: Vec<Waiting>,
    /// The run was stopped (Ctrl-C) before its work was done.
    pub interrupted: bool,
    /// Results dropped at commit because this worker's lease on the URL
    /// had expired and it was no longer its claim (PostgreSQL; the worker
    /// holding it records the URL).
    pub lease_lost: u64,
    /// Transactions the group-commit writer wrote, and the entries in the
    /// largest (entries / commits is the mean batch size).
    pub commits: u64,
    pub largest_commit: u64,
    pub elapsed: Duration,
}

fn urls_as_strings<S: serde::Serializer>(v: &[Url], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(Url::as_str))
}

type Sink = Arc<dyn Fn(&Event) + Send + Sync>;

/// Reason code: a redirect hop's origin's robots.txt keeps us from the hop
/// (a disallow rule, or an unreachable robots.txt); the hop was not requested.
pub const REASON_REDIRECT_DISALLOWED: &str = SkipReason::RobotsRedirectDisallowed.as_str();

struct Inner {
    store: Store,
    /// The consent hook (signals.md §8.1): evidence and verdicts per page.
    signals: Signals,
    /// Every request goes through it (guard, robots.txt, politeness per hop).
    conduct: Arc<Conduct>,
    cfg: CrawlConfig,
    scope: ScopeRule,
    run_id: i64,
    sink: Sink,
    /// The group-commit writer of a crawl run (none for a [`Session`]:
    /// each outcome commits on its own).
    writer: Option<CrawlWriter>,
    /// Outcomes the store dropped because the lease was lost.
    lease_lost: AtomicU64,
}

/// One claimed entry's place in the writer's count of entries still being
/// worked on ([`Store::crawl_writer`]'s `in_flight`): released when the
/// entry's outcome is handed to the writer, or when its task ends without
/// one, so a batch never waits for an entry that will not come.
///
/// Releasing it also tells the scheduler (`freed`, with the task's number)
/// that the entry's origin may be fetched again: an origin's next URL is
/// fetched while the previous one's outcome waits in the writer's batch
/// (issue #26: with few origins, waiting for each commit made batches of
/// one or two pages). Nothing is marked `done` earlier: the entry is still
/// `in_flight` in the store until its batch commits, so a kill loses and
/// duplicates nothing (the uncommitted entries are fetched again by the
/// next run), and the politeness delay is [`Conduct`]'s, counted from the
/// end of the previous request to the origin, whatever the scheduler does.
struct Ticket {
    count: Arc<AtomicUsize>,
    held: AtomicBool,
    freed: Option<(tokio::sync::mpsc::UnboundedSender<Freed>, u64)>,
    /// The unix second until which the entry's origin was deferred while
    /// it was handled (0: not deferred), told to the scheduler with the
    /// origin's release.
    deferred: AtomicI64,
}

/// Entries claimed per origin in one claim round on SQLite (one started,
/// the rest kept [`Ahead`]): a claim is a committed statement, and with
/// few origins the crawl made one per page (issue #26).
const CLAIM_AHEAD: usize = 8;

/// Entries claimed and committed but not started yet, per origin, each
/// origin's in breadth-first order. A crash leaves them `in_flight` like
/// the entries waiting in the writer's open batch: the next run re-queues
/// them.
#[derive(Default)]
struct Ahead {
    by_origin: HashMap<String, std::collections::VecDeque<FrontierEntry>>,
    len: usize,
}

impl Ahead {
    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn len(&self) -> usize {
        self.len
    }

    fn has(&self, origin: &str) -> bool {
        self.by_origin.contains_key(origin)
    }

    fn origins(&self) -> impl Iterator<Item = &str> {
        self.by_origin.keys().map(String::as_str)
    }

    /// Keeps `claimed` (in breadth-first order); returns how many origins
    /// they are for.
    fn add(&mut self, claimed: Vec<FrontierEntry>) -> usize {
        let mut origins = 0;
        for e in claimed {
            let q = self.by_origin.entry(e.origin.clone()).or_default();
            origins += usize::from(q.is_empty());
            q.push_back(e);
            self.len += 1;
        }
        origins
    }

    /// The next entry of at most `n` origins that are not `busy`, in
    /// breadth-first order.
    fn take_free(&mut self, busy: &HashMap<String, u64>, n: usize) -> Vec<FrontierEntry> {
        let mut heads: Vec<(i64, i64, String)> = self
            .by_origin
            .iter()
            .filter(|(o, _)| !busy.contains_key(o.as_str()))
            .filter_map(|(o, q)| q.front().map(|e| (e.depth, e.id, o.clone())))
            .collect();
        heads.sort_unstable();
        let mut out = Vec::with_capacity(n.min(heads.len()));
        for (_, _, o) in heads.into_iter().take(n) {
            if let Some(q) = self.by_origin.get_mut(&o) {
                if let Some(e) = q.pop_front() {
                    self.len -= 1;
                    out.push(e);
                }
                if q.is_empty() {
                    self.by_origin.remove(&o);
                }
            }
        }
        out
    }

    /// Everything kept for `origin`.
    fn take_origin(&mut self, origin: &str) -> Vec<FrontierEntry> {
        let q: Vec<FrontierEntry> = self.by_origin.remove(origin).unwrap_or_default().into();
        self.len -= q.len();
        q
    }

    fn take_all(&mut self) -> Vec<FrontierEntry> {
        self.len = 0;
        self.by_origin.drain().flat_map(|(_, q)| q).collect()
    }

    fn clear(&mut self) {
        self.take_all();
    }
}

/// A task's origin is free again (the task's number), and whether it was
/// deferred until some unix second meanwhile.
type Freed = (u64, Option<i64>);

impl Ticket {
    fn new(
        count: Arc<AtomicUsize>,
        freed: Option<(tokio::sync::mpsc::UnboundedSender<Freed>, u64)>,
    ) -> Ticket {
        count.fetch_add(1, Ordering::AcqRel);
        Ticket {
            count,
            held: AtomicBool::new(true),
            freed,
            deferred: AtomicI64::new(0),
        }
    }

    /// Records that the entry's origin waits until `until` (a unix second):
    /// entries claimed ahead for it go back to the queue with that wait.
    fn defer(&self, until: i64) {
        self.deferred.fetch_max(until, Ordering::AcqRel);
    }

    fn release(&self) {
        if self.held.swap(false, Ordering::AcqRel) {
            self.count.fetch_sub(1, Ordering::AcqRel);
            if let Some((tx, task)) = &self.freed {
                let until = self.deferred.load(Ordering::Acquire);
                let _ = tx.send((*task, (until > 0).then_some(until)));
            }
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.release();
    }
}

/// What one entry's task reports back to the scheduler.
#[derive(Debug, Default)]
struct Report {
    fetched: bool,
    page: bool,
    duplicate: bool,
    robots_skip: bool,
    retry: bool,
    internal: bool,
    /// The entry's commit queued no new URL (the scheduler need not look
    /// for new work because of it).
    added_nothing: bool,
    /// The origins of the links the entry's commit may have queued (a
    /// page's; empty for other outcomes): the scheduler looks for new work
    /// only if one of them is neither busy nor has entries claimed ahead.
    link_origins: Vec<String>,
}

/// What [`prepare`] sets up for a run: the config with the policy's
/// numbers filled in, the normalised seeds, the request path, the consent
/// hook and the run record.
struct Prepared {
    cfg: CrawlConfig,
    seeds: Vec<Url>,
    conduct: Arc<Conduct>,
    signals: Signals,
    run_id: i64,
}

/// Whether `url`'s host is a loopback name or address (crawls of these need
/// no contact URL: they reach no one else's server).
fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Some(url::Host::Domain(d)) => {
            d.eq_ignore_ascii_case("localhost") || d.to_ascii_lowercase().ends_with(".localhost")
        }
        None => false,
    }
}

/// Checks the seeds, builds the guarded request path for them, records the
/// policy and starts a run record. `sink` hears of robots.txt fetches.
/// `guard`: the address guard, by default [`Guard::for_seeds`].
async fn prepare(
    store: &Store,
    cfg: CrawlConfig,
    sink: Sink,
    guard: Option<Guard>,
) -> Result<Prepared, CrawlError> {
    if cfg.seeds.is_empty() {
        return Err(CrawlError::NoSeeds);
    }
    let mut seeds = Vec::new();
    for s in &cfg.seeds {
        let n = urls::normalise(s).ok_or_else(|| CrawlError::BadSeed {
            url: s.to_string(),
            reason: "only http and https URLs with a host can be crawled".into(),
        })?;
        seeds.push(n);
    }
    if cfg.contact_url.is_none()
        && let Some(s) = seeds.iter().find(|s| !is_loopback_host(s))
    {
        return Err(CrawlError::NoContact { url: s.to_string() });
    }
    let guard = match guard {
        Some(g) => g,
        None => Guard::for_seeds(&seeds).await,
    };
    let fetcher = Fetcher::new(
        &ClientConfig {
            user_agent: cfg.user_agent(),
            connect_timeout: Duration::from_millis(cfg.connect_timeout_ms),
            read_timeout: Duration::from_millis(cfg.read_timeout_ms),
            total_timeout: Duration::from_millis(cfg.total_timeout_ms),
        },
        guard,
    )
    .map_err(CrawlError::Client)?;
    let mut cfg = cfg;
    let consent = cfg
        .policy
        .clone()
        .unwrap_or_else(ConsentPolicy::bundled_default);
    cfg.policy_sha256 = Some(consent.policy.sha256.clone());
    cfg.robots_max_bytes = usize::try_from(consent.policy.knobs.robots_max_bytes)
        .unwrap_or(usize::MAX)
        .max(robots::PARSE_LIMIT);
    let config_json = serde_json::to_string(&cfg).expect("config serialises");
    let run_id = store
        .crawl_run_start(&RunRecord {
            started_at: now_unix(),
            byline_version: env!("CARGO_PKG_VERSION").into(),
            user_agent: cfg.user_agent(),
            config_sha256: sha256_hex(config_json.as_bytes()),
            config_json,
            policy_sha256: cfg.policy_sha256.clone(),
            seeds_json: serde_json::to_string(&seeds.iter().map(Url::as_str).collect::<Vec<_>>())
                .expect("strings serialise"),
        })
        .await?;
    let conduct = Arc::new(Conduct::new(
        fetcher,
        store.clone(),
        run_id,
        ConductConfig {
            min_delay: Duration::from_millis(cfg.min_delay_ms),
            max_crawl_delay: Duration::from_millis(cfg.max_crawl_delay_ms),
            robots_retry: Duration::from_millis(cfg.robots_retry_ms),
            robots_max_bytes: cfg.robots_max_bytes,
            max_redirects: cfg.max_redirects,
            worker_id: cfg.worker_id.clone(),
            // A request holds its origin's shared slot at most this long
            // (a worker that dies mid-request frees it then).
            slot_hold: Duration::from_millis(cfg.total_timeout_ms.saturating_add(1_000)),
        },
        move |r| {
            sink(&Event::Robots {
                origin: r.origin.clone(),
                outcome: r.outcome.clone(),
                status: r.status,
            })
        },
    ));
    let signals = Signals::new(
        store.clone(),
        conduct.clone(),
        consent.policy,
        &consent.bytes,
        PRODUCT_TOKEN,
        now_unix(),
    )
    .await?;
    Ok(Prepared {
        cfg,
        seeds,
        conduct,
        signals,
        run_id,
    })
}

/// Who this crawler is, for the corpus lock's refusal message.
fn crawler_holder(worker_id: &str) -> String {
    let since = time::OffsetDateTime::from_unix_timestamp(now_unix())
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    format!(
        "pid {} (worker {worker_id}), since {since}",
        std::process::id()
    )
}

/// Runs a crawl to completion (or to `max_pages`, or until only work that
/// waits longer than `max_wait_ms` is left) into `store`.
pub async fn run(
    store: Store,
    cfg: CrawlConfig,
    sink: impl Fn(&Event) + Send + Sync + 'static,
) -> Result<Summary, CrawlError> {
    run_until(store, cfg, sink, std::future::pending()).await
}

/// [`run`], stopping early when `stop` completes (Ctrl-C): no new work is
/// taken, requests in flight are abandoned and their claims released (the
/// attempt not counted), and the summary says `interrupted`.
pub async fn run_until(
    store: Store,
    cfg: CrawlConfig,
    sink: impl Fn(&Event) + Send + Sync + 'static,
    stop: impl Future<Output = ()>,
) -> Result<Summary, CrawlError> {
    let started = Instant::now();
    // Before anything is written: on SQLite the in-flight claims re-queued
    // below are a dead run's only if no other crawler runs on the file.
    let _one_crawler = store.lock_crawler(&crawler_holder(&cfg.worker_id))?;
    let sink: Sink = Arc::new(sink);
    let Prepared {
        cfg,
        seeds,
        conduct,
        signals,
        run_id,
    } = prepare(&store, cfg, sink.clone(), None).await?;
    // Commits check this worker still holds each entry's lease (PostgreSQL).
    let store = store.for_worker(&cfg.worker_id);
    // A claim left in flight by runs that died with it `max_attempts` times
    // is not tried again: it is what killed them.
    let quarantined = store
        .frontier_quarantine_in_flight(cfg.max_attempts, now_unix())
        .await?;
    // SQLite: every claim left in flight is a dead run's. PostgreSQL: only
    // claims whose lease expired (other workers' live claims stay theirs).
    let requeued = store.frontier_requeue_in_flight().await?;
    let lease = cfg.lease();
    let mut last_requeue = Instant::now();
    let now = now_unix();
    let entries: Vec<NewEntry> = seeds
        .iter()
        .map(|u| NewEntry {
            url: u.to_string(),
            url_norm: u.to_string(),
            origin: urls::origin(u),
            depth: 0,
            discovered_from: None,
            shape: Some(budget::shape(u)),
        })
        .collect();
    store.frontier_add_seeds(run_id, &entries, now).await?;

    let in_flight = Arc::new(AtomicUsize::new(0));
    let starved = Arc::new(crate::store::writer::Starved::default());
    let (writer, writer_task) =
        store.crawl_writer(cfg.group_commit, in_flight.clone(), starved.clone());
    let inner = Arc::new(Inner {
        store: store.clone(),
        signals,
        conduct,
        scope: ScopeRule {
            scope: cfg.scope,
            seeds,
        },
        cfg,
        run_id,
        sink,
        writer: Some(writer),
        lease_lost: AtomicU64::new(0),
    });
    let mut summary = Summary {
        run_id,
        requeued_on_start: requeued,
        quarantined_on_start: quarantined,
        ..Summary::default()
    };
    // Origins with a request under way: origin -> number of the task
    // fetching it, and each task's origin until it frees it (see Ticket).
    let mut busy: HashMap<String, u64> = HashMap::new();
    let mut origin_of: HashMap<u64, String> = HashMap::new();
    let mut next_task: u64 = 0;
    let (freed_tx, mut freed_rx) = tokio::sync::mpsc::unbounded_channel::<Freed>();
    // Entries claimed ahead for an origin (claimed and committed, not yet
    // started), each origin's in breadth-first order: one claim statement
    // serves an origin's next `per_origin` requests instead of one
    // (SQLite; PostgreSQL claims one at a time under leases).
    let per_origin = if store.shared_politeness() {
        1
    } else {
        CLAIM_AHEAD
    };
    let mut ahead = Ahead::default();
    /// Frees `task`'s origin; returns it.
    fn free(
        busy: &mut HashMap<String, u64>,
        origin_of: &mut HashMap<u64, String>,
        task: u64,
    ) -> Option<String> {
        let origin = origin_of.remove(&task)?;
        if busy.get(&origin) == Some(&task) {
            busy.remove(&origin);
        }
        Some(origin)
    }
    let mut tasks: JoinSet<(u64, Result<Report, CrawlError>)> = JoinSet::new();
    let mut attempted: u64 = 0;
    let mut first_error: Option<CrawlError> = None;
    let mut stop = std::pin::pin!(stop);
    let mut stopping = false;
    // Whether the store may hold claimable work the last claim round did
    // not see (issue #26: the loop asked the store at every event, most of
    // them after a commit that added nothing or while every origin with
    // work was busy). Set when an origin is freed, when a commit queued new
    // URLs or the outcome may have (anything but a plain page), when the
    // last round filled every free slot, when claims came back to the
    // queue, and at least every `LOOK_EVERY` (entries whose next attempt
    // has become due, other workers' work on PostgreSQL).
    const LOOK_EVERY: Duration = Duration::from_millis(50);
    let mut stale = true;
    let mut last_look = Instant::now();
    loop {
        let budget = inner.cfg.max_pages.is_none_or(|m| attempted < m);
        if store.shared_politeness() && last_requeue.elapsed() >= Duration::from_secs(1) {
            // Other workers' expired leases (a worker died) come back to
            // the queue while this one runs.
            last_requeue = Instant::now();
            let n = store.frontier_requeue_in_flight().await?;
            summary.requeued_on_start += n;
            stale |= n > 0;
        }
        // `concurrency` bounds the requests under way (`busy`: one per
        // origin), not the tasks whose outcome waits in the writer's batch
        // (issue #26: with a 20 ms commit wait they held most slots). Those
        // are bounded too: at most a full batch more.
        let conc = inner.cfg.concurrency;
        let room = conc
            .saturating_sub(busy.len())
            .min((conc + inner.cfg.group_commit.max_pages.max(1)).saturating_sub(tasks.len()));
        let left = inner.cfg.max_pages.map_or(usize::MAX, |m| {
            usize::try_from(m.saturating_sub(attempted)).unwrap_or(usize::MAX)
        });
        // Starts the task of a claimed entry (its origin is busy until the
        // task frees it).
        macro_rules! start {
            ($e:expr) => {{
                let e: FrontierEntry = $e;
                next_task += 1;
                let task = next_task;
                busy.insert(e.origin.clone(), task);
                origin_of.insert(task, e.origin.clone());
                attempted += 1;
                let inner = inner.clone();
                let ticket = Ticket::new(in_flight.clone(), Some((freed_tx.clone(), task)));
                tasks.spawn(async move { (task, guarded(&inner, e, &ticket).await) });
            }};
        }
        let may_start = !stopping && budget && first_error.is_none();
        // Claimed-ahead entries of free origins start first, without a
        // statement.
        let mut room = room.min(left);
        if may_start && room > 0 && !ahead.is_empty() {
            for e in ahead.take_free(&busy, room) {
                room -= 1;
                start!(e);
            }
        }
        let want = room;
        stale |= last_look.elapsed() >= LOOK_EVERY;
        // With most slots busy, wait until a few are free so that one round
        // claims several entries (each round is a statement that visits
        // every origin).
        let worth = want.saturating_mul(4) >= conc || busy.len().saturating_mul(2) <= conc;
        if stale && worth && may_start && want > 0 && ahead.len() < left {
            // One statement finds and claims the next entries of every free
            // origin without entries claimed ahead (breadth first), each
            // claim committed before its request is made.
            let mut skip: Vec<&str> = busy.keys().map(String::as_str).collect();
            skip.extend(ahead.origins());
            // Entries claimed ahead count against the page budget as if
            // started.
            let left = inner.cfg.max_pages.map_or(usize::MAX, |m| {
                usize::try_from(m.saturating_sub(attempted)).unwrap_or(usize::MAX)
            });
            let limit = want
                .saturating_mul(per_origin)
                .min(left.saturating_sub(ahead.len()));
            let claimed = store
                .frontier_claim_ready(run_id, now_unix(), &lease, &skip, limit, per_origin)
                .await?;
            last_look = Instant::now();
            let firsts = ahead.add(claimed);
            // A round that started every slot may have left work behind.
            stale = firsts >= want;
            // Nothing to start and nothing under way: only the writer's
            // open batch (the URLs it queues) can give more work, or the
            // run is ending; it need not wait for more entries.
            starved.set(firsts == 0 && busy.is_empty());
            for e in ahead.take_free(&busy, want) {
                start!(e);
            }
        }
        let mut idle = LOOK_EVERY;
        if tasks.is_empty() {
            if stopping || !budget || first_error.is_some() {
                break;
            }
            match store.frontier_next_due().await? {
                None => break,
                Some(at) => {
                    let wait_ms = at.saturating_sub(now_unix()).saturating_mul(1000);
                    if wait_ms > i64::try_from(inner.cfg.max_wait_ms).unwrap_or(i64::MAX) {
                        // Only work that waits long is left: end the run;
                        // the summary says what waits and the next run
                        // continues it.
                        break;
                    }
                    idle = Duration::from_millis(wait_ms.clamp(0, 1000) as u64 + 20);
                }
            }
        }
        let mut joined_any = Vec::new();
        let mut freed_any: Vec<Freed> = Vec::new();
        tokio::select! {
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => joined_any.push(joined),
            Some(freed) = freed_rx.recv() => freed_any.push(freed),
            () = &mut stop, if !stopping => {
                stopping = true;
                summary.interrupted = true;
                tasks.abort_all();
                while tasks.join_next().await.is_some() {}
                store.frontier_release_run(run_id, now_unix()).await?;
                ahead.clear();
            }
            () = tokio::time::sleep(idle) => stale = true,
        }
        // Whatever else has already happened is handled before the next
        // round, so one round serves it all (a batch's commit ends many
        // tasks at once).
        while let Ok(freed) = freed_rx.try_recv() {
            freed_any.push(freed);
        }
        for (task, deferred) in freed_any {
            let origin = free(&mut busy, &mut origin_of, task);
            // A freed origin with entries claimed ahead starts the next
            // one without a claim round.
            stale |= origin.as_deref().is_none_or(|o| !ahead.has(o));
            // The origin waits: what was claimed ahead for it goes back to
            // the queue with that wait (as the deferral left its queued
            // entries), not to requests that would wait in the request path.
            if let (Some(until), Some(origin)) = (deferred, origin) {
                let ids: Vec<i64> = ahead.take_origin(&origin).iter().map(|e| e.id).collect();
                store
                    .frontier_release(run_id, &ids, now_unix(), Some(until))
                    .await?;
            }
        }
        while let Some(joined) = tasks.try_join_next() {
            joined_any.push(joined);
        }
        for joined in joined_any {
            let (task, r) = match joined {
                Ok(v) => v,
                // `guarded` catches panics; a join error is a cancelled task.
                Err(e) => {
                    first_error.get_or_insert(CrawlError::Task(e.to_string()));
                    continue;
                }
            };
            free(&mut busy, &mut origin_of, task);
            match r {
                Ok(rep) => {
                    if !rep.fetched && inner.cfg.max_pages.is_some() {
                        attempted -= 1;
                    }
                    stale |= !rep.added_nothing
                        && (rep.link_origins.is_empty()
                            || rep
                                .link_origins
                                .iter()
                                .any(|o| !busy.contains_key(o) && !ahead.has(o)));
                    summary.fetched += u64::from(rep.fetched);
                    summary.pages += u64::from(rep.page);
                    summary.duplicates += u64::from(rep.duplicate);
                    summary.skipped_by_robots += u64::from(rep.robots_skip);
                    summary.retries += u64::from(rep.retry);
                    summary.internal_errors += u64::from(rep.internal);
                }
                // Store failures stop the run (schema/disk problems); the
                // entry stays in_flight and is re-queued on the next run.
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
    }
    // What was claimed ahead and not started (the page budget ran out, an
    // error stopped the run) goes back to the queue, its attempt not
    // counted.
    let unstarted: Vec<i64> = ahead.take_all().iter().map(|e| e.id).collect();
    if let Err(e) = store
        .frontier_release(run_id, &unstarted, now_unix(), None)
        .await
    {
        first_error.get_or_insert(e.into());
    }
    // Every task has ended, so every outcome handed in is in a batch: let
    // the writer finish them before the run is closed.
    summary.lease_lost = inner.lease_lost.load(Ordering::Relaxed);
    drop(inner);
    let stats = writer_task.finish().await;
    summary.commits = stats.batches;
    summary.largest_commit = stats.largest;
    tracing::info!(
        entries = stats.entries,
        commits = stats.batches,
        largest = stats.largest,
        "group commit: {} entries in {} transactions",
        stats.entries,
        stats.batches
    );
    if let Some(e) = first_error {
        return Err(e);
    }
    store.crawl_run_finish(run_id, now_unix()).await?;
    summary.errors_by_kind = store.crawl_error_counts(run_id).await?;
    summary.per_origin = store.crawl_origin_counts().await?;
    summary.waiting = store.frontier_waiting().await?;
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// [`process`] under a boundary: a panic while handling one entry (a bug
/// that some server's bytes reached) is recorded as that entry's `failed`
/// outcome, error kind `internal`, and the crawl goes on.
async fn guarded(inner: &Inner, e: FrontierEntry, t: &Ticket) -> Result<Report, CrawlError> {
    match AssertUnwindSafe(process(inner, e.clone(), t))
        .catch_unwind()
        .await
    {
        Ok(r) => r,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic with a non-text payload".into());
            tracing::error!(url = %e.url, "internal error while handling a page: {msg}");
            let detail = format!("internal error while handling this URL: {msg}");
            let rec = FetchRecord {
                run_id: inner.run_id,
                frontier_id: e.id,
                attempt: e.attempts,
                requested_url: e.url.clone(),
                final_url: None,
                redirect_chain_json: "[]".into(),
                fetched_at: now_unix(),
                elapsed_ms: 0,
                status: None,
                user_agent: inner.conduct.user_agent().to_string(),
                response_headers_json: "[]".into(),
                content_type: None,
                body_sha256: None,
                body_bytes: None,
                truncated: false,
                declared_charset: None,
                detected_charset: None,
                error_kind: Some(ErrorKind::Internal.as_str().into()),
                error_detail: Some(detail.clone()),
            };
            let outcome = FrontierOutcome::Failed(format!("internal: {msg}"));
            inner
                .complete(
                    t,
                    Completion {
                        decisions: Vec::new(),
                        fetch: Some(rec),
                        page: None,
                        outcome,
                        frontier_id: e.id,
                        budget: LinkBudget::NONE,
                        consent: None,
                        now: now_unix(),
                    },
                )
                .await?;
            (inner.sink)(&Event::Fetched {
                url: e.url.clone(),
                status: None,
                error: Some(ErrorKind::Internal.as_str().into()),
                new_urls: 0,
            });
            Ok(Report {
                internal: true,
                ..Report::default()
            })
        }
    }
}

impl Inner {
    /// Commits one entry's outcome: through the run's group-commit writer
    /// (returning once its batch has committed), or on its own.
    async fn complete(&self, t: &Ticket, c: Completion) -> Result<Completed, CrawlError> {
        t.release();
        let frontier_id = c.frontier_id;
        let done = match &self.writer {
            Some(w) => w.complete(c).await?,
            None => {
                let mut c = c;
                let page = c.page.as_mut().map(|(p, l)| (&*p, l.as_mut_slice()));
                self.store
                    .crawl_complete(
                        &c.decisions,
                        c.fetch.as_ref(),
                        page,
                        &c.outcome,
                        c.frontier_id,
                        c.budget,
                        c.consent.as_ref(),
                        c.now,
                    )
                    .await?
            }
        };
        if done.lease_lost {
            self.lease_lost.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                frontier_id,
                "this worker's lease on the URL expired before its result was committed; another worker records it"
            );
        }
        Ok(done)
    }

    fn backoff(&self, attempts: i64) -> Duration {
        let exp = attempts.clamp(1, 10) as u32 - 1;
        Duration::from_millis(self.cfg.backoff_base_ms.saturating_mul(1 << exp))
            .min(Duration::from_secs(3600))
    }

    fn link_budget(&self) -> LinkBudget {
        LinkBudget {
            per_origin: i64::try_from(self.cfg.max_urls_per_origin).unwrap_or(i64::MAX),
            per_shape: i64::try_from(self.cfg.max_urls_per_shape).unwrap_or(i64::MAX),
            origin_reason: budget::REASON_ORIGIN_BUDGET,
            shape_reason: budget::REASON_SHAPE_BUDGET,
        }
    }

    fn limits(&self, html_only: bool, max_redirects: usize, cap: usize) -> Limits {
        Limits {
            max_redirects,
            max_body_bytes: cap,
            html_only,
        }
    }

    /// Keeps `origin` closed for `wait` (Retry-After, back-off): in the
    /// request path, and for its queued entries in the store (so that the
    /// run does not claim them only to wait, and a next run obeys it too).
    /// The entry's ticket learns the deferral, for the entries claimed
    /// ahead for `origin`.
    async fn hold(&self, origin: &str, wait: Duration, t: &Ticket) -> Result<(), CrawlError> {
        let wait = wait.min(conduct::MAX_HOLD);
        self.conduct.hold(origin, wait).await;
        let until = now_unix().saturating_add(i64::try_from(wait.as_secs()).unwrap_or(i64::MAX));
        self.store.frontier_defer_origin(origin, until).await?;
        t.defer(until);
        Ok(())
    }
}

/// Handles one claimed entry end to end.
async fn process(inner: &Inner, e: FrontierEntry, t: &Ticket) -> Result<Report, CrawlError> {
    let mut rep = Report::default();
    let cfg = &inner.cfg;
    let url = match Url::parse(&e.url) {
        Ok(u) => u,
        Err(err) => {
            let o = FrontierOutcome::Failed(format!("invalid_url: {err}"));
            inner
                .complete(
                    t,
                    Completion {
                        decisions: Vec::new(),
                        fetch: None,
                        page: None,
                        outcome: o,
                        frontier_id: e.id,
                        budget: LinkBudget::NONE,
                        consent: None,
                        now: now_unix(),
                    },
                )
                .await?;
            return Ok(rep);
        }
    };
    let robots = inner.conduct.robots_for(&e.origin).await?;
    let d = robots.access.check(&url);
    let reason = if d.allowed {
        robots.access.reason().map(str::to_string)
    } else {
        Some(
            robots
                .access
                .reason()
                .filter(|_| d.rule.is_none())
                .unwrap_or("robots.disallow")
                .to_string(),
        )
    };
    let decision = DecisionRecord {
        run_id: inner.run_id,
        frontier_id: e.id,
        url: e.url.clone(),
        robots_version_id: robots.version_id,
        allowed: d.allowed,
        matched_line: d.matched_line.map(|l| l as i64),
        rule: d.rule.clone(),
        reason: reason.clone(),
        decided_at: now_unix(),
    };
    if !d.allowed {
        let reason = reason.unwrap_or_default();
        let outcome =
            if robots.access.is_deferred() && d.rule.is_none() && e.attempts < cfg.max_attempts {
                rep.retry = true;
                let after = Duration::from_secs(
                    u64::try_from(robots.expires_at.saturating_sub(now_unix())).unwrap_or(0),
                );
                // Say why: the robots.txt fetch's status or DNS/connection error.
                let why = robots.refusal(&url).unwrap_or_default();
                (inner.sink)(&Event::Retry {
                    url: e.url.clone(),
                    reason: format!("{reason}: {why}"),
                    after,
                });
                // The whole origin waits, not just this entry.
                inner
                    .store
                    .frontier_defer_origin(&e.origin, robots.expires_at)
                    .await?;
                t.defer(robots.expires_at);
                FrontierOutcome::Retry {
                    at: robots.expires_at,
                    error: format!("{reason}: {why}"),
                }
            } else {
                rep.robots_skip = true;
                (inner.sink)(&Event::Skipped {
                    url: e.url.clone(),
                    reason: reason.clone(),
                });
                FrontierOutcome::Skipped(reason)
            };
        // Never fetched: the consent hook records `robots.disallow` /
        // `robots.unreachable` verdicts for every purpose (signals.md §8.1 step 1),
        // committed with the frontier outcome.
        let consent = if matches!(outcome, FrontierOutcome::Skipped(_)) {
            let page = PageSeen {
                url: &url,
                page_id: None,
                fetch: None,
                headers: &[],
                html: None,
            };
            Some(
                inner
                    .signals
                    .assess(&page, &robots.seen(), now_unix())
                    .await?,
            )
        } else {
            None
        };
        inner
            .complete(
                t,
                Completion {
                    decisions: vec![decision],
                    fetch: None,
                    page: None,
                    outcome,
                    frontier_id: e.id,
                    budget: LinkBudget::NONE,
                    consent,
                    now: now_unix(),
                },
            )
            .await?;
        return Ok(rep);
    }

    let f = inner
        .conduct
        .get(
            &url,
            Purpose::Page,
            inner.limits(true, cfg.max_redirects, cfg.max_body_bytes),
        )
        .await;
    let mut decisions = vec![decision];
    if let Some(b) = &f.blocked {
        // A redirect hop whose origin's robots.txt keeps us out: the hop was
        // never requested. Its decision is recorded next to the entry's.
        rep.robots_skip = true;
        rep.fetched = !f.chain.is_empty();
        decisions.push(DecisionRecord {
            run_id: inner.run_id,
            frontier_id: e.id,
            url: b.url.clone(),
            robots_version_id: b.robots_version_id,
            allowed: false,
            matched_line: b.matched_line.and_then(|l| i64::try_from(l).ok()),
            rule: b.rule.clone(),
            reason: Some(REASON_REDIRECT_DISALLOWED.into()),
            decided_at: now_unix(),
        });
    } else {
        rep.fetched = true;
    }
    let mut rec = fetch_record(inner, &e, &f);
    let status = f.status.unwrap_or(0);
    let retry_after = f.retry_after();
    let mut page = None;
    let mut html: Option<String> = None;
    // The HTML's consent rows, read from the same parse as its content.
    let mut html_rows: Option<Vec<crate::policy::Evidence>> = None;
    let mut links: Vec<LinkRecord> = Vec::new();
    let outcome = match &f.error {
        Some((ErrorKind::RobotsDisallowed, msg)) => {
            let reason = if f.chain.is_empty() {
                SkipReason::RobotsDisallow.as_str()
            } else {
                REASON_REDIRECT_DISALLOWED
            };
            (inner.sink)(&Event::Skipped {
                url: e.url.clone(),
                reason: format!("{reason}: {msg}"),
            });
            FrontierOutcome::Skipped(reason.into())
        }
        Some((kind, msg)) => {
            let retryable = matches!(
                kind,
                ErrorKind::Connect | ErrorKind::Dns | ErrorKind::BodyRead
            );
            let err = format!("{}: {msg}", kind.as_str());
            if retryable && e.attempts < cfg.max_attempts {
                retry(inner, &e, err, None, &mut rep)
            } else {
                FrontierOutcome::Failed(err)
            }
        }
        None if status == 429 || status == 503 => {
            rec.error_kind = Some(ErrorKind::RateLimited.as_str().into());
            rec.error_detail = Some(format!("status {status}"));
            let err = format!("rate_limited: status {status}");
            let wait = retry_after
                .unwrap_or_else(|| inner.backoff(e.attempts))
                .min(conduct::MAX_HOLD);
            inner.hold(&e.origin, wait, t).await?;
            if e.attempts < cfg.max_attempts {
                retry(inner, &e, err, Some(wait), &mut rep)
            } else {
                FrontierOutcome::Failed(err)
            }
        }
        None if !(200..300).contains(&status) => {
            rec.error_kind = Some(ErrorKind::HttpStatus.as_str().into());
            rec.error_detail = Some(format!("status {status}"));
            FrontierOutcome::Failed(format!("http_status: {status}"))
        }
        None => {
            // Fault injection for the per-page boundary's test: debug builds
            // only, a path no site uses by accident.
            #[cfg(debug_assertions)]
            if f.final_url.path().contains("/__byline_fault__/panic") {
                panic!("fault injection at {}", f.final_url);
            }
            let dec = charset::decode(&f.body, f.content_type.as_deref());
            rec.declared_charset = dec.declared.clone();
            rec.detected_charset = Some(dec.used.to_string());
            // One parse for the page's content and its consent signals
            // (the document is not Send: it is gone before the next await).
            let (x, rows) = {
                let doc = scraper::Html::parse_document(&dec.text);
                (
                    extract::extract_doc(&doc, &f.final_url),
                    crate::policy::page::html_rows(url.as_str(), &doc),
                )
            };
            html_rows = Some(rows);
            if x.links.len() > cfg.max_links_per_page {
                tracing::info!(
                    url = %e.url,
                    "{} links, the first {} recorded",
                    x.links.len(),
                    cfg.max_links_per_page
                );
            }
            // The body's hash, computed once for the fetch row, the page
            // and its raw capture.
            let body_sha256 = rec
                .body_sha256
                .clone()
                .unwrap_or_else(|| sha256_hex(&f.body));
            let (p, l) = page_record(inner, &e, x, &f, body_sha256);
            links.extend(l);
            page = Some(p);
            html = Some(dec.text);
            FrontierOutcome::Done
        }
    };
    // The consent hook (signals.md §8.1): evidence from robots.txt, the origin's
    // consent files, the headers and the HTML, decided before the commit and
    // stored in the same transaction as the page.
    let consent = match &html {
        Some(html) => {
            let seen = PageSeen {
                url: &url,
                page_id: None,
                fetch: Some(FetchRef {
                    fetch_id: None,
                    url: f.final_url.to_string(),
                    status: f.status,
                    fetched_at: f.fetched_at,
                    body_sha256: rec.body_sha256.clone(),
                }),
                headers: &f.headers,
                html: Some(html),
            };
            let assessed = match &html_rows {
                Some(rows) => {
                    inner
                        .signals
                        .assess_parsed(&seen, rows, &robots.seen(), now_unix())
                        .await?
                }
                None => {
                    inner
                        .signals
                        .assess(&seen, &robots.seen(), now_unix())
                        .await?
                }
            };
            Some(assessed)
        }
        None => None,
    };
    drop(html_rows);
    let error_kind = rec.error_kind.clone();
    let status = f.status;
    // The response and its decoded text are not needed any more: free them
    // before waiting for the batch to commit.
    drop(html);
    drop(f);
    for l in &links {
        if let Some(c) = &l.candidate
            && l.skip_reason.is_none()
            && !rep.link_origins.contains(&c.origin)
        {
            rep.link_origins.push(c.origin.clone());
        }
    }
    let done = inner
        .complete(
            t,
            Completion {
                decisions,
                fetch: Some(rec),
                page: page.map(|p| (p, links)),
                outcome,
                frontier_id: e.id,
                budget: inner.link_budget(),
                consent,
                now: now_unix(),
            },
        )
        .await?;
    rep.page = done.page_id.is_some();
    rep.duplicate = done.duplicate_of.is_some();
    rep.added_nothing = done.new_urls == 0;
    (inner.sink)(&Event::Fetched {
        url: e.url.clone(),
        status,
        error: error_kind,
        new_urls: done.new_urls,
    });
    Ok(rep)
}

fn retry(
    inner: &Inner,
    e: &FrontierEntry,
    err: String,
    wait: Option<Duration>,
    rep: &mut Report,
) -> FrontierOutcome {
    let wait = wait.unwrap_or_else(|| inner.backoff(e.attempts));
    rep.retry = true;
    (inner.sink)(&Event::Retry {
        url: e.url.clone(),
        reason: err.clone(),
        after: wait,
    });
    FrontierOutcome::Retry {
        at: now_unix()
            .saturating_add(i64::try_from(wait.as_millis().div_ceil(1000)).unwrap_or(i64::MAX)),
        error: err,
    }
}

fn fetch_record(inner: &Inner, e: &FrontierEntry, f: &Fetched) -> FetchRecord {
    FetchRecord {
        run_id: inner.run_id,
        frontier_id: e.id,
        attempt: e.attempts,
        requested_url: f.requested_url.to_string(),
        final_url: Some(f.final_url.to_string()),
        redirect_chain_json: serde_json::to_string(&f.chain).expect("hops serialise"),
        fetched_at: f.fetched_at,
        elapsed_ms: f.elapsed.as_millis() as i64,
        status: f.status,
        user_agent: inner.conduct.user_agent().to_string(),
        response_headers_json: serde_json::to_string(&f.headers).expect("headers serialise"),
        content_type: f.content_type.clone(),
        body_sha256: f.status.map(|_| sha256_hex(&f.body)),
        body_bytes: f.status.map(|_| f.body.len() as i64),
        truncated: f.truncated,
        declared_charset: None,
        detected_charset: None,
        error_kind: f.error.as_ref().map(|(k, _)| k.as_str().to_string()),
        error_detail: f.error.as_ref().map(|(_, m)| m.clone()),
    }
}

/// Decides whether one outgoing link joins the frontier, and why not.
/// The page row and the links (at most `max_links_per_page`) of an
/// extracted HTML response: one recipe for a crawl and a refresh.
fn page_record(
    inner: &Inner,
    e: &FrontierEntry,
    x: extract::Extracted,
    f: &Fetched,
    content_sha256: String,
) -> (PageRecord, Vec<LinkRecord>) {
    let cfg = &inner.cfg;
    let raw = if cfg.keep_raw {
        // Compressing into memory does not fail in practice; if it ever
        // does, the page is kept without its body.
        RawCapture::with_sha256(
            &f.body,
            content_sha256.clone(),
            f.http_version.unwrap_or("HTTP/1.1"),
        )
        .map_err(|err| tracing::warn!(url = %e.url, "raw body not kept: {err}"))
        .ok()
    } else {
        None
    };
    let links = x
        .links
        .into_iter()
        .take(cfg.max_links_per_page)
        .map(|l| link_record(inner, e, l))
        .collect();
    let page = PageRecord {
        url: f.final_url.to_string(),
        title: x.title,
        author: x.author,
        site_name: x.site_name,
        published_at: x.published_at,
        modified_at: x.modified_at,
        canonical_url: x.canonical_url,
        language: x.language,
        meta_robots: x.meta_robots,
        text: x.text,
        text_sha256: x.text_sha256,
        nosnippet_spans: x.nosnippet_spans,
        extractor_version: EXTRACTOR_VERSION.into(),
        content_sha256,
        raw,
    };
    (page, links)
}

/// Takes the link by value: its text and rel move into the record.
fn link_record(inner: &Inner, e: &FrontierEntry, l: extract::Link) -> LinkRecord {
    let depth = e.depth as u32 + 1;
    let mut rec = LinkRecord {
        target_url: l.url.to_string(),
        anchor_text: l.text,
        rel: l.rel,
        candidate: None,
        skip_reason: None,
    };
    let skip = if l.nofollow {
        Some(SkipReason::Nofollow)
    } else {
        match urls::normalise(&l.url) {
            None => Some(SkipReason::Scheme),
            Some(n) if !inner.scope.contains(&n) => Some(SkipReason::Scope),
            Some(n) => match urls::trap(&n, depth, inner.cfg.max_depth)
                .or_else(|| budget::query_trap(&n))
            {
                Some(t) => Some(t),
                None => {
                    rec.candidate = Some(NewEntry {
                        // The same serialisation as `target_url`.
                        url: rec.target_url.clone(),
                        url_norm: n.to_string(),
                        origin: urls::origin(&n),
                        depth: depth as i64,
                        discovered_from: Some(e.id),
                        shape: Some(budget::shape(&n)),
                    });
                    None
                }
            },
        }
    };
    rec.skip_reason = skip.map(|r| r.as_str().to_string());
    rec
}

/// The crawler's machinery without the frontier loop, for `audit recheck`:
/// the same guarded client, User-Agent, timeouts, per-origin politeness and
/// robots.txt handling as a crawl, recorded under a run of its own.
pub struct Session {
    inner: Inner,
}

/// A robots.txt version fetched by a [`Session`], as it governs the origin.
#[derive(Debug, Clone)]
pub struct OriginRobots(RobotsState);

impl OriginRobots {
    /// Whether our agent may fetch `url` under this version.
    pub fn allows(&self, url: &Url) -> bool {
        self.0.access.check(url).allowed
    }

    /// The `robots_versions` row stored for this fetch.
    pub fn version_id(&self) -> i64 {
        self.0.version_id
    }

    /// The consent hook's view of it.
    pub fn seen(&self) -> RobotsSeen<'_> {
        self.0.seen()
    }
}

/// Bytes of a page body read when a server refuses HEAD and the headers are
/// fetched with GET instead (the body is not used).
pub const HEADERS_GET_MAX_BYTES: usize = 64 * 1024;

impl Session {
    /// Starts a run (recorded in `crawl_runs`) over the stored origins
    /// `cfg.seeds`. They come from the corpus, not from the user: the
    /// address guard lets through only those that are IP literals
    /// ([`Guard::for_ip_literals`]); a stored name must resolve to public
    /// addresses now, whatever it resolved to when it was crawled.
    pub async fn start(store: Store, cfg: CrawlConfig) -> Result<Session, CrawlError> {
        let sink: Sink = Arc::new(|_| {});
        let guard = Guard::for_ip_literals(&cfg.seeds);
        let Prepared {
            cfg,
            seeds,
            conduct,
            signals,
            run_id,
        } = prepare(&store, cfg, sink.clone(), Some(guard)).await?;
        Ok(Session {
            inner: Inner {
                store,
                signals,
                conduct,
                scope: ScopeRule {
                    scope: cfg.scope,
                    seeds,
                },
                cfg,
                run_id,
                sink,
                writer: None,
                lease_lost: AtomicU64::new(0),
            },
        })
    }

    /// The run id.
    pub fn run_id(&self) -> i64 {
        self.inner.run_id
    }

    /// The run's request path (for the consent hook's origin files).
    pub fn conduct(&self) -> Arc<Conduct> {
        self.inner.conduct.clone()
    }

    /// Fetches `origin`'s robots.txt now, whatever the cache says, and
    /// stores the version (as a crawl does when its copy has expired).
    pub async fn refetch_robots(&self, origin: &str) -> Result<OriginRobots, CrawlError> {
        Ok(OriginRobots(
            self.inner.conduct.refetch_robots(origin).await?,
        ))
    }

    /// The response headers of `url`: a HEAD, or a GET (at most
    /// [`HEADERS_GET_MAX_BYTES`] read, body unused) when the server answers
    /// HEAD with 405 or 501. Goes through the run's request path like a
    /// crawl (robots.txt and politeness on every hop).
    pub async fn fetch_headers(&self, url: &Url) -> Fetched {
        let cfg = &self.inner.cfg;
        let c = &self.inner.conduct;
        let f = c
            .head(
                url,
                Purpose::Page,
                self.inner.limits(false, cfg.max_redirects, 0),
            )
            .await;
        if f.error.is_none() && matches!(f.status, Some(405 | 501)) {
            return c
                .get(
                    url,
                    Purpose::Page,
                    self.inner
                        .limits(false, cfg.max_redirects, HEADERS_GET_MAX_BYTES),
                )
                .await;
        }
        f
    }

    /// Marks the run finished.
    pub async fn finish(self) -> Result<(), CrawlError> {
        self.inner
            .store
            .crawl_run_finish(self.inner.run_id, now_unix())
            .await?;
        Ok(())
    }
}

/// What a conditional GET of a stored page found (`crawl --refresh`,
/// `audit recheck --bodies`).
#[derive(Debug)]
pub struct Revisited {
    pub fetched: Fetched,
    /// The fetch row to store (a 304 has no body hash or size).
    pub record: FetchRecord,
    /// A 2xx body that differs from the stored one: its content and links.
    pub changed: Option<(PageRecord, Vec<LinkRecord>)>,
    /// The decoded HTML of a 2xx body (changed or not).
    pub html: Option<String>,
}

impl Session {
    /// GETs a stored page again through the run's request path (guard,
    /// robots.txt and politeness on every hop), conditionally: the stored
    /// `ETag` / `Last-Modified` of its last good fetch go out as
    /// `If-None-Match` / `If-Modified-Since`. A 304 is not parsed; a 2xx
    /// body whose sha256 differs from the stored one is extracted as a
    /// crawl extracts it, with its links decided like a crawl's.
    pub async fn revisit(&self, url: &Url, page: &crate::store::refresh::StoredPage) -> Revisited {
        let inner = &self.inner;
        let cfg = &inner.cfg;
        let validators = super::fetch::Validators::from_headers(&page.headers);
        let f = inner
            .conduct
            .get_conditional(
                url,
                Purpose::Page,
                inner.limits(true, cfg.max_redirects, cfg.max_body_bytes),
                &validators,
            )
            .await;
        let entry = FrontierEntry {
            id: page.frontier_id,
            url: url.to_string(),
            origin: urls::origin(url),
            depth: page.depth,
            attempts: 0,
        };
        let mut record = fetch_record(inner, &entry, &f);
        let status = f.status.unwrap_or(0);
        let mut out = Revisited {
            record: FetchRecord::default(),
            changed: None,
            html: None,
            fetched: Fetched::new(url),
        };
        if status == 304 {
            record.body_sha256 = None;
            record.body_bytes = None;
        } else if f.error.is_none() && (200..300).contains(&status) {
            let dec = charset::decode(&f.body, f.content_type.as_deref());
            record.declared_charset = dec.declared.clone();
            record.detected_charset = Some(dec.used.to_string());
            let content_sha256 = record
                .body_sha256
                .clone()
                .unwrap_or_else(|| sha256_hex(&f.body));
            if content_sha256 != page.content_sha256 {
                let x = extract::extract(&dec.text, &f.final_url);
                let (p, links) = page_record(inner, &entry, x, &f, content_sha256);
                out.changed = Some((p, links));
            }
            out.html = Some(dec.text);
        }
        out.record = record;
        out.fetched = f;
        out
    }

    /// The link budget of the run (for a changed page's new links).
    pub fn link_budget(&self) -> LinkBudget {
        self.inner.link_budget()
    }
}
