//! `byline robots check`: decides URLs against a robots.txt file with exactly
//! the crawler's code path (`RobotsRules::parse` + `check`).

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde::Serialize;

use super::Global;
use super::exit::InputResult;
use crate::crawl::robots::{PRODUCT_TOKEN, RobotsRules, target_url};

#[derive(Debug, Args)]
pub struct RobotsArgs {
    #[command(subcommand)]
    command: RobotsCommand,
}

#[derive(Debug, Subcommand)]
enum RobotsCommand {
    /// Decide URLs against a local robots.txt file, exactly as the crawler would.
    ///
    /// Prints one JSON line per URL, in the order given:
    ///
    ///   {"url":"/private/x","allowed":false,"matched_line":3,"rule":"Disallow: /private"}
    ///
    /// `matched_line` is the 1-based line of the deciding rule in FILE and
    /// `rule` that line as written (both null when no rule matched: allowed).
    /// Parse warnings (truncation at 512,000 bytes, rules outside any group,
    /// ...) go to stderr.
    ///
    /// Example:
    ///
    ///   byline robots check --robots robots.txt /a/b https://example.org/c?d=1
    #[command(verbatim_doc_comment)]
    Check(CheckArgs),
}

#[derive(Debug, Args)]
struct CheckArgs {
    /// The robots.txt file to read (`-` reads standard input).
    #[arg(long, value_name = "FILE")]
    robots: PathBuf,

    /// The product token to decide for, e.g. `BylineBot` or `Googlebot`.
    /// Matched case-insensitively against each `User-agent:` value cut at its
    /// first character outside `A-Z a-z _ -` (so `BylineBot/1.0` addresses
    /// `BylineBot`). Give the bare token, not a whole User-Agent header.
    #[arg(long, value_name = "TOKEN", default_value = PRODUCT_TOKEN)]
    agent: String,

    /// URLs to check: absolute (`https://example.org/a?b`) or paths (`/a?b`).
    /// Only the path and query are matched; a `#fragment` is ignored.
    #[arg(value_name = "URL", required = true)]
    urls: Vec<String>,
}

/// One output line.
#[derive(Serialize)]
struct Line<'a> {
    url: &'a str,
    allowed: bool,
    matched_line: Option<usize>,
    rule: Option<String>,
}

pub async fn run(args: RobotsArgs, _global: &Global) -> anyhow::Result<ExitCode> {
    match args.command {
        RobotsCommand::Check(args) => check(args),
    }
}

fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let body = if args.robots.as_os_str() == "-" {
        let mut body = Vec::new();
        std::io::stdin()
            .read_to_end(&mut body)
            .context("reading robots.txt from standard input")
            .input()?;
        body
    } else {
        std::fs::read(&args.robots)
            .with_context(|| format!("reading robots.txt at {}", args.robots.display()))
            .input()?
    };
    // Read every URL before printing anything, so bad input loses nothing.
    let urls = args
        .urls
        .iter()
        .map(|u| {
            target_url(u)
                .with_context(|| {
                    format!("url {u:?} is neither an absolute URL nor a path starting with `/`")
                })
                .input()
        })
        .collect::<anyhow::Result<Vec<_>>>()?;

    let valid_token = !args.agent.is_empty()
        && args
            .agent
            .bytes()
            .all(|b| b.is_ascii_alphabetic() || b == b'_' || b == b'-');
    if !valid_token && !super::quiet() {
        eprintln!(
            "warning: agent {:?} is not an RFC 9309 product token (letters, `_` and `-` only); \
             no `User-agent:` line can name it, so only `*` groups apply",
            args.agent
        );
    }

    let rules = RobotsRules::parse(&body, &args.agent);
    for warning in rules.warnings().iter().filter(|_| !super::quiet()) {
        eprintln!("warning: {}: {warning}", args.robots.display());
    }
    let mut out = std::io::stdout().lock();
    for (input, url) in args.urls.iter().zip(&urls) {
        let d = rules.check(url);
        let line = Line {
            url: input,
            allowed: d.allowed,
            matched_line: d.matched_line,
            rule: d.rule,
        };
        serde_json::to_writer(&mut out, &line)
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(out))
            .unwrap_or_else(|e| super::exit::stdout_failed(e));
    }
    Ok(ExitCode::SUCCESS)
}
