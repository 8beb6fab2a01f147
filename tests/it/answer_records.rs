//! `byline ask --stream` (the checked answer sentence by sentence),
//! `byline answers list|show` over the recorded answers, and how a
//! conversation's earlier turns complete a follow-up's retrieval query.

use std::process::Command;

use byline::answer::{self, AskOptions, Generator, LiveCheck};
use byline::engine::chat::ChatMessage;
use byline::engine::gguf::GgufFile;
use byline::store::Store;
use serde_json::Value;

use crate::support::answer::sample_db;
use crate::support::model::default_model;
use crate::support::{byline_bin, tempdir};

const MILL: &str = "Who built the Old Fulling Mill?";

fn byline(db: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(byline_bin())
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn ask_streams_the_checked_answer_and_answers_list_and_show_read_the_record() {
    let dir = tempdir();
    let (db, origin) = sample_db(dir.path());
    let model = default_model();
    let model = model.to_str().unwrap();
    let out = byline(
        &db,
        &["ask", "--stream", "-n", "48", "--model", model, MILL],
    );
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first = text.lines().next().unwrap_or("").to_string();
    let id: i64 = text
        .rsplit("answer #")
        .next()
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no recorded answer id in {text}"));

    let out = byline(&db, &["answers", "list", "--json"]);
    assert!(out.status.success());
    let list: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let item = &list[0];
    assert_eq!(item["id"], id, "{list}");
    assert_eq!(item["question"], MILL);
    assert_eq!(item["model"], "SmolLM2-135M-Instruct.Q4_1.gguf");
    assert_eq!(item["refused"], false, "{list}");
    let cited: Vec<&str> = item["cited_urls"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        cited.contains(&format!("{origin}/history.html").as_str()),
        "{list}"
    );

    let out = byline(&db, &["answers", "show", &id.to_string(), "--json"]);
    assert!(out.status.success());
    let shown: Value = serde_json::from_str(&stdout(&out)).unwrap();
    // What was streamed, sentence by sentence, is the recorded answer.
    assert_eq!(shown["answer"], first.as_str(), "{text}\n{shown}");
    assert_eq!(shown["recorded"]["answer"], shown["answer"]);
    let cits = shown["citations"].as_array().unwrap();
    assert!(!cits.is_empty());
    assert!(
        cits.iter()
            .all(|c| c["quote"].is_string() && c["verdict_id"].is_i64())
    );
    let sentences = shown["sentences"].as_array().unwrap();
    assert!(
        sentences
            .iter()
            .any(|s| s["supported"] == true && s["why"].is_string()),
        "{shown}"
    );

    let human = stdout(&byline(&db, &["answers", "list"]));
    assert!(human.starts_with(&format!("#{id} ")), "{human}");
    assert!(
        human.contains(MILL) && human.contains("supported"),
        "{human}"
    );
    let human = stdout(&byline(&db, &["answers", "show", &id.to_string()]));
    assert!(
        human.contains("checker") && human.contains("kept"),
        "{human}"
    );

    let out = byline(&db, &["answers", "show", "999999"]);
    assert_eq!(out.status.code(), Some(1), "an unknown id is a 'no'");
    let missing = dir.path().join("none.db");
    let out = byline(&missing, &["answers", "list"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!missing.exists(), "a read-only command created a corpus");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_checking_passes_a_sentence_once_the_next_begins_numbered_as_the_record() {
    let dir = tempdir();
    let (db, _) = sample_db(dir.path());
    let store = Store::open(&db).await.unwrap();
    let path = default_model();
    let file = GgufFile::open(&path).unwrap();
    let generator = Generator::new(&file, &path, "test".into()).unwrap();
    let opts = AskOptions::default();
    let prepared = answer::prepare(&store, &generator, MILL, &opts)
        .await
        .unwrap();
    assert!(prepared.refusal.is_none());
    let mut live = LiveCheck::new(&prepared, &opts);
    let draft = [
        "The mill was built in 1852 by the clothier ",
        "Josiah Hartwell.",
        " Who built the Old Fulling Mill?",
        " The moon is made of cheese.",
    ];
    assert!(live.push(draft[0]).is_empty());
    assert!(
        live.push(draft[1]).is_empty(),
        "the sentence may not be over yet"
    );
    let passed = live.push(draft[2]);
    assert_eq!(passed.len(), 1, "{passed:?}");
    assert_eq!(
        passed[0],
        "The mill was built in 1852 by the clothier Josiah Hartwell. [1]"
    );
    assert!(
        live.push(draft[3]).is_empty(),
        "a restated question is no claim"
    );
    assert!(
        live.finish().is_empty(),
        "an unsupported sentence never passes"
    );
}

#[test]
fn a_follow_up_question_is_completed_with_the_words_of_earlier_user_turns() {
    let history = vec![
        ChatMessage::new("user", "Who built the Old Fulling Mill?"),
        ChatMessage::new("assistant", "Josiah Hartwell built it in 1852. [1]"),
        ChatMessage::new("user", "What happened in the flood of 1947?"),
        ChatMessage::new("assistant", "Water stood 1.8 metres deep. [1]"),
    ];
    let q = answer::retrieval_query("When was it built?", &history);
    assert!(q.starts_with("When was it built? "), "{q}");
    for w in ["flood", "1947", "old", "fulling", "mill"] {
        assert!(q.split(' ').any(|x| x == w), "{w} missing from {q}");
    }
    assert!(
        !q.contains("hartwell"),
        "assistant turns are not the user's words: {q}"
    );
    // A question that stands on its own is left alone, and so is any
    // question without earlier user turns.
    let own = "What are the opening hours on Sunday?";
    assert_eq!(answer::retrieval_query(own, &history), own);
    assert_eq!(
        answer::retrieval_query("When was it built?", &[]),
        "When was it built?"
    );
    assert!(answer::is_follow_up("And the price?"));
    assert!(!answer::is_follow_up(
        "How many directors sit on the board?"
    ));
}
