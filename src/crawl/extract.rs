//! Extraction from decoded HTML with `scraper`: the main text without
//! navigation and boilerplate, metadata (title, canonical URL, language,
//! author, dates, site name, meta robots) and outgoing links.
//!
//! Pure: no I/O. Malformed HTML is parsed the way browsers do (html5ever).

use scraper::{ElementRef, Html, Node};
use sha2::{Digest, Sha256};
use url::Url;

/// Bumped whenever the extracted text for the same HTML may change; stored
/// with every page.
pub const EXTRACTOR_VERSION: &str = "byline-extract/2";

/// Private-use characters that bracket `data-nosnippet` content while the
/// text is assembled; never left in the output.
const NOSNIPPET_OPEN: char = '\u{E000}';
const NOSNIPPET_CLOSE: char = '\u{E001}';

/// Elements whose content is never main text ([`element_kind`] matches
/// these names; the list stays for the tests that hold it to them).
#[cfg(test)]
const BOILERPLATE: &[&str] = &[
    "nav", "header", "footer", "aside", "script", "style", "noscript", "template", "form", "svg",
    "iframe", "button", "select", "head",
];
/// ARIA landmarks that are boilerplate too.
const BOILERPLATE_ROLES: &[&str] = &[
    "navigation",
    "banner",
    "contentinfo",
    "complementary",
    "search",
];
/// Elements that end a line of text (see [`BOILERPLATE`]).
#[cfg(test)]
const BLOCKS: &[&str] = &[
    "p",
    "div",
    "section",
    "article",
    "main",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "li",
    "ul",
    "ol",
    "br",
    "tr",
    "table",
    "blockquote",
    "pre",
    "dd",
    "dt",
    "dl",
    "figcaption",
    "figure",
    "hr",
];

/// One outgoing link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub url: Url,
    pub text: String,
    pub rel: Option<String>,
    /// `rel=nofollow`, or the page's meta robots says nofollow.
    pub nofollow: bool,
}

/// What a page says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extracted {
    pub title: Option<String>,
    pub canonical_url: Option<String>,
    pub language: Option<String>,
    pub author: Option<String>,
    pub published_at: Option<String>,
    pub modified_at: Option<String>,
    pub site_name: Option<String>,
    /// `<meta name="robots">` (and `<meta name="bylinebot">`) content, joined by `, `.
    pub meta_robots: Option<String>,
    pub text: String,
    pub text_sha256: String,
    /// Byte ranges of `text` that came from elements with the
    /// `data-nosnippet` attribute (signals.md §3.1): they may be indexed and used
    /// to find a page, but never quoted. Sorted, non-overlapping.
    pub nosnippet_spans: Vec<(usize, usize)>,
    pub links: Vec<Link>,
}

fn clean(s: &str) -> Option<String> {
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    (!s.is_empty()).then_some(s)
}

/// Extracts everything from one page fetched at `base`.
pub fn extract(html: &str, base: &Url) -> Extracted {
    extract_doc(&Html::parse_document(html), base)
}

