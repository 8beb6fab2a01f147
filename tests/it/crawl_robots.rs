//! robots.txt over HTTP through the real crawler (RFC 9309, signals.md §1.2 and
//! §1.6): status codes, redirects, the parse limit (and the policy knob
//! `robots.max_bytes`), caching, and every decision pointing at the stored
//! version and line.

use byline::crawl::signals::ConsentPolicy;

use crate::support::crawl::{config, corpus, crawl, probe, scalar_i64, strings};
use crate::support::crawl_more::{
    closed_port, decisions, frontier_state, sequence, text_response, versions, writer,
};
use crate::support::server::{Route, TestServer};

/// `/` links to `/open` and `/secret`.
async fn site() -> TestServer {
    let s = TestServer::start().await;
    s.route(
        "/",
        Route::html("<main><a href=\"/open\">open</a> <a href=\"/secret\">secret</a></main>"),
    );
    s.route("/open", Route::html("<main><p>Open page.</p></main>"));
    s.route("/secret", Route::html("<main><p>Secret page.</p></main>"));
    s
}

#[tokio::test]
async fn a_200_robots_txt_decides_and_every_decision_names_its_version_and_line() {
    let s = site().await;
    // Line numbers: 1 UA *, 2 Disallow /, 3 blank, 4 our group (agent value
    // with a version, lower case: still us), 5 comment, 6 Allow, 7 Disallow.
    s.route(
        "/robots.txt",
        Route::text(
            "User-agent: *\nDisallow: /\n\nUser-agent: bylinebot/1.0\n# ours\nAllow: /open\nDisallow: /secret\n",
        ),
    );
    let c = corpus().await;
    let (sum, _) = crawl(&c, config(&[s.url("/")])).await;
    assert_eq!((sum.fetched, sum.skipped_by_robots), (2, 1), "{sum:?}");
    assert_eq!(s.completed("/secret"), 0);
    assert_eq!(s.completed("/robots.txt"), 1);
    let db = probe(&c.path).await;
    let v = versions(&db).await;
    assert_eq!(v.len(), 1);
    assert_eq!(
        (v[0].status, v[0].outcome.as_str(), v[0].reason.as_deref()),
        (Some(200), "rules", None)
    );
    let d = decisions(&db).await;
    let by = |p: &str| {
        d.iter()
            .find(|x| x.url == s.url(p))
            .unwrap_or_else(|| panic!("no decision for {p}: {d:?}"))
            .clone()
    };
    assert!(d.iter().all(|x| x.version_id == v[0].id), "{d:?}");
    let root = by("/");
    assert_eq!((root.allowed, root.line, root.rule), (true, None, None));
    let open = by("/open");
    assert_eq!(
        (open.allowed, open.line, open.rule.as_deref()),
        (true, Some(6), Some("Allow: /open"))
    );
    let secret = by("/secret");
    assert_eq!(
        (
            secret.allowed,
            secret.line,
            secret.rule.as_deref(),
            secret.reason.as_deref()
        ),
        (
            false,
            Some(7),
            Some("Disallow: /secret"),
            Some("robots.disallow")
        )
    );
    // Every fetch row points at the decision that let it happen.
    assert_eq!(
        scalar_i64(
            &db,
            "SELECT count(*) FROM fetches f JOIN robots_decisions d ON d.id = f.robots_decision_id
             WHERE d.allowed = 1 AND d.url = f.requested_url"
        )
        .await,
        2
    );
    assert_eq!(
        frontier_state(&db, &s.url("/secret")).await,
        ("skipped".into(), Some("robots.disallow".into()))
    );
}

#[tokio::test]
async fn robots_4xx_including_401_and_403_allows_all() {
    for status in [404u16, 401, 403, 410] {
        let s = site().await;
        if status != 404 {
            s.route("/robots.txt", Route::status(status));
        }
        let c = corpus().await;
        let (sum, _) = crawl(&c, config(&[s.url("/")])).await;
        assert_eq!(sum.fetched, 3, "{status}: {sum:?}");
        assert_eq!(s.completed("/secret"), 1, "{status}");
        let db = probe(&c.path).await;
        let v = versions(&db).await;
        assert_eq!(v.len(), 1, "{status}");
        assert_eq!(
            (v[0].status, v[0].outcome.as_str(), v[0].reason.as_deref()),
            (
                Some(i64::from(status)),
                "allow_all",
                Some("robots.unavailable")
            ),
            "{status}"
        );
        let d = decisions(&db).await;
        assert_eq!(d.len(), 3);
        assert!(
            d.iter().all(|x| x.allowed
                && x.version_id == v[0].id
                && x.reason.as_deref() == Some("robots.unavailable")),
            "{status}: {d:?}"
        );
    }
}

