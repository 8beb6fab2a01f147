//! Evidence from the per-origin files: robots.txt (the consent signals in
//! it, signals.md §2, §5.4, §5.6, §6.2), `/.well-known/tdmrep.json` (§4),
//! `/ai.txt` (§6.1), RSL documents (§6.2) and `/llms.txt` (§6.3).
//!
//! Pure: the crawler fetches the files and hands the outcome in.

use super::evidence::{
    AgentBlock, AgentCategory, BlockScope, Evidence, Location, Observation, RobotsOutcome, Scope,
    StatusLabel,
};
use super::robotstxt::{self, RobotsFile, Selected};
use super::{aipref, rsl, tdmrep};
use crate::crawl::robots::pattern;

/// The outcome of fetching one origin file, as the crawler saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileFetch {
    /// 2xx with a body (decoded as UTF-8, lossy).
    Body { status: u16, body: String },
    /// 4xx other than 429: the origin does not publish the file.
    Missing { status: u16 },
    /// 5xx, 429 or a network error.
    Failed { status: Option<u16>, error: String },
}

impl FileFetch {
    /// Classifies an HTTP status with an optional body (§1.2, §4.5).
    pub fn from_status(status: u16, body: String) -> FileFetch {
        match status {
            200..=299 => FileFetch::Body { status, body },
            429 => FileFetch::Failed {
                status: Some(status),
                error: "429 too many requests".into(),
            },
            400..=499 => FileFetch::Missing { status },
            _ => FileFetch::Failed {
                status: Some(status),
                error: format!("status {status}"),
            },
        }
    }
}

/// The robots.txt access row for our own token (signals.md §1.2, §8.1 step 1).
pub fn robots_access(
    outcome: RobotsOutcome,
    status: Option<u16>,
    explicit_allow: bool,
    from_cache: bool,
    cache_age_secs: Option<i64>,
    raw: &str,
) -> Evidence {
    Evidence::new(
        "robots.txt",
        StatusLabel::Standard,
        Location::RobotsTxt,
        Scope::OurToken,
        raw,
        Observation::RobotsAccess {
            outcome,
            status,
            explicit_allow,
            from_cache,
            cache_age_secs,
        },
    )
}

/// Whether a group naming `token` explicitly has an `Allow` rule that decides
/// `path` (signals.md §8.3 last grant row, A6).
pub fn explicit_allow(robots_body: &str, token: &str, path: &str) -> bool {
    let file = RobotsFile::parse(robots_body);
    let (rules, sel) = file.rules_for(token);
    sel == Selected::Own && matches!(robotstxt::decide(&rules, path), Some((true, _)))
}

