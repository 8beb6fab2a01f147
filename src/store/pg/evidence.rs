//! Evidence sets, evidence rows, verdicts, policies seen and origin files
//! on PostgreSQL: the crawl's writes of [`crate::store::evidence`] and
//! [`crate::store::verdicts`].

use sqlx::postgres::{PgConnection, PgPool};

use super::audit::{append_event, lock_log};
use crate::policy::evidence::Evidence;
use crate::store::StoreError;
use crate::store::evidence::{ConsentRecord, OriginFile};

fn corrupt(table: &'static str, column: &'static str, detail: impl ToString) -> StoreError {
    StoreError::Corrupt {
        table,
        column,
        detail: detail.to_string(),
    }
}

pub(crate) async fn record_policy(
    pool: &PgPool,
    policy_id: &str,
    sha256: &str,
    body: &[u8],
    now: i64,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    lock_log(&mut tx).await?;
    let rowid: Option<i64> = sqlx::query_scalar(
        "INSERT INTO policies_seen (sha256, policy_id, body, first_seen_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (sha256) DO NOTHING RETURNING rowid",
    )
    .bind(sha256)
    .bind(policy_id)
    .bind(body)
    .bind(now)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(rowid) = rowid {
        let payload = serde_json::json!({"policy_id": policy_id, "sha256": sha256});
        append_event(
            &mut tx,
            now,
            "policy.new",
            policy_id,
            &payload,
            &[("policies_seen", rowid)],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn insert_consent(pool: &PgPool, c: &ConsentRecord) -> Result<i64, StoreError> {
    let mut tx = pool.begin().await?;
    lock_log(&mut tx).await?;
    let set_id = insert_consent_in(&mut tx, c, c.page_id, None).await?;
    tx.commit().await?;
    Ok(set_id)
}

pub(crate) async fn insert_consent_in(
    conn: &mut PgConnection,
    c: &ConsentRecord,
    page_id: Option<i64>,
    fetch_id: Option<i64>,
) -> Result<i64, StoreError> {
    let mut rows = std::borrow::Cow::Borrowed(&c.evidence);
    if let Some(id) = fetch_id {
        let rows = rows.to_mut();
        for &i in &c.page_fetch_rows {
            if let Some(f) = rows.get_mut(i).and_then(|e| e.fetch_ref.as_mut()) {
                f.fetch_id = Some(id);
            }
        }
    }
    let (set_id, ids) = insert_evidence_set_in(
        &mut *conn,
        &c.page_url,
        page_id,
        &c.site_origin,
        c.observed_at,
        &rows,
    )
    .await?;
    crate::store::verdicts::insert_verdicts_in(
        &mut *conn,
        set_id,
        &c.page_url,
        &c.verdicts,
        &ids,
        c.observed_at,
    )
    .await?;
    Ok(set_id)
}

pub(crate) async fn insert_evidence_set_in(
    conn: &mut PgConnection,
    page_url: &str,
    page_id: Option<i64>,
    site_origin: &str,
    observed_at: i64,
    rows: &[Evidence],
) -> Result<(i64, Vec<i64>), StoreError> {
    let set_id: i64 = sqlx::query_scalar(
        "INSERT INTO evidence_sets (page_url, page_id, site_origin, observed_at) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(page_url)
    .bind(page_id)
    .bind(site_origin)
    .bind(observed_at)
    .fetch_one(&mut *conn)
    .await?;
    let mut ids = Vec::with_capacity(rows.len());
    for (i, e) in rows.iter().enumerate() {
        let parsed =
            serde_json::to_string(&e.observation).map_err(|e| corrupt("evidence", "parsed", e))?;
        let fetch_ref = e
            .fetch_ref
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| corrupt("evidence", "fetch_ref", e))?;
        let errors = serde_json::to_string(&e.parse_errors)
            .map_err(|e| corrupt("evidence", "parse_errors", e))?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO evidence (set_id, ordinal, signal, status_label, location, scope, raw, parsed,
                                   fetch_id, fetch_ref, observed_at, expires_at, parse_errors)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
        )
        .bind(set_id)
        .bind(i as i64)
        .bind(&e.signal)
        .bind(e.status_label.as_str())
        .bind(e.location.as_str())
        .bind(e.scope.label())
        .bind(&e.raw)
        .bind(parsed)
        .bind(e.fetch_ref.as_ref().and_then(|f| f.fetch_id))
        .bind(fetch_ref)
        .bind(if e.observed_at == 0 { observed_at } else { e.observed_at })
        .bind(e.expires_at)
        .bind(errors)
        .fetch_one(&mut *conn)
        .await?;
        ids.push(id);
    }
    Ok((set_id, ids))
}

pub(crate) async fn insert_origin_file(pool: &PgPool, f: &OriginFile) -> Result<i64, StoreError> {
    let mut tx = pool.begin().await?;
    lock_log(&mut tx).await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO origin_files (origin, kind, url, status, error, body, body_sha256, fetched_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
    )
    .bind(&f.origin)
    .bind(&f.kind)
    .bind(&f.url)
    .bind(f.status.map(i64::from))
    .bind(&f.error)
    .bind(&f.body)
    .bind(&f.body_sha256)
    .bind(f.fetched_at)
    .bind(f.expires_at)
    .fetch_one(&mut *tx)
    .await?;
    let payload = serde_json::json!({
        "kind": f.kind, "status": f.status, "error": f.error, "body_sha256": f.body_sha256,
    });
    append_event(
        &mut tx,
        f.fetched_at,
        "origin_file.fetch",
        &f.url,
        &payload,
        &[("origin_files", id)],
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}
