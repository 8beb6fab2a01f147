//! The archival export formats (`audit export --format warc|croissant`): files written
//! beside the `verdicts.jsonl` records of the same export, listed in its
//! manifest (name, sha256, bytes) with a section of their own.

use std::path::Path;

use sha2::{Digest, Sha256};

use super::audit::Format;
use super::audit_report::{Filters, Rec};
use crate::store::Store;

/// What the export being written knows when the extra files are made.
pub(super) struct ExportCtx<'a> {
    pub version: i64,
    pub now: i64,
    pub filters: &'a Filters,
    /// The included records, in the order of the records file.
    pub recs: &'a [Rec],
    /// Name and bytes of the records file (`verdicts.jsonl`).
    pub records_file: &'a str,
    pub records_body: &'a [u8],
    pub merkle_root: &'a str,
    pub out: &'a Path,
}

/// Extra files (manifest `files` entries) and manifest sections.
#[derive(Default)]
pub(super) struct Extra {
    pub files: Vec<serde_json::Value>,
    pub sections: Vec<(String, serde_json::Value)>,
}

/// The manifest's `format` value.
pub(super) fn format_name(f: Format) -> &'static str {
    match f {
        Format::Jsonl => "jsonl",
        Format::Csv => "csv",
        Format::Warc => "warc",
        Format::Croissant => "croissant",
    }
}

/// Writes `bytes` to `ctx.out/name` and returns its manifest `files` entry.
pub(super) fn write_file(
    ctx: &ExportCtx<'_>,
    name: &str,
    bytes: &[u8],
) -> anyhow::Result<serde_json::Value> {
    let path = ctx.out.join(name);
    std::fs::write(&path, bytes).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    Ok(serde_json::json!({
        "name": name,
        "sha256": hex::encode(Sha256::digest(bytes)),
        "bytes": bytes.len(),
    }))
}

/// Writes the files of `format` beyond the records file (none for jsonl/csv).
pub(super) async fn write_extra(
    store: &Store,
    format: Format,
    ctx: &ExportCtx<'_>,
) -> anyhow::Result<Extra> {
    match format {
        Format::Jsonl | Format::Csv => Ok(Extra::default()),
        Format::Warc => super::audit_warc::write(store, ctx).await,
        Format::Croissant => super::audit_croissant::write(store, ctx).await,
    }
}
