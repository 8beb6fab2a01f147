//! Safety limits over loopback: each is a recorded per-URL error (or flag)
//! and the crawl goes on to the next URL. Charsets, malformed HTML and
//! spider traps too.

use std::time::Duration;

use crate::support::crawl::{config, corpus, crawl, probe, scalar_i64, strings};
use crate::support::crawl_more::{
    drip, dynamic, fetch_row, frontier_state, gzip_bomb, html_response, page_text,
};
use crate::support::server::{Route, TestServer};

/// A home page linking to `paths` and to `/ok`, which must still be crawled.
fn home(s: &TestServer, paths: &[&str]) {
    let links: String = paths
        .iter()
        .chain(&["/ok"])
        .map(|p| format!("<a href=\"{p}\">{p}</a> "))
        .collect();
    s.route("/", Route::html(&format!("<main>{links}</main>")));
    s.route("/ok", Route::html("<main><p>Still crawled.</p></main>"));
}

#[tokio::test]
async fn redirect_loops_and_redirect_limits_are_per_url_errors() {
    let s = TestServer::start().await;
    home(&s, &["/loop1", "/long0", "/short0"]);
    s.route("/loop1", Route::redirect(302, "/loop2"));
    s.route("/loop2", Route::redirect(301, "/loop3"));
    s.route("/loop3", Route::redirect(307, "/loop1"));
    // 12 redirects (limit 10), and 3 (fine).
    for i in 0..12 {
        s.route(
            &format!("/long{i}"),
            Route::redirect(302, &format!("/long{}", i + 1)),
        );
    }
    s.route("/long12", Route::html("<p>too far</p>"));
    for i in 0..3 {
        s.route(
            &format!("/short{i}"),
            Route::redirect(301, &format!("/short{}", i + 1)),
        );
    }
    s.route("/short3", Route::html("<main><p>Arrived.</p></main>"));
    let c = corpus().await;
    let mut cfg = config(&[s.url("/")]);
    cfg.max_redirects = 10;
    let (sum, _) = crawl(&c, cfg).await;
    let db = probe(&c.path).await;

    let r = fetch_row(&db, &s.url("/loop1")).await;
    assert_eq!(r.error_kind.as_deref(), Some("redirect_loop"), "{r:?}");
    let chain: Vec<serde_json::Value> = serde_json::from_str(&r.chain).unwrap();
    assert_eq!(chain.len(), 3, "{}", r.chain);
    assert_eq!(
        s.completed("/loop1"),
        1,
        "loop stopped at the first revisit"
    );

    let r = fetch_row(&db, &s.url("/long0")).await;
    assert_eq!(r.error_kind.as_deref(), Some("redirect_limit"), "{r:?}");
    assert!(r.error_detail.as_deref().unwrap().contains("10"), "{r:?}");
    assert_eq!(s.completed("/long10"), 1);
    assert_eq!(s.completed("/long11"), 0, "an 11th redirect was followed");

    let r = fetch_row(&db, &s.url("/short0")).await;
    assert_eq!(r.error_kind, None);
    assert_eq!(r.final_url.as_deref(), Some(s.url("/short3").as_str()));
    assert_eq!(page_text(&db, &s.url("/short3")).await, "Arrived.");

    assert_eq!(s.completed("/ok"), 1);
    assert!(
        sum.errors_by_kind
            .contains(&("redirect_loop".to_string(), 1))
            && sum
                .errors_by_kind
                .contains(&("redirect_limit".to_string(), 1)),
        "{sum:?}"
    );
    assert_eq!(frontier_state(&db, &s.url("/loop1")).await.0, "failed");
}

