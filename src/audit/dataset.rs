//! Dataset exports (`audit export --format parquet`, `--format jsonl
//! --with-text`): one row per page that the verdicts in force let be used
//! for one purpose, with its text, licence and attribution, written in
//! shards under `data/` (Hugging Face layout, `{split}-NNNNN-of-NNNNN`),
//! with a dataset card (`README.md`, YAML header) and a Croissant file
//! describing the shards.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::AuditError;
use super::export::{ExportCtx, Extra, write_file};
use super::records::{Rec, iso, usable_decision};
use crate::store::Store;

/// How big one shard may grow before the next is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardSize {
    /// At most this many rows.
    Rows(u64),
    /// About this many bytes of row data (a shard holds at least one row).
    Bytes(u64),
}

impl Default for ShardSize {
    fn default() -> Self {
        ShardSize::Bytes(256_000_000)
    }
}

impl std::str::FromStr for ShardSize {
    type Err = AuditError;

    /// `500rows`, `256MB`, `64KB`, `1GB` (decimal units) or a plain number of bytes.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        let bad = || {
            AuditError::Input(format!(
                "shard size {s:?}: use a number of rows (e.g. 10000rows) or a size in KB, MB or GB (e.g. 256MB)"
            ))
        };
        let (num, mult, rows) = if let Some(n) = t.strip_suffix("rows") {
            (n, 1, true)
        } else if let Some(n) = t.strip_suffix("gb") {
            (n, 1_000_000_000, false)
        } else if let Some(n) = t.strip_suffix("mb") {
            (n, 1_000_000, false)
        } else if let Some(n) = t.strip_suffix("kb") {
            (n, 1_000, false)
        } else if let Some(n) = t.strip_suffix('b') {
            (n, 1, false)
        } else {
            (t.as_str(), 1, false)
        };
        let n: u64 = num.trim().parse().map_err(|_| bad())?;
        let v = n.checked_mul(mult).ok_or_else(bad)?;
        if v == 0 {
            return Err(bad());
        }
        Ok(if rows {
            ShardSize::Rows(v)
        } else {
            ShardSize::Bytes(v)
        })
    }
}

/// The file format of the shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatasetFormat {
    Parquet,
    Jsonl,
}

impl DatasetFormat {
    fn ext(self) -> &'static str {
        match self {
            DatasetFormat::Parquet => "parquet",
            DatasetFormat::Jsonl => "jsonl",
        }
    }

    fn mime(self) -> &'static str {
        match self {
            DatasetFormat::Parquet => "application/x-parquet",
            DatasetFormat::Jsonl => "application/jsonlines",
        }
    }
}

/// One page of a dataset export.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetRow {
    pub url: String,
    /// The extracted main text, as stored.
    pub text: String,
    pub title: Option<String>,
    pub language: Option<String>,
    /// SPDX id; `null` when the page states none.
    pub licence: Option<String>,
    /// Title, author, site, URL and licence in one line (CC "TASL").
    pub attribution: String,
    /// Conditions of the verdict (e.g. `attribution_required`).
    pub conditions: Vec<String>,
    pub verdict_id: i64,
    pub policy_sha256: String,
    /// When the page was fetched (RFC 3339, UTC).
    pub fetched_at: String,
    /// sha256 of `text` as UTF-8.
    pub content_sha256: String,
}

impl DatasetRow {
    fn approx_bytes(&self) -> u64 {
        let n = self.url.len()
            + self.text.len()
            + self.title.as_ref().map_or(0, String::len)
            + self.attribution.len()
            + self.conditions.iter().map(String::len).sum::<usize>()
            + 200;
        n as u64
    }
}

