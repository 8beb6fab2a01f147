//! Architecture tables: the GGUF metadata keys and tensor names each supported
//! architecture uses, in one place, the way llama.cpp's `src/llama-arch.cpp`
//! keeps `LLM_KV_NAMES` and `LLM_TENSOR_NAMES`. Model code asks this table for
//! names instead of formatting them itself, so a grep for an on-disk spelling
//! (`blk.{i}.attn_q_norm`) lands here.

use std::fmt;

/// A model architecture, as named by `general.architecture`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arch {
    /// `llama`: Llama 1/2/3, SmolLM, Mistral-style dense models.
    Llama,
    /// `qwen2`: like llama, plus biases on the q/k/v projections; NeoX RoPE.
    Qwen2,
    /// `qwen3`: like llama, plus per-head RMSNorm on q and k before RoPE; NeoX RoPE.
    Qwen3,
    /// `deepseek2`: DeepSeek-V2/V2-Lite/V3/R1: multi-head latent attention
    /// (compressed KV), leading dense blocks, then MoE blocks with shared experts.
    Deepseek2,
}

/// Every architecture this engine can run, in table order.
pub const ARCHES: &[Arch] = &[Arch::Llama, Arch::Qwen2, Arch::Qwen3, Arch::Deepseek2];

impl Arch {
    /// The `general.architecture` spelling.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
            Arch::Qwen3 => "qwen3",
            Arch::Deepseek2 => "deepseek2",
        }
    }

    /// Parses a `general.architecture` value; `None` for an unsupported one.
    pub fn from_name(name: &str) -> Option<Arch> {
        ARCHES.iter().copied().find(|a| a.name() == name)
    }

    /// How RoPE pairs the dimensions of a head. llama.cpp's
    /// `llama_model_rope_type`: LLAMA is `LLAMA_ROPE_TYPE_NORM` (the converter
    /// permutes q/k so adjacent pairs rotate); QWEN2 and QWEN3 are
    /// `LLAMA_ROPE_TYPE_NEOX` (dimension i pairs with i + n_rot/2).
    pub fn rope_style(self) -> RopeStyle {
        match self {
            Arch::Llama => RopeStyle::Normal,
            Arch::Qwen2 | Arch::Qwen3 => RopeStyle::Neox,
            // LLAMA_ROPE_TYPE_NORM, applied to the rope part of each head only.
            Arch::Deepseek2 => RopeStyle::Normal,
        }
    }

    /// The tensors this architecture loads, with whether each must be present.
    pub fn tensors(self) -> &'static [(Tensor, Need)] {
        use Need::*;
        use Tensor::*;
        match self {
            Arch::Llama => &[
                (TokenEmbd, Required),
                (OutputNorm, Required),
                (Output, Optional),
                (RopeFreqs, Optional),
                (AttnNorm, Required),
                (AttnQ, Required),
                (AttnK, Required),
                (AttnV, Required),
                (AttnOutput, Required),
                (FfnNorm, Required),
                (FfnGate, Required),
                (FfnUp, Required),
                (FfnDown, Required),
            ],
            Arch::Qwen2 => &[
                (TokenEmbd, Required),
                (OutputNorm, Required),
                (Output, Optional),
                (AttnNorm, Required),
                (AttnQ, Required),
                (AttnK, Required),
                (AttnV, Required),
                (AttnOutput, Required),
                (FfnNorm, Required),
                (FfnGate, Required),
                (FfnUp, Required),
                (FfnDown, Required),
            ],
            Arch::Qwen3 => &[
                (TokenEmbd, Required),
                (OutputNorm, Required),
                (Output, Optional),
                (AttnNorm, Required),
                (AttnQ, Required),
                (AttnK, Required),
                (AttnV, Required),
                (AttnOutput, Required),
                (AttnQNorm, Required),
                (AttnKNorm, Required),
                (FfnNorm, Required),
                (FfnGate, Required),
                (FfnUp, Required),
                (FfnDown, Required),
            ],
            // Per layer: q-LoRA or plain q, the MLA split or the legacy
            // kv_b, dense FFN in the leading blocks, experts after; which
            // of the alternatives is required is decided by the metadata
            // (`model::deepseek2`).
            Arch::Deepseek2 => &[
                (TokenEmbd, Required),
                (OutputNorm, Required),
                (Output, Optional),
                (AttnNorm, Required),
                (AttnQ, Optional),
                (AttnQA, Optional),
                (AttnQANorm, Optional),
                (AttnQB, Optional),
                (AttnKvAMqa, Required),
                (AttnKvANorm, Required),
                (AttnKB, Optional),
                (AttnVB, Optional),
                (AttnKvB, Optional),
                (AttnOutput, Required),
                (FfnNorm, Required),
                (FfnGate, Optional),
                (FfnUp, Optional),
                (FfnDown, Optional),
            ],
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How RoPE pairs dimensions (ggml `GGML_ROPE_TYPE_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeStyle {
    /// Rotate (x[2i], x[2i+1]).
    Normal,
    /// Rotate (x[i], x[i + n_rot/2]) (GPT-NeoX layout).
    Neox,
}

/// Whether a tensor must be in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Loading fails without it.
    Required,
    /// Used when present (e.g. `output.weight`, absent when embeddings are tied).
    Optional,
}

/// Keys that do not depend on the architecture.
pub mod general {
    /// The architecture name (`llama`, `qwen2`, ...).
    pub const ARCHITECTURE: &str = "general.architecture";
    /// Human-readable model name.
    pub const NAME: &str = "general.name";
    /// SPDX-ish licence string.
    pub const LICENSE: &str = "general.license";
    /// Size label such as `135M`.
    pub const SIZE_LABEL: &str = "general.size_label";
    /// `llama_ftype` of the file (mostly-Q4_1 = 3, ...).
    pub const FILE_TYPE: &str = "general.file_type";
    /// Quantization format version.
    pub const QUANTIZATION_VERSION: &str = "general.quantization_version";
    /// Alignment of the tensor data section (default 32).
    pub const ALIGNMENT: &str = "general.alignment";
    /// The chat template (Jinja).
    pub const CHAT_TEMPLATE: &str = "tokenizer.chat_template";
    /// End-of-sequence token id.
    pub const EOS_TOKEN_ID: &str = "tokenizer.ggml.eos_token_id";
    /// End-of-turn token id (e.g. `<|im_end|>` or `<|eot_id|>`), when the file names one.
    pub const EOT_TOKEN_ID: &str = "tokenizer.ggml.eot_token_id";
    /// Beginning-of-sequence token id.
    pub const BOS_TOKEN_ID: &str = "tokenizer.ggml.bos_token_id";
    /// The vocabulary (array of strings).
    pub const TOKENS: &str = "tokenizer.ggml.tokens";
}

/// Per-architecture metadata keys; the on-disk key is `{arch}.{suffix}`
/// (llama.cpp `LLM_KV_NAMES`, `"%s.attention.head_count"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// Training context length.
    ContextLength,
    /// Model width, n_embd.
    EmbeddingLength,
    /// Number of transformer blocks.
    BlockCount,
    /// FFN hidden width, n_ff.
    FeedForwardLength,
    /// Number of query heads.
    HeadCount,
    /// Number of key/value heads (defaults to HeadCount).
    HeadCountKv,
    /// Head width of keys (defaults to n_embd / n_head).
    KeyLength,
    /// Head width of values (defaults to n_embd / n_head).
    ValueLength,
    /// RMSNorm epsilon.
    LayerNormRmsEps,
    /// Explicit attention scale (0 or absent: 1/sqrt(head_dim)).
    AttentionScale,
    /// RoPE theta base (default 10000).
    RopeFreqBase,
    /// Number of rotated dimensions per head (defaults to head_dim).
    RopeDimensionCount,
    /// `none`, `linear` or `yarn` (default `linear`, which with no factor means none).
    RopeScalingType,
    /// Context stretch factor; freq_scale = 1/factor.
    RopeScalingFactor,
    /// Old spelling of the linear factor.
    RopeScaleLinear,
    /// Original context for YaRN.
    RopeScalingOrigCtx,
    /// Vocabulary size, when given.
    VocabSize,
    /// MLA: rank of the query compression (absent: plain `attn_q`).
    QLoraRank,
    /// MLA: rank of the compressed KV latent.
    KvLoraRank,
    /// MLA: decompressed key head width, nope + rope (split-tensor files).
    KeyLengthMla,
    /// MLA: decompressed value head width (split-tensor files).
    ValueLengthMla,
    /// YaRN attention-temperature multiplier (0.1 * mscale_all_dim).
    RopeScalingYarnLogMul,
    /// Blocks before the first MoE block that use a dense FFN.
    LeadingDenseBlockCount,
}

impl Key {
    /// The part after `{arch}.`.
    pub fn suffix(self) -> &'static str {
        match self {
            Key::ContextLength => "context_length",
            Key::EmbeddingLength => "embedding_length",
            Key::BlockCount => "block_count",
            Key::FeedForwardLength => "feed_forward_length",
            Key::HeadCount => "attention.head_count",
            Key::HeadCountKv => "attention.head_count_kv",
            Key::KeyLength => "attention.key_length",
            Key::ValueLength => "attention.value_length",
            Key::LayerNormRmsEps => "attention.layer_norm_rms_epsilon",
            Key::AttentionScale => "attention.scale",
            Key::RopeFreqBase => "rope.freq_base",
            Key::RopeDimensionCount => "rope.dimension_count",
            Key::RopeScalingType => "rope.scaling.type",
            Key::RopeScalingFactor => "rope.scaling.factor",
            Key::RopeScaleLinear => "rope.scale_linear",
            Key::RopeScalingOrigCtx => "rope.scaling.original_context_length",
            Key::VocabSize => "vocab_size",
            Key::QLoraRank => "attention.q_lora_rank",
            Key::KvLoraRank => "attention.kv_lora_rank",
            Key::KeyLengthMla => "attention.key_length_mla",
            Key::ValueLengthMla => "attention.value_length_mla",
            Key::RopeScalingYarnLogMul => "rope.scaling.yarn_log_multiplier",
            Key::LeadingDenseBlockCount => "leading_dense_block_count",
        }
    }

    /// The full key for an architecture, e.g. `llama.attention.head_count`.
    pub fn for_arch(self, arch: Arch) -> String {
        format!("{}.{}", arch.name(), self.suffix())
    }
}

