//! Many crawl workers on one PostgreSQL corpus (issue #20): four `byline
//! crawl --db postgres://…` processes share one frontier, one politeness
//! slot per origin and one audit log. The loopback servers' own logs (start
//! and end of every request) are the judge: no origin ever has two requests
//! at once or a gap shorter than its delay, and every URL is fetched once.
//! A worker killed with SIGKILL loses its claims to the others only when
//! their lease expires.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use sqlx::Connection;
use sqlx::postgres::PgConnection;
use tokio::process::{Child, Command};

use crate::support::server::{Route, Seen, TestServer};
use crate::support::{byline_bin, pg, pg_chain};

/// One origin of the world: `/` links to `/p1` … `/p{pages}`, each page
/// answering after `page_ms`; robots.txt with an optional Crawl-delay.
async fn origin(crawl_delay: Option<u32>, pages: usize, page_ms: u64) -> TestServer {
    let s = TestServer::start().await;
    let robots = match crawl_delay {
        Some(d) => format!("User-agent: *\nCrawl-delay: {d}\nAllow: /\n"),
        None => "User-agent: *\nAllow: /\n".to_string(),
    };
    s.route("/robots.txt", Route::text(&robots));
    let links: String = (1..=pages)
        .map(|i| format!("<a href=\"/p{i}\">page {i}</a> "))
        .collect();
    s.route(
        "/",
        Route::html(&format!(
            "<html><head><title>home {}</title></head><body><p>The home page of a test origin with words.</p>{links}</body></html>",
            s.addr
        )),
    );
    for i in 1..=pages {
        s.route(
            &format!("/p{i}"),
            Route::html(&format!(
                "<html><head><title>page {i} of {}</title></head><body><p>Page {i} says something distinct number {i} at {}.</p></body></html>",
                s.addr, s.addr
            ))
            .delay(Duration::from_millis(page_ms)),
        );
    }
    s
}

fn worker(url: &str, id: &str, seeds: &[String], extra: &[&str]) -> Child {
    let mut c = Command::new(byline_bin());
    c.arg("--db")
        .arg(url)
        .arg("crawl")
        .args(["--worker-id", id])
        .args(extra)
        .args(seeds)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    c.spawn().expect("starting a byline crawl worker")
}

