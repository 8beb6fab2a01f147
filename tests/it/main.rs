//! Integration tests: one binary, modules per area. Shared helpers live in
//! `support/`.

mod store_schema;
mod support;
mod tokenizer;
