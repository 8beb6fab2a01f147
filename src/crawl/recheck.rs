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
//!
//! With bodies ([`RecheckOptions::bodies`]: `audit recheck --bodies`,
//! `byline crawl --refresh`) each page is fetched again with a conditional
//! GET instead of a HEAD (`If-None-Match` / `If-Modified-Since` from its
//! last good fetch): a 304 is recorded as a fetch with no body ("unchanged,
//! checked at") and re-decided from the kept body evidence; a new body is
//! re-extracted, stored as a new page version and re-decided from the page
//! itself (meta, JSON-LD, licence links, TDMRep meta, ...), its new links
//! queued; 404/410 marks the page gone. A refresh takes only the pages that
//! are due ([`RevisitPolicy`]); each revisit updates the page's adaptive
//! interval. Every way a usable verdict becomes excluded goes through the
//! same revocation cascade.

use std::collections::HashMap;

use serde::Serialize;
use thiserror::Error;
use url::Url;

use super::crawler::{CrawlConfig, Revisited, Session};
use super::error::CrawlError;
use super::signals::{ConsentPolicy, PageSeen, Signals, SignalsError};
use crate::policy::evidence::FetchRef;
use crate::policy::{self, Decision};
use crate::store::refresh::{CheckRecord, NewVersion, ScheduleUpdate, StoredPage};
use crate::store::revocations::{NewRevocation, RecheckPage};
use crate::store::verdicts::VerdictRow;
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

impl RecheckError {
    /// See [`CrawlError::is_input`]: e.g. a refresh of other people's
    /// pages without a contact URL.
    pub fn is_input(&self) -> bool {
        matches!(self, RecheckError::Crawl(e) if e.is_input())
    }
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
    /// `headers` (HEAD, the default) or `bodies` (conditional GET).
    pub mode: &'static str,
    /// Pages that got an answer (re-evaluated, unchanged or gone).
    pub checked: u64,
    /// Pages not due for a revisit yet (a refresh's schedule).
    pub not_due: u64,
    /// Pages that answered 304 Not Modified (bodies mode).
    pub unchanged: Vec<String>,
    /// Pages that answered 2xx with the body already stored (no validator
    /// to send, or the server ignored it; bodies mode).
    pub same_body: Vec<String>,
    /// Pages with a new body, stored as a new version (bodies mode).
    pub changed: Vec<ChangedPage>,
    /// URLs newly queued from the changed pages' links.
    pub new_urls: u64,
}

/// A page whose body changed.
#[derive(Debug, Clone, Serialize)]
pub struct ChangedPage {
    pub url: String,
    pub page_id: i64,
    pub version_id: i64,
    pub old_text_sha256: String,
    pub new_text_sha256: String,
    /// `+code` / `-code`: verdict reasons that appeared or disappeared.
    pub signals_changed: Vec<String>,
}

/// How often stored pages are revisited: a default interval (per origin
/// when set), adapted per page as Nutch's AdaptiveFetchSchedule does (a
/// change shrinks it by a fifth, no change grows it by a fifth), always
/// within `[min_secs, max_secs]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevisitPolicy {
    pub default_secs: i64,
    pub min_secs: i64,
    pub max_secs: i64,
    /// `(origin, seconds)`: a default interval for one origin.
    pub per_origin: Vec<(String, i64)>,
    /// Revisit every page now, whatever its schedule.
    pub all: bool,
}

impl Default for RevisitPolicy {
    fn default() -> RevisitPolicy {
        RevisitPolicy {
            default_secs: 86_400,
            min_secs: 3_600,
            max_secs: 30 * 86_400,
            per_origin: Vec::new(),
            all: false,
        }
    }
}

impl RevisitPolicy {
    /// `i` within the bounds.
    pub fn bounded(&self, i: i64) -> i64 {
        let lo = self.min_secs.max(0);
        i.clamp(lo, self.max_secs.max(lo))
    }

    /// The default interval of `origin`.
    pub fn base_interval(&self, origin: &str) -> i64 {
        self.per_origin
            .iter()
            .find(|(o, _)| o == origin)
            .map(|&(_, s)| s)
            .unwrap_or(self.default_secs)
    }

