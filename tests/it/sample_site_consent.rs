//! The bundled sample site's consent and licence variations (see
//! tests/fixtures/site/README.md), crawled by the real `byline crawl` over
//! 127.0.0.1, then re-judged with `byline policy apply`: every public page's
//! verdicts and deciding reason codes under both bundled policies, and the
//! question set's `gold_allowed` flags agree with the default policy.

use std::path::Path;
use std::process::Command;

use byline::policy::Policy;
use byline::serve::sample_site::{QUESTIONS_JSONL, serve_sample_site};
use byline::store::Store;

use crate::support::{byline_bin, tempdir};

/// Expected newest verdicts: path, then (decision, a reason code that must be
/// among the verdict's reasons, or "" for none required) for search_index,
/// rag_attributed and train.
type Row = (&'static str, [(&'static str, &'static str); 3]);

/// Under eu_opt_out a licence puts conditions on rag_attributed and train
/// only; search_index stays plain `allowed` (signals.md §8.5 E2, E3, E10).
const A: (&str, &str) = ("allowed", "");

const EU: &[Row] = &[
    ("/", [A, A, A]),
    ("/about.html", [A, A, A]),
    (
        "/history.html",
        [
            A,
            ("allowed_with_conditions", ""),
            ("allowed_with_conditions", ""),
        ],
    ),
    ("/library.html", [A, A, ("excluded", "aipref.train-ai")]),
    (
        "/faq.html",
        [
            ("allowed_with_conditions", ""),
            ("allowed_with_conditions", ""),
            A,
        ],
    ),
    ("/visit/opening-hours.html", [A, A, A]),
    (
        "/articles/river-ecology.html",
        [
            A,
            ("allowed_with_conditions", ""),
            ("excluded", "ai_intent.ai_train"),
        ],
    ),
    (
        "/articles/hartwell-weir-fish-pass.html",
        [A, A, ("excluded", "ai_intent.ai_train")],
    ),
    (
        "/recipes/damson-cake.html",
        [A, ("excluded", "ai_intent.ai_search"), A],
    ),
    (
        "/guides/riverside-walk.html",
        [
            A,
            ("excluded", "licence.nc"),
            ("allowed_with_conditions", ""),
        ],
    ),
    (
        "/collections/lace-bobbins.html",
        [A, ("excluded", "tdmrep"), ("excluded", "tdmrep")],
    ),
    (
        "/events/winter-lectures.html",
        [A, ("excluded", "meta.noai"), ("excluded", "meta.noai")],
    ),
    ("/de/willkommen.html", [A, A, A]),
    (
        "/private/staff-rota.html",
        [
            ("excluded", "robots.disallow"),
            ("excluded", "robots.disallow"),
            ("excluded", "robots.disallow"),
        ],
    ),
];

const X_NONE: (&str, &str) = ("excluded", "licence.none");

const STRICT: &[Row] = &[
    ("/", [X_NONE, X_NONE, X_NONE]),
    ("/about.html", [X_NONE, X_NONE, X_NONE]),
    ("/de/willkommen.html", [X_NONE, X_NONE, X_NONE]),
    ("/faq.html", [X_NONE, X_NONE, X_NONE]),
    (
        "/recipes/damson-cake.html",
        [X_NONE, ("excluded", "ai_intent.ai_search"), X_NONE],
    ),
    (
        "/collections/lace-bobbins.html",
        [X_NONE, ("excluded", "tdmrep"), ("excluded", "tdmrep")],
    ),
    (
        "/library.html",
        [X_NONE, X_NONE, ("excluded", "aipref.train-ai")],
    ),
    ("/visit/opening-hours.html", [X_NONE, X_NONE, X_NONE]),
    (
        "/history.html",
        [
            ("allowed_with_conditions", ""),
            ("allowed_with_conditions", ""),
            ("allowed_with_conditions", ""),
        ],
    ),
    (
        "/articles/river-ecology.html",
        [
            ("allowed_with_conditions", ""),
            ("allowed_with_conditions", ""),
            ("excluded", "ai_intent.ai_train"),
        ],
    ),
    (
        "/articles/hartwell-weir-fish-pass.html",
        [A, A, ("excluded", "ai_intent.ai_train")],
    ),
    (
        "/guides/riverside-walk.html",
        [
            ("excluded", "licence.nc"),
            ("excluded", "licence.nc"),
            ("excluded", "licence.nc"),
        ],
    ),
    (
        "/events/winter-lectures.html",
        [X_NONE, ("excluded", "meta.noai"), ("excluded", "meta.noai")],
    ),
    (
        "/private/staff-rota.html",
        [
            ("excluded", "robots.disallow"),
            ("excluded", "robots.disallow"),
            ("excluded", "robots.disallow"),
        ],
    ),
];

fn policy_path(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("policies")
        .join(name)
}

fn run(args: &[&std::ffi::OsStr]) {
    let out = Command::new(byline_bin()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "byline {:?} failed:\n{}\n{}",
        args,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn check(store: &Store, base: &str, policy: &Policy, table: &[Row]) {
    let mut wrong = Vec::new();
    for (path, expected) in table {
        let url = format!("{base}{path}");
        let got = store
            .latest_verdicts(&url, Some(&policy.sha256))
            .await
            .unwrap();
        assert_eq!(got.len(), 3, "{path}: three purposes under {}", policy.id);
        for (v, (decision, reason)) in got.iter().zip(expected) {
            if v.decision != *decision
                || !(reason.is_empty() || v.reasons.iter().any(|r| r.starts_with(reason)))
            {
                wrong.push(format!(
                    "{path} {}: expected {decision} {reason:?}, got {} reasons {:?} conditions {:?}",
                    v.purpose, v.decision, v.reasons, v.conditions
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "under {}:\n{}",
        policy.id,
        wrong.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_site_signals_give_the_documented_verdicts_under_both_policies() {
    let (addr, server) = serve_sample_site("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let base = format!("http://{addr}");
    let dir = tempdir();
    let db = dir.path().join("sample.db");
    let eu_path = policy_path("eu-opt-out.toml");
    let strict_path = policy_path("strict-opt-in.toml");
    {
        let (db, eu_path, start) = (db.clone(), eu_path.clone(), format!("{base}/"));
        tokio::task::spawn_blocking(move || {
            run(&[
                "--db".as_ref(),
                db.as_os_str(),
                "crawl".as_ref(),
                "--policy".as_ref(),
                eu_path.as_os_str(),
                start.as_ref(),
            ])
        })
        .await
        .unwrap();
    }
    let store = Store::open(&db).await.unwrap();
    let eu = Policy::from_bytes(&std::fs::read(&eu_path).unwrap(), "eu").unwrap();
    check(&store, &base, &eu, EU).await;

    // The history page's data-nosnippet sentence is stored as a span of its
    // extracted text (kept for finding the page, never quoted).
    let hist = format!("{base}/history.html");
    let spans = store.page_nosnippet_spans(&hist).await.unwrap();
    let text: String = {
        let pool = sqlx::sqlite::SqlitePool::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        let t = sqlx::query_scalar("SELECT text FROM pages WHERE url = ?")
            .bind(&hist)
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        t
    };
    let quoted: Vec<&str> = spans.iter().map(|&(a, b)| &text[a..b]).collect();
    assert_eq!(
        quoted,
        ["children are usually surprised that it is above their parents' heads."]
    );

    // Every question whose gold page the default policy keeps out of answers
    // says so, and no other question does.
    for line in QUESTIONS_JSONL.lines() {
        let q: serde_json::Value = serde_json::from_str(line).unwrap();
        let page = q["page"].as_str().unwrap();
        let gold_allowed = q
            .get("gold_allowed")
            .map(|v| v.as_bool().unwrap())
            .unwrap_or(true);
        let verdicts = store
            .latest_verdicts(&format!("{base}{page}"), Some(&eu.sha256))
            .await
            .unwrap();
        let rag = verdicts
            .iter()
            .find(|v| v.purpose == "rag_attributed")
            .unwrap_or_else(|| panic!("{page} has a rag_attributed verdict"));
        assert_eq!(
            rag.decision != "excluded",
            gold_allowed,
            "{}: gold page {page} is {} for rag_attributed",
            q["id"],
            rag.decision
        );
    }
    store.close().await;

    let out = Command::new(byline_bin())
        .arg("--db")
        .arg(&db)
        .args(["policy", "apply"])
        .arg(&strict_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = Store::open(&db).await.unwrap();
    let strict = Policy::from_bytes(&std::fs::read(&strict_path).unwrap(), "s").unwrap();
    check(&store, &base, &strict, STRICT).await;
    store.close().await;
    server.abort();
}
