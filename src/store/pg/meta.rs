//! `corpus_meta` on PostgreSQL: key/value facts about the corpus.
//!
//! The pattern every ported store function follows: the `Store` method in
//! the SQLite module starts with `if let Some(pg) = self.pg() { return
//! pg::<module>::<fn>(pg, …).await; }` and the PostgreSQL statement lives
//! here, with `$n` placeholders and typed rows.

use sqlx::postgres::PgPool;

use crate::store::StoreError;

pub(crate) async fn demo_origin(pool: &PgPool) -> Result<Option<String>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT value FROM corpus_meta WHERE key = 'demo_origin'")
            .fetch_optional(pool)
            .await?,
    )
}

pub(crate) async fn set_demo_origin(pool: &PgPool, origin: &str) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO corpus_meta (key, value) VALUES ('demo_origin', $1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )
    .bind(origin)
    .execute(pool)
    .await?;
    Ok(())
}
