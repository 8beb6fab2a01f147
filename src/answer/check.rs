//! The citation checker: the source of truth for what an answer may claim.
//!
//! Small models cite badly, so nothing the model says about its sources is
//! trusted. The draft is split into sentences; each sentence is scored
//! against the passages it cites and against every other allowed passage
//! retrieved for the question:
//!
//! * **lexical support**: the share of the sentence's content terms found in
//!   the passage, and separately the share of the terms the sentence adds
//!   beyond the question (the part that answers it); the score is the lower
//!   of the two, so restating the question earns nothing;
//! * **numbers**: every number in the sentence must be in the passage, else
//!   the score is cut;
//! * **verbatim quotes**: the longest run of words the sentence shares with
//!   the passage; a run covering most of the sentence makes it supported.
//!
//! A sentence keeps the citation the model gave when that passage supports
//! it, is re-attached to the best supporting passage when not, and is marked
//! unsupported when no allowed passage reaches the threshold. Sentences that
//! say the sources do not answer are recognised as such.

use std::collections::BTreeSet;

use crate::index::text::{content_terms, is_stopword, numbers, sentences, stem, words};

/// One passage a sentence may be checked against.
#[derive(Debug, Clone)]
pub struct Source {
    /// The `[n]` it carried in the prompt (`None`: retrieved, not shown).
    pub prompt_n: Option<usize>,
    pub text: String,
    /// The page title (its terms count as the passage's subject).
    pub title: String,
    /// At most this many characters may be quoted (`Some(0)`: none).
    pub max_quote_chars: Option<usize>,
}

/// Settings of the checker.
#[derive(Debug, Clone, Copy)]
pub struct CheckConfig {
    /// A sentence is supported by a passage scoring at least this.
    pub min_support: f64,
    /// A shared run of at least this many words counts as a verbatim quote.
    pub min_quote_words: usize,
}

impl Default for CheckConfig {
    fn default() -> Self {
        CheckConfig {
            min_support: 0.6,
            min_quote_words: 5,
        }
    }
}

/// How well one passage supports one sentence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Support {
    /// Index into the sources.
    pub source: usize,
    /// 0..=1.
    pub score: f64,
    /// The sentence shares a run of at least `min_quote_words` words with it.
    pub verbatim: bool,
    /// The quoted span: byte offsets into the passage text.
    pub quote_start: usize,
    pub quote_end: usize,
}

/// What a sentence of the draft is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SentenceKind {
    /// A claim that needs support.
    Claim,
    /// "The sources do not answer this" and the like.
    NoAnswer,
}

/// One checked sentence of the draft.
#[derive(Debug, Clone)]
pub struct CheckedSentence {
    /// The sentence without its citation markers.
    pub text: String,
    pub kind: SentenceKind,
    /// The `[n]` markers the model wrote.
    pub model_citations: Vec<usize>,
    /// The passage that supports it, if any reaches the threshold.
    pub support: Option<Support>,
    /// The best score seen (also when unsupported).
    pub best_score: f64,
    /// The support is not a passage the model cited.
    pub reattached: bool,
    /// For each model citation that names a source: whether that source
    /// alone supports the sentence (ALCE precision).
    pub model_citation_support: Vec<bool>,
}

impl CheckedSentence {
    /// Supported by an allowed passage.
    pub fn supported(&self) -> bool {
        self.support.is_some()
    }
}

/// Words whose presence marks a sentence as "the sources do not answer".
const NO_ANSWER: &[&str] = &[
    "do not answer",
    "does not answer",
    "don't answer",
    "doesn't answer",
    "cannot answer",
    "can't answer",
    "do not contain",
    "does not contain",
    "do not mention",
    "does not mention",
    "not mentioned",
    "no information",
    "not specified",
    "not provided",
    "not stated",
    "i don't know",
    "i do not know",
    "unable to",
    "not enough information",
    "no answer",
];

/// Whether the sentence says the sources hold no answer.
pub fn is_no_answer(sentence: &str) -> bool {
    let s = sentence.to_lowercase().replace('’', "'");
    NO_ANSWER.iter().any(|p| s.contains(p))
}

