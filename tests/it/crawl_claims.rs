//! The scheduler's own statements (issue #26): what the crawl loop asks
//! the store outside the writer to find and claim its next URLs. A real
//! `byline crawl` of loopback sites runs with sqlx's statement log on
//! (`RUST_LOG=sqlx::query=debug`, one line per executed statement); the
//! scheduling statements (the per-origin ready query and the claims) are
//! counted per stored page. On main before this change the loop ran the
//! ready query at every finished task and at every origin freed, then one
//! autocommit claim UPDATE per entry: over two statements per page.

use crate::support::crawl::{crawl_logged, probe, scalar_i64};
use crate::support::server::{Route, TestServer};
use crate::support::{output_text, tempdir};

/// `n` origins; each a home page linking every page of its site, and
/// pages linking onwards, so every origin has work queued all along.
async fn sites(n: usize, pages: usize) -> Vec<TestServer> {
    let mut out = Vec::new();
    for o in 0..n {
        let s = TestServer::start().await;
        let links: String = (1..=pages)
            .map(|i| format!("<a href=\"/p{i}\">page {i}</a> "))
            .collect();
        s.route(
            "/",
            Route::html(&format!(
                "<html><head><title>Home {o}</title></head><body><main><p>Site {o}.</p>{links}</main></body></html>"
            )),
        );
        for i in 1..=pages {
            s.route(
                &format!("/p{i}"),
                Route::html(&format!(
                    "<html lang=\"en\"><head><title>Page {i}</title></head><body><main><h1>Site {o} page {i}</h1>\
                     <p>Text of page {i} on site {o}, unique.</p><a href=\"/p{}\">next</a> <a href=\"/q{i}\">more</a></main></body></html>",
                    i % pages + 1
                )),
            );
            s.route(
                &format!("/q{i}"),
                Route::html(&format!(
                    "<html><head><title>More {i}</title></head><body><main><p>More text {i} of site {o}.</p></main></body></html>"
                )),
            );
        }
        out.push(s);
    }
    out
}

