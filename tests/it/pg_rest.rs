//! Re-crawl, recheck, erasure and leases on PostgreSQL (issue #20):
//! `byline crawl --refresh`, `byline audit recheck` and `byline forget`
//! against `--db postgres://…`, erasure that leaves no byte of the page in
//! the throwaway cluster's data files, and a crawl worker whose lease
//! expired (its URL re-claimed by another) never committing its result.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use byline::store::Store;
use byline::store::crawl::{FetchRecord, FrontierOutcome, LinkBudget, RunRecord};
use byline::store::frontier::{Lease, NewEntry};
use serde_json::Value;
use sqlx::Connection;
use sqlx::postgres::PgConnection;

use crate::support::consent_site::serve_dir;
use crate::support::refresh_site::{ChangingSite, page};
use crate::support::server::{Route, TestServer};
use crate::support::{byline_bin, pg, tempdir};

async fn byline(db: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(byline_bin());
    cmd.arg("--db").arg(db).args(args);
    tokio::task::spawn_blocking(move || cmd.output().expect("running byline"))
        .await
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

async fn ok_json(db: &str, args: &[&str]) -> Value {
    let o = byline(db, args).await;
    assert!(o.status.success(), "{args:?}: {}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {}", text(&o)))
}

async fn conn(url: &str) -> PgConnection {
    PgConnection::connect(url)
        .await
        .expect("connecting to the test database")
}

async fn count(url: &str, sql: &str) -> i64 {
    let mut c = conn(url).await;
    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(&mut c)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    c.close().await.unwrap();
    n
}

async fn verify_ok(db: &str) {
    let v = ok_json(db, &["audit", "verify", "--json"]).await;
    assert_eq!(v["ok"], true, "{v:#}");
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// The files under `dir` (recursively) whose bytes hold `needle`, split
/// into (WAL segments, everything else).
fn files_holding(dir: &Path, needle: &str) -> (Vec<PathBuf>, Vec<PathBuf>) {
    fn walk(d: &Path, needle: &[u8], wal: &mut Vec<PathBuf>, other: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, needle, wal, other);
            } else if let Ok(b) = std::fs::read(&p) {
                if contains(&b, needle) {
                    if p.components().any(|c| c.as_os_str() == "pg_wal") {
                        wal.push(p);
                    } else {
                        other.push(p);
                    }
                }
            }
        }
    }
    let (mut wal, mut other) = (Vec::new(), Vec::new());
    walk(dir, needle.as_bytes(), &mut wal, &mut other);
    (wal, other)
}

/// Writes every dirty buffer of the cluster to its data files (as the
/// superuser the tests run the cluster with), so the files are what a
/// disk would hold.
async fn checkpoint(url: &str) {
    let mut c = conn(url).await;
    sqlx::query("CHECKPOINT").execute(&mut c).await.unwrap();
    c.close().await.unwrap();
}

/// `byline forget` on PostgreSQL: the page's text, title and passages are
/// erased, the dead row versions vacuumed away, and no data file of the
/// cluster holds a byte of it afterwards (it did before, so the search
/// could fail); `audit verify` stays ok and a second forget has nothing
/// left to erase.
/// A site of two pages, the second holding `marker` in its text and
/// `title` as its title.
async fn secret_site(marker: &str, title: &str) -> TestServer {
    let s = TestServer::start().await;
    s.route("/robots.txt", Route::text("User-agent: *\nAllow: /\n"));
    s.route(
        "/",
        Route::html(
            "<html><head><title>Home</title></head><body><p>The home page links to a page.</p>\
             <a href=\"/secret.html\">a page</a></body></html>",
        ),
    );
    s.route(
        "/secret.html",
        Route::html(&format!(
            "<html><head><title>{title}</title></head><body><main><p>{marker} is written here \
             once, in a page the owner will ask us to forget.</p></main></body></html>"
        )),
    );
    s
}