/// 5xx, 429 and a refused connection: disallow all, `robots.unreachable`,
/// the page retried later (after the robots retry interval), robots.txt
/// asked again, and never a page fetch while it stays unreachable.
async fn unreachable_case(status: Option<u16>) {
    let s = site().await;
    let seed = match status {
        Some(st) => {
            s.route("/robots.txt", Route::status(st).header("retry-after", "1"));
            s.url("/")
        }
        None => format!("http://127.0.0.1:{}/", closed_port()),
    };
    let c = corpus().await;
    let (sum, _) = crawl(&c, config(std::slice::from_ref(&seed))).await;
    let label = format!("{status:?}");
    assert_eq!(sum.fetched, 0, "{label}: {sum:?}");
    assert_eq!(sum.retries, 1, "{label}: retried once (max_attempts 2)");
    assert_eq!(sum.skipped_by_robots, 1, "{label}");
    assert_eq!(
        s.completed("/"),
        0,
        "{label}: page fetched while unreachable"
    );
    let db = probe(&c.path).await;
    let v = versions(&db).await;
    assert_eq!(v.len(), 2, "{label}: robots.txt asked again on the retry");
    for x in &v {
        assert_eq!(
            (x.outcome.as_str(), x.reason.as_deref()),
            ("disallow_all", Some("robots.unreachable")),
            "{label}"
        );
        assert_eq!(x.status, status.map(i64::from), "{label}");
    }
    if status.is_none() {
        assert!(
            v[0].error.as_deref().unwrap_or("").starts_with("connect"),
            "{:?}",
            v[0].error
        );
    } else {
        assert_eq!(s.completed("/robots.txt"), 2, "{label}");
    }
    let d = decisions(&db).await;
    assert_eq!(d.len(), 2, "{label}: one decision per attempt");
    assert!(
        d.iter().zip(&v).all(|(d, v)| !d.allowed
            && d.version_id == v.id
            && d.reason.as_deref() == Some("robots.unreachable")),
        "{label}: {d:?}"
    );
    assert_eq!(
        frontier_state(&db, &seed).await,
        ("skipped".into(), Some("robots.unreachable".into())),
        "{label}"
    );
}

#[tokio::test]
async fn robots_500_is_unreachable_disallow_all_retried() {
    unreachable_case(Some(500)).await;
}

#[tokio::test]
async fn robots_503_is_unreachable_disallow_all_retried() {
    unreachable_case(Some(503)).await;
}

#[tokio::test]
async fn robots_429_is_unreachable_disallow_all_retried() {
    unreachable_case(Some(429)).await;
}

#[tokio::test]
async fn robots_connection_refused_is_unreachable_disallow_all_retried() {
    unreachable_case(None).await;
}

#[tokio::test]
async fn robots_unreachable_then_recovered_lets_the_page_through_on_the_retry() {
    let s = site().await;
    s.route(
        "/robots.txt",
        sequence(|n| match n {
            0 => (503, vec![], vec![]),
            _ => text_response("User-agent: *\nDisallow: /secret\n"),
        }),
    );
    let c = corpus().await;
    let (sum, _) = crawl(&c, config(&[s.url("/")])).await;
    assert_eq!(sum.retries, 1, "{sum:?}");
    assert_eq!(s.completed("/robots.txt"), 2);
    assert_eq!(s.completed("/"), 1);
    assert_eq!(s.completed("/open"), 1);
    assert_eq!(s.completed("/secret"), 0);
    let db = probe(&c.path).await;
    let outcomes: Vec<String> = versions(&db).await.into_iter().map(|v| v.outcome).collect();
    assert_eq!(outcomes, ["disallow_all", "rules"]);
}

