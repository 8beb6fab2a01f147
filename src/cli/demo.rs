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
    println!("sample site served at {seed}");
    let store = Store::open(&global.db)
        .await
        .with_context(|| format!("opening corpus at {}", global.db.display()))?;
    let summary =
        crawl_with_progress(store.clone(), CrawlConfig::new(vec![seed]), global.verbose).await?;
    print_summary(&summary, &global.db);
    let counts = store.verdict_counts().await?;
    if !counts.is_empty() {
        println!("verdicts (newest per page and purpose, default policy eu-opt-out):");
        for (purpose, decision, n) in counts {
            println!("  {purpose:<15} {decision:<24} {n}");
        }
    }
    store.close().await;
    server.abort();
    Ok(ExitCode::SUCCESS)
}
