//! Attributed answers over the crawled sample site with the real default
//! model: citations point only to pages allowed for `rag_attributed`, quotes
//! are verbatim at their offsets, questions without allowed support are
//! refused, and a revocation takes effect on the next question and flags the
//! earlier answer.

use std::ops::ControlFlow;
use std::process::Command;

use byline::answer::{self, Answer, AskOptions, Generator};
use byline::engine::gguf::GgufFile;
use byline::policy::verdict::{Decision, PageVerdicts, Purpose, Verdict};
use byline::store::Store;

use crate::support::answer::sample_db;
use crate::support::model::default_model;
use crate::support::{byline_bin, tempdir};

const MILL: &str = "Who built the Old Fulling Mill?";
const BOBBINS: &str = "How many lace bobbins are in the Marlowe collection?";

fn opts() -> AskOptions {
    AskOptions {
        max_tokens: 48,
        ..AskOptions::default()
    }
}

/// Every citation's page has an allowed newest rag_attributed verdict, the
/// very verdict the citation names, and its quote is the page text at its
/// offsets.
async fn assert_citations_allowed(store: &Store, a: &Answer) {
    let cits: Vec<(String, i64, String)> = a
        .citations
        .iter()
        .map(|c| (c.url.clone(), c.verdict_id, c.policy_sha256.clone()))
        .collect();
    assert_allowed(store, &cits).await;
}

async fn assert_allowed(store: &Store, cits: &[(String, i64, String)]) {
    for (url, verdict_id, policy) in cits {
        let v = store.latest_verdicts(url, None).await.unwrap();
        let rag = v
            .iter()
            .find(|v| v.purpose == "rag_attributed")
            .unwrap_or_else(|| panic!("no rag_attributed verdict for {url}"));
        assert!(
            Decision::parse(&rag.decision).unwrap().is_allowed(),
            "{url} cited but {}",
            rag.decision
        );
        assert_eq!(rag.id, *verdict_id, "{url}");
        assert_eq!(&rag.policy_sha256, policy);
    }
}

async fn ask(store: &Store, question: &str) -> Answer {
    let path = default_model();
    let file = GgufFile::open(&path).unwrap();
    let sha = answer::model_sha256(store, &path).await.unwrap();
    let generator = Generator::new(&file, &path, sha).unwrap();
    let mut streamed = String::new();
    let a = answer::ask(store, &generator, question, &opts(), &mut |t| {
        streamed.push_str(t);
        ControlFlow::Continue(())
    })
    .await
    .unwrap();
    assert_eq!(streamed, a.draft, "the stream is the draft");
    a
}

