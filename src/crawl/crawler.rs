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

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::task::JoinSet;
use url::Url;

use super::charset;
use super::error::CrawlError;
use super::extract::{self, EXTRACTOR_VERSION};
use super::fetch::{ClientConfig, ErrorKind, Fetched, Fetcher, Limits};
use super::guard::Guard;
use super::robots::{self, Access, FetchOutcome, PRODUCT_TOKEN, RobotsRules};
use super::signals::{ConsentPolicy, PageSeen, RobotsSeen, Signals};
use super::urls::{self, Scope, ScopeRule};
use crate::policy::evidence::FetchRef;
use crate::store::Store;
use crate::store::crawl::{
    DecisionRecord, FetchRecord, FrontierOutcome, LinkRecord, PageRecord, RobotsVersion, RunRecord,
    StoredRobots,
};
use crate::store::frontier::{FrontierEntry, NewEntry};

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
    /// Requests in flight across all origins (one per origin at a time).
    pub concurrency: usize,
    /// The contact URL in our User-Agent.
    pub contact_url: String,
    pub connect_timeout_ms: u64,
    pub read_timeout_ms: u64,
    pub total_timeout_ms: u64,
    pub max_redirects: usize,
    pub max_body_bytes: usize,
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
    /// sha256 of the policy file, recorded with the run.
    pub policy_sha256: Option<String>,
    /// Bytes of robots.txt read and parsed: the policy's `robots.max_bytes`
    /// (set from the policy when the run starts; at least 512,000).
    pub robots_max_bytes: usize,
    /// The consent policy verdicts are decided under (default: the bundled
    /// `policies/eu-opt-out.toml`).
    #[serde(skip)]
    pub policy: Option<ConsentPolicy>,
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
            concurrency: 8,
            contact_url: "https://github.com/byline-crawler/byline#bot".into(),
            connect_timeout_ms: 10_000,
            read_timeout_ms: 15_000,
            total_timeout_ms: 30_000,
            max_redirects: 10,
            max_body_bytes: 5 * 1024 * 1024,
            min_delay_ms: 250,
            max_crawl_delay_ms: 60_000,
            max_attempts: 4,
            backoff_base_ms: 2_000,
            robots_retry_ms: 300_000,
            policy_sha256: None,
            robots_max_bytes: robots::PARSE_LIMIT,
            policy: None,
        }
    }

    /// `BylineBot/<version> (+<contact URL>)`: our product token, never another agent's.
    pub fn user_agent(&self) -> String {
        format!(
            "{PRODUCT_TOKEN}/{} (+{})",
            env!("CARGO_PKG_VERSION"),
            self.contact_url
        )
    }
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
    pub errors_by_kind: Vec<(String, i64)>,
    /// (origin, state, count) over the whole frontier.
    pub per_origin: Vec<(String, String, i64)>,
    pub elapsed: Duration,
}

fn urls_as_strings<S: serde::Serializer>(v: &[Url], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(Url::as_str))
}

type Sink = Arc<dyn Fn(&Event) + Send + Sync>;

/// robots.txt in force for one origin.
#[derive(Debug, Clone)]
struct RobotsState {
    access: Access,
    version_id: i64,
    expires_at: i64,
    delay: Duration,
    /// The body in force and its fetch, for the consent signals in it.
    consent: RobotsConsent,
}

/// What the consent hook needs from robots.txt besides the access decision.
#[derive(Debug, Clone, Default)]
struct RobotsConsent {
    body: Option<Arc<str>>,
    status: Option<u16>,
    fetch: Option<FetchRef>,
    cache_age_secs: Option<i64>,
}

impl RobotsConsent {
    fn of(origin: &str, s: &StoredRobots, now: i64, cached: bool) -> RobotsConsent {
        RobotsConsent {
            body: s
                .body
                .as_ref()
                .map(|b| Arc::from(String::from_utf8_lossy(b).as_ref())),
            status: s.status,
            fetch: Some(FetchRef {
                fetch_id: None,
                url: format!("{origin}/robots.txt"),
                status: s.status,
                fetched_at: s.fetched_at,
                body_sha256: s.body_sha256.clone(),
            }),
            cache_age_secs: cached.then(|| now - s.fetched_at),
        }
    }
}

