//! One URL's trail in pipeline order (`byline audit why`, `GET
//! /v1/sources/{id}`): how the crawler met it, robots.txt, fetches, consent
//! signals, licence, verdicts in force and their history, revocations,
//! whether it was forgotten, and its audit log events. Reads that URL's rows
//! only.

use serde::Serialize;
use serde_json::Value;

use super::AuditError;
use super::records::{iso, records_of, usable};
use crate::store::Store;

/// The trail of one URL; `audit why --json` prints it and `/v1/sources/{id}`
/// returns it.
#[derive(Debug, Clone, Serialize)]
pub struct WhyReport {
    /// The URL as asked for.
    pub url: String,
    /// The crawler's row for it (absent when only the consent hook judged it).
    pub frontier: Option<WhyFrontier>,
    /// Every fetch attempt, oldest first.
    pub fetches: Vec<WhyFetch>,
    /// The robots.txt decision for it.
    pub robots: Option<WhyRobots>,
    /// The latest evidence set's signals (absent when none was recorded).
    pub evidence: Option<Vec<WhyEvidence>>,
    /// When that evidence set was observed (RFC 3339).
    #[serde(skip)]
    pub evidence_observed_at: Option<String>,
    pub licence: Option<WhyLicence>,
    /// The verdicts in force, one per purpose.
    pub verdicts: Vec<WhyVerdict>,
    /// How many verdicts were ever made for the page.
    pub verdict_history: usize,
    pub forgotten: Option<WhyForgotten>,
    pub audit_events: Vec<WhyEvent>,
    pub revocations: Vec<WhyRevocation>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WhyFrontier {
    pub id: i64,
    pub origin: String,
    pub depth: i64,
    pub state: String,
    pub skip_reason: Option<String>,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WhyFetch {
    pub id: i64,
    pub attempt: i64,
    pub requested_url: String,
    pub final_url: Option<String>,
    /// The redirect hops as stored (JSON array).
    pub redirect_chain: Value,
    pub fetched_at: String,
    pub status: Option<i64>,
    pub content_type: Option<String>,
    pub body_sha256: Option<String>,
    pub body_bytes: Option<i64>,
    pub error_kind: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WhyRobots {
    pub version_id: i64,
    pub robots_url: String,
    pub status: Option<i64>,
    pub outcome: String,
    pub sha256: Option<String>,
    pub fetched_at: String,
    pub allowed: bool,
    /// 1-based line of the rule that matched.
    pub line: Option<i64>,
    pub line_text: Option<String>,
    pub rule: Option<String>,
    pub reason: Option<String>,
    /// What this explains: `verdict` (the robots.txt version named by the
    /// evidence of the verdict in force, matched again) or `crawl` (the
    /// crawler's decision when it fetched the page).
    pub decided_by: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct WhyEvidence {
    pub id: i64,
    pub signal: String,
    pub status_label: String,
    pub location: String,
    pub scope: String,
    pub raw: String,
    /// The parsed observation (its `type` names the kind).
    pub parsed: Value,
}

#[derive(Debug, Clone, Serialize)]
pub struct WhyLicence {
    /// SPDX id; `null` when none was found.
    pub spdx: Option<String>,
    pub conditions: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct WhyVerdict {
    pub purpose: String,
    pub decision: String,
    pub reasons: Vec<String>,
    pub conditions: Vec<String>,
    pub policy_id: Option<String>,
    pub policy_sha256: Option<String>,
    pub decided_at: Option<String>,
    pub usable_now: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct WhyForgotten {
    pub at: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct WhyEvent {
    pub seq: i64,
    pub kind: String,
    pub time: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct WhyRevocation {
    pub id: i64,
    pub purpose: String,
    pub old_decision: String,
    pub new_decision: String,
    pub reasons: Vec<String>,
    pub evidence_ids: Vec<i64>,
    pub revoked_at: String,
    pub after_export: Option<i64>,
}

/// The trail of `url`; `None` when no crawl ever met it. A URL that does not
/// parse is an input error.
pub async fn why(store: &Store, url: &str) -> Result<Option<WhyReport>, AuditError> {
    let (parsed, norm) = super::frontier_key(url)?;
    let front = store.audit_url(&norm).await?;
    let set = store.latest_evidence_set(parsed.as_str()).await?;
    let history = store.verdict_history(parsed.as_str()).await?;
    if front.is_none() && set.is_none() && history.is_empty() {
        return Ok(None);
    }
    let fetches = match &front {
        Some(f) => store.fetches_of(f.frontier_id).await?,
        None => vec![],
    };
    let robots = match &front {
        Some(f) => store.robots_decision_of(f.frontier_id).await?,
        None => None,
    };
    let tomb = store.tombstone(&norm).await?;
    let recs = records_of(store, url).await?;
    let events = store
        .subject_events(parsed.as_str(), front.as_ref().map(|f| f.frontier_id))
        .await?;
    let mut revocations = store.revocations_of(parsed.as_str()).await?;
    if url != parsed.as_str() {
        revocations.extend(store.revocations_of(url).await?);
    }
    // The verdict in force decides what is explained: its evidence set
    // names the robots.txt version it was decided on and holds the licence
    // evidence (the one licence choice citations and exports use).
    let in_force = store.current_verdicts_of(parsed.as_str()).await?;
    let set_in_force = in_force
        .iter()
        .map(|v| (v.id, v.set_id))
        .max()
        .map(|(_, s)| s);
    let mut decided_by = "crawl";
    let mut robots = robots;
    if let Some(set_id) = set_in_force {
        if let Some(v) = robots_of_set(store, set_id, &parsed).await? {
            if robots.as_ref().map(|r| r.version_id) != Some(v.version_id) {
                robots = Some(v);
                decided_by = "verdict";
            }
        }
    }
    let licence_in_force = match set_in_force {
        Some(set_id) => {
            let mut set = crate::store::evidence::EvidenceSet {
                set_id,
                page_url: parsed.to_string(),
                page_id: None,
                site_origin: String::new(),
                observed_at: 0,
                rows: store.evidence_rows(set_id).await?,
            };
            super::records::with_body_evidence(store, &mut set).await?;
            Some(super::records::licence_of(&set))
        }
        None => None,
    };
    let robots_line = robots.as_ref().and_then(|r| {
        let body = String::from_utf8_lossy(r.robots_body.as_deref()?).into_owned();
        let n = usize::try_from(r.matched_line?).ok()?;
        body.lines().nth(n.checked_sub(1)?).map(str::to_string)
    });
    Ok(Some(WhyReport {
        url: url.to_string(),
        frontier: front.as_ref().map(|f| WhyFrontier {
            id: f.frontier_id,
            origin: f.origin.clone(),
            depth: f.depth,
            state: f.state.clone(),
            skip_reason: f.skip_reason.clone(),
            last_error: f.last_error.clone(),
        }),
        fetches: fetches
            .iter()
            .map(|f| WhyFetch {
                id: f.id,
                attempt: f.attempt,
                requested_url: f.requested_url.clone(),
                final_url: f.final_url.clone(),
                redirect_chain: serde_json::from_str(&f.redirect_chain).unwrap_or_default(),
                fetched_at: iso(f.fetched_at),
                status: f.status,
                content_type: f.content_type.clone(),
                body_sha256: f.body_sha256.clone(),
                body_bytes: f.body_bytes,
                error_kind: f.error_kind.clone(),
            })
            .collect(),
        robots: robots.as_ref().map(|r| WhyRobots {
            version_id: r.version_id,
            robots_url: r.robots_url.clone(),
            status: r.robots_status,
            outcome: r.robots_outcome.clone(),
            sha256: r.robots_sha256.clone(),
            fetched_at: iso(r.robots_fetched_at),
            allowed: r.allowed,
            line: r.matched_line,
            line_text: robots_line,
            rule: r.rule.clone(),
            reason: r.reason.clone(),
            decided_by,
        }),
        evidence: set.as_ref().map(|s| {
            s.rows
                .iter()
                .map(|e| WhyEvidence {
                    id: e.id,
                    signal: e.evidence.signal.clone(),
                    status_label: e.evidence.status_label.as_str().to_string(),
                    location: e.evidence.location.as_str().to_string(),
                    scope: e.evidence.scope.label(),
                    raw: e.evidence.raw.clone(),
                    parsed: serde_json::to_value(&e.evidence.observation).unwrap_or_default(),
                })
                .collect()
        }),
        evidence_observed_at: set.as_ref().map(|s| iso(s.observed_at)),
        licence: match licence_in_force {
            Some((spdx, conditions)) => Some(WhyLicence { spdx, conditions }),
            None => recs.first().map(|r| WhyLicence {
                spdx: r.licence.clone(),
                conditions: r.licence_conditions.clone(),
            }),
        },
        verdicts: recs
            .iter()
            .map(|r| WhyVerdict {
                purpose: r.purpose.clone(),
                decision: r.decision.clone(),
                reasons: r.reasons.clone(),
                conditions: r.conditions.clone(),
                policy_id: r.policy_id.clone(),
                policy_sha256: r.policy_sha256.clone(),
                decided_at: r.decided_at.clone(),
                usable_now: usable(r),
            })
            .collect(),
        verdict_history: history.len(),
        forgotten: tomb.as_ref().map(|t| WhyForgotten {
            at: iso(t.forgotten_at),
            reason: t.reason.clone(),
        }),
        audit_events: events
            .iter()
            .map(|e| WhyEvent {
                seq: e.seq,
                kind: e.kind.clone(),
                time: iso(e.time),
            })
            .collect(),
        revocations: revocations
            .iter()
            .map(|r| WhyRevocation {
                id: r.id,
                purpose: r.purpose.clone(),
                old_decision: r.old_decision.clone(),
                new_decision: r.new_decision.clone(),
                reasons: r.reasons.clone(),
                evidence_ids: r.evidence_ids.clone(),
                revoked_at: iso(r.revoked_at),
                after_export: r.after_export,
            })
            .collect(),
    }))
}

/// The robots.txt version the evidence set `set_id` names (its `robots.txt`
/// row's fetch reference), with the decision its rules make for `url` now
/// matched again by the crawler's own parser: the deciding line and rule.
async fn robots_of_set(
    store: &Store,
    set_id: i64,
    url: &url::Url,
) -> Result<Option<crate::store::provenance::RobotsRow>, AuditError> {
    let rows = store.evidence_rows(set_id).await?;
    let Some(f) = rows
        .iter()
        .find(|r| r.evidence.signal == "robots.txt")
        .and_then(|r| r.evidence.fetch_ref.clone())
    else {
        return Ok(None);
    };
    let Some(mut v) = store
        .robots_version_at(&f.url, f.fetched_at, f.body_sha256.as_deref())
        .await?
    else {
        return Ok(None);
    };
    match v.robots_outcome.as_str() {
        "rules" | "cached" => {
            let body = v.robots_body.clone().unwrap_or_default();
            let d = crate::crawl::robots::RobotsRules::parse(
                &body,
                crate::crawl::robots::PRODUCT_TOKEN,
            )
            .check(url);
            v.allowed = d.allowed;
            v.matched_line = d.matched_line.and_then(|l| i64::try_from(l).ok());
            v.rule = d.rule;
            v.reason = (!d.allowed).then(|| "robots.disallow".to_string());
        }
        "allow_all" => v.allowed = true,
        _ => {
            v.allowed = false;
            v.reason = Some("robots.disallow_all".into());
        }
    }
    Ok(Some(v))
}