/// [`extract`] from a parsed document (parsed once by the caller, who
/// reads its consent signals from the same document).
///
/// One pass over the document's nodes finds every element the fields come
/// from ([`Scan`]); each field is then chosen from those as a selector scan
/// per field would have chosen it (same elements, same order).
pub fn extract_doc(doc: &Html, base: &Url) -> Extracted {
    let scan = Scan::of(doc);
    let meta = |attr: &str, name: &str| -> Option<String> {
        scan.metas
            .iter()
            .find(|e| attr_of(e.value(), attr).is_some_and(|v| v.eq_ignore_ascii_case(name)))
            .and_then(|e| attr_of(e.value(), "content"))
            .and_then(clean)
    };
    let base = scan
        .base_href
        .and_then(|h| base.join(h).ok())
        .unwrap_or_else(|| base.clone());
    let ld = json_ld_of(&scan.scripts);
    let ld_str = |k: &str| ld.iter().find_map(|v| ld_text(v.get(k)?));

    let title = scan
        .title
        .and_then(|t| clean(&t.text().collect::<String>()))
        .or_else(|| meta("property", "og:title"));
    let canonical_url = scan
        .link_rel_href
        .iter()
        .find(|l| has_token(attr_of(l.value(), "rel"), "canonical"))
        .and_then(|l| base.join(attr_of(l.value(), "href")?).ok())
        .map(|u| u.to_string());
    let language = scan
        .html_lang
        .and_then(clean)
        .or_else(|| meta("http-equiv", "content-language"));
    let author = meta("name", "author")
        .or_else(|| meta("property", "article:author"))
        .or_else(|| ld_str("author"))
        .or_else(|| {
            scan.rel_author
                .and_then(|a| clean(&a.text().collect::<String>()))
        });
    let published_at = meta("property", "article:published_time")
        .or_else(|| meta("itemprop", "datePublished"))
        .or_else(|| meta("name", "date"))
        .or_else(|| meta("name", "dc.date"))
        .or_else(|| ld_str("datePublished"))
        .or_else(|| scan.time_datetime.and_then(clean));
    let modified_at = meta("property", "article:modified_time")
        .or_else(|| meta("itemprop", "dateModified"))
        .or_else(|| ld_str("dateModified"));
    let site_name = meta("property", "og:site_name").or_else(|| {
        ld.iter()
            .find_map(|v| ld_text(v.get("publisher")?))
            .or_else(|| {
                ld.iter()
                    .filter(|v| v.get("@type").and_then(|t| t.as_str()) == Some("WebSite"))
                    .find_map(|v| ld_text(v.get("name")?))
            })
    });
    let robots: Vec<String> = scan
        .metas
        .iter()
        .filter_map(|m| {
            let n = attr_of(m.value(), "name")?;
            let content = attr_of(m.value(), "content")?;
            (n.eq_ignore_ascii_case("robots")
                || n.eq_ignore_ascii_case(super::robots::PRODUCT_TOKEN))
            .then(|| clean(content))
            .flatten()
        })
        .collect();
    let meta_robots = (!robots.is_empty()).then(|| robots.join(", "));
    let page_nofollow = robots.iter().any(|r| {
        r.split(',')
            .any(|t| matches!(t.trim().to_ascii_lowercase().as_str(), "nofollow" | "none"))
    });

    let mut links = Vec::with_capacity(scan.anchors.len());
    let mut anchor_text = String::new();
    for a in &scan.anchors {
        let href = attr_of(a.value(), "href").unwrap_or("").trim();
        let Ok(url) = base.join(href) else { continue };
        if !matches!(url.scheme(), "http" | "https") {
            continue;
        }
        let rel = attr_of(a.value(), "rel").map(str::to_string);
        let nofollow = page_nofollow || has_token(rel.as_deref(), "nofollow");
        anchor_text.clear();
        a.text().for_each(|t| anchor_text.push_str(t));
        links.push(Link {
            url,
            text: clean(&anchor_text).unwrap_or_default(),
            rel,
            nofollow,
        });
    }

    let root = scan
        .main
        .or_else(|| (scan.articles == 1).then_some(scan.article).flatten())
        .or(scan.body)
        .unwrap_or_else(|| doc.root_element());
    let (text, nosnippet_spans) = main_text_under(root);
    let text_sha256 = hex::encode(Sha256::digest(text.as_bytes()));
    Extracted {
        title,
        canonical_url,
        language,
        author,
        published_at,
        modified_at,
        site_name,
        meta_robots,
        text,
        text_sha256,
        nosnippet_spans,
        links,
    }
}

/// An attribute in no namespace (what `Element::attr` and a CSS `[name]`
/// selector read), without interning `name`.
fn attr_of<'a>(e: &'a scraper::node::Element, name: &str) -> Option<&'a str> {
    e.attrs
        .iter()
        .find(|(k, _)| k.ns.is_empty() && &*k.local == name)
        .map(|(_, v)| &**v)
}

/// The elements [`extract_doc`] reads, found in one pass over the
/// document's nodes in the order `Html::select` visits them (node creation
/// order, elements with a parent), each list as the selector in its
/// comment would return it.
struct Scan<'a> {
    /// First `base[href]`'s href.
    base_href: Option<&'a str>,
    /// First `title`.
    title: Option<ElementRef<'a>>,
    /// Every `meta`.
    metas: Vec<ElementRef<'a>>,
    /// `link[rel][href]`.
    link_rel_href: Vec<ElementRef<'a>>,
    /// First `html[lang]`'s lang.
    html_lang: Option<&'a str>,
    /// First `[rel~=author]`.
    rel_author: Option<ElementRef<'a>>,
    /// First `time[datetime]`'s datetime.
    time_datetime: Option<&'a str>,
    /// `script[type]`.
    scripts: Vec<ElementRef<'a>>,
    /// `a[href], area[href]`.
    anchors: Vec<ElementRef<'a>>,
    /// First `main, [role=main]`.
    main: Option<ElementRef<'a>>,
    /// First `article`, and how many there are.
    article: Option<ElementRef<'a>>,
    articles: usize,
    /// First `body`.
    body: Option<ElementRef<'a>>,
}

