//! Numbered exports (`byline audit export`): the filtered records as
//! `verdicts.jsonl` or `verdicts.csv`, the archival formats' files beside
//! them (WARC, Croissant), and `manifest.json` (counts, policy hashes, the
//! Merkle root over the record lines, every file with its sha256, what was
//! removed since the previous export, the audit log head). Each export is
//! recorded in the store with the manifest's sha256.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::AuditError;
use super::dataset::{DatasetFormat, ShardSize};
use super::records::{Filters, Rec, filtered, iso, merkle_leaf, merkle_root, usable_decision};
use crate::store::Store;
use crate::store::audit::EventFilter;

/// What `audit export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// `verdicts.jsonl`.
    Jsonl,
    /// `verdicts.csv`.
    Csv,
    /// `corpus.warc.gz` and `warc-index.jsonl` beside `verdicts.jsonl`.
    Warc,
    /// `croissant.json` beside `verdicts.jsonl`.
    Croissant,
    /// A dataset: the pages' text in Parquet shards under `data/`, with a
    /// dataset card and Croissant file, beside `verdicts.jsonl`.
    Parquet,
    /// The same dataset in JSON Lines shards (`--format jsonl --with-text`).
    JsonlText,
}

impl ExportFormat {
    /// The manifest's `format` value.
    pub fn name(self) -> &'static str {
        match self {
            ExportFormat::Jsonl => "jsonl",
            ExportFormat::Csv => "csv",
            ExportFormat::Warc => "warc",
            ExportFormat::Croissant => "croissant",
            ExportFormat::Parquet => "parquet",
            ExportFormat::JsonlText => "jsonl-text",
        }
    }

    /// The dataset formats (page text in shards).
    pub fn dataset(self) -> Option<DatasetFormat> {
        match self {
            ExportFormat::Parquet => Some(DatasetFormat::Parquet),
            ExportFormat::JsonlText => Some(DatasetFormat::Jsonl),
            _ => None,
        }
    }
}

/// One export's settings.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    pub format: ExportFormat,
    pub filters: Filters,
    /// Write into a folder that is not empty (the files of an earlier export
    /// there, as its manifest lists them, are removed first).
    pub force: bool,
    /// Dataset formats: how big a shard may grow.
    pub shard_size: ShardSize,
}

/// What an export wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    /// The export's number (1, 2, …).
    pub version: i64,
    /// Records written.
    pub records: usize,
    pub merkle_root: String,
    /// The folder written into.
    pub dir: String,
    /// The manifest's `format`.
    #[serde(skip)]
    pub format: String,
}

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

