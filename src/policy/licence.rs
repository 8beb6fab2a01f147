//! Licence recognition (signals.md §7): Creative Commons URLs → SPDX ids (§7.2),
//! licence names in visible text (L8), copyright notices and
//! natural-language TDM/AI reservations (§7.4). Unknown stays unknown.

use super::evidence::{LicenceFlags, LicenceKind};

/// Ported CC ids that exist in the SPDX License List 3.29.0 (signals.md §7.2).
const SPDX_PORTS: [&str; 22] = [
    "CC-BY-2.5-AU",
    "CC-BY-3.0-AT",
    "CC-BY-3.0-AU",
    "CC-BY-3.0-DE",
    "CC-BY-3.0-IGO",
    "CC-BY-3.0-NL",
    "CC-BY-3.0-US",
    "CC-BY-NC-3.0-DE",
    "CC-BY-NC-3.0-IGO",
    "CC-BY-NC-ND-3.0-DE",
    "CC-BY-NC-ND-3.0-IGO",
    "CC-BY-NC-SA-2.0-DE",
    "CC-BY-NC-SA-2.0-FR",
    "CC-BY-NC-SA-2.0-UK",
    "CC-BY-NC-SA-3.0-DE",
    "CC-BY-NC-SA-3.0-IGO",
    "CC-BY-ND-3.0-DE",
    "CC-BY-SA-2.0-UK",
    "CC-BY-SA-2.1-JP",
    "CC-BY-SA-3.0-AT",
    "CC-BY-SA-3.0-DE",
    "CC-BY-SA-3.0-IGO",
];

/// Open licences (by SPDX id) that grant use with only a notice; recognised
/// by URL or id in `rel=license` links. A short, conservative list (`OURS`).
const OPEN_SPDX: [(&str, &str); 8] = [
    ("opensource.org/licenses/mit", "MIT"),
    ("opensource.org/license/mit", "MIT"),
    ("www.apache.org/licenses/license-2.0", "Apache-2.0"),
    ("apache.org/licenses/license-2.0", "Apache-2.0"),
    ("www.gnu.org/licenses/fdl-1.3", "GFDL-1.3-or-later"),
    ("opendatacommons.org/licenses/odbl", "ODbL-1.0"),
    ("opendatacommons.org/licenses/by", "ODC-By-1.0"),
    ("opendatacommons.org/licenses/pddl", "PDDL-1.0"),
];

/// A recognised licence URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recognised {
    pub spdx: Option<String>,
    pub family: Option<String>,
    pub jurisdiction: Option<String>,
    pub kind: LicenceKind,
    pub flags: LicenceFlags,
}

fn flags_of(elements: &str) -> Option<(String, LicenceFlags)> {
    // `by-nd-nc` (1.0) is BY-NC-ND; 1.0 also has `sa`, `nc`, `nd`, `nc-sa`, `nd-nc`.
    let canon = match elements {
        "by" | "by-sa" | "by-nc" | "by-nd" | "by-nc-sa" | "by-nc-nd" | "sa" | "nc" | "nd"
        | "nc-sa" => elements.to_string(),
        "by-nd-nc" => "by-nc-nd".into(),
        "nd-nc" => "nc-nd".into(),
        _ => return None,
    };
    let parts: Vec<&str> = canon.split('-').collect();
    let flags = LicenceFlags {
        by: parts.contains(&"by"),
        sa: parts.contains(&"sa"),
        nc: parts.contains(&"nc"),
        nd: parts.contains(&"nd"),
    };
    Some((canon.to_ascii_uppercase(), flags))
}

fn spdx_exists(id: &str) -> bool {
    if SPDX_PORTS.contains(&id) || id == "CC-SA-1.0" {
        return true;
    }
    // Unported ids of the table in signals.md §7.2.
    let Some(rest) = id.strip_prefix("CC-") else {
        return false;
    };
    let Some((elements, version)) = rest.rsplit_once('-') else {
        return false;
    };
    matches!(
        elements,
        "BY" | "BY-SA" | "BY-NC" | "BY-ND" | "BY-NC-SA" | "BY-NC-ND"
    ) && matches!(version, "1.0" | "2.0" | "2.5" | "3.0" | "4.0")
}

