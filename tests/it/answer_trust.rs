//! Answers users can trust (issue #19): with the real default model over
//! the crawled sample site, the README's example questions get an answer
//! whose every kept sentence says something beyond the question and cites a
//! passage holding its words, or an honest refusal: never an echo. An echoed
//! draft (the "When did the River Museum open? [1]") is refused with
//! that reason.

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::process::Command;

use byline::answer::{self, AskOptions, Draft, Generator};
use byline::engine::gguf::GgufFile;
use byline::store::Store;

use crate::support::answer::sample_db;
use crate::support::model::default_model;
use crate::support::{byline_bin, tempdir};

/// The questions the README passes to `byline ask` (and `demo` asks).
const README_QUESTIONS: [&str; 2] = [
    "When did the River Museum open?",
    "Who built the Old Fulling Mill?",
];

/// The test's own reading of "says nothing beyond the question": lower-case
/// words, question words and a few function words removed, crude endings
/// stripped. Independent of the checker's term lists.
fn informative_words(question: &str, sentence: &str) -> Vec<String> {
    const FUNCTION: &[&str] = &[
        "the",
        "a",
        "an",
        "of",
        "in",
        "on",
        "at",
        "to",
        "was",
        "is",
        "were",
        "did",
        "does",
        "do",
        "it",
        "its",
        "and",
        "when",
        "who",
        "what",
        "by",
        "for",
        "this",
        "that",
        "be",
        "been",
        "has",
        "have",
        "had",
        "question",
        "answer",
        "source",
        "sources",
        "according",
    ];
    let norm = |w: &str| -> String {
        let w = w.to_lowercase();
        for suf in ["ed", "ing", "s"] {
            if let Some(x) = w.strip_suffix(suf)
                && x.len() >= 3
            {
                return x.to_string();
            }
        }
        w
    };
    let split = |s: &str| -> Vec<String> {
        s.split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(norm)
            .collect()
    };
    let q: BTreeSet<String> = split(question).into_iter().collect();
    split(sentence)
        .into_iter()
        .filter(|w| !q.contains(w) && !FUNCTION.contains(&w.as_str()))
        .collect()
}

fn squash(s: &str) -> String {
    s.to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ')
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn readme_questions_get_a_cited_answer_or_an_honest_refusal_never_an_echo() {
    let dir = tempdir();
    let (db, origin) = sample_db(dir.path());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for q in README_QUESTIONS {
        let out = Command::new(byline_bin())
            .arg("--db")
            .arg(&db)
            .args(["ask", "--json", "-n", "48", "--model"])
            .arg(default_model())
            .arg(q)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON object");
        let answer = v["answer"].as_str().unwrap();
        assert!(
            !squash(answer).contains(&squash(q)),
            "the answer echoes the question: {stdout}"
        );
        let sentences = v["sentences"].as_array().unwrap();
        for s in sentences {
            assert!(
                !s["why"].as_str().unwrap_or("").is_empty(),
                "every sentence says why it was kept or dropped: {s}"
            );
        }
        if v["refused"] == true {
            assert!(v["citations"].as_array().unwrap().is_empty(), "{stdout}");
            assert!(
                !v["reason"].as_str().unwrap_or("").is_empty(),
                "a refusal says why: {stdout}"
            );
            continue;
        }
        let kept: Vec<&serde_json::Value> = sentences
            .iter()
            .filter(|s| s["supported"] == true)
            .collect();
        assert!(!kept.is_empty(), "an answer keeps a sentence: {stdout}");
        rt.block_on(async {
            let store = Store::open(&db).await.unwrap();
            for s in kept {
                let text = s["text"].as_str().unwrap();
                assert_eq!(s["kind"], "claim", "{s}");
                assert!(!text.trim_end().ends_with('?'), "a question kept: {s}");
                let novel = informative_words(q, text);
                assert!(
                    !novel.is_empty(),
                    "kept sentence restates the question: {s}"
                );
                // The evidence span: a passage of an allowed page under the
                // live origin, holding the claim's numbers and at least one
                // of the words it adds.
                let ev = &s["evidence"];
                assert_eq!(ev["supports"], true, "{s}");
                let url = ev["url"].as_str().unwrap();
                assert!(url.starts_with(&origin), "{s}");
                let page = store.page_text(url).await.unwrap().unwrap();
                let (a, b) = (
                    ev["start"].as_u64().unwrap() as usize,
                    ev["end"].as_u64().unwrap() as usize,
                );
                let span: String = page.chars().skip(a).take(b - a).collect();
                let span_words = informative_words("", &span);
                assert!(
                    novel.iter().any(|w| span_words.contains(w)),
                    "no word the claim adds ({novel:?}) is in its span {span:?}: {s}"
                );
                for n in text
                    .split(|c: char| !c.is_ascii_digit())
                    .filter(|d| !d.is_empty())
                {
                    assert!(span.contains(n), "number {n} not in the span {span:?}: {s}");
                }
                // The citation it carries names that same page.
                let n = s["citations"][0].as_u64().expect("a kept sentence cites") as usize;
                assert_eq!(v["citations"][n - 1]["url"], url, "{stdout}");
            }
            store.close().await;
        });
    }
}

/// The exact draft, through the real pipeline (retrieval, prompt,
/// checker, record) with the real model loaded: not a claim, so the answer
/// is a refusal that says so, citing nothing.
#[tokio::test]
async fn an_echoed_draft_is_refused_because_it_restates_the_question() {
    let dir = tempdir();
    let (db, _origin) = sample_db(dir.path());
    let store = Store::open(&db).await.unwrap();
    let path = default_model();
    let file = GgufFile::open(&path).unwrap();
    let sha = answer::model_sha256(&store, &path).await.unwrap();
    let generator = Generator::new(&file, &path, sha).unwrap();
    let opts = AskOptions::default();
    let q = "When did the River Museum open?";
    for echo in [
        "When did the River Museum open? [1]",
        "The River Museum opened [1]. When did the River Museum open? [2]",
    ] {
        let prepared = answer::prepare(&store, &generator, q, &opts).await.unwrap();
        assert!(prepared.refusal.is_none(), "the site is about it");
        let draft = Draft {
            text: echo.into(),
            prompt_tokens: 0,
            tokens: 0,
            stop: "eos".into(),
            seconds: 0.0,
        };
        let a = answer::finish(&store, &generator, prepared, Some(draft), &opts)
            .await
            .unwrap();
        assert!(a.refused, "{echo}: {a:#?}");
        assert!(a.citations.is_empty(), "{a:#?}");
        assert!(
            a.reason
                .as_deref()
                .unwrap()
                .contains("restated the question"),
            "{a:#?}"
        );
        assert!(a.sentences.iter().all(|s| !s.supported), "{a:#?}");
        let json = serde_json::to_value(&a).unwrap();
        let kinds: Vec<&str> = json["sentences"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["kind"].as_str().unwrap())
            .collect();
        assert!(
            kinds
                .iter()
                .all(|k| *k == "question" || *k == "restatement"),
            "{kinds:?}"
        );
    }
    // The model's own draft for the question is never accepted as an echo
    // either (it may answer or refuse).
    let a = answer::ask(&store, &generator, q, &opts, &mut |_| {
        ControlFlow::Continue(())
    })
    .await
    .unwrap();
    for s in a.sentences.iter().filter(|s| s.supported) {
        assert!(!informative_words(q, &s.text).is_empty(), "{a:#?}");
    }
}
