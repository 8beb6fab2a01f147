//! Raw captures: a page's HTTP response body as fetched, gzip-compressed and
//! content-addressed by the sha256 of the body (`raw_captures`), linked to
//! its fetch with the HTTP version of the status line (`fetch_raw`). The
//! status and headers stay in `fetches`. The crawler writes both in the
//! page's transaction ([`super::Store::crawl_complete`]); the WARC export
//! reads them back as `response` records; `forget` deletes a capture once no
//! remaining page uses it.
//!
//! The body is what the HTTP client handed over: content-encoding (gzip,
//! brotli) decoded, chunked framing removed, cut at the crawl's max body
//! size (then `fetches.truncated` is set).

use std::io::Read;

use flate2::read::GzDecoder;
use flate2::{Compress, Compression, Crc, FlushCompress, Status};

use super::audit::sha256_hex;
use super::{Store, StoreError};

/// The only storage encoding written.
pub const ENCODING_GZIP: &str = "gzip";

/// A body ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawCapture {
    /// Hex sha256 of the body.
    pub sha256: String,
    /// Bytes of the body.
    pub size: i64,
    /// `HTTP/1.1`, `HTTP/2`, ...
    pub http_version: String,
    /// The body, gzip-compressed.
    pub gz: Vec<u8>,
}

impl RawCapture {
    /// Compresses `body` (fast level: the cost is paid per fetched page).
    pub fn new(body: &[u8], http_version: &str) -> std::io::Result<RawCapture> {
        RawCapture::with_sha256(body, sha256_hex(body), http_version)
    }

    /// [`RawCapture::new`] for a caller that already hashed the body
    /// (`sha256` is its hex sha256: the crawler hashes each body once for
    /// the fetch, the page and the capture).
    pub fn with_sha256(
        body: &[u8],
        sha256: String,
        http_version: &str,
    ) -> std::io::Result<RawCapture> {
        Ok(RawCapture {
            sha256,
            size: i64::try_from(body.len()).unwrap_or(i64::MAX),
            http_version: http_version.to_string(),
            gz: gzip_fast(body)?,
        })
    }
}

thread_local! {
    /// One deflate state per thread, reset for each body instead of
    /// allocated and zeroed per page.
    static DEFLATE: std::cell::RefCell<Option<Compress>> = const { std::cell::RefCell::new(None) };
}

/// `body` as a gzip member at the fast level: the header `GzEncoder` writes
/// (no name, no mtime, XFL 4, OS 255), a raw deflate stream and the CRC-32 /
/// ISIZE trailer, read back by any gzip reader ([`decode`], the WARC
/// export, `gzip -d`).
fn gzip_fast(body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(body.len() / 3 + 64);
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 255]);
    DEFLATE.with(|cell| -> std::io::Result<()> {
        let mut slot = cell.borrow_mut();
        let c = slot.get_or_insert_with(|| Compress::new(Compression::fast(), false));
        c.reset();
        loop {
            let done = usize::try_from(c.total_in()).unwrap_or(usize::MAX);
            let input = body.get(done..).unwrap_or(&[]);
            if out.capacity() - out.len() < 1024 {
                out.reserve(out.capacity().max(4096));
            }
            let status = c
                .compress_vec(input, &mut out, FlushCompress::Finish)
                .map_err(std::io::Error::other)?;
            if status == Status::StreamEnd {
                return Ok(());
            }
        }
    })?;
    let mut crc = Crc::new();
    crc.update(body);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    // ISIZE: the length modulo 2^32 (RFC 1952).
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    Ok(out)
}

/// A stored capture read back, decompressed and checked against its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawBody {
    pub sha256: String,
    pub http_version: String,
    pub body: Vec<u8>,
}

fn corrupt(column: &'static str, detail: impl ToString) -> StoreError {
    StoreError::Corrupt {
        table: "raw_captures",
        column,
        detail: detail.to_string(),
    }
}

/// Decompresses a stored capture, reading at most `size` bytes (a stored
/// row is not trusted to be small), and checks it against its sha256.
pub fn decode(encoding: &str, gz: &[u8], size: i64, sha256: &str) -> Result<Vec<u8>, StoreError> {
    if encoding != ENCODING_GZIP {
        return Err(corrupt(
            "encoding",
            format!("unknown encoding {encoding:?}"),
        ));
    }
    let size = u64::try_from(size).map_err(|_| corrupt("size", format!("negative size {size}")))?;
    let mut out = Vec::new();
    GzDecoder::new(gz)
        .take(size.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| corrupt("bytes", e))?;
    if out.len() as u64 != size {
        return Err(corrupt(
            "bytes",
            format!("{} bytes decompressed, {size} recorded", out.len()),
        ));
    }
    let got = sha256_hex(&out);
    if got != sha256 {
        return Err(corrupt(
            "bytes",
            format!("body sha256 {got} does not match its key {sha256}"),
        ));
    }
    Ok(out)
}

