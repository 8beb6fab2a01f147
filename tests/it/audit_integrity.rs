//! Audit integrity (issue #16): a crawled and indexed corpus of the sample
//! site with one stored answer, edited behind the tool's back with plain
//! SQL as an attacker would. Every edit must be reported by `byline audit
//! verify` with its table and row; a forged row is never what a reader sees;
//! a consistent rewrite of the tail is caught against an anchored head.

use std::path::{Path, PathBuf};
use std::process::Command;

use byline::store::Store;
use byline::store::answers::{NewAnswer, NewCitation};
use byline::store::audit::{AuditRef, canonical_json, content_hash, event_hash, row_hash};

use crate::support::answer::sample_db;
use crate::support::{byline_bin, tempdir};

/// A copy of the crawled sample site with one answer recorded through the
/// real writer (citing one allowed passage).
async fn corpus(dir: &Path) -> PathBuf {
    let (db, _origin) = sample_db(dir);
    let store = Store::open_existing(&db).await.unwrap();
    let pid: i64 = scalar(
        &db,
        "SELECT ps.id FROM passages ps JOIN pages p ON p.id = ps.page_id
         JOIN verdicts v ON v.page_url = p.url AND v.purpose = 'rag_attributed'
         WHERE v.decision = 'allowed' ORDER BY ps.id LIMIT 1",
    )
    .await;
    let hit = store
        .allowed_passage(pid, None)
        .await
        .unwrap()
        .expect("an allowed passage");
    let json = serde_json::json!({"answer": "A cited answer [1].", "citations": [{"n": 1, "url": hit.url}]})
        .to_string();
    let quote: String = hit.text.chars().take(40).collect();
    store
        .record_answer(&NewAnswer {
            asked_at: 1_800_000_000,
            question: "what is it?",
            answer: "A cited answer [1].",
            draft: "A cited answer.",
            refused: false,
            reason: None,
            model_path: "model.gguf",
            model_sha256: "ab".repeat(32).as_str(),
            policy_sha256: None,
            seconds: 0.25,
            json: &json,
            citations: vec![NewCitation {
                n: 1,
                page_id: hit.page_id,
                passage_id: hit.passage_id,
                url: &hit.url,
                verdict_id: hit.verdict_id,
                policy_sha256: &hit.policy_sha256,
                licence: None,
                quote: &quote,
                start_char: hit.start_char,
                end_char: hit.start_char + quote.chars().count() as i64,
                support: 0.5,
            }],
        })
        .await
        .unwrap();
    store.close().await;
    db
}

async fn pool(db: &Path) -> sqlx::SqlitePool {
    sqlx::SqlitePool::connect_with(sqlx::sqlite::SqliteConnectOptions::new().filename(db))
        .await
        .unwrap()
}

async fn exec(db: &Path, sql: &str) {
    let p = pool(db).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&p)
        .await
        .unwrap();
    p.close().await;
}

async fn scalar(db: &Path, sql: &str) -> i64 {
    let p = pool(db).await;
    let v: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(&p)
        .await
        .unwrap();
    p.close().await;
    v
}

