//! Crawl runs, robots.txt versions, robots decisions, fetches, pages and
//! links on PostgreSQL: the statements of [`crate::store::crawl`].
//!
//! Every transaction that writes logged rows takes the audit log's lock
//! first ([`super::audit::lock_log`]): writers from many workers then queue
//! on one lock instead of waiting for each other's rows while holding it.

use std::collections::HashSet;

use sqlx::postgres::{PgConnection, PgPool};

use super::audit::{append_event, lock_log};
use crate::store::StoreError;
use crate::store::crawl::{
    Completed, DecisionRecord, FetchRecord, FrontierOutcome, LinkBudget, LinkRecord, PageRecord,
    RobotsVersion, RunRecord,
};
use crate::store::evidence::ConsentRecord;
use crate::store::frontier::FrontierState;

pub(crate) async fn crawl_run_start(pool: &PgPool, r: &RunRecord) -> Result<i64, StoreError> {
    let mut tx = pool.begin().await?;
    lock_log(&mut tx).await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO crawl_runs (started_at, byline_version, user_agent, config_json, config_sha256, policy_sha256, seeds)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(r.started_at)
    .bind(&r.byline_version)
    .bind(&r.user_agent)
    .bind(&r.config_json)
    .bind(&r.config_sha256)
    .bind(&r.policy_sha256)
    .bind(&r.seeds_json)
    .fetch_one(&mut *tx)
    .await?;
    let payload = serde_json::json!({
        "run_id": id, "config_sha256": r.config_sha256, "policy_sha256": r.policy_sha256,
        "byline_version": r.byline_version,
    });
    append_event(
        &mut tx,
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

pub(crate) async fn crawl_run_finish(
    pool: &PgPool,
    run_id: i64,
    now: i64,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    lock_log(&mut tx).await?;
    let n = sqlx::query("UPDATE crawl_runs SET finished_at = $1 WHERE id = $2")
        .bind(now)
        .bind(run_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if n > 0 {
        append_event(
            &mut tx,
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

pub(crate) async fn robots_insert(pool: &PgPool, v: &RobotsVersion) -> Result<i64, StoreError> {
    let mut tx = pool.begin().await?;
    lock_log(&mut tx).await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO robots_versions (run_id, origin, url, final_url, redirect_chain, fetched_at, status, error,
             outcome, reason, body, body_sha256, body_bytes, truncated, warnings, crawl_delay_secs, expires_at, cached_from)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) RETURNING id",
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
    .bind(i64::from(v.truncated))
    .bind(&v.warnings_json)
    .bind(v.crawl_delay_secs)
    .bind(v.expires_at)
    .bind(v.cached_from)
    .fetch_one(&mut *tx)
    .await?;
    let payload = serde_json::json!({
        "url": v.url, "status": v.status, "outcome": v.outcome,
        "reason": v.reason, "body_sha256": v.body_sha256,
    });
    append_event(
        &mut tx,
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

/// [`crate::store::crawl::crawl_complete_in`] on PostgreSQL, on an open
/// transaction that holds the audit lock.
///
/// With `worker` (a crawl worker's commit, [`crate::store::Store::for_worker`])
/// nothing is written unless the entry is still that worker's claim: in
/// flight with `lease_owner = worker`, row-locked for the rest of the
/// transaction so no requeue or claim slips in before the commit. A worker
/// whose lease expired and whose URL went back to the queue (or to another
/// worker, or was finished by one) gets [`Completed::lease_lost`] and its
/// late result is dropped: the URL is recorded once, by its holder. A row
/// another transaction has locked is a requeue of an expired lease or a
/// forget in progress: lost too (`SKIP LOCKED`, so a batch never waits on
/// it and never deadlocks with a requeue).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn crawl_complete_in(
    tx: &mut PgConnection,
    worker: Option<&str>,
    decisions: &[DecisionRecord],
    fetch: Option<&FetchRecord>,
    page: Option<(&PageRecord, &mut [LinkRecord])>,
    outcome: &FrontierOutcome,
    frontier_id: i64,
    budget: LinkBudget,
    consent: Option<&ConsentRecord>,
    now: i64,
) -> Result<Completed, StoreError> {
    lock_log(&mut *tx).await?;
    if let Some(me) = worker {
        let held: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM frontier WHERE id = $1 AND state = 'in_flight' AND lease_owner = $2
             FOR UPDATE SKIP LOCKED",
        )
        .bind(frontier_id)
        .bind(me)
        .fetch_optional(&mut *tx)
        .await?;
        if held.is_none() {
            tracing::warn!(
                frontier_id,
                worker = me,
                "lease lost before commit (expired and re-queued, or finished by another worker): result dropped"
            );
            return Ok(Completed {
                lease_lost: true,
                ..Completed::default()
            });
        }
    }
    let mut done = Completed::default();
    let mut covered: Vec<(&str, i64)> = Vec::new();
    for d in decisions {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO robots_decisions (run_id, frontier_id, url, robots_version_id, allowed, matched_line, rule, reason, decided_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .bind(d.run_id)
        .bind(d.frontier_id)
        .bind(&d.url)
        .bind(d.robots_version_id)
        .bind(i64::from(d.allowed))
        .bind(d.matched_line)
        .bind(&d.rule)
        .bind(&d.reason)
        .bind(d.decided_at)
        .fetch_one(&mut *tx)
        .await?;
        done.decision_id.get_or_insert(id);
        let payload = d.event_payload();
        append_event(
            &mut *tx,
            d.decided_at,
            "robots.decision",
            &d.url,
            &payload,
            &[("robots_decisions", id)],
        )
        .await?;
    }
    if let Some(f) = fetch {
        let id = insert_fetch_in(&mut *tx, f, f.frontier_id, f.attempt, done.decision_id).await?;
        done.fetch_id = Some(id);
    }
    if let (Some((p, links)), Some(fetch_id)) = (page, done.fetch_id) {
        let dup: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM pages WHERE content_sha256 = $1 ORDER BY id LIMIT 1",
        )
        .bind(&p.content_sha256)
        .fetch_optional(&mut *tx)
        .await?;
        let page_id: i64 = sqlx::query_scalar(
            "INSERT INTO pages (frontier_id, fetch_id, url, title, author, site_name, published_at, modified_at,
                 canonical_url, language, meta_robots, text, text_sha256, extractor_version, content_sha256, duplicate_of,
                 nosnippet_spans)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) RETURNING id",
        )
        .bind(frontier_id)
        .bind(fetch_id)
        .bind(&p.url)
        .bind(&p.title)
        .bind(&p.author)
        .bind(&p.site_name)
        .bind(&p.published_at)
        .bind(&p.modified_at)
        .bind(&p.canonical_url)
        .bind(&p.language)
        .bind(&p.meta_robots)
        .bind(&p.text)
        .bind(&p.text_sha256)
        .bind(&p.extractor_version)
        .bind(&p.content_sha256)
        .bind(dup)
        .bind(spans_json(&p.nosnippet_spans))
        .fetch_one(&mut *tx)
        .await?;
        done.page_id = Some(page_id);
        done.duplicate_of = dup;
        if let Some(raw) = &p.raw {
            done.raw_fetch_id = Some(super::raw::insert_raw_in(&mut *tx, fetch_id, raw).await?);
        }
        let run_id = fetch.map(|f| f.run_id).unwrap_or_default();
        let (new_urls, rows) = crate::store::crawl::queue_and_insert_links(
            &mut *tx, page_id, 0, links, budget, run_id, now,
        )
        .await?;
        done.new_urls += new_urls;
        covered.extend(rows);
    }
    if let (Some(f), Some(fetch_id)) = (fetch, done.fetch_id) {
        let (payload, refs) = crate::store::crawl::fetch_event(f, fetch_id, &done, &covered);
        append_event(
            &mut *tx,
            f.fetched_at,
            "fetch",
            &f.requested_url,
            &payload,
            &refs,
        )
        .await?;
    }
    if let Some(c) = consent {
        let page_id = done.page_id.or(c.page_id);
        super::evidence::insert_consent_in(&mut *tx, c, page_id, done.fetch_id).await?;
    }
    let (state, last_error, skip_reason, next_at) = match outcome {
        FrontierOutcome::Done => (FrontierState::Done, None, None, 0),
        FrontierOutcome::Failed(e) => (FrontierState::Failed, Some(e.clone()), None, 0),
        FrontierOutcome::Skipped(r) => (FrontierState::Skipped, None, Some(r.clone()), 0),
        FrontierOutcome::Retry { at, error } => {
            (FrontierState::Queued, Some(error.clone()), None, *at)
        }
    };
    sqlx::query(
        "UPDATE frontier SET state = $1, last_error = coalesce($2, last_error), skip_reason = $3,
             next_attempt_at = $4, claimed_by_run = NULL, lease_owner = NULL, lease_until = NULL,
             updated_at = $5
         WHERE id = $6",
    )
    .bind(state.as_str())
    .bind(last_error)
    .bind(skip_reason)
    .bind(next_at)
    .bind(now)
    .bind(frontier_id)
    .execute(&mut *tx)
    .await?;
    Ok(done)
}

pub(crate) async fn insert_fetch_in(
    conn: &mut PgConnection,
    f: &FetchRecord,
    frontier_id: i64,
    attempt: i64,
    decision_id: Option<i64>,
) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO fetches (run_id, frontier_id, attempt, requested_url, final_url, redirect_chain, fetched_at,
             elapsed_ms, status, user_agent, response_headers, content_type, body_sha256, body_bytes, truncated,
             declared_charset, detected_charset, error_kind, error_detail, robots_decision_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)
         RETURNING id",
    )
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
    .bind(i64::from(f.truncated))
    .bind(&f.declared_charset)
    .bind(&f.detected_charset)
    .bind(&f.error_kind)
    .bind(&f.error_detail)
    .bind(decision_id)
    .fetch_one(&mut *conn)
    .await?)
}

