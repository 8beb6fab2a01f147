//! More helpers for the crawler tests (robots over HTTP, safety limits,
//! SSRF, politeness, resume): stateful routes, closed ports, a gzip bomb,
//! row readers and interval arithmetic over what the test server saw.

#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sqlx::Row;

use super::server::{Payload, Route, Seen};

/// A route whose n-th response (0-based) is `f(n)`; the counter is shared
/// by every request to it.
pub fn sequence(
    f: impl Fn(usize) -> (u16, Vec<(String, String)>, Vec<u8>) + Send + Sync + 'static,
) -> Route {
    let n = Arc::new(AtomicUsize::new(0));
    Route {
        status: 200,
        headers: vec![],
        body: Payload::Dynamic(Arc::new(move |_| f(n.fetch_add(1, Ordering::SeqCst)))),
        delay: Duration::ZERO,
    }
}

/// A route computed from the request path (with query).
pub fn dynamic(
    f: impl Fn(&str) -> (u16, Vec<(String, String)>, Vec<u8>) + Send + Sync + 'static,
) -> Route {
    Route {
        status: 200,
        headers: vec![],
        body: Payload::Dynamic(Arc::new(f)),
        delay: Duration::ZERO,
    }
}

/// `(200, text/html, body)` for [`sequence`] and [`dynamic`].
pub fn html_response(body: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    (
        200,
        vec![("content-type".into(), "text/html; charset=utf-8".into())],
        body.as_bytes().to_vec(),
    )
}

/// `(200, text/plain, body)`.
pub fn text_response(body: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    (
        200,
        vec![("content-type".into(), "text/plain".into())],
        body.as_bytes().to_vec(),
    )
}

/// A route that drips `chunk` every `every`, `count` times.
pub fn drip(content_type: &str, chunk: &[u8], every: Duration, count: usize) -> Route {
    Route {
        status: 200,
        headers: vec![("content-type".into(), content_type.into())],
        body: Payload::Drip {
            chunk: chunk.to_vec(),
            every,
            count,
        },
        delay: Duration::ZERO,
    }
}

/// A loopback port nobody listens on (bound, then released).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let p = l.local_addr().expect("addr").port();
    drop(l);
    p
}

/// `mib` MiB of spaces, gzip-compressed (about 1000:1).
pub fn gzip_bomb(mib: usize) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let block = vec![b' '; 1 << 20];
    for _ in 0..mib {
        gz.write_all(&block).expect("gzip");
    }
    gz.finish().expect("gzip")
}

/// A read-write pool on a corpus file (tests that age stored rows).
pub async fn writer(path: &Path) -> sqlx::SqlitePool {
    let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
    sqlx::SqlitePool::connect_with(opts)
        .await
        .expect("writer pool")
}

/// One stored robots.txt version.
#[derive(Debug, Clone)]
pub struct Version {
    pub id: i64,
    pub status: Option<i64>,
    pub outcome: String,
    pub reason: Option<String>,
    pub truncated: bool,
    pub body_bytes: Option<i64>,
    pub warnings: String,
    pub error: Option<String>,
    pub final_url: Option<String>,
    pub chain: String,
    pub fetched_at: i64,
    pub expires_at: i64,
}

pub async fn versions(db: &sqlx::SqlitePool) -> Vec<Version> {
    sqlx::query(
        "SELECT id, status, outcome, reason, truncated, body_bytes, warnings, error, final_url,
                redirect_chain, fetched_at, expires_at
         FROM robots_versions ORDER BY id",
    )
    .fetch_all(db)
    .await
    .expect("robots_versions")
    .into_iter()
    .map(|r| Version {
        id: r.get(0),
        status: r.get(1),
        outcome: r.get(2),
        reason: r.get(3),
        truncated: r.get(4),
        body_bytes: r.get(5),
        warnings: r.get(6),
        error: r.get(7),
        final_url: r.get(8),
        chain: r.get(9),
        fetched_at: r.get(10),
        expires_at: r.get(11),
    })
    .collect()
}

