//! Purposes, decisions, conditions and verdicts (signals.md §0.2, §0.3).

use serde::{Deserialize, Serialize};

/// What a page may be used for (signals.md §0.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// Byline's own lexical index: title, URL and a short snippet in result lists.
    SearchIndex,
    /// Retrieval context for generated answers that quote or paraphrase and cite.
    RagAttributed,
    /// Changing model weights.
    Train,
}

impl Purpose {
    /// All purposes, in the order verdicts are written.
    pub const ALL: [Purpose; 3] = [Purpose::SearchIndex, Purpose::RagAttributed, Purpose::Train];

    /// The purpose id as in the spec and the policy files.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::SearchIndex => "search_index",
            Purpose::RagAttributed => "rag_attributed",
            Purpose::Train => "train",
        }
    }

    /// Parses a purpose id.
    pub fn parse(s: &str) -> Option<Purpose> {
        Purpose::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// The decision for one page and purpose (signals.md §0.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Allowed,
    AllowedWithConditions,
    Excluded,
    /// A signal source was unavailable; retry later.
    Deferred,
}

impl Decision {
    /// The decision id as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allowed => "allowed",
            Decision::AllowedWithConditions => "allowed_with_conditions",
            Decision::Excluded => "excluded",
            Decision::Deferred => "deferred",
        }
    }

    /// Parses a decision id.
    pub fn parse(s: &str) -> Option<Decision> {
        [
            Decision::Allowed,
            Decision::AllowedWithConditions,
            Decision::Excluded,
            Decision::Deferred,
        ]
        .into_iter()
        .find(|d| d.as_str() == s)
    }

    /// `allowed` or `allowed_with_conditions`.
    pub fn is_allowed(self) -> bool {
        matches!(self, Decision::Allowed | Decision::AllowedWithConditions)
    }
}

/// A purpose or decision id that Byline does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{value}`")]
pub struct UnknownId {
    pub kind: &'static str,
    pub value: String,
}

impl std::str::FromStr for Purpose {
    type Err = UnknownId;
    fn from_str(s: &str) -> Result<Purpose, UnknownId> {
        Purpose::parse(s).ok_or_else(|| UnknownId {
            kind: "purpose",
            value: s.to_string(),
        })
    }
}

impl std::str::FromStr for Decision {
    type Err = UnknownId;
    fn from_str(s: &str) -> Result<Decision, UnknownId> {
        Decision::parse(s).ok_or_else(|| UnknownId {
            kind: "decision",
            value: s.to_string(),
        })
    }
}

/// A condition attached to an allowed use (signals.md §3.2, §7.3, §8.2).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// Show creator, title, source and licence (CC BY; TASL).
    Attribution,
    /// Name and link the licence next to the use.
    LicenceNotice,
    /// Keep attribution per document in the training manifest.
    AttributionManifest,
    /// Adaptations shared must carry the same licence (CC SA).
    ShareAlike,
    /// Cite, but quote nothing (`nosnippet`, `max-snippet:0`).
    NoQuote,
    /// Quotes at most this many characters (`max-snippet:n`).
    MaxQuoteChars(u32),
    /// Quotes no longer than a search snippet (`noarchive`, `nocache`, Bing meaning).
    SnippetLengthQuotes,
    /// Verbatim quotes only, no paraphrase (CC ND).
    VerbatimOnly,
}

impl Condition {
    /// The condition as a short stable string (`max_quote_chars:50`).
    pub fn label(&self) -> String {
        match self {
            Condition::Attribution => "attribution".into(),
            Condition::LicenceNotice => "licence_notice".into(),
            Condition::AttributionManifest => "attribution_manifest".into(),
            Condition::ShareAlike => "share_alike".into(),
            Condition::NoQuote => "no_quote".into(),
            Condition::MaxQuoteChars(n) => format!("max_quote_chars:{n}"),
            Condition::SnippetLengthQuotes => "snippet_length_quotes".into(),
            Condition::VerbatimOnly => "verbatim_only".into(),
        }
    }
}

/// One verdict for one page and purpose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub purpose: Purpose,
    pub decision: Decision,
    pub conditions: Vec<Condition>,
    /// Every contributing reason code (`robots.disallow`, `licence.nc`, ...).
    pub reasons: Vec<String>,
    /// Indices into the evidence slice the verdict was computed from.
    pub evidence: Vec<usize>,
    pub policy_id: String,
    /// sha256 of the exact policy file bytes, hex.
    pub policy_sha256: String,
}

impl Verdict {
    /// Whether `code` is among the reasons.
    pub fn has_reason(&self, code: &str) -> bool {
        self.reasons.iter().any(|r| r == code)
    }

    /// Whether the condition is attached.
    pub fn has_condition(&self, c: &Condition) -> bool {
        self.conditions.contains(c)
    }
}

/// The three verdicts of one page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageVerdicts {
    pub search_index: Verdict,
    pub rag_attributed: Verdict,
    pub train: Verdict,
}

impl PageVerdicts {
    /// The verdict for `p`.
    pub fn get(&self, p: Purpose) -> &Verdict {
        match p {
            Purpose::SearchIndex => &self.search_index,
            Purpose::RagAttributed => &self.rag_attributed,
            Purpose::Train => &self.train,
        }
    }

    /// All three in purpose order.
    pub fn iter(&self) -> impl Iterator<Item = &Verdict> {
        [&self.search_index, &self.rag_attributed, &self.train].into_iter()
    }
}
