//! The crawl commands as a user runs them: `byline crawl` prints plain log
//! lines when stderr is not a terminal and a closing summary (errors by
//! kind, per-origin counts); `byline bench crawl` crawls a generated
//! many-origin site and reports its numbers.

use std::process::Command;

use crate::support::server::{Route, TestServer};
use crate::support::{byline_bin, tempdir};

#[test]
fn crawl_logs_each_url_and_closes_with_errors_by_kind_and_per_origin_counts() {
    let (s, _t) = TestServer::start_in_thread(|s| {
        s.route(
            "/",
            Route::html(
                "<a href=\"/gone\">gone</a> <a href=\"/private\">p</a> <a href=\"/ok\">ok</a>",
            ),
        );
        s.route("/ok", Route::html("<p>fine</p>"));
        s.route(
            "/robots.txt",
            Route::text("User-agent: *\nDisallow: /private\n"),
        );
    });
    let dir = tempdir();
    let db = dir.path().join("c.db");
    let out = Command::new(byline_bin())
        .arg("--db")
        .arg(&db)
        .args(["crawl", "--delay-ms", "0"])
        .arg(s.url("/"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for l in [
        format!("robots {}/robots.txt 200 -> rules", s.url("")),
        format!("fetch 200 {}", s.url("/ok")),
        format!("fetch 404 {} [http_status]", s.url("/gone")),
        format!("skip  {} [robots.disallow]", s.url("/private")),
    ] {
        assert!(stderr.contains(&l), "{l:?} not in:\n{stderr}");
    }
    for l in [
        "fetched:           3",
        "skipped by robots: 1",
        "errors by kind:",
        "http_status        1",
        "per origin",
        "done       2",
        "failed     1",
        "skipped    1",
    ] {
        assert!(stdout.contains(l), "{l:?} not in:\n{stdout}");
    }
    assert!(stdout.contains(&format!("    {}\n", s.url(""))), "{stdout}");
}

#[test]
fn bench_crawl_crawls_every_generated_page_and_reports_rate_and_memory() {
    let out = Command::new(byline_bin())
        .args(["bench", "crawl", "--origins", "3", "--pages", "15"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("(45 pages stored, 45 expected)"),
        "{stdout}"
    );
    assert!(stdout.contains("frontier: 45 done, 0 failed"), "{stdout}");
    assert!(stdout.contains("errors: none"), "{stdout}");
    assert!(stdout.contains("pages/s"), "{stdout}");
    let mib: f64 = stdout
        .lines()
        .find_map(|l| l.split("servers): ").nth(1))
        .and_then(|v| v.trim_end_matches(" MiB").parse().ok())
        .unwrap_or_else(|| panic!("no memory line:\n{stdout}"));
    assert!(mib > 1.0, "{mib}");
}
