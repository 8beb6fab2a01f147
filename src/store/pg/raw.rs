//! Raw captures on PostgreSQL: the crawl's write of [`crate::store::raw`].

use sqlx::postgres::PgConnection;

use crate::store::StoreError;
use crate::store::raw::{ENCODING_GZIP, RawCapture};

pub(crate) async fn insert_raw_in(
    conn: &mut PgConnection,
    fetch_id: i64,
    raw: &RawCapture,
) -> Result<i64, StoreError> {
    sqlx::query(
        "INSERT INTO raw_captures (sha256, encoding, size, bytes) VALUES ($1, $2, $3, $4)
         ON CONFLICT (sha256) DO NOTHING",
    )
    .bind(&raw.sha256)
    .bind(ENCODING_GZIP)
    .bind(raw.size)
    .bind(&raw.gz)
    .execute(&mut *conn)
    .await?;
    sqlx::query("INSERT INTO fetch_raw (fetch_id, raw_sha256, http_version) VALUES ($1, $2, $3)")
        .bind(fetch_id)
        .bind(&raw.sha256)
        .bind(&raw.http_version)
        .execute(&mut *conn)
        .await?;
    Ok(fetch_id)
}
