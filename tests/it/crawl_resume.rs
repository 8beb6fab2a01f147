//! Crash-safe resume: the real `byline crawl` process is killed with
//! SIGKILL twice in the middle of a crawl of two local origins, then the same
//! command runs to the end.
//!
//! What is guaranteed, and asserted: every page ends up stored exactly once
//! (one `pages` row, one `fetches` row: the rows of an attempt are committed
//! in one transaction with its frontier state, so an attempt cut off by the
//! kill leaves none), no row is duplicated in any crawl table, the frontier
//! is complete, every page has its evidence and verdicts (committed in the
//! page's transaction), robots.txt is fetched once per origin (the stored copy is
//! reused), and the server sees each URL at most twice: a page that was in
//! flight when the process died (at most one per origin, as one request per
//! origin is in flight) is fetched again by the next run.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::crawl::{probe, scalar_i64};
use crate::support::server::{Route, TestServer};
use crate::support::{byline_bin, tempdir};

const SECTIONS: usize = 5;
const PER_SECTION: usize = 5;

/// `/` links to sections, each section to its pages: 1 + 5 + 25 = 31 URLs.
fn site(s: &TestServer) {
    let delay = Duration::from_millis(25);
    let secs: String = (0..SECTIONS)
        .map(|i| format!("<a href=\"/s{i}\">section {i}</a> "))
        .collect();
    s.route(
        "/",
        Route::html(&format!("<main><h1>Home</h1>{secs}</main>")).delay(delay),
    );
    for i in 0..SECTIONS {
        let pages: String = (0..PER_SECTION)
            .map(|j| format!("<a href=\"/s{i}/p{j}\">page {j}</a> "))
            .collect();
        s.route(
            &format!("/s{i}"),
            Route::html(&format!(
                "<main><h1>Section {i}</h1><p>Section {i} of the site.</p>{pages}</main>"
            ))
            .delay(delay),
        );
        for j in 0..PER_SECTION {
            s.route(
                &format!("/s{i}/p{j}"),
                Route::html(&format!(
                    "<main><h1>Page {i}.{j}</h1><p>Unique text of page {j} in section {i}.</p><a href=\"/\">home</a></main>"
                ))
                .delay(delay),
            );
        }
    }
    s.route("/robots.txt", Route::text("User-agent: *\nAllow: /\n"));
}

fn crawl_cmd(db: &std::path::Path, seeds: &[String]) -> Command {
    let mut c = Command::new(byline_bin());
    c.arg("--db")
        .arg(db)
        .arg("crawl")
        .args(["--delay-ms", "0", "--concurrency", "4", "--timeout", "5"])
        .args(seeds)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Runs the crawl and SIGKILLs it after `after` page fetches were logged.
fn run_and_kill(db: &std::path::Path, seeds: &[String], after: usize) -> usize {
    let mut child: Child = crawl_cmd(db, seeds).spawn().expect("spawn byline crawl");
    let stderr = child.stderr.take().unwrap();
    let mut fetched = 0;
    for line in BufReader::new(stderr).lines() {
        let line = line.expect("stderr line");
        if line.starts_with("fetch ") {
            fetched += 1;
            if fetched == after {
                child.kill().expect("kill -9");
                break;
            }
        }
    }
    let st = child.wait().expect("wait");
    assert!(
        !st.success(),
        "the crawl ended before it could be killed ({fetched} fetches)"
    );
    fetched
}

#[test]
fn a_crawl_killed_twice_resumes_without_losing_or_doubling_anything() {
    let (a, _ta) = TestServer::start_in_thread(site);
    let (b, _tb) = TestServer::start_in_thread(site);
    let seeds = vec![a.url("/"), b.url("/")];
    let dir = tempdir();
    let db = dir.path().join("resume.db");
    let total = 2 * (1 + SECTIONS + SECTIONS * PER_SECTION);

    let first = run_and_kill(&db, &seeds, 12);
    let second = run_and_kill(&db, &seeds, 12);
    let out = crawl_cmd(&db, &seeds).output().expect("third run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(first + second < total);

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let p = probe(&db).await;
        let n = |sql: &'static str| {
            let p = p.clone();
            async move { scalar_i64(&p, sql).await }
        };
        assert_eq!(n("SELECT count(*) FROM frontier").await, total as i64);
        assert_eq!(
            n("SELECT count(*) FROM frontier WHERE state = 'done'").await,
            total as i64,
            "frontier complete"
        );
        assert_eq!(n("SELECT count(*) FROM pages").await, total as i64);
        assert_eq!(n("SELECT count(DISTINCT url) FROM pages").await, total as i64);
        assert_eq!(
            n("SELECT count(*) FROM fetches").await,
            total as i64,
            "one fetch row per page: an attempt cut off by a kill left no row"
        );
        assert_eq!(
            n("SELECT count(*) FROM (SELECT requested_url FROM fetches GROUP BY requested_url HAVING count(*) > 1)").await,
            0
        );
        assert_eq!(
            n("SELECT count(*) FROM robots_decisions").await,
            total as i64,
            "one decision per page"
        );
        assert_eq!(
            n("SELECT count(*) FROM (SELECT frontier_id FROM robots_decisions GROUP BY frontier_id HAVING count(*) > 1)").await,
            0
        );
        assert_eq!(
            n("SELECT count(*) FROM robots_versions").await,
            2,
            "robots.txt fetched once per origin over three runs"
        );
        assert_eq!(n("SELECT count(*) FROM crawl_runs").await, 3);
        assert_eq!(
            n("SELECT count(*) FROM crawl_runs WHERE finished_at IS NOT NULL").await,
            1,
            "only the last run finished"
        );
        // Links: every page's links stored once (1 home link per leaf page,
        // 5 per section, 5 on the home page).
        assert_eq!(
            n("SELECT count(*) FROM links").await,
            2 * (SECTIONS + SECTIONS * PER_SECTION + SECTIONS * PER_SECTION) as i64
        );
        // The consent hook: its evidence and verdicts commit in the page's
        // transaction, so every page has exactly one evidence set, linked to
        // it, with one verdict per purpose, whatever the kills interrupted.
        assert_eq!(
            n("SELECT count(*) FROM (SELECT page_url FROM evidence_sets GROUP BY page_url HAVING count(*) > 1)").await,
            0
        );
        assert_eq!(
            n("SELECT count(*) FROM pages p JOIN evidence_sets s ON s.page_id = p.id AND s.page_url = p.url").await,
            total as i64,
            "every page has its evidence set"
        );
        assert_eq!(
            n("SELECT count(*) FROM verdicts").await,
            3 * total as i64,
            "three verdicts per page"
        );
        assert_eq!(
            n("SELECT count(*) FROM evidence_sets s WHERE (SELECT count(DISTINCT purpose) FROM verdicts v WHERE v.set_id = s.id) <> 3").await,
            0,
            "no evidence set without its verdicts"
        );
        assert_eq!(
            n("SELECT count(*) FROM evidence WHERE fetch_ref IS NOT NULL AND fetch_ref LIKE '%\"fetch_id\":null%' AND location IN ('http-header', 'html-meta')").await,
            0,
            "page evidence points at the stored fetch"
        );
    });

    for srv in [&a, &b] {
        let seen = srv.completed_all();
        assert_eq!(seen.get("/robots.txt"), Some(&1));
        let pages: Vec<(&String, &u64)> = seen
            .iter()
            .filter(|(p, _)| p.as_str() == "/" || p.starts_with("/s"))
            .collect();
        assert_eq!(pages.len(), total / 2, "every page requested");
        assert!(pages.iter().all(|(_, n)| **n <= 2), "{pages:?}");
        let twice = pages.iter().filter(|(_, n)| **n == 2).count();
        assert!(
            twice <= 2,
            "at most one in-flight page per origin per kill is fetched again: {pages:?}"
        );
    }
}

