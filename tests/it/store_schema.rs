//! The store opens a fresh file and applies every migration.

use byline::store::Store;

use crate::support::tempdir;

#[tokio::test]
async fn opening_an_empty_file_applies_migrations_and_reopens_cleanly() {
    let dir = tempdir();
    let path = dir.path().join("corpus.db");
    let store = Store::open(&path).await.expect("first open");
    store.close().await;
    assert!(path.exists(), "database file was created");
    let store = Store::open(&path).await.expect("second open is idempotent");
    store.close().await;
}
