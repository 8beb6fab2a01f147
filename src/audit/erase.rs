//! `byline forget` (and the service's admin forget): erasure that leaves
//! nothing. The store erases the rows and logs the erasure by hash
//! ([`Store::forget`]); this module decides what of an answer record came
//! from the erased page and rewrites it ([`redact_answer`]), so the command
//! line and the service share one implementation ([`forget`]).

use serde::Serialize;
use serde_json::Value;

use crate::store::provenance::{AnswerText, ErasedPage, EvidenceText, Redactor};
use crate::store::{Store, StoreError};

/// What `forget` did, as printed (`--json`) and returned by the service.
#[derive(Debug, Clone, Serialize)]
pub struct ForgetReport {
    /// URLs erased and tombstoned now.
    pub forgotten: Vec<String>,
    /// URLs that were already forgotten with nothing left to erase.
    pub already_forgotten: Vec<String>,
    pub pages_erased: u64,
    pub raw_captures_erased: u64,
    /// Answer records whose quotes of the page were replaced.
    pub answers_redacted: u64,
    /// Answers flagged now because they cited a forgotten page.
    pub flagged_answers: Vec<i64>,
    /// The WAL was checkpointed and truncated (no old page image left).
    pub wal_checkpointed: bool,
    /// The erased rows' old versions were vacuumed away (PostgreSQL: false
    /// when another session's snapshot from before the erasure outlived
    /// the wait for it).
    pub old_versions_vacuumed: bool,
}

/// Erases `url_norms` (normalised URLs) and/or every URL of `origin`.
pub async fn forget(
    store: &Store,
    url_norms: &[String],
    origin: Option<&str>,
    reason: &str,
    now: i64,
) -> Result<ForgetReport, StoreError> {
    let done = store.forget(url_norms, origin, reason, now, &Erase).await?;
    Ok(ForgetReport {
        forgotten: done.urls,
        already_forgotten: done.already,
        pages_erased: done.pages_erased,
        raw_captures_erased: done.raw_erased,
        answers_redacted: done.answers_redacted,
        flagged_answers: done.flagged_answers,
        wal_checkpointed: done.checkpointed,
        old_versions_vacuumed: done.old_versions_vacuumed,
    })
}

/// The rules [`forget`] gives the store.
struct Erase;

impl Redactor for Erase {
    fn answer(&self, page: &ErasedPage, quotes: &[String], a: &AnswerText) -> AnswerText {
        redact_answer(page, quotes, a)
    }
    fn evidence(&self, page: &ErasedPage, e: &EvidenceText) -> (String, String) {
        redact_evidence(page, e)
    }
}

/// An evidence row of an erased page: the attribution (title, author, site
/// name) and anything read from the body text are replaced whole (`raw` by
/// the placeholder, every field of `parsed` but its `type`); in any other
/// row, occurrences of the page's title, author and sentences are replaced.
/// What decided the verdicts (robots.txt, headers, licence links) stays.
pub fn redact_evidence(page: &ErasedPage, e: &EvidenceText) -> (String, String) {
    let ph = page.placeholder.as_str();
    if e.signal == "attribution" || e.location == "body-text" {
        let raw = if e.raw.is_empty() {
            String::new()
        } else {
            ph.to_string()
        };
        let parsed = match serde_json::from_str::<Value>(&e.parsed) {
            Ok(Value::Object(mut m)) => {
                for (k, v) in m.iter_mut() {
                    if k != "type" && v.is_string() {
                        *v = if e.signal == "attribution" {
                            Value::Null
                        } else {
                            Value::from(ph)
                        };
                    }
                }
                Value::Object(m).to_string()
            }
            _ => e.parsed.clone(),
        };
        return (raw, parsed);
    }
    let needles = page_needles(page);
    let scrub = |s: &str| scrub_str(s, &needles, ph);
    let parsed = match serde_json::from_str::<Value>(&e.parsed) {
        Ok(mut v) => {
            let before = v.clone();
            scrub_value(&mut v, &scrub);
            if v == before {
                e.parsed.clone()
            } else {
                v.to_string()
            }
        }
        Err(_) => scrub(&e.parsed),
    };
    (scrub(&e.raw), parsed)
}

