//! The consent fixture world (tests/fixtures/consent, one local origin per
//! directory) crawled over real HTTP on 127.0.0.1, evidence and verdicts
//! stored in a real corpus, then re-judged with `byline policy apply`; every
//! page's verdicts and reason codes are asserted under both policies.

use std::collections::{BTreeMap, VecDeque};
use std::process::Command;

use byline::crawl::robots::{self, FetchOutcome, PRODUCT_TOKEN};
use byline::crawl::signals::{PageSeen, RobotsSeen, Signals};
use byline::policy::evidence::FetchRef;
use byline::policy::{Policy, config};
use byline::store::Store;
use scraper::{Html, Selector};
use url::Url;

use crate::support::consent_site::{Origin, serve};
use crate::support::{byline_bin, tempdir};

const ORIGINS: [&str; 11] = [
    "open", "aiblock", "fetchers", "partial", "prefs", "aipref", "tdm", "tdmdown", "aitxt", "rsl",
    "private",
];

const NOW: i64 = 1_795_824_000; // 2026-11-28

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .user_agent(format!("Mozilla/5.0 (compatible; {PRODUCT_TOKEN}/0.1)"))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The crawler's request path for these loopback origins (origin files and
/// licence documents go through it: guard, robots.txt, politeness).
async fn crawl_session(store: &Store, seeds: &[String]) -> byline::crawl::crawler::Session {
    byline::crawl::crawler::Session::start(store.clone(), crate::support::crawl::config(seeds))
        .await
        .unwrap()
}

/// A minimal polite walk of one origin: robots.txt first, then every
/// same-origin link from `/`; pages robots.txt disallows are not fetched but
/// still go through the consent hook (signals.md §8.1 step 1).
async fn walk(origin: &Origin, signals: &Signals, http: &reqwest::Client) {
    let robots_url = origin.url("/robots.txt");
    let resp = http.get(&robots_url).send().await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.bytes().await.unwrap().to_vec();
    let body_text = String::from_utf8_lossy(&body).into_owned();
    let robots_sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&body))
    };
    let access = robots::access(
        FetchOutcome::from_response(status, body, None, false, None),
        None,
    );
    let robots_seen = RobotsSeen {
        access: &access,
        status: Some(status),
        body: Some(&body_text),
        cache_age_secs: None,
        fetch: Some(FetchRef {
            url: robots_url.clone(),
            status: Some(status),
            fetched_at: NOW,
            body_sha256: Some(robots_sha),
            ..FetchRef::default()
        }),
    };
    let base = Url::parse(&origin.url("/")).unwrap();
    let mut queue: VecDeque<Url> = VecDeque::from([base.clone()]);
    let mut seen = vec![base.clone()];
    let a = Selector::parse("a[href]").unwrap();
    while let Some(url) = queue.pop_front() {
        if !access.check(&url).allowed {
            let page = PageSeen {
                url: &url,
                page_id: None,
                fetch: None,
                headers: &[],
                html: None,
            };
            signals.on_page(&page, &robots_seen, NOW).await.unwrap();
            continue;
        }
        let resp = http.get(url.as_str()).send().await.unwrap();
        let status = resp.status().as_u16();
        let headers: Vec<(String, String)> = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let is_html = headers
            .iter()
            .any(|(k, v)| k == "content-type" && v.starts_with("text/html"));
        let body = resp.text().await.unwrap();
        let fetch = FetchRef {
            fetch_id: None,
            url: url.to_string(),
            status: Some(status),
            fetched_at: NOW,
            body_sha256: None,
        };
        let page = PageSeen {
            url: &url,
            page_id: None,
            fetch: Some(fetch),
            headers: &headers,
            html: is_html.then_some(body.as_str()),
        };
        signals.on_page(&page, &robots_seen, NOW).await.unwrap();
        if is_html {
            let doc = Html::parse_document(&body);
            for link in doc.select(&a) {
                if let Ok(next) = url.join(link.value().attr("href").unwrap())
                    && next.origin() == url.origin()
                    && !seen.contains(&next)
                {
                    seen.push(next.clone());
                    queue.push_back(next);
                }
            }
        }
    }
}

