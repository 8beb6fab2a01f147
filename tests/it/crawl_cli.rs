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

/// `byline bench crawl ARGS`, which must succeed; its stdout.
fn bench_crawl(args: &[&str]) -> String {
    let out = Command::new(byline_bin())
        .args(["bench", "crawl"])
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The crawler runs on one tokio worker fewer than the CPUs (at least
/// one): its writer and SQLite's thread are busy threads of their own
/// (issue #26). `TOKIO_WORKER_THREADS` overrides it.
#[test]
fn the_crawler_leaves_a_cpu_to_its_writer_unless_told_otherwise() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = |stdout: &str| -> (usize, usize) {
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix("  crawler runtime: "))
            .unwrap_or_else(|| panic!("no runtime line:\n{stdout}"));
        let n = |s: &str| s.split(' ').next().and_then(|v| v.parse().ok());
        let (w, c) = line.split_once(", ").expect("two numbers");
        (n(w).expect("workers"), n(c).expect("cpus"))
    };
    let stdout = bench_crawl(&["--origins", "2", "--pages", "3"]);
    assert_eq!(workers(&stdout), ((cpus - 1).max(1), cpus), "{stdout}");
    let out = Command::new(byline_bin())
        .args(["bench", "crawl", "--origins", "2", "--pages", "3"])
        .env("TOKIO_WORKER_THREADS", "3")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(workers(&stdout), (3, cpus), "{stdout}");
}

#[test]
fn bench_crawl_crawls_every_generated_page_and_reports_rate_and_memory() {
    let stdout = bench_crawl(&["--origins", "3", "--pages", "15"]);
    assert!(
        stdout.contains("(45 pages stored, 45 expected)"),
        "{stdout}"
    );
    assert!(stdout.contains("frontier: 45 done, 0 failed"), "{stdout}");
    assert!(stdout.contains("errors: none"), "{stdout}");
    assert!(stdout.contains("pages/s"), "{stdout}");
    // The throwaway corpus leaves nothing behind, its lock file included.
    let corpus = stdout
        .lines()
        .find_map(|l| l.split(", corpus ").nth(1))
        .unwrap_or_else(|| panic!("no corpus named:\n{stdout}"));
    for suffix in ["", "-wal", "-shm", ".crawl-lock"] {
        let left = format!("{corpus}{suffix}");
        assert!(!std::path::Path::new(&left).exists(), "{left} left behind");
    }
    // The crawler's own numbers, and the test servers' (a child process)
    // beside them (issue #26).
    let number_after = |prefix: &str, suffix: &str| -> f64 {
        stdout
            .lines()
            .find_map(|l| l.split(prefix).nth(1))
            .and_then(|v| v.split(suffix).next())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {prefix:?} line:\n{stdout}"))
    };
    let mib = number_after("crawler peak memory (VmHWM): ", " MiB");
    assert!(mib > 1.0, "{mib}");
    let ms = number_after("system = ", " ms per page stored");
    assert!(ms > 0.0, "{ms}");
    let servers = number_after("test servers (separate process): ", "s user");
    assert!(servers >= 0.0, "{servers}");
    assert!(stdout.contains("peak memory"), "{stdout}");
    // The numbers of a per-tenth line.
    let numbers_after = |prefix: &str| -> Vec<f64> {
        stdout
            .lines()
            .find_map(|l| l.split(prefix).nth(1))
            .unwrap_or_else(|| panic!("no {prefix:?} line:\n{stdout}"))
            .split_whitespace()
            .map(|v| v.parse().unwrap_or_else(|e| panic!("{v:?}: {e}")))
            .collect()
    };
    // Every tenth's rate, so a slowdown shows where it starts.
    let tenths = numbers_after("pages/s by tenth: ");
    assert_eq!(tenths.len(), 10, "{stdout}");
    assert!(tenths.iter().all(|r| *r > 0.0), "{tenths:?}");
    // And the crawler's CPU per page in each tenth (of 45 / 10 = 4 pages
    // each): the CPU they add up to is no more than the whole run's for its
    // 45 pages (which also counts what follows the 40th).
    let cpu = numbers_after("crawler CPU ms per page by tenth: ");
    assert_eq!(cpu.len(), 10, "{stdout}");
    assert!(cpu.iter().all(|c| *c >= 0.0), "{cpu:?}");
    let tenths_ms = cpu.iter().sum::<f64>() * 4.0;
    assert!(
        tenths_ms > 0.0 && tenths_ms <= ms * 45.0 + 0.05,
        "{cpu:?} vs {ms} ms per page"
    );
}

