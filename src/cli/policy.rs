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
        /// One JSON object: the policy, pages re-evaluated, and every
        /// verdict change with its decision, reasons and conditions before
        /// and after.
        #[arg(long)]
        json: bool,
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
        PolicyCommand::Apply {
            file,
            dry_run,
            json,
        } => {
            let (p, bytes) = load(&file)?;
            let store = super::open_corpus(global).await?;
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let report = policy::apply::apply(&store, &p, &bytes, now, dry_run).await?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                for c in &report.changes {
                    let was = c
                        .before
                        .as_ref()
                        .map(|b| b.line())
                        .unwrap_or_else(|| "none".into());
                    outln!(
                        "{} {}: {} -> {}",
                        c.page_url,
                        c.purpose,
                        was,
                        c.after.line()
                    );
                }
                outln!(
                    "{} pages re-evaluated under {} (sha256 {}), {} verdicts changed, {} forgotten page(s) left alone{}",
                    report.pages,
                    report.policy_id,
                    report
                        .policy_sha256
                        .get(..12)
                        .unwrap_or(&report.policy_sha256),
                    report.changes.len(),
                    report.forgotten_left_alone,
                    if dry_run {
                        " (dry run: nothing stored)"
                    } else {
                        ""
                    }
                );
            }
            store.close().await;
            Ok(ExitCode::SUCCESS)
        }
    }
}