/// (origin, path, eu verdicts, strict verdicts, reasons that must appear).
/// Verdict letters: A allowed, C allowed_with_conditions, X excluded, D deferred.
#[rustfmt::skip]
#[allow(clippy::type_complexity)]
const EXPECT: &[(&str, &str, &str, &str, &[&str])] = &[
    ("open", "/e1.html", "AAA", "XXX", &["strict:train:licence.none"]),
    ("open", "/e2.html", "ACC", "CCC", &["strict:search_index:licence.by"]),
    ("open", "/e4.html", "AXC", "XXX", &["eu:rag_attributed:licence.nc", "strict:train:licence.nc"]),
    ("open", "/e5.html", "XXX", "XXX", &["eu:search_index:meta.noindex", "eu:train:tdmrep.reserved"]),
    ("open", "/e10.html", "AXX", "CXX", &["eu:rag_attributed:meta.noai", "strict:train:meta.noai"]),
    ("open", "/x2.html", "AAA", "XXX", &[]),
    ("open", "/x3.html", "AXX", "XXX", &["eu:train:meta.noai"]),
    ("open", "/x4.html", "CCX", "XXX", &["eu:train:meta.noarchive", "eu:rag_attributed:meta.max-snippet"]),
    ("open", "/x5.html", "XXA", "XXX", &["eu:search_index:meta.unavailable_after"]),
    ("open", "/x6.html", "XXA", "XXX", &["eu:search_index:meta.noindex"]),
    ("open", "/x7.html", "CCA", "XXX", &["eu:rag_attributed:meta.nosnippet"]),
    ("open", "/p1.html", "AAX", "XXX", &["eu:train:aipref.train-ai=n"]),
    ("open", "/p2.html", "AAA", "XXX", &[]),
    ("open", "/p3.html", "AAX", "XXX", &["eu:train:aipref.train-ai=n"]),
    ("open", "/p7.html", "AAX", "XXX", &["eu:train:aipref.legacy.train-genai=n"]),
    ("open", "/c2.html", "ACC", "CCC", &["eu:rag_attributed:licence.by"]),
    ("open", "/c7.html", "AAA", "AAA", &["strict:train:licence.public_domain"]),
    ("open", "/c8.html", "AXC", "XXX", &["eu:rag_attributed:licence.nc", "eu:rag_attributed:licence.conflict"]),
    ("open", "/c10.html", "AAA", "XXX", &["strict:search_index:licence.none"]),
    ("open", "/nl.html", "AXX", "XXX", &["eu:train:nl_reservation"]),
    ("open", "/gpt-meta.html", "AAX", "XXX", &["eu:train:ai_intent.ai_train"]),
    ("aiblock", "/e3.html", "ACX", "CCX", &["eu:train:ai_intent.ai_train", "strict:train:ai_intent.ai_train"]),
    ("fetchers", "/a2-a5.html", "AXX", "XXX", &["eu:rag_attributed:ai_intent.ai_user_fetch", "eu:rag_attributed:ai_intent.ai_search", "eu:train:ai_intent.ai_train"]),
    ("partial", "/blog/x.html", "AAA", "AXX", &["strict:search_index:robots.allow_explicit"]),
    ("partial", "/premium/x.html", "AAX", "AXX", &["eu:train:ai_intent.ai_train"]),
    ("prefs", "/e7.html", "ACX", "CCX", &["eu:train:aipref.train-ai=n", "eu:train:content_signal.ai-train=no"]),
    ("prefs", "/p8.html", "AAX", "AXX", &["strict:search_index:content_signal.search=yes"]),
    ("aipref", "/test.html", "AAX", "XXX", &["eu:train:aipref.train-ai=n"]),
    ("aipref", "/ai-ok/x.html", "AAA", "XXA", &["strict:train:aipref.train-ai=y"]),
    ("aipref", "/ai-ok/p6.html", "AAX", "XXX", &["eu:train:aipref.train-ai=n"]),
    ("aipref", "/a/x.html", "AAX", "XXX", &["eu:train:aipref.train-ai=n"]),
    ("aipref", "/never/test.html", "XXX", "XXX", &["eu:train:robots.disallow"]),
    ("tdm", "/t1.html", "AXX", "XXX", &["eu:train:tdmrep.reserved"]),
    ("tdm", "/directory-b/page.html", "AXX", "XXX", &["eu:train:tdmrep.reserved"]),
    ("tdm", "/open/x.html", "AXX", "XXX", &["eu:train:tdmrep.reserved"]),
    ("tdm", "/t4.html", "AAA", "XAA", &["strict:train:tdmrep.unreserved"]),
    ("tdm", "/t6.html", "AXX", "XXX", &["eu:train:tdmrep.reserved"]),
    ("tdm", "/e6.html", "AAA", "XAA", &["strict:rag_attributed:tdmrep.unreserved"]),
    ("tdmdown", "/t7.html", "ADD", "XDD", &["eu:train:tdmrep.unreachable"]),
    ("aitxt", "/post.html", "AAX", "XXX", &["eu:train:ai_txt.disallow"]),
    ("aitxt", "/post", "AAA", "XXX", &[]),
    ("rsl", "/a.html", "AAX", "AXX", &["eu:train:rsl.prohibits.ai-train", "strict:search_index:rsl.permits.search"]),
    ("rsl", "/premium/a.html", "AXX", "XXX", &["eu:rag_attributed:rsl.licence_required"]),
    ("private", "/private/x.html", "XXX", "XXX", &["eu:search_index:robots.disallow", "strict:train:robots.disallow"]),
    ("private", "/public.html", "AAA", "XXX", &[]),
];

