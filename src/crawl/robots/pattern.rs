//! Percent-encoding normalisation of rule patterns and URL paths, and the
//! pattern matcher that finds the deciding rule (RFC 9309 §2.2.2, §2.2.3;
//! signals.md §1.4).
//!
//! Both sides go through the same normalisation so that equal resources
//! compare equal:
//! - `%xx` hex digits are upper-cased (`%aa` → `%AA`), as Google does;
//! - a `%xx` that encodes an unreserved ASCII character (`A–Z a–z 0–9 - . _ ~`)
//!   is decoded (RFC 9309 Figure 4: rule `/foo/bar/%62%61%7A` matches
//!   `/foo/bar/baz`; RFC 3986 §6.2.2.2);
//! - octets outside ASCII, controls, space and `" # ' < > ` { }` are
//!   percent-encoded (a superset of what the `url` crate encodes in paths and
//!   queries, so a URL and a rule written the same way agree);
//! - reserved characters (`/ ? : = & ;` ...) are left as they are (signals.md §1.4,
//!   `OURS`: Google and texting_robots do the same);
//! - in a pattern, `*` is the wildcard and a final `$` the end anchor; `%2A`
//!   and `%24` stay encoded and so match a literal `*` / `$` in a URL, which
//!   is encoded to `%2A` / `%24` on its side. A `$` that is not last in a
//!   pattern is a literal `$` (Google's reading), hence `%24`.

use std::fmt::Write as _;

/// Normalises a URL's path plus `?query` (no fragment) for matching.
/// An empty path is `/` (RFC 9309 §2.2.2).
pub fn normalise_path(path_and_query: &str) -> String {
    let out = normalise(path_and_query.as_bytes(), Side::Url);
    if out.is_empty() || out.starts_with('?') {
        format!("/{out}")
    } else {
        out
    }
}

/// Normalises an `Allow`/`Disallow` value into the pattern that is matched.
pub fn normalise_pattern(value: &[u8]) -> String {
    normalise(value, Side::Pattern)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Url,
    Pattern,
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn must_encode(b: u8) -> bool {
    b >= 0x7F || b <= 0x20 || matches!(b, b'"' | b'#' | b'\'' | b'<' | b'>' | b'`' | b'{' | b'}')
}

fn push_encoded(out: &mut String, b: u8) {
    write!(out, "%{b:02X}").expect("writing to a String cannot fail");
}

fn normalise(input: &[u8], side: Side) -> String {
    let mut out = String::with_capacity(input.len() + 8);
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        if b == b'%'
            && let (Some(hi), Some(lo)) = (
                input.get(i + 1).copied().and_then(hex_val),
                input.get(i + 2).copied().and_then(hex_val),
            )
        {
            let v = hi * 16 + lo;
            if is_unreserved(v) {
                out.push(char::from(v));
            } else {
                push_encoded(&mut out, v);
            }
            i += 3;
            continue;
        }
        match (b, side) {
            (b'*', Side::Pattern) => out.push('*'),
            (b'$', Side::Pattern) if i + 1 == input.len() => out.push('$'),
            (b'*' | b'$', _) => push_encoded(&mut out, b),
            _ if must_encode(b) => push_encoded(&mut out, b),
            _ => out.push(char::from(b)),
        }
        i += 1;
    }
    out
}

/// Whether a normalised `pattern` matches the normalised `path`: the pattern
/// must be consumed before a difference (prefix match); `*` matches any run of
/// octets; a final `$` requires the path to end there (RFC 9309 §2.2.3).
pub fn matches(pattern: &str, path: &str) -> bool {
    let (body, anchored) = match pattern.strip_suffix('$') {
        Some(b) => (b, true),
        None => (pattern, false),
    };
    let path = path.as_bytes();
    let mut parts = body.as_bytes().split(|&b| b == b'*');
    let first = parts.next().unwrap_or_default();
    if !path.starts_with(first) {
        return false;
    }
    let mut pos = first.len();
    let rest: Vec<&[u8]> = parts.collect();
    if rest.is_empty() {
        // No wildcard: a prefix match, or an exact match when anchored.
        return !anchored || pos == path.len();
    }
    let (last, middle) = rest.split_last().expect("rest is not empty");
    // Each middle segment at its leftmost position leaves the most room for
    // the segments after it, so greedy leftmost search is exact.
    for seg in middle {
        match find(&path[pos..], seg) {
            Some(at) => pos += at + seg.len(),
            None => return false,
        }
    }
    if anchored {
        path.len() >= pos + last.len() && path.ends_with(last)
    } else {
        find(&path[pos..], last).is_some()
    }
}

/// Whether a rule value as written matches a path (or URL) as written:
/// both normalised first; an empty pattern matches nothing (an empty
/// `Disallow:` disallows nothing). The one matcher for robots.txt rules,
/// TDMRep `location` patterns and RSL content URLs.
pub fn rule_matches(pattern: &str, path: &str) -> bool {
    !pattern.is_empty()
        && matches(
            &normalise_pattern(pattern.as_bytes()),
            &normalise_path(path),
        )
}

/// RFC 9309 §2.2.2 "most specific match": the length in octets of the
/// normalised pattern.
pub fn specificity(pattern: &str) -> usize {
    normalise_pattern(pattern.as_bytes()).len()
}

