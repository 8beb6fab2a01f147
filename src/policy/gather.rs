//! One call that turns everything the crawler fetched for one page into
//! evidence rows, in pipeline order (signals.md §8.1 steps 1–2). Pure.

use super::evidence::{Evidence, RobotsOutcome};
use super::origin::{self, FileFetch};
use super::page;
use crate::crawl::robots::pattern;

/// robots.txt as it governed the page fetch.
#[derive(Debug, Clone)]
pub struct RobotsInput<'a> {
    pub outcome: RobotsOutcome,
    /// HTTP status of the robots.txt fetch, if any.
    pub status: Option<u16>,
    /// The body in force (fresh or cached), when there is one.
    pub body: Option<&'a str>,
    pub from_cache: bool,
    pub cache_age_secs: Option<i64>,
}

/// Everything known about one page.
#[derive(Debug, Clone)]
pub struct PageInputs<'a> {
    pub page_url: &'a str,
    /// Our product token (`BylineBot`).
    pub token: &'a str,
    pub robots: RobotsInput<'a>,
    pub headers: &'a [(String, String)],
    /// The HTML body, when the response was HTML.
    pub html: Option<&'a str>,
    pub tdmrep: Option<&'a FileFetch>,
    pub ai_txt: Option<&'a FileFetch>,
    pub llms_txt: Option<&'a FileFetch>,
    /// RSL documents fetched for this page: (document URL, outcome).
    pub rsl: &'a [(String, FileFetch)],
}

/// Builds the evidence rows of one page. A page robots.txt kept us from
/// fetching gets only the robots row: nothing else is evaluated (§8.1 step 1).
pub fn gather(inp: &PageInputs<'_>) -> Vec<Evidence> {
    gather_with(inp, None)
}

/// [`gather`] with the page's HTML rows already read from a parsed
/// document ([`page::html_rows`]): the same rows in the same order,
/// without parsing `inp.html` again.
pub fn gather_with(inp: &PageInputs<'_>, html_rows: Option<&[Evidence]>) -> Vec<Evidence> {
    let path = pattern::path_of(inp.page_url);
    let explicit_allow = inp
        .robots
        .body
        .is_some_and(|b| origin::explicit_allow(b, inp.token, &path));
    let raw = match inp.robots.status {
        Some(s) => format!("status {s}"),
        None => "no response".into(),
    };
    let mut out = vec![origin::robots_access(
        inp.robots.outcome,
        inp.robots.status,
        explicit_allow,
        inp.robots.from_cache,
        inp.robots.cache_age_secs,
        &raw,
    )];
    if matches!(
        inp.robots.outcome,
        RobotsOutcome::Disallowed | RobotsOutcome::Unreachable
    ) {
        return out;
    }
    if let Some(body) = inp.robots.body {
        out.extend(origin::robots_signals(body, inp.page_url, inp.token));
    }
    if let Some(f) = inp.tdmrep {
        out.push(origin::tdmrep_file(f, inp.page_url));
    }
    if let Some(f) = inp.ai_txt {
        out.push(origin::ai_txt(f, inp.page_url, inp.token));
    }
    if let Some(f) = inp.llms_txt {
        out.push(origin::llms_txt(f));
    }
    out.extend(page::page_signals_with(
        inp.page_url,
        inp.headers,
        inp.html,
        html_rows,
    ));
    for (url, f) in inp.rsl {
        out.push(origin::rsl_document(f, url, inp.page_url));
    }
    out
}

/// The RSL document URLs the evidence points to (robots.txt `License:`,
/// `Link` header, `<link type=application/rsl+xml>`), resolved against the page.
pub fn rsl_links(evidence: &[Evidence], page_url: &str) -> Vec<String> {
    let mut v = Vec::new();
    for e in evidence {
        if let super::Observation::RslLink { url } = &e.observation {
            let abs = url::Url::parse(page_url)
                .and_then(|b| b.join(url))
                .map(|u| u.to_string())
                .unwrap_or_else(|_| url.clone());
            if !v.contains(&abs) {
                v.push(abs);
            }
        }
    }
    v
}
