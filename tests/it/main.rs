//! Integration tests: one binary, modules per area. Shared helpers live in
//! `support/`.

mod audit_cli;
mod audit_log;
mod chat;
mod consent_crawl;
mod consent_store;
mod crawl_basic;
mod crawl_cli;
mod crawl_polite;
mod crawl_resume;
mod crawl_robots;
mod crawl_safety;
mod crawl_ssrf;
mod demo;
mod engine_cli;
mod engine_iq;
mod engine_model;
mod robots;
mod robots_cli;
mod robots_conformance;
mod robots_fixtures;
mod sample_site;
mod sample_site_consent;
mod store_schema;
mod support;
mod tokenizer;
