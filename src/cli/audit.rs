//! `byline audit …`: read the provenance of the corpus (summary, why, lists),
//! export it, and verify the hash-chained audit log.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::Global;
use crate::store::Store;

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Re-derive the audit log's hash chain and every logged row's hash;
    /// name the first tampered row (exit 1 when anything was altered).
    Verify {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(args: AuditArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let store = Store::open(&global.db)
        .await
        .with_context(|| format!("opening corpus at {}", global.db.display()))?;
    let code = match args.command {
        AuditCommand::Verify { json } => verify(&store, json).await?,
    };
    store.close().await;
    Ok(code)
}

async fn verify(store: &Store, json: bool) -> anyhow::Result<ExitCode> {
    let rep = store.verify_audit().await?;
    if json {
        let problems: Vec<serde_json::Value> = rep
            .problems
            .iter()
            .map(|t| {
                serde_json::json!({"table": t.table, "id": t.id, "seq": t.seq, "detail": t.detail})
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "ok": rep.problems.is_empty(),
                "events": rep.events,
                "rows": rep.rows,
                "first_tampered": problems.first(),
                "problems": problems,
            })
        );
    } else if let Some(first) = rep.problems.first() {
        println!("TAMPERED: {first}");
        for t in &rep.problems[1..] {
            println!("also:     {t}");
        }
        println!(
            "checked {} events covering {} rows; {} problem(s)",
            rep.events,
            rep.rows,
            rep.problems.len()
        );
    } else {
        println!(
            "ok: {} events, chain intact, {} logged rows unchanged",
            rep.events, rep.rows
        );
    }
    Ok(if rep.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
