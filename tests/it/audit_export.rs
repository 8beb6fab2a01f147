//! `byline audit export --format warc|croissant` over a real crawl of the
//! consent fixture world: the WARC file is parsed here record by record and
//! read back by warcio (tools/check_export.py), the Croissant file is checked
//! here as JSON and expanded as JSON-LD by PyLD there.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::support::audit_world::crawled;
use crate::support::crawl::{probe, scalar_i64};
use crate::support::{byline_bin, stdout_json};

const NAMES: [&str; 5] = ["open", "aiblock", "partial", "private", "tdm"];

pub(crate) fn export(db: &Path, out: &Path, extra: &[&str]) -> serde_json::Value {
    let o = Command::new(byline_bin())
        .arg("--db")
        .arg(db)
        .args(["audit", "export", "--out", out.to_str().unwrap(), "--json"])
        .args(extra)
        .output()
        .unwrap();
    stdout_json(&format!("export {extra:?}"), &o)
}

pub(crate) fn manifest(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap()
}

/// The `(url, purpose)` pairs a manifest lists as revoked since the
/// previous export.
pub(crate) fn revoked_since(m: &serde_json::Value) -> Vec<(String, String)> {
    m["removed_since_version"]["removed"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["why"] == "revoked")
        .map(|x| {
            (
                x["url"].as_str().unwrap().to_string(),
                x["purpose"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The Python with the pinned warcio and PyLD that `.ci/run` installs
/// (same convention as the OpenAI-compatibility test).
pub(crate) fn python() -> PathBuf {
    let p = std::env::var_os("BYLINE_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ci-py/bin/python"));
    assert!(
        p.exists(),
        "{} not found: run .ci/run once (it creates target/ci-py with warcio and PyLD) or set BYLINE_TEST_PYTHON",
        p.display()
    );
    p
}

/// Runs tools/check_export.py on an export directory: (exit ok, its JSON).
pub(crate) fn check_export(dir: &Path) -> (bool, serde_json::Value) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/check_export.py");
    let o = Command::new(python())
        .arg(script)
        .arg(dir)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let v = serde_json::from_str(&out).unwrap_or_else(|e| {
        panic!(
            "check_export.py printed no JSON ({e}):\n{out}\n{}",
            String::from_utf8_lossy(&o.stderr)
        )
    });
    (o.status.success(), v)
}

/// One parsed WARC record.
#[derive(Debug)]
pub(crate) struct Rec {
    pub(crate) version: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) block: Vec<u8>,
}

impl Rec {
    pub(crate) fn get(&self, k: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.as_str())
    }
}

/// Parses an uncompressed WARC stream (asserting its framing).
fn parse_warc(mut b: &[u8]) -> Vec<Rec> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let end = b
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("header block ends with CRLF CRLF");
        let head = std::str::from_utf8(&b[..end]).expect("headers are UTF-8");
        let mut lines = head.split("\r\n");
        let version = lines.next().unwrap().to_string();
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (k, v) = l
                    .split_once(": ")
                    .unwrap_or_else(|| panic!("bad header line {l:?}"));
                (k.to_string(), v.to_string())
            })
            .collect();
        let len: usize = headers
            .iter()
            .find(|(k, _)| k == "Content-Length")
            .expect("Content-Length")
            .1
            .parse()
            .unwrap();
        let start = end + 4;
        let block = b[start..start + len].to_vec();
        assert_eq!(
            &b[start + len..start + len + 4],
            b"\r\n\r\n",
            "record ends with CRLF CRLF"
        );
        b = &b[start + len + 4..];
        out.push(Rec {
            version,
            headers,
            block,
        });
    }
    out
}

pub(crate) fn read_warc(path: &Path) -> Vec<Rec> {
    let gz = std::fs::read(path).unwrap();
    let mut raw = Vec::new();
    flate2::read::MultiGzDecoder::new(&gz[..])
        .read_to_end(&mut raw)
        .unwrap();
    parse_warc(&raw)
}

fn warc_date(t: i64) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    time::OffsetDateTime::from_unix_timestamp(t)
        .unwrap()
        .format(&f)
        .unwrap()
}

