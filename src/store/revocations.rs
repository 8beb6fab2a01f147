//! Revocations (`byline audit recheck`): a page that was usable for a
//! purpose and no longer is, with the verdicts and evidence that say so;
//! recorded with its audit event and the flags on the answers that cited it
//! in one transaction.

use super::tx::LogTx;
use super::{Store, StoreError};
use crate::policy::evidence::{Evidence, Location};

/// Where body-derived evidence is found (kept by a recheck that reads only headers).
pub const BODY_LOCATIONS: [Location; 5] = [
    Location::HtmlMeta,
    Location::HtmlBody,
    Location::HtmlLink,
    Location::Jsonld,
    Location::BodyText,
];

/// A page a recheck looks at again: the URL its verdicts are stored under,
/// the crawler's page id and its origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecheckPage {
    pub page_url: String,
    pub page_id: i64,
    pub origin: String,
}

/// One revocation to record.
#[derive(Debug, Clone)]
pub struct NewRevocation<'a> {
    pub page_url: &'a str,
    pub page_id: Option<i64>,
    pub purpose: &'a str,
    pub old_verdict_id: i64,
    pub new_verdict_id: i64,
    pub old_decision: &'a str,
    pub new_decision: &'a str,
    /// The new verdict's reason codes.
    pub reasons: &'a [String],
    /// The new verdict's evidence row ids.
    pub evidence_ids: &'a [i64],
    pub revoked_at: i64,
    /// The recheck run that found it.
    pub run_id: Option<i64>,
    /// Flag the stored answers that cite the page (a `rag_attributed` revocation).
    pub flag_answers: bool,
}

/// What recording a revocation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    pub id: i64,
    /// Newest export version when it was recorded.
    pub after_export: Option<i64>,
    /// Answers flagged now because they cite the page.
    pub flagged_answers: Vec<i64>,
    /// The audit event's sequence number.
    pub audit_seq: i64,
}

/// A stored revocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationRow {
    pub id: i64,
    pub page_url: String,
    pub page_id: Option<i64>,
    pub purpose: String,
    pub old_verdict_id: i64,
    pub new_verdict_id: i64,
    pub old_decision: String,
    pub new_decision: String,
    pub reasons: Vec<String>,
    pub evidence_ids: Vec<i64>,
    pub revoked_at: i64,
    pub after_export: Option<i64>,
}

fn corrupt(column: &'static str, detail: impl ToString) -> StoreError {
    StoreError::Corrupt {
        table: "revocations",
        column,
        detail: detail.to_string(),
    }
}

impl Store {
    /// The pages a recheck re-evaluates (all, or those of `origin`): every
    /// URL whose newest evidence set belongs to a stored page, in URL order.
    pub async fn recheck_pages(
        &self,
        origin: Option<&str>,
    ) -> Result<Vec<RecheckPage>, StoreError> {
        let rows: Vec<(String, i64, String)> =
            on_pool!(self, fetch_all, sqlx::query_as(RECHECK_PAGES).bind(origin));
        Ok(rows
            .into_iter()
            .map(|(page_url, page_id, origin)| RecheckPage {
                page_url,
                page_id,
                origin,
            })
            .collect())
    }

    /// The body-derived evidence rows (HTML meta, body, links, JSON-LD, body
    /// text) of the newest evidence set of `page_url` that has any, as
    /// observed then; empty when none has.
    pub async fn last_body_evidence(&self, page_url: &str) -> Result<Vec<Evidence>, StoreError> {
        let set: Option<i64> = on_pool!(
            self,
            fetch_one,
            sqlx::query_scalar(LAST_BODY_SET)
                .bind(page_url)
                .bind(Location::HtmlMeta.as_str())
                .bind(Location::HtmlBody.as_str())
                .bind(Location::HtmlLink.as_str())
                .bind(Location::Jsonld.as_str())
                .bind(Location::BodyText.as_str())
        );
        let Some(set) = set else {
            return Ok(Vec::new());
        };
        Ok(self
            .evidence_rows(set)
            .await?
            .into_iter()
            .map(|r| r.evidence)
            .filter(|e| BODY_LOCATIONS.contains(&e.location))
            .collect())
    }

