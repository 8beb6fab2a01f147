//! A minimal crawl of a local site: pages, robots versions, decisions, UA,
//! and a re-run that adds nothing.

use crate::support::crawl::{config, corpus, crawl, probe, scalar_i64, strings};
use crate::support::server::{Route, TestServer, add_chain_site};

#[tokio::test]
async fn a_local_site_is_crawled_into_an_inspectable_corpus() {
    let s = TestServer::start().await;
    add_chain_site(&s, 5);
    s.route("/robots.txt", Route::text("User-agent: *\nDisallow: /p5\n"));
    let c = corpus().await;
    let (sum, _) = crawl(&c, config(&[s.url("/")])).await;
    assert_eq!(sum.pages, 5, "home + p1..p4 ({sum:?})");
    assert_eq!(sum.skipped_by_robots, 1, "{sum:?}");
    let db = probe(&c.path).await;
    assert_eq!(scalar_i64(&db, "SELECT count(*) FROM pages").await, 5);
    assert_eq!(
        scalar_i64(&db, "SELECT count(*) FROM robots_versions").await,
        1
    );
    assert_eq!(
        strings(
            &db,
            "SELECT rule || ' @' || matched_line FROM robots_decisions WHERE allowed = 0"
        )
        .await,
        ["Disallow: /p5 @2"]
    );
    // Every fetch points to a decision, which points to the robots version.
    assert_eq!(
        scalar_i64(&db, "SELECT count(*) FROM fetches f JOIN robots_decisions d ON d.id = f.robots_decision_id JOIN robots_versions v ON v.id = d.robots_version_id").await,
        5
    );
    assert_eq!(s.completed("/p5"), 0, "disallowed page never requested");
    let titles = strings(&db, "SELECT title FROM crawl_pages ORDER BY page_id").await;
    assert_eq!(titles[0], "Home");
    assert!(titles.contains(&"Page 3".to_string()));
    let ua: Vec<String> = s.seen().iter().map(|r| r.user_agent.clone()).collect();
    assert!(
        ua.iter()
            .all(|u| u.starts_with("BylineBot/") && u.ends_with("(+http://127.0.0.1/contact)")),
        "{ua:?}"
    );
    let text = strings(&db, "SELECT text FROM pages WHERE url LIKE '%/p2'").await;
    assert_eq!(text, ["Page 2\nText of page number 2, unique.\nnext"]);

    // The same command again: nothing is fetched twice, no row is duplicated.
    let (sum2, _) = crawl(&c, config(&[s.url("/")])).await;
    assert_eq!(sum2.fetched, 0, "{sum2:?}");
    assert_eq!(scalar_i64(&db, "SELECT count(*) FROM pages").await, 5);
    assert!(
        s.completed_all()
            .iter()
            .filter(|(p, _)| p.as_str() != "/robots.txt")
            .all(|(_, n)| *n == 1)
    );
}

#[tokio::test]
async fn exact_duplicates_point_to_the_first_copy() {
    let s = TestServer::start().await;
    let same = "<html><body><main><p>Same body twice.</p></main></body></html>";
    s.route("/", Route::html("<a href=/a>a</a><a href=/b>b</a>"));
    s.route("/a", Route::html(same));
    s.route("/b", Route::html(same));
    let c = corpus().await;
    let (sum, _) = crawl(&c, config(&[s.url("/")])).await;
    assert_eq!(sum.duplicates, 1);
    let db = probe(&c.path).await;
    assert_eq!(
        scalar_i64(&db, "SELECT count(*) FROM pages p JOIN pages q ON q.id = p.duplicate_of WHERE p.url LIKE '%/b' AND q.url LIKE '%/a'").await,
        1
    );
}
