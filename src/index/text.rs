//! Text helpers shared by the index and the citation checker: sentence
//! splitting with byte ranges, passage packing with code-point offsets,
//! normalised terms and numbers, and FTS5 query building.

use std::collections::BTreeSet;

/// Words that carry no content for retrieval or support scoring.
const STOPWORDS: &[&str] = &[
    "a",
    "about",
    "after",
    "all",
    "also",
    "am",
    "an",
    "and",
    "any",
    "are",
    "as",
    "at",
    "be",
    "been",
    "before",
    "being",
    "but",
    "by",
    "can",
    "could",
    "did",
    "do",
    "does",
    "doing",
    "for",
    "from",
    "had",
    "has",
    "have",
    "having",
    "he",
    "her",
    "here",
    "hers",
    "him",
    "his",
    "how",
    "i",
    "if",
    "in",
    "into",
    "is",
    "it",
    "its",
    "itself",
    "just",
    "me",
    "more",
    "most",
    "my",
    "no",
    "nor",
    "not",
    "of",
    "on",
    "once",
    "only",
    "or",
    "other",
    "our",
    "ours",
    "out",
    "over",
    "own",
    "same",
    "she",
    "should",
    "so",
    "some",
    "such",
    "than",
    "that",
    "the",
    "their",
    "theirs",
    "them",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "through",
    "to",
    "too",
    "under",
    "until",
    "up",
    "very",
    "was",
    "we",
    "were",
    "what",
    "when",
    "where",
    "which",
    "while",
    "who",
    "whom",
    "why",
    "will",
    "with",
    "would",
    "you",
    "your",
    "yours",
    "s",
    "t",
    "many",
    "much",
    "there's",
    "it's",
    "according",
    "source",
    "sources",
    "answer",
    "question",
];

/// Abbreviations after which a full stop does not end a sentence.
const ABBREVIATIONS: &[&str] = &[
    "dr", "mr", "mrs", "ms", "st", "no", "nos", "vol", "approx", "e.g", "i.e", "etc", "cf", "prof",
    "rev", "ft", "km", "min", "max", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep",
    "sept", "oct", "nov", "dec", "mt", "co", "ltd", "vs",
];

/// Whether `word` (lowercase) is a stopword.
pub fn is_stopword(word: &str) -> bool {
    STOPWORDS.contains(&word)
}

/// Byte ranges of the sentences of `text`, trimmed of surrounding
/// whitespace, in order. A line break always ends a sentence; `.`, `!` and
/// `?` (with closing quotes or brackets) end one when followed by whitespace
/// and an upper-case letter, a digit or an opening quote or bracket, unless
/// the word before is a known abbreviation or a single letter (an initial).
pub fn sentences(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0usize;
    // Only a line break or a stop can end a sentence, and all four are
    // ASCII, so they are found by byte (a byte below 0x80 is never part of
    // a longer UTF-8 sequence); the few characters after a stop are then
    // read as characters. (Issue #26: collecting every character with its
    // offset first cost 16 bytes of memory and a write per character.)
    let bytes = text.as_bytes();
    for b in breaks_and_stops(bytes) {
        let Some(&byte) = bytes.get(b) else { break };
        if byte == b'\n' {
            push_trimmed(text, start, b, &mut out);
            start = b + 1;
            continue;
        }
        if !matches!(byte, b'.' | b'!' | b'?') {
            continue;
        }
        // Closing punctuation stays with the sentence.
        let after = b + 1;
        let rest = text.get(after..).unwrap_or("");
        let mut chars = rest.char_indices().peekable();
        while chars
            .next_if(|&(_, c)| matches!(c, '"' | '\'' | ')' | ']' | '”' | '’'))
            .is_some()
        {}
        let next = chars.peek().copied();
        let end = next.map_or(text.len(), |(i, _)| after + i);
        let next_is_space = next.is_none_or(|(_, c)| c.is_whitespace());
        while chars
            .next_if(|&(_, c)| c.is_whitespace() && c != '\n')
            .is_some()
        {}
        let starts_new = chars.peek().is_none_or(|&(_, c)| {
            c.is_uppercase()
                || c.is_ascii_digit()
                || matches!(
                    c,
                    '"' | '\'' | '(' | '[' | '“' | '‘' | '\n' | '£' | '€' | '$'
                )
        });
        if next_is_space && starts_new && !(byte == b'.' && abbreviation_before(text, b)) {
            push_trimmed(text, start, end, &mut out);
            start = end;
        }
    }
    push_trimmed(text, start, text.len(), &mut out);
    out
}

