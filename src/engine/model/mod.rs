//! Model forward passes built from shared blocks, and the KV cache.

/// Grouped-query causal attention and the KV cache.
pub mod attention;
/// SwiGLU feed-forward activation.
pub mod ffn;
/// RMSNorm.
pub mod norm;
/// Rotary position embeddings.
pub mod rope;
