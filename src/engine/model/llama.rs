//! `llama` (Llama 2/3, SmolLM2): pre-norm blocks of RMSNorm, GQA with normal
//! RoPE, SwiGLU; q/k/v biases only if the file has them; llama-3 rope factors
//! if `rope_freqs.weight` is present. llama.cpp `src/models/llama.cpp`.

use super::{ArchSpec, Bias};
use crate::engine::arch::Arch;

/// The llama block as data.
pub const SPEC: ArchSpec = ArchSpec {
    arch: Arch::Llama,
    qkv_bias: Bias::Optional,
    qk_norm: false,
};