#[tokio::test]
async fn a_tarpit_hits_the_total_or_the_read_timeout() {
    let s = TestServer::start().await;
    home(&s, &["/trickle", "/stall"]);
    // A byte every 100 ms for 10 s: never stalls, never ends in time.
    s.route(
        "/trickle",
        drip("text/html", b"<p>.</p>", Duration::from_millis(100), 100),
    );
    // Headers, then nothing for 5 s.
    s.route(
        "/stall",
        drip("text/html", b"<p>late</p>", Duration::from_secs(5), 2),
    );
    let c = corpus().await;
    let mut cfg = config(&[s.url("/")]);
    cfg.total_timeout_ms = 1_200;
    cfg.read_timeout_ms = 400;
    cfg.max_attempts = 1;
    let t = std::time::Instant::now();
    let (sum, _) = crawl(&c, cfg).await;
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    let db = probe(&c.path).await;
    for p in ["/trickle", "/stall"] {
        let r = fetch_row(&db, &s.url(p)).await;
        assert_eq!(r.error_kind.as_deref(), Some("timeout"), "{p}: {r:?}");
        assert_eq!(r.status, Some(200), "{p}: headers had arrived");
    }
    assert!(
        fetch_row(&db, &s.url("/trickle"))
            .await
            .error_detail
            .unwrap()
            .contains("1.2s"),
        "the total limit is named"
    );
    assert_eq!(s.completed("/ok"), 1);
    assert!(
        sum.errors_by_kind.contains(&("timeout".to_string(), 2)),
        "{sum:?}"
    );
}

#[tokio::test]
async fn a_gzip_bomb_and_a_10_mb_page_stop_at_the_body_cap_flagged_truncated() {
    let s = TestServer::start().await;
    home(&s, &["/bomb", "/big"]);
    let bomb = gzip_bomb(64);
    assert!(bomb.len() < 1 << 20, "{} compressed bytes", bomb.len());
    s.route(
        "/bomb",
        Route::with("text/html", bomb).header("content-encoding", "gzip"),
    );
    let mut big = b"<html><head><title>Big</title></head><body><main><p>".to_vec();
    big.resize(10 << 20, b'x');
    s.route("/big", Route::with("text/html", big));
    let c = corpus().await;
    let cfg = config(&[s.url("/")]);
    assert_eq!(cfg.max_body_bytes, 5 << 20, "default cap");
    let (sum, _) = crawl(&c, cfg).await;
    let db = probe(&c.path).await;
    for p in ["/bomb", "/big"] {
        let r = fetch_row(&db, &s.url(p)).await;
        assert_eq!(r.error_kind, None, "{p}");
        assert!(r.truncated, "{p}");
        assert_eq!(r.body_bytes, Some(5 << 20), "{p}: decoded bytes kept");
    }
    assert_eq!(
        strings(&db, "SELECT title FROM pages WHERE url LIKE '%/big'").await,
        ["Big"],
        "the truncated page is still extracted"
    );
    assert_eq!(
        scalar_i64(
            &db,
            "SELECT truncated FROM crawl_pages WHERE url LIKE '%/bomb'"
        )
        .await,
        1
    );
    assert_eq!(s.completed("/ok"), 1);
    assert_eq!(sum.pages, 4, "{sum:?}");
}

#[tokio::test]
async fn non_html_content_types_are_not_read() {
    let s = TestServer::start().await;
    home(&s, &["/img.png", "/doc.pdf", "/data.json", "/xhtml"]);
    s.route(
        "/img.png",
        Route::with("image/png", vec![0x89, b'P', b'N', b'G']),
    );
    s.route(
        "/doc.pdf",
        Route::with("application/pdf", b"%PDF-1.7".to_vec()),
    );
    s.route(
        "/data.json",
        Route::with("application/json", b"{}".to_vec()),
    );
    s.route(
        "/xhtml",
        Route::with(
            "application/xhtml+xml",
            b"<html xmlns=\"http://www.w3.org/1999/xhtml\"><body><p>XHTML text.</p></body></html>"
                .to_vec(),
        ),
    );
    let c = corpus().await;
    let (sum, _) = crawl(&c, config(&[s.url("/")])).await;
    let db = probe(&c.path).await;
    for (p, ct) in [
        ("/img.png", "image/png"),
        ("/doc.pdf", "application/pdf"),
        ("/data.json", "application/json"),
    ] {
        let r = fetch_row(&db, &s.url(p)).await;
        assert_eq!(r.error_kind.as_deref(), Some("content_type"), "{p}");
        assert!(r.error_detail.unwrap().contains(ct), "{p}");
        assert_eq!(r.body_bytes, Some(0), "{p}: body not read");
        assert_eq!(frontier_state(&db, &s.url(p)).await.0, "failed");
    }
    assert_eq!(page_text(&db, &s.url("/xhtml")).await, "XHTML text.");
    assert_eq!(s.completed("/ok"), 1);
    assert!(
        sum.errors_by_kind
            .contains(&("content_type".to_string(), 3)),
        "{sum:?}"
    );
}