/// The split name of a purpose (`train`, `rag_attributed`, …).
fn split_name(purpose: &str) -> String {
    purpose
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// Writes the rows of `ctx.recs` (one purpose, usable decisions) in shards,
/// the dataset card and the Croissant file; returns their manifest entries
/// and the `dataset` section.
pub(super) async fn write(
    store: &Store,
    ctx: &ExportCtx<'_>,
    format: DatasetFormat,
    shard: ShardSize,
    excluded: &[Rec],
) -> Result<Extra, AuditError> {
    let purpose = ctx.filters.purpose.clone().unwrap_or_default();
    let split = split_name(&purpose);
    let data = ctx.out.join("data");
    std::fs::create_dir_all(&data).map_err(|e| AuditError::io("creating", &data, e))?;
    let mut shards: Vec<(String, u64)> = Vec::new();
    let mut pending: Vec<DatasetRow> = Vec::new();
    let mut pending_bytes = 0u64;
    let mut rows_total = 0u64;
    let mut erased = 0u64;
    let mut seen = BTreeSet::new();
    let mut sample: Option<(String, String)> = None;
    let mut languages: BTreeMap<String, u64> = BTreeMap::new();
    let mut licences: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut origins: BTreeMap<String, u64> = BTreeMap::new();
    let mut text_bytes = 0u64;
    for r in ctx.recs {
        let (Some(pid), Some(vid), Some(psha)) = (r.page_id, r.verdict_id, &r.policy_sha256) else {
            continue;
        };
        if !usable_decision(&r.decision) || !seen.insert(pid) {
            continue;
        }
        let Some(p) = store.page_capture(pid).await? else {
            continue;
        };
        if p.text.is_empty() {
            erased += 1;
            continue;
        }
        let site = url::Url::parse(&r.url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string));
        let row = DatasetRow {
            attribution: crate::answer::attribution(
                p.title.as_deref(),
                p.author.as_deref(),
                site.as_deref(),
                &r.url,
                r.licence.as_deref(),
                None,
            ),
            url: r.url.clone(),
            content_sha256: hex::encode(Sha256::digest(p.text.as_bytes())),
            text: p.text,
            title: p.title,
            language: p.language,
            licence: r.licence.clone(),
            conditions: r.conditions.clone(),
            verdict_id: vid,
            policy_sha256: psha.clone(),
            fetched_at: iso(p.fetched_at),
        };
        *languages
            .entry(row.language.clone().unwrap_or_else(|| "unknown".into()))
            .or_insert(0) += 1;
        *licences
            .entry((
                r.licence.clone().unwrap_or_else(|| "unknown".into()),
                r.licence_conditions.clone(),
            ))
            .or_insert(0) += 1;
        *origins.entry(r.origin.clone()).or_insert(0) += 1;
        text_bytes += row.text.len() as u64;
        if sample.is_none() {
            sample = Some((row.url.clone(), row.content_sha256.clone()));
        }
        let b = row.approx_bytes();
        let full = match shard {
            ShardSize::Rows(n) => pending.len() as u64 >= n,
            ShardSize::Bytes(n) => !pending.is_empty() && pending_bytes + b > n,
        };
        if full {
            shards.push(flush(&data, &split, shards.len(), format, &pending)?);
            pending.clear();
            pending_bytes = 0;
        }
        pending_bytes += b;
        rows_total += 1;
        pending.push(row);
    }
    if !pending.is_empty() || shards.is_empty() {
        shards.push(flush(&data, &split, shards.len(), format, &pending)?);
    }
    // Name the shards `{split}-00000-of-0000N.ext` now that N is known.
    let n = shards.len();
    let mut files = Vec::new();
    let mut shard_list = Vec::new();
    for (i, (tmp, rows)) in shards.iter().enumerate() {
        let name = format!("data/{split}-{i:05}-of-{n:05}.{}", format.ext());
        let from = ctx.out.join(tmp);
        let to = ctx.out.join(&name);
        std::fs::rename(&from, &to).map_err(|e| AuditError::io("renaming", &from, e))?;
        let bytes = std::fs::read(&to).map_err(|e| AuditError::io("reading", &to, e))?;
        files.push(serde_json::json!({
            "name": name,
            "sha256": hex::encode(Sha256::digest(&bytes)),
            "bytes": bytes.len(),
            "rows": rows,
        }));
        shard_list.push(name);
    }
    // What the purpose's records left out, and why.
    let mut why_out: BTreeMap<(String, String), u64> = BTreeMap::new();
    for r in excluded {
        let reason = r.reasons.first().cloned().unwrap_or_else(|| "-".into());
        *why_out.entry((r.decision.clone(), reason)).or_insert(0) += 1;
    }
    if erased > 0 {
        why_out.insert(("erased".into(), "forgotten: text erased".into()), erased);
    }
    let card = Card {
        split: &split,
        purpose: &purpose,
        decision: ctx.filters.decision.as_deref().unwrap_or("allowed"),
        format,
        rows: rows_total,
        text_bytes,
        shards: &shard_list,
        languages: &languages,
        licences: &licences,
        origins: &origins,
        excluded: &why_out,
        recs: ctx.recs,
        ctx,
    };
    files.push(write_file(ctx.out, "README.md", card.render().as_bytes())?);
    let glob = format!("data/{split}-*.{}", format.ext());
    let doc = super::croissant::document(
        store,
        ctx,
        format!(
            "Text of {rows_total} web page(s) from {} origin(s) that the consent verdicts in force allow for the purpose {purpose:?}, one row per page with its licence, attribution, conditions and verdict; crawled by Byline. Merkle root of the verdict records: {}.",
            origins.len(),
            ctx.merkle_root
        ),
        vec![serde_json::json!({
            "@type": "cr:FileSet",
            "@id": "pages-files",
            "name": "pages-files",
            "description": format!("The {n} shard(s) of the pages, {}.", format.ext()),
            "encodingFormat": format.mime(),
            "includes": glob,
        })],
        vec![pages_record_set()],
    )
    .await?;
    let text = serde_json::to_string_pretty(&doc)?;
    files.push(write_file(
        ctx.out,
        super::croissant::CROISSANT_FILE,
        text.as_bytes(),
    )?);
    let section = serde_json::json!({
        "format": format.ext(),
        "purpose": purpose,
        "split": split,
        "rows": rows_total,
        "text_bytes": text_bytes,
        "shard_size": match shard { ShardSize::Rows(n) => format!("{n} rows"), ShardSize::Bytes(n) => format!("{n} bytes") },
        "shards": shard_list,
        "card": "README.md",
        "croissant": super::croissant::CROISSANT_FILE,
        "columns": COLUMNS.iter().map(|(k, _, _, _)| *k).collect::<Vec<_>>(),
        "sample": sample.map(|(u, h)| serde_json::json!({"url": u, "content_sha256": h})),
        "excluded": why_out.iter().map(|((d, r), n)| serde_json::json!({"decision": d, "reason": r, "records": n})).collect::<Vec<_>>(),
    });
    Ok(Extra {
        files,
        sections: vec![
            ("dataset".into(), section),
            (
                "croissant".into(),
                serde_json::json!({"file": super::croissant::CROISSANT_FILE, "conforms_to": "http://mlcommons.org/croissant/1.1", "describes": ctx.records_file, "record_sets": ["verdicts", "pages"]}),
            ),
        ],
    })
}