async fn finish(c: Child, name: &str) {
    let out = tokio::time::timeout(Duration::from_secs(120), c.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("worker {name} did not finish"))
        .expect("worker output");
    assert!(
        out.status.success(),
        "worker {name} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Checks one origin's log: never two requests at once, and every request
/// starts at least `gap` after the previous one ended.
fn check_polite(name: &str, seen: &[Seen], gap: Duration) {
    let mut reqs: Vec<&Seen> = seen.iter().collect();
    reqs.sort_by_key(|s| s.start);
    for w in reqs.windows(2) {
        let end = w[0]
            .end
            .unwrap_or_else(|| panic!("{name}: {} never ended", w[0].path));
        assert!(
            w[1].start >= end,
            "{name}: {} started while {} was in flight",
            w[1].path,
            w[0].path
        );
        let between = w[1].start - end;
        assert!(
            between >= gap,
            "{name}: {} started {between:?} after {} ended (delay {gap:?})",
            w[1].path,
            w[0].path
        );
    }
}

/// Each page path of `s` requested exactly once.
fn check_once(name: &str, s: &TestServer, pages: usize) {
    let mut per: HashMap<String, usize> = HashMap::new();
    for r in s.seen() {
        *per.entry(r.path).or_default() += 1;
    }
    for p in std::iter::once("/".to_string()).chain((1..=pages).map(|i| format!("/p{i}"))) {
        assert_eq!(per.get(&p).copied(), Some(1), "{name}{p}: {per:?}");
    }
    assert_eq!(
        per.get("/robots.txt").copied(),
        Some(1),
        "{name}: robots.txt once: {per:?}"
    );
}

/// `byline audit verify --json` on the PostgreSQL corpus at `url`: the
/// same checks as on SQLite (chain, every covered row, completeness).
fn audit_verify_ok(url: &str) {
    let o = std::process::Command::new(byline_bin())
        .args(["--db", url, "audit", "verify", "--json"])
        .output()
        .expect("running byline audit verify");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "audit verify printed no JSON ({e}): status {:?}\n{}\n{}",
            o.status.code(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    });
    assert_eq!(o.status.code(), Some(0), "{v}");
    assert_eq!(v["ok"], true, "{v}");
}

async fn frontier_states(url: &str) -> Vec<(String, String, i64)> {
    let mut c = PgConnection::connect(url).await.unwrap();
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT f.url, f.state, (SELECT count(*) FROM fetches x WHERE x.frontier_id = f.id) FROM frontier f ORDER BY f.url",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    c.close().await.ok();
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_workers_share_one_frontier_politely() {
    let url = pg::fresh_db().await;
    // Crawl-delays of 1 s on two origins; the third has none, so
    // --delay-ms (300) spaces its requests.
    let a = origin(Some(1), 4, 50).await;
    let b = origin(Some(1), 4, 50).await;
    let c = origin(None, 6, 50).await;
    let seeds = vec![a.url("/"), b.url("/"), c.url("/")];
    let started = Instant::now();
    let workers: Vec<Child> = (0..4)
        // One origin at a time per worker, so the three origins need
        // several workers.
        .map(|i| {
            worker(
                &url,
                &format!("w{i}"),
                &seeds,
                &["--delay-ms", "300", "--concurrency", "1"],
            )
        })
        .collect();
    for (i, w) in workers.into_iter().enumerate() {
        finish(w, &format!("w{i}")).await;
    }
    let took = started.elapsed();
    check_polite("a", &a.seen(), Duration::from_secs(1));
    check_polite("b", &b.seen(), Duration::from_secs(1));
    check_polite("c", &c.seen(), Duration::from_millis(300));
    check_once("a", &a, 4);
    check_once("b", &b, 4);
    check_once("c", &c, 6);
    let states = frontier_states(&url).await;
    assert_eq!(states.len(), 1 + 4 + 1 + 4 + 1 + 6, "{states:?}");
    for (u, state, fetches) in &states {
        assert_eq!(state, "done", "{u}");
        assert_eq!(*fetches, 1, "{u} fetched {fetches} times");
    }
    // The work was shared: more than one worker fetched pages.
    let mut db = PgConnection::connect(&url).await.unwrap();
    let runs: i64 = sqlx::query_scalar("SELECT count(DISTINCT run_id) FROM fetches")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert!(runs >= 2, "only {runs} worker(s) fetched");
    db.close().await.ok();
    // One chain, every worker's run in it.
    let chain = pg_chain::walk(&url).await;
    let starts = chain.iter().filter(|(k, _)| k == "crawl.start").count();
    let finishes = chain.iter().filter(|(k, _)| k == "crawl.finish").count();
    assert_eq!((starts, finishes), (4, 4), "{chain:?}");
    let fetch_events = chain.iter().filter(|(k, _)| k == "fetch").count();
    assert_eq!(fetch_events, states.len());
    audit_verify_ok(&url);
    eprintln!(
        "4 workers ({runs} fetched), {} URLs, {took:?}",
        states.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_workers_claims_go_to_the_others_after_its_lease() {
    let url = pg::fresh_db().await;
    // Slow pages (1.5 s each), so a worker is caught mid-request; two
    // origins so that several workers have claims.
    let a = origin(None, 5, 1500).await;
    let b = origin(None, 5, 1500).await;
    let seeds = vec![a.url("/"), b.url("/")];
    let lease = Duration::from_secs(8);
    let extra = [
        "--concurrency",
        "4",
        "--delay-ms",
        "100",
        "--timeout",
        "4",
        "--max-crawl-delay",
        "1",
        "--lease-secs",
        "8",
    ];
    let mut victim = worker(&url, "victim", &seeds, &extra);
    // Wait until the victim holds a claim on a page (not the home page),
    // with its request under way.
    let mut db = PgConnection::connect(&url).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let (claimed, remaining_ms): (Vec<String>, i64) = loop {
        assert!(Instant::now() < deadline, "the victim never claimed a page");
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT url, lease_until - (extract(epoch from clock_timestamp()) * 1000)::bigint
             FROM frontier WHERE state = 'in_flight' AND lease_owner = 'victim' AND url LIKE '%/p%'",
        )
        .fetch_all(&mut db)
        .await
        // The victim may not have created the schema yet.
        .unwrap_or_default();
        if !rows.is_empty() {
            // Let the request reach the server.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let min_left = rows.iter().map(|r| r.1).min().unwrap() - 300;
            break (rows.into_iter().map(|r| r.0).collect(), min_left);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    victim.start_kill().expect("SIGKILL");
    let killed_at = Instant::now();
    victim.wait().await.unwrap();
    // Survivors start after the kill: they must not take the victim's
    // live claims at their start.
    let workers: Vec<Child> = (0..3)
        .map(|i| worker(&url, &format!("w{i}"), &seeds, &extra))
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let early: Vec<(String, String)> =
        sqlx::query_as("SELECT url, state FROM frontier WHERE url = ANY($1)")
            .bind(&claimed)
            .fetch_all(&mut db)
            .await
            .unwrap();
    for (u, state) in &early {
        assert_eq!(
            state, "in_flight",
            "{u} was taken before the victim's lease expired"
        );
    }
    for (i, w) in workers.into_iter().enumerate() {
        finish(w, &format!("w{i}")).await;
    }
    let states = frontier_states(&url).await;
    assert_eq!(states.len(), 12, "{states:?}");
    for (u, state, _) in &states {
        assert_eq!(state, "done", "{u}");
    }
    // Each of the victim's claimed URLs was requested again, by a
    // survivor, only once the lease had expired.
    let lease_end = killed_at + Duration::from_millis(u64::try_from(remaining_ms.max(0)).unwrap());
    for u in &claimed {
        let path = u.rsplit_once('/').map(|(_, p)| format!("/{p}")).unwrap();
        let server = if u.starts_with(&a.base()) { &a } else { &b };
        let mut reqs: Vec<Seen> = server
            .seen()
            .into_iter()
            .filter(|s| s.path == path)
            .collect();
        reqs.sort_by_key(|s| s.start);
        assert_eq!(
            reqs.len(),
            2,
            "{u}: the victim's request and the survivor's"
        );
        assert!(
            reqs[1].start + Duration::from_millis(50) >= lease_end,
            "{u} requested again {:?} before the lease ended",
            lease_end.saturating_duration_since(reqs[1].start)
        );
    }
    assert!(lease > Duration::from_secs(4));
    // Every other URL fetched once.
    for (name, s) in [("a", &a), ("b", &b)] {
        let mut per: HashMap<String, usize> = HashMap::new();
        for r in s.seen() {
            *per.entry(r.path).or_default() += 1;
        }
        for (p, n) in &per {
            let was_claimed = claimed.iter().any(|u| u.ends_with(p.as_str()) && p != "/");
            if p.starts_with("/p") && !was_claimed {
                assert_eq!(*n, 1, "{name}{p}");
            }
        }
    }
    check_polite("a", &a.seen(), Duration::from_millis(100));
    check_polite("b", &b.seen(), Duration::from_millis(100));
    let chain = pg_chain::walk(&url).await;
    assert!(chain.iter().any(|(k, _)| k == "crawl.start"));
    db.close().await.ok();
    // A killed worker's half-done work leaves no hole in the log.
    audit_verify_ok(&url);
}
