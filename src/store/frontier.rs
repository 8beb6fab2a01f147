//! The crawl frontier: queue, claim, re-queue. Each function is one
//! statement or one short transaction, so a killed process leaves the table
//! in a state the next run can resume from.

use super::{Store, StoreError};

/// One frontier row as the scheduler needs it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct FrontierEntry {
    pub id: i64,
    pub url: String,
    pub origin: String,
    pub depth: i64,
    pub attempts: i64,
}

/// A URL to add to the frontier.
#[derive(Debug, Clone)]
pub struct NewEntry {
    pub url: String,
    pub url_norm: String,
    pub origin: String,
    pub depth: i64,
    pub discovered_from: Option<i64>,
    /// The URL's shape for crawl budgets (`crawl::budget::shape`).
    pub shape: Option<String>,
}

/// Who claims frontier entries, and for how long (PostgreSQL: a claim
/// not finished within `ms` goes back to the queue for other workers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The worker's id (`--worker-id`, default `host:pid`).
    pub worker: String,
    /// Lease length in milliseconds (`--lease-secs`).
    pub ms: i64,
}

/// Counts of frontier rows by state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FrontierCounts {
    pub queued: i64,
    pub in_flight: i64,
    pub done: i64,
    pub failed: i64,
    pub skipped: i64,
}

/// Queued work of one origin that waits (summary of a run that ended with
/// work left): how many entries, when the first may be retried, and the
/// last error recorded on one of them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct Waiting {
    pub origin: String,
    pub queued: i64,
    /// Unix seconds of the earliest next attempt.
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
}