    /// The interval a page has now (its schedule's, or its origin's default).
    pub fn current_interval(&self, page: &StoredPage, origin: &str) -> i64 {
        self.bounded(match page.schedule {
            Some(s) => s.interval_secs,
            None => self.base_interval(origin),
        })
    }

    /// Whether `page` is due at `now`.
    pub fn due(&self, page: &StoredPage, origin: &str, now: i64) -> bool {
        if self.all {
            return true;
        }
        let last = page
            .schedule
            .map(|s| s.last_checked_at)
            .unwrap_or(page.fetched_at);
        last.saturating_add(self.current_interval(page, origin)) <= now
    }

    /// The interval after a revisit that found the page `changed` or not.
    pub fn next_interval(&self, current: i64, changed: bool) -> i64 {
        let step = (current / 5).max(1);
        self.bounded(if changed {
            current.saturating_sub(step)
        } else {
            current.saturating_add(step)
        })
    }
}

/// What a recheck does besides the cheap default.
#[derive(Debug, Clone, Default)]
pub struct RecheckOptions {
    /// Conditional GET of each page (re-deciding from the body) instead of HEAD.
    pub bodies: bool,
    /// Which pages are due and how their intervals adapt (bodies mode).
    pub revisit: RevisitPolicy,
    /// Decide under this policy instead of the one each page's verdicts cite.
    pub policy: Option<ConsentPolicy>,
}

impl RecheckReport {
    /// Every request failed: pages were due but none got an answer.
    pub fn nothing_checked(&self) -> bool {
        self.checked == 0 && !self.errors.is_empty()
    }

    /// Revocations per purpose, sorted by purpose.
    pub fn revoked_per_purpose(&self) -> Vec<(String, u64)> {
        let mut m: std::collections::BTreeMap<String, u64> = Default::default();
        for r in &self.revoked {
            *m.entry(r.purpose.clone()).or_default() += 1;
        }
        m.into_iter().collect()
    }
}

