//! The embedded sample site, served on 127.0.0.1 and fetched with reqwest.

use std::collections::BTreeSet;
use std::path::Path;

use byline::crawl::robots::{PRODUCT_TOKEN, RobotsRules};
use byline::serve::sample_site::{PAGES, QUESTIONS_JSONL, page, serve_sample_site};
use scraper::{Html, Selector};

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("building a client")
}

fn site_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/site")
}

/// Every file under `tests/fixtures/site/` except the question list.
fn files_on_disk() -> BTreeSet<String> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, out);
            } else {
                let rel = path.strip_prefix(root).unwrap().to_str().unwrap();
                out.insert(format!("/{rel}"));
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(&site_dir(), &site_dir(), &mut out);
    out.remove("/questions.jsonl");
    out.remove("/README.md");
    out
}

/// Internal link targets of one HTML page: (href path, has rel=nofollow).
fn links(body: &str) -> Vec<(String, bool)> {
    let doc = Html::parse_document(body);
    let sel = Selector::parse("a[href]").unwrap();
    doc.select(&sel)
        .filter_map(|a| {
            let href = a.value().attr("href")?;
            let path = href.split(['#', '?']).next()?.to_string();
            let nofollow = a
                .value()
                .attr("rel")
                .is_some_and(|r| r.split_whitespace().any(|t| t == "nofollow"));
            path.starts_with('/').then_some((path, nofollow))
        })
        .collect()
}

#[tokio::test]
async fn sample_site_serves_every_embedded_page_over_http() {
    let (addr, task) = serve_sample_site("127.0.0.1:0".parse().unwrap())
        .await
        .expect("binding the sample site");
    assert!(addr.port() != 0);
    let client = client();
    let base = format!("http://{addr}");

    for p in PAGES {
        let resp = client
            .get(format!("{base}{}", p.path))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{}", p.path);
        let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
        assert_eq!(ct, p.content_type, "{}", p.path);
        let body = resp.text().await.unwrap();
        let on_disk = std::fs::read_to_string(site_dir().join(&p.path[1..])).unwrap();
        assert_eq!(body, on_disk, "{} is served as committed", p.path);
    }
    let home = client.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(home.status(), 200);
    assert_eq!(
        home.text().await.unwrap(),
        page("/index.html").unwrap().body
    );

    let missing = client
        .get(format!("{base}/no-such-page.html"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    task.abort();
}

#[tokio::test]
async fn sample_site_refuses_non_loopback_addresses() {
    let err = serve_sample_site("0.0.0.0:0".parse().unwrap())
        .await
        .expect_err("0.0.0.0 is not loopback");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("0.0.0.0"));
}

#[test]
fn every_file_of_the_site_is_embedded() {
    let embedded: BTreeSet<String> = PAGES.iter().map(|p| p.path.to_string()).collect();
    assert_eq!(embedded, files_on_disk());
    assert!(PAGES.len() >= 12);
}

#[test]
fn internal_links_resolve_and_form_one_graph() {
    let html: Vec<_> = PAGES.iter().filter(|p| p.path.ends_with(".html")).collect();
    let mut reachable = BTreeSet::from(["/index.html".to_string()]);
    let mut frontier = vec!["/index.html".to_string()];
    let mut nofollow_targets = BTreeSet::new();
    let mut followed_targets = BTreeSet::new();
    while let Some(path) = frontier.pop() {
        let p = page(&path).unwrap_or_else(|| panic!("link to missing page {path}"));
        for (target, nofollow) in links(p.body) {
            let target = if target == "/" {
                "/index.html".to_string()
            } else {
                target
            };
            assert!(page(&target).is_some(), "{path} links to missing {target}");
            if nofollow {
                nofollow_targets.insert(target.clone());
            } else {
                followed_targets.insert(target.clone());
            }
            if reachable.insert(target.clone()) {
                frontier.push(target);
            }
        }
    }
    let all: BTreeSet<String> = html.iter().map(|p| p.path.to_string()).collect();
    assert_eq!(
        reachable, all,
        "every page is linked from the home page graph"
    );
    // The guestbook is reachable only through a rel=nofollow link.
    assert!(nofollow_targets.contains("/guestbook.html"));
    assert!(!followed_targets.contains("/guestbook.html"));
}

#[test]
fn sample_site_robots_txt_keeps_crawlers_out_of_the_private_section() {
    let robots = page("/robots.txt").unwrap();
    let rules = RobotsRules::parse(robots.body.as_bytes(), PRODUCT_TOKEN);
    assert!(rules.warnings().is_empty(), "{:?}", rules.warnings());
    for p in PAGES {
        let url = url::Url::parse(&format!("http://127.0.0.1{}", p.path)).unwrap();
        let d = rules.check(&url);
        assert_eq!(d.allowed, !p.path.starts_with("/private/"), "{}", p.path);
    }
}

#[test]
fn sample_pages_carry_the_metadata_an_extractor_needs() {
    let sel = |s: &str| Selector::parse(s).unwrap();
    let mut langs = BTreeSet::new();
    let mut authors = 0;
    for p in PAGES.iter().filter(|p| p.path.ends_with(".html")) {
        let doc = Html::parse_document(p.body);
        let title = doc.select(&sel("title")).next().expect("title");
        assert!(
            !title.text().collect::<String>().trim().is_empty(),
            "{}",
            p.path
        );
        assert!(
            doc.select(&sel("nav")).next().is_some(),
            "{} has nav",
            p.path
        );
        assert!(
            doc.select(&sel("footer")).next().is_some(),
            "{} has footer",
            p.path
        );
        assert!(
            doc.select(&sel("link[rel=canonical]")).next().is_some(),
            "{}",
            p.path
        );
        langs.insert(
            doc.select(&sel("html"))
                .next()
                .and_then(|h| h.value().attr("lang"))
                .expect("lang")
                .to_string(),
        );
        if let Some(a) = doc.select(&sel("meta[name=author]")).next() {
            authors += 1;
            assert!(
                doc.select(&sel("meta[property='article:published_time']"))
                    .next()
                    .is_some(),
                "{} has an author but no date",
                p.path
            );
            let name = a.value().attr("content").unwrap();
            assert!(
                p.body
                    .contains(&format!("<span class=\"author\">{name}</span>"))
            );
        }
    }
    assert_eq!(langs, BTreeSet::from(["de".to_string(), "en".to_string()]));
    assert!(authors >= 6, "{authors} pages with bylines");
}

#[test]
fn every_benchmark_answer_is_stated_on_its_page() {
    let mut n = 0;
    for line in QUESTIONS_JSONL.lines() {
        let q: serde_json::Value = serde_json::from_str(line).expect("question line is JSON");
        let (answer, path) = (q["answer"].as_str().unwrap(), q["page"].as_str().unwrap());
        let p = page(path).unwrap_or_else(|| panic!("{}: no page {path}", q["id"]));
        let text: String = Html::parse_document(p.body)
            .select(&Selector::parse("main").unwrap())
            .flat_map(|m| m.text())
            .collect();
        assert!(
            text.contains(answer),
            "{}: {answer:?} not in {path}",
            q["id"]
        );
        assert!(
            !path.starts_with("/private/"),
            "answers come from crawlable pages"
        );
        n += 1;
    }
    assert!(n >= 30, "{n} questions");
}
