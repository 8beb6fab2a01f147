//! `audit export --format warc`: a WARC/1.1 file (`corpus.warc.gz`, one gzip
//! member per record) beside the `verdicts.jsonl` records, with an index
//! (`warc-index.jsonl`, one line per record) that the manifest covers.
//!
//! Records, in order:
//! * `warcinfo`: software, format, the export's version, records file and
//!   Merkle root.
//! * per origin of the included records, every stored robots.txt version,
//!   oldest first: a `resource` record with the body bytes exactly as fetched
//!   (WARC-Date = its fetch time) when a body was stored, and a `metadata`
//!   record (JSON: status, outcome, redirects, warnings, expiry) referring to
//!   it; a version without a body (404, unreachable) is a `metadata` record
//!   alone.
//! * per included page whose included verdicts allow use: when its body was
//!   kept at crawl time (a raw capture, `store::raw`), a `response` record
//!   (`application/http; msgtype=response`: the status line, the response
//!   headers as received without Content-Encoding/Transfer-Encoding, a
//!   Content-Length of the kept body, then the body as fetched with its
//!   content-encoding decoded; `WARC-Truncated: length` when the body was
//!   cut at the max body size) and a `conversion` record of the extracted
//!   main text referring to it; without a raw capture (an older corpus,
//!   `--no-keep-raw`, a forgotten page) a `resource` record of the extracted
//!   main text (`text/plain; charset=utf-8`). A `metadata`
//!   record (JSON: the fetch with its status line and response headers as
//!   received, the sha256 and size of the original body, the licence and
//!   the verdicts) is written for every included page.
//! * after a page's response (or resource) record, one `revisit` record per
//!   later revisit that answered `304 Not Modified` (`crawl --refresh`,
//!   `audit recheck --bodies`): WARC 1.1 §6.7.2 profile server-not-modified,
//!   the 304's status line and headers as its block (no payload),
//!   `WARC-Refers-To`, `WARC-Refers-To-Target-URI` and
//!   `WARC-Refers-To-Date` naming the capture it confirms.
//!
//! Digests are `sha256:<hex>`; WARC-Record-IDs are UUIDs (RFC 9562 version 8)
//! derived from the export version, the audit head and the record's place.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

use super::AuditError;
use super::export::{ExportCtx, Extra, write_file};
use super::records::{Rec, iso, usable};
use crate::store::Store;
use crate::store::audit::EventFilter;
use crate::store::export_capture::PageCapture;
use crate::store::raw::RawBody;

/// The WARC file's name in the export directory.
pub const WARC_FILE: &str = "corpus.warc.gz";
/// The per-record index's name.
pub const INDEX_FILE: &str = "warc-index.jsonl";

/// WARC-Date form (`YYYY-MM-DDThh:mm:ssZ`, UTC).
pub fn warc_date(unix: i64) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|d| d.format(&fmt).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

/// `<urn:uuid:…>` of an RFC 9562 version 8 UUID taken from sha256(`seed`).
pub fn record_id(seed: &[u8]) -> String {
    let h = Sha256::digest(seed);
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let x = hex::encode(b);
    format!(
        "<urn:uuid:{}-{}-{}-{}-{}>",
        &x[0..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..32]
    )
}

