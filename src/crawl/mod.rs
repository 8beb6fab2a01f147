//! Crawl stage: fetches pages politely and safely.
//!
//! In: seed URLs, a crawl configuration. Out: fetch records, robots.txt
//! versions, robots decisions and extracted pages, written through `store`.
//! Never: decide consent verdicts (that is `policy`), or print (that is `cli`).
//!
//! Files: `crawler` (the loop), `conduct` (every request: guard, robots.txt
//! and politeness per hop), `fetch` (one exchange with limits), `guard` (SSRF), `charset`, `extract`, `urls`
//! (normalisation, scope, traps), `robots` (RFC 9309, pure), `signals`
//! (consent evidence I/O).

pub mod budget;
pub mod charset;
pub mod conduct;
pub mod crawler;
mod error;
pub mod extract;
pub mod fetch;
pub mod guard;
pub mod headers;
pub mod robots;
pub mod signals;
pub mod urls;

pub mod reasons;
pub mod recheck;

pub use crawler::{CrawlConfig, Event, REASON_REDIRECT_DISALLOWED, Summary, run, run_until};
pub use error::CrawlError;

/// Tokio worker threads for a process that crawls, given the CPUs it may
/// use: one fewer, and at least one (issue #26). A crawl keeps two busy
/// threads of its own besides tokio's workers: the group-commit writer
/// (on a blocking thread) and SQLite's connection thread (the claims and
/// the index pass). With as many workers as CPUs, five threads took turns
/// on two cores: the manuals' crawl switched context 13 times per page
/// and used 4-9 % more CPU than with one worker (8 switches), at the same
/// wall time. `TOKIO_WORKER_THREADS`, when set, overrides this.
pub fn worker_threads(cpus: usize) -> usize {
    cpus.saturating_sub(1).max(1)
}
