//! `byline audit …`: parses the arguments and prints what the audit stage
//! ([`crate::audit`]) returns (summary, why, lists, exports), and verifies
//! the hash-chained audit log.

use std::collections::BTreeMap;

use anyhow::Context as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};

use super::Global;
use super::exit::{self, InputResult, Status};
use crate::audit::{self, AuditError, ExportFormat, ExportOptions};
use crate::store::Store;

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
    /// A dataset: one row per page the purpose allows (default train,
    /// allowed) with its text, licence and attribution, in Parquet shards
    /// under `data/`, with a dataset card (`README.md`) and `croissant.json`.
    Parquet,
}

impl From<Format> for ExportFormat {
    fn from(f: Format) -> Self {
        match f {
            Format::Jsonl => ExportFormat::Jsonl,
            Format::Csv => ExportFormat::Csv,
            Format::Warc => ExportFormat::Warc,
            Format::Croissant => ExportFormat::Croissant,
            Format::Parquet => ExportFormat::Parquet,
        }
    }
}

/// Filters shared by the list commands and export.
#[derive(Debug, Clone, Default, Args)]
pub struct Filters {
    /// Only this purpose (search_index, rag_attributed, train).
    #[arg(long)]
    pub purpose: Option<String>,
    /// Only this decision (allowed, allowed_with_conditions, excluded, deferred).
    #[arg(long)]
    pub decision: Option<String>,
    /// Only records with this reason code (prefix match: `robots.` matches robots.disallow).
    #[arg(long)]
    pub reason: Option<String>,
    /// Only this licence (SPDX id; `unknown` for none).
    #[arg(long)]
    pub licence: Option<String>,
    /// Only this origin (scheme://host[:port]).
    #[arg(long)]
    pub origin: Option<String>,
    /// Only verdicts decided on or after this date (YYYY-MM-DD, UTC).
    #[arg(long)]
    pub since: Option<String>,
    /// Only verdicts decided before the end of this date (YYYY-MM-DD, UTC).
    #[arg(long)]
    pub until: Option<String>,
}

impl From<Filters> for audit::Filters {
    fn from(f: Filters) -> Self {
        audit::Filters {
            purpose: f.purpose,
            decision: f.decision,
            reason: f.reason,
            licence: f.licence,
            origin: f.origin,
            since: f.since,
            until: f.until,
        }
    }
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
    /// Everything that happened to one page, in time order: every fetch
    /// (304 = unchanged), observation of its signals, verdict with its
    /// policy hash, revocation, gone marking, answer flag and erasure.
    History {
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
        /// Directory to write into (created; must be empty).
        #[arg(long)]
        out: PathBuf,
        /// Write into a folder that is not empty, replacing the earlier
        /// export's files listed in its manifest.
        #[arg(long)]
        force: bool,
        /// With `--format jsonl`: a dataset of the pages' text (as
        /// `--format parquet`, in JSON Lines shards) instead of the verdicts.
        #[arg(long)]
        with_text: bool,
        /// Dataset formats: largest shard, as rows (`10000rows`) or size
        /// (`256MB`, `64KB`; decimal units). Default 256MB.
        #[arg(long)]
        shard_size: Option<String>,
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
        /// Fetch each page again with a conditional GET (If-None-Match /
        /// If-Modified-Since from its last good fetch) and re-decide from
        /// its body (meta robots, TDMRep meta, licence links, JSON-LD):
        /// unchanged pages (304) cost no parse, changed ones are stored as
        /// a new version. Default: robots.txt, origin files and headers only.
        #[arg(long)]
        bodies: bool,
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
            bodies,
            json,
        } => {
            use super::exit::InputResult;
            let cfg = super::recheck::config(contact.as_deref(), min_delay_ms).input()?;
            super::recheck::run(&store, origin.as_deref(), cfg, bodies, json).await?
        }
        AuditCommand::Summary { json } => summary(&store, json).await?,
        AuditCommand::Why { url, json } => why(&store, &url, json).await?,
        AuditCommand::History { url, json } => history(&store, &url, json).await?,
        AuditCommand::Sources { filters, json } => sources(&store, &filters.into(), json).await?,
        AuditCommand::Licences { filters, json } => licences(&store, &filters.into(), json).await?,
        AuditCommand::Origins { filters, json } => origins(&store, &filters.into(), json).await?,
        AuditCommand::Export {
            format,
            filters,
            out,
            force,
            with_text,
            shard_size,
            json,
        } => {
            use super::exit::InputResult;
            let format = match (format, with_text) {
                (Format::Jsonl, true) => ExportFormat::JsonlText,
                (Format::Parquet, _) => ExportFormat::Parquet,
                (f, true) => {
                    return Err(exit::input(anyhow::anyhow!(
                        "--with-text goes with --format jsonl (or use --format parquet), not {f:?}"
                    )));
                }
                (f, false) => f.into(),
            };
            if format.dataset().is_none() && shard_size.is_some() {
                return Err(exit::input(anyhow::anyhow!(
                    "--shard-size applies to dataset exports (--format parquet, --format jsonl --with-text)"
                )));
            }
            let shard_size = match shard_size {
                Some(s) => s.parse::<audit::ShardSize>().input()?,
                None => audit::ShardSize::default(),
            };
            let opts = ExportOptions {
                format,
                filters: filters.into(),
                force,
                shard_size,
            };
            export(&store, &opts, &out, json).await?
        }
    };
    store.close().await;
    Ok(code)
}

