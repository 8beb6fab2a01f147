//! `byline demo`: the quick-start main job serves the bundled site, crawls it
//! and reports verdicts.

use std::process::Command;

use crate::support::{byline_bin, tempdir};

#[test]
fn demo_crawls_the_sample_site_and_keeps_the_robots_disallowed_page_out() {
    let dir = tempdir();
    let db = dir.path().join("demo.db");
    let out = Command::new(byline_bin())
        .arg("--db")
        .arg(&db)
        .arg("demo")
        .output()
        .expect("running byline demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("skipped by robots: 1"),
        "the /private/ page is disallowed by the sample robots.txt:\n{stdout}"
    );
    assert!(
        stdout.contains("rag_attributed"),
        "verdict table printed:\n{stdout}"
    );
    let stored: u32 = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("pages stored:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no 'pages stored:' line in:\n{stdout}"));
    assert!(
        stored >= 12,
        "the sample site has a dozen public pages, stored {stored}"
    );
}
