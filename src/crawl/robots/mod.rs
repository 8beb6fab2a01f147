//! robots.txt per RFC 9309: parsing and matching for our product token, and
//! the status-code rules that turn a fetch outcome into access.
//!
//! This module does not perform HTTP requests or caching; the crawler fetches
//! the file and hands the outcome to [`access()`]. `byline robots check` and
//! the crawler use exactly these functions.
//!
//! How a body becomes decisions:
//! 1. [`lines`]: numbered `key: value` records (BOM, CR/LF/CRLF, comments,
//!    lenient field names), after the [`PARSE_LIMIT`] cut.
//! 2. [`groups`]: the group(s) that apply to the token (normalised agent
//!    values; `Crawl-delay`/`Sitemap`/unknown lines never split a group;
//!    specific groups merged, else `*` groups merged, never both; rules
//!    before the first `User-agent:` ignored).
//! 3. [`pattern`]: rule patterns and URL paths percent-normalised the same way.
//! 4. `texting_robots` is handed a synthetic body holding only the selected,
//!    normalised rules under `User-agent: *` and gives the verdict; our layer
//!    finds the deciding line (longest match, allow wins ties) for
//!    [`RobotsDecision::matched_line`] and [`RobotsDecision::rule`]. The two
//!    are tested to agree on every conformance case. Where texting_robots
//!    cannot take a rule (its regex size limit, signals.md §1.8), or a file has
//!    more than [`TEXTING_ROBOTS_MAX_ANCHORED_RULES`] `$` rules (its cost grows
//!    by about a millisecond per such rule), our matcher decides instead of
//!    the origin becoming allow-all, and a warning says so.
//!
//! INTERFACE CONTRACT: the crawler relies on `PRODUCT_TOKEN`, `PARSE_LIMIT`,
//! `RobotsDecision`, `RobotsRules::{parse, check, crawl_delay, sitemaps,
//! warnings}` and the status-code layer ([`access()`], [`FetchOutcome`],
//! [`Access`]).

mod access;
mod file;
mod groups;
mod lines;
pub mod pattern;

use std::sync::Arc;
use std::time::Duration;

use url::Url;

pub use access::{
    Access, CACHE_TTL, FetchOutcome, HARD_CAP, MAX_REDIRECTS, REASON_REDIRECT_LIMIT,
    REASON_UNAVAILABLE, REASON_UNREACHABLE, WARNING_CONTENT_TYPE, access, access_for,
    access_limited, is_stale,
};
pub use file::{Group, RobotsFile, Rule as FileRule, RuleKind, Selected, allowed, decide};
pub use groups::GroupMatch;

/// Our product token (RFC 9309 §2.2.1: letters, `_` and `-` only).
pub const PRODUCT_TOKEN: &str = "BylineBot";

/// RFC 9309 §2.5: parse at least 500 KiB; we parse exactly this many bytes.
pub const PARSE_LIMIT: usize = 512_000;

/// Warning code: the body was longer than [`PARSE_LIMIT`] (or the fetcher
/// stopped reading); the rest, and a trailing partial line, were not parsed.
pub const WARNING_TRUNCATED: &str = "robots.truncated";
/// Warning code: group rules before the first `User-agent:` line, ignored
/// (RFC 9309 §2.1 "SHOULD" ignore; signals.md §1.9).
pub const WARNING_RULES_WITHOUT_GROUP: &str = "robots.rules_without_group";
/// Warning code: a rule texting_robots refused (regex size limit); our own
/// matcher applies it instead (signals.md §1.8 "Errors").
pub const WARNING_PARSE_ERROR: &str = "robots.parse_error";
/// Warning code: so many end-anchored (`$`) rules that texting_robots is
/// not used for this file; Byline's matcher decides alone.
pub const WARNING_MATCHER_FALLBACK: &str = "robots.matcher_fallback";
/// texting_robots compiles one regex per `$` rule (about a millisecond each)
/// and runs every rule on every check. Above this many `$` rules in our
/// group, our own matcher (cross-checked against texting_robots by the
/// conformance tests) decides alone, so a hostile 500 KB file cannot cost
/// seconds of CPU per origin.
pub const TEXTING_ROBOTS_MAX_ANCHORED_RULES: usize = 500;
/// Warning code: lines that are not `key: value` records (e.g. an HTML body).
pub const WARNING_UNPARSEABLE_LINES: &str = "robots.unparseable_lines";
/// Warning code: a `Crawl-delay` in our group that is negative or not a number.
pub const WARNING_CRAWL_DELAY: &str = "robots.crawl_delay_invalid";

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