    /// Records a revocation, flags the answers citing the page when asked
    /// and appends the `revocation` audit event, in one transaction.
    pub async fn revoke(&self, r: &NewRevocation<'_>) -> Result<Revoked, StoreError> {
        if let Some(pg) = self.pg() {
            let mut tx = pg.begin().await?;
            let done = revoke_in(&mut *tx, r).await?;
            tx.commit().await?;
            return Ok(done);
        }
        let mut tx = self.pool()?.begin().await?;
        let done = revoke_in(&mut *tx, r).await?;
        tx.commit().await?;
        Ok(done)
    }

    /// The revocations of one page (by its URL as stored), oldest first.
    pub async fn revocations_of(&self, page_url: &str) -> Result<Vec<RevocationRow>, StoreError> {
        Ok(self
            .revocations(None)
            .await?
            .into_iter()
            .filter(|r| r.page_url == page_url)
            .collect())
    }

    /// Revocations, oldest first: all of them, or with `since_export = N`
    /// those recorded after export version N was made.
    pub async fn revocations(
        &self,
        since_export: Option<i64>,
    ) -> Result<Vec<RevocationRow>, StoreError> {
        let rows: Vec<RevocationDbRow> = on_pool!(
            self,
            fetch_all,
            sqlx::query_as(REVOCATIONS).bind(since_export)
        );
        rows.into_iter()
            .map(|r| {
                Ok(RevocationRow {
                    id: r.id,
                    page_url: r.page_url,
                    page_id: r.page_id,
                    purpose: r.purpose,
                    old_verdict_id: r.old_verdict_id,
                    new_verdict_id: r.new_verdict_id,
                    old_decision: r.old_decision,
                    new_decision: r.new_decision,
                    reasons: serde_json::from_str(&r.reasons).map_err(|e| corrupt("reasons", e))?,
                    evidence_ids: serde_json::from_str(&r.evidence_ids)
                        .map_err(|e| corrupt("evidence_ids", e))?,
                    revoked_at: r.revoked_at,
                    after_export: r.after_export,
                })
            })
            .collect()
    }
}

/// A page marked gone by [`Store::mark_page_gone`].
#[derive(Debug, Clone, PartialEq)]
pub struct GoneMarked {
    /// It was not marked gone before (else nothing changed).
    pub newly: bool,
    /// The `page_gone` audit event (the first one, when already gone).
    pub event_seq: i64,
    /// Answers flagged now, sorted.
    pub flagged_answers: Vec<i64>,
}

impl Store {
    /// Marks a page gone (it answered `status`, 404 or 410): retrieval no
    /// longer serves its passages, a `page_gone` audit event records it,
    /// and every answer citing it is flagged with that event's seq, all in
    /// one transaction. Marking a gone page again changes nothing.
    pub async fn mark_page_gone(
        &self,
        page_id: i64,
        url: &str,
        status: u16,
        run_id: Option<i64>,
        now: i64,
    ) -> Result<GoneMarked, StoreError> {
        if let Some(pg) = self.pg() {
            let mut tx = pg.begin().await?;
            let done = mark_gone_in(&mut *tx, page_id, url, status, run_id, now).await?;
            tx.commit().await?;
            return Ok(done);
        }
        let mut tx = self.pool()?.begin().await?;
        let done = mark_gone_in(&mut *tx, page_id, url, status, run_id, now).await?;
        tx.commit().await?;
        Ok(done)
    }

    /// Marks a gone page live again (it answered 2xx); returns whether it
    /// was gone. Answers flagged for it stay flagged.
    pub async fn mark_page_live(&self, page_id: i64) -> Result<bool, StoreError> {
        let q = "DELETE FROM gone_pages WHERE page_id = $1";
        let n = match self.backend() {
            super::Backend::Sqlite(p) => sqlx::query(q)
                .bind(page_id)
                .execute(p)
                .await?
                .rows_affected(),
            super::Backend::Postgres(p) => sqlx::query(q)
                .bind(page_id)
                .execute(p)
                .await?
                .rows_affected(),
        };
        Ok(n > 0)
    }

