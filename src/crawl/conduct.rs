//! Conduct: the one way Byline sends a request to a site.
//!
//! Pages, robots.txt, the origin files (`/.well-known/tdmrep.json`,
//! `/ai.txt`, `/llms.txt`), RSL and other licence documents, and the
//! HEAD/GET of `audit recheck` all go through [`Conduct::fetch`]. For every
//! hop of a request (the first one and each redirect):
//!
//! 1. the SSRF guard ([`super::guard`]) refuses non-public addresses unless
//!    the host is a seed (and again at connect time, in the resolver);
//! 2. the hop's origin's robots.txt is consulted (fetched first when not
//!    cached, with RFC 9309's status-code rules: a 5xx or unreachable
//!    robots.txt disallows everything); a disallowed hop ends the fetch
//!    with [`ErrorKind::RobotsDisallowed`] and the request is never sent.
//!    Only robots.txt itself is exempt;
//! 3. the hop waits for its origin's politeness slot: one request at a time
//!    per origin, the next starting no earlier than the larger of the
//!    origin's Crawl-delay and the configured minimum delay after the end
//!    of the previous one (robots.txt included: it takes the slot too).
//!
//! Timeouts (connect, read, total over all hops) and body caps are the
//! crawl's configuration; the total counts time on the network, not time
//! spent waiting for a slot.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Mutex as AsyncMutex;
use url::Url;

use super::error::CrawlError;
use super::fetch::{ErrorKind, Fetched, Fetcher, HopBlock, Limits, Step};
use super::robots::{self, Access, FetchOutcome, PRODUCT_TOKEN, RobotsRules};
use super::signals::RobotsSeen;
use super::urls;
use crate::policy::evidence::FetchRef;
use crate::store::Store;
use crate::store::crawl::{RobotsVersion, StoredRobots};

/// The longest any origin is held back by a server's word (Retry-After,
/// back-off): a larger value is cut to this.
pub const MAX_HOLD: Duration = super::headers::MAX_RETRY_AFTER;

/// Politeness and robots.txt settings of one run.
#[derive(Debug, Clone)]
pub struct ConductConfig {
    /// Minimum gap between two requests to one origin.
    pub min_delay: Duration,
    /// Longest Crawl-delay honoured (a larger one is capped).
    pub max_crawl_delay: Duration,
    /// How long an unreachable robots.txt keeps an origin closed.
    pub robots_retry: Duration,
    /// Bytes of robots.txt read and parsed.
    pub robots_max_bytes: usize,
    /// Redirects followed for pages and files.
    pub max_redirects: usize,
    /// This worker's id (the holder of shared origin slots on PostgreSQL).
    pub worker_id: String,
    /// Longest a request holds its origin's shared slot (a worker that
    /// dies mid-request frees it then).
    pub slot_hold: Duration,
}

/// What a request is for: robots.txt is the only request not subject to a
/// robots.txt check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A page of the crawl (or its headers, for a recheck).
    Page,
    /// `/robots.txt` of an origin (RFC 9309: redirects followed, at most 5).
    Robots,
    /// An origin file or a linked licence document.
    File,
}

/// robots.txt in force for one origin.
#[derive(Debug, Clone)]
pub(crate) struct RobotsState {
    pub(crate) access: Access,
    pub(crate) version_id: i64,
    pub(crate) expires_at: i64,
    /// The Crawl-delay in force (capped), zero when none.
    pub(crate) delay: Duration,
    /// The body in force and its fetch, for the consent signals in it.
    pub(crate) consent: RobotsConsent,
}

/// What the consent hook needs from robots.txt besides the access decision.
#[derive(Debug, Clone, Default)]
pub(crate) struct RobotsConsent {
    body: Option<Arc<str>>,
    status: Option<u16>,
    fetch: Option<FetchRef>,
    cache_age_secs: Option<i64>,
    /// The error of the latest fetch (DNS, connection, status), for reports.
    pub(crate) error: Option<String>,
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
            cache_age_secs: cached.then(|| now.saturating_sub(s.fetched_at)),
            error: None,
        }
    }
}

