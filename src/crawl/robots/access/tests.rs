//! Spec §1.9 status-code cases S1–S9 against the pure [`access`] function.
//! The crawler's tests run the same cases end to end over HTTP.

use std::time::{Duration, SystemTime};

use url::Url;

use super::*;
use crate::crawl::robots::{PARSE_LIMIT, WARNING_TRUNCATED};

fn page(path: &str) -> Url {
    Url::parse("http://site.test/")
        .expect("static base parses")
        .join(path)
        .expect("test path joins")
}

fn ok(body: &[u8]) -> FetchOutcome {
    FetchOutcome::Success {
        status: 200,
        body: body.to_vec(),
        content_type: Some("text/plain; charset=utf-8".into()),
        truncated: false,
    }
}

#[test]
fn s1_not_found_allows_all_and_keeps_the_status() {
    let outcome = FetchOutcome::from_response(404, b"<h1>nope</h1>".to_vec(), None, false, None);
    assert_eq!(outcome, FetchOutcome::Unavailable { status: 404 });
    assert_eq!(outcome.status(), Some(404));
    let a = access(outcome, None);
    assert!(matches!(
        a,
        Access::AllowAll {
            reason: REASON_UNAVAILABLE
        }
    ));
    assert!(a.check(&page("/anything")).allowed);
    assert!(!a.is_deferred());
}

#[test]
fn s2_forbidden_allows_all_per_the_rfc_4xx_rule() {
    for status in [401, 403, 410, 451] {
        let outcome = FetchOutcome::from_response(status, Vec::new(), None, false, None);
        assert_eq!(outcome, FetchOutcome::Unavailable { status });
        let a = access(outcome, None);
        assert_eq!(a.reason(), Some(REASON_UNAVAILABLE), "status {status}");
        assert!(a.check(&page("/x")).allowed, "status {status}");
    }
}

#[test]
fn s3_server_error_without_cached_copy_disallows_all() {
    let outcome = FetchOutcome::from_response(503, Vec::new(), None, false, None);
    assert_eq!(outcome, FetchOutcome::ServerError { status: 503 });
    let a = access(outcome, None);
    assert!(matches!(
        a,
        Access::DisallowAll {
            reason: REASON_UNREACHABLE,
            retry_after: None
        }
    ));
    assert!(!a.check(&page("/")).allowed);
    assert!(a.is_deferred());
}

#[test]
fn network_errors_and_unclassified_statuses_are_unreachable() {
    let net = FetchOutcome::NetworkError {
        reason: "connection reset".into(),
    };
    assert!(!access(net, None).check(&page("/a")).allowed);
    for status in [100, 304, 600] {
        let outcome = FetchOutcome::from_response(status, Vec::new(), None, false, None);
        assert_eq!(outcome, FetchOutcome::ServerError { status });
        assert_eq!(access(outcome, None).reason(), Some(REASON_UNREACHABLE));
    }
}

#[test]
fn s4_server_error_keeps_the_last_good_copy() {
    let good = RobotsRules::parse(b"User-agent: *\nDisallow: /p\n", PRODUCT_TOKEN);
    let a = access(FetchOutcome::ServerError { status: 503 }, Some(good));
    assert!(matches!(
        a,
        Access::Cached {
            reason: REASON_UNREACHABLE,
            ..
        }
    ));
    assert!(a.is_deferred());
    assert!(a.check(&page("/q")).allowed);
    assert!(!a.check(&page("/p")).allowed);
    assert!(a.rules().is_some());
}

#[test]
fn s5_rules_from_a_redirect_target_apply_to_the_origin_asked_about() {
    // The crawler followed 301 -> 302 -> 200 on another host; the body it hands
    // over is judged for the URL of the initial origin.
    let a = access(ok(b"User-agent: *\nDisallow: /\n"), None);
    assert!(!a.check(&page("/page")).allowed);
    assert!(matches!(a, Access::Rules(_)));
}

#[test]
fn s6_more_than_five_redirects_allows_all_with_redirect_limit() {
    assert_eq!(MAX_REDIRECTS, 5);
    let a = access(
        FetchOutcome::RedirectLimit {
            hops: MAX_REDIRECTS + 1,
        },
        None,
    );
    assert_eq!(a.reason(), Some(REASON_REDIRECT_LIMIT));
    assert!(a.check(&page("/x")).allowed);
}

