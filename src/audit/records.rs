//! The records behind every audit read and export (`byline audit
//! summary|sources|licences|origins|why|export`, `/v1/sources`): one per URL
//! the crawl met and purpose, with the verdict in force; the filters that
//! select them; the Merkle tree over exported record lines.

use std::collections::{BTreeMap, HashMap};

use sha2::{Digest, Sha256};
use url::Url;

use super::AuditError;
use crate::store::Store;
use crate::store::audit::canonical_json;
use crate::store::evidence::EvidenceSet;
use crate::store::provenance::UrlRow;
use crate::store::verdicts::VerdictRow;

/// One URL and purpose.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Rec {
    pub url: String,
    pub origin: String,
    pub purpose: String,
    pub decision: String,
    pub reasons: Vec<String>,
    pub conditions: Vec<String>,
    pub policy_id: Option<String>,
    pub policy_sha256: Option<String>,
    pub licence: Option<String>,
    pub licence_conditions: String,
    pub decided_at: Option<String>,
    #[serde(skip)]
    pub decided_unix: Option<i64>,
    /// The verdict in force (none when the crawl made no verdict).
    #[serde(skip)]
    pub verdict_id: Option<i64>,
    pub crawl_state: String,
    pub page_id: Option<i64>,
}

pub const PURPOSES: [&str; 3] = ["search_index", "rag_attributed", "train"];

/// The decisions a verdict can carry.
pub const DECISIONS: [&str; 4] = ["allowed", "allowed_with_conditions", "excluded", "deferred"];

impl Rec {
    /// The record as exported (`verdicts.jsonl`, WARC metadata); its
    /// canonical form is the Merkle leaf.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "url": self.url, "origin": self.origin, "purpose": self.purpose, "decision": self.decision,
            "reasons": self.reasons, "conditions": self.conditions, "policy_id": self.policy_id,
            "policy_sha256": self.policy_sha256, "licence": self.licence,
            "licence_conditions": self.licence_conditions, "decided_at": self.decided_at,
            "crawl_state": self.crawl_state,
        })
    }

    /// The canonical JSON line of the record (sorted keys, no newline).
    pub fn canonical_line(&self) -> String {
        canonical_json(&self.to_json())
    }
}

/// Whether a decision lets the page be used (with or without conditions).
pub fn usable(r: &Rec) -> bool {
    usable_decision(&r.decision)
}

/// Whether `decision` lets the page be used.
pub fn usable_decision(decision: &str) -> bool {
    matches!(decision, "allowed" | "allowed_with_conditions")
}

/// Counts of equal items, in order.
pub fn count_by<K: Ord + Clone>(items: impl Iterator<Item = K>) -> BTreeMap<K, i64> {
    let mut m = BTreeMap::new();
    for k in items {
        *m.entry(k).or_insert(0) += 1;
    }
    m
}

/// The records that pass `f` (checked first: a bad filter is an input error).
pub async fn filtered(store: &Store, f: &Filters) -> Result<Vec<Rec>, AuditError> {
    f.check()?;
    let t0 = std::time::Instant::now();
    let all = records(store).await?;
    let n = all.len();
    let kept: Vec<Rec> = all.into_iter().filter(|r| f.keep(r)).collect();
    tracing::info!(
        "read {n} verdict records in {} ms, {} pass the filters",
        t0.elapsed().as_millis(),
        kept.len()
    );
    Ok(kept)
}

pub fn iso(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.to_string())
}

/// The page's licence (the policy's one choice,
/// [`crate::policy::evaluate::page_licence`]) and its condition class.
pub fn licence_of(set: &EvidenceSet) -> (Option<String>, String) {
    let best = crate::policy::evaluate::page_licence(set.rows.iter().map(|r| &r.evidence))
        .map(|(_, f, _)| f);
    match best {
        None => (None, "unknown".into()),
        Some(f) => {
            let mut c = Vec::new();
            if f.flags.by {
                c.push("attribution");
            }
            if f.flags.sa {
                c.push("share-alike");
            }
            if f.flags.nc {
                c.push("non-commercial");
            }
            if f.flags.nd {
                c.push("no-derivatives");
            }
            let class = if c.is_empty() {
                "none".to_string()
            } else {
                c.join("+")
            };
            (Some(f.effective_id()), class)
        }
    }
}

