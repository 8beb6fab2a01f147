//! Byline: a consent-aware corpus crawler, a provenance audit and attributed
//! question answering on an embedded CPU model engine.
//!
//! The modules follow the data flow, in order:

/// Attributed answers: prompt, generation, citation checking.
pub mod answer;
/// The provenance audit: records, one URL's trail, summaries, exports and
/// verification of the hash-chained log.
pub mod audit;
/// The command line: the only module that prints.
pub mod cli;
/// Fetch pages politely: robots.txt (RFC 9309), frontier, limits, extraction.
pub mod crawl;
/// The embedded GGUF model engine (a leaf: imports nothing else from the crate).
pub mod engine;
/// Fuzz harnesses shared by `fuzz/` targets and the corpus replay tests.
#[doc(hidden)]
pub mod fuzzing;
/// Passages and full-text retrieval over pages the policy allows.
pub mod index;
/// Consent, opt-out and licence signals and per-purpose verdicts (a leaf: pure functions).
pub mod policy;
/// The HTTP service.
pub mod serve;
/// All SQL: the SQLite corpus behind small typed functions.
pub mod store;
