//! Corpus summaries and breakdowns: `audit summary`, `audit licences`,
//! `audit origins`.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde::Serialize;

use super::AuditError;
use super::records::{Filters, count_by, filtered, records};
use crate::store::Store;

/// `byline audit summary`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// URLs the crawl met.
    pub urls: usize,
    /// Of them, stored pages.
    pub pages: i64,
    pub origins: i64,
    /// purpose → decision → records in force.
    pub verdicts: BTreeMap<String, BTreeMap<String, i64>>,
    /// The ten most frequent reason codes.
    pub top_reasons: Vec<ReasonCount>,
    /// Per licence and condition class: URLs.
    pub licences: Vec<SummaryLicence>,
    pub policies: Vec<PolicyInUse>,
    /// Audit log events by kind.
    pub audit_events: BTreeMap<String, i64>,
    /// URLs forgotten (tombstones).
    pub forgotten: i64,
    /// Exports made.
    pub exports: usize,
    /// Links and URLs not followed or not fetched, by reason.
    pub not_followed: Vec<ReasonCount>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReasonCount {
    pub reason: String,
    pub count: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SummaryLicence {
    pub licence: String,
    pub conditions: String,
    pub pages: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PolicyInUse {
    pub policy_id: String,
    pub sha256: String,
    pub verdicts_in_force: i64,
}

/// Reads the whole corpus once and summarises it.
pub async fn summary(store: &Store) -> Result<Summary, AuditError> {
    let t0 = std::time::Instant::now();
    let recs = records(store).await?;
    let urls = store.audit_urls().await?;
    tracing::info!(
        "read {} verdict records and {} URLs in {} ms",
        recs.len(),
        urls.len(),
        t0.elapsed().as_millis()
    );
    let pages = urls.iter().filter(|u| u.page_id.is_some()).count() as i64;
    let origins = count_by(urls.iter().map(|u| u.origin.clone())).len() as i64;
    let mut verdicts: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    for r in &recs {
        *verdicts
            .entry(r.purpose.clone())
            .or_default()
            .entry(r.decision.clone())
            .or_insert(0) += 1;
    }
    let mut reasons: Vec<(String, i64)> =
        count_by(recs.iter().flat_map(|r| r.reasons.iter().cloned()))
            .into_iter()
            .collect();
    reasons.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    reasons.truncate(10);
    // One licence per page (the search_index record carries it like the others).
    let mut seen = HashSet::new();
    let lic = count_by(recs.iter().filter(|r| seen.insert(r.url.clone())).map(|r| {
        (
            r.licence.clone().unwrap_or_else(|| "unknown".into()),
            r.licence_conditions.clone(),
        )
    }));
    let policies = store.policies_in_use().await?;
    let events = store.audit_kind_counts().await?;
    let forgotten = store.tombstone_count().await?;
    let exports = store.exports().await?;
    let not_followed = store.not_followed_counts().await?;
    Ok(Summary {
        urls: urls.len(),
        pages,
        origins,
        verdicts,
        top_reasons: reasons
            .into_iter()
            .map(|(reason, count)| ReasonCount { reason, count })
            .collect(),
        licences: lic
            .into_iter()
            .map(|((licence, conditions), pages)| SummaryLicence {
                licence,
                conditions,
                pages,
            })
            .collect(),
        policies: policies
            .into_iter()
            .map(|(policy_id, sha256, verdicts_in_force)| PolicyInUse {
                policy_id,
                sha256,
                verdicts_in_force,
            })
            .collect(),
        audit_events: events.into_iter().collect(),
        forgotten,
        exports: exports.len(),
        not_followed: not_followed
            .into_iter()
            .map(|(reason, count)| ReasonCount { reason, count })
            .collect(),
    })
}

/// One licence and condition class with the URLs carrying it.
#[derive(Debug, Clone, Serialize)]
pub struct LicenceRow {
    pub licence: String,
    pub conditions: String,
    pub urls: usize,
}

/// `byline audit licences`: per licence (SPDX id or `unknown`) and condition
/// class, the distinct URLs among the filtered records.
pub async fn licences(store: &Store, f: &Filters) -> Result<Vec<LicenceRow>, AuditError> {
    let recs = filtered(store, f).await?;
    let mut m: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for r in &recs {
        m.entry((
            r.licence.clone().unwrap_or_else(|| "unknown".into()),
            r.licence_conditions.clone(),
        ))
        .or_default()
        .insert(r.url.clone());
    }
    Ok(m.into_iter()
        .map(|((licence, conditions), u)| LicenceRow {
            licence,
            conditions,
            urls: u.len(),
        })
        .collect())
}

/// One origin: distinct URLs and records per decision.
#[derive(Debug, Clone, Serialize)]
pub struct OriginRow {
    pub origin: String,
    pub urls: usize,
    pub decisions: BTreeMap<String, i64>,
}

/// `byline audit origins`.
pub async fn origins(store: &Store, f: &Filters) -> Result<Vec<OriginRow>, AuditError> {
    let recs = filtered(store, f).await?;
    let mut m: BTreeMap<String, (BTreeSet<String>, BTreeMap<String, i64>)> = BTreeMap::new();
    for r in &recs {
        let e = m.entry(r.origin.clone()).or_default();
        e.0.insert(r.url.clone());
        *e.1.entry(r.decision.clone()).or_insert(0) += 1;
    }
    Ok(m.into_iter()
        .map(|(origin, (u, decisions))| OriginRow {
            origin,
            urls: u.len(),
            decisions,
        })
        .collect())
}