impl RobotsState {
    /// The consent hook's view of it.
    pub(crate) fn seen(&self) -> RobotsSeen<'_> {
        RobotsSeen {
            access: &self.access,
            status: self.consent.status,
            body: self.consent.body.as_deref(),
            cache_age_secs: self.consent.cache_age_secs,
            fetch: self.consent.fetch.clone(),
        }
    }

    /// Why this robots.txt keeps us from `url`, or `None` when it allows it:
    /// the rule and its line, or the status-code rule that applies.
    pub(crate) fn refusal(&self, url: &Url) -> Option<String> {
        let d = self.access.check(url);
        if d.allowed {
            return None;
        }
        Some(match (d.matched_line, d.rule) {
            (Some(line), Some(rule)) => format!(
                "robots.txt (version {}) line {line}: {rule}",
                self.version_id
            ),
            _ => {
                let status = self
                    .consent
                    .status
                    .map_or_else(|| "no response".to_string(), |s| format!("status {s}"));
                let err = self
                    .consent
                    .error
                    .as_deref()
                    .map(|e| format!(", {e}"))
                    .unwrap_or_default();
                format!(
                    "robots.txt (version {}) unreachable ({status}{err}): complete disallow (RFC 9309 2.3.1.4)",
                    self.version_id
                )
            }
        })
    }
}

type Sink = Arc<dyn Fn(&RobotsFetched) + Send + Sync>;

/// A robots.txt version fetched (reported to the crawl's progress sink).
#[derive(Debug, Clone)]
pub struct RobotsFetched {
    pub origin: String,
    pub outcome: String,
    pub status: Option<u16>,
}

/// The guarded, polite request path of one run.
pub struct Conduct {
    fetcher: Fetcher,
    store: Store,
    run_id: i64,
    cfg: ConductConfig,
    robots: Mutex<HashMap<String, RobotsState>>,
    /// One robots.txt fetch per origin at a time.
    robots_fetching: Mutex<HashMap<String, Arc<AsyncMutex<()>>>>,
    /// Per origin: the earliest time the next request may start, held while
    /// a request to the origin is in flight.
    slots: Mutex<HashMap<String, Arc<AsyncMutex<Instant>>>>,
    sink: Sink,
}

impl std::fmt::Debug for Conduct {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conduct")
            .field("run_id", &self.run_id)
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

pub(crate) fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

pub(crate) fn sha256_hex(b: &[u8]) -> String {
    crate::store::audit::sha256_hex(b)
}

/// `d` seconds as a whole number for unix-time arithmetic (saturating).
fn secs_i64(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// `d` in whole milliseconds (saturating).
fn ms_i64(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// `now + d`, saturating far in the future instead of overflowing.
fn instant_after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d.min(MAX_HOLD))
        .unwrap_or(now + Duration::from_secs(3600))
}

impl Conduct {
    /// The request path for run `run_id`: robots.txt versions it fetches are
    /// stored under that run; `sink` hears of each.
    pub fn new(
        fetcher: Fetcher,
        store: Store,
        run_id: i64,
        cfg: ConductConfig,
        sink: impl Fn(&RobotsFetched) + Send + Sync + 'static,
    ) -> Conduct {
        Conduct {
            fetcher,
            store,
            run_id,
            cfg,
            robots: Mutex::new(HashMap::new()),
            robots_fetching: Mutex::new(HashMap::new()),
            slots: Mutex::new(HashMap::new()),
            sink: Arc::new(sink),
        }
    }

    /// The User-Agent sent.
    pub fn user_agent(&self) -> &str {
        self.fetcher.user_agent()
    }

    /// The run the fetches are recorded under.
    pub fn run_id(&self) -> i64 {
        self.run_id
    }

    /// The settings.
    pub fn config(&self) -> &ConductConfig {
        &self.cfg
    }

    /// GETs `url` for `purpose`, hop by hop under the rules above.
    pub async fn get(&self, url: &Url, purpose: Purpose, limits: Limits) -> Fetched {
        self.fetch(reqwest::Method::GET, url, purpose, limits, None)
            .await
    }

