//! What a logged write needs on either backend's open transaction, so a
//! store function's logic is written once and generic over [`LogTx`]
//! (`forget`, re-crawl checks, revocations): the audit log's lock and
//! append, the fetch, raw capture and consent inserts each backend already
//! has, and the answer flags. SQLite's statements are in the sibling
//! modules, PostgreSQL's under `pg/`; a statement whose text is the same on
//! both is written once here with `$n` placeholders (SQLite reads them too).

use serde_json::Value;

use super::StoreError;
use super::audit::AuditEvent;
use super::crawl::FetchRecord;
use super::evidence::ConsentRecord;
use super::raw::RawCapture;

/// The `verdicts` columns a [`VerdictInsert`] fills, in its order.
macro_rules! verdict_columns {
    () => {
        "set_id, page_url, purpose, decision, conditions, reasons, evidence_ids, policy_id, policy_sha256, decided_at"
    };
}

const INSERT_VERDICT: &str = concat!(
    "INSERT INTO verdicts (",
    verdict_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id"
);

/// `n` verdicts in one statement (the crawl writer's), returning the rows.
pub(crate) fn insert_verdicts_sql(n: usize) -> String {
    format!(
        "INSERT INTO verdicts ({}) VALUES {} RETURNING rowid, *",
        verdict_columns!(),
        vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; n].join(", ")
    )
}

const SET_EVIDENCE_IDS: &str = "SELECT id FROM evidence WHERE set_id = $1 ORDER BY ordinal";

/// One `verdicts` row to insert (its lists already JSON text).
pub(crate) struct VerdictInsert<'a> {
    pub set_id: i64,
    pub page_url: &'a str,
    pub purpose: &'a str,
    pub decision: &'a str,
    pub conditions: String,
    pub reasons: String,
    pub evidence_ids: String,
    pub policy_id: &'a str,
    pub policy_sha256: &'a str,
    pub decided_at: i64,
}

const FLAG_CITING: &str =
    "UPDATE answers SET flagged_at = $1, flag_revocation_id = $2, flag_page_id = $3
     WHERE flagged_at IS NULL
       AND id IN (SELECT answer_id FROM answer_citations WHERE page_id = $3)
     RETURNING id";

