//! `llama` (Llama 2/3, SmolLM2): pre-norm blocks of RMSNorm, GQA with normal
//! RoPE, SwiGLU; q/k/v biases only if the file has them; llama-3 rope factors
//! if `rope_freqs.weight` is present. With `llama.expert_count` in the metadata
//! the FFN is a Mixtral-style MoE (softmax top-k, renormalised; llama.cpp
//! passes `norm_w = true` for LLM_ARCH_LLAMA). llama.cpp `src/models/llama.cpp`.

use super::{ArchSpec, Bias, MoeSpec, SharedKind};
use crate::engine::arch::Arch;

/// The llama block as data.
pub const SPEC: ArchSpec = ArchSpec {
    arch: Arch::Llama,
    qkv_bias: Bias::Optional,
    qk_norm: false,
    qk_norm_full: false,
    moe: Some(MoeSpec {
        norm: true,
        shared: SharedKind::No,
    }),
};
