//! Dataset exports (`audit export --format parquet`, `--format jsonl
//! --with-text`), the Croissant file and export folders, read back with
//! readers written by others: pyarrow and mlcroissant
//! (tools/check_dataset.py), over a real crawl of the consent fixture world.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::support::audit_world::crawled;
use crate::support::crawl::probe;
use crate::support::{byline_bin, output_text, stdout_json};

const NAMES: [&str; 6] = ["open", "aiblock", "partial", "private", "tdm", "rsl"];

/// Runs `byline --db DB audit export --out OUT --json EXTRA…`.
fn export_run(db: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(byline_bin())
        .arg("--db")
        .arg(db)
        .args(["audit", "export", "--out", out.to_str().unwrap(), "--json"])
        .args(extra)
        .output()
        .unwrap()
}

/// [`export_run`]: (exit code, stdout+stderr).
fn export(db: &Path, out: &Path, extra: &[&str]) -> (i32, String) {
    let o = export_run(db, out, extra);
    (o.status.code().unwrap_or(-1), output_text(&o))
}

/// [`export_run`] that must succeed: its JSON report (stdout).
fn export_ok(db: &Path, out: &Path, extra: &[&str]) -> serde_json::Value {
    stdout_json(&format!("export {extra:?}"), &export_run(db, out, extra))
}

fn manifest(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap()
}

fn python() -> PathBuf {
    let p = std::env::var_os("BYLINE_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ci-py/bin/python"));
    assert!(
        p.exists(),
        "{} not found: run tools/test.sh once (it creates target/ci-py with pyarrow and mlcroissant) or set BYLINE_TEST_PYTHON",
        p.display()
    );
    p
}

/// Runs tools/check_dataset.py on an export folder: (exit ok, its JSON).
fn check_dataset(dir: &Path) -> (bool, serde_json::Value) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/check_dataset.py");
    let o = Command::new(python())
        .arg(script)
        .arg(dir)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let v = serde_json::from_str(&out).unwrap_or_else(|e| {
        panic!(
            "check_dataset.py printed no JSON ({e}):\n{out}\n{}",
            String::from_utf8_lossy(&o.stderr)
        )
    });
    (o.status.success(), v)
}

/// Every file under `dir` (relative, `/`-separated) but the manifest.
fn files_under(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, d: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                if rel != "manifest.json" {
                    out.push(rel);
                }
            }
        }
    }
    let mut v = Vec::new();
    walk(dir, dir, &mut v);
    v.sort();
    v
}

/// Every file in the folder is in the manifest with its sha256 and size.
fn assert_manifest_covers(dir: &Path) {
    let m = manifest(dir);
    let mut listed: Vec<String> = m["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let name = f["name"].as_str().unwrap();
            let b = std::fs::read(dir.join(name)).unwrap();
            assert_eq!(f["sha256"], hex::encode(Sha256::digest(&b)), "{name}");
            assert_eq!(f["bytes"], b.len(), "{name}");
            name.to_string()
        })
        .collect();
    listed.sort();
    assert_eq!(listed, files_under(dir), "files on disk vs manifest");
}

