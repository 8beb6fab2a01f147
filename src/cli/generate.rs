//! `byline generate` (not built yet).

use std::process::ExitCode;

use clap::Args;

use super::Global;

#[derive(Debug, Args)]
pub struct GenerateArgs {}

pub async fn run(_args: GenerateArgs, _global: &Global) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`byline generate` is not built yet")
}
