//! robots.txt matching: signals.md §1.9 cases R1–R12 and one test per gap that
//! texting_robots leaves on its own (signals.md §1.8, crate-stack §5).

use byline::crawl::robots::{
    PARSE_LIMIT, PRODUCT_TOKEN, RobotsDecision, RobotsRules, TEXTING_ROBOTS_MAX_ANCHORED_RULES,
    WARNING_MATCHER_FALLBACK, WARNING_PARSE_ERROR, WARNING_RULES_WITHOUT_GROUP, WARNING_TRUNCATED,
    target_url,
};

/// Checks `path` (or absolute URL) against `body` for `token`, and asserts
/// that texting_robots' verdict agrees with the deciding line.
fn decide(body: &str, token: &str, path: &str) -> RobotsDecision {
    decide_bytes(body.as_bytes(), token, path)
}

fn decide_bytes(body: &[u8], token: &str, path: &str) -> RobotsDecision {
    let rules = RobotsRules::parse(body, token);
    let url = target_url(path).expect("test URL parses");
    let d = rules.check(&url);
    if let Some(theirs) = rules.texting_robots_allowed(&url) {
        assert_eq!(theirs, d.allowed, "texting_robots disagrees on {path}");
    }
    d
}

fn allowed(body: &str, token: &str, path: &str) -> bool {
    decide(body, token, path).allowed
}

const RFC_5_1: &str = "User-Agent: *\nDisallow: *.gif$\nDisallow: /example/\nAllow: /publications/\n\nUser-Agent: foobot\nDisallow:/\nAllow:/example/page.html\nAllow:/example/allowed.gif\n\nUser-Agent: barbot\nUser-Agent: bazbot\nDisallow: /example/page.html\n\nUser-Agent: quxbot\n";

#[test]
fn r1_other_agents_fall_back_to_the_star_group() {
    let d = decide(RFC_5_1, "otherbot", "/img/a.gif");
    assert!(!d.allowed);
    assert_eq!(d.matched_line, Some(2));
    assert_eq!(d.rule.as_deref(), Some("Disallow: *.gif$"));
}

#[test]
fn r2_own_group_longer_allow_wins() {
    let d = decide(RFC_5_1, "FooBot", "/example/allowed.gif");
    assert!(d.allowed);
    assert_eq!(d.matched_line, Some(9));
    assert_eq!(d.rule.as_deref(), Some("Allow:/example/allowed.gif"));
    assert!(!allowed(RFC_5_1, "FooBot", "/other"));
}

#[test]
fn r3_empty_own_group_is_not_merged_with_star() {
    let d = decide(RFC_5_1, "quxbot", "/example/x.gif");
    assert!(d.allowed);
    assert_eq!(d.matched_line, None);
    // barbot and bazbot share one group.
    assert!(!allowed(RFC_5_1, "bazbot", "/example/page.html"));
    assert!(allowed(RFC_5_1, "bazbot", "/example/other.html"));
}

#[test]
fn r4_longest_match_wins() {
    let body =
        "User-Agent: foobot\nAllow: /example/page/\nDisallow: /example/page/disallowed.gif\n";
    let d = decide(body, "foobot", "/example/page/disallowed.gif");
    assert!(!d.allowed);
    assert_eq!(d.matched_line, Some(3));
}

#[test]
fn r5_field_names_are_case_insensitive_and_order_does_not_matter() {
    let body = "user-agent: FooBot\nallow: /x/page.html\ndisallow: /x/\n";
    assert!(allowed(body, "FooBot", "/x/page.html"));
    let d = decide(body, "FooBot", "/x/");
    assert!(!d.allowed);
    assert_eq!(d.rule.as_deref(), Some("disallow: /x/"));
}

#[test]
fn r6_allow_wins_a_tie() {
    let d = decide(
        "user-agent: FooBot\ndisallow: /\nallow: /\n",
        "FooBot",
        "/x",
    );
    assert!(d.allowed);
    assert_eq!(d.matched_line, Some(3));
}

#[test]
fn r7_user_agent_with_version_addresses_us() {
    let d = decide("User-agent: FooBot/1.0\nDisallow: /\n", "FooBot", "/a");
    assert!(!d.allowed);
    assert_eq!(d.matched_line, Some(2));
    // Our own token, in every spelling the spec names.
    for ua in [
        "BylineBot/1.0",
        "bylinebot",
        "BYLINEBOT (ours)",
        "BylineBot;v2",
    ] {
        let body = format!("User-agent: *\nAllow: /\n\nUser-agent: {ua}\nDisallow: /\n");
        assert!(
            !allowed(&body, PRODUCT_TOKEN, "/a"),
            "{ua} should address us"
        );
    }
    // A different token that merely starts like ours does not.
    for ua in ["BylineBotX", "BylineBot-News", "Byline"] {
        let body = format!("User-agent: {ua}\nDisallow: /\n");
        assert!(
            allowed(&body, PRODUCT_TOKEN, "/a"),
            "{ua} should not address us"
        );
    }
}

