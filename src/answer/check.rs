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

use crate::index::text::{
    content_roots, content_terms, is_stopword, numbers, root, sentences, stem, words,
};

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
    /// Restates the question or adds nothing beyond it (every content word
    /// is a question word or filler): not a claim, never supported.
    Restatement,
    /// A question, not a statement: not a claim, never supported.
    Question,
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
    /// The content words the sentence adds beyond the question (roots).
    pub novel_terms: Vec<String>,
    /// How the supporting passage (or, when dropped, the best one) matched.
    pub explain: Option<Explain>,
    /// Why it was kept or dropped, in words.
    pub why: String,
}

/// How one passage matched one sentence: the evidence behind a score.
#[derive(Debug, Clone, PartialEq)]
pub struct Explain {
    /// Index into the sources.
    pub source: usize,
    /// The sentence's content terms found in the passage or its title.
    pub matched: Vec<String>,
    /// The sentence's content terms found in neither.
    pub missing: Vec<String>,
    /// Every number and name of the sentence and whether the passage has it
    /// in the same role.
    pub roles: Vec<RoleCheck>,
}

/// A number, date or name of a claim checked for its role in a passage: it
/// counts only where a passage sentence holds it together with at least one
/// of the claim's other content words (for a claim of nothing but numbers
/// and names, one of the question's), so "page 1887 of the catalogue"
/// does not support "the museum opened in 1887".
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RoleCheck {
    /// The number (normalised) or name word (lower case).
    pub term: String,
    /// `number` or `name`.
    pub kind: &'static str,
    /// Found in a passage sentence with an anchor word (a name also counts
    /// when it is in the page title).
    pub anchored: bool,
    /// The claim's words it was found beside (empty when not anchored).
    pub anchors: Vec<String>,
    /// The passage sentence it was found in: byte offsets into the passage.
    pub sentence: Option<(usize, usize)>,
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

/// Words that add nothing to a sentence about the sources: talk about the
/// question itself. A sentence of question words and these is no claim.
const FILLER: &[&str] = &[
    "answer",
    "answered",
    "ask",
    "asked",
    "asking",
    "question",
    "questions",
    "source",
    "sources",
    "passage",
    "passages",
    "text",
    "information",
    "know",
    "known",
    "tell",
    "told",
    "say",
    "says",
    "said",
    "state",
    "states",
    "stated",
    "mention",
    "mentions",
    "mentioned",
    "yes",
    "ok",
    "okay",
    "sure",
    "well",
    "let",
    "me",
    "see",
    "look",
    "looking",
    "find",
    "found",
    "following",
    "given",
    "here",
    "please",
];

fn roots(text: &str) -> BTreeSet<String> {
    content_roots(text)
}

/// The content words (roots) `sentence` adds beyond `question` and filler:
/// empty when it restates the question or says nothing.
pub fn novel_terms(question: &str, sentence: &str) -> Vec<String> {
    let q = roots(question);
    let mut out: Vec<String> = Vec::new();
    for (_, _, w) in words(sentence) {
        if is_stopword(&w) || FILLER.contains(&w.as_str()) {
            continue;
        }
        let r = root(&w);
        if !q.contains(&r) && !out.contains(&r) {
            out.push(r);
        }
    }
    out
}

/// What a sentence without its markers is: a question, a restatement of
/// `question`, "the sources do not answer", or a claim.
pub fn classify(question: &str, sentence: &str) -> SentenceKind {
    if is_no_answer(sentence) {
        SentenceKind::NoAnswer
    } else if sentence
        .trim_end_matches(['"', '\'', ')', '”', '’'])
        .ends_with('?')
    {
        SentenceKind::Question
    } else if novel_terms(question, sentence).is_empty() {
        SentenceKind::Restatement
    } else {
        SentenceKind::Claim
    }
}

/// Checks every number and name of `sentence` for its role in `passage`
/// (see [`RoleCheck`]). Names are capitalised words after the first that
/// are not in the question; numbers are as [`numbers`] reads them.
pub fn role_checks(question: &str, sentence: &str, passage: &str, title: &str) -> Vec<RoleCheck> {
    let q = roots(question);
    let nums = numbers(sentence);
    let mut names: Vec<String> = Vec::new();
    for (i, (a, _, w)) in words(sentence).into_iter().enumerate() {
        let first = sentence
            .get(a..)
            .and_then(|t| t.chars().next())
            .unwrap_or(' ');
        if i == 0 || !first.is_uppercase() || is_stopword(&w) || FILLER.contains(&w.as_str()) {
            continue;
        }
        let r = root(&w);
        if !q.contains(&r) && !names.contains(&r) {
            names.push(r);
        }
    }
    let urls = urls_in(sentence);
    if nums.is_empty() && names.is_empty() && urls.is_empty() {
        return Vec::new();
    }
    // Anchors: the claim's other content words; a claim of only numbers and
    // names leans on the question's words (its subject).
    let mut anchors: BTreeSet<String> = words(sentence)
        .into_iter()
        .filter(|(_, _, w)| !is_stopword(w) && !FILLER.contains(&w.as_str()))
        .filter(|(_, _, w)| !w.chars().all(|c| c.is_ascii_digit()))
        .map(|(_, _, w)| root(&w))
        .filter(|r| !names.contains(r))
        .collect();
    if anchors.is_empty() {
        anchors = q.clone();
    }
    let title_roots = roots(title);
    let psents: Vec<(usize, usize, BTreeSet<String>, BTreeSet<String>)> = sentences(passage)
        .into_iter()
        .map(|(a, b)| {
            let t = passage.get(a..b).unwrap_or_default();
            (a, b, roots(t), numbers(t))
        })
        .collect();
    let mut out = Vec::new();
    let mut check =
        |term: String,
         kind: &'static str,
         has: &dyn Fn(&BTreeSet<String>, &BTreeSet<String>) -> bool| {
            let mut best: Option<(usize, usize, Vec<String>)> = None;
            for (a, b, r, n) in &psents {
                if !has(r, n) {
                    continue;
                }
                let near: Vec<String> = anchors
                    .iter()
                    .filter(|x| **x != term && r.contains(*x))
                    .cloned()
                    .collect();
                if best.as_ref().is_none_or(|(_, _, v)| near.len() > v.len()) {
                    best = Some((*a, *b, near));
                }
            }
            let in_title = kind == "name" && title_roots.contains(&term);
            let anchored = best.as_ref().is_some_and(|(_, _, v)| !v.is_empty()) || in_title;
            out.push(RoleCheck {
                term,
                kind,
                anchored,
                anchors: best.as_ref().map(|(_, _, v)| v.clone()).unwrap_or_default(),
                sentence: best.map(|(a, b, _)| (a, b)),
            });
        };
    for n in nums {
        let m = n.clone();
        check(n, "number", &|_, ns| ns.contains(&m));
    }
    for w in names {
        let m = w.clone();
        check(w, "name", &|rs, _| rs.contains(&m));
    }
    // A web address must be quoted from the passage: small models invent
    // them.
    let lower = passage.to_lowercase();
    for u in urls {
        let found = lower.find(&u).map(|i| {
            sentences(passage)
                .into_iter()
                .find(|&(a, b)| a <= i && i < b)
                .unwrap_or((0, passage.len()))
        });
        out.push(RoleCheck {
            term: u,
            kind: "url",
            anchored: found.is_some(),
            anchors: Vec::new(),
            sentence: found,
        });
    }
    out
}

/// Web addresses written in `text`, lower case, without surrounding
/// punctuation.
fn urls_in(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|t| {
            t.trim_matches(|c: char| {
                matches!(
                    c,
                    '(' | ')' | '[' | ']' | '<' | '>' | '"' | '\'' | ',' | ';'
                )
            })
            .trim_end_matches(['.', ':', '!', '?'])
            .to_lowercase()
        })
        .filter(|t| t.contains("://") || t.starts_with("www."))
        .collect()
}

