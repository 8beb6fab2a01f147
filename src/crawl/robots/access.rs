//! The status-code layer: turns the outcome of fetching `/robots.txt` into the
//! access an origin grants us (RFC 9309 §2.3.1, signals.md §1.2).
//!
//! Pure: no I/O, no clock. The crawler performs the GET, follows redirects (at
//! most [`MAX_REDIRECTS`] hops, any host), reads at most [`PARSE_LIMIT`](super::PARSE_LIMIT) bytes
//! (aborting beyond [`HARD_CAP`]), caches the result for at most
//! [`CACHE_TTL`], and hands the outcome to [`access`].

use crate::crawl::reasons::SkipReason;
use std::time::Duration;

use super::{PRODUCT_TOKEN, RobotsDecision, RobotsRules};

/// RFC 9309 §2.3.1.2: crawlers "SHOULD follow at least five consecutive
/// redirects, even across authorities". We follow exactly five; a sixth
/// redirect is [`FetchOutcome::RedirectLimit`].
pub const MAX_REDIRECTS: usize = 5;

/// RFC 9309 §2.4: a cached copy "SHOULD NOT" be used for more than 24 hours,
/// unless the file is unreachable (then the last good copy stays in force).
/// With HTTP cache headers (RFC 9111), expiry is `min(max-age, CACHE_TTL)`.
pub const CACHE_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// Spec §1.6: abort a robots.txt download beyond 2 MiB (compressed or
/// decompressed) to defuse compression bombs. Only [`PARSE_LIMIT`](super::PARSE_LIMIT) bytes of
/// it are parsed; the cap only bounds what the fetcher is willing to read.
pub const HARD_CAP: usize = 2 * 1024 * 1024;

/// What happened when the crawler fetched `/robots.txt` for one origin,
/// after following redirects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchOutcome {
    /// A 2xx response. `body` is the decompressed body, at most
    /// [`HARD_CAP`] bytes (more than [`PARSE_LIMIT`](super::PARSE_LIMIT) is fine: parsing cuts it).
    /// `truncated` is true when the fetcher stopped reading before the end of
    /// the body (at [`PARSE_LIMIT`](super::PARSE_LIMIT) or [`HARD_CAP`]); a trailing partial line
    /// is then dropped. A connection that broke mid-body is a
    /// [`FetchOutcome::NetworkError`], not a truncated success.
    Success {
        status: u16,
        body: Vec<u8>,
        content_type: Option<String>,
        truncated: bool,
    },
    /// 4xx other than 429: the file is "unavailable" (RFC 9309 §2.3.1.3).
    Unavailable { status: u16 },
    /// 429 Too Many Requests, with the parsed `Retry-After` if the server sent one.
    TooManyRequests { retry_after: Option<Duration> },
    /// 5xx, or any status the RFC does not classify (1xx, an unfollowable 3xx,
    /// codes above 599): "unreachable" (RFC 9309 §2.3.1.4).
    ServerError { status: u16 },
    /// DNS, connect, TLS, timeout, reset, a body cut off by the peer, or an
    /// undecodable body: "unreachable" (RFC 9309 §2.3.1.4).
    NetworkError { reason: String },
    /// More than [`MAX_REDIRECTS`] consecutive redirects, or a redirect loop.
    RedirectLimit { hops: usize },
}

impl FetchOutcome {
    /// Classifies a final (post-redirect) HTTP response by status code.
    /// `retry_after` is only kept for 429; `body` and `content_type` only for 2xx.
    pub fn from_response(
        status: u16,
        body: Vec<u8>,
        content_type: Option<String>,
        truncated: bool,
        retry_after: Option<Duration>,
    ) -> FetchOutcome {
        match status {
            200..=299 => FetchOutcome::Success {
                status,
                body,
                content_type,
                truncated,
            },
            429 => FetchOutcome::TooManyRequests { retry_after },
            400..=499 => FetchOutcome::Unavailable { status },
            _ => FetchOutcome::ServerError { status },
        }
    }

