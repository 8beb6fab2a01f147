//! Model forward passes built from shared blocks, and the KV cache.
//!
//! In: a parsed GGUF file and token ids. Out: logits. One file per
//! architecture (`llama.rs`, `qwen2.rs`, `qwen3.rs`) declares, as data, how
//! its block differs from the common pre-norm decoder block run here:
//!
//! ```text
//! x = embed(tokens)
//! for each layer:
//!     h = rmsnorm(x) * attn_norm                       // "attn_norm"
//!     q, k, v = h Wq (+bq), h Wk (+bk), h Wv (+bv)
//!     q, k = rmsnorm_per_head(q, k)  (qwen3)
//!     q, k = rope(q, pos), rope(k, pos)
//!     x = x + attention(q, K_cache, V_cache) Wo        // "ffn_inp"
//!     h = rmsnorm(x) * ffn_norm                        // "ffn_norm"
//!     x = x + (silu(h Wgate) * (h Wup)) Wdown          // "l_out"
//! logits = (rmsnorm(x) * output_norm) Wout            // "result_norm", "result_output"
//! ```
//!
//! Prompt tokens go through in batches (matrix-matrix products); rayon splits
//! rows, tokens or heads outside the kernels.

/// Grouped-query causal attention and the KV cache.
pub mod attention;
/// The `deepseek2` architecture (MLA + shared-expert MoE).
pub mod deepseek2;
/// Errors from loading and running a model.
pub mod error;
/// SwiGLU feed-forward activation.
pub mod ffn;
/// The `granitemoe` architecture.
pub mod granitemoe;
/// The `llama` architecture (dense, or Mixtral-style with experts).
pub mod llama;
/// Multi-head latent attention (DeepSeek-V2 and later).
pub mod mla;
/// The Mixture-of-Experts FFN block with expert-aware batched execution.
pub mod moe;
/// RMSNorm.
pub mod norm;
/// The `olmoe` architecture.
pub mod olmoe;
/// The `qwen2` architecture.
pub mod qwen2;
/// The `qwen2moe` architecture.
pub mod qwen2moe;
/// The `qwen3` architecture.
pub mod qwen3;
/// The `qwen3moe` architecture.
pub mod qwen3moe;
/// Rotary position embeddings.
pub mod rope;
/// Mixture-of-Experts routing (softmax/sigmoid, bias, groups, top-k, scaling).
pub mod router;
/// Weight handles over the memory map and row-parallel products.
pub mod weights;

pub use attention::KvCache;
pub use error::ModelError;
pub use weights::Linear;

use crate::engine::kernels::Scratch;

use attention::AttnShape;
use rope::{Rope, RopeScaling};

use crate::engine::arch::{Arch, Key, Tensor, general};
use crate::engine::gguf::{GgufFile, Value};

/// Whether an architecture's q/k/v projections carry biases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bias {
    /// Used if the file has them.
    Optional,
    /// The file must have them.
    Required,
}

/// How one architecture's block differs from the common one.
#[derive(Debug, Clone, Copy)]
pub struct ArchSpec {
    /// Which architecture.
    pub arch: Arch,
    /// q/k/v biases.
    pub qkv_bias: Bias,
    /// RMSNorm on q and k before RoPE: per head (qwen3) or, with
    /// `qk_norm_full`, over the whole projection (olmoe).
    pub qk_norm: bool,
    /// The q/k norm weights span the whole projection, not one head.
    pub qk_norm_full: bool,
    /// The FFN is a Mixture of Experts when the file has `{arch}.expert_count`
    /// (required for the MoE-only architectures).
    pub moe: Option<MoeSpec>,
}

/// How an architecture's MoE FFN is set up, beyond what the metadata says.
#[derive(Debug, Clone, Copy)]
pub struct MoeSpec {
    /// Renormalise the chosen weights unless `expert_weights_norm` says otherwise.
    pub norm: bool,
    /// Shared expert: none, plain, or sigmoid-gated.
    pub shared: SharedKind,
}

/// Whether MoE layers carry a shared expert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedKind {
    /// No shared expert.
    No,
    /// `ffn_*_shexp` scaled by `sigmoid(h . ffn_gate_inp_shexp)` (qwen2moe).
    Gated,
}

impl ArchSpec {
    /// The spec declared in the architecture's own file.
    pub fn of(arch: Arch) -> ArchSpec {
        match arch {
            Arch::Llama => llama::SPEC,
            Arch::Qwen2 => qwen2::SPEC,
            Arch::Qwen3 => qwen3::SPEC,
            Arch::Qwen2Moe => qwen2moe::SPEC,
            Arch::Qwen3Moe => qwen3moe::SPEC,
            Arch::Olmoe => olmoe::SPEC,
            Arch::GraniteMoe => granitemoe::SPEC,
            // Not the common block: `deepseek2::Deepseek2` runs it.
            Arch::Deepseek2 => ArchSpec {
                arch,
                qkv_bias: Bias::Optional,
                qk_norm: false,
                qk_norm_full: false,
                moe: None,
            },
        }
    }
}