/// The statements of [`crate::store::crawl::queue_and_insert_links`] (the
/// link budget, written once for both backends) on PostgreSQL.
impl crate::store::crawl::LinkRows for PgConnection {
    async fn known_among(&mut self, norms: &[&str]) -> Result<HashSet<String>, StoreError> {
        if norms.is_empty() {
            return Ok(HashSet::new());
        }
        Ok(sqlx::query_scalar::<_, String>(
            "SELECT url_norm FROM frontier WHERE url_norm = ANY($1)",
        )
        .bind(norms)
        .fetch_all(&mut *self)
        .await?
        .into_iter()
        .collect())
    }
    async fn origin_count(&mut self, origin: &str) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT count(*) FROM frontier WHERE origin = $1")
                .bind(origin)
                .fetch_one(&mut *self)
                .await?,
        )
    }
    async fn shape_count(&mut self, origin: &str, shape: &str) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar(
                "SELECT count(*) FROM frontier WHERE origin = $1 AND url_shape = $2",
            )
            .bind(origin)
            .bind(shape)
            .fetch_one(&mut *self)
            .await?,
        )
    }
    async fn insert_entry(
        &mut self,
        run_id: i64,
        e: &crate::store::frontier::NewEntry,
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        super::frontier::insert_entry(self, run_id, e, now).await
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

/// Inserts a page's links in link order; returns their `rowid`s.
async fn insert_links(
    conn: &mut PgConnection,
    page_id: i64,
    first_ordinal: i64,
    links: &[LinkRecord],
) -> Result<Vec<i64>, StoreError> {
    let mut ids = Vec::with_capacity(links.len());
    for (i, l) in links.iter().enumerate() {
        let followed = l.candidate.is_some() && l.skip_reason.is_none();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO links (page_id, ordinal, target_url, anchor_text, rel, followed, skip_reason)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING rowid",
        )
        .bind(page_id)
        .bind(first_ordinal.saturating_add(i64::try_from(i).unwrap_or(i64::MAX)))
        .bind(&l.target_url)
        .bind(&l.anchor_text)
        .bind(&l.rel)
        .bind(i64::from(followed))
        .bind(&l.skip_reason)
        .fetch_one(&mut *conn)
        .await?;
        ids.push(id);
    }
    Ok(ids)
}

fn spans_json(spans: &[(usize, usize)]) -> String {
    let pairs: Vec<[usize; 2]> = spans.iter().map(|&(a, b)| [a, b]).collect();
    serde_json::to_string(&pairs).expect("integers serialize")
}

pub(crate) async fn crawl_origin_counts(
    pool: &PgPool,
) -> Result<Vec<(String, String, i64)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT origin, state, count(*) FROM frontier GROUP BY origin, state ORDER BY origin, state",
    )
    .fetch_all(pool)
    .await?)
}

pub(crate) async fn crawl_error_counts(
    pool: &PgPool,
    run_id: i64,
) -> Result<Vec<(String, i64)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT error_kind, count(*) FROM fetches WHERE run_id = $1 AND error_kind IS NOT NULL
         GROUP BY error_kind ORDER BY count(*) DESC, error_kind",
    )
    .bind(run_id)
    .fetch_all(pool)
    .await?)
}
