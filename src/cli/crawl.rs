//! `byline crawl` (not built yet).

use std::process::ExitCode;

use clap::Args;

use super::Global;

#[derive(Debug, Args)]
pub struct CrawlArgs {}

pub async fn run(_args: CrawlArgs, _global: &Global) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`byline crawl` is not built yet")
}
