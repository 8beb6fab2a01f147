//! `byline crawl --refresh` and `audit recheck --bodies` on a loopback site
//! whose pages change between runs (issue #25): a page that adds meta
//! `noai`, one that drops its CC licence, one that answers 410, one that is
//! unchanged (answered 304 to a conditional GET), and a new page linked from
//! a changed one. Verdicts, revocations and their cascade (answers flagged,
//! retrieval), page versions, the revisit schedule and `audit verify`.

use std::path::{Path, PathBuf};
use std::process::Command;

use byline::store::Store;
use serde_json::Value;

use crate::support::byline_bin;
use crate::support::crawl::{answer_citing, found};
use crate::support::crawl::{probe, scalar_i64};
use crate::support::refresh_site::{ChangingSite, LAST_MODIFIED, etag, page};

const EU: &str = "policies/eu-opt-out.toml";
const STRICT: &str = "policies/strict-opt-in.toml";

fn policy(p: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(p)
        .display()
        .to_string()
}

/// Runs byline; returns the exit code, stdout and stderr.
async fn run(db: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let mut cmd = Command::new(byline_bin());
    cmd.arg("--db").arg(db).arg("--quiet").args(args);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn ok_json(db: &Path, args: &[&str]) -> Value {
    let (code, out, err) = run(db, args).await;
    assert_eq!(code, Some(0), "{args:?}: {out}{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}{err}"))
}

async fn flagged(store: &Store, answer: i64) -> bool {
    store
        .answer(answer)
        .await
        .unwrap()
        .unwrap()
        .flagged_at
        .is_some()
}

async fn rag_decision(store: &Store, url: &str) -> String {
    store
        .latest_verdicts(url, None)
        .await
        .unwrap()
        .into_iter()
        .find(|v| v.purpose == "rag_attributed")
        .map(|v| v.decision)
        .unwrap_or_else(|| panic!("no rag_attributed verdict for {url}"))
}

fn usable(d: &str) -> bool {
    d == "allowed" || d == "allowed_with_conditions"
}

/// The site as first crawled.
fn site_v1(s: &ChangingSite) {
    s.text("/robots.txt", "User-agent: *\nAllow: /\n");
    s.html(
        "/",
        &page(
            "catalogue",
            "",
            true,
            "",
            &[
                "/noai.html",
                "/licensed.html",
                "/gone.html",
                "/same.html",
                "/hub.html",
            ],
        ),
    );
    s.html("/noai.html", &page("alpaca", "", true, "", &[]));
    s.html("/licensed.html", &page("basalt", "", true, "", &[]));
    s.html("/gone.html", &page("cedar", "", true, "", &[]));
    s.html("/same.html", &page("dolphin", "", true, "", &[]));
    s.html("/hub.html", &page("ember", "", true, "", &[]));
}

/// The site as the refresh finds it.
fn site_v2(s: &ChangingSite) {
    s.html(
        "/noai.html",
        &page(
            "alpaca",
            "<meta name=\"robots\" content=\"noai\">",
            true,
            "",
            &[],
        ),
    );
    s.html("/licensed.html", &page("basalt", "", false, "", &[]));
    s.status("/gone.html", 410);
    s.html(
        "/hub.html",
        &page("ember", "", true, "Now with a new page.", &["/fresh.html"]),
    );
    s.html("/fresh.html", &page("fjord", "", true, "", &[]));
}

/// `crawl --refresh --refresh-all` (every page revisited now), its report.
async fn refresh_all(db: &Path) -> Value {
    ok_json(
        db,
        &[
            "crawl",
            "--refresh",
            "--refresh-all",
            "--revisit-interval",
            "1000",
            "--revisit-min",
            "10",
            "--revisit-max",
            "100000",
            "--delay-ms",
            "0",
            "--json",
        ],
    )
    .await
}

struct World {
    site: ChangingSite,
    _dir: tempfile::TempDir,
    db: PathBuf,
    store: Store,
}

async fn crawled(policy_file: &str) -> World {
    let site = ChangingSite::start().await;
    site_v1(&site);
    let dir = crate::support::tempdir();
    let db = dir.path().join("corpus.db");
    let (code, out, err) = run(
        &db,
        &[
            "crawl",
            "--policy",
            &policy(policy_file),
            "--delay-ms",
            "0",
            &site.url("/"),
        ],
    )
    .await;
    assert_eq!(code, Some(0), "{out}{err}");
    let store = Store::open_existing(&db).await.unwrap();
    World {
        site,
        _dir: dir,
        db,
        store,
    }
}

