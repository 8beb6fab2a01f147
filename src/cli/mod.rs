//! Command line: parses arguments with clap and runs one subcommand. The only
//! module that prints. Each subcommand lives in its own file with its `Args`
//! struct and a `run` function.
//!
//! Conventions every subcommand follows: commands that read a corpus open it
//! with [`open_corpus`] (never creating one; only `crawl` and `demo` do);
//! results go to standard output through [`outln!`] (a closed pipe ends the
//! process quietly, status 141); progress and logs go to standard error,
//! silenced by `-q` (see [`quiet`]); the exit status comes from
//! [`exit::Status`] alone.

/// `println!` for results: a closed standard output ends the process
/// quietly (status 141) instead of panicking; see [`exit::write_stdout`].
macro_rules! outln {
    () => {
        $crate::cli::exit::write_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::exit::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

mod answers;
mod ask;
mod audit;
mod bench;
mod bench_answers;
mod bench_crawl;
mod bench_engine;
mod crawl;
mod demo;
pub mod exit;
mod forget;
mod generate;
mod model;
mod policy;
mod recheck;
mod robots;
mod serve;
mod store;

/// Where models live (`BYLINE_MODEL_DIR`, else the XDG cache), for benches.
pub use model::model_dir;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Parser, Subcommand};

use crate::store::{Store, StoreError};

/// Byline: a consent-aware crawler, provenance audit and attributed Q&A.
///
/// Every page in a Byline corpus was fetched with the site's consent (robots.txt
/// and AI opt-out signals), and every answer cites where each claim came from.
#[derive(Debug, Parser)]
#[command(
    name = "byline",
    version,
    propagate_version = true,
    after_help = exit::AFTER_HELP
)]
pub struct Cli {
    /// The corpus database: an SQLite file, or a PostgreSQL database URL
    /// (`postgres://user@host/db`, for crawls and services spread over many
    /// machines). `crawl` and `demo` create it (or its schema) if missing;
    /// every other command refuses a missing one.
    #[arg(long, global = true, env = "BYLINE_DB", default_value = "byline.db")]
    pub db: PathBuf,

    /// More log output on stderr: -v info (what each step did), -vv debug,
    /// -vvv trace. RUST_LOG overrides. Colour only when stderr is a terminal
    /// and NO_COLOR is unset.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Nothing on stderr but errors: no progress bar or lines, no draft, no
    /// warnings. Results on stdout are unchanged.
    #[arg(short, long, global = true)]
    pub quiet: bool,

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
    /// The recorded answers: list them, show one in full.
    Answers(answers::AnswersArgs),
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
    /// The corpus database itself: copy an SQLite corpus into PostgreSQL.
    Store(store::StoreArgs),
}

/// Global options every subcommand may need.
#[derive(Debug, Clone)]
pub struct Global {
    pub db: PathBuf,
    pub verbose: u8,
}

static QUIET: AtomicBool = AtomicBool::new(false);

/// `-q` was given: print no progress, info or warnings on stderr.
pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Opens the corpus at `--db` for a command that reads it; a missing file
/// is an input error (exit 2) naming the path, never a new empty corpus.
pub async fn open_corpus(global: &Global) -> anyhow::Result<Store> {
    let t0 = std::time::Instant::now();
    match Store::open_existing(&global.db).await {
        Ok(store) => {
            tracing::info!(
                "opened corpus {} in {} ms",
                crate::store::display_db(&global.db),
                t0.elapsed().as_millis()
            );
            Ok(store)
        }
        Err(e @ StoreError::Missing { .. }) => Err(exit::input(e)),
        Err(e) => Err(anyhow::Error::new(e).context(format!(
            "opening corpus at {}",
            crate::store::display_db(&global.db)
        ))),
    }
}

