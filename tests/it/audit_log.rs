//! The hash-chained audit log over a real crawl of the consent fixture
//! world: every stage logs, `byline audit verify` passes on an untouched
//! corpus and names the row edited behind its back with plain SQL.

use std::process::Command;

use byline::store::audit::EventFilter;

use crate::support::audit_world::{ORIGINS, crawled};
use crate::support::byline_bin;

fn verify(db: &std::path::Path) -> (bool, serde_json::Value, String) {
    let out = Command::new(byline_bin())
        .args(["--db", db.to_str().unwrap(), "audit", "verify", "--json"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let v: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{e}: {text} {}", String::from_utf8_lossy(&out.stderr)));
    let human = Command::new(byline_bin())
        .args(["--db", db.to_str().unwrap(), "audit", "verify"])
        .output()
        .unwrap();
    assert_eq!(human.status.success(), out.status.success());
    (
        out.status.success(),
        v,
        String::from_utf8_lossy(&human.stdout).into_owned(),
    )
}

async fn exec(db: &std::path::Path, sql: &str) {
    let pool =
        sqlx::SqlitePool::connect_with(sqlx::sqlite::SqliteConnectOptions::new().filename(db))
            .await
            .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_stage_logs_and_verify_names_the_row_edited_behind_its_back() {
    let w = crawled(&ORIGINS).await;
    let store = &w.corpus.store;
    let kinds: Vec<String> = store
        .audit_kind_counts()
        .await
        .unwrap()
        .into_iter()
        .map(|(k, n)| {
            assert!(n > 0);
            k
        })
        .collect();
    for k in [
        "fetch",
        "robots.fetch",
        "robots.decision",
        "verdict",
        "policy.new",
        "origin_file.fetch",
    ] {
        assert!(kinds.contains(&k.to_string()), "no {k} event in {kinds:?}");
    }
    // One verdict event per page the crawl met, covering its verdict rows.
    let open_index = w.origin("open").url("/");
    let ev = store
        .audit_events(&EventFilter {
            subject: Some(open_index.clone()),
            kind: Some("verdict".into()),
        })
        .await
        .unwrap();
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(
        ev[0].refs.iter().filter(|r| r.table == "verdicts").count(),
        3
    );

    let db = w.corpus.path.clone();
    let (ok, v, human) = verify(&db);
    assert!(ok, "{v}");
    assert!(human.starts_with("ok: "), "{human}");
    assert!(v["events"].as_i64().unwrap() > 20);

    // Edit one verdict: verify names exactly that row.
    let vid = ev[0]
        .refs
        .iter()
        .find(|r| r.table == "verdicts")
        .unwrap()
        .id;
    exec(
        &db,
        &format!("UPDATE verdicts SET decision = CASE decision WHEN 'excluded' THEN 'allowed' ELSE 'excluded' END WHERE id = {vid}"),
    )
    .await;
    let (ok, v, human) = verify(&db);
    assert!(!ok);
    assert_eq!(v["first_tampered"]["table"], "verdicts", "{v}");
    assert_eq!(v["first_tampered"]["id"], vid);
    assert_eq!(v["first_tampered"]["seq"], ev[0].seq);
    assert!(
        human.starts_with(&format!("TAMPERED: verdicts row {vid} ")),
        "{human}"
    );
    assert_eq!(v["problems"].as_array().unwrap().len(), 1, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editing_page_text_or_the_log_itself_is_detected() {
    let w = crawled(&["open", "private"]).await;
    let db = w.corpus.path.clone();
    assert!(verify(&db).0);
    // A page's text (outside the row hash, checked against text_sha256).
    exec(
        &db,
        "UPDATE pages SET text = text || ' (edited)' WHERE id = 2",
    )
    .await;
    let (ok, v, _) = verify(&db);
    assert!(!ok);
    assert_eq!(v["first_tampered"]["table"], "pages", "{v}");
    assert_eq!(v["first_tampered"]["id"], 2);
    exec(
        &db,
        "UPDATE pages SET text = substr(text, 1, length(text) - 9) WHERE id = 2",
    )
    .await;
    assert!(verify(&db).0, "restoring the text restores the check");

    // An event's payload: its own hash no longer matches.
    exec(
        &db,
        "UPDATE audit_events SET subject = 'http://elsewhere/' WHERE seq = 5",
    )
    .await;
    let (ok, v, _) = verify(&db);
    assert!(!ok);
    assert_eq!(v["first_tampered"]["table"], "audit_events", "{v}");
    assert_eq!(v["first_tampered"]["id"], 5);

    // Deleting an event breaks the chain at the next one.
    let w2 = crawled(&["private"]).await;
    let db2 = w2.corpus.path.clone();
    exec(&db2, "DELETE FROM audit_events WHERE seq = 3").await;
    let (ok, v, _) = verify(&db2);
    assert!(!ok);
    assert_eq!(v["first_tampered"]["table"], "audit_events", "{v}");
    assert_eq!(v["first_tampered"]["id"], 4);
}

/// A value of the wrong type written behind the tool's back (a BLOB in a
/// TEXT column) is a reported problem, never a panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_of_the_wrong_type_are_reported_not_a_panic() {
    let w = crawled(&["open"]).await;
    let db = w.corpus.path.clone();
    assert!(verify(&db).0);
    exec(
        &db,
        "UPDATE pages SET text = CAST(text AS BLOB) WHERE id = 1",
    )
    .await;
    exec(
        &db,
        "UPDATE audit_events SET payload = CAST(payload AS BLOB) WHERE seq = 2",
    )
    .await;
    let out = Command::new(byline_bin())
        .args(["--db", db.to_str().unwrap(), "audit", "verify"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stdout.contains("text is not text (stored as BLOB)"),
        "{stdout}"
    );
    assert!(stdout.contains("unreadable event"), "{stdout}");
}