/// One `Allow`/`Disallow` rule of the selected groups.
#[derive(Debug)]
struct Rule {
    allow: bool,
    /// Normalised pattern (see [`pattern`]); its length ranks matches.
    pattern: String,
    /// 1-based line in the original body.
    line: usize,
    /// The line as written (comment removed, trimmed).
    text: String,
}

/// The parsed rules of one robots.txt body as they apply to one product token.
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct RobotsRules {
    rules: Arc<[Rule]>,
    /// texting_robots built from the selected, normalised rules; `None` if it
    /// refused even the reduced set.
    inner: Option<Arc<texting_robots::Robot>>,
    /// Whether `inner` holds every rule in `rules` (else our matcher decides).
    inner_complete: bool,
    matched: GroupMatch,
    crawl_delay: Option<f64>,
    sitemaps: Vec<String>,
    warnings: Vec<String>,
}

impl RobotsRules {
    /// Parses `body` for `token` (a bare product token such as `BylineBot`,
    /// never a whole User-Agent header). Never fails: unparseable lines are
    /// skipped and reported in `warnings`.
    pub fn parse(body: &[u8], token: &str) -> RobotsRules {
        RobotsRules::parse_fetched(body, token, false)
    }

    /// [`RobotsRules::parse`] for a body the fetcher stopped reading early
    /// (`truncated`): its last line may be partial and is dropped.
    pub fn parse_fetched(body: &[u8], token: &str, truncated: bool) -> RobotsRules {
        RobotsRules::parse_limited(body, token, truncated, PARSE_LIMIT)
    }

    /// [`RobotsRules::parse_fetched`] with another parse limit (the policy
    /// knob `robots.max_bytes`, never below [`PARSE_LIMIT`]: RFC 9309 §2.5
    /// requires at least 500 KiB; a smaller value is raised to it).
    pub fn parse_limited(body: &[u8], token: &str, truncated: bool, limit: usize) -> RobotsRules {
        let limit = limit.max(PARSE_LIMIT);
        let mut warnings = Vec::new();
        let body = if body.len() > limit || truncated {
            // RFC 9309 §2.5: parse at least 500 KiB; signals.md §1.6: drop the
            // trailing partial line so a cut rule is never half-applied.
            let head = &body[..body.len().min(limit)];
            let end = head
                .iter()
                .rposition(|&b| b == b'\n' || b == b'\r')
                .map_or(0, |i| i + 1);
            warnings.push(format!(
                "{WARNING_TRUNCATED}: parsed {end} of {} bytes (limit {limit})",
                body.len()
            ));
            &head[..end]
        } else {
            body
        };

        let split = lines::split(body);
        if let Some(first) = split.unparseable.first() {
            warnings.push(format!(
                "{WARNING_UNPARSEABLE_LINES}: {} lines are not `key: value` records (first: line {first})",
                split.unparseable.len()
            ));
        }
        let selection = groups::select(&split.records, token);
        if !selection.orphan_rules.is_empty() {
            let lines: Vec<String> = selection
                .orphan_rules
                .iter()
                .map(|l| l.to_string())
                .collect();
            warnings.push(format!(
                "{WARNING_RULES_WITHOUT_GROUP}: rules before the first User-agent line are ignored (lines {})",
                lines.join(", ")
            ));
        }

        let mut rules = Vec::new();
        let mut crawl_delay = None;
        for record in &selection.records {
            match record.key {
                lines::Key::Allow | lines::Key::Disallow => rules.push(Rule {
                    allow: record.key == lines::Key::Allow,
                    pattern: pattern::normalise_pattern(record.value),
                    line: record.line,
                    text: String::from_utf8_lossy(record.text).into_owned(),
                }),
                lines::Key::CrawlDelay if crawl_delay.is_none() => {
                    match parse_delay(record.value) {
                        Some(d) => crawl_delay = Some(d),
                        None => warnings.push(format!(
                            "{WARNING_CRAWL_DELAY}: line {}: {:?} is not a non-negative number of seconds",
                            record.line,
                            String::from_utf8_lossy(record.value)
                        )),
                    }
                }
                _ => {}
            }
        }
        // Spec §1.7: the delay comes from our group. Like texting_robots, a
        // value placed before any `User-agent:` line counts when our group has
        // none: it is politeness, not consent, so the stricter reading is fine.
        if crawl_delay.is_none() {
            crawl_delay = selection
                .preamble
                .iter()
                .filter(|r| r.key == lines::Key::CrawlDelay)
                .find_map(|r| parse_delay(r.value));
        }
        // Sitemaps are global (sitemaps.org; signals.md §1.7).
        let sitemaps = split
            .records
            .iter()
            .filter(|r| r.key == lines::Key::Sitemap && !r.value.is_empty())
            .map(|r| String::from_utf8_lossy(r.value).into_owned())
            .collect();

        let (inner, inner_complete) = build_texting_robots(&rules, &mut warnings);
        RobotsRules {
            rules: rules.into(),
            inner,
            inner_complete,
            matched: selection.matched,
            crawl_delay,
            sitemaps,
            warnings,
        }
    }

