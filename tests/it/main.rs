//! Integration tests: one binary, modules per area. Shared helpers live in
//! `support/`.

mod engine_cli;
mod engine_model;
mod store_schema;
mod support;
