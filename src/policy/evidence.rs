//! The evidence model of signals.md §0.3: one row per observation of one signal,
//! including "looked, found nothing" ([`Observation::Absent`]) and "could not
//! fetch" ([`Observation::Unreachable`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Spec §0.1: how firm the source of a signal is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StatusLabel {
    #[serde(rename = "STANDARD")]
    Standard,
    #[serde(rename = "CG-FINAL")]
    CgFinal,
    #[serde(rename = "DRAFT")]
    Draft,
    #[serde(rename = "VENDOR")]
    Vendor,
    #[serde(rename = "INDUSTRY")]
    Industry,
    #[serde(rename = "OURS")]
    Ours,
}

impl StatusLabel {
    /// The label as the spec writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusLabel::Standard => "STANDARD",
            StatusLabel::CgFinal => "CG-FINAL",
            StatusLabel::Draft => "DRAFT",
            StatusLabel::Vendor => "VENDOR",
            StatusLabel::Industry => "INDUSTRY",
            StatusLabel::Ours => "OURS",
        }
    }
}

/// Spec §0.3: where the signal was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Location {
    HttpHeader,
    HtmlMeta,
    /// A `<meta name="robots">` outside `<head>`: recorded, never acted on (signals.md §3.3).
    HtmlBody,
    HtmlLink,
    Jsonld,
    WellKnown,
    #[serde(rename = "robots.txt")]
    RobotsTxt,
    BodyText,
}

impl Location {
    /// The location as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Location::HttpHeader => "http-header",
            Location::HtmlMeta => "html-meta",
            Location::HtmlBody => "html-body",
            Location::HtmlLink => "html-link",
            Location::Jsonld => "jsonld",
            Location::WellKnown => "well-known",
            Location::RobotsTxt => "robots.txt",
            Location::BodyText => "body-text",
        }
    }
}

/// Spec §0.3: whom the signal addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Everyone (no agent named, or the `*` group).
    Generic,
    /// Our product token.
    OurToken,
    /// Another agent, lower-cased.
    OtherToken(String),
}

impl Scope {
    /// `generic`, `our-token` or `other-token:<name>` as in signals.md §0.3.
    pub fn label(&self) -> String {
        match self {
            Scope::Generic => "generic".into(),
            Scope::OurToken => "our-token".into(),
            Scope::OtherToken(n) => format!("other-token:{n}"),
        }
    }

    /// Parses [`Scope::label`] back.
    pub fn from_label(s: &str) -> Scope {
        match s {
            "generic" => Scope::Generic,
            "our-token" => Scope::OurToken,
            other => Scope::OtherToken(other.strip_prefix("other-token:").unwrap_or(other).into()),
        }
    }

    /// Whether the signal speaks to us (generic or our token).
    pub fn applies_to_us(&self) -> bool {
        !matches!(self, Scope::OtherToken(_))
    }
}

/// The HTTP exchange that carried a signal (signals.md §0.3 `fetch_ref`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchRef {
    /// Id of the fetch record in the store, when there is one.
    pub fetch_id: Option<i64>,
    pub url: String,
    pub status: Option<u16>,
    /// Unix seconds.
    pub fetched_at: i64,
    pub body_sha256: Option<String>,
}

/// The outcome of `robots.txt` for our own token (signals.md §1.2, §8.1 step 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RobotsOutcome {
    /// Parsed rules allow the page.
    Allowed,
    /// Parsed rules disallow the page.
    Disallowed,
    /// 4xx (other than 429): no rules, allow all (RFC 9309 §2.3.1.3).
    Unavailable,
    /// 5xx, 429 or a network error with no usable cached copy.
    Unreachable,
}

/// Categories of AI agents (signals.md §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentCategory {
    AiTrain,
    AiSearch,
    AiUserFetch,
    AiOther,
}

impl AgentCategory {
    /// The category id, as in `ai_intent.<id>`.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentCategory::AiTrain => "ai_train",
            AgentCategory::AiSearch => "ai_search",
            AgentCategory::AiUserFetch => "ai_user_fetch",
            AgentCategory::AiOther => "ai_other",
        }
    }
}

/// How much of a site one agent's robots.txt rules block (signals.md §2.3 step 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockScope {
    All,
    Some,
    None,
}

/// One AI agent named explicitly in robots.txt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentBlock {
    /// The agent's name as spelled in the agent list.
    pub agent: String,
    pub scope: BlockScope,
    /// The page's path is disallowed for this agent.
    pub path_blocked: bool,
}