fn letter(decision: &str) -> char {
    match decision {
        "allowed" => 'A',
        "allowed_with_conditions" => 'C',
        "excluded" => 'X',
        "deferred" => 'D',
        other => panic!("unknown decision {other}"),
    }
}

async fn verdict_table(
    store: &Store,
    bases: &BTreeMap<String, String>,
    sha: &str,
) -> BTreeMap<(String, String), (String, Vec<(String, Vec<String>)>)> {
    let mut out = BTreeMap::new();
    for (origin, path, ..) in EXPECT {
        let url = format!("{}{path}", bases[*origin]);
        let rows = store.latest_verdicts(&url, Some(sha)).await.unwrap();
        let letters: String = rows.iter().map(|r| letter(&r.decision)).collect();
        let reasons = rows
            .iter()
            .map(|r| (r.purpose.clone(), r.reasons.clone()))
            .collect();
        out.insert((origin.to_string(), path.to_string()), (letters, reasons));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consent_world_gets_the_spec_verdicts_under_both_policies() {
    let dir = tempdir();
    let db = dir.path().join("corpus.db");
    let mut origins = Vec::new();
    for name in ORIGINS {
        origins.push(serve(name).await);
    }
    let bases: BTreeMap<String, String> = origins
        .iter()
        .map(|o| (o.name.clone(), o.base.clone()))
        .collect();

    let store = Store::open(&db).await.unwrap();
    let eu = config::default_policy();
    let http = client();
    let seeds: Vec<String> = origins.iter().map(|o| o.url("/")).collect();
    let session = crawl_session(&store, &seeds).await;
    let signals = Signals::new(
        store.clone(),
        session.conduct(),
        eu.clone(),
        config::EU_OPT_OUT_TOML.as_bytes(),
        PRODUCT_TOKEN,
        NOW,
    )
    .await
    .unwrap();
    for o in &origins {
        walk(o, &signals, &http).await;
    }

    // origin files are fetched once per origin, every version stored
    for o in &origins {
        assert!(
            o.hits("/.well-known/tdmrep.json") <= 1,
            "{}: tdmrep.json fetched {} times",
            o.name,
            o.hits("/.well-known/tdmrep.json")
        );
        assert!(o.hits("/ai.txt") <= 1);
    }
    let open = &origins[0];
    assert_eq!(open.hits("/.well-known/tdmrep.json"), 1);
    // never fetched: the page robots.txt disallows
    assert_eq!(
        origins
            .iter()
            .find(|o| o.name == "private")
            .unwrap()
            .hits("/private/x.html"),
        0
    );
    assert_eq!(
        origins
            .iter()
            .find(|o| o.name == "aipref")
            .unwrap()
            .hits("/never/test.html"),
        0
    );
    let versions = store
        .origin_file_versions(&format!("{}/.well-known/tdmrep.json", bases["tdm"]))
        .await
        .unwrap();
    assert_eq!(versions.len(), 1);
    assert!(versions[0].body_sha256.is_some());
    store.close().await;

    rejudge_and_check(&db, &origins, &bases, &eu.sha256).await;
}

/// E8 over HTTP: robots.txt answers 503 two days after a good copy was
/// fetched; the cached copy governs (signals.md §1.2, §8.5 E8); without one the
/// page is deferred.
#[tokio::test]
async fn x3_e8_a_cached_robots_copy_governs_while_the_origin_answers_503() {
    let dir = tempdir();
    let site = dir.path().join("site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("robots.txt"), "User-agent: *\nAllow: /\n").unwrap();
    std::fs::write(site.join("robots.txt.status"), "503\n").unwrap();
    std::fs::write(
        site.join("e8.html"),
        "<html><head><title>E8</title></head><body>x</body></html>",
    )
    .unwrap();
    let origin = crate::support::consent_site::serve_dir("e8", site).await;
    let http = client();
    let store = Store::open(&dir.path().join("c.db")).await.unwrap();
    let session = crawl_session(&store, &[origin.url("/")]).await;
    // The crawler's request path holds the good copy too (as a crawl that
    // fetched it earlier would), so the origin files may be fetched under it.
    let good = "User-agent: *\nAllow: /\n";
    let base = origin.url("");
    let base = base.trim_end_matches('/');
    store
        .robots_insert(&byline::store::crawl::RobotsVersion {
            run_id: session.run_id(),
            origin: base.to_string(),
            url: format!("{base}/robots.txt"),
            final_url: None,
            redirect_chain_json: "[]".into(),
            fetched_at: NOW,
            status: Some(200),
            error: None,
            outcome: "rules".into(),
            reason: None,
            body: Some(good.as_bytes().to_vec()),
            body_sha256: None,
            truncated: false,
            warnings_json: "[]".into(),
            crawl_delay_secs: None,
            expires_at: i64::MAX,
            cached_from: None,
        })
        .await
        .unwrap();
    let signals = Signals::new(
        store.clone(),
        session.conduct(),
        config::default_policy(),
        config::EU_OPT_OUT_TOML.as_bytes(),
        PRODUCT_TOKEN,
        NOW,
    )
    .await
    .unwrap();
    let resp = http.get(origin.url("/robots.txt")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    let outcome = || FetchOutcome::from_response(503, Vec::new(), None, false, None);
    let good_body = "User-agent: *\nAllow: /\n";
    let last_good = robots::RobotsRules::parse(good_body.as_bytes(), PRODUCT_TOKEN);
    let url = Url::parse(&origin.url("/e8.html")).unwrap();

    // with the copy fetched two days ago
    let access = robots::access(outcome(), Some(last_good));
    assert!(access.check(&url).allowed);
    let page_resp = http.get(url.as_str()).send().await.unwrap();
    let html = page_resp.text().await.unwrap();
    let page = PageSeen {
        url: &url,
        page_id: None,
        fetch: Some(FetchRef {
            url: url.to_string(),
            status: Some(200),
            fetched_at: NOW,
            ..FetchRef::default()
        }),
        headers: &[],
        html: Some(&html),
    };
    let seen = RobotsSeen {
        access: &access,
        status: Some(503),
        body: Some(good_body),
        cache_age_secs: Some(2 * 24 * 3600),
        fetch: None,
    };
    let v = signals.on_page(&page, &seen, NOW).await.unwrap();
    assert!(
        v.iter()
            .all(|x| x.decision == byline::policy::Decision::Allowed),
        "{v:#?}"
    );

    // without a cached copy: deferred, robots.unreachable
    let access = robots::access(outcome(), None);
    let seen = RobotsSeen {
        access: &access,
        status: Some(503),
        body: None,
        cache_age_secs: None,
        fetch: None,
    };
    let never = PageSeen {
        fetch: None,
        html: None,
        ..page
    };
    let v = signals.on_page(&never, &seen, NOW).await.unwrap();
    for x in v.iter() {
        assert_eq!(x.decision, byline::policy::Decision::Deferred);
        assert_eq!(x.reasons, vec!["robots.unreachable"]);
    }
    store.close().await;
}

/// The main integration test: the real `byline crawl` binary crawls the
/// eleven fixture origins on 127.0.0.1 under the default policy file; the
/// stored verdicts and reasons are then checked under both policies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn byline_crawl_over_the_consent_world_gives_the_spec_verdicts() {
    let dir = tempdir();
    let db = dir.path().join("corpus.db");
    let mut origins = Vec::new();
    for name in ORIGINS {
        origins.push(serve(name).await);
    }
    let bases: BTreeMap<String, String> = origins
        .iter()
        .map(|o| (o.name.clone(), o.base.clone()))
        .collect();
    let eu_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/eu-opt-out.toml");
    let mut cmd = tokio::process::Command::new(byline_bin());
    cmd.arg("--db")
        .arg(&db)
        .args(["crawl", "--delay-ms", "0", "--policy"])
        .arg(&eu_path);
    for o in &origins {
        cmd.arg(o.url("/"));
    }
    let out = cmd.output().await.unwrap();
    assert!(
        out.status.success(),
        "byline crawl failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for o in &origins {
        assert_eq!(
            o.hits("/.well-known/tdmrep.json"),
            1,
            "{}: tdmrep.json once per origin",
            o.name
        );
        assert_eq!(o.hits("/ai.txt"), 1, "{}: ai.txt once per origin", o.name);
    }
    let private = origins.iter().find(|o| o.name == "private").unwrap();
    assert_eq!(
        private.hits("/private/x.html"),
        0,
        "robots.txt disallows it"
    );
    let eu = Policy::from_bytes(&std::fs::read(&eu_path).unwrap(), "eu").unwrap();
    rejudge_and_check(&db, &origins, &bases, &eu.sha256).await;
}

/// Re-judges the stored corpus under the strict policy with
/// `byline policy apply` (nothing may be fetched), then asserts every page of
/// [`EXPECT`] under both policies and the evidence details.
async fn rejudge_and_check(
    db: &std::path::Path,
    origins: &[Origin],
    bases: &BTreeMap<String, String>,
    eu_sha: &str,
) {
    // re-judge the stored corpus under the strict policy without re-fetching
    let before: usize = origins.iter().map(|o| o.log.lock().unwrap().len()).sum();
    let strict_path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/strict-opt-in.toml");
    let out = Command::new(byline_bin())
        .arg("--db")
        .arg(db)
        .args(["policy", "apply"])
        .arg(&strict_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after: usize = origins.iter().map(|o| o.log.lock().unwrap().len()).sum();
    assert_eq!(before, after, "policy apply must not fetch anything");
    let strict = Policy::from_bytes(&std::fs::read(&strict_path).unwrap(), "s").unwrap();

    let store = Store::open(db).await.unwrap();
    let eu_table = verdict_table(&store, bases, eu_sha).await;
    let strict_table = verdict_table(&store, bases, &strict.sha256).await;
    let mut failures = Vec::new();
    for (origin, path, want_eu, want_strict, reasons) in EXPECT {
        let key = (origin.to_string(), path.to_string());
        let (got_eu, eu_reasons) = &eu_table[&key];
        let (got_strict, strict_reasons) = &strict_table[&key];
        if got_eu != want_eu || got_strict != want_strict {
            failures.push(format!(
                "{origin}{path}: expected eu {want_eu} strict {want_strict}, got eu {got_eu} strict {got_strict}\n  eu reasons: {eu_reasons:?}\n  strict reasons: {strict_reasons:?}"
            ));
        }
        for r in *reasons {
            let mut it = r.splitn(3, ':');
            let (pol, purpose, code) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
            let table = if pol == "eu" {
                eu_reasons
            } else {
                strict_reasons
            };
            let ok = table
                .iter()
                .any(|(p, codes)| p == purpose && codes.iter().any(|c| c == code));
            if !ok {
                failures.push(format!(
                    "{origin}{path}: {pol} {purpose} lacks reason {code}; got {table:?}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));

    // the stored evidence of a fetched page cites its fetch and covers every signal looked for
    let e5 = store
        .latest_evidence_set(&format!("{}/e5.html", bases["open"]))
        .await
        .unwrap()
        .unwrap();
    let signals_seen: Vec<&str> = e5.rows.iter().map(|r| r.evidence.signal.as_str()).collect();
    for s in [
        "robots.txt",
        "ai_intent",
        "tdmrep.json",
        "ai.txt",
        "llms.txt",
        "x-robots-tag",
        "tdmrep.header",
        "meta-robots",
        "licence",
    ] {
        assert!(
            signals_seen.contains(&s),
            "e5 lacks a {s} row: {signals_seen:?}"
        );
    }
    let xrt = e5
        .rows
        .iter()
        .find(|r| r.evidence.signal == "x-robots-tag")
        .unwrap();
    assert!(
        xrt.evidence
            .fetch_ref
            .as_ref()
            .is_some_and(|f| f.url.ends_with("/e5.html"))
    );
    // T6: the bad header value is recorded with a parse error
    let t6 = store
        .latest_evidence_set(&format!("{}/t6.html", bases["tdm"]))
        .await
        .unwrap()
        .unwrap();
    assert!(
        t6.rows
            .iter()
            .any(|r| r.evidence.signal == "tdmrep.header" && !r.evidence.parse_errors.is_empty())
    );
    // O2: a Markdown ai.txt is unrecognised
    let t7 = store
        .latest_evidence_set(&format!("{}/t7.html", bases["tdmdown"]))
        .await
        .unwrap()
        .unwrap();
    assert!(t7.rows.iter().any(|r| {
        r.evidence.signal == "ai.txt"
            && r.evidence
                .parse_errors
                .iter()
                .any(|e| e.contains("ai_txt.unrecognised"))
    }));
    store.close().await;
}