    /// Decides whether `url` may be fetched. Only the path and query count:
    /// the caller makes sure `url` belongs to the origin this file came from.
    pub fn check(&self, url: &Url) -> RobotsDecision {
        self.check_path(&match_path(url))
    }

    /// texting_robots' own verdict for `url` on the rules it was given, or
    /// `None` when it could not take all of them. [`RobotsRules::check`]
    /// uses it; exposed so tests can show it agrees with the deciding line.
    pub fn texting_robots_allowed(&self, url: &Url) -> Option<bool> {
        let inner = self.inner.as_ref().filter(|_| self.inner_complete)?;
        Some(inner.allowed(&match_path(url)))
    }

    fn check_path(&self, path: &str) -> RobotsDecision {
        // RFC 9309 §2.2.2: "/robots.txt" is implicitly allowed.
        if path == "/robots.txt" {
            return RobotsDecision {
                allowed: true,
                matched_line: None,
                rule: None,
            };
        }
        let deciding = self.deciding_rule(path);
        let ours = deciding.is_none_or(|r| r.allow);
        let allowed = match self.inner.as_ref().filter(|_| self.inner_complete) {
            Some(inner) => {
                let theirs = inner.allowed(path);
                if theirs != ours {
                    // Never expected (tests assert agreement); if it happens,
                    // the stricter verdict wins.
                    tracing::warn!(path, theirs, ours, "robots matchers disagree");
                }
                theirs && ours
            }
            None => ours,
        };
        RobotsDecision {
            allowed,
            matched_line: deciding.map(|r| r.line),
            rule: deciding.map(|r| r.text.clone()),
        }
    }

    /// RFC 9309 §2.2.2: the most specific (longest) matching rule wins; on a
    /// tie between allow and disallow, allow "SHOULD" win. Among identical
    /// candidates the first in the file is reported. Empty patterns match
    /// nothing (`Disallow:` is not "disallow all").
    fn deciding_rule(&self, path: &str) -> Option<&Rule> {
        pattern::longest_match(
            self.rules.iter().map(|r| (r.pattern.as_str(), r.allow, r)),
            path,
        )
        .map(|(_, r)| r)
    }

    /// Crawl-delay in seconds from the group that applies to us, if any.
    pub fn crawl_delay(&self) -> Option<f64> {
        self.crawl_delay
    }

    /// [`RobotsRules::crawl_delay`] as a `Duration`, at most `max`. Safe on
    /// any value the file held: `Crawl-delay: 1e30` gives `max` where
    /// `Duration::from_secs_f64` would panic.
    pub fn crawl_delay_duration(&self, max: Duration) -> Option<Duration> {
        let d = self.crawl_delay?;
        Some(Duration::try_from_secs_f64(d).map_or(max, |d| d.min(max)))
    }

    /// Sitemap URLs listed anywhere in the file.
    pub fn sitemaps(&self) -> &[String] {
        &self.sitemaps
    }

    /// Parse warnings, each `code: detail` (`robots.truncated`,
    /// `robots.rules_without_group`, `robots.parse_error`, ...).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Which group(s) applied to the token.
    pub fn group_match(&self) -> GroupMatch {
        self.matched
    }

    /// Adds a warning found outside the body (e.g. by the status-code layer).
    pub(crate) fn push_warning(&mut self, warning: String) {
        self.warnings.push(warning);
    }
}

/// The string rules are matched against: the URL's path plus `?query`,
/// without the fragment, percent-normalised (RFC 9309 §2.2.2; signals.md §1.4).
pub fn match_path(url: &Url) -> String {
    let mut raw = url.path().to_owned();
    if let Some(q) = url.query() {
        raw.push('?');
        raw.push_str(q);
    }
    pattern::normalise_path(&raw)
}