/// Adds to `set`, when it holds nothing read from the page body (a
/// recheck that robots.txt kept from the page records only what it could
/// see), the body evidence of the newest set that has some: the licence a
/// page states stays the one it stated when last read. Verdicts, `audit
/// why` and exports all read the licence through this.
pub async fn with_body_evidence(store: &Store, set: &mut EvidenceSet) -> Result<(), AuditError> {
    use crate::store::revocations::BODY_LOCATIONS;
    if set
        .rows
        .iter()
        .any(|r| BODY_LOCATIONS.contains(&r.evidence.location))
    {
        return Ok(());
    }
    for e in store.last_body_evidence(&set.page_url).await? {
        set.rows
            .push(crate::store::evidence::StoredEvidence { id: 0, evidence: e });
    }
    Ok(())
}

fn key(u: &str) -> String {
    Url::parse(u)
        .map(|x| x.to_string())
        .unwrap_or(u.to_string())
}

/// Every URL the crawl met (and every page with verdicts), per purpose.
pub async fn records(store: &Store) -> Result<Vec<Rec>, AuditError> {
    let urls = store.audit_urls().await?;
    let verdicts = store.current_verdicts().await?;
    let licences = latest_licences(store).await?;
    Ok(build(&urls, verdicts, licences))
}

/// The licence of every page (by [`key`]), read from its newest evidence
/// set with [`with_body_evidence`], one set at a time: only the licences
/// are kept, never the corpus's evidence. [`licence_of`] reads only a
/// set's licence rows, which are all the store sends (in their order).
async fn latest_licences(store: &Store) -> Result<Licences, AuditError> {
    // In URL order; `None` for a set that holds nothing read from the
    // body, whose licence is read after the stream (it needs more queries).
    let mut found: Vec<(String, Option<(Option<String>, String)>)> = Vec::new();
    store
        .each_latest_licence_rows(|set, bodied| {
            let licence = bodied.then(|| licence_of(&set));
            found.push((set.page_url, licence));
        })
        .await?;
    let mut out = Licences::with_capacity(found.len());
    for (page_url, licence) in found {
        let licence = match licence {
            Some(l) => l,
            None => match store.latest_evidence_set(&page_url).await? {
                Some(mut set) => {
                    with_body_evidence(store, &mut set).await?;
                    licence_of(&set)
                }
                None => continue,
            },
        };
        out.insert(key(&page_url), licence);
    }
    Ok(out)
}

/// Licence and condition class per page [`key`].
type Licences = HashMap<String, (Option<String>, String)>;

/// The records of one URL (as given, or in its parsed form): reads that
/// URL's rows only, not the corpus.
pub async fn records_of(store: &Store, url: &str) -> Result<Vec<Rec>, AuditError> {
    let mut names = vec![url.to_string()];
    let k = key(url);
    if k != url {
        names.push(k);
    }
    let mut urls: Vec<UrlRow> = Vec::new();
    let mut verdicts = Vec::new();
    let mut sets = Vec::new();
    let mut keys: Vec<String> = names.iter().map(|n| key(n)).collect();
    for n in &names {
        // A name that does not parse names no frontier row.
        let Ok((_, norm)) = super::frontier_key(n) else {
            continue;
        };
        for u in store.audit_urls_named(n, &norm).await? {
            if !urls.iter().any(|x| x.frontier_id == u.frontier_id) {
                keys.push(key(&u.url));
                urls.push(u);
            }
        }
    }
    keys.sort();
    keys.dedup();
    // Verdicts and evidence are stored under the page URL; look under each
    // spelling that keys to one of these URLs.
    let mut page_urls: Vec<String> = keys.clone();
    page_urls.extend(names.iter().cloned());
    page_urls.extend(urls.iter().map(|u| u.url.clone()));
    page_urls.sort();
    page_urls.dedup();
    for p in &page_urls {
        verdicts.extend(store.current_verdicts_of(p).await?);
        if let Some(mut s) = store.latest_evidence_set(p).await? {
            with_body_evidence(store, &mut s).await?;
            sets.push(s);
        }
    }
    let licences = sets
        .iter()
        .map(|s| (key(&s.page_url), licence_of(s)))
        .collect();
    Ok(build(&urls, verdicts, licences)
        .into_iter()
        .filter(|r| names.iter().any(|n| &r.url == n))
        .collect())
}