    /// The HTTP status of the final response, if there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            FetchOutcome::Success { status, .. }
            | FetchOutcome::Unavailable { status }
            | FetchOutcome::ServerError { status } => Some(*status),
            FetchOutcome::TooManyRequests { .. } => Some(429),
            FetchOutcome::NetworkError { .. } | FetchOutcome::RedirectLimit { .. } => None,
        }
    }
}

/// What an origin's robots.txt lets us do, after applying the status-code rules.
#[derive(Debug, Clone)]
pub enum Access {
    /// A 2xx body was parsed; its rules decide (RFC 9309 §2.3.1.1).
    Rules(RobotsRules),
    /// The fetch failed as "unreachable" (5xx, 429, network error) but a good
    /// copy fetched earlier stays in force (RFC 9309 §2.4 "unless unreachable";
    /// signals.md §1.6 and case S4). `reason` is `robots.unreachable`; retry later.
    Cached {
        rules: RobotsRules,
        reason: &'static str,
        retry_after: Option<Duration>,
    },
    /// No rules apply: everything is allowed. `reason` is
    /// `robots.unavailable` (4xx) or `robots.redirect_limit`.
    AllowAll { reason: &'static str },
    /// Nothing may be fetched for now; retry later (no earlier than
    /// `retry_after` when the server said so). `reason` is `robots.unreachable`.
    DisallowAll {
        reason: &'static str,
        retry_after: Option<Duration>,
    },
}

/// Reason code: 4xx, the file is unavailable; allow all.
pub const REASON_UNAVAILABLE: &str = SkipReason::RobotsUnavailable.as_str();
/// Reason code: 5xx, 429 or network error; disallow all (or keep the cached copy).
pub const REASON_UNREACHABLE: &str = SkipReason::RobotsUnreachable.as_str();
/// Reason code: too many redirects or a redirect loop; allow all.
pub const REASON_REDIRECT_LIMIT: &str = SkipReason::RobotsRedirectLimit.as_str();
/// Warning code: a 2xx body whose content type is not `text/plain`.
pub const WARNING_CONTENT_TYPE: &str = "robots.content_type_mismatch";

impl Access {
    /// Decides one URL of the origin this access belongs to. Allow-all and
    /// disallow-all carry no rule line.
    pub fn check(&self, url: &url::Url) -> RobotsDecision {
        match self {
            Access::Rules(rules) | Access::Cached { rules, .. } => rules.check(url),
            Access::AllowAll { .. } => RobotsDecision {
                allowed: true,
                matched_line: None,
                rule: None,
            },
            Access::DisallowAll { .. } => RobotsDecision {
                allowed: false,
                matched_line: None,
                rule: None,
            },
        }
    }

    /// The reason code when the decision does not come from freshly parsed rules.
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            Access::Rules(_) => None,
            Access::Cached { reason, .. }
            | Access::AllowAll { reason }
            | Access::DisallowAll { reason, .. } => Some(reason),
        }
    }

    /// True when the origin must be asked again later (spec: `deferred`).
    pub fn is_deferred(&self) -> bool {
        matches!(self, Access::Cached { .. } | Access::DisallowAll { .. })
    }

    /// How long to wait before refetching, if the server said (429 `Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Access::Cached { retry_after, .. } | Access::DisallowAll { retry_after, .. } => {
                *retry_after
            }
            _ => None,
        }
    }

    /// The rules in force, if any (fresh or cached).
    pub fn rules(&self) -> Option<&RobotsRules> {
        match self {
            Access::Rules(rules) | Access::Cached { rules, .. } => Some(rules),
            _ => None,
        }
    }
}

/// Applies RFC 9309 §2.3.1 (signals.md §1.2) to one fetch outcome for our
/// [`PRODUCT_TOKEN`]. `last_good` is the most recent copy parsed from a 2xx
/// response for the same origin, however old; it is only used when the new
/// fetch is unreachable.
pub fn access(outcome: FetchOutcome, last_good: Option<RobotsRules>) -> Access {
    access_for(outcome, last_good, PRODUCT_TOKEN)
}

