//! Crawl runs, robots.txt versions, robots decisions, fetches, pages and
//! links. A page's fetch row, page row, links, newly discovered frontier
//! rows and its own frontier state change commit in one transaction
//! ([`Store::crawl_complete`]), so a kill at any moment loses or doubles
//! nothing.

use std::collections::{HashMap, HashSet};

use futures_util::TryStreamExt;
use sqlx::Row;

use super::audit::{append_event, placeholders, write_pieces};
use super::evidence::ConsentRecord;
use super::frontier::{NewEntry, insert_entry, origin_count, shape_count};
use super::raw::RawCapture;
use super::writer::Completion;
use super::{Store, StoreError};

/// A crawl run as it starts.
#[derive(Debug, Clone)]
pub struct RunRecord {
    pub started_at: i64,
    pub byline_version: String,
    pub user_agent: String,
    pub config_json: String,
    pub config_sha256: String,
    pub policy_sha256: Option<String>,
    pub seeds_json: String,
}

#[cfg(test)]
impl RunRecord {
    /// A run that started at `started_at`, for tests that need a run row.
    pub(crate) fn for_test(started_at: i64) -> RunRecord {
        RunRecord {
            started_at,
            byline_version: "test".into(),
            user_agent: "test".into(),
            config_json: "{}".into(),
            config_sha256: "0".into(),
            policy_sha256: None,
            seeds_json: "[]".into(),
        }
    }
}

/// One fetched version of `/robots.txt` (or the decision to keep a cached one).
#[derive(Debug, Clone, Default)]
pub struct RobotsVersion {
    pub run_id: i64,
    pub origin: String,
    pub url: String,
    pub final_url: Option<String>,
    pub redirect_chain_json: String,
    pub fetched_at: i64,
    pub status: Option<u16>,
    pub error: Option<String>,
    /// `rules`, `allow_all`, `disallow_all` or `cached`.
    pub outcome: String,
    pub reason: Option<String>,
    pub body: Option<Vec<u8>>,
    pub body_sha256: Option<String>,
    pub truncated: bool,
    pub warnings_json: String,
    pub crawl_delay_secs: Option<f64>,
    pub expires_at: i64,
    pub cached_from: Option<i64>,
}

/// A stored robots.txt version, as read back for caching.
#[derive(Debug, Clone)]
pub struct StoredRobots {
    pub id: i64,
    pub origin: String,
    pub status: Option<u16>,
    pub outcome: String,
    pub reason: Option<String>,
    pub body: Option<Vec<u8>>,
    pub body_sha256: Option<String>,
    pub truncated: bool,
    pub fetched_at: i64,
    pub expires_at: i64,
    pub cached_from: Option<i64>,
}

/// The robots.txt decision for one URL.
#[derive(Debug, Clone)]
pub struct DecisionRecord {
    pub run_id: i64,
    pub frontier_id: i64,
    pub url: String,
    pub robots_version_id: i64,
    pub allowed: bool,
    pub matched_line: Option<i64>,
    pub rule: Option<String>,
    pub reason: Option<String>,
    pub decided_at: i64,
}

impl DecisionRecord {
    /// The payload of its `robots.decision` audit event (both backends).
    pub(crate) fn event_payload(&self) -> serde_json::Value {
        serde_json::json!({
            "allowed": self.allowed, "rule": self.rule, "matched_line": self.matched_line,
            "reason": self.reason, "robots_version_id": self.robots_version_id,
        })
    }
}

/// One HTTP exchange for a page.
#[derive(Debug, Clone, Default)]
pub struct FetchRecord {
    pub run_id: i64,
    pub frontier_id: i64,
    pub attempt: i64,
    pub requested_url: String,
    pub final_url: Option<String>,
    pub redirect_chain_json: String,
    pub fetched_at: i64,
    pub elapsed_ms: i64,
    pub status: Option<u16>,
    pub user_agent: String,
    pub response_headers_json: String,
    pub content_type: Option<String>,
    pub body_sha256: Option<String>,
    pub body_bytes: Option<i64>,
    pub truncated: bool,
    pub declared_charset: Option<String>,
    pub detected_charset: Option<String>,
    pub error_kind: Option<String>,
    pub error_detail: Option<String>,
}