/// Number words that answer "how many" as well as digits do.
const NUMBER_WORDS: &[&str] = &[
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
    "thirty",
    "forty",
    "fifty",
    "sixty",
    "seventy",
    "eighty",
    "ninety",
    "hundred",
    "thousand",
    "million",
    "billion",
    "dozen",
    "dozens",
    "half",
    "twice",
    "once",
    "single",
    "couple",
    "none",
    "first",
    "second",
    "third",
    "fourth",
    "fifth",
    "last",
];

/// Whether `question` asks for a quantity, a year, a date or a time ("how
/// many", "how much", "what year", "how long", ...): then a sentence with no
/// number in it does not answer it.
pub fn asks_for_number(question: &str) -> bool {
    let ws: Vec<String> = words(question).into_iter().map(|(_, _, w)| w).collect();
    ws.windows(2).any(|p| {
        matches!(
            (p[0].as_str(), p[1].as_str()),
            (
                "how",
                "many" | "much" | "old" | "long" | "far" | "deep" | "high" | "tall" | "big"
            ) | ("what" | "which", "year" | "date")
                | ("what", "time")
        )
    })
}

/// Whether `sentence` states a number: digits or a number word.
pub fn states_number(sentence: &str) -> bool {
    sentence.chars().any(|c| c.is_ascii_digit())
        || words(sentence).iter().any(|(_, _, w)| {
            NUMBER_WORDS.contains(&w.as_str()) || w.split('-').all(|p| NUMBER_WORDS.contains(&p))
        })
}