/// `bench crawl --index` runs the passage index pass after the crawl and
/// reports it on its own: every stored page split, and its CPU per page.
#[test]
fn bench_crawl_index_reports_the_index_pass_on_its_own() {
    let stdout = bench_crawl(&["--origins", "2", "--pages", "10", "--index"]);
    assert!(
        stdout.contains("(20 pages stored, 20 expected)"),
        "{stdout}"
    );
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("  index pass: "))
        .unwrap_or_else(|| panic!("no index pass line:\n{stdout}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words.get(..2), Some(&["20", "pages"][..]), "{line}");
    let passages: usize = words[3].parse().unwrap_or_else(|e| panic!("{line}: {e}"));
    assert!(passages >= 20, "{line}");
    let ms: f64 = line
        .split("= ")
        .nth(1)
        .and_then(|v| v.strip_suffix(" ms per page"))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no ms per page: {line}"));
    assert!(ms > 0.0, "{line}");
    assert!(
        stdout.contains("crawler peak memory (VmHWM, index pass included): "),
        "{stdout}"
    );
}

#[test]
fn ctrl_c_stops_taking_work_releases_claims_and_prints_the_summary() {
    // A slow site: every page takes 400 ms, one request at a time.
    let (s, _t) = TestServer::start_in_thread(|s| {
        let links: String = (0..40)
            .map(|i| format!("<a href=\"/p{i}\">{i}</a> "))
            .collect();
        s.route("/", Route::html(&format!("<main>{links}</main>")));
        s.fallback(
            Route::html("<main><p>Slow page.</p></main>")
                .delay(std::time::Duration::from_millis(400)),
        );
    });
    let dir = tempdir();
    let db = dir.path().join("c.db");
    let child = Command::new(byline_bin())
        .arg("--db")
        .arg(&db)
        .args(["crawl", "--delay-ms", "0"])
        .arg(s.url("/"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stdout}\n{stderr}");
    assert!(stdout.contains("interrupted after"), "{stdout}\n{stderr}");
    assert!(stdout.contains("fetched:"), "{stdout}");
    let done: usize = s.completed_all().values().map(|&n| n as usize).sum();
    assert!(done < 30, "the crawl went on after Ctrl-C: {done} requests");
    // Nothing is left in flight, and the same command continues the crawl.
    let conn = rusqlite_free_count(
        &db,
        "SELECT count(*) FROM frontier WHERE state = 'in_flight'",
    );
    assert_eq!(conn, 0);
    let queued = rusqlite_free_count(&db, "SELECT count(*) FROM frontier WHERE state = 'queued'");
    assert!(queued > 0);
}

/// One integer from the corpus, read with the byline binary's own store via sqlx.
fn rusqlite_free_count(db: &std::path::Path, sql: &str) -> i64 {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let p = crate::support::crawl::probe(db).await;
        crate::support::crawl::scalar_i64(&p, sql).await
    })
}

#[test]
fn a_crawl_beyond_this_machine_needs_a_contact_url() {
    let dir = tempdir();
    let db = dir.path().join("c.db");
    let out = Command::new(byline_bin())
        .arg("--db")
        .arg(&db)
        .env_remove("BYLINE_CONTACT")
        .args(["crawl", "https://example.org/"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("--contact") && stderr.contains("https://example.org/"),
        "{stderr}"
    );
    assert!(!db.exists(), "a refused crawl created a corpus");
}
