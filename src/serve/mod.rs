//! Serve stage: the Q&A service (HTTP API, OpenAI-compatible endpoint,
//! streaming, web page, limits) and the bundled sample site.
//!
//! - [`api`]: routes, validation, SSE, admin guard, graceful shutdown;
//! - [`queue`]: the bounded job queue in front of answer generation;
//! - [`metrics`]: Prometheus text metrics;
//! - [`sample_site`]: the demo site served on 127.0.0.1 for `byline demo`;
//! - [`sources`]: `/v1/sources/{id}`, a page's provenance from [`crate::audit::why`].

pub mod api;
pub mod metrics;
mod page;
pub mod queue;
pub mod sample_site;
pub mod sources;
