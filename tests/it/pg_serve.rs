//! The read and answer side on PostgreSQL (issue #20): `store copy` of a
//! crawled SQLite corpus into a real PostgreSQL database, `audit verify`
//! there (and tampering found), retrieval and answers citing the same pages
//! on both backends, and two `serve` replicas answering concurrently from
//! one database with every answer recorded.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::Connection;

use crate::support::answer::sample_db;
use crate::support::model::default_model;
use crate::support::serve::{BodyJson, JsonBody, http};
use crate::support::{byline_bin, pg, tempdir};

const MILL: &str = "Who built the Old Fulling Mill?";

use crate::support::{byline_on as byline, output_text as text};

fn json_of(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(o)))
}

/// `byline ask --json` with a short answer.
fn ask(db: &Path, question: &str) -> Value {
    let model = default_model();
    let o = byline(
        db,
        &[
            "ask",
            "--json",
            "-n",
            "32",
            "--model",
            model.to_str().unwrap(),
            question,
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    json_of(&o)
}

/// `byline store copy --from db --to url --json`.
fn store_copy(db: &Path, url: &str) -> Output {
    Command::new(byline_bin())
        .args(["store", "copy", "--json", "--from"])
        .arg(db)
        .args(["--to", url])
        .output()
        .expect("running byline store copy")
}

/// A crawled sample-site corpus (with one recorded answer) and its copy on
/// a fresh PostgreSQL database: (dir, sqlite path, origin, postgres url).
async fn copied_corpus() -> (tempfile::TempDir, PathBuf, String, String) {
    let dir = tempdir();
    let (db, origin) = sample_db(dir.path());
    let a = ask(&db, MILL);
    assert!(a["answer_id"].as_i64().is_some(), "{a}");
    let url = pg::fresh_db().await;
    let o = store_copy(&db, &url);
    assert!(o.status.success(), "{}", text(&o));
    (dir, db, origin, url)
}

async fn pg_conn(url: &str) -> sqlx::PgConnection {
    sqlx::PgConnection::connect(url)
        .await
        .expect("connecting to the test database")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_store_copy_moves_every_row_and_audit_verify_checks_it_there() {
    let (_dir, db, _origin, url) = copied_corpus().await;

    // Every table arrived whole.
    let sqlite = byline::store::Store::open_existing(&db).await.unwrap();
    let postgres = byline::store::Store::open_existing(&PathBuf::from(&url))
        .await
        .unwrap();
    let want = byline::store::copy::table_counts(&sqlite).await.unwrap();
    let got = byline::store::copy::table_counts(&postgres).await.unwrap();
    // PostgreSQL's own tables (the shared crawl state) arrive empty.
    let (shared, pg_only): (Vec<_>, Vec<_>) = got
        .into_iter()
        .partition(|(t, _)| want.iter().any(|(w, _)| w == t));
    assert_eq!(shared, want);
    assert!(pg_only.iter().all(|(_, n)| *n == 0), "{pg_only:?}");
    for t in [
        "pages",
        "passages",
        "verdicts",
        "answers",
        "answer_citations",
        "audit_events",
        "links",
    ] {
        let n = want.iter().find(|(n, _)| n == t).map(|x| x.1).unwrap_or(0);
        assert!(n > 0, "the sample corpus has no {t} rows: {want:?}");
    }
    let (seq, head) = sqlite.audit_head().await.unwrap().unwrap();
    // The log reads back the same: every event, by kind.
    let all = byline::store::audit::EventFilter::default();
    assert_eq!(
        postgres.audit_events(&all).await.unwrap(),
        sqlite.audit_events(&all).await.unwrap()
    );
    assert_eq!(
        postgres.audit_kind_counts().await.unwrap(),
        sqlite.audit_kind_counts().await.unwrap()
    );
    assert_eq!(
        postgres.audit_head().await.unwrap(),
        Some((seq, head.clone()))
    );

    // A second copy into the same database is refused (input error).
    let o = store_copy(&db, &url);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("not empty"), "{}", text(&o));

    // audit verify on PostgreSQL: the whole chain, every covered row.
    let pgdb = PathBuf::from(&url);
    let o = byline(
        &pgdb,
        &[
            "audit",
            "verify",
            "--json",
            "--expect-head",
            &format!("{seq}:{head}"),
        ],
    );
    let v = json_of(&o);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["events"], seq, "{v}");
    assert!(v["rows"].as_i64().unwrap() > 100, "{v}");

    // One row edited behind Byline's back with a plain UPDATE: found.
    let mut c = pg_conn(&url).await;
    let page: i64 = sqlx::query_scalar("SELECT min(id) FROM pages")
        .fetch_one(&mut c)
        .await
        .unwrap();
    sqlx::query("UPDATE pages SET title = title || ' (edited)' WHERE id = $1")
        .bind(page)
        .execute(&mut c)
        .await
        .unwrap();
    let o = byline(&pgdb, &["audit", "verify", "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let v = json_of(&o);
    assert_eq!(v["ok"], false);
    let first = &v["first_tampered"];
    assert_eq!(first["kind"], "changed", "{v}");
    assert_eq!(first["table"], "pages", "{v}");
    assert_eq!(first["id"], page, "{v}");
    // And a row inserted behind its back is unlogged.
    sqlx::query("UPDATE pages SET title = replace(title, ' (edited)', '') WHERE id = $1")
        .bind(page)
        .execute(&mut c)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO tombstones (url_sha256, origin, forgotten_at, reason) VALUES ('ab', 'http://x.invalid', 1, 'forged')",
    )
    .execute(&mut c)
    .await
    .unwrap();
    let o = byline(&pgdb, &["audit", "verify", "--json"]);
    let v = json_of(&o);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let problems = v["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{v}");
    assert_eq!(problems[0]["kind"], "unlogged", "{v}");
    assert_eq!(problems[0]["table"], "tombstones", "{v}");
}

/// Each citation's quote is the page's stored text at its offsets.
async fn citations_check_out(store: &byline::store::Store, answer: &Value) -> Vec<String> {
    let mut urls = Vec::new();
    for c in answer["citations"].as_array().unwrap() {
        let url = c["url"].as_str().unwrap();
        let page = store.page_text(url).await.unwrap().expect("cited page");
        let (s, e) = (
            c["start"].as_u64().unwrap() as usize,
            c["end"].as_u64().unwrap() as usize,
        );
        let quoted: String = page.chars().skip(s).take(e - s).collect();
        assert_eq!(quoted, c["quote"].as_str().unwrap(), "{c}");
        let hit = store
            .allowed_passage(c["passage_id"].as_i64().unwrap(), None)
            .await
            .unwrap()
            .expect("the cited passage is allowed");
        assert_eq!(hit.page_id, c["page_id"].as_i64().unwrap());
        urls.push(url.to_string());
    }
    urls.sort();
    urls.dedup();
    urls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_answers_cite_the_same_pages_as_on_sqlite_and_are_recorded() {
    let (_dir, db, origin, url) = copied_corpus().await;
    let pgdb = PathBuf::from(&url);
    let sqlite = byline::store::Store::open_existing(&db).await.unwrap();
    let postgres = byline::store::Store::open_existing(&pgdb).await.unwrap();

    // Retrieval: the same best pages for the question.
    let a = byline::index::retrieve(&sqlite, MILL, None, 4)
        .await
        .unwrap();
    let b = byline::index::retrieve(&postgres, MILL, None, 4)
        .await
        .unwrap();
    assert!(!b.is_empty(), "nothing retrieved on PostgreSQL");
    assert_eq!(a[0].hit.url, b[0].hit.url, "best page differs");
    // A word in no passage finds nothing; a page under a gone origin is
    // never retrieved.
    assert!(
        byline::index::retrieve(&postgres, "zyzzyvas", None, 4)
            .await
            .unwrap()
            .is_empty()
    );

    // --policy reads the policies seen on PostgreSQL too: one no verdict
    // was decided under is an input error naming it, before any model work.
    let other = concat!(env!("CARGO_MANIFEST_DIR"), "/policies/strict-opt-in.toml");
    let o = byline(&pgdb, &["ask", "--policy", other, MILL]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("no verdict in the corpus was decided under policy"),
        "{}",
        text(&o)
    );

    let on_sqlite = ask(&db, MILL);
    let on_pg = ask(&pgdb, MILL);
    for a in [&on_sqlite, &on_pg] {
        assert_eq!(a["refused"], false, "{a}");
        assert!(!a["citations"].as_array().unwrap().is_empty(), "{a}");
    }
    let cited_sqlite = citations_check_out(&sqlite, &on_sqlite).await;
    let cited_pg = citations_check_out(&postgres, &on_pg).await;
    assert_eq!(cited_pg, cited_sqlite);
    assert!(
        cited_pg.contains(&format!("{origin}/history.html")),
        "{cited_pg:?}"
    );
    // The copy's sequences were moved past the copied ids: the new answer
    // takes the next id on both backends.
    assert_eq!(on_pg["answer_id"], on_sqlite["answer_id"]);

    // Recorded on PostgreSQL with its audit event: list, show, verify.
    let id = on_pg["answer_id"].as_i64().unwrap();
    let o = byline(&pgdb, &["answers", "list", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let list = json_of(&o);
    assert_eq!(list[0]["id"], id, "{list}");
    assert_eq!(list[0]["question"], MILL);
    let o = byline(&pgdb, &["answers", "show", &id.to_string(), "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let shown = json_of(&o);
    assert_eq!(shown["answer"], on_pg["answer"], "{shown}");
    let o = byline(&pgdb, &["audit", "verify", "--json"]);
    assert!(o.status.success(), "{}", text(&o));

    // Flagging on PostgreSQL: the answers citing a page, logged.
    let page = on_pg["citations"][0]["page_id"].as_i64().unwrap();
    let flagged = postgres.flag_answers_citing(page, 999).await.unwrap();
    assert!(flagged.contains(&id), "{flagged:?}");
    let row = postgres.answer(id).await.unwrap().unwrap();
    assert_eq!(row.flag_page_id, Some(page));
    assert!(
        postgres
            .answers_citing(page)
            .await
            .unwrap()
            .iter()
            .any(|r| r.id == id)
    );
    let o = byline(&pgdb, &["audit", "verify", "--json"]);
    assert!(
        o.status.success(),
        "flagging left the log unverifiable: {}",
        text(&o)
    );

    // A gone origin is never retrieved on PostgreSQL either.
    postgres.mark_origin_gone(&origin, "test", 1).await.unwrap();
    assert!(
        byline::index::retrieve(&postgres, MILL, None, 4)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A running `byline serve --db postgres://…` replica; killed when dropped.
struct Replica {
    child: Child,
    addr: SocketAddr,
}

impl Replica {
    fn start(url: &str, workers: &str) -> Replica {
        Replica::start_with(url, workers, &[])
    }

    /// [`Replica::start`] with more `serve` options.
    fn start_with(url: &str, workers: &str, extra: &[&str]) -> Replica {
        let model = default_model();
        let mut child = Command::new(byline_bin())
            .args([
                "--db",
                url,
                "serve",
                "--addr",
                "127.0.0.1:0",
                "--max-tokens",
                "16",
            ])
            .args(["--workers", workers])
            .args(extra)
            .arg("--model")
            .arg(&model)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting byline serve");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let t0 = Instant::now();
        let addr = loop {
            let line = lines
                .next()
                .expect("byline serve exited before listening")
                .unwrap();
            if let Some(rest) = line.split("listening on http://").nth(1) {
                break rest.trim_end_matches('/').parse().unwrap();
            }
            assert!(t0.elapsed() < Duration::from_secs(120), "no listening line");
        };
        std::thread::spawn(move || for _ in lines {});
        Replica { child, addr }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_two_serve_replicas_answer_concurrently_and_record_every_answer() {
    let (_dir, _db, _origin, url) = copied_corpus().await;
    let mut c = pg_conn(&url).await;
    let answers_before: i64 = sqlx::query_scalar("SELECT count(*) FROM answers")
        .fetch_one(&mut c)
        .await
        .unwrap();
    let events_before: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE kind = 'answer'")
            .fetch_one(&mut c)
            .await
            .unwrap();

    let replicas = [Replica::start(&url, "2"), Replica::start(&url, "2")];
    let client = http();
    let health = client
        .get(replicas[0].url("/healthz"))
        .send()
        .await
        .unwrap()
        .body_json()
        .await;
    assert_eq!(health["workers"]["configured"], 2, "{health}");

    let questions = [
        MILL,
        "When was the Old Fulling Mill built?",
        "Who built the Old Fulling Mill?",
    ];
    let mut jobs = Vec::new();
    for r in &replicas {
        for q in questions {
            let c = client.clone();
            let u = r.url("/v1/answers");
            jobs.push(tokio::spawn(async move {
                let resp = c
                    .post(u)
                    .json_body(&json!({"question": q, "max_tokens": 16}))
                    .send()
                    .await
                    .unwrap();
                let status = resp.status().as_u16();
                (status, resp.body_json().await)
            }));
        }
    }
    let mut ids = Vec::new();
    for j in jobs {
        let (status, v) = j.await.unwrap();
        assert_eq!(status, 200, "{v}");
        ids.push(
            v["answer_id"]
                .as_i64()
                .unwrap_or_else(|| panic!("not recorded: {v}")),
        );
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 6, "{ids:?}");

    let answers: i64 = sqlx::query_scalar("SELECT count(*) FROM answers")
        .fetch_one(&mut c)
        .await
        .unwrap();
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE kind = 'answer'")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(answers - answers_before, 6);
    assert_eq!(events - events_before, 6);
    drop(replicas);
    let o = byline(&PathBuf::from(&url), &["audit", "verify", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(json_of(&o)["ok"], true);
}

/// The admin guard on PostgreSQL: `POST /v1/admin/forget` without the
/// token, or with a wrong one, is refused and changes nothing; with it the
/// page is erased there (never retrieved again, the answer citing it
/// flagged) and the log still verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_admin_forget_needs_the_token_and_erases_the_page_there() {
    let (_dir, _db, origin, url) = copied_corpus().await;
    let pgdb = PathBuf::from(&url);
    let postgres = byline::store::Store::open_existing(&pgdb).await.unwrap();
    let page = format!("{origin}/history.html");
    let retrieved = || async {
        byline::index::retrieve(&postgres, MILL, None, 8)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.hit.url)
            .collect::<Vec<_>>()
    };
    assert!(retrieved().await.contains(&page));
    let cited: i64 =
        sqlx::query_scalar("SELECT count(*) FROM answers WHERE flag_page_id IS NOT NULL")
            .fetch_one(&mut pg_conn(&url).await)
            .await
            .unwrap();
    assert_eq!(cited, 0);

    let r = Replica::start_with(&url, "1", &["--admin-token", "pg-s3cret"]);
    let c = http();
    let body = json!({"url": page, "reason": "owner asked"});
    for auth in [None, Some("Bearer wrong-one"), Some("pg-s3cret")] {
        let mut req = c.post(r.url("/v1/admin/forget")).json_body(&body);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{auth:?}");
    }
    assert!(retrieved().await.contains(&page), "a refused forget erased");

    let resp = c
        .post(r.url("/v1/admin/forget"))
        .header("authorization", "Bearer pg-s3cret")
        .json_body(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let v = resp.body_json().await;
    assert_eq!(status, 200, "{v}");
    assert!(!retrieved().await.contains(&page), "{v}");
    let flagged: i64 =
        sqlx::query_scalar("SELECT count(*) FROM answers WHERE flag_page_id IS NOT NULL")
            .fetch_one(&mut pg_conn(&url).await)
            .await
            .unwrap();
    assert!(flagged >= 1, "{v}");
    let o = byline(&pgdb, &["audit", "verify", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
}