/// [`access`] for another product token (tests, `byline robots check`).
pub fn access_for(outcome: FetchOutcome, last_good: Option<RobotsRules>, token: &str) -> Access {
    access_limited(outcome, last_good, token, super::PARSE_LIMIT)
}

/// [`access_for`] parsing at most `limit` bytes of a 2xx body (the policy
/// knob `robots.max_bytes`; never below [`PARSE_LIMIT`](super::PARSE_LIMIT)).
pub fn access_limited(
    outcome: FetchOutcome,
    last_good: Option<RobotsRules>,
    token: &str,
    limit: usize,
) -> Access {
    let unreachable = |retry_after: Option<Duration>| match last_good {
        // RFC 9309 §2.4: the cached copy may be used beyond 24 h while the file
        // is unreachable. Spec §1.2 (OURS): keep it rather than flip to allow-all.
        Some(rules) => Access::Cached {
            rules,
            reason: REASON_UNREACHABLE,
            retry_after,
        },
        // RFC 9309 §2.3.1.4: "the crawler MUST assume complete disallow".
        None => Access::DisallowAll {
            reason: REASON_UNREACHABLE,
            retry_after,
        },
    };
    match outcome {
        // RFC 9309 §2.3.1.1: "MUST follow the parseable rules". Whatever the
        // content type: an HTML soft-404 simply yields no rules (signals.md §1.1).
        FetchOutcome::Success {
            body,
            content_type,
            truncated,
            ..
        } => {
            let mut rules = RobotsRules::parse_limited(&body, token, truncated, limit);
            if let Some(ct) = content_type.as_deref()
                && !is_text_plain(ct)
            {
                rules.push_warning(format!(
                    "{WARNING_CONTENT_TYPE}: content type is {ct:?}, expected \"text/plain\""
                ));
            }
            Access::Rules(rules)
        }
        // RFC 9309 §2.3.1.3: "unavailable" (4xx): the crawler "MAY access any
        // resources". 401 and 403 included (spec S2).
        FetchOutcome::Unavailable { .. } => Access::AllowAll {
            reason: REASON_UNAVAILABLE,
        },
        // Spec §1.2 (OURS): 429 is a 4xx for the RFC, but a server that
        // rate-limits us is not granting access; treat as unreachable, honour
        // Retry-After (spec S7).
        FetchOutcome::TooManyRequests { retry_after } => unreachable(retry_after),
        // RFC 9309 §2.3.1.4: server errors and network errors are "unreachable".
        FetchOutcome::ServerError { .. } | FetchOutcome::NetworkError { .. } => unreachable(None),
        // RFC 9309 §2.3.1.2: beyond the redirects followed, the file MAY be
        // treated as unavailable; Google does the same (signals.md §1.2, S6).
        FetchOutcome::RedirectLimit { .. } => Access::AllowAll {
            reason: REASON_REDIRECT_LIMIT,
        },
    }
}

/// RFC 9309 §2.3: the file "MUST" be `text/plain` (parameters such as charset allowed).
fn is_text_plain(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/plain"))
}

/// Whether a robots.txt fetched at `fetched_at` must be refetched at `now`
/// (RFC 9309 §2.4, spec S9). `max_age` is the response's `Cache-Control:
/// max-age`, if any; it can shorten the life of a copy but never extend it
/// past [`CACHE_TTL`].
pub fn is_stale(
    fetched_at: std::time::SystemTime,
    now: std::time::SystemTime,
    max_age: Option<Duration>,
) -> bool {
    let ttl = max_age.map_or(CACHE_TTL, |m| m.min(CACHE_TTL));
    match now.duration_since(fetched_at) {
        Ok(age) => age >= ttl,
        // A fetch time in the future (clock moved back): not stale.
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests;