impl Store {
    /// Marks `failed` every claim left `in_flight` that has been claimed
    /// `max_attempts` times or more: runs died with it in flight that often,
    /// so it is what kills them (quarantine), and it is never re-queued.
    pub async fn frontier_quarantine_in_flight(
        &self,
        max_attempts: i64,
        now: i64,
    ) -> Result<u64, StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg::frontier::quarantine_expired(pg, max_attempts, now).await;
        }
        let r = sqlx::query(
            "UPDATE frontier SET state = 'failed', claimed_by_run = NULL, updated_at = ?,
                 last_error = 'quarantined: in flight when ' || attempts || ' runs stopped; not retried'
             WHERE state = 'in_flight' AND attempts >= ?",
        )
        .bind(now)
        .bind(max_attempts)
        .execute(self.pool()?)
        .await?;
        Ok(r.rows_affected())
    }

    /// Releases the claims `run_id` holds (a run stopped on request): back
    /// to `queued`, the attempt not counted.
    pub async fn frontier_release_run(&self, run_id: i64, now: i64) -> Result<u64, StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg::frontier::release_run(pg, run_id, now).await;
        }
        let r = sqlx::query(
            "UPDATE frontier SET state = 'queued', claimed_by_run = NULL, updated_at = ?,
                 attempts = max(attempts - 1, 0)
             WHERE state = 'in_flight' AND claimed_by_run = ?",
        )
        .bind(now)
        .bind(run_id)
        .execute(self.pool()?)
        .await?;
        Ok(r.rows_affected())
    }

    /// Gives back claims of `run_id` that were never started (entries
    /// claimed ahead for an origin, [`Store::frontier_claim_ready`]'s
    /// `per_origin`): `queued` again, the attempt not counted, due no
    /// earlier than `not_before` (the origin's deferral, if any).
    pub async fn frontier_release(
        &self,
        run_id: i64,
        ids: &[i64],
        now: i64,
        not_before: Option<i64>,
    ) -> Result<u64, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        if let Some(pg) = self.pg() {
            return super::pg::frontier::release(pg, run_id, ids, now, not_before).await;
        }
        let ids = serde_json::Value::from(ids.to_vec()).to_string();
        let r = sqlx::query(
            "UPDATE frontier SET state = 'queued', claimed_by_run = NULL, updated_at = ?1,
                 attempts = max(attempts - 1, 0),
                 next_attempt_at = max(next_attempt_at, coalesce(?2, 0))
             WHERE id IN (SELECT value FROM json_each(?3))
               AND state = 'in_flight' AND claimed_by_run = ?4",
        )
        .bind(now)
        .bind(not_before)
        .bind(ids)
        .bind(run_id)
        .execute(self.pool()?)
        .await?;
        Ok(r.rows_affected())
    }

    /// Queued entries of `origin` wait until at least `until` (Retry-After,
    /// back-off, an unreachable robots.txt).
    pub async fn frontier_defer_origin(&self, origin: &str, until: i64) -> Result<u64, StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg::frontier::defer_origin(pg, origin, until).await;
        }
        let r = sqlx::query(
            "UPDATE frontier SET next_attempt_at = ?
             WHERE origin = ? AND state = 'queued' AND next_attempt_at < ?",
        )
        .bind(until)
        .bind(origin)
        .bind(until)
        .execute(self.pool()?)
        .await?;
        Ok(r.rows_affected())
    }

    /// Queued work per origin, earliest first.
    pub async fn frontier_waiting(&self) -> Result<Vec<Waiting>, StoreError> {
        Ok(on_pool!(
            self,
            fetch_all,
            sqlx::query_as(
                "SELECT origin, count(*) AS queued, min(next_attempt_at) AS next_attempt_at,
                        (SELECT f2.last_error FROM frontier f2
                          WHERE f2.origin = f.origin AND f2.state = 'queued' AND f2.last_error IS NOT NULL
                          ORDER BY f2.updated_at DESC, f2.id DESC LIMIT 1) AS last_error
                 FROM frontier f WHERE state = 'queued' GROUP BY origin ORDER BY 3, origin",
            )
        ))
    }

    /// Puts back to `queued` every claim left `in_flight` by a run that died
    /// (kill -9, power loss). Returns how many were re-queued.
    pub async fn frontier_requeue_in_flight(&self) -> Result<u64, StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg::frontier::requeue_expired(pg).await;
        }
        let r = sqlx::query(
            "UPDATE frontier SET state = 'queued', claimed_by_run = NULL WHERE state = 'in_flight'",
        )
        .execute(self.pool()?)
        .await?;
        Ok(r.rows_affected())
    }

    /// Adds seeds (idempotent on the normalised URL). Returns the ids of the
    /// rows that were newly inserted.
    pub async fn frontier_add_seeds(
        &self,
        run_id: i64,
        seeds: &[NewEntry],
        now: i64,
    ) -> Result<u64, StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg::frontier::add_seeds(pg, run_id, seeds, now).await;
        }
        let mut tx = self.pool()?.begin().await?;
        let mut added = Vec::new();
        for s in seeds {
            if let Some(id) = insert_entry(&mut tx, run_id, s, now).await? {
                added.push(("frontier", id));
            }
        }
        if !added.is_empty() {
            let ids: Vec<i64> = added.iter().map(|&(_, id)| id).collect();
            super::audit::append_event(
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

    /// Up to `limit` queued entries whose next attempt is due at `now`, in
    /// breadth-first order (depth, then discovery order).
    pub async fn frontier_ready(
        &self,
        now: i64,
        limit: i64,
    ) -> Result<Vec<FrontierEntry>, StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg::frontier::ready(pg, now, limit).await;
        }
        Ok(sqlx::query_as(READY)
            .bind(now)
            .bind(limit)
            .fetch_all(self.pool()?)
            .await?)
    }

    /// The earliest `next_attempt_at` of a queued entry, if any is queued.
    pub async fn frontier_next_due(&self) -> Result<Option<i64>, StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg::frontier::next_due(pg).await;
        }
        let v: Option<i64> =
            sqlx::query_scalar("SELECT min(next_attempt_at) FROM frontier WHERE state = 'queued'")
                .fetch_one(self.pool()?)
                .await?;
        Ok(v)
    }

    /// Claims one queued entry for `run_id`. False when another claimer won
    /// or it is no longer queued. On PostgreSQL the claim is a lease of
    /// `lease.ms` for worker `lease.worker` (`FOR UPDATE SKIP LOCKED`); an
    /// SQLite corpus has one crawler at a time and keeps no lease.
    pub async fn frontier_claim(
        &self,
        id: i64,
        run_id: i64,
        now: i64,
        lease: &Lease,
    ) -> Result<bool, StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg::frontier::claim(pg, id, run_id, now, &lease.worker, lease.ms).await;
        }
        let r = sqlx::query(
            "UPDATE frontier SET state = 'in_flight', claimed_by_run = ?, attempts = attempts + 1, updated_at = ?
             WHERE id = ? AND state = 'queued'",
        )
        .bind(run_id)
        .bind(now)
        .bind(id)
        .execute(self.pool()?)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Frontier row counts by state.
    pub async fn frontier_counts(&self) -> Result<FrontierCounts, StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg::frontier::counts(pg).await;
        }
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, count(*) FROM frontier GROUP BY state")
                .fetch_all(self.pool()?)
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
}

/// The state of a frontier row, as stored in `frontier.state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FrontierState {
    Queued,
    InFlight,
    Done,
    Failed,
    Skipped,
}