/// Hyperparameters read from the metadata (llama.cpp `llama_hparams`).
#[derive(Debug, Clone)]
pub struct Hparams {
    /// Architecture.
    pub arch: Arch,
    /// Vocabulary entries (rows of `token_embd`).
    pub n_vocab: usize,
    /// Training context length.
    pub n_ctx_train: usize,
    /// Model width.
    pub n_embd: usize,
    /// Blocks.
    pub n_layer: usize,
    /// FFN hidden width.
    pub n_ff: usize,
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads.
    pub n_head_kv: usize,
    /// Width of a query/key head.
    pub head_dim_k: usize,
    /// Width of a value head.
    pub head_dim_v: usize,
    /// Rotated dimensions per head.
    pub n_rot: usize,
    /// RMSNorm epsilon.
    pub rms_eps: f32,
    /// RoPE base.
    pub rope_base: f32,
    /// RoPE context scaling.
    pub rope_scaling: RopeScaling,
    /// Attention score scale.
    pub attn_scale: f32,
    /// Experts per layer (0: dense FFN).
    pub n_expert: usize,
    /// Experts chosen per token.
    pub n_expert_used: usize,
    /// Hidden width of one expert.
    pub n_ff_exp: usize,
    /// Hidden width of the shared expert (0: none).
    pub n_ff_shexp: usize,
    /// The routing rule of MoE layers.
    pub router: Option<router::RouterSpec>,
    /// Embeddings are multiplied by this (granite; else 1).
    pub embd_scale: f32,
    /// Attention and FFN outputs are multiplied by this before the residual add (granite; else 1).
    pub residual_scale: f32,
    /// Logits are divided by this (granite; else 1).
    pub logit_scale: f32,
}

fn get_u64(file: &GgufFile, key: &str) -> Option<u64> {
    file.get(key).and_then(Value::as_u64)
}

fn get_f32(file: &GgufFile, key: &str) -> Option<f32> {
    file.get(key).and_then(Value::as_f32)
}

fn need_u64(file: &GgufFile, key: String) -> Result<usize, ModelError> {
    match get_u64(file, &key) {
        Some(v) if v > 0 && v < (1 << 31) => Ok(v as usize),
        Some(v) => Err(ModelError::BadValue {
            key,
            value: v.to_string(),
            why: "must be between 1 and 2^31",
        }),
        None => Err(ModelError::MissingKey {
            key,
            want: "an unsigned integer",
        }),
    }
}

