//! Groups and group selection (RFC 9309 §2.1, §2.2.1; spec §1.3).

use super::lines::{Key, Record};

/// Which group(s) of a file apply to a product token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupMatch {
    /// One or more groups name the token; their rules are merged.
    Specific,
    /// No group names the token; the `*` groups are merged.
    Wildcard,
    /// Neither: no rules apply, everything is allowed.
    None,
}

/// A `User-agent:` value, normalised.
#[derive(Debug, PartialEq, Eq)]
enum Agent {
    /// `*` alone or followed by whitespace.
    Wildcard,
    /// The leading `[A-Za-z_-]` run, lower-cased (may be empty: addresses no one).
    Token(String),
}

impl Agent {
    /// Spec §1.3 (`OURS`, following Google's reference parser): keep the
    /// leading run of `[A-Za-z_-]`, so `FooBot/1.0` and `foobot (ours)` are
    /// `foobot`. The RFC's product tokens hold only these characters.
    fn parse(value: &[u8]) -> Agent {
        if value.first() == Some(&b'*') && value.get(1).is_none_or(|b| b.is_ascii_whitespace()) {
            return Agent::Wildcard;
        }
        let run = value
            .iter()
            .take_while(|b| b.is_ascii_alphabetic() || **b == b'_' || **b == b'-')
            .map(|b| char::from(b.to_ascii_lowercase()))
            .collect();
        Agent::Token(run)
    }
}

#[derive(Default)]
struct Group<'r, 'a> {
    agents: Vec<Agent>,
    /// Rules and other records of the group, in file order (no `User-agent:`).
    members: Vec<&'r Record<'a>>,
    has_rule: bool,
}

/// The records that apply to one token.
pub(crate) struct Selection<'r, 'a> {
    pub(crate) matched: GroupMatch,
    /// Every record of the selected groups, in file order, without the
    /// `User-agent:` lines.
    pub(crate) records: Vec<&'r Record<'a>>,
    /// Records before the first `User-agent:` line that are not group rules
    /// (e.g. a leading `Crawl-delay`).
    pub(crate) preamble: Vec<&'r Record<'a>>,
    /// Line numbers of group rules before the first `User-agent:` line;
    /// RFC 9309 §2.1 says they "SHOULD" be ignored.
    pub(crate) orphan_rules: Vec<usize>,
}

/// Builds the groups of a file and selects those that apply to `token`.
///
/// A group is one or more `User-agent:` lines followed by rules; it ends at
/// the next `User-agent:` line that follows a group rule. Other records
/// (`Sitemap`, `Crawl-delay`, unknown keys) never end a group or split a run
/// of `User-agent:` lines.
pub(crate) fn select<'r, 'a>(records: &'r [Record<'a>], token: &str) -> Selection<'r, 'a> {
    let mut groups: Vec<Group<'r, 'a>> = Vec::new();
    let mut preamble = Vec::new();
    let mut orphan_rules = Vec::new();
    for record in records {
        match &record.key {
            Key::UserAgent => {
                if groups.last().is_none_or(|g| g.has_rule) {
                    groups.push(Group::default());
                }
                let group = groups.last_mut().expect("a group was just ensured");
                group.agents.push(Agent::parse(record.value));
            }
            key => match groups.last_mut() {
                Some(group) => {
                    group.has_rule |= key.is_group_rule();
                    group.members.push(record);
                }
                None if key.is_group_rule() => orphan_rules.push(record.line),
                None => preamble.push(record),
            },
        }
    }

    // RFC 9309 §2.2.1: case-insensitive match on the product token; all
    // groups naming us are combined; else all `*` groups; never both.
    let token = token.to_ascii_lowercase();
    let names_us = |g: &Group| {
        g.agents
            .iter()
            .any(|a| matches!(a, Agent::Token(t) if !t.is_empty() && *t == token))
    };
    let is_wildcard = |g: &Group| g.agents.contains(&Agent::Wildcard);
    let (matched, chosen): (GroupMatch, Vec<&Group>) = if groups.iter().any(names_us) {
        (
            GroupMatch::Specific,
            groups.iter().filter(|g| names_us(g)).collect(),
        )
    } else if groups.iter().any(is_wildcard) {
        (
            GroupMatch::Wildcard,
            groups.iter().filter(|g| is_wildcard(g)).collect(),
        )
    } else {
        (GroupMatch::None, Vec::new())
    };
    let records = chosen
        .iter()
        .flat_map(|g| g.members.iter().copied())
        .collect();
    Selection {
        matched,
        records,
        preamble,
        orphan_rules,
    }
}