impl FrontierState {
    pub const ALL: [FrontierState; 5] = [
        FrontierState::Queued,
        FrontierState::InFlight,
        FrontierState::Done,
        FrontierState::Failed,
        FrontierState::Skipped,
    ];

    /// The state as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            FrontierState::Queued => "queued",
            FrontierState::InFlight => "in_flight",
            FrontierState::Done => "done",
            FrontierState::Failed => "failed",
            FrontierState::Skipped => "skipped",
        }
    }
}

impl std::str::FromStr for FrontierState {
    type Err = StoreError;

    /// An unknown stored state is a corrupt row, never a silent default.
    fn from_str(s: &str) -> Result<FrontierState, StoreError> {
        FrontierState::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| StoreError::Corrupt {
                table: "frontier",
                column: "state",
                detail: format!("unknown state {s:?}"),
            })
    }
}

/// [`insert_entry`]'s statement (the crawl writer's direct connection
/// appends `RETURNING rowid, *` to it): forgotten URLs (`byline forget`)
/// are never crawled again.
pub(crate) const INSERT_ENTRY: &str = "INSERT INTO frontier (url, url_norm, origin, depth, discovered_from, first_run_id, state, updated_at, url_shape)
         SELECT ?, ?, ?, ?, ?, ?, 'queued', ?, ?
         WHERE NOT EXISTS (SELECT 1 FROM tombstones WHERE url_sha256 = ?)
         ON CONFLICT (url_norm) DO NOTHING";

/// Frontier rows of one origin with one URL shape (crawl budget).
pub(crate) const SHAPE_COUNT: &str =
    "SELECT count(*) FROM frontier WHERE origin = ? AND url_shape = ?";

/// Frontier rows of one origin (the per-origin URL cap).
pub(crate) const ORIGIN_COUNT: &str = "SELECT count(*) FROM frontier WHERE origin = ?";

/// Inserts one entry unless its normalised URL is known. Returns the new
/// row's id if added (the caller's audit event must cover it).
pub(crate) async fn insert_entry(
    conn: &mut sqlx::SqliteConnection,
    run_id: i64,
    e: &NewEntry,
    now: i64,
) -> Result<Option<i64>, StoreError> {
    let r = sqlx::query(INSERT_ENTRY)
        .bind(&e.url)
        .bind(&e.url_norm)
        .bind(&e.origin)
        .bind(e.depth)
        .bind(e.discovered_from)
        .bind(run_id)
        .bind(now)
        .bind(&e.shape)
        // Forgotten URLs (`byline forget`) are never crawled again.
        .bind(super::provenance::url_key(&e.url_norm))
        .execute(&mut *conn)
        .await?;
    Ok((r.rows_affected() == 1).then(|| r.last_insert_rowid()))
}

/// Number of frontier rows of one origin with one URL shape (crawl budget).
pub(crate) async fn shape_count(
    conn: &mut sqlx::SqliteConnection,
    origin: &str,
    shape: &str,
) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(SHAPE_COUNT)
        .bind(origin)
        .bind(shape)
        .fetch_one(&mut *conn)
        .await?)
}

/// Number of frontier rows for one origin (for the per-origin URL cap).
pub(crate) async fn origin_count(
    conn: &mut sqlx::SqliteConnection,
    origin: &str,
) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(ORIGIN_COUNT)
        .bind(origin)
        .fetch_one(&mut *conn)
        .await?)
}

/// [`Store::frontier_ready`]'s query. `LIMIT CAST(? AS BIGINT)`, not
/// `LIMIT ?`: SQLite 3.51 reads a bare bound LIMIT as a constant when it
/// plans the statement and marks the statement to be re-planned whenever
/// that parameter is bound again, which sqlx does on every execution (the
/// whole query was compiled again per call; issue #26, `sqlite3Reprepare`).
const READY: &str = "SELECT id, url, origin, depth, attempts FROM frontier
     WHERE state = 'queued' AND next_attempt_at <= ?
     ORDER BY depth, id LIMIT CAST(? AS BIGINT)";

