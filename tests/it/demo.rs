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
    // The training dataset was written beside the corpus and one row loaded back.
    let ds = dir.path().join("demo-dataset");
    assert!(
        stdout.contains(&format!("dataset written to {}", ds.display())),
        "{stdout}"
    );
    let loaded = stdout
        .lines()
        .find(|l| l.starts_with("loaded back from "))
        .unwrap_or_else(|| panic!("no row loaded back:\n{stdout}"));
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ds.join("manifest.json")).unwrap()).unwrap();
    assert!(m["dataset"]["rows"].as_u64().unwrap() >= 1, "{m}");
    let url = m["dataset"]["sample"]["url"].as_str().unwrap();
    assert!(loaded.contains(url), "{loaded} names {url}");
    assert!(ds.join("README.md").is_file() && ds.join("croissant.json").is_file());
}

/// The `sample site served at URL` origin a demo run printed.
fn served_origin(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("sample site served at "))
        .unwrap_or_else(|| panic!("no 'sample site served at' line in:\n{stdout}"))
        .trim()
        .trim_end_matches('/')
        .to_string()
}

fn demo(db: &std::path::Path, port: &str) -> String {
    let out = Command::new(byline_bin())
        .arg("--db")
        .arg(db)
        .args(["demo", "--port", port])
        .output()
        .expect("running byline demo");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Two demo runs on one corpus whose site lands on different ports (port 0:
/// a free one each time, as when the default port is busy): the first
/// run's origin no longer answers, so nothing of it is retrieved or cited,
/// by the second demo's own answers or by a later `ask`.
#[test]
fn a_second_demo_on_another_port_retires_the_first_origin() {
    let dir = tempdir();
    let db = dir.path().join("demo.db");
    let first = served_origin(&demo(&db, "0"));
    let out = demo(&db, "0");
    let second = served_origin(&out);
    assert_ne!(first, second, "two free ports");
    assert!(
        out.contains(&format!("previous demo origin {first} is gone")),
        "{out}"
    );
    assert!(
        !out.contains(&format!("{first}/")),
        "the second demo's answers cite the first origin:\n{out}"
    );
    for q in [
        "Who built the Old Fulling Mill?",
        "When did the River Museum open?",
    ] {
        let out = Command::new(byline_bin())
            .arg("--db")
            .arg(&db)
            .args(["ask", "--json", "-n", "48", q])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}");
        let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        let retrieved = v["retrieved"].as_array().unwrap();
        assert!(!retrieved.is_empty(), "{stdout}");
        for r in retrieved {
            assert!(
                r["url"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("{second}/")),
                "retrieved from a gone origin: {r}"
            );
        }
        for c in v["citations"].as_array().unwrap() {
            assert!(
                c["url"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("{second}/")),
                "cited a gone origin: {c}"
            );
        }
    }
}

/// Without `--port`, a second demo serves the site at the first run's
/// origin again (the corpus remembers it), so nothing is retired and the
/// corpus holds one origin.
#[test]
fn demo_reuses_its_origin_by_default() {
    let dir = tempdir();
    let db = dir.path().join("demo.db");
    // A free port chosen by the first run, then reused by default.
    let first = served_origin(&demo(&db, "0"));
    let out = Command::new(byline_bin())
        .arg("--db")
        .arg(&db)
        .arg("demo")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert_eq!(served_origin(&stdout), first, "{stdout}");
    assert!(!stdout.contains("is gone"), "{stdout}");
}

/// The bookkeeping behind it: moving the demo marks the old origin gone,
/// coming back marks it live again.
#[tokio::test]
async fn demo_origins_are_marked_gone_and_live_again() {
    use byline::index::demo_served_at;
    let dir = tempdir();
    let store = byline::store::Store::open(&dir.path().join("c.db"))
        .await
        .unwrap();
    let (a, b) = ("http://127.0.0.1:1001", "http://127.0.0.1:1002");
    assert_eq!(demo_served_at(&store, a).await.unwrap(), None);
    assert_eq!(demo_served_at(&store, a).await.unwrap(), None);
    assert_eq!(demo_served_at(&store, b).await.unwrap().as_deref(), Some(a));
    let gone: Vec<String> = store
        .gone_origins()
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.origin)
        .collect();
    assert_eq!(gone, vec![a.to_string()]);
    assert_eq!(demo_served_at(&store, a).await.unwrap().as_deref(), Some(b));
    let gone: Vec<String> = store
        .gone_origins()
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.origin)
        .collect();
    assert_eq!(gone, vec![b.to_string()]);
}