/// `+code` / `-code` for the verdict reasons that appeared or disappeared.
fn signals_diff(old: &[VerdictRow], new: &policy::verdict::PageVerdicts) -> Vec<String> {
    let before: std::collections::BTreeSet<&str> = old
        .iter()
        .flat_map(|v| v.reasons.iter().map(String::as_str))
        .collect();
    let after: std::collections::BTreeSet<&str> = policy::Purpose::ALL
        .iter()
        .flat_map(|&p| new.get(p).reasons.iter().map(String::as_str))
        .collect();
    let mut out: Vec<String> = after.difference(&before).map(|c| format!("+{c}")).collect();
    out.extend(before.difference(&after).map(|c| format!("-{c}")));
    out
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

/// Rechecks every stored page (or those of `origin`, as `scheme://host[:port]`)
/// in the cheap mode (robots.txt, origin files and a HEAD per page).
/// `base` gives the client settings (User-Agent, timeouts, politeness);
/// its seeds are replaced by the origins checked.
pub async fn recheck(
    store: &Store,
    base: CrawlConfig,
    origin: Option<&str>,
) -> Result<RecheckReport, RecheckError> {
    recheck_with(store, base, origin, &RecheckOptions::default()).await
}

/// [`recheck`] with options: bodies (conditional GET), a revisit schedule
/// and a policy override.
pub async fn recheck_with(
    store: &Store,
    base: CrawlConfig,
    origin: Option<&str>,
    opts: &RecheckOptions,
) -> Result<RecheckReport, RecheckError> {
    let now = now_unix();
    let mut report = RecheckReport {
        mode: if opts.bodies { "bodies" } else { "headers" },
        ..RecheckReport::default()
    };
    // Bodies mode takes only the pages that are due.
    let mut pages = Vec::new();
    let mut stored: HashMap<i64, StoredPage> = HashMap::new();
    for p in store.recheck_pages(origin).await? {
        if opts.bodies {
            let Some(sp) = store.refresh_page(p.page_id).await? else {
                continue;
            };
            if !opts.revisit.due(&sp, &p.origin, now) {
                report.not_due += 1;
                continue;
            }
            stored.insert(p.page_id, sp);
        }
        pages.push(p);
    }
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
    if let Some(p) = &opts.policy {
        cfg.policy = Some(p.clone());
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
            let sha = match &opts.policy {
                Some(p) => p.policy.sha256.clone(),
                None => match old.first() {
                    Some(v) => v.policy_sha256.clone(),
                    None => {
                        report.errors.push(fail("no verdict to recheck".into()));
                        continue;
                    }
                },
            };
            if !hooks.contains_key(&sha) {
                let hook = match &opts.policy {
                    Some(p) => signals_from(store, &session, p).await?,
                    None => signals_for(store, &session, &sha, &page.page_url).await?,
                };
                hooks.insert(sha.clone(), hook);
            }
            let hook = &hooks[&sha];
            if !files_refreshed {
                hook.refresh_origin_files(o, now_unix()).await?;
                files_refreshed = true;
            }
            if robots.allows(&url) {
                let done = if opts.bodies {
                    let Some(sp) = stored.get(&page.page_id) else {
                        continue;
                    };
                    revisit_page(
                        store,
                        &session,
                        hook,
                        &robots,
                        &url,
                        page,
                        sp,
                        &old,
                        opts,
                        &mut report,
                    )
                    .await?
                } else {
                    headers_page(store, &session, hook, &robots, &url, page, &mut report).await?
                };
                match done {
                    Looked::Failed(e) => {
                        report.errors.push(fail(e));
                        continue;
                    }
                    Looked::Gone => {
                        report.checked += 1;
                        continue;
                    }
                    Looked::Decided => {}
                }
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
            report.checked += 1;
            report.pages_reevaluated += 1;
            let new = store.latest_verdicts(&page.page_url, Some(&sha)).await?;
            revoke_changed(store, page, &old, &new, &mut report).await?;
        }
        report.origins.push(checked);
    }
    report.flagged_answers.sort_unstable();
    report.flagged_answers.dedup();
    session.finish().await?;
    Ok(report)
}

/// How looking at one page again ended.
enum Looked {
    /// New verdicts were stored.
    Decided,
    /// It answered 404 or 410 (marked gone).
    Gone,
    /// No usable answer (the verdicts stay as they were).
    Failed(String),
}

/// Marks a page gone (404/410) and reports it.
async fn gone(
    store: &Store,
    page: &RecheckPage,
    status: u16,
    report: &mut RecheckReport,
) -> Result<(), RecheckError> {
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
    Ok(())
}

/// The cheap mode: a HEAD for the current headers, body evidence kept.
async fn headers_page(
    store: &Store,
    session: &Session,
    hook: &Signals,
    robots: &super::crawler::OriginRobots,
    url: &Url,
    page: &RecheckPage,
    report: &mut RecheckReport,
) -> Result<Looked, RecheckError> {
    let f = session.fetch_headers(url).await;
    if let Some((k, m)) = &f.error {
        return Ok(Looked::Failed(format!("{}: {m}", k.as_str())));
    }
    let status = f.status.unwrap_or(0);
    if matches!(status, 404 | 410) {
        gone(store, page, status, report).await?;
        return Ok(Looked::Gone);
    }
    if !(200..300).contains(&status) {
        return Ok(Looked::Failed(format!("http status {status}")));
    }
    if store.mark_page_live(page.page_id).await? {
        report.back.push(page.page_url.clone());
    }
    let body = store.last_body_evidence(&page.page_url).await?;
    let seen = PageSeen {
        url,
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
    Ok(Looked::Decided)
}

/// Bodies mode: a conditional GET; 304 re-decided from the kept body
/// evidence, a 2xx from the body itself (a new body stored as a version),
/// 404/410 gone. The fetch, version, verdicts and schedule commit together.
#[allow(clippy::too_many_arguments)]
async fn revisit_page(
    store: &Store,
    session: &Session,
    hook: &Signals,
    robots: &super::crawler::OriginRobots,
    url: &Url,
    page: &RecheckPage,
    sp: &StoredPage,
    old: &[VerdictRow],
    opts: &RecheckOptions,
    report: &mut RecheckReport,
) -> Result<Looked, RecheckError> {
    let Revisited {
        fetched: f,
        record,
        changed,
        html,
    } = session.revisit(url, sp).await;
    if let Some((k, m)) = &f.error {
        return Ok(Looked::Failed(format!("{}: {m}", k.as_str())));
    }
    let status = f.status.unwrap_or(0);
    let now = now_unix();
    let current = opts.revisit.current_interval(sp, &page.origin);
    let schedule = |changed: bool| {
        let interval_secs = opts.revisit.next_interval(current, changed);
        ScheduleUpdate {
            interval_secs,
            next_due_at: now.saturating_add(interval_secs),
            last_status: f.status,
            last_changed: changed,
        }
    };
    let is_gone = matches!(status, 404 | 410);
    if !is_gone && status != 304 && !(200..300).contains(&status) {
        return Ok(Looked::Failed(format!("http status {status}")));
    }
    let mut check = CheckRecord {
        page: sp,
        run_id: report.run_id,
        fetch: &record,
        version: None,
        consent: None,
        // A gone page changed as much as a page can.
        schedule: schedule(is_gone),
        budget: session.link_budget(),
        now,
    };
    if is_gone {
        store.record_check(check).await?;
        gone(store, page, status, report).await?;
        return Ok(Looked::Gone);
    }
    if store.mark_page_live(page.page_id).await? {
        report.back.push(page.page_url.clone());
    }
    let fetch_ref = FetchRef {
        fetch_id: None,
        url: f.final_url.to_string(),
        status: f.status,
        fetched_at: f.fetched_at,
        body_sha256: record.body_sha256.clone(),
    };
    if status == 304 {
        // Not modified: the stored headers stand, updated by those the 304
        // repeats; the body evidence is the last full fetch's.
        let mut headers = sp.headers.clone();
        for (n, v) in &f.headers {
            headers.retain(|(m, _)| !m.eq_ignore_ascii_case(n));
            headers.push((n.clone(), v.clone()));
        }
        let body = store.last_body_evidence(&page.page_url).await?;
        let seen = PageSeen {
            url,
            page_id: Some(page.page_id),
            fetch: Some(fetch_ref),
            headers: &headers,
            html: None,
        };
        let consent = hook.assess_kept(&seen, &robots.seen(), &body, now).await?;
        check.consent = Some(&consent);
        store.record_check(check).await?;
        report.unchanged.push(page.page_url.clone());
        return Ok(Looked::Decided);
    }
    let seen = PageSeen {
        url,
        page_id: Some(page.page_id),
        fetch: Some(fetch_ref),
        headers: &f.headers,
        html: html.as_deref(),
    };
    let consent = hook.assess(&seen, &robots.seen(), now).await?;
    check.consent = Some(&consent);
    match changed {
        None => {
            check.schedule = schedule(false);
            store.record_check(check).await?;
            report.same_body.push(page.page_url.clone());
        }
        Some((p, mut links)) => {
            let signals_changed = signals_diff(old, &consent.verdicts);
            check.schedule = schedule(true);
            check.version = Some(NewVersion {
                page: &p,
                links: &mut links,
                signals_changed: &signals_changed,
            });
            let done = store.record_check(check).await?;
            report.new_urls += done.new_urls;
            if let Some(version_id) = done.version_id {
                report.changed.push(ChangedPage {
                    url: page.page_url.clone(),
                    page_id: page.page_id,
                    version_id,
                    old_text_sha256: sp.text_sha256.clone(),
                    new_text_sha256: p.text_sha256.clone(),
                    signals_changed,
                });
            }
        }
    }
    Ok(Looked::Decided)
}

/// Revokes every purpose whose verdict went from usable to excluded or
/// deferred (one cascade for every signal: retrieval, answer flags,
/// exports' `removed_since_version`); reports the ones allowed again.
async fn revoke_changed(
    store: &Store,
    page: &RecheckPage,
    old: &[VerdictRow],
    new: &[VerdictRow],
    report: &mut RecheckReport,
) -> Result<(), RecheckError> {
    for n in new {
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
    Ok(())
}

/// The consent hook for a policy given on the command line.
async fn signals_from(
    store: &Store,
    session: &Session,
    p: &ConsentPolicy,
) -> Result<Signals, RecheckError> {
    Ok(Signals::new(
        store.clone(),
        session.conduct(),
        p.policy.clone(),
        &p.bytes,
        super::robots::PRODUCT_TOKEN,
        now_unix(),
    )
    .await?)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::refresh::Schedule;

    fn stored(fetched_at: i64, schedule: Option<Schedule>) -> StoredPage {
        StoredPage {
            page_id: 1,
            url: "http://127.0.0.1/a".into(),
            frontier_id: 1,
            depth: 0,
            fetch_id: 1,
            fetched_at,
            text_sha256: String::new(),
            content_sha256: String::new(),
            headers: Vec::new(),
            schedule,
        }
    }

    fn policy() -> RevisitPolicy {
        RevisitPolicy {
            default_secs: 1000,
            min_secs: 100,
            max_secs: 5000,
            per_origin: vec![("http://slow.test".into(), 4000)],
            all: false,
        }
    }

    #[test]
    fn intervals_shrink_on_change_grow_without_and_stay_in_bounds() {
        let p = policy();
        assert_eq!(p.next_interval(1000, true), 800);
        assert_eq!(p.next_interval(1000, false), 1200);
        assert_eq!(p.next_interval(110, true), 100, "never below the minimum");
        assert_eq!(
            p.next_interval(4900, false),
            5000,
            "never above the maximum"
        );
        // A tiny interval still moves (the step is at least a second).
        let q = RevisitPolicy {
            min_secs: 0,
            ..policy()
        };
        assert_eq!(q.next_interval(1, false), 2);
        assert_eq!(q.next_interval(0, true), 0);
        assert_eq!(p.next_interval(i64::MAX, false), 5000, "no overflow");
        // Bounds given the wrong way round: the minimum wins.
        let r = RevisitPolicy {
            min_secs: 10,
            max_secs: 5,
            ..policy()
        };
        assert_eq!(r.bounded(1000), 10);
    }

    #[test]
    fn a_page_is_due_its_interval_after_its_last_check() {
        let p = policy();
        // Never revisited: its origin's default after its fetch.
        assert!(!p.due(&stored(10_000, None), "http://a.test", 10_999));
        assert!(p.due(&stored(10_000, None), "http://a.test", 11_000));
        assert!(!p.due(&stored(10_000, None), "http://slow.test", 11_000));
        assert!(p.due(&stored(10_000, None), "http://slow.test", 14_000));
        // Revisited: its own interval (bounded) after the last check.
        let s = Schedule {
            interval_secs: 50,
            last_checked_at: 20_000,
            next_due_at: 20_050,
        };
        assert!(!p.due(&stored(10_000, Some(s)), "http://a.test", 20_099));
        assert!(p.due(&stored(10_000, Some(s)), "http://a.test", 20_100));
        let all = RevisitPolicy { all: true, ..p };
        assert!(all.due(&stored(10_000, Some(s)), "http://a.test", 0));
    }

    #[test]
    fn signal_changes_are_the_reasons_that_came_and_went() {
        let old_row = |purpose: &str, reasons: &[&str]| VerdictRow {
            id: 1,
            set_id: 1,
            page_url: "u".into(),
            purpose: purpose.into(),
            decision: "allowed".into(),
            conditions: vec![],
            reasons: reasons.iter().map(|s| s.to_string()).collect(),
            evidence_ids: vec![],
            policy_id: "p".into(),
            policy_sha256: "s".into(),
            decided_at: 0,
        };
        let v = |purpose: policy::Purpose, reasons: &[&str]| policy::verdict::Verdict {
            purpose,
            decision: Decision::Allowed,
            conditions: vec![],
            reasons: reasons.iter().map(|s| s.to_string()).collect(),
            evidence: vec![],
            policy_id: "p".into(),
            policy_sha256: "s".into(),
        };
        let old = vec![
            old_row("rag_attributed", &["licence.by"]),
            old_row("train", &["licence.by"]),
        ];
        let new = policy::verdict::PageVerdicts {
            search_index: v(policy::Purpose::SearchIndex, &[]),
            rag_attributed: v(policy::Purpose::RagAttributed, &["meta.noai"]),
            train: v(policy::Purpose::Train, &["meta.noai", "licence.by"]),
        };
        assert_eq!(signals_diff(&old, &new), vec!["+meta.noai".to_string()]);
        let gone = policy::verdict::PageVerdicts {
            search_index: v(policy::Purpose::SearchIndex, &[]),
            rag_attributed: v(policy::Purpose::RagAttributed, &[]),
            train: v(policy::Purpose::Train, &[]),
        };
        assert_eq!(signals_diff(&old, &gone), vec!["-licence.by".to_string()]);
    }
}