/// A crawl allocates a page's DOM on whichever runtime thread handles it;
/// glibc gives every such thread its own malloc arena and keeps each
/// arena's peak, so the peak RSS grew with the number of threads (issue
/// #26). Two arenas, set before the runtime's threads exist.
///
/// A fixed mmap threshold of 256 KiB as well: glibc's default threshold
/// rises to the largest block freed (up to 32 MiB), so after the first
/// large page every later page's big buffers (a DOM's node vector, a
/// megabyte of text) came from the heap and stayed resident in its holes.
/// Fixed, they are mapped and given back when freed: the manuals' crawl
/// peaked at 57 MiB instead of 77 MiB (tunable tried before this change).
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; called before any
    // other thread of this process exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}

/// Parses the process arguments, runs the chosen subcommand and returns
/// its exit status (see [`exit::Status`]). Errors are printed here, once.
pub fn main() -> ExitCode {
    exit::quiet_on_closed_pipe();
    let cli = Cli::parse();
    QUIET.store(cli.quiet, Ordering::Relaxed);
    init_tracing(cli.verbose, cli.quiet);
    // reqwest is built without a default TLS provider (see Cargo.toml); install ring once.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let global = Global {
        db: cli.db,
        verbose: cli.verbose,
    };
    if matches!(
        &cli.command,
        Command::Crawl(_)
            | Command::Bench(bench::BenchArgs {
                command: bench::BenchCommand::Crawl(_)
            })
    ) {
        limit_malloc_arenas();
    }
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    // The crawler itself (not `bench crawl`'s server process).
    let crawls = match &cli.command {
        Command::Crawl(_) => true,
        Command::Bench(bench::BenchArgs {
            command: bench::BenchCommand::Crawl(a),
        }) => !a.serve_only,
        _ => false,
    };
    if crawls && std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        runtime.worker_threads(crate::crawl::worker_threads(cpus));
    }
    let t0 = std::time::Instant::now();
    let result = runtime
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(run(cli.command, global)));
    match result {
        Ok(code) => {
            tracing::info!("done in {:.2}s", t0.elapsed().as_secs_f64());
            code
        }
        Err(err) => {
            let status = exit::classify(&err);
            tracing::info!(
                "failed after {:.2}s, exit status {}",
                t0.elapsed().as_secs_f64(),
                status.code()
            );
            // A closed stdout never gets here: it ends the process at the
            // failed write (exit::write_stdout).
            eprintln!("error: {err:#}");
            status.into()
        }
    }
}

async fn run(command: Command, global: Global) -> anyhow::Result<ExitCode> {
    match command {
        Command::Crawl(args) => {
            tracing::info!(
                "crawling {} seed(s) into {}{}",
                args.seeds.len(),
                crate::store::display_db(&global.db),
                if global.db.exists() {
                    ""
                } else {
                    " (a new corpus)"
                }
            );
            crawl::run(args, &global).await
        }
        Command::Robots(args) => robots::run(args, &global).await,
        Command::Demo(args) => demo::run(args, &global).await,
        Command::Policy(args) => policy::run(args, &global).await,
        Command::Model(args) => model::run(args, &global).await,
        Command::Generate(args) => generate::run(args, &global).await,
        Command::Ask(args) => ask::run(args, &global).await,
        Command::Answers(args) => answers::run(args, &global).await,
        Command::Serve(args) => serve::run(args, &global).await,
        Command::Audit(args) => audit::run(args, &global).await,
        Command::Forget(args) => forget::run(args, &global).await,
        Command::Bench(args) => bench::run(args, &global).await,
        Command::Store(args) => store::run(args, &global).await,
    }
}

/// Logs on stderr: warnings by default, `-q` errors only, `-v` info, `-vv`
/// debug, `-vvv` trace (RUST_LOG overrides). ANSI colour only on a terminal
/// and when NO_COLOR is unset or empty (<https://no-color.org>).
fn init_tracing(verbose: u8, quiet: bool) {
    use tracing_subscriber::EnvFilter;
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour_on_stderr())
        .with_target(verbose >= 2)
        .try_init();
}

/// Colour on stderr: only a terminal, and never under NO_COLOR.
pub fn colour_on_stderr() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
