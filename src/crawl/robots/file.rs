//! The whole file as groups, for readers other than our own access
//! decision: the consent layer reads other agents' groups (AI opt-out
//! intent), `Content-Usage`, `Content-Signal`, `DisallowAITraining` and
//! RSL `License:` lines from the same lines and groups the crawler uses
//! (docs/signals.md, "robots.txt").

use super::groups::{self, Agent};
use super::lines::{self, Key};
use super::pattern;

/// The kind of a rule line inside a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    Allow,
    Disallow,
    ContentUsage,
    ContentSignal,
    /// `DisallowAITraining:` (expired Microsoft draft).
    DisallowAiTraining,
}

/// One rule line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub kind: RuleKind,
    /// The value, trimmed, comment removed.
    pub value: String,
    /// 1-based line number (CR, LF and CRLF each end one line).
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
    /// For each group, its agents as matched (parallel to `groups`).
    matchers: Vec<Vec<Agent>>,
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl RobotsFile {
    /// Parses a body with the crawler's line and group rules; never fails.
    /// Only the first [`super::PARSE_LIMIT`] bytes are read, as the crawler does.
    pub fn parse(body: &str) -> RobotsFile {
        let bytes = body.as_bytes();
        let bytes = bytes.get(..super::PARSE_LIMIT).unwrap_or(bytes);
        let split = lines::split(bytes);
        let grouped = groups::group(&split.records);
        let mut file = RobotsFile {
            rules_outside_groups: grouped.orphan_rules.len(),
            ..RobotsFile::default()
        };
        for r in &split.records {
            match r.key {
                Key::UserAgent | Key::Allow | Key::Disallow => file.has_records = true,
                Key::License => file.licenses.push(text(r.value)),
                _ => {}
            }
        }
        for g in grouped.groups {
            let agents = g.agents.iter().map(|(_, r)| text(r.value)).collect();
            let rules = g
                .members
                .iter()
                .filter_map(|r| {
                    let kind = match r.key {
                        Key::Allow => RuleKind::Allow,
                        Key::Disallow => RuleKind::Disallow,
                        Key::ContentUsage => RuleKind::ContentUsage,
                        Key::ContentSignal => RuleKind::ContentSignal,
                        Key::DisallowAiTraining => RuleKind::DisallowAiTraining,
                        _ => return None,
                    };
                    Some(Rule {
                        kind,
                        value: text(r.value),
                        line: r.line,
                        raw: text(r.text),
                    })
                })
                .collect();
            file.matchers
                .push(g.agents.into_iter().map(|(a, _)| a).collect());
            file.groups.push(Group { agents, rules });
        }
        file
    }

    fn groups_where(&self, f: impl Fn(&[Agent]) -> bool) -> Vec<&Group> {
        self.groups
            .iter()
            .zip(&self.matchers)
            .filter(|(_, m)| f(m))
            .map(|(g, _)| g)
            .collect()
    }

    /// Groups whose `User-agent:` value names `name` explicitly: the whole
    /// trimmed value or its leading `[A-Za-z_-]` token, case-insensitive
    /// (the same matching that selects the crawler's own group).
    pub fn groups_naming(&self, name: &str) -> Vec<&Group> {
        let name = name.trim().to_ascii_lowercase();
        self.groups_where(|m| m.iter().any(|a| a.names(&name)))
    }

    /// The `*` groups.
    pub fn star_groups(&self) -> Vec<&Group> {
        self.groups_where(|m| m.contains(&Agent::Wildcard))
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

/// The deciding Allow/Disallow rule for `path` (as written) among `rules`,
/// by the crawler's own matcher: longest normalised pattern wins, allow wins
/// ties (RFC 9309 §2.2.2). `None` when nothing matches.
pub fn decide<'a>(rules: &[&'a Rule], path: &str) -> Option<(bool, &'a Rule)> {
    let path = pattern::normalise_path(path);
    let normalised: Vec<(String, bool, &'a Rule)> = rules
        .iter()
        .filter_map(|r| {
            let allow = match r.kind {
                RuleKind::Allow => true,
                RuleKind::Disallow => false,
                _ => return None,
            };
            Some((pattern::normalise_pattern(r.value.as_bytes()), allow, *r))
        })
        .collect();
    pattern::longest_match(
        normalised.iter().map(|(p, a, r)| (p.as_str(), *a, *r)),
        &path,
    )
}

/// Whether `path` is allowed under `rules` (no match = allowed).
pub fn allowed(rules: &[&Rule], path: &str) -> bool {
    decide(rules, path).is_none_or(|(a, _)| a)
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
        assert_eq!(decide(&rules, "/a/c").map(|(_, r)| r.line), Some(4));
    }

    #[test]
    fn license_lines_are_collected_site_wide_and_crlf_lines_are_numbered_once() {
        let f = RobotsFile::parse(
            "License: https://s.example/l.xml\r\nUser-agent: *\r\nAllow: /\r\nDisallowAITraining: /\r\n",
        );
        assert_eq!(f.licenses, vec!["https://s.example/l.xml"]);
        assert_eq!(f.groups[0].rules[1].kind, RuleKind::DisallowAiTraining);
        assert_eq!(f.groups[0].rules[1].line, 4);
    }

    /// The consent reading and the crawler's access decision agree on our
    /// own token for every rule they both read.
    #[test]
    fn the_file_model_decides_like_the_crawler() {
        let body = "User-agent: *\nDisallow: /private\nAllow: /private/ok\n\nUser-agent: BylineBot/2\nDisallow: /a%2fb\nAllow: /*.html$\nDisallow: /\n";
        let f = RobotsFile::parse(body);
        let rules = super::super::RobotsRules::parse(body.as_bytes(), super::super::PRODUCT_TOKEN);
        let (own, sel) = f.rules_for(super::super::PRODUCT_TOKEN);
        assert_eq!(sel, Selected::Own);
        for path in ["/", "/x.html", "/x.html?q", "/a%2Fb", "/a/b", "/private/ok"] {
            let url = url::Url::parse(&format!("http://h.example{path}")).expect("test URL");
            assert_eq!(allowed(&own, path), rules.check(&url).allowed, "{path}");
        }
    }
}
