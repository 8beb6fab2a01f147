//! `byline audit recheck [--origin O]`: fetch every origin's consent files
//! and each stored page's headers again, re-evaluate, revoke the uses whose
//! owners have since opted out (see `crawl::recheck`). Also behind
//! `POST /v1/admin/recheck`.

use std::process::ExitCode;

use anyhow::Context;
use serde_json::{Value, json};
use url::Url;

use crate::crawl::CrawlConfig;
use crate::crawl::recheck::{self, RecheckOptions, RecheckReport, RevisitPolicy};
use crate::store::Store;

/// Client settings for a recheck: the crawler's defaults, politeness
/// floor `min_delay_ms` between two requests to one origin.
pub fn config(contact: Option<&str>, min_delay_ms: Option<u64>) -> anyhow::Result<CrawlConfig> {
    let mut c = CrawlConfig::new(Vec::new());
    if let Some(contact) = contact {
        Url::parse(contact).with_context(|| format!("--contact {contact:?} is not a URL"))?;
        c.contact_url = Some(contact.to_string());
    }
    if let Some(ms) = min_delay_ms {
        c.min_delay_ms = ms;
    }
    Ok(c)
}

/// Runs a recheck of `origin` (or of every origin) and returns its report.
pub async fn run_recheck(
    store: &Store,
    origin: Option<&str>,
    cfg: CrawlConfig,
) -> anyhow::Result<RecheckReport> {
    run_recheck_with(store, origin, cfg, &RecheckOptions::default()).await
}

/// [`run_recheck`] with options (bodies, schedule, policy).
pub async fn run_recheck_with(
    store: &Store,
    origin: Option<&str>,
    cfg: CrawlConfig,
    opts: &RecheckOptions,
) -> anyhow::Result<RecheckReport> {
    let origin = origin.map(recheck::parse_origin).transpose()?;
    Ok(recheck::recheck_with(store, cfg, origin.as_deref(), opts).await?)
}

/// The report as JSON (what `--json` prints and the admin API returns).
pub fn report_json(r: &RecheckReport) -> Value {
    let mut v = serde_json::to_value(r).expect("report serialises");
    v["revoked_per_purpose"] = json!(
        r.revoked_per_purpose()
            .into_iter()
            .collect::<std::collections::BTreeMap<_, _>>()
    );
    v["body_evidence"] = json!(if r.mode == "bodies" {
        "refetched with a conditional GET (kept from the last full fetch on 304)"
    } else {
        "kept from the last full fetch (headers refetched with HEAD)"
    });
    v["nothing_checked"] = json!(r.nothing_checked());
    v
}

/// The exit status of a finished recheck: 4 when nothing could be checked.
pub fn status(r: &RecheckReport) -> ExitCode {
    if r.nothing_checked() {
        super::exit::Status::NothingChecked.into()
    } else {
        ExitCode::SUCCESS
    }
}

/// `byline audit recheck`.
pub async fn run(
    store: &Store,
    origin: Option<&str>,
    cfg: CrawlConfig,
    bodies: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let opts = RecheckOptions {
        bodies,
        revisit: RevisitPolicy {
            all: true,
            ..RevisitPolicy::default()
        },
        policy: None,
    };
    let r = run_recheck_with(store, origin, cfg, &opts).await?;
    if bodies {
        // Changed pages have new text: split it into passages.
        crate::index::refresh(store)
            .await
            .context("refreshing the passage index")?;
    }
    if json {
        outln!("{}", report_json(&r));
        return Ok(status(&r));
    }
    if r.origins.is_empty() {
        outln!(
            "nothing to recheck: no stored pages{}",
            match origin {
                Some(o) => format!(" for {o}"),
                None => String::new(),
            }
        );
        return Ok(ExitCode::SUCCESS);
    }
    for o in &r.origins {
        outln!(
            "origin {}: robots.txt version {}, {} page(s)",
            o.origin,
            o.robots_version_id,
            o.pages
        );
    }
    for x in &r.revoked {
        outln!(
            "revoked  {} for {}: {} -> {} ({}) revocation {}",
            x.url,
            x.purpose,
            x.old_decision,
            x.new_decision,
            x.reasons.join(", "),
            x.revocation_id
        );
    }
    for x in &r.restored {
        outln!(
            "restored {} for {}: {} -> {} (verdict {})",
            x.url,
            x.purpose,
            x.old_decision,
            x.new_decision,
            x.new_verdict_id
        );
    }
    print_pages(&r);
    let per: Vec<String> = r
        .revoked_per_purpose()
        .iter()
        .map(|(p, n)| format!("{p} {n}"))
        .collect();
    outln!(
        "{} origin(s) checked, {} page(s) re-evaluated, {} use(s) revoked{}, {} restored, {} answer(s) flagged, {} error(s){}",
        r.origins.len(),
        r.pages_reevaluated,
        r.revoked.len(),
        if per.is_empty() {
            String::new()
        } else {
            format!(" ({})", per.join(", "))
        },
        r.restored.len(),
        r.flagged_answers.len(),
        r.errors.len(),
        if r.pages_forgotten > 0 {
            format!(", {} forgotten page(s) skipped", r.pages_forgotten)
        } else {
            String::new()
        }
    );
    if r.nothing_checked() {
        outln!("nothing was checked: every request failed");
    }
    Ok(status(&r))
}

/// The per-page lines shared with `crawl --refresh`: gone, unchanged,
/// changed and failed pages.
pub fn print_pages(r: &RecheckReport) {
    for g in &r.gone {
        outln!("gone     {} (status {})", g.url, g.status);
    }
    for u in &r.unchanged {
        outln!("unchanged {} (304 Not Modified)", u);
    }
    for c in &r.changed {
        outln!(
            "changed  {}: version {}{}",
            c.url,
            c.version_id,
            if c.signals_changed.is_empty() {
                String::new()
            } else {
                format!(" (signals {})", c.signals_changed.join(" "))
            }
        );
    }
    for e in &r.errors {
        outln!("error    {}: {}", e.url, e.error);
    }
}