impl<'a> Scan<'a> {
    fn of(doc: &'a Html) -> Scan<'a> {
        let mut s = Scan {
            base_href: None,
            title: None,
            metas: Vec::new(),
            link_rel_href: Vec::new(),
            html_lang: None,
            rel_author: None,
            time_datetime: None,
            scripts: Vec::new(),
            anchors: Vec::new(),
            main: None,
            article: None,
            articles: 0,
            body: None,
        };
        for node in doc.tree.nodes() {
            let Some(el) = ElementRef::wrap(node) else {
                continue;
            };
            if el.parent().is_none() {
                continue;
            }
            let e = el.value();
            // One look at the attributes for `rel` and `role`.
            let (mut rel, mut role) = (None, None);
            for (k, v) in &e.attrs {
                if k.ns.is_empty() {
                    match &*k.local {
                        "rel" => rel = Some(&**v),
                        "role" => role = Some(&**v),
                        _ => {}
                    }
                }
            }
            // `[rel~=author]`: `rel` is matched ASCII-case-insensitively
            // on HTML elements (selectors' list of such attributes).
            if s.rel_author.is_none()
                && let Some(rel) = rel
            {
                let html = &*e.name.ns == "http://www.w3.org/1999/xhtml";
                if rel.split_ascii_whitespace().any(|t| {
                    if html {
                        t.eq_ignore_ascii_case("author")
                    } else {
                        t == "author"
                    }
                }) {
                    s.rel_author = Some(el);
                }
            }
            if s.main.is_none() && role == Some("main") {
                s.main = Some(el);
            }
            match e.name() {
                "base" => {
                    if s.base_href.is_none() {
                        s.base_href = attr_of(e, "href");
                    }
                }
                "title" => {
                    if s.title.is_none() {
                        s.title = Some(el);
                    }
                }
                "meta" => s.metas.push(el),
                "link" => {
                    if rel.is_some() && attr_of(e, "href").is_some() {
                        s.link_rel_href.push(el);
                    }
                }
                "html" => {
                    if s.html_lang.is_none() {
                        s.html_lang = attr_of(e, "lang");
                    }
                }
                "time" => {
                    if s.time_datetime.is_none() {
                        s.time_datetime = attr_of(e, "datetime");
                    }
                }
                "script" => {
                    if attr_of(e, "type").is_some() {
                        s.scripts.push(el);
                    }
                }
                "a" | "area" => {
                    if attr_of(e, "href").is_some() {
                        s.anchors.push(el);
                    }
                }
                "main" => {
                    if s.main.is_none() {
                        s.main = Some(el);
                    }
                }
                "article" => {
                    if s.article.is_none() {
                        s.article = Some(el);
                    }
                    s.articles += 1;
                }
                "body" => {
                    if s.body.is_none() {
                        s.body = Some(el);
                    }
                }
                _ => {}
            }
        }
        s
    }
}

fn has_token(list: Option<&str>, token: &str) -> bool {
    list.is_some_and(|l| {
        l.split_ascii_whitespace()
            .any(|t| t.eq_ignore_ascii_case(token))
    })
}

/// The main text under `root` (`<main>`, or the only `<article>`, or
/// `<body>`), skipping boilerplate elements, one line per block; with the
/// byte spans that came from `data-nosnippet` elements.
fn main_text_under(root: ElementRef<'_>) -> (String, Vec<(usize, usize)>) {
    let mut out = String::new();
    if walk(root, &mut out) {
        strip_nosnippet_marks(&out)
    } else {
        (clean_lines(&out), Vec::new())
    }
}

/// What a character of walked text is to [`clean_lines`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cls {
    Word,
    /// Whitespace other than `\n` (`char::is_whitespace`).
    Space,
    Newline,
}

/// The class and UTF-8 length of the character starting at byte `i` of
/// `s` (a char boundary). Only the lead bytes 0xC2, 0xE1, 0xE2 and 0xE3
/// start non-ASCII whitespace (U+0085, U+00A0, U+1680, U+2000..U+200A,
/// U+2028, U+2029, U+202F, U+205F, U+3000); other non-ASCII characters are
/// words and are stepped over one byte at a time (a continuation byte is
/// never one of those lead bytes).
#[inline]
fn class_at(s: &str, i: usize) -> (Cls, usize) {
    match s.as_bytes().get(i) {
        Some(b'\n') => (Cls::Newline, 1),
        Some(b' ' | b'\t' | b'\x0B' | b'\x0C' | b'\r') => (Cls::Space, 1),
        Some(0xC2 | 0xE1 | 0xE2 | 0xE3) => match s.get(i..).and_then(|t| t.chars().next()) {
            Some(c) if c.is_whitespace() => (Cls::Space, c.len_utf8()),
            _ => (Cls::Word, 1),
        },
        _ => (Cls::Word, 1),
    }
}