#[tokio::test]
async fn five_redirects_across_hosts_are_followed_and_apply_to_the_initial_origin() {
    let s = site().await;
    let other = TestServer::start().await;
    // robots.txt -> other/h1 -> other/h2 -> s/h3 -> other/h4 -> other/rules.txt
    s.route("/robots.txt", Route::redirect(301, &other.url("/h1")));
    other.route("/h1", Route::redirect(302, "/h2"));
    other.route("/h2", Route::redirect(303, &s.url("/h3")));
    s.route("/h3", Route::redirect(307, &other.url("/h4")));
    other.route("/h4", Route::redirect(308, "/rules.txt"));
    other.route(
        "/rules.txt",
        Route::text("User-agent: BylineBot\nDisallow: /secret\n"),
    );
    let c = corpus().await;
    let (sum, _) = crawl(&c, config(&[s.url("/")])).await;
    assert_eq!((sum.fetched, sum.skipped_by_robots), (2, 1), "{sum:?}");
    assert_eq!(s.completed("/secret"), 0);
    assert_eq!(other.completed("/rules.txt"), 1);
    assert_eq!(other.completed("/robots.txt"), 0, "target origin not asked");
    let db = probe(&c.path).await;
    let v = versions(&db).await;
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].outcome, "rules");
    assert_eq!(
        v[0].final_url.as_deref(),
        Some(other.url("/rules.txt").as_str())
    );
    let chain: Vec<serde_json::Value> = serde_json::from_str(&v[0].chain).unwrap();
    assert_eq!(chain.len(), 5, "{}", v[0].chain);
    assert_eq!(
        strings(&db, "SELECT origin FROM robots_versions").await,
        [s.base()],
        "rules stored for the origin asked about"
    );
    let d = decisions(&db).await;
    let secret = d.iter().find(|x| x.url == s.url("/secret")).unwrap();
    assert_eq!(
        (secret.line, secret.rule.as_deref()),
        (Some(2), Some("Disallow: /secret"))
    );
}

#[tokio::test]
async fn more_than_five_redirects_or_a_loop_is_redirect_limit_and_allows_all() {
    // Six redirects: /robots.txt -> /r1 -> ... -> /r6 (never requested).
    let s = site().await;
    s.route("/robots.txt", Route::redirect(302, "/r1"));
    for i in 1..=6 {
        s.route(
            &format!("/r{i}"),
            Route::redirect(302, &format!("/r{}", i + 1)),
        );
    }
    s.route("/r7", Route::text("User-agent: *\nDisallow: /\n"));
    // A loop on a second site.
    let l = site().await;
    l.route("/robots.txt", Route::redirect(301, "/loop"));
    l.route("/loop", Route::redirect(301, "/robots.txt"));
    for (srv, label) in [(&s, "six hops"), (&l, "loop")] {
        let c = corpus().await;
        let (sum, _) = crawl(&c, config(&[srv.url("/")])).await;
        assert_eq!(sum.fetched, 3, "{label}: {sum:?}");
        assert_eq!(srv.completed("/secret"), 1, "{label}");
        let db = probe(&c.path).await;
        let v = versions(&db).await;
        assert_eq!(v.len(), 1, "{label}");
        assert_eq!(
            (v[0].outcome.as_str(), v[0].reason.as_deref()),
            ("allow_all", Some("robots.redirect_limit")),
            "{label}"
        );
        assert!(
            decisions(&db)
                .await
                .iter()
                .all(|d| d.allowed && d.reason.as_deref() == Some("robots.redirect_limit")),
            "{label}"
        );
    }
    assert_eq!(s.completed("/r5"), 1, "five redirects followed");
    assert_eq!(s.completed("/r6"), 0, "a sixth redirect was followed");
}

/// A robots.txt of about 600,000 bytes: `Disallow: /secret` at the top,
/// `Disallow: /open` at byte ~599,000.
fn big_robots() -> String {
    let mut body = String::from("User-agent: BylineBot\nDisallow: /secret\n");
    while body.len() < 599_000 {
        body.push_str("# padding padding padding padding padding padding padding padding\n");
    }
    body.push_str("Disallow: /open\n");
    while body.len() < 600_000 {
        body.push_str("# tail\n");
    }
    body
}

#[tokio::test]
async fn a_robots_txt_over_500_kib_is_parsed_only_up_to_the_limit() {
    let s = site().await;
    s.route("/robots.txt", Route::text(&big_robots()));
    let c = corpus().await;
    crawl(&c, config(&[s.url("/")])).await;
    assert_eq!(s.completed("/secret"), 0, "rule before the cut applied");
    assert_eq!(s.completed("/open"), 1, "a rule after the cut was applied");
    let db = probe(&c.path).await;
    let v = versions(&db).await;
    assert!(v[0].truncated);
    assert_eq!(v[0].body_bytes, Some(512_000));
    assert!(
        v[0].warnings.contains("robots.truncated"),
        "{}",
        v[0].warnings
    );
}