#[tokio::test]
async fn windows_1252_and_shift_jis_pages_decode_from_header_meta_and_bom() {
    let s = TestServer::start().await;
    let pages = [
        "/cp1252-header",
        "/cp1252-meta",
        "/sjis-header",
        "/sjis-meta",
        "/bom-utf8",
        "/bom-utf16",
    ];
    home(&s, &pages);
    let cp =
        b"<html><body><main><p>na\xefve caf\xe9 \x93quoted\x94 \x80 5</p></main></body></html>";
    s.route(
        "/cp1252-header",
        Route::with("text/html; charset=windows-1252", cp.to_vec()),
    );
    let mut cp_meta = b"<html><head><meta charset=\"windows-1252\"></head>".to_vec();
    cp_meta.extend_from_slice(&cp[6..]);
    s.route("/cp1252-meta", Route::with("text/html", cp_meta));
    let sjis_body = "<html><body><main><p>日本語のテキストです。</p></main></body></html>";
    let (sjis, _, _) = encoding_rs::SHIFT_JIS.encode(sjis_body);
    s.route(
        "/sjis-header",
        Route::with("text/html; charset=Shift_JIS", sjis.to_vec()),
    );
    let meta = "<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=shift_jis\"></head><body><main><p>日本語のテキストです。</p></main></body></html>";
    let (sjis_meta, _, _) = encoding_rs::SHIFT_JIS.encode(meta);
    s.route("/sjis-meta", Route::with("text/html", sjis_meta.to_vec()));
    // A BOM wins over a wrong header charset.
    let mut bom8 = b"\xef\xbb\xbf".to_vec();
    bom8.extend_from_slice("<main><p>Grüße, señor</p></main>".as_bytes());
    s.route(
        "/bom-utf8",
        Route::with("text/html; charset=windows-1252", bom8),
    );
    let mut bom16 = vec![0xff, 0xfe];
    for u in "<main><p>Ünïcödé</p></main>".encode_utf16() {
        bom16.extend_from_slice(&u.to_le_bytes());
    }
    s.route("/bom-utf16", Route::with("text/html", bom16));

    let c = corpus().await;
    crawl(&c, config(&[s.url("/")])).await;
    let db = probe(&c.path).await;
    let expect = [
        (
            "/cp1252-header",
            "header:windows-1252",
            "windows-1252",
            "naïve café \u{201c}quoted\u{201d} € 5",
        ),
        (
            "/cp1252-meta",
            "meta:windows-1252",
            "windows-1252",
            "naïve café \u{201c}quoted\u{201d} € 5",
        ),
        (
            "/sjis-header",
            "header:Shift_JIS",
            "Shift_JIS",
            "日本語のテキストです。",
        ),
        (
            "/sjis-meta",
            "meta:shift_jis",
            "Shift_JIS",
            "日本語のテキストです。",
        ),
        ("/bom-utf8", "bom", "UTF-8", "Grüße, señor"),
        ("/bom-utf16", "bom", "UTF-16LE", "Ünïcödé"),
    ];
    for (p, declared, used, text) in expect {
        let r = fetch_row(&db, &s.url(p)).await;
        assert_eq!(r.declared_charset.as_deref(), Some(declared), "{p}");
        assert_eq!(r.detected_charset.as_deref(), Some(used), "{p}");
        assert_eq!(page_text(&db, &s.url(p)).await, text, "{p}");
    }
}