/// [`strip_nosnippet_marks`] of text without marks: each line's words
/// joined by one space, lines without words dropped, the rest joined by
/// `\n`; one pass over the bytes, each word copied as one run.
fn clean_lines(walked: &str) -> String {
    /// Bytes that may start whitespace: ASCII whitespace and the four lead
    /// bytes of [`class_at`]; every other byte continues a word.
    static MAY_SPACE: [bool; 256] = {
        let mut t = [false; 256];
        let mut k = 0;
        let bytes = [
            b' ', b'\t', b'\n', b'\x0B', b'\x0C', b'\r', 0xC2, 0xE1, 0xE2, 0xE3,
        ];
        while k < bytes.len() {
            t[bytes[k] as usize] = true;
            k += 1;
        }
        t
    };
    let b = walked.as_bytes();
    let mut text = String::with_capacity(walked.len());
    let mut line_has_word = false;
    let mut i = 0;
    while i < b.len() {
        let (cls, len) = class_at(walked, i);
        i += len;
        match cls {
            Cls::Newline => {
                line_has_word = false;
                continue;
            }
            Cls::Space => continue,
            Cls::Word => {}
        }
        // A word starts at `i - len`: find its end, skipping bytes that
        // cannot start whitespace without looking at them further.
        let start = i - len;
        loop {
            while b.get(i).is_some_and(|&c| !MAY_SPACE[c as usize]) {
                i += 1;
            }
            if i >= b.len() {
                break;
            }
            let (cls, len) = class_at(walked, i);
            if cls != Cls::Word {
                break;
            }
            i += len;
        }
        if line_has_word {
            text.push(' ');
        } else {
            if !text.is_empty() {
                text.push('\n');
            }
            line_has_word = true;
        }
        text.push_str(walked.get(start..i).unwrap_or(""));
    }
    text
}

/// Splits the walked text into lines, each cleaned (words joined by one
/// space, blank lines dropped), and joins them with `\n`, removing the
/// `data-nosnippet` marks and recording the byte span each marked run
/// covers. Spaces next to a removed mark are collapsed so the text equals
/// what it would be without marks; lines left empty are dropped; spans
/// never start or end with a space. One pass, no string per line.
fn strip_nosnippet_marks(walked: &str) -> (String, Vec<(usize, usize)>) {
    let mut text = String::with_capacity(walked.len());
    let mut spans = Vec::new();
    let mut depth = 0usize;
    let mut start = 0usize;
    for raw in walked.split('\n') {
        let mut words = raw.split_whitespace().peekable();
        if words.peek().is_none() {
            continue;
        }
        let line_start = text.len();
        if !text.is_empty() {
            text.push('\n');
        }
        let content_start = text.len();
        if depth > 0 {
            // A marked element spanning lines continues here.
            start = content_start;
        }
        for (k, word) in words.enumerate() {
            if k > 0 && text.len() != content_start && !text.ends_with(' ') {
                text.push(' ');
            }
            if !word.contains([NOSNIPPET_OPEN, NOSNIPPET_CLOSE]) {
                text.push_str(word);
                continue;
            }
            for c in word.chars() {
                match c {
                    NOSNIPPET_OPEN => {
                        if depth == 0 {
                            start = text.len();
                        }
                        depth += 1;
                    }
                    NOSNIPPET_CLOSE => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            spans.push((start, text.len()));
                        }
                    }
                    c => text.push(c),
                }
            }
        }
        if text.ends_with(' ') {
            text.pop();
        }
        if text.len() == content_start {
            text.truncate(line_start);
        }
        if depth > 0 {
            // A marked element spanning lines: close the span at the line end;
            // the next line reopens it.
            spans.push((start.min(text.len()), text.len()));
        }
    }
    // Clamp to the final text, trim spaces and newlines at the edges, drop
    // empty spans, merge touching ones.
    let bytes = text.as_bytes();
    let mut out: Vec<(usize, usize)> = Vec::new();
    for (mut a, mut b) in spans {
        b = b.min(text.len());
        a = a.min(b);
        while a < b && matches!(bytes.get(a), Some(b' ' | b'\n')) {
            a += 1;
        }
        while b > a && matches!(bytes.get(b - 1), Some(b' ' | b'\n')) {
            b -= 1;
        }
        if a == b {
            continue;
        }
        match out.last_mut() {
            Some(last) if a <= last.1 + 1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    (text, out)
}

/// Appends the text under `root` to `out`, block elements on their own
/// lines, `data-nosnippet` runs bracketed by the private-use marks.
/// Iterative (an explicit stack): markup nested a million deep must not
/// overflow the thread's stack. Returns whether any mark was written.
fn walk(root: ElementRef<'_>, out: &mut String) -> bool {
    let mut marked = false;
    enum Step<N> {
        Visit(N),
        /// After an element's children: (block, nosnippet).
        Close(bool, bool),
    }
    let mut stack: Vec<Step<_>> = root.children().rev().map(Step::Visit).collect();
    while let Some(step) = stack.pop() {
        let child = match step {
            Step::Close(block, nosnippet) => {
                if nosnippet {
                    out.push(NOSNIPPET_CLOSE);
                }
                out.push(if block { '\n' } else { ' ' });
                continue;
            }
            Step::Visit(child) => child,
        };
        match child.value() {
            Node::Text(t) => {
                // Both marks' UTF-8 forms start with the byte 0xEE: a text
                // without it (most) is not searched char by char.
                if t.as_bytes().contains(&0xEE) && t.contains([NOSNIPPET_OPEN, NOSNIPPET_CLOSE]) {
                    out.extend(
                        t.chars()
                            .filter(|&c| c != NOSNIPPET_OPEN && c != NOSNIPPET_CLOSE),
                    )
                } else {
                    out.push_str(t)
                }
            }
            Node::Element(e) => {
                let block = match element_kind(e.name()) {
                    Kind::Boilerplate => continue,
                    Kind::Block => true,
                    Kind::Inline => false,
                };
                // One look at the attributes for the four that matter.
                let (mut hidden, mut nosnippet) = (false, false);
                for (k, v) in &e.attrs {
                    if !k.ns.is_empty() {
                        continue;
                    }
                    match &*k.local {
                        "role" => hidden |= BOILERPLATE_ROLES.contains(&&**v),
                        "hidden" => hidden = true,
                        "aria-hidden" => hidden |= &**v == "true",
                        "data-nosnippet" => nosnippet = true,
                        _ => {}
                    }
                }
                if hidden {
                    continue;
                }
                out.push(if block { '\n' } else { ' ' });
                if nosnippet {
                    out.push(NOSNIPPET_OPEN);
                    marked = true;
                }
                stack.push(Step::Close(block, nosnippet));
                stack.extend(child.children().rev().map(Step::Visit));
            }
            _ => {}
        }
    }
    marked
}

/// Whether an element's content is left out of the main text, ends a line,
/// or neither ([`BOILERPLATE`], [`BLOCKS`]): one `match` on the name.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Boilerplate,
    Block,
    Inline,
}

