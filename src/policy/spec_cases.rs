//! The test cases of docs/signals.md §2.6, §3.4, §4.8, §5.7, §6.6,
//! §7.5 and §8.5, one test each, named `x3_<case id>_...`. Each builds the
//! evidence from the raw inputs of the case with the same parsers the
//! crawler uses, then evaluates it under the bundled policies.
//! (C1, C3–C6 live next to the URL mapper in `licence.rs`.)

use super::config::{EU_OPT_OUT_TOML, Policy, STRICT_OPT_IN_TOML};
use super::evaluate;
use super::evidence::{
    AgentCategory, BlockScope, Evidence, Location, Observation, RobotsOutcome, Scope,
};
use super::gather::{PageInputs, RobotsInput, gather};
use super::origin::FileFetch;
use super::robotstxt::{self, RobotsFile};
use super::verdict::{Condition, Decision, PageVerdicts, Purpose};
use crate::crawl::robots::pattern;

const TOKEN: &str = "BylineBot";

fn now() -> i64 {
    time::macros::datetime!(2026-11-28 00:00 UTC).unix_timestamp()
}

fn eu_policy() -> Policy {
    Policy::from_bytes(EU_OPT_OUT_TOML.as_bytes(), "eu").unwrap()
}

fn strict_policy() -> Policy {
    Policy::from_bytes(STRICT_OPT_IN_TOML.as_bytes(), "strict").unwrap()
}

/// One page of a case.
#[derive(Default, Clone)]
struct Case {
    url: String,
    /// robots.txt body; `None` = 404.
    robots: Option<String>,
    /// Overrides the robots outcome (unreachable, cached copies).
    robots_outcome: Option<(RobotsOutcome, Option<u16>, bool, Option<i64>)>,
    headers: Vec<(String, String)>,
    html: Option<String>,
    tdmrep: Option<FileFetch>,
    ai_txt: Option<FileFetch>,
    llms_txt: Option<FileFetch>,
    rsl: Vec<(String, FileFetch)>,
}

fn page(url: &str) -> Case {
    Case {
        url: url.into(),
        html: Some(html("", "<p>Hello.</p>")),
        ..Case::default()
    }
}

fn html(head: &str, body: &str) -> String {
    format!(
        "<!doctype html><html><head><title>t</title>{head}</head><body><main>{body}</main></body></html>"
    )
}

fn ok(body: &str) -> FileFetch {
    FileFetch::Body {
        status: 200,
        body: body.into(),
    }
}

impl Case {
    fn robots(mut self, body: &str) -> Case {
        self.robots = Some(body.into());
        self
    }
    fn header(mut self, k: &str, v: &str) -> Case {
        self.headers.push((k.into(), v.into()));
        self
    }
    fn html(mut self, head: &str, body: &str) -> Case {
        self.html = Some(html(head, body));
        self
    }
    fn evidence(&self) -> Vec<Evidence> {
        let path = pattern::path_of(&self.url);
        let (outcome, status, from_cache, age) = match (&self.robots_outcome, &self.robots) {
            (Some(o), _) => *o,
            (None, None) => (RobotsOutcome::Unavailable, Some(404), false, None),
            (None, Some(b)) => {
                let f = RobotsFile::parse(b);
                let (rules, _) = f.rules_for(TOKEN);
                let allowed = robotstxt::allowed(&rules, &path);
                (
                    if allowed {
                        RobotsOutcome::Allowed
                    } else {
                        RobotsOutcome::Disallowed
                    },
                    Some(200),
                    false,
                    None,
                )
            }
        };
        gather(&PageInputs {
            page_url: &self.url,
            token: TOKEN,
            robots: RobotsInput {
                outcome,
                status,
                body: self.robots.as_deref(),
                from_cache,
                cache_age_secs: age,
            },
            headers: &self.headers,
            html: self.html.as_deref(),
            tdmrep: self.tdmrep.as_ref(),
            ai_txt: self.ai_txt.as_ref(),
            llms_txt: self.llms_txt.as_ref(),
            rsl: &self.rsl,
        })
    }
    fn eu(&self) -> PageVerdicts {
        evaluate(&self.evidence(), &eu_policy(), now())
    }
    fn strict(&self) -> PageVerdicts {
        evaluate(&self.evidence(), &strict_policy(), now())
    }
}

use Decision::{Allowed as A, AllowedWithConditions as C, Deferred as D, Excluded as X};

#[track_caller]
fn expect(v: &PageVerdicts, want: [Decision; 3]) {
    let got = [
        v.search_index.decision,
        v.rag_attributed.decision,
        v.train.decision,
    ];
    assert_eq!(
        got, want,
        "\nexpected (search / rag / train): {want:?}\ngot: {got:?}\nverdicts: {v:#?}"
    );
}

#[track_caller]
fn reason(v: &PageVerdicts, p: Purpose, code: &str) {
    let vd = v.get(p);
    assert!(
        vd.has_reason(code),
        "expected reason {code} for {}, got {:?}",
        p.as_str(),
        vd.reasons
    );
}

#[track_caller]
fn no_reason(v: &PageVerdicts, p: Purpose, code: &str) {
    assert!(
        !v.get(p).has_reason(code),
        "unexpected {code} in {:?}",
        v.get(p).reasons
    );
}

fn intent(ev: &[Evidence], cat: AgentCategory) -> Option<Vec<(String, BlockScope, bool)>> {
    ev.iter().find_map(|e| match &e.observation {
        Observation::AiIntent { category, agents } if *category == cat => Some(
            agents
                .iter()
                .map(|a| (a.agent.clone(), a.scope, a.path_blocked))
                .collect(),
        ),
        _ => None,
    })
}