/// Removes `[n]`, `[n, m]`, `[Source n]` markers; returns the clean text and
/// the numbers in order of appearance.
pub fn strip_markers(sentence: &str) -> (String, Vec<usize>) {
    let mut out = String::with_capacity(sentence.len());
    let mut ns = Vec::new();
    let mut rest = sentence;
    while let Some(open) = rest.find('[') {
        let Some(close) = rest[open..].find(']').map(|c| open + c) else {
            break;
        };
        let inner = rest[open + 1..close].trim();
        let inner_l = inner.to_lowercase();
        let body = inner_l
            .strip_prefix("sources")
            .or_else(|| inner_l.strip_prefix("source"))
            .unwrap_or(&inner_l)
            .trim();
        let parts: Vec<&str> = body
            .split([',', ';', ' '])
            .filter(|p| !p.is_empty())
            .collect();
        if !parts.is_empty() && parts.iter().all(|p| p.chars().all(|c| c.is_ascii_digit())) {
            out.push_str(rest[..open].trim_end());
            ns.extend(parts.iter().filter_map(|p| p.parse::<usize>().ok()));
        } else {
            out.push_str(&rest[..=close]);
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    let clean = out.split_whitespace().collect::<Vec<_>>().join(" ");
    // "built in 1852 ." after a removed marker: close the gap.
    let clean = clean
        .replace(" .", ".")
        .replace(" ,", ",")
        .replace(" !", "!")
        .replace(" ?", "?");
    (clean, ns)
}

/// The content terms of `sentence` with weights: 2 for names and numbers
/// (written with a capital or a digit), 1 for other words.
fn weighted_terms(sentence: &str) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = Vec::new();
    for (a, _, w) in words(sentence) {
        if is_stopword(&w) {
            continue;
        }
        let first = sentence[a..].chars().next().unwrap_or(' ');
        let weight = if first.is_uppercase() || first.is_ascii_digit() {
            2.0
        } else {
            1.0
        };
        let t = stem(&w);
        match out.iter_mut().find(|(x, _)| *x == t) {
            Some(e) => e.1 = e.1.max(weight),
            None => out.push((t, weight)),
        }
    }
    out
}

fn weighted_share<'a>(
    terms: impl Iterator<Item = &'a (String, f64)>,
    have: &BTreeSet<String>,
) -> Option<f64> {
    let (mut found, mut total) = (0.0, 0.0);
    for (t, w) in terms {
        total += w;
        if have.contains(t) {
            found += w;
        }
    }
    (total > 0.0).then_some(found / total)
}

/// Scores how well `passage` (of a page titled `title`) supports `sentence`
/// (without markers), given the question it answers. The score is the
/// lowest of: the weighted share of the sentence's content terms found in
/// the passage or title; the same over the terms the sentence adds beyond
/// the question; the share of the question's terms the sentence repeats
/// (its subject) found there. A number the passage lacks cuts it further; a
/// verbatim run covering most of the sentence lifts it.
pub fn support_score(
    question: &str,
    sentence: &str,
    passage: &str,
    title: &str,
    cfg: &CheckConfig,
) -> Support {
    let s_terms = weighted_terms(sentence);
    let mut p_terms = content_terms(passage);
    p_terms.extend(content_terms(title));
    let q_terms = content_terms(question);
    let mut score = 0.0;
    if let Some(all) = weighted_share(s_terms.iter(), &p_terms) {
        let novel = weighted_share(
            s_terms.iter().filter(|(t, _)| !q_terms.contains(t)),
            &p_terms,
        )
        .unwrap_or(all);
        // A bare number ("2.") names nothing the passage could be about: it
        // is supported only where the passage has the question's subject.
        let bare_number = s_terms.iter().all(|(t, _)| {
            t.chars()
                .all(|c| c.is_ascii_digit() || c == '.' || c == ',')
        });
        let subject = if bare_number && !q_terms.is_empty() {
            q_terms.iter().filter(|t| p_terms.contains(*t)).count() as f64 / q_terms.len() as f64
        } else {
            weighted_share(
                s_terms.iter().filter(|(t, _)| q_terms.contains(t)),
                &p_terms,
            )
            .unwrap_or(1.0)
        };
        score = all.min(novel).min(subject);
        let s_nums = numbers(sentence);
        if !s_nums.is_empty() {
            let p_nums = numbers(passage);
            let have = s_nums.iter().filter(|n| p_nums.contains(*n)).count();
            if have < s_nums.len() {
                score *= 0.5 * have as f64 / s_nums.len() as f64;
            }
        }
    }
    let s_terms: BTreeSet<String> = s_terms.into_iter().map(|(t, _)| t).collect();
    // Longest shared run of words, for verbatim quotes.
    let sw = words(sentence);
    let pw = words(passage);
    let (mut best_len, mut best_p) = (0usize, 0usize);
    let mut prev = vec![0usize; pw.len() + 1];
    for a in &sw {
        let mut cur = vec![0usize; pw.len() + 1];
        for (j, b) in pw.iter().enumerate() {
            if a.2 == b.2 {
                cur[j + 1] = prev[j] + 1;
                if cur[j + 1] > best_len {
                    best_len = cur[j + 1];
                    best_p = j + 1 - best_len;
                }
            }
        }
        prev = cur;
    }
    let verbatim = best_len >= cfg.min_quote_words;
    if verbatim && !sw.is_empty() {
        let share = best_len as f64 / sw.len() as f64;
        if share >= 0.8 {
            score = score.max(1.0);
        } else {
            score = score.max(share);
        }
    }
    // The quote: the verbatim run, else the passage sentence that shares the
    // most content terms with the claim.
    let (quote_start, quote_end) = if verbatim {
        // The whole passage sentence(s) around the shared run.
        let (ra, rb) = (pw[best_p].0, pw[best_p + best_len - 1].1);
        let ss = sentences(passage);
        let a = ss
            .iter()
            .find(|&&(a, b)| a <= ra && ra < b)
            .map_or(ra, |s| s.0);
        let b = ss
            .iter()
            .find(|&&(a, b)| a < rb && rb <= b)
            .map_or(rb, |s| s.1);
        (a, b)
    } else {
        sentences(passage)
            .into_iter()
            .max_by_key(|&(a, b)| {
                let t = content_terms(&passage[a..b]);
                (
                    s_terms.iter().filter(|x| t.contains(*x)).count(),
                    usize::MAX - a,
                )
            })
            .unwrap_or((0, passage.len()))
    };
    Support {
        source: 0,
        score: (score * 1000.0).round() / 1000.0,
        verbatim,
        quote_start,
        quote_end,
    }
}