fn run(db: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(byline_bin())
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `audit verify --json` plus extra flags: (exit code, report).
fn verify(db: &Path, extra: &[&str]) -> (Option<i32>, serde_json::Value) {
    let mut args = vec!["audit", "verify", "--json"];
    args.extend_from_slice(extra);
    let (code, out, err) = run(db, &args);
    assert!(!err.contains("panicked"), "{err}");
    let v: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    (code, v)
}

/// Whether the report names `table` row `id` (with `kind`, when given).
fn names(v: &serde_json::Value, kind: Option<&str>, table: &str, id: i64) -> bool {
    v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["table"] == table && p["id"] == id && kind.is_none_or(|k| p["kind"] == k))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_corpus_verifies_and_every_row_is_logged() {
    let dir = tempdir();
    let db = corpus(dir.path()).await;
    let (code, v) = verify(&db, &[]);
    assert_eq!(code, Some(0), "{v:#}");
    assert_eq!(v["ok"], true);
    assert!(v["problems"].as_array().unwrap().is_empty());
    // The head is reported and matches `audit head`.
    let (code, head, _) = run(&db, &["audit", "head", "--json"]);
    assert_eq!(code, Some(0));
    let head: serde_json::Value = serde_json::from_str(&head).unwrap();
    assert_eq!(v["head"], head, "{v:#}");
    assert!(head["seq"].as_i64().unwrap() > 10);
    assert_eq!(head["sha256"].as_str().unwrap().len(), 64);
    let anchor = format!("{}:{}", head["seq"], head["sha256"].as_str().unwrap());
    assert_eq!(verify(&db, &["--expect-head", &anchor]).0, Some(0));
    // Every table that carries provenance is covered, links and answers included.
    for t in [
        "links",
        "answers",
        "answer_citations",
        "crawl_runs",
        "frontier",
        "pages",
    ] {
        let unlogged = scalar(
            &db,
            &format!(
                "SELECT count(*) FROM {t} WHERE rowid NOT IN (SELECT j.value ->> '$.id' FROM audit_events a, json_each(a.refs) j WHERE j.value ->> '$.table' = '{t}')"
            ),
        )
        .await;
        assert_eq!(unlogged, 0, "{t}");
        assert!(
            scalar(&db, &format!("SELECT count(*) FROM {t}")).await > 0,
            "{t}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_newer_verdict_is_reported_and_never_in_force() {
    let dir = tempdir();
    let db = corpus(dir.path()).await;
    // A page excluded from rag_attributed, with passages.
    let old: i64 = scalar(
        &db,
        "SELECT v.id FROM verdicts v JOIN pages p ON p.url = v.page_url
         WHERE v.purpose = 'rag_attributed' AND v.decision = 'excluded'
           AND EXISTS (SELECT 1 FROM passages ps WHERE ps.page_id = p.id)
         ORDER BY v.id LIMIT 1",
    )
    .await;
    let passage: i64 = scalar(
        &db,
        &format!(
            "SELECT ps.id FROM passages ps JOIN pages p ON p.id = ps.page_id
             JOIN verdicts v ON v.page_url = p.url WHERE v.id = {old} ORDER BY ps.id LIMIT 1"
        ),
    )
    .await;
    exec(
        &db,
        &format!(
            "INSERT INTO verdicts (set_id, page_url, purpose, decision, conditions, reasons, evidence_ids,
                                   policy_id, policy_sha256, decided_at)
             SELECT set_id, page_url, purpose, 'allowed', '[]', '[]', evidence_ids, policy_id, policy_sha256, decided_at + 1
             FROM verdicts WHERE id = {old}"
        ),
    )
    .await;
    let forged = scalar(&db, "SELECT max(id) FROM verdicts").await;
    let (code, v) = verify(&db, &[]);
    assert_eq!(code, Some(1), "{v:#}");
    assert!(names(&v, Some("unlogged"), "verdicts", forged), "{v:#}");

    // Readers see the verdict the chain vouches for.
    let store = Store::open_existing(&db).await.unwrap();
    let url: String = {
        let p = pool(&db).await;
        let u = sqlx::query_scalar("SELECT page_url FROM verdicts WHERE id = ?")
            .bind(old)
            .fetch_one(&p)
            .await
            .unwrap();
        p.close().await;
        u
    };
    let latest = store.latest_verdicts(&url, None).await.unwrap();
    let rag = latest
        .iter()
        .find(|r| r.purpose == "rag_attributed")
        .unwrap();
    assert_eq!(rag.id, old);
    assert_eq!(rag.decision, "excluded");
    assert!(
        store
            .current_verdicts()
            .await
            .unwrap()
            .iter()
            .all(|r| r.id != forged)
    );
    assert!(
        store
            .allowed_passage(passage, None)
            .await
            .unwrap()
            .is_none(),
        "a passage of an excluded page is served under a forged verdict"
    );
    store.close().await;
    // `audit why` shows the vouched verdict in force, not the forged one.
    let (_, why, _) = run(&db, &["audit", "why", &url, "--json"]);
    let why: serde_json::Value = serde_json::from_str(&why).unwrap();
    let rag: Vec<&serde_json::Value> = why["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["purpose"] == "rag_attributed")
        .collect();
    assert_eq!(rag.len(), 1, "{why:#}");
    assert_eq!(rag[0]["decision"], "excluded", "{why:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_page_is_reported_unlogged_and_not_served() {
    let dir = tempdir();
    let db = corpus(dir.path()).await;
    // A copy of an allowed page's URL, so its verdict would cover it.
    let src: i64 = scalar(
        &db,
        "SELECT min(ps.page_id) FROM passages ps JOIN pages p ON p.id = ps.page_id
         JOIN verdicts v ON v.page_url = p.url AND v.purpose = 'rag_attributed' AND v.decision = 'allowed'",
    )
    .await;
    exec(
        &db,
        &format!(
            "INSERT INTO frontier (url, url_norm, origin, depth, first_run_id, state, updated_at)
               SELECT url || '?forged', url_norm || '?forged', origin, depth, first_run_id, 'done', updated_at
               FROM frontier WHERE id = (SELECT frontier_id FROM pages WHERE id = {src});
             INSERT INTO fetches (run_id, frontier_id, attempt, requested_url, fetched_at, elapsed_ms, user_agent)
               SELECT 1, max(id), 1, 'x', 0, 0, 'x' FROM frontier;
             INSERT INTO pages (frontier_id, fetch_id, url, title, text, text_sha256, extractor_version, content_sha256)
               SELECT (SELECT max(id) FROM frontier), (SELECT max(id) FROM fetches), url, title,
                      'forged words', '2e1bd1a5f5c4ed3c6dd0d6f2a5d4f2d2c2a8e0c3b6a7d0f3c9b1b8e1f4a6d2c1', extractor_version, 'ff'
               FROM pages WHERE id = {src};"
        ),
    )
    .await;
    let page = scalar(&db, "SELECT max(id) FROM pages").await;
    let fetch = scalar(&db, "SELECT max(id) FROM fetches").await;
    let (code, v) = verify(&db, &[]);
    assert_eq!(code, Some(1), "{v:#}");
    assert!(names(&v, Some("unlogged"), "pages", page), "{v:#}");
    assert!(names(&v, Some("unlogged"), "fetches", fetch), "{v:#}");
    // A passage of the forged page (same url as an allowed page) is never served.
    exec(
        &db,
        &format!(
            "INSERT INTO passages (page_id, ordinal, start_char, end_char, text, title, text_sha256, indexed_at)
             SELECT {page}, 0, 0, 12, 'forged words', title, text_sha256, 0 FROM pages WHERE id = {page}"
        ),
    )
    .await;
    let psg = scalar(&db, "SELECT max(id) FROM passages").await;
    let (_, v) = verify(&db, &[]);
    assert!(names(&v, None, "passages", psg), "{v:#}");
    let store = Store::open_existing(&db).await.unwrap();
    assert!(store.allowed_passage(psg, None).await.unwrap().is_none());
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edited_answers_and_citations_are_reported() {
    let dir = tempdir();
    let db = corpus(dir.path()).await;
    let answer = scalar(&db, "SELECT max(id) FROM answers").await;
    exec(
        &db,
        "UPDATE answers SET answer = 'Something else entirely [1].'",
    )
    .await;
    let (code, v) = verify(&db, &[]);
    assert_eq!(code, Some(1), "{v:#}");
    assert!(names(&v, Some("changed"), "answers", answer), "{v:#}");

    let dir2 = tempdir();
    let db2 = corpus(dir2.path()).await;
    exec(
        &db2,
        "UPDATE answers SET json = json_set(json, '$.answer', 'edited')",
    )
    .await;
    let (code, v) = verify(&db2, &[]);
    assert_eq!(code, Some(1), "{v:#}");
    assert!(names(&v, None, "answers", answer), "{v:#}");
    assert!(
        v["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["detail"].as_str().unwrap().contains("json_sha256")),
        "{v:#}"
    );

    let dir3 = tempdir();
    let db3 = corpus(dir3.path()).await;
    let cit = scalar(&db3, "SELECT rowid FROM answer_citations LIMIT 1").await;
    exec(
        &db3,
        "UPDATE answer_citations SET url = 'http://127.0.0.1:1/elsewhere.html'",
    )
    .await;
    let (code, v) = verify(&db3, &[]);
    assert_eq!(code, Some(1), "{v:#}");
    assert!(names(&v, Some("changed"), "answer_citations", cit), "{v:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_types_and_missing_tables_are_reported_never_a_panic() {
    let dir = tempdir();
    let db = corpus(dir.path()).await;
    let answer = scalar(&db, "SELECT max(id) FROM answers").await;
    let psg = scalar(&db, "SELECT min(id) FROM passages").await;
    exec(
        &db,
        &format!(
            "UPDATE answers SET answer = CAST(answer AS BLOB);
             UPDATE passages SET text = CAST(text AS BLOB) WHERE id = {psg};
             UPDATE pages SET text = CAST(text AS BLOB) WHERE id = 1;
             DROP TABLE links;"
        ),
    )
    .await;
    let (code, v) = verify(&db, &[]);
    assert_eq!(code, Some(1), "{v:#}");
    assert!(names(&v, Some("changed"), "answers", answer), "{v:#}");
    assert!(names(&v, None, "passages", psg), "{v:#}");
    assert!(names(&v, None, "pages", 1), "{v:#}");
    assert!(
        v["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["table"] == "links" && p["kind"] == "missing"),
        "{v:#}"
    );
    let (code, out, err) = run(&db, &["audit", "verify"]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_newest_events_is_reported() {
    let dir = tempdir();
    let db = corpus(dir.path()).await;
    let (_, head) = verify(&db, &[]);
    let seq = head["head"]["seq"].as_i64().unwrap();
    let anchor = format!("{seq}:{}", head["head"]["sha256"].as_str().unwrap());
    let answer = scalar(&db, "SELECT max(id) FROM answers").await;
    // The answer's event and the two before it.
    exec(
        &db,
        &format!("DELETE FROM audit_events WHERE seq > {}", seq - 3),
    )
    .await;
    let (code, v) = verify(&db, &[]);
    assert_eq!(code, Some(1), "{v:#}");
    assert!(names(&v, Some("unlogged"), "answers", answer), "{v:#}");
    let (code, v) = verify(&db, &["--expect-head", &anchor]);
    assert_eq!(code, Some(1), "{v:#}");
    assert!(names(&v, Some("head"), "audit_events", seq), "{v:#}");
}

/// Deletes the answer (rows and event) and appends, in its place, a forged
/// `verdict` event covering a forged verdict, chained with correct hashes:
/// the database alone is consistent; only an anchored head tells.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consistently_rechained_tail_is_caught_by_an_expected_head() {
    let dir = tempdir();
    let db = corpus(dir.path()).await;
    // An export anchors the head in its manifest.
    let out = dir.path().join("export1");
    let (code, o, e) = run(
        &db,
        &[
            "audit",
            "export",
            "--format",
            "jsonl",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(0), "{o}{e}");
    let (_, head) = verify(&db, &[]);
    let seq = head["head"]["seq"].as_i64().unwrap();
    let anchor = format!("{seq}:{}", head["head"]["sha256"].as_str().unwrap());

    let old: i64 = scalar(
        &db,
        "SELECT id FROM verdicts WHERE purpose = 'rag_attributed' AND decision = 'excluded' ORDER BY id LIMIT 1",
    )
    .await;
    let p = pool(&db).await;
    let mut c = p.acquire().await.unwrap();
    // Drop the export and answer events and their rows.
    for sql in [
        "DELETE FROM answer_citations",
        "DELETE FROM answers",
        "DELETE FROM exports",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut *c)
            .await
            .unwrap();
    }
    let keep: i64 = sqlx::query_scalar(
        "SELECT min(seq) - 1 FROM audit_events WHERE kind IN ('answer', 'export')",
    )
    .fetch_one(&mut *c)
    .await
    .unwrap();
    sqlx::query("DELETE FROM audit_events WHERE seq > ?")
        .bind(keep)
        .execute(&mut *c)
        .await
        .unwrap();
    let _ = sqlx::query("DELETE FROM audit_refs WHERE seq > ?")
        .bind(keep)
        .execute(&mut *c)
        .await;
    // Forge a verdict row and an event covering it.
    let vid: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "INSERT INTO verdicts (set_id, page_url, purpose, decision, conditions, reasons, evidence_ids, policy_id, policy_sha256, decided_at)
         SELECT set_id, page_url, purpose, 'allowed', '[]', '[]', evidence_ids, policy_id, policy_sha256, decided_at + 1
         FROM verdicts WHERE id = {old} RETURNING id"
    )))
    .fetch_one(&mut *c)
    .await
    .unwrap();
    let url: String = sqlx::query_scalar("SELECT page_url FROM verdicts WHERE id = ?")
        .bind(vid)
        .fetch_one(&mut *c)
        .await
        .unwrap();
    let prev: String = sqlx::query_scalar("SELECT sha256 FROM audit_events WHERE seq = ?")
        .bind(keep)
        .fetch_one(&mut *c)
        .await
        .unwrap();
    let refs = vec![AuditRef {
        table: "verdicts".into(),
        id: vid,
        sha256: row_hash(&mut c, "verdicts", vid).await.unwrap().unwrap(),
    }];
    let content = content_hash(&refs);
    let payload = serde_json::json!({"decisions": {"rag_attributed": "allowed"}});
    let fseq = keep + 1;
    let hash = event_hash(
        fseq,
        1_800_000_100,
        "verdict",
        &url,
        &payload,
        &content,
        &prev,
    );
    let refs_json = canonical_json(
        &serde_json::json!([{"id": vid, "sha256": refs[0].sha256, "table": "verdicts"}]),
    );
    sqlx::query(
        "INSERT INTO audit_events (seq, time, kind, subject, payload, refs, content_sha256, prev_sha256, sha256)
         VALUES (?, 1800000100, 'verdict', ?, ?, ?, ?, ?, ?)",
    )
    .bind(fseq)
    .bind(&url)
    .bind(canonical_json(&payload))
    .bind(&refs_json)
    .bind(&content)
    .bind(&prev)
    .bind(&hash)
    .execute(&mut *c)
    .await
    .unwrap();
    let _ = sqlx::query(
        "INSERT INTO audit_refs (tbl, row_id, seq, sha256) VALUES ('verdicts', ?, ?, ?)",
    )
    .bind(vid)
    .bind(fseq)
    .bind(&refs[0].sha256)
    .execute(&mut *c)
    .await;
    drop(c);
    p.close().await;

    // Consistent: nothing in the database alone tells.
    let (code, v) = verify(&db, &[]);
    assert_eq!(code, Some(0), "{v:#}");
    // The anchored head does.
    let (code, v) = verify(&db, &["--expect-head", &anchor]);
    assert_eq!(code, Some(1), "{v:#}");
    assert!(names(&v, Some("head"), "audit_events", seq), "{v:#}");
    let (code, v) = verify(&db, &["--since-export", out.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{v:#}");
    assert!(
        v["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["kind"] == "head"),
        "{v:#}"
    );
    // A malformed anchor is a usage error, not a pass.
    let (code, _, _) = run(&db, &["audit", "verify", "--expect-head", "nonsense"]);
    assert_ne!(code, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapping_two_rows_ids_is_reported() {
    let dir = tempdir();
    let db = corpus(dir.path()).await;
    let (a, b) = (
        scalar(&db, "SELECT min(rowid) FROM links").await,
        scalar(&db, "SELECT min(rowid) + 1 FROM links").await,
    );
    exec(
        &db,
        &format!(
            "UPDATE links SET rowid = -1 WHERE rowid = {a};
             UPDATE links SET rowid = {a} WHERE rowid = {b};
             UPDATE links SET rowid = {b} WHERE rowid = -1;"
        ),
    )
    .await;
    let (code, v) = verify(&db, &[]);
    assert_eq!(code, Some(1), "{v:#}");
    assert!(names(&v, Some("changed"), "links", a), "{v:#}");
    assert!(names(&v, Some("changed"), "links", b), "{v:#}");
}

/// `tools/verify_audit.py`, an independent implementation of the README
/// recipe, agrees on a clean corpus and on an edited one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_verifier_agrees() {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ci-py/bin/python");
    assert!(
        python.exists(),
        "run tools/test.sh once to install {}",
        python.display()
    );
    let tool = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/verify_audit.py");
    let dir = tempdir();
    let db = corpus(dir.path()).await;
    let py = |extra: &[&str]| {
        let out = Command::new(&python)
            .arg(&tool)
            .arg(&db)
            .args(extra)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let v: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{e}: {text}\n{}", String::from_utf8_lossy(&out.stderr)));
        (out.status.code(), v)
    };
    let (code, v) = py(&[]);
    assert_eq!(code, Some(0), "{v:#}");
    let (_, rust) = verify(&db, &[]);
    assert_eq!(v["head"], rust["head"]);
    assert_eq!(v["events"], rust["events"]);
    assert_eq!(v["rows"], rust["rows"]);
    exec(
        &db,
        "UPDATE answer_citations SET quote = 'forged'; INSERT INTO links (page_id, ordinal, target_url, anchor_text, followed) VALUES (1, 9999, 'http://x/', 'x', 0);",
    )
    .await;
    let (code, v) = py(&[]);
    assert_eq!(code, Some(1), "{v:#}");
    let (_, rust) = verify(&db, &[]);
    let key = |v: &serde_json::Value| {
        let mut k: Vec<(String, String, i64)> = v["problems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["kind"].as_str().unwrap().to_string(),
                    p["table"].as_str().unwrap().to_string(),
                    p["id"].as_i64().unwrap(),
                )
            })
            .collect();
        k.sort();
        k
    };
    assert_eq!(key(&v), key(&rust), "python {v:#}\nrust {rust:#}");
    assert!(!key(&v).is_empty());
}