#[test]
fn r8_groups_naming_us_are_merged() {
    let body = "User-agent: FooBot\nDisallow: /a\n\nUser-agent: *\nDisallow: /\n\nUser-agent: foobot\nDisallow: /b\n";
    let d = decide(body, "FooBot", "/b/1");
    assert!(!d.allowed);
    assert_eq!(d.matched_line, Some(8));
    assert!(!allowed(body, "FooBot", "/a/1"));
    assert!(allowed(body, "FooBot", "/c"));
}

#[test]
fn r9_crawl_delay_does_not_split_a_group() {
    let body = "User-agent: FooBot\nCrawl-delay: 10\nUser-agent: *\nDisallow: /\n";
    let rules = RobotsRules::parse(body.as_bytes(), "FooBot");
    assert!(!allowed(body, "FooBot", "/"));
    assert_eq!(rules.crawl_delay(), Some(10.0));
    // The same for Sitemap and unknown records.
    for line in [
        "Sitemap: https://x.test/s.xml",
        "Host: x.test",
        "Request-rate: 1/5",
    ] {
        let body = format!("User-agent: FooBot\n{line}\nUser-agent: *\nDisallow: /\n");
        assert!(!allowed(&body, "FooBot", "/"), "{line} split the group");
    }
}

#[test]
fn r10_percent_encoded_unreserved_octets_match_decoded() {
    let body = "User-agent: *\nDisallow: /\nAllow: /foo/bar/%62%61%7A\n";
    let d = decide(body, "anybot", "/foo/bar/baz");
    assert!(d.allowed);
    assert_eq!(d.rule.as_deref(), Some("Allow: /foo/bar/%62%61%7A"));
    // And the other way round: a URL with encoded unreserved octets.
    let body = "User-agent: *\nDisallow: /foo/bar/baz\n";
    assert!(!allowed(body, "anybot", "/foo/%62ar/baz"));
}

#[test]
fn r11_fragment_is_stripped() {
    let d = decide("User-agent: *\nDisallow: /a$\n", "anybot", "/a#frag");
    assert!(!d.allowed);
    assert_eq!(d.matched_line, Some(2));
    let d = decide(
        "User-agent: *\nDisallow: /a$\n",
        "anybot",
        "https://h.test/a#frag",
    );
    assert!(!d.allowed);
}

#[test]
fn r12_rules_without_a_group_are_ignored_with_a_warning() {
    let rules = RobotsRules::parse(b"Disallow: /\n", "anybot");
    assert!(rules.check(&target_url("/a").unwrap()).allowed);
    assert!(
        rules.warnings()[0].starts_with(WARNING_RULES_WITHOUT_GROUP),
        "{:?}",
        rules.warnings()
    );
    // With a group after them, still ignored.
    let body = "Disallow: /x\nUser-agent: *\nDisallow: /y\n";
    assert!(allowed(body, "anybot", "/x"));
    assert!(!allowed(body, "anybot", "/y"));
}

// --- gaps texting_robots leaves open (signals.md §1.8), one test each ---

#[test]
fn agent_value_is_cut_at_the_first_non_token_character() {
    let body = "User-Agent: FOO BAR\nAllow: /x/\nDisallow: /\n";
    assert!(!allowed(body, "Foo", "/a/b"));
    assert!(allowed(body, "foo", "/x/y"));
    assert!(!allowed(
        "User-agent: foo_bar-baz2\nDisallow: /\n",
        "foo_bar-baz",
        "/a"
    ));
}

#[test]
fn specific_and_star_groups_are_never_merged() {
    let body = "User-agent: *\nDisallow: /\n\nUser-agent: BylineBot\nAllow: /x\n";
    assert!(allowed(body, PRODUCT_TOKEN, "/anything"));
    let d = decide(body, PRODUCT_TOKEN, "/x/1");
    assert_eq!(d.matched_line, Some(5));
}

#[test]
fn a_star_group_also_naming_us_is_ours() {
    let body =
        "User-agent: *\nUser-agent: BylineBot\nDisallow: /p\n\nUser-agent: *\nDisallow: /q\n";
    assert!(!allowed(body, PRODUCT_TOKEN, "/p"));
    assert!(allowed(body, PRODUCT_TOKEN, "/q"));
}

#[test]
fn percent_hex_case_is_normalised_on_both_sides() {
    let body = "User-agent: *\nDisallow: /%aa\n";
    assert!(!allowed(body, "x", "/%AA"));
    let body = "User-agent: *\nDisallow: /%AA\n";
    assert!(!allowed(body, "x", "/%aa"));
}