/// Checks every sentence of `draft` against `sources`.
pub fn check(
    question: &str,
    draft: &str,
    sources: &[Source],
    cfg: &CheckConfig,
) -> Vec<CheckedSentence> {
    let mut out = Vec::new();
    for (a, b) in sentences(draft) {
        let (text, model_citations) = strip_markers(&draft[a..b]);
        if text.is_empty() || !text.chars().any(char::is_alphanumeric) {
            continue;
        }
        if is_no_answer(&text) {
            out.push(CheckedSentence {
                text,
                kind: SentenceKind::NoAnswer,
                model_citations,
                support: None,
                best_score: 0.0,
                reattached: false,
                model_citation_support: Vec::new(),
            });
            continue;
        }
        let scores: Vec<Support> = sources
            .iter()
            .enumerate()
            .map(|(i, s)| Support {
                source: i,
                ..support_score(question, &text, &s.text, &s.title, cfg)
            })
            .collect();
        let cited: Vec<&Support> = model_citations
            .iter()
            .filter_map(|n| sources.iter().position(|s| s.prompt_n == Some(*n)))
            .map(|i| &scores[i])
            .collect();
        let model_citation_support: Vec<bool> =
            cited.iter().map(|s| s.score >= cfg.min_support).collect();
        let best_of = |it: &mut dyn Iterator<Item = &Support>| -> Option<Support> {
            it.fold(None, |acc: Option<Support>, s| match acc {
                Some(a) if a.score >= s.score => Some(a),
                _ => Some(*s),
            })
        };
        let best_cited = best_of(&mut cited.iter().copied());
        let best_any = best_of(&mut scores.iter());
        let best_score = best_any.map(|s| s.score).unwrap_or(0.0);
        let (support, reattached) = match (best_cited, best_any) {
            (Some(c), _) if c.score >= cfg.min_support => (Some(c), false),
            (_, Some(b)) if b.score >= cfg.min_support => (Some(b), true),
            _ => (None, false),
        };
        out.push(CheckedSentence {
            text,
            kind: SentenceKind::Claim,
            model_citations,
            support,
            best_score,
            reattached,
            model_citation_support,
        });
    }
    out
}