/// The page's title and author (when long enough) and its sentences.
fn page_needles(page: &ErasedPage) -> Vec<String> {
    let mut needles = Vec::new();
    for name in [&page.title, &page.author].into_iter().flatten() {
        if name.chars().count() >= MIN_NAME_CHARS {
            needles.push(name.clone());
        }
    }
    for (s, e) in crate::index::text::sentences(&page.text) {
        if let Some(sent) = page.text.get(s..e) {
            if sent.chars().count() >= MIN_SENTENCE_CHARS {
                needles.push(sent.to_string());
            }
        }
    }
    needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
    needles
}

/// `s` with every needle (longest first) replaced by `ph`.
fn scrub_str(s: &str, needles: &[String], ph: &str) -> String {
    let mut s = s.to_string();
    for n in needles {
        if s.contains(n.as_str()) {
            s = s.replace(n.as_str(), ph);
        }
    }
    s
}

/// Shortest title or author replaced wherever it occurs (shorter ones would
/// blank ordinary words of the answer).
const MIN_NAME_CHARS: usize = 4;
/// Shortest sentence of the page text replaced wherever it occurs.
const MIN_SENTENCE_CHARS: usize = 20;

/// Rewrites an answer record that cited `page` so that nothing of the page
/// is left in it: in the JSON, the page's citations lose their quote
/// (replaced by the placeholder naming the tombstone), title, author and
/// attribution; sentence evidence from the page loses its quote; the
/// answer's sentences backed by the page are replaced. Then, in every
/// string of the JSON but the caller's own question, and in the answer and
/// draft columns, every occurrence of those quotes and sentences, of the
/// page's title and author, and of any sentence of the page's text is
/// replaced by the placeholder.
pub fn redact_answer(page: &ErasedPage, quotes: &[String], a: &AnswerText) -> AnswerText {
    let ph = page.placeholder.as_str();
    let mut needles: Vec<String> = quotes.iter().filter(|q| !q.is_empty()).cloned().collect();
    needles.extend(page_needles(page));
    let mut json: Value = serde_json::from_str(&a.json).unwrap_or(Value::Null);
    if let Some(obj) = json.as_object_mut() {
        let mut ns: Vec<u64> = Vec::new();
        if let Some(cits) = obj.get_mut("citations").and_then(Value::as_array_mut) {
            for c in cits {
                if c.get("page_id").and_then(Value::as_i64) != Some(page.page_id) {
                    continue;
                }
                if let Some(q) = c.get("quote").and_then(Value::as_str) {
                    if !q.is_empty() {
                        needles.push(q.to_string());
                    }
                }
                if let Some(n) = c.get("n").and_then(Value::as_u64) {
                    ns.push(n);
                }
                c["quote"] = Value::from(ph);
                c["attribution"] = Value::from(ph);
                c["title"] = Value::Null;
                c["author"] = Value::Null;
            }
        }
        if let Some(sents) = obj.get_mut("sentences").and_then(Value::as_array_mut) {
            for s in sents {
                let backed = s
                    .get("citations")
                    .and_then(Value::as_array)
                    .is_some_and(|c| {
                        c.iter()
                            .any(|n| n.as_u64().is_some_and(|n| ns.contains(&n)))
                    });
                if backed {
                    if let Some(t) = s.get("text").and_then(Value::as_str) {
                        if !t.trim().is_empty() {
                            needles.push(t.to_string());
                        }
                    }
                    s["text"] = Value::from(ph);
                }
                if let Some(ev) = s.get_mut("evidence").filter(|e| e.is_object()) {
                    if ev.get("page_id").and_then(Value::as_i64) == Some(page.page_id) {
                        if let Some(q) = ev.get("quote").and_then(Value::as_str) {
                            if !q.is_empty() {
                                needles.push(q.to_string());
                            }
                        }
                        ev["quote"] = Value::from(ph);
                        ev["matched_terms"] = Value::Array(Vec::new());
                        ev["missing_terms"] = Value::Array(Vec::new());
                        ev["roles"] = Value::Array(Vec::new());
                    }
                }
            }
        }
    }
    // Longest first, so a sentence is replaced whole before a quote inside it.
    needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
    needles.dedup();
    let scrub = |s: &str| scrub_str(s, &needles, ph);
    if let Some(obj) = json.as_object_mut() {
        for (k, v) in obj.iter_mut() {
            // The caller's own words (also in the answer's audit event).
            if k == "question" || k == "retrieval_query" {
                continue;
            }
            scrub_value(v, &scrub);
        }
    }
    AnswerText {
        json: if json.is_null() {
            scrub(&a.json)
        } else {
            json.to_string()
        },
        answer: scrub(&a.answer),
        draft: scrub(&a.draft),
    }
}