/// Pages whose verdict in force for `purpose` is `decision` and whose text
/// was not erased: url → text (read with SQL here, not through Byline).
async fn expected_pages(
    pool: &sqlx::SqlitePool,
    purpose: &str,
    decision: &str,
) -> BTreeMap<String, String> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT v.page_url, p.text FROM verdicts v JOIN pages p ON p.url = v.page_url
         WHERE v.purpose = ? AND v.decision = ? AND p.text != ''
           AND v.id = (SELECT MAX(id) FROM verdicts w WHERE w.page_url = v.page_url AND w.purpose = v.purpose)",
    )
    .bind(purpose)
    .bind(decision)
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_refuses_a_folder_that_is_not_empty_unless_forced() {
    let w = crawled(&["open", "private"]).await;
    let db = w.corpus.path.clone();
    let out = w.corpus.dir.path().join("x");
    let first = export_ok(&db, &out, &["--format", "jsonl"]);
    assert_eq!(first["version"], 1);
    let before = std::fs::read(out.join("manifest.json")).unwrap();

    // Again into the same folder: refused (exit 2), nothing touched or recorded.
    let (code, text) = export(&db, &out, &["--format", "csv"]);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("not empty") && text.contains("--force"),
        "{text}"
    );
    assert_eq!(std::fs::read(out.join("manifest.json")).unwrap(), before);
    assert!(!out.join("verdicts.csv").exists());

    // A folder holding someone else's file is refused too; --force keeps it.
    let other = w.corpus.dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("notes.txt"), b"mine").unwrap();
    let (code, text) = export(&db, &other, &["--format", "jsonl"]);
    assert_eq!(code, 2, "{text}");

    // --force replaces the earlier export's files (listed in its manifest).
    let second = export_ok(&db, &out, &["--format", "csv", "--force"]);
    assert_eq!(second["version"], 2, "the refused attempt was not recorded");
    assert!(
        !out.join("verdicts.jsonl").exists(),
        "stale records file left"
    );
    assert_manifest_covers(&out);
    export_ok(&db, &out, &["--format", "croissant", "--force"]);
    assert_manifest_covers(&out);
    export_ok(&db, &other, &["--format", "jsonl", "--force"]);
    assert_eq!(std::fs::read(other.join("notes.txt")).unwrap(), b"mine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn croissant_export_passes_mlcroissant_validate_and_yields_records() {
    let w = crawled(&["open", "private"]).await;
    let db = w.corpus.path.clone();
    let out = w.corpus.dir.path().join("cr");
    let e = export_ok(&db, &out, &["--format", "croissant"]);
    let c: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("croissant.json")).unwrap())
            .unwrap();
    assert_eq!(c["@context"]["@vocab"], "https://schema.org/");
    assert_eq!(c["@context"]["sc"], "https://schema.org/");
    assert!(c["rai:dataCollection"].is_string());
    let (ok, seen) = check_dataset(&out);
    assert!(ok, "{seen}");
    assert_eq!(seen["croissant"]["validate_exit"], 0);
    assert_eq!(seen["croissant"]["records"]["verdicts"], e["records"]);

    // The validator is not a rubber stamp: the old http:// context fails it.
    let mut bad = c.clone();
    bad["@context"]["@vocab"] = "http://schema.org/".into();
    bad["@context"]["sc"] = "http://schema.org/".into();
    let text = serde_json::to_string_pretty(&bad).unwrap();
    let bad_dir = w.corpus.dir.path().join("cr-bad");
    std::fs::create_dir_all(&bad_dir).unwrap();
    for f in ["verdicts.jsonl", "manifest.json"] {
        std::fs::copy(out.join(f), bad_dir.join(f)).unwrap();
    }
    std::fs::write(bad_dir.join("croissant.json"), &text).unwrap();
    let (ok, seen) = check_dataset(&bad_dir);
    assert!(!ok, "{seen}");
    assert!(
        seen["problems"].to_string().contains("validate failed"),
        "{seen}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dataset_exports_load_in_pyarrow_and_mlcroissant_with_the_stored_text() {
    let w = crawled(&NAMES).await;
    let db = w.corpus.path.clone();
    let pool = probe(&db).await;

    // Parquet, the default purpose and decision (train, allowed), two rows a shard.
    let want = expected_pages(&pool, "train", "allowed").await;
    assert!(want.len() >= 3, "{} train pages", want.len());
    let pq = w.corpus.dir.path().join("pq");
    let e = export_ok(&db, &pq, &["--format", "parquet", "--shard-size", "2rows"]);
    let m = manifest(&pq);
    assert_eq!(m["format"], "parquet");
    assert_eq!(m["dataset"]["purpose"], "train");
    assert_eq!(m["dataset"]["rows"], want.len());
    let shards = m["dataset"]["shards"].as_array().unwrap();
    assert_eq!(shards.len(), want.len().div_ceil(2));
    assert!(
        shards[0]
            .as_str()
            .unwrap()
            .ends_with(&format!("-of-{:05}.parquet", shards.len()))
    );
    assert_manifest_covers(&pq);
    let (ok, seen) = check_dataset(&pq);
    assert!(ok, "{seen}");
    let ds = &seen["dataset"];
    assert_eq!(ds["rows"], want.len());
    assert_eq!(
        ds["columns"],
        serde_json::json!([
            "url",
            "text",
            "title",
            "language",
            "licence",
            "attribution",
            "conditions",
            "verdict_id",
            "policy_sha256",
            "fetched_at",
            "content_sha256"
        ])
    );
    let got: BTreeMap<String, String> = ds["texts"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    let want_sha: BTreeMap<String, String> = want
        .iter()
        .map(|(u, t)| (u.clone(), hex::encode(Sha256::digest(t.as_bytes()))))
        .collect();
    assert_eq!(got, want_sha, "each row's text is the stored text");
    let first = &ds["first"];
    let url = first["url"].as_str().unwrap();
    assert_eq!(first["text"].as_str().unwrap(), want[url]);
    assert!(first["attribution"].as_str().unwrap().contains(url));
    let vid: i64 =
        sqlx::query_scalar("SELECT MAX(id) FROM verdicts WHERE page_url = ? AND purpose = 'train'")
            .bind(url)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(first["verdict_id"], vid);
    // Croissant: validates, and its record sets load (pages = the rows).
    assert_eq!(seen["croissant"]["validate_exit"], 0);
    assert_eq!(seen["croissant"]["records"]["pages"], want.len());
    assert_eq!(seen["croissant"]["records"]["verdicts"], e["records"]);
    // The dataset card: a YAML header as the Hub reads it, the counts, why
    // the rest was left out.
    let card = std::fs::read_to_string(pq.join("README.md")).unwrap();
    assert!(card.starts_with("---\nlicense: "), "{card}");
    assert!(card.contains("path: \"data/train-*.parquet\""), "{card}");
    assert!(card.contains("## Licences") && card.contains("## Excluded for `train`, and why"));
    assert!(card.contains(&format!("- rows: {}", want.len())), "{card}");
    assert!(card.contains("excluded |"), "exclusions listed: {card}");

    // JSON Lines with text, another purpose and decision.
    let (decision, n): (String, i64) = sqlx::query_as(
        "SELECT decision, count(*) FROM verdicts v WHERE purpose = 'rag_attributed'
           AND decision IN ('allowed', 'allowed_with_conditions')
           AND v.id = (SELECT MAX(id) FROM verdicts w WHERE w.page_url = v.page_url AND w.purpose = v.purpose)
         GROUP BY decision ORDER BY count(*) DESC LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(n > 0);
    let want = expected_pages(&pool, "rag_attributed", &decision).await;
    let jl = w.corpus.dir.path().join("jl");
    export_ok(
        &db,
        &jl,
        &[
            "--format",
            "jsonl",
            "--with-text",
            "--purpose",
            "rag_attributed",
            "--decision",
            &decision,
        ],
    );
    let m = manifest(&jl);
    assert_eq!(m["format"], "jsonl-text");
    assert_eq!(
        m["dataset"]["shards"],
        serde_json::json!(["data/rag_attributed-00000-of-00001.jsonl"])
    );
    assert_manifest_covers(&jl);
    let (ok, seen) = check_dataset(&jl);
    assert!(ok, "{seen}");
    assert_eq!(seen["dataset"]["rows"], want.len());
    let first = &seen["dataset"]["first"];
    assert_eq!(
        first["text"].as_str().unwrap(),
        want[first["url"].as_str().unwrap()]
    );
    assert_eq!(seen["croissant"]["records"]["pages"], want.len());

    // Text is never exported for a decision that does not allow use.
    let (code, text) = export(
        &db,
        &w.corpus.dir.path().join("no"),
        &["--format", "parquet", "--decision", "excluded"],
    );
    assert_eq!(code, 2, "{text}");
    let (code, text) = export(
        &db,
        &w.corpus.dir.path().join("no2"),
        &["--format", "csv", "--with-text"],
    );
    assert_eq!(code, 2, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn why_of_one_url_agrees_with_the_whole_corpus_records() {
    let w = crawled(&["open", "private", "partial"]).await;
    let store = &w.corpus.store;
    let all = byline::audit::records(store).await.unwrap();
    let mut urls: Vec<&str> = all.iter().map(|r| r.url.as_str()).collect();
    urls.sort();
    urls.dedup();
    assert!(urls.len() > 5);
    for u in urls {
        let rep = byline::audit::why(store, u).await.unwrap().expect(u);
        let mut from_why: Vec<(String, String, Vec<String>)> = rep
            .verdicts
            .iter()
            .map(|v| (v.purpose.clone(), v.decision.clone(), v.reasons.clone()))
            .collect();
        let mut from_all: Vec<(String, String, Vec<String>)> = all
            .iter()
            .filter(|r| r.url == u)
            .map(|r| (r.purpose.clone(), r.decision.clone(), r.reasons.clone()))
            .collect();
        from_why.sort();
        from_all.sort();
        assert_eq!(from_why, from_all, "{u}");
        let lic = all.iter().find(|r| r.url == u).unwrap();
        assert_eq!(rep.licence.as_ref().unwrap().spdx, lic.licence, "{u}");
        // The typed report is what `audit why --json` prints.
        let v = serde_json::to_value(&rep).unwrap();
        assert_eq!(v["url"], u);
        assert!(v["verdicts"][0]["usable_now"].is_boolean());
    }
    assert!(
        byline::audit::why(store, "http://127.0.0.1:1/never")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        byline::audit::why(store, "not a url")
            .await
            .unwrap_err()
            .is_input()
    );
}