/// (column, Croissant dataType, is an array, description)
const COLUMNS: [(&str, &str, bool, &str); 11] = [
    (
        "url",
        "sc:URL",
        false,
        "The page's URL as the crawl met it.",
    ),
    ("text", "sc:Text", false, "The extracted main text."),
    (
        "title",
        "sc:Text",
        false,
        "The page title (null when none).",
    ),
    (
        "language",
        "sc:Text",
        false,
        "The page's declared language (null when none).",
    ),
    (
        "licence",
        "sc:Text",
        false,
        "The page's licence as an SPDX identifier (null when none was found).",
    ),
    (
        "attribution",
        "sc:Text",
        false,
        "Title, author, site, URL and licence in one line.",
    ),
    (
        "conditions",
        "sc:Text",
        true,
        "Conditions the verdict attaches to the use.",
    ),
    (
        "verdict_id",
        "sc:Integer",
        false,
        "Id of the verdict in force (byline audit why URL).",
    ),
    (
        "policy_sha256",
        "sc:Text",
        false,
        "sha256 of the policy that decided.",
    ),
    (
        "fetched_at",
        "sc:DateTime",
        false,
        "When the page was fetched (RFC 3339, UTC).",
    ),
    (
        "content_sha256",
        "sc:Text",
        false,
        "sha256 of the text as UTF-8.",
    ),
];

