//! The consent hook of the per-page pipeline (signals.md §8.1): for each page the
//! crawler handled (fetched, or kept from fetching by robots.txt) it gathers
//! the evidence, fetches the per-origin consent files once per origin with a
//! cache and every version stored (`/.well-known/tdmrep.json`, `/ai.txt`,
//! `/llms.txt`, linked RSL documents; robots.txt is the crawler's), evaluates
//! the policy and stores evidence and verdicts.
//!
//! Parsing and deciding are `policy`'s pure functions; this module only does
//! the I/O around them.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use thiserror::Error;
use url::Url;

use crate::crawl::conduct::{Conduct, Purpose};
use crate::crawl::fetch::Limits;
use crate::crawl::robots::Access;
use crate::policy::evidence::{FetchRef, RobotsOutcome};
use crate::policy::gather::{PageInputs, RobotsInput, gather_with, rsl_links};
use crate::policy::origin::FileFetch;
use crate::policy::{self, PageVerdicts, Policy};
use crate::store::evidence::{ConsentRecord, OriginFile};
use crate::store::{Store, StoreError};

/// Where TDMRep lives (TDMRep §4.2).
pub const TDMREP_PATH: &str = "/.well-known/tdmrep.json";
/// Spec §6.1.
pub const AI_TXT_PATH: &str = "/ai.txt";
/// Spec §6.3.
pub const LLMS_TXT_PATH: &str = "/llms.txt";
/// Spec §4.5: size cap for tdmrep.json (and ai.txt, llms.txt).
pub const MAX_FILE_BYTES: usize = 512 * 1024;
/// Spec §4.5 / §1.6: re-check origin files at most every 24 h.
pub const MAX_TTL_SECS: i64 = 24 * 3600;
/// How long a failed fetch of an origin file is reused before retrying.
pub const FAILURE_TTL_SECS: i64 = 10 * 60;

/// What can go wrong in the consent hook (per-page problems are evidence,
/// not errors; these are store failures).
#[derive(Debug, Error)]
pub enum SignalsError {
    /// The corpus could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A policy and the exact bytes it was read from (their sha256 is the
/// policy version cited by every verdict).
#[derive(Debug, Clone)]
pub struct ConsentPolicy {
    pub policy: Policy,
    pub bytes: std::sync::Arc<[u8]>,
}

impl ConsentPolicy {
    /// Reads a policy file's bytes; `origin` names it in errors.
    pub fn from_bytes(bytes: &[u8], origin: &str) -> Result<ConsentPolicy, policy::PolicyError> {
        Ok(ConsentPolicy {
            policy: Policy::from_bytes(bytes, origin)?,
            bytes: bytes.into(),
        })
    }

    /// The bundled default, `policies/eu-opt-out.toml`.
    pub fn bundled_default() -> ConsentPolicy {
        ConsentPolicy::from_bytes(
            policy::config::EU_OPT_OUT_TOML.as_bytes(),
            "policies/eu-opt-out.toml",
        )
        .expect("the bundled default policy is valid (tested)")
    }
}

/// A page as the crawler saw it.
#[derive(Debug, Clone)]
pub struct PageSeen<'a> {
    pub url: &'a Url,
    /// The crawler's page id, when it has one.
    pub page_id: Option<i64>,
    /// The fetch that carried the page; `None` when it was never fetched.
    pub fetch: Option<FetchRef>,
    pub headers: &'a [(String, String)],
    /// The decoded HTML, when the response was HTML.
    pub html: Option<&'a str>,
}

/// robots.txt as it governed the page: the crawler's access decision plus
/// the body in force, for the consent signals inside it.
#[derive(Debug, Clone)]
pub struct RobotsSeen<'a> {
    pub access: &'a Access,
    /// HTTP status of the latest robots.txt fetch.
    pub status: Option<u16>,
    /// The robots.txt body in force (fresh or cached).
    pub body: Option<&'a str>,
    /// Age of the cached copy in force, when the origin was unreachable.
    pub cache_age_secs: Option<i64>,
    /// The robots.txt fetch whose body is in force; cited by every
    /// robots.txt evidence row (signals.md §2.3: the version hash).
    pub fetch: Option<FetchRef>,
}