/// Tensor names (llama.cpp `LLM_TENSOR_NAMES`). Per-layer names carry `{i}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tensor {
    /// Token embeddings, (n_vocab, n_embd).
    TokenEmbd,
    /// Final RMSNorm weight, (n_embd).
    OutputNorm,
    /// LM head, (n_vocab, n_embd); absent when tied to `token_embd`.
    Output,
    /// Llama-3 RoPE frequency factors, (n_rot/2).
    RopeFreqs,
    /// Pre-attention RMSNorm weight, (n_embd).
    AttnNorm,
    /// Query projection, (n_head*head_dim, n_embd).
    AttnQ,
    /// Key projection, (n_head_kv*head_dim, n_embd).
    AttnK,
    /// Value projection, (n_head_kv*head_dim, n_embd).
    AttnV,
    /// Attention output projection, (n_embd, n_head*head_dim).
    AttnOutput,
    /// Per-head query RMSNorm weight, (head_dim).
    AttnQNorm,
    /// Per-head key RMSNorm weight, (head_dim).
    AttnKNorm,
    /// Pre-FFN RMSNorm weight, (n_embd).
    FfnNorm,
    /// FFN gate projection, (n_ff, n_embd).
    FfnGate,
    /// FFN up projection, (n_ff, n_embd).
    FfnUp,
    /// FFN down projection, (n_embd, n_ff).
    FfnDown,
    /// MLA query compression, (q_lora_rank, n_embd).
    AttnQA,
    /// RMSNorm on the compressed query, (q_lora_rank).
    AttnQANorm,
    /// MLA query decompression, (n_head*(nope+rope), q_lora_rank).
    AttnQB,
    /// MLA KV compression plus the shared rope key, (kv_lora_rank+rope, n_embd).
    AttnKvAMqa,
    /// RMSNorm on the KV latent, (kv_lora_rank).
    AttnKvANorm,
    /// Per-head key decompression, (n_head, kv_lora_rank, nope).
    AttnKB,
    /// Per-head value decompression, (n_head, v_dim, kv_lora_rank).
    AttnVB,
    /// Legacy unsplit KV decompression, (n_head*(nope+v_dim), kv_lora_rank).
    AttnKvB,
}