/// One WARC record before serialisation.
pub struct Record {
    pub kind: &'static str,
    pub id: String,
    pub date: String,
    pub target_uri: Option<String>,
    pub content_type: &'static str,
    /// Further named fields (WARC-Refers-To, WARC-Filename, …).
    pub fields: Vec<(&'static str, String)>,
    pub block: Vec<u8>,
    /// Where the payload starts in the block: a `response` record's HTTP
    /// body after its status line and headers.
    pub payload_offset: Option<usize>,
}

impl Record {
    /// `sha256:<hex>` of the block.
    pub fn block_digest(&self) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(&self.block)))
    }

    /// Resource and conversion records carry their whole block as payload;
    /// a response record's payload is the HTTP body.
    pub fn payload_digest(&self) -> Option<String> {
        match (self.kind, self.payload_offset) {
            (_, Some(at)) => self
                .block
                .get(at..)
                .map(|p| format!("sha256:{}", hex::encode(Sha256::digest(p)))),
            ("resource" | "conversion", None) => Some(self.block_digest()),
            _ => None,
        }
    }

    /// The record as WARC/1.1 bytes (header, CRLF, block, CRLF CRLF).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut h = String::new();
        h.push_str("WARC/1.1\r\n");
        h.push_str(&format!("WARC-Type: {}\r\n", self.kind));
        h.push_str(&format!("WARC-Record-ID: {}\r\n", self.id));
        h.push_str(&format!("WARC-Date: {}\r\n", self.date));
        if let Some(u) = &self.target_uri {
            h.push_str(&format!("WARC-Target-URI: {u}\r\n"));
        }
        for (k, v) in &self.fields {
            h.push_str(&format!("{k}: {v}\r\n"));
        }
        h.push_str(&format!("Content-Type: {}\r\n", self.content_type));
        h.push_str(&format!("WARC-Block-Digest: {}\r\n", self.block_digest()));
        if let Some(p) = self.payload_digest() {
            h.push_str(&format!("WARC-Payload-Digest: {p}\r\n"));
        }
        h.push_str(&format!("Content-Length: {}\r\n\r\n", self.block.len()));
        let mut out = h.into_bytes();
        out.extend_from_slice(&self.block);
        out.extend_from_slice(b"\r\n\r\n");
        out
    }
}

/// WARC 1.1 §6.7.2: a revisit whose server said the resource was not modified.
pub const PROFILE_NOT_MODIFIED: &str =
    "http://netpreserve.org/warc/1.1/revisit/server-not-modified";

/// A `revisit` record's block: the 304's status line and headers as
/// received (framing headers left out: there is no payload).
fn not_modified_block(headers_json: &str, http_version: &str) -> Vec<u8> {
    let headers: Vec<(String, String)> = serde_json::from_str(headers_json).unwrap_or_default();
    let mut b = format!("{http_version} 304 Not Modified\r\n");
    for (k, v) in &headers {
        if FRAMING_HEADERS.contains(&k.to_ascii_lowercase().as_str()) {
            continue;
        }
        b.push_str(&format!("{}: {}\r\n", one_line(k), one_line(v)));
    }
    b.push_str("\r\n");
    b.into_bytes()
}

/// Response headers that describe a framing or encoding the kept body no
/// longer has: the client removed chunking and content-encoding.
const FRAMING_HEADERS: [&str; 3] = ["content-length", "content-encoding", "transfer-encoding"];

/// A `response` record's block: status line, the headers as received (less
/// the framing ones), `Content-Length` of the kept body, blank line, body.
/// Returns the block and where the body starts.
fn http_response(p: &PageCapture, raw: &RawBody) -> (Vec<u8>, usize) {
    let status = p.status.and_then(|s| u16::try_from(s).ok()).unwrap_or(200);
    let reason = reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|c| c.canonical_reason())
        .unwrap_or("");
    let mut h = format!("{} {status} {reason}\r\n", one_line(&raw.http_version));
    let headers: Vec<(String, String)> =
        serde_json::from_str(&p.response_headers).unwrap_or_default();
    for (k, v) in headers {
        let name: String = k
            .chars()
            .filter(|c| c.is_ascii_graphic() && *c != ':')
            .collect();
        if name.is_empty() || FRAMING_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            continue;
        }
        h.push_str(&format!("{name}: {}\r\n", one_line(&v)));
    }
    h.push_str(&format!("Content-Length: {}\r\n\r\n", raw.body.len()));
    let mut block = h.into_bytes();
    let at = block.len();
    block.extend_from_slice(&raw.body);
    (block, at)
}

/// Header values may not contain line breaks.
fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

