//! The evaluator: `(evidence, policy, now) -> verdict per purpose`, pure.
//!
//! Spec §8.1: step 3 normalises each observation to signal codes (facts,
//! the stable reason codes); step 4 combines per purpose (any exclude wins
//! over any grant, across protocols; inside TDMRep the later technique
//! overrides the earlier first, §4.4); step 5 applies the regime: in
//! `eu_opt_out` no signal means allowed, in `strict_opt_in` a grant is needed
//! (else `licence.none`).

use std::collections::BTreeMap;

use super::codes::Code;
use super::config::{After30d, CondKind, Effect, Knobs, Policy, Regime};
use super::evidence::{
    AgentCategory, Evidence, LicenceFinding, LicenceKind, Location, Observation, RobotsOutcome,
    Scope,
};
use super::verdict::{Condition, Decision, PageVerdicts, Purpose, Verdict};
use super::{agents, aipref, tdmrep};

/// One normalised signal: a code, an optional number (`max-snippet`), and
/// the evidence rows it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    pub code: Code,
    pub param: Option<i64>,
    pub evidence: Vec<usize>,
}

/// Spec §8.4: after 30 days unreachable, `robots.after_30d` decides.
const THIRTY_DAYS: i64 = 30 * 24 * 3600;

/// The licence decisions use (signals.md §7.4): the best-ranked observation of the
/// page (media-scoped ones excluded); on a same-rank disagreement the most
/// restrictive, with `conflict = true`.
///
/// The one licence choice: verdicts, exports, `audit licences|sources` and
/// answer citations all name the licence this returns. `evidence` in order
/// (the index returned is its position).
pub fn page_licence<'a>(
    evidence: impl IntoIterator<Item = &'a Evidence>,
) -> Option<(usize, &'a LicenceFinding, bool)> {
    let found: Vec<(usize, &LicenceFinding)> = evidence
        .into_iter()
        .enumerate()
        .filter_map(|(i, e)| match &e.observation {
            Observation::Licence(f) if f.scope != "media" => Some((i, f)),
            _ => None,
        })
        .collect();
    let best = found.iter().map(|(_, f)| f.rank).min()?;
    let top: Vec<&(usize, &LicenceFinding)> =
        found.iter().filter(|(_, f)| f.rank == best).collect();
    let conflict = top
        .iter()
        .any(|(_, f)| f.effective_id() != top[0].1.effective_id());
    let chosen = top
        .iter()
        .max_by_key(|(_, f)| {
            let pd = u8::from(f.kind == LicenceKind::Unknown);
            (f.flags.restrictiveness(), pd)
        })
        .expect("non-empty");
    Some((chosen.0, chosen.1, conflict))
}

