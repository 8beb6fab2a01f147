//! robots.txt per RFC 9309: parsing and matching for our product token, and
//! the status-code rules that turn a fetch outcome into access.
//!
//! This module does not perform HTTP requests or caching; the crawler fetches
//! the file and hands the outcome here. `byline robots check` and the crawler
//! use exactly these functions.
//!
//! INTERFACE CONTRACT: the crawler relies on the public items below
//! (`PRODUCT_TOKEN`, `PARSE_LIMIT`, `RobotsDecision`, `RobotsRules`, and the
//! status-code layer in [`access`]).

mod access;

use std::sync::Arc;

use url::Url;

pub use access::{
    Access, CACHE_TTL, FetchOutcome, HARD_CAP, MAX_REDIRECTS, REASON_REDIRECT_LIMIT,
    REASON_UNAVAILABLE, REASON_UNREACHABLE, WARNING_CONTENT_TYPE, access, access_for, is_stale,
};

/// Our product token (RFC 9309 §2.2.1: letters, `_` and `-` only).
pub const PRODUCT_TOKEN: &str = "BylineBot";

/// RFC 9309 §2.5: parse at least 500 KiB; we parse exactly this many bytes.
pub const PARSE_LIMIT: usize = 512_000;

/// The outcome of matching one URL against a robots.txt.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RobotsDecision {
    /// Whether our token may fetch the URL.
    pub allowed: bool,
    /// 1-based line number in the robots.txt body of the deciding rule, if any.
    pub matched_line: Option<usize>,
    /// The deciding rule as written, e.g. `Disallow: /private`, if any.
    pub rule: Option<String>,
}

/// Warning code: the body was longer than [`PARSE_LIMIT`] (or the fetcher
/// stopped reading); the rest, and a trailing partial line, were not parsed.
pub const WARNING_TRUNCATED: &str = "robots.truncated";

/// The parsed rules of one robots.txt body as they apply to one product token.
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct RobotsRules {
    inner: Arc<texting_robots::Robot>,
    warnings: Vec<String>,
}

impl RobotsRules {
    /// Parses `body` for `token` (a bare product token such as `BylineBot`).
    /// Never fails: unparseable lines are skipped and reported in `warnings`.
    pub fn parse(body: &[u8], token: &str) -> RobotsRules {
        RobotsRules::parse_fetched(body, token, false)
    }

    /// [`RobotsRules::parse`] for a body the fetcher stopped reading early
    /// (`truncated`): its last line may be partial and is dropped.
    pub fn parse_fetched(body: &[u8], token: &str, truncated: bool) -> RobotsRules {
        let mut warnings = Vec::new();
        let cut = if body.len() > PARSE_LIMIT || truncated {
            // RFC 9309 §2.5: parse at least 500 KiB; spec §1.6: drop the
            // trailing partial line so a cut rule is never half-applied.
            let head = &body[..body.len().min(PARSE_LIMIT)];
            let end = head
                .iter()
                .rposition(|&b| b == b'\n' || b == b'\r')
                .map_or(0, |i| i + 1);
            warnings.push(format!(
                "{WARNING_TRUNCATED}: parsed {end} of {} bytes (limit {PARSE_LIMIT})",
                body.len()
            ));
            &head[..end]
        } else {
            body
        };
        let inner = match texting_robots::Robot::new(&token.to_ascii_lowercase(), cut) {
            Ok(r) => r,
            Err(e) => {
                warnings.push(format!("robots.parse_error: {e}"));
                texting_robots::Robot::new(token, b"User-agent: *\nDisallow: /\n")
                    .expect("static robots.txt parses")
            }
        };
        RobotsRules {
            inner: Arc::new(inner),
            warnings,
        }
    }

    /// Adds a warning found outside the body (e.g. by the status-code layer).
    pub(crate) fn push_warning(&mut self, warning: String) {
        self.warnings.push(warning);
    }

    /// Decides whether `url` may be fetched.
    pub fn check(&self, url: &Url) -> RobotsDecision {
        RobotsDecision {
            allowed: self.inner.allowed(url.as_str()),
            matched_line: None,
            rule: None,
        }
    }

    /// Crawl-delay in seconds from the group that applies to us, if any.
    pub fn crawl_delay(&self) -> Option<f64> {
        self.inner.delay.map(f64::from)
    }

    /// Sitemap URLs listed anywhere in the file.
    pub fn sitemaps(&self) -> &[String] {
        &self.inner.sitemaps
    }

    /// Parse warnings (`robots.truncated`, `robots.parse_error`, ...).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}
