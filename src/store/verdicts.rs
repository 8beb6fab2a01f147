//! Verdict rows: one per page, purpose and evaluation; older rows are history.

use super::tx::{LogTx, VerdictInsert};
use super::{Store, StoreError};
use crate::policy::verdict::{PageVerdicts, Purpose};

/// One stored verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerdictRow {
    pub id: i64,
    pub set_id: i64,
    pub page_url: String,
    pub purpose: String,
    pub decision: String,
    pub conditions: Vec<String>,
    pub reasons: Vec<String>,
    pub evidence_ids: Vec<i64>,
    pub policy_id: String,
    pub policy_sha256: String,
    pub decided_at: i64,
}

fn corrupt(column: &'static str, detail: impl ToString) -> StoreError {
    StoreError::Corrupt {
        table: "verdicts",
        column,
        detail: detail.to_string(),
    }
}

impl Store {
    /// Stores the three verdicts of one page. `evidence_ids` maps the
    /// verdicts' evidence indices to stored row ids. The policy must have been
    /// recorded with [`Store::record_policy`].
    pub async fn insert_verdicts(
        &self,
        set_id: i64,
        page_url: &str,
        verdicts: &PageVerdicts,
        evidence_ids: &[i64],
        decided_at: i64,
    ) -> Result<(), StoreError> {
        if let Some(pg) = self.pg() {
            let mut tx = pg.begin().await?;
            super::pg::audit::lock_log(&mut tx).await?;
            insert_verdicts_in(
                &mut *tx,
                set_id,
                page_url,
                verdicts,
                evidence_ids,
                decided_at,
            )
            .await?;
            tx.commit().await?;
            return Ok(());
        }
        let mut tx = self.pool()?.begin().await?;
        insert_verdicts_in(
            &mut *tx,
            set_id,
            page_url,
            verdicts,
            evidence_ids,
            decided_at,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The newest verdict per purpose of one page that the audit log
    /// vouches for (a row no event covers is never in force), optionally
    /// only those decided under the policy with this sha256. Purpose order.
    pub async fn latest_verdicts(
        &self,
        page_url: &str,
        policy_sha256: Option<&str>,
    ) -> Result<Vec<VerdictRow>, StoreError> {
        let mut out = Vec::new();
        for p in Purpose::ALL {
            let r: Option<VerdictDb> = on_pool!(self, pool => sqlx::query_as(LATEST_VERDICT)
            .bind(page_url)
            .bind(p.as_str())
            .bind(policy_sha256)
            .fetch_optional(pool)
            .await?);
            if let Some(r) = r {
                out.push(r.try_into()?);
            }
        }
        Ok(out)
    }

    /// Counts of the newest verdict per page and purpose, as
    /// `(purpose, decision, pages)` sorted by purpose then decision.
    pub async fn verdict_counts(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_as(VERDICT_COUNTS)
        .fetch_all(pool)
        .await?))
    }

    /// Pages with at least one verdict, in URL order.
    pub async fn pages_with_verdicts(&self) -> Result<Vec<String>, StoreError> {
        Ok(
            on_pool!(self, pool => sqlx::query_scalar(PAGES_WITH_VERDICTS)
        .fetch_all(pool)
        .await?),
        )
    }
}

// Verdicts are reached through their evidence sets (`newest_verdict_sql!`).

/// The newest verdict the log vouches for of page `$1`, purpose `$2`,
/// decided under policy `$3` when it is given.
pub(super) const LATEST_VERDICT: &str = verdicts_of_sets_sql!(
    "s.page_url = $1 AND v.purpose = $2 AND ($3 IS NULL OR v.policy_sha256 = $3)
     AND EXISTS (SELECT 1 FROM audit_refs ar WHERE ar.tbl = 'verdicts' AND ar.row_id = v.id)
     ORDER BY v.id DESC LIMIT 1"
);
/// `(purpose, decision, pages)` over the verdicts in force.
pub(super) const VERDICT_COUNTS: &str = concat!(
    "SELECT v.purpose, v.decision, COUNT(*) FROM verdicts v WHERE v.id = ",
    newest_verdict_sql!("= v.page_url", "v.purpose"),
    " GROUP BY v.purpose, v.decision ORDER BY v.purpose, v.decision"
);
/// The URLs with a verdict, in order (the sets' URL index gives it).
pub(super) const PAGES_WITH_VERDICTS: &str = "SELECT DISTINCT s.page_url FROM evidence_sets s
 WHERE EXISTS (SELECT 1 FROM verdicts v WHERE v.set_id = s.id AND v.page_url = s.page_url)
 ORDER BY s.page_url";