/// Maps a URL to a licence (signals.md §7.2). `None` when the URL is not a licence
/// we know at all; a creativecommons.org URL we cannot map gives a
/// `LicenseRef-` record with kind `Unknown`.
pub fn recognise_url(url: &str) -> Option<Recognised> {
    let u = url.trim();
    // Only "http…" and "//…" can match below: a relative link (most links
    // of a page) is not copied to be lower-cased.
    let b = u.as_bytes();
    if !(b.get(..4).is_some_and(|p| p.eq_ignore_ascii_case(b"http")) || b.starts_with(b"//")) {
        return None;
    }
    let lower = u.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
        .or_else(|| lower.strip_prefix("//"))?;
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let rest = rest.trim_end_matches('/');
    for (prefix, id) in OPEN_SPDX {
        if rest.starts_with(prefix) {
            return Some(Recognised {
                spdx: Some(id.into()),
                family: None,
                jurisdiction: None,
                kind: LicenceKind::OpenSpdx,
                flags: LicenceFlags::default(),
            });
        }
    }
    let path = rest
        .strip_prefix("www.creativecommons.org")
        .or_else(|| rest.strip_prefix("creativecommons.org"))?;
    let mut segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    // Drop deed.<lang>, legalcode, legalcode.<lang>, legalcode.txt.
    while let Some(last) = segs.last() {
        if last.starts_with("deed") || last.starts_with("legalcode") {
            segs.pop();
        } else {
            break;
        }
    }
    let unknown = || Recognised {
        spdx: Some(format!("LicenseRef-{}", sanitize_ref(u))),
        family: None,
        jurisdiction: None,
        kind: LicenceKind::Unknown,
        flags: LicenceFlags::default(),
    };
    let pd = |id: &str| Recognised {
        spdx: Some(id.into()),
        family: None,
        jurisdiction: None,
        kind: LicenceKind::PublicDomain,
        flags: LicenceFlags::default(),
    };
    match segs.as_slice() {
        ["publicdomain", "zero", "1.0"] => Some(pd("CC0-1.0")),
        ["publicdomain", "mark", "1.0"] => Some(pd("CC-PDM-1.0")),
        ["licenses", "publicdomain"] => Some(pd("CC-PDDC")),
        ["licenses", elements, version, tail @ ..] if tail.len() <= 1 => {
            let Some((up, flags)) = flags_of(elements) else {
                return Some(unknown());
            };
            if !matches!(*version, "1.0" | "2.0" | "2.1" | "2.5" | "3.0" | "4.0") {
                return Some(unknown());
            }
            let family = format!("CC-{up}-{version}");
            let jurisdiction = tail.first().map(|j| j.to_string());
            let candidate = match &jurisdiction {
                Some(j) => format!("{family}-{}", j.to_ascii_uppercase()),
                None => family.clone(),
            };
            let spdx = spdx_exists(&candidate).then_some(candidate);
            Some(Recognised {
                family: if spdx.is_none() { Some(family) } else { None },
                spdx,
                jurisdiction,
                kind: LicenceKind::CreativeCommons,
                flags,
            })
        }
        _ => Some(unknown()),
    }
}

fn sanitize_ref(url: &str) -> String {
    url.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect::<String>()
        .trim_matches('-')
        .to_string()
}

/// Recognises a CC licence named in visible text (signals.md §7.4, L8): only the
/// full name or the short form *with* a version ("CC BY-SA 4.0",
/// "Creative Commons Attribution-ShareAlike 4.0 International"), and CC0.
/// Names match as whole tokens (`cc0` inside `d33c709cc0af` is not one);
/// the bare `CC0` without a version counts only in a sentence that states a
/// licence ("licensed under", "dedicated to the public domain", "©"…).
pub fn recognise_text(text: &str) -> Option<(Recognised, String)> {
    recognise_text_in(text, &TextMarks::of(text))
}

/// [`recognise_text`] with the marks of `text` already found.
pub fn recognise_text_in(text: &str, marks: &TextMarks) -> Option<(Recognised, String)> {
    // Every pattern below holds "cc" or "creative" (ASCII, no space inside),
    // which then stands in `text` too, in any ASCII case. Closer still:
    // every match starts at one of the anchors below ("cc ", "cc-",
    // "creative commons ", "cc0" in the normalised words), so `text` holds
    // "creative" or a "cc" followed by whitespace, '-' or '0' (in `norm`,
    // adjacent characters are adjacent in `text` and a space stands for a
    // run of whitespace). Text without one ("access", "succeed") is not
    // normalised at all.
    if !marks.cc_anchor {
        return None;
    }
    recognise_words(text)
}

/// Where the patterns of the page-text searches ([`recognise_text`],
/// [`copyright_notice`], [`nl_reservation`]) stand in one text, from one
/// overlapping ASCII-case-insensitive sweep for all of them, so a page's
/// statement text is read once rather than once per search.
#[derive(Debug, Default)]
pub struct TextMarks {
    /// Byte ranges of the reservation verbs and objects, sorted.
    verb_at: Vec<(usize, usize)>,
    object_at: Vec<(usize, usize)>,
    /// "creative", or a "cc" followed by whitespace, '-' or '0'.
    cc_anchor: bool,
    /// The first "all rights reserved".
    all_rights: Option<usize>,
}

impl TextMarks {
    pub fn of(text: &str) -> TextMarks {
        const CC: usize = NL_VERBS.len() + NL_OBJECTS.len();
        static AC: std::sync::LazyLock<aho_corasick::AhoCorasick> =
            std::sync::LazyLock::new(|| {
                aho_corasick::AhoCorasick::builder()
                    .ascii_case_insensitive(true)
                    .build(
                        NL_VERBS
                            .iter()
                            .chain(NL_OBJECTS.iter())
                            .chain(["cc", "creative", "all rights reserved"].iter()),
                    )
                    .expect("static patterns")
            });
        let mut m = TextMarks::default();
        for hit in AC.find_overlapping_iter(text) {
            let (k, a, b) = (hit.pattern().as_usize(), hit.start(), hit.end());
            if k < NL_VERBS.len() {
                m.verb_at.push((a, b));
            } else if k < CC {
                m.object_at.push((a, b));
            } else if k == CC {
                m.cc_anchor = m.cc_anchor
                    || text
                        .get(b..)
                        .and_then(|t| t.chars().next())
                        .is_some_and(|c| c == '-' || c == '0' || c.is_whitespace());
            } else if k == CC + 1 {
                m.cc_anchor = true;
            } else {
                // Reported in order of their ends; with one length, the
                // first reported is the first place.
                m.all_rights.get_or_insert(a);
            }
        }
        m.verb_at.sort_unstable();
        m.object_at.sort_unstable();
        m
    }
}

