//! The two engine modules the kernels need, from byline's source tree.

#[path = "../../src/engine/quant/mod.rs"]
pub mod quant;

#[path = "../../src/engine/kernels/mod.rs"]
pub mod kernels;
