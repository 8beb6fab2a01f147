//! `byline robots` (not built yet).

use std::process::ExitCode;

use clap::Args;

use super::Global;

#[derive(Debug, Args)]
pub struct RobotsArgs {}

pub async fn run(_args: RobotsArgs, _global: &Global) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`byline robots` is not built yet")
}
