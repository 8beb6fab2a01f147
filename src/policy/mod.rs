//! Policy stage: turns evidence (consent, opt-out and licence signals) into a
//! verdict per page and purpose under a policy read from a TOML file.
//!
//! In: evidence rows (signals.md §0.3) built by the pure signal parsers here from
//! strings the crawler hands over, and a [`Policy`]. Out: one [`Verdict`] per
//! purpose with reasons, conditions and the evidence used.
//!
//! A leaf: imports nothing else from the crate, performs no I/O beyond what
//! its caller hands it (the policy file bytes, response headers, HTML, origin
//! files). Evaluation is a pure function of (evidence, policy, time).

pub mod agents;
pub mod aipref;
pub mod apply;
pub mod codes;
pub mod config;
pub mod directives;
mod error;
pub mod evaluate;
pub mod evidence;
pub mod gather;
pub mod licence;
pub mod origin;
pub mod page;
pub mod robotstxt;
pub mod rsl;
pub mod tdmrep;
pub mod verdict;

#[cfg(test)]
mod spec_cases;

pub use config::{Policy, Regime, default_policy};
pub use error::PolicyError;
pub use evaluate::evaluate;
pub use evidence::{Evidence, Location, Observation, Scope, StatusLabel};
pub use verdict::{Condition, Decision, PageVerdicts, Purpose, Verdict};
