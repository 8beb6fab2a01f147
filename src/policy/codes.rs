//! Signal and reason codes as a type: every code the normaliser can raise
//! and a verdict can name (docs/signals.md, "Reason code index"). Policy
//! files may only name these; stored verdict reasons read back through
//! [`Code::from_str`], where an unknown string is an error.

use std::fmt;
use std::str::FromStr;

macro_rules! codes {
    ($($variant:ident = $text:literal,)*) => {
        /// One signal/reason code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code {
            $($variant,)*
        }

        impl Code {
            /// Every code, in documentation order.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The code as stored, written in policy files and documented.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $text,)*
                }
            }
        }
    };
}

codes! {
    RobotsDisallow = "robots.disallow",
    RobotsUnreachable = "robots.unreachable",
    RobotsAllowExplicit = "robots.allow_explicit",
    AiIntentAiTrain = "ai_intent.ai_train",
    AiIntentAiSearch = "ai_intent.ai_search",
    AiIntentAiUserFetch = "ai_intent.ai_user_fetch",
    MetaNoindex = "meta.noindex",
    MetaUnavailableAfter = "meta.unavailable_after",
    MetaNosnippet = "meta.nosnippet",
    MetaMaxSnippet = "meta.max-snippet",
    MetaNoarchive = "meta.noarchive",
    MetaNocache = "meta.nocache",
    MetaNoai = "meta.noai",
    MetaDisallowaitraining = "meta.disallowaitraining",
    TdmrepReserved = "tdmrep.reserved",
    TdmrepUnreserved = "tdmrep.unreserved",
    TdmrepUnreachable = "tdmrep.unreachable",
    AiprefTrainAiN = "aipref.train-ai=n",
    AiprefTrainAiY = "aipref.train-ai=y",
    AiprefSearchN = "aipref.search=n",
    AiprefSearchY = "aipref.search=y",
    AiprefLegacyAiN = "aipref.legacy.ai=n",
    AiprefLegacyGenaiN = "aipref.legacy.genai=n",
    AiprefLegacyTrainGenaiN = "aipref.legacy.train-genai=n",
    AiprefLegacyTdmN = "aipref.legacy.tdm=n",
    AiprefLegacyAllN = "aipref.legacy.all=n",
    AiprefLegacyBotsN = "aipref.legacy.bots=n",
    AiprefLegacyAiUseN = "aipref.legacy.ai-use=n",
    ContentSignalSearchNo = "content_signal.search=no",
    ContentSignalSearchYes = "content_signal.search=yes",
    ContentSignalAiInputNo = "content_signal.ai-input=no",
    ContentSignalAiInputYes = "content_signal.ai-input=yes",
    ContentSignalAiTrainNo = "content_signal.ai-train=no",
    ContentSignalAiTrainYes = "content_signal.ai-train=yes",
    AiTxtDisallow = "ai_txt.disallow",
    AiTxtAllow = "ai_txt.allow",
    RslProhibitsAll = "rsl.prohibits.all",
    RslProhibitsAiAll = "rsl.prohibits.ai-all",
    RslProhibitsAiTrain = "rsl.prohibits.ai-train",
    RslProhibitsTrainAi = "rsl.prohibits.train-ai",
    RslProhibitsAiInput = "rsl.prohibits.ai-input",
    RslProhibitsAiIndex = "rsl.prohibits.ai-index",
    RslProhibitsSearch = "rsl.prohibits.search",
    RslPermitsAll = "rsl.permits.all",
    RslPermitsAiAll = "rsl.permits.ai-all",
    RslPermitsAiTrain = "rsl.permits.ai-train",
    RslPermitsTrainAi = "rsl.permits.train-ai",
    RslPermitsAiInput = "rsl.permits.ai-input",
    RslPermitsAiIndex = "rsl.permits.ai-index",
    RslPermitsSearch = "rsl.permits.search",
    RslAttribution = "rsl.attribution",
    RslLicenceRequired = "rsl.licence_required",
    NlReservation = "nl_reservation",
    LicenceBy = "licence.by",
    LicenceSa = "licence.sa",
    LicenceNc = "licence.nc",
    LicenceNd = "licence.nd",
    LicencePublicDomain = "licence.public_domain",
    LicenceOpen = "licence.open",
    LicenceNone = "licence.none",
    LicenceConflict = "licence.conflict",
}

/// A string that is not a known code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown reason code `{0}`")]
pub struct UnknownCode(pub String);

impl FromStr for Code {
    type Err = UnknownCode;

    fn from_str(s: &str) -> Result<Code, UnknownCode> {
        Code::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownCode(s.to_string()))
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Code {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Code, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Code {
    /// The code for a family and a value read from a document (an AIPREF
    /// label, a Content-Signal key, an RSL usage term): `None` when the
    /// combination is not a code Byline acts on (the evidence still records it).
    pub fn lookup(text: &str) -> Option<Code> {
        text.parse().ok()
    }

    /// Whether a policy's `[effects]` may name this code: `licence.none`
    /// and `licence.conflict` are informational (they explain a verdict,
    /// a knob-free rule decides them).
    pub fn in_effects(self) -> bool {
        !matches!(self, Code::LicenceNone | Code::LicenceConflict)
    }

    /// Whether this code reads a licence (`licence.*`).
    pub fn is_licence(self) -> bool {
        self.as_str().starts_with("licence.")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIGNALS_MD: &str = include_str!("../../docs/signals.md");

    /// docs/signals.md is checked against the types: every reason code,
    /// skip reason, robots warning and policy knob has its line.
    #[test]
    fn docs_signals_md_documents_every_code_reason_warning_and_knob() {
        let index = SIGNALS_MD
            .split("## Reason code index")
            .nth(1)
            .expect("docs/signals.md has a reason code index");
        let listed = |code: &str| index.contains(&format!("- `{code}`"));
        for c in Code::ALL {
            assert!(listed(c.as_str()), "docs/signals.md index lacks `{c}`");
        }
        for r in crate::crawl::reasons::SkipReason::ALL {
            assert!(listed(r.as_str()), "docs/signals.md index lacks `{r}`");
        }
        use crate::crawl::robots as r;
        for w in [
            r::WARNING_TRUNCATED,
            r::WARNING_RULES_WITHOUT_GROUP,
            r::WARNING_PARSE_ERROR,
            r::WARNING_MATCHER_FALLBACK,
            r::WARNING_UNPARSEABLE_LINES,
            r::WARNING_CRAWL_DELAY,
            r::WARNING_CONTENT_TYPE,
        ] {
            assert!(listed(w), "docs/signals.md index lacks `{w}`");
        }
        for knob in crate::policy::config::KNOB_NAMES {
            assert!(
                SIGNALS_MD.contains(&format!("| `{knob}` |")),
                "docs/signals.md §8.6 lacks knob `{knob}`"
            );
        }
    }

    #[test]
    fn codes_round_trip_and_unknown_strings_are_errors() {
        for c in Code::ALL {
            assert_eq!(c.as_str().parse::<Code>(), Ok(*c));
            assert_eq!(c.to_string(), c.as_str());
        }
        let mut texts: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
        texts.sort_unstable();
        texts.dedup();
        assert_eq!(texts.len(), Code::ALL.len(), "codes are unique");
        assert_eq!(
            "robots.dissalow".parse::<Code>(),
            Err(UnknownCode("robots.dissalow".into()))
        );
        assert!(serde_json::from_str::<Code>("\"licence.by\"").is_ok());
        assert!(serde_json::from_str::<Code>("\"licence.bx\"").is_err());
    }
}
