//! Extraction from decoded HTML with `scraper`: the main text without
//! navigation and boilerplate, metadata (title, canonical URL, language,
//! author, dates, site name, meta robots) and outgoing links.
//!
//! Pure: no I/O. Malformed HTML is parsed the way browsers do (html5ever).

use scraper::{ElementRef, Html, Node, Selector};
use sha2::{Digest, Sha256};
use url::Url;

/// Bumped whenever the extracted text for the same HTML may change; stored
/// with every page.
pub const EXTRACTOR_VERSION: &str = "byline-extract/2";

/// Private-use characters that bracket `data-nosnippet` content while the
/// text is assembled; never left in the output.
const NOSNIPPET_OPEN: char = '\u{E000}';
const NOSNIPPET_CLOSE: char = '\u{E001}';

/// Elements whose content is never main text.
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
/// Elements that end a line of text.
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

/// A selector parsed once per call site (not once per page).
macro_rules! sel {
    ($s:literal) => {{
        static S: std::sync::LazyLock<Selector> =
            std::sync::LazyLock::new(|| Selector::parse($s).expect("static selector parses"));
        &*S
    }};
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
pub fn extract_doc(doc: &Html, base: &Url) -> Extracted {
    let meta = |attr: &str, name: &str| -> Option<String> {
        let s: &Selector = match attr {
            "property" => sel!("meta[property]"),
            "itemprop" => sel!("meta[itemprop]"),
            "http-equiv" => sel!("meta[http-equiv]"),
            _ => sel!("meta[name]"),
        };
        doc.select(s)
            .find(|e| {
                e.value()
                    .attr(attr)
                    .is_some_and(|v| v.eq_ignore_ascii_case(name))
            })
            .and_then(|e| e.value().attr("content"))
            .and_then(clean)
    };
    let base = doc
        .select(sel!("base[href]"))
        .next()
        .and_then(|b| base.join(b.value().attr("href")?).ok())
        .unwrap_or_else(|| base.clone());
    let ld = json_ld(doc);
    let ld_str = |k: &str| ld.iter().find_map(|v| ld_text(v.get(k)?));

    let title = doc
        .select(sel!("title"))
        .next()
        .and_then(|t| clean(&t.text().collect::<String>()))
        .or_else(|| meta("property", "og:title"));
    let canonical_url = doc
        .select(sel!("link[rel][href]"))
        .find(|l| has_token(l.value().attr("rel"), "canonical"))
        .and_then(|l| base.join(l.value().attr("href")?).ok())
        .map(|u| u.to_string());
    let language = doc
        .select(sel!("html[lang]"))
        .next()
        .and_then(|h| clean(h.value().attr("lang")?))
        .or_else(|| meta("http-equiv", "content-language"));
    let author = meta("name", "author")
        .or_else(|| meta("property", "article:author"))
        .or_else(|| ld_str("author"))
        .or_else(|| {
            doc.select(sel!("[rel~=author]"))
                .next()
                .and_then(|a| clean(&a.text().collect::<String>()))
        });
    let published_at = meta("property", "article:published_time")
        .or_else(|| meta("itemprop", "datePublished"))
        .or_else(|| meta("name", "date"))
        .or_else(|| meta("name", "dc.date"))
        .or_else(|| ld_str("datePublished"))
        .or_else(|| {
            doc.select(sel!("time[datetime]"))
                .next()
                .and_then(|t| clean(t.value().attr("datetime")?))
        });
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
    let robots: Vec<String> = doc
        .select(sel!("meta[name][content]"))
        .filter(|m| {
            let n = m.value().attr("name").unwrap_or("");
            n.eq_ignore_ascii_case("robots") || n.eq_ignore_ascii_case(super::robots::PRODUCT_TOKEN)
        })
        .filter_map(|m| clean(m.value().attr("content")?))
        .collect();
    let meta_robots = (!robots.is_empty()).then(|| robots.join(", "));
    let page_nofollow = robots.iter().any(|r| {
        r.split(',')
            .any(|t| matches!(t.trim().to_ascii_lowercase().as_str(), "nofollow" | "none"))
    });

    let mut links = Vec::new();
    for a in doc.select(sel!("a[href], area[href]")) {
        let href = a.value().attr("href").unwrap_or("").trim();
        let Ok(url) = base.join(href) else { continue };
        if !matches!(url.scheme(), "http" | "https") {
            continue;
        }
        let rel = a.value().attr("rel").map(str::to_string);
        let nofollow = page_nofollow || has_token(rel.as_deref(), "nofollow");
        links.push(Link {
            url,
            text: clean(&a.text().collect::<String>()).unwrap_or_default(),
            rel,
            nofollow,
        });
    }

    let (text, nosnippet_spans) = main_text(doc);
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

fn has_token(list: Option<&str>, token: &str) -> bool {
    list.is_some_and(|l| {
        l.split_ascii_whitespace()
            .any(|t| t.eq_ignore_ascii_case(token))
    })
}

/// The main text: from `<main>` (or the only `<article>`, or `<body>`),
/// skipping boilerplate elements, one line per block; with the byte spans
/// that came from `data-nosnippet` elements.
fn main_text(doc: &Html) -> (String, Vec<(usize, usize)>) {
    let root = doc
        .select(sel!("main, [role=main]"))
        .next()
        .or_else(|| {
            let arts: Vec<_> = doc.select(sel!("article")).collect();
            (arts.len() == 1).then(|| arts[0])
        })
        .or_else(|| doc.select(sel!("body")).next())
        .unwrap_or_else(|| doc.root_element());
    let mut out = String::new();
    walk(root, &mut out);
    let lines: Vec<String> = out.lines().filter_map(clean).collect();
    strip_nosnippet_marks(&lines)
}

/// Joins cleaned lines with `\n`, removing the `data-nosnippet` marks and
/// recording the byte span each marked run covers. Spaces next to a removed
/// mark are collapsed so the text equals what it would be without marks;
/// lines left empty are dropped; spans never start or end with a space.
fn strip_nosnippet_marks(lines: &[String]) -> (String, Vec<(usize, usize)>) {
    let mut text = String::new();
    let mut spans = Vec::new();
    let mut depth = 0usize;
    let mut start = 0usize;
    for line in lines {
        let line_start = text.len();
        if !text.is_empty() {
            text.push('\n');
        }
        let content_start = text.len();
        if depth > 0 {
            // A marked element spanning lines continues here.
            start = content_start;
        }
        for c in line.chars() {
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
                ' ' if text.len() == content_start || text.ends_with(' ') => {}
                c => text.push(c),
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
        while a < b && matches!(bytes[a], b' ' | b'\n') {
            a += 1;
        }
        while b > a && matches!(bytes[b - 1], b' ' | b'\n') {
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
/// overflow the thread's stack.
fn walk(root: ElementRef<'_>, out: &mut String) {
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
            Node::Text(t) => out.extend(
                t.chars()
                    .filter(|&c| c != NOSNIPPET_OPEN && c != NOSNIPPET_CLOSE),
            ),
            Node::Element(e) => {
                let name = e.name();
                if BOILERPLATE.contains(&name)
                    || e.attr("role")
                        .is_some_and(|r| BOILERPLATE_ROLES.contains(&r))
                    || e.attr("hidden").is_some()
                    || e.attr("aria-hidden") == Some("true")
                {
                    continue;
                }
                let block = BLOCKS.contains(&name);
                let nosnippet = e.attr("data-nosnippet").is_some();
                out.push(if block { '\n' } else { ' ' });
                if nosnippet {
                    out.push(NOSNIPPET_OPEN);
                }
                stack.push(Step::Close(block, nosnippet));
                stack.extend(child.children().rev().map(Step::Visit));
            }
            _ => {}
        }
    }
}

/// Top-level JSON-LD objects (arrays and `@graph` flattened).
fn json_ld(doc: &Html) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for s in doc.select(sel!("script[type]")) {
        if !s
            .value()
            .attr("type")
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
