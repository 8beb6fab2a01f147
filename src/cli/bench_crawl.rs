//! `byline bench crawl` (not built yet).

use std::process::ExitCode;

use clap::Args;

use super::Global;

#[derive(Debug, Args)]
pub struct BenchCrawlArgs {}

pub async fn run(_args: BenchCrawlArgs, _global: &Global) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`byline bench crawl` is not built yet")
}
