//! `forget` on PostgreSQL: the erasure itself is
//! [`crate::store::forget::forget_in`] (one implementation for both
//! backends) on a transaction holding the audit log's lock; what this adds
//! is leaving no byte behind.
//!
//! PostgreSQL keeps the old version of every updated or deleted row in the
//! table's files (MVCC) until a vacuum, and a plain `VACUUM` only marks
//! their space free for reuse: the page is compacted but the bytes of the
//! dead tuples stay in the free gap, and a GIN index keeps its keys. So
//! after the commit each table `forget` wrote is rewritten with `VACUUM
//! FULL` (new files, indexes rebuilt; the old files are truncated at once
//! and unlinked at the next checkpoint), after waiting for the sessions
//! that hold a snapshot from before the erasure (whose row versions the
//! rewrite would have to keep) to end. The price: each rewrite holds an
//! exclusive lock on its table for as long as it takes (crawlers and
//! readers wait), proportional to the table's size. Then a `CHECKPOINT`
//! when the role may run one (superuser or `pg_checkpoint`): the WAL still
//! holds the erased rows in its segments until they are recycled, which a
//! checkpoint allows but does not force.

use std::time::{Duration, Instant};

use sqlx::postgres::PgPool;

use crate::store::StoreError;
use crate::store::forget::{ERASED_TABLES, forget_in};
use crate::store::provenance::{Forgotten, Redact};

/// `VACUUM FULL` (true) or a plain `VACUUM` of the erased tables.
const FULL: bool = true;

pub(crate) async fn forget(
    pool: &PgPool,
    url_norms: &[String],
    origin: Option<&str>,
    reason: &str,
    now: i64,
    redact: Redact<'_>,
) -> Result<Forgotten, StoreError> {
    let mut tx = pool.begin().await?;
    let mut out = forget_in(&mut *tx, url_norms, origin, reason, now, redact).await?;
    // The erasure's transaction id, to tell the snapshots taken before it.
    let xid: String = sqlx::query_scalar("SELECT pg_current_xact_id()::xid::text")
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    if out.urls.is_empty() {
        out.checkpointed = true;
        out.old_versions_vacuumed = true;
        return Ok(out);
    }
    out.old_versions_vacuumed = wait_for_older_snapshots(pool, &xid, SNAPSHOT_WAIT).await?;
    vacuum_erased(pool).await?;
    // Only a superuser or a member of pg_checkpoint may; anyone else leaves
    // it to the server's own checkpoints (reported as not checkpointed).
    out.checkpointed = sqlx::raw_sql("CHECKPOINT").execute(pool).await.is_ok();
    Ok(out)
}

/// How long `forget` waits for other sessions' snapshots from before the
/// erasure to end before it vacuums anyway.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(30);

/// Waits until no other session of the cluster holds a snapshot taken
/// before transaction `xid` committed, for at most `limit`: `VACUUM FULL`
/// copies the row versions such a snapshot may still see into the new
/// files (a long report, a repeatable-read transaction, an autovacuum's
/// ANALYZE), so vacuuming under one would keep the erased text. Sessions
/// of every database count: a test found one in another database of the
/// same cluster keeping the erased rows. True when none is left; false
/// when one outlived the wait (the erased versions stay until a later
/// vacuum). Sessions of other roles whose snapshots the caller may not
/// see (without `pg_read_all_stats`) are not waited for.
async fn wait_for_older_snapshots(
    pool: &PgPool,
    xid: &str,
    limit: Duration,
) -> Result<bool, StoreError> {
    let until = Instant::now() + limit;
    loop {
        let older: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
              WHERE pid <> pg_backend_pid() AND backend_xmin IS NOT NULL AND age(backend_xmin) >= age($1::xid)",
        )
        .bind(xid)
        .fetch_one(pool)
        .await?;
        if older == 0 {
            return Ok(true);
        }
        if Instant::now() >= until {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Rewrites the tables `forget` writes so no dead row version remains.
async fn vacuum_erased(pool: &PgPool) -> Result<(), StoreError> {
    let verb = if FULL { "VACUUM (FULL)" } else { "VACUUM" };
    for t in ERASED_TABLES {
        // `t` is one of a fixed list of table names.
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("{verb} {t}")))
            .execute(pool)
            .await?;
    }
    Ok(())
}
