//! IETF AI Preferences (signals.md §5, `DRAFT`: draft-ietf-aipref-vocab-07 and
//! attach-05) and Cloudflare Content Signals (§5.6, `VENDOR`).
//!
//! `Content-Usage` values are RFC 9651 Structured Field Dictionaries; this
//! module carries a small parser for that grammar (dictionary members, bare
//! items, inner lists, parameters) so that an upper-case key or a stray
//! character fails the whole dictionary as the RFC requires, instead of
//! splitting on commas by hand.

use std::collections::BTreeMap;

/// The labels of vocab-07.
pub const LABELS: [&str; 2] = ["train-ai", "search"];

/// Labels of earlier drafts that clearly cover training (signals.md §5.1, `OURS`).
pub const LEGACY_TRAINING_LABELS: [&str; 7] =
    ["ai", "genai", "train-genai", "tdm", "all", "bots", "ai-use"];

/// One dictionary member value, reduced to what AIPREF needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Token(String),
    Other(String),
}

/// Parses an RFC 9651 Dictionary. A repeated key keeps its last value;
/// parameters are parsed and dropped. Errors name the offending byte.
pub fn parse_dictionary(input: &str) -> Result<BTreeMap<String, Item>, String> {
    let b = input.as_bytes();
    let mut i = 0;
    let mut out = BTreeMap::new();
    skip_sp(b, &mut i);
    if i == b.len() {
        return Ok(out);
    }
    loop {
        let key = parse_key(b, &mut i)?;
        let item = if i < b.len() && b[i] == b'=' {
            i += 1;
            if i < b.len() && b[i] == b'(' {
                parse_inner_list(b, &mut i)?;
                Item::Other("(inner-list)".into())
            } else {
                parse_bare_item(b, &mut i)?
            }
        } else {
            Item::Other("?1".into())
        };
        parse_params(b, &mut i)?;
        out.insert(key, item);
        skip_ows(b, &mut i);
        if i == b.len() {
            return Ok(out);
        }
        if b[i] != b',' {
            return Err(format!("expected `,` at byte {i} of `{input}`"));
        }
        i += 1;
        skip_ows(b, &mut i);
        if i == b.len() {
            return Err(format!("trailing `,` at the end of `{input}`"));
        }
    }
}

fn skip_sp(b: &[u8], i: &mut usize) {
    while *i < b.len() && b[*i] == b' ' {
        *i += 1;
    }
}

fn skip_ows(b: &[u8], i: &mut usize) {
    while *i < b.len() && (b[*i] == b' ' || b[*i] == b'\t') {
        *i += 1;
    }
}

fn parse_key(b: &[u8], i: &mut usize) -> Result<String, String> {
    let start = *i;
    match b.get(*i) {
        Some(c) if c.is_ascii_lowercase() || *c == b'*' => {}
        Some(c) => {
            return Err(format!(
                "key must start with a lower-case letter or `*`, found `{}` at byte {start}",
                *c as char
            ));
        }
        None => return Err("expected a key at the end of the value".into()),
    }
    while *i < b.len()
        && (b[*i].is_ascii_lowercase()
            || b[*i].is_ascii_digit()
            || matches!(b[*i], b'_' | b'-' | b'.' | b'*'))
    {
        *i += 1;
    }
    Ok(String::from_utf8_lossy(&b[start..*i]).into_owned())
}

