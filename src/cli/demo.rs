//! `byline demo`: serves the bundled sample site on 127.0.0.1, crawls it into
//! the corpus under the default policy and prints what happened. The
//! quick-start main job.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use url::Url;

use super::Global;
use super::crawl::{crawl_with_progress, print_summary};
use crate::crawl::CrawlConfig;
use crate::serve::sample_site::serve_sample_site;
use crate::store::Store;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Port for the sample site on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
}

pub async fn run(args: DemoArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let (addr, server) = serve_sample_site(SocketAddr::from(([127, 0, 0, 1], args.port)))
        .await
        .context("starting the sample site on 127.0.0.1")?;
    let seed = Url::parse(&format!("http://{addr}/")).expect("a loopback URL parses");
    outln!("sample site served at {seed}");
    let store = Store::open(&global.db)
        .await
        .with_context(|| format!("opening corpus at {}", global.db.display()))?;
    let summary =
        crawl_with_progress(store.clone(), CrawlConfig::new(vec![seed]), global.verbose).await?;
    print_summary(&summary, &global.db);
    let counts = store.verdict_counts().await?;
    if !counts.is_empty() {
        outln!("verdicts (newest per page and purpose, default policy eu-opt-out):");
        for (purpose, decision, n) in counts {
            outln!("  {purpose:<15} {decision:<24} {n}");
        }
    }
    super::crawl::refresh_index(&store).await?;
    answer_samples(&store, global).await?;
    store.close().await;
    server.abort();
    Ok(ExitCode::SUCCESS)
}

/// The demo's two questions: one answered from an allowed page, one whose
/// only answer is on a page excluded for `rag_attributed` (so: a refusal or
/// other pages, never that page).
pub const DEMO_QUESTIONS: [&str; 2] = [
    "Who built the Old Fulling Mill?",
    "How many lace bobbins are in the Marlowe collection?",
];

async fn answer_samples(store: &Store, _global: &Global) -> anyhow::Result<()> {
    let path = match std::env::var_os("BYLINE_MODEL") {
        Some(p) => std::path::PathBuf::from(p),
        None => {
            let dir = super::model::model_dir();
            let p = dir.join(super::model::DEFAULT_MODEL);
            if !p.is_file() {
                outln!("default model missing: fetching it into {}", dir.display());
                super::model::fetch(&dir)?;
            }
            p
        }
    };
    let (path, file) = super::ask::open_model(Some(path))?;
    let sha = crate::answer::model_sha256(store, &path).await?;
    let generator = crate::answer::Generator::new(&file, &path, sha)?;
    let opts = super::ask::ask_options(store, None, 64, 2).await?;
    for q in DEMO_QUESTIONS {
        outln!();
        outln!("question: {q}");
        let a = crate::answer::ask(store, &generator, q, &opts, &mut |_| {
            std::ops::ControlFlow::Continue(())
        })
        .await?;
        super::ask::print_answer(&a);
    }
    Ok(())
}
