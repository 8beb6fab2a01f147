//! `byline store copy`: moves an SQLite corpus into an empty PostgreSQL
//! database, then verifies the audit log there.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::json;

use super::Global;
use super::exit::{InputResult, Status};
use crate::audit::verify::Anchor;
use crate::store::copy::CopyError;
use crate::store::{Location, Store, display_db};

/// The corpus database itself: move it between backends.
///
/// Examples:
///
///   createdb byline
///   byline store copy --from byline.db --to postgres://byline@db.internal/byline
///   byline --db postgres://byline@db.internal/byline audit verify
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct StoreArgs {
    #[command(subcommand)]
    pub command: StoreCommand,
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy every table of an SQLite corpus into an empty PostgreSQL
    /// database (ids kept, one transaction), then verify its audit log
    /// there and that it ends at the source's head.
    Copy {
        /// The SQLite corpus file to read (never changed).
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        /// The PostgreSQL database to fill (postgres://…); it must exist
        /// and hold no rows (the schema is created if missing).
        #[arg(long, value_name = "URL")]
        to: PathBuf,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(args: StoreArgs, _global: &Global) -> anyhow::Result<ExitCode> {
    match args.command {
        StoreCommand::Copy { from, to, json } => copy(&from, &to, json).await,
    }
}

async fn copy(
    from: &std::path::Path,
    to: &std::path::Path,
    json: bool,
) -> anyhow::Result<ExitCode> {
    if !matches!(Location::of(from), Location::Sqlite(_)) {
        return Err(super::exit::input(CopyError::SourceNotSqlite(display_db(
            from,
        ))));
    }
    if !matches!(Location::of(to), Location::Postgres(_)) {
        return Err(super::exit::input(CopyError::TargetNotPostgres(
            display_db(to),
        )));
    }
    let src = super::open_corpus(&Global {
        db: from.to_path_buf(),
        verbose: 0,
    })
    .await?;
    let dst = Store::open(to).await?;
    let head = src.audit_head().await?;
    let t0 = std::time::Instant::now();
    let copied = match crate::store::copy::copy_to_postgres(&src, &dst, |t| {
        if !json && !super::quiet() {
            eprintln!("copied {:>8} rows of {}", t.rows, t.table);
        }
    })
    .await
    {
        Ok(c) => c,
        Err(e @ (CopyError::TargetNotEmpty { .. } | CopyError::Schema(_))) => {
            return Err(e).input();
        }
        Err(e) => return Err(e.into()),
    };
    let seconds = t0.elapsed().as_secs_f64();
    src.close().await;
    // On arrival: the whole chain, every covered row, and the source's head.
    let anchors: Vec<Anchor> = head
        .iter()
        .map(|(seq, sha256)| Anchor::Head {
            seq: *seq,
            sha256: sha256.clone(),
        })
        .collect();
    let rep = crate::audit::verify::verify(&dst, &anchors).await?;
    dst.close().await;
    let rows: i64 = copied.iter().map(|t| t.rows).sum();
    if json {
        outln!(
            "{}",
            json!({
                "from": display_db(from),
                "to": display_db(to),
                "tables": copied.iter().map(|t| json!({"table": t.table, "rows": t.rows})).collect::<Vec<_>>(),
                "rows": rows,
                "seconds": (seconds * 1000.0).round() / 1000.0,
                "source_head": head.as_ref().map(|(seq, sha)| json!({"seq": seq, "sha256": sha})),
                "verify": rep.to_json(),
            })
        );
    } else {
        for t in &copied {
            outln!("{:>10}  {}", t.rows, t.table);
        }
        outln!(
            "copied {rows} rows in {} tables from {} to {} in {seconds:.1}s",
            copied.len(),
            display_db(from),
            display_db(to)
        );
        if rep.ok() {
            outln!(
                "audit verify on arrival: ok: {} events, chain intact up to the source's head, {} logged rows unchanged",
                rep.events,
                rep.rows
            );
        } else {
            for p in rep.problems.iter().take(20) {
                outln!("TAMPERED: {p}");
            }
            outln!(
                "audit verify on arrival: {} problem(s) in {} events",
                rep.problems.len(),
                rep.events
            );
        }
    }
    Ok(if rep.ok() {
        Status::Success
    } else {
        Status::Problem
    }
    .into())
}