/// The scheduler's query ([`Store::frontier_ready_per_origin`]): the
/// distinct origins by a skip-scan of an origin-led index (one index seek per
/// origin), then each origin's first queued due entry in (depth, id) order
/// from `frontier_ready_by_origin`: the same rows as ranking every queued
/// entry per origin, without the sort. The index is named (`INDEXED BY`):
/// without statistics SQLite 3.51 prefers `frontier_by_state` for the
/// subquery, which reads every queued due row of the frontier and sorts them,
/// once per origin (issue #26: slower than the old window query with many
/// origins). The LIMIT is cast for the reason given at [`READY`].
const READY_PER_ORIGIN: &str = "WITH RECURSIVE o(origin) AS (
         SELECT min(origin) FROM frontier
         UNION ALL
         SELECT (SELECT min(f.origin) FROM frontier f WHERE f.origin > o.origin)
         FROM o WHERE o.origin IS NOT NULL)
     SELECT f.id, f.url, f.origin, f.depth, f.attempts FROM o
     JOIN frontier f ON f.id = (
         SELECT g.id FROM frontier g INDEXED BY frontier_ready_by_origin
         WHERE g.origin = o.origin AND g.state = 'queued' AND g.next_attempt_at <= ?
         ORDER BY g.depth, g.id LIMIT 1)
     WHERE o.origin IS NOT NULL
     ORDER BY f.depth, f.id LIMIT CAST(? AS BIGINT)";

/// [`Store::frontier_claim_ready`]'s statement: [`READY_PER_ORIGIN`]'s
/// choice (each origin's first queued due entry in (depth, id) order, the
/// first `limit` of these in that order), leaving out the origins the
/// caller is fetching (a JSON array of origins), claimed in the same
/// statement. One statement per scheduling round instead of the ready
/// query and one autocommit UPDATE per entry (issue #26). The subquery is
/// [`READY_PER_ORIGIN`]'s, so the rows chosen are the ones the two-step
/// form chose; each claim commits before its request is made. The outer
/// WHERE is the id list alone (the subquery only picks queued rows): with
/// `state = 'queued'` beside it SQLite 3.51 scans every queued row through
/// `frontier_by_state` and tests each against the list.
///
/// With `per_origin` above one (`?4`) each origin's first entry is
/// followed by its next ones in the same order, up to `per_origin`, each
/// found by a seek in `frontier_ready_by_origin` after the previous one
/// (same depth and a higher id, else the first of a greater depth); the
/// `limit` (`?5`) keeps every origin's first before any origin's second.
/// The crawler keeps the extra entries claimed for the origin's next
/// requests (issue #26: with few origins, one claim statement, a commit
/// of its own, per page).
const CLAIM_READY: &str = "UPDATE frontier
     SET state = 'in_flight', claimed_by_run = ?1, attempts = attempts + 1, updated_at = ?2
     WHERE id IN (
         WITH RECURSIVE o(origin) AS (
             SELECT min(origin) FROM frontier
             UNION ALL
             SELECT (SELECT min(f.origin) FROM frontier f WHERE f.origin > o.origin)
             FROM o WHERE o.origin IS NOT NULL),
         c(origin, id, depth, n) AS (
             SELECT o.origin, f.id, f.depth, 1 FROM o
             JOIN frontier f ON f.id = (
                 SELECT g.id FROM frontier g INDEXED BY frontier_ready_by_origin
                 WHERE g.origin = o.origin AND g.state = 'queued' AND g.next_attempt_at <= ?2
                 ORDER BY g.depth, g.id LIMIT 1)
             WHERE o.origin IS NOT NULL
               AND o.origin NOT IN (SELECT value FROM json_each(?3))
             UNION ALL
             SELECT c.origin, f.id, f.depth, c.n + 1 FROM c
             JOIN frontier f ON f.id = coalesce(
                 (SELECT g.id FROM frontier g INDEXED BY frontier_ready_by_origin
                  WHERE g.origin = c.origin AND g.state = 'queued' AND g.next_attempt_at <= ?2
                    AND g.depth = c.depth AND g.id > c.id
                  ORDER BY g.id LIMIT 1),
                 (SELECT g.id FROM frontier g INDEXED BY frontier_ready_by_origin
                  WHERE g.origin = c.origin AND g.state = 'queued' AND g.next_attempt_at <= ?2
                    AND g.depth > c.depth
                  ORDER BY g.depth, g.id LIMIT 1))
             WHERE c.n < ?4)
         SELECT id FROM c ORDER BY n, depth, id LIMIT CAST(?5 AS BIGINT))
     RETURNING id, url, origin, depth, attempts";

