//! `olmoe` (OLMoE-1B-7B): RMSNorm over the whole q and k projections (one
//! weight per projected feature, before the split into heads), NeoX RoPE, no
//! GQA, and a MoE FFN: softmax router, top-k without renormalisation.
//! llama.cpp `src/models/olmoe.cpp`.

use super::{ArchSpec, Bias, MoeSpec, SharedKind};
use crate::engine::arch::Arch;

/// The olmoe block as data.
pub const SPEC: ArchSpec = ArchSpec {
    arch: Arch::Olmoe,
    qkv_bias: Bias::Optional,
    qk_norm: true,
    qk_norm_full: true,
    moe: Some(MoeSpec {
        norm: false,
        shared: SharedKind::No,
    }),
};
