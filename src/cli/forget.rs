//! `byline forget URL… | --origin O`: erase stored content on request,
//! keeping a tombstone so the URL is never crawled again.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use super::Global;
use super::exit::{InputResult, input};

#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// URLs to forget.
    pub urls: Vec<String>,
    /// Forget every URL of this origin (scheme://host[:port]).
    #[arg(long)]
    pub origin: Option<String>,
    /// Why (recorded in the tombstone and the audit log).
    #[arg(long, default_value = "owner request")]
    pub reason: String,
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: ForgetArgs, global: &Global) -> anyhow::Result<ExitCode> {
    if args.urls.is_empty() && args.origin.is_none() {
        return Err(input(anyhow::anyhow!(
            "nothing to forget: give one or more URLs or --origin"
        )));
    }
    let mut norms = Vec::new();
    for u in &args.urls {
        let p = url::Url::parse(u)
            .with_context(|| format!("{u:?} is not an absolute URL"))
            .input()?;
        let n = crate::crawl::urls::normalise(&p)
            .with_context(|| format!("{u:?} is not an http(s) URL"))
            .input()?;
        norms.push(n.to_string());
    }
    let origin = match &args.origin {
        Some(o) => Some(
            url::Url::parse(o)
                .with_context(|| format!("origin {o:?} is not scheme://host[:port]"))
                .input()?
                .origin()
                .ascii_serialization(),
        ),
        None => None,
    };
    let store = super::open_corpus(global).await?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let done =
        crate::audit::erase::forget(&store, &norms, origin.as_deref(), &args.reason, now).await?;
    store.close().await;
    if args.json {
        outln!("{}", serde_json::to_string(&done)?);
    } else {
        for u in &done.forgotten {
            outln!("forgotten: {u}");
        }
        for u in &done.already_forgotten {
            outln!("already forgotten: {u} (nothing left to erase)");
        }
        outln!(
            "{} URL(s) tombstoned, {} page text(s) erased, {} raw capture(s) deleted, {} answer record(s) redacted, {} answer(s) flagged",
            done.forgotten.len(),
            done.pages_erased,
            done.raw_captures_erased,
            done.answers_redacted,
            done.flagged_answers.len()
        );
        if !done.wal_checkpointed {
            outln!(
                "note: the write-ahead log was not checkpointed (another connection held it, or on PostgreSQL the role may not run CHECKPOINT); old copies of the erased pages stay in it until the next checkpoint"
            );
        }
        if !done.old_versions_vacuumed {
            outln!(
                "note: another session held a snapshot from before the erasure past the wait for it; the erased rows' old versions stay in the database files until a later VACUUM FULL of the erased tables"
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
