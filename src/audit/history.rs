//! `byline audit history URL`: everything that happened to one page, in
//! time order: each fetch (a 304 is "unchanged"), each observation of its
//! consent signals (crawl or recheck), each verdict with its policy hash,
//! each revocation, gone marking, answer flag and erasure. Each source is a
//! small function returning typed [`HistoryEvent`]s; [`history`] merges
//! them, so another source is one more function and one more call.

use serde::Serialize;
use serde_json::{Value, json};

use super::AuditError;
use super::records::iso;
use crate::store::Store;

/// One thing that happened to the page.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEvent {
    /// Unix seconds.
    #[serde(skip)]
    pub unix: i64,
    /// RFC 3339.
    pub at: String,
    /// The audit event that logged it (orders events of one second).
    pub seq: Option<i64>,
    /// `fetch`, `unchanged`, `version`, `observed`, `verdict`, `revocation`, `gone`,
    /// `answer.flag`, `erasure`, or another audit event's kind.
    pub kind: String,
    /// One line for people.
    pub summary: String,
    /// The typed details (ids, hashes, decisions).
    pub detail: Value,
}

/// The history of one URL.
#[derive(Debug, Clone, Serialize)]
pub struct History {
    pub url: String,
    pub events: Vec<HistoryEvent>,
}

fn event(unix: i64, kind: &str, summary: String, detail: Value) -> HistoryEvent {
    HistoryEvent {
        unix,
        at: iso(unix),
        seq: None,
        kind: kind.to_string(),
        summary,
        detail,
    }
}

/// The history of `url`; `None` when no crawl or verdict ever met it.
pub async fn history(store: &Store, url: &str) -> Result<Option<History>, AuditError> {
    let (parsed, norm) = super::frontier_key(url)?;
    let page_url = parsed.to_string();
    let front = store.audit_url(&norm).await?;
    let mut events = Vec::new();
    if let Some(f) = &front {
        events.extend(fetches(store, f.frontier_id).await?);
    }
    events.extend(versions(store, url).await?);
    events.extend(observations(store, &page_url).await?);
    events.extend(verdicts(store, &page_url).await?);
    events.extend(revocations(store, &page_url).await?);
    events.extend(logged(store, &page_url, front.as_ref().and_then(|f| f.page_id)).await?);
    events.extend(erasure(store, &norm).await?);
    if front.is_none() && events.is_empty() {
        return Ok(None);
    }
    // By time, then by place in the audit log (events of one second).
    for e in &mut events {
        if e.seq.is_none() {
            e.seq = match logged_row(&e.kind, &e.detail) {
                Some((t, id)) => store.logged_seq(t, id).await?,
                None if e.kind == "erasure" => store.tombstone_seq(&norm).await?,
                None => None,
            };
        }
    }
    events.sort_by_key(|e| (e.unix, e.seq.unwrap_or(i64::MAX)));
    Ok(Some(History {
        url: url.to_string(),
        events,
    }))
}

/// The logged row an event of a source stands for.
fn logged_row(kind: &str, d: &Value) -> Option<(&'static str, i64)> {
    let id = |k: &str| d.get(k).and_then(Value::as_i64);
    match kind {
        "fetch" | "unchanged" => Some(("fetches", id("fetch_id")?)),
        "observed" => Some(("evidence_sets", id("evidence_set")?)),
        "verdict" => Some(("verdicts", id("verdict_id")?)),
        "revocation" => Some(("revocations", id("revocation_id")?)),
        "version" => Some(("page_versions", id("version_id")?)),
        _ => None,
    }
}

/// Every fetch of the frontier URL; a 304 is a check that found it
/// unchanged.
async fn fetches(store: &Store, frontier_id: i64) -> Result<Vec<HistoryEvent>, AuditError> {
    Ok(store
        .fetches_of(frontier_id)
        .await?
        .into_iter()
        .map(|f| {
            let kind = if f.status == Some(304) {
                "unchanged"
            } else {
                "fetch"
            };
            let summary = match (&f.error_kind, f.status) {
                (Some(k), _) => format!("fetch attempt {} failed: {k}", f.attempt),
                (None, Some(304)) => "checked: 304 not modified (unchanged)".to_string(),
                (None, Some(s)) => format!(
                    "fetched: HTTP {s}, {} bytes, body sha256 {}",
                    f.body_bytes.unwrap_or(0),
                    f.body_sha256.as_deref().unwrap_or("-")
                ),
                (None, None) => "fetch without a response".to_string(),
            };
            event(
                f.fetched_at,
                kind,
                summary,
                json!({"fetch_id": f.id, "attempt": f.attempt, "status": f.status,
                       "body_sha256": f.body_sha256, "error_kind": f.error_kind}),
            )
        })
        .collect())
}

