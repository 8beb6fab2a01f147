//! Integration tests: one binary, modules per area. Shared helpers live in
//! `support/`.

mod audit_log;
mod chat;
mod consent_crawl;
mod consent_store;
mod crawl_basic;
mod demo;
mod engine_cli;
mod engine_model;
mod robots;
mod robots_cli;
mod robots_conformance;
mod robots_fixtures;
mod sample_site;
mod store_schema;
mod support;
mod tokenizer;