fn scrub_value(v: &mut Value, scrub: &dyn Fn(&str) -> String) {
    match v {
        Value::String(s) => {
            let t = scrub(s);
            if t != *s {
                *s = t;
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| scrub_value(x, scrub)),
        Value::Object(m) => m.values_mut().for_each(|x| scrub_value(x, scrub)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> ErasedPage {
        ErasedPage {
            page_id: 7,
            url: "http://x/h".into(),
            title: Some("History of the Mill".into()),
            author: Some("Tom Beddowes".into()),
            text: "The mill was built in 1852 by Josiah Hartwell. It closed in 1931.".into(),
            placeholder: "[forgotten: tombstone abc]".into(),
        }
    }

    #[test]
    fn quotes_titles_and_backed_sentences_are_replaced_the_question_stays() {
        let json = serde_json::json!({
            "question": "Who built the mill in 1852 by Josiah Hartwell?",
            "answer": "Josiah Hartwell built it [1]. Other fact [2].",
            "draft": "The mill was built in 1852 by Josiah Hartwell.",
            "citations": [
                {"n": 1, "page_id": 7, "quote": "built in 1852 by Josiah Hartwell", "title": "History of the Mill",
                 "author": "Tom Beddowes", "attribution": "\"History of the Mill\" by Tom Beddowes"},
                {"n": 2, "page_id": 8, "quote": "Other fact", "title": "Other", "author": null, "attribution": "Other"}
            ],
            "sentences": [
                {"text": "Josiah Hartwell built it [1].", "citations": [1],
                 "evidence": {"page_id": 7, "quote": "built in 1852 by Josiah Hartwell", "matched_terms": ["hartwel"]}},
                {"text": "Other fact [2].", "citations": [2], "evidence": {"page_id": 8, "quote": "Other fact"}}
            ]
        });
        let a = AnswerText {
            json: json.to_string(),
            answer: "Josiah Hartwell built it [1]. Other fact [2].".into(),
            draft: "The mill was built in 1852 by Josiah Hartwell.".into(),
        };
        let r = redact_answer(&page(), &["built in 1852 by Josiah Hartwell".into()], &a);
        let v: Value = serde_json::from_str(&r.json).unwrap();
        let ph = "[forgotten: tombstone abc]";
        assert_eq!(v["citations"][0]["quote"], ph);
        assert_eq!(v["citations"][0]["title"], Value::Null);
        assert_eq!(v["citations"][1]["quote"], "Other fact");
        assert_eq!(v["sentences"][0]["text"], ph);
        assert_eq!(v["sentences"][0]["evidence"]["quote"], ph);
        assert_eq!(v["sentences"][1]["text"], "Other fact [2].");
        assert_eq!(v["question"], json["question"]);
        assert!(
            !r.json
                .replace(json["question"].as_str().unwrap(), "")
                .contains("Hartwell")
        );
        assert!(!r.json.contains("Beddowes") && !r.json.contains("History of the Mill"));
        assert_eq!(r.answer, format!("{ph} Other fact [2]."));
        assert_eq!(r.draft, ph);
        // Redacting again changes nothing.
        let again = redact_answer(&page(), &[], &r);
        assert_eq!(again, r);
    }
}