impl Store {
    /// Finds and claims, for `run_id`, the next entries to fetch: of each
    /// origin not in `busy`, its first `per_origin` queued entries due at
    /// `now` in breadth-first order (SQLite; PostgreSQL claims one per
    /// origin), at most `limit` in all, every origin's first before any
    /// origin's second, returned in breadth-first order. The entries come back claimed (`in_flight`, `attempts`
    /// counting this claim) and committed, as [`Store::frontier_claim`]
    /// leaves them. On SQLite this is one statement; on PostgreSQL the
    /// ready query and one leased claim per entry
    /// ([`Store::frontier_ready_per_origin`], [`Store::frontier_claim`]),
    /// skipping entries another worker won.
    pub async fn frontier_claim_ready(
        &self,
        run_id: i64,
        now: i64,
        lease: &Lease,
        busy: &[&str],
        limit: usize,
        per_origin: usize,
    ) -> Result<Vec<FrontierEntry>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        if self.pg().is_some() {
            let mut out = Vec::new();
            for mut e in self.frontier_ready_per_origin(now, 512).await? {
                if out.len() >= limit {
                    break;
                }
                if busy.contains(&e.origin.as_str())
                    || !self.frontier_claim(e.id, run_id, now, lease).await?
                {
                    continue;
                }
                e.attempts += 1;
                out.push(e);
            }
            return Ok(out);
        }
        let busy = serde_json::Value::from(busy.to_vec()).to_string();
        let mut rows: Vec<FrontierEntry> = sqlx::query_as(CLAIM_READY)
            .bind(run_id)
            .bind(now)
            .bind(busy)
            .bind(i64::try_from(per_origin.max(1)).unwrap_or(i64::MAX))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(self.pool()?)
            .await?;
        // RETURNING's order is not the subquery's.
        rows.sort_by_key(|e| (e.depth, e.id));
        Ok(rows)
    }

    /// Like [`Store::frontier_ready`] but at most one entry per origin (the
    /// first in breadth-first order), so a big origin cannot starve others.
    pub async fn frontier_ready_per_origin(
        &self,
        now: i64,
        limit: i64,
    ) -> Result<Vec<FrontierEntry>, StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg::frontier::ready_per_origin(pg, now, limit).await;
        }
        Ok(sqlx::query_as(READY_PER_ORIGIN)
            .bind(now)
            .bind(limit)
            .fetch_all(self.pool()?)
            .await?)
    }
}

/// Shared per-origin politeness (PostgreSQL; see [`super::pg::origins`]).
/// An SQLite corpus has one crawler at a time, which keeps its politeness
/// in memory: these answer [`StoreError::Unsupported`] there.
impl Store {
    /// Whether per-origin politeness and robots.txt fetches are coordinated
    /// in the database (many workers share this corpus).
    pub fn shared_politeness(&self) -> bool {
        self.pg().is_some()
    }

    #[track_caller]
    fn pg_only(&self) -> Result<&sqlx::PgPool, StoreError> {
        self.pg().ok_or_else(|| StoreError::Unsupported {
            at: std::panic::Location::caller().to_string(),
        })
    }

    /// Tries to take `origin`'s request slot for `worker` (held at most
    /// `hold_ms`).
    pub async fn origin_slot_take(
        &self,
        origin: &str,
        worker: &str,
        hold_ms: i64,
    ) -> Result<super::pg::origins::SlotTry, StoreError> {
        super::pg::origins::try_take(self.pg_only()?, origin, worker, hold_ms).await
    }

    /// Gives `origin`'s slot back; the next request waits `delay_ms`.
    pub async fn origin_slot_release(
        &self,
        origin: &str,
        worker: &str,
        delay_ms: i64,
    ) -> Result<(), StoreError> {
        super::pg::origins::release(self.pg_only()?, origin, worker, delay_ms).await
    }

    /// Keeps `origin` closed for every worker for `after_ms`.
    pub async fn origin_hold(&self, origin: &str, after_ms: i64) -> Result<(), StoreError> {
        super::pg::origins::hold(self.pg_only()?, origin, after_ms).await
    }

    /// Tries to become the one worker fetching `origin`'s robots.txt.
    pub async fn robots_fetch_take(
        &self,
        origin: &str,
        worker: &str,
        hold_ms: i64,
    ) -> Result<bool, StoreError> {
        super::pg::origins::try_take_robots(self.pg_only()?, origin, worker, hold_ms).await
    }

