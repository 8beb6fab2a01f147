//! Crawl stage: fetches pages politely and safely.
//!
//! In: seed URLs, a crawl configuration. Out: fetch records, robots.txt
//! versions and extracted pages, written through `store`. Never: decide
//! consent verdicts (that is `policy`), or print (that is `cli`).

pub mod robots;
pub mod signals;
