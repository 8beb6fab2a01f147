//! The consent reading of robots.txt *groups*: AI opt-out intent for other
//! agents (docs/signals.md "robots.txt"), AIPREF `Content-Usage` rules,
//! Cloudflare `Content-Signal` and RSL `License:` pointers. ai.txt uses the
//! same syntax.
//!
//! Lines, groups, agent matching and patterns are the crawler's own
//! (`crawl::robots`): one robots.txt parser. This module never decides our
//! access; it interprets what the file says to other agents.

use super::agents;
use super::evidence::{AgentBlock, AgentCategory, BlockScope};
use crate::crawl::robots::pattern;
pub use crate::crawl::robots::{
    FileRule as Rule, Group, RobotsFile, RuleKind, Selected, allowed, decide,
};

/// Spec §2.3 step 2: `all` / `some` / `none` for one agent's merged rules
/// (the Data Provenance Initiative's classification; rules with `?` ignored).
pub fn block_scope(rules: &[&Rule]) -> BlockScope {
    let pick = |k: RuleKind| -> Vec<&str> {
        let mut v: Vec<&str> = rules
            .iter()
            .filter(|r| r.kind == k && !r.value.is_empty() && !r.value.contains('?'))
            .map(|r| r.value.as_str())
            .collect();
        v.sort_unstable();
        v
    };
    let allows = pick(RuleKind::Allow);
    let disallows = pick(RuleKind::Disallow);
    if disallows.contains(&"/") && allows.is_empty() {
        BlockScope::All
    } else if disallows.is_empty() || allows == disallows {
        BlockScope::None
    } else {
        BlockScope::Some
    }
}

/// AI opt-out intent for one page path (signals.md §2.3): for each category, the
/// listed agents named explicitly in the file, with their block status.
/// Categories with no named agent are left out. `*` is never inherited.
pub fn ai_intent(file: &RobotsFile, path: &str) -> Vec<(AgentCategory, Vec<AgentBlock>)> {
    let mut out: Vec<(AgentCategory, Vec<AgentBlock>)> = Vec::new();
    for agent in agents::agents().all() {
        let groups = file.groups_naming(&agent.lower);
        if groups.is_empty() {
            continue;
        }
        let rules: Vec<&Rule> = groups.iter().flat_map(|g| g.rules.iter()).collect();
        let block = AgentBlock {
            agent: agent.name.clone(),
            scope: block_scope(&rules),
            path_blocked: !allowed(&rules, path),
        };
        for &cat in &agent.categories {
            match out.iter_mut().find(|(c, _)| *c == cat) {
                Some((_, v)) => v.push(block.clone()),
                None => out.push((cat, vec![block.clone()])),
            }
        }
    }
    out.sort_by_key(|(c, _)| *c);
    out
}

/// The `Content-Usage` rule value split into an optional path and the
/// preference text (signals.md §5.4). A rule without a path is treated as `/` (`OURS`).
pub fn split_content_usage(value: &str) -> (String, String) {
    let v = value.trim();
    if v.starts_with('/') {
        match v.find([' ', '\t']) {
            Some(i) => (v[..i].to_string(), v[i..].trim().to_string()),
            None => (v.to_string(), String::new()),
        }
    } else {
        ("/".to_string(), v.to_string())
    }
}

/// The `Content-Usage` rules that apply to `path` among `rules`: the longest
/// matching path; rules with an identical path are all returned so that the
/// caller combines them (any `n` wins, signals.md §5.4).
pub fn content_usage_for<'a>(rules: &[&'a Rule], path: &str) -> Vec<&'a Rule> {
    let mut best_len = None;
    let mut chosen: Vec<&Rule> = Vec::new();
    for r in rules.iter().filter(|r| r.kind == RuleKind::ContentUsage) {
        let (p, _) = split_content_usage(&r.value);
        if !pattern::rule_matches(&p, path) {
            continue;
        }
        let len = pattern::specificity(&p);
        match best_len {
            Some(b) if len < b => {}
            Some(b) if len == b => chosen.push(r),
            _ => {
                best_len = Some(len);
                chosen = vec![r];
            }
        }
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_scope_follows_the_provenance_classification() {
        let f = RobotsFile::parse(
            "User-agent: a\nDisallow: /\n\nUser-agent: b\nDisallow: /p/\n\nUser-agent: c\nDisallow:\n",
        );
        let scope = |n: &str| {
            let (r, _) = f.rules_for(n);
            block_scope(&r)
        };
        assert_eq!(scope("a"), BlockScope::All);
        assert_eq!(scope("b"), BlockScope::Some);
        assert_eq!(scope("c"), BlockScope::None);
    }
}
