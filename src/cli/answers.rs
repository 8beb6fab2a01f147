//! `byline answers list|show`: the recorded answers (every `ask`, `serve`
//! and `demo` answer is stored unless `--no-record`), read-only.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::Global;
use super::exit::Status;
use crate::audit::iso;
use crate::store::answers::{AnswerListItem, AnswerRecord};

/// Read the recorded answers: when, what was asked, with which model,
/// refused or not, and the pages cited.
///
/// Examples:
///
///   byline answers list                 # the 20 newest
///   byline answers list --limit 100 --json | jq '.[] | select(.refused)'
///   byline answers show 12              # the whole record: citations, checker results
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct AnswersArgs {
    #[command(subcommand)]
    pub command: AnswersCommand,
}

#[derive(Debug, Subcommand)]
pub enum AnswersCommand {
    /// The newest answers first: id, time, question, model, supported or
    /// refused, cited URLs.
    List {
        /// Most answers shown.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(i64).range(1..=100_000))]
        limit: i64,
        /// Only answers older than this id (for paging).
        #[arg(long, value_name = "ID")]
        before: Option<i64>,
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// One answer in full: question, answer, draft, citations, and the
    /// checker's result for every sentence.
    Show {
        /// The answer id (from `answers list`, or `answer_id` of `ask --json`).
        id: i64,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(args: AnswersArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let store = super::open_corpus(global).await?;
    let code = match args.command {
        AnswersCommand::List {
            limit,
            before,
            json,
        } => {
            let items = store.list_answers(limit, before).await?;
            if json {
                let v: Vec<Value> = items.iter().map(list_json).collect();
                outln!("{}", serde_json::to_string_pretty(&v)?);
            } else if items.is_empty() {
                outln!("no answers recorded");
            } else {
                for a in &items {
                    print_item(a);
                }
            }
            ExitCode::SUCCESS
        }
        AnswersCommand::Show { id, json } => match store.answer_record(id).await? {
            Some(r) => {
                if json {
                    outln!("{}", serde_json::to_string_pretty(&record_json(&r))?);
                } else {
                    print_record(&r);
                }
                ExitCode::SUCCESS
            }
            None => {
                eprintln!(
                    "no answer with id {id} in {}",
                    crate::store::display_db(&global.db)
                );
                Status::Problem.into()
            }
        },
    };
    store.close().await;
    Ok(code)
}

/// The model's file name (the path is machine-specific).
fn model_name(path: &str) -> &str {
    std::path::Path::new(path)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(path)
}

fn status(refused: bool) -> &'static str {
    if refused { "refused" } else { "supported" }
}

fn list_json(a: &AnswerListItem) -> Value {
    json!({
        "id": a.id,
        "asked_at": iso(a.asked_at),
        "question": a.question,
        "model": model_name(&a.model_path),
        "model_sha256": a.model_sha256,
        "refused": a.refused,
        "flagged": a.flagged_at.is_some(),
        "cited_urls": a.cited_urls,
    })
}

fn print_item(a: &AnswerListItem) {
    outln!(
        "#{} {} {}{} [{}] {}",
        a.id,
        iso(a.asked_at),
        status(a.refused),
        if a.flagged_at.is_some() {
            ", flagged"
        } else {
            ""
        },
        model_name(&a.model_path),
        a.question
    );
    for u in &a.cited_urls {
        outln!("    {u}");
    }
}

fn record_json(r: &AnswerRecord) -> Value {
    let a = &r.row;
    // The stored object as it was shown; a corrupt row shows as a string.
    let shown: Value = serde_json::from_str(&r.json).unwrap_or(Value::String(r.json.clone()));
    json!({
        "id": a.id,
        "asked_at": iso(a.asked_at),
        "question": a.question,
        "answer": a.answer,
        "refused": a.refused,
        "reason": a.reason,
        "draft": r.draft,
        "model": r.model_path,
        "model_sha256": a.model_sha256,
        "policy_sha256": r.policy_sha256,
        "seconds": r.seconds,
        "flag": a.flagged_at.map(|t| json!({
            "flagged_at": iso(t),
            "revocation_id": a.flag_revocation_id,
            "page_id": a.flag_page_id,
        })),
        "citations": r.citations.iter().map(|c| json!({
            "n": c.n,
            "url": c.url,
            "page_id": c.page_id,
            "passage_id": c.passage_id,
            "verdict_id": c.verdict_id,
            "policy_sha256": c.policy_sha256,
            "licence": c.licence,
            "quote": c.quote,
            "start": c.start_char,
            "end": c.end_char,
            "support": c.support,
        })).collect::<Vec<_>>(),
        "sentences": shown.get("sentences").cloned().unwrap_or(Value::Array(Vec::new())),
        "recorded": shown,
    })
}

fn print_record(r: &AnswerRecord) {
    let a = &r.row;
    outln!(
        "answer #{}  {}  {}",
        a.id,
        iso(a.asked_at),
        status(a.refused)
    );
    outln!("question  {}", a.question);
    outln!("answer    {}", a.answer);
    if let Some(reason) = &a.reason {
        outln!("reason    {reason}");
    }
    outln!(
        "model     {} (sha256 {})",
        r.model_path,
        a.model_sha256.get(..12).unwrap_or(&a.model_sha256)
    );
    if let Some(p) = &r.policy_sha256 {
        outln!("policy    {p}");
    }
    outln!("seconds   {:.1}", r.seconds);
    if let Some(t) = a.flagged_at {
        outln!(
            "FLAGGED   {}: cited page {} is no longer allowed (revocation {})",
            iso(t),
            a.flag_page_id.map_or("?".into(), |p| p.to_string()),
            a.flag_revocation_id.map_or("?".into(), |p| p.to_string())
        );
    }
    outln!("draft     {}", r.draft.trim());
    for c in &r.citations {
        outln!();
        outln!(
            "[{}] {} (page {}, passage {}, verdict {}, licence {})",
            c.n,
            c.url,
            c.page_id,
            c.passage_id,
            c.verdict_id,
            c.licence.as_deref().unwrap_or("none stated")
        );
        if !c.quote.is_empty() {
            outln!(
                "    \"{}\" (chars {}..{})",
                c.quote,
                c.start_char,
                c.end_char
            );
        }
        outln!("    support {:.2}", c.support);
    }
    let shown: Value = serde_json::from_str(&r.json).unwrap_or(Value::Null);
    if let Some(sentences) = shown.get("sentences").and_then(Value::as_array)
        && !sentences.is_empty()
    {
        outln!();
        outln!("checker");
        for s in sentences {
            let text = s.get("text").and_then(Value::as_str).unwrap_or("");
            let kind = s.get("kind").and_then(Value::as_str).unwrap_or("?");
            let kept = s.get("supported").and_then(Value::as_bool) == Some(true);
            let why = s.get("why").and_then(Value::as_str).unwrap_or("");
            outln!(
                "  {} {kind}: {text}",
                if kept { "kept   " } else { "dropped" }
            );
            if !why.is_empty() {
                outln!("      {why}");
            }
        }
    }
}
