//! `byline policy check FILE` and `byline policy apply FILE`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::Global;
use super::exit::{InputResult, Status};
use crate::policy::{self, Policy};

#[derive(Debug, Args)]
pub struct PolicyArgs {
    #[command(subcommand)]
    pub command: PolicyCommand,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate a policy file; errors name the line and the fix.
    Check {
        /// The policy TOML file.
        file: PathBuf,
    },
    /// Re-evaluate the stored corpus under a policy from stored evidence
    /// (nothing is re-fetched) and print what changes.
    Apply {
        /// The policy TOML file.
        file: PathBuf,
        /// Print the changes without storing the new verdicts.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Reads and validates a policy file; both failures are input errors.
fn load(file: &PathBuf) -> anyhow::Result<(Policy, Vec<u8>)> {
    let bytes = std::fs::read(file)
        .with_context(|| format!("reading policy {}", file.display()))
        .input()?;
    let p = Policy::from_bytes(&bytes, &file.display().to_string()).input()?;
    Ok((p, bytes))
}

pub async fn run(args: PolicyArgs, global: &Global) -> anyhow::Result<ExitCode> {
    match args.command {
        PolicyCommand::Check { file } => {
            // An unreadable file is an input error (2); a file that reads
            // but does not validate is what the check found (1).
            let bytes = std::fs::read(&file)
                .with_context(|| format!("reading policy {}", file.display()))
                .input()?;
            let p = match Policy::from_bytes(&bytes, &file.display().to_string()) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("invalid: {e:#}");
                    return Ok(Status::Problem.into());
                }
            };
            outln!("ok: {} ({})", p.id, file.display());
            outln!("regime: {}", p.regime.as_str());
            outln!("sha256: {}", p.sha256);
            outln!("rows: {}", p.effects.len());
            let k = &p.knobs;
            outln!(
                "knobs: commercial_use={} sa_allows_training={} nc_blocks_rag_in_eu={} nc_blocks_training_in_eu={} honour_natural_language_reservations={}",
                k.commercial_use,
                k.sa_allows_training,
                k.nc_blocks_rag_in_eu,
                k.nc_blocks_training_in_eu,
                k.honour_natural_language_reservations
            );
            outln!(
                "       robots.after_30d={:?} robots.treat_429_as_unreachable={} robots.max_bytes={} ai_intent.enabled={} tdmrep.reserves_search={} aipref.honour_star_group_too={} aipref.legacy_labels_reserve_training={}",
                k.robots_after_30d,
                k.robots_treat_429_as_unreachable,
                k.robots_max_bytes,
                k.ai_intent_enabled,
                k.tdmrep_reserves_search,
                k.aipref_honour_star_group_too,
                k.aipref_legacy_labels_reserve_training
            );
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Apply { file, dry_run } => {
            let (p, bytes) = load(&file)?;
            let store = super::open_corpus(global).await?;
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            if !dry_run {
                store.record_policy(&p.id, &p.sha256, &bytes, now).await?;
            }
            let sets = store.latest_evidence_sets().await?;
            let (mut pages, mut changed) = (0usize, 0usize);
            let mut skipped_forgotten = 0usize;
            for set in &sets {
                // A forgotten page keeps its tombstone's verdicts: no fresh
                // decision (and no "allowed") for content that was erased.
                let norm = url::Url::parse(&set.page_url)
                    .ok()
                    .and_then(|u| crate::crawl::urls::normalise(&u))
                    .map(|u| u.to_string())
                    .unwrap_or_else(|| set.page_url.clone());
                if store.tombstone(&norm).await?.is_some() {
                    skipped_forgotten += 1;
                    continue;
                }
                pages += 1;
                let evidence: Vec<_> = set.rows.iter().map(|r| r.evidence.clone()).collect();
                let ids: Vec<i64> = set.rows.iter().map(|r| r.id).collect();
                let v = policy::evaluate(&evidence, &p, now);
                let old = store.latest_verdicts(&set.page_url, None).await?;
                for nv in v.iter() {
                    let before = old.iter().find(|o| o.purpose == nv.purpose.as_str());
                    let conds: Vec<String> = nv.conditions.iter().map(|c| c.label()).collect();
                    let same = before.is_some_and(|b| {
                        b.decision == nv.decision.as_str()
                            && b.conditions == conds
                            && b.reasons == nv.reasons
                    });
                    if same {
                        continue;
                    }
                    changed += 1;
                    let was = before
                        .map(|b| {
                            format!(
                                "{} [{}] conditions: [{}] ({})",
                                b.decision,
                                b.reasons.join(", "),
                                b.conditions.join(", "),
                                b.policy_id
                            )
                        })
                        .unwrap_or_else(|| "none".into());
                    outln!(
                        "{} {}: {} -> {} [{}] conditions: [{}] ({})",
                        set.page_url,
                        nv.purpose.as_str(),
                        was,
                        nv.decision.as_str(),
                        nv.reasons.join(", "),
                        conds.join(", "),
                        p.id
                    );
                }
                if !dry_run {
                    store
                        .insert_verdicts(set.set_id, &set.page_url, &v, &ids, now)
                        .await?;
                }
            }
            outln!(
                "{pages} pages re-evaluated under {} (sha256 {}), {changed} verdicts changed, {skipped_forgotten} forgotten page(s) left alone{}",
                p.id,
                &p.sha256[..12],
                if dry_run {
                    " (dry run: nothing stored)"
                } else {
                    ""
                }
            );
            store.close().await;
            Ok(ExitCode::SUCCESS)
        }
    }
}
