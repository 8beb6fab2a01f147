//! SSRF: from a loopback seed (allowed, it is a seed host) the crawler never
//! reaches private, link-local, loopback-by-another-name or other
//! non-public addresses, whether a page links there or redirects there.

use std::sync::Arc;

use byline::crawl::guard::{Guard, GuardedResolver};
use reqwest::dns::Resolve;
use url::Url;

use crate::support::crawl::{config, corpus, crawl, probe, scalar_i64, strings};
use crate::support::crawl_more::{fetch_row, frontier_state};
use crate::support::server::{Route, TestServer};

#[tokio::test]
async fn redirects_to_private_addresses_and_names_are_blocked_and_recorded() {
    let s = TestServer::start().await;
    let port = s.addr.port();
    let targets = [
        ("/to-10", "http://10.0.0.1/admin".to_string()),
        (
            "/to-metadata",
            "http://169.254.169.254/latest/meta-data/".to_string(),
        ),
        ("/to-192", "http://192.168.1.1/".to_string()),
        ("/to-172", "http://172.16.0.1:8080/".to_string()),
        ("/to-v6-loopback", format!("http://[::1]:{port}/private")),
        ("/to-v6-ula", "http://[fd00::1]/".to_string()),
        ("/to-mapped", "http://[::ffff:10.0.0.1]/".to_string()),
        ("/to-decimal", "http://167772161/".to_string()),
        (
            "/to-other-loopback",
            format!("http://127.0.0.2:{port}/private"),
        ),
        ("/to-zero", format!("http://0.0.0.0:{port}/private")),
        // A name that resolves to a loopback address (not the seed's host).
        ("/to-localhost", format!("http://localhost:{port}/private")),
    ];
    let mut home = String::new();
    for (p, to) in &targets {
        s.route(p, Route::redirect(302, to));
        home.push_str(&format!("<a href=\"{p}\">{p}</a> "));
    }
    // Direct links to private hosts: outside the crawl's scope, never queued.
    home.push_str(
        "<a href=\"http://10.0.0.2/\">lan</a> <a href=\"http://169.254.169.254/\">md</a>",
    );
    home.push_str("<a href=\"/ok\">ok</a>");
    s.route("/", Route::html(&home));
    s.route("/ok", Route::html("<p>fine</p>"));
    s.route("/private", Route::html("<p>should never be read</p>"));
    let c = corpus().await;
    let (sum, _) = crawl(&c, config(&[s.url("/")])).await;
    let db = probe(&c.path).await;
    for (p, to) in &targets {
        let r = fetch_row(&db, &s.url(p)).await;
        assert_eq!(
            r.error_kind.as_deref(),
            Some("ssrf_blocked"),
            "{p} -> {to}: {r:?}"
        );
        assert_eq!(frontier_state(&db, &s.url(p)).await.0, "failed", "{p}");
        let chain: Vec<serde_json::Value> = serde_json::from_str(&r.chain).unwrap();
        assert_eq!(chain.len(), 1, "{p}: the hop is recorded");
    }
    assert_eq!(s.completed("/private"), 0, "a blocked target was reached");
    assert_eq!(s.completed("/ok"), 1, "the crawl went on");
    assert!(
        sum.errors_by_kind
            .contains(&("ssrf_blocked".to_string(), targets.len() as i64)),
        "{sum:?}"
    );
    assert_eq!(
        strings(
            &db,
            "SELECT skip_reason FROM links WHERE target_url IN ('http://10.0.0.2/', 'http://169.254.169.254/')"
        )
        .await,
        ["scope", "scope"]
    );
    assert_eq!(
        scalar_i64(
            &db,
            "SELECT count(*) FROM frontier WHERE url_norm LIKE 'http://10.%' OR url_norm LIKE 'http://169.254.%'"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn the_seed_itself_and_other_ports_of_the_seed_host_are_reachable() {
    // A second loopback listener on another port of the seed host: allowed
    // (the seed names that host), e.g. a cross-port redirect.
    let s = TestServer::start().await;
    let other = TestServer::start().await;
    s.route("/", Route::html("<a href=\"/hop\">hop</a>"));
    s.route("/hop", Route::redirect(302, &other.url("/there")));
    other.route("/there", Route::html("<main><p>Over there.</p></main>"));
    let c = corpus().await;
    crawl(&c, config(&[s.url("/")])).await;
    let db = probe(&c.path).await;
    let r = fetch_row(&db, &s.url("/hop")).await;
    assert_eq!(r.error_kind, None);
    assert_eq!(r.final_url.as_deref(), Some(other.url("/there").as_str()));
    assert_eq!(other.completed("/there"), 1);
}

#[tokio::test]
async fn the_client_resolver_drops_non_public_addresses_of_names_that_are_not_seeds() {
    // The check that counts is on the addresses the client connects to:
    // the resolver reqwest uses filters them again (DNS rebinding).
    let seed = Url::parse("http://127.0.0.1:9/").unwrap();
    let r = GuardedResolver {
        guard: Arc::new(Guard::for_seeds([&seed]).await),
    };
    let err = match r.resolve("localhost".parse().unwrap()).await {
        Ok(a) => panic!(
            "localhost resolved to {:?} for a 127.0.0.1 seed",
            a.collect::<Vec<_>>()
        ),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("localhost") && err.contains("no public address"),
        "{err}"
    );
    // A seed that is a name may resolve to loopback.
    let seed = Url::parse("http://localhost:9/").unwrap();
    let r = GuardedResolver {
        guard: Arc::new(Guard::for_seeds([&seed]).await),
    };
    let addrs: Vec<_> = match r.resolve("localhost".parse().unwrap()).await {
        Ok(a) => a.collect(),
        Err(e) => panic!("seed name refused: {e}"),
    };
    assert!(addrs.iter().all(|a| a.ip().is_loopback()) && !addrs.is_empty());
}