/// Page-level robots rules of signals.md §3.2 from one header line or meta tag.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Directives {
    #[serde(default, skip_serializing_if = "is_false")]
    pub all: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub noindex: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub nofollow: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub nosnippet: bool,
    /// `max-snippet:<n>`; `-1` = no limit, `0` = no snippet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_snippet: Option<i64>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub noarchive: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub nocache: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub noai: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub noimageai: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub noimageindex: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub disallow_ai_training: bool,
    /// `unavailable_after`, as Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable_after: Option<i64>,
    /// Rules recorded but without a decision effect (`max-image-preview:large`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other: Vec<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Directives {
    /// Whether any rule restricts use (used to turn an AI agent's tag into AI intent).
    pub fn restricts(&self) -> bool {
        self.noindex || self.noai || self.noarchive || self.nocache || self.disallow_ai_training
    }

    /// Whether no rule was recognised at all.
    pub fn is_empty(&self) -> bool {
        *self == Directives::default()
    }
}

/// Licence flags (signals.md §7.3).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LicenceFlags {
    pub by: bool,
    pub sa: bool,
    pub nc: bool,
    pub nd: bool,
}

impl LicenceFlags {
    /// A rough restrictiveness order used to break same-rank conflicts (signals.md §7.4).
    pub fn restrictiveness(self) -> u8 {
        u8::from(self.by) + 2 * u8::from(self.sa) + 4 * u8::from(self.nd) + 8 * u8::from(self.nc)
    }
}

/// What kind of grant a recognised licence is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LicenceKind {
    /// A Creative Commons licence with flags.
    CreativeCommons,
    /// CC0, PDM, PDDC: no conditions.
    PublicDomain,
    /// Another SPDX licence with no use restriction (needs its notice).
    OpenSpdx,
    /// Anything we cannot map (`LicenseRef-`); no grant.
    Unknown,
}

/// One licence observation (signals.md §7: SPDX expression, evidence, method, confidence).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LicenceFinding {
    /// The SPDX id when it exists (`CC-BY-4.0`), else `None` (see `family`).
    pub spdx: Option<String>,
    /// The unported family id for ports without an SPDX id (`CC-BY-SA-3.0`).
    pub family: Option<String>,
    pub jurisdiction: Option<String>,
    pub kind: LicenceKind,
    pub flags: LicenceFlags,
    /// L1..L8 of signals.md §7.1.
    pub source: String,
    /// Precedence rank of signals.md §7.4 (1 = highest).
    pub rank: u8,
    /// How it was found: `link-rel`, `a-rel`, `jsonld`, `dublin-core`, `rdfa`, `meta`, `text`, `link-header`.
    pub method: String,
    /// `machine` (a URL or id) or `text` (a name in visible text).
    pub confidence: String,
    pub url: Option<String>,
    /// `page`, `media` or `site`.
    pub scope: String,
}

impl LicenceFinding {
    /// The id decisions use: the SPDX id, else the family, else a `LicenseRef-`.
    pub fn effective_id(&self) -> String {
        self.spdx
            .clone()
            .or_else(|| self.family.clone())
            .unwrap_or_else(|| "LicenseRef-unknown".into())
    }
}

/// One RSL `<content>` element that matched the page (signals.md §6.2).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RslTerms {
    pub content_url: String,
    pub server: Option<String>,
    pub permits: Vec<String>,
    pub prohibits: Vec<String>,
    /// The `<payment type>`, if any.
    pub payment: Option<String>,
}

/// The normalised meaning of one observation (signals.md §0.3 `parsed`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Observation {
    /// Looked, found nothing.
    Absent,
    /// Could not fetch (5xx, network error, 429).
    Unreachable { status: Option<u16>, error: String },
    /// robots.txt for our token (signals.md §1, §8.1 step 1).
    RobotsAccess {
        outcome: RobotsOutcome,
        status: Option<u16>,
        /// A group naming our token explicitly allows the path (signals.md §8.3 last grant row).
        explicit_allow: bool,
        /// The decision came from a cached copy while the origin was unreachable.
        from_cache: bool,
        /// Age of that cached copy in seconds.
        cache_age_secs: Option<i64>,
    },
    /// AI opt-out intent from robots.txt groups or meta tags (signals.md §2.3).
    AiIntent {
        category: AgentCategory,
        /// Agents of this category named explicitly, with their block status.
        agents: Vec<AgentBlock>,
    },
    /// X-Robots-Tag / meta robots rules (signals.md §3).
    Directives(Directives),
    /// TDMRep from the well-known file, a header or a meta tag (signals.md §4).
    Tdmrep {
        /// `Some(1)` reserved, `Some(0)` not reserved, `None` unset.
        reservation: Option<u8>,
        policy: Option<String>,
        /// The tdmrep.json `location` that matched first.
        matched_location: Option<String>,
    },
    /// AIPREF preferences (signals.md §5): label → `y`, `n` or `unknown`.
    Aipref {
        prefs: BTreeMap<String, String>,
        /// The robots.txt rule path that applied, if from robots.txt.
        path: Option<String>,
    },
    /// Cloudflare Content-Signal (signals.md §5.6): key → `yes`, `no` or `unknown`.
    ContentSignal { prefs: BTreeMap<String, String> },
    /// ai.txt decision for the page (signals.md §6.1): `allow`, `disallow` or `none`.
    AiTxt {
        decision: String,
        rule: Option<String>,
    },
    /// The ai.txt file is something else (Markdown etc.).
    AiTxtUnrecognised,
    /// An RSL licence document was pointed to (signals.md §6.2).
    RslLink { url: String },
    /// The RSL terms that govern the page (`None` when no `<content>` matched).
    Rsl { terms: Option<RslTerms> },
    /// A licence observation (signals.md §7).
    Licence(LicenceFinding),
    /// "All rights reserved" / "©" notice: not a licence (signals.md §7.4).
    CopyrightNotice { text: String },
    /// A natural-language TDM/AI reservation (signals.md §7.4).
    NlReservation { text: String },
    /// A file recorded with no effect (llms.txt, signals.md §6.3).
    NoEffect,
    /// What an attribution needs besides the licence (CC "TASL", signals.md §7.1
    /// end, §7.3): title and author as the page states them.
    Attribution {
        title: Option<String>,
        author: Option<String>,
        site_name: Option<String>,
    },
}