#[test]
fn non_ascii_is_percent_encoded_on_both_sides() {
    let body = "User-agent: *\nDisallow: /\nAllow: /foo/bar/ツ\n";
    assert!(allowed(body, "x", "/foo/bar/%E3%83%84"));
    assert!(allowed(body, "x", "https://h.test/foo/bar/ツ"));
    let body = "User-agent: *\nDisallow: /caf%C3%A9\n";
    assert!(!allowed(body, "x", "/café"));
    // A Latin-1 byte in a non-UTF-8 file is kept (encoded), not dropped.
    let d = decide_bytes(b"User-agent: *\nDisallow: /caf\xe9\n", "x", "/caf%E9");
    assert!(!d.allowed);
}

#[test]
fn encoded_star_and_dollar_in_rules_are_literal() {
    let body = "User-agent: *\nDisallow: /path/foo-%24\nDisallow: /a%2Ab\n";
    assert!(!allowed(body, "x", "/path/foo-$"));
    assert!(allowed(body, "x", "/path/foo-"));
    assert!(!allowed(body, "x", "/a*b"));
    assert!(allowed(body, "x", "/axxb"));
    // A `$` that is not last is literal too.
    let body = "User-agent: *\nDisallow: /a$b\n";
    assert!(!allowed(body, "x", "/a$b/c"));
}

#[test]
fn wildcards_and_end_anchor() {
    let body = "User-agent: *\nDisallow: /*.pdf$\nDisallow: /private*/secret\n";
    assert!(!allowed(body, "x", "/docs/a.pdf"));
    assert!(allowed(body, "x", "/docs/a.pdf?x=1"));
    assert!(allowed(body, "x", "/docs/a.pdfx"));
    assert!(!allowed(body, "x", "/private-area/secret/1"));
    assert!(allowed(body, "x", "/private-area/public"));
}

#[test]
fn empty_path_is_slash_and_empty_disallow_matches_nothing() {
    assert!(!allowed(
        "User-agent: *\nDisallow: /$\n",
        "x",
        "https://h.test"
    ));
    // The query is part of what is matched: `/?q` is not `/`.
    assert!(allowed(
        "User-agent: *\nDisallow: /$\n",
        "x",
        "https://h.test?q"
    ));
    assert!(!allowed(
        "User-agent: *\nDisallow: /?\n",
        "x",
        "https://h.test?q"
    ));
    let d = decide("User-agent: *\nDisallow:\n", "x", "/a");
    assert!(d.allowed);
    assert_eq!(d.matched_line, None);
}

#[test]
fn robots_txt_itself_is_always_allowed() {
    let body = "User-agent: *\nDisallow: /\n";
    let d = decide(body, "x", "/robots.txt");
    assert!(d.allowed);
    assert_eq!(d.matched_line, None);
    assert!(!allowed(body, "x", "/robots.txt.bak"));
}

#[test]
fn bom_is_skipped() {
    let d = decide_bytes(b"\xEF\xBB\xBFUser-agent: *\nDisallow: /x\n", "y", "/x");
    assert!(!d.allowed);
    assert_eq!(d.matched_line, Some(2));
    assert!(!decide_bytes(b"\xEF\xBBUser-agent: *\nDisallow: /x\n", "y", "/x").allowed);
}

#[test]
fn parse_limit_drops_the_trailing_partial_line() {
    let mut body = b"User-agent: *\n".to_vec();
    while body.len() < PARSE_LIMIT - 20 {
        body.extend_from_slice(b"Disallow: /filler\n");
    }
    // A rule straddling the limit: its first bytes must not become `/pr`.
    let straddle = PARSE_LIMIT - body.len();
    let mut line = b"Disallow: /pr".to_vec();
    while line.len() < straddle + 10 {
        line.push(b'x');
    }
    body.extend_from_slice(&line);
    body.extend_from_slice(b"\nDisallow: /late\n");
    let rules = RobotsRules::parse(&body, "x");
    assert!(rules.check(&target_url("/late").unwrap()).allowed);
    assert!(rules.check(&target_url("/pr").unwrap()).allowed);
    assert!(!rules.check(&target_url("/filler").unwrap()).allowed);
    assert!(rules.warnings()[0].starts_with(WARNING_TRUNCATED));
    // Exactly at the limit: no truncation.
    let rules = RobotsRules::parse(&body[..PARSE_LIMIT - straddle], "x");
    assert!(rules.warnings().is_empty(), "{:?}", rules.warnings());
}