impl Hparams {
    /// Reads the hyperparameters of the file's architecture.
    pub fn read(file: &GgufFile) -> Result<Hparams, ModelError> {
        let name = file
            .get(general::ARCHITECTURE)
            .and_then(Value::as_str)
            .ok_or_else(|| ModelError::MissingKey {
                key: general::ARCHITECTURE.into(),
                want: "a string",
            })?;
        let arch = Arch::from_name(name).ok_or_else(|| ModelError::UnsupportedArch(name.into()))?;
        let k = |key: Key| key.for_arch(arch);
        let n_embd = need_u64(file, k(Key::EmbeddingLength))?;
        let n_layer = need_u64(file, k(Key::BlockCount))?;
        let n_ff = need_u64(file, k(Key::FeedForwardLength))?;
        let n_head = need_u64(file, k(Key::HeadCount))?;
        let n_head_kv = match get_u64(file, &k(Key::HeadCountKv)) {
            Some(_) => need_u64(file, k(Key::HeadCountKv))?,
            None => n_head,
        };
        if n_head % n_head_kv != 0 {
            return Err(ModelError::BadValue {
                key: k(Key::HeadCountKv),
                value: n_head_kv.to_string(),
                why: "must divide the query head count",
            });
        }
        let opt = |key: Key, default: usize| -> Result<usize, ModelError> {
            match get_u64(file, &k(key)) {
                Some(_) => need_u64(file, k(key)),
                None => Ok(default),
            }
        };
        let head_dim_k = opt(Key::KeyLength, n_embd / n_head)?;
        let head_dim_v = opt(Key::ValueLength, n_embd / n_head)?;
        let n_rot = opt(Key::RopeDimensionCount, head_dim_k)?;
        if n_rot > head_dim_k || n_rot % 2 != 0 {
            return Err(ModelError::BadValue {
                key: k(Key::RopeDimensionCount),
                value: n_rot.to_string(),
                why: "must be even and at most the head width",
            });
        }
        let n_ctx_train = opt(Key::ContextLength, 2048)?;
        let rms_eps =
            get_f32(file, &k(Key::LayerNormRmsEps)).ok_or_else(|| ModelError::MissingKey {
                key: k(Key::LayerNormRmsEps),
                want: "a float",
            })?;
        let rope_base = get_f32(file, &k(Key::RopeFreqBase)).unwrap_or(10000.0);
        let factor = get_f32(file, &k(Key::RopeScalingFactor))
            .or_else(|| get_f32(file, &k(Key::RopeScaleLinear)))
            .unwrap_or(0.0);
        let scaling_type = file
            .get(&k(Key::RopeScalingType))
            .and_then(Value::as_str)
            .unwrap_or("linear");
        let rope_scaling = match scaling_type {
            "none" => RopeScaling::None,
            _ if factor == 0.0 || factor == 1.0 => RopeScaling::None,
            "linear" => RopeScaling::Linear { factor },
            "yarn" => RopeScaling::Yarn {
                factor,
                orig_ctx: opt(Key::RopeScalingOrigCtx, n_ctx_train)?,
            },
            other => {
                return Err(ModelError::BadValue {
                    key: k(Key::RopeScalingType),
                    value: other.into(),
                    why: "supported: none, linear, yarn",
                });
            }
        };
        let attn_scale = match get_f32(file, &k(Key::AttentionScale)) {
            Some(s) if s != 0.0 => s,
            _ => 1.0 / (head_dim_k as f32).sqrt(),
        };
        let embd = file
            .tensors()
            .iter()
            .find(|t| t.name == Tensor::TokenEmbd.weight(0))
            .ok_or_else(|| ModelError::MissingTensor(Tensor::TokenEmbd.weight(0)))?;
        let n_vocab = embd.dims.get(1).copied().unwrap_or(0) as usize;
        let spec = ArchSpec::of(arch);
        let n_expert = match (spec.moe, get_u64(file, &k(Key::ExpertCount))) {
            (Some(_), Some(_)) => need_u64(file, k(Key::ExpertCount))?,
            (Some(_), None) if arch != Arch::Llama => {
                return Err(ModelError::MissingKey {
                    key: k(Key::ExpertCount),
                    want: "an unsigned integer",
                });
            }
            _ => 0,
        };
        let (mut n_expert_used, mut n_ff_exp, mut n_ff_shexp, mut router) = (0, 0, 0, None);
        if let (Some(moe), true) = (spec.moe, n_expert > 0) {
            n_expert_used = need_u64(file, k(Key::ExpertUsedCount))?;
            n_ff_exp = opt(Key::ExpertFeedForwardLength, n_ff)?;
            if moe.shared != SharedKind::No {
                n_ff_shexp = need_u64(file, k(Key::ExpertSharedFeedForwardLength))?;
            }
            let norm = file
                .get(&k(Key::ExpertWeightsNorm))
                .and_then(Value::as_bool)
                .unwrap_or(moe.norm);
            let scale = match get_f32(file, &k(Key::ExpertWeightsScale)) {
                Some(s) if s != 0.0 => s,
                _ => 1.0,
            };
            let score = match get_u64(file, &k(Key::ExpertGatingFunc)) {
                None | Some(0) | Some(1) => router::ScoreFunc::Softmax,
                Some(2) => router::ScoreFunc::Sigmoid,
                Some(v) => {
                    return Err(ModelError::BadValue {
                        key: k(Key::ExpertGatingFunc),
                        value: v.to_string(),
                        why: "supported: 1 (softmax), 2 (sigmoid)",
                    });
                }
            };
            let spec = router::RouterSpec {
                n_expert,
                n_used: n_expert_used,
                score,
                groups: None,
                norm,
                scale,
            };
            spec.check().map_err(|_| ModelError::BadValue {
                key: k(Key::ExpertUsedCount),
                value: n_expert_used.to_string(),
                why: "must be between 1 and expert_count",
            })?;
            router = Some(spec);
        }
        let scale_or_one = |key: Key| match get_f32(file, &k(key)) {
            Some(s) if s != 0.0 => s,
            _ => 1.0,
        };
        Ok(Hparams {
            arch,
            n_vocab,
            n_ctx_train,
            n_embd,
            n_layer,
            n_ff,
            n_head,
            n_head_kv,
            head_dim_k,
            head_dim_v,
            n_rot,
            rms_eps,
            rope_base,
            rope_scaling,
            attn_scale,
            n_expert,
            n_expert_used,
            n_ff_exp,
            n_ff_shexp,
            router,
            embd_scale: scale_or_one(Key::EmbeddingScale),
            residual_scale: scale_or_one(Key::ResidualScale),
            logit_scale: scale_or_one(Key::LogitScale),
        })
    }

