//! Conduct on every hop (issue "Conduct on every hop"): a redirect is a
//! request to the hop's origin and obeys that origin's robots.txt, and every
//! request to an origin (site files included) takes its politeness slot.

use std::time::Duration;

use crate::support::crawl::{config, corpus, crawl, probe, strings};
use crate::support::crawl_more::{closed_port, fetch_row, frontier_state};
use crate::support::server::{Route, TestServer};
use crate::support::why_events::assert_why_lists_the_logs_events;

/// A site whose robots.txt disallows `/no/`, with a page there that must
/// never be fetched.
async fn disallowing_no() -> TestServer {
    let s = TestServer::start().await;
    s.route(
        "/robots.txt",
        Route::text("User-agent: *\nDisallow: /no/\n"),
    );
    s.route(
        "/no/page",
        Route::html("<main><p>Must not be fetched.</p></main>"),
    );
    s
}

#[tokio::test]
async fn a_redirect_hop_obeys_the_robots_txt_of_its_origin() {
    // B: robots.txt answers 503 (complete disallow, RFC 9309 2.3.1.4).
    let b_down = TestServer::start().await;
    b_down.route("/robots.txt", Route::status(503));
    b_down.route(
        "/page",
        Route::html("<main><p>Must not be fetched.</p></main>"),
    );
    // C: robots.txt disallows the target path.
    let c_dis = disallowing_no().await;
    c_dis.route(
        "/yes/page",
        Route::html("<main><p>Allowed after a redirect.</p></main>"),
    );
    // D: nobody listens.
    let dead = format!("http://127.0.0.1:{}/page", closed_port());
    let a = TestServer::start().await;
    a.route(
        "/",
        Route::html(
            "<main><a href=\"/to-down\">1</a> <a href=\"/to-dis\">2</a> \
             <a href=\"/to-dead\">3</a> <a href=\"/to-ok\">4</a></main>",
        ),
    );
    a.route("/to-down", Route::redirect(302, &b_down.url("/page")));
    a.route("/to-dis", Route::redirect(301, &c_dis.url("/no/page")));
    a.route("/to-dead", Route::redirect(302, &dead));
    a.route("/to-ok", Route::redirect(302, &c_dis.url("/yes/page")));
    let c = corpus().await;
    let (sum, _) = crawl(&c, config(&[a.url("/")])).await;
    assert_eq!(b_down.completed("/robots.txt"), 1);
    assert_eq!(
        b_down.completed("/page"),
        0,
        "fetched under a 503 robots.txt"
    );
    assert_eq!(c_dis.completed("/no/page"), 0, "fetched a disallowed hop");
    assert_eq!(
        c_dis.completed("/yes/page"),
        1,
        "an allowed hop still works"
    );
    let db = probe(&c.path).await;
    for (from, needle) in [
        ("/to-down", "status 503"),
        ("/to-dis", "Disallow: /no/"),
        ("/to-dead", "connect"),
    ] {
        let r = fetch_row(&db, &a.url(from)).await;
        assert_eq!(
            r.error_kind.as_deref(),
            Some("robots_disallowed"),
            "{from}: {r:?}"
        );
        let d = r.error_detail.unwrap_or_default();
        assert!(
            d.contains("redirect hop 1") && d.contains(needle),
            "{from}: {d}"
        );
        let (state, why) = frontier_state(&db, &a.url(from)).await;
        assert_eq!(
            (state.as_str(), why.as_deref()),
            ("skipped", Some("robots.redirect_disallowed")),
            "{from}"
        );
    }
    // The hop's decision is stored next to the entry's, with its rule.
    let rules = strings(
        &db,
        &format!(
            "SELECT rule FROM robots_decisions WHERE url = '{}' AND reason = 'robots.redirect_disallowed'",
            c_dis.url("/no/page")
        ),
    )
    .await;
    assert_eq!(rules, ["Disallow: /no/"]);
    assert!(sum.skipped_by_robots >= 3, "{sum:?}");
    // `audit why` names the hop and the line that stopped it.
    let out = std::process::Command::new(crate::support::byline_bin())
        .arg("--db")
        .arg(&c.path)
        .args(["audit", "why", &a.url("/to-dis")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("robots.redirect_disallowed")
            && text.contains(&c_dis.url("/no/page"))
            && text.contains("Disallow: /no/"),
        "{text}"
    );
}

/// `audit why` of a URL that was also a redirect hop robots.txt blocked
/// lists both decisions' events: its own, and the hop's, decided under the
/// row of the URL that redirected. For every URL of the crawl it lists what
/// the log holds about it, found through the URL's rows, not a log scan.
#[tokio::test]
async fn audit_why_lists_a_urls_own_and_its_hop_decisions_as_the_log_does() {
    let c_dis = disallowing_no().await;
    c_dis.route(
        "/",
        Route::html("<main><p>C.</p><a href=\"/no/page\">no</a></main>"),
    );
    let a = TestServer::start().await;
    a.route(
        "/",
        Route::html("<main><a href=\"/to-dis\">1</a> <a href=\"/ok\">2</a></main>"),
    );
    a.route("/to-dis", Route::redirect(301, &c_dis.url("/no/page")));
    a.route("/ok", Route::html("<main><p>A page.</p></main>"));
    let c = corpus().await;
    crawl(&c, config(&[a.url("/"), c_dis.url("/")])).await;
    assert_eq!(c_dis.completed("/no/page"), 0);
    let compared = assert_why_lists_the_logs_events(&c.store).await;
    let kinds = |u: &str| compared.get(u).cloned().unwrap_or_default();
    let count = |u: &str, k: &str| kinds(u).iter().filter(|x| *x == k).count();
    let hop = c_dis.url("/no/page");
    assert_eq!(count(&hop, "robots.decision"), 2, "{compared:#?}");
    assert_eq!(count(&hop, "fetch"), 0, "{compared:#?}");
    assert_eq!(count(&hop, "verdict"), 1, "{compared:#?}");
    for page in [a.url("/ok"), c_dis.url("/")] {
        for k in ["robots.decision", "fetch", "verdict"] {
            assert_eq!(count(&page, k), 1, "{page} {k}: {compared:#?}");
        }
    }
    assert_eq!(count(&a.url("/to-dis"), "robots.decision"), 1);
    assert_eq!(count(&a.url("/to-dis"), "fetch"), 1);
}

#[tokio::test]
async fn every_request_to_an_origin_waits_for_its_crawl_delay() {
    let s = TestServer::start().await;
    s.route(
        "/robots.txt",
        Route::text("User-agent: *\nCrawl-delay: 1\n"),
    );
    s.route(
        "/",
        Route::html("<main><a href=\"/a\">a</a> <a href=\"/b\">b</a></main>"),
    );
    s.route("/a", Route::html("<main><p>A.</p></main>"));
    s.route("/b", Route::html("<main><p>B.</p></main>"));
    s.route("/ai.txt", Route::text("User-Agent: *\nAllow: *\n"));
    let c = corpus().await;
    crawl(&c, config(&[s.url("/")])).await;
    let mut seen = s.seen();
    seen.sort_by_key(|r| r.start);
    let paths: Vec<&str> = seen.iter().map(|r| r.path.as_str()).collect();
    for p in [
        "/robots.txt",
        "/",
        "/a",
        "/b",
        "/.well-known/tdmrep.json",
        "/ai.txt",
        "/llms.txt",
    ] {
        assert!(paths.contains(&p), "{p} not requested: {paths:?}");
    }
    for w in seen.windows(2) {
        let gap = w[1].start.duration_since(w[0].start);
        assert!(
            gap >= Duration::from_millis(900),
            "{} then {} only {gap:?} apart (all: {paths:?})",
            w[0].path,
            w[1].path
        );
    }
    assert_eq!(s.max_in_flight(), 1);
}

#[tokio::test]
async fn a_calendar_and_an_endless_listing_spend_a_bounded_budget() {
    let s = TestServer::start().await;
    let normal: String = ["intro", "install", "usage", "faq", "about"]
        .iter()
        .map(|p| format!("<a href=\"/docs/{p}.html\">{p}</a> "))
        .collect();
    s.route(
        "/",
        Route::html(&format!(
            "<main>{normal}<a href=\"/cal/2026/12\">calendar</a> \
             <a href=\"/list?page=1&sort=asc\">list</a> \
             <a href=\"/x?a=1&b=2&c=3&d=4&e=5&f=6&g=7&h=8&i=9\">q</a> \
             <a rel=\"nofollow\" href=\"/private-ish\">nf</a></main>"
        )),
    );
    for p in ["intro", "install", "usage", "faq", "about"] {
        s.route(
            &format!("/docs/{p}.html"),
            Route::html(&format!("<main><p>Docs: {p}.</p></main>")),
        );
    }
    // Every month links to the next and the previous; every listing page to
    // the next page and another sort order: endless.
    s.fallback(Route {
        status: 200,
        headers: vec![("content-type".into(), "text/html".into())],
        body: crate::support::server::Payload::Dynamic(std::sync::Arc::new(|path: &str| {
            let body = if let Some(rest) = path.strip_prefix("/cal/") {
                let mut it = rest.split('/');
                let y: i64 = it.next().and_then(|v| v.parse().ok()).unwrap_or(2026);
                let m: i64 = it.next().and_then(|v| v.parse().ok()).unwrap_or(1);
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                let (py, pm) = if m == 1 { (y - 1, 12) } else { (y, m - 1) };
                format!(
                    "<main><p>{y}-{m}</p><a href=\"/cal/{ny}/{nm}\">next</a> <a href=\"/cal/{py}/{pm}\">prev</a></main>"
                )
            } else if path.starts_with("/list") {
                let n: i64 = path
                    .split("page=")
                    .nth(1)
                    .and_then(|v| v.split('&').next())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(1);
                format!(
                    "<main><p>Listing page {n}</p><a href=\"/list?page={}&sort=asc\">next</a> \
                     <a href=\"/list?page={n}&sort=desc\">desc</a></main>",
                    n + 1
                )
            } else {
                "<main><p>Other.</p></main>".to_string()
            };
            (200, vec![("content-type".into(), "text/html".into())], body.into_bytes())
        })),
        delay: Duration::ZERO,
    });
    let c = corpus().await;
    let mut cfg = config(&[s.url("/")]);
    cfg.max_depth = 10_000;
    cfg.max_urls_per_shape = 40;
    let (sum, _) = tokio::time::timeout(Duration::from_secs(120), crawl(&c, cfg))
        .await
        .expect("the crawl ends");
    let seen = s.completed_all();
    let cal = seen.keys().filter(|p| p.starts_with("/cal/")).count();
    let list = seen.keys().filter(|p| p.starts_with("/list")).count();
    assert!((1..=40).contains(&cal), "calendar pages: {cal}");
    assert!((1..=40).contains(&list), "listing pages: {list}");
    for p in ["intro", "install", "usage", "faq", "about"] {
        assert_eq!(s.completed(&format!("/docs/{p}.html")), 1, "{p}");
    }
    assert_eq!(s.completed("/private-ish"), 0, "rel=nofollow followed");
    assert!(
        seen.keys().all(|p| !p.starts_with("/x?")),
        "query explosion followed"
    );
    let db = probe(&c.path).await;
    let reasons = strings(
        &db,
        "SELECT DISTINCT skip_reason FROM links WHERE skip_reason IS NOT NULL ORDER BY 1",
    )
    .await;
    for r in ["budget.url_shape", "nofollow", "trap.query_params"] {
        assert!(reasons.iter().any(|x| x == r), "{r} not in {reasons:?}");
    }
    assert!(sum.pages <= 1 + 5 + 40 + 40, "{sum:?}");
}
