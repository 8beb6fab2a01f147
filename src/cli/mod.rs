//! Command line: parses arguments with clap and runs one subcommand. The only
//! module that prints. Each subcommand lives in its own file with its `Args`
//! struct and a `run` function.

mod ask;
mod audit;
mod audit_croissant;
mod audit_export;
mod audit_report;
mod audit_warc;
mod bench;
mod bench_answers;
mod bench_crawl;
mod bench_engine;
mod crawl;
mod demo;
mod forget;
mod generate;
mod model;
mod policy;
mod recheck;
mod robots;
mod serve;

/// Where models live (`BYLINE_MODEL_DIR`, else the XDG cache), for benches.
pub use model::model_dir;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Byline: a consent-aware crawler, provenance audit and attributed Q&A.
///
/// Every page in a Byline corpus was fetched with the site's consent (robots.txt
/// and AI opt-out signals), and every answer cites where each claim came from.
#[derive(Debug, Parser)]
#[command(name = "byline", version, propagate_version = true)]
pub struct Cli {
    /// The corpus database (a SQLite file, created if missing).
    #[arg(long, global = true, env = "BYLINE_DB", default_value = "byline.db")]
    pub db: PathBuf,

    /// More log output (-v info, -vv debug, -vvv trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Crawl one or more sites politely into the corpus.
    Crawl(crawl::CrawlArgs),
    /// Check URLs against a robots.txt file, exactly as the crawler would.
    Robots(robots::RobotsArgs),
    /// Serve the bundled sample site on 127.0.0.1 and crawl it (the quick-start demo).
    Demo(demo::DemoArgs),
    /// Validate and apply consent policies.
    Policy(policy::PolicyArgs),
    /// Inspect or fetch GGUF models.
    Model(model::ModelArgs),
    /// Answer a question from the allowed pages, with checked citations.
    Ask(ask::AskArgs),
    /// Serve attributed answers over HTTP (API, OpenAI-compatible endpoint, web page).
    Serve(serve::ServeArgs),
    /// Generate text with the embedded engine.
    Generate(generate::GenerateArgs),
    /// Provenance audit: summary, why, lists, exports, log verification.
    Audit(audit::AuditArgs),
    /// Erase stored content of URLs on request, keeping a tombstone (never re-crawled).
    Forget(forget::ForgetArgs),
    /// Benchmarks: crawl throughput, engine speed.
    Bench(bench::BenchArgs),
}

/// Global options every subcommand may need.
#[derive(Debug, Clone)]
pub struct Global {
    pub db: PathBuf,
    pub verbose: u8,
}

/// Parses the process arguments and runs the chosen subcommand.
pub fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    // reqwest is built without a default TLS provider (see Cargo.toml); install ring once.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let global = Global {
        db: cli.db,
        verbose: cli.verbose,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(cli.command, global))
}

async fn run(command: Command, global: Global) -> anyhow::Result<ExitCode> {
    match command {
        Command::Crawl(args) => crawl::run(args, &global).await,
        Command::Robots(args) => robots::run(args, &global).await,
        Command::Demo(args) => demo::run(args, &global).await,
        Command::Policy(args) => policy::run(args, &global).await,
        Command::Model(args) => model::run(args, &global).await,
        Command::Generate(args) => generate::run(args, &global).await,
        Command::Ask(args) => ask::run(args, &global).await,
        Command::Serve(args) => serve::run(args, &global).await,
        Command::Audit(args) => audit::run(args, &global).await,
        Command::Forget(args) => forget::run(args, &global).await,
        Command::Bench(args) => bench::run(args, &global).await,
    }
}

fn init_tracing(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
