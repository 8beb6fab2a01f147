//! Evidence from one page's response: headers (`X-Robots-Tag`,
//! `tdm-reservation`/`tdm-policy`, `Content-Usage`, `Link rel=license`) and
//! HTML (`<meta>` robots/our token/AI agents, TDMRep meta, licence links,
//! JSON-LD, Dublin Core, CC RDFa, copyright and reservation text), read with
//! `scraper`. Pure: the crawler hands over what it fetched.

use scraper::{ElementRef, Html, Node};

use super::evidence::{Evidence, LicenceFinding, Location, Observation, Scope, StatusLabel};
use super::{agents, aipref, directives, licence, rsl, tdmrep};

fn header_values<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// All evidence of one page. `html` is `None` for non-HTML responses.
pub fn page_signals(
    page_url: &str,
    headers: &[(String, String)],
    html: Option<&str>,
) -> Vec<Evidence> {
    page_signals_with(page_url, headers, html, None)
}

/// [`page_signals`] with the HTML's rows already read by [`html_rows`]
/// from a document parsed once for everything (`html_rows` is used
/// instead of parsing `html` again when both are given).
pub fn page_signals_with(
    page_url: &str,
    headers: &[(String, String)],
    html: Option<&str>,
    html_rows: Option<&[Evidence]>,
) -> Vec<Evidence> {
    let mut out = Vec::new();
    header_signals(headers, &mut out);
    match (html, html_rows) {
        (Some(_), Some(rows)) => out.extend(rows.iter().cloned()),
        (Some(h), None) => html_signals(page_url, &Html::parse_document(h), &mut out),
        (None, _) => {}
    }
    out
}

/// The evidence rows of a parsed HTML page (the HTML part of
/// [`page_signals`]), for a caller that parsed the page once and reads
/// its links and text from the same document.
pub fn html_rows(page_url: &str, doc: &Html) -> Vec<Evidence> {
    let mut out = Vec::new();
    html_signals(page_url, doc, &mut out);
    out
}

fn header_signals(headers: &[(String, String)], out: &mut Vec<Evidence>) {
    // X-Robots-Tag (signals.md §3.1): every header line, every scope.
    let xrt = header_values(headers, "x-robots-tag");
    if xrt.is_empty() {
        out.push(Evidence::new(
            "x-robots-tag",
            StatusLabel::Vendor,
            Location::HttpHeader,
            Scope::Generic,
            "",
            Observation::Absent,
        ));
    }
    for v in xrt {
        for s in directives::parse_header(v) {
            out.push(
                Evidence::new(
                    "x-robots-tag",
                    StatusLabel::Vendor,
                    Location::HttpHeader,
                    s.scope,
                    v,
                    Observation::Directives(s.directives),
                )
                .with_errors(s.errors),
            );
        }
    }

    // TDMRep headers (signals.md §4.2 item 2).
    let res = header_values(headers, "tdm-reservation");
    let pol = header_values(headers, "tdm-policy");
    match res.last() {
        None => out.push(Evidence::new(
            "tdmrep.header",
            StatusLabel::CgFinal,
            Location::HttpHeader,
            Scope::Generic,
            "",
            Observation::Absent,
        )),
        Some(v) => {
            let (reservation, errors) = match tdmrep::parse_reservation(v) {
                Ok(r) => (Some(r), Vec::new()),
                Err(e) => (None, vec![e]),
            };
            out.push(
                Evidence::new(
                    "tdmrep.header",
                    StatusLabel::CgFinal,
                    Location::HttpHeader,
                    Scope::Generic,
                    &format!("tdm-reservation: {v}"),
                    Observation::Tdmrep {
                        reservation,
                        policy: pol.last().map(|p| p.trim().to_string()),
                        matched_location: None,
                    },
                )
                .with_errors(errors),
            );
        }
    }

    // Content-Usage (AIPREF attach-05 §5.3): field lines combine with commas.
    let cu = header_values(headers, "content-usage");
    if cu.is_empty() {
        out.push(Evidence::new(
            "content-usage.header",
            StatusLabel::Draft,
            Location::HttpHeader,
            Scope::Generic,
            "",
            Observation::Absent,
        ));
    } else {
        let joined = cu.join(", ");
        let (prefs, errors) = aipref::parse_content_usage(&joined);
        out.push(
            Evidence::new(
                "content-usage.header",
                StatusLabel::Draft,
                Location::HttpHeader,
                Scope::Generic,
                &joined,
                Observation::Aipref { prefs, path: None },
            )
            .with_errors(errors),
        );
    }

    // Link: <...>; rel="license" (L3, RFC 8288) — RSL when typed so.
    for v in header_values(headers, "link") {
        for link in v.split(',') {
            let Some((target, params)) = link.trim().split_once(';') else {
                continue;
            };
            let target = target.trim().trim_start_matches('<').trim_end_matches('>');
            let params_l = params.to_ascii_lowercase();
            let rel_license = params_l
                .split(';')
                .filter_map(|p| p.trim().strip_prefix("rel="))
                .any(|r| {
                    r.trim_matches('"')
                        .split_whitespace()
                        .any(|t| t == "license")
                });
            if !rel_license {
                continue;
            }
            if params_l.contains(rsl::MEDIA_TYPE) {
                out.push(Evidence::new(
                    "rsl.link",
                    StatusLabel::Industry,
                    Location::HttpHeader,
                    Scope::Generic,
                    link.trim(),
                    Observation::RslLink { url: target.into() },
                ));
            } else if let Some(f) = finding(target, "L3", 1, "link-header", "page") {
                out.push(licence_row(Location::HttpHeader, link.trim(), f));
            }
        }
    }
}

