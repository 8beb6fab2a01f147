//! The HTTP layer: one exchange at a time (no automatic redirects), through
//! the SSRF-guarded resolver, with connect/read/total timeouts and a
//! streaming body read with a byte cap. Every request the program makes goes
//! through [`super::conduct::Conduct`], which owns the redirect loop and
//! applies the address guard, robots.txt and politeness to every hop.
//!
//! reqwest decompresses gzip and brotli on the fly, so the cap counts
//! *decoded* bytes: a compression bomb stops at the cap like any other large
//! body and is flagged `truncated`. (reqwest drops `Content-Encoding` and
//! `Content-Length` from the headers it hands back when it decodes.)
//!
//! Never retries, never sleeps, never decides politeness: `Conduct` and the crawler do.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde::Serialize;
use url::Url;

use super::guard::{Blocked, Guard, GuardedResolver};

/// Why an exchange produced no usable body. Stable names: they are stored
/// in `fetches.error_kind` and grouped by in summaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The SSRF guard refused the host (non-public address, not a seed).
    SsrfBlocked,
    /// DNS resolution failed.
    Dns,
    /// The TCP/TLS connection failed.
    Connect,
    /// The connect, read or total timeout ran out.
    Timeout,
    /// More redirects than allowed.
    RedirectLimit,
    /// A redirect led back to a URL already visited in this chain.
    RedirectLoop,
    /// A redirect without a usable `Location`.
    BadRedirect,
    /// The connection broke while reading the body.
    BodyRead,
    /// The response is not of a content type we crawl.
    ContentType,
    /// A non-2xx final status (4xx, 5xx).
    HttpStatus,
    /// Too many requests / service unavailable: retried with back-off.
    RateLimited,
    /// A redirect hop (or the request itself) that the hop's origin's
    /// robots.txt does not let us fetch: the request was never sent.
    RobotsDisallowed,
    /// A failure inside Byline while handling the response (a bug, caught
    /// at the per-page boundary); the crawl goes on.
    Internal,
    /// Any other client error.
    Other,
}

impl ErrorKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::SsrfBlocked => "ssrf_blocked",
            ErrorKind::Dns => "dns",
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::RedirectLimit => "redirect_limit",
            ErrorKind::RedirectLoop => "redirect_loop",
            ErrorKind::BadRedirect => "bad_redirect",
            ErrorKind::BodyRead => "body_read",
            ErrorKind::ContentType => "content_type",
            ErrorKind::HttpStatus => "http_status",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::RobotsDisallowed => "robots_disallowed",
            ErrorKind::Internal => "internal",
            ErrorKind::Other => "other",
        }
    }
}

/// One redirect hop.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Hop {
    pub url: String,
    pub status: u16,
    pub location: String,
}

/// The outcome of one GET, successful or not.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub requested_url: Url,
    /// The last URL requested (after redirects).
    pub final_url: Url,
    pub chain: Vec<Hop>,
    /// Unix seconds when the request started.
    pub fetched_at: i64,
    pub elapsed: Duration,
    pub status: Option<u16>,
    /// The HTTP version of the final response (`HTTP/1.1`, `HTTP/2`, ...).
    pub http_version: Option<&'static str>,
    pub headers: Vec<(String, String)>,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
    pub truncated: bool,
    pub error: Option<(ErrorKind, String)>,
    /// When a hop's robots.txt kept the request from being sent
    /// ([`ErrorKind::RobotsDisallowed`]): which hop and which rule.
    pub blocked: Option<HopBlock>,
}

/// A hop the hop's origin's robots.txt does not let us fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HopBlock {
    /// The URL of the hop that was not requested.
    pub url: String,
    /// The `robots_versions` row in force for its origin.
    pub robots_version_id: i64,
    /// The deciding rule's line and text, when a rule decided.
    pub matched_line: Option<usize>,
    pub rule: Option<String>,
    /// The status-code rule's reason (`robots.unreachable`), when no rule decided.
    pub reason: Option<String>,
}

impl Fetched {
    /// An exchange about to start on `url`, nothing received yet.
    pub fn new(url: &Url) -> Fetched {
        Fetched {
            requested_url: url.clone(),
            final_url: url.clone(),
            chain: Vec::new(),
            fetched_at: time::OffsetDateTime::now_utc().unix_timestamp(),
            elapsed: Duration::ZERO,
            status: None,
            http_version: None,
            headers: Vec::new(),
            content_type: None,
            body: Vec::new(),
            truncated: false,
            error: None,
            blocked: None,
        }
    }

    /// A header value by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `Retry-After` as a duration (delta-seconds or an HTTP date).
    pub fn retry_after(&self) -> Option<Duration> {
        parse_retry_after(self.header("retry-after")?, time::OffsetDateTime::now_utc())
    }

    /// `Cache-Control: max-age` as a duration (bounded: [`super::headers::max_age`]).
    pub fn max_age(&self) -> Option<Duration> {
        super::headers::max_age(self.header("cache-control")?)
    }
}