/// Scheduling statements among sqlx's logged ones: the per-origin ready
/// query (it names `frontier_ready_by_origin`) and the claims (they set
/// `state = 'in_flight'`); a statement doing both counts once.
fn scheduling_statements(stderr: &str) -> usize {
    stderr
        .lines()
        .filter(|l| l.contains("db.statement="))
        .filter(|l| l.contains("frontier_ready_by_origin") || l.contains("state = 'in_flight'"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_and_ready_queries_cost_little_more_than_one_statement_per_page() {
    let servers = sites(6, 20).await;
    let seeds: Vec<String> = servers.iter().map(|s| s.url("/")).collect();
    let dir = tempdir();
    let db = dir.path().join("c.db");
    let out = crawl_logged(
        &db,
        &["--delay-ms", "0", "--concurrency", "4"],
        &seeds,
        "sqlx::query=debug",
    )
    .await;
    assert!(out.status.success(), "{}", output_text(&out));
    let pool = probe(&db).await;
    let pages = scalar_i64(&pool, "SELECT count(*) FROM pages").await;
    let entries = scalar_i64(&pool, "SELECT count(*) FROM frontier").await;
    let done = scalar_i64(&pool, "SELECT count(*) FROM frontier WHERE state = 'done'").await;
    // Every page of every site, each once.
    assert_eq!(pages, 6 * 41, "{}", output_text(&out));
    assert_eq!(done, entries);
    let fetches = scalar_i64(&pool, "SELECT count(*) FROM fetches").await;
    assert_eq!(fetches, entries);
    let n = scheduling_statements(&String::from_utf8_lossy(&out.stderr));
    let per_page = n as f64 / pages as f64;
    eprintln!("{pages} pages: {n} scheduling statements ({per_page:.2} per page)");
    // Each claimed URL needs a claim; one statement now finds and claims
    // the next URLs of every free origin, and the loop asks again only
    // when something changed. Main before (ab16f83): 2.12 per page on
    // this world (521 statements); after: 0.53-0.55.
    assert!(
        per_page <= 1.0,
        "{per_page:.2} scheduling statements per page"
    );
    let check = crate::support::byline_on(&db, &["audit", "verify"]);
    assert!(check.status.success(), "{}", output_text(&check));
}

/// Scheduling statements per stored page of a crawl of `origins` sites.
async fn claims_per_page(origins: usize) -> f64 {
    let servers = sites(origins, 20).await;
    let seeds: Vec<String> = servers.iter().map(|s| s.url("/")).collect();
    let dir = tempdir();
    let db = dir.path().join("c.db");
    let out = crawl_logged(&db, &["--delay-ms", "0"], &seeds, "sqlx::query=debug").await;
    assert!(out.status.success(), "{}", output_text(&out));
    let pool = probe(&db).await;
    let pages = scalar_i64(&pool, "SELECT count(*) FROM pages").await;
    assert_eq!(
        pages,
        41 * i64::try_from(origins).unwrap(),
        "{}",
        output_text(&out)
    );
    let fetches = scalar_i64(&pool, "SELECT count(*) FROM fetches").await;
    assert_eq!(fetches, pages, "each URL fetched once");
    let n = scheduling_statements(&String::from_utf8_lossy(&out.stderr));
    let per_page = n as f64 / pages as f64;
    eprintln!(
        "{origins} origins, {pages} pages: {n} scheduling statements ({per_page:.2} per page)"
    );
    per_page
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_few_origins_one_claim_serves_several_pages_of_an_origin() {
    // One request at a time per origin: with two origins the loop claimed
    // one URL per page, a committed statement each. Main before (c918784):
    // 0.96 per page on this world; after: one claim per origin serves its
    // next pages.
    let per_page = claims_per_page(2).await;
    assert!(
        per_page <= 0.35,
        "{per_page:.2} scheduling statements per page"
    );
}

/// A probe of the corpus at `db` after a run, which left no URL claimed.
async fn no_claim_left(db: &std::path::Path) -> sqlx::SqlitePool {
    let pool = probe(db).await;
    let left = scalar_i64(
        &pool,
        "SELECT count(*) FROM frontier WHERE state = 'in_flight'",
    )
    .await;
    assert_eq!(left, 0, "claims left behind");
    pool
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_budget_gives_back_the_urls_claimed_and_not_started() {
    let servers = sites(1, 20).await;
    let seeds = [servers[0].url("/")];
    let c = crate::support::crawl::corpus().await;
    let mut cfg = crate::support::crawl::config(&seeds);
    cfg.max_pages = Some(5);
    let (sum, _) = crate::support::crawl::crawl(&c, cfg.clone()).await;
    assert_eq!(sum.fetched, 5, "{sum:?}");
    let pool = no_claim_left(&c.path).await;
    // Only the five requests made count as attempts: what was claimed
    // ahead and never started is queued again with no attempt counted.
    assert_eq!(
        scalar_i64(&pool, "SELECT sum(attempts) FROM frontier").await,
        5
    );
    assert_eq!(
        scalar_i64(
            &pool,
            "SELECT count(*) FROM frontier WHERE state = 'queued' AND attempts = 0"
        )
        .await,
        scalar_i64(
            &pool,
            "SELECT count(*) FROM frontier WHERE state = 'queued'"
        )
        .await
    );
    assert!(
        scalar_i64(
            &pool,
            "SELECT count(*) FROM frontier WHERE state = 'queued'"
        )
        .await
            >= 15
    );
    // The next run takes the rest, each URL once.
    cfg.max_pages = None;
    let (sum, _) = crate::support::crawl::crawl(&c, cfg).await;
    assert_eq!(sum.fetched, 41 - 5, "{sum:?}");
    assert_eq!(scalar_i64(&pool, "SELECT count(*) FROM fetches").await, 41);
    assert_eq!(servers[0].completed("/p7"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deferred_origin_gives_back_its_claims_with_the_wait() {
    let s = TestServer::start().await;
    let links: String = (1..=20)
        .map(|i| format!("<a href=\"/p{i}\">page {i}</a> "))
        .collect();
    s.route(
        "/",
        Route::html(&format!("<main><p>Home.</p>{links}</main>")),
    );
    // The first page asks the crawler to come back in an hour.
    s.route("/p1", Route::status(429).header("retry-after", "3600"));
    for i in 2..=20 {
        s.route(
            &format!("/p{i}"),
            Route::html(&format!("<main><p>Page {i}.</p></main>")),
        );
    }
    let c = crate::support::crawl::corpus().await;
    let cfg = crate::support::crawl::config(&[s.url("/")]);
    let before = unix_now();
    // The run ends instead of waiting an hour in the request path with the
    // URLs it had claimed for the origin.
    let (sum, _) = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        crate::support::crawl::crawl(&c, cfg),
    )
    .await
    .expect("the run ended (entries claimed ahead waited for the origin's Retry-After)");
    assert_eq!(sum.retries, 1, "{sum:?}");
    assert_eq!(s.completed("/p1"), 1);
    for i in 2..=20 {
        assert_eq!(
            s.completed(&format!("/p{i}")),
            0,
            "/p{i} fetched during Retry-After"
        );
    }
    let pool = no_claim_left(&c.path).await;
    // Every other page waits for the hour, never attempted.
    let waiting = scalar_i64(
        &pool,
        &format!(
            "SELECT count(*) FROM frontier WHERE state = 'queued' AND attempts = 0 \
             AND next_attempt_at >= {}",
            before + 3500
        ),
    )
    .await;
    assert_eq!(waiting, 19);
}

fn unix_now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}
