//! Hostile servers on loopback against the crawler (issue "Hardening"):
//! every request goes through the one guarded, polite request path; no
//! server's bytes stop a crawl; a URL that keeps killing runs is
//! quarantined; a run whose work only waits ends and says why.

use std::time::{Duration, Instant};

use sqlx::Row;

use crate::support::crawl::{config, corpus, crawl, probe, scalar_i64, strings};
use crate::support::crawl_more::{closed_port, fetch_row, frontier_state, writer};
use crate::support::server::{Route, TestServer};

/// A page that links to an RSL licence document at `rsl_href`.
fn rsl_page(rsl_href: &str) -> Route {
    Route::html(&format!(
        "<html><head><title>Licensed</title>\
         <link rel=\"license\" type=\"application/rsl+xml\" href=\"{rsl_href}\"></head>\
         <body><main><p>Licensed text of some length for the extractor.</p></main></body></html>"
    ))
}

/// `(url, status, error)` of every stored origin-file version.
async fn origin_files(db: &sqlx::SqlitePool) -> Vec<(String, Option<i64>, Option<String>)> {
    sqlx::query("SELECT url, status, error FROM origin_files ORDER BY id")
        .fetch_all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

#[tokio::test]
async fn licence_documents_pass_the_address_guard_and_their_hosts_robots_txt() {
    // An internal service on another loopback address (not a seed): the
    // crawler must never reach it, whatever form the address takes.
    let internal = TestServer::start_on("127.0.0.2").await;
    internal.fallback(Route::text("SECRET internal metadata"));
    // A third-party licence host on the seed's address but another port: an
    // origin like any other, whose robots.txt keeps us out of /private/.
    let licences = TestServer::start().await;
    licences.route(
        "/robots.txt",
        Route::text("User-agent: *\nDisallow: /private/\n"),
    );
    licences.fallback(Route::with(
        "application/rsl+xml",
        b"<rsl xmlns=\"https://rslstandard.org/rsl\"><content url=\"/\"><license><permits type=\"usage\">all</permits></license></content></rsl>".to_vec(),
    ));
    let site = TestServer::start().await;
    let port = internal.addr.port();
    let targets = [
        format!("http://127.0.0.2:{port}/dotted"),
        format!("http://[::ffff:127.0.0.2]:{port}/mapped"),
        format!("http://2130706434:{port}/decimal"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        licences.url("/private/licence.xml"),
        licences.url("/public/licence.xml"),
    ];
    let links: String = (0..targets.len())
        .map(|i| format!("<a href=\"/l{i}\">l{i}</a> "))
        .collect();
    site.route(
        "/",
        Route::html(&format!("<main><p>Index.</p>{links}</main>")),
    );
    for (i, t) in targets.iter().enumerate() {
        site.route(&format!("/l{i}"), rsl_page(t));
    }
    let c = corpus().await;
    let (sum, _) = crawl(&c, config(&[site.url("/")])).await;
    assert_eq!(sum.pages, 1 + targets.len() as u64, "{sum:?}");
    assert!(
        internal.seen().is_empty(),
        "the internal address was reached: {:?}",
        internal.seen()
    );
    assert_eq!(licences.completed("/private/licence.xml"), 0);
    assert_eq!(licences.completed("/public/licence.xml"), 1);
    assert_eq!(licences.completed("/robots.txt"), 1);
    let db = probe(&c.path).await;
    let files = origin_files(&db).await;
    for (t, path) in
        targets[..4]
            .iter()
            .zip(["/dotted", "/mapped", "/decimal", "/latest/meta-data/"])
    {
        let row = files
            .iter()
            .find(|(u, _, _)| u.ends_with(path))
            .unwrap_or_else(|| panic!("no origin file row for {t}: {files:?}"));
        let err = row.2.as_deref().unwrap_or_default();
        assert!(
            err.contains("ssrf_blocked") && row.1.is_none(),
            "{t}: {row:?}"
        );
    }
    let private = files
        .iter()
        .find(|(u, _, _)| u.ends_with("/private/licence.xml"))
        .expect("a row for the disallowed licence");
    assert!(
        private
            .2
            .as_deref()
            .is_some_and(|e| e.contains("robots_disallowed") && e.contains("Disallow: /private/")),
        "{private:?}"
    );
}

#[tokio::test]
async fn origin_files_obey_the_crawl_timeouts_not_a_fixed_twenty_seconds() {
    let s = TestServer::start().await;
    s.route("/", Route::html("<main><p>Home of a slow site.</p></main>"));
    // A tarpit: one byte every 300 ms for a minute.
    s.route(
        "/.well-known/tdmrep.json",
        crate::support::crawl_more::drip("application/json", b" ", Duration::from_millis(300), 200),
    );
    let c = corpus().await;
    let mut cfg = config(&[s.url("/")]);
    cfg.total_timeout_ms = 1_500;
    cfg.read_timeout_ms = 1_000;
    let t = Instant::now();
    crawl(&c, cfg).await;
    assert!(
        t.elapsed() < Duration::from_secs(12),
        "the crawl took {:?}",
        t.elapsed()
    );
    let db = probe(&c.path).await;
    let files = origin_files(&db).await;
    let tdm = files
        .iter()
        .find(|(u, _, _)| u.ends_with("tdmrep.json"))
        .expect("tdmrep row");
    assert!(
        tdm.2.as_deref().is_some_and(|e| e.contains("timeout")),
        "{tdm:?}"
    );
}

#[tokio::test]
async fn server_bytes_that_used_to_panic_leave_the_crawl_running() {
    let s = TestServer::start().await;
    s.route(
        "/",
        Route::html(
            "<main><a href=\"/kelvin\">k</a> \
             <a href=\"/__byline_fault__/panic\">f</a> <a href=\"/ok\">ok</a></main>",
        ),
    );
    // The Kelvin sign's lowercase is shorter in bytes than the sign.
    s.route(
        "/kelvin",
        Route::html(
            "<main><p>KK\u{212A}© 2025 KKK\u{212A} Some Author. Text of the page.</p></main>",
        ),
    );
    // An origin that asks us to come back in 584 billion years.
    let limited = TestServer::start().await;
    limited.route(
        "/",
        Route::status(429).header("retry-after", "18446744073709551615"),
    );
    s.route(
        "/__byline_fault__/panic",
        Route::html("<main><p>A page whose handling fails inside Byline.</p></main>"),
    );
    s.route("/ok", Route::html("<main><p>Still crawled.</p></main>"));
    // A second origin whose Crawl-delay is absurd.
    let slow = TestServer::start().await;
    slow.route(
        "/robots.txt",
        Route::text("User-agent: *\nCrawl-delay: 1e30\n"),
    );
    slow.route("/", Route::html("<main><a href=\"/2\">2</a></main>"));
    slow.route("/2", Route::html("<main><p>Two.</p></main>"));
    let c = corpus().await;
    let mut cfg = config(&[s.url("/"), slow.url("/"), limited.url("/")]);
    cfg.max_crawl_delay_ms = 300;
    cfg.max_wait_ms = 2_000;
    let (sum, _) = crawl(&c, cfg.clone()).await;
    assert_eq!(s.completed("/ok"), 1);
    assert_eq!(s.completed("/kelvin"), 1);
    assert_eq!(slow.completed("/2"), 1);
    let db = probe(&c.path).await;
    assert_eq!(
        strings(
            &db,
            &format!("SELECT text FROM pages WHERE url = '{}'", s.url("/kelvin"))
        )
        .await
        .len(),
        1
    );
    // The injected failure is recorded, with kind `internal`.
    let r = fetch_row(&db, &s.url("/__byline_fault__/panic")).await;
    assert_eq!(r.error_kind.as_deref(), Some("internal"), "{r:?}");
    assert!(
        r.error_detail
            .as_deref()
            .unwrap()
            .contains("fault injection")
    );
    let (state, why) = frontier_state(&db, &s.url("/__byline_fault__/panic")).await;
    assert_eq!(state, "failed");
    assert!(why.unwrap().starts_with("internal:"));
    assert_eq!(sum.internal_errors, 1, "{sum:?}");
    // The huge Retry-After holds the origin (capped at a day), it does not crash.
    let (state, why) = frontier_state(&db, &limited.url("/")).await;
    assert_eq!(state, "queued", "{why:?}");
    let w = sum
        .waiting
        .iter()
        .find(|w| w.origin == limited.base())
        .unwrap_or_else(|| panic!("{sum:?}"));
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!(
        (now + 23 * 3600..=now + 25 * 3600).contains(&w.next_attempt_at),
        "{w:?}"
    );

    // A second run refetches none of the failed pages.
    let before = s.completed_all();
    crawl(&c, cfg).await;
    assert_eq!(
        s.completed_all().get("/__byline_fault__/panic"),
        before.get("/__byline_fault__/panic")
    );
    assert_eq!(s.completed_all().get("/kelvin"), before.get("/kelvin"));
}

#[tokio::test]
async fn a_url_that_keeps_killing_runs_is_quarantined_not_requeued_first_forever() {
    let s = TestServer::start().await;
    s.route("/", Route::html("<main><a href=\"/poison\">p</a></main>"));
    s.route("/poison", Route::html("<main><p>Poison.</p></main>"));
    let c = corpus().await;
    let cfg = config(&[s.url("/")]);
    crawl(&c, cfg.clone()).await;
    assert_eq!(s.completed("/poison"), 1);
    // As if runs had died with it in flight as often as allowed.
    let w = writer(&c.path).await;
    sqlx::query("UPDATE frontier SET state = 'in_flight', attempts = ? WHERE url_norm = ?")
        .bind(cfg.max_attempts)
        .bind(s.url("/poison"))
        .execute(&w)
        .await
        .unwrap();
    w.close().await;
    let (sum, _) = crawl(&c, cfg).await;
    assert_eq!(sum.quarantined_on_start, 1, "{sum:?}");
    assert_eq!(
        s.completed("/poison"),
        1,
        "the poisoned URL was fetched again"
    );
    let db = probe(&c.path).await;
    let (state, why) = frontier_state(&db, &s.url("/poison")).await;
    assert_eq!(state, "failed");
    assert!(why.unwrap().starts_with("quarantined"), "{state}");
}

#[tokio::test]
async fn unreachable_origins_end_the_run_with_what_waits_and_why() {
    let ok = TestServer::start().await;
    ok.route("/", Route::html("<main><a href=\"/a\">a</a></main>"));
    ok.route("/a", Route::html("<main><p>A.</p></main>"));
    let down = TestServer::start().await;
    down.route("/robots.txt", Route::status(503));
    let dead = format!("http://127.0.0.1:{}/", closed_port());
    let c = corpus().await;
    let mut cfg = config(&[ok.url("/"), down.url("/"), dead.clone()]);
    // The shipped robots.txt retry interval; only --max-wait may end the run.
    cfg.robots_retry_ms = 300_000;
    cfg.max_wait_ms = 1_000;
    let t = Instant::now();
    let (sum, _) = tokio::time::timeout(Duration::from_secs(60), crawl(&c, cfg))
        .await
        .expect("the run ended by itself");
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    assert_eq!(ok.completed("/a"), 1);
    let down_w = sum
        .waiting
        .iter()
        .find(|w| w.origin == down.base())
        .unwrap_or_else(|| panic!("{sum:?}"));
    assert!(
        down_w
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("503")),
        "{down_w:?}"
    );
    let dead_w = sum
        .waiting
        .iter()
        .find(|w| dead.starts_with(&w.origin))
        .unwrap_or_else(|| panic!("{sum:?}"));
    assert!(
        dead_w
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("connect")),
        "{dead_w:?}"
    );
    assert!(dead_w.next_attempt_at > 0);
    // Nothing is left in flight: the next run continues the waiting work.
    let db = probe(&c.path).await;
    assert_eq!(
        scalar_i64(
            &db,
            "SELECT count(*) FROM frontier WHERE state = 'in_flight'"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn links_recorded_per_page_are_capped() {
    let s = TestServer::start().await;
    let links: String = (0..2500)
        .map(|i| format!("<a href=\"/x{i}\">{i}</a>"))
        .collect();
    s.route(
        "/",
        Route::html(&format!("<main><p>Many links.</p>{links}</main>")),
    );
    let c = corpus().await;
    let mut cfg = config(&[s.url("/")]);
    cfg.max_pages = Some(1);
    cfg.max_links_per_page = 700;
    crawl(&c, cfg).await;
    let db = probe(&c.path).await;
    assert_eq!(scalar_i64(&db, "SELECT count(*) FROM links").await, 700);
}

#[tokio::test]
async fn recheck_does_not_trust_a_stored_name_to_point_where_it_did() {
    // Crawled by name (a seed the user gave then); on recheck the name is a
    // stored origin, not a seed, and resolves to loopback now: refused.
    let s = TestServer::start().await;
    s.route("/", Route::html("<main><p>Named.</p></main>"));
    let named = format!("http://localhost:{}/", s.addr.port());
    let c = corpus().await;
    crawl(&c, config(&[named.clone()])).await;
    let seen_after_crawl = s.seen().len();
    assert!(seen_after_crawl >= 2, "{:?}", s.seen());
    let mut cfg = byline::crawl::CrawlConfig::new(Vec::new());
    cfg.min_delay_ms = 0;
    cfg.contact_url = Some("http://127.0.0.1/contact".into());
    let report = byline::crawl::recheck::recheck(&c.store, cfg, None)
        .await
        .expect("recheck runs");
    assert_eq!(
        s.seen().len(),
        seen_after_crawl,
        "recheck reached the loopback server through a stored name: {:?}",
        &s.seen()[seen_after_crawl..]
    );
    let db = probe(&c.path).await;
    let errs = strings(
        &db,
        &format!(
            "SELECT error FROM robots_versions WHERE run_id = {} ORDER BY id",
            report.run_id.unwrap()
        ),
    )
    .await;
    assert!(errs.iter().any(|e| e.contains("ssrf_blocked")), "{errs:?}");
}
