//! `qwen3` (Qwen3 dense): the llama block plus an RMSNorm over each q and k
//! head (weights of head_dim) before RoPE, NeoX RoPE, no q/k/v biases, and a
//! head width from `attention.key_length` that need not be n_embd / n_head.
//! llama.cpp `src/models/qwen3.cpp`.

use super::{ArchSpec, Bias};
use crate::engine::arch::Arch;

/// The qwen3 block as data.
pub const SPEC: ArchSpec = ArchSpec {
    arch: Arch::Qwen3,
    qkv_bias: Bias::Optional,
    qk_norm: true,
    qk_norm_full: false,
    moe: None,
};