    fn attn(&self) -> AttnShape {
        AttnShape {
            n_head: self.n_head,
            n_head_kv: self.n_head_kv,
            head_dim_k: self.head_dim_k,
            head_dim_v: self.head_dim_v,
            scale: self.attn_scale,
        }
    }
}

/// One transformer block's weights.
#[derive(Debug)]
pub struct Layer<'a> {
    attn_norm: Vec<f32>,      // (n_embd)
    wq: Linear<'a>,           // (n_head*head_dim_k, n_embd)
    wk: Linear<'a>,           // (n_head_kv*head_dim_k, n_embd)
    wv: Linear<'a>,           // (n_head_kv*head_dim_v, n_embd)
    wo: Linear<'a>,           // (n_embd, n_head*head_dim_v)
    q_norm: Option<Vec<f32>>, // (head_dim_k)
    k_norm: Option<Vec<f32>>, // (head_dim_k)
    ffn_norm: Vec<f32>,       // (n_embd)
    ffn: Ffn<'a>,
}

/// A layer's feed-forward block.
#[derive(Debug)]
enum Ffn<'a> {
    /// SwiGLU over (n_ff, n_embd) gate/up and (n_embd, n_ff) down.
    Dense {
        gate: Linear<'a>,
        up: Linear<'a>,
        down: Linear<'a>,
    },
    /// Mixture of Experts (routed experts, optional shared expert).
    Moe(moe::MoeFfn<'a>),
}

impl<'a> Ffn<'a> {
    /// Per-expert usage counters for a context (empty when dense).
    fn usage_counters(&self) -> Vec<u64> {
        match self {
            Ffn::Moe(m) => vec![0; m.spec.n_expert],
            Ffn::Dense { .. } => Vec::new(),
        }
    }

    /// Bytes read for one token (the chosen experts only).
    fn active_bytes(&self) -> usize {
        match self {
            Ffn::Dense { gate, up, down } => gate.bytes() + up.bytes() + down.bytes(),
            Ffn::Moe(m) => m.active_bytes(),
        }
    }

    /// Bytes of all its weights.
    fn total_bytes(&self) -> usize {
        match self {
            Ffn::Dense { gate, up, down } => gate.bytes() + up.bytes() + down.bytes(),
            Ffn::Moe(m) => m.total_bytes(),
        }
    }

    /// Its matrices other than the stacked experts.
    fn linears(&self) -> Vec<&Linear<'a>> {
        match self {
            Ffn::Dense { gate, up, down } => vec![gate, up, down],
            Ffn::Moe(m) => m.linears(),
        }
    }

    /// The stacked expert tensors (none when dense).
    fn experts(&self) -> Vec<&weights::Experts<'a>> {
        match self {
            Ffn::Moe(m) => m.experts().to_vec(),
            Ffn::Dense { .. } => Vec::new(),
        }
    }

    /// `b.proj = ffn(b.h)` for `n` tokens; routed tokens are counted in `counts`.
    fn forward(&self, b: &mut Buffers, n: usize, counts: &mut [u64]) -> Result<(), ModelError> {
        match self {
            Ffn::Dense { gate, up, down } => {
                resize(&mut b.gate, n * gate.rows);
                resize(&mut b.up, n * up.rows);
                weights::forward_group(
                    &[gate, up],
                    &b.h,
                    n,
                    &mut [&mut b.gate, &mut b.up],
                    &mut b.mm,
                )?;
                ffn::swiglu_in_place(&mut b.gate, &b.up);
                down.forward(&b.gate, n, &mut b.proj, &mut b.mm)
            }
            Ffn::Moe(m) => m.forward(&b.h, n, &mut b.proj, &mut b.moe, counts),
        }
    }
}

/// A loaded model: weights borrowed from the GGUF mapping. Every supported
/// architecture loads through [`Model::load`]; `deepseek2` runs its own
/// block ([`deepseek2::Deepseek2`]), the others the common one.
#[derive(Debug)]
pub struct Model<'a> {
    /// Hyperparameters.
    pub hp: Hparams,
    /// How the block differs by architecture.
    pub spec: ArchSpec,
    body: Body<'a>,
}

