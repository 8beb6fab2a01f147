//! The shared frontier on PostgreSQL (issue #20): many workers on many
//! machines claim URLs from one table.
//!
//! A claim is a lease: `lease_owner` (the worker's id) and `lease_until`
//! (milliseconds, the database's clock), taken with `FOR UPDATE SKIP
//! LOCKED`. A worker that dies loses its claims only when their leases
//! expire ([`requeue_expired`]); a worker starting never takes another's
//! live claims. All times that several machines compare are the database's
//! clock ([`DB_NOW_MS`]), so the workers' clocks need not agree.

use sqlx::postgres::{PgConnection, PgPool};

use super::audit::{append_event, lock_log};
use crate::store::StoreError;
use crate::store::frontier::{FrontierCounts, FrontierEntry, FrontierState, NewEntry};

/// The database's clock in unix milliseconds, as SQL.
pub const DB_NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// Quarantines claims whose lease has expired after `max_attempts` claims.
pub(crate) async fn quarantine_expired(
    pool: &PgPool,
    max_attempts: i64,
    now: i64,
) -> Result<u64, StoreError> {
    let sql = format!(
        "UPDATE frontier SET state = 'failed', claimed_by_run = NULL, lease_owner = NULL, lease_until = NULL,
             updated_at = $1,
             last_error = 'quarantined: in flight when ' || attempts || ' runs stopped; not retried'
         WHERE state = 'in_flight' AND attempts >= $2 AND coalesce(lease_until, 0) < {DB_NOW_MS}"
    );
    Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(now)
        .bind(max_attempts)
        .execute(pool)
        .await?
        .rows_affected())
}

/// Puts back to `queued` the claims whose lease has expired (their worker
/// died or lost the database); live claims of other workers stay.
pub(crate) async fn requeue_expired(pool: &PgPool) -> Result<u64, StoreError> {
    let sql = format!(
        "UPDATE frontier SET state = 'queued', claimed_by_run = NULL, lease_owner = NULL, lease_until = NULL
         WHERE state = 'in_flight' AND coalesce(lease_until, 0) < {DB_NOW_MS}"
    );
    Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(pool)
        .await?
        .rows_affected())
}

pub(crate) async fn release_run(pool: &PgPool, run_id: i64, now: i64) -> Result<u64, StoreError> {
    Ok(sqlx::query(
        "UPDATE frontier SET state = 'queued', claimed_by_run = NULL, lease_owner = NULL, lease_until = NULL,
             updated_at = $1, attempts = greatest(attempts - 1, 0)
         WHERE state = 'in_flight' AND claimed_by_run = $2",
    )
    .bind(now)
    .bind(run_id)
    .execute(pool)
    .await?
    .rows_affected())
}

pub(crate) async fn release(
    pool: &PgPool,
    run_id: i64,
    ids: &[i64],
    now: i64,
    not_before: Option<i64>,
) -> Result<u64, StoreError> {
    Ok(sqlx::query(
        "UPDATE frontier SET state = 'queued', claimed_by_run = NULL, lease_owner = NULL, lease_until = NULL,
             updated_at = $1, attempts = greatest(attempts - 1, 0),
             next_attempt_at = greatest(next_attempt_at, coalesce($2, 0))
         WHERE id = ANY($3) AND state = 'in_flight' AND claimed_by_run = $4",
    )
    .bind(now)
    .bind(not_before)
    .bind(ids)
    .bind(run_id)
    .execute(pool)
    .await?
    .rows_affected())
}

pub(crate) async fn defer_origin(
    pool: &PgPool,
    origin: &str,
    until: i64,
) -> Result<u64, StoreError> {
    Ok(sqlx::query(
        "UPDATE frontier SET next_attempt_at = $1
         WHERE origin = $2 AND state = 'queued' AND next_attempt_at < $1",
    )
    .bind(until)
    .bind(origin)
    .execute(pool)
    .await?
    .rows_affected())
}

