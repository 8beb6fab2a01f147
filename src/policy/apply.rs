//! `byline policy apply`: re-judges the stored corpus under a policy from
//! the stored evidence (nothing is fetched) and reports each verdict that
//! changes. Forgotten pages keep their tombstone's verdicts: erased content
//! never gets a fresh decision.

use serde::Serialize;

use super::{Policy, evaluate};
use crate::store::{Store, StoreError};

/// One verdict that changes: the page, the purpose, before and after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerdictChange {
    pub page_url: String,
    pub purpose: String,
    /// `None` when the page had no verdict for this purpose.
    pub before: Option<Judgement>,
    pub after: Judgement,
}

/// A decision with its reasons, conditions and the policy that made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Judgement {
    pub decision: String,
    pub reasons: Vec<String>,
    pub conditions: Vec<String>,
    pub policy_id: String,
}

/// What [`apply`] did.
#[derive(Debug, Clone, Serialize)]
pub struct ApplyReport {
    pub policy_id: String,
    pub policy_sha256: String,
    pub dry_run: bool,
    /// Pages re-evaluated (forgotten ones excluded).
    pub pages: usize,
    pub changes: Vec<VerdictChange>,
    pub forgotten_left_alone: usize,
}

/// Re-evaluates every page's newest evidence set under `p` (whose file
/// bytes are `bytes`), storing the new verdicts unless `dry_run`.
pub async fn apply(
    store: &Store,
    p: &Policy,
    bytes: &[u8],
    now: i64,
    dry_run: bool,
) -> Result<ApplyReport, StoreError> {
    if !dry_run {
        store.record_policy(&p.id, &p.sha256, bytes, now).await?;
    }
    let mut report = ApplyReport {
        policy_id: p.id.clone(),
        policy_sha256: p.sha256.clone(),
        dry_run,
        pages: 0,
        changes: Vec::new(),
        forgotten_left_alone: 0,
    };
    // The sets without their rows, each set's rows read when it comes up:
    // memory stays bounded whatever the corpus's size.
    for mut set in store.latest_evidence_sets().await? {
        let norm = url::Url::parse(&set.page_url)
            .ok()
            .and_then(|u| crate::crawl::urls::normalise(&u))
            .map(|u| u.to_string())
            .unwrap_or_else(|| set.page_url.clone());
        if store.tombstone(&norm).await?.is_some() {
            report.forgotten_left_alone += 1;
            continue;
        }
        report.pages += 1;
        set.rows = store.evidence_rows(set.set_id).await?;
        let evidence: Vec<_> = set.rows.iter().map(|r| r.evidence.clone()).collect();
        let ids: Vec<i64> = set.rows.iter().map(|r| r.id).collect();
        let verdicts = evaluate(&evidence, p, now);
        let old = store.latest_verdicts(&set.page_url, None).await?;
        for nv in verdicts.iter() {
            let after = Judgement {
                decision: nv.decision.as_str().to_string(),
                reasons: nv.reasons.clone(),
                conditions: nv.conditions.iter().map(|c| c.label()).collect(),
                policy_id: p.id.clone(),
            };
            let before = old
                .iter()
                .find(|o| o.purpose == nv.purpose.as_str())
                .map(|b| Judgement {
                    decision: b.decision.clone(),
                    reasons: b.reasons.clone(),
                    conditions: b.conditions.clone(),
                    policy_id: b.policy_id.clone(),
                });
            let same = before.as_ref().is_some_and(|b| {
                b.decision == after.decision
                    && b.conditions == after.conditions
                    && b.reasons == after.reasons
            });
            if !same {
                report.changes.push(VerdictChange {
                    page_url: set.page_url.clone(),
                    purpose: nv.purpose.as_str().to_string(),
                    before,
                    after,
                });
            }
        }
        if !dry_run {
            store
                .insert_verdicts(set.set_id, &set.page_url, &verdicts, &ids, now)
                .await?;
        }
    }
    Ok(report)
}

impl Judgement {
    /// `allowed [reason, …] conditions: [label, …] (policy)`.
    pub fn line(&self) -> String {
        format!(
            "{} [{}] conditions: [{}] ({})",
            self.decision,
            self.reasons.join(", "),
            self.conditions.join(", "),
            self.policy_id
        )
    }
}
