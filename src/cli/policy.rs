//! `byline policy` (not built yet).

use std::process::ExitCode;

use clap::Args;

use super::Global;

#[derive(Debug, Args)]
pub struct PolicyArgs {}

pub async fn run(_args: PolicyArgs, _global: &Global) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`byline policy` is not built yet")
}