/// The extracted content of one HTML page.
#[derive(Debug, Clone, Default)]
pub struct PageRecord {
    pub url: String,
    pub title: Option<String>,
    pub author: Option<String>,
    pub site_name: Option<String>,
    pub published_at: Option<String>,
    pub modified_at: Option<String>,
    pub canonical_url: Option<String>,
    pub language: Option<String>,
    pub meta_robots: Option<String>,
    pub text: String,
    pub text_sha256: String,
    /// Byte ranges of `text` from `data-nosnippet` elements: never quoted.
    pub nosnippet_spans: Vec<(usize, usize)>,
    pub extractor_version: String,
    pub content_sha256: String,
    /// The response body as fetched, compressed (`--no-keep-raw`: none).
    pub raw: Option<RawCapture>,
}

/// One outgoing link. `candidate` is the frontier entry to add when the
/// crawler wants to follow it; `skip_reason` says why not otherwise.
#[derive(Debug, Clone)]
pub struct LinkRecord {
    pub target_url: String,
    pub anchor_text: String,
    pub rel: Option<String>,
    pub candidate: Option<NewEntry>,
    pub skip_reason: Option<String>,
}

/// What becomes of the frontier row after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrontierOutcome {
    /// Finished (a page, or a response that is not a page, e.g. 404).
    Done,
    /// Gave up; `last_error` says why.
    Failed(String),
    /// Not fetched, and not to be (robots.disallow, content filter, ...).
    Skipped(String),
    /// Try again at this time (429/503 back-off, robots unreachable).
    Retry { at: i64, error: String },
}

/// How many frontier URLs a page's links may add: per origin, and per
/// origin and URL shape (`crawl::budget`). Links past a budget are stored
/// with the budget's reason code and not followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkBudget {
    pub per_origin: i64,
    pub per_shape: i64,
    /// Reason codes recorded on links skipped for each.
    pub origin_reason: &'static str,
    pub shape_reason: &'static str,
}

impl LinkBudget {
    /// No new URLs at all (an outcome without links).
    pub const NONE: LinkBudget = LinkBudget {
        per_origin: 0,
        per_shape: 0,
        origin_reason: "",
        shape_reason: "",
    };
}

/// What [`Store::crawl_complete`] wrote.
#[derive(Debug, Clone, Default)]
pub struct Completed {
    pub decision_id: Option<i64>,
    pub fetch_id: Option<i64>,
    pub page_id: Option<i64>,
    pub duplicate_of: Option<i64>,
    pub new_urls: u64,
    /// The `fetch_raw` row written (= the fetch id) when the body was kept.
    pub raw_fetch_id: Option<i64>,
    /// Nothing was written: this worker's lease on the entry had expired
    /// and the entry is no longer its claim (PostgreSQL, see
    /// [`Store::for_worker`]); the worker holding it now records the URL.
    pub lease_lost: bool,
}

/// A `robots_versions` row as read from either backend.
#[derive(sqlx::FromRow)]
pub(crate) struct RobotsRow {
    id: i64,
    origin: String,
    status: Option<i64>,
    outcome: String,
    reason: Option<String>,
    body: Option<Vec<u8>>,
    body_sha256: Option<String>,
    truncated: i64,
    fetched_at: i64,
    expires_at: i64,
    cached_from: Option<i64>,
}

impl RobotsRow {
    fn into_stored(self) -> StoredRobots {
        StoredRobots {
            id: self.id,
            origin: self.origin,
            // A status that is not an HTTP status (an edited file) reads as none.
            status: self.status.and_then(|s| u16::try_from(s).ok()),
            outcome: self.outcome,
            reason: self.reason,
            body: self.body,
            body_sha256: self.body_sha256,
            truncated: self.truncated != 0,
            fetched_at: self.fetched_at,
            expires_at: self.expires_at,
            cached_from: self.cached_from,
        }
    }
}

