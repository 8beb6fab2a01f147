//! Serve stage: the HTTP API and web page.
//!
//! So far only [`sample_site`]: the bundled demo site served on 127.0.0.1
//! for `byline demo` and tests. The "Q&A service" issue builds the API.

pub mod sample_site;