/// An audit error for the command line: the caller's mistakes exit 2.
fn cli_err(e: AuditError) -> anyhow::Error {
    if e.is_input() {
        exit::input(e)
    } else {
        anyhow::Error::new(e)
    }
}

/// Prints rows as an aligned table.
pub(super) fn table(headers: &[&str], rows: &[Vec<String>]) {
    let mut w: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(x) = w.get_mut(i) {
                *x = (*x).max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let s: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = w.get(i).copied().unwrap_or(0)))
            .collect();
        outln!("{}", s.join("  ").trim_end());
    };
    line(headers.to_vec());
    let rules: Vec<String> = w.iter().map(|n| "-".repeat(*n)).collect();
    line(rules.iter().map(|s| s.as_str()).collect());
    for r in rows {
        line(r.iter().map(|s| s.as_str()).collect());
    }
}

const DECISIONS: [&str; 4] = ["allowed", "allowed_with_conditions", "excluded", "deferred"];

async fn summary(store: &Store, json: bool) -> anyhow::Result<ExitCode> {
    let s = audit::summary(store).await.map_err(cli_err)?;
    if json {
        outln!("{}", serde_json::to_string(&s)?);
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "corpus: {} URLs met, {} pages, {} origins, {} forgotten, {} exports",
        s.urls,
        s.pages,
        s.origins,
        s.forgotten,
        s.exports
    );
    outln!();
    outln!("verdicts in force (per URL and purpose):");
    let rows: Vec<Vec<String>> = s
        .verdicts
        .iter()
        .map(|(p, m)| {
            let mut r = vec![p.clone()];
            r.extend(
                DECISIONS
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
    let rows: Vec<Vec<String>> = s
        .top_reasons
        .iter()
        .map(|r| vec![r.reason.clone(), r.count.to_string()])
        .collect();
    table(&["reason", "records"], &rows);
    outln!();
    outln!("licences (per URL):");
    let rows: Vec<Vec<String>> = s
        .licences
        .iter()
        .map(|l| vec![l.licence.clone(), l.conditions.clone(), l.pages.to_string()])
        .collect();
    table(&["licence", "conditions", "urls"], &rows);
    outln!();
    outln!("policy versions:");
    let rows: Vec<Vec<String>> = s
        .policies
        .iter()
        .map(|p| {
            vec![
                p.policy_id.clone(),
                p.sha256.clone(),
                p.verdicts_in_force.to_string(),
            ]
        })
        .collect();
    table(&["policy", "sha256", "verdicts in force"], &rows);
    outln!();
    outln!("not followed or not fetched (links and URLs, by reason):");
    let rows: Vec<Vec<String>> = s
        .not_followed
        .iter()
        .map(|r| vec![r.reason.clone(), r.count.to_string()])
        .collect();
    table(&["reason", "count"], &rows);
    outln!();
    let total: i64 = s.audit_events.values().sum();
    let list: Vec<String> = s
        .audit_events
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    outln!("audit log: {total} events ({})", list.join(", "));
    Ok(ExitCode::SUCCESS)
}

async fn sources(store: &Store, f: &audit::Filters, json: bool) -> anyhow::Result<ExitCode> {
    let recs = audit::filtered(store, f).await.map_err(cli_err)?;
    if json {
        let v: Vec<_> = recs.iter().map(audit::Rec::to_json).collect();
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

async fn licences(store: &Store, f: &audit::Filters, json: bool) -> anyhow::Result<ExitCode> {
    let rows = audit::licences(store, f).await.map_err(cli_err)?;
    if json {
        outln!("{}", serde_json::to_string(&rows)?);
    } else {
        let rows: Vec<Vec<String>> = rows
            .iter()
            .map(|l| vec![l.licence.clone(), l.conditions.clone(), l.urls.to_string()])
            .collect();
        table(&["licence", "conditions", "urls"], &rows);
    }
    Ok(ExitCode::SUCCESS)
}

async fn origins(store: &Store, f: &audit::Filters, json: bool) -> anyhow::Result<ExitCode> {
    let rows = audit::origins(store, f).await.map_err(cli_err)?;
    if json {
        outln!("{}", serde_json::to_string(&rows)?);
    } else {
        let rows: Vec<Vec<String>> = rows
            .iter()
            .map(|o| {
                let mut r = vec![o.origin.clone(), o.urls.to_string()];
                r.extend(
                    DECISIONS
                        .iter()
                        .map(|k| o.decisions.get(*k).copied().unwrap_or(0).to_string()),
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

async fn history(store: &Store, url: &str, json: bool) -> anyhow::Result<ExitCode> {
    let found = audit::history::history(store, url).await.map_err(cli_err)?;
    let Some(h) = found else {
        eprintln!("not in the corpus: {url} (never met by a crawl)");
        return Ok(Status::Problem.into());
    };
    if json {
        outln!("{}", serde_json::to_string(&h)?);
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "History of {url} ({} event(s), oldest first):",
        h.events.len()
    );
    for e in &h.events {
        outln!("  {}  {:<11} {}", e.at, e.kind, e.summary);
    }
    Ok(ExitCode::SUCCESS)
}

async fn why(store: &Store, url: &str, json: bool) -> anyhow::Result<ExitCode> {
    let found = audit::why(store, url).await.map_err(cli_err)?;
    let Some(d) = found else {
        eprintln!("not in the corpus: {url} (never met by a crawl)");
        return Ok(Status::Problem.into());
    };
    tracing::info!(
        "{url}: {} fetches, {} verdicts in force, {} audit events",
        d.fetches.len(),
        d.verdicts.len(),
        d.audit_events.len()
    );
    if json {
        outln!("{}", serde_json::to_string(&d)?);
        return Ok(ExitCode::SUCCESS);
    }
    outln!("Why is {url} in (or out of) the corpus?");
    if let Some(f) = &d.frontier {
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
    match &d.robots {
        Some(r) => {
            outln!(
                "   version {} ({}): {} fetched {} → HTTP {} ({}), sha256 {}",
                r.version_id,
                if r.decided_by == "verdict" {
                    "the version the verdict in force was decided on"
                } else {
                    "as the crawler fetched the page"
                },
                r.robots_url,
                r.fetched_at,
                r.status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "no response".into()),
                r.outcome,
                r.sha256.as_deref().unwrap_or("-")
            );
            let verdict = if r.allowed { "ALLOWED" } else { "DISALLOWED" };
            match (r.line, &r.line_text) {
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
    if d.fetches.is_empty() {
        outln!("   never fetched");
    }
    for f in &d.fetches {
        let hops = f.redirect_chain.as_array().map(Vec::len).unwrap_or(0);
        outln!(
            "   attempt {} at {}: GET {} → {}{}{}",
            f.attempt,
            f.fetched_at,
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
        if hops > 0 {
            outln!(
                "      via {hops} redirect(s) to {}",
                f.final_url.as_deref().unwrap_or("-")
            );
        }
        if let Some(k) = &f.error_kind {
            outln!("      error: {k}");
        }
    }
    outln!();
    outln!("3. Consent signals looked for (in pipeline order)");
    match &d.evidence {
        Some(rows) => {
            outln!(
                "   observed {}",
                d.evidence_observed_at.as_deref().unwrap_or("-")
            );
            for e in rows {
                let kind = e.parsed["type"].as_str().unwrap_or("?").to_string();
                let raw = if e.raw.is_empty() {
                    String::new()
                } else {
                    format!(" raw \"{}\"", short(&e.raw, 70))
                };
                outln!(
                    "   - {} [{}] in {} ({}): {}{}",
                    e.signal,
                    e.status_label,
                    e.location,
                    e.scope,
                    kind.replace('_', " "),
                    raw
                );
            }
        }
        None => outln!("   none recorded"),
    }
    outln!();
    outln!("4. Licence");
    match &d.licence {
        Some(l) => outln!(
            "   {} (conditions: {})",
            l.spdx.as_deref().unwrap_or("unknown: no licence found"),
            l.conditions
        ),
        None => outln!("   unknown"),
    }
    outln!();
    outln!("5. Verdicts in force");
    let rows: Vec<Vec<String>> = d
        .verdicts
        .iter()
        .map(|r| {
            vec![
                r.purpose.clone(),
                r.decision.clone(),
                if r.usable_now { "yes" } else { "no" }.into(),
                r.reasons.join(", "),
                r.conditions.join(", "),
            ]
        })
        .collect();
    table(
        &["purpose", "decision", "usable now", "reasons", "conditions"],
        &rows,
    );
    if let Some(r) = d.verdicts.iter().find(|r| r.policy_sha256.is_some()) {
        outln!(
            "   policy {} (sha256 {}), decided {}; {} verdict(s) in its history (`byline audit history URL` lists them)",
            r.policy_id.as_deref().unwrap_or("-"),
            r.policy_sha256.as_deref().unwrap_or("-"),
            r.decided_at.as_deref().unwrap_or("-"),
            d.verdict_history
        );
    }
    for r in &d.revocations {
        outln!(
            "   REVOKED {} for {}: {} → {} ({}; evidence {})",
            r.revoked_at,
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
    if let Some(t) = &d.forgotten {
        outln!();
        outln!(
            "   FORGOTTEN at {} ({}): content erased, never crawled again",
            t.at,
            t.reason
        );
    }
    outln!();
    let list: Vec<String> = d
        .audit_events
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

async fn export(
    store: &Store,
    opts: &ExportOptions,
    out: &std::path::Path,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let rep = audit::export(store, opts, out).await.map_err(cli_err)?;
    if json {
        outln!("{}", serde_json::to_string(&rep)?);
    } else {
        outln!(
            "export {}: {} records ({}) in {}, merkle root {}",
            rep.version,
            rep.records,
            rep.format,
            rep.dir,
            rep.merkle_root
        );
    }
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
