//! Read side of the archival exports (`audit export --format warc|croissant`):
//! every stored robots.txt version of an origin, a page with the fetch that
//! produced it, and the crawl runs (the PROV-O activities).

use super::crawl::RobotsVersion;
use super::{Store, StoreError};

/// One stored robots.txt version (a capture for the WARC file): its row id
/// and the version as the crawler recorded it.
#[derive(Debug, Clone)]
pub struct RobotsCapture {
    pub id: i64,
    pub version: RobotsVersion,
}

/// A stored page with the fetch it was extracted from.
#[derive(Debug, Clone)]
pub struct PageCapture {
    pub page_id: i64,
    pub url: String,
    pub title: Option<String>,
    pub author: Option<String>,
    pub language: Option<String>,
    pub published_at: Option<String>,
    pub canonical_url: Option<String>,
    /// The extracted main text (empty once forgotten).
    pub text: String,
    pub text_sha256: String,
    pub extractor_version: String,
    pub fetch_id: i64,
    pub requested_url: String,
    pub final_url: Option<String>,
    pub redirect_chain: String,
    pub fetched_at: i64,
    pub status: Option<i64>,
    pub user_agent: String,
    /// JSON `[[name, value], ...]` as received.
    pub response_headers: String,
    pub content_type: Option<String>,
    /// sha256 of the raw body bytes (which are not stored).
    pub body_sha256: Option<String>,
    pub body_bytes: Option<i64>,
    pub truncated: bool,
    pub detected_charset: Option<String>,
}

/// A revisit of a page that answered `304 Not Modified` (`crawl --refresh`,
/// `audit recheck --bodies`): the body of the page's fetch still stands.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct NotModified {
    pub fetch_id: i64,
    pub requested_url: String,
    pub fetched_at: i64,
    /// JSON `[[name, value], ...]` of the 304 as received.
    pub response_headers: String,
}

/// One crawl run.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RunInfo {
    pub id: i64,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub byline_version: String,
    pub user_agent: String,
    pub config_sha256: String,
    pub policy_sha256: Option<String>,
    /// JSON list of seed URLs.
    pub seeds: String,
}

/// A `robots_versions` row as stored (flags and statuses as integers).
#[derive(sqlx::FromRow)]
struct RobotsCaptureDb {
    id: i64,
    run_id: i64,
    origin: String,
    url: String,
    final_url: Option<String>,
    redirect_chain: String,
    fetched_at: i64,
    status: Option<i64>,
    error: Option<String>,
    outcome: String,
    reason: Option<String>,
    body: Option<Vec<u8>>,
    body_sha256: Option<String>,
    truncated: i64,
    warnings: String,
    crawl_delay_secs: Option<f64>,
    expires_at: i64,
    cached_from: Option<i64>,
}

/// A page joined with its fetch, as stored.
#[derive(sqlx::FromRow)]
struct PageCaptureDb {
    page_id: i64,
    url: String,
    title: Option<String>,
    author: Option<String>,
    language: Option<String>,
    published_at: Option<String>,
    canonical_url: Option<String>,
    text: String,
    text_sha256: String,
    extractor_version: String,
    fetch_id: i64,
    requested_url: String,
    final_url: Option<String>,
    redirect_chain: String,
    fetched_at: i64,
    status: Option<i64>,
    user_agent: String,
    response_headers: String,
    content_type: Option<String>,
    body_sha256: Option<String>,
    body_bytes: Option<i64>,
    truncated: i64,
    detected_charset: Option<String>,
}