fn pages_record_set() -> serde_json::Value {
    let fields: Vec<serde_json::Value> = COLUMNS
        .iter()
        .map(|(k, ty, arr, desc)| {
            let mut f = serde_json::json!({
                "@type": "cr:Field",
                "@id": format!("pages/{k}"),
                "name": k,
                "description": desc,
                "dataType": ty,
                "source": {"fileSet": {"@id": "pages-files"}, "extract": {"column": k}},
            });
            if *arr {
                f["isArray"] = serde_json::json!(true);
            }
            f
        })
        .collect();
    serde_json::json!({
        "@type": "cr:RecordSet",
        "@id": "pages",
        "name": "pages",
        "description": "One record per page: its text, licence, attribution and the verdict that allows its use.",
        "key": [{"@id": "pages/url"}],
        "field": fields,
    })
}

/// Writes one shard under a temporary name; returns (relative name, rows).
fn flush(
    data: &Path,
    split: &str,
    i: usize,
    format: DatasetFormat,
    rows: &[DatasetRow],
) -> Result<(String, u64), AuditError> {
    let rel = format!("data/.{split}-{i:05}.{}.part", format.ext());
    let path = data.join(format!(".{split}-{i:05}.{}.part", format.ext()));
    let file = std::fs::File::create(&path).map_err(|e| AuditError::io("creating", &path, e))?;
    match format {
        DatasetFormat::Jsonl => {
            let mut w = std::io::BufWriter::new(file);
            for r in rows {
                serde_json::to_writer(&mut w, r)?;
                w.write_all(b"\n")
                    .map_err(|e| AuditError::io("writing", &path, e))?;
            }
            w.flush().map_err(|e| AuditError::io("writing", &path, e))?;
        }
        DatasetFormat::Parquet => write_parquet(file, rows)
            .map_err(|e| AuditError::Other(format!("writing {}: {e}", path.display())))?,
    }
    Ok((rel, rows.len() as u64))
}

/// The Parquet schema of a shard (3-level LIST for `conditions`).
const PARQUET_SCHEMA: &str = "message page {
  required binary url (STRING);
  required binary text (STRING);
  optional binary title (STRING);
  optional binary language (STRING);
  optional binary licence (STRING);
  required binary attribution (STRING);
  required group conditions (LIST) {
    repeated group list {
      required binary element (STRING);
    }
  }
  required int64 verdict_id;
  required binary policy_sha256 (STRING);
  required binary fetched_at (STRING);
  required binary content_sha256 (STRING);
}";

