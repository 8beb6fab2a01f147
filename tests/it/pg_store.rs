//! The store on both backends (issue #20): the same calls against an SQLite
//! file and a real PostgreSQL database give the same results.

use std::path::{Path, PathBuf};

use byline::store::{Store, StoreError};

use crate::support::{pg, tempdir};

/// Opens a fresh corpus on each backend: (name, store).
async fn both_backends(dir: &Path) -> Vec<(&'static str, Store)> {
    let sqlite = Store::open(&dir.join("corpus.db"))
        .await
        .expect("sqlite store");
    let url = pg::fresh_db().await;
    let postgres = Store::open(&PathBuf::from(&url))
        .await
        .expect("postgres store");
    assert_eq!(sqlite.backend_name(), "sqlite");
    assert_eq!(postgres.backend_name(), "postgres");
    vec![("sqlite", sqlite), ("postgres", postgres)]
}

#[tokio::test]
async fn corpus_meta_round_trips_on_both_backends() {
    let dir = tempdir();
    for (name, store) in both_backends(dir.path()).await {
        assert_eq!(store.demo_origin().await.unwrap(), None, "{name}");
        store.set_demo_origin("http://127.0.0.1:1").await.unwrap();
        store.set_demo_origin("http://127.0.0.1:2").await.unwrap();
        assert_eq!(
            store.demo_origin().await.unwrap().as_deref(),
            Some("http://127.0.0.1:2"),
            "{name}"
        );
    }
}

#[tokio::test]
async fn postgres_schema_applies_once_and_reopens() {
    let url = pg::fresh_db().await;
    let db = PathBuf::from(&url);
    // Read commands never create a corpus: an empty database has no schema.
    match Store::open_existing(&db).await {
        Err(StoreError::Missing { path }) => assert!(path.starts_with("postgres://"), "{path}"),
        other => panic!("expected Missing, got {other:?}"),
    }
    // Two openers at once (two machines starting): migrations apply once.
    let (a, b) = tokio::join!(Store::open(&db), Store::open(&db));
    let (a, b) = (a.expect("first opener"), b.expect("second opener"));
    a.set_demo_origin("http://127.0.0.1:9").await.unwrap();
    let again = Store::open_existing(&db).await.expect("reopens");
    assert_eq!(
        again.demo_origin().await.unwrap().as_deref(),
        Some("http://127.0.0.1:9")
    );
    drop((a, b));
}

#[tokio::test]
async fn refresh_reads_work_on_postgres() {
    // `crawl --refresh`'s reads have PostgreSQL statements (they answered
    // Unsupported before): an empty corpus has no page, no versions and
    // no policy in force. (Unsupported itself: a unit test in store/mod.rs.)
    let url = pg::fresh_db().await;
    let store = Store::open(&PathBuf::from(&url)).await.unwrap();
    assert!(store.refresh_page(1).await.unwrap().is_none());
    assert!(
        store
            .page_versions("http://127.0.0.1:1/")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.newest_verdict_policy().await.unwrap(), None);
    assert!(store.recheck_pages(None).await.unwrap().is_empty());
    assert!(store.revocations(None).await.unwrap().is_empty());
}

/// Indexes as `(table, index, columns)`, the non-unique, non-partial ones
/// only (a unique index enforces a rule; a partial one covers other rows).
fn redundant(indexes: &[(String, String, Vec<String>)]) -> Vec<String> {
    let mut out = Vec::new();
    for (t, a, ca) in indexes {
        for (u, b, cb) in indexes {
            if t == u && a != b && cb.len() >= ca.len() && cb[..ca.len()] == ca[..] {
                out.push(format!("{t}: {a} {ca:?} is a prefix of {b} {cb:?}"));
            }
        }
    }
    out
}

