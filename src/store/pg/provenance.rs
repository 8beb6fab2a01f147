//! The provenance audit's writers on PostgreSQL (the readers are shared
//! with SQLite: `store::provenance`).

use sqlx::postgres::PgPool;

use super::audit::{append_event, lock_log};
use crate::store::StoreError;
use crate::store::provenance::NewExport;

/// Records a numbered export and its audit event in one transaction. The
/// version is the next number under the log's lock (exports are numbered
/// in log order even with several writers).
pub(crate) async fn record_export(pool: &PgPool, e: &NewExport<'_>) -> Result<i64, StoreError> {
    let mut tx = pool.begin().await?;
    lock_log(&mut tx).await?;
    let version: i64 = sqlx::query_scalar(
        "INSERT INTO exports (version, created_at, format, filters, records, merkle_root, manifest_sha256)
         SELECT COALESCE(MAX(version), 0) + 1, $1, $2, $3, $4, $5, $6 FROM exports
         RETURNING version",
    )
    .bind(e.created_at)
    .bind(e.format)
    .bind(e.filters_json)
    .bind(e.records)
    .bind(e.merkle_root)
    .bind(e.manifest_sha256)
    .fetch_one(&mut *tx)
    .await?;
    let (subject, payload) = e.event(version);
    append_event(
        &mut tx,
        e.created_at,
        "export",
        &subject,
        &payload,
        &[("exports", version)],
    )
    .await?;
    tx.commit().await?;
    Ok(version)
}