struct Inner {
    store: Store,
    /// The consent hook (spec §8.1): evidence and verdicts per page.
    signals: Signals,
    fetcher: Fetcher,
    cfg: CrawlConfig,
    scope: ScopeRule,
    run_id: i64,
    robots: Mutex<HashMap<String, RobotsState>>,
    /// Per origin: the earliest time the next request may start.
    next_slot: Mutex<HashMap<String, Instant>>,
    sink: Sink,
}

/// What one entry's task reports back to the scheduler.
#[derive(Debug, Default)]
struct Report {
    fetched: bool,
    page: bool,
    duplicate: bool,
    robots_skip: bool,
    retry: bool,
}

fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// What [`prepare`] sets up for a run: the config with the policy's
/// numbers filled in, the normalised seeds, the guarded client, the consent
/// hook and the run record.
struct Prepared {
    cfg: CrawlConfig,
    seeds: Vec<Url>,
    fetcher: Fetcher,
    signals: Signals,
    run_id: i64,
}

/// Checks the seeds, builds the SSRF-guarded client for them, records the
/// policy and starts a run record.
async fn prepare(store: &Store, cfg: CrawlConfig) -> Result<Prepared, CrawlError> {
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
    let guard = Guard::for_seeds(&seeds);
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
    let signals = Signals::new(
        store.clone(),
        fetcher.client().clone(),
        consent.policy,
        &consent.bytes,
        PRODUCT_TOKEN,
        now_unix(),
    )
    .await?;
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
    Ok(Prepared {
        cfg,
        seeds,
        fetcher,
        signals,
        run_id,
    })
}

