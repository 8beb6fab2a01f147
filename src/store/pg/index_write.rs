//! The passage index refresh a crawl ends with, on PostgreSQL: the writes
//! of [`crate::store::passages`] (retrieval is elsewhere). Several workers
//! finishing at once refresh one after another: each transaction takes the
//! index's advisory lock [`INDEX_LOCK`] first, so two never split the same
//! page.

use sqlx::postgres::PgPool;

use crate::store::StoreError;
use crate::store::passages::{NewPassage, PAGES_TO_INDEX, PageToIndex, ToIndexRow};

/// The advisory lock key of passage index writes.
pub const INDEX_LOCK: i64 = 0x4279_6c69_6e65_0002;

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
/// column follows by itself).
pub(crate) async fn retitle_passages(
    pool: &PgPool,
    titles: &[(i64, String)],
    version: i64,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(INDEX_LOCK)
        .execute(&mut *tx)
        .await?;
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

pub(crate) async fn pages_to_index(
    pool: &PgPool,
    after: i64,
    limit: i64,
    max_text_bytes: usize,
) -> Result<Vec<PageToIndex>, StoreError> {
    let rows = sqlx::query_as::<_, ToIndexRow>(PAGES_TO_INDEX)
        .bind(after)
        .bind(limit)
        .fetch(pool);
    crate::store::passages::take_text_bytes(rows, max_text_bytes).await
}

/// Replaces the passages of each page, under the index lock. A page
/// another worker indexed meanwhile (same text digest) is left as it is.
pub(crate) async fn replace_passages(
    pool: &PgPool,
    pages: &[(PageToIndex, Vec<NewPassage>)],
    now: i64,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(INDEX_LOCK)
        .execute(&mut *tx)
        .await?;
    for (page, passages) in pages {
        let current: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM passages WHERE page_id = $1 AND text_sha256 = $2)",
        )
        .bind(page.page_id)
        .bind(&page.text_sha256)
        .fetch_one(&mut *tx)
        .await?;
        if current {
            continue;
        }
        sqlx::query("DELETE FROM passages WHERE page_id = $1")
            .bind(page.page_id)
            .execute(&mut *tx)
            .await?;
        for (i, p) in passages.iter().enumerate() {
            sqlx::query(
                "INSERT INTO passages (page_id, ordinal, start_char, end_char, text, title, text_sha256, indexed_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(page.page_id)
            .bind(i as i64)
            .bind(p.start_char)
            .bind(p.end_char)
            .bind(&p.text)
            .bind(&page.title)
            .bind(&page.text_sha256)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn passage_count(pool: &PgPool) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM passages")
        .fetch_one(pool)
        .await?)
}
