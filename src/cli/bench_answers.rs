//! `byline bench answers`: the attributed-answer benchmark over the bundled
//! sample site and its question set (tests/fixtures/site/questions.jsonl).
//!
//! Serves the site on 127.0.0.1, crawls it under the default policy into a
//! fresh corpus, then asks every question and reports:
//! * retrieval on the labelled set (tests/data/retrieval/sample_site.jsonl):
//!   hit@1, hit@5 and MRR of the first passage from an answering page, and
//!   the same over this question set's allowed-gold questions;
//! * retrieval hit@5: the gold page among the 5 best allowed passages'
//!   pages (questions whose gold page is allowed);
//! * citation recall and precision in ALCE's sense, judged by our support
//!   checker, of the model's own `[n]` citations (recall: share of claim
//!   sentences whose cited passages support them; precision: share of
//!   citations that support their sentence), and the share of claim
//!   sentences the checked answer keeps (after re-attachment);
//! * refusals: how many, the share that were correct (the gold page is
//!   excluded for `rag_attributed`), and the share of such questions refused;
//!   refusals right (gold excluded, refused) and wrong (gold allowed,
//!   refused), and answers that should have been refusals (gold excluded,
//!   answered);
//! * strict citation precision: a second, stricter reading of the checked
//!   answer's citations than the checker's support score: a citation is
//!   precise only when it cites the question's labelled gold page (allowed)
//!   and its quoted span contains the labelled answer string;
//! * answer accuracy: the gold answer string in a non-refused answer;
//! * violations: citations of pages whose newest `rag_attributed` verdict
//!   is not allowed (must be 0);
//! * seconds per answer.

use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use serde::Deserialize;
use url::Url;

use super::Global;
use super::ask::open_model;
use crate::answer::check::SentenceKind;
use crate::answer::{self, AskOptions, Generator};
use crate::crawl::CrawlConfig;
use crate::index::eval;
use crate::policy::verdict::Decision;
use crate::serve::sample_site::{QUESTIONS_JSONL, serve_sample_site};
use crate::store::Store;