/// Runs a crawl to completion (or to `max_pages`) into `store`.
pub async fn run(
    store: Store,
    cfg: CrawlConfig,
    sink: impl Fn(&Event) + Send + Sync + 'static,
) -> Result<Summary, CrawlError> {
    let started = Instant::now();
    let Prepared {
        cfg,
        seeds,
        fetcher,
        signals,
        run_id,
    } = prepare(&store, cfg).await?;
    let requeued = store.frontier_requeue_in_flight().await?;
    let now = now_unix();
    let entries: Vec<NewEntry> = seeds
        .iter()
        .map(|u| NewEntry {
            url: u.to_string(),
            url_norm: u.to_string(),
            origin: urls::origin(u),
            depth: 0,
            discovered_from: None,
        })
        .collect();
    store.frontier_add_seeds(run_id, &entries, now).await?;

    let inner = Arc::new(Inner {
        store: store.clone(),
        signals,
        fetcher,
        scope: ScopeRule {
            scope: cfg.scope,
            seeds,
        },
        cfg,
        run_id,
        robots: Mutex::new(HashMap::new()),
        next_slot: Mutex::new(HashMap::new()),
        sink: Arc::new(sink),
    });
    let mut summary = Summary {
        run_id,
        requeued_on_start: requeued,
        ..Summary::default()
    };
    let mut busy: HashSet<String> = HashSet::new();
    let mut tasks: JoinSet<(String, Result<Report, CrawlError>)> = JoinSet::new();
    let mut attempted: u64 = 0;
    let mut first_error: Option<CrawlError> = None;
    loop {
        let budget = inner.cfg.max_pages.is_none_or(|m| attempted < m);
        if budget && first_error.is_none() && tasks.len() < inner.cfg.concurrency {
            let ready = store.frontier_ready_per_origin(now_unix(), 512).await?;
            for e in ready {
                if tasks.len() >= inner.cfg.concurrency
                    || inner.cfg.max_pages.is_some_and(|m| attempted >= m)
                {
                    break;
                }
                if busy.contains(&e.origin)
                    || !store.frontier_claim(e.id, run_id, now_unix()).await?
                {
                    continue;
                }
                busy.insert(e.origin.clone());
                attempted += 1;
                // The claim counted this attempt in the store; count it here
                // too, so `attempts` is 1 on the first try.
                let mut e = e;
                e.attempts += 1;
                let inner = inner.clone();
                tasks.spawn(async move {
                    let origin = e.origin.clone();
                    (origin, process(&inner, e).await)
                });
            }
        }
        if tasks.is_empty() {
            if !budget || first_error.is_some() {
                break;
            }
            match store.frontier_next_due().await? {
                None => break,
                Some(at) => {
                    let wait = (at - now_unix()).clamp(0, 1) as u64;
                    tokio::time::sleep(Duration::from_millis(wait * 1000 + 20)).await;
                    continue;
                }
            }
        }
        tokio::select! {
            Some(joined) = tasks.join_next() => {
                let (origin, r) = joined.map_err(|e| CrawlError::Task(e.to_string()))?;
                busy.remove(&origin);
                match r {
                    Ok(rep) => {
                        if !rep.fetched && inner.cfg.max_pages.is_some() {
                            attempted -= 1;
                        }
                        summary.fetched += u64::from(rep.fetched);
                        summary.pages += u64::from(rep.page);
                        summary.duplicates += u64::from(rep.duplicate);
                        summary.skipped_by_robots += u64::from(rep.robots_skip);
                        summary.retries += u64::from(rep.retry);
                    }
                    // Store failures stop the run (schema/disk problems); the
                    // entry stays in_flight and is re-queued on the next run.
                    Err(e) => { first_error.get_or_insert(e); }
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    store.crawl_run_finish(run_id, now_unix()).await?;
    summary.errors_by_kind = store.crawl_error_counts(run_id).await?;
    summary.per_origin = store.crawl_origin_counts().await?;
    summary.elapsed = started.elapsed();
    Ok(summary)
}

impl Inner {
    /// Waits for this origin's next request slot and reserves the one after.
    /// [`Inner::turn_done`] pushes it further once the response is read, so
    /// the gap holds from the end of one request to the start of the next.
    async fn wait_turn(&self, origin: &str, delay: Duration) {
        let delay = delay.max(Duration::from_millis(self.cfg.min_delay_ms));
        let start = {
            let mut slots = self.next_slot.lock().expect("slot lock");
            let now = Instant::now();
            let at = slots.get(origin).copied().unwrap_or(now).max(now);
            slots.insert(origin.to_string(), at + delay);
            at
        };
        tokio::time::sleep_until(start.into()).await;
    }

    /// A request to `origin` finished: the next may start `delay` (at least
    /// the configured minimum) from now.
    fn turn_done(&self, origin: &str, delay: Duration) {
        self.hold_origin(
            origin,
            delay.max(Duration::from_millis(self.cfg.min_delay_ms)),
        );
    }

    /// Pushes this origin's next slot to at least `after` from now (back-off).
    fn hold_origin(&self, origin: &str, after: Duration) {
        let mut slots = self.next_slot.lock().expect("slot lock");
        let at = Instant::now() + after;
        let e = slots.entry(origin.to_string()).or_insert(at);
        *e = (*e).max(at);
    }

    fn backoff(&self, attempts: i64) -> Duration {
        let exp = attempts.clamp(1, 10) as u32 - 1;
        Duration::from_millis(self.cfg.backoff_base_ms.saturating_mul(1 << exp))
            .min(Duration::from_secs(3600))
    }

    fn limits(&self, html_only: bool, max_redirects: usize, cap: usize) -> Limits {
        Limits {
            max_redirects,
            max_body_bytes: cap,
            html_only,
        }
    }

    /// The robots.txt in force for `origin`: from memory, from the store
    /// (a copy a previous run fetched and that has not expired), or fetched.
    async fn robots_for(&self, origin: &str) -> Result<RobotsState, CrawlError> {
        let now = now_unix();
        if let Some(r) = self.robots.lock().expect("robots lock").get(origin)
            && r.expires_at > now
        {
            return Ok(r.clone());
        }
        if let Some(s) = self.store.robots_latest(origin).await?
            && s.expires_at > now
            && matches!(s.outcome.as_str(), "rules" | "allow_all")
        {
            let access = match (&s.outcome[..], &s.body) {
                ("rules", Some(b)) => Access::Rules(self.parse_robots(b, s.truncated)),
                _ => Access::AllowAll {
                    reason: allow_reason(s.reason.as_deref()),
                },
            };
            let consent = RobotsConsent::of(origin, &s, now, false);
            let st = self.robots_state(access, s.id, s.expires_at, consent);
            self.robots
                .lock()
                .expect("robots lock")
                .insert(origin.to_string(), st.clone());
            return Ok(st);
        }
        let st = self.fetch_robots(origin).await?;
        self.robots
            .lock()
            .expect("robots lock")
            .insert(origin.to_string(), st.clone());
        Ok(st)
    }

    /// Parses a stored or fetched robots.txt body under the policy's limit.
    fn parse_robots(&self, body: &[u8], truncated: bool) -> RobotsRules {
        RobotsRules::parse_limited(body, PRODUCT_TOKEN, truncated, self.cfg.robots_max_bytes)
    }

    fn robots_state(
        &self,
        access: Access,
        version_id: i64,
        expires_at: i64,
        consent: RobotsConsent,
    ) -> RobotsState {
        let delay = access
            .rules()
            .and_then(RobotsRules::crawl_delay)
            .filter(|d| d.is_finite() && *d > 0.0)
            .map(|d| {
                Duration::from_secs_f64(d).min(Duration::from_millis(self.cfg.max_crawl_delay_ms))
            })
            .unwrap_or_default();
        RobotsState {
            access,
            version_id,
            expires_at,
            delay,
            consent,
        }
    }

    /// Fetches `/robots.txt` (RFC 9309 §2.3): our UA, at most 5 redirects to
    /// any host (rules apply to `origin`), at most `robots_max_bytes` read;
    /// stores the version whatever happened.
    async fn fetch_robots(&self, origin: &str) -> Result<RobotsState, CrawlError> {
        let url = Url::parse(&format!("{origin}/robots.txt")).map_err(|e| CrawlError::BadSeed {
            url: origin.into(),
            reason: e.to_string(),
        })?;
        self.wait_turn(origin, Duration::ZERO).await;
        let f = self
            .fetcher
            .get(
                &url,
                self.limits(false, robots::MAX_REDIRECTS, self.cfg.robots_max_bytes),
            )
            .await;
        self.turn_done(origin, Duration::ZERO);
        let outcome = match &f.error {
            Some((ErrorKind::RedirectLimit | ErrorKind::RedirectLoop, _)) => {
                FetchOutcome::RedirectLimit {
                    hops: f.chain.len(),
                }
            }
            Some((k, m)) => FetchOutcome::NetworkError {
                reason: format!("{}: {m}", k.as_str()),
            },
            None => FetchOutcome::from_response(
                f.status.unwrap_or(0),
                f.body.clone(),
                f.content_type.clone(),
                f.truncated,
                f.retry_after(),
            ),
        };
        let last_good = self.store.robots_last_good(origin).await?;
        let last_rules = last_good
            .as_ref()
            .and_then(|g| g.body.as_ref().map(|b| self.parse_robots(b, g.truncated)));
        let is_success = matches!(outcome, FetchOutcome::Success { .. });
        let access = robots::access_limited(
            outcome,
            last_rules,
            PRODUCT_TOKEN,
            self.cfg.robots_max_bytes,
        );
        let now = now_unix();
        let (name, expires_at) = match &access {
            Access::Rules(_) | Access::AllowAll { .. } => {
                let ttl = f
                    .max_age()
                    .map_or(robots::CACHE_TTL, |m| m.min(robots::CACHE_TTL));
                (
                    if is_success { "rules" } else { "allow_all" },
                    now + ttl.as_secs() as i64,
                )
            }
            Access::Cached { .. } | Access::DisallowAll { .. } => {
                let retry = access
                    .retry_after()
                    .unwrap_or(Duration::from_millis(self.cfg.robots_retry_ms));
                if let Some(ra) = access.retry_after() {
                    self.hold_origin(origin, ra);
                }
                (
                    if matches!(access, Access::Cached { .. }) {
                        "cached"
                    } else {
                        "disallow_all"
                    },
                    now + retry.as_secs() as i64,
                )
            }
        };
        let warnings: Vec<String> = access
            .rules()
            .filter(|_| is_success)
            .map(|r| r.warnings().to_vec())
            .unwrap_or_default();
        let v = RobotsVersion {
            run_id: self.run_id,
            origin: origin.into(),
            url: url.to_string(),
            final_url: Some(f.final_url.to_string()),
            redirect_chain_json: serde_json::to_string(&f.chain).expect("hops serialise"),
            fetched_at: f.fetched_at,
            status: f.status,
            error: f
                .error
                .as_ref()
                .map(|(k, m)| format!("{}: {m}", k.as_str())),
            outcome: name.into(),
            reason: access.reason().map(str::to_string),
            body: (f.status.is_some() && f.error.is_none()).then(|| f.body.clone()),
            body_sha256: (f.error.is_none()).then(|| sha256_hex(&f.body)),
            truncated: f.truncated,
            warnings_json: serde_json::to_string(&warnings).expect("strings serialise"),
            crawl_delay_secs: access.rules().and_then(RobotsRules::crawl_delay),
            expires_at,
            cached_from: matches!(access, Access::Cached { .. })
                .then(|| last_good.as_ref().map(|g| g.id))
                .flatten(),
        };
        let id = self.store.robots_insert(&v).await?;
        (self.sink)(&Event::Robots {
            origin: origin.into(),
            outcome: name.into(),
            status: f.status,
        });
        let consent = match (&access, &last_good) {
            (Access::Cached { .. }, Some(g)) => RobotsConsent {
                status: f.status,
                ..RobotsConsent::of(origin, g, now, true)
            },
            (Access::Rules(_), _) => RobotsConsent {
                body: Some(Arc::from(String::from_utf8_lossy(&f.body).as_ref())),
                status: f.status,
                fetch: Some(FetchRef {
                    fetch_id: None,
                    url: url.to_string(),
                    status: f.status,
                    fetched_at: f.fetched_at,
                    body_sha256: Some(sha256_hex(&f.body)),
                }),
                cache_age_secs: None,
            },
            _ => RobotsConsent {
                status: f.status,
                ..RobotsConsent::default()
            },
        };
        Ok(self.robots_state(access, id, expires_at, consent))
    }
}

fn allow_reason(r: Option<&str>) -> &'static str {
    match r {
        Some(robots::REASON_REDIRECT_LIMIT) => robots::REASON_REDIRECT_LIMIT,
        _ => robots::REASON_UNAVAILABLE,
    }
}

/// Handles one claimed entry end to end.
async fn process(inner: &Inner, e: FrontierEntry) -> Result<Report, CrawlError> {
    let mut rep = Report::default();
    let cfg = &inner.cfg;
    let url = match Url::parse(&e.url) {
        Ok(u) => u,
        Err(err) => {
            let o = FrontierOutcome::Failed(format!("invalid_url: {err}"));
            inner
                .store
                .crawl_complete(None, None, None, &o, e.id, 0, None, now_unix())
                .await?;
            return Ok(rep);
        }
    };
    let robots = inner.robots_for(&e.origin).await?;
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
                let after = Duration::from_secs((robots.expires_at - now_unix()).max(0) as u64);
                (inner.sink)(&Event::Retry {
                    url: e.url.clone(),
                    reason: reason.clone(),
                    after,
                });
                FrontierOutcome::Retry {
                    at: robots.expires_at,
                    error: reason,
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
        // `robots.unreachable` verdicts for every purpose (spec §8.1 step 1),
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
                    .assess(&page, &robots_seen(&robots), now_unix())
                    .await?,
            )
        } else {
            None
        };
        inner
            .store
            .crawl_complete(
                Some(&decision),
                None,
                None,
                &outcome,
                e.id,
                0,
                consent.as_ref(),
                now_unix(),
            )
            .await?;
        return Ok(rep);
    }

    inner.wait_turn(&e.origin, robots.delay).await;
    let f = inner
        .fetcher
        .get(
            &url,
            inner.limits(true, cfg.max_redirects, cfg.max_body_bytes),
        )
        .await;
    inner.turn_done(&e.origin, robots.delay);
    rep.fetched = true;
    let mut rec = fetch_record(inner, &e, &f);
    let status = f.status.unwrap_or(0);
    let retry_after = f.retry_after();
    let mut page = None;
    let mut html: Option<String> = None;
    let mut links: Vec<LinkRecord> = Vec::new();
    let outcome = match &f.error {
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
            let wait = retry_after.unwrap_or_else(|| inner.backoff(e.attempts));
            inner.hold_origin(&e.origin, wait);
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
            let dec = charset::decode(&f.body, f.content_type.as_deref());
            rec.declared_charset = dec.declared.clone();
            rec.detected_charset = Some(dec.used.to_string());
            let x = extract::extract(&dec.text, &f.final_url);
            for l in &x.links {
                links.push(link_record(inner, &e, l));
            }
            page = Some(PageRecord {
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
                content_sha256: sha256_hex(&f.body),
            });
            html = Some(dec.text);
            FrontierOutcome::Done
        }
    };
    // The consent hook (spec §8.1): evidence from robots.txt, the origin's
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
            Some(
                inner
                    .signals
                    .assess(&seen, &robots_seen(&robots), now_unix())
                    .await?,
            )
        }
        None => None,
    };
    let done = inner
        .store
        .crawl_complete(
            Some(&decision),
            Some(&rec),
            page.as_ref().map(|p| (p, links.as_mut_slice())),
            &outcome,
            e.id,
            cfg.max_urls_per_origin as i64,
            consent.as_ref(),
            now_unix(),
        )
        .await?;
    rep.page = done.page_id.is_some();
    rep.duplicate = done.duplicate_of.is_some();
    (inner.sink)(&Event::Fetched {
        url: e.url.clone(),
        status: f.status,
        error: rec.error_kind.clone(),
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
        at: now_unix() + wait.as_secs_f64().ceil() as i64,
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
        user_agent: inner.fetcher.user_agent().to_string(),
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
fn link_record(inner: &Inner, e: &FrontierEntry, l: &extract::Link) -> LinkRecord {
    let depth = e.depth as u32 + 1;
    let mut rec = LinkRecord {
        target_url: l.url.to_string(),
        anchor_text: l.text.clone(),
        rel: l.rel.clone(),
        candidate: None,
        skip_reason: None,
    };
    let skip = if l.nofollow {
        Some("nofollow")
    } else {
        match urls::normalise(&l.url) {
            None => Some("scheme"),
            Some(n) if !inner.scope.contains(&n) => Some("scope"),
            Some(n) => match urls::trap(&n, depth, inner.cfg.max_depth) {
                Some(t) => Some(t),
                None => {
                    rec.candidate = Some(NewEntry {
                        url: l.url.to_string(),
                        url_norm: n.to_string(),
                        origin: urls::origin(&n),
                        depth: depth as i64,
                        discovered_from: Some(e.id),
                    });
                    None
                }
            },
        }
    };
    rec.skip_reason = skip.map(str::to_string);
    rec
}

/// The consent hook's view of the robots.txt in force.
fn robots_seen(r: &RobotsState) -> RobotsSeen<'_> {
    RobotsSeen {
        access: &r.access,
        status: r.consent.status,
        body: r.consent.body.as_deref(),
        cache_age_secs: r.consent.cache_age_secs,
        fetch: r.consent.fetch.clone(),
    }
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
        robots_seen(&self.0)
    }
}

