//! `byline demo` (not built yet).

use std::process::ExitCode;

use clap::Args;

use super::Global;

#[derive(Debug, Args)]
pub struct DemoArgs {}

pub async fn run(_args: DemoArgs, _global: &Global) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`byline demo` is not built yet")
}
