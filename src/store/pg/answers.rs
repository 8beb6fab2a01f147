//! Answer records on PostgreSQL: answers and citations written with their
//! audit event in one transaction (many service replicas at once: the
//! audit log's lock orders their events, see [`super::audit`]), the model
//! hash cache, listing, showing and flagging.

use sqlx::postgres::{PgConnection, PgPool};

use crate::store::StoreError;
use crate::store::answers::{
    ANSWER_COLUMNS, AnswerListItem, AnswerRecord, AnswerRow, AnswerRowRaw, ListRowRaw, NewAnswer,
    RecordRaw, StoredCitation,
};
use crate::store::audit::sha256_hex;

pub(crate) async fn record_answer(pool: &PgPool, a: &NewAnswer<'_>) -> Result<i64, StoreError> {
    let mut tx = pool.begin().await?;
    // The log's lock first, as every writer of logged rows takes it.
    super::audit::lock_log(&mut tx).await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO answers (asked_at, question, answer, draft, refused, reason, model_path,
                              model_sha256, policy_sha256, seconds, json)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
    )
    .bind(a.asked_at)
    .bind(a.question)
    .bind(a.answer)
    .bind(a.draft)
    .bind(i64::from(a.refused))
    .bind(a.reason)
    .bind(a.model_path)
    .bind(a.model_sha256)
    .bind(a.policy_sha256)
    .bind(a.seconds)
    .bind(a.json)
    .fetch_one(&mut *tx)
    .await?;
    let mut refs: Vec<(&str, i64)> = vec![("answers", id)];
    for c in &a.citations {
        let rowid: i64 = sqlx::query_scalar(
            "INSERT INTO answer_citations (answer_id, n, page_id, passage_id, url, verdict_id,
                 policy_sha256, licence, quote, start_char, end_char, support)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING rowid",
        )
        .bind(id)
        .bind(c.n)
        .bind(c.page_id)
        .bind(c.passage_id)
        .bind(c.url)
        .bind(c.verdict_id)
        .bind(c.policy_sha256)
        .bind(c.licence)
        .bind(c.quote)
        .bind(c.start_char)
        .bind(c.end_char)
        .bind(c.support)
        .fetch_one(&mut *tx)
        .await?;
        refs.push(("answer_citations", rowid));
    }
    let cited: Vec<i64> = a.citations.iter().map(|c| c.page_id).collect();
    super::audit::append_event(
        &mut tx,
        a.asked_at,
        "answer",
        &format!("answer:{id}"),
        &serde_json::json!({
            "answer_id": id,
            "question": a.question,
            "refused": a.refused,
            "json_sha256": sha256_hex(a.json.as_bytes()),
            "model_sha256": a.model_sha256,
            "policy_sha256": a.policy_sha256,
            "cited_page_ids": cited,
        }),
        &refs,
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// Flags the answers citing `page_id` on `conn` (the caller's transaction,
/// holding the log's lock) and logs an `answer.flag` event covering them.
pub(crate) async fn flag_and_log_on(
    conn: &mut PgConnection,
    page_id: i64,
    cause: (&str, i64),
    now: i64,
) -> Result<Vec<i64>, StoreError> {
    let (key, cause_id) = cause;
    let mut ids: Vec<i64> = sqlx::query_scalar(
        "UPDATE answers SET flagged_at = $1, flag_revocation_id = $2, flag_page_id = $3
         WHERE flagged_at IS NULL
           AND id IN (SELECT answer_id FROM answer_citations WHERE page_id = $3)
         RETURNING id",
    )
    .bind(now)
    .bind(cause_id)
    .bind(page_id)
    .fetch_all(&mut *conn)
    .await?;
    ids.sort_unstable();
    if !ids.is_empty() {
        let refs: Vec<(&str, i64)> = ids.iter().map(|&id| ("answers", id)).collect();
        let mut payload = serde_json::json!({"page_id": page_id, "answer_ids": ids});
        payload[key] = serde_json::json!(cause_id);
        super::audit::append_event(
            &mut *conn,
            now,
            "answer.flag",
            &format!("page:{page_id}"),
            &payload,
            &refs,
        )
        .await?;
    }
    Ok(ids)
}

pub(crate) async fn flag_answers_citing(
    pool: &PgPool,
    page_id: i64,
    revocation_id: i64,
    now: i64,
) -> Result<Vec<i64>, StoreError> {
    let mut tx = pool.begin().await?;
    super::audit::lock_log(&mut tx).await?;
    let ids = flag_and_log_on(&mut tx, page_id, ("revocation_id", revocation_id), now).await?;
    tx.commit().await?;
    Ok(ids)
}

pub(crate) async fn answers_citing(
    pool: &PgPool,
    page_id: i64,
) -> Result<Vec<AnswerRow>, StoreError> {
    let sql = format!(
        "SELECT {ANSWER_COLUMNS} FROM answers a
         WHERE a.id IN (SELECT answer_id FROM answer_citations WHERE page_id = $1)
         ORDER BY a.id"
    );
    let rows: Vec<AnswerRowRaw> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(page_id)
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().map(AnswerRow::from).collect())
}

