//! Raw captures: the crawler keeps each page's response body as fetched
//! (compressed, content-addressed), the WARC export writes it as a
//! `response` record (status line, response headers, body) that warcio —
//! a reader nobody here wrote — parses and checks, and `byline forget`
//! erases it.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::audit_export::{check_export, export, is_robots, manifest, python, read_warc};
use crate::support::audit_world::crawled;
use crate::support::byline_bin;
use crate::support::crawl::{probe, scalar_i64};

/// What warcio's ArchiveIterator reads from each `response` record.
const READ_RESPONSES: &str = r#"
import sys, json, hashlib
from warcio.archiveiterator import ArchiveIterator
out = []
with open(sys.argv[1], "rb") as f:
    for r in ArchiveIterator(f, check_digests=True):
        if r.rec_type != "response":
            continue
        body = r.content_stream().read()
        out.append({
            "uri": r.rec_headers.get_header("WARC-Target-URI"),
            "content_type": r.rec_headers.get_header("Content-Type"),
            "payload_digest": r.rec_headers.get_header("WARC-Payload-Digest"),
            "protocol": r.http_headers.protocol,
            "statusline": r.http_headers.statusline,
            "headers": [[k, v] for k, v in r.http_headers.headers],
            "body_sha256": hashlib.sha256(body).hexdigest(),
            "body_len": len(body),
            "digest_passed": r.digest_checker.passed,
            "digest_problems": list(r.digest_checker.problems),
        })
print(json.dumps(out))
"#;

fn warcio(args: &[&str]) -> (bool, String) {
    let o = Command::new(python())
        .args(["-m", "warcio.cli"])
        .args(args)
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
    )
}

fn responses(warc: &Path) -> Vec<serde_json::Value> {
    let o = Command::new(python())
        .args(["-c", READ_RESPONSES])
        .arg(warc)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice::<Vec<serde_json::Value>>(&o.stdout).unwrap()
}

