//! robots.txt-style path patterns (RFC 9309 §2.2.2–2.2.3), shared by the
//! AI-intent reader, AIPREF `Content-Usage` rules, tdmrep.json `location`,
//! ai.txt and RSL `content/@url`.
//!
//! `*` matches any sequence of octets, a trailing `$` anchors the end. Before
//! comparison both sides are normalised: non-ASCII octets are
//! percent-encoded, `%xx` hex digits are upper-cased, and percent-encoded
//! unreserved characters are decoded (RFC 9309 Figure 4; spec §1.4, §4.3).
//! Reserved characters stay as written (spec §1.4 `OURS`).

/// Normalises a path (or pattern) for comparison.
pub fn normalise(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'%' && i + 2 < b.len() && is_hex(b[i + 1]) && is_hex(b[i + 2]) {
            let v = hex_val(b[i + 1]) * 16 + hex_val(b[i + 2]);
            if is_unreserved(v) {
                out.push(v as char);
            } else {
                out.push('%');
                out.push(b[i + 1].to_ascii_uppercase() as char);
                out.push(b[i + 2].to_ascii_uppercase() as char);
            }
            i += 3;
        } else if c >= 0x80 {
            out.push_str(&format!("%{c:02X}"));
            i += 1;
        } else {
            out.push(c as char);
            i += 1;
        }
    }
    out
}

fn is_hex(c: u8) -> bool {
    c.is_ascii_hexdigit()
}

fn hex_val(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => c - b'A' + 10,
    }
}

fn is_unreserved(v: u8) -> bool {
    v.is_ascii_alphanumeric() || matches!(v, b'-' | b'.' | b'_' | b'~')
}

/// Whether `pattern` matches `path` (path plus `?query`, no fragment).
/// Both are normalised first. An empty pattern matches nothing.
pub fn matches(pattern: &str, path: &str) -> bool {
    if pattern.is_empty() {
        return false;
    }
    let p = normalise(pattern);
    // A literal `*` or `$` in a URL is only matched by `%2A` / `%24` in a pattern.
    let s = normalise(path).replace('*', "%2A").replace('$', "%24");
    let (p, anchored) = match p.strip_suffix('$') {
        Some(rest) => (rest.to_string(), true),
        None => (p, false),
    };
    glob(p.as_bytes(), s.as_bytes(), anchored)
}

/// Wildcard match: `*` any run; without `anchored` a pattern that is
/// exhausted before the path still matches (prefix rule). Each segment
/// between `*`s is found at its leftmost place after the previous one
/// (leftmost leaves the most room for the rest, so this is exact): a
/// pattern without `*` costs its own length, however long the path.
fn glob(p: &[u8], s: &[u8], anchored: bool) -> bool {
    let mut parts = p.split(|&b| b == b'*');
    let first = parts.next().unwrap_or_default();
    if !s.starts_with(first) {
        return false;
    }
    let mut pos = first.len();
    let rest: Vec<&[u8]> = parts.collect();
    let Some((last, middle)) = rest.split_last() else {
        return !anchored || pos == s.len();
    };
    for seg in middle {
        match find(&s[pos..], seg) {
            Some(at) => pos += at + seg.len(),
            None => return false,
        }
    }
    if anchored {
        s.len() >= pos + last.len() && s.ends_with(last)
    } else {
        find(&s[pos..], last).is_some()
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The path plus `?query` of a URL string, without the fragment; `/` when empty.
/// Accepts absolute URLs and bare paths.
pub fn path_of(url: &str) -> String {
    let no_frag = url.split('#').next().unwrap_or("");
    let rest = match no_frag.find("://") {
        Some(i) => {
            let after = &no_frag[i + 3..];
            match after.find(['/', '?']) {
                Some(j) => &after[j..],
                None => "",
            }
        }
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

/// Length of a pattern in octets as written (RFC 9309 longest match).
pub fn specificity(pattern: &str) -> usize {
    normalise(pattern).len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_and_wildcards_match_like_robots_txt() {
        assert!(matches("/", "/a"));
        assert!(matches("/example/", "/example/page.html"));
        assert!(!matches("/example/", "/exam"));
        assert!(matches("*.gif$", "/img/a.gif"));
        assert!(!matches("*.gif$", "/img/a.gif?x=1"));
        assert!(matches("/a/*/c", "/a/b/b/c"));
        assert!(matches("*.html", "/post.html"));
        assert!(!matches("*.html", "/post"));
        assert!(!matches("", "/anything"));
    }

    #[test]
    fn wildcards_runs_and_anchors_agree_with_the_rfc_examples() {
        assert!(matches("/a**b$", "/ab"));
        assert!(matches("/a*b*c", "/a-b-b-c-d"));
        assert!(!matches("/a*b*c$", "/a-b-c-d"));
        assert!(matches("*", "/x"));
        assert!(matches("/x$", "/x"));
        assert!(!matches("/x$", "/xy"));
        assert!(matches("/*/*/z$", "/a/b/z"));
        assert!(!matches("/*/*/z$", "/a/z"));
    }

    /// The fuzzer's `robots` target timed out on an 8 KB rule checked
    /// against an 8 KB path (state sets: pattern × path work); a rule
    /// without `*` now costs its own length.
    #[test]
    fn long_rules_against_long_paths_match_in_linear_time() {
        let long = format!("/x/{}", "a".repeat(64 * 1024));
        let started = std::time::Instant::now();
        for _ in 0..20 {
            assert!(matches(&long, &long));
            assert!(!matches(&format!("{long}b"), &long));
            assert!(matches(&format!("{long}$"), &long));
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
    }

    #[test]
    fn unreserved_escapes_are_decoded_before_matching() {
        assert!(matches("/foo/bar/%62%61%7A", "/foo/bar/baz"));
        assert!(matches("/path/foo-%24", "/path/foo-$"));
        assert!(matches("/x/%e3%83%84", "/x/ツ"));
    }

    #[test]
    fn paths_are_taken_from_urls_without_fragments() {
        assert_eq!(path_of("https://h.example/a?b=1#f"), "/a?b=1");
        assert_eq!(path_of("https://h.example"), "/");
        assert_eq!(path_of("https://h.example?q"), "/?q");
        assert_eq!(path_of("/p#x"), "/p");
    }
}