/// Writes `bytes` to `out/name` and returns its manifest `files` entry.
pub(super) fn write_file(
    out: &Path,
    name: &str,
    bytes: &[u8],
) -> Result<serde_json::Value, AuditError> {
    let path = out.join(name);
    std::fs::write(&path, bytes).map_err(|e| AuditError::io("writing", &path, e))?;
    Ok(serde_json::json!({
        "name": name,
        "sha256": hex::encode(Sha256::digest(bytes)),
        "bytes": bytes.len(),
    }))
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The uses revoked after export `version` was made, as listed under
/// `removed_since_version` in a later export's manifest.
pub async fn removed_since(
    store: &Store,
    version: i64,
) -> Result<Vec<serde_json::Value>, AuditError> {
    Ok(store
        .revocations(Some(version))
        .await?
        .iter()
        .map(|r| {
            serde_json::json!({
                "url": r.page_url, "why": "revoked", "purpose": r.purpose,
                "at": iso(r.revoked_at),
                "old_decision": r.old_decision, "new_decision": r.new_decision,
                "reasons": r.reasons, "evidence_ids": r.evidence_ids,
                "revocation_id": r.id,
            })
        })
        .collect())
}

/// Makes `out` ready for an export: created when missing; a folder that is
/// not empty is refused unless `force`, and then the files an earlier
/// export listed in its manifest are removed (other files are left alone).
pub(super) fn prepare_dir(out: &Path, force: bool) -> Result<(), AuditError> {
    match std::fs::read_dir(out) {
        Ok(mut entries) => {
            if entries.next().is_none() {
                return Ok(());
            }
            if !force {
                return Err(AuditError::Input(format!(
                    "{} is not empty: choose a new folder, or pass --force to replace the export in it",
                    out.display()
                )));
            }
            let mpath = out.join("manifest.json");
            let Ok(text) = std::fs::read_to_string(&mpath) else {
                return Ok(());
            };
            let old: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            let names = old["files"].as_array().cloned().unwrap_or_default();
            for f in names {
                let Some(name) = f["name"].as_str() else {
                    continue;
                };
                // Only plain relative paths inside the folder.
                let rel = Path::new(name);
                if rel.is_absolute()
                    || rel
                        .components()
                        .any(|c| !matches!(c, std::path::Component::Normal(_)))
                {
                    continue;
                }
                let p = out.join(rel);
                match std::fs::remove_file(&p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(AuditError::io("removing", &p, e)),
                }
            }
            std::fs::remove_file(&mpath).map_err(|e| AuditError::io("removing", &mpath, e))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(out).map_err(|e| AuditError::io("creating", out, e))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => Err(AuditError::Input(format!(
            "{} is a file, not a folder",
            out.display()
        ))),
        Err(e) => Err(AuditError::io("reading", out, e)),
    }
}

/// Writes the next numbered export into `out` and records it.
pub async fn export(
    store: &Store,
    opts: &ExportOptions,
    out: &Path,
) -> Result<ExportReport, AuditError> {
    let format = opts.format;
    let mut chosen = opts.filters.clone();
    let mut excluded = Vec::new();
    if format.dataset().is_some() {
        // A dataset holds text: one purpose, and only decisions that allow use.
        let purpose = chosen.purpose.get_or_insert_with(|| "train".into()).clone();
        let decision = chosen
            .decision
            .get_or_insert_with(|| "allowed".into())
            .clone();
        chosen.check()?;
        if !usable_decision(&decision) {
            return Err(AuditError::Input(format!(
                "a dataset export holds page text, so its decision must allow use (allowed or allowed_with_conditions), not {decision:?}"
            )));
        }
        let mut all = chosen.clone();
        all.decision = None;
        excluded = filtered(store, &all)
            .await?
            .into_iter()
            .filter(|r| r.purpose == purpose && r.decision != decision)
            .collect();
    }
    let f = &chosen;
    let recs = filtered(store, f).await?;
    prepare_dir(out, opts.force)?;
    let version = store.next_export_version().await?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let lines: Vec<String> = recs.iter().map(Rec::canonical_line).collect();
    let leaves: Vec<[u8; 32]> = lines.iter().map(|l| merkle_leaf(l.as_bytes())).collect();
    let root = merkle_root(&leaves);
    let (name, body) = match format {
        ExportFormat::Jsonl
        | ExportFormat::Warc
        | ExportFormat::Croissant
        | ExportFormat::Parquet
        | ExportFormat::JsonlText => {
            let mut s = String::new();
            for l in &lines {
                s.push_str(l);
                s.push('\n');
            }
            ("verdicts.jsonl", s)
        }
        ExportFormat::Csv => {
            let mut s = String::from(
                "url,origin,purpose,decision,reasons,conditions,policy_id,policy_sha256,licence,licence_conditions,decided_at,crawl_state\r\n",
            );
            for r in &recs {
                let cells = [
                    r.url.clone(),
                    r.origin.clone(),
                    r.purpose.clone(),
                    r.decision.clone(),
                    r.reasons.join(";"),
                    r.conditions.join(";"),
                    r.policy_id.clone().unwrap_or_default(),
                    r.policy_sha256.clone().unwrap_or_default(),
                    r.licence.clone().unwrap_or_default(),
                    r.licence_conditions.clone(),
                    r.decided_at.clone().unwrap_or_default(),
                    r.crawl_state.clone(),
                ];
                let c: Vec<String> = cells.iter().map(|c| csv_field(c)).collect();
                s.push_str(&c.join(","));
                s.push_str("\r\n");
            }
            ("verdicts.csv", s)
        }
    };
    let records_entry = write_file(out, name, body.as_bytes())?;
    let mut counts: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    for r in &recs {
        *counts
            .entry(r.purpose.clone())
            .or_default()
            .entry(r.decision.clone())
            .or_insert(0) += 1;
    }
    let policies: BTreeSet<(String, String)> = recs
        .iter()
        .filter_map(|r| Some((r.policy_id.clone()?, r.policy_sha256.clone()?)))
        .collect();
    // The archival formats write their own files beside the records.
    let ctx = ExportCtx {
        version,
        now,
        filters: f,
        recs: &recs,
        records_file: name,
        records_body: body.as_bytes(),
        merkle_root: &root,
        out,
    };
    let extra = match format {
        ExportFormat::Jsonl | ExportFormat::Csv => Extra::default(),
        ExportFormat::Warc => super::warc::write(store, &ctx).await?,
        ExportFormat::Croissant => super::croissant::write(store, &ctx).await?,
        ExportFormat::Parquet | ExportFormat::JsonlText => {
            let df = format.dataset().unwrap_or(DatasetFormat::Jsonl);
            super::dataset::write(store, &ctx, df, opts.shard_size, &excluded).await?
        }
    };
    // Removed since the previous export: URLs forgotten after it.
    let all = store.audit_events(&EventFilter::default()).await?;
    let last_export_seq = all
        .iter()
        .filter(|e| e.kind == "export")
        .map(|e| e.seq)
        .max()
        .unwrap_or(0);
    let mut removed: Vec<serde_json::Value> = all
        .iter()
        .filter(|e| e.kind == "forget" && e.seq > last_export_seq)
        .map(|e| serde_json::json!({"url": e.subject, "why": "forgotten", "at": iso(e.time)}))
        .collect();
    // ... and uses revoked by `audit recheck` after it.
    if version > 1 {
        removed.extend(removed_since(store, version - 1).await?);
    }
    let head = all.last().map(|e| e.sha256.clone());
    let mut manifest = serde_json::json!({
        "byline_export": version,
        "created_at": iso(now),
        "format": format.name(),
        "filters": f,
        "records": recs.len(),
        "counts": counts,
        "policies": policies.iter().map(|(id, sha)| serde_json::json!({"policy_id": id, "sha256": sha})).collect::<Vec<_>>(),
        "merkle_root": root,
        "merkle_recipe": "leaf = sha256(0x00 || canonical JSON of the record, as in verdicts.jsonl, without newline); node = sha256(0x01 || left || right) over raw 32-byte digests; levels left to right, an odd last node carried up unchanged; empty = sha256 of nothing",
        "files": std::iter::once(records_entry).chain(extra.files.iter().cloned()).collect::<Vec<_>>(),
        "removed_since_version": if version > 1 { serde_json::json!({"version": version - 1, "removed": removed}) } else { serde_json::Value::Null },
        "audit_head_sha256": head,
    });
    for (k, v) in &extra.sections {
        manifest[k.as_str()] = v.clone();
    }
    let mtext = serde_json::to_string_pretty(&manifest)?;
    let mpath = out.join("manifest.json");
    std::fs::write(&mpath, &mtext).map_err(|e| AuditError::io("writing", &mpath, e))?;
    let msha = hex::encode(Sha256::digest(mtext.as_bytes()));
    let filters = serde_json::to_string(f)?;
    let fmt = format.name().to_string();
    let v = store
        .record_export(now, &fmt, &filters, recs.len() as i64, &root, &msha)
        .await?;
    Ok(ExportReport {
        version: v,
        records: recs.len(),
        merkle_root: root,
        dir: out.display().to_string(),
        format: fmt,
    })
}
