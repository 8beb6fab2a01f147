//! A pure reader of robots.txt *groups* for the consent signals that live in
//! the file: AI opt-out intent for other agents (spec §2.3), AIPREF
//! `Content-Usage` rules (§5.4), Cloudflare `Content-Signal` (§5.6) and RSL
//! `License:` pointers (§6.2). ai.txt uses the same syntax (§6.1).
//!
//! The crawler's own access decision comes from `crawl::robots`; this module
//! never decides access. It groups lines as RFC 9309 §2.1 does (other records
//! do not end a group; `Content-Usage`/`Content-Signal` are group rules) and
//! matches `User-agent:` values both as whole values and as the leading
//! `[A-Za-z_-]` token, because 21 listed AI agents are not RFC tokens (§2.1).

use super::evidence::{AgentBlock, AgentCategory, BlockScope};
use super::{agents, pattern};

/// The kind of a rule line inside a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    Allow,
    Disallow,
    ContentUsage,
    ContentSignal,
    /// `DisallowAITraining:` (expired Microsoft draft, spec §1.7).
    DisallowAiTraining,
}

/// One rule line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub kind: RuleKind,
    /// The value, trimmed, comment removed.
    pub value: String,
    /// 1-based line number.
    pub line: usize,
    /// The line as written (comment removed).
    pub raw: String,
}

/// One group: consecutive `User-agent:` lines and the rules after them.
#[derive(Debug, Clone, Default)]
pub struct Group {
    /// `User-agent:` values, trimmed.
    pub agents: Vec<String>,
    pub rules: Vec<Rule>,
}

/// Which groups applied to an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selected {
    /// Groups naming the agent.
    Own,
    /// The `*` groups.
    Star,
    /// Neither exists.
    Nothing,
}

/// A parsed file.
#[derive(Debug, Clone, Default)]
pub struct RobotsFile {
    pub groups: Vec<Group>,
    /// `License:` values (RSL pointers), site-wide wherever they appear.
    pub licenses: Vec<String>,
    /// Whether any `User-agent`/`Allow`/`Disallow` line exists (ai.txt recognition).
    pub has_records: bool,
    /// Rule lines before the first `User-agent:` line (ignored, RFC 9309 §2.1).
    pub rules_outside_groups: usize,
}

fn key_of(k: &str) -> Option<&'static str> {
    let k = k.trim().to_ascii_lowercase();
    Some(match k.as_str() {
        "user-agent" | "user agent" | "useragent" => "user-agent",
        "allow" => "allow",
        "disallow" | "dissallow" | "dissalow" | "disalow" | "diasllow" | "disallaw" => "disallow",
        "content-usage" => "content-usage",
        "content-signal" => "content-signal",
        "disallowaitraining" => "disallowaitraining",
        "license" => "license",
        _ => return None,
    })
}

impl RobotsFile {
    /// Parses a body leniently; never fails.
    pub fn parse(body: &str) -> RobotsFile {
        let body = body.strip_prefix('\u{feff}').unwrap_or(body);
        let mut file = RobotsFile::default();
        let mut current: Option<Group> = None;
        for (i, line) in body.split(['\n', '\r']).enumerate() {
            // `split` on both CR and LF yields an empty piece for CRLF; line
            // numbers are then off for CRLF files, which only affects messages.
            let line_no = i + 1;
            let text = line.split('#').next().unwrap_or("").trim();
            let Some((k, v)) = text.split_once(':') else {
                continue;
            };
            let Some(key) = key_of(k) else { continue };
            let value = v.trim().to_string();
            match key {
                "user-agent" => {
                    file.has_records = true;
                    let start_new = match &current {
                        None => true,
                        Some(g) => !g.rules.is_empty(),
                    };
                    if start_new && let Some(g) = current.take() {
                        file.groups.push(g);
                    }
                    current
                        .get_or_insert_with(Group::default)
                        .agents
                        .push(value);
                }
                "license" => file.licenses.push(value),
                _ => {
                    let kind = match key {
                        "allow" => RuleKind::Allow,
                        "disallow" => RuleKind::Disallow,
                        "content-usage" => RuleKind::ContentUsage,
                        "disallowaitraining" => RuleKind::DisallowAiTraining,
                        _ => RuleKind::ContentSignal,
                    };
                    if matches!(kind, RuleKind::Allow | RuleKind::Disallow) {
                        file.has_records = true;
                    }
                    match current.as_mut() {
                        Some(g) => g.rules.push(Rule {
                            kind,
                            value,
                            line: line_no,
                            raw: text.to_string(),
                        }),
                        None => file.rules_outside_groups += 1,
                    }
                }
            }
        }
        if let Some(g) = current {
            file.groups.push(g);
        }
        file
    }

    /// Groups whose `User-agent:` value names `name` explicitly: the whole
    /// trimmed value or its leading `[A-Za-z_-]` token, case-insensitive.
    pub fn groups_naming(&self, name: &str) -> Vec<&Group> {
        let name = name.trim().to_ascii_lowercase();
        self.groups
            .iter()
            .filter(|g| g.agents.iter().any(|v| names(v, &name)))
            .collect()
    }

