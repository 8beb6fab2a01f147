//! Read side of the archival exports (`audit export --format warc|croissant`):
//! every stored robots.txt version of an origin, a page with the fetch that
//! produced it, and the crawl runs (the PROV-O activities).

use sqlx::Row;

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotModified {
    pub fetch_id: i64,
    pub requested_url: String,
    pub fetched_at: i64,
    /// JSON `[[name, value], ...]` of the 304 as received.
    pub response_headers: String,
}

/// One crawl run.
#[derive(Debug, Clone)]
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

impl Store {
    /// Every stored robots.txt version of `origin`, oldest first.
    pub async fn robots_captures(&self, origin: &str) -> Result<Vec<RobotsCapture>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, run_id, origin, url, final_url, redirect_chain, fetched_at, status, error,
                    outcome, reason, body, body_sha256, truncated, warnings, crawl_delay_secs,
                    expires_at, cached_from
             FROM robots_versions WHERE origin = ? ORDER BY id",
        )
        .bind(origin)
        .fetch_all(self.pool()?)
        .await?;
        Ok(rows
            .iter()
            .map(|r| RobotsCapture {
                id: r.get(0),
                version: RobotsVersion {
                    run_id: r.get(1),
                    origin: r.get(2),
                    url: r.get(3),
                    final_url: r.get(4),
                    redirect_chain_json: r.get(5),
                    fetched_at: r.get(6),
                    status: r.get::<Option<i64>, _>(7).map(|s| s as u16),
                    error: r.get(8),
                    outcome: r.get(9),
                    reason: r.get(10),
                    body: r.get(11),
                    body_sha256: r.get(12),
                    truncated: r.get(13),
                    warnings_json: r.get(14),
                    crawl_delay_secs: r.get(15),
                    expires_at: r.get(16),
                    cached_from: r.get(17),
                },
            })
            .collect())
    }

    /// A page and the fetch it came from, or `None` when there is no such page.
    pub async fn page_capture(&self, page_id: i64) -> Result<Option<PageCapture>, StoreError> {
        let r = sqlx::query(
            "SELECT p.id, p.url, p.title, p.author, p.language, p.published_at, p.canonical_url,
                    p.text, p.text_sha256, p.extractor_version,
                    f.id, f.requested_url, f.final_url, f.redirect_chain, f.fetched_at, f.status,
                    f.user_agent, f.response_headers, f.content_type, f.body_sha256, f.body_bytes,
                    f.truncated, f.detected_charset
             FROM pages p JOIN fetches f ON f.id = p.fetch_id WHERE p.id = ?",
        )
        .bind(page_id)
        .fetch_optional(self.pool()?)
        .await?;
        Ok(r.map(|r| PageCapture {
            page_id: r.get(0),
            url: r.get(1),
            title: r.get(2),
            author: r.get(3),
            language: r.get(4),
            published_at: r.get(5),
            canonical_url: r.get(6),
            text: r.get(7),
            text_sha256: r.get(8),
            extractor_version: r.get(9),
            fetch_id: r.get(10),
            requested_url: r.get(11),
            final_url: r.get(12),
            redirect_chain: r.get(13),
            fetched_at: r.get(14),
            status: r.get(15),
            user_agent: r.get(16),
            response_headers: r.get(17),
            content_type: r.get(18),
            body_sha256: r.get(19),
            body_bytes: r.get(20),
            truncated: r.get(21),
            detected_charset: r.get(22),
        }))
    }

    /// The 304 revisits of a page's frontier URL after its fetch `fetch_id`
    /// (the capture they confirm), oldest first.
    pub async fn not_modified_since(
        &self,
        page_id: i64,
        fetch_id: i64,
    ) -> Result<Vec<NotModified>, StoreError> {
        let rows = sqlx::query(
            "SELECT f.id, f.requested_url, f.fetched_at, f.response_headers
             FROM fetches f JOIN pages p ON p.frontier_id = f.frontier_id
             WHERE p.id = ? AND f.id > ? AND f.status = 304 AND f.error_kind IS NULL
             ORDER BY f.id",
        )
        .bind(page_id)
        .bind(fetch_id)
        .fetch_all(self.pool()?)
        .await?;
        Ok(rows
            .iter()
            .map(|r| NotModified {
                fetch_id: r.get(0),
                requested_url: r.get(1),
                fetched_at: r.get(2),
                response_headers: r.get(3),
            })
            .collect())
    }

    /// Every crawl run, oldest first.
    pub async fn crawl_runs(&self) -> Result<Vec<RunInfo>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, started_at, finished_at, byline_version, user_agent, config_sha256,
                    policy_sha256, seeds
             FROM crawl_runs ORDER BY id",
        )
        .fetch_all(self.pool()?)
        .await?;
        Ok(rows
            .iter()
            .map(|r| RunInfo {
                id: r.get(0),
                started_at: r.get(1),
                finished_at: r.get(2),
                byline_version: r.get(3),
                user_agent: r.get(4),
                config_sha256: r.get(5),
                policy_sha256: r.get(6),
                seeds: r.get(7),
            })
            .collect())
    }
}