impl Tensor {
    /// The on-disk base name; `{i}` stands for the layer index.
    pub fn pattern(self) -> &'static str {
        match self {
            Tensor::TokenEmbd => "token_embd",
            Tensor::OutputNorm => "output_norm",
            Tensor::Output => "output",
            Tensor::RopeFreqs => "rope_freqs",
            Tensor::AttnNorm => "blk.{i}.attn_norm",
            Tensor::AttnQ => "blk.{i}.attn_q",
            Tensor::AttnK => "blk.{i}.attn_k",
            Tensor::AttnV => "blk.{i}.attn_v",
            Tensor::AttnOutput => "blk.{i}.attn_output",
            Tensor::AttnQNorm => "blk.{i}.attn_q_norm",
            Tensor::AttnKNorm => "blk.{i}.attn_k_norm",
            Tensor::FfnNorm => "blk.{i}.ffn_norm",
            Tensor::FfnGate => "blk.{i}.ffn_gate",
            Tensor::FfnUp => "blk.{i}.ffn_up",
            Tensor::FfnDown => "blk.{i}.ffn_down",
            Tensor::AttnQA => "blk.{i}.attn_q_a",
            Tensor::AttnQANorm => "blk.{i}.attn_q_a_norm",
            Tensor::AttnQB => "blk.{i}.attn_q_b",
            Tensor::AttnKvAMqa => "blk.{i}.attn_kv_a_mqa",
            Tensor::AttnKvANorm => "blk.{i}.attn_kv_a_norm",
            Tensor::AttnKB => "blk.{i}.attn_k_b",
            Tensor::AttnVB => "blk.{i}.attn_v_b",
            Tensor::AttnKvB => "blk.{i}.attn_kv_b",
        }
    }

    /// Whether the name is per layer.
    pub fn per_layer(self) -> bool {
        self.pattern().contains("{i}")
    }

    /// `{name}.weight` for layer `layer` (ignored for global tensors).
    pub fn weight(self, layer: usize) -> String {
        self.name(layer, "weight")
    }

    /// `{name}.bias` for layer `layer`.
    pub fn bias(self, layer: usize) -> String {
        self.name(layer, "bias")
    }

    /// The full name with a suffix (`weight`, `bias`).
    pub fn name(self, layer: usize, suffix: &str) -> String {
        let base = self.pattern().replace("{i}", &layer.to_string());
        format!("{base}.{suffix}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arch_names_round_trip() {
        for &a in ARCHES {
            assert_eq!(Arch::from_name(a.name()), Some(a));
        }
        assert_eq!(Arch::from_name("gpt2"), None);
    }

    #[test]
    fn keys_and_tensor_names_keep_the_on_disk_spelling() {
        assert_eq!(
            Key::HeadCountKv.for_arch(Arch::Llama),
            "llama.attention.head_count_kv"
        );
        assert_eq!(
            Key::LayerNormRmsEps.for_arch(Arch::Qwen3),
            "qwen3.attention.layer_norm_rms_epsilon"
        );
        assert_eq!(Tensor::AttnQNorm.weight(7), "blk.7.attn_q_norm.weight");
        assert_eq!(Tensor::AttnQ.bias(0), "blk.0.attn_q.bias");
        assert_eq!(Tensor::TokenEmbd.weight(3), "token_embd.weight");
        assert!(!Tensor::Output.per_layer());
    }

    #[test]
    fn only_qwen3_requires_qk_norms() {
        let has = |a: Arch, t: Tensor| a.tensors().iter().any(|&(x, _)| x == t);
        assert!(has(Arch::Qwen3, Tensor::AttnKNorm));
        assert!(!has(Arch::Qwen2, Tensor::AttnKNorm));
        assert!(!has(Arch::Llama, Tensor::AttnQNorm));
        assert_eq!(Arch::Qwen2.rope_style(), RopeStyle::Neox);
        assert_eq!(Arch::Llama.rope_style(), RopeStyle::Normal);
    }
}
