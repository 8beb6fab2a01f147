//! Answer records: every answer with the citations the checker kept, and
//! their flags when a cited page is revoked or forgotten.

use super::{Store, StoreError};

/// One answer to store.
#[derive(Debug, Clone)]
pub struct NewAnswer<'a> {
    pub asked_at: i64,
    pub question: &'a str,
    pub answer: &'a str,
    pub draft: &'a str,
    pub refused: bool,
    pub reason: Option<&'a str>,
    pub model_path: &'a str,
    pub model_sha256: &'a str,
    pub policy_sha256: Option<&'a str>,
    pub seconds: f64,
    /// The full JSON object shown to the caller.
    pub json: &'a str,
    pub citations: Vec<NewCitation<'a>>,
}

impl NewAnswer<'_> {
    /// The `answer` audit event's payload for this answer stored as `id`
    /// (both backends log the same object).
    pub(crate) fn event_payload(&self, id: i64) -> serde_json::Value {
        let cited: Vec<i64> = self.citations.iter().map(|c| c.page_id).collect();
        serde_json::json!({
            "answer_id": id,
            "question": self.question,
            "refused": self.refused,
            "json_sha256": super::audit::sha256_hex(self.json.as_bytes()),
            "model_sha256": self.model_sha256,
            "policy_sha256": self.policy_sha256,
            "cited_page_ids": cited,
        })
    }
}

/// One citation of an answer.
#[derive(Debug, Clone)]
pub struct NewCitation<'a> {
    pub n: i64,
    pub page_id: i64,
    pub passage_id: i64,
    pub url: &'a str,
    pub verdict_id: i64,
    pub policy_sha256: &'a str,
    pub licence: Option<&'a str>,
    pub quote: &'a str,
    pub start_char: i64,
    pub end_char: i64,
    pub support: f64,
}

/// A stored answer, as listed for a page or after a flag.
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerRow {
    pub id: i64,
    pub asked_at: i64,
    pub question: String,
    pub answer: String,
    pub refused: bool,
    pub reason: Option<String>,
    pub model_sha256: String,
    pub flagged_at: Option<i64>,
    pub flag_revocation_id: Option<i64>,
    pub flag_page_id: Option<i64>,
}

pub(crate) const ANSWER_COLUMNS: &str =
    "a.id, a.asked_at, a.question, a.answer, a.refused, a.reason,
    a.model_sha256, a.flagged_at, a.flag_revocation_id, a.flag_page_id";

/// [`ANSWER_COLUMNS`] as read from either backend (flags are stored 0/1).
#[derive(sqlx::FromRow)]
pub(crate) struct AnswerRowRaw {
    id: i64,
    asked_at: i64,
    question: String,
    answer: String,
    refused: i64,
    reason: Option<String>,
    model_sha256: String,
    flagged_at: Option<i64>,
    flag_revocation_id: Option<i64>,
    flag_page_id: Option<i64>,
}

impl From<AnswerRowRaw> for AnswerRow {
    fn from(r: AnswerRowRaw) -> AnswerRow {
        AnswerRow {
            id: r.id,
            asked_at: r.asked_at,
            question: r.question,
            answer: r.answer,
            refused: r.refused != 0,
            reason: r.reason,
            model_sha256: r.model_sha256,
            flagged_at: r.flagged_at,
            flag_revocation_id: r.flag_revocation_id,
            flag_page_id: r.flag_page_id,
        }
    }
}

/// One row of `answers list`, before its cited URLs are added.
#[derive(sqlx::FromRow)]
pub(crate) struct ListRowRaw {
    pub(crate) id: i64,
    asked_at: i64,
    question: String,
    refused: i64,
    model_path: String,
    model_sha256: String,
    flagged_at: Option<i64>,
}

impl ListRowRaw {
    pub(crate) fn with_urls(self, cited_urls: Vec<String>) -> AnswerListItem {
        AnswerListItem {
            id: self.id,
            asked_at: self.asked_at,
            question: self.question,
            refused: self.refused != 0,
            model_path: self.model_path,
            model_sha256: self.model_sha256,
            flagged_at: self.flagged_at,
            cited_urls,
        }
    }
}

/// The columns of an answer `answers show` adds to its [`AnswerRow`].
#[derive(sqlx::FromRow)]
pub(crate) struct RecordRaw {
    draft: String,
    model_path: String,
    policy_sha256: Option<String>,
    seconds: f64,
    json: String,
}

impl RecordRaw {
    pub(crate) fn with(self, row: AnswerRow, citations: Vec<StoredCitation>) -> AnswerRecord {
        AnswerRecord {
            row,
            draft: self.draft,
            model_path: self.model_path,
            policy_sha256: self.policy_sha256,
            seconds: self.seconds,
            json: self.json,
            citations,
        }
    }
}