/// One row group of `rows`, snappy-compressed pages.
fn write_parquet(file: std::fs::File, rows: &[DatasetRow]) -> parquet::errors::Result<()> {
    use parquet::basic::Compression;
    use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;

    let schema = Arc::new(parquet::schema::parser::parse_message_type(PARQUET_SCHEMA)?);
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_created_by(format!("byline {}", env!("CARGO_PKG_VERSION")))
            .build(),
    );
    let mut w = SerializedFileWriter::new(file, schema, props)?;
    let mut rg = w.next_row_group()?;
    let required = |f: &dyn Fn(&DatasetRow) -> &str| -> Vec<ByteArray> {
        rows.iter()
            .map(|r| ByteArray::from(f(r).as_bytes().to_vec()))
            .collect()
    };
    let optional = |f: &dyn Fn(&DatasetRow) -> Option<&str>| -> (Vec<ByteArray>, Vec<i16>) {
        let vals = rows
            .iter()
            .filter_map(|r| f(r).map(|s| ByteArray::from(s.as_bytes().to_vec())))
            .collect();
        let defs = rows.iter().map(|r| i16::from(f(r).is_some())).collect();
        (vals, defs)
    };
    let mut col = 0usize;
    while let Some(mut c) = rg.next_column()? {
        match col {
            0 => {
                c.typed::<ByteArrayType>()
                    .write_batch(&required(&|r| &r.url), None, None)?;
            }
            1 => {
                c.typed::<ByteArrayType>()
                    .write_batch(&required(&|r| &r.text), None, None)?;
            }
            2..=4 => {
                let (v, d) = optional(&|r| match col {
                    2 => r.title.as_deref(),
                    3 => r.language.as_deref(),
                    _ => r.licence.as_deref(),
                });
                c.typed::<ByteArrayType>().write_batch(&v, Some(&d), None)?;
            }
            5 => {
                c.typed::<ByteArrayType>().write_batch(
                    &required(&|r| &r.attribution),
                    None,
                    None,
                )?;
            }
            6 => {
                let mut v = Vec::new();
                let mut d = Vec::new();
                let mut rep = Vec::new();
                for r in rows {
                    if r.conditions.is_empty() {
                        d.push(0);
                        rep.push(0);
                    }
                    for (j, s) in r.conditions.iter().enumerate() {
                        v.push(ByteArray::from(s.as_bytes().to_vec()));
                        d.push(1);
                        rep.push(i16::from(j > 0));
                    }
                }
                c.typed::<ByteArrayType>()
                    .write_batch(&v, Some(&d), Some(&rep))?;
            }
            7 => {
                let v: Vec<i64> = rows.iter().map(|r| r.verdict_id).collect();
                c.typed::<Int64Type>().write_batch(&v, None, None)?;
            }
            8 => {
                c.typed::<ByteArrayType>().write_batch(
                    &required(&|r| &r.policy_sha256),
                    None,
                    None,
                )?;
            }
            9 => {
                c.typed::<ByteArrayType>().write_batch(
                    &required(&|r| &r.fetched_at),
                    None,
                    None,
                )?;
            }
            _ => {
                c.typed::<ByteArrayType>().write_batch(
                    &required(&|r| &r.content_sha256),
                    None,
                    None,
                )?;
            }
        }
        c.close()?;
        col += 1;
    }
    rg.close()?;
    w.close()?;
    Ok(())
}

/// Reads the first row of a Parquet shard back (the demo's check that what
/// was written loads); `None` for an empty shard.
pub fn first_parquet_row(path: &Path) -> Result<Option<DatasetRow>, AuditError> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;

    let err = |e: parquet::errors::ParquetError| {
        AuditError::Other(format!("reading {}: {e}", path.display()))
    };
    let file = std::fs::File::open(path).map_err(|e| AuditError::io("opening", path, e))?;
    let reader = SerializedFileReader::new(file).map_err(err)?;
    let mut rows = reader.get_row_iter(None).map_err(err)?;
    let Some(row) = rows.next() else {
        return Ok(None);
    };
    let row = row.map_err(err)?;
    let mut out = DatasetRow {
        url: String::new(),
        text: String::new(),
        title: None,
        language: None,
        licence: None,
        attribution: String::new(),
        conditions: Vec::new(),
        verdict_id: 0,
        policy_sha256: String::new(),
        fetched_at: String::new(),
        content_sha256: String::new(),
    };
    for (name, value) in row.get_column_iter() {
        let text = match value {
            Field::Str(s) => Some(s.clone()),
            _ => None,
        };
        match (name.as_str(), value) {
            ("url", _) => out.url = text.unwrap_or_default(),
            ("text", _) => out.text = text.unwrap_or_default(),
            ("title", _) => out.title = text,
            ("language", _) => out.language = text,
            ("licence", _) => out.licence = text,
            ("attribution", _) => out.attribution = text.unwrap_or_default(),
            ("conditions", Field::ListInternal(l)) => {
                out.conditions = l
                    .elements()
                    .iter()
                    .filter_map(|f| match f {
                        Field::Str(s) => Some(s.clone()),
                        _ => None,
                    })
                    .collect();
            }
            ("verdict_id", Field::Long(n)) => out.verdict_id = *n,
            ("policy_sha256", _) => out.policy_sha256 = text.unwrap_or_default(),
            ("fetched_at", _) => out.fetched_at = text.unwrap_or_default(),
            ("content_sha256", _) => out.content_sha256 = text.unwrap_or_default(),
            _ => {}
        }
    }
    Ok(Some(out))
}