/// Normalises an `Allow`/`Disallow` value the way rules are matched
/// (upper-case hex, unreserved octets decoded, non-ASCII encoded; see
/// [`pattern`]).
pub fn normalise_pattern(value: &str) -> String {
    pattern::normalise_pattern(value.as_bytes())
}

/// Reads what a user typed as a URL to check: an absolute URL
/// (`https://h/a?b`), a path (`/a/b`), or Google's looser forms
/// (`example.com/a`, `//host/a`). An empty string is `/`.
pub fn target_url(input: &str) -> Result<Url, url::ParseError> {
    let base = Url::parse("http://robots.invalid/").expect("static base URL parses");
    if input.is_empty() {
        return Ok(base);
    }
    if input.contains("://") {
        let url = Url::parse(input)?;
        return if url.has_host() {
            Ok(url)
        } else {
            Err(url::ParseError::EmptyHost)
        };
    }
    if input.starts_with("//") {
        Url::parse(&format!("http:{input}"))
    } else if input.starts_with('/') {
        base.join(input)
    } else {
        Url::parse(&format!("http://{input}"))
    }
}

/// RFC-less `Crawl-delay` (signals.md §1.7): decimals accepted, negatives and
/// non-numbers rejected.
fn parse_delay(value: &[u8]) -> Option<f64> {
    let d: f64 = std::str::from_utf8(value).ok()?.trim().parse().ok()?;
    (d.is_finite() && d >= 0.0).then_some(d)
}

/// Hands texting_robots a body with only our selected, normalised rules.
/// If it refuses the body (a `$` rule above its regex size limit makes
/// `Robot::new` fail for the whole file), the refused rules are left to our
/// own matcher and recorded as `robots.parse_error`; never allow-all.
fn build_texting_robots(
    rules: &[Rule],
    warnings: &mut Vec<String>,
) -> (Option<Arc<texting_robots::Robot>>, bool) {
    let body = |rules: &mut dyn Iterator<Item = &Rule>| {
        let mut body = String::from("User-agent: *\n");
        for r in rules {
            body.push_str(if r.allow { "Allow: " } else { "Disallow: " });
            body.push_str(&r.pattern);
            body.push('\n');
        }
        body
    };
    let usable = |r: &&Rule| !r.pattern.is_empty();
    let anchored = rules.iter().filter(|r| r.pattern.ends_with('$')).count();
    if anchored > TEXTING_ROBOTS_MAX_ANCHORED_RULES {
        warnings.push(format!(
            "{WARNING_MATCHER_FALLBACK}: {anchored} rules end in `$` (limit {TEXTING_ROBOTS_MAX_ANCHORED_RULES} for texting_robots); Byline's matcher decides alone"
        ));
        return (None, false);
    }
    let full = body(&mut rules.iter().filter(usable));
    if let Ok(robot) = texting_robots::Robot::new("*", full.as_bytes()) {
        return (Some(Arc::new(robot)), true);
    }
    let refused: Vec<&Rule> = rules
        .iter()
        .filter(usable)
        .filter(|r| {
            texting_robots::Robot::new("*", body(&mut std::iter::once(*r)).as_bytes()).is_err()
        })
        .collect();
    for r in &refused {
        warnings.push(format!(
            "{WARNING_PARSE_ERROR}: line {}: a rule of {} bytes is too complex for texting_robots; Byline's matcher applies it",
            r.line,
            r.pattern.len()
        ));
    }
    let reduced = body(
        &mut rules
            .iter()
            .filter(usable)
            .filter(|r| !refused.iter().any(|x| std::ptr::eq(*x, *r))),
    );
    let inner = texting_robots::Robot::new("*", reduced.as_bytes())
        .ok()
        .map(Arc::new);
    (inner, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Crawl-delay: 1e30` parses (finite, non-negative) but is far beyond
    /// what `Duration::from_secs_f64` takes; the accessor saturates at the cap.
    #[test]
    fn huge_crawl_delays_saturate_at_the_cap() {
        let max = Duration::from_secs(60);
        for (v, want) in [
            ("1e30", Some(max)),
            ("18446744073709551616", Some(max)),
            ("0.5", Some(Duration::from_millis(500))),
            ("0", Some(Duration::ZERO)),
            ("1e400", None),
            ("-1", None),
        ] {
            let r = RobotsRules::parse(
                format!("User-agent: *\nCrawl-delay: {v}\n").as_bytes(),
                PRODUCT_TOKEN,
            );
            assert_eq!(r.crawl_delay_duration(max), want, "{v}");
        }
    }
}
