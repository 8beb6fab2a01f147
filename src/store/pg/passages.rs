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

use sqlx::FromRow;
use sqlx::postgres::PgPool;

use crate::store::StoreError;
use crate::store::passages::{
    ALLOWED, CURRENT_VERDICT_JOIN, GoneOrigin, HIT_COLUMNS, NewPassage, PageToIndex, PassageHit,
};

/// `ts_rank_cd` weights `{D, C, B, A}`: text (B) 1.0, title (A) 0.3.
const RANK: &str = "-ts_rank_cd('{0.1, 0.2, 1.0, 0.3}', ps.tsv, q.query)::float8";

#[derive(FromRow)]
struct HitRow {
    id: i64,
    page_id: i64,
    ordinal: i64,
    start_char: i64,
    end_char: i64,
    text: String,
    url: String,
    title: Option<String>,
    author: Option<String>,
    site_name: Option<String>,
    verdict_id: i64,
    set_id: i64,
    decision: String,
    conditions: String,
    policy_sha256: String,
    index_title: String,
    score: f64,
}

fn hit_of(r: HitRow) -> Result<PassageHit, StoreError> {
    Ok(PassageHit {
        passage_id: r.id,
        page_id: r.page_id,
        ordinal: r.ordinal,
        start_char: r.start_char,
        end_char: r.end_char,
        text: r.text,
        url: r.url,
        title: r.title,
        index_title: r.index_title,
        author: r.author,
        site_name: r.site_name,
        verdict_id: r.verdict_id,
        verdict_set_id: r.set_id,
        decision: r.decision,
        conditions: serde_json::from_str(&r.conditions).map_err(|e| StoreError::Corrupt {
            table: "verdicts",
            column: "conditions",
            detail: e.to_string(),
        })?,
        policy_sha256: r.policy_sha256,
        bm25: r.score,
    })
}

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

pub(crate) async fn passage_count(pool: &PgPool) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM passages")
        .fetch_one(pool)
        .await?)
}

#[derive(FromRow)]
struct PageToIndexRow {
    id: i64,
    url: String,
    title: String,
    text: String,
    text_sha256: String,
    nosnippet_spans: String,
    site_name: Option<String>,
}

pub(crate) async fn pages_to_index(
    pool: &PgPool,
    after: i64,
    limit: i64,
) -> Result<Vec<PageToIndex>, StoreError> {
    let rows: Vec<PageToIndexRow> = sqlx::query_as(
        "SELECT p.id, p.url, coalesce(p.title, '') AS title, p.text, p.text_sha256,
                p.nosnippet_spans, p.site_name
         FROM pages p
         WHERE (p.duplicate_of IS NULL
                OR EXISTS (SELECT 1 FROM pages o
                           JOIN frontier ofr ON ofr.id = o.frontier_id
                           JOIN gone_origins og ON og.origin = ofr.origin
                           WHERE o.id = p.duplicate_of))
           AND NOT EXISTS (SELECT 1 FROM passages ps
                           WHERE ps.page_id = p.id AND ps.text_sha256 = p.text_sha256)
           AND p.id > $1
         ORDER BY p.id LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|r| {
            let pairs: Vec<[usize; 2]> =
                serde_json::from_str(&r.nosnippet_spans).map_err(|e| StoreError::Corrupt {
                    table: "pages",
                    column: "nosnippet_spans",
                    detail: e.to_string(),
                })?;
            Ok(PageToIndex {
                page_id: r.id,
                url: r.url,
                title: r.title,
                site_name: r.site_name,
                text: r.text,
                text_sha256: r.text_sha256,
                nosnippet_spans: pairs.into_iter().map(|[a, b]| (a, b)).collect(),
            })
        })
        .collect()
}

pub(crate) async fn replace_passages(
    pool: &PgPool,
    pages: &[(PageToIndex, Vec<NewPassage>)],
    now: i64,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    for (page, passages) in pages {
        sqlx::query("DELETE FROM passages WHERE page_id = $1")
            .bind(page.page_id)
            .execute(&mut *tx)
            .await?;
        let mut at = 0usize;
        for k in crate::store::audit::batch_pieces(passages.len()) {
            let values: Vec<String> = (0..k)
                .map(|i| {
                    let b = i * 8;
                    format!(
                        "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                        b + 1,
                        b + 2,
                        b + 3,
                        b + 4,
                        b + 5,
                        b + 6,
                        b + 7,
                        b + 8
                    )
                })
                .collect();
            let sql = format!(
                "INSERT INTO passages (page_id, ordinal, start_char, end_char, text, title, text_sha256, indexed_at)
                 VALUES {}",
                values.join(", ")
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (i, p) in passages.iter().enumerate().skip(at).take(k) {
                q = q
                    .bind(page.page_id)
                    .bind(i64::try_from(i).unwrap_or(i64::MAX))
                    .bind(p.start_char)
                    .bind(p.end_char)
                    .bind(&p.text)
                    .bind(&page.title)
                    .bind(&page.text_sha256)
                    .bind(now);
            }
            q.execute(&mut *tx).await?;
            at += k;
        }
    }
    tx.commit().await?;
    Ok(())
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

pub(crate) async fn passage_index_version(pool: &PgPool) -> Result<Option<i64>, StoreError> {
    let v: Option<String> =
        sqlx::query_scalar("SELECT value FROM corpus_meta WHERE key = 'passage_index_version'")
            .fetch_optional(pool)
            .await?;
    Ok(v.and_then(|v| v.parse().ok()))
}

pub(crate) async fn indexed_page_titles(
    pool: &PgPool,
) -> Result<Vec<(i64, String, Option<String>)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT p.id, coalesce(p.title, ''), p.site_name FROM pages p
         WHERE EXISTS (SELECT 1 FROM passages ps WHERE ps.page_id = p.id) ORDER BY p.id",
    )
    .fetch_all(pool)
    .await?)
}

/// Sets the indexed titles and records `version` (the generated `tsv`
/// follows the titles by itself: nothing to rebuild).
pub(crate) async fn retitle_passages(
    pool: &PgPool,
    titles: &[(i64, String)],
    version: i64,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    for (page_id, title) in titles {
        sqlx::query("UPDATE passages SET title = $1 WHERE page_id = $2")
            .bind(title)
            .bind(page_id)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query(
        "INSERT INTO corpus_meta (key, value) VALUES ('passage_index_version', $1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )
    .bind(version.to_string())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
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
