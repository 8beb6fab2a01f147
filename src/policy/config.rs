//! The policy file: a TOML document with the regime, every knob of spec
//! §8.6 and an `[effects]` table that says, per signal code, what each
//! purpose gets (signals.md §8.2 / §8.3 rows). A policy is data: the evaluator reads
//! it at run time; a new policy needs no recompile.
//!
//! Four table cells are owned by knobs and may not be written in `[effects]`
//! (the loader says so with the line): `tdmrep.reserved` × `search_index`
//! (`tdmrep.reserves_search`), and, per regime, `licence.nc` × `rag_attributed`
//! / `train` (`nc_blocks_rag_in_eu` / `nc_blocks_training_in_eu`, eu_opt_out)
//! and `licence.sa` × `train` (`sa_allows_training`, strict_opt_in).

use std::collections::BTreeMap;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use toml::Spanned;

use super::codes::Code;
use super::error::PolicyError;
use super::verdict::Purpose;

/// Spec §0.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Regime {
    /// Allowed unless reserved (EU DSM Art. 4(3)).
    EuOptOut,
    /// Allowed only with a positive grant.
    StrictOptIn,
}

impl Regime {
    /// The id as written in policy files.
    pub fn as_str(self) -> &'static str {
        match self {
            Regime::EuOptOut => "eu_opt_out",
            Regime::StrictOptIn => "strict_opt_in",
        }
    }
}

/// `robots.after_30d` (signals.md §1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After30d {
    KeepCached,
    Unavailable,
    Disallow,
}

/// Every knob of signals.md §8.6 (defaults as documented there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Knobs {
    pub robots_after_30d: After30d,
    pub robots_treat_429_as_unreachable: bool,
    pub robots_max_bytes: u64,
    pub ai_intent_enabled: bool,
    pub tdmrep_reserves_search: bool,
    pub aipref_honour_star_group_too: bool,
    pub aipref_legacy_labels_reserve_training: bool,
    pub commercial_use: bool,
    pub sa_allows_training: bool,
    pub nc_blocks_rag_in_eu: bool,
    pub nc_blocks_training_in_eu: bool,
    pub honour_natural_language_reservations: bool,
}

impl Default for Knobs {
    fn default() -> Knobs {
        Knobs {
            robots_after_30d: After30d::KeepCached,
            robots_treat_429_as_unreachable: true,
            robots_max_bytes: 512_000,
            ai_intent_enabled: true,
            tdmrep_reserves_search: false,
            aipref_honour_star_group_too: true,
            aipref_legacy_labels_reserve_training: true,
            commercial_use: true,
            sa_allows_training: false,
            nc_blocks_rag_in_eu: true,
            nc_blocks_training_in_eu: false,
            honour_natural_language_reservations: true,
        }
    }
}

/// What a signal does to one purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Effect {
    #[default]
    None,
    Exclude,
    Defer,
    /// An explicit permission (counts in `strict_opt_in`).
    Grant,
}

/// A condition a cell attaches; `max_quote` takes its number from the signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CondKind {
    Attribution,
    LicenceNotice,
    AttributionManifest,
    ShareAlike,
    NoQuote,
    MaxQuote,
    SnippetLengthQuotes,
    VerbatimOnly,
}

const CELL_WORDS: [&str; 11] = [
    "exclude",
    "defer",
    "grant",
    "attribution",
    "licence_notice",
    "attribution_manifest",
    "share_alike",
    "no_quote",
    "max_quote",
    "snippet_length_quotes",
    "verbatim_only",
];

/// One cell of the table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cell {
    pub effect: Effect,
    pub conditions: Vec<CondKind>,
}

/// Every knob a policy file can set, as written in the file (`table.key`).
pub const KNOB_NAMES: &[&str] = &[
    "regime",
    "robots.after_30d",
    "robots.treat_429_as_unreachable",
    "robots.max_bytes",
    "ai_intent.enabled",
    "tdmrep.reserves_search",
    "aipref.honour_star_group_too",
    "aipref.legacy_labels_reserve_training",
    "commercial_use",
    "sa_allows_training",
    "nc_blocks_rag_in_eu",
    "nc_blocks_training_in_eu",
    "honour_natural_language_reservations",
];

/// One row: a signal code's cells per purpose.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Row {
    pub search_index: Cell,
    pub rag_attributed: Cell,
    pub train: Cell,
}