impl Store {
    /// Records the start of a run; returns its id.
    pub async fn crawl_run_start(&self, r: &RunRecord) -> Result<i64, StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg::crawl::crawl_run_start(pg, r).await;
        }
        let mut tx = self.pool()?.begin().await?;
        let id = sqlx::query(
            "INSERT INTO crawl_runs (started_at, byline_version, user_agent, config_json, config_sha256, policy_sha256, seeds)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(r.started_at)
        .bind(&r.byline_version)
        .bind(&r.user_agent)
        .bind(&r.config_json)
        .bind(&r.config_sha256)
        .bind(&r.policy_sha256)
        .bind(&r.seeds_json)
        .execute(&mut *tx)
        .await?
        .last_insert_rowid();
        let payload = serde_json::json!({
            "run_id": id, "config_sha256": r.config_sha256, "policy_sha256": r.policy_sha256,
            "byline_version": r.byline_version,
        });
        append_event(
            &mut *tx,
            r.started_at,
            "crawl.start",
            &format!("run:{id}"),
            &payload,
            &[("crawl_runs", id)],
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Records the end of a run.
    /// The run row's new hash is covered by a `crawl.finish` event.
    pub async fn crawl_run_finish(&self, run_id: i64, now: i64) -> Result<(), StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg::crawl::crawl_run_finish(pg, run_id, now).await;
        }
        let mut tx = self.pool()?.begin().await?;
        let n = sqlx::query("UPDATE crawl_runs SET finished_at = ? WHERE id = ?")
            .bind(now)
            .bind(run_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n > 0 {
            append_event(
                &mut *tx,
                now,
                "crawl.finish",
                &format!("run:{run_id}"),
                &serde_json::json!({"run_id": run_id, "finished_at": now}),
                &[("crawl_runs", run_id)],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Stores one robots.txt version; returns its id.
    pub async fn robots_insert(&self, v: &RobotsVersion) -> Result<i64, StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg::crawl::robots_insert(pg, v).await;
        }
        let mut tx = self.pool()?.begin().await?;
        let id = sqlx::query(
            "INSERT INTO robots_versions (run_id, origin, url, final_url, redirect_chain, fetched_at, status, error,
                 outcome, reason, body, body_sha256, body_bytes, truncated, warnings, crawl_delay_secs, expires_at, cached_from)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(v.run_id)
        .bind(&v.origin)
        .bind(&v.url)
        .bind(&v.final_url)
        .bind(&v.redirect_chain_json)
        .bind(v.fetched_at)
        .bind(v.status.map(i64::from))
        .bind(&v.error)
        .bind(&v.outcome)
        .bind(&v.reason)
        .bind(&v.body)
        .bind(&v.body_sha256)
        .bind(v.body.as_ref().map(|b| i64::try_from(b.len()).unwrap_or(i64::MAX)))
        .bind(v.truncated)
        .bind(&v.warnings_json)
        .bind(v.crawl_delay_secs)
        .bind(v.expires_at)
        .bind(v.cached_from)
        .execute(&mut *tx)
        .await?
        .last_insert_rowid();
        let payload = serde_json::json!({
            "url": v.url, "status": v.status, "outcome": v.outcome,
            "reason": v.reason, "body_sha256": v.body_sha256,
        });
        append_event(
            &mut *tx,
            v.fetched_at,
            "robots.fetch",
            &v.origin,
            &payload,
            &[("robots_versions", id)],
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// The newest robots.txt version of an origin.
    pub async fn robots_latest(&self, origin: &str) -> Result<Option<StoredRobots>, StoreError> {
        self.robots_one(false, origin).await
    }

    /// The newest version of an origin fetched with a 2xx (its last good copy).
    pub async fn robots_last_good(&self, origin: &str) -> Result<Option<StoredRobots>, StoreError> {
        self.robots_one(true, origin).await
    }

    async fn robots_one(
        &self,
        last_good: bool,
        origin: &str,
    ) -> Result<Option<StoredRobots>, StoreError> {
        let row: Option<RobotsRow> = on_pool!(
            self,
            fetch_optional,
            sqlx::query_as(
                "SELECT id, origin, status, outcome, reason, body, body_sha256, truncated, fetched_at,
                        expires_at, cached_from
                 FROM robots_versions WHERE origin = $1 AND (NOT $2 OR outcome = 'rules')
                 ORDER BY id DESC LIMIT 1",
            )
            .bind(origin)
            .bind(last_good)
        );
        Ok(row.map(RobotsRow::into_stored))
    }

    /// Commits the outcome of one frontier entry in one transaction: the
    /// robots decision, the fetch (if any), the page and its links (if any),
    /// the newly discovered frontier rows (respecting `max_per_origin`), and
    /// the entry's new state.
    pub async fn crawl_complete(
        &self,
        decisions: &[DecisionRecord],
        fetch: Option<&FetchRecord>,
        page: Option<(&PageRecord, &mut [LinkRecord])>,
        outcome: &FrontierOutcome,
        frontier_id: i64,
        budget: LinkBudget,
        consent: Option<&ConsentRecord>,
        now: i64,
    ) -> Result<Completed, StoreError> {
        if let Some(pg) = self.pg() {
            let mut tx = pg.begin().await?;
            let done = super::pg::crawl::crawl_complete_in(
                &mut tx,
                self.worker(),
                decisions,
                fetch,
                page,
                outcome,
                frontier_id,
                budget,
                consent,
                now,
            )
            .await?;
            tx.commit().await?;
            return Ok(done);
        }
        // SQLite: the group-commit writer's batch, of one entry.
        let c = Completion {
            decisions: decisions.to_vec(),
            fetch: fetch.cloned(),
            page: page.as_ref().map(|(p, l)| ((*p).clone(), l.to_vec())),
            outcome: outcome.clone(),
            frontier_id,
            budget,
            consent: consent.cloned(),
            now,
        };
        let mut batch = vec![c];
        let mut keep = None;
        let written = super::writer::write_sqlite(self, &mut batch, &mut keep).await;
        if let Some(k) = keep {
            super::writer::close_direct(self, k).await?;
        }
        let done = written?.pop().unwrap_or_default();
        // The links' skip reasons (budget) as the caller's records get them.
        let written = batch.pop().and_then(|c| c.page);
        if let (Some((_, mine)), Some((_, written))) = (page, &written) {
            for (l, w) in mine.iter_mut().zip(written) {
                l.skip_reason.clone_from(&w.skip_reason);
            }
        }
        Ok(done)
    }
}

/// Every frontier row's origin and state, in table order (no sort).
const ORIGIN_STATES: &str = "SELECT origin, state FROM frontier";

impl Store {
    /// Per-origin counts of frontier rows by state, for the closing summary
    /// (origin, then state order).
    pub async fn crawl_origin_counts(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg::crawl::crawl_origin_counts(pg).await;
        }
        // Counted here as the rows stream by: `GROUP BY origin, state` has
        // no index to follow, so SQLite sorted every frontier row first, in
        // memory (`temp_store = memory`): a peak of ~50 bytes per URL at
        // the end of every crawl (15 MiB for 300,000 URLs; issue #26).
        let mut counts: std::collections::BTreeMap<(String, String), i64> = Default::default();
        let mut rows = sqlx::query_as::<_, (String, String)>(ORIGIN_STATES).fetch(self.pool()?);
        while let Some(key) = rows.try_next().await? {
            let n = counts.entry(key).or_insert(0);
            *n = n.saturating_add(1);
        }
        Ok(counts.into_iter().map(|((o, s), n)| (o, s, n)).collect())
    }

    /// Error kinds of the fetches of one run, with counts.
    pub async fn crawl_error_counts(&self, run_id: i64) -> Result<Vec<(String, i64)>, StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg::crawl::crawl_error_counts(pg, run_id).await;
        }
        Ok(sqlx::query_as(
            "SELECT error_kind, count(*) FROM fetches WHERE run_id = ? AND error_kind IS NOT NULL
             GROUP BY error_kind ORDER BY count(*) DESC, error_kind",
        )
        .bind(run_id)
        .fetch_all(self.pool()?)
        .await?)
    }
}