/// Bytes of a page body read when a server refuses HEAD and the headers are
/// fetched with GET instead (the body is not used).
pub const HEADERS_GET_MAX_BYTES: usize = 64 * 1024;

impl Session {
    /// Starts a run (recorded in `crawl_runs`) whose seeds are `cfg.seeds`:
    /// they decide which hosts the SSRF guard lets through.
    pub async fn start(store: Store, cfg: CrawlConfig) -> Result<Session, CrawlError> {
        let Prepared {
            cfg,
            seeds,
            fetcher,
            signals,
            run_id,
        } = prepare(&store, cfg).await?;
        Ok(Session {
            inner: Inner {
                store,
                signals,
                fetcher,
                scope: ScopeRule {
                    scope: cfg.scope,
                    seeds,
                },
                cfg,
                run_id,
                robots: Mutex::new(HashMap::new()),
                next_slot: Mutex::new(HashMap::new()),
                sink: Arc::new(|_| {}),
            },
        })
    }

    /// The run id.
    pub fn run_id(&self) -> i64 {
        self.inner.run_id
    }

    /// The guarded client (for the consent hook's origin files).
    pub fn client(&self) -> &reqwest::Client {
        self.inner.fetcher.client()
    }

    /// Fetches `origin`'s robots.txt now, whatever the cache says, and
    /// stores the version (as a crawl does when its copy has expired).
    pub async fn refetch_robots(&self, origin: &str) -> Result<OriginRobots, CrawlError> {
        Ok(OriginRobots(self.inner.fetch_robots(origin).await?))
    }

    /// The response headers of `url`: a HEAD, or a GET (at most
    /// [`HEADERS_GET_MAX_BYTES`] read, body unused) when the server answers
    /// HEAD with 405 or 501. Waits for the origin's turn like a crawl.
    pub async fn fetch_headers(&self, origin: &str, url: &Url, robots: &OriginRobots) -> Fetched {
        let cfg = &self.inner.cfg;
        self.inner.wait_turn(origin, robots.0.delay).await;
        let f = self
            .inner
            .fetcher
            .head(url, self.inner.limits(false, cfg.max_redirects, 0))
            .await;
        self.inner.turn_done(origin, robots.0.delay);
        if f.error.is_none() && matches!(f.status, Some(405 | 501)) {
            self.inner.wait_turn(origin, robots.0.delay).await;
            let g = self
                .inner
                .fetcher
                .get(
                    url,
                    self.inner
                        .limits(false, cfg.max_redirects, HEADERS_GET_MAX_BYTES),
                )
                .await;
            self.inner.turn_done(origin, robots.0.delay);
            return g;
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
