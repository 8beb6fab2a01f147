//! Splits a robots.txt body into numbered `key: value` records (RFC 9309
//! §2.2; signals.md §1.1, §1.5). Lenient the way the RFC asks ("MUST try to parse
//! each line"): one bad line never invalidates the file.

/// The kind of record a line holds. Field names are case-insensitive; common
/// misspellings are accepted as Google and texting_robots accept them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Key {
    UserAgent,
    Allow,
    Disallow,
    /// AIPREF `Content-Usage` (signals.md §5.4): a group rule for grouping purposes.
    ContentUsage,
    /// Cloudflare `Content-Signal` (signals.md §5.6, `OURS`: grouped like a rule).
    ContentSignal,
    CrawlDelay,
    Sitemap,
    /// `License:` (RSL pointer, signals.md §6.2): site-wide, never a group rule.
    License,
    /// `DisallowAITraining:` (expired Microsoft draft, signals.md §1.7): a group rule
    /// read by the consent layer, never by the access decision.
    DisallowAiTraining,
    /// Any other field (`Host`, `Request-rate`, ...), lower-cased.
    Other(String),
}

impl Key {
    fn from_name(name: &[u8]) -> Key {
        let lower = String::from_utf8_lossy(name).to_ascii_lowercase();
        match lower.as_str() {
            "user-agent" | "useragent" | "user agent" => Key::UserAgent,
            "allow" => Key::Allow,
            "disallow" | "dissallow" | "dissalow" | "disalow" | "diasllow" | "disallaw" => {
                Key::Disallow
            }
            "content-usage" => Key::ContentUsage,
            "content-signal" => Key::ContentSignal,
            "crawl-delay" | "crawldelay" | "crawl delay" => Key::CrawlDelay,
            "sitemap" | "site-map" | "site map" => Key::Sitemap,
            "license" => Key::License,
            "disallowaitraining" => Key::DisallowAiTraining,
            _ => Key::Other(lower),
        }
    }

    /// Group rules end a run of `User-agent:` lines (RFC 9309 §2.1; signals.md §1.3).
    pub(crate) fn is_group_rule(&self) -> bool {
        matches!(
            self,
            Key::Allow
                | Key::Disallow
                | Key::ContentUsage
                | Key::ContentSignal
                | Key::DisallowAiTraining
        )
    }
}

/// One parseable record.
#[derive(Debug, Clone)]
pub(crate) struct Record<'a> {
    /// 1-based line number in the original body.
    pub(crate) line: usize,
    pub(crate) key: Key,
    /// The value, trimmed, comment removed; raw bytes (may be non-UTF-8).
    pub(crate) value: &'a [u8],
    /// The line as written, comment removed and trimmed, e.g. `Disallow: /x`.
    pub(crate) text: &'a [u8],
}

/// The records of a body, plus the numbers of lines that held something but
/// could not be read as `key: value`.
pub(crate) struct Lines<'a> {
    pub(crate) records: Vec<Record<'a>>,
    pub(crate) unparseable: Vec<usize>,
}

/// Splits `body` into records. A UTF-8 BOM (or a partial one: `EF BB`, `EF`)
/// at the very start is skipped (signals.md §1.1); CR, LF and CRLF all end a line.
pub(crate) fn split(body: &[u8]) -> Lines<'_> {
    let body = body
        .strip_prefix(b"\xEF\xBB\xBF")
        .or_else(|| body.strip_prefix(b"\xEF\xBB"))
        .or_else(|| body.strip_prefix(b"\xEF"))
        .unwrap_or(body);
    let mut records = Vec::new();
    let mut unparseable = Vec::new();
    let mut line_no = 0;
    let mut rest = body;
    while !rest.is_empty() {
        line_no += 1;
        let end = rest
            .iter()
            .position(|&b| b == b'\n' || b == b'\r')
            .unwrap_or(rest.len());
        let line = &rest[..end];
        rest = &rest[end..];
        if let Some(after) = rest.strip_prefix(b"\r\n") {
            rest = after;
        } else if !rest.is_empty() {
            rest = &rest[1..];
        }
        match parse_line(line) {
            Parsed::Record { key, value, text } => records.push(Record {
                line: line_no,
                key,
                value,
                text,
            }),
            Parsed::Blank => {}
            Parsed::Unparseable => unparseable.push(line_no),
        }
    }
    Lines {
        records,
        unparseable,
    }
}

enum Parsed<'a> {
    Record {
        key: Key,
        value: &'a [u8],
        text: &'a [u8],
    },
    Blank,
    Unparseable,
}

fn parse_line(line: &[u8]) -> Parsed<'_> {
    // `#` starts a comment anywhere on a line (RFC 9309 §2.2).
    let content = match line.iter().position(|&b| b == b'#') {
        Some(i) => &line[..i],
        None => line,
    };
    let content = content.trim_ascii();
    if content.is_empty() {
        return Parsed::Blank;
    }
    let (name, value) = match content.iter().position(|&b| b == b':') {
        Some(i) => (content[..i].trim_ascii(), content[i + 1..].trim_ascii()),
        // A missing colon is accepted when the line is exactly two words
        // (`disallow /`), as Google's parser does (signals.md §1.5: allowed, and
        // the conservative reading for Disallow).
        None => {
            let Some(i) = content.iter().position(|&b| b == b' ' || b == b'\t') else {
                return Parsed::Unparseable;
            };
            let value = content[i..].trim_ascii();
            if value.iter().any(|&b| b == b' ' || b == b'\t') {
                return Parsed::Unparseable;
            }
            (&content[..i], value)
        }
    };
    if name.is_empty() {
        return Parsed::Unparseable;
    }
    Parsed::Record {
        key: Key::from_name(name),
        value,
        text: content,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_numbered_across_cr_lf_and_crlf() {
        let lines = split(b"\xEF\xBB\xBFUser-agent: a\r\nAllow: /x\rDisallow: /y\n\nSitemap: s");
        let got: Vec<(usize, Key)> = lines
            .records
            .iter()
            .map(|r| (r.line, r.key.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, Key::UserAgent),
                (2, Key::Allow),
                (3, Key::Disallow),
                (5, Key::Sitemap)
            ]
        );
    }

    #[test]
    fn comments_and_whitespace_are_trimmed_and_text_kept_as_written() {
        let lines = split(b"  DisAllow :  /a b  # c\n# only a comment\n");
        assert_eq!(lines.records.len(), 1);
        let r = &lines.records[0];
        assert_eq!(r.key, Key::Disallow);
        assert_eq!(r.value, b"/a b");
        assert_eq!(r.text, b"DisAllow :  /a b");
    }

    #[test]
    fn a_missing_colon_is_accepted_only_between_two_words() {
        let lines = split(b"disallow /\nuser-agent foo bar\nnonsense\n");
        assert_eq!(lines.records.len(), 1);
        assert_eq!(lines.records[0].value, b"/");
        assert_eq!(lines.unparseable, vec![2, 3]);
    }

    #[test]
    fn a_partial_bom_is_skipped_but_a_bom_elsewhere_spoils_the_line() {
        let lines = split(b"\xEF\xBBUser-agent: *\n\xEF\xBB\xBFDisallow: /\n");
        assert_eq!(lines.records[0].key, Key::UserAgent);
        assert!(matches!(lines.records[1].key, Key::Other(_)));
    }
}