    /// A conditional GET (`crawl --refresh`, `audit recheck --bodies`):
    /// [`Conduct::get`] with `If-None-Match` / `If-Modified-Since` from
    /// `validators` on the request for `url` itself (not on redirect hops).
    /// A `304 Not Modified` comes back as status 304 with no body.
    pub async fn get_conditional(
        &self,
        url: &Url,
        purpose: Purpose,
        limits: Limits,
        validators: &super::fetch::Validators,
    ) -> Fetched {
        self.fetch(reqwest::Method::GET, url, purpose, limits, Some(validators))
            .await
    }

    /// HEADs `url` (headers only) like [`Conduct::get`].
    pub async fn head(&self, url: &Url, purpose: Purpose, limits: Limits) -> Fetched {
        self.fetch(reqwest::Method::HEAD, url, purpose, limits, None)
            .await
    }

    async fn fetch(
        &self,
        method: reqwest::Method,
        url: &Url,
        purpose: Purpose,
        limits: Limits,
        conditional: Option<&super::fetch::Validators>,
    ) -> Fetched {
        let mut out = Fetched::new(url);
        let start = Instant::now();
        if let Err(e) = self
            .hops(&method, purpose, limits, conditional, &mut out)
            .await
        {
            out.error = Some(e);
        }
        out.elapsed = start.elapsed();
        out
    }

    async fn hops(
        &self,
        method: &reqwest::Method,
        purpose: Purpose,
        limits: Limits,
        conditional: Option<&super::fetch::Validators>,
        out: &mut Fetched,
    ) -> Result<(), (ErrorKind, String)> {
        let mut seen: HashSet<String> = HashSet::new();
        let mut cur = out.requested_url.clone();
        let mut on_network = Duration::ZERO;
        loop {
            out.final_url = cur.clone();
            self.fetcher
                .guard()
                .check(&cur)
                .await
                .map_err(|b| (ErrorKind::SsrfBlocked, b.0))?;
            seen.insert(cur.as_str().to_string());
            let origin = urls::origin(&cur);
            let delay = if purpose == Purpose::Robots {
                self.known_delay(&origin)
            } else {
                // Boxed: robots_for fetches robots.txt through this same path.
                let robots = Box::pin(self.robots_for(&origin)).await.map_err(|e| {
                    (
                        ErrorKind::Other,
                        format!("robots.txt of {origin} could not be recorded: {e}"),
                    )
                })?;
                if let Some(why) = robots.refusal(&cur) {
                    let d = robots.access.check(&cur);
                    out.blocked = Some(HopBlock {
                        url: cur.to_string(),
                        robots_version_id: robots.version_id,
                        matched_line: d.matched_line,
                        rule: d.rule,
                        reason: robots.access.reason().map(str::to_string),
                    });
                    let hop = if out.chain.is_empty() {
                        format!("{cur}")
                    } else {
                        format!("redirect hop {} to {cur}", out.chain.len())
                    };
                    return Err((ErrorKind::RobotsDisallowed, format!("{hop}: {why}")));
                }
                robots.delay
            };
            let left = self.fetcher.total_timeout().saturating_sub(on_network);
            let step = {
                let slot = self.slot(&origin);
                let mut next = slot.lock().await;
                tokio::time::sleep_until((*next).into()).await;
                // Many workers on one PostgreSQL corpus: the origin's slot
                // in the database too (one request at a time per origin
                // across all of them, spaced by its delay).
                let shared = self.store.shared_politeness();
                if shared {
                    self.take_shared_slot(&origin).await.map_err(|e| {
                        (
                            ErrorKind::Other,
                            format!(
                                "the shared politeness slot of {origin} could not be taken: {e}"
                            ),
                        )
                    })?;
                }
                let t = Instant::now();
                // Validators belong to the URL they were stored for.
                let cond = conditional.filter(|_| out.chain.is_empty());
                let step = self
                    .fetcher
                    .exchange(method, &cur, limits, left, out, cond)
                    .await;
                on_network += t.elapsed();
                let gap = delay.max(self.cfg.min_delay);
                *next = instant_after(gap);
                if shared {
                    self.release_shared_slot(&origin, gap).await;
                }
                step
            }?;
            match step {
                Step::Done => return Ok(()),
                Step::Redirect(next) => {
                    if !matches!(next.scheme(), "http" | "https") {
                        return Err((
                            ErrorKind::BadRedirect,
                            format!("redirect to unsupported scheme {next}"),
                        ));
                    }
                    if seen.contains(next.as_str()) {
                        return Err((
                            ErrorKind::RedirectLoop,
                            format!(
                                "redirect loop: {next} was already visited after {} hops",
                                out.chain.len()
                            ),
                        ));
                    }
                    if out.chain.len() > limits.max_redirects {
                        return Err((
                            ErrorKind::RedirectLimit,
                            format!("more than {} redirects", limits.max_redirects),
                        ));
                    }
                    cur = next;
                }
            }
        }
    }