/// The file a fixture origin served for `uri`.
fn served_file(dir: &Path, base: &str, uri: &str) -> std::path::PathBuf {
    let rel = uri.strip_prefix(base).unwrap().trim_start_matches('/');
    let rel = if rel.is_empty() { "index.html" } else { rel };
    dir.join(rel)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warc_export_writes_response_records_that_warcio_reads_as_served() {
    let w = crawled(&["open", "private"]).await;
    let db = w.corpus.path.clone();
    let pool = probe(&db).await;
    let pages = scalar_i64(&pool, "SELECT count(*) FROM pages").await;
    // Every page's body is kept, once per distinct body.
    let kept = scalar_i64(&pool, "SELECT count(*) FROM fetch_raw").await;
    assert_eq!(kept, pages);
    let distinct = scalar_i64(
        &pool,
        "SELECT count(DISTINCT f.body_sha256) FROM pages p JOIN fetches f ON f.id = p.fetch_id",
    )
    .await;
    assert_eq!(
        scalar_i64(&pool, "SELECT count(*) FROM raw_captures").await,
        distinct
    );

    let out = w.corpus.dir.path().join("warc");
    export(&db, &out, &["--format", "warc"]);
    let m = manifest(&out);
    let warc = out.join("corpus.warc.gz");

    // warcio's own checker and indexer accept the file.
    let (ok, text) = warcio(&["check", "-v", warc.to_str().unwrap()]);
    assert!(ok, "warcio check: {text}");
    assert!(text.contains("response"), "{text}");
    let (ok, text) = warcio(&[
        "index",
        "-f",
        "warc-type,warc-target-uri,http:status",
        warc.to_str().unwrap(),
    ]);
    assert!(ok, "warcio index: {text}");
    let indexed: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let resp_index: Vec<&serde_json::Value> = indexed
        .iter()
        .filter(|l| l["warc-type"] == "response")
        .collect();
    assert!(!resp_index.is_empty(), "no response records: {text}");
    assert!(resp_index.iter().all(|l| l["http:status"] == "200"));

    // Each response record is what the fixture server sent: status line,
    // headers and the file's bytes.
    let resp = responses(&warc);
    assert_eq!(resp.len(), resp_index.len());
    assert_eq!(m["warc"]["by_type"]["response"], resp.len());
    let mut by_uri = HashMap::new();
    for r in &resp {
        let uri = r["uri"].as_str().unwrap();
        let o = w.origins.iter().find(|o| uri.starts_with(&o.base)).unwrap();
        let file = served_file(&w.dir(&o.name), &o.base, uri);
        let sent = std::fs::read(&file).unwrap();
        assert_eq!(r["protocol"], "HTTP/1.1", "{r}");
        assert_eq!(r["statusline"], "200 OK", "{r}");
        assert_eq!(r["content_type"], "application/http; msgtype=response");
        assert_eq!(r["digest_passed"], true, "{r}");
        assert_eq!(r["body_len"], sent.len(), "{uri}");
        assert_eq!(
            r["body_sha256"],
            hex::encode(Sha256::digest(&sent)),
            "{uri}: body differs from {}",
            file.display()
        );
        assert_eq!(
            r["payload_digest"],
            format!("sha256:{}", hex::encode(Sha256::digest(&sent)))
        );
        let hs: Vec<(String, String)> = r["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h[0].as_str().unwrap().to_ascii_lowercase(),
                    h[1].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let get = |k: &str| hs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("content-length"), Some(sent.len().to_string().as_str()));
        assert!(get("content-type").is_some_and(|c| c.starts_with("text/html")));
        assert_eq!(get("content-encoding"), None);
        assert_eq!(get("transfer-encoding"), None);
        by_uri.insert(uri.to_string(), r);
    }
    // Pages a fixture sends with headers of its own keep them, as sent.
    let mut own_headers = 0;
    for (uri, r) in &by_uri {
        let o = w.origins.iter().find(|o| uri.starts_with(&o.base)).unwrap();
        let file = served_file(&w.dir(&o.name), &o.base, uri);
        let Ok(want) = std::fs::read_to_string(format!("{}.headers", file.display())) else {
            continue;
        };
        for line in want.lines() {
            let (k, v) = line.split_once(':').unwrap();
            assert!(
                r["headers"].as_array().unwrap().iter().any(|h| h[0]
                    .as_str()
                    .unwrap()
                    .eq_ignore_ascii_case(k.trim())
                    && h[1] == v.trim()),
                "{uri}: {line} missing in {r}"
            );
        }
        own_headers += 1;
    }
    assert!(
        own_headers > 0,
        "no response of a page with headers of its own"
    );

    // Each page with content: metadata refers to its response record, and a
    // conversion record holds the extracted text.
    let recs = read_warc(&warc);
    let mut ids = HashMap::new();
    for (i, r) in recs.iter().enumerate() {
        ids.insert(r.get("WARC-Record-ID").unwrap().to_string(), i);
    }
    let mut referred = 0;
    for r in recs
        .iter()
        .filter(|r| !is_robots(r) && r.get("WARC-Type") == Some("metadata"))
    {
        if let Some(to) = r.get("WARC-Refers-To") {
            referred += 1;
            assert_eq!(recs[ids[to]].get("WARC-Type"), Some("response"));
        }
    }
    assert_eq!(referred, resp.len());
    let conv = recs
        .iter()
        .filter(|r| r.get("WARC-Type") == Some("conversion"))
        .count();
    assert_eq!(conv, resp.len());

    // The export's own reader check (digests, index, manifest) passes too.
    let (ok, seen) = check_export(&out);
    assert!(ok, "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forget_erases_the_raw_capture_and_the_warc_falls_back() {
    let w = crawled(&["open"]).await;
    let db = w.corpus.path.clone();
    let e2 = w.origin("open").url("/e2.html");
    let sent = std::fs::read(w.dir("open").join("e2.html")).unwrap();
    let sha = hex::encode(Sha256::digest(&sent));
    let pool = probe(&db).await;
    let stored = |pool: sqlx::SqlitePool, sha: String| async move {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM raw_captures WHERE sha256 = ?")
            .bind(sha)
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    assert_eq!(stored(pool.clone(), sha.clone()).await, 1);
    let before = scalar_i64(&pool, "SELECT count(*) FROM raw_captures").await;
    let o = Command::new(byline_bin())
        .arg("--db")
        .arg(&db)
        .args(["forget", &e2, "--reason", "owner asked"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(stored(pool.clone(), sha.clone()).await, 0);
    assert_eq!(
        scalar_i64(&pool, "SELECT count(*) FROM raw_captures").await,
        before - 1,
        "only the forgotten page's capture is erased"
    );
    // Erasure is logged, not tampering.
    let v = Command::new(byline_bin())
        .arg("--db")
        .arg(&db)
        .args(["audit", "verify", "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&v.stdout).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    // The export has no response record for it, and still reads back.
    let out = w.corpus.dir.path().join("warc");
    export(&db, &out, &["--format", "warc"]);
    let recs = read_warc(&out.join("corpus.warc.gz"));
    assert!(
        !recs.iter().any(
            |r| r.get("WARC-Target-URI") == Some(&e2) && r.get("WARC-Type") != Some("metadata")
        )
    );
    assert!(recs.iter().any(|r| r.get("WARC-Type") == Some("response")));
    let (ok, seen) = check_export(&out);
    assert!(ok, "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_keep_raw_stores_no_bodies_and_the_warc_keeps_text_records() {
    let w = crate::support::audit_world::crawled_with(&["open"], |c| c.keep_raw = false).await;
    let db = w.corpus.path.clone();
    let pool = probe(&db).await;
    assert!(scalar_i64(&pool, "SELECT count(*) FROM pages").await > 0);
    assert_eq!(
        scalar_i64(&pool, "SELECT count(*) FROM raw_captures").await,
        0
    );
    assert_eq!(scalar_i64(&pool, "SELECT count(*) FROM fetch_raw").await, 0);
    let out = w.corpus.dir.path().join("warc");
    export(&db, &out, &["--format", "warc"]);
    let m = manifest(&out);
    assert!(m["warc"]["by_type"].get("response").is_none(), "{m}");
    assert!(m["warc"]["pages_with_content"].as_i64().unwrap() > 0);
    let (ok, seen) = check_export(&out);
    assert!(ok, "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_two_pages_share_is_stored_once_and_kept_until_both_are_forgotten() {
    use crate::support::consent_site::serve_dir;
    use crate::support::crawl::{config, corpus, crawl};
    let dir = tempfile::tempdir().unwrap();
    let same = b"<html><head><title>Same</title></head><body><p>One body served at two URLs, long enough to be a page.</p></body></html>";
    std::fs::write(
        dir.path().join("index.html"),
        b"<html><body><p>Start page with links.</p><a href=\"/a.html\">a</a> <a href=\"/b.html\">b</a></body></html>",
    )
    .unwrap();
    std::fs::write(dir.path().join("a.html"), same).unwrap();
    std::fs::write(dir.path().join("b.html"), same).unwrap();
    std::fs::write(dir.path().join("robots.txt"), b"User-agent: *\nAllow: /\n").unwrap();
    let o = serve_dir("same", dir.path().to_path_buf()).await;
    let c = corpus().await;
    crawl(&c, config(&[o.url("/")])).await;
    let pool = probe(&c.path).await;
    assert_eq!(scalar_i64(&pool, "SELECT count(*) FROM pages").await, 3);
    assert_eq!(scalar_i64(&pool, "SELECT count(*) FROM fetch_raw").await, 3);
    assert_eq!(
        scalar_i64(&pool, "SELECT count(*) FROM raw_captures").await,
        2,
        "the shared body is stored once"
    );
    let sha = hex::encode(Sha256::digest(same));
    let count = |pool: sqlx::SqlitePool, sha: String| async move {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM raw_captures WHERE sha256 = ?")
            .bind(sha)
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    let forget = |url: String| {
        let db = c.path.clone();
        async move {
            let o = Command::new(byline_bin())
                .arg("--db")
                .arg(&db)
                .args(["forget", &url, "--json"])
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
        }
    };
    let v = forget(o.url("/a.html")).await;
    assert_eq!(v["raw_captures_erased"], 0, "{v}");
    assert_eq!(
        count(pool.clone(), sha.clone()).await,
        1,
        "b.html still uses it"
    );
    // b.html's response record still carries the body.
    let out = c.dir.path().join("warc");
    export(&c.path, &out, &["--format", "warc"]);
    let resp = responses(&out.join("corpus.warc.gz"));
    let b = o.url("/b.html");
    assert!(
        resp.iter()
            .any(|r| r["uri"] == b.as_str() && r["body_sha256"] == sha.as_str())
    );
    assert!(!resp.iter().any(|r| r["uri"] == o.url("/a.html").as_str()));
    let v = forget(b).await;
    assert_eq!(v["raw_captures_erased"], 1, "{v}");
    assert_eq!(count(pool.clone(), sha.clone()).await, 0);
    assert_eq!(
        scalar_i64(&pool, "SELECT count(*) FROM raw_captures").await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gzip_encoded_page_is_a_response_record_of_the_decoded_body() {
    use std::io::Write;

    use crate::support::consent_site::serve_dir;
    use crate::support::crawl::{config, corpus, crawl};
    let dir = tempfile::tempdir().unwrap();
    let html = b"<html><head><title>Zipped</title></head><body><p>This page travels gzip-encoded over the wire.</p></body></html>";
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(html).unwrap();
    let gz = gz.finish().unwrap();
    std::fs::write(dir.path().join("index.html"), &gz).unwrap();
    std::fs::write(
        dir.path().join("index.html.headers"),
        "Content-Encoding: gzip\nX-Fixture: zipped\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("robots.txt"), b"User-agent: *\nAllow: /\n").unwrap();
    let o = serve_dir("zipped", dir.path().to_path_buf()).await;
    let c = corpus().await;
    crawl(&c, config(&[o.url("/")])).await;
    let out = c.dir.path().join("warc");
    export(&c.path, &out, &["--format", "warc"]);
    let resp = responses(&out.join("corpus.warc.gz"));
    assert_eq!(resp.len(), 1, "{resp:?}");
    let r = &resp[0];
    // The body is the decoded HTML; the headers say so consistently.
    assert_eq!(r["body_sha256"], hex::encode(Sha256::digest(html)));
    assert_eq!(r["digest_passed"], true, "{r}");
    let names: Vec<String> = r["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h[0].as_str().unwrap().to_ascii_lowercase())
        .collect();
    assert!(!names.contains(&"content-encoding".to_string()), "{r}");
    assert!(names.contains(&"x-fixture".to_string()), "{r}");
    let len = r["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| {
            h[0].as_str()
                .unwrap()
                .eq_ignore_ascii_case("content-length")
        })
        .map(|h| h[1].as_str().unwrap().to_string());
    assert_eq!(len, Some(html.len().to_string()));
    let (ok, text) = warcio(&["check", out.join("corpus.warc.gz").to_str().unwrap()]);
    assert!(ok, "{text}");
    let (ok, seen) = check_export(&out);
    assert!(ok, "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kept_body_re_extracts_to_the_stored_text_without_a_recrawl() {
    let w = crawled(&["open"]).await;
    let store = &w.corpus.store;
    let rows: Vec<(i64, String, Option<String>, String)> = sqlx::query_as(
        "SELECT f.id, p.url, f.content_type, p.text_sha256 FROM pages p JOIN fetches f ON f.id = p.fetch_id",
    )
    .fetch_all(&probe(&w.corpus.path).await)
    .await
    .unwrap();
    assert!(!rows.is_empty());
    let hits: usize = ["/", "/e1.html", "/e2.html"]
        .iter()
        .map(|p| w.origin("open").hits(p))
        .sum();
    for (fetch_id, url, ct, text_sha) in &rows {
        let raw = store.raw_body(*fetch_id).await.unwrap().expect("kept");
        let dec = byline::crawl::charset::decode(&raw.body, ct.as_deref());
        let x = byline::crawl::extract::extract(&dec.text, &url::Url::parse(url).unwrap());
        assert_eq!(&x.text_sha256, text_sha, "{url}");
    }
    // Nothing was fetched again.
    let after: usize = ["/", "/e1.html", "/e2.html"]
        .iter()
        .map(|p| w.origin("open").hits(p))
        .sum();
    assert_eq!(hits, after);
}