/// [`recognise_text`] without its prefilter.
fn recognise_words(text: &str) -> Option<(Recognised, String)> {
    // "cc by-nc-sa 4.0", "cc-by 4.0", "cc by 4.0": the words of `text`
    // (split at any whitespace, no-break space included) ASCII-lowercased
    // and joined by one space, built in one pass.
    let norm = normalised_words(text);
    // One sweep for the anchors every pattern below starts with: a loop
    // whose anchor is absent cannot match, so it is skipped (the result is
    // the same; the text is no longer searched once per pattern).
    let anchors = {
        static AC: std::sync::LazyLock<aho_corasick::AhoCorasick> =
            std::sync::LazyLock::new(|| {
                aho_corasick::AhoCorasick::new(["cc ", "cc-", "creative commons ", "cc0"])
                    .expect("static patterns")
            });
        let mut seen = [false; 4];
        for m in AC.find_overlapping_iter(norm.as_str()) {
            if let Some(s) = seen.get_mut(m.pattern().as_usize()) {
                *s = true;
            }
        }
        seen
    };
    // The named forms, in the order they are tried (short forms, then long
    // ones; the first form found anywhere wins, at its first place standing
    // as whole tokens): every place of every form comes from one sweep.
    static NAMED: std::sync::LazyLock<(aho_corasick::AhoCorasick, Vec<(String, String)>)> =
        std::sync::LazyLock::new(|| {
            let versions = ["1.0", "2.0", "2.5", "3.0", "4.0"];
            let short = ["by-nc-sa", "by-nc-nd", "by-nc", "by-nd", "by-sa", "by"];
            let long = [
                ("attribution-noncommercial-sharealike", "by-nc-sa"),
                ("attribution-noncommercial-noderivatives", "by-nc-nd"),
                ("attribution-noncommercial-noderivs", "by-nc-nd"),
                ("attribution-noncommercial", "by-nc"),
                ("attribution-noderivatives", "by-nd"),
                ("attribution-noderivs", "by-nd"),
                ("attribution-sharealike", "by-sa"),
                ("attribution", "by"),
            ];
            let mut forms: Vec<(String, String)> = Vec::new();
            for form in short {
                for v in versions {
                    let url = format!("https://creativecommons.org/licenses/{form}/{v}/");
                    for pat in [
                        format!("cc {form} {v}"),
                        format!("cc-{form} {v}"),
                        format!("cc-{form}-{v}"),
                    ] {
                        forms.push((pat, url.clone()));
                    }
                }
            }
            for (form, el) in long {
                for v in versions {
                    forms.push((
                        format!("creative commons {form} {v}"),
                        format!("https://creativecommons.org/licenses/{el}/{v}/"),
                    ));
                }
            }
            let ac = aho_corasick::AhoCorasick::new(forms.iter().map(|(p, _)| p.as_str()))
                .expect("static patterns");
            (ac, forms)
        });
    if anchors[0] || anchors[1] || anchors[2] {
        let (ac, forms) = &*NAMED;
        // (form index, first place as whole tokens) of the earliest form.
        let mut best: Option<(usize, usize)> = None;
        let b = norm.as_bytes();
        for m in ac.find_overlapping_iter(norm.as_str()) {
            let (k, pos, end) = (m.pattern().as_usize(), m.start(), m.end());
            let before_ok = pos == 0 || b.get(pos - 1).is_none_or(|c| !c.is_ascii_alphanumeric());
            let after_ok = b.get(end).is_none_or(|c| !c.is_ascii_alphanumeric());
            if !(before_ok && after_ok) {
                continue;
            }
            best = match best {
                Some((bk, bpos)) if bk < k || (bk == k && bpos <= pos) => Some((bk, bpos)),
                _ => Some((k, pos)),
            };
        }
        if let Some((k, pos)) = best {
            let (pat, url) = forms.get(k)?;
            let found = norm.get(pos..pos + pat.len())?.to_string();
            return recognise_url(url).map(|r| (r, found));
        }
    }
    for (pat, needs_statement) in [("cc0 1.0", false), ("cc0-1.0", false), ("cc0", true)]
        .into_iter()
        .filter(|_| anchors[3])
    {
        let mut from = 0;
        while let Some(rel) = norm.get(from..).and_then(|rest| find_token(rest, pat)) {
            let pos = from + rel;
            if !needs_statement || states_a_licence(&norm, pos) {
                let found = norm.get(pos..pos + pat.len())?.to_string();
                return recognise_url("https://creativecommons.org/publicdomain/zero/1.0/")
                    .map(|r| (r, found));
            }
            from = pos + pat.len();
        }
    }
    None
}

/// `text`'s whitespace-separated words, ASCII-lowercased, joined by single
/// spaces (what `split_whitespace` + `join(" ")` of the lowercased text
/// gives, without the copies).
fn normalised_words(text: &str) -> String {
    let mut norm = String::with_capacity(text.len());
    let mut gap = false;
    for c in text.chars() {
        if c.is_whitespace() {
            gap = true;
            continue;
        }
        if gap && !norm.is_empty() {
            norm.push(' ');
        }
        gap = false;
        norm.push(c.to_ascii_lowercase());
    }
    norm
}

/// The first occurrence of `pat` in `hay` (both ASCII-lowercased) that
/// stands as whole tokens: no letter or digit right before or after it.
fn find_token(hay: &str, pat: &str) -> Option<usize> {
    let b = hay.as_bytes();
    let mut from = 0;
    while let Some(rel) = hay.get(from..)?.find(pat) {
        let pos = from + rel;
        let end = pos + pat.len();
        let before_ok = pos == 0 || !b[pos - 1].is_ascii_alphanumeric();
        let after_ok = end >= b.len() || !b[end].is_ascii_alphanumeric();
        if before_ok && after_ok {
            return Some(pos);
        }
        from = pos + 1;
        while from < hay.len() && !hay.is_char_boundary(from) {
            from += 1;
        }
    }
    None
}

