//! `byline audit recheck`: look at stored pages again and revoke the uses
//! their owners have since opted out of.
//!
//! Per origin: robots.txt, `/.well-known/tdmrep.json`, `/ai.txt` and
//! `/llms.txt` are fetched again whatever their cache says (the crawler's
//! client, SSRF guard, User-Agent, timeouts and politeness; every version
//! stored), then each stored page of the origin that robots.txt still lets
//! us fetch gets a HEAD (a GET whose body is ignored when the server refuses
//! HEAD) for its current headers. Body-derived evidence (meta tags, JSON-LD,
//! `<link>`s, body text) is NOT refetched: it is kept from the page's last
//! full fetch, as observed then. The page is re-evaluated under the policy
//! of its current verdicts and the new evidence set and verdicts are stored
//! as a crawl stores them. A purpose whose verdict went from usable
//! (allowed, allowed with conditions) to excluded or deferred is revoked
//! (see `store::revocations`); retrieval joins the newest verdict, so the
//! page leaves it at once.

use std::collections::HashMap;

use serde::Serialize;
use thiserror::Error;
use url::Url;

use super::crawler::{CrawlConfig, Session};
use super::error::CrawlError;
use super::signals::{ConsentPolicy, PageSeen, Signals, SignalsError};
use crate::policy::evidence::FetchRef;
use crate::policy::{self, Decision};
use crate::store::revocations::NewRevocation;
use crate::store::{Store, StoreError};

/// What stops a recheck (per-page problems are reported, not errors).
#[derive(Debug, Error)]
pub enum RecheckError {
    #[error(transparent)]
    Crawl(#[from] CrawlError),
    #[error(transparent)]
    Signals(#[from] SignalsError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The policy a page's verdicts cite is not stored or no longer parses.
    #[error("policy {sha256} of {url} cannot be used: {detail}")]
    Policy {
        sha256: String,
        url: String,
        detail: String,
    },
    /// `--origin` is not `scheme://host[:port]`.
    #[error("origin {origin:?} is not scheme://host[:port]: {detail}")]
    BadOrigin { origin: String, detail: String },
}

/// One origin looked at again.
#[derive(Debug, Clone, Serialize)]
pub struct OriginChecked {
    pub origin: String,
    /// The `robots_versions` row fetched now.
    pub robots_version_id: i64,
    pub pages: u64,
}

/// A use revoked now.
#[derive(Debug, Clone, Serialize)]
pub struct RevokedUse {
    pub revocation_id: i64,
    pub url: String,
    pub page_id: i64,
    pub purpose: String,
    pub old_decision: String,
    pub new_decision: String,
    pub old_verdict_id: i64,
    pub new_verdict_id: i64,
    pub reasons: Vec<String>,
    pub evidence_ids: Vec<i64>,
    pub flagged_answers: Vec<i64>,
}

/// A use that is allowed again (by its new verdict row; nothing else changes).
#[derive(Debug, Clone, Serialize)]
pub struct RestoredUse {
    pub url: String,
    pub purpose: String,
    pub old_decision: String,
    pub new_decision: String,
    pub new_verdict_id: i64,
}

/// A page that answered 404 or 410: marked gone (out of retrieval), the
/// answers citing it flagged.
#[derive(Debug, Clone, Serialize)]
pub struct GonePage {
    pub url: String,
    pub page_id: i64,
    pub status: u16,
    /// Marked gone by this recheck (false: it already was).
    pub newly: bool,
    /// The `page_gone` audit event.
    pub event_seq: i64,
    pub flagged_answers: Vec<i64>,
}

/// A page that could not be looked at again (its verdicts stay as they were).
#[derive(Debug, Clone, Serialize)]
pub struct RecheckFailure {
    pub url: String,
    pub error: String,
}

/// What a recheck did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RecheckReport {
    /// The `crawl_runs` row the fetches were recorded under.
    pub run_id: Option<i64>,
    pub origins: Vec<OriginChecked>,
    /// Pages with new verdicts.
    pub pages_reevaluated: u64,
    /// Pages skipped because they were forgotten.
    pub pages_forgotten: u64,
    pub revoked: Vec<RevokedUse>,
    pub restored: Vec<RestoredUse>,
    /// Pages that answered 404 or 410 (out of retrieval from now on).
    pub gone: Vec<GonePage>,
    /// Pages marked gone before that answered 2xx again (back in retrieval).
    pub back: Vec<String>,
    /// Answers flagged now, sorted.
    pub flagged_answers: Vec<i64>,
    pub errors: Vec<RecheckFailure>,
}

impl RecheckReport {
    /// Revocations per purpose, sorted by purpose.
    pub fn revoked_per_purpose(&self) -> Vec<(String, u64)> {
        let mut m: std::collections::BTreeMap<String, u64> = Default::default();
        for r in &self.revoked {
            *m.entry(r.purpose.clone()).or_default() += 1;
        }
        m.into_iter().collect()
    }
}

fn usable(decision: &str) -> bool {
    Decision::parse(decision).is_some_and(Decision::is_allowed)
}

fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// `scheme://host[:port]` of an origin argument.
pub fn parse_origin(o: &str) -> Result<String, RecheckError> {
    let u = Url::parse(o).map_err(|e| RecheckError::BadOrigin {
        origin: o.into(),
        detail: e.to_string(),
    })?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return Err(RecheckError::BadOrigin {
            origin: o.into(),
            detail: "only http and https origins with a host".into(),
        });
    }
    Ok(u.origin().ascii_serialization())
}