use Purpose::{RagAttributed as RAG, SearchIndex as SEARCH, Train as TRAIN};

// ---------------------------------------------------------------- §2.6

#[test]
fn x3_a1_blocking_training_agents_excludes_train_only() {
    let c = page("https://s.example/post/1").robots(
        "User-agent: GPTBot\nUser-agent: CCBot\nUser-agent: Google-Extended\nDisallow: /\n\nUser-agent: *\nAllow: /\n",
    );
    let ev = c.evidence();
    let agents = intent(&ev, AgentCategory::AiTrain).expect("ai_train intent");
    let names: Vec<&str> = agents.iter().map(|(n, _, _)| n.as_str()).collect();
    for n in ["GPTBot", "CCBot", "Google-Extended"] {
        assert!(names.contains(&n), "{names:?}");
    }
    assert!(agents.iter().all(|(_, s, b)| *s == BlockScope::All && *b));
    let v = c.eu();
    expect(&v, [A, A, X]);
    reason(&v, TRAIN, "ai_intent.ai_train");
}

#[test]
fn x3_a2_blocking_search_and_user_fetch_agents_excludes_rag_only() {
    let c = page("https://s.example/post/1")
        .robots("User-agent: ChatGPT-User\nUser-agent: PerplexityBot\nDisallow: /\n");
    let ev = c.evidence();
    assert!(intent(&ev, AgentCategory::AiUserFetch).is_some_and(|a| a.iter().any(|x| x.2)));
    assert!(intent(&ev, AgentCategory::AiSearch).is_some_and(|a| a.iter().any(|x| x.2)));
    let v = c.eu();
    expect(&v, [A, X, A]);
    reason(&v, RAG, "ai_intent.ai_user_fetch");
    reason(&v, RAG, "ai_intent.ai_search");
}

#[test]
fn x3_a3_a_partial_block_applies_per_path() {
    let robots = "User-agent: GPTBot\nDisallow: /premium/\n";
    let blog = page("https://s.example/blog/x").robots(robots);
    let premium = page("https://s.example/premium/x").robots(robots);
    let b = intent(&blog.evidence(), AgentCategory::AiTrain).unwrap();
    assert!(!b[0].2, "GPTBot is named but /blog/x is not blocked");
    expect(&blog.eu(), [A, A, A]);
    let p = intent(&premium.evidence(), AgentCategory::AiTrain).unwrap();
    assert_eq!(p[0], ("GPTBot".to_string(), BlockScope::Some, true));
    expect(&premium.eu(), [A, A, X]);
}

#[test]
fn x3_a4_a_star_block_is_a_plain_robots_exclusion_without_ai_intent() {
    let c = page("https://s.example/any").robots("User-agent: *\nDisallow: /\n");
    let ev = c.evidence();
    assert_eq!(
        ev.len(),
        1,
        "an unfetched page has only its robots row: {ev:#?}"
    );
    assert!(intent(&ev, AgentCategory::AiTrain).is_none());
    // the AI-intent reader on its own does not inherit `*` either
    let f = RobotsFile::parse("User-agent: *\nDisallow: /\n");
    assert!(robotstxt::ai_intent(&f, "/any").is_empty());
    let v = c.eu();
    expect(&v, [X, X, X]);
    for p in Purpose::ALL {
        reason(&v, p, "robots.disallow");
    }
}

#[test]
fn x3_a5_non_token_agent_names_match_as_whole_values() {
    let c = page("https://s.example/a").robots("User-agent: AI2Bot\nDisallow: /\n");
    let agents = intent(&c.evidence(), AgentCategory::AiTrain).unwrap();
    assert_eq!(agents[0].0, "AI2Bot");
    expect(&c.eu(), [A, A, X]);
}

#[test]
fn x3_a6_our_explicit_allow_is_search_permission_not_training_permission() {
    let c = page("https://s.example/a")
        .robots("User-agent: BylineBot\nAllow: /\n\nUser-agent: GPTBot\nDisallow: /\n");
    let ev = c.evidence();
    assert!(matches!(
        ev[0].observation,
        Observation::RobotsAccess {
            outcome: RobotsOutcome::Allowed,
            explicit_allow: true,
            ..
        }
    ));
    let v = c.eu();
    expect(&v, [A, A, X]);
    reason(&v, TRAIN, "ai_intent.ai_train");
    let s = c.strict();
    expect(&s, [A, X, X]);
    reason(&s, SEARCH, "robots.allow_explicit");
    reason(&s, TRAIN, "ai_intent.ai_train");
    reason(&s, RAG, "licence.none");
}

#[test]
fn disallow_ai_training_in_robots_txt_is_ai_intent_for_train() {
    // signals.md §1.7: the expired Microsoft draft's line, recorded as AI intent
    let robots = "User-agent: *\nAllow: /\nDisallowAITraining: /essays/\n";
    let v = page("https://s.example/essays/a").robots(robots).eu();
    expect(&v, [A, A, X]);
    reason(&v, TRAIN, "ai_intent.ai_train");
    expect(
        &page("https://s.example/news/a").robots(robots).eu(),
        [A, A, A],
    );
}

// ---------------------------------------------------------------- §3.4

#[test]
fn x3_x1_noindex_excludes_search_and_rag() {
    let v = page("https://s.example/a")
        .header("X-Robots-Tag", "noindex")
        .eu();
    expect(&v, [X, X, A]);
    reason(&v, SEARCH, "meta.noindex");
    reason(&v, RAG, "meta.noindex");
}

