//! Group commit (issue #26): committing finished URLs in batches changes
//! when rows commit, never which rows. The same sites crawled once with one
//! URL per transaction and once with batches give the same frontier, pages,
//! links (including crawl-budget skips decided from in-memory counts), the
//! same evidence and verdicts, the same audit event kinds, and both audit
//! chains verify.

use std::time::Duration;

use byline::store::writer::GroupCommit;

use crate::support::crawl::{config, corpus, crawl, probe, strings};
use crate::support::server::{Route, TestServer, add_chain_site};

/// Three origins; each has a chain of pages and a hub linking to more URLs
/// than the per-origin budget allows, some twice and some in two shapes.
async fn sites() -> Vec<TestServer> {
    let mut out = Vec::new();
    for o in 0..3 {
        let s = TestServer::start().await;
        add_chain_site(&s, 6);
        let hub: String = (0..30)
            .map(|i| format!("<a href=\"/h/{i}\">h{i}</a> <a href=\"/h/{i}\">again</a> <a href=\"/x{i}/y\">x{i}</a> "))
            .collect();
        s.route(
            "/p1",
            Route::html(&format!(
                "<html><head><title>Hub {o}</title></head><body><main><p>All rights reserved. \
                 Text and data mining is prohibited.</p>{hub}<a href=\"/p2\">next</a></main></body></html>"
            )),
        );
        out.push(s);
    }
    out
}

async fn snapshot(path: &std::path::Path) -> Vec<Vec<String>> {
    let db = probe(path).await;
    let mut out = Vec::new();
    for sql in [
        "SELECT url || ' ' || state || ' ' || coalesce(skip_reason, '-') FROM frontier ORDER BY url",
        "SELECT url || ' ' || coalesce(title, '') || ' ' || text_sha256 FROM pages ORDER BY url",
        "SELECT p.url || ' #' || l.ordinal || ' ' || l.target_url || ' ' || l.followed || ' ' || coalesce(l.skip_reason, '-')
         FROM links l JOIN pages p ON p.id = l.page_id ORDER BY p.url, l.ordinal",
        "SELECT s.page_url || ' ' || e.ordinal || ' ' || e.signal || ' ' || e.location || ' ' || e.raw || ' ' || e.parsed
         FROM evidence e JOIN evidence_sets s ON s.id = e.set_id ORDER BY s.page_url, e.ordinal",
        "SELECT page_url || ' ' || purpose || ' ' || decision || ' ' || conditions || ' ' || reasons
         FROM verdicts ORDER BY page_url, purpose",
        "SELECT kind || ' ' || count(*) FROM audit_events WHERE kind NOT LIKE 'crawl.%' GROUP BY kind ORDER BY kind",
    ] {
        out.push(strings(&db, sql).await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_commits_record_exactly_what_one_transaction_per_url_records() {
    let servers = sites().await;
    let seeds: Vec<String> = servers.iter().map(|s| s.url("/")).collect();
    let mut snaps = Vec::new();
    // The third run is `byline crawl`'s store: one connection, on which
    // the writer keeps its statements and the budget's counts from batch
    // to batch (`store::direct`); the first two reopen them per batch.
    for (gc, crawl_store) in [
        (
            GroupCommit {
                max_pages: 1,
                max_wait: Duration::ZERO,
            },
            false,
        ),
        (
            GroupCommit {
                max_pages: 64,
                max_wait: Duration::from_millis(50),
            },
            false,
        ),
        (
            GroupCommit {
                max_pages: 4,
                max_wait: Duration::from_millis(5),
            },
            true,
        ),
    ] {
        let mut c = corpus().await;
        if crawl_store {
            c.store = byline::store::Store::open_for_crawl(&c.path)
                .await
                .expect("one-connection store");
        }
        let mut cfg = config(&seeds);
        cfg.concurrency = 3;
        cfg.max_urls_per_origin = 40;
        cfg.max_urls_per_shape = 20;
        cfg.group_commit = gc;
        let (sum, _) = crawl(&c, cfg).await;
        assert!(sum.pages >= 3 * 7, "{sum:?}");
        let report = byline::audit::verify::verify(&c.store, &[]).await.unwrap();
        assert!(report.ok(), "{:?}", report.problems);
        snaps.push(snapshot(&c.path).await);
    }
    let (one, batched, kept) = (&snaps[0], &snaps[1], &snaps[2]);
    // The budgets were reached: some links were skipped for them.
    assert!(
        one[2]
            .iter()
            .any(|l| l.ends_with("trap.origin_cap") || l.contains("budget")),
        "{:?}",
        one[2]
    );
    for ((a, b), k) in one.iter().zip(batched).zip(kept) {
        assert_eq!(a, b);
        assert_eq!(a, k);
    }
}