/// The quote of `support` in `source`, cut to the source's quote limit on a
/// word boundary: byte offsets into the passage text.
pub fn quote_span(source: &Source, support: &Support) -> (usize, usize) {
    let (a, b) = (support.quote_start, support.quote_end);
    match source.max_quote_chars {
        Some(0) => (a, a),
        Some(max) if source.text[a..b].chars().count() > max => {
            let cut = source.text[a..b]
                .char_indices()
                .nth(max)
                .map(|(i, _)| a + i)
                .unwrap_or(b);
            // Back to the end of the last whole word.
            let head = &source.text[a..cut];
            let end = match head.rfind(char::is_whitespace) {
                Some(i) if i > 0 => a + head[..i].trim_end().len(),
                _ => cut,
            };
            (a, end)
        }
        _ => (a, b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(n: Option<usize>, text: &str) -> Source {
        Source {
            prompt_n: n,
            text: text.into(),
            title: String::new(),
            max_quote_chars: None,
        }
    }

    const MILL: &str = "The mill was built in 1852 by the clothier Josiah Hartwell, who needed water power. It closed in 1931.";
    const COOP: &str =
        "In 1987 forty-two residents founded the cooperative and raised £38,000 to buy the mill.";

    #[test]
    fn markers_are_removed_and_read() {
        assert_eq!(
            strip_markers("Built in 1852 [1][2, 3]."),
            ("Built in 1852.".to_string(), vec![1, 2, 3])
        );
        assert_eq!(
            strip_markers("See [Source 2] and [note]"),
            ("See and [note]".to_string(), vec![2])
        );
    }

    #[test]
    fn a_verbatim_quote_is_found_with_its_offsets() {
        let q = "When was the mill built?";
        let s = support_score(
            q,
            "The mill was built in 1852 by the clothier Josiah Hartwell.",
            MILL,
            "",
            &CheckConfig::default(),
        );
        assert!(s.verbatim);
        assert_eq!(s.score, 1.0);
        assert_eq!(
            &MILL[s.quote_start..s.quote_end],
            "The mill was built in 1852 by the clothier Josiah Hartwell, who needed water power."
        );
    }

    #[test]
    fn a_wrong_citation_is_reattached_to_the_supporting_passage() {
        let sources = [src(Some(1), COOP), src(Some(2), MILL)];
        let out = check(
            "Who built the mill?",
            "Josiah Hartwell built the mill in 1852 [1].",
            &sources,
            &CheckConfig::default(),
        );
        assert_eq!(out.len(), 1);
        let s = &out[0];
        assert_eq!(s.model_citations, vec![1]);
        assert_eq!(s.model_citation_support, vec![false]);
        assert!(s.reattached);
        assert_eq!(s.support.map(|x| x.source), Some(1));
    }

    #[test]
    fn an_unsupported_sentence_is_marked_and_a_wrong_number_fails() {
        let sources = [src(Some(1), MILL), src(Some(2), COOP)];
        let out = check(
            "How many lace bobbins are in the Marlowe collection?",
            "The Marlowe collection holds 1852 lace bobbins [1]. The mill closed in 1931 [1].",
            &sources,
            &CheckConfig::default(),
        );
        assert_eq!(out.len(), 2);
        assert!(!out[0].supported(), "{:?}", out[0]);
        assert!(out[0].best_score < 0.6);
        assert!(out[1].supported());
        assert!(!out[1].reattached);
        // Same words, wrong year: not supported.
        let wrong = check(
            "When did the mill close?",
            "The mill closed in 1932.",
            &sources,
            &CheckConfig::default(),
        );
        assert!(!wrong[0].supported(), "{:?}", wrong[0]);
    }

    #[test]
    fn restating_the_question_is_no_support_and_refusals_are_recognised() {
        let sources = [src(Some(1), "The riverside walk starts at the mill gate.")];
        let out = check(
            "How many stiles are on the riverside walk?",
            "There are three stiles on the riverside walk. The sources do not answer this.",
            &sources,
            &CheckConfig::default(),
        );
        assert!(!out[0].supported(), "{:?}", out[0]);
        assert_eq!(out[1].kind, SentenceKind::NoAnswer);
    }

    #[test]
    fn filler_words_weigh_less_than_names_and_a_missing_subject_fails() {
        let mut mill = src(Some(1), MILL);
        mill.title = "History of the Old Fulling Mill".into();
        let sources = [mill, src(Some(2), COOP)];
        let out = check(
            "Who built the Old Fulling Mill?",
            "A man named Josiah Hartwell built the Old Fulling Mill.",
            &sources,
            &CheckConfig::default(),
        );
        assert!(out[0].supported(), "{:?}", out[0]);
        // Every added word is in COOP, but the subject (the Marlowe
        // collection) is in no passage.
        let out = check(
            "How many lace bobbins are in the Marlowe collection?",
            "The Marlowe lace bobbin collection was founded by forty-two residents.",
            &sources,
            &CheckConfig::default(),
        );
        assert!(!out[0].supported(), "{:?}", out[0]);
    }

    #[test]
    fn a_bare_number_needs_the_questions_subject_in_the_passage() {
        let cfg = CheckConfig::default();
        let q = "How many lace bobbins are in the Marlowe collection?";
        let byline = "By Tom Beddowes, archive officer. Published 2 March 2024.";
        let about = "The Marlowe collection holds 2 lace bobbins from the mill.";
        let off = support_score(q, "A: 2.", byline, "History of the Old Fulling Mill", &cfg);
        let on = support_score(q, "A: 2.", about, "Collections", &cfg);
        assert!(off.score < cfg.min_support, "{off:?}");
        assert!(on.score >= cfg.min_support, "{on:?}");
    }

    #[test]
    fn quotes_respect_the_source_limit() {
        let mut s = src(Some(1), MILL);
        let sup = support_score(
            "",
            "The mill was built in 1852 by the clothier Josiah Hartwell.",
            MILL,
            "",
            &CheckConfig::default(),
        );
        s.max_quote_chars = Some(20);
        let (a, b) = quote_span(&s, &sup);
        assert_eq!(&MILL[a..b], "The mill was built");
        s.max_quote_chars = Some(0);
        let (a, b) = quote_span(&s, &sup);
        assert_eq!(a, b);
    }
}
