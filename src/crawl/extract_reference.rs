//! The selector-based extraction this module replaced (one `Html::select`
//! per field, a string per line): kept for tests only, as the reference the
//! one-pass [`super::extract_doc`] must equal on every document.

use scraper::{ElementRef, Html, Node, Selector};
use sha2::{Digest, Sha256};
use url::Url;

use super::{
    BLOCKS, BOILERPLATE, BOILERPLATE_ROLES, Extracted, Link, NOSNIPPET_CLOSE, NOSNIPPET_OPEN,
    clean, has_token, ld_text,
};

/// A selector parsed once per call site (not once per page).
macro_rules! sel {
    ($s:literal) => {{
        static S: std::sync::LazyLock<Selector> =
            std::sync::LazyLock::new(|| Selector::parse($s).expect("static selector parses"));
        &*S
    }};
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
            n.eq_ignore_ascii_case("robots")
                || n.eq_ignore_ascii_case(crate::crawl::robots::PRODUCT_TOKEN)
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
