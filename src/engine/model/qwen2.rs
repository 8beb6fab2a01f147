//! `qwen2` (Qwen2, Qwen2.5): the llama block plus biases on the q, k and v
//! projections, with NeoX RoPE. llama.cpp `src/models/qwen2.cpp`.

use super::{ArchSpec, Bias};
use crate::engine::arch::Arch;

/// The qwen2 block as data.
pub const SPEC: ArchSpec = ArchSpec {
    arch: Arch::Qwen2,
    qkv_bias: Bias::Required,
    qk_norm: false,
    qk_norm_full: false,
    moe: None,
};