fn finding(url: &str, source: &str, rank: u8, method: &str, scope: &str) -> Option<LicenceFinding> {
    let r = licence::recognise_url(url)?;
    Some(LicenceFinding {
        spdx: r.spdx,
        family: r.family,
        jurisdiction: r.jurisdiction,
        kind: r.kind,
        flags: r.flags,
        source: source.into(),
        rank,
        method: method.into(),
        confidence: "machine".into(),
        url: Some(url.into()),
        scope: scope.into(),
    })
}

fn licence_row(location: Location, raw: &str, f: LicenceFinding) -> Evidence {
    let label = match f.method.as_str() {
        "jsonld" => StatusLabel::Vendor,
        "text" | "dublin-core" | "rdfa" | "meta" => StatusLabel::Ours,
        _ => StatusLabel::Standard,
    };
    Evidence::new(
        "licence",
        label,
        location,
        Scope::Generic,
        raw,
        Observation::Licence(f),
    )
}

fn has_ancestor(el: ElementRef<'_>, names: &[&str]) -> bool {
    el.ancestors()
        .filter_map(ElementRef::wrap)
        .any(|a| names.contains(&a.value().name()))
}

fn rel_tokens(el: ElementRef<'_>) -> Vec<String> {
    el.value()
        .attr("rel")
        .unwrap_or("")
        .split_ascii_whitespace()
        .map(|t| t.to_ascii_lowercase())
        .collect()
}

/// The elements [`html_signals`] reads, found in one pass over the
/// document's nodes in the order `Html::select` visits them (node creation
/// order, elements with a parent), each list as the selector in its comment
/// would return it.
struct PageScan<'a> {
    /// `meta[name]`.
    metas_named: Vec<ElementRef<'a>>,
    /// `meta[content]`.
    metas_content: Vec<ElementRef<'a>>,
    /// `link[rel], a[rel], area[rel]`.
    rel_links: Vec<ElementRef<'a>>,
    /// `script[type]`.
    scripts: Vec<ElementRef<'a>>,
    /// The first `title`.
    title: Option<ElementRef<'a>>,
    /// The first `body`.
    body: Option<ElementRef<'a>>,
}