/// The weights, by which forward pass runs them.
#[derive(Debug)]
enum Body<'a> {
    /// The common pre-norm decoder block (dense or MoE FFN).
    Common(Common<'a>),
    /// Multi-head latent attention + shared-expert MoE.
    Deepseek2(Box<deepseek2::Deepseek2<'a>>),
}

/// Weights of a model built from the common block.
#[derive(Debug)]
struct Common<'a> {
    tok_embd: Linear<'a>,  // (n_vocab, n_embd)
    output_norm: Vec<f32>, // (n_embd)
    output: Linear<'a>,    // (n_vocab, n_embd); token_embd when tied
    tied: bool,            // output is token_embd
    layers: Vec<Layer<'a>>,
    rope: Rope,
}

/// A callback that sees named intermediates: (name, layer or -1, values).
pub type TraceFn = dyn FnMut(&str, i32, &[f32]) + Send;

/// Per-sequence state: the KV cache, scratch buffers reused across calls, the
/// logits of the last call, and an optional trace hook.
pub struct Context {
    /// Keys and values of past positions.
    pub cache: KvCache,
    logits: Vec<f32>,
    buf: Buffers,
    trace: Option<Box<TraceFn>>,
    expert_counts: Vec<Vec<u64>>, // per layer, per expert: tokens routed
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("cache_len", &self.cache.len())
            .field("traced", &self.trace.is_some())
            .finish()
    }
}

impl Context {
    /// Installs a hook called with each named intermediate (`attn_norm`,
    /// `Qcur`, `Kcur`, `Vcur`, `kqv_out`, `ffn_inp`, `ffn_norm`, `ffn_out`,
    /// `l_out`, `result_norm`, `result_output`), as llama.cpp's `cb(cur, name, il)`.
    pub fn set_trace(&mut self, f: Option<Box<TraceFn>>) {
        self.trace = f;
    }

    /// Logits of the last forward call (one row per returned position).
    pub fn logits(&self) -> &[f32] {
        &self.logits
    }

    /// Tokens routed to each expert of each layer since the context was made
    /// or [`Context::reset_expert_usage`] was called (empty rows for dense layers).
    pub fn expert_usage(&self) -> &[Vec<u64>] {
        &self.expert_counts
    }

    /// Zeroes the expert usage counters.
    pub fn reset_expert_usage(&mut self) {
        for c in &mut self.expert_counts {
            c.fill(0);
        }
    }
}

#[derive(Default)]
struct Buffers {
    x: Vec<f32>,    // (n, n_embd) residual stream
    h: Vec<f32>,    // (n, n_embd) normed input
    q: Vec<f32>,    // (n, n_head*head_dim_k)
    k: Vec<f32>,    // (n, n_head_kv*head_dim_k)
    v: Vec<f32>,    // (n, n_head_kv*head_dim_v)
    att: Vec<f32>,  // (n, n_head*head_dim_v)
    proj: Vec<f32>, // (n, n_embd)
    gate: Vec<f32>, // (n, n_ff)
    up: Vec<f32>,   // (n, n_ff)
    cs: Vec<f32>,   // (n, n_rot) cos/sin per position
    mm: Scratch,    // quantized activations and result tiles of the products
    moe: moe::MoeScratch,
    mla: mla::MlaBuffers,
}

fn resize(v: &mut Vec<f32>, n: usize) {
    v.resize(n, 0.0);
}

/// Which positions get logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outputs {
    /// Only the last token of the batch (generation, prompt processing).
    Last,
    /// Every token of the batch (tests, perplexity).
    All,
}

/// Largest number of tokens pushed through the layers at once (llama.cpp's
/// default `n_ubatch`); longer inputs are split.
pub const MAX_BATCH: usize = 512;