/// Whether the sentence of `norm` around byte `pos` states a licence (the
/// words that make a licence name a grant rather than a mention).
fn states_a_licence(norm: &str, pos: usize) -> bool {
    let mut start = pos.saturating_sub(160);
    while !norm.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = (pos + 160).min(norm.len());
    while !norm.is_char_boundary(end) {
        end += 1;
    }
    let Some(window) = norm.get(start..end) else {
        return false;
    };
    // Only the sentence the name is in.
    let at = pos.saturating_sub(start);
    let (Some(before), Some(after)) = (window.get(..at), window.get(at..)) else {
        return false;
    };
    let s = before.rfind(['.', '!', '?']).map_or(0, |i| i + 1);
    let e = after.find(['.', '!', '?']).map_or(window.len(), |i| at + i);
    let sentence = window.get(s..e).unwrap_or("");
    [
        "licensed",
        "licence",
        "license",
        "released under",
        "available under",
        "published under",
        "distributed under",
        "dedicated",
        "waive",
        "©",
        "copyright",
        "this work",
        "this page",
        "this site",
        "content on",
    ]
    .iter()
    .any(|cue| sentence.contains(cue))
}

/// A copyright notice ("© 2025 X. All rights reserved."): not a licence.
pub fn copyright_notice(text: &str) -> Option<String> {
    copyright_notice_in(text, &TextMarks::of(text))
}

/// [`copyright_notice`] with the marks of `text` already found.
pub fn copyright_notice_in(text: &str, marks: &TextMarks) -> Option<String> {
    // Searched in `text` itself: a lower-cased copy can have other byte
    // offsets (the Kelvin sign, U+212A, lower-cases to one byte), and an offset from
    // it would cut `text` inside a character.
    let idx = marks
        .all_rights
        .or_else(|| text.find('©'))
        .or_else(|| c_in_parens_notice(text))?;
    Some(sentence_around(text, idx))
}

/// `(c)` as a copyright sign: followed by a year ("(C) 2025 X") or
/// preceded by the word "copyright" ("Copyright (c) X"). A bare `(c)` is
/// an argument name or a list item ("argument (C) to f(D,C,P,X)").
fn c_in_parens_notice(text: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(rel) = text.get(from..).and_then(|t| find_ascii_ci(t, "(c)")) {
        let at = from + rel;
        let after = text.get(at + 3..).unwrap_or("").trim_start();
        let year = after.chars().take(4).filter(char::is_ascii_digit).count() == 4;
        let before = text.get(..at).unwrap_or("").trim_end();
        let copyright = before
            .get(before.len().saturating_sub(9)..)
            .is_some_and(|w| w.eq_ignore_ascii_case("copyright"));
        if year || copyright {
            return Some(at);
        }
        from = at + 3;
    }
    None
}

/// Whether `l` holds `word` starting at a word boundary; with `whole`, also
/// ending at one ("tdm" is not in "stdmap"; "reserve" is not in "preserve"
/// but is in "reserved").
fn has_word(l: &str, word: &str, whole: bool) -> bool {
    let mut from = 0;
    while let Some(rel) = l.get(from..).and_then(|t| t.find(word)) {
        let at = from + rel;
        let end = at + word.len();
        let starts = l
            .get(..at)
            .and_then(|b| b.chars().next_back())
            .is_none_or(|c| !c.is_alphanumeric());
        let ends = !whole
            || l.get(end..)
                .and_then(|a| a.chars().next())
                .is_none_or(|c| !c.is_alphanumeric());
        if starts && ends {
            return true;
        }
        from = end;
    }
    false
}