impl<'a> PageScan<'a> {
    fn of(doc: &'a Html) -> PageScan<'a> {
        let mut s = PageScan {
            metas_named: Vec::new(),
            metas_content: Vec::new(),
            rel_links: Vec::new(),
            scripts: Vec::new(),
            title: None,
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
            match e.name() {
                "meta" => {
                    if e.attr("name").is_some() {
                        s.metas_named.push(el);
                    }
                    if e.attr("content").is_some() {
                        s.metas_content.push(el);
                    }
                }
                "link" | "a" | "area" => {
                    if e.attr("rel").is_some() {
                        s.rel_links.push(el);
                    }
                }
                "script" => {
                    if e.attr("type").is_some() {
                        s.scripts.push(el);
                    }
                }
                "title" => {
                    if s.title.is_none() {
                        s.title = Some(el);
                    }
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

fn html_signals(page_url: &str, doc: &Html, out: &mut Vec<Evidence>) {
    // <meta name=robots|bylinebot|<AI agent>|googlebot|bingbot> (signals.md §3.1, §3.3).
    let mut saw_meta = false;
    let mut tdm_meta: Option<(String, Option<String>)> = None;
    let mut tdm_policy: Option<String> = None;
    let scan = PageScan::of(doc);
    for &m in &scan.metas_named {
        let name = m
            .value()
            .attr("name")
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let content = m.value().attr("content").unwrap_or("");
        let in_head = has_ancestor(m, &["head"]);
        let robots_like = name == "robots"
            || directives::OUR_NAMES.contains(&name.as_str())
            || agents::agents().lookup(&name).is_some()
            || matches!(name.as_str(), "googlebot" | "bingbot" | "googlebot-news");
        if robots_like {
            saw_meta = true;
            let s = directives::parse_meta(&name, content);
            let raw = format!("<meta name=\"{name}\" content=\"{content}\">");
            let loc = if in_head {
                Location::HtmlMeta
            } else {
                Location::HtmlBody
            };
            out.push(
                Evidence::new(
                    "meta-robots",
                    StatusLabel::Vendor,
                    loc,
                    s.scope,
                    &raw,
                    Observation::Directives(s.directives),
                )
                .with_errors(s.errors),
            );
        }
        match name.as_str() {
            "tdm-reservation" => tdm_meta = Some((content.to_string(), None)),
            "tdm-policy" => tdm_policy = Some(content.trim().to_string()),
            "dc.rights" | "dcterms.license" | "dcterms.rights" | "dc.license" => {
                let f = finding(content.trim(), "L5", 3, "dublin-core", "page");
                match f {
                    Some(f) => out.push(licence_row(
                        Location::HtmlMeta,
                        &format!("<meta name=\"{name}\" content=\"{content}\">"),
                        f,
                    )),
                    None => text_licence(content, "L5", 3, "dublin-core", Location::HtmlMeta, out),
                }
            }
            "copyright" | "rights" | "license" => {
                match finding(content.trim(), "L7", 5, "meta", "page") {
                    Some(f) => out.push(licence_row(Location::HtmlMeta, content, f)),
                    None => text_licence(content, "L7", 5, "meta", Location::HtmlMeta, out),
                }
            }
            _ => {}
        }
    }
    if !saw_meta {
        out.push(Evidence::new(
            "meta-robots",
            StatusLabel::Vendor,
            Location::HtmlMeta,
            Scope::Generic,
            "",
            Observation::Absent,
        ));
    }

    // TDMRep meta (signals.md §4.2 item 3).
    match tdm_meta {
        None => out.push(Evidence::new(
            "tdmrep.meta",
            StatusLabel::CgFinal,
            Location::HtmlMeta,
            Scope::Generic,
            "",
            Observation::Absent,
        )),
        Some((v, _)) => {
            let (reservation, errors) = match tdmrep::parse_reservation(&v) {
                Ok(r) => (Some(r), Vec::new()),
                Err(e) => (None, vec![e]),
            };
            out.push(
                Evidence::new(
                    "tdmrep.meta",
                    StatusLabel::CgFinal,
                    Location::HtmlMeta,
                    Scope::Generic,
                    &format!("<meta name=\"tdm-reservation\" content=\"{v}\">"),
                    Observation::Tdmrep {
                        reservation,
                        policy: tdm_policy,
                        matched_location: None,
                    },
                )
                .with_errors(errors),
            );
        }
    }

    // Licence links: <link rel=license> (L1), <a|area rel=license> (L2), CC RDFa (L6).
    let mut licences_found = 0;
    for &el in &scan.rel_links {
        let tokens = rel_tokens(el);
        let Some(href) = el.value().attr("href") else {
            continue;
        };
        let is_license = tokens.iter().any(|t| t == "license");
        let is_rdfa = tokens
            .iter()
            .any(|t| matches!(t.as_str(), "cc:license" | "dct:license" | "dcterms:license"));
        if !is_license && !is_rdfa {
            continue;
        }
        let raw = el.html();
        let is_link = el.value().name() == "link";
        if is_link
            && el
                .value()
                .attr("type")
                .is_some_and(|t| t.eq_ignore_ascii_case(rsl::MEDIA_TYPE))
        {
            // signals.md §7.5 C10: an RSL document, not a CC licence.
            out.push(Evidence::new(
                "rsl.link",
                StatusLabel::Industry,
                Location::HtmlLink,
                Scope::Generic,
                &raw,
                Observation::RslLink {
                    url: resolve(page_url, href),
                },
            ));
            continue;
        }
        let (source, rank, method, scope) = if is_license && is_link {
            ("L1", 1, "link-rel", "page")
        } else if is_license {
            if has_ancestor(el, &["figure", "figcaption"]) {
                ("L2", 2, "a-rel", "media")
            } else if has_ancestor(el, &["footer"]) {
                ("L2", 4, "a-rel", "site")
            } else {
                ("L2", 2, "a-rel", "page")
            }
        } else {
            ("L6", 3, "rdfa", "page")
        };
        if let Some(f) = finding(&resolve(page_url, href), source, rank, method, scope) {
            licences_found += 1;
            out.push(licence_row(Location::HtmlLink, &raw, f));
        }
    }

    // JSON-LD `license` on the main entity (L4).
    for script in &scan.scripts {
        if !script
            .value()
            .attr("type")
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/ld+json"))
        {
            continue;
        }
        let text = script.text().collect::<String>();
        match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(v) => {
                let mut entities = Vec::new();
                collect_entities(&v, &mut entities);
                let with_licence: Vec<&serde_json::Value> = entities
                    .iter()
                    .copied()
                    .filter(|e| e.get("license").is_some())
                    .collect();
                let main: Vec<&serde_json::Value> = with_licence
                    .iter()
                    .copied()
                    .filter(|e| is_main_entity(e, page_url))
                    .collect();
                let chosen = if !main.is_empty() {
                    main
                } else if with_licence.len() == 1 {
                    with_licence
                } else {
                    Vec::new()
                };
                for e in chosen {
                    let url = match &e["license"] {
                        serde_json::Value::String(s) => Some(s.clone()),
                        serde_json::Value::Object(o) => o
                            .get("url")
                            .or_else(|| o.get("@id"))
                            .and_then(|u| u.as_str())
                            .map(str::to_string),
                        _ => None,
                    };
                    if let Some(url) = url
                        && let Some(f) = finding(&url, "L4", 1, "jsonld", "page")
                    {
                        licences_found += 1;
                        out.push(licence_row(Location::Jsonld, &e.to_string(), f));
                    }
                }
            }
            Err(err) => out.push(
                Evidence::new(
                    "licence",
                    StatusLabel::Vendor,
                    Location::Jsonld,
                    Scope::Generic,
                    &text,
                    Observation::Absent,
                )
                .with_errors(vec![format!("json-ld does not parse: {err}")]),
            ),
        }
    }

    attribution(&scan, out);

    // Visible text: CC names (L8), copyright notices, NL reservations (signals.md §7.4).
    // Only text that can be a statement about this page: not the text of
    // links to other pages, navigation, code or quotations.
    let body_text: String = scan.body.map(|b| statement_text(b)).unwrap_or_default();
    // One sweep of the text for the patterns of all three searches.
    let marks = licence::TextMarks::of(&body_text);
    let before = out.len();
    text_licence_in(
        &body_text,
        Some(&marks),
        "L8",
        6,
        "text",
        Location::BodyText,
        out,
    );
    licences_found += out.len() - before;
    if licences_found == 0 {
        out.push(Evidence::new(
            "licence",
            StatusLabel::Ours,
            Location::BodyText,
            Scope::Generic,
            "",
            Observation::Absent,
        ));
    }
    if let Some(n) = licence::copyright_notice_in(&body_text, &marks) {
        out.push(Evidence::new(
            "copyright-notice",
            StatusLabel::Ours,
            Location::BodyText,
            Scope::Generic,
            &n,
            Observation::CopyrightNotice { text: n.clone() },
        ));
    }
    if let Some(s) = licence::nl_reservation_in(&body_text, &marks) {
        out.push(Evidence::new(
            "nl-reservation",
            StatusLabel::Ours,
            Location::BodyText,
            Scope::Generic,
            &s,
            Observation::NlReservation { text: s.clone() },
        ));
    }
}

/// Title, author and site name for the attribution record (signals.md §7.1: `author`,
/// `creator`, `name`/`headline` in JSON-LD; `<meta name=author>`, `DC.creator`,
/// `og:title`, `<title>`).
fn attribution(scan: &PageScan<'_>, out: &mut Vec<Evidence>) {
    let meta = |names: &[&str]| -> Option<String> {
        scan.metas_content.iter().find_map(|m| {
            let key = m
                .value()
                .attr("name")
                .or_else(|| m.value().attr("property"))?
                .to_ascii_lowercase();
            names
                .contains(&key.as_str())
                .then(|| m.value().attr("content").unwrap_or("").trim().to_string())
                .filter(|s| !s.is_empty())
        })
    };
    let mut author = meta(&["author", "dc.creator", "dcterms.creator", "article:author"]);
    let mut title = meta(&["og:title", "dc.title", "dcterms.title"]);
    for script in &scan.scripts {
        if !script
            .value()
            .attr("type")
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/ld+json"))
        {
            continue;
        }
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&script.text().collect::<String>())
        else {
            continue;
        };
        let mut entities = Vec::new();
        collect_entities(&v, &mut entities);
        for e in entities {
            if author.is_none() {
                author = ["author", "creator"].iter().find_map(|k| match e.get(*k)? {
                    serde_json::Value::String(s) => Some(s.clone()),
                    serde_json::Value::Object(o) => o.get("name")?.as_str().map(str::to_string),
                    serde_json::Value::Array(a) => a
                        .first()
                        .and_then(|x| x.get("name").or(Some(x)))
                        .and_then(|n| n.as_str())
                        .map(str::to_string),
                    _ => None,
                });
            }
            if title.is_none() {
                title = ["headline", "name"]
                    .iter()
                    .find_map(|k| e.get(*k)?.as_str().map(str::to_string));
            }
        }
    }
    if title.is_none() {
        title = scan
            .title
            .map(|t| t.text().collect::<String>().trim().to_string())
            .filter(|s| !s.is_empty());
    }
    let site_name = meta(&["og:site_name"]);
    let raw = format!(
        "title={} author={}",
        title.as_deref().unwrap_or("-"),
        author.as_deref().unwrap_or("-")
    );
    out.push(Evidence::new(
        "attribution",
        StatusLabel::Ours,
        Location::HtmlMeta,
        Scope::Generic,
        &raw,
        Observation::Attribution {
            title,
            author,
            site_name,
        },
    ));
}

fn text_licence(
    text: &str,
    source: &str,
    rank: u8,
    method: &str,
    loc: Location,
    out: &mut Vec<Evidence>,
) {
    text_licence_in(text, None, source, rank, method, loc, out)
}

/// [`text_licence`] with the marks of `text` if they were already found.
fn text_licence_in(
    text: &str,
    marks: Option<&licence::TextMarks>,
    source: &str,
    rank: u8,
    method: &str,
    loc: Location,
    out: &mut Vec<Evidence>,
) {
    let found = match marks {
        Some(m) => licence::recognise_text_in(text, m),
        None => licence::recognise_text(text),
    };
    if let Some((r, found)) = found {
        let f = LicenceFinding {
            spdx: r.spdx,
            family: r.family,
            jurisdiction: r.jurisdiction,
            kind: r.kind,
            flags: r.flags,
            source: source.into(),
            rank,
            method: method.into(),
            confidence: "text".into(),
            url: None,
            scope: if source == "L8" {
                "site".into()
            } else {
                "page".into()
            },
        };
        out.push(licence_row(loc, &found, f));
    }
}

/// The text under `body` that can state something about this page (its
/// licence, a copyright notice, a reservation), one text node per line:
/// visible text without navigation, code (`code`, `pre`, `kbd`, `samp`,
/// `var`), quotations (`blockquote`, `q`) and the text of links to anything
/// but a licence deed ("CC0" as the title of a linked page names that page,
/// it grants nothing here). One pass with an explicit stack.
fn statement_text(body: ElementRef<'_>) -> String {
    let mut s = String::new();
    let skipped = |n: &Node| {
        n.as_element().is_some_and(|e| match e.name() {
            "script" | "style" | "noscript" | "template" | "nav" | "code" | "pre" | "kbd"
            | "samp" | "var" | "blockquote" | "q" => true,
            "a" => e
                .attr("href")
                .is_none_or(|h| licence::recognise_url(h.trim()).is_none()),
            _ => false,
        })
    };
    let mut stack: Vec<_> = body.children().rev().collect();
    while let Some(node) = stack.pop() {
        if let Some(t) = node.value().as_text() {
            s.push_str(t);
            s.push('\n');
        } else if !skipped(node.value()) {
            stack.extend(node.children().rev());
        }
    }
    s
}

fn collect_entities<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a serde_json::Value>) {
    match v {
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_entities(x, out)),
        serde_json::Value::Object(o) => {
            out.push(v);
            if let Some(g) = o.get("@graph") {
                collect_entities(g, out);
            }
        }
        _ => {}
    }
}

fn same_page(a: &str, b: &str) -> bool {
    let n = |s: &str| {
        s.split('#')
            .next()
            .unwrap_or("")
            .trim_end_matches('/')
            .to_string()
    };
    n(a) == n(b)
}

fn is_main_entity(e: &serde_json::Value, page_url: &str) -> bool {
    ["url", "@id", "mainEntityOfPage"]
        .iter()
        .any(|k| match e.get(*k) {
            Some(serde_json::Value::String(s)) => same_page(s, page_url),
            Some(serde_json::Value::Object(o)) => o
                .get("@id")
                .or_else(|| o.get("url"))
                .and_then(|s| s.as_str())
                .is_some_and(|s| same_page(s, page_url)),
            _ => false,
        })
}

/// Resolves `href` against the page URL (absolute, root-relative or relative).
fn resolve(page_url: &str, href: &str) -> String {
    match url::Url::parse(page_url).and_then(|b| b.join(href)) {
        Ok(u) => u.to_string(),
        Err(_) => href.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one-pass scan holds exactly the elements the selectors it
    /// replaced return, in the same order, on markup where tree order and
    /// node creation order differ (foster parenting, re-opened formatting
    /// elements, templates, SVG, several bodies and titles).
    #[test]
    fn page_scan_lists_what_the_selectors_return() {
        let sel = |s: &str| scraper::Selector::parse(s).unwrap();
        let docs = [
            "<table><a rel=license href=/f>f</a><tr><td><meta name=x content=y></td></tr></table>",
            "<p><b><a rel=license href=/y>x<p>y</a></b><area rel=x>",
            "<svg><a rel=license href=/s>s</a><title>svg</title><script type=x></script></svg>",
            "<template><meta name=author content=t><link rel=license href=/t></template><title>T</title>",
            "<head><meta content=only><meta name=n><meta name=n content=c><link rel=a>\
             <link href=b><script>x</script><script type=application/ld+json>{}</script></head>\
             <body><a href=/a>no rel</a><a rel=''>empty</a></body><body id=second>",
            "<frameset></frameset><body>late body",
            "<table><title>t1</title><tr><td>x</table><title>t2</title>",
            "",
        ];
        for html in docs {
            let doc = Html::parse_document(html);
            let scan = PageScan::of(&doc);
            let ids = |v: &[ElementRef<'_>]| v.iter().map(|e| e.id()).collect::<Vec<_>>();
            let sel_ids = |s: &str| doc.select(&sel(s)).map(|e| e.id()).collect::<Vec<_>>();
            assert_eq!(ids(&scan.metas_named), sel_ids("meta[name]"), "{html}");
            assert_eq!(ids(&scan.metas_content), sel_ids("meta[content]"), "{html}");
            assert_eq!(
                ids(&scan.rel_links),
                sel_ids("link[rel], a[rel], area[rel]"),
                "{html}"
            );
            assert_eq!(ids(&scan.scripts), sel_ids("script[type]"), "{html}");
            assert_eq!(
                scan.title.map(|e| e.id()),
                sel_ids("title").first().copied()
            );
            assert_eq!(scan.body.map(|e| e.id()), sel_ids("body").first().copied());
        }
    }
}
