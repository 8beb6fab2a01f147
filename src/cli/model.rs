//! `byline model` (not built yet).

use std::process::ExitCode;

use clap::Args;

use super::Global;

#[derive(Debug, Args)]
pub struct ModelArgs {}

pub async fn run(_args: ModelArgs, _global: &Global) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`byline model` is not built yet")
}
