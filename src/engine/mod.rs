//! Engine stage: an embedded CPU inference engine for GGUF models.
//!
//! In: a GGUF file path, token ids or text. Out: logits, sampled tokens,
//! streamed text. Never: imports anything else from this crate, touches the
//! network, or prints.

/// Architecture tables: GGUF metadata keys and tensor names per architecture.
pub mod arch;
/// Chat templates from `tokenizer.chat_template`, rendered with minijinja.
pub mod chat;
/// GGUF container reader over a memory map (versions 2 and 3).
pub mod gguf;
/// Dequantization and dot-product kernels: scalar reference plus SIMD paths.
pub mod kernels;
/// The machine's read bandwidth (decode's ceiling), measured.
pub mod membw;
/// Model forward passes built from shared blocks, KV cache.
pub mod model;
/// ggml tensor types and their block layouts (`BlockQ4_1`, `BlockQ4K`, ...).
pub mod quant;
/// Sampling: greedy, temperature, top-k/top-p/min-p, penalties, stops.
pub mod sampling;
/// Tokenizers built from GGUF metadata (byte-level BPE, SentencePiece).
pub mod tokenizer;