/// The secret site crawled into a fresh database: the server, the
/// database URL and the secret page's URL.
async fn crawled_secret(marker: &str, title: &str) -> (TestServer, String, String) {
    let s = secret_site(marker, title).await;
    let url = pg::fresh_db().await;
    let o = byline(&url, &["crawl", "--delay-ms", "0", &s.url("/")]).await;
    assert!(o.status.success(), "{}", text(&o));
    let page = s.url("/secret.html");
    (s, url, page)
}

/// After a checkpoint, no data file of the cluster (the WAL aside) holds
/// `marker` or `title`; the WAL segments that still do.
async fn assert_no_data_file_holds(url: &str, marker: &str, title: &str) -> Vec<PathBuf> {
    checkpoint(url).await;
    let data = pg::cluster().data_dir();
    let (wal, after) = files_holding(&data, marker);
    assert!(after.is_empty(), "still holding the erased text: {after:?}");
    let (_, after_title) = files_holding(&data, title);
    assert!(
        after_title.is_empty(),
        "still holding the title: {after_title:?}"
    );
    wal
}

/// `byline forget` on PostgreSQL while other sessions of the cluster hold
/// snapshots taken before the erasure (a report's repeatable-read
/// transaction; an autovacuum's ANALYZE does the same): `VACUUM FULL`
/// keeps the row versions such a snapshot may see, so forget waits for
/// them to end before vacuuming, and no data file holds the page
/// afterwards. (Without the wait the erased text stayed in the `pages`
/// and `passages` files, as when another test's session in another
/// database of the shared test cluster happened to hold one.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forget_on_postgres_waits_for_an_older_snapshot_before_vacuuming() {
    const MARKER: &str = "Brindlewick Osmandine Held Snapshot Sentence";
    const TITLE: &str = "Quorvane Tessaly Title";
    let (_s, url, page) = crawled_secret(MARKER, TITLE).await;

    // Two readers' snapshots from before the erasure, held for 1.5 s
    // after forget starts: one in this database, one in another database
    // of the cluster (which a test found keeping the erased rows too).
    // They read a table forget does not rewrite, so hold no lock that
    // would make the rewrite wait anyway: only the snapshot.
    let other = pg::fresh_db().await;
    let mut held = Vec::new();
    for db in [url.clone(), other] {
        let mut reader = conn(&db).await;
        sqlx::raw_sql("BEGIN ISOLATION LEVEL REPEATABLE READ")
            .execute(&mut reader)
            .await
            .unwrap();
        let one: i32 = sqlx::query_scalar("SELECT 1")
            .fetch_one(&mut reader)
            .await
            .unwrap();
        assert_eq!(one, 1);
        held.push(tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
            sqlx::raw_sql("COMMIT").execute(&mut reader).await.unwrap();
            reader.close().await.unwrap();
        }));
    }
    let started = std::time::Instant::now();
    let r = ok_json(&url, &["forget", "--json", &page]).await;
    let took = started.elapsed();
    for h in held {
        h.await.unwrap();
    }
    assert_eq!(r["pages_erased"], 1, "{r:#}");
    assert_eq!(r["old_versions_vacuumed"], true, "{r:#}");
    assert!(
        took >= std::time::Duration::from_millis(1400),
        "forget waited for the older snapshot ({took:?})"
    );
    assert_no_data_file_holds(&url, MARKER, TITLE).await;
    verify_ok(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forget_on_postgres_leaves_no_byte_of_the_page_in_the_data_files() {
    const MARKER: &str = "Quillfeather Vantablue Sentence Of Erasure";
    const TITLE: &str = "Zephyrine Marrowgate Title";
    let (_s, url, page) = crawled_secret(MARKER, TITLE).await;
    assert_eq!(
        count(
            &url,
            &format!("SELECT count(*) FROM pages WHERE url = '{page}'")
        )
        .await,
        1
    );
    // The crawl indexed it for retrieval (passages hold copies).
    assert!(count(&url, "SELECT count(*) FROM passages").await > 0);
    verify_ok(&url).await;

    checkpoint(&url).await;
    let data = pg::cluster().data_dir();
    let (_, before) = files_holding(&data, MARKER);
    assert!(
        !before.is_empty(),
        "the data files hold the page before forget"
    );
    let (_, before_title) = files_holding(&data, TITLE);
    assert!(!before_title.is_empty());

    let r = ok_json(&url, &["forget", "--json", &page]).await;
    assert_eq!(r["forgotten"], serde_json::json!([page]), "{r:#}");
    assert_eq!(r["pages_erased"], 1, "{r:#}");
    let wal = assert_no_data_file_holds(&url, MARKER, TITLE).await;
    // The WAL keeps its copies until its segments are recycled (reported,
    // not asserted: see the notes).
    eprintln!("WAL segments still holding the erased text: {}", wal.len());

    verify_ok(&url).await;
    let again = ok_json(&url, &["forget", "--json", &page]).await;
    assert_eq!(
        again["already_forgotten"],
        serde_json::json!([page]),
        "{again:#}"
    );
    // A tombstoned URL is never queued again.
    let o = byline(&url, &["crawl", "--delay-ms", "0", &page]).await;
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        count(
            &url,
            &format!("SELECT count(*) FROM pages WHERE url = '{page}' AND text <> ''")
        )
        .await,
        0
    );
}

