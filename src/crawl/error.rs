use thiserror::Error;

use crate::store::StoreError;

/// What stops a crawl. Per-URL problems are not errors: they are recorded
/// on the URL's fetch and frontier rows and the crawl goes on.
#[derive(Debug, Error)]
pub enum CrawlError {
    /// No seed URL was given.
    #[error("no seed urls given")]
    NoSeeds,
    /// A seed URL cannot be crawled.
    #[error("seed url {url} cannot be crawled: {reason}")]
    BadSeed { url: String, reason: String },
    /// No contact URL for a crawl that reaches other people's servers.
    #[error(
        "no contact URL: seed {url} is not on this machine, and site operators must be able to reach whoever runs the crawler; give one with --contact URL (or BYLINE_CONTACT), e.g. --contact mailto:you@example.org or a page about your crawl"
    )]
    NoContact { url: String },
    /// A frontier lease a fetch could outlive (`--lease-secs`).
    #[error(
        "--lease-secs {secs} is too short: a lease must outlast the longest fetch, more than {need} s (the total timeout plus the longest Crawl-delay waited for)"
    )]
    ShortLease { secs: u64, need: u64 },
    /// The HTTP client could not be built.
    #[error("building the http client: {0}")]
    Client(#[source] reqwest::Error),
    /// The corpus could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The consent hook failed (a store problem while recording evidence).
    #[error(transparent)]
    Consent(#[from] crate::crawl::signals::SignalsError),
    /// A crawl task panicked.
    #[error("crawl task failed: {0}")]
    Task(String),
}