#[test]
fn a_rule_texting_robots_refuses_is_still_applied() {
    // A `$` rule with many wildcards compiles to a regex above texting_robots'
    // 42 KiB limit, which makes `Robot::new` fail for the whole file.
    let mut monster = String::from("/x");
    for _ in 0..1500 {
        monster.push_str("*a");
    }
    monster.push('$');
    let body = format!("User-agent: *\nDisallow: /private\nDisallow: {monster}\n");
    assert!(
        texting_robots::Robot::new("x", body.as_bytes()).is_err(),
        "premise: texting_robots refuses this file"
    );
    let rules = RobotsRules::parse(body.as_bytes(), "x");
    assert!(
        rules
            .warnings()
            .iter()
            .any(|w| w.starts_with(WARNING_PARSE_ERROR)),
        "{:?}",
        rules.warnings()
    );
    assert!(!rules.check(&target_url("/private/1").unwrap()).allowed);
    let hit = format!("/x{}", "a".repeat(1500));
    let d = rules.check(&target_url(&hit).unwrap());
    assert!(!d.allowed);
    assert_eq!(d.matched_line, Some(3));
    assert!(rules.check(&target_url("/public").unwrap()).allowed);
}

#[test]
fn crawl_delay_comes_from_our_group_and_sitemaps_from_anywhere() {
    let body = "Sitemap: https://h.test/a.xml\nUser-agent: *\nCrawl-delay: 5\nDisallow: /y\n\nUser-agent: BylineBot\nCrawl-delay: 2.5\nDisallow: /x\nSitemap: https://h.test/b.xml\n";
    let rules = RobotsRules::parse(body.as_bytes(), PRODUCT_TOKEN);
    assert_eq!(rules.crawl_delay(), Some(2.5));
    assert_eq!(
        rules.sitemaps(),
        ["https://h.test/a.xml", "https://h.test/b.xml"]
    );
    let other = RobotsRules::parse(body.as_bytes(), "other");
    assert_eq!(other.crawl_delay(), Some(5.0));
    let bad = RobotsRules::parse(b"User-agent: *\nCrawl-delay: -3\n", "x");
    assert_eq!(bad.crawl_delay(), None);
    assert!(!bad.warnings().is_empty());
}

#[test]
fn content_usage_lines_end_a_run_of_user_agents() {
    // AIPREF Content-Usage is a group rule (signals.md §5.4): the User-agent line
    // after it starts a new group.
    let body = "User-agent: BylineBot\nContent-Usage: train-ai=n\nUser-agent: *\nDisallow: /\n";
    assert!(allowed(body, PRODUCT_TOKEN, "/a"));
    assert!(!allowed(body, "other", "/a"));
}

#[test]
fn missing_colon_and_misspellings_are_read_leniently() {
    assert!(!allowed("user-agent FooBot\ndisallow /\n", "FooBot", "/x"));
    assert!(!allowed("User agent: *\nDissallow: /x\n", "y", "/x"));
}

#[test]
fn a_file_with_very_many_anchored_rules_is_decided_by_our_matcher() {
    let mut body = String::from("User-agent: *\nDisallow: /private/\n");
    for i in 0..=TEXTING_ROBOTS_MAX_ANCHORED_RULES {
        body.push_str(&format!(
            "Disallow: /files/{i}/*.pdf$\nAllow: /files/{i}/open/\n"
        ));
    }
    let rules = RobotsRules::parse(body.as_bytes(), "x");
    assert!(
        rules
            .warnings()
            .iter()
            .any(|w| w.starts_with(WARNING_MATCHER_FALLBACK)),
        "{:?}",
        rules.warnings()
    );
    let check = |p: &str| {
        let url = target_url(p).unwrap();
        assert_eq!(rules.texting_robots_allowed(&url), None);
        rules.check(&url)
    };
    let d = check("/files/7/report.pdf");
    assert!(!d.allowed);
    assert_eq!(d.matched_line, Some(2 + 7 * 2 + 1));
    assert!(check("/files/7/report.pdf?download=1").allowed);
    let d = check("/files/7/open/a");
    assert!(d.allowed);
    assert_eq!(d.matched_line, Some(2 + 7 * 2 + 2));
    // The longer disallow beats the allow: `/files/7/*.pdf$` (15) vs `/files/7/open/` (14).
    assert!(!check("/files/7/open/a.pdf").allowed);
    assert!(!check("/private/x").allowed);
    // One rule fewer: texting_robots is used again and agrees.
    let small: String = body
        .lines()
        .take(2 + 2 * TEXTING_ROBOTS_MAX_ANCHORED_RULES)
        .map(|l| format!("{l}\n"))
        .collect();
    let rules = RobotsRules::parse(small.as_bytes(), "x");
    assert!(rules.warnings().is_empty(), "{:?}", rules.warnings());
    let url = target_url("/files/7/open/a.pdf").unwrap();
    assert_eq!(rules.texting_robots_allowed(&url), Some(false));
    assert!(!rules.check(&url).allowed);
}