fn parse_bare_item(b: &[u8], i: &mut usize) -> Result<Item, String> {
    let start = *i;
    match b.get(*i) {
        Some(c) if c.is_ascii_alphabetic() || *c == b'*' => {
            *i += 1;
            while *i < b.len()
                && (b[*i].is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:/".contains(&b[*i]))
            {
                *i += 1;
            }
            Ok(Item::Token(
                String::from_utf8_lossy(&b[start..*i]).into_owned(),
            ))
        }
        Some(c) if c.is_ascii_digit() || *c == b'-' => {
            *i += 1;
            while *i < b.len() && (b[*i].is_ascii_digit() || b[*i] == b'.') {
                *i += 1;
            }
            Ok(Item::Other(
                String::from_utf8_lossy(&b[start..*i]).into_owned(),
            ))
        }
        Some(b'"') => {
            *i += 1;
            while *i < b.len() && b[*i] != b'"' {
                if b[*i] == b'\\' {
                    *i += 1;
                }
                *i += 1;
            }
            if *i >= b.len() {
                return Err("unterminated string".into());
            }
            *i += 1;
            Ok(Item::Other(
                String::from_utf8_lossy(&b[start..*i]).into_owned(),
            ))
        }
        Some(b'?') => {
            *i += 1;
            match b.get(*i) {
                Some(b'0') | Some(b'1') => {
                    *i += 1;
                    Ok(Item::Other(
                        String::from_utf8_lossy(&b[start..*i]).into_owned(),
                    ))
                }
                _ => Err(format!("bad boolean at byte {start}")),
            }
        }
        Some(b':') => {
            *i += 1;
            while *i < b.len() && b[*i] != b':' {
                *i += 1;
            }
            if *i >= b.len() {
                return Err("unterminated byte sequence".into());
            }
            *i += 1;
            Ok(Item::Other(
                String::from_utf8_lossy(&b[start..*i]).into_owned(),
            ))
        }
        Some(b'@') | Some(b'%') => {
            // Dates and display strings (RFC 9651 §3.3.7–3.3.8): keep raw.
            *i += 1;
            while *i < b.len() && !matches!(b[*i], b',' | b';' | b' ') {
                *i += 1;
            }
            Ok(Item::Other(
                String::from_utf8_lossy(&b[start..*i]).into_owned(),
            ))
        }
        _ => Err(format!("expected a value at byte {start}")),
    }
}

fn parse_inner_list(b: &[u8], i: &mut usize) -> Result<(), String> {
    *i += 1; // '('
    loop {
        skip_sp(b, i);
        match b.get(*i) {
            Some(b')') => {
                *i += 1;
                return parse_params(b, i);
            }
            Some(_) => {
                parse_bare_item(b, i)?;
                parse_params(b, i)?;
                if !matches!(b.get(*i), Some(b' ') | Some(b')')) {
                    return Err(format!("bad inner list at byte {}", *i));
                }
            }
            None => return Err("unterminated inner list".into()),
        }
    }
}

fn parse_params(b: &[u8], i: &mut usize) -> Result<(), String> {
    while *i < b.len() && b[*i] == b';' {
        *i += 1;
        skip_sp(b, i);
        parse_key(b, i)?;
        if *i < b.len() && b[*i] == b'=' {
            *i += 1;
            parse_bare_item(b, i)?;
        }
    }
    Ok(())
}

/// Preferences of one `Content-Usage` value: label → `y`, `n` or `unknown`
/// for every key present (unknown labels recorded too). A dictionary that
/// fails to parse gives no preferences and an error (signals.md §5.2, P2).
pub fn parse_content_usage(value: &str) -> (BTreeMap<String, String>, Vec<String>) {
    match parse_dictionary(value.trim()) {
        Ok(d) => (
            d.into_iter()
                .map(|(k, v)| {
                    let p = match v {
                        Item::Token(t) if t == "y" => "y",
                        Item::Token(t) if t == "n" => "n",
                        _ => "unknown",
                    };
                    (k, p.to_string())
                })
                .collect(),
            Vec::new(),
        ),
        Err(e) => (
            BTreeMap::new(),
            vec![format!(
                "content-usage `{value}` is not a structured-field dictionary: {e}; all preferences unknown"
            )],
        ),
    }
}

/// Combines preferences from several sources (vocab-07 "Combining
/// Preferences"): any `n` wins, otherwise any `y`, otherwise unknown.
pub fn combine<'a>(
    all: impl IntoIterator<Item = &'a BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for prefs in all {
        for (k, v) in prefs {
            let cur = out.entry(k.clone()).or_insert_with(|| "unknown".into());
            if v == "n" || (v == "y" && cur != "n") {
                *cur = v.clone();
            }
        }
    }
    out
}

/// Parses a Cloudflare `Content-Signal` value leniently (signals.md §5.6):
/// `key=value` pairs separated by commas; `yes`/`true` and `no`/`false`;
/// anything else is `unknown`. Keys are lower-cased; unknown keys recorded.
pub fn parse_content_signal(value: &str) -> (BTreeMap<String, String>, Vec<String>) {
    let mut prefs = BTreeMap::new();
    let mut errors = Vec::new();
    for part in value.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let Some((k, v)) = part.split_once('=') else {
            errors.push(format!("content-signal part `{part}` has no `=`"));
            continue;
        };
        let k = k.trim().to_ascii_lowercase();
        let v = match v.trim().to_ascii_lowercase().as_str() {
            "yes" | "true" | "y" => "yes",
            "no" | "false" | "n" => "no",
            _ => "unknown",
        };
        prefs.insert(k, v.to_string());
    }
    (prefs, errors)
}

/// Combines Content-Signal values: any `no` wins, otherwise `yes`.
pub fn combine_signal<'a>(
    all: impl IntoIterator<Item = &'a BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for prefs in all {
        for (k, v) in prefs {
            let cur = out.entry(k.clone()).or_insert_with(|| "unknown".into());
            if v == "no" || (v == "yes" && cur != "no") {
                *cur = v.clone();
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionaries_parse_with_parameters_and_bare_keys() {
        let d = parse_dictionary("train-ai=n;foo=1, search=y, flag, x=\"s\"").unwrap();
        assert_eq!(d["train-ai"], Item::Token("n".into()));
        assert_eq!(d["search"], Item::Token("y".into()));
        assert_eq!(d["flag"], Item::Other("?1".into()));
        assert!(parse_dictionary("a=y,").is_err());
        assert!(parse_dictionary("a=y b=n").is_err());
        assert!(parse_dictionary("").unwrap().is_empty());
    }

    #[test]
    fn content_signal_is_read_leniently() {
        let (p, e) = parse_content_signal(" search = YES,ai-train=false , ai-input=maybe, odd");
        assert_eq!(p["search"], "yes");
        assert_eq!(p["ai-train"], "no");
        assert_eq!(p["ai-input"], "unknown");
        assert_eq!(e.len(), 1);
    }
}
