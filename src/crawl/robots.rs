//! robots.txt per RFC 9309: parsing and matching for our product token, and
//! the status-code rules that turn a fetch outcome into access.
//!
//! This module does not perform HTTP requests or caching; the crawler fetches
//! the file and hands the outcome here. `byline robots check` and the crawler
//! use exactly these functions.
//!
//! INTERFACE CONTRACT (skeleton): the crawler relies on the public items
//! below. Their bodies here are a first cut to be replaced.

use url::Url;

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

/// The parsed rules of one robots.txt body as they apply to one product token.
#[derive(Debug)]
pub struct RobotsRules {
    inner: texting_robots::Robot,
    warnings: Vec<String>,
}

impl RobotsRules {
    /// Parses `body` for `token` (a bare product token such as `BylineBot`).
    /// Never fails: unparseable lines are skipped and reported in `warnings`.
    pub fn parse(body: &[u8], token: &str) -> RobotsRules {
        let cut = &body[..body.len().min(PARSE_LIMIT)];
        let mut warnings = Vec::new();
        let inner = match texting_robots::Robot::new(&token.to_ascii_lowercase(), cut) {
            Ok(r) => r,
            Err(e) => {
                warnings.push(format!("robots.parse_error: {e}"));
                texting_robots::Robot::new(token, b"User-agent: *\nDisallow: /\n")
                    .expect("static robots.txt parses")
            }
        };
        RobotsRules { inner, warnings }
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
