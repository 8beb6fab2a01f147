//! Test helpers that read a store's schema as SQLite plans it: the indexes
//! of a table and a statement's query plan (issue #26's index choices are
//! tested through them).

use sqlx::{Row, SqlitePool};

/// A new, migrated SQLite store in a temporary directory (kept alive by
/// the returned guard).
pub(crate) async fn fresh() -> (tempfile::TempDir, crate::store::Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::Store::open(&dir.path().join("c.db"))
        .await
        .unwrap();
    (dir, store)
}

/// A value bound to a statement whose plan is asked for.
pub(crate) enum Bind {
    Int(i64),
    Text(&'static str),
}

/// The names of `table`'s indexes, sorted.
pub(crate) async fn indexes(pool: &SqlitePool, table: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ? ORDER BY name",
    )
    .bind(table)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// The details of `EXPLAIN QUERY PLAN sql` with `binds`.
pub(crate) async fn plan(pool: &SqlitePool, sql: &str, binds: &[Bind]) -> Vec<String> {
    let q = format!("EXPLAIN QUERY PLAN {sql}");
    let mut query = sqlx::query(sqlx::AssertSqlSafe(q));
    for b in binds {
        query = match b {
            Bind::Int(v) => query.bind(*v),
            Bind::Text(v) => query.bind(*v),
        };
    }
    query
        .fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>(3))
        .collect()
}
