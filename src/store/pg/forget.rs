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
//! and unlinked at the next checkpoint). The price: each rewrite holds an
//! exclusive lock on its table for as long as it takes (crawlers and
//! readers wait), proportional to the table's size. Then a `CHECKPOINT`
//! when the role may run one (superuser or `pg_checkpoint`): the WAL still
//! holds the erased rows in its segments until they are recycled, which a
//! checkpoint allows but does not force.

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
    tx.commit().await?;
    if out.urls.is_empty() {
        out.checkpointed = true;
        return Ok(out);
    }
    vacuum_erased(pool).await?;
    // Only a superuser or a member of pg_checkpoint may; anyone else leaves
    // it to the server's own checkpoints (reported as not checkpointed).
    out.checkpointed = sqlx::raw_sql("CHECKPOINT").execute(pool).await.is_ok();
    Ok(out)
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