/// Spec §8.1 step 3: every fact the evidence supports under these knobs.
pub fn facts(evidence: &[Evidence], knobs: &Knobs, now: i64) -> Vec<Fact> {
    let mut out: Vec<Fact> = Vec::new();
    let mut push = |code: Code, param: Option<i64>, i: usize| {
        match out.iter_mut().find(|f| f.code == code) {
            Some(f) => {
                if !f.evidence.contains(&i) {
                    f.evidence.push(i);
                }
                // `max-snippet`: the smallest cap wins (signals.md §3.3).
                if let (Some(old), Some(new)) = (f.param, param) {
                    f.param = Some(old.min(new));
                }
            }
            None => out.push(Fact {
                code,
                param,
                evidence: vec![i],
            }),
        }
    };

    let mut tdm_file: Option<(usize, Option<u8>)> = None;
    let mut tdm_file_unreachable: Option<usize> = None;
    let mut tdm_header: Option<(usize, Option<u8>)> = None;
    let mut tdm_meta: Option<(usize, Option<u8>)> = None;
    let mut usage: Vec<(usize, &BTreeMap<String, String>)> = Vec::new();
    let mut signals: Vec<(usize, &BTreeMap<String, String>)> = Vec::new();

    for (i, e) in evidence.iter().enumerate() {
        match &e.observation {
            Observation::RobotsAccess {
                outcome,
                status,
                explicit_allow,
                from_cache,
                cache_age_secs,
            } => {
                let stale = *from_cache && cache_age_secs.is_some_and(|a| a > THIRTY_DAYS);
                let outcome = match (stale, knobs.robots_after_30d) {
                    (true, After30d::Unavailable) => RobotsOutcome::Unavailable,
                    (true, After30d::Disallow) => RobotsOutcome::Unreachable,
                    _ => *outcome,
                };
                match outcome {
                    RobotsOutcome::Disallowed => push(Code::RobotsDisallow, None, i),
                    RobotsOutcome::Unreachable => {
                        let is_429 = *status == Some(429);
                        if !is_429 || knobs.robots_treat_429_as_unreachable {
                            push(Code::RobotsUnreachable, None, i)
                        }
                    }
                    RobotsOutcome::Allowed if *explicit_allow => {
                        push(Code::RobotsAllowExplicit, None, i)
                    }
                    _ => {}
                }
            }
            Observation::AiIntent { category, agents }
                if knobs.ai_intent_enabled
                    && *category != AgentCategory::AiOther
                    && agents.iter().any(|a| a.path_blocked) =>
            {
                if let Some(code) = Code::lookup(&format!("ai_intent.{}", category.as_str())) {
                    push(code, None, i);
                }
            }
            Observation::Directives(d) => {
                if e.location == Location::HtmlBody {
                    continue; // recorded, not acted on (signals.md §3.3)
                }
                match &e.scope {
                    Scope::OtherToken(name) => {
                        // An AI agent's tag feeds AI intent (signals.md §3.3).
                        if knobs.ai_intent_enabled
                            && d.restricts()
                            && let Some(agent) = agents::agents().lookup(name)
                        {
                            for c in &agent.categories {
                                if *c != AgentCategory::AiOther {
                                    if let Some(code) =
                                        Code::lookup(&format!("ai_intent.{}", c.as_str()))
                                    {
                                        push(code, None, i);
                                    }
                                }
                            }
                        }
                    }
                    _ => {
                        if d.noindex {
                            push(Code::MetaNoindex, None, i);
                        }
                        if d.unavailable_after.is_some_and(|t| t <= now) {
                            push(Code::MetaUnavailableAfter, None, i);
                        }
                        if d.nosnippet || d.max_snippet == Some(0) {
                            push(Code::MetaNosnippet, None, i);
                        }
                        if let Some(n) = d.max_snippet
                            && n > 0
                        {
                            push(Code::MetaMaxSnippet, Some(n), i);
                        }
                        if d.noarchive {
                            push(Code::MetaNoarchive, None, i);
                        }
                        if d.nocache {
                            push(Code::MetaNocache, None, i);
                        }
                        if d.noai {
                            push(Code::MetaNoai, None, i);
                        }
                        if d.disallow_ai_training {
                            push(Code::MetaDisallowaitraining, None, i);
                        }
                    }
                }
            }
            Observation::Tdmrep { reservation, .. } => match e.signal.as_str() {
                "tdmrep.json" => tdm_file = Some((i, *reservation)),
                "tdmrep.header" => tdm_header = Some((i, *reservation)),
                _ => tdm_meta = Some((i, *reservation)),
            },
            Observation::Unreachable { .. } if e.signal == "tdmrep.json" => {
                tdm_file_unreachable = Some(i)
            }
            Observation::Aipref { prefs, .. } => {
                // `*` group while we have our own group (signals.md §5.4 `OURS`).
                let generic_pref = e.signal.ends_with("-generic");
                if !generic_pref || knobs.aipref_honour_star_group_too {
                    usage.push((i, prefs));
                }
            }
            Observation::ContentSignal { prefs } => {
                let generic_pref = e.signal.ends_with("-generic");
                if !generic_pref || knobs.aipref_honour_star_group_too {
                    signals.push((i, prefs));
                }
            }
            Observation::AiTxt { decision, .. } => match decision.as_str() {
                "disallow" => push(Code::AiTxtDisallow, None, i),
                "allow" => push(Code::AiTxtAllow, None, i),
                _ => {}
            },
            Observation::Rsl { terms: Some(t) } => {
                for p in &t.prohibits {
                    if let Some(code) = Code::lookup(&format!("rsl.prohibits.{p}")) {
                        push(code, None, i);
                    }
                }
                let paid = t.server.is_some()
                    || t.payment
                        .as_deref()
                        .is_some_and(|p| !matches!(p, "free" | "attribution"));
                if !t.permits.is_empty() {
                    if paid {
                        push(Code::RslLicenceRequired, None, i);
                    } else {
                        for p in &t.permits {
                            if let Some(code) = Code::lookup(&format!("rsl.permits.{p}")) {
                                push(code, None, i);
                            }
                        }
                        if t.payment.as_deref() == Some("attribution") {
                            push(Code::RslAttribution, None, i);
                        }
                    }
                }
            }
            Observation::NlReservation { .. } if knobs.honour_natural_language_reservations => {
                push(Code::NlReservation, None, i);
            }
            _ => {}
        }
    }

    // TDMRep (signals.md §4.4): file → header → meta, later setting wins, silence never resets.
    let sources = [tdm_file, tdm_header, tdm_meta];
    let combined = tdmrep::combine(
        &sources
            .iter()
            .map(|s| s.and_then(|(_, r)| r))
            .collect::<Vec<_>>(),
    );
    let deciding: Vec<usize> = sources
        .iter()
        .rev()
        .find_map(|s| s.filter(|(_, r)| r.is_some()).map(|(i, _)| vec![i]))
        .unwrap_or_default();
    match combined {
        Some(1) => deciding
            .iter()
            .for_each(|&i| push(Code::TdmrepReserved, None, i)),
        Some(_) => deciding
            .iter()
            .for_each(|&i| push(Code::TdmrepUnreserved, None, i)),
        None => {
            if let Some(i) = tdm_file_unreachable {
                push(Code::TdmrepUnreachable, None, i);
            }
        }
    }

    // AIPREF: any `n` wins, else any `y` (vocab-07 "Combining Preferences").
    let combined = aipref::combine(usage.iter().map(|(_, p)| *p));
    for (label, v) in &combined {
        if v != "y" && v != "n" {
            continue;
        }
        let rows: Vec<usize> = usage
            .iter()
            .filter(|(_, p)| p.get(label) == Some(v))
            .map(|(i, _)| *i)
            .collect();
        let code = if aipref::LABELS.contains(&label.as_str()) {
            Code::lookup(&format!("aipref.{label}={v}"))
        } else if v == "n"
            && knobs.aipref_legacy_labels_reserve_training
            && aipref::LEGACY_TRAINING_LABELS.contains(&label.as_str())
        {
            Code::lookup(&format!("aipref.legacy.{label}=n"))
        } else {
            None
        };
        if let Some(code) = code {
            rows.iter().for_each(|&i| push(code, None, i));
        }
    }
    let combined = aipref::combine_signal(signals.iter().map(|(_, p)| *p));
    for (key, v) in &combined {
        if v != "yes" && v != "no" {
            continue;
        }
        for (i, p) in &signals {
            if p.get(key) == Some(v) {
                if let Some(code) = Code::lookup(&format!("content_signal.{key}={v}")) {
                    push(code, None, *i);
                }
            }
        }
    }

    // The page licence (signals.md §7.4).
    if let Some((i, f, conflict)) = page_licence(evidence) {
        let mut codes = Vec::new();
        match f.kind {
            LicenceKind::PublicDomain => codes.push(Code::LicencePublicDomain),
            LicenceKind::OpenSpdx => codes.push(Code::LicenceOpen),
            LicenceKind::CreativeCommons => {
                if f.flags.by {
                    codes.push(Code::LicenceBy);
                }
                if f.flags.sa {
                    codes.push(Code::LicenceSa);
                }
                if f.flags.nc && knobs.commercial_use {
                    codes.push(Code::LicenceNc);
                }
                if f.flags.nd {
                    codes.push(Code::LicenceNd);
                }
            }
            LicenceKind::Unknown => {}
        }
        let rows: Vec<usize> = if conflict {
            evidence
                .iter()
                .enumerate()
                .filter(
                    |(_, e)| matches!(&e.observation, Observation::Licence(g) if g.rank == f.rank),
                )
                .map(|(j, _)| j)
                .collect()
        } else {
            vec![i]
        };
        for c in codes {
            for &j in &rows {
                push(c, None, j);
            }
        }
        if conflict {
            for &j in &rows {
                push(Code::LicenceConflict, None, j);
            }
        }
    }
    out
}