async fn refresh_scenario(policy_file: &str) {
    let w = crawled(policy_file).await;
    let (site, db, store) = (&w.site, &w.db, &w.store);
    let url = |p: &str| site.url(p);
    for p in ["/noai.html", "/licensed.html", "/same.html", "/gone.html"] {
        assert!(usable(&rag_decision(store, &url(p)).await), "{p}");
    }
    let a_noai = answer_citing(store, "alpaca").await;
    let a_licensed = answer_citing(store, "basalt").await;
    let a_gone = answer_citing(store, "cedar").await;
    let a_same = answer_citing(store, "dolphin").await;

    // Export version 1, before anything changed.
    let out1 = w._dir.path().join("export1");
    crate::audit_export::export(db, &out1, &["--format", "jsonl"]);

    site_v2(site);
    site.clear_log();
    let r = refresh_all(db).await;
    let rep = &r["refresh"];

    // Unchanged: a conditional GET from the stored validators, 304, no body.
    let same = site.requests("/same.html");
    assert_eq!(same.len(), 1, "{same:?}");
    assert_eq!(same[0].method, "GET");
    let v1_same = page("dolphin", "", true, "", &[]);
    assert_eq!(
        same[0].if_none_match.as_deref(),
        Some(etag(&v1_same).as_str())
    );
    assert_eq!(same[0].if_modified_since.as_deref(), Some(LAST_MODIFIED));
    assert_eq!(same[0].status, 304);
    assert_eq!(same[0].body_bytes, 0);
    // The index page did not change either.
    assert_eq!(
        rep["unchanged"],
        serde_json::json!([url("/"), url("/same.html")]),
        "{r:#}"
    );
    let pool = probe(db).await;
    let same_url = url("/same.html");
    assert_eq!(
        scalar_i64(
            &pool,
            &format!(
                "SELECT count(*) FROM fetches WHERE requested_url = '{same_url}' AND status = 304 AND body_bytes IS NULL AND body_sha256 IS NULL"
            )
        )
        .await,
        1
    );
    assert!(store.page_versions(&same_url).await.unwrap().is_empty());
    assert!(usable(&rag_decision(store, &same_url).await));
    assert!(!flagged(store, a_same).await);
    assert_eq!(found(store, "dolphin").await, vec![same_url.clone()]);

    // meta noai: excluded, revoked, the answer citing it flagged, out of retrieval.
    let noai = url("/noai.html");
    assert_eq!(rag_decision(store, &noai).await, "excluded");
    let revoked: Vec<(String, String)> = rep["revoked"]
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
    assert!(
        revoked.contains(&(noai.clone(), "rag_attributed".into())),
        "{r:#}"
    );
    assert!(flagged(store, a_noai).await);
    assert!(found(store, "alpaca").await.is_empty());
    let v = store.page_versions(&noai).await.unwrap();
    assert_eq!(v.len(), 1, "{v:?}");
    // Only the head changed: a new body, the same main text.
    assert_ne!(v[0].old_content_sha256, v[0].new_content_sha256);
    assert_eq!(v[0].old_text_sha256, v[0].new_text_sha256);
    assert!(
        v[0].signals_changed.iter().any(|s| s == "+meta.noai"),
        "{v:?}"
    );
    assert_eq!(store.revocations_of(&noai).await.unwrap().len(), 2); // rag + train

    // Dropped licence: strict opt-in excludes (revoked); EU opt-out still allows.
    let lic = url("/licensed.html");
    let v = store.page_versions(&lic).await.unwrap();
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(
        v[0].signals_changed.iter().any(|s| s == "-licence.by"),
        "{v:?}"
    );
    if policy_file == STRICT {
        assert_eq!(rag_decision(store, &lic).await, "excluded");
        assert!(revoked.contains(&(lic.clone(), "rag_attributed".into())));
        assert!(flagged(store, a_licensed).await);
        assert!(found(store, "basalt").await.is_empty());
    } else {
        assert!(usable(&rag_decision(store, &lic).await));
        assert!(!revoked.iter().any(|(u, _)| u == &lic), "{r:#}");
        assert!(!flagged(store, a_licensed).await);
        assert_eq!(found(store, "basalt").await, vec![lic.clone()]);
    }

    // 410: gone, out of retrieval, its answer flagged.
    let gone = url("/gone.html");
    assert_eq!(rep["gone"][0]["url"], gone.as_str(), "{r:#}");
    assert_eq!(rep["gone"][0]["status"], 410);
    assert!(flagged(store, a_gone).await);
    assert!(found(store, "cedar").await.is_empty());

    // The hub changed and links a new page: crawled normally.
    let hub = url("/hub.html");
    let v = store.page_versions(&hub).await.unwrap();
    assert_eq!(v.len(), 1);
    assert_ne!(v[0].old_text_sha256, v[0].new_text_sha256);
    let fresh = url("/fresh.html");
    assert_eq!(site.requests("/fresh.html").len(), 1);
    assert!(usable(&rag_decision(store, &fresh).await));
    assert_eq!(found(store, "fjord").await, vec![fresh.clone()]);
    assert_eq!(r["crawl"]["pages"], 1, "{r:#}");

    // Adaptive schedule: changed pages come back sooner, unchanged ones later.
    let interval = |u: String| {
        let pool = pool.clone();
        async move {
            scalar_i64(
                &pool,
                &format!("SELECT interval_secs FROM revisit_schedule WHERE url = '{u}'"),
            )
            .await
        }
    };
    assert!(interval(noai.clone()).await < 1000);
    assert!(interval(same_url.clone()).await > 1000);

    // Everything written is logged.
    let v = ok_json(db, &["audit", "verify", "--json"]).await;
    assert_eq!(v["ok"], true, "{v:#}");
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ci-py/bin/python");
    if python.exists() {
        let tool = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/verify_audit.py");
        let out = Command::new(&python).arg(&tool).arg(db).output().unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // `audit history` shows every step: the noai page's first fetch, its new
    // version (with the signal that appeared) and its revocation in that
    // order; the unchanged page's 304 check.
    let h = ok_json(db, &["audit", "history", &noai, "--json"]).await;
    let kinds: Vec<&str> = h["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    let at = |k: &str| kinds.iter().position(|x| *x == k);
    let (Some(first), Some(version), Some(revoked_at)) =
        (at("fetch"), at("version"), at("revocation"))
    else {
        panic!("fetch, version and revocation expected in {h:#}")
    };
    assert!(first < version && version <= revoked_at, "{kinds:?}");
    let v_event = &h["events"][version];
    assert!(
        v_event["detail"]["signals_changed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "+meta.noai"),
        "{v_event:#}"
    );
    let h = ok_json(db, &["audit", "history", &same_url, "--json"]).await;
    assert!(
        h["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "unchanged"),
        "{h:#}"
    );
    // The 410 page's history has its gone marking, an event no table of
    // the page lists (found by subject through the log's partial index).
    let h = ok_json(db, &["audit", "history", &gone, "--json"]).await;
    let marked: Vec<&serde_json::Value> = h["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "gone")
        .collect();
    assert_eq!(marked.len(), 1, "{h:#}");
    assert!(
        marked[0]["summary"].as_str().unwrap().contains("410"),
        "{h:#}"
    );

    // The WARC export: the unchanged capture is confirmed by a revisit
    // record (server-not-modified) that refers to its response record;
    // warcio reads it (tools/check_export.py).
    let out = w._dir.path().join("export");
    crate::audit_export::export(db, &out, &["--format", "warc"]);
    let (ok, seen) = crate::audit_export::check_export(&out);
    assert!(ok, "{seen:#}");
    // It lists what was revoked since version 1.
    let m = crate::audit_export::manifest(&out);
    assert_eq!(m["removed_since_version"]["version"], 1, "{m:#}");
    let removed = crate::audit_export::revoked_since(&m);
    assert!(
        removed.contains(&(noai.clone(), "rag_attributed".into())),
        "{m:#}"
    );
    assert_eq!(
        removed.contains(&(lic.clone(), "rag_attributed".into())),
        policy_file == STRICT,
        "{m:#}"
    );
    let recs = crate::audit_export::read_warc(&out.join("corpus.warc.gz"));
    let of = |kind: &str, uri: &str| -> Vec<&crate::audit_export::Rec> {
        recs.iter()
            .filter(|r| r.get("WARC-Type") == Some(kind) && r.get("WARC-Target-URI") == Some(uri))
            .collect()
    };
    let revisit = of("revisit", &same_url);
    assert_eq!(revisit.len(), 1);
    let response = of("response", &same_url);
    assert_eq!(response.len(), 1);
    assert_eq!(
        revisit[0].get("WARC-Refers-To"),
        response[0].get("WARC-Record-ID")
    );
    assert_eq!(
        revisit[0].get("WARC-Profile"),
        Some("http://netpreserve.org/warc/1.1/revisit/server-not-modified")
    );
    assert_eq!(
        revisit[0].get("WARC-Refers-To-Target-URI"),
        Some(same_url.as_str())
    );
    assert_eq!(
        revisit[0].get("WARC-Refers-To-Date"),
        response[0].get("WARC-Date")
    );
    assert!(
        revisit[0]
            .block
            .starts_with(b"HTTP/1.1 304 Not Modified\r\n")
    );
    // A changed page has no revisit record: its response is the new body.
    assert!(of("revisit", &hub).is_empty());

    // Nothing is due again yet: a second refresh requests no page.
    site.clear_log();
    let r = ok_json(db, &["crawl", "--refresh", "--delay-ms", "0", "--json"]).await;
    assert_eq!(r["refresh"]["checked"], 0, "{r:#}");
    assert!(
        site.log().iter().all(|l| l.path == "/robots.txt"),
        "{:?}",
        site.log()
    );
    // `audit why` lists what the log holds about each URL, the refresh's
    // checks with the crawl's events.
    let compared = crate::support::why_events::assert_why_lists_the_logs_events(store).await;
    let gone = &compared[&url("/gone.html")];
    for k in ["fetch", "robots.decision", "verdict", "page.check"] {
        assert!(gone.iter().any(|x| x == k), "{k}: {gone:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_under_eu_opt_out_revisits_conditionally_and_revokes_from_the_body() {
    refresh_scenario(EU).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_under_strict_opt_in_revokes_a_dropped_licence() {
    refresh_scenario(STRICT).await;
}

/// The cheap recheck keeps to HEAD requests and misses a body opt-out;
/// `--bodies` sends conditional GETs and revokes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recheck_bodies_re_decides_from_the_page_body() {
    let w = crawled(EU).await;
    let (site, db, store) = (&w.site, &w.db, &w.store);
    let noai = site.url("/noai.html");
    let a = answer_citing(store, "alpaca").await;
    site.html(
        "/noai.html",
        &page(
            "alpaca",
            "<meta name=\"robots\" content=\"noai\">",
            true,
            "",
            &[],
        ),
    );
    site.clear_log();
    let r = ok_json(db, &["audit", "recheck", "--min-delay-ms", "0", "--json"]).await;
    assert_eq!(r["revoked"], serde_json::json!([]), "{r:#}");
    assert!(
        site.log()
            .iter()
            .all(|l| l.method == "HEAD" || l.path != "/noai.html"),
        "{:?}",
        site.log()
    );
    assert!(!flagged(store, a).await);

    site.clear_log();
    let r = ok_json(
        db,
        &[
            "audit",
            "recheck",
            "--bodies",
            "--min-delay-ms",
            "0",
            "--json",
        ],
    )
    .await;
    let revoked: Vec<&str> = r["revoked"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["purpose"] == "rag_attributed")
        .map(|x| x["url"].as_str().unwrap())
        .collect();
    assert_eq!(revoked, vec![noai.as_str()], "{r:#}");
    assert!(flagged(store, a).await);
    assert!(found(store, "alpaca").await.is_empty());
    let same = site.requests("/same.html");
    assert_eq!(same.len(), 1);
    assert_eq!(same[0].status, 304);
    assert!(same[0].if_none_match.is_some());
    assert_eq!(store.page_versions(&noai).await.unwrap().len(), 1);
    let v = ok_json(db, &["audit", "verify", "--json"]).await;
    assert_eq!(v["ok"], true, "{v:#}");
}

/// A recheck (cheap or with bodies) or a refresh that could check nothing
/// because every request failed exits with its own status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recheck_where_every_request_failed_exits_non_zero() {
    let w = crawled(EU).await;
    let db = &w.db;
    w.site.go_down().await;
    for args in [
        vec!["audit", "recheck", "--min-delay-ms", "0"],
        vec![
            "audit",
            "recheck",
            "--bodies",
            "--min-delay-ms",
            "0",
            "--json",
        ],
        vec!["crawl", "--refresh", "--refresh-all", "--delay-ms", "0"],
    ] {
        let (code, out, err) = run(db, &args).await;
        assert_eq!(code, Some(4), "{args:?}: {out}{err}");
        if args.contains(&"--json") {
            let r: Value = serde_json::from_str(&out).unwrap();
            assert_eq!(r["nothing_checked"], true, "{r:#}");
            assert_eq!(r["checked"], 0);
            assert_eq!(r["errors"].as_array().unwrap().len(), 6, "{r:#}"); // every stored page
            // An outage revokes nothing.
            assert_eq!(r["revoked"], serde_json::json!([]), "{r:#}");
            assert_eq!(r["gone"], serde_json::json!([]), "{r:#}");
        } else {
            assert!(out.contains("nothing was checked"), "{out}");
        }
    }
    // Every verdict is as it was.
    for p in ["/noai.html", "/same.html"] {
        assert!(usable(&rag_decision(&w.store, &w.site.url(p)).await), "{p}");
    }
    let v = ok_json(db, &["audit", "verify", "--json"]).await;
    assert_eq!(v["ok"], true, "{v:#}");
}

/// Every body and origin-file signal that turns an allowed use into an
/// excluded one is revoked the same way by `audit recheck --bodies`: TDMRep
/// meta, a natural-language reservation in the text, a JSON-LD licence
/// that adds NC terms (a commercial deployment under EU opt-out), a TDMRep
/// well-known file, meta `noai`; the cheap recheck misses the body ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recheck_bodies_revokes_from_every_body_and_origin_file_signal() {
    let site = ChangingSite::start().await;
    site.text("/robots.txt", "User-agent: *\nAllow: /\n");
    let names = ["tdm", "nl", "jsonld", "wk/page", "noai", "plain"];
    let links: Vec<String> = names.iter().map(|n| format!("/{n}.html")).collect();
    let link_refs: Vec<&str> = links.iter().map(String::as_str).collect();
    site.html("/", &page("catalogue", "", true, "", &link_refs));
    let words = ["granite", "heron", "indigo", "juniper", "kestrel", "lagoon"];
    for (n, w) in names.iter().zip(words) {
        site.html(&format!("/{n}.html"), &page(w, "", true, "", &[]));
    }
    let dir = crate::support::tempdir();
    let db = dir.path().join("corpus.db");
    let (code, out, err) = run(
        &db,
        &[
            "crawl",
            "--policy",
            &policy(EU),
            "--delay-ms",
            "0",
            &site.url("/"),
        ],
    )
    .await;
    assert_eq!(code, Some(0), "{out}{err}");
    let store = Store::open_existing(&db).await.unwrap();
    for n in names {
        let u = site.url(&format!("/{n}.html"));
        assert!(usable(&rag_decision(&store, &u).await), "{n}");
    }
    let jsonld_url = site.url("/jsonld.html");
    site.html(
        "/tdm.html",
        &page(
            "granite",
            "<meta name=\"tdm-reservation\" content=\"1\">",
            true,
            "",
            &[],
        ),
    );
    site.html(
        "/nl.html",
        &page(
            "heron",
            "",
            true,
            "We reserve all rights to text and data mining of this site.",
            &[],
        ),
    );
    site.html(
        "/jsonld.html",
        &page(
            "indigo",
            &format!(
                "<script type=\"application/ld+json\">{{\"@context\":\"https://schema.org\",\
                 \"@type\":\"Article\",\"url\":\"{jsonld_url}\",\
                 \"license\":\"https://creativecommons.org/licenses/by-nc/4.0/\"}}</script>"
            ),
            true,
            "",
            &[],
        ),
    );
    site.text(
        "/.well-known/tdmrep.json",
        "[{\"location\": \"/wk/*\", \"tdm-reservation\": 1}]",
    );
    site.html(
        "/noai.html",
        &page(
            "kestrel",
            "<meta name=\"robots\" content=\"noai\">",
            true,
            "",
            &[],
        ),
    );
    let rag_revoked = |r: &Value| -> Vec<(String, Vec<String>)> {
        r["revoked"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["purpose"] == "rag_attributed")
            .map(|x| {
                (
                    x["url"].as_str().unwrap().to_string(),
                    x["reasons"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|s| s.as_str().unwrap().to_string())
                        .collect(),
                )
            })
            .collect()
    };
    // The cheap mode sees the origin file, not the bodies.
    let r = ok_json(&db, &["audit", "recheck", "--min-delay-ms", "0", "--json"]).await;
    let cheap: Vec<String> = rag_revoked(&r).into_iter().map(|(u, _)| u).collect();
    assert_eq!(cheap, vec![site.url("/wk/page.html")], "{r:#}");

    let r = ok_json(
        &db,
        &[
            "audit",
            "recheck",
            "--bodies",
            "--min-delay-ms",
            "0",
            "--json",
        ],
    )
    .await;
    let got = rag_revoked(&r);
    let reason_of = |n: &str| {
        let u = site.url(&format!("/{n}.html"));
        got.iter()
            .find(|(x, _)| *x == u)
            .map(|(_, rs)| rs.clone())
            .unwrap_or_else(|| panic!("{n} not revoked: {r:#}"))
    };
    assert!(reason_of("tdm").iter().any(|c| c == "tdmrep.reserved"));
    assert!(reason_of("nl").iter().any(|c| c == "nl_reservation"));
    assert!(
        reason_of("jsonld")
            .iter()
            .any(|c| c.starts_with("licence.nc"))
    );
    assert!(reason_of("noai").iter().any(|c| c == "meta.noai"));
    // Revoked once: the well-known page was revoked by the cheap recheck.
    assert_eq!(got.len(), 4, "{r:#}");
    assert!(usable(
        &rag_decision(&store, &site.url("/plain.html")).await
    ));
    for w in ["granite", "heron", "indigo", "juniper", "kestrel"] {
        assert!(found(&store, w).await.is_empty(), "{w} still retrieved");
    }
    assert_eq!(found(&store, "lagoon").await.len(), 1);
    let v = ok_json(&db, &["audit", "verify", "--json"]).await;
    assert_eq!(v["ok"], true, "{v:#}");
}

/// The raw captures (decompressed) that hold `needle`.
async fn captures_holding(db: &Path, needle: &str) -> usize {
    use std::io::Read;
    let pool = probe(db).await;
    let rows: Vec<(String, Vec<u8>)> = sqlx::query_as("SELECT encoding, bytes FROM raw_captures")
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    rows.iter()
        .filter(|(encoding, bytes)| {
            assert_eq!(encoding, "gzip");
            let mut body = String::new();
            flate2::read::MultiGzDecoder::new(&bytes[..])
                .read_to_string(&mut body)
                .unwrap();
            body.contains(needle)
        })
        .count()
}

/// A page that changed has a capture of each version; `forget` erases
/// them all, not only the current one. A body another page still uses is
/// kept, whichever version of the forgotten page it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forget_erases_the_captures_of_every_version_of_a_page() {
    let w = crawled(EU).await;
    let (site, db) = (&w.site, &w.db);
    assert_eq!(captures_holding(db, "The ember is").await, 1);
    site_v2(site);
    // The new page has the first body of the page that adds `noai`.
    site.html("/fresh.html", &page("alpaca", "", true, "", &[]));
    refresh_all(db).await;
    // Both versions of the hub and of the noai page are kept.
    assert_eq!(captures_holding(db, "The ember is").await, 2);
    assert_eq!(captures_holding(db, "Now with a new page.").await, 1);
    assert_eq!(captures_holding(db, "The alpaca is").await, 2);
    assert_eq!(captures_holding(db, "content=\"noai\"").await, 1);

    let f = ok_json(db, &["forget", &site.url("/hub.html"), "--json"]).await;
    assert_eq!(f["pages_erased"], 1, "{f}");
    assert_eq!(
        captures_holding(db, "The ember is").await,
        0,
        "a capture of the forgotten page is left: {f}"
    );
    // The first body of the noai page is the new page's too: kept.
    let f = ok_json(db, &["forget", &site.url("/noai.html"), "--json"]).await;
    assert_eq!(f["pages_erased"], 1, "{f}");
    assert_eq!(captures_holding(db, "content=\"noai\"").await, 0);
    assert_eq!(captures_holding(db, "The alpaca is").await, 1);
    // The other pages keep theirs (the licensed page changed once).
    for (word, n) in [("basalt", 2), ("dolphin", 1)] {
        assert_eq!(
            captures_holding(db, &format!("The {word} is")).await,
            n,
            "{word}"
        );
    }
    let (code, out, err) = run(db, &["audit", "verify"]).await;
    assert_eq!(code, Some(0), "{out}{err}");
}