#[test]
fn x3_x2_another_bots_noindex_is_recorded_without_effect() {
    let c = page("https://s.example/a").header("X-Robots-Tag", "googlebot: noindex");
    let ev = c.evidence();
    assert!(ev.iter().any(|e| e.signal == "x-robots-tag"
        && e.scope == Scope::OtherToken("googlebot".into())
        && matches!(&e.observation, Observation::Directives(d) if d.noindex)));
    assert_eq!(
        Scope::OtherToken("googlebot".into()).label(),
        "other-token:googlebot"
    );
    expect(&c.eu(), [A, A, A]);
}

#[test]
fn x3_x3_noai_excludes_train_and_rag() {
    let v = page("https://s.example/a")
        .header("X-Robots-Tag", "noai, noimageai")
        .eu();
    expect(&v, [A, X, X]);
    reason(&v, RAG, "meta.noai");
    reason(&v, TRAIN, "meta.noai");
}

#[test]
fn x3_x4_max_snippet_caps_quotes_and_noarchive_excludes_train() {
    let v = page("https://s.example/a")
        .html(
            r#"<meta name="robots" content="max-snippet:50, NOARCHIVE">"#,
            "<p>x</p>",
        )
        .eu();
    expect(&v, [C, C, X]);
    reason(&v, TRAIN, "meta.noarchive");
    assert!(
        v.rag_attributed
            .has_condition(&Condition::MaxQuoteChars(50))
    );
    assert!(v.search_index.has_condition(&Condition::MaxQuoteChars(50)));
    assert!(
        v.rag_attributed
            .has_condition(&Condition::SnippetLengthQuotes)
    );
}

#[test]
fn x3_x5_past_unavailable_after_is_noindex_and_the_date_parses_despite_the_comma() {
    let c = page("https://s.example/a").header(
        "X-Robots-Tag",
        "unavailable_after: Wed, 25 Jun 2025 15:00:00 PST",
    );
    let ev = c.evidence();
    let d = ev
        .iter()
        .find_map(|e| match &e.observation {
            Observation::Directives(d) if e.signal == "x-robots-tag" => Some(d.clone()),
            _ => None,
        })
        .unwrap();
    // 15:00 PST = 23:00 UTC
    assert_eq!(d.unavailable_after, Some(1750892400));
    let v = c.eu();
    expect(&v, [X, X, A]);
    reason(&v, SEARCH, "meta.unavailable_after");
}

