//! `byline bench ...`: dispatch to the crawl and engine benchmarks.

use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::{Global, bench_answers, bench_crawl, bench_engine};

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: BenchCommand,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Crawl a generated local site of many origins; report pages/s and peak memory.
    Crawl(bench_crawl::BenchCrawlArgs),
    /// Prompt-processing and generation speed of a GGUF model.
    Engine(bench_engine::BenchEngineArgs),
    /// Attributed answers over the sample site's question set: hit@5,
    /// citation recall/precision, refusals, violations, seconds per answer.
    Answers(bench_answers::BenchAnswersArgs),
}

pub async fn run(args: BenchArgs, global: &Global) -> anyhow::Result<ExitCode> {
    match args.command {
        BenchCommand::Crawl(a) => bench_crawl::run(a, global).await,
        BenchCommand::Engine(a) => bench_engine::run(a, global).await,
        BenchCommand::Answers(a) => bench_answers::run(a, global).await,
    }
}