/// Turns the crawler's [`Access`] into the policy's robots input for `url`.
pub fn robots_input<'a>(robots: &RobotsSeen<'a>, url: &Url) -> RobotsInput<'a> {
    let allowed = robots.access.check(url).allowed;
    let (outcome, from_cache) = match robots.access {
        Access::Rules(_) => (
            if allowed {
                RobotsOutcome::Allowed
            } else {
                RobotsOutcome::Disallowed
            },
            false,
        ),
        Access::Cached { .. } => (
            if allowed {
                RobotsOutcome::Allowed
            } else {
                RobotsOutcome::Disallowed
            },
            true,
        ),
        Access::AllowAll { .. } => (RobotsOutcome::Unavailable, false),
        Access::DisallowAll { .. } => (RobotsOutcome::Unreachable, false),
    };
    RobotsInput {
        outcome,
        status: robots.status,
        body: match robots.access {
            Access::Rules(_) | Access::Cached { .. } => robots.body,
            _ => None,
        },
        from_cache,
        cache_age_secs: robots.cache_age_secs,
    }
}

/// The consent stage of one crawl: the policy in force, the run's request
/// path for origin files and licence documents, and the store.
#[derive(Debug, Clone)]
pub struct Signals {
    store: Store,
    conduct: Arc<Conduct>,
    policy: Policy,
    token: String,
    /// The newest stored version of each origin file this process has read
    /// or written, so a page does not re-read its origin's files from the
    /// store (it was three queries per page): the same answer as
    /// [`Store::cached_origin_file`] while this process is the one storing
    /// versions. At most [`FILE_CACHE_MAX`] entries (cleared when full).
    files: Arc<std::sync::Mutex<std::collections::HashMap<String, OriginFile>>>,
}

/// Origin files remembered by [`Signals`] before the memory is cleared.
const FILE_CACHE_MAX: usize = 4096;

/// `scheme://host[:port]` of a URL.
pub fn origin_of(url: &Url) -> String {
    url.origin().ascii_serialization()
}