impl<'a> Model<'a> {
    /// Loads the weights of a supported architecture from `file`.
    pub fn load(file: &'a GgufFile) -> Result<Model<'a>, ModelError> {
        let hp = Hparams::read(file)?;
        let spec = ArchSpec::of(hp.arch);
        if hp.arch == Arch::Deepseek2 {
            let ds = deepseek2::Deepseek2::load(file)?;
            return Ok(Model {
                hp: ds.hp.clone(),
                spec,
                body: Body::Deepseek2(Box::new(ds)),
            });
        }
        let d = hp.n_embd;
        let qd = hp.n_head * hp.head_dim_k;
        let kd = hp.n_head_kv * hp.head_dim_k;
        let vd = hp.n_head_kv * hp.head_dim_v;
        let tok_embd = Linear::load(file, &Tensor::TokenEmbd.weight(0), hp.n_vocab, d)?;
        let output_norm = weights::load_vec(file, &Tensor::OutputNorm.weight(0), d)?;
        let tied = !weights::has(file, &Tensor::Output.weight(0));
        let output = if !tied {
            Linear::load(file, &Tensor::Output.weight(0), hp.n_vocab, d)?
        } else {
            tok_embd.clone()
        };
        let freq_factors = if weights::has(file, &Tensor::RopeFreqs.weight(0)) {
            Some(weights::load_vec(
                file,
                &Tensor::RopeFreqs.weight(0),
                hp.n_rot / 2,
            )?)
        } else {
            None
        };
        let rope = Rope::new(
            hp.arch.rope_style(),
            hp.n_rot,
            hp.rope_base,
            hp.rope_scaling,
            freq_factors,
        );
        let mut layers = Vec::with_capacity(hp.n_layer);
        for i in 0..hp.n_layer {
            let lin = |t: Tensor, rows, cols| Linear::load(file, &t.weight(i), rows, cols);
            let with_bias = |l: Linear<'a>, t: Tensor| -> Result<Linear<'a>, ModelError> {
                let name = t.bias(i);
                let present = weights::has(file, &name);
                if present || spec.qkv_bias == Bias::Required {
                    let b = weights::load_vec(file, &name, l.rows)?;
                    Ok(l.with_bias(b))
                } else {
                    Ok(l)
                }
            };
            let (qn_w, kn_w) = if spec.qk_norm_full {
                (qd, kd)
            } else {
                (hp.head_dim_k, hp.head_dim_k)
            };
            let (q_norm, k_norm) = if spec.qk_norm {
                (
                    Some(weights::load_vec(file, &Tensor::AttnQNorm.weight(i), qn_w)?),
                    Some(weights::load_vec(file, &Tensor::AttnKNorm.weight(i), kn_w)?),
                )
            } else {
                (None, None)
            };
            let ffn = match (&hp.router, spec.moe) {
                (Some(r), Some(m)) => Ffn::Moe(moe::MoeFfn::load(
                    file,
                    i,
                    *r,
                    d,
                    hp.n_ff_exp,
                    match m.shared {
                        SharedKind::No => moe::Shared::No,
                        SharedKind::Gated => moe::Shared::Gated(hp.n_ff_shexp),
                    },
                )?),
                _ => Ffn::Dense {
                    gate: lin(Tensor::FfnGate, hp.n_ff, d)?,
                    up: lin(Tensor::FfnUp, hp.n_ff, d)?,
                    down: lin(Tensor::FfnDown, d, hp.n_ff)?,
                },
            };
            layers.push(Layer {
                attn_norm: weights::load_vec(file, &Tensor::AttnNorm.weight(i), d)?,
                wq: with_bias(lin(Tensor::AttnQ, qd, d)?, Tensor::AttnQ)?,
                wk: with_bias(lin(Tensor::AttnK, kd, d)?, Tensor::AttnK)?,
                wv: with_bias(lin(Tensor::AttnV, vd, d)?, Tensor::AttnV)?,
                wo: lin(Tensor::AttnOutput, d, hp.n_head * hp.head_dim_v)?,
                q_norm,
                k_norm,
                ffn_norm: weights::load_vec(file, &Tensor::FfnNorm.weight(i), d)?,
                ffn,
            });
        }
        Ok(Model {
            hp,
            spec,
            body: Body::Common(Common {
                tok_embd,
                output_norm,
                output,
                tied,
                layers,
                rope,
            }),
        })
    }

    /// A fresh context holding up to `n_ctx` positions (0: the training length).
    pub fn context(&self, n_ctx: usize) -> Context {
        match &self.body {
            Body::Common(c) => c.context(&self.hp, n_ctx),
            Body::Deepseek2(m) => m.context(n_ctx),
        }
    }

    /// Bytes of weights read for one token (every matrix once, for MoE
    /// layers the router, `n_used` experts and the shared expert, the output
    /// matrix included, one embedding row): the decode bandwidth budget.
    pub fn bytes_per_token(&self) -> usize {
        match &self.body {
            Body::Common(c) => c.bytes_per_token(&self.hp),
            Body::Deepseek2(m) => m.bytes_per_token(),
        }
    }

    /// The weight matrices (for reporting storage types); MoE layers give
    /// their router and shared expert here, the experts in [`Model::experts`].
    pub fn linears(&self) -> impl Iterator<Item = &Linear<'a>> {
        match &self.body {
            Body::Common(c) => c.linears(),
            Body::Deepseek2(m) => m.linears(),
        }
        .into_iter()
    }