/// Inserts one fetch row (under `frontier_id`, as attempt `attempt`);
/// returns its id. Shared by a crawl's completion and a refresh's check.
pub(crate) async fn insert_fetch_in(
    conn: &mut sqlx::SqliteConnection,
    f: &FetchRecord,
    frontier_id: i64,
    attempt: i64,
    decision_id: Option<i64>,
) -> Result<i64, StoreError> {
    let row = insert_fetch_row(conn, f, frontier_id, attempt, decision_id).await?;
    Ok(row.try_get(0)?)
}

/// One fetch row, returned as stored (`rowid, *`); the 20 values in
/// [`FetchRecord`]'s order, then the robots decision's id.
pub(crate) const INSERT_FETCH: &str = "INSERT INTO fetches (run_id, frontier_id, attempt, requested_url, final_url, redirect_chain, fetched_at,
         elapsed_ms, status, user_agent, response_headers, content_type, body_sha256, body_bytes, truncated,
         declared_charset, detected_charset, error_kind, error_detail, robots_decision_id)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING rowid, *";

/// [`insert_fetch_in`], returning the row as stored (`rowid, *`).
pub(crate) async fn insert_fetch_row(
    conn: &mut sqlx::SqliteConnection,
    f: &FetchRecord,
    frontier_id: i64,
    attempt: i64,
    decision_id: Option<i64>,
) -> Result<sqlx::sqlite::SqliteRow, StoreError> {
    Ok(sqlx::query(INSERT_FETCH)
        .bind(f.run_id)
        .bind(frontier_id)
        .bind(attempt)
        .bind(&f.requested_url)
        .bind(&f.final_url)
        .bind(&f.redirect_chain_json)
        .bind(f.fetched_at)
        .bind(f.elapsed_ms)
        .bind(f.status.map(i64::from))
        .bind(&f.user_agent)
        .bind(&f.response_headers_json)
        .bind(&f.content_type)
        .bind(&f.body_sha256)
        .bind(f.body_bytes)
        .bind(f.truncated)
        .bind(&f.declared_charset)
        .bind(&f.detected_charset)
        .bind(&f.error_kind)
        .bind(&f.error_detail)
        .bind(decision_id)
        .fetch_one(&mut *conn)
        .await?)
}