/// `byline crawl --refresh` on PostgreSQL: an unchanged page is asked
/// conditionally and answers 304 (a fetch without a body, no new version);
/// a changed page gets a `page_versions` row, its new text and new links
/// (crawled normally); everything is logged (`audit verify`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_on_postgres_records_versions_and_304s() {
    let site = ChangingSite::start().await;
    site.text("/robots.txt", "User-agent: *\nAllow: /\n");
    site.html(
        "/",
        &page("index", "", true, "", &["/same.html", "/hub.html"]),
    );
    site.html("/same.html", &page("dolphin", "", true, "", &[]));
    site.html("/hub.html", &page("harbour", "", true, "", &[]));
    let url = pg::fresh_db().await;
    let o = byline(&url, &["crawl", "--delay-ms", "0", &site.url("/")]).await;
    assert!(o.status.success(), "{}", text(&o));

    site.html(
        "/hub.html",
        &page(
            "harbour",
            "",
            true,
            "<p>Now with a new section.</p>",
            &["/fresh.html"],
        ),
    );
    site.html("/fresh.html", &page("fjord", "", true, "", &[]));
    site.clear_log();
    let r = ok_json(
        &url,
        &[
            "crawl",
            "--refresh",
            "--refresh-all",
            "--revisit-interval",
            "1000",
            "--delay-ms",
            "0",
            "--json",
        ],
    )
    .await;
    let same = site.requests("/same.html");
    assert_eq!(same.len(), 1, "{same:?}");
    assert_eq!(same[0].status, 304, "{same:?}");
    let same_url = site.url("/same.html");
    let hub = site.url("/hub.html");
    assert!(
        r["refresh"]["unchanged"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u == same_url.as_str()),
        "{r:#}"
    );
    assert_eq!(
        count(
            &url,
            &format!(
                "SELECT count(*) FROM fetches WHERE requested_url = '{same_url}' AND status = 304 AND body_sha256 IS NULL"
            )
        )
        .await,
        1
    );
    let store = Store::open_existing(Path::new(&url)).await.unwrap();
    assert!(store.page_versions(&same_url).await.unwrap().is_empty());
    let v = store.page_versions(&hub).await.unwrap();
    assert_eq!(v.len(), 1, "{v:?}");
    assert_ne!(v[0].old_text_sha256, v[0].new_text_sha256);
    assert_eq!(
        count(
            &url,
            &format!(
                "SELECT count(*) FROM pages WHERE url = '{hub}' AND text LIKE '%new section%'"
            )
        )
        .await,
        1
    );
    // The new link was queued and crawled.
    assert_eq!(site.requests("/fresh.html").len(), 1);
    assert_eq!(r["crawl"]["pages"], 1, "{r:#}");
    assert_eq!(
        count(&url, "SELECT count(*) FROM revisit_schedule").await,
        3,
    );
    store.close().await;
    verify_ok(&url).await;
    // Nothing is due again: a second refresh checks nothing.
    let r = ok_json(&url, &["crawl", "--refresh", "--delay-ms", "0", "--json"]).await;
    assert_eq!(r["refresh"]["checked"], 0, "{r:#}");
}

