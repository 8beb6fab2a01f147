//! `byline audit recheck`: a crawled site changes its robots.txt and its
//! headers; the recheck revokes exactly the affected uses, with evidence,
//! removes them from retrieval, flags the answers that cited them, keeps the
//! audit chain valid and is idempotent.

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;

use crate::support::crawl::{answer_citing, found};
use crate::support::crawl::{probe, strings};
use crate::support::recheck_site::{PAGES, Site, crawled};
use crate::support::{byline_bin, byline_on, stdout_json};

async fn byline(db: &std::path::Path, args: &[&str]) -> (bool, String) {
    let mut cmd = Command::new(byline_bin());
    cmd.arg("--db").arg(db).args(args);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

async fn json(db: &std::path::Path, args: &[&str]) -> Value {
    let (db, what) = (db.to_path_buf(), format!("{args:?}"));
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        byline_on(&db, &args)
    })
    .await
    .unwrap();
    stdout_json(&what, &out)
}

fn usable(d: &str) -> bool {
    matches!(d, "allowed" | "allowed_with_conditions")
}

async fn decisions(site: &Site, name: &str) -> Vec<(String, String)> {
    site.corpus
        .store
        .latest_verdicts(&site.url(name), None)
        .await
        .unwrap()
        .into_iter()
        .map(|v| (v.purpose, v.decision))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recheck_revokes_exactly_the_uses_owners_opted_out_of() {
    let site = crawled().await;
    let db = site.corpus.path.clone();
    let store = &site.corpus.store;
    // Before: every page usable for every purpose and retrievable.
    let mut before = Vec::new();
    for (f, w) in PAGES {
        let d = decisions(&site, f).await;
        assert_eq!(d.len(), 3, "{f}: {d:?}");
        assert!(d.iter().all(|(_, d)| usable(d)), "{f}: {d:?}");
        assert_eq!(found(store, w).await, vec![site.url(f)], "{w}");
        before.push((f, d));
    }
    let cites_alpaca = answer_citing(store, "alpaca").await;
    let cites_basalt = answer_citing(store, "basalt").await;
    let cites_cedar = answer_citing(store, "cedar").await;
    // An export before the change, so that a later one lists the removals.
    let out1 = site.corpus.dir.path().join("export1");
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
    )
    .await;

    // The owner disallows our agent on one page, adds `X-Robots-Tag: noai`
    // to another and a TDMRep reservation header to a third.
    std::fs::write(
        site.file("robots.txt"),
        "User-agent: BylineBot\nDisallow: /alpaca.html\n\nUser-agent: *\nAllow: /\n",
    )
    .unwrap();
    std::fs::write(site.file("basalt.html.headers"), "X-Robots-Tag: noai\n").unwrap();
    std::fs::write(site.file("dolphin.html.headers"), "TDM-Reservation: 1\n").unwrap();
    let alpaca_hits = site.origin.hits("/alpaca.html");
    let basalt_hits = site.origin.hits("/basalt.html");
    let robots_hits = site.origin.hits("/robots.txt");

    let r = json(&db, &["audit", "recheck", "--min-delay-ms", "0", "--json"]).await;
    assert_eq!(r["origins"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(r["pages_reevaluated"], 5, "{r}");
    assert_eq!(r["errors"].as_array().unwrap().len(), 0, "{r}");
    // robots.txt was fetched again; the disallowed page was not requested,
    // the others were (HEAD).
    assert_eq!(site.origin.hits("/robots.txt"), robots_hits + 1);
    assert_eq!(site.origin.hits("/alpaca.html"), alpaca_hits);
    assert_eq!(site.origin.hits("/basalt.html"), basalt_hits + 1);

    // Exactly the affected uses are revoked: robots.txt disallow → every
    // purpose; noai and tdm-reservation: 1 → rag_attributed and train
    // (spec tables X3 and T1), search_index stays.
    let got: BTreeSet<(String, String)> = r["revoked"]
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
    let mut want = BTreeSet::new();
    for p in ["search_index", "rag_attributed", "train"] {
        want.insert((site.url("alpaca.html"), p.to_string()));
    }
    for f in ["basalt.html", "dolphin.html"] {
        for p in ["rag_attributed", "train"] {
            want.insert((site.url(f), p.to_string()));
        }
    }
    assert_eq!(got, want, "{r}");
    assert_eq!(r["revoked_per_purpose"]["search_index"], 1);
    assert_eq!(r["revoked_per_purpose"]["rag_attributed"], 3);
    for (f, d) in &before {
        if *f == "cedar.html" {
            assert_eq!(&decisions(&site, f).await, d, "cedar is unchanged");
        }
    }

    // Each revocation carries the evidence that caused it.
    let pool = probe(&db).await;
    for x in r["revoked"].as_array().unwrap() {
        let ids: Vec<String> = x["evidence_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.to_string())
            .collect();
        assert!(!ids.is_empty(), "{x}");
        let sql = format!(
            "SELECT signal || ' ' || raw FROM evidence WHERE id IN ({})",
            ids.join(",")
        );
        let ev = strings(&pool, &sql).await.join(" | ");
        let url = x["url"].as_str().unwrap();
        let reasons = x["reasons"].to_string();
        if url.ends_with("alpaca.html") {
            assert!(ev.contains("robots.txt"), "{ev}");
            assert!(reasons.contains("robots.disallow"), "{reasons}");
        } else if url.ends_with("basalt.html") {
            assert!(ev.contains("x-robots-tag noai"), "{ev}");
            assert!(reasons.contains("meta.noai"), "{reasons}");
        } else {
            assert!(ev.contains("tdmrep.header tdm-reservation: 1"), "{ev}");
        }
        assert!(usable(x["old_decision"].as_str().unwrap()));
        assert!(!usable(x["new_decision"].as_str().unwrap()));
    }
    let stored = store.revocations(None).await.unwrap();
    assert_eq!(stored.len(), want.len());
    assert!(stored.iter().all(|s| s.after_export == Some(1)));
    let events = strings(
        &pool,
        "SELECT subject FROM audit_events WHERE kind = 'revocation' ORDER BY seq",
    )
    .await;
    assert_eq!(events.len(), want.len());

    // Retrieval drops them at once; the unaffected page stays.
    assert!(found(store, "alpaca").await.is_empty());
    assert!(found(store, "basalt").await.is_empty());
    assert!(found(store, "dolphin").await.is_empty());
    assert_eq!(found(store, "cedar").await, vec![site.url("cedar.html")]);

    // The answers citing revoked pages are flagged, the other is not.
    let flagged: Vec<i64> = r["flagged_answers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(flagged, vec![cites_alpaca, cites_basalt]);
    let a = store.answer(cites_alpaca).await.unwrap().unwrap();
    assert!(a.flagged_at.is_some());
    let rag_alpaca = stored
        .iter()
        .find(|s| s.purpose == "rag_attributed" && s.page_url.ends_with("alpaca.html"))
        .unwrap();
    assert_eq!(a.flag_revocation_id, Some(rag_alpaca.id));
    assert!(
        store
            .answer(cites_cedar)
            .await
            .unwrap()
            .unwrap()
            .flagged_at
            .is_none()
    );

    // `audit why` shows a page's revocations with their evidence.
    let why = json(&db, &["audit", "why", &site.url("alpaca.html"), "--json"]).await;
    let revs = why["revocations"].as_array().expect("revocations");
    let purposes: BTreeSet<&str> = revs
        .iter()
        .map(|x| x["purpose"].as_str().unwrap())
        .collect();
    let want_alpaca: BTreeSet<&str> = want
        .iter()
        .filter(|(u, _)| u.ends_with("alpaca.html"))
        .map(|(_, p)| p.as_str())
        .collect();
    assert_eq!(purposes, want_alpaca, "{why}");
    assert!(
        revs.iter()
            .all(|x| !x["evidence_ids"].as_array().unwrap().is_empty()),
        "{why}"
    );
    let why_cedar = json(&db, &["audit", "why", &site.url("cedar.html"), "--json"]).await;
    assert_eq!(why_cedar["revocations"].as_array().unwrap().len(), 0);
    let (ok, text) = byline(&db, &["audit", "why", &site.url("basalt.html")]).await;
    assert!(ok && text.contains("REVOKED"), "{text}");

    // The audit chain still verifies.
    let v = json(&db, &["audit", "verify", "--json"]).await;
    assert_eq!(v["ok"], true, "{v}");

    // A later export lists what was removed since version 1.
    let out2 = site.corpus.dir.path().join("export2");
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
    )
    .await;
    let m = crate::audit_export::manifest(&out2);
    assert_eq!(m["removed_since_version"]["version"], 1);
    let removed: BTreeSet<(String, String)> =
        crate::audit_export::revoked_since(&m).into_iter().collect();
    assert_eq!(removed, want);

    // Nothing changed since: a second recheck revokes nothing.
    let r2 = json(&db, &["audit", "recheck", "--min-delay-ms", "0", "--json"]).await;
    assert_eq!(r2["revoked"].as_array().unwrap().len(), 0, "{r2}");
    assert_eq!(r2["flagged_answers"].as_array().unwrap().len(), 0, "{r2}");
    assert_eq!(r2["pages_reevaluated"], 5);
    assert_eq!(store.revocations(None).await.unwrap().len(), want.len());

    // The owner lifts the noai header: the page is usable again only
    // through a new verdict row, reported as restored, never revoked.
    std::fs::remove_file(site.file("basalt.html.headers")).unwrap();
    let r3 = json(
        &db,
        &[
            "audit",
            "recheck",
            "--origin",
            &site.origin.base,
            "--min-delay-ms",
            "0",
            "--json",
        ],
    )
    .await;
    assert_eq!(r3["revoked"].as_array().unwrap().len(), 0, "{r3}");
    let restored: BTreeSet<String> = r3["restored"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["url"] == site.url("basalt.html").as_str())
        .map(|x| x["purpose"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        restored,
        ["rag_attributed", "train"].map(String::from).into()
    );
    assert_eq!(found(store, "basalt").await, vec![site.url("basalt.html")]);
    let v = json(&db, &["audit", "verify", "--json"]).await;
    assert_eq!(v["ok"], true, "{v}");
}