    /// The stacked expert tensors of every MoE layer (gate, up, down).
    pub fn experts(&self) -> impl Iterator<Item = &weights::Experts<'a>> {
        match &self.body {
            Body::Common(c) => c
                .layers
                .iter()
                .flat_map(|l| l.ffn.experts())
                .collect::<Vec<_>>(),
            Body::Deepseek2(m) => m.experts(),
        }
        .into_iter()
    }

    /// Bytes of all weights the model uses (every expert included).
    pub fn total_bytes(&self) -> usize {
        match &self.body {
            Body::Common(c) => c.total_bytes(),
            Body::Deepseek2(m) => m.total_bytes(),
        }
    }

    /// Runs `tokens` at the next positions of `ctx`, appending to its KV cache.
    /// Returns the logits of the last token (`Outputs::Last`, n_vocab values)
    /// or of every token (`Outputs::All`, tokens.len() * n_vocab values).
    pub fn forward<'c>(
        &self,
        ctx: &'c mut Context,
        tokens: &[u32],
        outputs: Outputs,
    ) -> Result<&'c [f32], ModelError> {
        match &self.body {
            Body::Common(c) => {
                run_batches(ctx, tokens, self.hp.n_vocab, outputs, |ctx, chunk, want| {
                    c.batch(&self.hp, ctx, chunk, want)
                })
            }
            Body::Deepseek2(m) => m.forward(ctx, tokens, outputs),
        }
    }
}

impl<'a> Common<'a> {
    fn context(&self, hp: &Hparams, n_ctx: usize) -> Context {
        let n_ctx = if n_ctx == 0 { hp.n_ctx_train } else { n_ctx };
        Context {
            cache: KvCache::new(
                hp.n_layer,
                n_ctx,
                hp.n_head_kv * hp.head_dim_k,
                hp.n_head_kv * hp.head_dim_v,
            ),
            logits: Vec::new(),
            buf: Buffers::default(),
            trace: None,
            expert_counts: self.layers.iter().map(|l| l.ffn.usage_counters()).collect(),
        }
    }

    fn bytes_per_token(&self, hp: &Hparams) -> usize {
        let per_layer: usize = self
            .layers
            .iter()
            .map(|l| {
                l.wq.bytes() + l.wk.bytes() + l.wv.bytes() + l.wo.bytes() + l.ffn.active_bytes()
            })
            .sum();
        per_layer + self.output.bytes() + self.tok_embd.bytes() / hp.n_vocab
    }