impl Row {
    fn cell(&self, p: Purpose) -> &Cell {
        match p {
            Purpose::SearchIndex => &self.search_index,
            Purpose::RagAttributed => &self.rag_attributed,
            Purpose::Train => &self.train,
        }
    }
}

/// A loaded, validated policy.
#[derive(Debug, Clone)]
pub struct Policy {
    pub id: String,
    pub description: String,
    /// sha256 of the exact file bytes, hex.
    pub sha256: String,
    pub regime: Regime,
    pub knobs: Knobs,
    /// Signal code (or `prefix.*`) → row.
    pub effects: BTreeMap<String, Row>,
}

static EXCLUDE: Cell = Cell {
    effect: Effect::Exclude,
    conditions: Vec::new(),
};
static NONE: Cell = Cell {
    effect: Effect::None,
    conditions: Vec::new(),
};

impl Policy {
    /// The cell for `code` and purpose, with knob-owned cells applied.
    pub fn cell(&self, code: Code, p: Purpose) -> &Cell {
        let code = code.as_str();
        let knob = |on: bool| if on { &EXCLUDE } else { &NONE };
        match (code, p, self.regime) {
            ("tdmrep.reserved", Purpose::SearchIndex, _) => {
                return knob(self.knobs.tdmrep_reserves_search);
            }
            ("licence.nc", Purpose::RagAttributed, Regime::EuOptOut) => {
                return knob(self.knobs.nc_blocks_rag_in_eu);
            }
            ("licence.nc", Purpose::Train, Regime::EuOptOut) => {
                return knob(self.knobs.nc_blocks_training_in_eu);
            }
            ("licence.sa", Purpose::Train, Regime::StrictOptIn) => {
                return knob(!self.knobs.sa_allows_training);
            }
            _ => {}
        }
        if let Some(row) = self.effects.get(code) {
            return row.cell(p);
        }
        // `prefix.*` rows: the longest matching prefix.
        self.effects
            .iter()
            .filter(|(k, _)| k.strip_suffix('*').is_some_and(|pre| code.starts_with(pre)))
            .max_by_key(|(k, _)| k.len())
            .map(|(_, r)| r.cell(p))
            .unwrap_or(&NONE)
    }