/// One observation (signals.md §0.3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// e.g. `robots.txt`, `ai_intent`, `x-robots-tag`, `meta-robots`,
    /// `tdmrep.json`, `tdmrep.header`, `tdmrep.meta`, `content-usage.header`,
    /// `content-usage.robots`, `content-signal`, `ai.txt`, `rsl`, `licence`,
    /// `copyright-notice`, `nl-reservation`, `llms.txt`.
    pub signal: String,
    pub status_label: StatusLabel,
    pub location: Location,
    pub scope: Scope,
    /// Exact value, truncated to 2 KiB.
    pub raw: String,
    pub observation: Observation,
    pub fetch_ref: Option<FetchRef>,
    /// Unix seconds.
    pub observed_at: i64,
    pub expires_at: Option<i64>,
    pub parse_errors: Vec<String>,
}

/// Spec §0.3: `raw` is truncated to 2 KiB.
pub const RAW_LIMIT: usize = 2048;

impl Evidence {
    /// A new row with the given identity and meaning; `raw` is truncated to
    /// [`RAW_LIMIT`] bytes on a character boundary.
    pub fn new(
        signal: &str,
        status_label: StatusLabel,
        location: Location,
        scope: Scope,
        raw: &str,
        observation: Observation,
    ) -> Evidence {
        Evidence {
            signal: signal.to_string(),
            status_label,
            location,
            scope,
            raw: truncate(raw, RAW_LIMIT).to_string(),
            observation,
            fetch_ref: None,
            observed_at: 0,
            expires_at: None,
            parse_errors: Vec::new(),
        }
    }

    /// Adds parse errors.
    pub fn with_errors(mut self, errors: Vec<String>) -> Evidence {
        self.parse_errors.extend(errors);
        self
    }
}

/// Cuts `s` to at most `max` bytes on a char boundary.
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observation_round_trips_through_json() {
        let o = Observation::Directives(Directives {
            noindex: true,
            max_snippet: Some(50),
            ..Directives::default()
        });
        let j = serde_json::to_string(&o).unwrap();
        assert!(j.contains("\"type\":\"directives\""), "{j}");
        let back: Observation = serde_json::from_str(&j).unwrap();
        assert_eq!(back, o);
        // a variant whose payload has a `kind` field of its own
        let l = Observation::Licence(LicenceFinding {
            spdx: Some("CC-BY-4.0".into()),
            family: None,
            jurisdiction: None,
            kind: LicenceKind::CreativeCommons,
            flags: LicenceFlags {
                by: true,
                ..LicenceFlags::default()
            },
            source: "L1".into(),
            rank: 1,
            method: "link-rel".into(),
            confidence: "machine".into(),
            url: None,
            scope: "page".into(),
        });
        let back: Observation = serde_json::from_str(&serde_json::to_string(&l).unwrap()).unwrap();
        assert_eq!(back, l);
    }

    #[test]
    fn raw_is_truncated_to_two_kib_on_a_char_boundary() {
        let long = "é".repeat(2000);
        let e = Evidence::new(
            "x-robots-tag",
            StatusLabel::Vendor,
            Location::HttpHeader,
            Scope::Generic,
            &long,
            Observation::Absent,
        );
        assert!(e.raw.len() <= RAW_LIMIT && e.raw.len() > RAW_LIMIT - 2);
    }

    #[test]
    fn scope_labels_round_trip() {
        for s in [
            Scope::Generic,
            Scope::OurToken,
            Scope::OtherToken("gptbot".into()),
        ] {
            assert_eq!(Scope::from_label(&s.label()), s);
        }
    }
}
