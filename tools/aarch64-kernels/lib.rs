//! byline's `src/engine/quant` and `src/engine/kernels` compiled on their own
//! (see Cargo.toml): `cargo test --target aarch64-unknown-linux-gnu
//! engine::kernels` here runs the same unit tests as byline's
//! `cargo test --lib engine::kernels`, every kernel set against the scalar
//! reference. `tests/data` links to byline's reference data.
#![allow(dead_code, unused_imports)]

pub mod engine;