/// Issue #26: every index is paid for by every insert into its table, so
/// none may be one another index already answers (its columns a prefix of
/// the other's), on either backend.
#[tokio::test]
async fn no_index_is_a_prefix_of_another_on_either_backend() {
    use sqlx::Row;
    let dir = tempdir();
    let path = dir.path().join("corpus.db");
    Store::open(&path).await.expect("sqlite store");
    let pool = crate::support::crawl::probe(&path).await;
    let mut sqlite = Vec::new();
    let rows = sqlx::query(
        "SELECT m.tbl_name, m.name,
                (SELECT json_group_array(name) FROM (SELECT name FROM pragma_index_info(m.name) ORDER BY seqno))
         FROM sqlite_master m
         JOIN pragma_index_list(m.tbl_name) l ON l.name = m.name
         WHERE m.type = 'index' AND l.\"unique\" = 0 AND l.partial = 0",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for r in rows {
        let cols: Vec<String> = serde_json::from_str(&r.get::<String, _>(2)).unwrap();
        sqlite.push((r.get(0), r.get(1), cols));
    }
    assert!(sqlite.len() > 10, "{sqlite:?}");
    assert_eq!(redundant(&sqlite), Vec::<String>::new(), "sqlite");

    let url = pg::fresh_db().await;
    Store::open(&PathBuf::from(&url))
        .await
        .expect("postgres store");
    let pg_pool = sqlx::PgPool::connect(&url).await.unwrap();
    let rows = sqlx::query(
        "SELECT t.relname::text, c.relname::text,
                ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, ord)
                      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                      ORDER BY k.ord)
         FROM pg_index i
         JOIN pg_class c ON c.oid = i.indexrelid
         JOIN pg_class t ON t.oid = i.indrelid
         JOIN pg_namespace n ON n.oid = t.relnamespace
         WHERE n.nspname = current_schema() AND NOT i.indisunique AND i.indpred IS NULL",
    )
    .fetch_all(&pg_pool)
    .await
    .unwrap();
    let postgres: Vec<(String, String, Vec<String>)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert!(postgres.len() > 10, "{postgres:?}");
    pg_pool.close().await;
    assert_eq!(redundant(&postgres), Vec::<String>::new(), "postgres");
}

/// Claims given back (entries the crawler claimed ahead and never started,
/// issue #26) are queued again on both backends: the attempt not counted,
/// due no earlier than the wait given, and only the run's own claims.
#[tokio::test]
async fn claims_given_back_are_queued_again_on_both_backends() {
    use byline::store::crawl::RunRecord;
    use byline::store::frontier::{Lease, NewEntry};
    let dir = tempdir();
    for (name, store) in both_backends(dir.path()).await {
        let run = store
            .crawl_run_start(&RunRecord {
                started_at: 100,
                byline_version: "test".into(),
                user_agent: "test".into(),
                config_json: "{}".into(),
                config_sha256: "0".into(),
                policy_sha256: None,
                seeds_json: "[]".into(),
            })
            .await
            .unwrap();
        let seeds: Vec<NewEntry> = ["http://a", "http://b"]
            .iter()
            .map(|o| NewEntry {
                url: format!("{o}/"),
                url_norm: format!("{o}/"),
                origin: o.to_string(),
                depth: 0,
                discovered_from: None,
                shape: None,
            })
            .collect();
        store.frontier_add_seeds(run, &seeds, 100).await.unwrap();
        let lease = Lease {
            worker: "w".into(),
            ms: 60_000,
        };
        let got = store
            .frontier_claim_ready(run, 200, &lease, &[], 8, 1)
            .await
            .unwrap();
        assert_eq!(got.len(), 2, "{name}");
        assert!(got.iter().all(|e| e.attempts == 1), "{name}");
        let ids: Vec<i64> = got.iter().map(|e| e.id).collect();
        assert_eq!(
            store
                .frontier_release(run + 1, &ids, 210, Some(900))
                .await
                .unwrap(),
            0,
            "{name}: another run's claims"
        );
        assert_eq!(
            store
                .frontier_release(run, &ids, 210, Some(900))
                .await
                .unwrap(),
            2,
            "{name}"
        );
        // Queued, but not before the wait.
        assert!(
            store
                .frontier_claim_ready(run, 899, &lease, &[], 8, 1)
                .await
                .unwrap()
                .is_empty(),
            "{name}"
        );
        let again = store
            .frontier_claim_ready(run, 900, &lease, &[], 8, 1)
            .await
            .unwrap();
        assert_eq!(again.len(), 2, "{name}");
        assert!(
            again.iter().all(|e| e.attempts == 1),
            "{name}: attempt counted twice"
        );
    }
}