impl Signals {
    /// Records the policy (by the sha256 of `policy_bytes`) and returns the hook.
    pub async fn new(
        store: Store,
        conduct: Arc<Conduct>,
        policy: Policy,
        policy_bytes: &[u8],
        token: &str,
        now: i64,
    ) -> Result<Signals, SignalsError> {
        store
            .record_policy(&policy.id, &policy.sha256, policy_bytes, now)
            .await?;
        Ok(Signals {
            store,
            conduct,
            policy,
            token: token.to_string(),
            files: Arc::default(),
        })
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Fetches (or reuses the cached version of) one origin file; every
    /// fetched version is stored.
    pub async fn origin_file(
        &self,
        url: &str,
        kind: &str,
        now: i64,
    ) -> Result<(FileFetch, FetchRef), SignalsError> {
        let mem = self
            .files
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(url)
            .filter(|f| f.expires_at > now)
            .cloned();
        if let Some(f) = mem {
            return Ok((file_fetch_of(&f), fetch_ref_of(&f)));
        }
        if let Some(f) = self.store.cached_origin_file(url, now).await? {
            let out = (file_fetch_of(&f), fetch_ref_of(&f));
            self.remember_file(f);
            return Ok(out);
        }
        self.fetch_origin_file(url, kind, now).await
    }

    fn remember_file(&self, f: OriginFile) {
        let mut m = self
            .files
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if m.len() >= FILE_CACHE_MAX && !m.contains_key(&f.url) {
            m.clear();
        }
        m.insert(f.url.clone(), f);
    }

    /// Fetches `origin`'s consent files again whatever the cache says
    /// (`audit recheck`), storing every version; later [`Signals::on_page`]
    /// calls reuse them. Linked RSL documents are re-fetched when they expire.
    pub async fn refresh_origin_files(&self, origin: &str, now: i64) -> Result<(), SignalsError> {
        for (path, kind) in [
            (TDMREP_PATH, "tdmrep.json"),
            (AI_TXT_PATH, "ai.txt"),
            (LLMS_TXT_PATH, "llms.txt"),
        ] {
            self.fetch_origin_file(&format!("{origin}{path}"), kind, now)
                .await?;
        }
        Ok(())
    }

    async fn fetch_origin_file(
        &self,
        url: &str,
        kind: &str,
        now: i64,
    ) -> Result<(FileFetch, FetchRef), SignalsError> {
        let origin = Url::parse(url).map(|u| origin_of(&u)).unwrap_or_default();
        let (fetch, max_age) = self.get(url).await;
        let ttl = match &fetch {
            FileFetch::Failed { .. } => FAILURE_TTL_SECS,
            _ => max_age.map_or(MAX_TTL_SECS, |a| a.min(MAX_TTL_SECS)),
        };
        let (status, error, body) = match &fetch {
            FileFetch::Body { status, body } => {
                (Some(*status), None, Some(body.as_bytes().to_vec()))
            }
            FileFetch::Missing { status } => (Some(*status), None, None),
            FileFetch::Failed { status, error } => (*status, Some(error.clone()), None),
        };
        let body_sha256 = body.as_ref().map(|b| hex::encode(Sha256::digest(b)));
        let mut row = OriginFile {
            id: 0,
            origin,
            kind: kind.to_string(),
            url: url.to_string(),
            status,
            error,
            body,
            body_sha256,
            fetched_at: now,
            expires_at: now + ttl,
        };
        row.id = self.store.insert_origin_file(&row).await?;
        let r = fetch_ref_of(&row);
        self.remember_file(row);
        Ok((fetch, r))
    }

    /// One origin file or licence document through the run's request path
    /// (address guard, robots.txt and politeness of its origin, the crawl's
    /// timeouts, [`MAX_FILE_BYTES`] read). A third-party host (an RSL
    /// document elsewhere) is an origin like any other.
    async fn get(&self, url: &str) -> (FileFetch, Option<i64>) {
        let u = match Url::parse(url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => u,
            Ok(_) => {
                return (
                    FileFetch::Failed {
                        status: None,
                        error: format!("not fetched: {url} is not an http(s) URL with a host"),
                    },
                    None,
                );
            }
            Err(e) => {
                return (
                    FileFetch::Failed {
                        status: None,
                        error: format!("not fetched: {url:?} is not a URL: {e}"),
                    },
                    None,
                );
            }
        };
        let limits = Limits {
            max_redirects: self.conduct.config().max_redirects,
            max_body_bytes: MAX_FILE_BYTES,
            html_only: false,
        };
        let f = self.conduct.get(&u, Purpose::File, limits).await;
        let max_age = f
            .max_age()
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        if let Some((k, m)) = &f.error {
            return (
                FileFetch::Failed {
                    status: f.status,
                    error: format!("fetching {url}: {}: {m}", k.as_str()),
                },
                None,
            );
        }
        let status = f.status.unwrap_or(0);
        (
            FileFetch::from_status(status, String::from_utf8_lossy(&f.body).into_owned()),
            max_age,
        )
    }

    /// The hook: gathers the page's evidence (fetching origin files as
    /// needed), evaluates the policy at `now`, stores evidence and verdicts
    /// in one transaction.
    pub async fn on_page(
        &self,
        page: &PageSeen<'_>,
        robots: &RobotsSeen<'_>,
        now: i64,
    ) -> Result<PageVerdicts, SignalsError> {
        self.on_page_with(page, robots, &[], now).await
    }

    /// [`Signals::on_page`] for a page seen again without its body
    /// (`audit recheck`): `body_rows` are the body-derived evidence rows
    /// (meta tags, JSON-LD, links, body text) of its last full fetch, kept
    /// as they were observed and added when robots.txt still lets us fetch it.
    pub async fn on_page_with(
        &self,
        page: &PageSeen<'_>,
        robots: &RobotsSeen<'_>,
        body_rows: &[policy::Evidence],
        now: i64,
    ) -> Result<PageVerdicts, SignalsError> {
        let c = self.assess_with(page, robots, body_rows, None, now).await?;
        self.store.insert_consent(&c).await?;
        Ok(c.verdicts)
    }

    /// The hook without the final write: the page's evidence and verdicts,
    /// for the caller to commit together with the page itself. Origin files
    /// fetched on the way are stored as they arrive (they are per-origin
    /// versions, valid whatever happens to this page).
    pub async fn assess(
        &self,
        page: &PageSeen<'_>,
        robots: &RobotsSeen<'_>,
        now: i64,
    ) -> Result<ConsentRecord, SignalsError> {
        self.assess_with(page, robots, &[], None, now).await
    }

    /// [`Signals::assess`] for a page whose HTML the caller parsed once
    /// and read its rows from ([`policy::page::html_rows`] of the same
    /// `page.html` at `page.url`): the same result without a second parse.
    pub async fn assess_parsed(
        &self,
        page: &PageSeen<'_>,
        html_rows: &[policy::Evidence],
        robots: &RobotsSeen<'_>,
        now: i64,
    ) -> Result<ConsentRecord, SignalsError> {
        self.assess_with(page, robots, &[], Some(html_rows), now)
            .await
    }

    /// [`Signals::assess`] for a page whose body was not fetched again (a
    /// `304 Not Modified`): `body_rows` are the body-derived evidence rows
    /// of its last full fetch, as in [`Signals::on_page_with`].
    pub async fn assess_kept(
        &self,
        page: &PageSeen<'_>,
        robots: &RobotsSeen<'_>,
        body_rows: &[policy::Evidence],
        now: i64,
    ) -> Result<ConsentRecord, SignalsError> {
        self.assess_with(page, robots, body_rows, None, now).await
    }

    async fn assess_with(
        &self,
        page: &PageSeen<'_>,
        robots: &RobotsSeen<'_>,
        body_rows: &[policy::Evidence],
        html_rows: Option<&[policy::Evidence]>,
        now: i64,
    ) -> Result<ConsentRecord, SignalsError> {
        let url = page.url.as_str();
        let origin = origin_of(page.url);
        let robots_in = robots_input(robots, page.url);
        let fetched = page.fetch.is_some()
            && matches!(
                robots_in.outcome,
                RobotsOutcome::Allowed | RobotsOutcome::Unavailable
            );
        let mut refs: Vec<(&str, FetchRef)> = Vec::new();
        let (tdmrep, ai_txt, llms) = if fetched {
            let (t, tr) = self
                .origin_file(&format!("{origin}{TDMREP_PATH}"), "tdmrep.json", now)
                .await?;
            let (a, ar) = self
                .origin_file(&format!("{origin}{AI_TXT_PATH}"), "ai.txt", now)
                .await?;
            let (l, lr) = self
                .origin_file(&format!("{origin}{LLMS_TXT_PATH}"), "llms.txt", now)
                .await?;
            refs.extend([("tdmrep.json", tr), ("ai.txt", ar), ("llms.txt", lr)]);
            (Some(t), Some(a), Some(l))
        } else {
            (None, None, None)
        };
        let mut inputs = PageInputs {
            page_url: url,
            token: &self.token,
            robots: robots_in,
            headers: page.headers,
            html: page.html,
            tdmrep: tdmrep.as_ref(),
            ai_txt: ai_txt.as_ref(),
            llms_txt: llms.as_ref(),
            rsl: &[],
        };
        let body_rows = if fetched { body_rows } else { &[] };
        let mut evidence = gather_with(&inputs, html_rows);
        // RSL documents the page or robots.txt points to (signals.md §6.2).
        let mut rsl = Vec::new();
        let mut rsl_refs = Vec::new();
        if fetched {
            let mut seen = evidence.clone();
            seen.extend(body_rows.iter().cloned());
            for link in rsl_links(&seen, url) {
                let (f, r) = self.origin_file(&link, "rsl", now).await?;
                rsl.push((link, f));
                rsl_refs.push(r);
            }
        }
        if !rsl.is_empty() {
            inputs.rsl = &rsl;
            evidence = gather_with(&inputs, html_rows);
        }
        let mut rsl_refs = rsl_refs.into_iter();
        let mut page_fetch_rows = Vec::new();
        for (i, e) in evidence.iter_mut().enumerate() {
            e.observed_at = now;
            if e.location == policy::Location::RobotsTxt {
                e.fetch_ref = robots.fetch.clone();
            } else if e.signal == "rsl" {
                e.fetch_ref = rsl_refs.next();
            } else if let Some((_, r)) = refs.iter().find(|(s, _)| *s == e.signal) {
                e.fetch_ref = Some(r.clone());
            }
            if e.fetch_ref.is_none()
                && matches!(
                    e.location,
                    policy::Location::HttpHeader
                        | policy::Location::HtmlMeta
                        | policy::Location::HtmlBody
                        | policy::Location::HtmlLink
                        | policy::Location::Jsonld
                        | policy::Location::BodyText
                )
            {
                e.fetch_ref = page.fetch.clone();
                page_fetch_rows.push(i);
            }
            if matches!(
                e.location,
                policy::Location::WellKnown | policy::Location::RobotsTxt
            ) {
                e.expires_at = Some(now + MAX_TTL_SECS);
            }
        }
        evidence.extend(body_rows.iter().cloned());
        let verdicts = policy::evaluate(&evidence, &self.policy, now);
        Ok(ConsentRecord {
            page_url: url.to_string(),
            page_id: page.page_id,
            site_origin: origin,
            observed_at: now,
            evidence,
            verdicts,
            page_fetch_rows,
        })
    }
}

fn fetch_ref_of(f: &OriginFile) -> FetchRef {
    FetchRef {
        fetch_id: None,
        url: f.url.clone(),
        status: f.status,
        fetched_at: f.fetched_at,
        body_sha256: f.body_sha256.clone(),
    }
}

fn file_fetch_of(f: &OriginFile) -> FileFetch {
    match (f.status, &f.body, &f.error) {
        (Some(s), Some(b), _) if (200..300).contains(&s) => FileFetch::Body {
            status: s,
            body: String::from_utf8_lossy(b).into_owned(),
        },
        (_, _, Some(e)) => FileFetch::Failed {
            status: f.status,
            error: e.clone(),
        },
        (Some(s), _, None) => FileFetch::from_status(s, String::new()),
        (None, _, None) => FileFetch::Failed {
            status: None,
            error: "no response".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crawl::robots::RobotsRules;
    use crate::crawl::robots::pattern;
    use crate::policy::robotstxt;

    /// The AI-intent reader (`policy::robotstxt`, which also matches agent
    /// names that are not RFC tokens) must decide like the crawler's own
    /// RFC 9309 layer for every agent that is a token: checked on the Google
    /// conformance records (Google-only behaviours and the RFC-vs-Google
    /// encoding conflict left out, as the robots layer does).
    #[test]
    fn the_ai_intent_reader_agrees_with_the_crawlers_robots_layer() {
        let data = include_str!("../../tests/fixtures/robots/google-robotstxt-cases.jsonl");
        let (mut checked, mut differ) = (0, Vec::new());
        for line in data.lines().filter(|l| !l.trim().is_empty()) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let ua = v["user_agent"].as_str().unwrap();
            let url = v["url"].as_str().unwrap();
            if v["google_specific"].as_bool().unwrap()
                || v.get("note").is_some()
                || ua.is_empty()
                || !ua
                    .chars()
                    .all(|c| c.is_ascii_alphabetic() || c == '_' || c == '-')
            {
                continue;
            }
            let Ok(u) = Url::parse(url) else { continue };
            let body = v["robots_txt"].as_str().unwrap();
            let theirs = RobotsRules::parse(body.as_bytes(), ua).check(&u).allowed;
            let file = robotstxt::RobotsFile::parse(body);
            let (rules, _) = file.rules_for(ua);
            let ours = robotstxt::allowed(&rules, &pattern::path_of(u.as_str()));
            checked += 1;
            if ours != theirs {
                differ.push(format!(
                    "{} ({ua} {url}): ours {ours}, crawl::robots {theirs}",
                    v["id"]
                ));
            }
        }
        assert!(checked > 100, "only {checked} records checked");
        assert!(
            differ.is_empty(),
            "{} of {checked} differ:\n{}",
            differ.len(),
            differ.join("\n")
        );
    }
}