/// Builds the records of the export (warcinfo first).
async fn build(store: &Store, ctx: &ExportCtx<'_>) -> Result<Vec<Record>, AuditError> {
    let head = store
        .audit_events(&EventFilter::default())
        .await?
        .last()
        .map(|e| e.sha256.clone())
        .unwrap_or_default();
    let mut n = 0u64;
    let mut next_id = |what: &str| {
        n += 1;
        record_id(format!("byline-export\0{}\0{head}\0{n}\0{what}", ctx.version).as_bytes())
    };
    let runs = store.crawl_runs().await?;
    let ua = runs
        .last()
        .map(|r| r.user_agent.clone())
        .unwrap_or_default();
    let mut info = String::new();
    for (k, v) in [
        ("software", format!("byline/{}", env!("CARGO_PKG_VERSION"))),
        ("format", "WARC File Format 1.1".to_string()),
        (
            "conformsTo",
            "https://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.1/"
                .into(),
        ),
        ("isPartOf", format!("byline-export-{}", ctx.version)),
        ("robots", "obey (RFC 9309), every robots.txt version captured".into()),
        ("http-header-user-agent", ua),
        (
            "description",
            "robots.txt captures as fetched; pages as response records of the body as fetched when it was kept (content-encoding decoded), with a conversion record of the extracted main text, else a resource record of that text; verdicts and licences in metadata records".into(),
        ),
        ("byline-records-file", ctx.records_file.to_string()),
        (
            "byline-records-sha256",
            hex::encode(Sha256::digest(ctx.records_body)),
        ),
        ("byline-merkle-root", ctx.merkle_root.to_string()),
        ("byline-filters", serde_json::to_string(ctx.filters)?),
    ] {
        info.push_str(&format!("{k}: {}\r\n", one_line(&v)));
    }
    let mut recs = vec![Record {
        kind: "warcinfo",
        id: next_id("warcinfo"),
        date: warc_date(ctx.now),
        target_uri: None,
        content_type: "application/warc-fields",
        fields: vec![("WARC-Filename", WARC_FILE.to_string())],
        block: info.into_bytes(),
        payload_offset: None,
    }];
    // robots.txt: every stored version of every included origin.
    let origins: BTreeSet<&str> = ctx.recs.iter().map(|r| r.origin.as_str()).collect();
    for o in origins {
        for cap in store.robots_captures(o).await? {
            let c = &cap.version;
            let resource_id = c.body.as_ref().map(|body| {
                let id = next_id(&c.url);
                recs.push(Record {
                    kind: "resource",
                    id: id.clone(),
                    date: warc_date(c.fetched_at),
                    target_uri: Some(c.url.clone()),
                    content_type: "text/plain",
                    fields: vec![],
                    block: body.clone(),
                    payload_offset: None,
                });
                id
            });
            let meta = serde_json::json!({
                "kind": "robots.txt",
                "robots_version_id": cap.id,
                "crawl_run": c.run_id,
                "origin": c.origin,
                "url": c.url,
                "final_url": c.final_url,
                "redirect_chain": serde_json::from_str::<serde_json::Value>(&c.redirect_chain_json).unwrap_or_default(),
                "fetched_at": iso(c.fetched_at),
                "status": c.status,
                "error": c.error,
                "outcome": c.outcome,
                "reason": c.reason,
                "body_sha256": c.body_sha256,
                "body_stored": c.body.is_some(),
                "truncated": c.truncated,
                "warnings": serde_json::from_str::<serde_json::Value>(&c.warnings_json).unwrap_or_default(),
                "crawl_delay_secs": c.crawl_delay_secs,
                "expires_at": iso(c.expires_at),
                "cached_from": c.cached_from,
            });
            let mut fields = vec![];
            if let Some(id) = resource_id {
                fields.push(("WARC-Refers-To", id));
            }
            recs.push(Record {
                kind: "metadata",
                id: next_id(&c.url),
                date: warc_date(c.fetched_at),
                target_uri: Some(c.url.clone()),
                content_type: "application/json",
                fields,
                block: serde_json::to_vec_pretty(&meta)?,
                payload_offset: None,
            });
        }
    }
    // Pages, in the order the records first name them.
    let mut by_page: BTreeMap<i64, Vec<&Rec>> = BTreeMap::new();
    let mut order = Vec::new();
    for r in ctx.recs {
        if let Some(p) = r.page_id {
            let e = by_page.entry(p).or_default();
            if e.is_empty() {
                order.push(p);
            }
            e.push(r);
        }
    }
    for pid in order {
        let Some(p) = store.page_capture(pid).await? else {
            continue;
        };
        let rs = &by_page[&pid];
        let uri = p.final_url.clone().unwrap_or_else(|| p.url.clone());
        let with_content = rs.iter().any(|r| usable(r)) && !p.text.is_empty();
        // The body as fetched, when it was kept (and not forgotten).
        let raw = if with_content {
            store.raw_body(p.fetch_id).await?
        } else {
            None
        };
        let resource_id = match (&raw, with_content) {
            (Some(raw), _) => {
                let (block, at) = http_response(&p, raw);
                let id = next_id(&uri);
                let mut fields = vec![];
                if p.truncated {
                    fields.push(("WARC-Truncated", "length".to_string()));
                }
                recs.push(Record {
                    kind: "response",
                    id: id.clone(),
                    date: warc_date(p.fetched_at),
                    target_uri: Some(uri.clone()),
                    content_type: "application/http; msgtype=response",
                    fields,
                    block,
                    payload_offset: Some(at),
                });
                // The extracted text, derived from that response.
                recs.push(Record {
                    kind: "conversion",
                    id: next_id(&uri),
                    date: warc_date(p.fetched_at),
                    target_uri: Some(uri.clone()),
                    content_type: "text/plain; charset=utf-8",
                    fields: vec![("WARC-Refers-To", id.clone())],
                    block: p.text.clone().into_bytes(),
                    payload_offset: None,
                });
                Some(id)
            }
            (None, true) => {
                let id = next_id(&uri);
                recs.push(Record {
                    kind: "resource",
                    id: id.clone(),
                    date: warc_date(p.fetched_at),
                    target_uri: Some(uri.clone()),
                    content_type: "text/plain; charset=utf-8",
                    fields: vec![],
                    block: p.text.clone().into_bytes(),
                    payload_offset: None,
                });
                Some(id)
            }
            (None, false) => None,
        };
        // Revisits that found the capture unchanged (304), after it.
        if let Some(refers) = &resource_id {
            let version = raw.as_ref().map_or("HTTP/1.1", |r| r.http_version.as_str());
            for nm in store.not_modified_since(p.page_id, p.fetch_id).await? {
                recs.push(Record {
                    kind: "revisit",
                    id: next_id(&uri),
                    date: warc_date(nm.fetched_at),
                    target_uri: Some(uri.clone()),
                    content_type: "application/http; msgtype=response",
                    fields: vec![
                        ("WARC-Profile", PROFILE_NOT_MODIFIED.to_string()),
                        ("WARC-Refers-To", refers.clone()),
                        ("WARC-Refers-To-Target-URI", uri.clone()),
                        ("WARC-Refers-To-Date", warc_date(p.fetched_at)),
                    ],
                    block: not_modified_block(&nm.response_headers, version),
                    payload_offset: None,
                });
            }
        }
        let headers: serde_json::Value =
            serde_json::from_str(&p.response_headers).unwrap_or_default();
        let meta = serde_json::json!({
            "kind": "page",
            "page_id": p.page_id,
            "url": rs[0].url,
            "content": if raw.is_some() {
                "response record: the HTTP response as fetched (content-encoding decoded, Content-Length set to the body kept), and a conversion record of the extracted main text"
            } else if with_content {
                "resource record: the extracted main text as stored (no raw capture of the response body was kept)"
            } else if p.text.is_empty() {
                "none: the text was erased (forgotten)"
            } else {
                "none: no included verdict allows use of this page"
            },
            "fetch": {
                "id": p.fetch_id,
                "requested_url": p.requested_url,
                "final_url": p.final_url,
                "redirect_chain": serde_json::from_str::<serde_json::Value>(&p.redirect_chain).unwrap_or_default(),
                "fetched_at": iso(p.fetched_at),
                "status": p.status,
                "user_agent": p.user_agent,
                "response_headers": headers,
                "content_type": p.content_type,
                "body_sha256": p.body_sha256,
                "body_bytes": p.body_bytes,
                "truncated": p.truncated,
                "detected_charset": p.detected_charset,
                "raw_capture": raw.as_ref().map(|r| serde_json::json!({
                    "sha256": r.sha256, "bytes": r.body.len(), "http_version": r.http_version,
                })),
            },
            "page": {
                "title": p.title,
                "author": p.author,
                "language": p.language,
                "published_at": p.published_at,
                "canonical_url": p.canonical_url,
                "text_sha256": p.text_sha256,
                "extractor_version": p.extractor_version,
            },
            "licence": rs[0].licence,
            "licence_conditions": rs[0].licence_conditions,
            "verdicts": rs.iter().map(|r| r.to_json()).collect::<Vec<_>>(),
        });
        let mut fields = vec![];
        if let Some(id) = resource_id {
            fields.push(("WARC-Refers-To", id));
        }
        recs.push(Record {
            kind: "metadata",
            id: next_id(&uri),
            date: warc_date(p.fetched_at),
            target_uri: Some(uri),
            content_type: "application/json",
            fields,
            block: serde_json::to_vec_pretty(&meta)?,
            payload_offset: None,
        });
    }
    Ok(recs)
}

