//! `byline bench engine` (not built yet).

use std::process::ExitCode;

use clap::Args;

use super::Global;

#[derive(Debug, Args)]
pub struct BenchEngineArgs {}

pub async fn run(_args: BenchEngineArgs, _global: &Global) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`byline bench engine` is not built yet")
}
