//! `byline ask`: answer a question from the pages the policy allows, with
//! checked citations.

use std::io::Write;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use sha2::{Digest, Sha256};

use super::Global;
use super::exit::InputResult;
use super::model::resolve_model;
use crate::answer::{self, Answer, AskOptions, Generator};
use crate::engine::gguf::GgufFile;
use crate::store::Store;

/// Answer a question from the crawled pages the policy allows for
/// `rag_attributed`, citing each sentence.
///
/// Retrieves passages (BM25 over the pages whose newest verdict allows
/// attributed answers), asks the model with numbered sources, then checks
/// every sentence against those passages: citations the model got wrong are
/// re-attached, unsupported sentences dropped, and the question is refused
/// with a reason when nothing allowed supports an answer. The answer is
/// recorded in the corpus (`answers`, `answer_citations`).
///
/// Examples:
///
///   byline demo                       # crawls the sample site into byline.db
///   byline ask "Who built the Old Fulling Mill?"
///   byline ask --json "When did the River Museum open?" | jq .citations
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct AskArgs {
    /// The question.
    pub question: String,
    /// The GGUF model: a file, or a name registered with `byline model add`
    /// (default: the default model in the model directory).
    #[arg(long, env = "BYLINE_MODEL")]
    pub model: Option<PathBuf>,
    /// Only use verdicts decided under this policy file (its sha256 must be
    /// among the policies the corpus has seen).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Print one JSON object (fields documented in the README).
    #[arg(long)]
    pub json: bool,
    /// Most tokens the model may generate.
    #[arg(short = 'n', long = "max-tokens", default_value_t = 96)]
    pub max_tokens: usize,
    /// Most passages in the prompt.
    #[arg(long, default_value_t = 2)]
    pub passages: usize,
    /// Do not store the answer.
    #[arg(long)]
    pub no_record: bool,
    /// Print the checked answer sentence by sentence, each as soon as it
    /// passes the checker (the default when standard output is a terminal;
    /// never with --json).
    #[arg(long, conflicts_with_all = ["no_stream", "json"])]
    pub stream: bool,
    /// Print the checked answer only when it is complete (the default when
    /// standard output is not a terminal).
    #[arg(long)]
    pub no_stream: bool,
}

/// The options of a question from the command line.
pub async fn ask_options(
    store: &Store,
    policy: Option<&Path>,
    max_tokens: usize,
    passages: usize,
) -> anyhow::Result<AskOptions> {
    let mut opts = AskOptions {
        max_tokens,
        prompt_passages: passages.max(1),
        ..AskOptions::default()
    };
    if let Some(p) = policy {
        let bytes = std::fs::read(p)
            .with_context(|| format!("reading policy {}", p.display()))
            .input()?;
        let sha = hex::encode(Sha256::digest(&bytes));
        if store.policy_body(&sha).await?.is_none() {
            return Err(super::exit::input(anyhow::anyhow!(
                "no verdict in the corpus was decided under policy {} (sha256 {sha}); crawl with --policy {} first",
                p.display(),
                p.display()
            )));
        }
        opts.policy_sha256 = Some(sha);
    }
    Ok(opts)
}

/// Opens a model file (default: the default model).
pub fn open_model(arg: Option<PathBuf>) -> anyhow::Result<(PathBuf, GgufFile)> {
    let path = resolve_model(arg)?;
    let file = GgufFile::open(&path)
        .with_context(|| format!("opening model {}", path.display()))
        .input()?;
    Ok((path, file))
}