    /// Whether a page is marked gone.
    pub async fn page_is_gone(&self, page_id: i64) -> Result<bool, StoreError> {
        let n: i64 = on_pool!(
            self,
            fetch_one,
            sqlx::query_scalar("SELECT count(*) FROM gone_pages WHERE page_id = $1").bind(page_id)
        );
        Ok(n > 0)
    }
}

// The statements of this module, one text for both backends.
const RECHECK_PAGES: &str = concat!(
    "SELECT s.page_url, s.page_id, s.site_origin FROM evidence_sets s WHERE s.id = ",
    newest_set_sql!(),
    " AND s.page_id IS NOT NULL AND (CAST($1 AS TEXT) IS NULL OR s.site_origin = $1)
     ORDER BY s.site_origin, s.page_url"
);
const LAST_BODY_SET: &str =
    "SELECT MAX(e.set_id) FROM evidence e JOIN evidence_sets s ON s.id = e.set_id
 WHERE s.page_url = $1 AND e.location IN ($2, $3, $4, $5, $6)
   AND EXISTS (SELECT 1 FROM audit_refs ar WHERE ar.tbl = 'evidence_sets' AND ar.row_id = s.id)";
const NEWEST_EXPORT: &str = "SELECT max(version) FROM exports";
const INSERT_REVOCATION: &str =
    "INSERT INTO revocations (page_url, page_id, purpose, old_verdict_id, new_verdict_id,
     reasons, evidence_ids, revoked_at, after_export, old_decision, new_decision, run_id)
 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id";
const REVOCATIONS: &str = "SELECT id, page_url, page_id, purpose, old_verdict_id, new_verdict_id, old_decision,
        new_decision, reasons, evidence_ids, revoked_at, after_export
 FROM revocations WHERE (CAST($1 AS BIGINT) IS NULL OR after_export >= $1)
   AND EXISTS (SELECT 1 FROM audit_refs ar WHERE ar.tbl = 'revocations' AND ar.row_id = revocations.id)
 ORDER BY id";
const GONE_SEQ: &str = "SELECT event_seq FROM gone_pages WHERE page_id = $1";
const INSERT_GONE: &str =
    "INSERT INTO gone_pages (page_id, url, status, gone_at, run_id, event_seq)
 VALUES ($1, $2, $3, $4, $5, $6)";

#[derive(sqlx::FromRow)]
struct RevocationDbRow {
    id: i64,
    page_url: String,
    page_id: Option<i64>,
    purpose: String,
    old_verdict_id: i64,
    new_verdict_id: i64,
    old_decision: String,
    new_decision: String,
    reasons: String,
    evidence_ids: String,
    revoked_at: i64,
    after_export: Option<i64>,
}

/// The statements [`revoke_in`] and [`mark_gone_in`] need besides the
/// audit and flag ones ([`LogTx`]).
pub(crate) trait RevokeRows: LogTx {
    async fn newest_export(&mut self) -> Result<Option<i64>, StoreError>;
    async fn insert_revocation(
        &mut self,
        r: &NewRevocation<'_>,
        after_export: Option<i64>,
    ) -> Result<i64, StoreError>;
    async fn gone_seq(&mut self, page_id: i64) -> Result<Option<i64>, StoreError>;
    async fn insert_gone(
        &mut self,
        page_id: i64,
        url: &str,
        status: u16,
        now: i64,
        run_id: Option<i64>,
        seq: i64,
    ) -> Result<(), StoreError>;
}