/// Stores `raw` (once per sha256) and links it to `fetch_id`, on the
/// caller's transaction. Returns the `fetch_raw` rowid (= `fetch_id`).
pub(crate) async fn insert_raw_in(
    conn: &mut sqlx::SqliteConnection,
    fetch_id: i64,
    raw: &RawCapture,
) -> Result<i64, StoreError> {
    insert_raw_row(conn, fetch_id, raw).await?;
    Ok(fetch_id)
}

/// [`insert_raw_in`], returning the `fetch_raw` row as stored (`rowid, *`).
/// A body's capture, once per distinct body.
pub(crate) const INSERT_RAW_CAPTURE: &str =
    "INSERT INTO raw_captures (sha256, encoding, size, bytes) VALUES (?, ?, ?, ?)
     ON CONFLICT (sha256) DO NOTHING";

/// A fetch's reference to its body's capture, returning the row.
pub(crate) const INSERT_FETCH_RAW: &str = "INSERT INTO fetch_raw (fetch_id, raw_sha256, http_version) VALUES (?, ?, ?) RETURNING rowid, *";

pub(crate) async fn insert_raw_row(
    conn: &mut sqlx::SqliteConnection,
    fetch_id: i64,
    raw: &RawCapture,
) -> Result<sqlx::sqlite::SqliteRow, StoreError> {
    sqlx::query(INSERT_RAW_CAPTURE)
        .bind(&raw.sha256)
        .bind(ENCODING_GZIP)
        .bind(raw.size)
        .bind(&raw.gz)
        .execute(&mut *conn)
        .await?;
    insert_fetch_raw(conn, fetch_id, raw).await
}

async fn insert_fetch_raw(
    conn: &mut sqlx::SqliteConnection,
    fetch_id: i64,
    raw: &RawCapture,
) -> Result<sqlx::sqlite::SqliteRow, StoreError> {
    Ok(sqlx::query(INSERT_FETCH_RAW)
        .bind(fetch_id)
        .bind(&raw.sha256)
        .bind(&raw.http_version)
        .fetch_one(&mut *conn)
        .await?)
}

impl Store {
    /// The raw capture of fetch `fetch_id`, decompressed and checked, or
    /// `None` when none was kept (an older corpus, `--no-keep-raw`) or it
    /// was erased by `forget`.
    pub async fn raw_body(&self, fetch_id: i64) -> Result<Option<RawBody>, StoreError> {
        let r: Option<RawBodyDb> = on_pool!(self, pool => sqlx::query_as(
            "SELECT fr.raw_sha256, fr.http_version, rc.encoding, rc.size, rc.bytes
             FROM fetch_raw fr JOIN raw_captures rc ON rc.sha256 = fr.raw_sha256
             WHERE fr.fetch_id = $1",
        )
        .bind(fetch_id)
        .fetch_optional(pool)
        .await?);
        let Some(r) = r else { return Ok(None) };
        let body = decode(&r.encoding, &r.bytes, r.size, &r.raw_sha256)?;
        Ok(Some(RawBody {
            sha256: r.raw_sha256,
            http_version: r.http_version,
            body,
        }))
    }

    /// `(captures, body bytes, stored bytes)` of the raw captures kept.
    pub async fn raw_capture_totals(&self) -> Result<(i64, i64, i64), StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_as(
            "SELECT count(*), CAST(coalesce(sum(size), 0) AS BIGINT),
                    CAST(coalesce(sum(length(bytes)), 0) AS BIGINT) FROM raw_captures",
        )
        .fetch_one(pool)
        .await?))
    }
}

