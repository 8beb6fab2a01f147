//! Google's robots.txt conformance suite (`google/robotstxt` `robots_test.cc`,
//! Apache-2.0; see `tests/fixtures/robots/README.md`), run data-driven through
//! the same code path as the crawler and `byline robots check`.

use std::collections::HashMap;

use byline::crawl::robots::{RobotsRules, match_path, normalise_pattern, target_url};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Case {
    id: String,
    test: String,
    source_line: u32,
    robots_txt: String,
    user_agent: String,
    url: String,
    expected_allowed: bool,
    google_specific: bool,
}

#[derive(Debug, Deserialize)]
struct UrlCase {
    kind: String,
    source_line: u32,
    input_url: Option<String>,
    input_pattern: Option<String>,
    expected: String,
}

/// Records Byline deliberately decides differently from Google's test,
/// keyed by `source_line`, with the reason. A skipped record that passes is
/// an error too, so this list cannot go stale.
const SKIPS: &[(u32, &str)] = &[
    (
        419,
        "raw `ツ` URL: Google expects the caller to pass it unencoded and not match; \
         Byline percent-encodes non-ASCII in URLs before matching (signals.md §1.4, RFC 9309 §2.2.2)",
    ),
    (430, "raw `ツ` URL, as line 419"),
    (
        441,
        "RFC 9309 §2.2.2 Figure 4: rule /foo/bar/%62%61%7A matches /foo/bar/baz; \
         Google's test expects plain string matching (signals.md §1.4: follow the RFC)",
    ),
    (
        505,
        "GoogleOnly_IndexHTMLisDirectory: `Allow: /x/index.html` also allowing `/x/` \
         is a Google extension, not implemented",
    ),
    (
        539,
        "GoogleOnly_LineTooLong: Google cuts lines at 16,664 bytes; Byline reads \
         whole lines up to the 512,000-byte parse limit (not implemented)",
    ),
    (565, "GoogleOnly_LineTooLong, as line 539"),
];

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/robots/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

#[test]
fn google_conformance_cases_pass_except_the_documented_skips() {
    let cases: Vec<Case> = fixture("google-robotstxt-cases.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("fixture line is a case"))
        .collect();
    assert_eq!(cases.len(), 145, "fixture holds all 145 records");
    let skips: HashMap<u32, &str> = SKIPS.iter().copied().collect();
    let (mut passed, mut skipped, mut checked_lines) = (0, 0, 0);
    let mut failures = Vec::new();
    for case in &cases {
        let rules = RobotsRules::parse(case.robots_txt.as_bytes(), &case.user_agent);
        let url = target_url(&case.url)
            .unwrap_or_else(|e| panic!("{}: url {:?}: {e}", case.id, case.url));
        let decision = rules.check(&url);
        // The deciding line our layer reports and texting_robots' verdict agree.
        if let Some(theirs) = rules.texting_robots_allowed(&url) {
            assert_eq!(
                theirs, decision.allowed,
                "{}: texting_robots and the deciding line disagree",
                case.id
            );
            checked_lines += 1;
        }
        // The reported line really holds the reported rule.
        if let (Some(n), Some(rule)) = (decision.matched_line, &decision.rule) {
            let line = case
                .robots_txt
                .split(['\n', '\r'])
                .nth(n - 1)
                .expect("matched line exists");
            assert!(
                line.contains(rule.as_str()),
                "{}: line {n} is {line:?}, rule {rule:?}",
                case.id
            );
        }
        let ok = decision.allowed == case.expected_allowed;
        match (skips.get(&case.source_line), ok) {
            (None, true) => passed += 1,
            (Some(_), false) => skipped += 1,
            (None, false) => failures.push(format!(
                "{} ({}, google_specific={}): expected allowed={}, got {:?}",
                case.id, case.test, case.google_specific, case.expected_allowed, decision
            )),
            (Some(why), true) => failures.push(format!(
                "{}: listed as skipped ({why}) but now passes; remove it from SKIPS",
                case.id
            )),
        }
    }
    println!(
        "google robots conformance: {passed} passed, {skipped} skipped, {} failed, \
         {checked_lines} cross-checked with texting_robots (of {})",
        failures.len(),
        cases.len()
    );
    assert!(
        failures.is_empty(),
        "unexpected results:\n{}",
        failures.join("\n")
    );
    assert_eq!(skipped, SKIPS.len());
    assert_eq!(checked_lines, cases.len());
}

#[test]
fn google_url_normalisation_cases_pass() {
    let cases: Vec<UrlCase> = fixture("google-robotstxt-url-cases.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("fixture line is a url case"))
        .collect();
    assert_eq!(cases.len(), 23);
    for case in &cases {
        let got = match case.kind.as_str() {
            "path_params_query" => {
                let input = case.input_url.as_deref().expect("url case has input_url");
                match_path(&target_url(input).expect("case URL parses"))
            }
            "escape_pattern" => {
                normalise_pattern(case.input_pattern.as_deref().expect("has input_pattern"))
            }
            other => panic!("unknown kind {other}"),
        };
        assert_eq!(got, case.expected, "line {}: {case:?}", case.source_line);
    }
    println!("google url cases: {} passed", cases.len());
}