/// The `fetch` audit event of a completed entry, on either backend: its
/// payload and the rows it covers (the fetch, the page, the raw capture,
/// then each link's new frontier row and the link).
pub(crate) fn fetch_event(
    f: &FetchRecord,
    fetch_id: i64,
    done: &Completed,
    covered: &[(&'static str, i64)],
) -> (serde_json::Value, Vec<(&'static str, i64)>) {
    let payload = serde_json::json!({
        "final_url": f.final_url, "status": f.status, "error_kind": f.error_kind,
        "body_sha256": f.body_sha256, "page_id": done.page_id,
    });
    let mut refs = vec![("fetches", fetch_id)];
    refs.extend(done.page_id.map(|p| ("pages", p)));
    refs.extend(done.raw_fetch_id.map(|f| ("fetch_raw", f)));
    refs.extend(covered.iter().copied());
    (payload, refs)
}

/// The frontier and link statements [`queue_and_insert_links`] needs, on
/// one backend's connection (SQLite here, PostgreSQL in `pg::crawl`), so
/// that the link budget itself is written once for both.
pub(crate) trait LinkRows {
    /// The normalised URLs among `norms` already in the frontier.
    async fn known_among(&mut self, norms: &[&str]) -> Result<HashSet<String>, StoreError>;
    /// Frontier rows of `origin`.
    async fn origin_count(&mut self, origin: &str) -> Result<i64, StoreError>;
    /// Frontier rows of `origin` with URL shape `shape`.
    async fn shape_count(&mut self, origin: &str, shape: &str) -> Result<i64, StoreError>;
    /// Adds `e` unless its normalised URL is known; the new row's id.
    async fn insert_entry(
        &mut self,
        run_id: i64,
        e: &super::frontier::NewEntry,
        now: i64,
    ) -> Result<Option<i64>, StoreError>;
    /// Inserts the links numbered from `first_ordinal`; their row ids in
    /// link order.
    async fn insert_links(
        &mut self,
        page_id: i64,
        first_ordinal: i64,
        links: &[LinkRecord],
    ) -> Result<Vec<i64>, StoreError>;
}

impl LinkRows for sqlx::SqliteConnection {
    async fn known_among(&mut self, norms: &[&str]) -> Result<HashSet<String>, StoreError> {
        known_among(self, norms).await
    }
    async fn origin_count(&mut self, origin: &str) -> Result<i64, StoreError> {
        origin_count(self, origin).await
    }
    async fn shape_count(&mut self, origin: &str, shape: &str) -> Result<i64, StoreError> {
        shape_count(self, origin, shape).await
    }
    async fn insert_entry(
        &mut self,
        run_id: i64,
        e: &super::frontier::NewEntry,
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        insert_entry(self, run_id, e, now).await
    }
    async fn insert_links(
        &mut self,
        page_id: i64,
        first_ordinal: i64,
        links: &[LinkRecord],
    ) -> Result<Vec<i64>, StoreError> {
        insert_links(self, page_id, first_ordinal, links).await
    }
}

/// Queues the links' targets that are new to the frontier, within the
/// budget (a link over budget gets its skip reason), then inserts the links
/// numbered from `first_ordinal`. Returns the number of new URLs and the
/// rows written in the order the audit event covers them: each link's new
/// frontier row, then the link. Shared by a crawl's completion and a
/// refresh's new version, on both backends (on PostgreSQL the caller holds
/// the audit lock, so the counts read here are not raced by another
/// worker's writer).
pub(crate) async fn queue_and_insert_links<C: LinkRows>(
    tx: &mut C,
    page_id: i64,
    first_ordinal: i64,
    links: &mut [LinkRecord],
    budget: LinkBudget,
    run_id: i64,
    now: i64,
) -> Result<(u64, Vec<(&'static str, i64)>), StoreError> {
    let mut new_urls = 0u64;
    // The links' frontier checks, in link order, with the answers
    // the one-statement-per-link version gave: which normalised URLs
    // are known is read once for the page, per-origin and per-shape
    // counts once per origin and shape, and all three are kept up to
    // date in memory as this page adds rows (inside this transaction
    // nothing else writes the frontier).
    let norms: Vec<&str> = links
        .iter()
        .filter_map(|l| l.candidate.as_ref().map(|c| c.url_norm.as_str()))
        .collect();
    let mut known_now = tx.known_among(&norms).await?;
    let mut origins: HashMap<String, i64> = HashMap::new();
    let mut shapes: HashMap<(String, String), i64> = HashMap::new();
    let mut added: Vec<Option<i64>> = vec![None; links.len()];
    for (i, l) in links.iter_mut().enumerate() {
        let Some(c) = &l.candidate else { continue };
        if known_now.contains(c.url_norm.as_str()) {
            // Already in the frontier: followed, nothing to add.
            continue;
        }
        let in_origin = match origins.get(&c.origin) {
            Some(&n) => n,
            None => {
                let n = tx.origin_count(&c.origin).await?;
                origins.insert(c.origin.clone(), n);
                n
            }
        };
        if in_origin >= budget.per_origin {
            l.skip_reason = Some(budget.origin_reason.into());
            continue;
        }
        if let Some(shape) = &c.shape {
            let key = (c.origin.clone(), shape.clone());
            let in_shape = match shapes.get(&key) {
                Some(&n) => n,
                None => {
                    let n = tx.shape_count(&c.origin, shape).await?;
                    shapes.insert(key, n);
                    n
                }
            };
            if in_shape >= budget.per_shape {
                l.skip_reason = Some(budget.shape_reason.into());
                continue;
            }
        }
        if let Some(fid) = tx.insert_entry(run_id, c, now).await? {
            new_urls += 1;
            added[i] = Some(fid);
            known_now.insert(c.url_norm.clone());
            *origins.entry(c.origin.clone()).or_default() += 1;
            if let Some(shape) = &c.shape {
                *shapes.entry((c.origin.clone(), shape.clone())).or_default() += 1;
            }
        }
    }
    // Covered in the order the rows were written one at a time:
    // each link's new frontier row, then the link.
    let link_ids = tx.insert_links(page_id, first_ordinal, links).await?;
    let mut rows = Vec::with_capacity(link_ids.len().saturating_mul(2));
    for (fid, link) in added.iter().zip(link_ids) {
        rows.extend(fid.map(|f| ("frontier", f)));
        rows.push(("links", link));
    }
    Ok((new_urls, rows))
}

/// Which of `k` normalised URLs are in the frontier.
pub(crate) fn known_among_sql(k: usize) -> String {
    format!(
        "SELECT url_norm FROM frontier WHERE url_norm IN ({})",
        placeholders(k)
    )
}

/// The insert of `k` links (7 values each), returning them.
pub(crate) fn insert_links_sql(k: usize) -> String {
    format!(
        "INSERT INTO links (page_id, ordinal, target_url, anchor_text, rel, followed, skip_reason)
         VALUES {} RETURNING rowid, *",
        vec!["(?, ?, ?, ?, ?, ?, ?)"; k].join(", ")
    )
}

/// The normalised URLs among `norms` that are in the frontier: one
/// statement per 64 (a shorter list is padded with repeats of its last
/// URL to 16 or 64 places, so two statement texts serve every page).
async fn known_among(
    conn: &mut sqlx::SqliteConnection,
    norms: &[&str],
) -> Result<HashSet<String>, StoreError> {
    let mut out = HashSet::new();
    for piece in norms.chunks(64) {
        let Some(last) = piece.last() else { continue };
        let k = if piece.len() <= 16 { 16 } else { 64 };
        let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(known_among_sql(k)));
        for i in 0..k {
            q = q.bind(*piece.get(i).unwrap_or(last));
        }
        out.extend(q.fetch_all(&mut *conn).await?);
    }
    Ok(out)
}

/// Inserts a page's links (ordinal = `first_ordinal` + position) with one
/// statement per piece of [`write_pieces`]; returns their rowids in link
/// order. With `audit`, each returned row is hashed there.
async fn insert_links(
    conn: &mut sqlx::SqliteConnection,
    page_id: i64,
    first_ordinal: i64,
    links: &[LinkRecord],
) -> Result<Vec<i64>, StoreError> {
    let mut ids = vec![0i64; links.len()];
    let mut at = 0usize;
    for k in write_pieces(links.len()) {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(insert_links_sql(k)));
        for (i, l) in links.iter().enumerate().skip(at).take(k) {
            let followed = l.candidate.is_some() && l.skip_reason.is_none();
            q = q
                .bind(page_id)
                .bind(first_ordinal.saturating_add(i64::try_from(i).unwrap_or(i64::MAX)))
                .bind(&l.target_url)
                .bind(&l.anchor_text)
                .bind(&l.rel)
                .bind(followed)
                .bind(&l.skip_reason);
        }
        for row in q.fetch_all(&mut *conn).await? {
            let rowid: i64 = row.try_get(0)?;
            let ordinal: i64 = row.try_get("ordinal")?;
            let at = ordinal
                .checked_sub(first_ordinal)
                .and_then(|o| usize::try_from(o).ok());
            if let Some(slot) = at.and_then(|o| ids.get_mut(o)) {
                *slot = rowid;
            }
        }
        at += k;
    }
    Ok(ids)
}

pub(crate) fn f_run(fetch: Option<&FetchRecord>) -> i64 {
    fetch.map(|f| f.run_id).unwrap_or_default()
}

/// `[[start, end], …]` for the `pages.nosnippet_spans` column.
pub(crate) fn spans_json(spans: &[(usize, usize)]) -> String {
    let pairs: Vec<[usize; 2]> = spans.iter().map(|&(a, b)| [a, b]).collect();
    serde_json::to_string(&pairs).expect("integers serialize")
}

impl Store {
    /// The `data-nosnippet` byte spans of the newest stored page at `url`
    /// (empty when the page has none or is not stored).
    pub async fn page_nosnippet_spans(&self, url: &str) -> Result<Vec<(usize, usize)>, StoreError> {
        let raw: Option<String> = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT nosnippet_spans FROM pages WHERE url = $1 ORDER BY id DESC LIMIT 1",
        )
        .bind(url)
        .fetch_optional(pool)
        .await?);
        let Some(raw) = raw else {
            return Ok(Vec::new());
        };
        let pairs: Vec<[usize; 2]> =
            serde_json::from_str(&raw).map_err(|e| StoreError::Corrupt {
                table: "pages",
                column: "nosnippet_spans",
                detail: e.to_string(),
            })?;
        Ok(pairs.into_iter().map(|[a, b]| (a, b)).collect())
    }
}