/// The byte offset of the first ASCII-case-insensitive occurrence of the
/// ASCII `needle` in `hay`. A match starts with an ASCII byte, so the offset
/// is always a char boundary of `hay`.
fn find_ascii_ci(hay: &str, needle: &str) -> Option<usize> {
    let n = needle.as_bytes();
    let Some((&first, rest)) = n.split_first() else {
        return Some(0);
    };
    let h = hay.as_bytes();
    let last_start = h.len().checked_sub(n.len())?;
    let (lo, up) = (first.to_ascii_lowercase(), first.to_ascii_uppercase());
    // Candidates are the places of the first byte; only those are compared.
    let mut from = 0;
    while from <= last_start {
        let at = from
            + h.get(from..=last_start)?
                .iter()
                .position(|&b| b == lo || b == up)?;
        if h.get(at + 1..at + n.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(rest))
        {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// Verbs of a natural-language reservation ([`nl_reservation`]).
const NL_VERBS: [&str; 10] = [
    "reserve",
    "prohibit",
    "not permitted",
    "not allowed",
    "opt out",
    "opt-out",
    "forbid",
    "may not",
    "must not",
    "do not consent",
];

/// What a natural-language reservation is about ([`nl_reservation`]).
const NL_OBJECTS: [&str; 9] = [
    "text and data mining",
    "data mining",
    "tdm",
    "ai training",
    "training of ai",
    "train ai",
    "training artificial intelligence",
    "machine learning",
    "artificial intelligence",
];

/// A natural-language TDM/AI reservation (signals.md §7.4): a sentence that both
/// reserves/prohibits and names text and data mining, AI training or machine
/// learning.
pub fn nl_reservation(text: &str) -> Option<String> {
    nl_reservation_in(text, &TextMarks::of(text))
}

/// [`nl_reservation`] with the marks of `text` already found.
pub fn nl_reservation_in(text: &str, marks: &TextMarks) -> Option<String> {
    // The verbs and objects come from one ASCII-case-insensitive sweep
    // ([`TextMarks`]): a sentence cannot match without a verb and an object
    // inside it, found by the sweep. Its lower-case form holds an ASCII
    // letter only where `text` holds the same letter in either case, or one
    // of the two characters whose lower case is (partly) ASCII, the Kelvin
    // sign and the dotted capital I (a test checks every character). So only
    // the sentences around a verb or one of those two characters are looked
    // at, and the text is never split into all its sentences.
    let (verb_at, object_at) = (&marks.verb_at, &marks.object_at);
    let ascii = text.is_ascii();
    if verb_at.is_empty() && ascii {
        return None;
    }
    let inside = |at: &[(usize, usize)], s: usize, e: usize| {
        at[at.partition_point(|&(a, _)| a < s)..]
            .iter()
            .take_while(|&&(a, _)| a < e)
            .any(|&(_, b)| b <= e)
    };
    let mut places: Vec<usize> = verb_at.iter().map(|&(a, _)| a).collect();
    if !ascii {
        places.extend(
            text.char_indices()
                .filter(|&(_, c)| LOWER_TO_ASCII.contains(&c))
                .map(|(i, _)| i),
        );
        places.sort_unstable();
    }
    const ENDS: [char; 3] = ['.', '!', '\n'];
    // The end of the last sentence looked at: sentences come in text order,
    // each once (the first that matches is the answer).
    let mut done = 0usize;
    for p in places {
        if p < done {
            continue;
        }
        // The sentence around `p` as `split_inclusive(ENDS)` cuts it: after
        // the previous end mark, through the next one. The marks are ASCII,
        // so both bounds are char boundaries.
        let s = text
            .get(..p)
            .and_then(|t| t.rfind(ENDS))
            .map_or(0, |i| i + 1);
        let e = text
            .get(p..)
            .and_then(|t| t.find(ENDS))
            .map_or(text.len(), |i| p + i + 1);
        done = e;
        let Some(sentence) = text.get(s..e) else {
            continue;
        };
        if !sentence.contains(LOWER_TO_ASCII) && !(inside(verb_at, s, e) && inside(object_at, s, e))
        {
            continue;
        }
        if let Some(found) = reservation_in(sentence) {
            return Some(found);
        }
    }
    None
}

/// The non-ASCII characters whose lower case holds an ASCII character:
/// U+0130 (to "i" and a combining dot) and the Kelvin sign U+212A (to "k").
const LOWER_TO_ASCII: [char; 2] = ['\u{130}', '\u{212A}'];

/// Whether one sentence is a reservation ([`nl_reservation`]): the
/// sentence, trimmed, if it asserts a verb and names an object.
fn reservation_in(sentence: &str) -> Option<String> {
    let l = sentence.to_lowercase();
    // A TDMRep value written out ("tdm-reservation: 0") says the
    // opposite of a reservation.
    let compact: String = l
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '"')
        .collect();
    if compact.contains("tdm-reservation:0") || compact.contains("tdm-reservation=0") {
        return None;
    }
    (NL_VERBS.iter().any(|v| asserted(&l, v)) && NL_OBJECTS.iter().any(|o| has_word(&l, o, true)))
        .then(|| sentence.trim().to_string())
}

/// Whether `verb` occurs in the lower-cased sentence `l` at least once
/// without a negation right before it ("not reserved", "never prohibited",
/// "no opt-out", "un…"): negated forms say the use is *not* reserved.
fn asserted(l: &str, verb: &str) -> bool {
    let mut from = 0;
    while let Some(rel) = l.get(from..).and_then(|t| t.find(verb)) {
        let pos = from + rel;
        let before = l.get(..pos).unwrap_or("");
        // A verb inside a longer word ("preserve") is not the verb.
        if before
            .chars()
            .next_back()
            .is_some_and(char::is_alphanumeric)
        {
            from = pos + verb.len();
            continue;
        }
        let last = before
            .split(|c: char| !c.is_alphanumeric() && c != '\'')
            .rfind(|w| !w.is_empty())
            .unwrap_or("");
        let negated = before.ends_with("un")
            || last.ends_with("n't")
            || ["not", "never", "no", "without"].contains(&last);
        if !negated {
            return true;
        }
        from = pos + verb.len();
    }
    false
}

fn sentence_around(text: &str, byte: usize) -> String {
    let start = text[..byte.min(text.len())]
        .rfind(['\n', '.'])
        .map(|i| i + 1)
        .unwrap_or(0);
    let end = text[byte.min(text.len())..]
        .find('\n')
        .map(|i| byte + i)
        .unwrap_or(text.len());
    super::evidence::truncate(text[start..end].trim(), 300).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Texts from the fragments the three page-text searches care about:
    /// names, anchors inside words, verbs, negations, objects, sentence
    /// ends, whitespace and the characters whose lower case is ASCII.
    fn generated_texts(n: usize) -> Vec<String> {
        const PARTS: &[&str] = &[
            "cc",
            "CC",
            "c",
            "Creative",
            "creative commons",
            "Commons",
            " ",
            "\u{a0}",
            "\n",
            "\t",
            "-",
            "0",
            "by-sa",
            "BY",
            "by-nc",
            " 4.0",
            "1.0",
            "cc0",
            "licensed under ",
            "public domain",
            "\u{a9}",
            "access",
            "succ",
            "é",
            "\u{212A}",
            "\u{130}",
            "İ",
            "all rights reserved",
            "ALL RIGHTS",
            " reserved",
            "(c)",
            "(C) ",
            "2025",
            "copyright ",
            ".",
            "!",
            "reserve",
            "not ",
            "never ",
            "prohibit",
            "un",
            "text and data mining",
            "TDM",
            "tdm-reservation: 0",
            "ai training",
            "machine learning",
            "may not ",
            "opt-out",
            "\"",
            "preserve",
            "stdmap",
            "x",
            "We ",
            " the ",
            "Data Mining",
            "Attribution",
            "\u{2003}",
        ];
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        (0..n)
            .map(|k| {
                let mut t = String::new();
                for _ in 0..(k % 37) {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    t.push_str(PARTS[(x >> 33) as usize % PARTS.len()]);
                }
                t
            })
            .collect()
    }

    #[test]
    fn licence_urls_need_a_scheme_or_two_slashes_in_any_case() {
        for u in [
            "HTTPS://CreativeCommons.org/licenses/by/4.0/",
            "  Http://creativecommons.org/licenses/by/4.0/",
            "//creativecommons.org/licenses/by/4.0/",
            "\thttps://www.creativecommons.org/licenses/by/4.0/deed.en ",
        ] {
            assert!(recognise_url(u).is_some(), "{u:?}");
        }
        for u in [
            "creativecommons.org/licenses/by/4.0/",
            "/licenses/by/4.0/",
            "htt://creativecommons.org/licenses/by/4.0/",
            "ftp://creativecommons.org/licenses/by/4.0/",
            "",
            "h",
        ] {
            assert!(recognise_url(u).is_none(), "{u:?}");
        }
    }

    #[test]
    fn only_two_non_ascii_characters_lower_case_to_ascii() {
        let found: Vec<char> = (0x80..=0x10FFFFu32)
            .filter_map(char::from_u32)
            .filter(|c| c.to_lowercase().any(|l| l.is_ascii()))
            .collect();
        assert_eq!(found, LOWER_TO_ASCII);
    }

    #[test]
    fn page_text_searches_equal_their_plain_forms() {
        let texts = generated_texts(20_000);
        let (mut reservations, mut licences, mut notices) = (0, 0, 0);
        for t in &texts {
            let r = nl_reservation(t);
            assert_eq!(r, nl_reservation_reference(t), "{t:?}");
            reservations += usize::from(r.is_some());
            let l = recognise_text(t);
            assert_eq!(l, recognise_words(t), "{t:?}");
            licences += usize::from(l.is_some());
            let a = TextMarks::of(t).all_rights;
            assert_eq!(a, find_ascii_ci(t, "all rights reserved"), "{t:?}");
            notices += usize::from(a.is_some());
        }
        // The texts hit every search often enough to mean something.
        assert!(reservations > 200, "{reservations}");
        assert!(licences > 200, "{licences}");
        assert!(notices > 500, "{notices}");
    }

    /// [`nl_reservation`] as it was before it looked only at the sentences
    /// around a verb: every sentence split off and checked in turn.
    fn nl_reservation_reference(text: &str) -> Option<String> {
        let verbs = NL_VERBS;
        let objects = NL_OBJECTS;
        // One ASCII-case-insensitive sweep of the whole text for every verb and
        // object: an ASCII sentence without a verb and an object inside it
        // cannot match, so it is not lower-cased and searched word by word.
        // (A sentence with other characters is always checked in full: its
        // lower-case form can hold ASCII letters the original has not.)
        static NL: std::sync::LazyLock<aho_corasick::AhoCorasick> =
            std::sync::LazyLock::new(|| {
                aho_corasick::AhoCorasick::builder()
                    .ascii_case_insensitive(true)
                    .build(NL_VERBS.iter().chain(NL_OBJECTS.iter()))
                    .expect("static patterns")
            });
        let mut verb_at: Vec<(usize, usize)> = Vec::new();
        let mut object_at: Vec<(usize, usize)> = Vec::new();
        for m in NL.find_overlapping_iter(text) {
            if m.pattern().as_usize() < NL_VERBS.len() {
                verb_at.push((m.start(), m.end()));
            } else {
                object_at.push((m.start(), m.end()));
            }
        }
        verb_at.sort_unstable();
        object_at.sort_unstable();
        let inside = |at: &[(usize, usize)], s: usize, e: usize| {
            at[at.partition_point(|&(a, _)| a < s)..]
                .iter()
                .take_while(|&&(a, _)| a < e)
                .any(|&(_, b)| b <= e)
        };
        debug_assert_eq!(
            (verbs.len(), objects.len()),
            (NL_VERBS.len(), NL_OBJECTS.len())
        );
        let mut start = 0usize;
        for sentence in text.split_inclusive(['.', '!', '\n']) {
            let (s, e) = (start, start + sentence.len());
            start = e;
            if sentence.is_ascii() && !(inside(&verb_at, s, e) && inside(&object_at, s, e)) {
                continue;
            }
            let l = sentence.to_lowercase();
            // A TDMRep value written out ("tdm-reservation: 0") says the
            // opposite of a reservation.
            let compact: String = l
                .chars()
                .filter(|c| !c.is_whitespace() && *c != '"')
                .collect();
            if compact.contains("tdm-reservation:0") || compact.contains("tdm-reservation=0") {
                continue;
            }
            if verbs.iter().any(|v| asserted(&l, v))
                && objects.iter().any(|o| has_word(&l, o, true))
            {
                return Some(sentence.trim().to_string());
            }
        }
        None
    }

    #[test]
    fn find_ascii_ci_finds_the_first_match_as_a_window_scan_does() {
        let naive = |h: &str, n: &str| {
            if n.is_empty() {
                return Some(0);
            }
            h.as_bytes()
                .windows(n.len())
                .position(|w| w.eq_ignore_ascii_case(n.as_bytes()))
        };
        let hays = [
            "",
            "(c",
            "(C)",
            "x (c) (C) 2020",
            "All Rights Reserved",
            "aall rights reserved.",
            "all rights reserve",
            "é(ç)(c)",
            "ALL RIGHTS RESERVEDall rights reserved",
        ];
        for h in hays {
            for n in ["", "(c)", "all rights reserved", "a", "é"] {
                if n.is_ascii() {
                    assert_eq!(find_ascii_ci(h, n), naive(h, n), "{h:?} {n:?}");
                }
            }
        }
    }

    /// The one-sweep search for named forms finds what trying each form
    /// in turn with `find_token` found (the first form in order, at its
    /// first place as whole tokens).
    #[test]
    fn named_forms_sweep_equals_trying_each_form_in_turn() {
        let by_turns = |text: &str| -> Option<(Recognised, String)> {
            let norm = normalised_words(text);
            let versions = ["1.0", "2.0", "2.5", "3.0", "4.0"];
            for form in ["by-nc-sa", "by-nc-nd", "by-nc", "by-nd", "by-sa", "by"] {
                for v in versions {
                    for pat in [
                        format!("cc {form} {v}"),
                        format!("cc-{form} {v}"),
                        format!("cc-{form}-{v}"),
                    ] {
                        if let Some(pos) = find_token(&norm, &pat) {
                            let url = format!("https://creativecommons.org/licenses/{form}/{v}/");
                            return recognise_url(&url)
                                .map(|r| (r, norm[pos..pos + pat.len()].into()));
                        }
                    }
                }
            }
            for (form, el) in [
                ("attribution-noncommercial-sharealike", "by-nc-sa"),
                ("attribution-noncommercial-noderivatives", "by-nc-nd"),
                ("attribution-noncommercial-noderivs", "by-nc-nd"),
                ("attribution-noncommercial", "by-nc"),
                ("attribution-noderivatives", "by-nd"),
                ("attribution-noderivs", "by-nd"),
                ("attribution-sharealike", "by-sa"),
                ("attribution", "by"),
            ] {
                for v in versions {
                    let pat = format!("creative commons {form} {v}");
                    if let Some(pos) = find_token(&norm, &pat) {
                        let url = format!("https://creativecommons.org/licenses/{el}/{v}/");
                        return recognise_url(&url).map(|r| (r, norm[pos..pos + pat.len()].into()));
                    }
                }
            }
            None
        };
        for t in [
            "Licensed CC BY 4.0 and cc by-sa 4.0",
            "xcc by 4.0 then CC-BY-NC-4.0 and cc by 4.0x cc by 2.0",
            "cc by 4.0.1 cc by 3.0",
            "Creative Commons Attribution-ShareAlike 4.0 International, CC BY 2.5",
            "creative commons attribution 4.0 and creative commons attribution-noderivs 3.0",
            "cc by-nc-sa 2.0 cc by-nc 2.0 cc-by-nc-nd 1.0",
            "gcc -o x; cc by the way; access",
            "cc0 1.0 and cc by 4.0",
            "é cc by 4.0",
        ] {
            let want = by_turns(t);
            if want.is_some() {
                assert_eq!(recognise_text(t), want, "{t:?}");
            } else {
                // Then only CC0 can be found, which both leave to the same loop.
                assert!(
                    recognise_text(t).is_none_or(|(r, _)| r.spdx.as_deref() == Some("CC0-1.0")),
                    "{t:?}"
                );
            }
        }
    }

    /// The one-pass normalisation equals the three-copy recipe it replaced
    /// (replace, lowercase, split and join), on every kind of whitespace.
    #[test]
    fn normalised_words_equal_the_split_join_recipe() {
        for t in [
            "",
            "   ",
            " CC  BY-SA\u{a0}4.0 ",
            "a\n\tb\u{2003}c\u{3000}\u{85}D\r\nÉ K\u{212a}",
            "Creative\u{a0}\u{a0}Commons\nAttribution 4.0\u{0b}x",
        ] {
            let recipe = t
                .replace(['\u{a0}', '\n', '\t'], " ")
                .to_ascii_lowercase()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            assert_eq!(normalised_words(t), recipe, "{t:?}");
        }
        // The prefilter keeps every match: names found in any ASCII case.
        assert!(recognise_text("Licensed under cC By-Sa\u{a0}4.0.").is_some());
        assert!(recognise_text("CREATIVE  COMMONS\nATTRIBUTION 4.0").is_some());
        assert!(recognise_text("no licence named here").is_none());
    }

    fn id(url: &str) -> Option<String> {
        recognise_url(url).and_then(|r| r.spdx)
    }

    #[test]
    fn x3_c1_link_with_deed_suffix_maps_to_by_sa() {
        let r = recognise_url("https://creativecommons.org/licenses/by-sa/4.0/deed.en").unwrap();
        assert_eq!(r.spdx.as_deref(), Some("CC-BY-SA-4.0"));
        assert!(r.flags.by && r.flags.sa && !r.flags.nc && !r.flags.nd);
    }

    #[test]
    fn x3_c3_one_point_oh_by_nd_nc_is_by_nc_nd() {
        assert_eq!(
            id("http://creativecommons.org/licenses/by-nd-nc/1.0/").as_deref(),
            Some("CC-BY-NC-ND-1.0")
        );
    }

    #[test]
    fn x3_c4_us_port_has_an_spdx_id() {
        assert_eq!(
            id("https://creativecommons.org/licenses/by/3.0/us/legalcode").as_deref(),
            Some("CC-BY-3.0-US")
        );
    }

    #[test]
    fn x3_c5_french_port_has_no_spdx_id_but_a_family() {
        let r = recognise_url("https://creativecommons.org/licenses/by-sa/3.0/fr/").unwrap();
        assert_eq!(r.spdx, None);
        assert_eq!(r.family.as_deref(), Some("CC-BY-SA-3.0"));
        assert_eq!(r.jurisdiction.as_deref(), Some("fr"));
        assert!(r.flags.sa);
    }

    #[test]
    fn x3_c6_public_domain_mark_has_no_flags() {
        let r = recognise_url("https://creativecommons.org/publicdomain/mark/1.0/").unwrap();
        assert_eq!(r.spdx.as_deref(), Some("CC-PDM-1.0"));
        assert_eq!(r.flags, LicenceFlags::default());
        assert_eq!(r.kind, LicenceKind::PublicDomain);
    }

    #[test]
    fn query_www_and_uk_ports_normalise() {
        assert_eq!(
            id("https://www.creativecommons.org/licenses/by/4.0/?ref=chooser-v1").as_deref(),
            Some("CC-BY-4.0")
        );
        assert_eq!(
            id("https://creativecommons.org/licenses/by-sa/2.0/uk/").as_deref(),
            Some("CC-BY-SA-2.0-UK")
        );
        assert_eq!(
            id("https://creativecommons.org/licenses/sa/1.0/").as_deref(),
            Some("CC-SA-1.0")
        );
        let nc = recognise_url("https://creativecommons.org/licenses/nc/1.0/").unwrap();
        assert_eq!(nc.spdx, None);
        assert_eq!(nc.family.as_deref(), Some("CC-NC-1.0"));
        assert_eq!(
            id("https://creativecommons.org/licenses/publicdomain/").as_deref(),
            Some("CC-PDDC")
        );
    }

    #[test]
    fn unknown_cc_paths_are_licenseref_and_other_urls_are_not_licences() {
        let r = recognise_url("https://creativecommons.org/licenses/sampling/1.0/").unwrap();
        assert_eq!(r.kind, LicenceKind::Unknown);
        assert!(r.spdx.unwrap().starts_with("LicenseRef-"));
        assert!(recognise_url("https://example.com/terms").is_none());
    }

    #[test]
    fn licence_names_in_text_need_a_version() {
        let (r, _) = recognise_text("Text licensed under CC BY-SA 4.0 unless noted.").unwrap();
        assert_eq!(r.spdx.as_deref(), Some("CC-BY-SA-4.0"));
        let (r, _) =
            recognise_text("Creative Commons Attribution-NonCommercial 4.0 International").unwrap();
        assert_eq!(r.spdx.as_deref(), Some("CC-BY-NC-4.0"));
        assert!(recognise_text("We like Creative Commons.").is_none());
    }

    #[test]
    fn notices_and_reservations_are_recognised() {
        assert!(copyright_notice("© 2025 Example Ltd. All rights reserved.").is_some());
        assert!(copyright_notice("No notice here").is_none());
        assert!(
            nl_reservation("We reserve all rights to text and data mining of this site.").is_some()
        );
        assert!(nl_reservation("We like machine learning.").is_none());
    }

    /// The Kelvin sign (U+212A, three bytes) lower-cases to `k` (one byte):
    /// an offset found in a lower-cased copy used to cut the original text
    /// inside a character and panic.
    #[test]
    fn notices_after_characters_whose_lowercase_is_shorter_do_not_panic() {
        assert_eq!(
            copyright_notice("\u{212A}\u{212A}© 2025").as_deref(),
            Some("\u{212A}\u{212A}© 2025")
        );
        let n = copyright_notice("\u{212A}\u{212A}\u{212A}. (C) 2025 Kelvin Ltd").unwrap();
        assert_eq!(n, "(C) 2025 Kelvin Ltd");
        let n = copyright_notice("İİİİ. ALL RIGHTS RESERVED").unwrap();
        assert_eq!(n, "ALL RIGHTS RESERVED");
    }

    /// Found on a crawl of the SQLite documentation (Debian `sqlite3-doc`):
    /// an argument named `(C)` was read as a copyright notice, and the
    /// reservation words matched inside "preserve" and "stdmap".
    #[test]
    fn words_inside_other_words_and_bare_c_in_parens_are_not_evidence() {
        assert_eq!(
            copyright_notice(
                "argument (C) to sqlite3_autovacuum_pages(D,C,P,X) is a NULL pointer,"
            ),
            None
        );
        assert_eq!(
            copyright_notice("INSERT INTO t0(c) VALUES(random()) RETURNING *;"),
            None
        );
        assert!(copyright_notice("Copyright (c) Example Ltd").is_some());
        assert!(copyright_notice("(C) 2025 Example Ltd").is_some());
        assert_eq!(
            nl_reservation("We preserve the history of machine learning research."),
            None
        );
        assert_eq!(
            nl_reservation("Do not use stdmap; it is prohibited in the SQL parser."),
            None
        );
        assert!(nl_reservation("We reserve all rights of text and data mining.").is_some());
        assert!(nl_reservation("AI training is prohibited.").is_some());
        assert!(nl_reservation("TDM is reserved under Art. 4 DSM.").is_some());
    }
}
