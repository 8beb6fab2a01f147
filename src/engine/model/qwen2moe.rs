//! `qwen2moe` (Qwen1.5-MoE, Qwen2-57B-A14B): the qwen2 attention block (q/k/v
//! biases, NeoX RoPE) with a MoE FFN: softmax router, top-k without
//! renormalisation (`norm_topk_prob = false`), plus a shared expert scaled by
//! `sigmoid(h . ffn_gate_inp_shexp)`. llama.cpp `src/models/qwen2moe.cpp`.

use super::{ArchSpec, Bias, MoeSpec, SharedKind};
use crate::engine::arch::Arch;

/// The qwen2moe block as data.
pub const SPEC: ArchSpec = ArchSpec {
    arch: Arch::Qwen2Moe,
    qkv_bias: Bias::Required,
    qk_norm: false,
    qk_norm_full: false,
    moe: Some(MoeSpec {
        norm: false,
        shared: SharedKind::Gated,
    }),
};