    fn linears(&self) -> Vec<&Linear<'a>> {
        let mut v = Vec::new();
        for l in &self.layers {
            v.extend([&l.wq, &l.wk, &l.wv, &l.wo]);
            v.extend(l.ffn.linears());
        }
        v.push(&self.output);
        v
    }

    fn total_bytes(&self) -> usize {
        let per_layer: usize = self
            .layers
            .iter()
            .map(|l| {
                l.wq.bytes() + l.wk.bytes() + l.wv.bytes() + l.wo.bytes() + l.ffn.total_bytes()
            })
            .sum();
        let output = if self.tied { 0 } else { self.output.bytes() };
        per_layer + output + self.tok_embd.bytes()
    }

    /// One batch of at most MAX_BATCH tokens through every layer; appends the
    /// wanted logits to `ctx.logits` (none for `None`).
    fn batch(
        &self,
        hp: &Hparams,
        ctx: &mut Context,
        tokens: &[u32],
        outputs: Option<Outputs>,
    ) -> Result<(), ModelError> {
        let n = tokens.len();
        let (d, qd) = (hp.n_embd, hp.n_head * hp.head_dim_k);
        let kd = hp.n_head_kv * hp.head_dim_k;
        let vd = hp.n_head_kv * hp.head_dim_v;
        let pos0 = ctx.cache.len();
        let Context {
            cache,
            logits,
            buf: b,
            trace,
            expert_counts,
        } = ctx;
        let mut tr = |name: &str, il: i32, v: &[f32]| {
            if let Some(f) = trace.as_mut() {
                f(name, il, v);
            }
        };
        resize(&mut b.x, n * d);
        resize(&mut b.h, n * d);
        resize(&mut b.q, n * qd);
        resize(&mut b.k, n * kd);
        resize(&mut b.v, n * vd);
        resize(&mut b.att, n * hp.n_head * hp.head_dim_v);
        resize(&mut b.proj, n * d);
        resize(&mut b.cs, n * hp.n_rot);
        for (t, &id) in tokens.iter().enumerate() {
            self.tok_embd
                .row(id as usize, &mut b.x[t * d..(t + 1) * d])?;
        }
        for (t, cs) in b.cs.chunks_exact_mut(hp.n_rot).enumerate() {
            self.rope.cos_sin(pos0 + t, cs);
        }
        if hp.embd_scale != 1.0 {
            b.x.iter_mut().for_each(|v| *v *= hp.embd_scale);
        }
        tr("inp_embd", -1, &b.x);
        let shape = hp.attn();
        for (il, layer) in self.layers.iter().enumerate() {
            let il_i = il as i32;
            norm::rms_norm(&b.x, &layer.attn_norm, hp.rms_eps, &mut b.h);
            tr("attn_norm", il_i, &b.h);
            weights::forward_group(
                &[&layer.wq, &layer.wk, &layer.wv],
                &b.h,
                n,
                &mut [&mut b.q, &mut b.k, &mut b.v],
                &mut b.mm,
            )?;
            if let (Some(qn), Some(kn)) = (&layer.q_norm, &layer.k_norm) {
                norm::rms_norm_in_place(&mut b.q, qn, hp.rms_eps);
                norm::rms_norm_in_place(&mut b.k, kn, hp.rms_eps);
            }
            for t in 0..n {
                let cs = &b.cs[t * hp.n_rot..(t + 1) * hp.n_rot];
                self.rope
                    .apply(&mut b.q[t * qd..(t + 1) * qd], hp.head_dim_k, cs);
                self.rope
                    .apply(&mut b.k[t * kd..(t + 1) * kd], hp.head_dim_k, cs);
            }
            tr("Qcur", il_i, &b.q);
            tr("Kcur", il_i, &b.k);
            tr("Vcur", il_i, &b.v);
            cache.append(il, &b.k, &b.v);
            let simd = attention::Simd::current();
            attention::attend_cached(simd, shape, &b.q, cache, il, pos0, &mut b.att);
            tr("kqv_out", il_i, &b.att);
            layer.wo.forward(&b.att, n, &mut b.proj, &mut b.mm)?;
            scale_in_place(&mut b.proj, hp.residual_scale);
            add_in_place(&mut b.x, &b.proj);
            tr("ffn_inp", il_i, &b.x);
            norm::rms_norm(&b.x, &layer.ffn_norm, hp.rms_eps, &mut b.h);
            tr("ffn_norm", il_i, &b.h);
            layer.ffn.forward(b, n, &mut expert_counts[il])?;
            scale_in_place(&mut b.proj, hp.residual_scale);
            tr("ffn_out", il_i, &b.proj);
            add_in_place(&mut b.x, &b.proj);
            tr("l_out", il_i, &b.x);
        }
        cache.advance(n);
        let rows = match outputs {
            None => return Ok(()),
            Some(Outputs::Last) => &b.x[(n - 1) * d..],
            Some(Outputs::All) => &b.x[..],
        };
        let n_out = rows.len() / d;
        let h = &mut b.h[..n_out * d];
        norm::rms_norm(rows, &self.output_norm, hp.rms_eps, h);
        tr("result_norm", -1, h);
        let start = logits.len();
        logits.resize(start + n_out * hp.n_vocab, 0.0);
        self.output
            .forward(h, n_out, &mut logits[start..], &mut b.mm)?;
        if hp.logit_scale != 1.0 {
            let inv = 1.0 / hp.logit_scale;
            logits[start..].iter_mut().for_each(|v| *v *= inv);
        }
        tr("result_output", -1, &logits[start..]);
        Ok(())
    }
}

fn scale_in_place(x: &mut [f32], s: f32) {
    if s != 1.0 {
        x.iter_mut().for_each(|v| *v *= s);
    }
}

fn add_in_place(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

/// The driver every architecture's `forward` shares: checks the cache has
/// room and every id is in the vocabulary, then runs `batch` over chunks of
/// at most [`MAX_BATCH`] tokens, asking each for the logits it owes
/// (`None` for inner chunks under `Outputs::Last`).
pub(crate) fn run_batches<'c>(
    ctx: &'c mut Context,
    tokens: &[u32],
    n_vocab: usize,
    outputs: Outputs,
    mut batch: impl FnMut(&mut Context, &[u32], Option<Outputs>) -> Result<(), ModelError>,
) -> Result<&'c [f32], ModelError> {
    let used = ctx.cache.len();
    if used + tokens.len() > ctx.cache.n_ctx() {
        return Err(ModelError::ContextFull {
            used,
            adding: tokens.len(),
            n_ctx: ctx.cache.n_ctx(),
        });
    }
    if let Some(&id) = tokens.iter().find(|&&t| t as usize >= n_vocab) {
        return Err(ModelError::TokenOutOfRange { id, n_vocab });
    }
    ctx.logits.clear();
    let n_chunks = tokens.len().div_ceil(MAX_BATCH);
    for (ci, chunk) in tokens.chunks(MAX_BATCH).enumerate() {
        let last = ci + 1 == n_chunks;
        let want = match outputs {
            Outputs::All => Some(Outputs::All),
            Outputs::Last if last => Some(Outputs::Last),
            Outputs::Last => None,
        };
        batch(ctx, chunk, want)?;
    }
    Ok(&ctx.logits)
}