#[test]
fn x3_x6_header_all_and_meta_none_merge_most_restrictive() {
    let c = page("https://s.example/a")
        .header("X-Robots-Tag", "all")
        .html(r#"<meta name="robots" content="none">"#, "<p>x</p>");
    let ev = c.evidence();
    assert!(
        ev.iter().any(|e| matches!(&e.observation,
        Observation::Directives(d) if d.noindex && d.nofollow && e.location == Location::HtmlMeta))
    );
    let v = c.eu();
    expect(&v, [X, X, A]);
    reason(&v, SEARCH, "meta.noindex");
}

#[test]
fn x3_x7_a_rule_scoped_to_us_applies_nosnippet_as_no_quote() {
    let c = page("https://s.example/a").header("X-Robots-Tag", "byline: nosnippet");
    assert!(c.evidence().iter().any(|e| e.scope == Scope::OurToken));
    let v = c.eu();
    assert_eq!(v.rag_attributed.decision, C);
    assert!(v.rag_attributed.has_condition(&Condition::NoQuote));
    // the product token itself scopes too
    let v = page("https://s.example/a")
        .header("X-Robots-Tag", "BylineBot: nosnippet")
        .eu();
    assert!(v.rag_attributed.has_condition(&Condition::NoQuote));
}

// ---------------------------------------------------------------- §4.8

fn tdm(case: Case, json: &str) -> Case {
    Case {
        tdmrep: Some(ok(json)),
        ..case
    }
}

#[test]
fn x3_t1_a_site_wide_reservation_excludes_train_and_rag_not_search() {
    let v = tdm(
        page("https://s.example/a"),
        r#"[{"location":"/","tdm-reservation":1}]"#,
    )
    .eu();
    expect(&v, [A, X, X]);
    reason(&v, TRAIN, "tdmrep.reserved");
    reason(&v, RAG, "tdmrep.reserved");
}

#[test]
fn x3_t2_the_first_matching_rule_decides() {
    let json = r#"[{"location":"/directory-b/images/*.jpg","tdm-reservation":0},{"location":"/directory-b/","tdm-reservation":1}]"#;
    let jpg = tdm(page("https://s.example/directory-b/images/x.jpg"), json);
    let v = jpg.eu();
    expect(&v, [A, A, A]);
    reason(&jpg.strict(), TRAIN, "tdmrep.unreserved");
    let html = tdm(page("https://s.example/directory-b/page.html"), json);
    expect(&html.eu(), [A, X, X]);
}

#[test]
fn x3_t3_first_match_wins_unlike_robots_longest_match() {
    let json =
        r#"[{"location":"/","tdm-reservation":1},{"location":"/open/","tdm-reservation":0}]"#;
    let v = tdm(page("https://s.example/open/x"), json).eu();
    expect(&v, [A, X, X]);
    reason(&v, TRAIN, "tdmrep.reserved");
}

#[test]
fn x3_t4_a_header_supersedes_the_file() {
    let c = tdm(
        page("https://s.example/a"),
        r#"[{"location":"/","tdm-reservation":1}]"#,
    )
    .header("tdm-reservation", "0");
    expect(&c.eu(), [A, A, A]);
    reason(&c.strict(), TRAIN, "tdmrep.unreserved");
}

#[test]
fn x3_t5_meta_silence_does_not_reset_a_header_reservation() {
    let v = page("https://s.example/a")
        .header("tdm-reservation", "1")
        .eu();
    expect(&v, [A, X, X]);
    reason(&v, TRAIN, "tdmrep.reserved");
}

#[test]
fn x3_t6_an_invalid_header_value_is_unset_with_a_parse_error() {
    let c = page("https://s.example/a").header("tdm-reservation", "yes");
    let ev = c.evidence();
    let row = ev.iter().find(|e| e.signal == "tdmrep.header").unwrap();
    assert!(matches!(
        row.observation,
        Observation::Tdmrep {
            reservation: None,
            ..
        }
    ));
    assert_eq!(row.parse_errors.len(), 1);
    expect(&c.eu(), [A, A, A]);
}

#[test]
fn x3_t7_an_unreachable_tdmrep_file_defers_train_and_rag() {
    let c = Case {
        tdmrep: Some(FileFetch::from_status(503, String::new())),
        ..page("https://s.example/a")
    };
    let v = c.eu();
    expect(&v, [A, D, D]);
    reason(&v, TRAIN, "tdmrep.unreachable");
    // a page header settles it
    expect(&c.clone().header("tdm-reservation", "0").eu(), [A, A, A]);
}

// ---------------------------------------------------------------- §5.7

#[test]
fn x3_p1_content_usage_train_ai_n_excludes_train() {
    let v = page("https://s.example/a")
        .header("Content-Usage", "train-ai=n")
        .eu();
    expect(&v, [A, A, X]);
    reason(&v, TRAIN, "aipref.train-ai=n");
}

#[test]
fn x3_p2_an_upper_case_key_fails_the_whole_dictionary() {
    let c = page("https://s.example/a").header("Content-Usage", "Train-AI=n");
    let ev = c.evidence();
    let row = ev
        .iter()
        .find(|e| e.signal == "content-usage.header")
        .unwrap();
    assert!(matches!(&row.observation, Observation::Aipref { prefs, .. } if prefs.is_empty()));
    assert_eq!(row.parse_errors.len(), 1);
    expect(&c.eu(), [A, A, A]);
}

#[test]
fn x3_p3_a_repeated_key_keeps_its_last_value() {
    let v = page("https://s.example/a")
        .header("Content-Usage", "train-ai=y, train-ai=n")
        .eu();
    expect(&v, [A, A, X]);
    reason(&v, TRAIN, "aipref.train-ai=n");
}

#[test]
fn x3_p4_a_path_rule_in_robots_txt_gives_explicit_permission() {
    let robots = "User-Agent: *\nAllow: /\nDisallow: /never/\nContent-Usage: train-ai=n\nContent-Usage: /ai-ok/ train-ai=y\n";
    let ok_page = page("https://s.example/ai-ok/x").robots(robots);
    expect(&ok_page.eu(), [A, A, A]);
    let s = ok_page.strict();
    reason(&s, TRAIN, "aipref.train-ai=y");
    assert_eq!(s.train.decision, A);
    // the draft's other two readings
    let test = page("https://s.example/test").robots(robots).eu();
    expect(&test, [A, A, X]);
    let never = page("https://s.example/never/test").robots(robots).eu();
    expect(&never, [X, X, X]);
    reason(&never, TRAIN, "robots.disallow");
    no_reason(&never, TRAIN, "aipref.train-ai=n");
}

#[test]
fn x3_p5_rules_with_the_same_path_combine_to_n() {
    let v = page("https://s.example/a/x")
        .robots("User-Agent: *\nContent-Usage: /a/ train-ai=y\nContent-Usage: /a/ train-ai=n\n")
        .eu();
    expect(&v, [A, A, X]);
    reason(&v, TRAIN, "aipref.train-ai=n");
}

#[test]
fn x3_p6_robots_y_and_header_n_combine_to_n() {
    let c = page("https://s.example/a")
        .robots("User-Agent: *\nContent-Usage: train-ai=y\n")
        .header("Content-Usage", "train-ai=n");
    expect(&c.eu(), [A, A, X]);
    let s = c.strict();
    no_reason(&s, TRAIN, "aipref.train-ai=y");
    reason(&s, TRAIN, "aipref.train-ai=n");
}

#[test]
fn x3_p7_legacy_training_labels_reserve_training_in_eu() {
    let c = page("https://s.example/a").header("Content-Usage", "train-genai=n");
    let v = c.eu();
    expect(&v, [A, A, X]);
    reason(&v, TRAIN, "aipref.legacy.train-genai=n");
    // the knob turns the OURS reading off
    let off = EU_OPT_OUT_TOML.replace(
        "legacy_labels_reserve_training = true",
        "legacy_labels_reserve_training = false",
    );
    let p = Policy::from_bytes(off.as_bytes(), "off").unwrap();
    expect(&evaluate(&c.evidence(), &p, now()), [A, A, A]);
}

#[test]
fn x3_p8_content_signal_search_yes_ai_train_no() {
    let c = page("https://s.example/a")
        .robots("User-agent: *\nContent-Signal: search=yes, ai-train=no\nAllow: /\n");
    let v = c.eu();
    expect(&v, [A, A, X]);
    reason(&v, TRAIN, "content_signal.ai-train=no");
    let s = c.strict();
    expect(&s, [A, X, X]);
    reason(&s, SEARCH, "content_signal.search=yes");
    reason(&s, RAG, "licence.none");
}

// ---------------------------------------------------------------- §6.6

#[test]
fn x3_o1_ai_txt_extension_globs_exclude_train_for_matching_pages() {
    let ai = ok("User-Agent: *\nDisallow: *.txt\nDisallow: *.html\n");
    let html_page = Case {
        ai_txt: Some(ai.clone()),
        ..page("https://s.example/post.html")
    };
    let v = html_page.eu();
    expect(&v, [A, A, X]);
    reason(&v, TRAIN, "ai_txt.disallow");
    let plain = Case {
        ai_txt: Some(ai),
        ..page("https://s.example/post")
    };
    let v = plain.eu();
    expect(&v, [A, A, A]);
    no_reason(&v, TRAIN, "ai_txt.disallow");
}

#[test]
fn x3_o2_a_markdown_ai_txt_is_unrecognised_and_ignored() {
    let c = Case {
        ai_txt: Some(ok("# About us\n\nWe write about cats.\n")),
        ..page("https://s.example/post.html")
    };
    let ev = c.evidence();
    assert!(
        ev.iter()
            .any(|e| e.signal == "ai.txt" && e.observation == Observation::AiTxtUnrecognised)
    );
    expect(&c.eu(), [A, A, A]);
}

const RSL_XML: &str = r#"<rsl xmlns="https://rslstandard.org/rsl"><content url="/"><license><permits type="usage">search</permits><prohibits type="usage">ai-train</prohibits></license></content></rsl>"#;

#[test]
fn x3_o3_rsl_via_robots_license_prohibits_training_and_permits_search() {
    let robots = "User-agent: *\nAllow: /\nLicense: https://s.example/l.xml";
    let mut c = page("https://s.example/a").robots(robots);
    let links = super::gather::rsl_links(&c.evidence(), &c.url);
    assert_eq!(links, vec!["https://s.example/l.xml"]);
    c.rsl = vec![(links[0].clone(), ok(RSL_XML))];
    let v = c.eu();
    expect(&v, [A, A, X]);
    reason(&v, TRAIN, "rsl.prohibits.ai-train");
    let s = c.strict();
    expect(&s, [A, X, X]);
    reason(&s, SEARCH, "rsl.permits.search");
}

#[test]
fn x3_o4_rsl_with_a_licence_server_excludes_until_licensed() {
    let xml = r#"<rsl xmlns="https://rslstandard.org/rsl"><content url="/premium/*" server="https://rsl.example/api"><license><permits type="usage">ai-input</permits></license></content></rsl>"#;
    let c = Case {
        rsl: vec![("https://s.example/l.xml".into(), ok(xml))],
        ..page("https://s.example/premium/a")
    };
    let v = c.eu();
    expect(&v, [A, X, X]);
    reason(&v, RAG, "rsl.licence_required");
    // a page outside `/premium/*` is not governed
    let other = Case {
        url: "https://s.example/free/a".into(),
        ..c
    };
    expect(&other.eu(), [A, A, A]);
}

#[test]
fn x3_o5_llms_txt_is_recorded_with_no_effect() {
    let c = Case {
        llms_txt: Some(ok("# Site\n> summary\n- [a](/a.md)\n")),
        ..page("https://s.example/a")
    };
    let ev = c.evidence();
    assert!(
        ev.iter()
            .any(|e| e.signal == "llms.txt" && e.observation == Observation::NoEffect)
    );
    let s = c.strict();
    expect(&s, [X, X, X]);
    for p in Purpose::ALL {
        reason(&s, p, "licence.none");
    }
}

#[test]
fn x3_o6_pdf_manifests_are_not_read_so_a_pdf_gets_no_c2pa_effect() {
    // Byline does not parse C2PA manifests (no PDF/image ingestion): a PDF
    // response yields header evidence only, and no `c2pa.*` reason ever.
    let c = Case {
        html: None,
        headers: vec![("Content-Type".into(), "application/pdf".into())],
        ..page("https://s.example/a.pdf")
    };
    let v = c.eu();
    expect(&v, [A, A, A]);
    assert!(
        v.iter()
            .all(|vd| vd.reasons.iter().all(|r| !r.starts_with("c2pa")))
    );
}

// ---------------------------------------------------------------- §7.5

fn licence_of(c: &Case) -> Option<(String, String, bool)> {
    let ev = c.evidence();
    super::evaluate::page_licence(&ev)
        .map(|(_, f, conflict)| (f.effective_id(), f.source.clone(), conflict))
}

#[test]
fn x3_c2_a_multi_token_rel_license_in_main_content() {
    let c = page("https://s.example/a").html(
        "",
        r#"<p>Text</p><a rel="license noopener noreferrer" href="https://creativecommons.org/licenses/by/4.0/?ref=chooser-v1">CC BY 4.0</a>"#,
    );
    assert_eq!(
        licence_of(&c),
        Some(("CC-BY-4.0".into(), "L2".into(), false))
    );
}

#[test]
fn x3_c1_head_link_is_l1_with_by_and_sa_flags() {
    let c = page("https://s.example/a").html(
        r#"<link rel="license" href="https://creativecommons.org/licenses/by-sa/4.0/deed.en">"#,
        "<p>x</p>",
    );
    assert_eq!(
        licence_of(&c),
        Some(("CC-BY-SA-4.0".into(), "L1".into(), false))
    );
    let v = c.strict();
    reason(&v, RAG, "licence.by");
    reason(&v, RAG, "licence.sa");
}

#[test]
fn x3_c7_jsonld_license_on_the_main_entity() {
    let c = page("https://s.example/a").html(
        r#"<script type="application/ld+json">{"@context":"https://schema.org","@type":"Article","url":"https://s.example/a","license":"https://creativecommons.org/publicdomain/zero/1.0/"}</script>"#,
        "<p>x</p>",
    );
    assert_eq!(licence_of(&c), Some(("CC0-1.0".into(), "L4".into(), false)));
    expect(&c.strict(), [A, A, A]);
}

#[test]
fn x3_c8_a_same_rank_conflict_uses_the_most_restrictive() {
    let c = page("https://s.example/a").html(
        r#"<link rel="license" href="https://creativecommons.org/licenses/by/4.0/">
           <script type="application/ld+json">{"@type":"Article","url":"https://s.example/a","license":"https://creativecommons.org/licenses/by-nc/4.0/"}</script>"#,
        "<p>x</p>",
    );
    let (id, _, conflict) = licence_of(&c).unwrap();
    assert_eq!(id, "CC-BY-NC-4.0");
    assert!(conflict);
    let v = c.eu();
    expect(&v, [A, X, C]);
    reason(&v, RAG, "licence.nc");
    reason(&v, RAG, "licence.conflict");
}

#[test]
fn x3_c9_all_rights_reserved_is_no_licence_and_no_reservation() {
    let c = page("https://s.example/a").html(
        "",
        "<p>x</p><footer>© 2025 Example Ltd. All rights reserved.</footer>",
    );
    let ev = c.evidence();
    assert!(ev.iter().any(|e| e.signal == "copyright-notice"));
    assert_eq!(licence_of(&c), None);
    expect(&c.eu(), [A, A, A]);
    let s = c.strict();
    expect(&s, [X, X, X]);
    reason(&s, TRAIN, "licence.none");
}

#[test]
fn x3_c10_an_rsl_typed_license_link_is_rsl_not_a_cc_licence() {
    let c = page("https://s.example/a").html(
        r#"<link rel="license" type="application/rsl+xml" href="/license.xml">"#,
        "<p>x</p>",
    );
    let ev = c.evidence();
    assert_eq!(licence_of(&c), None);
    assert_eq!(
        super::gather::rsl_links(&ev, &c.url),
        vec!["https://s.example/license.xml"]
    );
}

// ---------------------------------------------------------------- §8.5

const ALLOW_ALL: &str = "User-agent: *\nAllow: /\n";
const FOOTER: &str = "<footer>© 2025 Example Ltd. All rights reserved.</footer>";
const CC_BY: &str = r#"<link rel="license" href="https://creativecommons.org/licenses/by/4.0/">"#;

fn e1() -> Case {
    page("https://s.example/e1")
        .robots(ALLOW_ALL)
        .html("", &format!("<p>x</p>{FOOTER}"))
}

fn e2() -> Case {
    page("https://s.example/e2")
        .robots(ALLOW_ALL)
        .html(CC_BY, &format!("<p>x</p>{FOOTER}"))
}

#[test]
fn x3_e1_no_signal_is_allowed_in_eu_and_excluded_in_strict() {
    expect(&e1().eu(), [A, A, A]);
    let s = e1().strict();
    expect(&s, [X, X, X]);
    for p in Purpose::ALL {
        reason(&s, p, "licence.none");
    }
}

#[test]
fn x3_e2_cc_by_adds_attribution() {
    let v = e2().eu();
    expect(&v, [A, C, C]);
    assert!(v.rag_attributed.has_condition(&Condition::Attribution));
    assert!(v.train.has_condition(&Condition::AttributionManifest));
    let s = e2().strict();
    expect(&s, [C, C, C]);
    assert!(s.search_index.has_condition(&Condition::Attribution));
}

#[test]
fn x3_e3_ai_training_blocks_beat_the_licence() {
    let c = e2().robots("User-agent: GPTBot\nUser-agent: CCBot\nUser-agent: Google-Extended\nDisallow: /\n\nUser-agent: *\nAllow: /\n");
    let v = c.eu();
    expect(&v, [A, C, X]);
    reason(&v, TRAIN, "ai_intent.ai_train");
    let s = c.strict();
    expect(&s, [C, C, X]);
    reason(&s, TRAIN, "ai_intent.ai_train");
}

#[test]
fn x3_e4_nc_sa_with_commercial_use() {
    let c = page("https://s.example/e4").robots(ALLOW_ALL).html(
        r#"<link rel="license" href="https://creativecommons.org/licenses/by-nc-sa/4.0/">"#,
        "<p>x</p>",
    );
    let v = c.eu();
    // train: allowed under the TDM exception (with the BY manifest condition)
    expect(&v, [A, X, C]);
    reason(&v, RAG, "licence.nc");
    no_reason(&v, TRAIN, "licence.nc");
    let s = c.strict();
    expect(&s, [X, X, X]);
    for p in Purpose::ALL {
        reason(&s, p, "licence.nc");
    }
    // commercial_use = false lifts NC
    let nc = STRICT_OPT_IN_TOML.replace("commercial_use = true", "commercial_use = false");
    let p = Policy::from_bytes(nc.as_bytes(), "nc").unwrap();
    let v = evaluate(&c.evidence(), &p, now());
    expect(&v, [C, C, X]);
    reason(&v, TRAIN, "licence.sa");
}

#[test]
fn x3_e5_noindex_and_tdm_reservation_exclude_everything() {
    let c = page("https://s.example/e5")
        .robots(ALLOW_ALL)
        .header("X-Robots-Tag", "noindex")
        .header("tdm-reservation", "1");
    let v = c.eu();
    expect(&v, [X, X, X]);
    reason(&v, SEARCH, "meta.noindex");
    reason(&v, TRAIN, "tdmrep.reserved");
    expect(&c.strict(), [X, X, X]);
}

#[test]
fn x3_e6_meta_lifts_a_site_wide_reservation() {
    let c = Case {
        tdmrep: Some(ok(r#"[{"location":"/","tdm-reservation":1}]"#)),
        ..page("https://s.example/e6")
            .robots(ALLOW_ALL)
            .html(r#"<meta name="tdm-reservation" content="0">"#, "<p>x</p>")
    };
    expect(&c.eu(), [A, A, A]);
    let s = c.strict();
    expect(&s, [X, A, A]);
    reason(&s, SEARCH, "licence.none");
    reason(&s, TRAIN, "tdmrep.unreserved");
}

#[test]
fn x3_e7_robots_preferences_and_a_cc_by_page() {
    let c = page("https://s.example/e7")
        .robots("User-agent: *\nContent-Usage: train-ai=n\nContent-Signal: search=yes, ai-train=no\nAllow: /\n")
        .html(CC_BY, "<p>x</p>");
    let v = c.eu();
    expect(&v, [A, C, X]);
    reason(&v, TRAIN, "aipref.train-ai=n");
    reason(&v, TRAIN, "content_signal.ai-train=no");
    let s = c.strict();
    expect(&s, [C, C, X]);
}

#[test]
fn x3_e8_a_cached_copy_governs_while_robots_is_unreachable() {
    let mut c = page("https://s.example/e8").robots(ALLOW_ALL);
    c.robots_outcome = Some((RobotsOutcome::Allowed, Some(503), true, Some(2 * 24 * 3600)));
    expect(&c.eu(), [A, A, A]);
    expect(&c.strict(), [X, X, X]);
    // with no cached copy it is deferred
    let mut none = page("https://s.example/e8");
    none.robots_outcome = Some((RobotsOutcome::Unreachable, Some(503), false, None));
    let v = none.eu();
    expect(&v, [D, D, D]);
    reason(&v, SEARCH, "robots.unreachable");
    // after 30 days the knob decides
    let mut old = c.clone();
    old.robots_outcome = Some((
        RobotsOutcome::Allowed,
        Some(503),
        true,
        Some(31 * 24 * 3600),
    ));
    let p = EU_OPT_OUT_TOML.replace("after_30d = \"keep_cached\"", "after_30d = \"disallow\"");
    let p = Policy::from_bytes(p.as_bytes(), "p").unwrap();
    expect(&evaluate(&old.evidence(), &p, now()), [D, D, D]);
    expect(&old.eu(), [A, A, A]);
}

#[test]
fn x3_e9_a_robots_disallow_is_never_widened_by_a_licence() {
    let c = page("https://s.example/private/x")
        .robots("User-agent: BylineBot\nDisallow: /private/\n")
        .html(
            r#"<link rel="license" href="https://creativecommons.org/publicdomain/zero/1.0/">"#,
            "<p>x</p>",
        );
    let ev = c.evidence();
    assert_eq!(ev.len(), 1, "never fetched: only the robots row");
    for v in [c.eu(), c.strict()] {
        expect(&v, [X, X, X]);
        for p in Purpose::ALL {
            assert_eq!(v.get(p).reasons, vec!["robots.disallow"]);
        }
    }
}

#[test]
fn x3_e10_noai_with_cc_by() {
    let c = page("https://s.example/e10").robots(ALLOW_ALL).html(
        &format!(r#"<meta name="robots" content="noai">{CC_BY}"#),
        "<p>x</p>",
    );
    let v = c.eu();
    expect(&v, [A, X, X]);
    reason(&v, RAG, "meta.noai");
    let s = c.strict();
    expect(&s, [C, X, X]);
}

// ---------------------------------------------------------------- model

#[test]
fn verdicts_cite_the_policy_and_the_evidence_rows_they_used() {
    let c = page("https://s.example/a").header("X-Robots-Tag", "noindex");
    let ev = c.evidence();
    let p = eu_policy();
    let v = evaluate(&ev, &p, now());
    assert_eq!(v.search_index.policy_id, "eu-opt-out");
    assert_eq!(v.search_index.policy_sha256, p.sha256);
    assert_eq!(v.search_index.evidence.len(), 1);
    assert_eq!(ev[v.search_index.evidence[0]].signal, "x-robots-tag");
}

#[test]
fn every_looked_for_signal_leaves_a_row_even_when_absent() {
    let c = Case {
        tdmrep: Some(FileFetch::from_status(404, String::new())),
        ai_txt: Some(FileFetch::from_status(404, String::new())),
        ..page("https://s.example/a").robots(ALLOW_ALL)
    };
    let ev = c.evidence();
    for s in [
        "robots.txt",
        "ai_intent",
        "content-usage.robots",
        "content-signal",
        "tdmrep.json",
        "ai.txt",
        "x-robots-tag",
        "tdmrep.header",
        "content-usage.header",
        "meta-robots",
        "tdmrep.meta",
        "licence",
    ] {
        assert!(ev.iter().any(|e| e.signal == s), "no row for {s}");
    }
}

#[test]
fn the_attribution_record_takes_title_and_author_from_the_page() {
    let c = page("https://s.example/a").html(
        r#"<meta name="author" content="Jane Doe"><script type="application/ld+json">{"@type":"Article","headline":"Cats in Winter"}</script>"#,
        "<p>x</p>",
    );
    let ev = c.evidence();
    let a = ev.iter().find(|e| e.signal == "attribution").unwrap();
    assert_eq!(
        a.observation,
        Observation::Attribution {
            title: Some("Cats in Winter".into()),
            author: Some("Jane Doe".into()),
            site_name: None,
        }
    );
}

#[test]
fn a_meta_tag_for_an_ai_agent_feeds_ai_intent() {
    let v = page("https://s.example/a")
        .html(r#"<meta name="GPTBot" content="noindex">"#, "<p>x</p>")
        .eu();
    expect(&v, [A, A, X]);
    reason(&v, TRAIN, "ai_intent.ai_train");
}

#[test]
fn a_robots_meta_in_the_body_is_recorded_but_not_acted_on() {
    let c =
        page("https://s.example/a").html("", r#"<meta name="robots" content="noindex"><p>x</p>"#);
    assert!(
        c.evidence()
            .iter()
            .any(|e| e.location == Location::HtmlBody)
    );
    expect(&c.eu(), [A, A, A]);
}

#[test]
fn a_natural_language_reservation_excludes_train_and_rag_when_honoured() {
    let c = page("https://s.example/a").html(
        "",
        "<p>x</p><footer>We expressly reserve the right to text and data mining under Art. 4(3) DSM.</footer>",
    );
    let v = c.eu();
    expect(&v, [A, X, X]);
    reason(&v, TRAIN, "nl_reservation");
    let off = EU_OPT_OUT_TOML.replace(
        "honour_natural_language_reservations = true",
        "honour_natural_language_reservations = false",
    );
    let p = Policy::from_bytes(off.as_bytes(), "off").unwrap();
    expect(&evaluate(&c.evidence(), &p, now()), [A, A, A]);
}

#[test]
fn tdmrep_reserves_search_knob_excludes_search_too() {
    let c = page("https://s.example/a").header("tdm-reservation", "1");
    let on = EU_OPT_OUT_TOML.replace("reserves_search = false", "reserves_search = true");
    let p = Policy::from_bytes(on.as_bytes(), "on").unwrap();
    let v = evaluate(&c.evidence(), &p, now());
    expect(&v, [X, X, X]);
    reason(&v, SEARCH, "tdmrep.reserved");
}

#[test]
fn the_star_group_preference_counts_with_our_own_group_only_when_the_knob_says_so() {
    let c = page("https://s.example/a").robots(
        "User-agent: BylineBot\nAllow: /\n\nUser-agent: *\nContent-Usage: train-ai=n\nAllow: /\n",
    );
    expect(&c.eu(), [A, A, X]);
    let off = EU_OPT_OUT_TOML.replace(
        "honour_star_group_too = true",
        "honour_star_group_too = false",
    );
    let p = Policy::from_bytes(off.as_bytes(), "off").unwrap();
    expect(&evaluate(&c.evidence(), &p, now()), [A, A, A]);
}

// Precision: evidence that is not a licence statement about this page grants
// nothing (issue "One consent vocabulary"; the three false readings found on
// a real documentation crawl under strict-opt-in).

#[test]
fn letters_cc0_inside_a_commit_hash_are_no_licence() {
    let c = page("https://s.example/a").html(
        "",
        "<p>Fixed in commit 5e1d33c709cc0af66b2 of the release branch.</p>",
    );
    assert_eq!(licence_of(&c), None);
    no_reason(&c.strict(), TRAIN, "licence.public_domain");
}

#[test]
fn an_index_linking_to_licence_pages_is_not_itself_licensed() {
    let c = page("https://s.example/index.html").html(
        "",
        r#"<main><h1>Licences we discuss</h1><ul>
           <li><a href="/licences/cc0.html">CC0</a></li>
           <li><a href="/licences/pdm.html">Public Domain Mark</a></li>
           <li><a href="/licences/by.html">CC BY 4.0</a></li></ul></main>"#,
    );
    assert_eq!(licence_of(&c), None);
    let v = c.strict();
    no_reason(&v, TRAIN, "licence.public_domain");
    // A link to the licence deed itself still counts as the page's statement.
    let d = page("https://s.example/b").html(
        "",
        r#"<footer>Text licensed under <a href="https://creativecommons.org/licenses/by/4.0/">CC BY 4.0</a>.</footer>"#,
    );
    assert!(licence_of(&d).is_some());
}

#[test]
fn an_explicitly_unreserved_tdm_statement_is_not_a_reservation() {
    let c = page("https://s.example/a").html(
        "",
        "<p>tdm-reservation: 0 (explicitly not reserved), plus CC BY.</p>",
    );
    no_reason(&c.eu(), TRAIN, "nl_reservation");
    assert!(
        !c.evidence().iter().any(|e| e.signal == "nl-reservation"),
        "{:?}",
        c.evidence()
    );
    // A real reservation still is one.
    let r = page("https://s.example/b").html(
        "",
        "<p>We reserve the right to text and data mining (Art. 4(3) DSM).</p>",
    );
    reason(&r.eu(), TRAIN, "nl_reservation");
}

#[test]
fn licence_names_in_code_and_quoted_examples_are_not_statements() {
    let c = page("https://s.example/a").html(
        "",
        "<p>Set the field like this:</p><pre><code>license = \"CC BY-SA 4.0\"</code></pre>\
         <blockquote>This work is licensed under CC BY-NC 4.0.</blockquote>",
    );
    assert_eq!(licence_of(&c), None);
}