pub(crate) trait LogTx {
    /// Serialises this transaction with every other writer of the audit
    /// log before it reads anything (SQLite: takes the write lock;
    /// PostgreSQL: the log's advisory lock).
    async fn lock_log(&mut self) -> Result<(), StoreError>;
    /// Inserts one verdict row; its id.
    async fn insert_verdict(&mut self, v: &VerdictInsert<'_>) -> Result<i64, StoreError>;
    /// The ids of an evidence set's rows, by ordinal.
    async fn set_evidence_ids(&mut self, set_id: i64) -> Result<Vec<i64>, StoreError>;
    async fn append_event(
        &mut self,
        time: i64,
        kind: &str,
        subject: &str,
        payload: &Value,
        refs: &[(&str, i64)],
    ) -> Result<AuditEvent, StoreError>;
    /// Flags the answers citing `page_id` and logs an `answer.flag` event.
    async fn flag_and_log(
        &mut self,
        page_id: i64,
        cause: (&str, i64),
        now: i64,
    ) -> Result<Vec<i64>, StoreError>;
    /// Flags the answers citing `page_id` for revocation `revocation_id`,
    /// without an event of its own (the caller's covers them); sorted ids.
    async fn flag_citing(
        &mut self,
        page_id: i64,
        revocation_id: i64,
        now: i64,
    ) -> Result<Vec<i64>, StoreError>;
    async fn insert_fetch(
        &mut self,
        f: &FetchRecord,
        frontier_id: i64,
        attempt: i64,
        decision_id: Option<i64>,
    ) -> Result<i64, StoreError>;
    async fn insert_raw(&mut self, fetch_id: i64, raw: &RawCapture) -> Result<i64, StoreError>;
    async fn insert_consent(
        &mut self,
        c: &ConsentRecord,
        page_id: Option<i64>,
        fetch_id: Option<i64>,
    ) -> Result<i64, StoreError>;
}

/// The methods whose statements are the same text on both backends.
macro_rules! shared_log_tx {
    () => {
        async fn insert_verdict(&mut self, v: &VerdictInsert<'_>) -> Result<i64, StoreError> {
            Ok(sqlx::query_scalar(INSERT_VERDICT)
                .bind(v.set_id)
                .bind(v.page_url)
                .bind(v.purpose)
                .bind(v.decision)
                .bind(&v.conditions)
                .bind(&v.reasons)
                .bind(&v.evidence_ids)
                .bind(v.policy_id)
                .bind(v.policy_sha256)
                .bind(v.decided_at)
                .fetch_one(&mut *self)
                .await?)
        }
        async fn set_evidence_ids(&mut self, set_id: i64) -> Result<Vec<i64>, StoreError> {
            Ok(sqlx::query_scalar(SET_EVIDENCE_IDS)
                .bind(set_id)
                .fetch_all(&mut *self)
                .await?)
        }
        async fn flag_citing(
            &mut self,
            page_id: i64,
            revocation_id: i64,
            now: i64,
        ) -> Result<Vec<i64>, StoreError> {
            let mut ids: Vec<i64> = sqlx::query_scalar(FLAG_CITING)
                .bind(now)
                .bind(revocation_id)
                .bind(page_id)
                .fetch_all(&mut *self)
                .await?;
            ids.sort_unstable();
            Ok(ids)
        }
    };
}

impl LogTx for sqlx::SqliteConnection {
    shared_log_tx!();
    async fn lock_log(&mut self) -> Result<(), StoreError> {
        // A write first: the write lock is held before anything is read.
        sqlx::query("UPDATE frontier SET updated_at = updated_at WHERE 0")
            .execute(&mut *self)
            .await?;
        Ok(())
    }
    async fn append_event(
        &mut self,
        time: i64,
        kind: &str,
        subject: &str,
        payload: &Value,
        refs: &[(&str, i64)],
    ) -> Result<AuditEvent, StoreError> {
        super::audit::append_event(self, time, kind, subject, payload, refs).await
    }
    async fn flag_and_log(
        &mut self,
        page_id: i64,
        cause: (&str, i64),
        now: i64,
    ) -> Result<Vec<i64>, StoreError> {
        super::answers::flag_and_log_on(self, page_id, cause, now).await
    }
    async fn insert_fetch(
        &mut self,
        f: &FetchRecord,
        frontier_id: i64,
        attempt: i64,
        decision_id: Option<i64>,
    ) -> Result<i64, StoreError> {
        super::crawl::insert_fetch_in(self, f, frontier_id, attempt, decision_id).await
    }
    async fn insert_raw(&mut self, fetch_id: i64, raw: &RawCapture) -> Result<i64, StoreError> {
        super::raw::insert_raw_in(self, fetch_id, raw).await
    }
    async fn insert_consent(
        &mut self,
        c: &ConsentRecord,
        page_id: Option<i64>,
        fetch_id: Option<i64>,
    ) -> Result<i64, StoreError> {
        super::evidence::insert_consent_in(self, c, page_id, fetch_id).await
    }
}

impl LogTx for sqlx::PgConnection {
    shared_log_tx!();
    async fn lock_log(&mut self) -> Result<(), StoreError> {
        super::pg::audit::lock_log(self).await
    }
    async fn append_event(
        &mut self,
        time: i64,
        kind: &str,
        subject: &str,
        payload: &Value,
        refs: &[(&str, i64)],
    ) -> Result<AuditEvent, StoreError> {
        super::pg::audit::append_event(self, time, kind, subject, payload, refs).await
    }
    async fn flag_and_log(
        &mut self,
        page_id: i64,
        cause: (&str, i64),
        now: i64,
    ) -> Result<Vec<i64>, StoreError> {
        super::pg::answers::flag_and_log_on(self, page_id, cause, now).await
    }
    async fn insert_fetch(
        &mut self,
        f: &FetchRecord,
        frontier_id: i64,
        attempt: i64,
        decision_id: Option<i64>,
    ) -> Result<i64, StoreError> {
        super::pg::crawl::insert_fetch_in(self, f, frontier_id, attempt, decision_id).await
    }
    async fn insert_raw(&mut self, fetch_id: i64, raw: &RawCapture) -> Result<i64, StoreError> {
        super::pg::raw::insert_raw_in(self, fetch_id, raw).await
    }
    async fn insert_consent(
        &mut self,
        c: &ConsentRecord,
        page_id: Option<i64>,
        fetch_id: Option<i64>,
    ) -> Result<i64, StoreError> {
        super::pg::evidence::insert_consent_in(self, c, page_id, fetch_id).await
    }
}