macro_rules! revoke_rows {
    ($conn:ty) => {
        impl RevokeRows for $conn {
            async fn newest_export(&mut self) -> Result<Option<i64>, StoreError> {
                Ok(sqlx::query_scalar(NEWEST_EXPORT)
                    .fetch_one(&mut *self)
                    .await?)
            }
            async fn insert_revocation(
                &mut self,
                r: &NewRevocation<'_>,
                after_export: Option<i64>,
            ) -> Result<i64, StoreError> {
                Ok(sqlx::query_scalar(INSERT_REVOCATION)
                    .bind(r.page_url)
                    .bind(r.page_id)
                    .bind(r.purpose)
                    .bind(r.old_verdict_id)
                    .bind(r.new_verdict_id)
                    .bind(serde_json::to_string(r.reasons).map_err(|e| corrupt("reasons", e))?)
                    .bind(
                        serde_json::to_string(r.evidence_ids)
                            .map_err(|e| corrupt("evidence_ids", e))?,
                    )
                    .bind(r.revoked_at)
                    .bind(after_export)
                    .bind(r.old_decision)
                    .bind(r.new_decision)
                    .bind(r.run_id)
                    .fetch_one(&mut *self)
                    .await?)
            }
            async fn gone_seq(&mut self, page_id: i64) -> Result<Option<i64>, StoreError> {
                Ok(sqlx::query_scalar(GONE_SEQ)
                    .bind(page_id)
                    .fetch_optional(&mut *self)
                    .await?)
            }
            async fn insert_gone(
                &mut self,
                page_id: i64,
                url: &str,
                status: u16,
                now: i64,
                run_id: Option<i64>,
                seq: i64,
            ) -> Result<(), StoreError> {
                sqlx::query(INSERT_GONE)
                    .bind(page_id)
                    .bind(url)
                    .bind(i64::from(status))
                    .bind(now)
                    .bind(run_id)
                    .bind(seq)
                    .execute(&mut *self)
                    .await?;
                Ok(())
            }
        }
    };
}

revoke_rows!(sqlx::SqliteConnection);
revoke_rows!(sqlx::PgConnection);

/// [`Store::revoke`] on an open transaction of either backend.
async fn revoke_in<C: RevokeRows>(
    tx: &mut C,
    r: &NewRevocation<'_>,
) -> Result<Revoked, StoreError> {
    tx.lock_log().await?;
    let after_export = tx.newest_export().await?;
    let id = tx.insert_revocation(r, after_export).await?;
    let flagged = match (r.flag_answers, r.page_id) {
        (true, Some(page)) => tx.flag_citing(page, id, r.revoked_at).await?,
        _ => Vec::new(),
    };
    // The flagged answers changed: this event covers them as they are now.
    let mut refs: Vec<(&str, i64)> = vec![("revocations", id), ("verdicts", r.new_verdict_id)];
    refs.extend(flagged.iter().map(|&a| ("answers", a)));
    let payload = serde_json::json!({
        "revocation_id": id,
        "purpose": r.purpose,
        "old_decision": r.old_decision,
        "new_decision": r.new_decision,
        "old_verdict_id": r.old_verdict_id,
        "new_verdict_id": r.new_verdict_id,
        "reasons": r.reasons,
        "evidence_ids": r.evidence_ids,
        "after_export": after_export,
        "flagged_answers": flagged,
    });
    let ev = tx
        .append_event(r.revoked_at, "revocation", r.page_url, &payload, &refs)
        .await?;
    Ok(Revoked {
        id,
        after_export,
        flagged_answers: flagged,
        audit_seq: ev.seq,
    })
}

/// [`Store::mark_page_gone`] on an open transaction of either backend.
async fn mark_gone_in<C: RevokeRows>(
    tx: &mut C,
    page_id: i64,
    url: &str,
    status: u16,
    run_id: Option<i64>,
    now: i64,
) -> Result<GoneMarked, StoreError> {
    tx.lock_log().await?;
    if let Some(event_seq) = tx.gone_seq(page_id).await? {
        return Ok(GoneMarked {
            newly: false,
            event_seq,
            flagged_answers: Vec::new(),
        });
    }
    let event = tx
        .append_event(
            now,
            "page_gone",
            &format!("page:{page_id}"),
            &serde_json::json!({"page_id": page_id, "url": url, "status": status, "run_id": run_id}),
            &[],
        )
        .await?;
    tx.insert_gone(page_id, url, status, now, run_id, event.seq)
        .await?;
    let flagged = tx
        .flag_and_log(page_id, ("page_gone_seq", event.seq), now)
        .await?;
    Ok(GoneMarked {
        newly: true,
        event_seq: event.seq,
        flagged_answers: flagged,
    })
}
