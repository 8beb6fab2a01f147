//! Per-origin politeness shared by every crawl worker (issue #20): the
//! `crawl_origins` row of an origin is its request slot. A worker takes it
//! atomically (free, or its holder's hold expired, and `next_allowed_at`
//! reached), sends one request, and gives it back with `next_allowed_at` =
//! now + the origin's delay. All times are the database's clock
//! ([`super::frontier::DB_NOW_MS`]), so N workers on N machines together
//! keep one request at a time per origin and its Crawl-delay.

use sqlx::postgres::PgPool;

use super::frontier::DB_NOW_MS;
use crate::store::StoreError;

/// What an attempt to take an origin's slot found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotTry {
    /// Taken: send the request, then release.
    Taken,
    /// Not yet: try again in about this many milliseconds.
    Wait(i64),
}

async fn ensure_row(pool: &PgPool, origin: &str) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO crawl_origins (origin) VALUES ($1) ON CONFLICT (origin) DO NOTHING")
        .bind(origin)
        .execute(pool)
        .await?;
    Ok(())
}

/// Tries to take `origin`'s request slot for `worker`, held for at most
/// `hold_ms` (a worker that dies mid-request frees it then).
pub(crate) async fn try_take(
    pool: &PgPool,
    origin: &str,
    worker: &str,
    hold_ms: i64,
) -> Result<SlotTry, StoreError> {
    ensure_row(pool, origin).await?;
    let sql = format!(
        "WITH now AS (SELECT {DB_NOW_MS} AS ms)
         UPDATE crawl_origins SET holder = $2, held_until = now.ms + $3 FROM now
         WHERE origin = $1 AND (holder IS NULL OR held_until < now.ms) AND next_allowed_at <= now.ms
         RETURNING 1"
    );
    let taken: Option<i32> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(origin)
        .bind(worker)
        .bind(hold_ms)
        .fetch_optional(pool)
        .await?;
    if taken.is_some() {
        return Ok(SlotTry::Taken);
    }
    let sql = format!(
        "SELECT CASE WHEN holder IS NOT NULL AND held_until >= {DB_NOW_MS}
                     THEN 25
                     ELSE greatest(next_allowed_at - {DB_NOW_MS}, 1) END
         FROM crawl_origins WHERE origin = $1"
    );
    let wait: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(origin)
        .fetch_optional(pool)
        .await?;
    Ok(SlotTry::Wait(wait.unwrap_or(25)))
}

/// Gives `origin`'s slot back: the next request may start `delay_ms` after
/// now, never sooner than a hold already set.
pub(crate) async fn release(
    pool: &PgPool,
    origin: &str,
    worker: &str,
    delay_ms: i64,
) -> Result<(), StoreError> {
    let sql = format!(
        "UPDATE crawl_origins SET holder = NULL, held_until = 0,
             next_allowed_at = greatest(next_allowed_at, {DB_NOW_MS} + $3)
         WHERE origin = $1 AND holder = $2"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(origin)
        .bind(worker)
        .bind(delay_ms)
        .execute(pool)
        .await?;
    Ok(())
}

/// Keeps `origin` closed for every worker for `after_ms` from now
/// (Retry-After, back-off, a Crawl-delay just learnt).
pub(crate) async fn hold(pool: &PgPool, origin: &str, after_ms: i64) -> Result<(), StoreError> {
    ensure_row(pool, origin).await?;
    let sql = format!(
        "UPDATE crawl_origins SET next_allowed_at = greatest(next_allowed_at, {DB_NOW_MS} + $2)
         WHERE origin = $1"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(origin)
        .bind(after_ms)
        .execute(pool)
        .await?;
    Ok(())
}

/// Tries to become the one worker fetching `origin`'s robots.txt, for at
/// most `hold_ms`. False: another worker is fetching it.
pub(crate) async fn try_take_robots(
    pool: &PgPool,
    origin: &str,
    worker: &str,
    hold_ms: i64,
) -> Result<bool, StoreError> {
    ensure_row(pool, origin).await?;
    let sql = format!(
        "UPDATE crawl_origins SET robots_holder = $2, robots_until = {DB_NOW_MS} + $3
         WHERE origin = $1 AND (robots_holder IS NULL OR robots_holder = $2 OR robots_until < {DB_NOW_MS})
         RETURNING 1"
    );
    let taken: Option<i32> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(origin)
        .bind(worker)
        .bind(hold_ms)
        .fetch_optional(pool)
        .await?;
    Ok(taken.is_some())
}

/// Ends this worker's robots.txt fetch of `origin`.
pub(crate) async fn release_robots(
    pool: &PgPool,
    origin: &str,
    worker: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE crawl_origins SET robots_holder = NULL, robots_until = 0
         WHERE origin = $1 AND robots_holder = $2",
    )
    .bind(origin)
    .bind(worker)
    .execute(pool)
    .await?;
    Ok(())
}