/// A raw capture joined with the fetch that kept it, as stored.
#[derive(sqlx::FromRow)]
struct RawBodyDb {
    raw_sha256: String,
    http_version: String,
    encoding: String,
    size: i64,
    bytes: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue #26: a corpus made while raw captures were a WITHOUT ROWID
    /// table keyed by sha256 keeps every capture through the migration that
    /// stores them by rowid: readable, checked, and still one per sha256.
    #[tokio::test]
    async fn captures_kept_before_the_rowid_table_survive_its_migration() {
        use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
        let dir = tempfile::tempdir().unwrap();
        // The migrations as they were before that one, from the repository.
        let before = dir.path().join("migrations");
        std::fs::create_dir(&before).unwrap();
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        for e in std::fs::read_dir(&src).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            if name.as_str() < "20261208100000" {
                std::fs::copy(e.path(), before.join(&name)).unwrap();
            }
        }
        let path = dir.path().join("old.db");
        let opts = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .foreign_keys(false);
        let pool = SqlitePool::connect_with(opts).await.unwrap();
        sqlx::migrate::Migrator::new(before.as_path())
            .await
            .unwrap()
            .run(&pool)
            .await
            .unwrap();
        let schema = |pool: SqlitePool| async move {
            sqlx::query_scalar::<_, String>(
                "SELECT sql FROM sqlite_schema WHERE name = 'raw_captures'",
            )
            .fetch_one(&pool)
            .await
            .unwrap()
        };
        assert!(schema(pool.clone()).await.contains("WITHOUT ROWID"));
        let bodies: Vec<Vec<u8>> = (0..3)
            .map(|i| format!("<p>capture {i}</p>").repeat(50).into_bytes())
            .collect();
        // Rows the capture insert added (0 when the body is already kept).
        let keep = |pool: SqlitePool, body: Vec<u8>| async move {
            let c = RawCapture::new(&body, "HTTP/1.1").unwrap();
            let done = sqlx::query(INSERT_RAW_CAPTURE)
                .bind(&c.sha256)
                .bind(ENCODING_GZIP)
                .bind(c.size)
                .bind(&c.gz)
                .execute(&pool)
                .await
                .unwrap();
            (c, done.rows_affected())
        };
        for (i, body) in bodies.iter().enumerate() {
            let (c, added) = keep(pool.clone(), body.clone()).await;
            assert_eq!(added, 1);
            sqlx::query(INSERT_FETCH_RAW)
                .bind(10 + i as i64)
                .bind(&c.sha256)
                .bind("HTTP/1.1")
                .execute(&pool)
                .await
                .unwrap();
        }
        pool.close().await;

        let store = crate::store::Store::open(&path).await.unwrap();
        let pool = store.pool().unwrap().clone();
        assert!(!schema(pool.clone()).await.contains("WITHOUT ROWID"));
        for (i, body) in bodies.iter().enumerate() {
            let got = store.raw_body(10 + i as i64).await.unwrap().unwrap();
            assert_eq!(&got.body, body);
        }
        // A body already kept is not stored twice.
        assert_eq!(keep(pool.clone(), bodies[1].clone()).await.1, 0);
        assert_eq!(store.raw_capture_totals().await.unwrap().0, 3);
    }

    #[test]
    fn a_capture_round_trips_and_a_changed_one_is_refused() {
        let body = b"<html><body>hello hello hello hello</body></html>".repeat(20);
        let c = RawCapture::new(&body, "HTTP/1.1").unwrap();
        assert!(c.gz.len() < body.len());
        assert_eq!(c.size as usize, body.len());
        assert_eq!(decode("gzip", &c.gz, c.size, &c.sha256).unwrap(), body);
        // Wrong size, wrong key, unknown encoding, garbage: errors, no panic.
        assert!(decode("gzip", &c.gz, c.size - 1, &c.sha256).is_err());
        assert!(decode("gzip", &c.gz, c.size + 1, &c.sha256).is_err());
        assert!(decode("gzip", &c.gz, c.size, &sha256_hex(b"x")).is_err());
        assert!(decode("zstd", &c.gz, c.size, &c.sha256).is_err());
        assert!(decode("gzip", b"not gzip", 3, &c.sha256).is_err());
        assert!(decode("gzip", &c.gz, -1, &c.sha256).is_err());
    }

    /// The reused deflate state round-trips every body, one after the
    /// other on the same thread (empty, tiny, larger than one output
    /// reservation, incompressible), writes `GzEncoder`'s header, and writes
    /// the same bytes as a state fresh on another thread (nothing of one
    /// body leaks into the next).
    #[test]
    fn reused_compressor_round_trips_and_is_deterministic() {
        use flate2::write::GzEncoder;
        use std::io::Write;
        let mut noise = Vec::new();
        let mut x: u32 = 1;
        for _ in 0..300_000 {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            noise.push((x >> 24) as u8);
        }
        let bodies: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"<p>x</p>".to_vec(),
            b"<html><body>tide pools and anemones</body></html>".repeat(5000),
            noise,
        ];
        for body in bodies.iter().chain(bodies.iter()) {
            let c = RawCapture::new(body, "HTTP/1.1").unwrap();
            assert_eq!(decode("gzip", &c.gz, c.size, &c.sha256).unwrap(), *body);
            let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
            enc.write_all(body).unwrap();
            assert_eq!(c.gz.get(..10), enc.finish().unwrap().get(..10));
            let b = body.clone();
            let fresh = std::thread::spawn(move || gzip_fast(&b).unwrap())
                .join()
                .unwrap();
            assert_eq!(c.gz, fresh, "{} bytes", body.len());
        }
    }
}
