//! Serve stage: the HTTP API and web page.
//!
//! Nothing here yet; the "Q&A service" issue builds it.