/// One SQLite corpus takes one crawler at a time. A second `byline crawl`
/// started while the first runs must not take the first one's claims (it
/// would re-queue them as a dead run's and fetch them again): it is refused,
/// exit 3, saying who holds the corpus, and it writes nothing. The first
/// crawl finishes with every URL requested exactly once; once it has ended
/// the corpus takes a crawler again.
#[test]
fn a_second_crawler_on_the_same_sqlite_corpus_is_refused_and_takes_nothing() {
    let (a, _ta) = TestServer::start_in_thread(site);
    let seeds = vec![a.url("/")];
    let dir = tempdir();
    let db = dir.path().join("one-crawler.db");
    let total = 1 + SECTIONS + SECTIONS * PER_SECTION;

    let mut first = crawl_cmd(&db, &seeds).spawn().expect("spawn first crawl");
    let stderr = first.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let mut fetched = 0;
    for line in lines.by_ref() {
        if line.expect("stderr line").starts_with("fetch ") {
            fetched += 1;
            if fetched == 3 {
                break;
            }
        }
    }
    assert_eq!(
        fetched, 3,
        "the first crawl ended before the second started"
    );
    let drain = std::thread::spawn(move || lines.count());

    let second = crawl_cmd(&db, &seeds).output().expect("second crawl");
    let err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(3), "second crawl: {err}");
    assert!(
        err.contains("another byline crawl") && err.contains(&format!("pid {}", first.id())),
        "the refusal names the crawler holding the corpus: {err}"
    );

    let st = first.wait().expect("wait first");
    drain.join().unwrap();
    assert!(st.success(), "the first crawl finished");

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let p = probe(&db).await;
        assert_eq!(
            scalar_i64(&p, "SELECT count(*) FROM crawl_runs").await,
            1,
            "the refused crawler recorded no run"
        );
        assert_eq!(
            scalar_i64(&p, "SELECT count(*) FROM fetches").await,
            total as i64
        );
    });
    let seen = a.completed_all();
    let pages: Vec<(&String, &u64)> = seen
        .iter()
        .filter(|(p, _)| p.as_str() == "/" || p.starts_with("/s"))
        .collect();
    assert_eq!(pages.len(), total, "every page requested");
    assert!(
        pages.iter().all(|(_, n)| **n == 1),
        "no page requested twice: {pages:?}"
    );

    let third = crawl_cmd(&db, &seeds).output().expect("third crawl");
    assert!(
        third.status.success(),
        "after the first crawl ended the corpus takes a crawler: {}",
        String::from_utf8_lossy(&third.stderr)
    );
}