    /// Ends this worker's robots.txt fetch of `origin`.
    pub async fn robots_fetch_release(&self, origin: &str, worker: &str) -> Result<(), StoreError> {
        super::pg::origins::release_robots(self.pg_only()?, origin, worker).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frontier entry of `origin` at `path`, `depth` links from a seed.
    fn entry(origin: &str, path: &str, depth: i64) -> NewEntry {
        NewEntry {
            url: format!("{origin}{path}"),
            url_norm: format!("{origin}{path}"),
            origin: origin.to_string(),
            depth,
            discovered_from: None,
            shape: None,
        }
    }

    /// A run that queued `entries` (as seeds, at their depths); its id.
    async fn queued(store: &Store, entries: &[NewEntry]) -> i64 {
        let run = store
            .crawl_run_start(&crate::store::crawl::RunRecord::for_test(100))
            .await
            .unwrap();
        store.frontier_add_seeds(run, entries, 100).await.unwrap();
        run
    }

    /// A fresh corpus whose run queued `entries`, with `later` not due
    /// before t=500 (the tests claim at t=200): the directory (kept alive),
    /// the store and the run id.
    async fn queued_with_one_later(
        entries: &[NewEntry],
        later: &str,
    ) -> (tempfile::TempDir, Store, i64) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("c.db")).await.unwrap();
        let run = queued(&store, entries).await;
        sqlx::query("UPDATE frontier SET next_attempt_at = 500 WHERE url = ?")
            .bind(later)
            .execute(store.pool().unwrap())
            .await
            .unwrap();
        (dir, store, run)
    }

    fn lease() -> Lease {
        Lease {
            worker: "w".into(),
            ms: 1000,
        }
    }

    /// The plan SQLite (the bundled version) picks for the scheduler query.
    async fn plan(store: &Store) -> Vec<String> {
        use crate::store::probe::{Bind, plan};
        plan(
            store.pool().unwrap(),
            READY_PER_ORIGIN,
            &[Bind::Int(0), Bind::Int(512)],
        )
        .await
    }

    /// Issue #26: each origin's next entry must be one short walk of
    /// `frontier_ready_by_origin`. Left to itself, SQLite 3.51 plans the
    /// per-origin subquery on `frontier_by_state` (every queued due row of
    /// every origin, then a sort, once per origin): the scheduler runs once
    /// per finished URL, and with 50 origins that cost more CPU than the
    /// query it replaced. The index holds queued rows only (a claimed URL
    /// leaves it), so the walk needs no `state` term of its own.
    #[tokio::test]
    async fn scheduler_query_walks_the_per_origin_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("c.db")).await.unwrap();
        let p = plan(&store).await;
        assert!(
            p.iter()
                .any(|d| d.contains("frontier_ready_by_origin (origin=?)")),
            "{p:#?}"
        );
        assert!(!p.iter().any(|d| d.contains("frontier_by_state")), "{p:#?}");
        // The claiming form chooses its rows the same way.
        use crate::store::probe::Bind;
        let p = crate::store::probe::plan(
            store.pool().unwrap(),
            CLAIM_READY,
            &[
                Bind::Int(1),
                Bind::Int(0),
                Bind::Text("[]"),
                Bind::Int(8),
                Bind::Int(8),
            ],
        )
        .await;
        assert!(
            p.iter()
                .any(|d| d.contains("frontier_ready_by_origin (origin=?)")),
            "{p:#?}"
        );
        assert!(!p.iter().any(|d| d.contains("frontier_by_state")), "{p:#?}");
        // Each further entry of an origin is the next one in the index
        // after the last (a range, not a scan of the origin's entries).
        assert!(
            p.iter()
                .any(|d| d.contains("frontier_ready_by_origin (origin=? AND depth=? AND id>?)")),
            "{p:#?}"
        );
        assert!(
            !p.iter()
                .any(|d| d.starts_with("SCAN f") || d.starts_with("SCAN g")),
            "{p:#?}"
        );
    }

    /// Claimed ahead (issue #26): up to `per_origin` entries of each free
    /// origin in (depth, id) order, the first of every origin before any
    /// origin's second when `limit` cuts; released, they are queued again
    /// with the attempt not counted and no earlier than the origin's wait.
    #[tokio::test]
    async fn claims_ahead_per_origin_and_gives_them_back() {
        let (a, b, c) = ("http://a", "http://b", "http://c");
        let entries = [
            entry(a, "/2", 2),
            entry(a, "/0", 0),
            entry(a, "/1x", 1),
            entry(a, "/1y", 1),
            entry(a, "/later", 1),
            entry(b, "/1", 1),
            entry(b, "/0", 0),
            entry(c, "/0", 0),
        ];
        let (dir, store, run) = queued_with_one_later(&entries, "http://a/later").await;
        let lease = lease();
        let urls =
            |got: &[FrontierEntry]| -> Vec<String> { got.iter().map(|e| e.url.clone()).collect() };
        // Three per origin, c busy; a's entry not yet due is skipped.
        let got = store
            .frontier_claim_ready(run, 200, &lease, &[c], 16, 3)
            .await
            .unwrap();
        assert_eq!(
            urls(&got),
            [
                "http://a/0",
                "http://b/0",
                "http://a/1x",
                "http://a/1y",
                "http://b/1"
            ]
        );
        assert!(got.iter().all(|e| e.attempts == 1));
        // A limit takes every origin's first before anyone's second.
        let store2 = Store::open(&dir.path().join("d.db")).await.unwrap();
        let run2 = queued(&store2, &entries).await;
        let got2 = store2
            .frontier_claim_ready(run2, 200, &lease, &[], 4, 3)
            .await
            .unwrap();
        let mut firsts = urls(&got2);
        firsts.sort();
        assert_eq!(
            firsts,
            ["http://a/0", "http://a/1x", "http://b/0", "http://c/0"]
        );
        // Given back: queued, the attempt not counted, waiting for the
        // origin; another run's claims are not touched.
        let back: Vec<i64> = got.iter().skip(2).map(|e| e.id).collect();
        assert_eq!(
            store
                .frontier_release(run + 1, &back, 210, Some(900))
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            store
                .frontier_release(run, &back, 210, Some(900))
                .await
                .unwrap(),
            3
        );
        assert_eq!(
            store.frontier_release(run, &[], 210, None).await.unwrap(),
            0
        );
        let rows: Vec<(String, String, i64, i64, Option<i64>)> = sqlx::query_as(
            "SELECT url, state, attempts, next_attempt_at, claimed_by_run FROM frontier ORDER BY url",
        )
        .fetch_all(store.pool().unwrap())
        .await
        .unwrap();
        let row = |u: &str| rows.iter().find(|r| r.0 == u).unwrap().clone();
        assert_eq!(
            row("http://a/1x"),
            ("http://a/1x".into(), "queued".into(), 0, 900, None)
        );
        assert_eq!(
            row("http://b/1"),
            ("http://b/1".into(), "queued".into(), 0, 900, None)
        );
        assert_eq!(
            row("http://a/0"),
            ("http://a/0".into(), "in_flight".into(), 1, 0, Some(run))
        );
        // A wait earlier than the entry's own is not shortened.
        assert_eq!(row("http://a/later").3, 500);
    }

    /// Issue #26: the one-statement claim picks what the ready query and
    /// a claim per entry picked: each free origin's first due queued entry
    /// in (depth, id) order, busy origins left out, at most `limit`, in
    /// breadth-first order; and leaves them claimed as `frontier_claim`
    /// did.
    #[tokio::test]
    async fn one_statement_claims_what_ready_and_claim_chose() {
        let (a, b, c, d) = ("http://a", "http://b", "http://c", "http://d");
        let entries = [
            entry(a, "/1", 1),
            entry(a, "/0", 0),
            entry(b, "/2", 2),
            entry(b, "/1", 1),
            entry(c, "/0", 0),
            entry(d, "/later", 0),
            entry(d, "/3", 3),
        ];
        // d's depth-0 entry is not due yet: its depth-3 entry is d's next.
        let (_dir, store, run) = queued_with_one_later(&entries, "http://d/later").await;
        let lease = lease();
        // Both ways on copies of the same frontier.
        let two_step = {
            let mut out = Vec::new();
            for mut e in store.frontier_ready_per_origin(200, 512).await.unwrap() {
                if e.origin != c && out.len() < 2 {
                    e.attempts += 1;
                    out.push(e);
                }
            }
            out
        };
        let got = store
            .frontier_claim_ready(run, 200, &lease, &[c], 2, 1)
            .await
            .unwrap();
        let urls: Vec<&str> = got.iter().map(|e| e.url.as_str()).collect();
        assert_eq!(urls, ["http://a/0", "http://b/1"]);
        assert_eq!(got, two_step);
        assert!(got.iter().all(|e| e.attempts == 1));
        let states: Vec<(String, String, Option<i64>, i64)> = sqlx::query_as(
            "SELECT url, state, claimed_by_run, updated_at FROM frontier ORDER BY url",
        )
        .fetch_all(store.pool().unwrap())
        .await
        .unwrap();
        for (url, state, by, at) in &states {
            if urls.contains(&url.as_str()) {
                assert_eq!((state.as_str(), *by, *at), ("in_flight", Some(run), 200));
            } else {
                assert_eq!(state, "queued", "{url}");
            }
        }
        // The next round: a and b are busy now; c and d are free.
        let got = store
            .frontier_claim_ready(run, 201, &lease, &[a, b], 8, 1)
            .await
            .unwrap();
        let urls: Vec<&str> = got.iter().map(|e| e.url.as_str()).collect();
        assert_eq!(urls, ["http://c/0", "http://d/3"]);
        // Every origin with due work busy: the round claims nothing.
        assert!(
            store
                .frontier_claim_ready(run, 202, &lease, &[a, b, c, d], 8, 1)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .frontier_claim_ready(run, 202, &lease, &[], 0, 1)
                .await
                .unwrap()
                .is_empty()
        );
        // a's second entry once a is free again.
        let got = store
            .frontier_claim_ready(run, 203, &lease, &[], 8, 1)
            .await
            .unwrap();
        let urls: Vec<&str> = got.iter().map(|e| e.url.as_str()).collect();
        assert_eq!(urls, ["http://a/1", "http://b/2"]);
    }

    /// How many times the statements prepared on `conn` were compiled
    /// again (SQLite's `SQLITE_STMTSTATUS_REPREPARE`, summed).
    async fn reprepares(conn: &mut sqlx::SqliteConnection) -> i64 {
        let mut h = conn.lock_handle().await.unwrap();
        let db = h.as_raw_handle().as_ptr();
        let mut total = 0i64;
        // SAFETY: `db` is this connection's handle, held locked for the
        // loop; statements are only read, not finalized.
        unsafe {
            let mut st = libsqlite3_sys::sqlite3_next_stmt(db, std::ptr::null_mut());
            while !st.is_null() {
                total += i64::from(libsqlite3_sys::sqlite3_stmt_status(
                    st,
                    libsqlite3_sys::SQLITE_STMTSTATUS_REPREPARE,
                    0,
                ));
                st = libsqlite3_sys::sqlite3_next_stmt(db, st);
            }
        }
        total
    }

    /// Issue #26: the scheduler's and the index pass's queries, run again
    /// and again as the crawl does, are compiled once, not once per call
    /// (a bare `LIMIT ?` made SQLite re-plan them at every bind).
    #[tokio::test]
    async fn paging_queries_are_not_compiled_again_per_call() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("c.db")).await.unwrap();
        let mut conn = store.pool().unwrap().acquire().await.unwrap();
        for i in 0..5i64 {
            for sql in [READY, READY_PER_ORIGIN] {
                let rows: Vec<FrontierEntry> = sqlx::query_as(sql)
                    .bind(i)
                    .bind(512 + i)
                    .fetch_all(&mut *conn)
                    .await
                    .unwrap();
                assert!(rows.is_empty());
            }
            let rows: Vec<FrontierEntry> = sqlx::query_as(CLAIM_READY)
                .bind(1i64)
                .bind(i)
                .bind(i)
                .bind("[]")
                .bind(8 + i)
                .fetch_all(&mut *conn)
                .await
                .unwrap();
            assert!(rows.is_empty());
            let rows: Vec<crate::store::passages::ToIndexRow> =
                sqlx::query_as(crate::store::passages::PAGES_TO_INDEX)
                    .bind(i)
                    .bind(64 + i)
                    .fetch_all(&mut *conn)
                    .await
                    .unwrap();
            assert!(rows.is_empty());
        }
        assert_eq!(reprepares(&mut conn).await, 0);
        // The same query with a bare `LIMIT ?` (as on main before) is
        // compiled again at every call after a bind.
        let bare = READY.replace("LIMIT CAST(? AS BIGINT)", "LIMIT ?");
        for i in 0..5i64 {
            let rows: Vec<FrontierEntry> = sqlx::query_as(sqlx::AssertSqlSafe(bare.clone()))
                .bind(i)
                .bind(512 + i)
                .fetch_all(&mut *conn)
                .await
                .unwrap();
            assert!(rows.is_empty());
        }
        assert!(reprepares(&mut conn).await >= 4);
    }

    /// Every SQLite statement in the store binds its LIMIT through a CAST
    /// (see above): a bare `LIMIT ?` anywhere would be re-planned at every
    /// call. PostgreSQL's statements (`pg/`) are not affected and not read.
    #[test]
    fn no_sqlite_statement_has_a_bare_bound_limit() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store");
        let mut bare = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (n, line) in text.lines().enumerate() {
                let code = line.trim_start();
                if code.starts_with("//") || code.contains(".replace(") {
                    continue;
                }
                if let Some(at) = code.find(concat!("LIMIT", " ?")) {
                    bare.push(format!("{}:{}: {}", path.display(), n + 1, &code[at..]));
                }
            }
        }
        assert!(bare.is_empty(), "bare bound LIMIT: {bare:#?}");
    }
}