impl Store {
    /// Stores an answer and its citations in one transaction; returns its id.
    pub async fn record_answer(&self, a: &NewAnswer<'_>) -> Result<i64, StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg::answers::record_answer(pg, a).await;
        }
        let mut tx = self.pool()?.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO answers (asked_at, question, answer, draft, refused, reason, model_path,
                                  model_sha256, policy_sha256, seconds, json)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(a.asked_at)
        .bind(a.question)
        .bind(a.answer)
        .bind(a.draft)
        .bind(a.refused as i64)
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
            let cid = sqlx::query(
                "INSERT INTO answer_citations (answer_id, n, page_id, passage_id, url, verdict_id,
                     policy_sha256, licence, quote, start_char, end_char, support)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            .execute(&mut *tx)
            .await?
            .last_insert_rowid();
            refs.push(("answer_citations", cid));
        }
        // The audit log gets the answer in the same transaction: the answer
        // and citation rows are hashed refs (a later flag is a newer event
        // covering the answer again), and the event carries the sha256 of
        // the JSON shown and the cited pages.
        super::audit::append_event(
            &mut tx,
            a.asked_at,
            "answer",
            &format!("answer:{id}"),
            &a.event_payload(id),
            &refs,
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Flags every not yet flagged answer that cites `page_id` (its
    /// `rag_attributed` use was revoked, or the page was forgotten);
    /// `revocation_id` is what revoked it (the new verdict's id, or the
    /// audit event's). Returns the ids of the answers flagged now.
    pub async fn flag_answers_citing(
        &self,
        page_id: i64,
        revocation_id: i64,
    ) -> Result<Vec<i64>, StoreError> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        if let Some(pg) = self.pg() {
            return super::pg::answers::flag_answers_citing(pg, page_id, revocation_id, now).await;
        }
        let mut tx = self.pool()?.begin().await?;
        let ids = flag_and_log_on(&mut tx, page_id, ("revocation_id", revocation_id), now).await?;
        tx.commit().await?;
        Ok(ids)
    }

    /// The answers that cite `page_id`, oldest first.
    pub async fn answers_citing(&self, page_id: i64) -> Result<Vec<AnswerRow>, StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg::answers::answers_citing(pg, page_id).await;
        }
        let sql = format!(
            "SELECT {ANSWER_COLUMNS} FROM answers a
             WHERE a.id IN (SELECT answer_id FROM answer_citations WHERE page_id = ?)
             ORDER BY a.id"
        );
        let rows: Vec<AnswerRowRaw> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(page_id)
            .fetch_all(self.pool()?)
            .await?;
        Ok(rows.into_iter().map(AnswerRow::from).collect())
    }

    /// One stored answer.
    pub async fn answer(&self, id: i64) -> Result<Option<AnswerRow>, StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg::answers::answer(pg, id).await;
        }
        let sql = format!("SELECT {ANSWER_COLUMNS} FROM answers a WHERE a.id = ?");
        let row: Option<AnswerRowRaw> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.pool()?)
            .await?;
        Ok(row.map(AnswerRow::from))
    }

    /// The page ids an answer cites, by citation number.
    pub async fn answer_cited_pages(&self, answer_id: i64) -> Result<Vec<i64>, StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg::answers::answer_cited_pages(pg, answer_id).await;
        }
        Ok(sqlx::query_scalar(
            "SELECT page_id FROM answer_citations WHERE answer_id = ? ORDER BY n",
        )
        .bind(answer_id)
        .fetch_all(self.pool()?)
        .await?)
    }

    /// The sha256 remembered for a model file of this size and mtime.
    pub async fn model_hash(
        &self,
        path: &str,
        size: i64,
        mtime_ns: i64,
    ) -> Result<Option<String>, StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg::answers::model_hash(pg, path, size, mtime_ns).await;
        }
        Ok(sqlx::query_scalar(
            "SELECT sha256 FROM model_hashes WHERE path = ? AND size = ? AND mtime_ns = ?",
        )
        .bind(path)
        .bind(size)
        .bind(mtime_ns)
        .fetch_optional(self.pool()?)
        .await?)
    }

    /// Remembers a model file's sha256.
    pub async fn remember_model_hash(
        &self,
        path: &str,
        size: i64,
        mtime_ns: i64,
        sha256: &str,
    ) -> Result<(), StoreError> {
        if let Some(pg) = self.pg() {
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            return super::pg::answers::remember_model_hash(pg, path, size, mtime_ns, sha256, now)
                .await;
        }
        let mut tx = self.pool()?.begin().await?;
        let rowid: i64 = sqlx::query_scalar(
            "INSERT INTO model_hashes (path, size, mtime_ns, sha256) VALUES (?, ?, ?, ?)
             ON CONFLICT (path, size, mtime_ns) DO UPDATE SET sha256 = excluded.sha256
             RETURNING rowid",
        )
        .bind(path)
        .bind(size)
        .bind(mtime_ns)
        .bind(sha256)
        .fetch_one(&mut *tx)
        .await?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
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
}