    /// The `*` groups.
    pub fn star_groups(&self) -> Vec<&Group> {
        self.groups
            .iter()
            .filter(|g| g.agents.iter().any(|v| is_star(v)))
            .collect()
    }

    /// The merged rules for `token` (RFC 9309 §2.2.1): its own groups, else `*`.
    pub fn rules_for(&self, token: &str) -> (Vec<&Rule>, Selected) {
        let own = self.groups_naming(token);
        if !own.is_empty() {
            return (
                own.iter().flat_map(|g| g.rules.iter()).collect(),
                Selected::Own,
            );
        }
        let star = self.star_groups();
        if !star.is_empty() {
            return (
                star.iter().flat_map(|g| g.rules.iter()).collect(),
                Selected::Star,
            );
        }
        (Vec::new(), Selected::Nothing)
    }

    /// The merged rules of the `*` groups.
    pub fn star_rules(&self) -> Vec<&Rule> {
        self.star_groups()
            .iter()
            .flat_map(|g| g.rules.iter())
            .collect()
    }
}

fn is_star(v: &str) -> bool {
    let v = v.trim();
    v == "*" || (v.starts_with('*') && v[1..].starts_with(char::is_whitespace))
}

fn names(value: &str, lower_name: &str) -> bool {
    let v = value.trim().to_ascii_lowercase();
    if v == lower_name {
        return true;
    }
    let token: String = v
        .chars()
        .take_while(|c| c.is_ascii_alphabetic() || *c == '_' || *c == '-')
        .collect();
    !token.is_empty() && token == lower_name
}

/// The deciding Allow/Disallow rule for `path` among `rules`: longest pattern
/// wins, allow wins ties (RFC 9309 §2.2.2). `None` when nothing matches.
pub fn decide<'a>(rules: &[&'a Rule], path: &str) -> Option<(bool, &'a Rule)> {
    let mut best: Option<(usize, bool, &Rule)> = None;
    for r in rules {
        let allow = match r.kind {
            RuleKind::Allow => true,
            RuleKind::Disallow => false,
            _ => continue,
        };
        if !pattern::matches(&r.value, path) {
            continue;
        }
        let len = pattern::specificity(&r.value);
        let better = match best {
            None => true,
            Some((bl, ba, _)) => len > bl || (len == bl && allow && !ba),
        };
        if better {
            best = Some((len, allow, r));
        }
    }
    best.map(|(_, a, r)| (a, r))
}

/// Whether `path` is allowed under `rules` (no match = allowed).
pub fn allowed(rules: &[&Rule], path: &str) -> bool {
    decide(rules, path).is_none_or(|(a, _)| a)
}

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

/// AI opt-out intent for one page path (spec §2.3): for each category, the
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
/// preference text (spec §5.4). A rule without a path is treated as `/` (`OURS`).
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
/// caller combines them (any `n` wins, spec §5.4).
pub fn content_usage_for<'a>(rules: &[&'a Rule], path: &str) -> Vec<&'a Rule> {
    let mut best_len = None;
    let mut chosen: Vec<&Rule> = Vec::new();
    for r in rules.iter().filter(|r| r.kind == RuleKind::ContentUsage) {
        let (p, _) = split_content_usage(&r.value);
        if !pattern::matches(&p, path) {
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
    fn other_records_do_not_split_groups() {
        let f = RobotsFile::parse(
            "User-agent: a\nCrawl-delay: 5\nUser-agent: b\nDisallow: /x\nSitemap: /s\nAllow: /y\n",
        );
        assert_eq!(f.groups.len(), 1);
        assert_eq!(f.groups[0].agents, vec!["a", "b"]);
        assert_eq!(f.groups[0].rules.len(), 2);
    }

    #[test]
    fn agent_values_match_whole_or_by_leading_token() {
        let f = RobotsFile::parse(
            "User-agent: FooBot/1.0\nDisallow: /\n\nUser-agent: AI2Bot\nDisallow: /\n",
        );
        assert_eq!(f.groups_naming("foobot").len(), 1);
        assert_eq!(f.groups_naming("AI2Bot").len(), 1);
        assert_eq!(f.groups_naming("foo").len(), 0);
    }

    #[test]
    fn longest_match_wins_and_allow_wins_ties() {
        let f =
            RobotsFile::parse("user-agent: x\ndisallow: /\nallow: /\ndisallow: /a/\nallow: /a/b\n");
        let (rules, sel) = f.rules_for("x");
        assert_eq!(sel, Selected::Own);
        assert!(allowed(&rules, "/z"));
        assert!(!allowed(&rules, "/a/c"));
        assert!(allowed(&rules, "/a/b"));
    }

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

    #[test]
    fn license_lines_are_collected_site_wide() {
        let f = RobotsFile::parse("License: https://s.example/l.xml\nUser-agent: *\nAllow: /\n");
        assert_eq!(f.licenses, vec!["https://s.example/l.xml"]);
    }
}