/// The dataset card: a Hugging Face `README.md` (YAML header, then prose).
struct Card<'a> {
    split: &'a str,
    purpose: &'a str,
    decision: &'a str,
    format: DatasetFormat,
    rows: u64,
    text_bytes: u64,
    shards: &'a [String],
    languages: &'a BTreeMap<String, u64>,
    licences: &'a BTreeMap<(String, String), u64>,
    origins: &'a BTreeMap<String, u64>,
    excluded: &'a BTreeMap<(String, String), u64>,
    recs: &'a [Rec],
    ctx: &'a ExportCtx<'a>,
}

/// A YAML double-quoted scalar.
fn yq(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// Markdown table cell: no pipes or line breaks.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

impl Card<'_> {
    fn render(&self) -> String {
        let spdx: BTreeSet<&str> = self
            .licences
            .keys()
            .map(|(l, _)| l.as_str())
            .filter(|l| *l != "unknown")
            .collect();
        // The Hub's `license` takes one id; a mix (or none stated) is `other`.
        let hub_licence = match (
            spdx.len(),
            self.licences
                .contains_key(&("unknown".into(), "unknown".into())),
        ) {
            (1, false) => spdx
                .iter()
                .next()
                .map(|l| l.to_ascii_lowercase())
                .unwrap_or_default(),
            _ => "other".to_string(),
        };
        let size = match self.rows {
            0..1_000 => "n<1K",
            1_000..10_000 => "1K<n<10K",
            10_000..100_000 => "10K<n<100K",
            100_000..1_000_000 => "100K<n<1M",
            _ => "1M<n<10M",
        };
        let policies: BTreeSet<(&str, &str)> = self
            .recs
            .iter()
            .filter_map(|r| Some((r.policy_id.as_deref()?, r.policy_sha256.as_deref()?)))
            .collect();
        let mut y = String::from("---\n");
        y.push_str(&format!("license: {}\n", yq(&hub_licence)));
        if hub_licence == "other" {
            y.push_str("license_name: \"per-page\"\n");
            y.push_str("license_details: \"Each row's licence column gives the page's SPDX id (null when the page states none); see the licence table below.\"\n");
        }
        let langs: Vec<&String> = self.languages.keys().filter(|l| *l != "unknown").collect();
        if !langs.is_empty() {
            y.push_str("language:\n");
            for l in &langs {
                let short = l.split(['-', '_']).next().unwrap_or(l).to_ascii_lowercase();
                y.push_str(&format!("- {}\n", yq(&short)));
            }
        }
        y.push_str(&format!(
            "pretty_name: {}\n",
            yq(&format!(
                "Byline export {} ({})",
                self.ctx.version, self.purpose
            ))
        ));
        y.push_str(&format!("size_categories:\n- {size}\n"));
        y.push_str("task_categories:\n- text-generation\n");
        y.push_str("tags:\n- web-crawl\n- consent\n- provenance\n");
        y.push_str("configs:\n- config_name: default\n  data_files:\n");
        y.push_str(&format!(
            "  - split: {}\n    path: {}\n",
            yq(self.split),
            yq(&format!("data/{}-*.{}", self.split, self.format.ext()))
        ));
        y.push_str("---\n\n");
        let mut m = y;
        m.push_str(&format!(
            "# Byline export {}: pages allowed for `{}`\n\n",
            self.ctx.version, self.purpose
        ));
        m.push_str(&format!(
            "{} page(s) ({} bytes of text) from {} origin(s), crawled by Byline and kept only where the verdict in force for the purpose `{}` is `{}`. One row per page: `url`, `text`, `title`, `language`, `licence` (SPDX), `attribution`, `conditions`, `verdict_id`, `policy_sha256`, `fetched_at`, `content_sha256` (sha256 of `text`). Files: {}. The verdict records behind the rows are in `{}` (Merkle root `{}`); every file's sha256 is in `manifest.json`; `croissant.json` describes the same files (Croissant 1.1).\n\n",
            self.rows,
            self.text_bytes,
            self.origins.len(),
            self.purpose,
            self.decision,
            self.shards.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", "),
            self.ctx.records_file,
            self.ctx.merkle_root,
        ));
        m.push_str("## Licences\n\n| licence | conditions | pages |\n| --- | --- | --- |\n");
        for ((l, c), n) in self.licences {
            m.push_str(&format!("| {} | {} | {n} |\n", cell(l), cell(c)));
        }
        m.push_str("\nA page without a licence (`unknown`) is included because its site's consent signals allow the purpose; it carries no licence grant, so keep the attribution and the conditions with every use.\n\n");
        m.push_str("## Origins\n\n| origin | pages |\n| --- | --- |\n");
        for (o, n) in self.origins {
            m.push_str(&format!("| {} | {n} |\n", cell(o)));
        }
        m.push_str("\n## Consent policy\n\n");
        if policies.is_empty() {
            m.push_str("No verdicts (no pages).\n");
        }
        for (id, sha) in &policies {
            m.push_str(&format!("- `{id}`, sha256 `{sha}`\n"));
        }
        m.push_str("\nEach page was fetched obeying robots.txt (RFC 9309); its AI and text-and-data-mining opt-out signals (robots.txt, TDMRep, ai.txt, X-Robots-Tag and meta robots, content-usage and content-signal headers) and licence were recorded and decided per purpose by the policy above. `byline audit why URL` shows any row's whole trail.\n\n");
        m.push_str(&format!("## Excluded for `{}`, and why\n\n", self.purpose));
        if self.excluded.is_empty() {
            m.push_str("Nothing: every URL met has a verdict that allows the purpose.\n");
        } else {
            m.push_str("| decision | first reason | URLs |\n| --- | --- | --- |\n");
            for ((d, r), n) in self.excluded {
                m.push_str(&format!("| {} | {} | {n} |\n", cell(d), cell(r)));
            }
        }
        m.push_str("\n## Counts\n\n");
        m.push_str(&format!(
            "- rows: {}\n- shards: {}\n- text bytes: {}\n",
            self.rows,
            self.shards.len(),
            self.text_bytes
        ));
        for (l, n) in self.languages {
            m.push_str(&format!("- language {l}: {n}\n"));
        }
        m.push_str(&format!(
            "\nExported {} by byline {}.\n",
            iso(self.ctx.now),
            env!("CARGO_PKG_VERSION")
        ));
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_sizes_parse_rows_and_decimal_units_and_refuse_nonsense() {
        assert_eq!(
            "500rows".parse::<ShardSize>().unwrap(),
            ShardSize::Rows(500)
        );
        assert_eq!(
            "256MB".parse::<ShardSize>().unwrap(),
            ShardSize::Bytes(256_000_000)
        );
        assert_eq!(
            "64kb".parse::<ShardSize>().unwrap(),
            ShardSize::Bytes(64_000)
        );
        assert_eq!("1000".parse::<ShardSize>().unwrap(), ShardSize::Bytes(1000));
        for bad in [
            "",
            "0rows",
            "-3MB",
            "twoMB",
            "99999999999999999999GB",
            "18446744073709551615GB",
        ] {
            assert!(bad.parse::<ShardSize>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn split_names_are_file_name_safe() {
        assert_eq!(split_name("rag_attributed"), "rag_attributed");
        assert_eq!(split_name("a/b c"), "a_b_c");
    }
}
