//! Retrieval passages on PostgreSQL: full-text search over the generated
//! `passages.tsv` column (English stemming, title weighted as label A and
//! text as B) where SQLite uses FTS5.
//!
//! The query is the one the index stage builds for FTS5 (`"w1" OR "w2"
//! OR …`, see [`crate::index::fts_query`]), read by `websearch_to_tsquery`,
//! which takes the same syntax: quoted words OR-ed. Ranking is
//! `ts_rank_cd` (cover density) with the text weighted 1.0 and the title
//! 0.3, as FTS5's `bm25(passages_fts, 1.0, 0.3)`; it is negated into
//! [`PassageHit::bm25`] so that lower is better on both backends. The
//! verdict, gone-origin, gone-page, duplicate and audit-coverage filters
//! are the SQLite statements' own SQL ([`CURRENT_VERDICT_JOIN`]), shared so
//! the backends cannot drift apart.

use sqlx::postgres::PgPool;

use crate::store::StoreError;
use crate::store::passages::{
    ALLOWED, CURRENT_VERDICT_JOIN, GoneOrigin, HIT_COLUMNS, HitRow, PassageHit, hit_of,
};

/// `ts_rank_cd` weights `{D, C, B, A}`: text (B) 1.0, title (A) 0.3.
const RANK: &str = "-ts_rank_cd('{0.1, 0.2, 1.0, 0.3}', ps.tsv, q.query)::float8";

pub(crate) async fn search_passages(
    pool: &PgPool,
    fts_query: &str,
    policy_sha256: Option<&str>,
    limit: usize,
) -> Result<Vec<PassageHit>, StoreError> {
    let sql = format!(
        "SELECT {HIT_COLUMNS}, {RANK} AS score
         FROM passages ps CROSS JOIN websearch_to_tsquery('english', $1) AS q(query)
         {CURRENT_VERDICT_JOIN}
         WHERE ps.tsv @@ q.query AND {ALLOWED} AND ($2::text IS NULL OR v.policy_sha256 = $2)
         ORDER BY score, ps.id LIMIT $3"
    );
    let rows: Vec<HitRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(fts_query)
        .bind(policy_sha256)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(pool)
        .await?;
    rows.into_iter().map(hit_of).collect()
}

pub(crate) async fn allowed_passage(
    pool: &PgPool,
    passage_id: i64,
    policy_sha256: Option<&str>,
) -> Result<Option<PassageHit>, StoreError> {
    let sql = format!(
        "SELECT {HIT_COLUMNS}, 0.0::float8 AS score FROM passages ps
         {CURRENT_VERDICT_JOIN}
         WHERE ps.id = $1 AND {ALLOWED} AND ($2::text IS NULL OR v.policy_sha256 = $2)"
    );
    let row: Option<HitRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(passage_id)
        .bind(policy_sha256)
        .fetch_optional(pool)
        .await?;
    row.map(hit_of).transpose()
}

pub(crate) async fn passage_counts(
    pool: &PgPool,
    fts_terms: &[String],
) -> Result<Vec<i64>, StoreError> {
    let mut out = Vec::with_capacity(fts_terms.len());
    for t in fts_terms {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM passages WHERE tsv @@ websearch_to_tsquery('english', $1)",
        )
        .bind(t)
        .fetch_one(pool)
        .await?;
        out.push(n);
    }
    Ok(out)
}

pub(crate) async fn delete_passages(pool: &PgPool, page_id: i64) -> Result<u64, StoreError> {
    let r = sqlx::query("DELETE FROM passages WHERE page_id = $1")
        .bind(page_id)
        .execute(pool)
        .await?;
    Ok(r.rows_affected())
}

pub(crate) async fn page_text(pool: &PgPool, url: &str) -> Result<Option<String>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT text FROM pages WHERE url = $1 ORDER BY id DESC LIMIT 1")
            .bind(url)
            .fetch_optional(pool)
            .await?,
    )
}

pub(crate) async fn mark_origin_gone(
    pool: &PgPool,
    origin: &str,
    reason: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO gone_origins (origin, gone_at, reason) VALUES ($1, $2, $3)
         ON CONFLICT (origin) DO NOTHING",
    )
    .bind(origin)
    .bind(now)
    .bind(reason)
    .execute(pool)
    .await?;
    Ok(())
}

pub(crate) async fn mark_origin_live(pool: &PgPool, origin: &str) -> Result<bool, StoreError> {
    let r = sqlx::query("DELETE FROM gone_origins WHERE origin = $1")
        .bind(origin)
        .execute(pool)
        .await?;
    Ok(r.rows_affected() > 0)
}

pub(crate) async fn gone_origins(pool: &PgPool) -> Result<Vec<GoneOrigin>, StoreError> {
    let rows: Vec<(String, i64, String)> =
        sqlx::query_as("SELECT origin, gone_at, reason FROM gone_origins ORDER BY gone_at, origin")
            .fetch_all(pool)
            .await?;
    Ok(rows
        .into_iter()
        .map(|(origin, gone_at, reason)| GoneOrigin {
            origin,
            gone_at,
            reason,
        })
        .collect())
}
