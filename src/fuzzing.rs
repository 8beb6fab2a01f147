//! Fuzz harnesses: the code each `cargo fuzz` target under `fuzz/` runs,
//! kept in the library so that `cargo test` replays every kept corpus file
//! (`fuzz/corpus/<target>`) through exactly the same code.
//!
//! Each harness feeds bytes a server could send through a stage of the
//! crawl (no network) and asserts invariants on the result, beyond "no
//! panic". Not an API: hidden from the docs.

use std::sync::OnceLock;
use std::time::Duration;

use url::Url;

use crate::crawl::robots::{self, FetchOutcome, PRODUCT_TOKEN, RobotsRules};
use crate::crawl::{charset, extract, headers};
use crate::policy::evidence::{RAW_LIMIT, RobotsOutcome};
use crate::policy::gather::{PageInputs, RobotsInput, gather, rsl_links};
use crate::policy::origin::{self, FileFetch};
use crate::policy::robotstxt::{self, RobotsFile, RuleKind, Selected};
use crate::policy::{self, Evidence, Policy, aipref, directives, licence, page, tdmrep};

/// The page every harness pretends to have fetched.
pub const PAGE_URL: &str = "https://fuzz.example/dir/page.html?q=1";
/// Separates the sections of a `page` input (headers, body, robots.txt,
/// tdmrep.json, ai.txt, llms.txt, RSL document).
pub const SECTION: &[u8] = b"\0--\0";
/// "Now" for every harness (Unix seconds), so runs are reproducible.
const NOW: i64 = 1_795_000_000;

fn now_utc() -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(NOW).expect("a fixed, valid time")
}

fn default_policy() -> &'static Policy {
    static P: OnceLock<Policy> = OnceLock::new();
    P.get_or_init(policy::default_policy)
}

fn page_url() -> Url {
    Url::parse(PAGE_URL).expect("a static URL")
}