impl Store {
    /// The URL of a stored page.
    pub async fn page_url_by_id(&self, page_id: i64) -> Result<Option<String>, StoreError> {
        Ok(
            on_pool!(self, pool => sqlx::query_scalar("SELECT url FROM pages WHERE id = $1")
            .bind(page_id)
            .fetch_optional(pool)
            .await?),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::probe::plan;

    /// Issue #26: the closing summary's per-origin counts never sort the
    /// frontier (a temporary b-tree in memory as large as the frontier, the
    /// end-of-crawl peak of a large crawl), and equal SQL's `GROUP BY`.
    #[tokio::test]
    async fn origin_counts_stream_the_frontier_and_match_a_group_by() {
        let (_dir, store) = crate::store::probe::fresh().await;
        let pool = store.pool().unwrap();
        let p = plan(pool, ORIGIN_STATES, &[]).await;
        assert!(!p.iter().any(|d| d.contains("TEMP B-TREE")), "{p:#?}");
        let run = store
            .crawl_run_start(&RunRecord::for_test(100))
            .await
            .unwrap();
        let entries: Vec<NewEntry> = [
            ("http://b.test", 3),
            ("http://a.test", 4),
            ("http://c.test", 1),
        ]
        .iter()
        .flat_map(|&(origin, n)| {
            (0..n).map(move |i| NewEntry {
                url: format!("{origin}/{i}"),
                url_norm: format!("{origin}/{i}"),
                origin: origin.into(),
                depth: 0,
                discovered_from: None,
                shape: None,
            })
        })
        .collect();
        store.frontier_add_seeds(run, &entries, 100).await.unwrap();
        sqlx::query("UPDATE frontier SET state = 'done' WHERE url IN ('http://a.test/1', 'http://b.test/0', 'http://a.test/3')")
            .execute(pool)
            .await
            .unwrap();
        sqlx::query("UPDATE frontier SET state = 'failed' WHERE url = 'http://c.test/0'")
            .execute(pool)
            .await
            .unwrap();
        let reference: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT origin, state, count(*) FROM frontier GROUP BY origin, state ORDER BY origin, state",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        assert_eq!(reference.len(), 5);
        assert_eq!(store.crawl_origin_counts().await.unwrap(), reference);
    }
}
