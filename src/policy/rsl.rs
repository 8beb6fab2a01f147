//! RSL 1.0 — Really Simple Licensing (signals.md §6.2, `INDUSTRY`).
//!
//! The XML is read with the HTML5 tree builder of `scraper` in fragment
//! mode: it never resolves DTDs or external entities, tolerates malformed
//! markup, and lower-cases element names. Only the elements Byline needs
//! are read: `content[url][server]`, `license`, `permits`, `prohibits`,
//! `payment[type]`.

use scraper::{ElementRef, Html, Selector};

use super::evidence::RslTerms;
use crate::crawl::robots::pattern;

/// Spec §6.2: cap the size of an RSL document.
pub const MAX_BYTES: usize = 1 << 20;

/// The media type that makes a `rel=license` link RSL rather than a licence URL.
pub const MEDIA_TYPE: &str = "application/rsl+xml";

/// Parses an RSL document and returns the terms of the first `<content>`
/// whose `url` matches `page_url` (a full URL prefix, or a path pattern
/// matched as robots.txt does). `Err` when the document is not RSL.
pub fn terms_for(xml: &str, page_url: &str) -> Result<Option<RslTerms>, String> {
    if xml.len() > MAX_BYTES {
        return Err(format!(
            "rsl.invalid: document is {} bytes, the limit is {MAX_BYTES}",
            xml.len()
        ));
    }
    if !xml.to_ascii_lowercase().contains("<rsl") {
        return Err("rsl.invalid: no <rsl> root element".into());
    }
    let doc = Html::parse_fragment(xml);
    let content_sel = Selector::parse("content").expect("static selector");
    let path = pattern::path_of(page_url);
    for content in doc.select(&content_sel) {
        let Some(url) = content.value().attr("url") else {
            continue;
        };
        let hit = if url.contains("://") {
            // A full URL: compare origins, then the path part as a pattern.
            let origin_of = |u: &str| -> String {
                let after = u.split_once("://").map(|(_, r)| r).unwrap_or(u);
                after
                    .split(['/', '?', '#'])
                    .next()
                    .unwrap_or("")
                    .to_ascii_lowercase()
            };
            origin_of(url) == origin_of(page_url)
                && pattern::rule_matches(&pattern::path_of(url), &path)
        } else {
            pattern::rule_matches(url, &path)
        };
        if !hit {
            continue;
        }
        return Ok(Some(read_terms(content, url)));
    }
    Ok(None)
}

fn tokens(el: ElementRef<'_>) -> Vec<String> {
    el.text()
        .collect::<String>()
        .split([' ', ',', '\n', '\t'])
        .filter(|t| !t.is_empty())
        .map(|t| t.to_ascii_lowercase())
        .collect()
}

fn read_terms(content: ElementRef<'_>, url: &str) -> RslTerms {
    let sel = |s: &str| Selector::parse(s).expect("static selector");
    let mut terms = RslTerms {
        content_url: url.to_string(),
        server: content.value().attr("server").map(str::to_string),
        ..RslTerms::default()
    };
    for p in content.select(&sel("permits")) {
        if p.value().attr("type").is_none_or(|t| t == "usage") {
            terms.permits.extend(tokens(p));
        }
    }
    for p in content.select(&sel("prohibits")) {
        if p.value().attr("type").is_none_or(|t| t == "usage") {
            terms.prohibits.extend(tokens(p));
        }
    }
    if let Some(pay) = content.select(&sel("payment")).next() {
        terms.payment = Some(pay.value().attr("type").unwrap_or("purchase").to_string());
    }
    terms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_matching_content_gives_the_terms() {
        let xml = r#"<rsl xmlns="https://rslstandard.org/rsl">
          <content url="/premium/*" server="https://rsl.example/api"><license><permits type="usage">ai-input</permits><payment type="purchase"/></license></content>
          <content url="/"><license><permits type="usage">search</permits><prohibits type="usage">ai-train</prohibits></license></content>
        </rsl>"#;
        let t = terms_for(xml, "https://s.example/premium/a")
            .unwrap()
            .unwrap();
        assert_eq!(t.server.as_deref(), Some("https://rsl.example/api"));
        assert_eq!(t.permits, vec!["ai-input"]);
        let t = terms_for(xml, "https://s.example/blog").unwrap().unwrap();
        assert_eq!(t.prohibits, vec!["ai-train"]);
        assert_eq!(t.payment, None);
    }

    #[test]
    fn a_non_rsl_document_is_invalid() {
        assert!(terms_for("<html><body>hi</body></html>", "https://s.example/").is_err());
    }
}