pub(crate) fn is_robots(r: &Rec) -> bool {
    r.get("WARC-Target-URI")
        .is_some_and(|u| u.ends_with("/robots.txt"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warc_export_has_every_robots_capture_and_reads_back_with_warcio() {
    let w = crawled(&NAMES).await;
    let db = w.corpus.path.clone();
    // A second robots.txt version for one origin (as a re-check would
    // store): every stored version must be its own capture.
    let open = w.origin("open").url("");
    let open = open.trim_end_matches('/').to_string();
    let body2 = b"User-agent: *\nDisallow: /e1.html\n".to_vec();
    w.corpus
        .store
        .robots_insert(&byline::store::crawl::RobotsVersion {
            run_id: 1,
            origin: open.clone(),
            url: format!("{open}/robots.txt"),
            final_url: Some(format!("{open}/robots.txt")),
            redirect_chain_json: "[]".into(),
            fetched_at: 1_900_000_000,
            status: Some(200),
            outcome: "rules".into(),
            body_sha256: Some(hex::encode(Sha256::digest(&body2))),
            body: Some(body2.clone()),
            warnings_json: "[]".into(),
            expires_at: 1_900_086_400,
            ..Default::default()
        })
        .await
        .unwrap();

    let pool = probe(&db).await;
    let pages = scalar_i64(&pool, "SELECT count(*) FROM pages").await;
    let frontier = scalar_i64(&pool, "SELECT count(*) FROM frontier").await;
    let robots: Vec<(String, i64, Option<Vec<u8>>)> =
        sqlx::query_as("SELECT url, fetched_at, body FROM robots_versions ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert!(
        robots.len() > NAMES.len(),
        "{} robots versions",
        robots.len()
    );

    let out = w.corpus.dir.path().join("warc1");
    let e = export(&db, &out, &["--format", "warc"]);
    assert_eq!(e["records"], 3 * frontier);
    let m = manifest(&out);
    assert_eq!(m["format"], "warc");
    let names: Vec<&str> = m["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["verdicts.jsonl", "corpus.warc.gz", "warc-index.jsonl"]
    );
    for f in m["files"].as_array().unwrap() {
        let b = std::fs::read(out.join(f["name"].as_str().unwrap())).unwrap();
        assert_eq!(f["sha256"], hex::encode(Sha256::digest(&b)));
        assert_eq!(f["bytes"], b.len());
    }

    let recs = read_warc(&out.join("corpus.warc.gz"));
    assert_eq!(m["warc"]["records"], recs.len());
    assert_eq!(recs[0].get("WARC-Type"), Some("warcinfo"));
    let info = String::from_utf8(recs[0].block.clone()).unwrap();
    assert!(info.contains("software: byline/"), "{info}");
    assert!(info.contains(&format!(
        "byline-merkle-root: {}",
        m["merkle_root"].as_str().unwrap()
    )));
    let mut ids = HashSet::new();
    let mut by_id: HashMap<String, usize> = HashMap::new();
    let mut types: BTreeMap<String, i64> = BTreeMap::new();
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r.version, "WARC/1.1");
        let id = r.get("WARC-Record-ID").unwrap();
        assert!(
            id.starts_with("<urn:uuid:") && id.ends_with('>') && id.len() == 47,
            "{id}"
        );
        assert!(ids.insert(id.to_string()), "duplicate record id {id}");
        by_id.insert(id.to_string(), i);
        *types
            .entry(r.get("WARC-Type").unwrap().to_string())
            .or_insert(0) += 1;
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&r.block)));
        assert_eq!(r.get("WARC-Block-Digest"), Some(digest.as_str()));
        if r.get("WARC-Type") == Some("resource") {
            assert_eq!(r.get("WARC-Payload-Digest"), Some(digest.as_str()));
        }
        assert_eq!(r.get("WARC-Date").unwrap().len(), 20);
        if let Some(to) = r.get("WARC-Refers-To") {
            assert!(
                by_id.get(to).is_some_and(|&j| j < i),
                "refers to an earlier record"
            );
        }
    }
    assert_eq!(serde_json::to_value(&types).unwrap(), m["warc"]["by_type"]);

    // Every stored robots.txt version is a capture, with its own fetch time
    // and (when a body was stored) its bytes as fetched.
    let robots_meta: Vec<&Rec> = recs
        .iter()
        .filter(|r| is_robots(r) && r.get("WARC-Type") == Some("metadata"))
        .collect();
    assert_eq!(robots_meta.len(), robots.len());
    assert_eq!(m["warc"]["robots_captures"], robots.len());
    for (url, at, body) in &robots {
        let found = recs.iter().any(|r| {
            r.get("WARC-Target-URI") == Some(url)
                && r.get("WARC-Date") == Some(warc_date(*at).as_str())
                && match body {
                    Some(b) => r.get("WARC-Type") == Some("resource") && &r.block == b,
                    None => r.get("WARC-Type") == Some("metadata"),
                }
        });
        assert!(found, "no capture of {url} at {}", warc_date(*at));
    }
    let open_robots = format!("{open}/robots.txt");
    let open_caps = recs
        .iter()
        .filter(|r| {
            r.get("WARC-Target-URI") == Some(&open_robots) && r.get("WARC-Type") == Some("resource")
        })
        .count();
    assert_eq!(open_caps, 2, "both versions of {open_robots}");

    // One metadata record per page; content only where a verdict allows use.
    let page_meta: Vec<serde_json::Value> = recs
        .iter()
        .filter(|r| !is_robots(r) && r.get("WARC-Type") == Some("metadata"))
        .map(|r| serde_json::from_slice(&r.block).unwrap())
        .collect();
    assert_eq!(page_meta.len() as i64, pages);
    let mut with_content = 0;
    let mut without = 0;
    for r in recs
        .iter()
        .filter(|r| !is_robots(r) && r.get("WARC-Type") == Some("metadata"))
    {
        let v: serde_json::Value = serde_json::from_slice(&r.block).unwrap();
        let usable = v["verdicts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["decision"] == "allowed" || x["decision"] == "allowed_with_conditions");
        assert_eq!(v["verdicts"].as_array().unwrap().len(), 3);
        assert!(v["fetch"]["body_sha256"].is_string());
        assert!(v["fetch"]["response_headers"].is_array());
        match r.get("WARC-Refers-To") {
            Some(to) => {
                with_content += 1;
                assert!(
                    usable,
                    "content of {} exported without an allowing verdict",
                    v["url"]
                );
                // The body as fetched (a raw capture, kept by default),
                // with the extracted text in a conversion record.
                let res = &recs[by_id[to]];
                assert_eq!(res.get("WARC-Type"), Some("response"));
                assert_eq!(
                    res.get("Content-Type"),
                    Some("application/http; msgtype=response")
                );
                let conv = recs
                    .iter()
                    .find(|c| {
                        c.get("WARC-Type") == Some("conversion")
                            && c.get("WARC-Refers-To") == Some(to)
                    })
                    .expect("a conversion record of the text");
                assert_eq!(conv.get("Content-Type"), Some("text/plain; charset=utf-8"));
                assert_eq!(
                    hex::encode(Sha256::digest(&conv.block)),
                    v["page"]["text_sha256"].as_str().unwrap()
                );
            }
            None => {
                without += 1;
                assert!(!usable, "{} is usable but has no content record", v["url"]);
            }
        }
    }
    assert!(
        with_content > 0 && without > 0,
        "{with_content} with content, {without} without"
    );

    // warcio (someone else's reader) agrees, digests included.
    let (ok, seen) = check_export(&out);
    assert!(ok, "{seen}");
    assert_eq!(seen["warc"]["records"], recs.len());
    assert!(seen["checks"].as_i64().unwrap() > 10 * recs.len() as i64);

    // A filtered export holds only what the filter keeps.
    let out2 = w.corpus.dir.path().join("warc2");
    export(
        &db,
        &out2,
        &[
            "--format",
            "warc",
            "--purpose",
            "train",
            "--decision",
            "allowed",
        ],
    );
    let recs2 = read_warc(&out2.join("corpus.warc.gz"));
    let metas: Vec<serde_json::Value> = recs2
        .iter()
        .filter(|r| !is_robots(r) && r.get("WARC-Type") == Some("metadata"))
        .map(|r| serde_json::from_slice(&r.block).unwrap())
        .collect();
    assert!(!metas.is_empty() && (metas.len() as i64) < pages);
    for v in &metas {
        for x in v["verdicts"].as_array().unwrap() {
            assert_eq!(
                (x["purpose"].as_str(), x["decision"].as_str()),
                (Some("train"), Some("allowed"))
            );
        }
    }
    let (ok, seen) = check_export(&out2);
    assert!(ok, "{seen}");

    // The reader notices a changed byte: flip one in a robots.txt capture.
    let gz = std::fs::read(out.join("corpus.warc.gz")).unwrap();
    let mut raw = Vec::new();
    flate2::read::MultiGzDecoder::new(&gz[..])
        .read_to_end(&mut raw)
        .unwrap();
    let at = raw
        .windows(10)
        .position(|w| w == b"User-agent")
        .expect("a robots body");
    raw[at] = b'u';
    // Written uncompressed (warcio reads plain WARC too): only the digest
    // can tell.
    std::fs::write(out.join("corpus.warc.gz"), &raw).unwrap();
    let (ok, seen) = check_export(&out);
    assert!(!ok, "tampered WARC passed: {seen}");
    let problems = seen["problems"].to_string();
    assert!(problems.contains("digest"), "{problems}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn croissant_export_is_json_ld_with_required_fields_and_provenance() {
    let w = crawled(&["open", "private"]).await;
    let db = w.corpus.path.clone();
    let pool = probe(&db).await;
    let runs = scalar_i64(&pool, "SELECT count(*) FROM crawl_runs").await;
    let out = w.corpus.dir.path().join("cr1");
    let e = export(&db, &out, &["--format", "croissant", "--purpose", "train"]);
    let m = manifest(&out);
    assert_eq!(m["format"], "croissant");
    assert_eq!(m["croissant"]["file"], "croissant.json");
    let records = std::fs::read(out.join("verdicts.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = records
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(e["records"], lines.len());
    assert!(
        lines
            .iter()
            .all(|l| l["purpose"] == "train" && l.get("licence").is_some())
    );
    assert!(
        lines.iter().any(|l| l["licence"].is_string()),
        "some page has an SPDX licence"
    );
    let c: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("croissant.json")).unwrap())
            .unwrap();
    assert_eq!(c["@type"], "sc:Dataset");
    assert_eq!(c["conformsTo"], "http://mlcommons.org/croissant/1.1");
    for k in [
        "name",
        "description",
        "license",
        "url",
        "creator",
        "datePublished",
        "citeAs",
    ] {
        assert!(!c[k].is_null(), "{k} missing");
    }
    let d = &c["distribution"][0];
    assert_eq!(d["@type"], "cr:FileObject");
    assert_eq!(d["contentUrl"], "verdicts.jsonl");
    assert_eq!(d["sha256"], hex::encode(Sha256::digest(&records)));
    let fields = c["recordSet"][0]["field"].as_array().unwrap();
    let keys: HashSet<&str> = fields.iter().map(|f| f["name"].as_str().unwrap()).collect();
    for k in lines[0].as_object().unwrap().keys() {
        assert!(keys.contains(k.as_str()), "record key {k} is not a field");
    }
    assert!(
        fields
            .iter()
            .all(|f| f["dataType"].is_string()
                && f["source"]["fileObject"]["@id"] == "verdicts.jsonl")
    );
    let acts = c["prov:wasGeneratedBy"].as_array().unwrap();
    assert_eq!(acts.len() as i64, runs);
    assert!(acts[0]["prov:startedAtTime"].is_string() && acts[0]["prov:endedAtTime"].is_string());
    assert!(
        acts[0]["prov:used"]
            .to_string()
            .contains(lines[0]["policy_sha256"].as_str().unwrap_or("no policy"))
    );
    let from: Vec<&str> = c["prov:wasDerivedFrom"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["@id"].as_str().unwrap())
        .collect();
    assert_eq!(from.len(), 2);
    assert!(from.contains(&w.origin("open").url("").trim_end_matches('/')));

    // PyLD expands it (no remote context) and the required fields hold.
    let (ok, seen) = check_export(&out);
    assert!(ok, "{seen}");
    assert_eq!(seen["croissant"]["fields"], fields.len());
    assert_eq!(seen["croissant"]["records"], lines.len());

    // A Croissant file missing a required property fails the check.
    let mut bad = c.clone();
    bad.as_object_mut().unwrap().remove("license");
    let text = serde_json::to_string_pretty(&bad).unwrap();
    std::fs::write(out.join("croissant.json"), &text).unwrap();
    let (ok, seen) = check_export(&out);
    assert!(!ok, "{seen}");
    assert!(seen["problems"].to_string().contains("license"), "{seen}");
}