    fn slot(&self, origin: &str) -> Arc<AsyncMutex<Instant>> {
        self.slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(origin.to_string())
            .or_insert_with(|| Arc::new(AsyncMutex::new(Instant::now())))
            .clone()
    }

    /// Keeps `origin` closed for at least `after` from now (Retry-After,
    /// back-off; capped at [`MAX_HOLD`]). Waits for a request in flight.
    /// On a shared corpus, for every worker.
    pub async fn hold(&self, origin: &str, after: Duration) {
        let slot = self.slot(origin);
        let mut next = slot.lock().await;
        *next = (*next).max(instant_after(after));
        if self.store.shared_politeness()
            && let Err(e) = self
                .store
                .origin_hold(origin, ms_i64(after.min(MAX_HOLD)))
                .await
        {
            tracing::warn!(origin, "holding the shared origin slot: {e}");
        }
    }

    /// Waits until this worker holds `origin`'s slot in the database.
    async fn take_shared_slot(&self, origin: &str) -> Result<(), crate::store::StoreError> {
        let hold = ms_i64(self.cfg.slot_hold);
        loop {
            match self
                .store
                .origin_slot_take(origin, &self.cfg.worker_id, hold)
                .await?
            {
                crate::store::pg::origins::SlotTry::Taken => return Ok(()),
                crate::store::pg::origins::SlotTry::Wait(ms) => {
                    let ms = u64::try_from(ms.clamp(5, 1000)).unwrap_or(5);
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
            }
        }
    }

    /// Gives `origin`'s slot back: the next request of any worker starts
    /// `gap` after now at the earliest.
    async fn release_shared_slot(&self, origin: &str, gap: Duration) {
        if let Err(e) = self
            .store
            .origin_slot_release(origin, &self.cfg.worker_id, ms_i64(gap.min(MAX_HOLD)))
            .await
        {
            // The hold expires by itself (`slot_hold`).
            tracing::warn!(origin, "releasing the shared origin slot: {e}");
        }
    }

    /// The Crawl-delay known for `origin` (zero before its robots.txt).
    fn known_delay(&self, origin: &str) -> Duration {
        self.robots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(origin)
            .map(|r| r.delay)
            .unwrap_or_default()
    }

    /// The robots.txt in force for `origin`: from memory, from the store
    /// (a copy a previous run fetched and that has not expired), or fetched
    /// (one fetch per origin at a time).
    pub(crate) async fn robots_for(&self, origin: &str) -> Result<RobotsState, CrawlError> {
        if let Some(r) = self.cached_robots(origin) {
            return Ok(r);
        }
        let lock = self
            .robots_fetching
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(origin.to_string())
            .or_default()
            .clone();
        let _one = lock.lock().await;
        if let Some(r) = self.cached_robots(origin) {
            return Ok(r);
        }
        if let Some(st) = self.stored_robots(origin).await? {
            return Ok(st);
        }
        if !self.store.shared_politeness() {
            let st = self.fetch_robots(origin).await?;
            self.remember(origin, &st);
            return Ok(st);
        }
        // Many workers: the one that takes the origin's robots.txt claim
        // fetches it; the others read the version it stores.
        let hold = ms_i64(self.cfg.slot_hold.saturating_add(self.cfg.max_crawl_delay));
        loop {
            if self
                .store
                .robots_fetch_take(origin, &self.cfg.worker_id, hold)
                .await?
            {
                // Another worker may have stored it just before.
                let st = match self.stored_robots(origin).await? {
                    Some(st) => Ok(st),
                    None => self.fetch_robots(origin).await,
                };
                self.store
                    .robots_fetch_release(origin, &self.cfg.worker_id)
                    .await?;
                let st = st?;
                self.remember(origin, &st);
                return Ok(st);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            if let Some(st) = self.stored_robots(origin).await? {
                return Ok(st);
            }
        }
    }

    /// The stored robots.txt of `origin` when it has not expired and gives
    /// rules or allows all (put in force); otherwise it is to be fetched.
    async fn stored_robots(&self, origin: &str) -> Result<Option<RobotsState>, CrawlError> {
        let now = now_unix();
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
            self.remember(origin, &st);
            return Ok(Some(st));
        }
        Ok(None)
    }

    fn cached_robots(&self, origin: &str) -> Option<RobotsState> {
        let now = now_unix();
        self.robots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(origin)
            .filter(|r| r.expires_at > now)
            .cloned()
    }

    fn remember(&self, origin: &str, st: &RobotsState) {
        self.robots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(origin.to_string(), st.clone());
    }

    /// Fetches `origin`'s robots.txt now whatever the cache says (`audit
    /// recheck`), stores the version and puts it in force.
    pub(crate) async fn refetch_robots(&self, origin: &str) -> Result<RobotsState, CrawlError> {
        let st = self.fetch_robots(origin).await?;
        self.remember(origin, &st);
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
            .and_then(|r| r.crawl_delay_duration(self.cfg.max_crawl_delay))
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
        let f = self
            .get(
                &url,
                Purpose::Robots,
                Limits {
                    max_redirects: robots::MAX_REDIRECTS,
                    max_body_bytes: self.cfg.robots_max_bytes,
                    html_only: false,
                },
            )
            .await;
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
                // Counted from when the copy was fetched, not from now (a
                // slow fetch would otherwise keep it past max-age / 24 h,
                // and the stored fetched_at and expires_at would disagree
                // by a second whenever the fetch crossed one).
                (
                    if is_success { "rules" } else { "allow_all" },
                    f.fetched_at.saturating_add(secs_i64(ttl)),
                )
            }
            Access::Cached { .. } | Access::DisallowAll { .. } => {
                let retry = access
                    .retry_after()
                    .unwrap_or(self.cfg.robots_retry)
                    .min(MAX_HOLD);
                if let Some(ra) = access.retry_after() {
                    self.hold(origin, ra).await;
                }
                (
                    if matches!(access, Access::Cached { .. }) {
                        "cached"
                    } else {
                        "disallow_all"
                    },
                    now.saturating_add(secs_i64(retry).max(1)),
                )
            }
        };
        let warnings: Vec<String> = access
            .rules()
            .filter(|_| is_success)
            .map(|r| r.warnings().to_vec())
            .unwrap_or_default();
        let error = f
            .error
            .as_ref()
            .map(|(k, m)| format!("{}: {m}", k.as_str()));
        let v = RobotsVersion {
            run_id: self.run_id,
            origin: origin.into(),
            url: url.to_string(),
            final_url: Some(f.final_url.to_string()),
            redirect_chain_json: serde_json::to_string(&f.chain).expect("hops serialise"),
            fetched_at: f.fetched_at,
            status: f.status,
            error: error.clone(),
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
        (self.sink)(&RobotsFetched {
            origin: origin.into(),
            outcome: name.into(),
            status: f.status,
        });
        let consent = match (&access, &last_good) {
            (Access::Cached { .. }, Some(g)) => RobotsConsent {
                status: f.status,
                error: error.clone(),
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
                error: None,
            },
            _ => RobotsConsent {
                status: f.status,
                error: error.clone(),
                ..RobotsConsent::default()
            },
        };
        let st = self.robots_state(access, id, expires_at, consent);
        // The Crawl-delay just learnt spaces the next request from this one.
        self.hold(origin, st.delay).await;
        Ok(st)
    }
}

fn allow_reason(r: Option<&str>) -> &'static str {
    match r {
        Some(robots::REASON_REDIRECT_LIMIT) => robots::REASON_REDIRECT_LIMIT,
        _ => robots::REASON_UNAVAILABLE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_far_in_the_future_do_not_overflow() {
        let t = instant_after(Duration::from_secs(u64::MAX));
        assert!(t > Instant::now());
        assert_eq!(secs_i64(Duration::from_secs(u64::MAX)), i64::MAX);
    }
}