fn element_kind(name: &str) -> Kind {
    match name {
        "nav" | "header" | "footer" | "aside" | "script" | "style" | "noscript" | "template"
        | "form" | "svg" | "iframe" | "button" | "select" | "head" => Kind::Boilerplate,
        "p" | "div" | "section" | "article" | "main" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6"
        | "li" | "ul" | "ol" | "br" | "tr" | "table" | "blockquote" | "pre" | "dd" | "dt"
        | "dl" | "figcaption" | "figure" | "hr" => Kind::Block,
        _ => Kind::Inline,
    }
}

/// Top-level JSON-LD objects (arrays and `@graph` flattened) of the
/// `script[type]` elements.
fn json_ld_of(scripts: &[ElementRef<'_>]) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for s in scripts {
        if !attr_of(s.value(), "type")
            .unwrap_or("")
            .eq_ignore_ascii_case("application/ld+json")
        {
            continue;
        }
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&s.text().collect::<String>()) else {
            continue;
        };
        let mut stack = vec![v];
        while let Some(v) = stack.pop() {
            match v {
                serde_json::Value::Array(a) => stack.extend(a),
                serde_json::Value::Object(mut o) => {
                    if let Some(g) = o.remove("@graph") {
                        stack.push(g);
                    }
                    out.push(serde_json::Value::Object(o));
                }
                _ => {}
            }
        }
    }
    out
}

/// A JSON-LD value as text: a string, or an object's `name`, or the first of an array.
fn ld_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => clean(s),
        serde_json::Value::Object(o) => o.get("name").and_then(ld_text),
        serde_json::Value::Array(a) => a.iter().find_map(ld_text),
        _ => None,
    }
}