pub async fn run(args: AskArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let store = super::open_corpus(global).await?;
    crate::index::refresh(&store)
        .await
        .context("refreshing the passage index")?;
    let opts = ask_options(
        &store,
        args.policy.as_deref(),
        args.max_tokens,
        args.passages,
    )
    .await?;
    let (path, file) = open_model(args.model.clone())?;
    let sha = answer::model_sha256(&store, &path).await?;
    let generator = Generator::new(&file, &path, sha)?;
    let opts = AskOptions {
        record: !args.no_record,
        ..opts
    };
    let json = args.json;
    let stream = !json
        && !args.no_stream
        && (args.stream || std::io::IsTerminal::is_terminal(&std::io::stdout()));
    if stream {
        let mut shown: Vec<String> = Vec::new();
        let mut on_sentence = |s: &str| {
            let mut o = std::io::stdout().lock();
            let sep = if shown.is_empty() { "" } else { " " };
            shown.push(s.to_string());
            if let Err(e) = write!(o, "{sep}{s}").and_then(|()| o.flush()) {
                super::exit::stdout_failed(e);
            }
            ControlFlow::Continue(())
        };
        let a =
            answer::ask_checked_stream(&store, &generator, &args.question, &opts, &mut on_sentence)
                .await?;
        if !shown.is_empty() {
            outln!();
            if shown.join(" ") != a.answer {
                // Only when a cited page stopped being allowed while
                // answering: the record, re-verified at the end, counts.
                outln!(
                    "(a cited page stopped being allowed while answering; the recorded answer is:)"
                );
                outln!("{}", a.answer);
            }
        } else {
            outln!("{}", a.answer);
        }
        print_details(&a);
        store.close().await;
        return Ok(ExitCode::SUCCESS);
    }
    let quiet = super::quiet();
    let mut streamed = false;
    let mut on_text = |t: &str| {
        if !json && !quiet {
            let mut e = std::io::stderr().lock();
            if !streamed {
                let _ = write!(e, "draft: ");
                streamed = true;
            }
            let _ = write!(e, "{t}");
            let _ = e.flush();
        }
        ControlFlow::Continue(())
    };
    let a = answer::ask(&store, &generator, &args.question, &opts, &mut on_text).await?;
    if streamed {
        eprintln!();
    }
    if json {
        outln!("{}", serde_json::to_string_pretty(&a)?);
    } else {
        print_answer(&a);
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

/// The checked answer for people: text, then one block per citation.
pub fn print_answer(a: &Answer) {
    outln!("{}", a.answer);
    print_details(a);
}

/// What follows the answer text: refusal reason or notes on left-out
/// sentences, one block per citation, the footer.
pub fn print_details(a: &Answer) {
    if a.refused {
        if let Some(r) = &a.reason {
            outln!("  reason: {r}");
        }
    } else {
        let dropped = a
            .sentences
            .iter()
            .filter(|s| !s.supported && s.kind == answer::check::SentenceKind::Claim)
            .count();
        if dropped > 0 {
            outln!("  ({dropped} unsupported sentence(s) of the draft left out)");
        }
        let restated = a
            .sentences
            .iter()
            .filter(|s| {
                matches!(
                    s.kind,
                    answer::check::SentenceKind::Restatement
                        | answer::check::SentenceKind::Question
                )
            })
            .count();
        if restated > 0 {
            outln!("  ({restated} sentence(s) restating the question left out)");
        }
    }
    for c in &a.citations {
        outln!();
        outln!("[{}] {}", c.n, c.attribution);
        if !c.quote.is_empty() {
            outln!("    \"{}\" (chars {}..{})", c.quote, c.start, c.end);
        }
        outln!(
            "    support {:.2}{}; verdict {} {} under policy {}",
            c.support,
            if c.verbatim { ", verbatim" } else { "" },
            c.verdict_id,
            c.decision,
            &c.policy_sha256[..c.policy_sha256.len().min(12)]
        );
    }
    outln!();
    outln!(
        "[{:.1}s; model {}; answer {}]",
        a.seconds,
        &a.model_sha256[..a.model_sha256.len().min(12)],
        a.answer_id
            .map(|i| format!("#{i} recorded"))
            .unwrap_or_else(|| "not recorded".into())
    );
}
