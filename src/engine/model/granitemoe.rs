//! `granitemoe` (Granite 3.x MoE): the llama block (normal RoPE) with four
//! scalars from the metadata: embeddings times `embedding_scale`, attention
//! scores times `attention.scale`, attention and FFN outputs times
//! `residual_scale` before each residual add, logits divided by
//! `logit_scale`; embeddings tied to the output. The FFN is a MoE whose
//! router takes the top-k logits and softmaxes over them, i.e. softmax top-k
//! renormalised. llama.cpp `src/models/granite.cpp`.

use super::{ArchSpec, Bias, MoeSpec, SharedKind};
use crate::engine::arch::Arch;

/// The granitemoe block as data.
pub const SPEC: ArchSpec = ArchSpec {
    arch: Arch::GraniteMoe,
    qkv_bias: Bias::Optional,
    qk_norm: false,
    qk_norm_full: false,
    moe: Some(MoeSpec {
        norm: true,
        shared: SharedKind::No,
    }),
};