/// A verdict row as stored (its lists as JSON text), on either backend.
#[derive(sqlx::FromRow)]
pub(crate) struct VerdictDb {
    id: i64,
    set_id: i64,
    page_url: String,
    purpose: String,
    decision: String,
    conditions: String,
    reasons: String,
    evidence_ids: String,
    policy_id: String,
    policy_sha256: String,
    decided_at: i64,
}

impl TryFrom<VerdictDb> for VerdictRow {
    type Error = StoreError;

    fn try_from(r: VerdictDb) -> Result<VerdictRow, StoreError> {
        Ok(VerdictRow {
            id: r.id,
            set_id: r.set_id,
            page_url: r.page_url,
            purpose: r.purpose,
            decision: r.decision,
            conditions: serde_json::from_str(&r.conditions)
                .map_err(|e| corrupt("conditions", e))?,
            reasons: serde_json::from_str(&r.reasons).map_err(|e| corrupt("reasons", e))?,
            evidence_ids: serde_json::from_str(&r.evidence_ids)
                .map_err(|e| corrupt("evidence_ids", e))?,
            policy_id: r.policy_id,
            policy_sha256: r.policy_sha256,
            decided_at: r.decided_at,
        })
    }
}

/// Stores the verdicts of one page on an open transaction of either
/// backend, with the `verdict` event covering them and the whole evidence
/// set they were decided from.
pub(crate) async fn insert_verdicts_in<C: LogTx>(
    conn: &mut C,
    set_id: i64,
    page_url: &str,
    verdicts: &PageVerdicts,
    evidence_ids: &[i64],
    decided_at: i64,
) -> Result<(), StoreError> {
    let (rows, payload) = verdict_rows(set_id, page_url, verdicts, evidence_ids, decided_at)?;
    let mut refs: Vec<(&str, i64)> = Vec::new();
    for v in &rows {
        refs.push(("verdicts", conn.insert_verdict(v).await?));
    }
    let ev = conn.set_evidence_ids(set_id).await?;
    refs.push(("evidence_sets", set_id));
    refs.extend(ev.into_iter().map(|id| ("evidence", id)));
    conn.append_event(decided_at, "verdict", page_url, &payload, &refs)
        .await?;
    Ok(())
}

/// The rows of one page's verdicts, in purpose order, and the payload of
/// the `verdict` event covering them.
pub(crate) fn verdict_rows<'a>(
    set_id: i64,
    page_url: &'a str,
    verdicts: &'a PageVerdicts,
    evidence_ids: &[i64],
    decided_at: i64,
) -> Result<(Vec<VerdictInsert<'a>>, serde_json::Value), StoreError> {
    let mut rows = Vec::with_capacity(3);
    let mut decisions = serde_json::Map::new();
    let mut policy = None;
    for v in verdicts.iter() {
        let ids: Vec<i64> = v
            .evidence
            .iter()
            .filter_map(|&i| evidence_ids.get(i).copied())
            .collect();
        let conditions: Vec<String> = v.conditions.iter().map(|c| c.label()).collect();
        rows.push(VerdictInsert {
            set_id,
            page_url,
            purpose: v.purpose.as_str(),
            decision: v.decision.as_str(),
            conditions: serde_json::to_string(&conditions).map_err(|e| corrupt("conditions", e))?,
            reasons: serde_json::to_string(&v.reasons).map_err(|e| corrupt("reasons", e))?,
            evidence_ids: serde_json::to_string(&ids).map_err(|e| corrupt("evidence_ids", e))?,
            policy_id: &v.policy_id,
            policy_sha256: &v.policy_sha256,
            decided_at,
        });
        decisions.insert(v.purpose.as_str().to_string(), v.decision.as_str().into());
        policy = Some((v.policy_id.clone(), v.policy_sha256.clone()));
    }
    let (policy_id, policy_sha256) = policy.unwrap_or_default();
    let payload = serde_json::json!({
        "decisions": decisions, "policy_id": policy_id, "policy_sha256": policy_sha256,
    });
    Ok((rows, payload))
}