/// `Name: value` lines of `text` (lines without a colon are skipped).
fn header_lines(text: &str) -> Vec<(String, String)> {
    text.split(['\n', '\r'])
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn split_sections(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(i) = rest.windows(SECTION.len()).position(|w| w == SECTION) {
        out.push(&rest[..i]);
        rest = &rest[i + SECTION.len()..];
    }
    out.push(rest);
    out
}

/// An origin file from two flag bits and a section: absent, a 200 body, a
/// 404 or a failure.
fn file_fetch(bits: u8, body: Option<&[u8]>) -> Option<FileFetch> {
    match bits & 3 {
        0 => None,
        1 => Some(FileFetch::Body {
            status: 200,
            body: String::from_utf8_lossy(body.unwrap_or_default()).into_owned(),
        }),
        2 => Some(FileFetch::Missing { status: 404 }),
        _ => Some(FileFetch::Failed {
            status: Some(503),
            error: "status 503".into(),
        }),
    }
}

fn check_evidence(evidence: &[Evidence]) {
    for e in evidence {
        assert!(
            e.raw.len() <= RAW_LIMIT,
            "raw of {} is {} bytes",
            e.signal,
            e.raw.len()
        );
        assert!(!e.signal.is_empty());
    }
}

fn check_extracted(x: &extract::Extracted) {
    use sha2::{Digest, Sha256};
    assert_eq!(
        x.text_sha256,
        hex::encode(Sha256::digest(x.text.as_bytes()))
    );
    assert!(
        !x.text.contains(['\u{E000}', '\u{E001}']),
        "nosnippet marks left in the text"
    );
    let mut last_end = None;
    for &(a, b) in &x.nosnippet_spans {
        assert!(
            a < b && b <= x.text.len(),
            "span {a}..{b} of {}",
            x.text.len()
        );
        assert!(x.text.is_char_boundary(a) && x.text.is_char_boundary(b));
        if let Some(e) = last_end {
            assert!(a > e, "spans overlap or touch: {:?}", x.nosnippet_spans);
        }
        last_end = Some(b);
    }
    for l in &x.links {
        assert!(matches!(l.url.scheme(), "http" | "https"));
    }
    // The passages the index pass cuts from the stored text: in order,
    // each exactly its span of the text, none reaching into hidden text.
    let passages = crate::index::text::split_passages(
        &x.text,
        &x.nosnippet_spans,
        crate::index::PASSAGE_MAX_BYTES,
    );
    let mut last = 0;
    for p in &passages {
        assert!(p.start_byte >= last && p.start_byte < p.end_byte);
        assert_eq!(x.text.get(p.start_byte..p.end_byte), Some(p.text.as_str()));
        assert_eq!(x.text[..p.start_byte].chars().count(), p.start_char);
        assert_eq!(p.start_char + p.text.chars().count(), p.end_char);
        for &(a, b) in &x.nosnippet_spans {
            assert!(
                b <= p.start_byte || p.end_byte <= a,
                "passage {p:?} overlaps {a}..{b}"
            );
        }
        last = p.end_byte;
    }
    if let Some(c) = &x.canonical_url {
        assert!(Url::parse(c).is_ok());
    }
}

/// The `page` target: `flags ‖ headers ‖ SECTION ‖ body ‖ SECTION ‖
/// robots.txt ‖ SECTION ‖ tdmrep.json ‖ SECTION ‖ ai.txt ‖ SECTION ‖
/// llms.txt ‖ SECTION ‖ RSL`. The body is decoded by the response's charset,
/// extracted, and the whole consent pipeline (gather, then evaluate under
/// the bundled default policy) runs on it. Flags: bits 0–1 the robots.txt
/// outcome (fresh rules, cached rules, 4xx allow-all, unreachable), bits
/// 2–3, 4–5, 6–7 how tdmrep.json, ai.txt and llms.txt fetched.
pub fn fuzz_page(data: &[u8]) {
    let (&flags, rest) = data.split_first().unwrap_or((&0, &[]));
    let s = split_sections(rest);
    let part = |i: usize| s.get(i).copied();
    let head = String::from_utf8_lossy(part(0).unwrap_or_default());
    let hdrs = header_lines(&head);
    let body = part(1).unwrap_or_default();
    let robots_bytes = part(2).unwrap_or_default();

    // Charset and extraction, as the crawler stores a page.
    let content_type = hdrs
        .iter()
        .rev()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.as_str());
    let decoded = charset::decode(body, content_type);
    assert!(!decoded.used.is_empty());
    if body.is_empty() {
        assert!(decoded.text.is_empty());
    }
    let url = page_url();
    let x = extract::extract(&decoded.text, &url);
    check_extracted(&x);

    // robots.txt as it governed the fetch.
    let rules = RobotsRules::parse(robots_bytes, PRODUCT_TOKEN);
    let decision = rules.check(&url);
    let robots_text = String::from_utf8_lossy(robots_bytes);
    let by_rules = if decision.allowed {
        RobotsOutcome::Allowed
    } else {
        RobotsOutcome::Disallowed
    };
    let (outcome, status, from_cache, robots_body) = match flags & 3 {
        0 => (by_rules, Some(200), false, Some(&*robots_text)),
        1 => (by_rules, Some(503), true, Some(&*robots_text)),
        2 => (RobotsOutcome::Unavailable, Some(404), false, None),
        _ => (RobotsOutcome::Unreachable, None, false, None),
    };
    let tdm = file_fetch(flags >> 2, part(3));
    let ai = file_fetch(flags >> 4, part(4));
    let llms = file_fetch(flags >> 6, part(5));
    let mut inputs = PageInputs {
        page_url: PAGE_URL,
        token: PRODUCT_TOKEN,
        robots: RobotsInput {
            outcome,
            status,
            body: robots_body,
            from_cache,
            cache_age_secs: from_cache.then_some(3600),
        },
        headers: &hdrs,
        html: Some(&decoded.text),
        tdmrep: tdm.as_ref(),
        ai_txt: ai.as_ref(),
        llms_txt: llms.as_ref(),
        rsl: &[],
    };
    let mut evidence = gather(&inputs);
    assert!(!evidence.is_empty());
    assert_eq!(evidence[0].signal, "robots.txt");
    let stopped = matches!(
        outcome,
        RobotsOutcome::Disallowed | RobotsOutcome::Unreachable
    );
    if stopped {
        assert_eq!(evidence.len(), 1, "nothing but robots.txt after a refusal");
    }
    check_evidence(&evidence);

    // RSL documents the evidence points to get the last section as body.
    let links = rsl_links(&evidence, PAGE_URL);
    let rsl: Vec<(String, FileFetch)> = match part(6) {
        Some(doc) if !stopped => links
            .iter()
            .take(3)
            .map(|l| {
                (
                    l.clone(),
                    FileFetch::from_status(200, String::from_utf8_lossy(doc).into_owned()),
                )
            })
            .collect(),
        _ => Vec::new(),
    };
    if !rsl.is_empty() {
        inputs.rsl = &rsl;
        evidence = gather(&inputs);
        check_evidence(&evidence);
    }

    let verdicts = policy::evaluate(&evidence, default_policy(), NOW);
    for v in verdicts.iter() {
        assert!(v.evidence.iter().all(|&i| i < evidence.len()));
        assert!(!v.reasons.is_empty() || v.decision.is_allowed());
    }
    if outcome == RobotsOutcome::Disallowed {
        assert!(verdicts.iter().all(|v| !v.decision.is_allowed()));
    }
}