/// Each new version of the page's text a refresh or `recheck --bodies`
/// found (old and new hashes, the signal codes that appeared or went).
async fn versions(store: &Store, url: &str) -> Result<Vec<HistoryEvent>, AuditError> {
    Ok(store
        .page_versions(url)
        .await?
        .into_iter()
        .map(|v| {
            let signals = if v.signals_changed.is_empty() {
                "no signal changed".to_string()
            } else {
                format!("signals {}", v.signals_changed.join(" "))
            };
            event(
                v.seen_at,
                "version",
                format!(
                    "new version: text sha256 {} -> {}; {signals}",
                    short(&v.old_text_sha256),
                    short(&v.new_text_sha256)
                ),
                json!({"version_id": v.id, "page_id": v.page_id, "prev_fetch_id": v.prev_fetch_id,
                       "fetch_id": v.fetch_id, "old_text_sha256": v.old_text_sha256,
                       "new_text_sha256": v.new_text_sha256,
                       "old_content_sha256": v.old_content_sha256,
                       "new_content_sha256": v.new_content_sha256,
                       "signals_changed": v.signals_changed, "run_id": v.run_id}),
            )
        })
        .collect())
}

/// The first 12 hex digits of a hash, for the one-line summary.
fn short(h: &str) -> &str {
    h.get(..12).unwrap_or(h)
}

/// Each observation of the page's consent signals (at a crawl or recheck).
async fn observations(store: &Store, page_url: &str) -> Result<Vec<HistoryEvent>, AuditError> {
    Ok(store
        .evidence_sets_of(page_url)
        .await?
        .into_iter()
        .map(|(id, at)| {
            event(
                at,
                "observed",
                format!("consent signals observed (evidence set {id})"),
                json!({"evidence_set": id}),
            )
        })
        .collect())
}

/// Every verdict the log vouches for, with its policy.
async fn verdicts(store: &Store, page_url: &str) -> Result<Vec<HistoryEvent>, AuditError> {
    Ok(store
        .verdict_history(page_url)
        .await?
        .into_iter()
        .map(|v| {
            event(
                v.decided_at,
                "verdict",
                format!(
                    "{}: {} [{}]{} under {} (policy sha256 {})",
                    v.purpose,
                    v.decision,
                    v.reasons.join(", "),
                    if v.conditions.is_empty() {
                        String::new()
                    } else {
                        format!(" conditions: {}", v.conditions.join(", "))
                    },
                    v.policy_id,
                    v.policy_sha256
                ),
                json!({"verdict_id": v.id, "purpose": v.purpose, "decision": v.decision,
                       "reasons": v.reasons, "conditions": v.conditions, "policy_id": v.policy_id,
                       "policy_sha256": v.policy_sha256, "evidence_set": v.set_id}),
            )
        })
        .collect())
}

async fn revocations(store: &Store, page_url: &str) -> Result<Vec<HistoryEvent>, AuditError> {
    Ok(store
        .revocations_of(page_url)
        .await?
        .into_iter()
        .map(|r| {
            event(
                r.revoked_at,
                "revocation",
                format!(
                    "{} revoked: {} -> {} [{}]",
                    r.purpose,
                    r.old_decision,
                    r.new_decision,
                    r.reasons.join(", ")
                ),
                json!({"revocation_id": r.id, "purpose": r.purpose, "old_decision": r.old_decision,
                       "new_decision": r.new_decision, "reasons": r.reasons,
                       "old_verdict_id": r.old_verdict_id, "new_verdict_id": r.new_verdict_id}),
            )
        })
        .collect())
}

/// Audit events about the page that no other source lists: gone markings,
/// answer flags (fetches, verdicts, revocations and erasures come from
/// their own rows above).
async fn logged(
    store: &Store,
    page_url: &str,
    page_id: Option<i64>,
) -> Result<Vec<HistoryEvent>, AuditError> {
    const LISTED: &[&str] = &[
        "fetch",
        "verdict",
        "revocation",
        "forget",
        "robots.fetch",
        "robots.decision",
    ];
    let mut subjects = vec![page_url.to_string()];
    if let Some(p) = page_id {
        subjects.push(format!("page:{p}"));
    }
    let mut out = Vec::new();
    for s in subjects {
        // The crawl's per-page kinds are left out by the store (they are
        // all in LISTED), so this reads an index, not the log.
        let evs = store.subject_events_outside_crawl(&s).await?;
        for e in evs {
            if LISTED.contains(&e.kind.as_str()) {
                continue;
            }
            let kind = if e.kind == "page_gone" {
                "gone"
            } else {
                e.kind.as_str()
            };
            let summary = match kind {
                "gone" => format!(
                    "marked gone: HTTP {}",
                    e.payload
                        .get("status")
                        .map(|v| v.to_string())
                        .unwrap_or_default()
                ),
                "answer.flag" => format!(
                    "answers flagged: {}",
                    e.payload
                        .get("answer_ids")
                        .map(|v| v.to_string())
                        .unwrap_or_default()
                ),
                k => format!("audit event {k}"),
            };
            let mut ev = event(
                e.time,
                kind,
                summary,
                json!({"seq": e.seq, "event_sha256": e.sha256, "payload": e.payload}),
            );
            ev.seq = Some(e.seq);
            out.push(ev);
        }
    }
    Ok(out)
}

/// The erasure, from the tombstone (by hash: the content is gone).
async fn erasure(store: &Store, norm: &str) -> Result<Vec<HistoryEvent>, AuditError> {
    Ok(store
        .tombstone(norm)
        .await?
        .into_iter()
        .map(|t| {
            event(
                t.forgotten_at,
                "erasure",
                format!(
                    "forgotten ({}): content erased, tombstone {}",
                    t.reason, t.url_sha256
                ),
                json!({"tombstone": t.url_sha256, "reason": t.reason}),
            )
        })
        .collect())
}