#[derive(Debug, Args)]
pub struct BenchAnswersArgs {
    /// The GGUF model: a file, or a name registered with `byline model add`
    /// (default: the default model in the model directory).
    #[arg(long, env = "BYLINE_MODEL")]
    pub model: Option<PathBuf>,
    /// A question file (JSON lines: id, question, answer, page,
    /// gold_allowed); default: the bundled sample site's.
    #[arg(long, value_name = "FILE")]
    pub questions: Option<PathBuf>,
    /// Most generated tokens per answer.
    #[arg(short = 'n', long = "max-tokens", default_value_t = 64)]
    pub max_tokens: usize,
    /// Ask only the first N questions.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Print each question's outcome as it is answered.
    #[arg(long)]
    pub each: bool,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// A labelled retrieval set (JSON lines: id, question, pages) scored
    /// for hit@1, hit@5 and MRR; default: tests/data/retrieval/sample_site.jsonl.
    #[arg(long, value_name = "FILE")]
    pub retrieval: Option<PathBuf>,
    /// Score retrieval only: no model, no answers.
    #[arg(long)]
    pub retrieval_only: bool,
    /// Exit 1 when hit@5 on the labelled retrieval set is below this.
    #[arg(long, value_name = "SHARE")]
    pub min_hit_at_5: Option<f64>,
    /// Score the labelled retrieval set on this existing corpus (e.g. a
    /// documentation crawl) instead of crawling the sample site; needs
    /// `--origin` and `--retrieval-only`.
    #[arg(long, value_name = "FILE", requires_all = ["origin", "retrieval_only", "retrieval"])]
    pub corpus: Option<PathBuf>,
    /// The origin the labelled pages' paths belong to (`http://host:port`), with `--corpus`.
    #[arg(long, value_name = "URL", requires = "corpus")]
    pub origin: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Question {
    id: String,
    question: String,
    answer: String,
    page: String,
    #[serde(default = "yes")]
    gold_allowed: bool,
}

fn yes() -> bool {
    true
}

fn norm(s: &str) -> String {
    s.to_lowercase()
        .replace('’', "'")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn ratio(a: usize, b: usize) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

fn show(r: Option<f64>) -> String {
    r.map(|x| format!("{:.3}", x))
        .unwrap_or_else(|| "n/a".into())
}

/// `--corpus`: the labelled retrieval set scored on an existing corpus
/// (read-only; the corpus must exist and be indexed).
async fn corpus_retrieval(
    args: &BenchAnswersArgs,
    corpus: &std::path::Path,
    origin: &str,
) -> anyhow::Result<ExitCode> {
    let store = Store::open_existing(corpus).await?;
    let path = args.retrieval.as_ref().expect("clap requires --retrieval");
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let labelled =
        eval::parse_labelled(&text).map_err(|e| anyhow::anyhow!("retrieval set: {e}"))?;
    let ret = eval::evaluate(&store, origin.trim_end_matches('/'), &labelled, None).await?;
    if args.json {
        outln!(
            "{}",
            serde_json::json!({
                "corpus": corpus.display().to_string(),
                "retrieval": {
                    "questions": ret.questions,
                    "hit_at_1": ret.hit_at_1,
                    "hit_at_5": ret.hit_at_5,
                    "mrr": ret.mrr,
                    "ranks": ret.ranks,
                }
            })
        );
    } else {
        outln!("| metric | value |\n| --- | --- |");
        outln!("| corpus | {} |", corpus.display());
        outln!("| retrieval set (labelled questions) | {} |", ret.questions);
        outln!("|   hit@1 | {:.3} |", ret.hit_at_1);
        outln!("|   hit@5 | {:.3} |", ret.hit_at_5);
        outln!("|   MRR (rank <= 20) | {:.3} |", ret.mrr);
    }
    if args.each {
        for r in &ret.ranks {
            eprintln!(
                "{} rank {:>4} top {:<40} | {}",
                r.id,
                r.rank.map(|x| x.to_string()).unwrap_or_else(|| "-".into()),
                r.top.as_deref().unwrap_or("-"),
                r.question
            );
        }
    }
    if args.min_hit_at_5.is_some_and(|m| ret.hit_at_5 < m) {
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn run(args: BenchAnswersArgs, _global: &Global) -> anyhow::Result<ExitCode> {
    let text = match &args.questions {
        Some(p) => {
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?
        }
        None => QUESTIONS_JSONL.to_string(),
    };
    let mut questions: Vec<Question> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| format!("question line {}: {l}", i + 1))
        })
        .collect::<anyhow::Result<_>>()?;
    if let Some(n) = args.limit {
        questions.truncate(n);
    }
    if let (Some(corpus), Some(origin)) = (&args.corpus, &args.origin) {
        return corpus_retrieval(&args, corpus, origin).await;
    }
    let (addr, server) = serve_sample_site(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .context("starting the sample site on 127.0.0.1")?;
    let seed = Url::parse(&format!("http://{addr}/")).expect("a loopback URL parses");
    let dir = tempfile_dir()?;
    let db = dir.join("bench-answers.db");
    let store = Store::open(&db).await?;
    let mut cfg = CrawlConfig::new(vec![seed.clone()]);
    cfg.min_delay_ms = 0;
    super::crawl::crawl_with_progress(store.clone(), cfg, 0)
        .await
        .context("crawling the sample site")?;
    let idx = crate::index::refresh(&store).await?;
    let origin = seed.as_str().trim_end_matches('/').to_string();
    let labelled_text = match &args.retrieval {
        Some(p) => {
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?
        }
        None => eval::SAMPLE_SITE_RETRIEVAL_JSONL.to_string(),
    };
    let labelled =
        eval::parse_labelled(&labelled_text).map_err(|e| anyhow::anyhow!("retrieval set: {e}"))?;
    let ret = eval::evaluate(&store, &origin, &labelled, None).await?;
    // The answer set's questions whose gold page is allowed, scored alike.
    let answer_set: Vec<eval::LabelledQuestion> = questions
        .iter()
        .filter(|q| q.gold_allowed)
        .map(|q| eval::LabelledQuestion {
            id: q.id.clone(),
            question: q.question.clone(),
            pages: vec![q.page.clone()],
        })
        .collect();
    let ret_answers = eval::evaluate(&store, &origin, &answer_set, None).await?;
    if args.each {
        for r in ret.ranks.iter().chain(&ret_answers.ranks) {
            eprintln!(
                "{} rank {:>4} top {:<40} | {}",
                r.id,
                r.rank.map(|x| x.to_string()).unwrap_or_else(|| "-".into()),
                r.top.as_deref().unwrap_or("-"),
                r.question
            );
        }
    }
    let below = args.min_hit_at_5.is_some_and(|m| ret.hit_at_5 < m);
    let retrieval_rows = |rows: &mut Vec<(&str, String)>| {
        rows.push((
            "retrieval set (labelled questions)",
            ret.questions.to_string(),
        ));
        rows.push(("  hit@1", format!("{:.3}", ret.hit_at_1)));
        rows.push(("  hit@5", format!("{:.3}", ret.hit_at_5)));
        rows.push(("  MRR (rank <= 20)", format!("{:.3}", ret.mrr)));
        rows.push((
            "answer set, gold allowed: hit@1 / hit@5 / MRR",
            format!(
                "{:.3} / {:.3} / {:.3}",
                ret_answers.hit_at_1, ret_answers.hit_at_5, ret_answers.mrr
            ),
        ));
    };
    let retrieval_json = serde_json::json!({
        "questions": ret.questions,
        "hit_at_1": ret.hit_at_1,
        "hit_at_5": ret.hit_at_5,
        "mrr": ret.mrr,
        "ranks": ret.ranks,
        "answer_set": {
            "questions": ret_answers.questions,
            "hit_at_1": ret_answers.hit_at_1,
            "hit_at_5": ret_answers.hit_at_5,
            "mrr": ret_answers.mrr,
        },
    });
    if args.retrieval_only {
        server.abort();
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
        if args.json {
            let obj = serde_json::json!({
                "passages": idx.total_passages,
                "retrieval": retrieval_json,
            });
            outln!("{}", serde_json::to_string_pretty(&obj)?);
        } else {
            let mut rows = vec![("passages indexed", idx.total_passages.to_string())];
            retrieval_rows(&mut rows);
            outln!("| metric | value |");
            outln!("| --- | --- |");
            for (k, v) in rows {
                outln!("| {k} | {v} |");
            }
        }
        return Ok(if below {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        });
    }
    let (path, file) = open_model(args.model.clone())?;
    let sha = answer::model_sha256(&store, &path).await?;
    let generator = Generator::new(&file, &path, sha)?;
    let opts = AskOptions {
        max_tokens: args.max_tokens,
        ..AskOptions::default()
    };

    let (mut hit_n, mut hit_d) = (0, 0);
    let (mut rec_n, mut claims, mut prec_n, mut prec_d, mut kept) = (0, 0, 0, 0, 0);
    let (mut refused, mut refused_ok, mut excluded_q, mut excluded_refused) = (0, 0, 0, 0);
    let (mut correct, mut answerable, mut answered) = (0, 0, 0);
    let (mut violations, mut gold_excluded_cited, mut reattached, mut citations) = (0, 0, 0, 0);
    let (mut refused_wrong, mut answered_wrong, mut strict_ok) = (0, 0, 0);
    let mut seconds = Vec::new();
    for q in &questions {
        let gold = format!("{origin}{}", q.page);
        if q.gold_allowed {
            hit_d += 1;
            let top = crate::index::retrieve(&store, &q.question, None, 5).await?;
            if top.iter().any(|r| r.hit.url == gold) {
                hit_n += 1;
            }
        }
        let a = answer::ask(&store, &generator, &q.question, &opts, &mut |_| {
            ControlFlow::Continue(())
        })
        .await?;
        seconds.push(a.seconds);
        for s in a.sentences.iter().filter(|s| s.kind == SentenceKind::Claim) {
            claims += 1;
            if s.supported {
                kept += 1;
            }
            if s.reattached {
                reattached += 1;
            }
            if s.model_citation_support.iter().any(|&b| b) {
                rec_n += 1;
            }
            prec_d += s.model_citation_support.len();
            prec_n += s.model_citation_support.iter().filter(|&&b| b).count();
        }
        for c in &a.citations {
            citations += 1;
            let v = store.latest_verdicts(&c.url, None).await?;
            let ok = v.iter().any(|v| {
                v.purpose == "rag_attributed"
                    && Decision::parse(&v.decision).is_some_and(Decision::is_allowed)
            });
            if !ok {
                violations += 1;
            }
            if c.url == gold && !q.gold_allowed {
                gold_excluded_cited += 1;
            }
            if q.gold_allowed && c.url == gold && norm(&c.quote).contains(&norm(&q.answer)) {
                strict_ok += 1;
            }
        }
        if !q.gold_allowed {
            excluded_q += 1;
        } else {
            answerable += 1;
        }
        if a.refused {
            refused += 1;
            if !q.gold_allowed {
                refused_ok += 1;
                excluded_refused += 1;
            } else {
                refused_wrong += 1;
            }
        } else {
            answered += 1;
            if !q.gold_allowed {
                answered_wrong += 1;
            }
            if q.gold_allowed && norm(&a.answer).contains(&norm(&q.answer)) {
                correct += 1;
            }
        }
        if args.each {
            eprintln!(
                "{} {:<6} {:>5.1}s cites {:?} | {}",
                q.id,
                if a.refused { "refuse" } else { "answer" },
                a.seconds,
                a.citations
                    .iter()
                    .map(|c| c.url.trim_start_matches(&origin).to_string())
                    .collect::<Vec<_>>(),
                a.answer
            );
        }
    }
    server.abort();
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
    seconds.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let mean = seconds.iter().sum::<f64>() / seconds.len().max(1) as f64;
    let p50 = seconds.get(seconds.len() / 2).copied().unwrap_or(0.0);
    let max = seconds.last().copied().unwrap_or(0.0);
    let mut rows: Vec<(&str, String)> = Vec::new();
    retrieval_rows(&mut rows);
    rows.extend(vec![
        ("questions", questions.len().to_string()),
        (
            "  gold page allowed / excluded",
            format!("{answerable} / {excluded_q}"),
        ),
        ("passages indexed", idx.total_passages.to_string()),
        (
            "retrieval hit@5 (gold allowed)",
            format!("{} ({hit_n}/{hit_d})", show(ratio(hit_n, hit_d))),
        ),
        (
            "citation recall, model [n] (ALCE)",
            format!(
                "{} ({rec_n}/{claims} claim sentences)",
                show(ratio(rec_n, claims))
            ),
        ),
        (
            "citation precision, model [n] (ALCE)",
            format!(
                "{} ({prec_n}/{prec_d} citations)",
                show(ratio(prec_n, prec_d))
            ),
        ),
        (
            "claim sentences kept after check",
            format!(
                "{} ({kept}/{claims}; {reattached} re-attached)",
                show(ratio(kept, claims))
            ),
        ),
        ("citations shown", citations.to_string()),
        (
            "strict citation precision (gold page, quote holds the answer)",
            format!(
                "{} ({strict_ok}/{citations})",
                show(ratio(strict_ok, citations))
            ),
        ),
        ("refusals", format!("{refused} of {}", questions.len())),
        (
            "  share of refusals correct",
            format!(
                "{} ({refused_ok}/{refused})",
                show(ratio(refused_ok, refused))
            ),
        ),
        (
            "  refusals right / wrong (gold excluded / gold allowed)",
            format!("{refused_ok} / {refused_wrong}"),
        ),
        (
            "  answered though the gold page is excluded",
            answered_wrong.to_string(),
        ),
        (
            "  excluded-gold questions refused",
            format!(
                "{} ({excluded_refused}/{excluded_q})",
                show(ratio(excluded_refused, excluded_q))
            ),
        ),
        (
            "answer contains gold string (answered, gold allowed)",
            format!("{correct} of {answered} answered"),
        ),
        (
            "violations (cited page not allowed)",
            violations.to_string(),
        ),
        (
            "  citations of an excluded gold page",
            gold_excluded_cited.to_string(),
        ),
        (
            "seconds per answer: mean / p50 / max",
            format!("{mean:.2} / {p50:.2} / {max:.2}"),
        ),
    ]);
    if args.json {
        let obj = serde_json::json!({
            "questions": questions.len(),
            "gold_allowed": answerable,
            "gold_excluded": excluded_q,
            "passages": idx.total_passages,
            "hit_at_5": ratio(hit_n, hit_d),
            "retrieval": retrieval_json,
            "citation_recall": ratio(rec_n, claims),
            "citation_precision": ratio(prec_n, prec_d),
            "claims_kept": ratio(kept, claims),
            "reattached": reattached,
            "citations": citations,
            "refusals": refused,
            "refusals_correct_share": ratio(refused_ok, refused),
            "refusals_right": refused_ok,
            "refusals_wrong": refused_wrong,
            "answered_should_refuse": answered_wrong,
            "strict_citation_precision": ratio(strict_ok, citations),
            "strict_citations_precise": strict_ok,
            "excluded_refused_share": ratio(excluded_refused, excluded_q),
            "answers_with_gold_string": correct,
            "answered": answered,
            "violations": violations,
            "excluded_gold_cited": gold_excluded_cited,
            "seconds_mean": mean,
            "seconds_p50": p50,
            "seconds_max": max,
            "model_sha256": generator.model_sha256,
            "max_tokens": args.max_tokens,
        });
        outln!("{}", serde_json::to_string_pretty(&obj)?);
    } else {
        outln!("| metric | value |");
        outln!("| --- | --- |");
        for (k, v) in rows {
            outln!("| {k} | {v} |");
        }
    }
    Ok(if violations == 0 && !below {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let p = std::env::temp_dir().join(format!("byline-bench-answers-{}", std::process::id()));
    std::fs::create_dir_all(&p).with_context(|| format!("creating {}", p.display()))?;
    Ok(p)
}
