//! The audit log's appender on PostgreSQL (issue #20): the same rows and
//! events give the same hashes on both backends, and many concurrent
//! writers make one contiguous chain.

use std::path::PathBuf;

use byline::store::Store;
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use sqlx::sqlite::SqliteConnection;

use crate::support::{pg, pg_chain, tempdir};

/// Identical rows on both backends: integers, NULLs, text, a BLOB/BYTEA,
/// REAL/DOUBLE values whole and fractional, a bookkeeping column (frontier
/// state) and a table addressed by rowid (policies_seen).
const ROWS: &[&str] = &[
    "INSERT INTO crawl_runs (id, started_at, finished_at, byline_version, user_agent, config_json, config_sha256, policy_sha256, seeds)
     VALUES (1, 1700000000, NULL, '0.1.0', 'BylineBot/0.1.0', '{\"a\":1}', 'c0ffee', NULL, '[\"http://127.0.0.1:1/\"]')",
    "INSERT INTO frontier (id, url, url_norm, origin, depth, discovered_from, first_run_id, state, attempts, next_attempt_at, updated_at, url_shape)
     VALUES (1, 'http://127.0.0.1:1/', 'http://127.0.0.1:1/', 'http://127.0.0.1:1', 0, NULL, 1, 'in_flight', 1, 0, 1700000001, '/')",
    "INSERT INTO robots_versions (id, run_id, origin, url, final_url, fetched_at, status, outcome, body, body_sha256, body_bytes, truncated, crawl_delay_secs, expires_at)
     VALUES (1, 1, 'http://127.0.0.1:1', 'http://127.0.0.1:1/robots.txt', NULL, 1700000002, 200, 'rules', x'557365722d6167656e743a202a0a4372617766c2', 'ab', 20, 0, 2.0, 1700086402)",
    "INSERT INTO robots_versions (id, run_id, origin, url, fetched_at, status, error, outcome, crawl_delay_secs, expires_at)
     VALUES (2, 1, 'http://127.0.0.1:2', 'http://127.0.0.1:2/robots.txt', 1700000003, NULL, 'connect: refused é', 'disallow_all', 1.5, 1700000303)",
    "INSERT INTO policies_seen (sha256, policy_id, body, first_seen_at) VALUES ('p1', 'eu-opt-out', x'00ff10', 1700000004)",
];

/// SQLite writes a blob literal as x'..'; PostgreSQL as '\x..'::bytea.
fn for_pg(sql: &str) -> String {
    let mut out = String::new();
    let mut rest = sql;
    while let Some(i) = rest.find("x'") {
        let (head, tail) = rest.split_at(i);
        out.push_str(head);
        let end = tail[2..].find('\'').unwrap() + 2;
        out.push_str(&format!("'\\x{}'::bytea", &tail[2..end]));
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    out
}

async fn events(store: &Store) -> Vec<String> {
    let payload = serde_json::json!({"run_id": 1, "ratio": 0.25, "whole": 3.0, "nested": {"b": [1, null, "x"], "a": true}});
    let mut out = Vec::new();
    let e = store
        .append_audit_event(
            1700000010,
            "crawl.start",
            "run:1",
            &payload,
            &[("crawl_runs", 1), ("frontier", 1)],
        )
        .await
        .expect("first event");
    assert_eq!(e.seq, 1);
    out.push(e.sha256.clone());
    for r in &e.refs {
        out.push(format!("{}:{}:{}", r.table, r.id, r.sha256));
    }
    let e = store
        .append_audit_event(
            1700000011,
            "robots.fetch",
            "http://127.0.0.1:1",
            &serde_json::json!({"status": 200}),
            &[
                ("robots_versions", 1),
                ("robots_versions", 2),
                ("policies_seen", 1),
            ],
        )
        .await
        .expect("second event");
    assert_eq!(e.seq, 2);
    out.push(e.sha256.clone());
    for r in &e.refs {
        out.push(format!("{}:{}:{}", r.table, r.id, r.sha256));
    }
    out
}

#[tokio::test]
async fn the_same_rows_and_events_hash_the_same_on_both_backends() {
    let dir = tempdir();
    let path = dir.path().join("corpus.db");
    let sqlite = Store::open(&path).await.expect("sqlite store");
    let url = pg::fresh_db().await;
    let postgres = Store::open(&PathBuf::from(&url))
        .await
        .expect("postgres store");

    let mut lite = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let mut pgc = PgConnection::connect(&url).await.unwrap();
    for sql in ROWS {
        sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&mut lite)
            .await
            .unwrap_or_else(|e| panic!("sqlite: {e}: {sql}"));
        sqlx::query(sqlx::AssertSqlSafe(for_pg(sql)))
            .execute(&mut pgc)
            .await
            .unwrap_or_else(|e| panic!("postgres: {e}: {sql}"));
    }
    let a = events(&sqlite).await;
    let b = events(&postgres).await;
    assert_eq!(a, b, "event and row hashes differ between the backends");
    // The chain stored on PostgreSQL walks by the recipe.
    let kinds = pg_chain::walk(&url).await;
    assert_eq!(kinds.len(), 2);

    // A bookkeeping column changes nothing; a logged column changes the row hash.
    for sql in [
        "UPDATE frontier SET state = 'done', attempts = 2",
        "UPDATE robots_versions SET crawl_delay_secs = 2.5 WHERE id = 1",
    ] {
        sqlx::query(sql).execute(&mut lite).await.unwrap();
        sqlx::query(sql).execute(&mut pgc).await.unwrap();
    }
    let refs = [("frontier", 1), ("robots_versions", 1)];
    let ea = sqlite
        .append_audit_event(1700000020, "check", "x", &serde_json::json!({}), &refs)
        .await
        .unwrap();
    let eb = postgres
        .append_audit_event(1700000020, "check", "x", &serde_json::json!({}), &refs)
        .await
        .unwrap();
    assert_eq!(ea.sha256, eb.sha256);
    assert_eq!(
        ea.refs[0].sha256,
        a[2].rsplit(':').next().unwrap(),
        "bookkeeping is not hashed"
    );
    assert_ne!(
        ea.refs[1].sha256,
        a[4].rsplit(':').next().unwrap(),
        "a logged column is hashed"
    );
    lite.close().await.ok();
    pgc.close().await.ok();
}

#[tokio::test]
async fn many_concurrent_appenders_make_one_chain() {
    let url = pg::fresh_db().await;
    let db = PathBuf::from(&url);
    // Separate stores (separate pools), as separate machines would have.
    let mut tasks = Vec::new();
    for w in 0..6 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            let store = Store::open(&db).await.expect("store");
            for i in 0..25 {
                store
                    .append_audit_event(
                        1700000000 + i,
                        "test",
                        &format!("worker:{w}"),
                        &serde_json::json!({"i": i}),
                        &[],
                    )
                    .await
                    .expect("append");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let chain = pg_chain::walk(&url).await;
    assert_eq!(chain.len(), 150);
    for w in 0..6 {
        let n = chain
            .iter()
            .filter(|(_, s)| s == &format!("worker:{w}"))
            .count();
        assert_eq!(n, 25, "worker {w}");
    }
}