/// `byline audit recheck` on PostgreSQL: the owner disallows our agent on
/// one page; the recheck revokes every purpose of that page only, with
/// its evidence, and the log stays valid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recheck_on_postgres_revokes_a_newly_disallowed_page() {
    let dir = tempdir();
    let pages = ["alpaca.html", "basalt.html"];
    let mut links = String::new();
    for f in pages {
        let w = f.trim_end_matches(".html");
        std::fs::write(
            dir.path().join(f),
            format!(
                "<!doctype html><html lang=en><head><title>All about the {w}</title></head><body><main>\
                 <p>The {w} is the subject of this page, with facts about the {w}.</p></main></body></html>"
            ),
        )
        .unwrap();
        links.push_str(&format!("<a href=\"/{f}\">{w}</a> "));
    }
    std::fs::write(
        dir.path().join("index.html"),
        format!("<!doctype html><html><head><title>Index</title></head><body><p>Index.</p>{links}</body></html>"),
    )
    .unwrap();
    std::fs::write(dir.path().join("robots.txt"), "User-agent: *\nAllow: /\n").unwrap();
    let origin = serve_dir("pgrecheck", dir.path().to_path_buf()).await;
    let url = pg::fresh_db().await;
    let o = byline(&url, &["crawl", "--delay-ms", "0", &origin.url("/")]).await;
    assert!(o.status.success(), "{}", text(&o));

    std::fs::write(
        dir.path().join("robots.txt"),
        "User-agent: BylineBot\nDisallow: /alpaca.html\n\nUser-agent: *\nAllow: /\n",
    )
    .unwrap();
    let r = ok_json(&url, &["audit", "recheck", "--min-delay-ms", "0", "--json"]).await;
    assert_eq!(r["errors"].as_array().unwrap().len(), 0, "{r:#}");
    let mut got: Vec<(String, String)> = r["revoked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["url"].as_str().unwrap().to_string(),
                x["purpose"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    let alpaca = origin.url("/alpaca.html");
    let want: Vec<(String, String)> = ["rag_attributed", "search_index", "train"]
        .iter()
        .map(|p| (alpaca.clone(), p.to_string()))
        .collect();
    assert_eq!(got, want, "{r:#}");
    assert_eq!(count(&url, "SELECT count(*) FROM revocations").await, 3);
    verify_ok(&url).await;
    // Idempotent: nothing more to revoke.
    let r = ok_json(&url, &["audit", "recheck", "--min-delay-ms", "0", "--json"]).await;
    assert_eq!(r["revoked"].as_array().unwrap().len(), 0, "{r:#}");
    assert_eq!(count(&url, "SELECT count(*) FROM revocations").await, 3);
    verify_ok(&url).await;
}

fn fetch(run_id: i64, frontier_id: i64, url: &str, attempt: i64) -> FetchRecord {
    FetchRecord {
        run_id,
        frontier_id,
        attempt,
        requested_url: url.to_string(),
        final_url: Some(url.to_string()),
        redirect_chain_json: "[]".into(),
        fetched_at: 1_700_000_000,
        elapsed_ms: 5,
        status: Some(404),
        user_agent: "BylineBot/test".into(),
        response_headers_json: "[]".into(),
        content_type: Some("text/html".into()),
        body_sha256: None,
        body_bytes: Some(0),
        truncated: false,
        declared_charset: None,
        detected_charset: None,
        error_kind: None,
        error_detail: None,
    }
}

/// A worker whose lease expired, and whose URL another worker re-claimed,
/// does not commit its late result: exactly one fetch row for the URL, the
/// one of the worker that holds the lease; the late one is reported as
/// dropped, not an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_lease_expired_does_not_commit() {
    let url = pg::fresh_db().await;
    let store = Store::open(Path::new(&url)).await.unwrap();
    let run = store
        .crawl_run_start(&RunRecord {
            started_at: 1_700_000_000,
            byline_version: "test".into(),
            user_agent: "BylineBot/test".into(),
            config_json: "{}".into(),
            config_sha256: "0".repeat(64),
            policy_sha256: None,
            seeds_json: "[]".into(),
        })
        .await
        .unwrap();
    let target = "http://127.0.0.1:9/slow.html";
    store
        .frontier_add_seeds(
            run,
            &[NewEntry {
                url: target.into(),
                url_norm: target.into(),
                origin: "http://127.0.0.1:9".into(),
                depth: 0,
                discovered_from: None,
                shape: None,
            }],
            1_700_000_000,
        )
        .await
        .unwrap();
    let id = store.frontier_ready(i64::MAX, 10).await.unwrap()[0].id;
    let (a, b) = (store.for_worker("worker-a"), store.for_worker("worker-b"));
    // A claims with a short lease, then stalls past it.
    let lease_a = Lease {
        worker: "worker-a".into(),
        ms: 200,
    };
    assert!(
        a.frontier_claim(id, run, 1_700_000_000, &lease_a)
            .await
            .unwrap()
    );
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    // B's run start puts expired claims back and B claims the URL.
    assert_eq!(b.frontier_requeue_in_flight().await.unwrap(), 1);
    let lease_b = Lease {
        worker: "worker-b".into(),
        ms: 60_000,
    };
    assert!(
        b.frontier_claim(id, run, 1_700_000_001, &lease_b)
            .await
            .unwrap()
    );
    // A's late result: dropped.
    let late = a
        .crawl_complete(
            &[],
            Some(&fetch(run, id, target, 1)),
            None,
            &FrontierOutcome::Done,
            id,
            LinkBudget::NONE,
            None,
            1_700_000_002,
        )
        .await
        .unwrap();
    assert!(late.lease_lost, "{late:?}");
    assert_eq!(late.fetch_id, None);
    assert_eq!(
        count(&url, "SELECT count(*) FROM fetches").await,
        0,
        "the late result left a fetch row"
    );
    assert_eq!(
        count(
            &url,
            "SELECT count(*) FROM frontier WHERE state = 'in_flight' AND lease_owner = 'worker-b'"
        )
        .await,
        1
    );
    // B, which holds the lease, commits.
    let done = b
        .crawl_complete(
            &[],
            Some(&fetch(run, id, target, 2)),
            None,
            &FrontierOutcome::Done,
            id,
            LinkBudget::NONE,
            None,
            1_700_000_003,
        )
        .await
        .unwrap();
    assert!(!done.lease_lost);
    assert!(done.fetch_id.is_some());
    assert_eq!(count(&url, "SELECT count(*) FROM fetches").await, 1);
    assert_eq!(
        count(&url, "SELECT count(*) FROM frontier WHERE state = 'done'").await,
        1
    );
    // A, late again (after B finished), is still dropped.
    let again = a
        .crawl_complete(
            &[],
            Some(&fetch(run, id, target, 1)),
            None,
            &FrontierOutcome::Done,
            id,
            LinkBudget::NONE,
            None,
            1_700_000_004,
        )
        .await
        .unwrap();
    assert!(again.lease_lost);
    assert_eq!(count(&url, "SELECT count(*) FROM fetches").await, 1);
    store.close().await;
    verify_ok(&url).await;
}
