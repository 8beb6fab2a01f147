//! Issue #25 part B: `byline forget` leaves nothing behind (database file,
//! WAL, FTS index, answer records, exports), flags the answers that cited
//! the page, keeps `audit verify` passing and is idempotent.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::answer::sample_db;
use crate::support::model::default_model;
use crate::support::{byline_bin, tempdir};

const MILL: &str = "Who built the Old Fulling Mill?";

fn run(db: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(byline_bin())
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn json(db: &Path, args: &[&str]) -> Value {
    let out = Command::new(byline_bin())
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{args:?}: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: {e}: {text}"))
}

/// The database file and its WAL (and any other file next to it that
/// SQLite keeps), as bytes.
fn db_bytes(db: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let name = db.file_name().unwrap().to_string_lossy().into_owned();
    let mut out = Vec::new();
    for e in std::fs::read_dir(db.parent().unwrap()).unwrap() {
        let p = e.unwrap().path();
        let n = p.file_name().unwrap().to_string_lossy().into_owned();
        if n.starts_with(&name) && p.is_file() {
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        }
    }
    out
}

fn contains(hay: &[u8], needle: &str) -> bool {
    let n = needle.as_bytes();
    !n.is_empty() && hay.windows(n.len()).any(|w| w == n)
}

/// Every file under `dir`, as bytes (gzip files also decompressed, parquet
/// files also as the rows pyarrow reads from them).
fn export_bytes(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    fn walk(d: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                if p.extension().is_some_and(|x| x == "gz") {
                    let mut plain = Vec::new();
                    std::io::Read::read_to_end(
                        &mut flate2::read::MultiGzDecoder::new(&bytes[..]),
                        &mut plain,
                    )
                    .unwrap();
                    out.push((p.with_extension("gz.plain"), plain));
                }
                out.push((p.clone(), bytes));
                if p.extension().is_some_and(|x| x == "parquet") {
                    let o = Command::new(crate::audit_export::python())
                        .args([
                            "-c",
                            "import sys, json, pyarrow.parquet as pq; print(json.dumps(pq.read_table(sys.argv[1]).to_pylist(), default=str, ensure_ascii=False))",
                        ])
                        .arg(&p)
                        .output()
                        .unwrap();
                    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
                    out.push((p.with_extension("parquet.rows"), o.stdout));
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out
}

fn exports(db: &Path, root: &Path, tag: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut all = Vec::new();
    for (name, args) in [
        (
            "jsonl",
            vec![
                "--format",
                "jsonl",
                "--with-text",
                "--purpose",
                "rag_attributed",
            ],
        ),
        (
            "parquet",
            vec!["--format", "parquet", "--purpose", "rag_attributed"],
        ),
        ("warc", vec!["--format", "warc"]),
        ("croissant", vec!["--format", "croissant"]),
        ("csv", vec!["--format", "csv"]),
    ] {
        let out = root.join(format!("{tag}-{name}"));
        let mut a = vec!["audit", "export", "--out", out.to_str().unwrap(), "--json"];
        a.extend(args);
        json(db, &a);
        all.extend(export_bytes(&out));
    }
    all
}

async fn page_facts(db: &Path, url: &str) -> (i64, String, String, String) {
    let pool = crate::support::crawl::probe(db).await;
    let r: (i64, String, String, String) =
        sqlx::query_as("SELECT id, text, title, author FROM pages WHERE url = ?")
            .bind(url)
            .fetch_one(&pool)
            .await
            .unwrap();
    pool.close().await;
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forget_leaves_no_byte_of_the_page_and_flags_the_answers_that_cited_it() {
    let dir = tempdir();
    let (db, origin) = sample_db(dir.path());
    let model = default_model();
    let page = format!("{origin}/history.html");

    // An answer that cites the page.
    let a = json(
        &db,
        &[
            "ask",
            "--json",
            "-n",
            "48",
            "--model",
            model.to_str().unwrap(),
            MILL,
        ],
    );
    let answer_id = a["answer_id"].as_i64().expect("a recorded answer");
    let quotes: Vec<String> = a["citations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["url"] == page.as_str())
        .map(|c| c["quote"].as_str().unwrap().to_string())
        .filter(|q| !q.is_empty())
        .collect();
    assert!(
        !quotes.is_empty(),
        "the answer quotes the history page: {a}"
    );

    let (page_id, text, title, author) = page_facts(&db, &page).await;
    assert_eq!(title, "History of the Old Fulling Mill");
    assert_eq!(author, "Tom Beddowes");
    // What must be gone: the title, each quote, and every sentence of the
    // page's text that no other stored page also holds (the site repeats
    // its footer on every page, and the author's name is in a byline).
    let pool = crate::support::crawl::probe(&db).await;
    let others: Vec<String> =
        sqlx::query_scalar("SELECT text || ' ' || coalesce(title, '') FROM pages WHERE id <> ?")
            .bind(page_id)
            .fetch_all(&pool)
            .await
            .unwrap();
    let anchors: Vec<String> =
        sqlx::query_scalar("SELECT anchor_text FROM links WHERE page_id <> ?")
            .bind(page_id)
            .fetch_all(&pool)
            .await
            .unwrap();
    pool.close().await;
    let mut needles: Vec<String> = vec![title.clone()];
    needles.extend(quotes.iter().cloned());
    for (s, e) in byline::index::text::sentences(&text) {
        let sent = &text[s..e];
        if sent.len() >= 20 && !others.iter().any(|o| o.contains(sent)) {
            needles.push(sent.to_string());
        }
    }
    assert!(needles.len() >= 8, "{needles:?}");
    assert!(!others.iter().chain(&anchors).any(|o| o.contains(&title)));
    // An FTS5 index term of the page only ("weatherproof"): terms are
    // stored prefix-compressed, so look for all of it but its first two
    // letters.
    assert!(text.contains("weatherproof") && !others.iter().any(|o| o.contains("weatherproof")));
    needles.push("atherproof".to_string());

    // Before: the file holds them (so the search below can find them).
    let (ok, t) = run(&db, &["audit", "verify"]);
    assert!(ok, "{t}");
    let before = db_bytes(&db);
    for n in [&title, &quotes[0], &"atherproof".to_string()] {
        assert!(
            before.iter().any(|(_, b)| contains(b, n)),
            "{n:?} is in the database before forget"
        );
    }
    let first = exports(&db, dir.path(), "before");
    let held: Vec<String> = first
        .iter()
        .flat_map(|(p, b)| {
            needles
                .iter()
                .filter(|n| contains(b, n))
                .map(move |n| format!("{}: {n}", p.display()))
        })
        .collect();
    eprintln!("before forget, the exports hold {held:#?}");
    assert!(!held.is_empty(), "exports carry the page before");

    // Forget.
    let f = json(&db, &["forget", &page, "--json"]);
    assert_eq!(f["forgotten"], serde_json::json!([page]), "{f}");
    assert_eq!(f["pages_erased"], 1, "{f}");

    // No byte of it in the database file or its WAL.
    for (p, b) in db_bytes(&db) {
        for n in &needles {
            assert!(!contains(&b, n), "{} still holds {n:?}", p.display());
        }
    }
    assert_eq!(f["already_forgotten"], serde_json::json!([]), "{f}");
    assert!(
        f["flagged_answers"]
            .as_array()
            .unwrap()
            .contains(&Value::from(answer_id)),
        "{f}"
    );
    // Nor in the answer record; the answer is flagged.
    let shown = json(&db, &["answers", "show", &answer_id.to_string(), "--json"]);
    let s = shown.to_string();
    for n in &needles {
        assert!(
            !s.contains(n.as_str()),
            "answer record still holds {n:?}: {s}"
        );
    }
    assert!(s.contains("[forgotten: tombstone "), "{s}");
    assert!(shown["flag"].is_object(), "{shown}");
    // The log still verifies, in Rust and in the independent Python reader.
    let v = json(&db, &["audit", "verify", "--json"]);
    assert_eq!(v["ok"], true, "{v}");
    let o = Command::new(crate::audit_export::python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/verify_audit.py"))
        .arg(&db)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "verify_audit.py: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    // (The audit log is in the database file searched above: it names the
    // erasure by hash, never its content.)
    // Exports made afterwards carry none of it and list it as removed.
    let after = exports(&db, dir.path(), "after");
    for (p, b) in &after {
        for n in &needles {
            assert!(!contains(b, n), "{} holds {n:?}", p.display());
        }
    }
    let m: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("after-jsonl/manifest.json")).unwrap(),
    )
    .unwrap();
    assert!(
        m["removed_since_version"]["removed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["url"] == page.as_str() && r["why"] == "forgotten"),
        "{m}"
    );

    // Forgetting again: nothing more to erase, and it says so (exit 0).
    let (ok, t) = run(&db, &["forget", &page]);
    assert!(ok, "{t}");
    assert!(t.contains("already forgotten"), "{t}");
    let f2 = json(&db, &["forget", &page, "--json"]);
    assert_eq!(f2["already_forgotten"], serde_json::json!([page]), "{f2}");
    assert_eq!(f2["forgotten"], serde_json::json!([]), "{f2}");
    let v = json(&db, &["audit", "verify", "--json"]);
    assert_eq!(v["ok"], true, "{v}");
}

/// A three-page site served from a temp dir (the test rewrites its
/// robots.txt), with a CC BY licence link on every page, crawled and indexed.
async fn licensed_site() -> (
    tempfile::TempDir,
    crate::support::consent_site::Origin,
    crate::support::crawl::Corpus,
) {
    let dir = tempdir();
    for w in ["alpaca", "basalt"] {
        std::fs::write(
            dir.path().join(format!("{w}.html")),
            format!(
                "<!doctype html><html lang=en><head><title>All about the {w}</title>\
                 <link rel=\"license\" href=\"https://creativecommons.org/licenses/by/4.0/\"></head>\
                 <body><main><h1>The {w}</h1><p>The {w} is the subject of this page, and every \
                 fact about the {w} was checked twice.</p></main></body></html>"
            ),
        )
        .unwrap();
    }
    std::fs::write(
        dir.path().join("index.html"),
        "<!doctype html><html lang=en><head><title>Index</title></head><body><main>\
         <p>An index.</p><a href=\"/alpaca.html\">a</a> <a href=\"/basalt.html\">b</a></main></body></html>",
    )
    .unwrap();
    std::fs::write(dir.path().join("robots.txt"), "User-agent: *\nAllow: /\n").unwrap();
    let origin = crate::support::consent_site::serve_dir("erasure", dir.path().to_path_buf()).await;
    let c = crate::support::crawl::corpus().await;
    crate::support::crawl::crawl(&c, crate::support::crawl::config(&[origin.url("/")])).await;
    byline::index::refresh(&c.store).await.expect("index");
    (dir, origin, c)
}

async fn json_async(db: &Path, args: &[&str]) -> Value {
    let db = db.to_path_buf();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        json(&db, &a)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_why_explains_the_verdict_in_force_after_a_robots_revocation() {
    let (dir, origin, c) = licensed_site().await;
    let db = c.path.clone();
    let alpaca = origin.url("/alpaca.html");
    let before = json_async(&db, &["audit", "why", &alpaca, "--json"]).await;
    assert_eq!(before["robots"]["allowed"], true, "{before}");
    assert_eq!(before["licence"]["spdx"], "CC-BY-4.0", "{before}");
    let old_version = before["robots"]["version_id"].as_i64().unwrap();

    // The owner disallows the page: line 3 of the new robots.txt.
    std::fs::write(
        dir.path().join("robots.txt"),
        "User-agent: *\nAllow: /index.html\nDisallow: /alpaca.html\n",
    )
    .unwrap();
    let r = json_async(&db, &["audit", "recheck", "--min-delay-ms", "0", "--json"]).await;
    assert!(
        r["revoked"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["url"] == alpaca.as_str()),
        "{r}"
    );
    let why = json_async(&db, &["audit", "why", &alpaca, "--json"]).await;
    assert!(
        why["verdicts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["decision"] == "excluded"),
        "{why}"
    );
    let rb = &why["robots"];
    assert_ne!(rb["version_id"].as_i64().unwrap(), old_version, "{why}");
    assert_eq!(rb["allowed"], false, "{why}");
    assert_eq!(rb["line"], 3, "{why}");
    assert_eq!(rb["line_text"], "Disallow: /alpaca.html", "{why}");
    // The licence of the verdict in force: the page's CC BY link.
    assert_eq!(why["licence"]["spdx"], "CC-BY-4.0", "{why}");
    // The corpus-wide records read it the same way (their sets are
    // streamed; this one, without body evidence, is completed after).
    let sources = json_async(&db, &["audit", "sources", "--json"]).await;
    let recs: Vec<&Value> = sources
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["url"] == alpaca.as_str())
        .collect();
    assert_eq!(recs.len(), 3, "{sources}");
    assert!(
        recs.iter().all(|r| r["licence"] == "CC-BY-4.0"),
        "{sources}"
    );
    let (ok, text) = run(&db, &["audit", "why", &alpaca]);
    assert!(ok, "{text}");
    assert!(
        text.contains("line 3: \"Disallow: /alpaca.html\" → DISALLOWED"),
        "{text}"
    );
    assert!(!text.contains("no rule matched → ALLOWED"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_history_lists_fetches_verdicts_revocation_and_erasure_in_time_order() {
    let (dir, origin, c) = licensed_site().await;
    let db = c.path.clone();
    let alpaca = origin.url("/alpaca.html");
    std::fs::write(
        dir.path().join("robots.txt"),
        "User-agent: *\nDisallow: /alpaca.html\n",
    )
    .unwrap();
    json_async(&db, &["audit", "recheck", "--min-delay-ms", "0", "--json"]).await;
    json_async(
        &db,
        &["forget", &alpaca, "--reason", "owner asked", "--json"],
    )
    .await;
    let h = json_async(&db, &["audit", "history", &alpaca, "--json"]).await;
    let ev = h["events"].as_array().unwrap();
    let kinds: Vec<&str> = ev.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    let times: Vec<&str> = ev.iter().map(|e| e["at"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{h}");
    let pos = |k: &str| {
        kinds
            .iter()
            .position(|x| *x == k)
            .unwrap_or_else(|| panic!("no {k}: {h}"))
    };
    assert!(pos("fetch") < pos("verdict"), "{kinds:?}");
    assert!(pos("verdict") < pos("revocation"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"erasure"), "{kinds:?}");
    // Two observations (crawl, recheck), and every purpose decided twice,
    // each verdict with its policy hash.
    assert_eq!(
        kinds.iter().filter(|k| **k == "observed").count(),
        2,
        "{kinds:?}"
    );
    let verdicts: Vec<&Value> = ev.iter().filter(|e| e["kind"] == "verdict").collect();
    assert_eq!(verdicts.len(), 6, "{h}");
    assert!(verdicts.iter().all(|v| {
        v["detail"]["policy_sha256"]
            .as_str()
            .is_some_and(|s| s.len() == 64)
    }));
    assert!(
        verdicts[..3]
            .iter()
            .all(|v| v["detail"]["decision"] != "excluded"),
        "{h}"
    );
    // Log order within a second: crawl observation, its verdicts, the
    // recheck's observation, its verdicts.
    let obs: Vec<usize> = kinds
        .iter()
        .enumerate()
        .filter(|(_, k)| **k == "observed")
        .map(|(i, _)| i)
        .collect();
    let vpos: Vec<usize> = kinds
        .iter()
        .enumerate()
        .filter(|(_, k)| **k == "verdict")
        .map(|(i, _)| i)
        .collect();
    assert!(
        obs[0] < vpos[0] && vpos[2] < obs[1] && obs[1] < vpos[3],
        "{kinds:?}"
    );
    assert!(
        verdicts[3..]
            .iter()
            .all(|v| v["detail"]["decision"] == "excluded"),
        "{h}"
    );
    let revs = kinds.iter().filter(|k| **k == "revocation").count();
    assert_eq!(revs, 3, "{kinds:?}");
    let (ok, text) = run(&db, &["audit", "history", &alpaca]);
    assert!(ok, "{text}");
    assert!(
        text.contains("erasure") && text.contains("revoked"),
        "{text}"
    );
    // A URL never met: exit 1, nothing printed on stdout.
    let (ok, _) = run(&db, &["audit", "history", &origin.url("/never.html")]);
    assert!(!ok);
    // `audit why` lists what the log holds about each URL, the recheck's
    // and the erasure's events with the crawl's.
    let compared = crate::support::why_events::assert_why_lists_the_logs_events(&c.store).await;
    let listed = &compared[&alpaca];
    for k in [
        "fetch",
        "robots.decision",
        "verdict",
        "revocation",
        "forget",
    ] {
        assert!(listed.iter().any(|x| x == k), "{k}: {listed:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_apply_prints_old_and_new_conditions_and_leaves_forgotten_pages_alone() {
    let (_dir, origin, c) = licensed_site().await;
    let db = c.path.clone();
    let basalt = origin.url("/basalt.html");
    json_async(&db, &["forget", &basalt, "--json"]).await;
    let before = json_async(&db, &["audit", "history", &basalt, "--json"]).await;
    let verdicts_before = before["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "verdict")
        .count();
    let policy = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/strict-opt-in.toml");
    let (ok, text) = run(&db, &["policy", "apply", policy.to_str().unwrap()]);
    assert!(ok, "{text}");
    let changes: Vec<&str> = text.lines().filter(|l| l.contains(" -> ")).collect();
    assert!(!changes.is_empty(), "{text}");
    for l in &changes {
        // Both sides name their conditions, even when there are none.
        assert_eq!(l.matches("conditions: [").count(), 2, "{l}");
        assert!(
            !l.contains("basalt"),
            "a forgotten page was re-decided: {l}"
        );
    }
    assert!(text.contains("1 forgotten page(s) left alone"), "{text}");
    let after = json_async(&db, &["audit", "history", &basalt, "--json"]).await;
    let verdicts_after = after["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "verdict")
        .count();
    assert_eq!(verdicts_after, verdicts_before, "{after}");
    let why = json_async(&db, &["audit", "why", &basalt, "--json"]).await;
    assert!(
        why["verdicts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["usable_now"] == false),
        "{why}"
    );
}
