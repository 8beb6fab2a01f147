//! `byline audit …`: read the provenance of the corpus (summary, why, lists),
//! export it, and verify the hash-chained audit log.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use sha2::{Digest, Sha256};

use super::Global;
use super::audit_report::{self, Filters, Rec, iso, merkle_leaf, merkle_root, records, table};
use super::exit::{InputResult, Status};
use crate::store::Store;
use crate::store::audit::{EventFilter, canonical_json};

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Jsonl,
    Csv,
    /// WARC/1.1 (`corpus.warc.gz`): robots.txt captures and page content,
    /// beside the `verdicts.jsonl` records.
    Warc,
    /// Croissant 1.1 JSON-LD (`croissant.json`) with PROV-O provenance,
    /// describing the `verdicts.jsonl` records written beside it.
    Croissant,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Pages, origins, verdict counts per purpose and decision, top reasons,
    /// licences and the policy versions in use.
    Summary {
        #[arg(long)]
        json: bool,
    },
    /// The whole trail of one URL in pipeline order: fetches, robots.txt,
    /// every signal, licence, verdicts, whether it is usable now.
    Why {
        url: String,
        #[arg(long)]
        json: bool,
    },
    /// One row per URL and purpose, filterable.
    Sources {
        #[command(flatten)]
        filters: Filters,
        #[arg(long)]
        json: bool,
    },
    /// Licences with their condition class and page counts, filterable.
    Licences {
        #[command(flatten)]
        filters: Filters,
        #[arg(long)]
        json: bool,
    },
    /// Per origin: URLs met, pages, decisions, filterable.
    Origins {
        #[command(flatten)]
        filters: Filters,
        #[arg(long)]
        json: bool,
    },
    /// A numbered export with a manifest (counts, policy hashes, Merkle root).
    Export {
        #[arg(long, value_enum)]
        format: Format,
        #[command(flatten)]
        filters: Filters,
        /// Directory to write into (created).
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Fetch robots.txt, tdmrep.json, ai.txt and each stored page's headers
    /// again, re-evaluate, revoke the uses owners have since opted out of.
    Recheck {
        /// Only this origin (scheme://host[:port]).
        #[arg(long)]
        origin: Option<String>,
        /// The contact URL in our User-Agent.
        #[arg(long)]
        contact: Option<String>,
        /// Minimum gap between two requests to one origin, in milliseconds.
        #[arg(long)]
        min_delay_ms: Option<u64>,
        #[arg(long)]
        json: bool,
    },
    /// Re-derive the audit log's hash chain and every logged row's hash;
    /// name every tampered, unlogged or missing row (exit 1 when anything
    /// was altered).
    Verify {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// Fail unless the log extends this head (`SEQ:HASH`, as printed
        /// by `byline audit head`): catches truncation and a rewritten tail.
        #[arg(long, value_name = "SEQ:HASH")]
        expect_head: Vec<String>,
        /// Fail unless the log extends the head recorded in this export
        /// directory's manifest.json (`audit_head_sha256`).
        #[arg(long, value_name = "DIR")]
        since_export: Vec<PathBuf>,
    },
    /// The newest audit event's seq and hash: write it down somewhere the
    /// database's owner cannot edit, and pass it to `verify --expect-head`.
    Head {
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(args: AuditArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let store = super::open_corpus(global).await?;
    let code = match args.command {
        AuditCommand::Verify {
            json,
            expect_head,
            since_export,
        } => verify(&store, json, &expect_head, &since_export).await?,
        AuditCommand::Head { json } => head(&store, json).await?,
        AuditCommand::Recheck {
            origin,
            contact,
            min_delay_ms,
            json,
        } => {
            let cfg = super::recheck::config(contact.as_deref(), min_delay_ms).input()?;
            super::recheck::run(&store, origin.as_deref(), cfg, json).await?
        }
        AuditCommand::Summary { json } => summary(&store, json).await?,
        AuditCommand::Why { url, json } => why(&store, &url, json).await?,
        AuditCommand::Sources { filters, json } => sources(&store, &filters, json).await?,
        AuditCommand::Licences { filters, json } => licences(&store, &filters, json).await?,
        AuditCommand::Origins { filters, json } => origins(&store, &filters, json).await?,
        AuditCommand::Export {
            format,
            filters,
            out,
            json,
        } => export(&store, format, &filters, &out, json).await?,
    };
    store.close().await;
    Ok(code)
}

fn count_by<K: Ord + Clone>(items: impl Iterator<Item = K>) -> BTreeMap<K, i64> {
    let mut m = BTreeMap::new();
    for k in items {
        *m.entry(k).or_insert(0) += 1;
    }
    m
}

async fn summary(store: &Store, json: bool) -> anyhow::Result<ExitCode> {
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
    let mut by_purpose: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    for r in &recs {
        *by_purpose
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
    let mut seen = std::collections::HashSet::new();
    let lic = count_by(recs.iter().filter(|r| seen.insert(r.url.clone())).map(|r| {
        (
            r.licence.clone().unwrap_or_else(|| "unknown".into()),
            r.licence_conditions.clone(),
        )
    }));
    let policies = store.policies_in_use().await?;
    let events = store.audit_kind_counts().await?;
    let tombstones = store.tombstone_count().await?;
    let exports = store.exports().await?;
    let not_followed = store.not_followed_counts().await?;
    if json {
        let v = serde_json::json!({
            "urls": urls.len(), "pages": pages, "origins": origins,
            "verdicts": by_purpose,
            "top_reasons": reasons.iter().map(|(r, n)| serde_json::json!({"reason": r, "count": n})).collect::<Vec<_>>(),
            "licences": lic.iter().map(|((l, c), n)| serde_json::json!({"licence": l, "conditions": c, "pages": n})).collect::<Vec<_>>(),
            "policies": policies.iter().map(|(id, sha, n)| serde_json::json!({"policy_id": id, "sha256": sha, "verdicts_in_force": n})).collect::<Vec<_>>(),
            "audit_events": events.iter().map(|(k, n)| (k.clone(), *n)).collect::<BTreeMap<_, _>>(),
            "forgotten": tombstones,
            "exports": exports.len(),
            "not_followed": not_followed.iter().map(|(r, n)| serde_json::json!({"reason": r, "count": n})).collect::<Vec<_>>(),
        });
        outln!("{v}");
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "corpus: {} URLs met, {pages} pages, {origins} origins, {tombstones} forgotten, {} exports",
        urls.len(),
        exports.len()
    );
    outln!();
    outln!("verdicts in force (per URL and purpose):");
    let decisions = ["allowed", "allowed_with_conditions", "excluded", "deferred"];
    let rows: Vec<Vec<String>> = by_purpose
        .iter()
        .map(|(p, m)| {
            let mut r = vec![p.clone()];
            r.extend(
                decisions
                    .iter()
                    .map(|d| m.get(*d).copied().unwrap_or(0).to_string()),
            );
            r
        })
        .collect();
    table(
        &[
            "purpose",
            "allowed",
            "allowed_with_conditions",
            "excluded",
            "deferred",
        ],
        &rows,
    );
    outln!();
    outln!("top reason codes:");
    let rows: Vec<Vec<String>> = reasons
        .iter()
        .map(|(r, n)| vec![r.clone(), n.to_string()])
        .collect();
    table(&["reason", "records"], &rows);
    outln!();
    outln!("licences (per URL):");
    let rows: Vec<Vec<String>> = lic
        .iter()
        .map(|((l, c), n)| vec![l.clone(), c.clone(), n.to_string()])
        .collect();
    table(&["licence", "conditions", "urls"], &rows);
    outln!();
    outln!("policy versions:");
    let rows: Vec<Vec<String>> = policies
        .iter()
        .map(|(id, sha, n)| vec![id.clone(), sha.clone(), n.to_string()])
        .collect();
    table(&["policy", "sha256", "verdicts in force"], &rows);
    outln!();
    outln!("not followed or not fetched (links and URLs, by reason):");
    let rows: Vec<Vec<String>> = not_followed
        .iter()
        .map(|(r, n)| vec![r.clone(), n.to_string()])
        .collect();
    table(&["reason", "count"], &rows);
    outln!();
    let total: i64 = events.iter().map(|e| e.1).sum();
    let list: Vec<String> = events.iter().map(|(k, n)| format!("{k} {n}")).collect();
    outln!("audit log: {total} events ({})", list.join(", "));
    Ok(ExitCode::SUCCESS)
}

pub(super) fn rec_json(r: &Rec) -> serde_json::Value {
    serde_json::json!({
        "url": r.url, "origin": r.origin, "purpose": r.purpose, "decision": r.decision,
        "reasons": r.reasons, "conditions": r.conditions, "policy_id": r.policy_id,
        "policy_sha256": r.policy_sha256, "licence": r.licence,
        "licence_conditions": r.licence_conditions, "decided_at": r.decided_at,
        "crawl_state": r.crawl_state,
    })
}

async fn filtered(store: &Store, f: &Filters) -> anyhow::Result<Vec<Rec>> {
    f.check().input()?;
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

async fn sources(store: &Store, f: &Filters, json: bool) -> anyhow::Result<ExitCode> {
    let recs = filtered(store, f).await?;
    if json {
        let v: Vec<_> = recs.iter().map(rec_json).collect();
        outln!("{}", serde_json::Value::Array(v));
    } else {
        let rows: Vec<Vec<String>> = recs
            .iter()
            .map(|r| {
                vec![
                    r.url.clone(),
                    r.purpose.clone(),
                    r.decision.clone(),
                    r.reasons.join(","),
                    r.licence.clone().unwrap_or_else(|| "unknown".into()),
                    r.decided_at.clone().unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        table(
            &[
                "url",
                "purpose",
                "decision",
                "reasons",
                "licence",
                "decided_at",
            ],
            &rows,
        );
        outln!("{} records", recs.len());
    }
    Ok(ExitCode::SUCCESS)
}

async fn licences(store: &Store, f: &Filters, json: bool) -> anyhow::Result<ExitCode> {
    let recs = filtered(store, f).await?;
    let mut m: BTreeMap<(String, String), std::collections::BTreeSet<String>> = BTreeMap::new();
    for r in &recs {
        m.entry((
            r.licence.clone().unwrap_or_else(|| "unknown".into()),
            r.licence_conditions.clone(),
        ))
        .or_default()
        .insert(r.url.clone());
    }
    if json {
        let v: Vec<_> = m
            .iter()
            .map(|((l, c), u)| serde_json::json!({"licence": l, "conditions": c, "urls": u.len()}))
            .collect();
        outln!("{}", serde_json::Value::Array(v));
    } else {
        let rows: Vec<Vec<String>> = m
            .iter()
            .map(|((l, c), u)| vec![l.clone(), c.clone(), u.len().to_string()])
            .collect();
        table(&["licence", "conditions", "urls"], &rows);
    }
    Ok(ExitCode::SUCCESS)
}

async fn origins(store: &Store, f: &Filters, json: bool) -> anyhow::Result<ExitCode> {
    let recs = filtered(store, f).await?;
    let mut m: BTreeMap<String, (std::collections::BTreeSet<String>, BTreeMap<String, i64>)> =
        BTreeMap::new();
    for r in &recs {
        let e = m.entry(r.origin.clone()).or_default();
        e.0.insert(r.url.clone());
        *e.1.entry(r.decision.clone()).or_insert(0) += 1;
    }
    if json {
        let v: Vec<_> = m
            .iter()
            .map(|(o, (u, d))| serde_json::json!({"origin": o, "urls": u.len(), "decisions": d}))
            .collect();
        outln!("{}", serde_json::Value::Array(v));
    } else {
        let ds = ["allowed", "allowed_with_conditions", "excluded", "deferred"];
        let rows: Vec<Vec<String>> = m
            .iter()
            .map(|(o, (u, d))| {
                let mut r = vec![o.clone(), u.len().to_string()];
                r.extend(
                    ds.iter()
                        .map(|k| d.get(*k).copied().unwrap_or(0).to_string()),
                );
                r
            })
            .collect();
        table(
            &[
                "origin",
                "urls",
                "allowed",
                "with_conditions",
                "excluded",
                "deferred",
            ],
            &rows,
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn short(s: &str, n: usize) -> String {
    let one = s.replace(['\n', '\r'], " ");
    if one.chars().count() > n {
        format!("{}…", one.chars().take(n).collect::<String>())
    } else {
        one
    }
}

/// Everything `audit why` shows about one URL, gathered once for the text
/// report, `--json` and the service's `/v1/sources/{id}`.
pub(super) struct WhyData {
    url: String,
    front: Option<crate::store::provenance::UrlRow>,
    set: Option<crate::store::evidence::EvidenceSet>,
    history: Vec<crate::store::verdicts::VerdictRow>,
    fetches: Vec<crate::store::provenance::FetchRow>,
    robots: Option<crate::store::provenance::RobotsRow>,
    tomb: Option<crate::store::provenance::Tombstone>,
    recs: Vec<Rec>,
    events: Vec<crate::store::audit::AuditEvent>,
    robots_line: Option<String>,
    revocations: Vec<crate::store::revocations::RevocationRow>,
}

/// Gathers the trail of `url`; `None` when no crawl ever met it.
pub(super) async fn gather_why(store: &Store, url: &str) -> anyhow::Result<Option<WhyData>> {
    let parsed = url::Url::parse(url)
        .with_context(|| format!("{url:?} is not an absolute URL"))
        .input()?;
    let norm = crate::crawl::urls::normalise(&parsed)
        .map(|u| u.to_string())
        .unwrap_or_else(|| parsed.to_string());
    let front = store.audit_url(url, &norm).await?;
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
    let recs: Vec<Rec> = records(store)
        .await?
        .into_iter()
        .filter(|r| r.url == url || r.url == parsed.as_str())
        .collect();
    let events = store
        .audit_events(&EventFilter {
            subject: Some(parsed.to_string()),
            kind: None,
        })
        .await?;
    let mut revocations = store.revocations_of(parsed.as_str()).await?;
    if url != parsed.as_str() {
        revocations.extend(store.revocations_of(url).await?);
    }
    let robots_line = robots.as_ref().and_then(|r| {
        let body = String::from_utf8_lossy(r.robots_body.as_deref()?).into_owned();
        let n = r.matched_line? as usize;
        body.lines().nth(n.checked_sub(1)?).map(str::to_string)
    });
    Ok(Some(WhyData {
        url: url.to_string(),
        front,
        set,
        history,
        fetches,
        robots,
        tomb,
        recs,
        events,
        robots_line,
        revocations,
    }))
}

/// The `audit why --json` object.
pub(super) fn why_json(d: &WhyData) -> serde_json::Value {
    let WhyData {
        url,
        front,
        set,
        history,
        fetches,
        robots,
        tomb,
        recs,
        events,
        robots_line,
        revocations,
        ..
    } = d;
    serde_json::json!({
        "url": url,
        "frontier": front.as_ref().map(|f| serde_json::json!({"id": f.frontier_id, "origin": f.origin, "depth": f.depth, "state": f.state, "skip_reason": f.skip_reason, "last_error": f.last_error})),
        "fetches": fetches.iter().map(|f| serde_json::json!({"id": f.id, "attempt": f.attempt, "requested_url": f.requested_url, "final_url": f.final_url, "redirect_chain": serde_json::from_str::<serde_json::Value>(&f.redirect_chain).unwrap_or_default(), "fetched_at": iso(f.fetched_at), "status": f.status, "content_type": f.content_type, "body_sha256": f.body_sha256, "body_bytes": f.body_bytes, "error_kind": f.error_kind})).collect::<Vec<_>>(),
        "robots": robots.as_ref().map(|r| serde_json::json!({"version_id": r.version_id, "robots_url": r.robots_url, "status": r.robots_status, "outcome": r.robots_outcome, "sha256": r.robots_sha256, "fetched_at": iso(r.robots_fetched_at), "allowed": r.allowed, "line": r.matched_line, "line_text": robots_line, "rule": r.rule, "reason": r.reason})),
        "evidence": set.as_ref().map(|s| s.rows.iter().map(|e| serde_json::json!({"id": e.id, "signal": e.evidence.signal, "status_label": e.evidence.status_label.as_str(), "location": e.evidence.location.as_str(), "scope": e.evidence.scope.label(), "raw": e.evidence.raw, "parsed": e.evidence.observation})).collect::<Vec<_>>()),
        "licence": recs.first().map(|r| serde_json::json!({"spdx": r.licence, "conditions": r.licence_conditions})),
        "verdicts": recs.iter().map(|r| serde_json::json!({"purpose": r.purpose, "decision": r.decision, "reasons": r.reasons, "conditions": r.conditions, "policy_id": r.policy_id, "policy_sha256": r.policy_sha256, "decided_at": r.decided_at, "usable_now": usable(r)})).collect::<Vec<_>>(),
        "verdict_history": history.len(),
        "forgotten": tomb.as_ref().map(|t| serde_json::json!({"at": iso(t.forgotten_at), "reason": t.reason})),
        "audit_events": events.iter().map(|e| serde_json::json!({"seq": e.seq, "kind": e.kind, "time": iso(e.time)})).collect::<Vec<_>>(),
        "revocations": revocations.iter().map(|r| serde_json::json!({"id": r.id, "purpose": r.purpose, "old_decision": r.old_decision, "new_decision": r.new_decision, "reasons": r.reasons, "evidence_ids": r.evidence_ids, "revoked_at": iso(r.revoked_at), "after_export": r.after_export})).collect::<Vec<_>>(),
    })
}

async fn why(store: &Store, url: &str, json: bool) -> anyhow::Result<ExitCode> {
    let found = gather_why(store, url).await?;
    if let Some(d) = &found {
        tracing::info!(
            "{url}: {} fetches, {} verdicts in force, {} audit events",
            d.fetches.len(),
            d.recs.len(),
            d.events.len()
        );
    }
    let Some(d) = found else {
        eprintln!("not in the corpus: {url} (never met by a crawl)");
        return Ok(Status::Problem.into());
    };
    if json {
        outln!("{}", why_json(&d));
        return Ok(ExitCode::SUCCESS);
    }
    let WhyData {
        front,
        set,
        history,
        fetches,
        robots,
        tomb,
        recs,
        events,
        robots_line,
        revocations,
        ..
    } = d;
    outln!("Why is {url} in (or out of) the corpus?");
    if let Some(f) = &front {
        outln!(
            "  Found by the crawler at depth {} on {}; crawl state: {}{}.",
            f.depth,
            f.origin,
            f.state,
            f.skip_reason
                .as_ref()
                .or(f.last_error.as_ref())
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        );
    }
    outln!();
    outln!("1. robots.txt");
    match &robots {
        Some(r) => {
            outln!(
                "   {} fetched {} → HTTP {} ({}), sha256 {}",
                r.robots_url,
                iso(r.robots_fetched_at),
                r.robots_status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "no response".into()),
                r.robots_outcome,
                r.robots_sha256.as_deref().unwrap_or("-")
            );
            let verdict = if r.allowed { "ALLOWED" } else { "DISALLOWED" };
            match (r.matched_line, &robots_line) {
                (Some(n), Some(t)) => {
                    outln!("   line {n}: \"{}\" → {verdict} for BylineBot", t.trim())
                }
                _ => outln!(
                    "   no rule matched → {verdict}{}",
                    r.reason
                        .as_ref()
                        .map(|x| format!(" ({x})"))
                        .unwrap_or_default()
                ),
            }
        }
        None => outln!("   no robots.txt decision recorded"),
    }
    outln!();
    outln!("2. Fetches");
    if fetches.is_empty() {
        outln!("   never fetched");
    }
    for f in &fetches {
        let hops: Vec<serde_json::Value> =
            serde_json::from_str(&f.redirect_chain).unwrap_or_default();
        outln!(
            "   attempt {} at {}: GET {} → {}{}{}",
            f.attempt,
            iso(f.fetched_at),
            f.requested_url,
            f.status
                .map(|s| format!("HTTP {s}"))
                .unwrap_or_else(|| "no response".into()),
            f.content_type
                .as_ref()
                .map(|c| format!(", {c}"))
                .unwrap_or_default(),
            f.body_bytes
                .map(|b| format!(", {b} bytes"))
                .unwrap_or_default()
        );
        if !hops.is_empty() {
            outln!(
                "      via {} redirect(s) to {}",
                hops.len(),
                f.final_url.as_deref().unwrap_or("-")
            );
        }
        if let Some(k) = &f.error_kind {
            outln!("      error: {k}");
        }
    }
    outln!();
    outln!("3. Consent signals looked for (in pipeline order)");
    match &set {
        Some(s) => {
            outln!("   observed {}", iso(s.observed_at));
            for e in &s.rows {
                let obs = serde_json::to_value(&e.evidence.observation).unwrap_or_default();
                let kind = obs["type"].as_str().unwrap_or("?").to_string();
                let raw = if e.evidence.raw.is_empty() {
                    String::new()
                } else {
                    format!(" raw \"{}\"", short(&e.evidence.raw, 70))
                };
                outln!(
                    "   - {} [{}] in {} ({}): {}{}",
                    e.evidence.signal,
                    e.evidence.status_label.as_str(),
                    e.evidence.location.as_str(),
                    e.evidence.scope.label(),
                    kind.replace('_', " "),
                    raw
                );
            }
        }
        None => outln!("   none recorded"),
    }
    outln!();
    outln!("4. Licence");
    match recs.first() {
        Some(r) => outln!(
            "   {} (conditions: {})",
            r.licence.as_deref().unwrap_or("unknown: no licence found"),
            r.licence_conditions
        ),
        None => outln!("   unknown"),
    }
    outln!();
    outln!("5. Verdicts in force");
    let rows: Vec<Vec<String>> = recs
        .iter()
        .map(|r| {
            vec![
                r.purpose.clone(),
                r.decision.clone(),
                if usable(r) { "yes" } else { "no" }.into(),
                r.reasons.join(", "),
                r.conditions.join(", "),
            ]
        })
        .collect();
    table(
        &["purpose", "decision", "usable now", "reasons", "conditions"],
        &rows,
    );
    if let Some(r) = recs.iter().find(|r| r.policy_sha256.is_some()) {
        outln!(
            "   policy {} (sha256 {}), decided {}; {} verdict(s) in its history",
            r.policy_id.as_deref().unwrap_or("-"),
            r.policy_sha256.as_deref().unwrap_or("-"),
            r.decided_at.as_deref().unwrap_or("-"),
            history.len()
        );
    }
    for r in &revocations {
        outln!(
            "   REVOKED {} for {}: {} → {} ({}; evidence {})",
            iso(r.revoked_at),
            r.purpose,
            r.old_decision,
            r.new_decision,
            r.reasons.join(", "),
            r.evidence_ids
                .iter()
                .map(|i| format!("#{i}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    if let Some(t) = &tomb {
        outln!();
        outln!(
            "   FORGOTTEN at {} ({}): content erased, never crawled again",
            iso(t.forgotten_at),
            t.reason
        );
    }
    outln!();
    let list: Vec<String> = events
        .iter()
        .map(|e| format!("#{} {}", e.seq, e.kind))
        .collect();
    outln!(
        "6. Audit log: {}",
        if list.is_empty() {
            "no events".into()
        } else {
            list.join(", ")
        }
    );
    Ok(ExitCode::SUCCESS)
}

fn usable(r: &Rec) -> bool {
    matches!(r.decision.as_str(), "allowed" | "allowed_with_conditions")
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

async fn export(
    store: &Store,
    format: Format,
    f: &Filters,
    out: &std::path::Path,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let recs = filtered(store, f).await?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let version = store.next_export_version().await?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut lines = Vec::with_capacity(recs.len());
    for r in &recs {
        lines.push(canonical_json(&rec_json(r)));
    }
    let leaves: Vec<[u8; 32]> = lines.iter().map(|l| merkle_leaf(l.as_bytes())).collect();
    let root = merkle_root(&leaves);
    let (name, body) = match format {
        Format::Jsonl | Format::Warc | Format::Croissant => {
            let mut s = String::new();
            for l in &lines {
                s.push_str(l);
                s.push('\n');
            }
            ("verdicts.jsonl", s)
        }
        Format::Csv => {
            let mut s = String::from(
                "url,origin,purpose,decision,reasons,conditions,policy_id,policy_sha256,licence,licence_conditions,decided_at,crawl_state\r\n",
            );
            for r in &recs {
                let cells = [
                    r.url.clone(),
                    r.origin.clone(),
                    r.purpose.clone(),
                    r.decision.clone(),
                    r.reasons.join(";"),
                    r.conditions.join(";"),
                    r.policy_id.clone().unwrap_or_default(),
                    r.policy_sha256.clone().unwrap_or_default(),
                    r.licence.clone().unwrap_or_default(),
                    r.licence_conditions.clone(),
                    r.decided_at.clone().unwrap_or_default(),
                    r.crawl_state.clone(),
                ];
                let c: Vec<String> = cells.iter().map(|c| csv_field(c)).collect();
                s.push_str(&c.join(","));
                s.push_str("\r\n");
            }
            ("verdicts.csv", s)
        }
    };
    let path = out.join(name);
    std::fs::write(&path, &body).with_context(|| format!("writing {}", path.display()))?;
    let mut counts: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    for r in &recs {
        *counts
            .entry(r.purpose.clone())
            .or_default()
            .entry(r.decision.clone())
            .or_insert(0) += 1;
    }
    let policies: std::collections::BTreeSet<(String, String)> = recs
        .iter()
        .filter_map(|r| Some((r.policy_id.clone()?, r.policy_sha256.clone()?)))
        .collect();
    // The archival formats write their own files beside the records.
    let extra = super::audit_export::write_extra(
        store,
        format,
        &super::audit_export::ExportCtx {
            version,
            now,
            filters: f,
            recs: &recs,
            records_file: name,
            records_body: body.as_bytes(),
            merkle_root: &root,
            out,
        },
    )
    .await?;
    // Removed since the previous export: URLs forgotten after it.
    let all = store.audit_events(&EventFilter::default()).await?;
    let last_export_seq = all
        .iter()
        .filter(|e| e.kind == "export")
        .map(|e| e.seq)
        .max()
        .unwrap_or(0);
    let mut removed: Vec<serde_json::Value> = all
        .iter()
        .filter(|e| e.kind == "forget" && e.seq > last_export_seq)
        .map(|e| serde_json::json!({"url": e.subject, "why": "forgotten", "at": iso(e.time)}))
        .collect();
    // ... and uses revoked by `audit recheck` after it.
    if version > 1 {
        removed.extend(super::recheck::removed_since(store, version - 1).await?);
    }
    let head = all.last().map(|e| e.sha256.clone());
    let manifest = serde_json::json!({
        "byline_export": version,
        "created_at": iso(now),
        "format": super::audit_export::format_name(format),
        "filters": f,
        "records": recs.len(),
        "counts": counts,
        "policies": policies.iter().map(|(id, sha)| serde_json::json!({"policy_id": id, "sha256": sha})).collect::<Vec<_>>(),
        "merkle_root": root,
        "merkle_recipe": "leaf = sha256(0x00 || canonical JSON of the record, as in verdicts.jsonl, without newline); node = sha256(0x01 || left || right) over raw 32-byte digests; levels left to right, an odd last node carried up unchanged; empty = sha256 of nothing",
        "files": std::iter::once(serde_json::json!({"name": name, "sha256": hex::encode(Sha256::digest(body.as_bytes())), "bytes": body.len()})).chain(extra.files.iter().cloned()).collect::<Vec<_>>(),
        "removed_since_version": if version > 1 { serde_json::json!({"version": version - 1, "removed": removed}) } else { serde_json::Value::Null },
        "audit_head_sha256": head,
    });
    let mut manifest = manifest;
    for (k, v) in &extra.sections {
        manifest[k.as_str()] = v.clone();
    }
    let mtext = serde_json::to_string_pretty(&manifest)?;
    std::fs::write(out.join("manifest.json"), &mtext)
        .with_context(|| format!("writing {}", out.join("manifest.json").display()))?;
    let msha = hex::encode(Sha256::digest(mtext.as_bytes()));
    let filters = serde_json::to_string(f)?;
    let fmt = manifest["format"].as_str().unwrap_or_default().to_string();
    let v = store
        .record_export(now, &fmt, &filters, recs.len() as i64, &root, &msha)
        .await?;
    if json {
        outln!(
            "{}",
            serde_json::json!({"version": v, "records": recs.len(), "merkle_root": root, "dir": out.display().to_string()})
        );
    } else {
        outln!(
            "export {v}: {} records ({fmt}) in {}, merkle root {root}",
            recs.len(),
            out.display()
        );
    }
    let _ = audit_report::PURPOSES;
    Ok(ExitCode::SUCCESS)
}

/// The anchors named on the command line (usage errors exit 2).
fn anchors(
    expect_head: &[String],
    since_export: &[PathBuf],
) -> anyhow::Result<Vec<crate::audit::verify::Anchor>> {
    use crate::audit::verify::{Anchor, is_hex64};
    let mut out = Vec::new();
    for h in expect_head {
        out.push(
            Anchor::parse(h)
                .map_err(anyhow::Error::msg)
                .context("--expect-head")
                .input()?,
        );
    }
    for d in since_export {
        let path = d.join("manifest.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))
            .input()?;
        let m: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("parsing {}", path.display()))
            .input()?;
        let sha = m["audit_head_sha256"]
            .as_str()
            .filter(|s| is_hex64(s))
            .with_context(|| format!("{} has no audit_head_sha256", path.display()))
            .input()?;
        out.push(Anchor::Hash(sha.to_string()));
    }
    Ok(out)
}

async fn verify(
    store: &Store,
    json: bool,
    expect_head: &[String],
    since_export: &[PathBuf],
) -> anyhow::Result<ExitCode> {
    let anchors = anchors(expect_head, since_export)?;
    let rep = crate::audit::verify::verify(store, &anchors).await?;
    if json {
        outln!("{}", rep.to_json());
    } else if let Some(first) = rep.problems.first() {
        // Long lists (an old corpus, a dropped table) stay readable: the
        // first few of each kind and table, then a count.
        let mut shown: BTreeMap<(&str, &str), usize> = BTreeMap::new();
        for (i, t) in rep.problems.iter().enumerate() {
            let n = shown
                .entry((t.kind.as_str(), t.table.as_str()))
                .or_default();
            *n += 1;
            if *n <= 20 {
                match (i, t.kind) {
                    (0, _) if first.kind != crate::audit::verify::Kind::Unlogged => {
                        outln!("TAMPERED: {t}")
                    }
                    (_, crate::audit::verify::Kind::Unlogged) => outln!("{t}"),
                    _ => outln!("also:     {t}"),
                }
            }
        }
        for ((kind, table), n) in &shown {
            if *n > 20 {
                outln!("… {} more {kind} problem(s) in {table}", n - 20);
            }
        }
        outln!(
            "checked {} events covering {} rows; {} problem(s)",
            rep.events,
            rep.rows,
            rep.problems.len()
        );
    } else {
        outln!(
            "ok: {} events, chain intact, {} logged rows unchanged, every row of the logged tables covered{}",
            rep.events,
            rep.rows,
            if anchors.is_empty() {
                ""
            } else {
                ", anchored head(s) extended"
            }
        );
    }
    tracing::info!(
        "verified {} audit events covering {} rows: {} problem(s)",
        rep.events,
        rep.rows,
        rep.problems.len()
    );
    Ok(if rep.ok() {
        Status::Success
    } else {
        Status::Problem
    }
    .into())
}

async fn head(store: &Store, json: bool) -> anyhow::Result<ExitCode> {
    let h = store.audit_head().await?;
    if json {
        outln!(
            "{}",
            match &h {
                Some((seq, sha)) => serde_json::json!({"seq": seq, "sha256": sha}),
                None => serde_json::Value::Null,
            }
        );
    } else {
        match &h {
            Some((seq, sha)) => outln!("{seq}:{sha}"),
            None => outln!("the audit log is empty"),
        }
    }
    Ok(ExitCode::SUCCESS)
}
