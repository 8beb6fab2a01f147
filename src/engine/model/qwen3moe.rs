//! `qwen3moe` (Qwen3-30B-A3B, Qwen3-235B-A22B): the qwen3 attention block
//! (per-head q/k RMSNorm, NeoX RoPE, no biases) with a MoE FFN: softmax
//! router, top-k, chosen weights renormalised (llama.cpp hard-codes
//! `norm_w = true` for this architecture, as the released models set
//! `norm_topk_prob`). llama.cpp `src/models/qwen3moe.cpp`.

use super::{ArchSpec, Bias, MoeSpec, SharedKind};
use crate::engine::arch::Arch;

/// The qwen3moe block as data.
pub const SPEC: ArchSpec = ArchSpec {
    arch: Arch::Qwen3Moe,
    qkv_bias: Bias::Optional,
    qk_norm: true,
    qk_norm_full: false,
    moe: Some(MoeSpec {
        norm: true,
        shared: SharedKind::No,
    }),
};