    /// Loads a policy from the exact file bytes; `origin` names the file in errors.
    pub fn from_bytes(bytes: &[u8], origin: &str) -> Result<Policy, PolicyError> {
        let sha256 = hex::encode(Sha256::digest(bytes));
        let text = std::str::from_utf8(bytes).map_err(|e| PolicyError::NotUtf8 {
            origin: origin.to_string(),
            offset: e.valid_up_to(),
        })?;
        let err = |span: Option<std::ops::Range<usize>>, message: String, fix: String| {
            let (line, column) = span.map(|s| line_col(text, s.start)).unwrap_or((1, 1));
            PolicyError::Invalid {
                origin: origin.to_string(),
                line,
                column,
                message,
                fix,
            }
        };
        let raw: RawPolicy = toml::from_str(text).map_err(|e| {
            let msg = e.message().trim().to_string();
            let fix = fix_for(&msg);
            err(e.span(), msg, fix)
        })?;

        let regime = match raw.regime.get_ref().as_str() {
            "eu_opt_out" => Regime::EuOptOut,
            "strict_opt_in" => Regime::StrictOptIn,
            other => {
                return Err(err(
                    Some(raw.regime.span()),
                    format!("unknown regime `{other}`"),
                    "write `regime = \"eu_opt_out\"` or `regime = \"strict_opt_in\"`".into(),
                ));
            }
        };
        if raw.id.get_ref().trim().is_empty() {
            return Err(err(
                Some(raw.id.span()),
                "policy id is empty".into(),
                "give the policy a short id, e.g. `id = \"my-policy\"`".into(),
            ));
        }
        let d = Knobs::default();
        let after_30d = match raw
            .robots
            .after_30d
            .as_ref()
            .map(|s| (s.get_ref().as_str(), s.span()))
        {
            None => d.robots_after_30d,
            Some(("keep_cached", _)) => After30d::KeepCached,
            Some(("unavailable", _)) => After30d::Unavailable,
            Some(("disallow", _)) => After30d::Disallow,
            Some((other, span)) => {
                return Err(err(
                    Some(span),
                    format!("unknown robots.after_30d value `{other}`"),
                    "use one of `keep_cached`, `unavailable`, `disallow` (signals.md §1.2)".into(),
                ));
            }
        };
        if let Some(mb) = &raw.robots.max_bytes
            && *mb.get_ref() < 512_000
        {
            return Err(err(
                Some(mb.span()),
                format!(
                    "robots.max_bytes {} is below the RFC 9309 minimum of 512000",
                    mb.get_ref()
                ),
                "set `max_bytes = 512000` or more (RFC 9309 §2.5)".into(),
            ));
        }
        let knobs = Knobs {
            robots_after_30d: after_30d,
            robots_treat_429_as_unreachable: raw
                .robots
                .treat_429_as_unreachable
                .unwrap_or(d.robots_treat_429_as_unreachable),
            robots_max_bytes: raw
                .robots
                .max_bytes
                .map(|s| *s.get_ref())
                .unwrap_or(d.robots_max_bytes),
            ai_intent_enabled: raw.ai_intent.enabled.unwrap_or(d.ai_intent_enabled),
            tdmrep_reserves_search: raw
                .tdmrep
                .reserves_search
                .unwrap_or(d.tdmrep_reserves_search),
            aipref_honour_star_group_too: raw
                .aipref
                .honour_star_group_too
                .unwrap_or(d.aipref_honour_star_group_too),
            aipref_legacy_labels_reserve_training: raw
                .aipref
                .legacy_labels_reserve_training
                .unwrap_or(d.aipref_legacy_labels_reserve_training),
            commercial_use: raw.commercial_use.unwrap_or(d.commercial_use),
            sa_allows_training: raw.sa_allows_training.unwrap_or(d.sa_allows_training),
            nc_blocks_rag_in_eu: raw.nc_blocks_rag_in_eu.unwrap_or(d.nc_blocks_rag_in_eu),
            nc_blocks_training_in_eu: raw
                .nc_blocks_training_in_eu
                .unwrap_or(d.nc_blocks_training_in_eu),
            honour_natural_language_reservations: raw
                .honour_natural_language_reservations
                .unwrap_or(d.honour_natural_language_reservations),
        };

        let mut effects = BTreeMap::new();
        for (code, row) in raw.effects {
            let span = code.span();
            let code = code.into_inner();
            let known = match code.strip_suffix('*') {
                Some(pre) => Code::ALL
                    .iter()
                    .any(|k| k.in_effects() && k.as_str().starts_with(pre)),
                None => code.parse::<Code>().is_ok_and(Code::in_effects),
            };
            if !known {
                let near: Vec<&str> = Code::ALL
                    .iter()
                    .map(|c| c.as_str())
                    .filter(|k| k.split('.').next() == code.split('.').next())
                    .collect();
                let fix = if near.is_empty() {
                    format!(
                        "use a signal code Byline raises; known codes: {}",
                        Code::ALL
                            .iter()
                            .map(|c| c.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                } else {
                    format!("did you mean one of: {}", near.join(", "))
                };
                return Err(err(
                    Some(span),
                    format!("unknown signal code `{code}` in [effects]"),
                    fix,
                ));
            }
            let row_span = row.span();
            let row = row.into_inner();
            let mut out = Row::default();
            for (purpose, cell) in [
                (Purpose::SearchIndex, row.search_index),
                (Purpose::RagAttributed, row.rag_attributed),
                (Purpose::Train, row.train),
            ] {
                let Some(cell) = cell else { continue };
                let cspan = cell.span();
                if let Some(knob) = knob_owner(&code, purpose, regime) {
                    return Err(err(
                        Some(cspan),
                        format!(
                            "the cell `{code}` × `{}` is set by the knob `{knob}` in this regime",
                            purpose.as_str()
                        ),
                        format!(
                            "remove `{}` from this row and set `{knob}` instead",
                            purpose.as_str()
                        ),
                    ));
                }
                let words = match cell.into_inner() {
                    RawCell::One(s) => vec![s],
                    RawCell::Many(v) => v,
                };
                let mut c = Cell::default();
                for w in &words {
                    let effect = match w.as_str() {
                        "exclude" => Some(Effect::Exclude),
                        "defer" => Some(Effect::Defer),
                        "grant" => Some(Effect::Grant),
                        "none" => Some(Effect::None),
                        _ => None,
                    };
                    if let Some(e) = effect {
                        if c.effect != Effect::None && e != Effect::None {
                            return Err(err(
                                Some(cspan.clone()),
                                format!("cell `{code}` × `{}` has two effects", purpose.as_str()),
                                "keep one of `exclude`, `defer`, `grant` per cell".into(),
                            ));
                        }
                        c.effect = e;
                        continue;
                    }
                    let cond = match w.as_str() {
                        "attribution" => CondKind::Attribution,
                        "licence_notice" => CondKind::LicenceNotice,
                        "attribution_manifest" => CondKind::AttributionManifest,
                        "share_alike" => CondKind::ShareAlike,
                        "no_quote" => CondKind::NoQuote,
                        "max_quote" => CondKind::MaxQuote,
                        "snippet_length_quotes" => CondKind::SnippetLengthQuotes,
                        "verbatim_only" => CondKind::VerbatimOnly,
                        other => {
                            return Err(err(
                                Some(cspan.clone()),
                                format!("unknown effect or condition `{other}` in `{code}`"),
                                format!("use `none` or one of: {}", CELL_WORDS.join(", ")),
                            ));
                        }
                    };
                    if c.effect == Effect::Exclude || c.effect == Effect::Defer {
                        return Err(err(
                            Some(cspan.clone()),
                            format!(
                                "cell `{code}` × `{}` excludes and also sets a condition",
                                purpose.as_str()
                            ),
                            "a condition only makes sense with `grant` or on its own".into(),
                        ));
                    }
                    c.conditions.push(cond);
                }
                match purpose {
                    Purpose::SearchIndex => out.search_index = c,
                    Purpose::RagAttributed => out.rag_attributed = c,
                    Purpose::Train => out.train = c,
                }
            }
            let _ = row_span;
            effects.insert(code, out);
        }
        Ok(Policy {
            id: raw.id.into_inner(),
            description: raw.description.unwrap_or_default(),
            sha256,
            regime,
            knobs,
            effects,
        })
    }
}

fn knob_owner(code: &str, p: Purpose, regime: Regime) -> Option<&'static str> {
    match (code, p, regime) {
        ("tdmrep.reserved", Purpose::SearchIndex, _) => Some("tdmrep.reserves_search"),
        ("licence.nc", Purpose::RagAttributed, Regime::EuOptOut) => Some("nc_blocks_rag_in_eu"),
        ("licence.nc", Purpose::Train, Regime::EuOptOut) => Some("nc_blocks_training_in_eu"),
        ("licence.sa", Purpose::Train, Regime::StrictOptIn) => Some("sa_allows_training"),
        _ => None,
    }
}

fn fix_for(msg: &str) -> String {
    if msg.starts_with("unknown field") {
        "remove the key or fix its spelling; the keys allowed here are listed above".into()
    } else if msg.starts_with("missing field") {
        "add the missing key (see docs/policies.md for every key)".into()
    } else if msg.contains("invalid type") {
        "knobs are booleans (`true`/`false`), `max_bytes` an integer, cells a string or a list of strings".into()
    } else {
        "fix the TOML syntax at this position".into()
    }
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map(|i| offset - i).unwrap_or(offset + 1);
    (line, column)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    id: Spanned<String>,
    description: Option<String>,
    regime: Spanned<String>,
    commercial_use: Option<bool>,
    sa_allows_training: Option<bool>,
    nc_blocks_rag_in_eu: Option<bool>,
    nc_blocks_training_in_eu: Option<bool>,
    honour_natural_language_reservations: Option<bool>,
    #[serde(default)]
    robots: RawRobots,
    #[serde(default)]
    ai_intent: RawAiIntent,
    #[serde(default)]
    tdmrep: RawTdmrep,
    #[serde(default)]
    aipref: RawAipref,
    #[serde(default)]
    effects: BTreeMap<Spanned<String>, Spanned<RawRow>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRobots {
    after_30d: Option<Spanned<String>>,
    treat_429_as_unreachable: Option<bool>,
    max_bytes: Option<Spanned<u64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAiIntent {
    enabled: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTdmrep {
    reserves_search: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAipref {
    honour_star_group_too: Option<bool>,
    legacy_labels_reserve_training: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRow {
    search_index: Option<Spanned<RawCell>>,
    rag_attributed: Option<Spanned<RawCell>>,
    train: Option<Spanned<RawCell>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawCell {
    One(String),
    Many(Vec<String>),
}

/// The bundled default policy (`policies/eu-opt-out.toml`).
pub const EU_OPT_OUT_TOML: &str = include_str!("../../policies/eu-opt-out.toml");
/// The bundled strict policy (`policies/strict-opt-in.toml`).
pub const STRICT_OPT_IN_TOML: &str = include_str!("../../policies/strict-opt-in.toml");

/// The default policy (eu-opt-out), as bundled.
pub fn default_policy() -> Policy {
    Policy::from_bytes(EU_OPT_OUT_TOML.as_bytes(), "policies/eu-opt-out.toml")
        .expect("the bundled default policy is valid (tested)")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(s: &str) -> Result<Policy, PolicyError> {
        Policy::from_bytes(s.as_bytes(), "test.toml")
    }

    #[test]
    fn both_bundled_policies_load() {
        let eu = load(EU_OPT_OUT_TOML).unwrap();
        assert_eq!(eu.regime, Regime::EuOptOut);
        assert_eq!(eu.knobs, Knobs::default());
        let strict = load(STRICT_OPT_IN_TOML).unwrap();
        assert_eq!(strict.regime, Regime::StrictOptIn);
        assert_ne!(eu.sha256, strict.sha256);
    }

    #[test]
    fn a_misspelt_knob_names_its_line_and_the_fix() {
        let e = load("id = \"x\"\nregime = \"eu_opt_out\"\n\n[tdmrep]\nreserve_search = true\n")
            .unwrap_err();
        let s = e.to_string();
        assert!(s.contains("line 5"), "{s}");
        assert!(s.contains("reserve_search"), "{s}");
        assert!(s.contains("remove the key or fix its spelling"), "{s}");
    }

    #[test]
    fn an_unknown_signal_code_names_its_line_and_near_codes() {
        let e = load("id = \"x\"\nregime = \"eu_opt_out\"\n[effects]\n\"meta.noindx\" = { search_index = \"exclude\" }\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 4"), "{e}");
        assert!(e.contains("meta.noindex"), "{e}");
    }

    #[test]
    fn a_knob_owned_cell_is_refused_with_the_knob_named() {
        let e = load("id = \"x\"\nregime = \"eu_opt_out\"\n[effects]\n\"licence.nc\" = { rag_attributed = \"exclude\" }\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 4") && e.contains("nc_blocks_rag_in_eu"),
            "{e}"
        );
    }

    #[test]
    fn bad_regime_and_bad_cell_words_are_refused() {
        let e = load("id = \"x\"\nregime = \"opt_out\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2") && e.contains("strict_opt_in"), "{e}");
        let e = load("id = \"x\"\nregime = \"eu_opt_out\"\n[effects]\n\"meta.noai\" = { train = \"forbid\" }\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("forbid") && e.contains("line 4"), "{e}");
        let e = load("id = \"x\"\nregime = \"eu_opt_out\"\n[robots]\nmax_bytes = 1000\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("512000") && e.contains("line 4"), "{e}");
    }

    #[test]
    fn the_hash_is_of_the_exact_bytes() {
        let a = load("id = \"x\"\nregime = \"eu_opt_out\"\n").unwrap();
        let b = load("id = \"x\"\nregime = \"eu_opt_out\"\n\n").unwrap();
        assert_ne!(a.sha256, b.sha256);
        assert_eq!(a.sha256.len(), 64);
    }
}

#[cfg(test)]
mod doc_tests {
    use crate::policy::codes::Code;

    const DOC: &str = include_str!("../../docs/policies.md");

    #[test]
    fn docs_policies_md_names_every_signal_code_and_knob() {
        for code in Code::ALL {
            assert!(
                DOC.contains(&format!("`{code}`")),
                "docs/policies.md does not document `{code}`"
            );
        }
        for knob in super::KNOB_NAMES {
            assert!(
                DOC.contains(&format!("| `{knob}` |")),
                "knob {knob} missing from the knob table"
            );
            let bare = knob.rsplit('.').next().unwrap();
            for f in [super::EU_OPT_OUT_TOML, super::STRICT_OPT_IN_TOML] {
                assert!(
                    f.contains(&format!("{bare} =")),
                    "bundled policy lacks knob {knob}"
                );
            }
        }
    }
}
