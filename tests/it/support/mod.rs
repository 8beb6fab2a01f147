//! Helpers shared by the integration tests.

#![allow(dead_code)]

use std::path::PathBuf;

/// A fresh temporary directory that is removed when dropped.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("creating a temp dir")
}

/// Path of the built `byline` binary (cargo builds it for integration tests).
pub fn byline_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_byline"))
}

/// Runs `byline --db DB ARGS…` to completion.
pub fn byline_on(db: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(byline_bin())
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .expect("running byline")
}

/// A finished command's status, stdout and stderr, for assertion messages.
pub fn output_text(o: &std::process::Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A successful command's stdout parsed as JSON. Data is read from stdout
/// alone: stderr carries logs (a line there must never break a `--json`
/// reader), and it is shown when the command failed or printed no JSON.
pub fn stdout_json(what: &str, o: &std::process::Output) -> serde_json::Value {
    assert!(o.status.success(), "{what}: {}", output_text(o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{what}: {e}: {}", output_text(o)))
}

pub mod answer;
pub mod audit_world;
pub mod consent_site;
/// The model-path convention and reference-data paths for engine tests.
pub mod model;
pub mod pg;
pub mod pg_chain;
pub mod recheck_site;
pub mod refresh_site;
pub mod tok;

pub mod crawl;
pub mod crawl_more;
pub mod serve;
pub mod server;
pub mod why_events;