#[test]
fn ask_json_cites_the_allowed_history_page_with_verbatim_quotes() {
    let dir = tempdir();
    let (db, origin) = sample_db(dir.path());
    let out = Command::new(byline_bin())
        .arg("--db")
        .arg(&db)
        .args(["ask", "--json", "-n", "48", "--model"])
        .arg(default_model())
        .arg(MILL)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON object");
    for key in [
        "answer",
        "refused",
        "reason",
        "citations",
        "model_sha256",
        "seconds",
    ] {
        assert!(v.get(key).is_some(), "{key} missing in {stdout}");
    }
    assert_eq!(v["refused"], false, "{stdout}");
    assert_eq!(
        v["model_sha256"].as_str().unwrap().len(),
        64,
        "a sha256 in hex"
    );
    let cits = v["citations"].as_array().unwrap();
    assert!(
        cits.iter()
            .any(|c| c["url"] == format!("{origin}/history.html")),
        "the history page answers it: {stdout}"
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = Store::open(&db).await.unwrap();
        for c in cits {
            for key in [
                "n",
                "url",
                "title",
                "licence",
                "attribution",
                "quote",
                "start",
                "end",
                "support",
                "verdict_id",
                "policy_sha256",
            ] {
                assert!(c.get(key).is_some(), "{key} missing in {c}");
            }
            let url = c["url"].as_str().unwrap();
            if url.ends_with("/history.html") {
                assert_eq!(c["licence"], "CC-BY-4.0", "{c}");
                let att = c["attribution"].as_str().unwrap();
                assert!(
                    att.contains("Tom Beddowes") && att.contains("CC-BY-4.0"),
                    "{att}"
                );
            }
            // The quote is the stored page text at [start, end) code points.
            let text = store_page_text(&store, url).await;
            let (s, e) = (
                c["start"].as_u64().unwrap() as usize,
                c["end"].as_u64().unwrap() as usize,
            );
            let at: String = text.chars().skip(s).take(e - s).collect();
            assert_eq!(at, c["quote"].as_str().unwrap());
            assert!(c["support"].as_f64().unwrap() >= 0.6);
        }
        let all: Vec<(String, i64, String)> = cits
            .iter()
            .map(|c| {
                (
                    c["url"].as_str().unwrap().to_string(),
                    c["verdict_id"].as_i64().unwrap(),
                    c["policy_sha256"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_allowed(&store, &all).await;
    });
}

async fn store_page_text(store: &Store, url: &str) -> String {
    store
        .page_text(url)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no stored page {url}"))
}

#[tokio::test]
async fn a_question_answered_only_on_an_excluded_page_never_cites_it() {
    let dir = tempdir();
    let (db, origin) = sample_db(dir.path());
    let store = Store::open(&db).await.unwrap();
    let a = ask(&store, BOBBINS).await;
    assert_citations_allowed(&store, &a).await;
    assert!(
        a.citations
            .iter()
            .all(|c| c.url != format!("{origin}/collections/lace-bobbins.html")),
        "{a:#?}"
    );
    // Refused, or answered from other allowed pages (the model's draft
    // decides which); never from the excluded page (asserted above).
    assert_eq!(a.refused, a.citations.is_empty(), "{a:#?}");
    assert_eq!(a.refused, a.reason.is_some(), "{a:#?}");
    // A question about nothing on the site is refused before generation.
    let b = ask(&store, "What is the boiling point of liquid nitrogen?").await;
    assert!(b.refused, "{b:#?}");
    assert_eq!(b.generated_tokens, 0, "{b:#?}");
    assert!(
        b.reason.as_deref().unwrap().contains("rag_attributed"),
        "{b:#?}"
    );
    assert!(b.answer_id.is_some(), "refusals are recorded too");
}

#[tokio::test]
async fn after_a_revocation_the_page_is_no_longer_cited_and_the_old_answer_is_flagged() {
    let dir = tempdir();
    let (db, origin) = sample_db(dir.path());
    let store = Store::open(&db).await.unwrap();
    let history = format!("{origin}/history.html");
    let first = ask(&store, MILL).await;
    let cited = first
        .citations
        .iter()
        .find(|c| c.url == history)
        .unwrap_or_else(|| panic!("the history page answers it: {first:#?}"))
        .clone();
    let id = first.answer_id.expect("recorded");
    assert_eq!(store.answer(id).await.unwrap().unwrap().flagged_at, None);

    // Revoke: a new, excluded rag_attributed verdict for the page, as a
    // recheck would write after the site opted out.
    let set = store.latest_evidence_set(&history).await.unwrap().unwrap();
    let old = store.latest_verdicts(&history, None).await.unwrap();
    let verdict = |p: Purpose| {
        let row = old.iter().find(|v| v.purpose == p.as_str()).unwrap();
        Verdict {
            purpose: p,
            decision: if p == Purpose::RagAttributed {
                Decision::Excluded
            } else {
                Decision::parse(&row.decision).unwrap()
            },
            conditions: Vec::new(),
            reasons: vec!["test.revoked".into()],
            evidence: Vec::new(),
            policy_id: row.policy_id.clone(),
            policy_sha256: row.policy_sha256.clone(),
        }
    };
    let pv = PageVerdicts {
        search_index: verdict(Purpose::SearchIndex),
        rag_attributed: verdict(Purpose::RagAttributed),
        train: verdict(Purpose::Train),
    };
    store
        .insert_verdicts(set.set_id, &history, &pv, &[], 2_000_000_000)
        .await
        .unwrap();
    let revoked = store
        .latest_verdicts(&history, None)
        .await
        .unwrap()
        .into_iter()
        .find(|v| v.purpose == "rag_attributed")
        .unwrap();
    assert_eq!(revoked.decision, "excluded");
    let flagged = store
        .flag_answers_citing(cited.page_id, revoked.id)
        .await
        .unwrap();
    assert_eq!(flagged, vec![id]);
    let row = store.answer(id).await.unwrap().unwrap();
    assert!(row.flagged_at.is_some());
    assert_eq!(row.flag_revocation_id, Some(revoked.id));
    assert_eq!(row.flag_page_id, Some(cited.page_id));
    assert_eq!(store.answers_citing(cited.page_id).await.unwrap()[0].id, id);
    // Flagging again changes nothing.
    assert!(
        store
            .flag_answers_citing(cited.page_id, revoked.id)
            .await
            .unwrap()
            .is_empty()
    );

    // The same question, no rebuild: the page is gone from retrieval.
    let second = ask(&store, MILL).await;
    assert!(
        second.citations.iter().all(|c| c.url != history),
        "{second:#?}"
    );
    assert!(
        second.retrieved.iter().all(|r| r.url != history),
        "{second:#?}"
    );
    assert_citations_allowed(&store, &second).await;

    // Forgetting a page's passages takes it out of retrieval just as well.
    let top = second.retrieved.first().expect("other pages match").page_id;
    assert!(store.delete_passages(top).await.unwrap() > 0);
    let third = ask(&store, MILL).await;
    assert!(
        third.retrieved.iter().all(|r| r.page_id != top),
        "{third:#?}"
    );
}