/// Paths to check a robots.txt against: fixed ones, and the values of the
/// file's own lines (its rules' patterns are likely near-misses).
fn robots_paths(body: &[u8]) -> Vec<String> {
    let mut v: Vec<String> = [
        "/",
        "/robots.txt",
        "/dir/page.html?q=1",
        "/%E3%83%84/ü",
        "/a*b$",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let text = String::from_utf8_lossy(body);
    for line in text.split(['\n', '\r']).take(200) {
        if let Some((_, val)) = line.split('#').next().unwrap_or("").split_once(':') {
            let val = val.trim();
            if val.starts_with('/') && v.len() < 24 {
                v.push(val.replace('$', ""));
                v.push(format!("{}x", val.replace(['*', '$'], "")));
            }
        }
    }
    v
}

/// The `robots` target: `flags ‖ robots.txt`. The crawler's RFC 9309
/// parser (bit 0: the fetch was truncated) and matcher, its status-code
/// layer, and the policy's own reader of the same file.
pub fn fuzz_robots(data: &[u8]) {
    let (&flags, body) = data.split_first().unwrap_or((&0, &[]));
    let truncated = flags & 1 != 0;
    let rules = RobotsRules::parse_limited(body, PRODUCT_TOKEN, truncated, robots::PARSE_LIMIT);

    if let Some(d) = rules.crawl_delay() {
        assert!(d.is_finite() && d >= 0.0, "crawl delay {d}");
    }
    let cap = Duration::from_secs(60);
    let delay = rules.crawl_delay_duration(cap);
    assert_eq!(delay.is_some(), rules.crawl_delay().is_some());
    assert!(delay.is_none_or(|d| d <= cap));
    assert!(rules.sitemaps().iter().all(|s| !s.is_empty()));
    assert!(rules.warnings().iter().all(|w| w.starts_with("robots.")));
    // Line numbers count CR, LF and CRLF endings: at most one per terminator.
    let max_line = body.iter().filter(|&&b| b == b'\n' || b == b'\r').count() + 1;

    let paths = robots_paths(body);
    for p in &paths {
        let Ok(url) = robots::target_url(p) else {
            continue;
        };
        let d = rules.check(&url);
        assert_eq!(d.matched_line.is_some(), d.rule.is_some());
        assert!(d.matched_line.is_none_or(|l| (1..=max_line).contains(&l)));
        if url.path() == "/robots.txt" && url.query().is_none() {
            assert!(d.allowed, "/robots.txt is always allowed");
        }
        // Our deciding line and texting_robots agree (module contract).
        if let Some(theirs) = rules.texting_robots_allowed(&url) {
            let ours = d
                .rule
                .as_deref()
                .is_none_or(|r| r.to_ascii_lowercase().starts_with("allow"));
            assert_eq!(
                theirs, ours,
                "matchers disagree on {p:?}: rule {:?}",
                d.rule
            );
        }
    }
    let access = robots::access_limited(
        FetchOutcome::Success {
            status: 200,
            body: body.to_vec(),
            content_type: Some("text/plain".into()),
            truncated,
        },
        None,
        PRODUCT_TOKEN,
        robots::PARSE_LIMIT,
    );
    assert!(access.rules().is_some());

    // The policy's reader: AI intent, Content-Usage, Content-Signal, License.
    let text = String::from_utf8_lossy(body);
    let file = RobotsFile::parse(&text);
    let (own, sel) = file.rules_for(PRODUCT_TOKEN);
    if sel == Selected::Nothing {
        assert!(own.is_empty());
    }
    for p in paths.iter().take(8) {
        if let Some((allow, r)) = robotstxt::decide(&own, p) {
            assert_eq!(allow, r.kind == RuleKind::Allow);
            assert!(matches!(r.kind, RuleKind::Allow | RuleKind::Disallow));
        }
        for r in robotstxt::content_usage_for(&own, p) {
            assert_eq!(r.kind, RuleKind::ContentUsage);
        }
        let intent = robotstxt::ai_intent(&file, p);
        assert!(intent.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(intent.iter().all(|(_, a)| !a.is_empty()));
    }
    let ev = origin::robots_signals(&text, PAGE_URL, PRODUCT_TOKEN);
    check_evidence(&ev);
    let _ = origin::explicit_allow(&text, PRODUCT_TOKEN, "/dir/page.html?q=1");
    let ai = origin::ai_txt(
        &FileFetch::Body {
            status: 200,
            body: text.into_owned(),
        },
        PAGE_URL,
        PRODUCT_TOKEN,
    );
    check_evidence(std::slice::from_ref(&ai));
}

/// The `headers` target: lines of `Name: value`. Every pure header-value
/// parser runs on every value (and every whole line), then the page's
/// header evidence (X-Robots-Tag, TDMRep, Content-Usage, Link) on all.
pub fn fuzz_headers(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let now = now_utc();
    for line in text.split(['\n', '\r']).take(64) {
        let value = line.split_once(':').map_or(line, |(_, v)| v);
        for v in [line, value] {
            if let Some(d) = headers::retry_after(v, now) {
                assert!(d <= headers::MAX_RETRY_AFTER);
                let _ = std::time::Instant::now() + d;
            }
            assert!(headers::max_age(v).is_none_or(|d| d <= headers::MAX_AGE_LIMIT));

            let scoped = directives::parse_header(v);
            assert!(!scoped.is_empty());
            for s in &scoped {
                assert!(s.directives.max_snippet.is_none_or(|n| n >= -1));
            }
            let _ = directives::parse_meta("robots", v);
            let _ = directives::parse_date(v);

            let (prefs, errors) = aipref::parse_content_usage(v);
            assert!(prefs.is_empty() || errors.is_empty());
            assert!(
                prefs
                    .values()
                    .all(|p| matches!(p.as_str(), "y" | "n" | "unknown"))
            );
            let (sig, _) = aipref::parse_content_signal(v);
            assert!(
                sig.values()
                    .all(|p| matches!(p.as_str(), "yes" | "no" | "unknown"))
            );
            if let Ok(r) = tdmrep::parse_reservation(v) {
                assert!(r <= 1);
            }
            assert!(charset::charset_param(v).is_none_or(|c| !c.is_empty()));

            if let Some(r) = licence::recognise_url(v) {
                assert!(r.spdx.is_some() || r.family.is_some());
            }
            let _ = licence::recognise_text(v);
            if let Some(n) = licence::copyright_notice(v) {
                assert!(v.contains(&n), "notice {n:?} is not from {v:?}");
            }
            if let Some(n) = licence::nl_reservation(v) {
                assert!(v.contains(&n), "reservation {n:?} is not from {v:?}");
            }
            let (path, _) = robotstxt::split_content_usage(v);
            let _ = crate::crawl::robots::pattern::rule_matches(&path, "/dir/page.html?q=1");
        }
    }
    let hdrs = header_lines(&text);
    let ev = page::page_signals(PAGE_URL, &hdrs, None);
    check_evidence(&ev);
}

/// Runs `f` on every file of `fuzz/corpus/<target>`; panics name the file.
#[cfg(test)]
fn replay(target: &str, f: fn(&[u8])) -> usize {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut n = 0;
    for e in std::fs::read_dir(&dir).expect("fuzz corpus directory") {
        let path = e.expect("corpus entry").path();
        let bytes = std::fs::read(&path).expect("corpus file");
        if let Err(p) = std::panic::catch_unwind(|| f(&bytes)) {
            panic!("{} panicked: {p:?}", path.display());
        }
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every input the fuzzer kept (`fuzz/corpus/page`) still holds the
    /// harness's invariants.
    #[test]
    fn page_corpus_replays() {
        assert!(replay("page", fuzz_page) > 0);
    }

    #[test]
    fn robots_corpus_replays() {
        assert!(replay("robots", fuzz_robots) > 0);
    }

    #[test]
    fn headers_corpus_replays() {
        assert!(replay("headers", fuzz_headers) > 0);
    }

    /// The harness itself sees through a realistic page: the robots.txt
    /// section decides, and a refused page gets only the robots row.
    #[test]
    fn page_sections_reach_the_pipeline() {
        let mut input = vec![0u8];
        input.extend_from_slice(b"Content-Type: text/html; charset=utf-8\nX-Robots-Tag: noai");
        input.extend_from_slice(SECTION);
        input.extend_from_slice(b"<main><p>\xe2\x84\xaa\xe2\x84\xaa\xc2\xa9 2025</p></main>");
        input.extend_from_slice(SECTION);
        input.extend_from_slice(b"User-agent: *\nDisallow: /dir/\n");
        fuzz_page(&input);
        let s = split_sections(&input[1..]);
        assert_eq!(s.len(), 3);
        assert_eq!(s[2], b"User-agent: *\nDisallow: /dir/\n");
    }
}