/// The deciding rule among `(normalised pattern, allow, item)` candidates
/// for a normalised path: the longest matching pattern wins and `allow` wins
/// ties (RFC 9309 §2.2.2). Empty patterns never match. Used by the
/// crawler's access decision and by the consent reading of other agents'
/// groups, so both decide the same way.
pub fn longest_match<'p, T>(
    candidates: impl IntoIterator<Item = (&'p str, bool, T)>,
    path: &str,
) -> Option<(bool, T)> {
    let mut best: Option<(usize, bool, T)> = None;
    for (pattern, allow, item) in candidates {
        if pattern.is_empty() || !matches(pattern, path) {
            continue;
        }
        let better = match &best {
            None => true,
            Some((len, a, _)) => (pattern.len(), allow) > (*len, *a),
        };
        if better {
            best = Some((pattern.len(), allow, item));
        }
    }
    best.map(|(_, allow, item)| (allow, item))
}

/// The path plus `?query` of a URL string, without the fragment, as
/// written; `/` when empty. Accepts absolute URLs and bare paths (stored
/// URLs are strings; this needs no URL parser).
pub fn path_of(url: &str) -> String {
    let no_frag = url.split('#').next().unwrap_or("");
    let rest = match no_frag.split_once("://") {
        Some((_, after)) => match after.find(['/', '?']) {
            Some(j) => after.get(j..).unwrap_or(""),
            None => "",
        },
        None => no_frag,
    };
    if rest.is_empty() {
        "/".to_string()
    } else if rest.starts_with('?') {
        format!("/{rest}")
    } else {
        rest.to_string()
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_upper_cased_and_unreserved_octets_decoded() {
        assert_eq!(normalise_pattern(b"/%aa/%62%61%7a"), "/%AA/baz");
        assert_eq!(normalise_path("/%aa/%62%61%7A"), "/%AA/baz");
        assert_eq!(normalise_path("/a%2fb"), "/a%2Fb");
    }

    #[test]
    fn non_ascii_is_encoded_on_both_sides() {
        assert_eq!(
            normalise_pattern("/foo/bar/ツ".as_bytes()),
            "/foo/bar/%E3%83%84"
        );
        assert_eq!(normalise_pattern(b"/caf\xe9"), "/caf%E9");
        assert_eq!(normalise_path("/a b"), "/a%20b");
    }

    #[test]
    fn star_and_dollar_are_operators_only_in_patterns() {
        assert_eq!(normalise_pattern(b"/a*b$"), "/a*b$");
        assert_eq!(normalise_pattern(b"/a$b"), "/a%24b");
        assert_eq!(normalise_pattern(b"/path/foo-%24"), "/path/foo-%24");
        assert_eq!(normalise_pattern(b"/x%2a"), "/x%2A");
        assert_eq!(normalise_path("/path/foo-$"), "/path/foo-%24");
        assert_eq!(normalise_path("/x*"), "/x%2A");
    }

    #[test]
    fn empty_path_is_slash() {
        assert_eq!(normalise_path(""), "/");
        assert_eq!(normalise_path("?a"), "/?a");
    }

    #[test]
    fn matching_follows_prefix_wildcard_and_anchor_rules() {
        assert!(matches("/fish", "/fish.html"));
        assert!(!matches("/fish", "/Fish"));
        assert!(matches("/*.php$", "/folder/filename.php"));
        assert!(!matches("/*.php$", "/filename.php?parameters"));
        assert!(!matches("/*.php$", "/filename.php5"));
        assert!(matches("/fish*.php", "/fish/salmon.php"));
        assert!(matches("/fish$", "/fish"));
        assert!(!matches("/fish$", "/fish/"));
        assert!(matches("*", "/anything"));
        assert!(matches("/a*b*c$", "/a-b-b-c"));
        assert!(!matches("/a*bc$", "/abc-c"));
        assert!(matches("/a**b", "/ab"));
        assert!(matches("", "/x"));
    }
    #[test]
    fn written_rules_match_written_paths_after_normalising_both() {
        assert!(rule_matches("/", "/a"));
        assert!(!rule_matches("", "/anything"));
        assert!(rule_matches("*.gif$", "/img/a.gif"));
        assert!(!rule_matches("*.gif$", "/img/a.gif?x=1"));
        assert!(rule_matches("/foo/bar/%62%61%7A", "/foo/bar/baz"));
        assert!(rule_matches("/path/foo-%24", "/path/foo-$"));
        assert!(rule_matches("/x/%e3%83%84", "/x/ツ"));
        assert!(rule_matches("/a**b$", "/ab"));
        assert!(!rule_matches("/*/*/z$", "/a/z"));
    }

    #[test]
    fn longest_pattern_decides_and_allow_wins_ties() {
        let rules = [
            ("/", false, 1),
            ("/", true, 2),
            ("/a/", false, 3),
            ("/a/b", true, 4),
            ("", false, 5),
        ];
        let pick = |p: &str| longest_match(rules.iter().map(|(r, a, i)| (*r, *a, *i)), p);
        assert_eq!(pick("/z"), Some((true, 2)));
        assert_eq!(pick("/a/c"), Some((false, 3)));
        assert_eq!(pick("/a/b"), Some((true, 4)));
        assert_eq!(specificity("/%62"), 2);
    }

    #[test]
    fn paths_are_taken_from_urls_without_fragments() {
        assert_eq!(path_of("https://h.example/a?b=1#f"), "/a?b=1");
        assert_eq!(path_of("https://h.example"), "/");
        assert_eq!(path_of("https://h.example?q"), "/?q");
        assert_eq!(path_of("/p#x"), "/p");
    }

    /// The fuzzer's `robots` target timed out on an 8 KB rule checked
    /// against an 8 KB path; a rule without `*` costs its own length.
    #[test]
    fn long_rules_against_long_paths_match_in_linear_time() {
        let long = format!("/x/{}", "a".repeat(64 * 1024));
        let started = std::time::Instant::now();
        for _ in 0..20 {
            assert!(rule_matches(&long, &long));
            assert!(!rule_matches(&format!("{long}b"), &long));
            assert!(rule_matches(&format!("{long}$"), &long));
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
    }
}