/// Evaluates one page: three verdicts under `policy` at time `now` (Unix seconds).
pub fn evaluate(evidence: &[Evidence], policy: &Policy, now: i64) -> PageVerdicts {
    let facts = facts(evidence, &policy.knobs, now);
    let one = |p: Purpose| verdict_for(p, &facts, evidence, policy);
    PageVerdicts {
        search_index: one(Purpose::SearchIndex),
        rag_attributed: one(Purpose::RagAttributed),
        train: one(Purpose::Train),
    }
}

fn verdict_for(p: Purpose, facts: &[Fact], evidence: &[Evidence], policy: &Policy) -> Verdict {
    let mut excluded: Vec<&Fact> = Vec::new();
    let mut deferred: Vec<&Fact> = Vec::new();
    let mut granted: Vec<&Fact> = Vec::new();
    let mut conditioned: Vec<&Fact> = Vec::new();
    let mut conditions: Vec<Condition> = Vec::new();
    for f in facts {
        let cell = policy.cell(f.code, p);
        match cell.effect {
            Effect::Exclude => excluded.push(f),
            Effect::Defer => deferred.push(f),
            Effect::Grant => granted.push(f),
            Effect::None => {}
        }
        if !cell.conditions.is_empty() {
            conditioned.push(f);
        }
        for c in &cell.conditions {
            let cond = match c {
                CondKind::Attribution => Condition::Attribution,
                CondKind::LicenceNotice => Condition::LicenceNotice,
                CondKind::AttributionManifest => Condition::AttributionManifest,
                CondKind::ShareAlike => Condition::ShareAlike,
                CondKind::NoQuote => Condition::NoQuote,
                CondKind::MaxQuote => match f.param {
                    Some(n) => Condition::MaxQuoteChars(n.clamp(0, u32::MAX as i64) as u32),
                    None => continue,
                },
                CondKind::SnippetLengthQuotes => Condition::SnippetLengthQuotes,
                CondKind::VerbatimOnly => Condition::VerbatimOnly,
            };
            if !conditions.contains(&cond) {
                conditions.push(cond);
            }
        }
    }
    let conflict = facts.iter().find(|f| f.code == Code::LicenceConflict);
    let finish = |decision: Decision,
                  used: Vec<&Fact>,
                  extra_reason: Option<Code>,
                  conds: Vec<Condition>| {
        let mut reasons: Vec<String> = Vec::new();
        let mut rows: Vec<usize> = Vec::new();
        for f in &used {
            if !reasons.iter().any(|r| r == f.code.as_str()) {
                reasons.push(f.code.to_string());
            }
            for &i in &f.evidence {
                if !rows.contains(&i) {
                    rows.push(i);
                }
            }
        }
        if let Some(r) = extra_reason {
            reasons.push(r.to_string());
        }
        if let Some(c) = conflict
            && reasons.iter().any(|r| r.starts_with("licence."))
        {
            reasons.push(c.code.to_string());
            for &i in &c.evidence {
                if !rows.contains(&i) {
                    rows.push(i);
                }
            }
        }
        if rows.is_empty() {
            // No signal decided: the verdict rests on everything looked at.
            rows = (0..evidence.len()).collect();
        }
        rows.sort_unstable();
        Verdict {
            purpose: p,
            decision,
            conditions: conds,
            reasons,
            evidence: rows,
            policy_id: policy.id.clone(),
            policy_sha256: policy.sha256.clone(),
        }
    };
    if !excluded.is_empty() {
        return finish(Decision::Excluded, excluded, None, Vec::new());
    }
    if !deferred.is_empty() {
        return finish(Decision::Deferred, deferred, None, Vec::new());
    }
    if policy.regime == Regime::StrictOptIn && granted.is_empty() {
        return finish(
            Decision::Excluded,
            Vec::new(),
            Some(Code::LicenceNone),
            Vec::new(),
        );
    }
    // NoQuote makes any quote cap moot.
    if conditions.contains(&Condition::NoQuote) {
        conditions.retain(|c| !matches!(c, Condition::MaxQuoteChars(_)));
    }
    conditions.sort();
    let mut used = granted;
    for f in conditioned {
        if !used.contains(&f) {
            used.push(f);
        }
    }
    let decision = if conditions.is_empty() {
        Decision::Allowed
    } else {
        Decision::AllowedWithConditions
    };
    finish(decision, used, None, conditions)
}