pub(crate) async fn add_seeds(
    pool: &PgPool,
    run_id: i64,
    seeds: &[NewEntry],
    now: i64,
) -> Result<u64, StoreError> {
    let mut tx = pool.begin().await?;
    lock_log(&mut tx).await?;
    let mut added = Vec::new();
    for s in seeds {
        if let Some(id) = insert_entry(&mut tx, run_id, s, now).await? {
            added.push(("frontier", id));
        }
    }
    if !added.is_empty() {
        let ids: Vec<i64> = added.iter().map(|&(_, id)| id).collect();
        append_event(
            &mut tx,
            now,
            "frontier.seed",
            &format!("run:{run_id}"),
            &serde_json::json!({"run_id": run_id, "frontier_ids": ids}),
            &added,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(added.len() as u64)
}

pub(crate) async fn ready(
    pool: &PgPool,
    now: i64,
    limit: i64,
) -> Result<Vec<FrontierEntry>, StoreError> {
    let rows: Vec<FrontierEntry> = sqlx::query_as(
        "SELECT id, url, origin, depth, attempts FROM frontier
         WHERE state = 'queued' AND next_attempt_at <= $1 ORDER BY depth, id LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// The first due entry of each origin that no worker holds a live claim
/// in (so a worker does not claim a URL only to wait for another's
/// request to the same origin), breadth first.
pub(crate) async fn ready_per_origin(
    pool: &PgPool,
    now: i64,
    limit: i64,
) -> Result<Vec<FrontierEntry>, StoreError> {
    let sql = format!(
        "SELECT id, url, origin, depth, attempts FROM (
             SELECT DISTINCT ON (f.origin) f.id, f.url, f.origin, f.depth, f.attempts FROM frontier f
             WHERE f.state = 'queued' AND f.next_attempt_at <= $1
               AND NOT EXISTS (SELECT 1 FROM frontier g
                               WHERE g.origin = f.origin AND g.state = 'in_flight'
                                 AND coalesce(g.lease_until, 0) >= {DB_NOW_MS})
             ORDER BY f.origin, f.depth, f.id) first
         ORDER BY depth, id LIMIT $2"
    );
    let rows: Vec<FrontierEntry> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(now)
        .bind(limit)
        .fetch_all(pool)
        .await?;
    Ok(rows)
}

/// When the next piece of work may be there: the earliest queued entry's
/// `next_attempt_at`; with nothing queued but claims in flight (other
/// workers', which may add URLs, or a dead worker's, which come back when
/// their lease expires), about a second from now, so the worker polls
/// rather than ends. `None` only when nothing is queued or in flight.
pub(crate) async fn next_due(pool: &PgPool) -> Result<Option<i64>, StoreError> {
    let q: Option<i64> =
        sqlx::query_scalar("SELECT min(next_attempt_at) FROM frontier WHERE state = 'queued'")
            .fetch_one(pool)
            .await?;
    if q.is_some() {
        return Ok(q);
    }
    Ok(sqlx::query_scalar(
        "SELECT extract(epoch from clock_timestamp())::bigint + 1
         WHERE EXISTS (SELECT 1 FROM frontier WHERE state = 'in_flight')",
    )
    .fetch_optional(pool)
    .await?)
}

/// Claims one queued entry for `run_id` and worker `worker` with a lease of
/// `lease_ms` from now (the database's clock). False when another worker
/// holds the row or it is no longer queued.
pub(crate) async fn claim(
    pool: &PgPool,
    id: i64,
    run_id: i64,
    now: i64,
    worker: &str,
    lease_ms: i64,
) -> Result<bool, StoreError> {
    let sql = format!(
        "UPDATE frontier SET state = 'in_flight', claimed_by_run = $2, attempts = attempts + 1,
             updated_at = $3, lease_owner = $4, lease_until = {DB_NOW_MS} + $5
         WHERE id = (SELECT id FROM frontier WHERE id = $1 AND state = 'queued' FOR UPDATE SKIP LOCKED)"
    );
    let r = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(run_id)
        .bind(now)
        .bind(worker)
        .bind(lease_ms)
        .execute(pool)
        .await?;
    Ok(r.rows_affected() == 1)
}

pub(crate) async fn counts(pool: &PgPool) -> Result<FrontierCounts, StoreError> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT state, count(*) FROM frontier GROUP BY state")
            .fetch_all(pool)
            .await?;
    let mut c = FrontierCounts::default();
    for (state, n) in rows {
        match state.parse::<FrontierState>()? {
            FrontierState::Queued => c.queued = n,
            FrontierState::InFlight => c.in_flight = n,
            FrontierState::Done => c.done = n,
            FrontierState::Failed => c.failed = n,
            FrontierState::Skipped => c.skipped = n,
        }
    }
    Ok(c)
}

pub(crate) async fn insert_entry(
    conn: &mut PgConnection,
    run_id: i64,
    e: &NewEntry,
    now: i64,
) -> Result<Option<i64>, StoreError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO frontier (url, url_norm, origin, depth, discovered_from, first_run_id, state, updated_at, url_shape)
         SELECT $1, $2, $3, $4, $5, $6, 'queued', $7, $8
         WHERE NOT EXISTS (SELECT 1 FROM tombstones WHERE url_sha256 = $9)
         ON CONFLICT (url_norm) DO NOTHING RETURNING id",
    )
    .bind(&e.url)
    .bind(&e.url_norm)
    .bind(&e.origin)
    .bind(e.depth)
    .bind(e.discovered_from)
    .bind(run_id)
    .bind(now)
    .bind(&e.shape)
    .bind(crate::store::provenance::url_key(&e.url_norm))
    .fetch_optional(&mut *conn)
    .await?)
}
