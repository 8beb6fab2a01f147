//! Retrieval finds the answering page (issue #19): hit@5 on the labelled
//! question set over the sample site (tests/data/retrieval/) is at least 0.9,
//! measured with the library and with `byline bench answers`.

use std::process::Command;

use byline::answer::AskOptions;
use byline::index::eval::{SAMPLE_SITE_RETRIEVAL_JSONL, evaluate, parse_labelled};
use byline::store::Store;

use crate::support::answer::sample_db;
use crate::support::{byline_bin, tempdir};

#[tokio::test]
async fn labelled_questions_find_their_page_in_the_top_five() {
    let dir = tempdir();
    let (db, origin) = sample_db(dir.path());
    let store = Store::open(&db).await.unwrap();
    let set = parse_labelled(SAMPLE_SITE_RETRIEVAL_JSONL).unwrap();
    assert!(set.len() >= 20, "a labelled set of 20+ questions");
    let s = evaluate(&store, &origin, &set, None).await.unwrap();
    let misses: Vec<_> = s
        .ranks
        .iter()
        .filter(|r| r.rank.is_none_or(|x| x > 5))
        .collect();
    assert!(
        s.hit_at_5 >= 0.9,
        "hit@5 {:.3} (hit@1 {:.3}, MRR {:.3}); misses: {misses:#?}",
        s.hit_at_5,
        s.hit_at_1,
        s.mrr
    );
    assert!(s.mrr <= 1.0 && s.hit_at_1 <= s.hit_at_5);
    // The README's questions: the answering page is among the passages the
    // prompt shows (2 by default), not 6th as in issue #19.
    for id in ["r01", "r02"] {
        let r = s.ranks.iter().find(|r| r.id == id).unwrap();
        assert!(
            r.rank
                .is_some_and(|x| x <= AskOptions::default().prompt_passages),
            "{r:?}"
        );
    }
}

#[test]
fn bench_answers_reports_hit_at_k_and_mrr() {
    let out = Command::new(byline_bin())
        .args([
            "bench",
            "answers",
            "--retrieval-only",
            "--json",
            "--min-hit-at-5",
            "0.9",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let r = &v["retrieval"];
    for k in ["hit_at_1", "hit_at_5", "mrr"] {
        let x = r[k].as_f64().unwrap_or_else(|| panic!("{k} in {stdout}"));
        assert!((0.0..=1.0).contains(&x), "{k} {x}");
    }
    assert!(r["hit_at_5"].as_f64().unwrap() >= 0.9, "{stdout}");
    assert!(r["answer_set"]["hit_at_5"].as_f64().is_some(), "{stdout}");
    // A threshold it misses exits 1.
    let out = Command::new(byline_bin())
        .args([
            "bench",
            "answers",
            "--retrieval-only",
            "--min-hit-at-5",
            "1.01",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}