/// Rechecks every stored page (or those of `origin`, as `scheme://host[:port]`).
/// `base` gives the client settings (User-Agent, timeouts, politeness);
/// its seeds are replaced by the origins checked.
pub async fn recheck(
    store: &Store,
    base: CrawlConfig,
    origin: Option<&str>,
) -> Result<RecheckReport, RecheckError> {
    let pages = store.recheck_pages(origin).await?;
    let mut report = RecheckReport::default();
    let mut origins: Vec<String> = pages.iter().map(|p| p.origin.clone()).collect();
    origins.dedup();
    if origins.is_empty() {
        return Ok(report);
    }
    let mut cfg = base;
    cfg.seeds = Vec::new();
    for o in &origins {
        cfg.seeds.push(
            Url::parse(&format!("{o}/")).map_err(|e| RecheckError::BadOrigin {
                origin: o.clone(),
                detail: e.to_string(),
            })?,
        );
    }
    let session = Session::start(store.clone(), cfg).await?;
    report.run_id = Some(session.run_id());
    let mut hooks: HashMap<String, Signals> = HashMap::new();
    for o in &origins {
        let robots = session.refetch_robots(o).await?;
        let mut files_refreshed = false;
        let mut checked = OriginChecked {
            origin: o.clone(),
            robots_version_id: robots.version_id(),
            pages: 0,
        };
        for page in pages.iter().filter(|p| &p.origin == o) {
            checked.pages += 1;
            let fail = |error: String| RecheckFailure {
                url: page.page_url.clone(),
                error,
            };
            let url = match Url::parse(&page.page_url) {
                Ok(u) => u,
                Err(e) => {
                    report
                        .errors
                        .push(fail(format!("not an absolute url: {e}")));
                    continue;
                }
            };
            if let Some(n) = super::urls::normalise(&url)
                && store.tombstone(n.as_str()).await?.is_some()
            {
                report.pages_forgotten += 1;
                continue;
            }
            let old = store.latest_verdicts(&page.page_url, None).await?;
            let Some(sha) = old.first().map(|v| v.policy_sha256.clone()) else {
                report.errors.push(fail("no verdict to recheck".into()));
                continue;
            };
            if !hooks.contains_key(&sha) {
                let hook = signals_for(store, &session, &sha, &page.page_url).await?;
                hooks.insert(sha.clone(), hook);
            }
            let hook = &hooks[&sha];
            if !files_refreshed {
                hook.refresh_origin_files(o, now_unix()).await?;
                files_refreshed = true;
            }
            if robots.allows(&url) {
                let f = session.fetch_headers(&url).await;
                if let Some((k, m)) = &f.error {
                    report.errors.push(fail(format!("{}: {m}", k.as_str())));
                    continue;
                }
                let status = f.status.unwrap_or(0);
                if matches!(status, 404 | 410) {
                    let g = store
                        .mark_page_gone(
                            page.page_id,
                            &page.page_url,
                            status,
                            report.run_id,
                            now_unix(),
                        )
                        .await?;
                    report
                        .flagged_answers
                        .extend(g.flagged_answers.iter().copied());
                    report.gone.push(GonePage {
                        url: page.page_url.clone(),
                        page_id: page.page_id,
                        status,
                        newly: g.newly,
                        event_seq: g.event_seq,
                        flagged_answers: g.flagged_answers,
                    });
                    continue;
                }
                if !(200..300).contains(&status) {
                    report.errors.push(fail(format!("http status {status}")));
                    continue;
                }
                if store.mark_page_live(page.page_id).await? {
                    report.back.push(page.page_url.clone());
                }
                let body = store.last_body_evidence(&page.page_url).await?;
                let seen = PageSeen {
                    url: &url,
                    page_id: Some(page.page_id),
                    fetch: Some(FetchRef {
                        fetch_id: None,
                        url: f.final_url.to_string(),
                        status: f.status,
                        fetched_at: f.fetched_at,
                        body_sha256: None,
                    }),
                    headers: &f.headers,
                    html: None,
                };
                hook.on_page_with(&seen, &robots.seen(), &body, now_unix())
                    .await?;
            } else {
                // robots.txt now keeps us out: no request to the page.
                let seen = PageSeen {
                    url: &url,
                    page_id: Some(page.page_id),
                    fetch: None,
                    headers: &[],
                    html: None,
                };
                hook.on_page(&seen, &robots.seen(), now_unix()).await?;
            }
            report.pages_reevaluated += 1;
            let new = store.latest_verdicts(&page.page_url, Some(&sha)).await?;
            for n in &new {
                let Some(o) = old.iter().find(|o| o.purpose == n.purpose) else {
                    continue;
                };
                match (usable(&o.decision), usable(&n.decision)) {
                    (true, false) => {
                        let done = store
                            .revoke(&NewRevocation {
                                page_url: &page.page_url,
                                page_id: Some(page.page_id),
                                purpose: &n.purpose,
                                old_verdict_id: o.id,
                                new_verdict_id: n.id,
                                old_decision: &o.decision,
                                new_decision: &n.decision,
                                reasons: &n.reasons,
                                evidence_ids: &n.evidence_ids,
                                revoked_at: n.decided_at,
                                run_id: report.run_id,
                                flag_answers: n.purpose == policy::Purpose::RagAttributed.as_str(),
                            })
                            .await?;
                        report
                            .flagged_answers
                            .extend(done.flagged_answers.iter().copied());
                        report.revoked.push(RevokedUse {
                            revocation_id: done.id,
                            url: page.page_url.clone(),
                            page_id: page.page_id,
                            purpose: n.purpose.clone(),
                            old_decision: o.decision.clone(),
                            new_decision: n.decision.clone(),
                            old_verdict_id: o.id,
                            new_verdict_id: n.id,
                            reasons: n.reasons.clone(),
                            evidence_ids: n.evidence_ids.clone(),
                            flagged_answers: done.flagged_answers,
                        });
                    }
                    (false, true) => report.restored.push(RestoredUse {
                        url: page.page_url.clone(),
                        purpose: n.purpose.clone(),
                        old_decision: o.decision.clone(),
                        new_decision: n.decision.clone(),
                        new_verdict_id: n.id,
                    }),
                    _ => {}
                }
            }
        }
        report.origins.push(checked);
    }
    report.flagged_answers.sort_unstable();
    report.flagged_answers.dedup();
    session.finish().await?;
    Ok(report)
}

/// The consent hook for the policy with this sha256, as stored.
async fn signals_for(
    store: &Store,
    session: &Session,
    sha256: &str,
    url: &str,
) -> Result<Signals, RecheckError> {
    let bad = |detail: String| RecheckError::Policy {
        sha256: sha256.into(),
        url: url.into(),
        detail,
    };
    let (id, bytes) = store
        .policy_body(sha256)
        .await?
        .ok_or_else(|| bad("not in policies_seen".into()))?;
    let p = ConsentPolicy::from_bytes(&bytes, &id).map_err(|e| bad(e.to_string()))?;
    Ok(Signals::new(
        store.clone(),
        session.conduct(),
        p.policy,
        &p.bytes,
        super::robots::PRODUCT_TOKEN,
        now_unix(),
    )
    .await?)
}
