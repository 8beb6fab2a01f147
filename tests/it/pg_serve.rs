//! The read and answer side on PostgreSQL (issue #20): `store copy` of a
//! crawled SQLite corpus into a real PostgreSQL database, `audit verify`
//! there (and tampering found), retrieval and answers citing the same pages
//! on both backends, and two `serve` replicas answering concurrently from
//! one database with every answer recorded.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use sqlx::Connection;

use crate::support::answer::sample_db;
use crate::support::model::default_model;
use crate::support::{byline_bin, pg, tempdir};

const MILL: &str = "Who built the Old Fulling Mill?";

fn byline(db: &Path, args: &[&str]) -> Output {
    Command::new(byline_bin())
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .expect("running byline")
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

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
    assert_eq!(got, want);
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