/// The offsets of every `\n`, `.`, `!` and `?` in `bytes`, in order:
/// `memchr` finds the line breaks and the stops in two sorted streams,
/// merged here (a loop over every byte was 6 % of the index pass).
fn breaks_and_stops(bytes: &[u8]) -> impl Iterator<Item = usize> + '_ {
    let mut stops = memchr::memchr3_iter(b'.', b'!', b'?', bytes).peekable();
    let mut lines = memchr::memchr_iter(b'\n', bytes).peekable();
    std::iter::from_fn(move || match (stops.peek(), lines.peek()) {
        (Some(&s), Some(&l)) if l < s => lines.next(),
        (Some(_), _) => stops.next(),
        (None, _) => lines.next(),
    })
}

fn abbreviation_before(text: &str, dot: usize) -> bool {
    let before = &text[..dot];
    // Past the separator's own bytes: a no-break space is two.
    let word_start = before
        .char_indices()
        .rev()
        .find(|&(_, c)| c.is_whitespace() || c == '(')
        .map_or(0, |(i, c)| i + c.len_utf8());
    let word = before[word_start..].to_lowercase();
    if word.chars().count() == 1 && word.chars().all(char::is_alphabetic) {
        return true;
    }
    ABBREVIATIONS.contains(&word.as_str())
}

fn push_trimmed(text: &str, start: usize, end: usize, out: &mut Vec<(usize, usize)>) {
    if start >= end {
        return;
    }
    let s = &text[start..end];
    let lead = s.len() - s.trim_start().len();
    let trail = s.len() - s.trim_end().len();
    if lead + trail < s.len() {
        out.push((start + lead, end - trail));
    }
}

/// One passage cut from a page's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitPassage {
    /// Code-point offsets into the page text, `[start_char, end_char)`.
    pub start_char: usize,
    pub end_char: usize,
    /// Byte offsets of the same span.
    pub start_byte: usize,
    pub end_byte: usize,
    /// Exactly `text[start_byte..end_byte]`.
    pub text: String,
}

/// Packs consecutive sentences into passages of at most `max_bytes` (a
/// single longer sentence is its own passage). Sentences overlapping a
/// `nosnippet` byte span are left out and end the current passage, so no
/// passage, and hence no prompt or quote, contains such text.
pub fn split_passages(
    text: &str,
    nosnippet: &[(usize, usize)],
    max_bytes: usize,
) -> Vec<SplitPassage> {
    let mut out = Vec::new();
    let mut cur: Option<(usize, usize)> = None;
    // Character offsets counted on from the previous passage's end
    // (passages come in text order), not from the start of the text
    // for every passage.
    let mut counted = (0usize, 0usize);
    let mut char_at = move |byte: usize| -> usize {
        let (from_byte, from_chars) = if byte >= counted.0 { counted } else { (0, 0) };
        // Offsets are sentence boundaries of `text`, so on char boundaries;
        // one that is not counts nothing rather than panicking.
        let n = from_chars + text.get(from_byte..byte).map_or(0, |t| t.chars().count());
        counted = (byte, n);
        n
    };
    let mut flush = |cur: &mut Option<(usize, usize)>, out: &mut Vec<SplitPassage>| {
        if let Some((a, b)) = cur.take() {
            let start_char = char_at(a);
            let end_char = char_at(b);
            out.push(SplitPassage {
                start_char,
                end_char,
                start_byte: a,
                end_byte: b,
                text: text[a..b].to_string(),
            });
        }
    };
    for (a, b) in sentences(text) {
        if nosnippet.iter().any(|&(x, y)| x < b && a < y) {
            flush(&mut cur, &mut out);
            continue;
        }
        match cur {
            Some((ca, _)) if b - ca <= max_bytes => cur = Some((ca, b)),
            Some(_) => {
                flush(&mut cur, &mut out);
                cur = Some((a, b));
            }
            None => cur = Some((a, b)),
        }
    }
    flush(&mut cur, &mut out);
    out
}

