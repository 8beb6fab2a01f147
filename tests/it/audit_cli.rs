//! `byline audit summary|why|sources|licences|origins|export` and
//! `byline forget` over a real crawl of the consent fixture world.

use std::collections::BTreeSet;
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::support::audit_world::{ORIGINS, crawled};
use crate::support::crawl::{probe, scalar_i64};
use crate::support::{byline_bin, byline_on, stdout_json};

fn byline(db: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(byline_bin())
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn json(db: &std::path::Path, args: &[&str]) -> serde_json::Value {
    stdout_json(&format!("{args:?}"), &byline_on(db, args))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_commands_describe_the_crawled_world() {
    let w = crawled(&ORIGINS).await;
    let db = w.corpus.path.clone();
    let pool = probe(&db).await;
    let frontier = scalar_i64(&pool, "SELECT count(*) FROM frontier").await;
    let pages = scalar_i64(&pool, "SELECT count(*) FROM pages").await;

    // summary
    let s = json(&db, &["audit", "summary", "--json"]);
    assert_eq!(s["urls"], frontier);
    assert_eq!(s["pages"], pages);
    assert_eq!(s["origins"], 11);
    for p in ["search_index", "rag_attributed", "train"] {
        let total: i64 = s["verdicts"][p]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_i64().unwrap())
            .sum();
        assert_eq!(total, frontier, "{p}: one record per URL met");
    }
    assert!(
        s["top_reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["reason"] == "robots.disallow")
    );
    assert_eq!(s["policies"][0]["policy_id"], "eu-opt-out");
    let (ok, human) = byline(&db, &["audit", "summary"]);
    assert!(ok);
    assert!(human.contains("verdicts in force"), "{human}");
    assert!(human.contains(&format!("{frontier} URLs met")), "{human}");

    // sources: every URL x purpose, filters agree with filtering by hand
    let all = json(&db, &["audit", "sources", "--json"]);
    let all = all.as_array().unwrap();
    assert_eq!(all.len() as i64, 3 * frontier);
    let train_excl = json(
        &db,
        &[
            "audit",
            "sources",
            "--json",
            "--purpose",
            "train",
            "--decision",
            "excluded",
        ],
    );
    let by_hand = all
        .iter()
        .filter(|r| r["purpose"] == "train" && r["decision"] == "excluded")
        .count();
    assert!(by_hand > 0);
    assert_eq!(train_excl.as_array().unwrap().len(), by_hand);
    let private = w.origin("private").base.clone();
    let only = json(&db, &["audit", "sources", "--json", "--origin", &private]);
    assert!(!only.as_array().unwrap().is_empty());
    assert!(
        only.as_array()
            .unwrap()
            .iter()
            .all(|r| r["origin"] == private.as_str())
    );
    let disallowed = json(
        &db,
        &[
            "audit",
            "sources",
            "--json",
            "--reason",
            "robots.disallow",
            "--purpose",
            "train",
        ],
    );
    let disallowed_url = disallowed.as_array().unwrap()[0]["url"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        disallowed
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["url"] == w.origin("private").url("/private/x.html").as_str()),
        "{disallowed}"
    );
    let (ok, err) = byline(&db, &["audit", "sources", "--purpose", "gaming"]);
    assert!(!ok && err.contains("unknown purpose"), "{err}");

    // licences / origins
    let lic = json(&db, &["audit", "licences", "--json"]);
    let urls: i64 = lic
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["urls"].as_i64().unwrap())
        .sum();
    assert_eq!(urls, frontier);
    assert!(
        lic.as_array()
            .unwrap()
            .iter()
            .any(|l| l["licence"] == "CC-BY-4.0"),
        "{lic}"
    );
    let cc_by = json(
        &db,
        &[
            "audit",
            "sources",
            "--json",
            "--licence",
            "CC-BY-4.0",
            "--purpose",
            "train",
        ],
    );
    assert!(
        cc_by
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["licence"] == "CC-BY-4.0")
    );
    let origins = json(&db, &["audit", "origins", "--json"]);
    assert_eq!(origins.as_array().unwrap().len(), 11);

    // why: a robots-disallowed page, never fetched
    let why = json(&db, &["audit", "why", &disallowed_url, "--json"]);
    assert_eq!(why["robots"]["allowed"], false);
    assert!(why["fetches"].as_array().unwrap().is_empty());
    assert!(
        why["robots"]["line_text"]
            .as_str()
            .unwrap()
            .starts_with("Disallow:"),
        "{why}"
    );
    let (ok, text) = byline(&db, &["audit", "why", &disallowed_url]);
    assert!(ok);
    assert!(text.contains("DISALLOWED for BylineBot"), "{text}");
    assert!(text.contains("never fetched"), "{text}");
    // why: a fetched page with a licence
    let e2 = w.origin("open").url("/e2.html");
    let (ok, text) = byline(&db, &["audit", "why", &e2]);
    assert!(ok, "{text}");
    assert!(text.contains("HTTP 200"), "{text}");
    assert!(text.contains("CC-BY-4.0"), "{text}");
    assert!(
        text.contains("1. robots.txt") && text.contains("5. Verdicts in force"),
        "{text}"
    );
    let j = json(&db, &["audit", "why", &e2, "--json"]);
    assert_eq!(j["verdicts"].as_array().unwrap().len(), 3);
    assert!(j["evidence"].as_array().unwrap().len() > 3);
    let (ok, text) = byline(&db, &["audit", "why", "http://127.0.0.1:1/nowhere"]);
    assert!(!ok && text.contains("not in the corpus"), "{text}");

    // export jsonl: one line per URL and purpose, Merkle root re-derived here
    let out = w.corpus.dir.path().join("export1");
    let e = json(
        &db,
        &[
            "audit",
            "export",
            "--format",
            "jsonl",
            "--out",
            out.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(e["version"], 1);
    let body = std::fs::read_to_string(out.join("verdicts.jsonl")).unwrap();
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len() as i64, 3 * frontier);
    let mut leaves: Vec<[u8; 32]> = Vec::new();
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        for k in [
            "url",
            "purpose",
            "decision",
            "reasons",
            "policy_sha256",
            "licence",
            "decided_at",
        ] {
            assert!(v.get(k).is_some(), "{k} missing in {l}");
        }
        let mut h = Sha256::new();
        h.update([0u8]);
        h.update(l.as_bytes());
        leaves.push(h.finalize().into());
    }
    while leaves.len() > 1 {
        leaves = leaves
            .chunks(2)
            .map(|c| {
                if c.len() == 1 {
                    c[0]
                } else {
                    let mut h = Sha256::new();
                    h.update([1u8]);
                    h.update(c[0]);
                    h.update(c[1]);
                    h.finalize().into()
                }
            })
            .collect();
    }
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["merkle_root"], hex::encode(leaves[0]));
    assert_eq!(manifest["records"], lines.len());
    assert_eq!(
        manifest["files"][0]["sha256"],
        hex::encode(Sha256::digest(body.as_bytes()))
    );
    assert!(body.contains(&disallowed_url));
    let csv_out = w.corpus.dir.path().join("export2");
    let e = json(
        &db,
        &[
            "audit",
            "export",
            "--format",
            "csv",
            "--purpose",
            "train",
            "--decision",
            "excluded",
            "--out",
            csv_out.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(e["version"], 2);
    assert_eq!(e["records"], by_hand);
    let csv = std::fs::read_to_string(csv_out.join("verdicts.csv")).unwrap();
    assert_eq!(csv.lines().count(), by_hand + 1);
    assert!(
        json(&db, &["audit", "verify", "--json"])["ok"]
            .as_bool()
            .unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forget_erases_keeps_a_tombstone_and_is_never_recrawled() {
    let w = crawled(&["open", "private"]).await;
    let db = w.corpus.path.clone();
    let e2 = w.origin("open").url("/e2.html");
    let hits = w.origin("open").hits("/e2.html");
    assert_eq!(hits, 1);
    let (ok, text) = byline(
        &db,
        &["forget", &e2, "--reason", "owner asked on 2026-11-28"],
    );
    assert!(ok, "{text}");
    assert!(
        text.contains("1 URL(s) tombstoned, 1 page text(s) erased"),
        "{text}"
    );
    let pool = probe(&db).await;
    let erased = scalar_i64(
        &pool,
        &format!("SELECT count(*) FROM pages WHERE url = '{e2}' AND text = ''"),
    )
    .await;
    assert_eq!(erased, 1);
    assert_eq!(
        scalar_i64(&pool, "SELECT count(*) FROM tombstones").await,
        1
    );
    // The log still verifies: erasure is a logged event, not tampering.
    let v = json(&db, &["audit", "verify", "--json"]);
    assert!(v["ok"].as_bool().unwrap(), "{v}");
    let why = json(&db, &["audit", "why", &e2, "--json"]);
    assert!(why["forgotten"].is_object(), "{why}");
    assert!(
        why["verdicts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["decision"] == "excluded" && r["usable_now"] == false)
    );
    // Forgetting it again erases nothing more, and says so.
    let (ok, text) = byline(&db, &["forget", &e2, "--reason", "asked again"]);
    assert!(ok, "{text}");
    assert!(text.contains("0 page text(s) erased"), "{text}");
    // Re-crawl: not fetched again.
    w.crawl_again().await;
    assert_eq!(w.origin("open").hits("/e2.html"), hits);
    // Forgetting before a crawl keeps the URL out of the frontier.
    let fresh = crate::support::crawl::corpus().await;
    let fdb = fresh.path.clone();
    let o = crate::support::consent_site::serve("private").await;
    let public = o.url("/public.html");
    assert!(byline(&fdb, &["forget", &public]).0);
    crate::support::crawl::crawl(&fresh, crate::support::crawl::config(&[o.url("/")])).await;
    assert_eq!(o.hits("/public.html"), 0);
    assert!(o.hits("/") >= 1);
    // The next export names what was removed since the previous one.
    let out1 = w.corpus.dir.path().join("x1");
    json(
        &db,
        &[
            "audit",
            "export",
            "--format",
            "jsonl",
            "--out",
            out1.to_str().unwrap(),
            "--json",
        ],
    );
    let p = w.origin("private").url("/public.html");
    assert!(byline(&db, &["forget", &p]).0);
    let out2 = w.corpus.dir.path().join("x2");
    json(
        &db,
        &[
            "audit",
            "export",
            "--format",
            "jsonl",
            "--out",
            out2.to_str().unwrap(),
            "--json",
        ],
    );
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out2.join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(m["removed_since_version"]["version"], 1);
    let removed: BTreeSet<&str> = m["removed_since_version"]["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["url"].as_str().unwrap())
        .collect();
    assert_eq!(removed, BTreeSet::from([p.as_str()]));
}