/// Writes `corpus.warc.gz` and `warc-index.jsonl`; returns their manifest
/// entries and the manifest's `warc` section.
pub(super) async fn write(store: &Store, ctx: &ExportCtx<'_>) -> Result<Extra, AuditError> {
    let recs = build(store, ctx).await?;
    let mut file = Vec::new();
    let mut index = String::new();
    let mut by_type: BTreeMap<&str, i64> = BTreeMap::new();
    for r in &recs {
        let offset = file.len();
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        let gz_err = |e| AuditError::Other(format!("compressing a WARC record: {e}"));
        gz.write_all(&r.to_bytes()).map_err(gz_err)?;
        file.extend_from_slice(&gz.finish().map_err(gz_err)?);
        *by_type.entry(r.kind).or_insert(0) += 1;
        let line = serde_json::json!({
            "offset": offset,
            "length": file.len() - offset,
            "type": r.kind,
            "record_id": r.id,
            "date": r.date,
            "uri": r.target_uri,
            "content_type": r.content_type,
            "content_length": r.block.len(),
            "block_digest": r.block_digest(),
            "payload_digest": r.payload_digest(),
            "refers_to": r.fields.iter().find(|(k, _)| *k == "WARC-Refers-To").map(|(_, v)| v),
        });
        index.push_str(&line.to_string());
        index.push('\n');
    }
    let robots = recs
        .iter()
        .filter(|r| {
            r.target_uri
                .as_deref()
                .is_some_and(|u| u.ends_with("/robots.txt"))
                && r.kind == "metadata"
        })
        .count();
    let pages_with_content = recs
        .iter()
        .filter(|r| {
            matches!(r.kind, "resource" | "response")
                && !r
                    .target_uri
                    .as_deref()
                    .is_some_and(|u| u.ends_with("/robots.txt"))
        })
        .count();
    let files = vec![
        write_file(ctx.out, WARC_FILE, &file)?,
        write_file(ctx.out, INDEX_FILE, index.as_bytes())?,
    ];
    let section = serde_json::json!({
        "file": WARC_FILE,
        "index": INDEX_FILE,
        "version": "WARC/1.1",
        "compression": "gzip, one member per record",
        "digests": "sha256:<hex> of the record block (WARC-Block-Digest); WARC-Payload-Digest of the HTTP body on response records, of the block on resource and conversion records",
        "records": recs.len(),
        "by_type": by_type,
        "robots_captures": robots,
        "pages_with_content": pages_with_content,
        "revisits": "a revisit that found a page's capture unchanged (HTTP 304 to a conditional GET from `crawl --refresh` or `audit recheck --bodies`) is a revisit record (WARC-Profile server-not-modified; block: the 304's status line and headers, no payload) after the page's response or resource record, which its WARC-Refers-To, WARC-Refers-To-Target-URI and WARC-Refers-To-Date name",
        "page_content": "a page whose body was kept at crawl time (the default; `byline crawl --no-keep-raw` turns it off) is a response record (status line, response headers as received less Content-Encoding/Transfer-Encoding, Content-Length of the body kept, the body as fetched with content-encoding decoded; WARC-Truncated: length when cut at the crawl's max body size) followed by a conversion record of the extracted main text; a page without a kept body (older corpora, --no-keep-raw, forgotten) is a resource record of the extracted main text; each page's metadata record has the fetch (status, response headers as received, sha256 and size of the original body), its licence and verdicts, and refers to the response or resource record",
    });
    Ok(Extra {
        files,
        sections: vec![("warc".into(), section)],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_ids_are_version_8_uuids_and_differ() {
        let a = record_id(b"a");
        let b = record_id(b"b");
        assert_ne!(a, b);
        assert_eq!(a.len(), "<urn:uuid:>".len() + 36);
        let u = &a[10..46];
        assert_eq!(&u[14..15], "8");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"), "{u}");
    }

    fn capture(headers: &str, status: i64) -> PageCapture {
        PageCapture {
            page_id: 1,
            url: "http://a.test/p".into(),
            title: None,
            author: None,
            language: None,
            published_at: None,
            canonical_url: None,
            text: "t".into(),
            text_sha256: String::new(),
            extractor_version: String::new(),
            fetch_id: 1,
            requested_url: "http://a.test/p".into(),
            final_url: None,
            redirect_chain: "[]".into(),
            fetched_at: 0,
            status: Some(status),
            user_agent: String::new(),
            response_headers: headers.into(),
            content_type: None,
            body_sha256: None,
            body_bytes: None,
            truncated: false,
            detected_charset: None,
        }
    }

    #[test]
    fn a_response_block_has_the_kept_body_and_no_stale_framing() {
        let body = b"<p>decoded</p>".to_vec();
        let raw = RawBody {
            sha256: String::new(),
            http_version: "HTTP/1.1".into(),
            body: body.clone(),
        };
        let p = capture(
            r#"[["content-type","text/html"],["Content-Encoding","gzip"],["content-length","9"],
                ["transfer-encoding","chunked"],["x-evil\r\nInjected","a\r\nb: c"],["set-cookie","s=1"]]"#,
            404,
        );
        let (block, at) = http_response(&p, &raw);
        assert_eq!(&block[at..], &body[..]);
        let head = std::str::from_utf8(&block[..at]).unwrap();
        assert_eq!(
            head,
            "HTTP/1.1 404 Not Found\r\ncontent-type: text/html\r\nx-evilInjected: a  b: c\r\n\
             set-cookie: s=1\r\nContent-Length: 14\r\n\r\n"
        );
        let r = Record {
            kind: "response",
            id: record_id(b"r"),
            date: warc_date(0),
            target_uri: Some(p.url.clone()),
            content_type: "application/http; msgtype=response",
            fields: vec![],
            block,
            payload_offset: Some(at),
        };
        assert_eq!(
            r.payload_digest().unwrap(),
            format!("sha256:{}", hex::encode(Sha256::digest(&body)))
        );
        assert_ne!(r.payload_digest(), Some(r.block_digest()));
        // Unreadable stored headers: the status line and length alone.
        let (block, _) = http_response(&capture("not json", 999), &raw);
        assert!(block.starts_with(b"HTTP/1.1 999 \r\nContent-Length: 14\r\n\r\n"));
    }

    #[test]
    fn a_record_has_length_and_digest_of_its_block() {
        let r = Record {
            kind: "resource",
            id: record_id(b"x"),
            date: warc_date(0),
            target_uri: Some("http://a.test/robots.txt".into()),
            content_type: "text/plain",
            fields: vec![],
            block: b"User-agent: *\nDisallow: /p\n".to_vec(),
            payload_offset: None,
        };
        let s = String::from_utf8(r.to_bytes()).unwrap();
        assert!(s.starts_with("WARC/1.1\r\nWARC-Type: resource\r\n"));
        assert!(s.contains("WARC-Date: 1970-01-01T00:00:00Z\r\n"));
        assert!(s.contains("Content-Length: 27\r\n\r\nUser-agent"));
        assert!(s.contains(&format!(
            "WARC-Payload-Digest: sha256:{}",
            hex::encode(Sha256::digest(b"User-agent: *\nDisallow: /p\n"))
        )));
        assert!(s.ends_with("Disallow: /p\n\r\n\r\n"));
    }
}