#[tokio::test]
async fn malformed_html_is_still_extracted_and_its_links_followed() {
    let s = TestServer::start().await;
    s.route(
        "/",
        Route::html(
            "<html><head><title>Broken &amp page</title><body><div><p>unclosed <b>bold <i>text\
             <table><tr><td>cell one<td>cell two</div></p></b> stray &copy &bogus; end\
             <p>More <a href=/next>next page</a> <a href=\"/cut\"",
        ),
    );
    s.route("/next", Route::html("<p>Next.</p>"));
    let c = corpus().await;
    crawl(&c, config(&[s.url("/")])).await;
    let db = probe(&c.path).await;
    let text = page_text(&db, &s.url("/")).await;
    for w in [
        "unclosed", "bold", "cell one", "cell two", "©", "&bogus;", "More",
    ] {
        assert!(text.contains(w), "{w:?} missing from {text:?}");
    }
    assert_eq!(
        strings(
            &db,
            "SELECT title FROM pages WHERE url = (SELECT url_norm FROM frontier WHERE depth = 0)"
        )
        .await,
        ["Broken & page"]
    );
    assert_eq!(s.completed("/next"), 1, "link in malformed markup followed");
}

#[tokio::test]
async fn calendar_traps_stop_at_max_depth_and_repeated_segments() {
    let s = TestServer::start().await;
    s.route(
        "/",
        Route::html("<a href=\"/cal?month=1\">calendar</a> <a href=\"/a/\">a</a>"),
    );
    // An endless calendar, and relative links that deepen the path forever.
    s.fallback(dynamic(|pq| {
        if let Some(m) = pq.strip_prefix("/cal?month=") {
            let n: u64 = m.parse().unwrap_or(0);
            return html_response(&format!(
                "<p>Month {n}</p><a href=\"/cal?month={}\">next month</a>",
                n + 1
            ));
        }
        if pq.starts_with("/a/") {
            return html_response("<p>deeper</p><a href=\"a/\">deeper</a>");
        }
        (404, vec![], b"not found".to_vec())
    }));
    let c = corpus().await;
    let mut cfg = config(&[s.url("/")]);
    cfg.max_depth = 5;
    crawl(&c, cfg).await;
    let db = probe(&c.path).await;
    assert_eq!(scalar_i64(&db, "SELECT max(depth) FROM frontier").await, 5);
    assert_eq!(s.completed("/cal?month=5"), 1);
    assert_eq!(s.completed("/cal?month=6"), 0, "fetched beyond max depth");
    assert_eq!(
        strings(
            &db,
            "SELECT skip_reason FROM links WHERE target_url LIKE '%month=6'"
        )
        .await,
        ["trap.depth"]
    );
    assert_eq!(s.completed("/a/a/"), 1);
    assert_eq!(
        s.completed("/a/a/a/"),
        0,
        "a third repeated segment followed"
    );
    assert_eq!(
        strings(
            &db,
            "SELECT skip_reason FROM links WHERE target_url LIKE '%/a/a/a/'"
        )
        .await,
        ["trap.repeated_segment"]
    );
}

#[tokio::test]
async fn max_urls_per_origin_caps_the_frontier() {
    let s = TestServer::start().await;
    let links: String = (0..100)
        .map(|i| format!("<a href=\"/item/{i}\">{i}</a> "))
        .collect();
    s.route("/", Route::html(&links));
    s.fallback(dynamic(|pq| html_response(&format!("<p>item {pq}</p>"))));
    let c = corpus().await;
    let mut cfg = config(&[s.url("/")]);
    cfg.max_urls_per_origin = 20;
    let (sum, _) = crawl(&c, cfg).await;
    let db = probe(&c.path).await;
    assert_eq!(scalar_i64(&db, "SELECT count(*) FROM frontier").await, 20);
    assert_eq!(sum.fetched, 20, "{sum:?}");
    assert_eq!(
        scalar_i64(
            &db,
            "SELECT count(*) FROM links WHERE skip_reason = 'trap.origin_cap'"
        )
        .await,
        81
    );
    assert_eq!(s.completed("/item/19"), 0, "the 20th link is over the cap");
    assert_eq!(s.completed("/item/18"), 1);
}