#[tokio::test]
async fn the_policy_knob_robots_max_bytes_sets_the_parse_limit() {
    let s = site().await;
    s.route("/robots.txt", Route::text(&big_robots()));
    let bundled = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/eu-opt-out.toml"),
    )
    .unwrap();
    assert!(bundled.contains("max_bytes = 512000"));
    let text = bundled.replace("max_bytes = 512000", "max_bytes = 1000000");
    let policy = ConsentPolicy::from_bytes(text.as_bytes(), "test-policy.toml").unwrap();
    assert_eq!(policy.policy.knobs.robots_max_bytes, 1_000_000);
    let mut cfg = config(&[s.url("/")]);
    cfg.policy = Some(policy);
    let c = corpus().await;
    crawl(&c, cfg).await;
    assert_eq!(s.completed("/secret"), 0);
    assert_eq!(
        s.completed("/open"),
        0,
        "the rule at byte 599,000 is inside a 1,000,000-byte limit"
    );
    let db = probe(&c.path).await;
    let v = versions(&db).await;
    assert!(!v[0].truncated);
    assert_eq!(v[0].body_bytes, Some(big_robots().len() as i64));
    let cfg_json = strings(&db, "SELECT config_json FROM crawl_runs").await;
    assert!(
        cfg_json[0].contains("\"robots_max_bytes\":1000000"),
        "{}",
        cfg_json[0]
    );
}

#[tokio::test]
async fn robots_txt_is_fetched_once_per_origin_cached_at_most_24_hours_and_kept_while_unreachable()
{
    let s = site().await;
    for i in 0..5 {
        s.route(
            &format!("/more{i}"),
            Route::html(&format!("<p>more {i}</p>")),
        );
    }
    s.route(
        "/robots.txt",
        Route::text("User-agent: *\nDisallow: /secret\n").header("cache-control", "max-age=999999"),
    );
    let c = corpus().await;
    let seeds: Vec<String> = ["/", "/more0", "/more1"].iter().map(|p| s.url(p)).collect();
    let (sum, _) = crawl(&c, config(&seeds)).await;
    assert_eq!(sum.fetched, 4, "{sum:?}");
    assert_eq!(
        s.completed("/robots.txt"),
        1,
        "one fetch per origin per run"
    );
    let db = probe(&c.path).await;
    let v = versions(&db).await;
    assert_eq!(
        v[0].expires_at - v[0].fetched_at,
        24 * 3600,
        "min(max-age, 24 h)"
    );

    // A second run within 24 h with a new seed: the stored copy is used.
    crawl(&c, config(&[s.url("/more2")])).await;
    assert_eq!(s.completed("/more2"), 1);
    assert_eq!(
        s.completed("/robots.txt"),
        1,
        "cached copy reused across runs"
    );

    // 25 hours later (the stored copy aged by hand), the origin now failing
    // with 503: robots.txt is asked again, the last good copy stays in force
    // (spec S4/S9) and the new version says so.
    let w = writer(&c.path).await;
    sqlx::query("UPDATE robots_versions SET fetched_at = fetched_at - 90000, expires_at = expires_at - 90000")
        .execute(&w)
        .await
        .unwrap();
    w.close().await;
    s.route("/robots.txt", Route::status(503));
    s.route(
        "/more3",
        Route::html("<p>more 3</p><a href=\"/secret\">s</a>"),
    );
    crawl(&c, config(&[s.url("/more3")])).await;
    // Refetched because stale (and maybe once more when the 1 s retry
    // interval of an unreachable file runs out during the run).
    assert!(s.completed("/robots.txt") >= 2, "stale copy refetched");
    assert_eq!(s.completed("/more3"), 1, "allowed by the cached copy");
    assert_eq!(
        s.completed("/secret"),
        0,
        "still disallowed by the cached copy"
    );
    let v = versions(&db).await;
    assert!(v.len() >= 2);
    assert_eq!(
        (v[1].outcome.as_str(), v[1].reason.as_deref(), v[1].status),
        ("cached", Some("robots.unreachable"), Some(503))
    );
    assert_eq!(
        scalar_i64(&db, "SELECT cached_from FROM robots_versions WHERE id = 2").await,
        v[0].id
    );

    // A shorter max-age is honoured as is.
    let t = site().await;
    t.route(
        "/robots.txt",
        Route::text("User-agent: *\nAllow: /\n").header("cache-control", "public, max-age=3600"),
    );
    let c2 = corpus().await;
    crawl(&c2, config(&[t.url("/")])).await;
    let v = versions(&probe(&c2.path).await).await;
    assert_eq!(v[0].expires_at - v[0].fetched_at, 3600);
}
