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
