//! Precision on real documentation (issue #17): the SQLite manual as Debian
//! ships it (`sqlite3-doc`, installed by tools/test.sh), served on loopback
//! and crawled under `strict-opt-in`, where a false licence grant is the
//! worst mistake Byline can make. Expected readings live in
//! tests/data/realdocs/sqlite3-doc.json.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::consent_site::serve_dir;
use crate::support::crawl::{probe, scalar_i64, strings};
use crate::support::{byline_bin, tempdir};

const DOCS: &str = "/usr/share/doc/sqlite3";

fn expected() -> serde_json::Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/realdocs/sqlite3-doc.json");
    serde_json::from_slice(&std::fs::read(p).expect("expected readings")).expect("JSON")
}

fn set(v: &serde_json::Value) -> BTreeSet<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|s| s.as_str().expect("string").to_string())
        .collect()
}

/// Paths (without the loopback origin) of the pages a query returns.
async fn paths(pool: &sqlx::SqlitePool, sql: &str, base: &str) -> BTreeSet<String> {
    strings(pool, sql)
        .await
        .into_iter()
        .map(|u| u.strip_prefix(base).unwrap_or(&u).to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sqlite_manual_under_strict_opt_in_grants_nothing_without_a_licence_statement() {
    assert!(
        Path::new(DOCS).join("index.html").is_file(),
        "{DOCS}/index.html is missing: install Debian's sqlite3-doc (tools/test.sh does)"
    );
    let want = expected();
    let site = serve_dir("sqlite-doc", PathBuf::from(DOCS)).await;
    let dir = tempdir();
    let db = dir.path().join("docs.db");
    let policy = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/strict-opt-in.toml");
    let out = tokio::task::spawn_blocking({
        let db = db.clone();
        let seed = site.url("/index.html");
        move || {
            Command::new(byline_bin())
                .args(["crawl", "-q", "--delay-ms", "0", "--db"])
                .arg(&db)
                .arg("--policy")
                .arg(&policy)
                .arg(&seed)
                .output()
                .expect("running byline crawl")
        }
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "crawl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let pool = probe(&db).await;
    let pages = scalar_i64(&pool, "SELECT count(*) FROM pages").await;
    let min = want["min_pages"].as_i64().unwrap();
    assert!(pages >= min, "only {pages} pages crawled (want ≥ {min})");

    let base = site.base.as_str();
    let granted = paths(
        &pool,
        "SELECT DISTINCT page_url FROM verdicts WHERE decision IN ('allowed', 'allowed_with_conditions')",
        base,
    )
    .await;
    assert_eq!(granted, set(&want["granted_pages"]), "pages granted use");
    // Every page's verdicts say why: no licence was given.
    let unexplained = scalar_i64(
        &pool,
        "SELECT count(*) FROM verdicts WHERE decision = 'excluded' AND reasons NOT LIKE '%licence.none%'",
    )
    .await;
    assert_eq!(
        unexplained, 0,
        "exclusions for another reason than licence.none"
    );

    let evidence = |signal: &str, extra: &str| {
        format!(
            "SELECT DISTINCT s.page_url FROM evidence e JOIN evidence_sets s ON s.id = e.set_id
             WHERE e.signal = '{signal}' {extra}"
        )
    };
    let licence = paths(
        &pool,
        &evidence("licence", "AND e.parsed NOT LIKE '%\"absent\"%'"),
        base,
    )
    .await;
    assert_eq!(
        licence,
        set(&want["licence_evidence_pages"]),
        "licence evidence"
    );
    let notices = paths(&pool, &evidence("copyright-notice", ""), base).await;
    assert_eq!(
        notices,
        set(&want["copyright_notice_pages"]),
        "copyright notices"
    );
    let reservations = paths(&pool, &evidence("nl-reservation", ""), base).await;
    assert_eq!(
        reservations,
        set(&want["nl_reservation_pages"]),
        "reservation sentences"
    );
}