impl Store {
    /// Every stored robots.txt version of `origin`, oldest first.
    pub async fn robots_captures(&self, origin: &str) -> Result<Vec<RobotsCapture>, StoreError> {
        let rows: Vec<RobotsCaptureDb> = on_pool!(self, pool => sqlx::query_as(
            "SELECT id, run_id, origin, url, final_url, redirect_chain, fetched_at, status, error,
                    outcome, reason, body, body_sha256, truncated, warnings, crawl_delay_secs,
                    expires_at, cached_from
             FROM robots_versions WHERE origin = $1 ORDER BY id",
        )
        .bind(origin)
        .fetch_all(pool)
        .await?);
        Ok(rows
            .into_iter()
            .map(|r| RobotsCapture {
                id: r.id,
                version: RobotsVersion {
                    run_id: r.run_id,
                    origin: r.origin,
                    url: r.url,
                    final_url: r.final_url,
                    redirect_chain_json: r.redirect_chain,
                    fetched_at: r.fetched_at,
                    status: r.status.and_then(|s| u16::try_from(s).ok()),
                    error: r.error,
                    outcome: r.outcome,
                    reason: r.reason,
                    body: r.body,
                    body_sha256: r.body_sha256,
                    truncated: r.truncated != 0,
                    warnings_json: r.warnings,
                    crawl_delay_secs: r.crawl_delay_secs,
                    expires_at: r.expires_at,
                    cached_from: r.cached_from,
                },
            })
            .collect())
    }

    /// A page and the fetch it came from, or `None` when there is no such page.
    pub async fn page_capture(&self, page_id: i64) -> Result<Option<PageCapture>, StoreError> {
        let r: Option<PageCaptureDb> = on_pool!(self, pool => sqlx::query_as(
            "SELECT p.id AS page_id, p.url, p.title, p.author, p.language, p.published_at,
                    p.canonical_url, p.text, p.text_sha256, p.extractor_version,
                    f.id AS fetch_id, f.requested_url, f.final_url, f.redirect_chain, f.fetched_at,
                    f.status, f.user_agent, f.response_headers, f.content_type, f.body_sha256,
                    f.body_bytes, f.truncated, f.detected_charset
             FROM pages p JOIN fetches f ON f.id = p.fetch_id WHERE p.id = $1",
        )
        .bind(page_id)
        .fetch_optional(pool)
        .await?);
        Ok(r.map(|r| PageCapture {
            page_id: r.page_id,
            url: r.url,
            title: r.title,
            author: r.author,
            language: r.language,
            published_at: r.published_at,
            canonical_url: r.canonical_url,
            text: r.text,
            text_sha256: r.text_sha256,
            extractor_version: r.extractor_version,
            fetch_id: r.fetch_id,
            requested_url: r.requested_url,
            final_url: r.final_url,
            redirect_chain: r.redirect_chain,
            fetched_at: r.fetched_at,
            status: r.status,
            user_agent: r.user_agent,
            response_headers: r.response_headers,
            content_type: r.content_type,
            body_sha256: r.body_sha256,
            body_bytes: r.body_bytes,
            truncated: r.truncated != 0,
            detected_charset: r.detected_charset,
        }))
    }

    /// The 304 revisits of a page's frontier URL after its fetch `fetch_id`
    /// (the capture they confirm), oldest first.
    pub async fn not_modified_since(
        &self,
        page_id: i64,
        fetch_id: i64,
    ) -> Result<Vec<NotModified>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_as(
            "SELECT f.id AS fetch_id, f.requested_url, f.fetched_at, f.response_headers
             FROM fetches f JOIN pages p ON p.frontier_id = f.frontier_id
             WHERE p.id = $1 AND f.id > $2 AND f.status = 304 AND f.error_kind IS NULL
             ORDER BY f.id",
        )
        .bind(page_id)
        .bind(fetch_id)
        .fetch_all(pool)
        .await?))
    }

    /// Every crawl run, oldest first.
    pub async fn crawl_runs(&self) -> Result<Vec<RunInfo>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_as(
            "SELECT id, started_at, finished_at, byline_version, user_agent, config_sha256,
                    policy_sha256, seeds
             FROM crawl_runs ORDER BY id",
        )
        .fetch_all(pool)
        .await?))
    }
}