/// One answer as `byline answers list` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerListItem {
    pub id: i64,
    pub asked_at: i64,
    pub question: String,
    pub refused: bool,
    pub model_path: String,
    pub model_sha256: String,
    pub flagged_at: Option<i64>,
    /// The cited URLs, by citation number.
    pub cited_urls: Vec<String>,
}

/// One stored citation, as recorded.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct StoredCitation {
    pub n: i64,
    pub page_id: i64,
    pub passage_id: i64,
    pub url: String,
    pub verdict_id: i64,
    pub policy_sha256: String,
    pub licence: Option<String>,
    pub quote: String,
    pub start_char: i64,
    pub end_char: i64,
    pub support: f64,
}

/// A whole stored answer, as `byline answers show` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerRecord {
    pub row: AnswerRow,
    pub draft: String,
    pub model_path: String,
    pub policy_sha256: Option<String>,
    pub seconds: f64,
    /// The `ask --json` object shown when it was answered.
    pub json: String,
    pub citations: Vec<StoredCitation>,
}

impl Store {
    /// The newest `limit` answers (newest first), from before answer
    /// `before` when given (for paging).
    pub async fn list_answers(
        &self,
        limit: i64,
        before: Option<i64>,
    ) -> Result<Vec<AnswerListItem>, StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg::answers::list_answers(pg, limit, before).await;
        }
        let rows: Vec<ListRowRaw> = sqlx::query_as(
            "SELECT id, asked_at, question, refused, model_path, model_sha256, flagged_at
             FROM answers WHERE ?1 IS NULL OR id < ?1
             ORDER BY id DESC LIMIT CAST(?2 AS BIGINT)",
        )
        .bind(before)
        .bind(limit.max(0))
        .fetch_all(self.pool()?)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let cited_urls: Vec<String> = sqlx::query_scalar(
                "SELECT url FROM answer_citations WHERE answer_id = ? ORDER BY n",
            )
            .bind(r.id)
            .fetch_all(self.pool()?)
            .await?;
            out.push(r.with_urls(cited_urls));
        }
        Ok(out)
    }

    /// A whole stored answer with its citations.
    pub async fn answer_record(&self, id: i64) -> Result<Option<AnswerRecord>, StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg::answers::answer_record(pg, id).await;
        }
        let Some(row) = self.answer(id).await? else {
            return Ok(None);
        };
        let r: RecordRaw = sqlx::query_as(
            "SELECT draft, model_path, policy_sha256, seconds, json FROM answers WHERE id = ?",
        )
        .bind(id)
        .fetch_one(self.pool()?)
        .await?;
        let cites: Vec<StoredCitation> = sqlx::query_as(
            "SELECT n, page_id, passage_id, url, verdict_id, policy_sha256, licence, quote,
                    start_char, end_char, support
             FROM answer_citations WHERE answer_id = ? ORDER BY n",
        )
        .bind(id)
        .fetch_all(self.pool()?)
        .await?;
        Ok(Some(r.with(row, cites)))
    }
}

/// Flags the answers citing `page_id` on `conn` (the caller's transaction)
/// and, when any were flagged, appends the `answer.flag` event that covers
/// the changed rows, so `audit verify` finds them logged, not tampered.
/// `cause` is the payload key and id of what flagged them (a revocation id,
/// a `page_gone` or `forget` event's seq), also stored as the answers'
/// `flag_revocation_id`. Returns the ids flagged now.
pub(crate) async fn flag_and_log_on(
    conn: &mut sqlx::SqliteConnection,
    page_id: i64,
    cause: (&str, i64),
    now: i64,
) -> Result<Vec<i64>, StoreError> {
    let (key, cause_id) = cause;
    let ids = flag_answers_citing_on(&mut *conn, page_id, cause_id, now).await?;
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

/// Flags the answers citing `page_id` on `conn`, at `now`, without an event
/// of its own (the caller's event covers the rows).
pub(crate) async fn flag_answers_citing_on(
    conn: &mut sqlx::SqliteConnection,
    page_id: i64,
    revocation_id: i64,
    now: i64,
) -> Result<Vec<i64>, StoreError> {
    let mut ids: Vec<i64> = sqlx::query_scalar(
        "UPDATE answers SET flagged_at = ?1, flag_revocation_id = ?2, flag_page_id = ?3
         WHERE flagged_at IS NULL
           AND id IN (SELECT answer_id FROM answer_citations WHERE page_id = ?3)
         RETURNING id",
    )
    .bind(now)
    .bind(revocation_id)
    .bind(page_id)
    .fetch_all(&mut *conn)
    .await?;
    ids.sort_unstable();
    Ok(ids)
}