/// The factor a score is cut by when numbers or names are not supported in
/// the same role: 1 when all are, else half the anchored share.
fn role_factor(roles: &[RoleCheck]) -> f64 {
    let have = roles.iter().filter(|r| r.anchored).count();
    if have == roles.len() {
        1.0
    } else {
        0.5 * have as f64 / roles.len() as f64
    }
}

/// How `passage` (source `source`, of a page titled `title`) matched
/// `sentence`: terms found and missing, and the role of each number and
/// name.
pub fn explain(
    question: &str,
    sentence: &str,
    source: usize,
    passage: &str,
    title: &str,
) -> Explain {
    let mut have = content_terms(passage);
    have.extend(content_terms(title));
    let (mut matched, mut missing) = (Vec::new(), Vec::new());
    for (t, _) in weighted_terms(sentence) {
        if have.contains(&t) {
            matched.push(t);
        } else {
            missing.push(t);
        }
    }
    Explain {
        source,
        matched,
        missing,
        roles: role_checks(question, sentence, passage, title),
    }
}

/// The content terms of `sentence` with weights: 2 for names and numbers
/// (written with a capital or a digit), 1 for other words.
fn weighted_terms(sentence: &str) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = Vec::new();
    for (a, _, w) in words(sentence) {
        if is_stopword(&w) {
            continue;
        }
        let first = sentence
            .get(a..)
            .and_then(|t| t.chars().next())
            .unwrap_or(' ');
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
    }
    let s_terms: BTreeSet<String> = s_terms.into_iter().map(|(t, _)| t).collect();
    let s_nums = numbers(sentence);
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
    // Numbers and names count only in the same role (after the verbatim
    // lift: a quote does not excuse a number used in another role).
    score *= role_factor(&role_checks(question, sentence, passage, title));
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
                let span = passage.get(a..b).unwrap_or_default();
                let t = content_terms(span);
                let n = numbers(span);
                (
                    s_terms.iter().filter(|x| t.contains(*x)).count()
                        + s_nums.iter().filter(|x| n.contains(*x)).count(),
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

/// Checks every sentence of `draft` against `sources`. Questions and
/// restatements of the question are not claims: they are never scored and
/// never supported.
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
        let kind = classify(question, &text);
        if kind != SentenceKind::Claim {
            let why = match kind {
                SentenceKind::NoAnswer => "says the sources do not answer".to_string(),
                SentenceKind::Question => "a question, not a claim".to_string(),
                _ => "restates the question: every content word is in the question (or is filler), so it says nothing the sources could support".to_string(),
            };
            out.push(CheckedSentence {
                text,
                kind,
                model_citations,
                support: None,
                best_score: 0.0,
                reattached: false,
                model_citation_support: Vec::new(),
                novel_terms: Vec::new(),
                explain: None,
                why,
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
        let (mut support, mut reattached) = match (best_cited, best_any) {
            (Some(c), _) if c.score >= cfg.min_support => (Some(c), false),
            (_, Some(b)) if b.score >= cfg.min_support => (Some(b), true),
            _ => (None, false),
        };
        let shown = support.or(best_any);
        // "How many ...?" answered without a number is no answer to it.
        let no_number = asks_for_number(question) && !states_number(&text);
        if no_number {
            support = None;
            reattached = false;
        }
        let explain = shown.map(|s| {
            let src = &sources[s.source];
            explain(question, &text, s.source, &src.text, &src.title)
        });
        let why = if no_number {
            format!(
                "dropped: the question asks for a number, year, date or time and the sentence states none (best support {best_score:.2})"
            )
        } else {
            why_text(
                support.is_some(),
                reattached,
                best_score,
                cfg,
                explain.as_ref(),
                shown,
            )
        };
        out.push(CheckedSentence {
            text: text.clone(),
            kind: SentenceKind::Claim,
            model_citations,
            support,
            best_score,
            reattached,
            model_citation_support,
            novel_terms: novel_terms(question, &text),
            explain,
            why,
        });
    }
    out
}

/// The reason a claim was kept or dropped, in words.
fn why_text(
    kept: bool,
    reattached: bool,
    best: f64,
    cfg: &CheckConfig,
    ex: Option<&Explain>,
    shown: Option<Support>,
) -> String {
    let Some(ex) = ex else {
        return "no allowed passage to check it against".to_string();
    };
    let sup = shown.map(|s| s.score).unwrap_or(0.0);
    let mut s = if kept {
        format!(
            "supported (score {sup:.2} >= {:.2}){}{}: {} of {} content words in the passage",
            cfg.min_support,
            if shown.is_some_and(|x| x.verbatim) {
                ", verbatim"
            } else {
                ""
            },
            if reattached {
                ", re-attached from the model's citation"
            } else {
                ""
            },
            ex.matched.len(),
            ex.matched.len() + ex.missing.len()
        )
    } else {
        format!(
            "dropped: best support {best:.2} < {:.2}; {} of {} content words in the best passage",
            cfg.min_support,
            ex.matched.len(),
            ex.matched.len() + ex.missing.len()
        )
    };
    if !ex.missing.is_empty() {
        s.push_str(&format!(" (missing: {})", ex.missing.join(", ")));
    }
    for r in &ex.roles {
        if r.kind == "url" && r.anchored {
            s.push_str(&format!("; url {} quoted from the passage", r.term));
        } else if r.anchored && !r.anchors.is_empty() {
            s.push_str(&format!(
                "; {} {} in the same sentence as {}",
                r.kind,
                r.term,
                r.anchors.join(", ")
            ));
        } else if r.anchored {
            s.push_str(&format!("; {} {} in the page title", r.kind, r.term));
        } else if r.sentence.is_some() {
            s.push_str(&format!(
                "; {} {} appears only in another role (no other word of the claim in its sentence)",
                r.kind, r.term
            ));
        } else {
            s.push_str(&format!("; {} {} not in the passage", r.kind, r.term));
        }
    }
    s
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

    const HISTORY: &str = "Restoration took three years, much of it done by volunteers at weekends, and the River Museum opened on 12 May 1990. The library moved in 1996.";
    const HOURS: &str =
        "Museum tickets cost £6 for adults. The library stays open until 19:30 on Thursdays.";

    #[test]
    fn an_echo_of_the_question_is_not_a_claim_and_never_supported() {
        let q = "When did the River Museum open?";
        let sources = [src(Some(1), HOURS), src(Some(2), HISTORY)];
        let cfg = CheckConfig::default();
        // The draft: the question repeated, with a citation.
        let out = check(q, "When did the River Museum open? [1]", &sources, &cfg);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].kind, SentenceKind::Question);
        assert!(!out[0].supported(), "{:?}", out[0]);
        // Restated as a statement (with the verb inflected), or with filler.
        for echo in [
            "The River Museum opened [1].",
            "The question is when the River Museum opened.",
            "According to the sources, the River Museum did open.",
        ] {
            let out = check(q, echo, &sources, &cfg);
            assert_eq!(
                out[0].kind,
                SentenceKind::Restatement,
                "{echo}: {:?}",
                out[0]
            );
            assert!(!out[0].supported(), "{echo}");
            assert!(out[0].why.contains("restates"), "{}", out[0].why);
        }
        // The same with the answer in it is a claim, supported by history.
        let out = check(
            q,
            "The River Museum opened on 12 May 1990 [1].",
            &sources,
            &cfg,
        );
        assert_eq!(out[0].kind, SentenceKind::Claim);
        assert_eq!(out[0].novel_terms, vec!["12", "may", "1990"]);
        let sup = out[0].support.expect("supported");
        assert_eq!(sup.source, 1, "{:?}", out[0]);
        assert!(out[0].reattached);
        let ex = out[0].explain.as_ref().unwrap();
        assert!(ex.roles.iter().all(|r| r.anchored), "{ex:?}");
        assert!(out[0].why.starts_with("supported"), "{}", out[0].why);
    }

    #[test]
    fn a_number_in_another_role_is_not_support() {
        let cfg = CheckConfig::default();
        let q = "When did the museum open?";
        let catalogue = src(
            Some(1),
            "The museum has a printed catalogue. See page 1887 of the catalogue for the lace bobbins.",
        );
        let opened = src(Some(1), "The museum opened in 1887 in the old mill.");
        let claim = "The museum opened in 1887.";
        let off = check(q, claim, std::slice::from_ref(&catalogue), &cfg);
        assert!(!off[0].supported(), "{:?}", off[0]);
        let ex = off[0].explain.as_ref().unwrap();
        assert_eq!(ex.roles.len(), 1);
        assert!(!ex.roles[0].anchored, "{ex:?}");
        assert!(off[0].why.contains("another role"), "{}", off[0].why);
        let on = check(q, claim, &[opened], &cfg);
        assert!(on[0].supported(), "{:?}", on[0]);
        assert_eq!(
            on[0].explain.as_ref().unwrap().roles[0].anchors,
            vec!["museum", "open"]
        );
        // A verbatim run does not excuse it either.
        let s = support_score(
            q,
            "See page 1887 of the catalogue.",
            &catalogue.text,
            "",
            &cfg,
        );
        assert!(
            s.score >= cfg.min_support,
            "the number in its own role: {s:?}"
        );
        let s = support_score(q, "The museum opened in 1887.", &catalogue.text, "", &cfg);
        assert!(s.score < cfg.min_support, "{s:?}");
    }

    #[test]
    fn a_name_must_stand_beside_the_claims_other_words() {
        let cfg = CheckConfig::default();
        let q = "Who chairs the board?";
        let p = src(
            Some(1),
            "Margaret Oyelaran wrote the guide. The board is chaired by Tom Beddowes.",
        );
        let wrong = check(
            q,
            "The board is chaired by Margaret Oyelaran.",
            std::slice::from_ref(&p),
            &cfg,
        );
        assert!(!wrong[0].supported(), "{:?}", wrong[0]);
        let right = check(q, "The board is chaired by Tom Beddowes.", &[p], &cfg);
        assert!(right[0].supported(), "{:?}", right[0]);
    }

    #[test]
    fn an_invented_web_address_is_not_supported() {
        let cfg = CheckConfig::default();
        let q = "When was the Packhorse Bridge built?";
        let home = src(
            Some(1),
            "Five years on, how the fish pass at Hartwell Weir has changed the river.",
        );
        let out = check(
            q,
            "The fish pass at Hartwell Weir changed the river (https://www.hurrieswim.com/news) [1]",
            std::slice::from_ref(&home),
            &cfg,
        );
        assert!(!out[0].supported(), "{:?}", out[0]);
        assert!(
            out[0]
                .why
                .contains("url https://www.hurrieswim.com/news not in the passage"),
            "{}",
            out[0].why
        );
        let out = check(
            q,
            "The fish pass at Hartwell Weir changed the river [1].",
            &[home],
            &cfg,
        );
        assert!(out[0].supported(), "{:?}", out[0]);
    }

    #[test]
    fn a_how_many_question_needs_a_number_in_the_answer() {
        let cfg = CheckConfig::default();
        let q = "How many invertebrate families did the spring 2024 kick sample find?";
        let p = src(
            Some(1),
            "In the spring 2024 kick sample they found 31 families of invertebrates, including stoneflies.",
        );
        let out = check(
            q,
            "The kick sample found stoneflies [1].",
            std::slice::from_ref(&p),
            &cfg,
        );
        assert_eq!(out[0].kind, SentenceKind::Claim);
        assert!(!out[0].supported(), "{:?}", out[0]);
        assert!(out[0].why.contains("states none"), "{}", out[0].why);
        let out = check(
            q,
            "The kick sample found 31 families of invertebrates [1].",
            &[p],
            &cfg,
        );
        assert!(out[0].supported(), "{:?}", out[0]);
        assert!(asks_for_number("In what year was the mill built?"));
        assert!(!asks_for_number("Who built the mill?"));
        assert!(states_number("about two and a half hours"));
        assert!(states_number("forty-two residents"));
        assert!(!states_number("the Marlowe collection is large"));
    }

    #[test]
    fn roots_meet_across_inflections() {
        assert_eq!(root("opened"), root("open"));
        assert_eq!(root("stopped"), root("stop"));
        assert_eq!(root("closed"), root("close"));
        assert_eq!(root("chaired"), root("chairs"));
        assert_ne!(root("mill"), root("mile"));
        assert_eq!(root("ed"), "ed");
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
