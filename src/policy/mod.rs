//! Policy stage: turns evidence (consent, opt-out and licence signals) into a
//! verdict per page and purpose under a policy read from a TOML file.
//!
//! A leaf: imports nothing else from the crate, performs no I/O beyond what
//! its caller hands it. Evaluation is a pure function of (evidence, policy).
