//! The provenance audit as a library: the records behind every audit
//! command (one per URL the crawl met and purpose, with the verdict in
//! force), one URL's trail (`why`), summaries and breakdowns, and the
//! numbered exports with their manifests (JSONL/CSV verdicts, WARC,
//! Croissant). Every result is a typed `Serialize` struct; `cli` parses
//! arguments and prints them, `serve` returns them as JSON. All SQL stays in
//! [`crate::store`].

use std::path::PathBuf;

use crate::store::StoreError;

mod croissant;
pub mod dataset;
pub mod erase;
pub mod export;
pub mod history;
pub mod records;
pub mod summary;
pub mod verify;
mod warc;
pub mod why;

pub use dataset::{DatasetRow, ShardSize};
pub use export::{ExportFormat, ExportOptions, ExportReport, export};
pub use records::{Filters, PURPOSES, Rec, filtered, iso, records, usable};
pub use summary::{LicenceRow, OriginRow, Summary, licences, origins, summary};
pub use why::{WhyReport, why};

/// Why an audit operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The caller's input is wrong (a filter value, a URL, an export folder
    /// that is not empty): theirs to fix.
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("encoding JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Other(String),
}

impl AuditError {
    /// The caller's mistake (exit 2 on the command line, 400 in the service).
    pub fn is_input(&self) -> bool {
        matches!(self, AuditError::Input(_))
    }

    pub(crate) fn io(what: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        AuditError::Io {
            what,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// `url` parsed, and its frontier identity: the normalised form
/// (`crawl::urls::normalise`), or the parsed form for a URL the crawler
/// would not normalise (which no frontier row has). A URL that does not
/// parse is an input error.
pub(crate) fn frontier_key(url: &str) -> Result<(url::Url, String), AuditError> {
    let parsed = url::Url::parse(url)
        .map_err(|e| AuditError::Input(format!("{url:?} is not an absolute URL: {e}")))?;
    let norm = crate::crawl::urls::normalise(&parsed)
        .map(|u| u.to_string())
        .unwrap_or_else(|| parsed.to_string());
    Ok((parsed, norm))
}