/// Parses `Retry-After` (RFC 9110 §10.2.3): delta-seconds or an HTTP-date,
/// at most [`super::headers::MAX_RETRY_AFTER`] ([`super::headers::retry_after`]).
pub fn parse_retry_after(v: &str, now: time::OffsetDateTime) -> Option<Duration> {
    super::headers::retry_after(v, now)
}

/// Limits for one fetch.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_redirects: usize,
    pub max_body_bytes: usize,
    /// Only read bodies of HTML-like content types (pages); robots.txt reads any.
    pub html_only: bool,
}

/// Timeouts and identity for the HTTP client.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub user_agent: String,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub total_timeout: Duration,
}

/// The shared HTTP client with its SSRF guard.
#[derive(Debug, Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    guard: Arc<Guard>,
    total_timeout: Duration,
    user_agent: String,
}

/// Whether a `Content-Type` is one we extract pages from. A missing type is
/// accepted (the body is sniffed as HTML).
pub fn is_html(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else { return true };
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    matches!(mime.as_str(), "text/html" | "application/xhtml+xml" | "")
}

impl Fetcher {
    /// Builds the client: no automatic redirects, no proxies (a proxy would
    /// bypass the SSRF guard), our resolver, our User-Agent.
    pub fn new(cfg: &ClientConfig, guard: Guard) -> Result<Fetcher, reqwest::Error> {
        // reqwest is built without a default TLS provider (Cargo.toml);
        // install ring once per process (a second install is a no-op error).
        static RING: std::sync::Once = std::sync::Once::new();
        RING.call_once(|| {
            let _ = rustls::crypto::ring::default_provider().install_default();
        });
        let guard = Arc::new(guard);
        let client = reqwest::Client::builder()
            .user_agent(&cfg.user_agent)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(GuardedResolver {
                guard: guard.clone(),
            })
            .connect_timeout(cfg.connect_timeout)
            .read_timeout(cfg.read_timeout)
            .build()?;
        Ok(Fetcher {
            client,
            guard,
            total_timeout: cfg.total_timeout,
            user_agent: cfg.user_agent.clone(),
        })
    }

    /// The User-Agent header sent.
    pub fn user_agent(&self) -> &str {
        &self.user_agent
    }

    /// The SSRF guard.
    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    /// The total time one fetch (all its hops) may spend on the network.
    pub fn total_timeout(&self) -> Duration {
        self.total_timeout
    }

    /// One exchange: sends `method url` (the guard has been asked by the
    /// caller; the resolver asks again at connect time) with at most `left`
    /// to go, and records status and headers in `out`. A redirect with a
    /// `Location` is returned as [`Step::Redirect`] (hop recorded in
    /// `out.chain`, body not read); anything else has its body read under
    /// `limits` into `out`. Redirect policy (limits, loops, robots.txt and
    /// politeness per hop) is the caller's: [`super::conduct::Conduct`].
    pub(crate) async fn exchange(
        &self,
        method: &reqwest::Method,
        cur: &Url,
        limits: Limits,
        left: Duration,
        out: &mut Fetched,
        conditional: Option<&Validators>,
    ) -> Result<Step, (ErrorKind, String)> {
        out.final_url = cur.clone();
        if left.is_zero() {
            return Err((
                ErrorKind::Timeout,
                format!("total timeout of {:?} reached", self.total_timeout),
            ));
        }
        let mut req = self
            .client
            .request(method.clone(), cur.clone())
            .timeout(left);
        if let Some(v) = conditional {
            if let Some(tag) = &v.etag {
                req = req.header(reqwest::header::IF_NONE_MATCH, tag.as_str());
            }
            if let Some(lm) = &v.last_modified {
                req = req.header(reqwest::header::IF_MODIFIED_SINCE, lm.as_str());
            }
        }
        let resp = req
            .send()
            .await
            .map_err(|e| classify(&e, self.total_timeout))?;
        let status = resp.status();
        out.status = Some(status.as_u16());
        out.http_version = Some(version_name(resp.version()));
        out.headers = headers_of(&resp);
        if status.is_redirection()
            && let Some(loc) = resp.headers().get(reqwest::header::LOCATION)
        {
            let loc = String::from_utf8_lossy(loc.as_bytes()).into_owned();
            let next = cur.join(loc.trim()).map_err(|e| {
                (
                    ErrorKind::BadRedirect,
                    format!("redirect from {cur} to {loc:?}: {e}"),
                )
            })?;
            out.chain.push(Hop {
                url: cur.to_string(),
                status: status.as_u16(),
                location: next.to_string(),
            });
            return Ok(Step::Redirect(next));
        }
        out.content_type = out.header("content-type").map(str::to_string);
        if limits.html_only && status.is_success() && !is_html(out.content_type.as_deref()) {
            return Err((
                ErrorKind::ContentType,
                format!(
                    "content type {:?} is not HTML",
                    out.content_type.as_deref().unwrap_or("")
                ),
            ));
        }
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                let (k, m) = classify(&e, self.total_timeout);
                let k = if k == ErrorKind::Timeout {
                    k
                } else {
                    ErrorKind::BodyRead
                };
                (k, format!("{m} after {} body bytes", out.body.len()))
            })?;
            let room = limits.max_body_bytes.saturating_sub(out.body.len());
            if chunk.len() > room {
                out.body.extend_from_slice(&chunk[..room]);
                out.truncated = true;
                break;
            }
            out.body.extend_from_slice(&chunk);
        }
        Ok(Step::Done)
    }
}