#[cfg(test)]
#[path = "extract_reference.rs"]
mod reference;

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"<!doctype html><html lang="en-GB"><head>
<title> Tide pools of the north </title>
<link rel="canonical" href="/articles/tide-pools">
<meta name="author" content="Ada Marsh">
<meta property="og:site_name" content="Coastal Notes">
<script type="application/ld+json">{"@type":"Article","datePublished":"2026-03-04","dateModified":"2026-05-06","author":{"name":"Ignored"}}</script>
</head><body>
<header><a href="/">Home</a></header><nav><a href="/about">About</a></nav>
<main><h1>Tide pools</h1><p>Anemones close when the water leaves.</p>
<p>See <a href="/b">the next page</a> and <a rel="nofollow" href="/c">a sponsor</a>.</p>
<script>var tracking = 1;</script></main>
<aside>Related: nothing</aside><footer>© Coastal Notes</footer></body></html>"#;

    #[test]
    fn main_text_leaves_out_navigation_header_footer_aside_and_scripts() {
        let e = extract(
            PAGE,
            &Url::parse("http://x.test/articles/tide-pools?ref=1").unwrap(),
        );
        assert_eq!(
            e.text,
            "Tide pools\nAnemones close when the water leaves.\nSee the next page and a sponsor ."
        );
        assert!(!e.text.contains("tracking") && !e.text.contains("About") && !e.text.contains("©"));
    }

    #[test]
    fn metadata_comes_from_meta_tags_and_json_ld() {
        let e = extract(
            PAGE,
            &Url::parse("http://x.test/articles/tide-pools").unwrap(),
        );
        assert_eq!(e.title.as_deref(), Some("Tide pools of the north"));
        assert_eq!(
            e.canonical_url.as_deref(),
            Some("http://x.test/articles/tide-pools")
        );
        assert_eq!(e.language.as_deref(), Some("en-GB"));
        assert_eq!(e.author.as_deref(), Some("Ada Marsh"));
        assert_eq!(e.site_name.as_deref(), Some("Coastal Notes"));
        assert_eq!(e.published_at.as_deref(), Some("2026-03-04"));
        assert_eq!(e.modified_at.as_deref(), Some("2026-05-06"));
    }

    #[test]
    fn links_carry_rel_nofollow_and_meta_nofollow() {
        let e = extract(PAGE, &Url::parse("http://x.test/a").unwrap());
        let nf: Vec<_> = e
            .links
            .iter()
            .map(|l| (l.url.path().to_string(), l.nofollow))
            .collect();
        assert_eq!(
            nf,
            [
                ("/".into(), false),
                ("/about".into(), false),
                ("/b".into(), false),
                ("/c".into(), true)
            ]
        );
        let e = extract(
            r#"<meta name="robots" content="noindex, nofollow"><a href="/z">z</a>"#,
            &Url::parse("http://x.test/").unwrap(),
        );
        assert!(e.links[0].nofollow);
        assert_eq!(e.meta_robots.as_deref(), Some("noindex, nofollow"));
    }

    #[test]
    fn data_nosnippet_text_is_kept_and_its_spans_recorded() {
        let html = r#"<html><body><main>
<p>The plate marks the level; <span data-nosnippet>children are  surprised.</span> It is brass.</p>
<div data-nosnippet><p>First hidden line.</p><p>Second <b>hidden</b> line.</p></div>
<p>Visible <span data-nosnippet> </span> end.</p>
<section data-nosnippet>Outer <span data-nosnippet>inner</span> tail.</section>
</main></body></html>"#;
        let x = extract(html, &Url::parse("http://a.test/").unwrap());
        assert_eq!(
            x.text,
            "The plate marks the level; children are surprised. It is brass.\n\
             First hidden line.\nSecond hidden line.\nVisible end.\nOuter inner tail."
        );
        let quoted: Vec<&str> = x
            .nosnippet_spans
            .iter()
            .map(|&(a, b)| &x.text[a..b])
            .collect();
        assert_eq!(
            quoted,
            [
                "children are surprised.",
                "First hidden line.\nSecond hidden line.",
                "Outer inner tail."
            ]
        );
        // Without any marks the text is what it always was and no span exists.
        let plain = extract(
            "<main><p>a <span>b</span> c</p></main>",
            &Url::parse("http://a.test/").unwrap(),
        );
        assert_eq!(plain.text, "a b c");
        assert!(plain.nosnippet_spans.is_empty());
    }

    /// Documents where the tree order, the node creation order and the
    /// selector rules differ: foster-parented and re-opened elements,
    /// templates, SVG, attribute case, several candidates per field,
    /// whitespace of every kind and literal private-use marks.
    const TRICKY: &[&str] = &[
        PAGE,
        "<table><a href=/fostered>f</a><tr><td>cell <a href=/in>in</a></td></tr></table><p>after",
        "<p><b><a href=/y>x<p>y</a></b> tail <i>open",
        "<svg><a href=\"/svg\">s</a><title>svg title</title><a xlink:href=\"/xl\">x</a></svg><title>Doc</title>",
        "<template><a href=/t>t</a><meta name=author content=Tmpl></template><main>in main</main>",
        "<html lang=' fr '><head><base href='http://other.test/dir/'><base href='/ignored/'>\
         <title>One</title><title>Two</title><link REL='Canonical Alternate' href='c'>\
         <META NAME=AUTHOR CONTENT='  Ann   B '><meta name=robots content='NOINDEX'>\
         <meta name=bylinebot content='nofollow'><meta name=robots>\
         <meta property=og:site_name content=Site><meta itemprop=datePublished content=2020>\
         <meta http-equiv=Content-Language content=de></head><body>\
         <a href=rel.html rel='Author'>Writer\u{a0}Name</a><a href=x rel=author>Other</a>\
         <area href='/area' rel=NoFollow><a href='mailto:a@b'>m</a><a href='  /sp  '>sp</a>\
         <time datetime=' 2021-01-01 '>t</time><time datetime=2022>u</time>\
         <article>a1</article><article>a2</article><div role=MAIN>not main</div>\
         <p>Line\r\nbreaks\x0c and\ttabs \u{2003} em</p></body></html>",
        "<body><article><p>only article <span data-nosnippet> hid\u{e000}den </span>\u{e001}</p></article>\
         <div role=main>role main</div><nav>n</nav><main>later main</main></body>",
        "<head><script type='application/ld+json'>{\"@graph\":[{\"@type\":\"WebSite\",\"name\":\"G\"},\
         {\"author\":[{\"name\":\"  J  D \"}],\"datePublished\":\"2019\"}]}</script>\
         <script type='APPLICATION/LD+JSON'>[{\"publisher\":{\"name\":\"Pub\"}},{\"dateModified\":\"2024\"}]</script>\
         <script type=text/javascript>{}</script><script type='application/ld+json'>not json</script></head>\
         <body><p hidden>h</p><p aria-hidden=true>ah</p><p aria-hidden=false>shown</p>\
         <div role=navigation>nav</div><div role=Banner>banner kept</div>\
         <p data-nosnippet></p><p><b data-nosnippet>a</b><b data-nosnippet>b</b> c</p>\
         <ul><li data-nosnippet>one<li>two</ul><br><hr>\u{a0}\u{a0}<pre>  pre  text  </pre></body>",
        "",
        "plain text only",
        "<frameset><frame src=x></frameset>",
        "<math><mi>x</mi><a href=/m>math link</a></math><select><option>o</select><button>b</button>",
        "<body><p>a<span data-nosnippet>\n\n</span>b<div data-nosnippet><div data-nosnippet>x</div></div>",
    ];

    /// A small deterministic generator of messy markup from fragments.
    fn generated(n: usize) -> Vec<String> {
        const PARTS: &[&str] = &[
            "<p>",
            "</p>",
            "<div>",
            "</div>",
            "<span data-nosnippet>",
            "</span>",
            "<main>",
            "</main>",
            "<article>",
            "</article>",
            "<table>",
            "<tr><td>",
            "</td>",
            "</table>",
            "<a href=/l1>",
            "<a href='x y' rel='nofollow Author'>",
            "</a>",
            "<area href=/ar>",
            "<b>",
            "</b>",
            "<i>",
            "<nav>",
            "</nav>",
            "<template>",
            "</template>",
            "<svg>",
            "</svg>",
            "<title>T</title>",
            "<meta name=author content='A  B'>",
            "<meta name=ROBOTS content=none>",
            "<base href=/b/>",
            "<link rel=canonical href=c>",
            "<html lang=en>",
            "<body>",
            "<time datetime=d>",
            "<li>",
            "<br>",
            " word ",
            "\u{a0}",
            "\n",
            "\t",
            "\u{e000}",
            "\u{e001}",
            "text",
            "<script type=application/ld+json>",
            "</script>",
            "{\"name\":\"N\",\"@type\":\"WebSite\"}",
            "<p hidden>",
            "<div role=main>",
            "<header>",
            "</header>",
            "<pre>",
            "<h1>",
            "é",
            "<head>",
            "<!-- c -->",
        ];
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        (0..n)
            .map(|_| {
                let mut doc = String::new();
                for _ in 0..60 {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    doc.push_str(PARTS[(x >> 33) as usize % PARTS.len()]);
                }
                doc
            })
            .collect()
    }

    #[test]
    fn one_pass_extraction_equals_the_selector_reference() {
        let base = Url::parse("http://x.test/dir/page.html?q=1").unwrap();
        let docs: Vec<String> = TRICKY
            .iter()
            .map(|s| s.to_string())
            .chain(generated(400))
            .collect();
        for html in &docs {
            let doc = Html::parse_document(html);
            let want = reference::extract_doc(&doc, &base);
            let got = extract_doc(&doc, &base);
            assert_eq!(got, want, "document: {html:?}");
        }
    }

    /// Every whitespace and non-whitespace character class of
    /// `class_at`'s fast path, and near misses on its lead bytes.
    const SPACES: &[&str] = &[
        " ",
        "\t",
        "\n",
        "\r",
        "\x0B",
        "\x0C",
        "\u{85}",
        "\u{a0}",
        "\u{1680}",
        "\u{2000}",
        "\u{2005}",
        "\u{200a}",
        "\u{2028}",
        "\u{2029}",
        "\u{202f}",
        "\u{205f}",
        "\u{3000}",
        // Not whitespace: zero-width and other characters on the same lead bytes.
        "\u{200b}",
        "\u{180e}",
        "\u{feff}",
        "\u{a9}",
        "\u{84}",
        "\u{1681}",
        "\u{2010}",
        "\u{2030}",
        "\u{3001}",
        "é",
        "x",
        "yz",
        "\u{1f600}",
    ];

    #[test]
    fn class_at_agrees_with_char_is_whitespace_for_every_char() {
        for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
            let s = format!("{c}z");
            let (cls, len) = class_at(&s, 0);
            let want = if c == '\n' {
                Cls::Newline
            } else if c.is_whitespace() {
                Cls::Space
            } else {
                Cls::Word
            };
            assert!(cls == want, "U+{:04X}", c as u32);
            if cls != Cls::Word {
                assert_eq!(len, c.len_utf8(), "U+{:04X}", c as u32);
            }
            // Stepping through a word's bytes never finds a boundary inside it.
            for i in 1..c.len_utf8() {
                assert!(
                    class_at(&s, i).0 == Cls::Word,
                    "U+{:04X} byte {i}",
                    c as u32
                );
            }
        }
    }

    #[test]
    fn clean_lines_equals_strip_nosnippet_marks_without_marks() {
        let mut x: u64 = 7;
        for n in 0..3000 {
            let mut t = String::new();
            for _ in 0..(n % 40) {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                t.push_str(SPACES[(x >> 33) as usize % SPACES.len()]);
            }
            assert_eq!(clean_lines(&t), strip_nosnippet_marks(&t).0, "{t:?}");
            assert!(strip_nosnippet_marks(&t).1.is_empty());
        }
    }

    #[test]
    fn both_marks_start_with_the_byte_walk_looks_for() {
        for m in [NOSNIPPET_OPEN, NOSNIPPET_CLOSE] {
            assert_eq!(m.to_string().as_bytes().first(), Some(&0xEE));
        }
        // Literal marks in the page's text are still dropped.
        let e = extract(
            "<p>a\u{e000}b <span data-nosnippet>c\u{e001}</span> d</p>",
            &Url::parse("http://a.test/").unwrap(),
        );
        assert_eq!(e.text, "ab c d");
        assert_eq!(e.nosnippet_spans, [(3, 4)]);
    }

    #[test]
    fn element_kind_matches_the_name_lists() {
        for n in BOILERPLATE {
            assert_eq!(element_kind(n), Kind::Boilerplate, "{n}");
        }
        for n in BLOCKS {
            assert_eq!(element_kind(n), Kind::Block, "{n}");
        }
        for n in ["a", "span", "b", "NAV", "P", "h7", "", "td", "body", "html"] {
            assert_eq!(element_kind(n), Kind::Inline, "{n}");
        }
    }

    /// The generated documents without `data-nosnippet` (the path without
    /// marks) and with every kind of whitespace in their text.
    #[test]
    fn extraction_without_marks_equals_the_selector_reference() {
        let base = Url::parse("http://x.test/dir/page.html?q=1").unwrap();
        for (k, html) in generated(400).iter().enumerate() {
            let html = html
                .replace("data-nosnippet", "data-x")
                .replace(['\u{e000}', '\u{e001}'], "")
                .replace(" word ", SPACES[k % SPACES.len()])
                .replace("text", &format!("te{}xt", SPACES[(k / 3) % SPACES.len()]));
            let doc = Html::parse_document(&html);
            let want = reference::extract_doc(&doc, &base);
            let got = extract_doc(&doc, &base);
            assert_eq!(got, want, "document: {html:?}");
        }
    }

    /// Markup nested 200,000 deep used to recurse once per level and
    /// overflow the stack (an abort, not even a panic).
    #[test]
    fn deeply_nested_markup_does_not_overflow_the_stack() {
        let depth = 200_000;
        let html = format!(
            "<body><main>{}deep <b data-nosnippet>end</b>{}</main>",
            "<span>".repeat(depth),
            "</span>".repeat(depth)
        );
        let e = extract(&html, &Url::parse("http://x.test/").unwrap());
        assert_eq!(e.text, "deep end");
        assert_eq!(e.nosnippet_spans, [(5, 8)]);
    }

    #[test]
    fn malformed_html_still_yields_text_and_links() {
        let e = extract(
            "<html><body><p>unclosed <b>bold <a href=/x>link<p>second</table></div>",
            &Url::parse("http://x.test/").unwrap(),
        );
        assert!(e.text.contains("unclosed bold link"), "{}", e.text);
        assert!(e.text.contains("second"));
        // Browsers reopen the unclosed <a> inside the next <p> (HTML
        // adoption agency), so html5ever reports the same target twice.
        assert!(!e.links.is_empty() && e.links.iter().all(|l| l.url.path() == "/x"));
    }
}