/// The consent signals inside one robots.txt body for one page: AI intent
/// (§2.3), `Content-Usage` (§5.4), `Content-Signal` (§5.6), `License:` (§6.2).
/// Every signal looked for and not found gives an `Absent` row.
pub fn robots_signals(robots_body: &str, page_url: &str, token: &str) -> Vec<Evidence> {
    let file = RobotsFile::parse(robots_body);
    let path = pattern::path_of(page_url);
    let mut out = Vec::new();

    let intent = robotstxt::ai_intent(&file, &path);
    if intent.is_empty() {
        out.push(Evidence::new(
            "ai_intent",
            StatusLabel::Ours,
            Location::RobotsTxt,
            Scope::Generic,
            "",
            Observation::Absent,
        ));
    }
    for (category, agents) in intent {
        let raw = agents
            .iter()
            .map(|a| a.agent.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        out.push(Evidence::new(
            "ai_intent",
            StatusLabel::Ours,
            Location::RobotsTxt,
            Scope::OtherToken(format!("{}-agents", category.as_str())),
            &raw,
            Observation::AiIntent { category, agents },
        ));
    }

    // `DisallowAITraining:` in the group that applies to us (signals.md §1.7): an
    // expired draft, recorded as AI-intent evidence for `train`.
    {
        let (rules, _) = file.rules_for(token);
        let dat: Vec<&robotstxt::Rule> = rules
            .into_iter()
            .filter(|r| r.kind == robotstxt::RuleKind::DisallowAiTraining)
            .collect();
        if let Some(hit) = dat
            .iter()
            .filter(|r| pattern::rule_matches(&r.value, &path))
            .max_by_key(|r| pattern::specificity(&r.value))
        {
            out.push(Evidence::new(
                "ai_intent",
                StatusLabel::Draft,
                Location::RobotsTxt,
                Scope::Generic,
                &hit.raw,
                Observation::AiIntent {
                    category: AgentCategory::AiTrain,
                    agents: vec![AgentBlock {
                        agent: "DisallowAITraining".into(),
                        scope: if hit.value == "/" {
                            BlockScope::All
                        } else {
                            BlockScope::Some
                        },
                        path_blocked: true,
                    }],
                },
            ));
        }
    }

    // Content-Usage and Content-Signal: our group, else `*`; with our own
    // group, the `*` group is recorded as a generic preference as well.
    let (own_rules, sel) = file.rules_for(token);
    // The `*` group's preferences while we have our own group are recorded
    // under a `-generic` signal name: `aipref.honour_star_group_too` decides.
    let mut rule_sets: Vec<(Scope, Vec<&robotstxt::Rule>, &str)> = Vec::new();
    match sel {
        Selected::Own => {
            rule_sets.push((Scope::OurToken, own_rules, ""));
            rule_sets.push((Scope::Generic, file.star_rules(), "-generic"));
        }
        Selected::Star => rule_sets.push((Scope::Generic, own_rules, "")),
        Selected::Nothing => {}
    }
    let mut saw_usage = false;
    let mut saw_signal = false;
    for (scope, rules, suffix) in &rule_sets {
        let usage = robotstxt::content_usage_for(rules, &path);
        if !usage.is_empty() {
            saw_usage = true;
            let mut all = Vec::new();
            let mut errors = Vec::new();
            for r in &usage {
                let (_, pref) = robotstxt::split_content_usage(&r.value);
                let (p, e) = aipref::parse_content_usage(&pref);
                all.push(p);
                errors.extend(e);
            }
            let prefs = aipref::combine(&all);
            let (p, _) = robotstxt::split_content_usage(&usage[0].value);
            let raw = usage
                .iter()
                .map(|r| r.raw.as_str())
                .collect::<Vec<_>>()
                .join("\n");
            out.push(
                Evidence::new(
                    &format!("content-usage.robots{suffix}"),
                    StatusLabel::Draft,
                    Location::RobotsTxt,
                    scope.clone(),
                    &raw,
                    Observation::Aipref {
                        prefs,
                        path: Some(p),
                    },
                )
                .with_errors(errors),
            );
        }
        let signals: Vec<&&robotstxt::Rule> = rules
            .iter()
            .filter(|r| r.kind == robotstxt::RuleKind::ContentSignal)
            .collect();
        if !signals.is_empty() {
            saw_signal = true;
            let mut all = Vec::new();
            let mut errors = Vec::new();
            for r in &signals {
                let (p, e) = aipref::parse_content_signal(&r.value);
                all.push(p);
                errors.extend(e);
            }
            let raw = signals
                .iter()
                .map(|r| r.raw.as_str())
                .collect::<Vec<_>>()
                .join("\n");
            out.push(
                Evidence::new(
                    &format!("content-signal{suffix}"),
                    StatusLabel::Vendor,
                    Location::RobotsTxt,
                    scope.clone(),
                    &raw,
                    Observation::ContentSignal {
                        prefs: aipref::combine_signal(&all),
                    },
                )
                .with_errors(errors),
            );
        }
    }
    if !saw_usage {
        out.push(Evidence::new(
            "content-usage.robots",
            StatusLabel::Draft,
            Location::RobotsTxt,
            Scope::Generic,
            "",
            Observation::Absent,
        ));
    }
    if !saw_signal {
        out.push(Evidence::new(
            "content-signal",
            StatusLabel::Vendor,
            Location::RobotsTxt,
            Scope::Generic,
            "",
            Observation::Absent,
        ));
    }
    for l in &file.licenses {
        out.push(Evidence::new(
            "rsl.link",
            StatusLabel::Industry,
            Location::RobotsTxt,
            Scope::Generic,
            &format!("License: {l}"),
            Observation::RslLink { url: l.clone() },
        ));
    }
    out
}

fn fetch_failure(signal: &str, label: StatusLabel, fetch: &FileFetch) -> Option<Evidence> {
    match fetch {
        FileFetch::Body { .. } => None,
        FileFetch::Missing { status } => Some(Evidence::new(
            signal,
            label,
            Location::WellKnown,
            Scope::Generic,
            &format!("status {status}"),
            Observation::Absent,
        )),
        FileFetch::Failed { status, error } => Some(Evidence::new(
            signal,
            label,
            Location::WellKnown,
            Scope::Generic,
            error,
            Observation::Unreachable {
                status: *status,
                error: error.clone(),
            },
        )),
    }
}

/// `/.well-known/tdmrep.json` for one page (signals.md §4.2–4.5).
pub fn tdmrep_file(fetch: &FileFetch, page_url: &str) -> Evidence {
    if let Some(e) = fetch_failure("tdmrep.json", StatusLabel::CgFinal, fetch) {
        return e;
    }
    let FileFetch::Body { body, .. } = fetch else {
        unreachable!("failures handled above")
    };
    let file = tdmrep::parse_file(body);
    let path = pattern::path_of(page_url);
    let m = file.first_match(&path);
    Evidence::new(
        "tdmrep.json",
        StatusLabel::CgFinal,
        Location::WellKnown,
        Scope::Generic,
        body,
        Observation::Tdmrep {
            reservation: m.map(|r| r.reservation),
            policy: m.and_then(|r| r.policy.clone()),
            matched_location: m.map(|r| r.location.clone()),
        },
    )
    .with_errors(file.errors)
}

/// `/ai.txt` for one page (signals.md §6.1): robots.txt matching for `*` (and our
/// token if named); a body without any robots records is unrecognised.
pub fn ai_txt(fetch: &FileFetch, page_url: &str, token: &str) -> Evidence {
    if let Some(e) = fetch_failure("ai.txt", StatusLabel::Vendor, fetch) {
        return e;
    }
    let FileFetch::Body { body, .. } = fetch else {
        unreachable!("failures handled above")
    };
    let file = RobotsFile::parse(body);
    let mk = |o: Observation| {
        Evidence::new(
            "ai.txt",
            StatusLabel::Vendor,
            Location::WellKnown,
            Scope::Generic,
            body,
            o,
        )
    };
    if !file.has_records {
        return mk(Observation::AiTxtUnrecognised).with_errors(vec![
            "ai_txt.unrecognised: no User-Agent/Allow/Disallow lines".into(),
        ]);
    }
    let (rules, _) = file.rules_for(token);
    let path = pattern::path_of(page_url);
    let (decision, rule) = match robotstxt::decide(&rules, &path) {
        Some((true, r)) => ("allow", Some(r.raw.clone())),
        Some((false, r)) => ("disallow", Some(r.raw.clone())),
        None => ("none", None),
    };
    mk(Observation::AiTxt {
        decision: decision.into(),
        rule,
    })
}

/// An RSL document pointed to by robots.txt, a Link header or a link tag.
pub fn rsl_document(fetch: &FileFetch, doc_url: &str, page_url: &str) -> Evidence {
    let mk = |raw: &str, o: Observation| {
        Evidence::new(
            "rsl",
            StatusLabel::Industry,
            Location::WellKnown,
            Scope::Generic,
            raw,
            o,
        )
    };
    match fetch {
        FileFetch::Body { body, .. } => match rsl::terms_for(body, page_url) {
            Ok(terms) => mk(body, Observation::Rsl { terms }),
            Err(e) => mk(
                body,
                Observation::Unreachable {
                    status: None,
                    error: e.clone(),
                },
            )
            .with_errors(vec![e]),
        },
        FileFetch::Missing { status }
        | FileFetch::Failed {
            status: Some(status),
            ..
        } => mk(
            doc_url,
            Observation::Unreachable {
                status: Some(*status),
                error: format!("rsl.invalid: {doc_url} returned {status}"),
            },
        ),
        FileFetch::Failed {
            status: None,
            error,
        } => mk(
            doc_url,
            Observation::Unreachable {
                status: None,
                error: format!("rsl.invalid: {error}"),
            },
        ),
    }
}

/// `/llms.txt`: recorded with no effect (signals.md §6.3).
pub fn llms_txt(fetch: &FileFetch) -> Evidence {
    if let Some(e) = fetch_failure("llms.txt", StatusLabel::Vendor, fetch) {
        return e;
    }
    let FileFetch::Body { body, .. } = fetch else {
        unreachable!("failures handled above")
    };
    Evidence::new(
        "llms.txt",
        StatusLabel::Vendor,
        Location::WellKnown,
        Scope::Generic,
        body,
        Observation::NoEffect,
    )
}