pub(crate) async fn answer(pool: &PgPool, id: i64) -> Result<Option<AnswerRow>, StoreError> {
    let sql = format!("SELECT {ANSWER_COLUMNS} FROM answers a WHERE a.id = $1");
    let row: Option<AnswerRowRaw> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(AnswerRow::from))
}

pub(crate) async fn answer_cited_pages(
    pool: &PgPool,
    answer_id: i64,
) -> Result<Vec<i64>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT page_id FROM answer_citations WHERE answer_id = $1 ORDER BY n")
            .bind(answer_id)
            .fetch_all(pool)
            .await?,
    )
}

pub(crate) async fn model_hash(
    pool: &PgPool,
    path: &str,
    size: i64,
    mtime_ns: i64,
) -> Result<Option<String>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT sha256 FROM model_hashes WHERE path = $1 AND size = $2 AND mtime_ns = $3",
    )
    .bind(path)
    .bind(size)
    .bind(mtime_ns)
    .fetch_optional(pool)
    .await?)
}

pub(crate) async fn remember_model_hash(
    pool: &PgPool,
    path: &str,
    size: i64,
    mtime_ns: i64,
    sha256: &str,
    now: i64,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    super::audit::lock_log(&mut tx).await?;
    let rowid: i64 = sqlx::query_scalar(
        "INSERT INTO model_hashes (path, size, mtime_ns, sha256) VALUES ($1, $2, $3, $4)
         ON CONFLICT (path, size, mtime_ns) DO UPDATE SET sha256 = excluded.sha256
         RETURNING rowid",
    )
    .bind(path)
    .bind(size)
    .bind(mtime_ns)
    .bind(sha256)
    .fetch_one(&mut *tx)
    .await?;
    super::audit::append_event(
        &mut tx,
        now,
        "model.hash",
        path,
        &serde_json::json!({"size": size, "mtime_ns": mtime_ns, "sha256": sha256}),
        &[("model_hashes", rowid)],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn list_answers(
    pool: &PgPool,
    limit: i64,
    before: Option<i64>,
) -> Result<Vec<AnswerListItem>, StoreError> {
    let rows: Vec<ListRowRaw> = sqlx::query_as(
        "SELECT id, asked_at, question, refused, model_path, model_sha256, flagged_at
         FROM answers WHERE $1::bigint IS NULL OR id < $1
         ORDER BY id DESC LIMIT $2",
    )
    .bind(before)
    .bind(limit.max(0))
    .fetch_all(pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let cited_urls: Vec<String> =
            sqlx::query_scalar("SELECT url FROM answer_citations WHERE answer_id = $1 ORDER BY n")
                .bind(r.id)
                .fetch_all(pool)
                .await?;
        out.push(r.with_urls(cited_urls));
    }
    Ok(out)
}

pub(crate) async fn answer_record(
    pool: &PgPool,
    id: i64,
) -> Result<Option<AnswerRecord>, StoreError> {
    let Some(row) = answer(pool, id).await? else {
        return Ok(None);
    };
    let r: RecordRaw = sqlx::query_as(
        "SELECT draft, model_path, policy_sha256, seconds, json FROM answers WHERE id = $1",
    )
    .bind(id)
    .fetch_one(pool)
    .await?;
    let cites: Vec<StoredCitation> = sqlx::query_as(
        "SELECT n, page_id, passage_id, url, verdict_id, policy_sha256, licence, quote,
                start_char, end_char, support
         FROM answer_citations WHERE answer_id = $1 ORDER BY n",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    Ok(Some(r.with(row, cites)))
}
