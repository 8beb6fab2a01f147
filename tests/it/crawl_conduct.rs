//! Conduct on every hop (issue "Conduct on every hop"): a redirect is a
//! request to the hop's origin and obeys that origin's robots.txt, and every
//! request to an origin (site files included) takes its politeness slot.

use std::time::Duration;

use crate::support::crawl::{config, corpus, crawl, probe, strings};
use crate::support::crawl_more::{closed_port, fetch_row, frontier_state};
use crate::support::server::{Route, TestServer};

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
    let c_dis = TestServer::start().await;
    c_dis.route(
        "/robots.txt",
        Route::text("User-agent: *\nDisallow: /no/\n"),
    );
    c_dis.route(
        "/no/page",
        Route::html("<main><p>Must not be fetched.</p></main>"),
    );
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