/// The records of `urls` (frontier rows) and of verdicts without one.
fn build(urls: &[UrlRow], current: Vec<VerdictRow>, licences: Licences) -> Vec<Rec> {
    let mut verdicts: BTreeMap<String, Vec<VerdictRow>> = BTreeMap::new();
    for v in current {
        verdicts.entry(key(&v.page_url)).or_default().push(v);
    }
    let mut out = Vec::new();
    // How many of `urls` share each key: a page's verdicts are moved into
    // its records by the last of them (cloned for the others), so the
    // corpus's verdicts are not held twice while the records are built.
    let mut used: HashMap<String, usize> = HashMap::new();
    for u in urls {
        *used.entry(key(&u.url)).or_insert(0) += 1;
    }
    let rest: Vec<String> = verdicts
        .keys()
        .filter(|k| !used.contains_key(*k))
        .cloned()
        .collect();
    let mut push = |url: &str,
                    origin: &str,
                    state: &str,
                    page_id: Option<i64>,
                    fallback: Option<(String, Vec<String>)>,
                    out: &mut Vec<Rec>| {
        let k = key(url);
        let (licence, class) = licences
            .get(&k)
            .cloned()
            .unwrap_or((None, "unknown".into()));
        let left = used.get_mut(&k).map(|n| {
            *n = n.saturating_sub(1);
            *n
        });
        let vs = match left {
            Some(n) if n > 0 => verdicts.get(&k).cloned(),
            _ => verdicts.remove(&k),
        };
        if let Some(vs) = vs {
            for v in vs {
                out.push(Rec {
                    url: url.to_string(),
                    origin: origin.to_string(),
                    purpose: v.purpose,
                    decision: v.decision,
                    reasons: v.reasons,
                    conditions: v.conditions,
                    policy_id: Some(v.policy_id),
                    policy_sha256: Some(v.policy_sha256),
                    licence: licence.clone(),
                    licence_conditions: class.clone(),
                    decided_at: Some(iso(v.decided_at)),
                    decided_unix: Some(v.decided_at),
                    verdict_id: Some(v.id),
                    crawl_state: state.to_string(),
                    page_id,
                });
            }
        } else if let Some((decision, reasons)) = fallback {
            for p in PURPOSES {
                out.push(Rec {
                    url: url.to_string(),
                    origin: origin.to_string(),
                    purpose: p.into(),
                    decision: decision.clone(),
                    reasons: reasons.clone(),
                    conditions: vec![],
                    policy_id: None,
                    policy_sha256: None,
                    licence: licence.clone(),
                    licence_conditions: class.clone(),
                    decided_at: None,
                    decided_unix: None,
                    verdict_id: None,
                    crawl_state: state.to_string(),
                    page_id,
                });
            }
        }
    };
    for u in urls {
        // No verdict: the crawl has not decided (deferred) or could not
        // collect the URL (excluded, with the crawler's reason).
        let fallback = match u.state.as_str() {
            "queued" | "in_flight" => (
                "deferred".to_string(),
                vec![
                    u.last_error
                        .clone()
                        .map(|e| format!("crawl.retry: {e}"))
                        .unwrap_or_else(|| "crawl.pending".into()),
                ],
            ),
            "skipped" => (
                "excluded".to_string(),
                vec![
                    u.skip_reason
                        .clone()
                        .unwrap_or_else(|| "crawl.skipped".into()),
                ],
            ),
            _ => (
                "excluded".to_string(),
                vec![match (&u.last_error, u.page_id) {
                    (Some(e), _) => format!("crawl.failed: {e}"),
                    (None, None) => "crawl.not_a_page".into(),
                    (None, Some(_)) => "crawl.no_verdict".into(),
                }],
            ),
        };
        let forgotten = u.skip_reason.as_deref() == Some("forgotten");
        let fb = if forgotten {
            ("excluded".to_string(), vec!["forgotten".to_string()])
        } else {
            fallback
        };
        push(&u.url, &u.origin, &u.state, u.page_id, Some(fb), &mut out);
    }
    // Pages judged without a frontier row (the consent hook used on its own).
    for k in rest {
        let origin = Url::parse(&k)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_default();
        push(&k, &origin, "unknown", None, None, &mut out);
    }
    // A forgotten URL is excluded whatever its old verdicts said. (A set:
    // looking each skipped record's URL up in `urls` was quadratic in a
    // corpus with many skipped URLs.)
    let forgotten: std::collections::HashSet<&str> = urls
        .iter()
        .filter(|u| u.skip_reason.as_deref() == Some("forgotten"))
        .map(|u| u.url.as_str())
        .collect();
    for r in out.iter_mut() {
        if r.crawl_state == "skipped"
            && forgotten.contains(r.url.as_str())
            && !r.reasons.iter().any(|x| x == "forgotten")
        {
            r.decision = "excluded".into();
            r.reasons = vec!["forgotten".into()];
            r.conditions.clear();
        }
    }
    out
}