#[test]
fn s7_too_many_requests_defers_for_retry_after() {
    let outcome =
        FetchOutcome::from_response(429, Vec::new(), None, false, Some(Duration::from_secs(120)));
    assert_eq!(
        outcome,
        FetchOutcome::TooManyRequests {
            retry_after: Some(Duration::from_secs(120))
        }
    );
    let a = access(outcome.clone(), None);
    assert!(!a.check(&page("/x")).allowed);
    assert!(a.is_deferred());
    assert!(a.retry_after() >= Some(Duration::from_secs(120)));
    assert_eq!(a.reason(), Some(REASON_UNREACHABLE));
    // With a good copy, 429 keeps it and still asks to wait.
    let good = RobotsRules::parse(b"User-agent: *\nDisallow: /p\n", PRODUCT_TOKEN);
    let a = access(outcome, Some(good));
    assert!(a.check(&page("/x")).allowed);
    assert_eq!(a.retry_after(), Some(Duration::from_secs(120)));
}

#[test]
fn s8_a_rule_beyond_the_parse_limit_is_not_applied() {
    let mut body = b"User-agent: *\n".to_vec();
    while body.len() < 599_000 {
        body.extend_from_slice(b"# padding padding padding padding padding padding\n");
    }
    body.extend_from_slice(b"Disallow: /late\n");
    while body.len() < 600_000 {
        body.push(b'#');
    }
    let a = access(ok(&body), None);
    assert!(a.check(&page("/late")).allowed);
    let rules = a.rules().expect("2xx yields rules");
    assert!(
        rules
            .warnings()
            .iter()
            .any(|w| w.starts_with(WARNING_TRUNCATED)),
        "warnings: {:?}",
        rules.warnings()
    );
}

#[test]
fn a_fetcher_truncated_body_drops_its_partial_last_line() {
    // The fetcher stopped reading mid-line: "Disallow: /private" arrived as
    // "Disallow: /p", which must not be applied as a rule.
    let outcome = FetchOutcome::Success {
        status: 200,
        body: b"User-agent: *\nDisallow: /a\nDisallow: /p".to_vec(),
        content_type: None,
        truncated: true,
    };
    let a = access(outcome, None);
    assert!(!a.check(&page("/a")).allowed);
    assert!(a.check(&page("/pub")).allowed);
    assert!(a.rules().expect("rules").warnings()[0].starts_with(WARNING_TRUNCATED));
    const { assert!(PARSE_LIMIT >= 500 * 1024 && HARD_CAP > PARSE_LIMIT) };
}

#[test]
fn s9_a_copy_older_than_24_hours_is_stale() {
    let fetched = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    let h = |n: u64| fetched + Duration::from_secs(n * 3600);
    assert!(!is_stale(fetched, h(3), None));
    assert!(is_stale(fetched, h(25), None));
    assert!(is_stale(fetched, h(24), None));
    // max-age shortens the life of a copy, never extends it past 24 h.
    assert!(is_stale(fetched, h(2), Some(Duration::from_secs(3600))));
    assert!(is_stale(
        fetched,
        h(25),
        Some(Duration::from_secs(48 * 3600))
    ));
    // Clock moved backwards: keep the copy.
    assert!(!is_stale(fetched, fetched - Duration::from_secs(5), None));
}

#[test]
fn an_html_soft_404_yields_no_rules_and_a_content_type_warning() {
    let outcome = FetchOutcome::Success {
        status: 200,
        body: b"<html><body>Not found</body></html>".to_vec(),
        content_type: Some("text/html; charset=utf-8".into()),
        truncated: false,
    };
    let a = access(outcome, None);
    assert!(a.check(&page("/x")).allowed);
    let w = a.rules().expect("rules").warnings();
    assert!(
        w.iter().any(|w| w.starts_with(WARNING_CONTENT_TYPE)),
        "{w:?}"
    );
    // text/plain with parameters is not a mismatch.
    let a = access(ok(b"User-agent: *\n"), None);
    assert!(a.rules().expect("rules").warnings().is_empty());
}