/// The words of `text`, lower-cased, with their byte ranges: runs of
/// letters and digits (an apostrophe between letters stays inside).
pub fn words(text: &str) -> Vec<(usize, usize, String)> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut iter = text.char_indices().peekable();
    while let Some((b, c)) = iter.next() {
        let inner_apostrophe = matches!(c, '\'' | '’')
            && start.is_some()
            && iter.peek().is_some_and(|&(_, n)| n.is_alphabetic());
        if c.is_alphanumeric() || inner_apostrophe {
            start.get_or_insert(b);
        } else if let Some(s) = start.take() {
            out.push((s, b, text[s..b].to_lowercase().replace('’', "'")));
        }
    }
    if let Some(s) = start {
        out.push((s, text.len(), text[s..].to_lowercase().replace('’', "'")));
    }
    out
}

/// A light English stem: possessive and plural endings removed.
pub fn stem(word: &str) -> String {
    let w = word.strip_suffix("'s").unwrap_or(word);
    let n = w.chars().count();
    if n > 4 && w.ends_with("ies") {
        return format!("{}y", &w[..w.len() - 3]);
    }
    if n > 4
        && w.ends_with("es")
        && ["ss", "x", "ch", "sh"]
            .iter()
            .any(|e| w[..w.len() - 2].ends_with(e))
    {
        return w[..w.len() - 2].to_string();
    }
    if n > 3 && w.ends_with('s') && !w.ends_with("ss") && !w.ends_with("us") {
        return w[..w.len() - 1].to_string();
    }
    w.to_string()
}

/// A comparison root of a stemmed term: `-ed`/`-ing`/`-e` endings (and a
/// doubled consonant left behind) removed, so "opened" and "open",
/// "stopped" and "stop", "closed" and "close" meet. Used to match question
/// words to passage words (retrieval coverage) and by the checker.
pub fn root(term: &str) -> String {
    let t = stem(term);
    let mut r: &str = &t;
    for suf in ["ing", "ed"] {
        if let Some(x) = r.strip_suffix(suf)
            && x.chars().count() >= 3
        {
            r = x;
            break;
        }
    }
    if let Some(x) = r.strip_suffix('e')
        && x.chars().count() >= 3
    {
        r = x;
    }
    let b = r.as_bytes();
    let n = b.len();
    if n >= 4
        && b[n - 1] == b[n - 2]
        && b[n - 1].is_ascii_alphabetic()
        && !matches!(b[n - 1], b'l' | b's' | b'z' | b'f')
    {
        return r[..n - 1].to_string();
    }
    r.to_string()
}

/// The content roots of `text` (stopwords dropped; see [`root`]).
pub fn content_roots(text: &str) -> BTreeSet<String> {
    words(text)
        .into_iter()
        .filter(|(_, _, w)| !is_stopword(w))
        .map(|(_, _, w)| root(&w))
        .collect()
}

/// Words that frame a question rather than name what it is about ("in
/// what *year*", "what is the *name* of"): the answering passage rarely
/// repeats them, so retrieval does not look for them.
const QUESTION_FRAME: &[&str] = &[
    "year", "years", "date", "dates", "day", "time", "times", "name", "named", "called", "kind",
    "type", "sort", "way", "number", "amount", "happen", "happened", "happens", "exactly", "tell",
    "know", "please",
];

/// The words of a question retrieval looks for, in order, deduplicated:
/// content words less question-frame words (all content words when only
/// frame words are left).
pub fn query_words(question: &str) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let all: Vec<String> = words(question)
        .into_iter()
        .map(|(_, _, w)| w)
        .filter(|w| !is_stopword(w))
        .filter(|w| seen.insert(w.clone()))
        .collect();
    let kept: Vec<String> = all
        .iter()
        .filter(|w| !QUESTION_FRAME.contains(&w.as_str()))
        .cloned()
        .collect();
    if kept.is_empty() { all } else { kept }
}