/// The validators of a stored response (RFC 9110 §8.8), sent back as
/// `If-None-Match` / `If-Modified-Since` when a page is fetched again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

impl Validators {
    /// The `ETag` and `Last-Modified` of stored response headers (values
    /// that are not valid header values are left out).
    pub fn from_headers(headers: &[(String, String)]) -> Validators {
        let get = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim().to_string())
                .filter(|v| !v.is_empty() && reqwest::header::HeaderValue::from_str(v).is_ok())
        };
        let http_date = |v: &str| {
            time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc2822).ok()
        };
        // RFC 9110 §8.8.2.2: a Last-Modified less than a second before the
        // response's Date is weak (the resource may have changed again in
        // that second); a conditional GET on it could be answered 304 for a
        // body we never saw, so it is not sent.
        let last_modified = get("last-modified").filter(|lm| {
            match (
                http_date(lm),
                get("date").as_deref().and_then(|d| http_date(d)),
            ) {
                (Some(lm), Some(date)) => (date - lm).whole_seconds() >= 1,
                _ => true,
            }
        });
        Validators {
            etag: get("etag"),
            last_modified,
        }
    }

    /// Whether there is anything to send.
    pub fn is_empty(&self) -> bool {
        self.etag.is_none() && self.last_modified.is_none()
    }
}

/// What one exchange led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// A redirect to this URL (not yet checked).
    Redirect(Url),
    /// A final response, body read.
    Done,
}

/// The status-line form of an HTTP version.
pub fn version_name(v: reqwest::Version) -> &'static str {
    match v {
        reqwest::Version::HTTP_09 => "HTTP/0.9",
        reqwest::Version::HTTP_10 => "HTTP/1.0",
        reqwest::Version::HTTP_2 => "HTTP/2",
        reqwest::Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

fn headers_of(resp: &reqwest::Response) -> Vec<(String, String)> {
    resp.headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// Maps a client error to its kind, with the full source chain as detail.
fn classify(e: &reqwest::Error, total: Duration) -> (ErrorKind, String) {
    let mut detail = e.to_string();
    let mut src = std::error::Error::source(e);
    let mut blocked = false;
    let mut dns = false;
    while let Some(s) = src {
        if s.downcast_ref::<Blocked>().is_some() {
            blocked = true;
        }
        let m = s.to_string();
        if m.contains("dns error") || m.contains("failed to lookup") {
            dns = true;
        }
        detail.push_str(": ");
        detail.push_str(&m);
        src = s.source();
    }
    let kind = if blocked {
        ErrorKind::SsrfBlocked
    } else if e.is_timeout() {
        detail = format!("{detail} (total limit {total:?})");
        ErrorKind::Timeout
    } else if dns {
        ErrorKind::Dns
    } else if e.is_connect() {
        ErrorKind::Connect
    } else if e.is_body() || e.is_decode() {
        ErrorKind::BodyRead
    } else {
        ErrorKind::Other
    };
    (kind, detail)
}

#[cfg(test)]
mod tests {

    #[test]
    fn validators_come_from_the_stored_headers() {
        let h = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        let v = Validators::from_headers(&h(&[
            ("content-type", "text/html"),
            ("ETag", " \"abc\" "),
            ("last-modified", "Tue, 01 Dec 2026 10:00:00 GMT"),
        ]));
        assert_eq!(v.etag.as_deref(), Some("\"abc\""));
        assert_eq!(
            v.last_modified.as_deref(),
            Some("Tue, 01 Dec 2026 10:00:00 GMT")
        );
        assert!(Validators::from_headers(&[]).is_empty());
        // Modified in the second the response was sent: a weak validator.
        let same_second = Validators::from_headers(&h(&[
            ("last-modified", "Tue, 01 Dec 2026 10:00:00 GMT"),
            ("date", "Tue, 01 Dec 2026 10:00:00 GMT"),
        ]));
        assert!(same_second.is_empty(), "{same_second:?}");
        let later = Validators::from_headers(&h(&[
            ("last-modified", "Tue, 01 Dec 2026 10:00:00 GMT"),
            ("date", "Tue, 01 Dec 2026 10:00:01 GMT"),
        ]));
        assert!(later.last_modified.is_some());
        // A value no request may carry (a control character) is left out.
        let bad = Validators::from_headers(&h(&[("etag", "\"a\u{1}b\""), ("last-modified", "")]));
        assert!(bad.is_empty(), "{bad:?}");
    }

    use super::*;

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        let now = time::macros::datetime!(2026-11-28 12:00:00 UTC);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sat, 28 Nov 2026 12:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn html_content_types_are_recognised() {
        assert!(is_html(Some("text/html; charset=utf-8")));
        assert!(is_html(Some("application/xhtml+xml")));
        assert!(is_html(None));
        assert!(!is_html(Some("application/pdf")));
        assert!(!is_html(Some("image/png")));
    }
}
