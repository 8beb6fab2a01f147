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