/// A page title without the site name it ends or starts with ("About us –
/// Kestrel Ford Library" → "About us"): the site name is on every page, so
/// it says nothing about any. A title that is only the site name is kept.
pub fn title_without_site(title: &str, site_name: Option<&str>) -> String {
    let title = title.trim();
    let Some(site) = site_name.map(str::trim).filter(|s| !s.is_empty()) else {
        return title.to_string();
    };
    const SEPARATORS: &[char] = &['–', '—', '-', '|', '·', ':', '•', ' '];
    let rest = if let Some(head) = title.strip_suffix(site) {
        head.trim_end_matches(SEPARATORS)
    } else if let Some(tail) = title.strip_prefix(site) {
        tail.trim_start_matches(SEPARATORS)
    } else {
        title
    };
    if rest.trim().is_empty() {
        title.to_string()
    } else {
        rest.trim().to_string()
    }
}

/// The stemmed content terms of `text` (stopwords dropped).
pub fn content_terms(text: &str) -> BTreeSet<String> {
    words(text)
        .into_iter()
        .filter(|(_, _, w)| !is_stopword(w))
        .map(|(_, _, w)| stem(&w))
        .collect()
}

/// The numbers written in `text`, normalised: digits with inner `,` removed
/// and inner `.` or `:` kept (`1,140` → `1140`, `1.8`, `19:30`).
pub fn numbers(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() {
            let mut j = i;
            let mut s = String::new();
            while j < b.len() {
                if b[j].is_ascii_digit() {
                    s.push(b[j] as char);
                    j += 1;
                } else if matches!(b[j], b',' | b'.' | b':')
                    && j + 1 < b.len()
                    && b[j + 1].is_ascii_digit()
                    && j > i
                {
                    if b[j] != b',' {
                        s.push(b[j] as char);
                    }
                    j += 1;
                } else {
                    break;
                }
            }
            out.insert(s);
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

/// An FTS5 `MATCH` expression for a question: its [`query_words`], each
/// quoted, joined with `OR` (BM25 ranks passages matching more and rarer
/// words first). `None` when the question has no content words.
pub fn fts_query(question: &str) -> Option<String> {
    let terms: Vec<String> = query_words(question)
        .into_iter()
        .map(|w| format!("\"{}\"", w.replace('"', "")))
        .collect();
    if terms.is_empty() {
        None
    } else {
        Some(terms.join(" OR "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sents(text: &str) -> Vec<&str> {
        sentences(text)
            .into_iter()
            .map(|(a, b)| &text[a..b])
            .collect()
    }

    #[test]
    fn sentences_split_on_stops_and_lines_but_not_abbreviations_or_decimals() {
        assert_eq!(
            sents(
                "Dr. Castell counted 31 families. Water stood 1.8 m deep!\nThe flood of 1947\nIt rained."
            ),
            vec![
                "Dr. Castell counted 31 families.",
                "Water stood 1.8 m deep!",
                "The flood of 1947",
                "It rained."
            ]
        );
        assert_eq!(sents("  \n\n  "), Vec::<&str>::new());
        assert_eq!(
            sents("Built by J. Hartwell in 1852."),
            vec!["Built by J. Hartwell in 1852."]
        );
        assert_eq!(
            sents("He said \"Yes.\" Then left"),
            vec!["He said \"Yes.\"", "Then left"]
        );
    }

    #[test]
    fn breaks_and_stops_found_by_memchr_are_every_such_byte_in_order() {
        let alphabet: Vec<&str> = vec![
            ".", "!", "?", "\n", " ", " ", "a", "b", "Dr", "e.g", "J", "1", "9", "\"", "'", ")",
            "]", "”", "’", "“", "(", "\u{a0}", "\u{3000}", "é", "Ünter", "€", "\t",
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..3000 {
            let mut t = String::new();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let n = (x % 40) as usize;
            for _ in 0..n {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                t.push_str(alphabet[(x % alphabet.len() as u64) as usize]);
            }
            let every_byte: Vec<usize> = t
                .bytes()
                .enumerate()
                .filter(|(_, b)| matches!(b, b'\n' | b'.' | b'!' | b'?'))
                .map(|(i, _)| i)
                .collect();
            let found: Vec<usize> = breaks_and_stops(t.as_bytes()).collect();
            assert_eq!(found, every_byte, "{t:?}");
        }
    }

    /// A stop after a word that follows a multi-byte space (a no-break
    /// space from `&nbsp;`, an ideographic space in a model's draft) used
    /// to slice inside that space and panic.
    #[test]
    fn a_stop_after_a_multi_byte_space_is_judged_without_panicking() {
        assert_eq!(
            sents("Hello\u{a0}world. Next one."),
            vec!["Hello\u{a0}world.", "Next one."]
        );
        assert_eq!(
            sents("Dr\u{3000}Who.\u{2003}Dr\u{a0}J. Smith came."),
            vec!["Dr\u{3000}Who.", "Dr\u{a0}J. Smith came."]
        );
    }

    #[test]
    fn passages_pack_sentences_keep_offsets_and_skip_nosnippet_text() {
        let text = "Ünïcode first. Second one here.\nThird line is secret. Fourth.";
        let secret = text.find("Third").unwrap();
        let ps = split_passages(text, &[(secret, secret + 6)], 40);
        let got: Vec<&str> = ps.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(got, vec!["Ünïcode first. Second one here.", "Fourth."]);
        for p in &ps {
            let by_chars: String = text
                .chars()
                .skip(p.start_char)
                .take(p.end_char - p.start_char)
                .collect();
            assert_eq!(by_chars, p.text);
            assert_eq!(&text[p.start_byte..p.end_byte], p.text);
        }
        // Without the span and with a small limit every sentence stands alone.
        assert_eq!(split_passages(text, &[], 10).len(), 4);
    }

    #[test]
    fn passage_char_offsets_match_counting_from_the_start() {
        let mut text = String::new();
        for i in 0..200 {
            text.push_str(&format!("Sätz {i} über 漢字 😀 naïve. "));
            if i % 7 == 0 {
                text.push_str("Plain ascii sentence here.\n");
            }
        }
        let hidden = text.find("Sätz 50 ").unwrap();
        for spans in [vec![], vec![(hidden, hidden + 9)]] {
            for max in [1, 30, 200] {
                let ps = split_passages(&text, &spans, max);
                assert!(ps.len() > 10);
                for p in &ps {
                    assert_eq!(p.start_char, text[..p.start_byte].chars().count());
                    assert_eq!(p.end_char, text[..p.end_byte].chars().count());
                }
            }
        }
    }

    #[test]
    fn terms_numbers_and_queries() {
        assert_eq!(stem("families"), "family");
        assert_eq!(stem("bobbins"), "bobbin");
        assert_eq!(stem("hartwell's"), "hartwell");
        assert_eq!(stem("glass"), "glass");
        let t = content_terms("How many lace bobbins are in the Marlowe collection?");
        assert_eq!(
            t.into_iter().collect::<Vec<_>>(),
            vec!["bobbin", "collection", "lace", "marlowe"]
        );
        let n = numbers("1,140 members; 1.8 metres at 19:30 in 1947.");
        assert_eq!(
            n.into_iter().collect::<Vec<_>>(),
            vec!["1.8", "1140", "1947", "19:30"]
        );
        assert_eq!(
            fts_query("Who built the \"Old\" mill?").as_deref(),
            Some("\"built\" OR \"old\" OR \"mill\"")
        );
        assert_eq!(fts_query("Who is it?"), None);
        // Question-frame words are not looked for, unless nothing else is.
        assert_eq!(
            query_words("In what year was the mill built?"),
            vec!["mill", "built"]
        );
        assert_eq!(query_words("What year?"), vec!["year"]);
    }

    #[test]
    fn titles_lose_the_site_name() {
        let site = Some("Kestrel Ford Library & River Museum");
        assert_eq!(
            title_without_site("About us – Kestrel Ford Library & River Museum", site),
            "About us"
        );
        assert_eq!(
            title_without_site("Kestrel Ford Library & River Museum | FAQ", site),
            "FAQ"
        );
        assert_eq!(
            title_without_site("Kestrel Ford Library & River Museum", site),
            "Kestrel Ford Library & River Museum"
        );
        assert_eq!(
            title_without_site("History of the mill", site),
            "History of the mill"
        );
        assert_eq!(title_without_site("Anything – X", None), "Anything – X");
    }
}