/// One robots decision, by URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub url: String,
    pub version_id: i64,
    pub allowed: bool,
    pub line: Option<i64>,
    pub rule: Option<String>,
    pub reason: Option<String>,
}

pub async fn decisions(db: &sqlx::SqlitePool) -> Vec<Decision> {
    sqlx::query(
        "SELECT url, robots_version_id, allowed, matched_line, rule, reason
         FROM robots_decisions ORDER BY id",
    )
    .fetch_all(db)
    .await
    .expect("robots_decisions")
    .into_iter()
    .map(|r| Decision {
        url: r.get(0),
        version_id: r.get(1),
        allowed: r.get(2),
        line: r.get(3),
        rule: r.get(4),
        reason: r.get(5),
    })
    .collect()
}

/// The last fetch row of a requested URL.
#[derive(Debug, Clone)]
pub struct FetchRow {
    pub status: Option<i64>,
    pub error_kind: Option<String>,
    pub error_detail: Option<String>,
    pub truncated: bool,
    pub body_bytes: Option<i64>,
    pub declared_charset: Option<String>,
    pub detected_charset: Option<String>,
    pub chain: String,
    pub final_url: Option<String>,
}

pub async fn fetch_row(db: &sqlx::SqlitePool, url: &str) -> FetchRow {
    let r = sqlx::query(
        "SELECT status, error_kind, error_detail, truncated, body_bytes, declared_charset,
                detected_charset, redirect_chain, final_url
         FROM fetches WHERE requested_url = ? ORDER BY id DESC LIMIT 1",
    )
    .bind(url)
    .fetch_one(db)
    .await
    .unwrap_or_else(|e| panic!("no fetch row for {url}: {e}"));
    FetchRow {
        status: r.get(0),
        error_kind: r.get(1),
        error_detail: r.get(2),
        truncated: r.get(3),
        body_bytes: r.get(4),
        declared_charset: r.get(5),
        detected_charset: r.get(6),
        chain: r.get(7),
        final_url: r.get(8),
    }
}

/// The extracted text of the page stored for `url`.
pub async fn page_text(db: &sqlx::SqlitePool, url: &str) -> String {
    sqlx::query_scalar("SELECT text FROM pages WHERE url = ?")
        .bind(url)
        .fetch_one(db)
        .await
        .unwrap_or_else(|e| panic!("no page row for {url}: {e}"))
}

/// `(state, skip_reason or last_error)` of the frontier row of `url`.
pub async fn frontier_state(db: &sqlx::SqlitePool, url: &str) -> (String, Option<String>) {
    let r = sqlx::query(
        "SELECT state, coalesce(skip_reason, last_error) FROM frontier WHERE url_norm = ?",
    )
    .bind(url)
    .fetch_one(db)
    .await
    .unwrap_or_else(|e| panic!("no frontier row for {url}: {e}"));
    (r.get(0), r.get(1))
}

/// Requests of one path as the server saw them, in start order.
pub fn seen_path(seen: &[Seen], path: &str) -> Vec<Seen> {
    let mut v: Vec<Seen> = seen.iter().filter(|s| s.path == path).cloned().collect();
    v.sort_by_key(|s| s.start);
    v
}

/// The most requests in flight at once over several servers' logs.
pub fn max_overlap(logs: &[Vec<Seen>]) -> usize {
    let mut ev: Vec<(Instant, i32)> = Vec::new();
    for log in logs {
        for s in log {
            let end = s.end.expect("request finished");
            ev.push((s.start, 1));
            ev.push((end, -1));
        }
    }
    // Ends before starts at the same instant: touching is not overlapping.
    ev.sort_by_key(|(t, d)| (*t, *d));
    let (mut cur, mut max) = (0i32, 0i32);
    for (_, d) in ev {
        cur += d;
        max = max.max(cur);
    }
    max as usize
}