/// Filters shared by the list commands and export (all optional; a record
/// passes when it matches every one given).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Filters {
    /// Only this purpose (search_index, rag_attributed, train).
    pub purpose: Option<String>,
    /// Only this decision (allowed, allowed_with_conditions, excluded, deferred).
    pub decision: Option<String>,
    /// Only records with this reason code (prefix match: `robots.` matches robots.disallow).
    pub reason: Option<String>,
    /// Only this licence (SPDX id; `unknown` for none).
    pub licence: Option<String>,
    /// Only this origin (scheme://host[:port]).
    pub origin: Option<String>,
    /// Only verdicts decided on or after this date (YYYY-MM-DD, UTC).
    pub since: Option<String>,
    /// Only verdicts decided before the end of this date (YYYY-MM-DD, UTC).
    pub until: Option<String>,
}

fn day_start(d: &str) -> Result<i64, AuditError> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(d, &fmt)
        .map_err(|e| AuditError::Input(format!("date {d:?} is not YYYY-MM-DD: {e}")))?;
    Ok(date.midnight().assume_utc().unix_timestamp())
}

impl Filters {
    pub fn check(&self) -> Result<(), AuditError> {
        if let Some(p) = &self.purpose
            && !PURPOSES.contains(&p.as_str())
        {
            return Err(AuditError::Input(format!(
                "unknown purpose {p:?}: use one of {}",
                PURPOSES.join(", ")
            )));
        }
        if let Some(d) = &self.decision
            && !DECISIONS.contains(&d.as_str())
        {
            return Err(AuditError::Input(format!(
                "unknown decision {d:?}: use one of {}",
                DECISIONS.join(", ")
            )));
        }
        if let Some(s) = &self.since {
            day_start(s)?;
        }
        if let Some(s) = &self.until {
            day_start(s)?;
        }
        Ok(())
    }

    pub fn keep(&self, r: &Rec) -> bool {
        let since = self.since.as_deref().and_then(|d| day_start(d).ok());
        let until = self
            .until
            .as_deref()
            .and_then(|d| day_start(d).ok())
            .map(|t| t + 86_400);
        self.purpose.as_ref().is_none_or(|p| &r.purpose == p)
            && self.decision.as_ref().is_none_or(|d| &r.decision == d)
            && self
                .reason
                .as_ref()
                .is_none_or(|x| r.reasons.iter().any(|c| c.starts_with(x.as_str())))
            && self.licence.as_ref().is_none_or(|l| {
                r.licence
                    .as_deref()
                    .unwrap_or("unknown")
                    .eq_ignore_ascii_case(l)
            })
            && self
                .origin
                .as_ref()
                .is_none_or(|o| r.origin.trim_end_matches('/') == o.trim_end_matches('/'))
            && since.is_none_or(|s| r.decided_unix.is_some_and(|t| t >= s))
            && until.is_none_or(|u| r.decided_unix.is_some_and(|t| t < u))
    }
}

/// Leaf hash of one exported record line (bytes without the newline).
pub fn merkle_leaf(line: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(line);
    h.finalize().into()
}

/// Merkle root: leaves `sha256(0x00 || line)`, inner nodes
/// `sha256(0x01 || left || right)` over the raw 32-byte digests, level by
/// level left to right, an odd last node carried up unchanged; empty =
/// sha256 of nothing.
pub fn merkle_root(leaves: &[[u8; 32]]) -> String {
    if leaves.is_empty() {
        return hex::encode(Sha256::digest(b""));
    }
    let mut level = leaves.to_vec();
    while level.len() > 1 {
        let mut next = Vec::with_capacity(level.len().div_ceil(2));
        for pair in level.chunks(2) {
            if pair.len() == 2 {
                let mut h = Sha256::new();
                h.update([1u8]);
                h.update(pair[0]);
                h.update(pair[1]);
                next.push(h.finalize().into());
            } else {
                next.push(pair[0]);
            }
        }
        level = next;
    }
    hex::encode(level[0])
}
