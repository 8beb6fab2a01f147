//! Politeness: one request at a time per origin, Crawl-delay as a floor
//! between requests, Retry-After and back-off on 429/503 for pages, and a
//! global concurrency limit across origins. Timings are checked as lower
//! bounds (the server's own clock), never as speed.

use std::time::Duration;

use crate::support::crawl::{config, corpus, crawl, probe, strings};
use crate::support::crawl_more::{html_response, max_overlap, seen_path, sequence};
use crate::support::server::{Route, Seen, TestServer};

/// `/` links to `/p0`..`/p{n-1}`; each page answers after `delay`.
fn pages(s: &TestServer, n: usize, delay: Duration) {
    let links: String = (0..n)
        .map(|i| format!("<a href=\"/p{i}\">p{i}</a> "))
        .collect();
    s.route("/", Route::html(&links).delay(delay));
    for i in 0..n {
        s.route(
            &format!("/p{i}"),
            Route::html(&format!("<main><p>page {i}</p></main>")).delay(delay),
        );
    }
}

/// Page requests (`/` and `/p*`) in start order.
fn page_requests(s: &TestServer) -> Vec<Seen> {
    let mut v: Vec<Seen> = s
        .seen()
        .into_iter()
        .filter(|r| r.path == "/" || r.path.starts_with("/p"))
        .collect();
    v.sort_by_key(|r| r.start);
    v
}

#[tokio::test]
async fn two_requests_to_one_origin_never_overlap() {
    let s = TestServer::start().await;
    pages(&s, 8, Duration::from_millis(40));
    let c = corpus().await;
    let mut cfg = config(&[s.url("/")]);
    cfg.concurrency = 8;
    let (sum, _) = crawl(&c, cfg).await;
    assert_eq!(sum.fetched, 9, "{sum:?}");
    // Every request the crawl made to this origin (robots.txt, pages and
    // the consent files), by the server's count of requests in flight.
    assert_eq!(s.max_in_flight(), 1);
    let log = page_requests(&s);
    for w in log.windows(2) {
        assert!(
            w[1].start >= w[0].end.unwrap(),
            "{} started before {} ended",
            w[1].path,
            w[0].path
        );
    }
}

#[tokio::test]
async fn crawl_delay_is_a_floor_between_requests_and_is_capped() {
    // Origin a: Crawl-delay 0.3 s. Origin b: Crawl-delay 100 s, capped to 0.3 s.
    let a = TestServer::start().await;
    let b = TestServer::start().await;
    a.route(
        "/robots.txt",
        Route::text("User-agent: bylinebot\nCrawl-delay: 0.3\nAllow: /\n"),
    );
    b.route(
        "/robots.txt",
        Route::text("User-agent: *\nCrawl-delay: 100\n"),
    );
    pages(&a, 4, Duration::ZERO);
    pages(&b, 4, Duration::ZERO);
    let c = corpus().await;
    let mut cfg = config(&[a.url("/"), b.url("/")]);
    cfg.max_crawl_delay_ms = 300;
    let t = std::time::Instant::now();
    let (sum, _) = crawl(&c, cfg).await;
    assert_eq!(sum.fetched, 10, "{sum:?}");
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "the 100 s delay was not capped"
    );
    for s in [&a, &b] {
        let log = page_requests(s);
        assert_eq!(log.len(), 5);
        for w in log.windows(2) {
            // From the end of one request to the start of the next.
            let gap = w[1].start.duration_since(w[0].end.unwrap());
            assert!(
                gap >= Duration::from_millis(300),
                "{} -> {}: {gap:?}",
                w[0].path,
                w[1].path
            );
        }
    }
    let db = probe(&c.path).await;
    let mut delays = strings(
        &db,
        "SELECT CAST(crawl_delay_secs AS TEXT) FROM robots_versions ORDER BY crawl_delay_secs",
    )
    .await;
    delays.sort();
    assert_eq!(delays, ["0.3", "100.0"], "raw values recorded");
}

#[tokio::test]
async fn retry_after_and_back_off_on_429_and_503_hold_the_origin() {
    let s = TestServer::start().await;
    s.route(
        "/",
        Route::html("<a href=\"/busy\">busy</a> <a href=\"/down\">down</a> <a href=\"/p0\">p0</a> <a href=\"/never\">never</a>"),
    );
    s.route("/p0", Route::html("<p>plain</p>"));
    // 429 with Retry-After: 1, then fine.
    s.route(
        "/busy",
        sequence(|n| match n {
            0 => (429, vec![("retry-after".into(), "1".into())], vec![]),
            _ => html_response("<main><p>Busy no more.</p></main>"),
        }),
    );
    // 503 without Retry-After (back-off 200 ms, doubling), then fine.
    s.route(
        "/down",
        sequence(|n| match n {
            0 => (503, vec![], vec![]),
            _ => html_response("<main><p>Back up.</p></main>"),
        }),
    );
    // Always 429: given up after max_attempts.
    s.route("/never", Route::status(429).header("retry-after", "0"));
    let c = corpus().await;
    let mut cfg = config(&[s.url("/")]);
    cfg.max_attempts = 2;
    let (sum, _) = crawl(&c, cfg).await;
    assert_eq!(s.completed("/busy"), 2);
    assert_eq!(s.completed("/down"), 2);
    assert_eq!(s.completed("/never"), 2, "max_attempts 2");
    assert_eq!(sum.retries, 3, "{sum:?}");
    let all = s.seen();
    let busy = seen_path(&all, "/busy");
    assert!(
        busy[1].start.duration_since(busy[0].end.unwrap()) >= Duration::from_millis(990),
        "Retry-After ignored"
    );
    let down = seen_path(&all, "/down");
    assert!(down[1].start.duration_since(down[0].end.unwrap()) >= Duration::from_millis(195));
    // Nothing else of the origin starts within a second of the 429.
    let held = busy[0].end.unwrap();
    let early: Vec<&Seen> = all
        .iter()
        .filter(|r| r.start > held && r.start.duration_since(held) < Duration::from_millis(990))
        .collect();
    assert!(early.is_empty(), "requests during Retry-After: {early:?}");
    let db = probe(&c.path).await;
    assert_eq!(
        strings(
            &db,
            "SELECT coalesce(error_kind, 'ok') || ' ' || status FROM fetches WHERE requested_url LIKE '%/busy' ORDER BY id"
        )
        .await,
        ["rate_limited 429", "ok 200"]
    );
    assert_eq!(
        strings(
            &db,
            "SELECT state || ' ' || last_error FROM frontier WHERE url_norm LIKE '%/never'"
        )
        .await,
        ["failed rate_limited: status 429"]
    );
}

#[tokio::test]
async fn global_concurrency_limits_requests_across_origins() {
    let servers: Vec<TestServer> =
        futures_util::future::join_all((0..6).map(|_| TestServer::start())).await;
    for s in &servers {
        pages(s, 3, Duration::from_millis(60));
    }
    let seeds: Vec<String> = servers.iter().map(|s| s.url("/")).collect();
    let c = corpus().await;
    let mut cfg = config(&seeds);
    cfg.concurrency = 3;
    let (sum, _) = crawl(&c, cfg).await;
    assert_eq!(sum.fetched, 24, "{sum:?}");
    let logs: Vec<Vec<Seen>> = servers.iter().map(page_requests).collect();
    let overlap = max_overlap(&logs);
    assert!(overlap <= 3, "{overlap} page requests at once, limit 3");
    assert!(overlap >= 2, "origins were crawled one after another");
    assert!(servers.iter().all(|s| s.max_in_flight() == 1));
}
