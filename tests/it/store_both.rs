//! The store suite on both backends (issue #20: "the same store tests run
//! against both backends"): one scenario body (open a corpus, crawl a
//! small loopback world into it, index it, read its verdicts and evidence,
//! the audit reports, retrieval, a recorded answer, a numbered export and
//! `audit verify`) runs against an SQLite file and against a fresh
//! PostgreSQL database with the same assertions, and what it observed must
//! be equal on both.

use std::path::{Path, PathBuf};

use byline::store::Store;
use serde_json::{Value, json};

use crate::support::consent_site::{fixture_root, serve_dir};
use crate::support::crawl::{answer_citing, config, found};
use crate::support::{pg, tempdir};

/// What the scenario saw, without times and ids that depend on the run
/// (the two crawls are independent).
async fn scenario(db: &Path, open: &str, private: &str) -> Value {
    let store = Store::open(db).await.expect("open");
    // Read commands never create a corpus, and find this one.
    let again = Store::open_existing(db).await.expect("open_existing");
    assert_eq!(again.backend_name(), store.backend_name());

    // Crawl the two origins and index what was stored.
    let seeds = vec![format!("{open}/"), format!("{private}/")];
    let summary = byline::crawl::run(store.clone(), config(&seeds), |_| {})
        .await
        .expect("crawl runs");
    assert!(summary.pages > 5, "{summary:?}");
    byline::index::refresh(&store).await.expect("index refresh");

    // Verdicts: three purposes per page, the disallowed URL excluded.
    let in_force = store.current_verdicts().await.unwrap();
    let pages = store.pages_with_verdicts().await.unwrap();
    assert_eq!(in_force.len(), 3 * pages.len());
    let disallowed = format!("{private}/private/x.html");
    let blocked = store.current_verdicts_of(&disallowed).await.unwrap();
    assert_eq!(blocked.len(), 3, "{blocked:?}");
    assert!(
        blocked.iter().all(|v| v.decision == "excluded"),
        "{blocked:?}"
    );
    let p1 = format!("{open}/p1.html");
    let latest = store.latest_verdicts(&p1, None).await.unwrap();
    assert_eq!(latest.len(), 3);
    assert_eq!(
        store.verdict_history(&p1).await.unwrap(),
        latest_sorted(&latest)
    );
    let counts = store.verdict_counts().await.unwrap();
    assert_eq!(
        counts.iter().map(|c| c.2).sum::<i64>(),
        in_force.len() as i64
    );

    // Evidence: the page's latest set, its rows, its robots.txt version.
    let set = store
        .latest_evidence_set(&p1)
        .await
        .unwrap()
        .expect("evidence");
    assert!(!set.rows.is_empty());
    let mut sets = store.latest_evidence_sets().await.unwrap();
    assert_eq!(sets.len(), pages.len());
    for s in &mut sets {
        assert!(s.rows.is_empty());
        s.rows = store.evidence_rows(s.set_id).await.unwrap();
    }
    // Streamed one set at a time with its licence rows only: the same
    // sets and order, each set's licence rows in order, and whether it
    // has body rows.
    let ids = |s: &byline::store::evidence::EvidenceSet, bodied: bool| {
        let rows: Vec<(i64, String)> = s
            .rows
            .iter()
            .filter(|r| {
                matches!(
                    r.evidence.observation,
                    byline::policy::evidence::Observation::Licence(_)
                )
            })
            .map(|r| (r.id, format!("{:?}", r.evidence)))
            .collect();
        (
            s.set_id,
            s.page_url.clone(),
            s.page_id,
            s.observed_at,
            bodied,
            rows,
        )
    };
    let mut streamed = Vec::new();
    store
        .each_latest_licence_rows(|s, bodied| streamed.push(ids(&s, bodied)))
        .await
        .unwrap();
    let body = byline::store::revocations::BODY_LOCATIONS;
    let want: Vec<_> = sets
        .iter()
        .map(|s| {
            let bodied = s.rows.iter().any(|r| body.contains(&r.evidence.location));
            ids(s, bodied)
        })
        .collect();
    assert_eq!(streamed, want);
    assert!(
        want.iter().any(|w| !w.5.is_empty()) && want.iter().any(|w| w.4),
        "licence rows and body rows among the sets: {want:#?}"
    );
    let signals: Vec<String> = set.rows.iter().map(|r| r.evidence.signal.clone()).collect();

    // Audit reports.
    let s = byline::audit::summary(&store).await.unwrap();
    assert_eq!(s.origins, 2);
    assert_eq!(s.pages, summary.pages as i64);
    let why = byline::audit::why(&store, &disallowed)
        .await
        .unwrap()
        .expect("a URL the crawl met");
    let robots = why.robots.as_ref().expect("a robots.txt decision");
    assert!(!robots.allowed, "{why:?}");
    let why_p1 = byline::audit::why(&store, &p1).await.unwrap().unwrap();
    assert_eq!(why_p1.fetches.len(), 1);
    assert!(
        byline::audit::why(&store, &format!("{open}/nowhere.html"))
            .await
            .unwrap()
            .is_none()
    );
    let history = byline::audit::history::history(&store, &p1)
        .await
        .unwrap()
        .expect("a history");
    let row = store.audit_url(&p1).await.unwrap().expect("met");
    assert_eq!(row.frontier_id, why_p1.frontier.as_ref().unwrap().id);
    let fetches = store.fetches_of(row.frontier_id).await.unwrap();
    assert_eq!(fetches.len(), 1);
    let capture = store
        .page_capture(row.page_id.expect("stored"))
        .await
        .unwrap()
        .expect("a capture");
    assert_eq!(capture.url, p1);
    assert!(store.raw_body(capture.fetch_id).await.unwrap().is_some());
    assert_eq!(store.robots_captures(open).await.unwrap().len(), 1);

    // Retrieval and a recorded answer.
    // The same pages found; their order is each backend's ranking (FTS5's
    // bm25 or PostgreSQL's ts_rank_cd), so compared as a set.
    let mut cats = found(&store, "cats").await;
    assert!(cats.contains(&p1), "{cats:?}");
    cats.sort();
    let answer = answer_citing(&store, "cats").await;
    let record = store.answer(answer).await.unwrap().expect("recorded");
    assert_eq!(store.answer_cited_pages(answer).await.unwrap().len(), 1);

    // A numbered export, logged.
    assert_eq!(store.next_export_version().await.unwrap(), 1);
    let v = store
        .record_export(7, "jsonl", "{}", 3, "root", "manifest")
        .await
        .unwrap();
    assert_eq!(v, 1);
    assert_eq!(store.next_export_version().await.unwrap(), 2);
    let exports = store.exports().await.unwrap();
    assert_eq!(exports.len(), 1);
    assert!(store.logged_seq("exports", 1).await.unwrap().is_some());

    // The log checks out.
    let report = byline::audit::verify::verify(&store, &[]).await.unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    let kinds = store.audit_kind_counts().await.unwrap();

    json!({
        "urls": s.urls, "pages": s.pages, "verdicts": s.verdicts,
        "top_reasons": serde_json::to_value(&s.top_reasons).unwrap(),
        "licences": serde_json::to_value(&s.licences).unwrap(),
        "not_followed": serde_json::to_value(&s.not_followed).unwrap(),
        "pages_with_verdicts": pages,
        "counts": counts,
        "p1_signals": signals,
        "p1_decisions": latest.iter().map(|v| (v.purpose.clone(), v.decision.clone())).collect::<Vec<_>>(),
        "blocked_reasons": blocked.iter().map(|v| v.reasons.clone()).collect::<Vec<_>>(),
        "history_events": history.events.len(),
        "cats": cats,
        "answer_refused": record.refused,
        "exports": exports.iter().map(|e| (e.version, e.format.clone(), e.records)).collect::<Vec<_>>(),
        "audit_kinds": kinds,
        "verified_rows": report.rows,
    })
}

fn latest_sorted(
    v: &[byline::store::verdicts::VerdictRow],
) -> Vec<byline::store::verdicts::VerdictRow> {
    let mut v = v.to_vec();
    v.sort_by_key(|r| r.id);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_suite_gives_the_same_results_on_sqlite_and_postgres() {
    let root = tempdir();
    let mut served = Vec::new();
    for n in ["open", "private"] {
        served.push(serve_dir(n, fixture_root().join(n)).await);
    }
    let (open, private) = (served[0].base.clone(), served[1].base.clone());
    let sqlite = scenario(&root.path().join("corpus.db"), &open, &private).await;
    let postgres = scenario(&PathBuf::from(pg::fresh_db().await), &open, &private).await;
    assert_eq!(postgres, sqlite);
}
