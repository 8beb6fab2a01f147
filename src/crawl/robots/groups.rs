//! Groups and group selection (RFC 9309 §2.1, §2.2.1; signals.md §1.3).

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Agent {
    /// `*` alone or followed by whitespace.
    Wildcard,
    /// The whole value and its leading `[A-Za-z_-]` run, both lower-cased
    /// (the run may be empty: it then addresses no one by token).
    Token { whole: String, run: String },
}

impl Agent {
    /// Spec §1.3 (`OURS`, following Google's reference parser): keep the
    /// leading run of `[A-Za-z_-]`, so `FooBot/1.0` and `foobot (ours)` are
    /// `foobot`. The RFC's product tokens hold only these characters; the
    /// whole value is kept too, because 21 listed AI agents are not RFC
    /// tokens (`AI2Bot`, signals.md §2.1) and are named by their whole value.
    pub(crate) fn parse(value: &[u8]) -> Agent {
        if value.first() == Some(&b'*') && value.get(1).is_none_or(|b| b.is_ascii_whitespace()) {
            return Agent::Wildcard;
        }
        let run = value
            .iter()
            .take_while(|b| b.is_ascii_alphabetic() || **b == b'_' || **b == b'-')
            .map(|b| char::from(b.to_ascii_lowercase()))
            .collect();
        let whole = String::from_utf8_lossy(value.trim_ascii()).to_ascii_lowercase();
        Agent::Token { whole, run }
    }

    /// Whether this value names the product token `lower_token`
    /// (lower-cased) by its leading `[A-Za-z_-]` run: the crawler's own
    /// group selection (RFC 9309 §2.2.1).
    pub(crate) fn names_token(&self, lower_token: &str) -> bool {
        matches!(self, Agent::Token { run, .. } if !run.is_empty() && run == lower_token)
    }

    /// Whether this value names the agent `lower_name` (lower-cased) by its
    /// leading run or its whole value: the consent reading of other
    /// agents' groups, whose names are not all RFC tokens (`AI2Bot`).
    pub(crate) fn names(&self, lower_name: &str) -> bool {
        self.names_token(lower_name)
            || matches!(self, Agent::Token { whole, .. } if !whole.is_empty() && whole == lower_name)
    }
}

/// One group as written: its `User-agent:` lines and the records after them.
pub(crate) struct Group<'r, 'a> {
    pub(crate) agents: Vec<(Agent, &'r Record<'a>)>,
    /// Every record after the `User-agent:` lines up to the next group
    /// (rules and other records such as `Crawl-delay`).
    pub(crate) members: Vec<&'r Record<'a>>,
    has_rule: bool,
}

impl Group<'_, '_> {
    fn names_token(&self, lower_token: &str) -> bool {
        self.agents.iter().any(|(a, _)| a.names_token(lower_token))
    }

    pub(crate) fn is_wildcard(&self) -> bool {
        self.agents.iter().any(|(a, _)| *a == Agent::Wildcard)
    }
}

/// A file's records sorted into groups.
pub(crate) struct Grouped<'r, 'a> {
    pub(crate) groups: Vec<Group<'r, 'a>>,
    /// Non-rule records before the first `User-agent:` line.
    pub(crate) preamble: Vec<&'r Record<'a>>,
    /// Line numbers of group rules before the first `User-agent:` line.
    pub(crate) orphan_rules: Vec<usize>,
}

/// Builds the groups of a file: the one grouping the crawler's access
/// decision and the consent reading of other agents' groups share.
///
/// A group is one or more `User-agent:` lines followed by rules; it ends at
/// the next `User-agent:` line that follows a group rule. Other records
/// (`Sitemap`, `Crawl-delay`, `License`, unknown keys) never end a group or
/// split a run of `User-agent:` lines.
pub(crate) fn group<'r, 'a>(records: &'r [Record<'a>]) -> Grouped<'r, 'a> {
    let mut groups: Vec<Group<'r, 'a>> = Vec::new();
    let mut preamble = Vec::new();
    let mut orphan_rules = Vec::new();
    for record in records {
        match &record.key {
            Key::UserAgent => {
                let agent = (Agent::parse(record.value), record);
                match groups.last_mut() {
                    Some(g) if !g.has_rule => g.agents.push(agent),
                    _ => groups.push(Group {
                        agents: vec![agent],
                        members: Vec::new(),
                        has_rule: false,
                    }),
                }
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
    Grouped {
        groups,
        preamble,
        orphan_rules,
    }
}

/// The groups selected for a token, with the records that apply.
pub(crate) struct Selection<'r, 'a> {
    pub(crate) matched: GroupMatch,
    /// The members of the selected groups, in file order.
    pub(crate) records: Vec<&'r Record<'a>>,
    /// Non-rule records before the first `User-agent:` line.
    pub(crate) preamble: Vec<&'r Record<'a>>,
    /// Line numbers of group rules before the first `User-agent:` line;
    /// RFC 9309 §2.1 says they "SHOULD" be ignored.
    pub(crate) orphan_rules: Vec<usize>,
}

/// Selects the groups that apply to `token`.
pub(crate) fn select<'r, 'a>(records: &'r [Record<'a>], token: &str) -> Selection<'r, 'a> {
    let Grouped {
        groups,
        preamble,
        orphan_rules,
    } = group(records);

    // RFC 9309 §2.2.1: case-insensitive match on the product token; all
    // groups naming us are combined; else all `*` groups; never both.
    let token = token.to_ascii_lowercase();
    let (matched, chosen): (GroupMatch, Vec<&Group>) =
        if groups.iter().any(|g| g.names_token(&token)) {
            (
                GroupMatch::Specific,
                groups.iter().filter(|g| g.names_token(&token)).collect(),
            )
        } else if groups.iter().any(Group::is_wildcard) {
            (
                GroupMatch::Wildcard,
                groups.iter().filter(|g| g.is_wildcard()).collect(),
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
