//! `deepseek2` (DeepSeek-V2, V2-Lite, V3, R1): multi-head latent attention
//! ([`super::mla`]) in every block, a dense SwiGLU FFN in the first
//! `leading_dense_block_count` blocks, then MoE blocks with always-on shared
//! experts. llama.cpp `src/models/deepseek2.cpp`.
//!
//! ```text
//! x = embed(tokens)
//! for each layer:
//!     x = x + mla(rmsnorm(x) * attn_norm)                          // "ffn_inp"
//!     h = rmsnorm(x) * ffn_norm
//!     x = x + (il < n_dense ? swiglu_ffn(h) : moe(h) + shared(h))  // "l_out"
//! logits = (rmsnorm(x) * output_norm) Wout
//! ```
//!
//! Router (MoE blocks): `expert_gating_func` 1 = softmax, 2 = sigmoid;
//! `exp_probs_b` biases the selection only; `expert_group_count` /
//! `expert_group_used_count` limit the choice to the best groups (a group
//! scores the sum of its top-2 biased scores); `expert_weights_norm`
//! renormalises the chosen weights; `expert_weights_scale` multiplies them.

use super::error::ModelError;
use super::mla::{self, HeadMat, MlaLayer, MlaShape, QProj};
use super::moe::{MoeFfn, Shared};
use super::rope::{Rope, RopeScaling};
use super::router::{GroupLimit, GroupScore, RouterSpec, ScoreFunc};
use super::weights::{self, Linear};
use super::{Context, Ffn, Hparams, KvCache, Outputs, add_in_place, norm, resize};
use crate::engine::arch::{Arch, Key, Tensor};
use crate::engine::gguf::{GgufFile, Value};

/// The deepseek2 hyperparameters beyond the common ones.
#[derive(Debug, Clone)]
pub struct Deepseek2Params {
    /// MLA widths and score scale.
    pub mla: MlaShape,
    /// q-LoRA rank; `None` for a plain `attn_q` (V2-Lite).
    pub q_lora_rank: Option<usize>,
    /// Blocks with a dense FFN before the MoE blocks.
    pub n_dense: usize,
    /// Routing parameters of the MoE blocks.
    pub moe: MoeParams,
}

/// Routing and expert shapes of the MoE blocks.
#[derive(Debug, Clone, Copy)]
pub struct MoeParams {
    /// Experts per block.
    pub n_expert: usize,
    /// Experts chosen per token.
    pub n_expert_used: usize,
    /// Width of one expert.
    pub n_ff_exp: usize,
    /// Shared experts (one fused FFN of n_shared * n_ff_exp).
    pub n_shared: usize,
    /// Routed scaling factor.
    pub weights_scale: f32,
    /// Renormalise the chosen weights.
    pub weights_norm: bool,
    /// Sigmoid (true) or softmax (false) scores.
    pub sigmoid: bool,
    /// Expert groups (0 or 1: no group limit).
    pub n_group: usize,
    /// Groups kept per token.
    pub n_group_used: usize,
}

/// One block.
#[derive(Debug)]
pub struct Layer<'a> {
    attn_norm: Vec<f32>,
    attn: MlaLayer<'a>,
    ffn_norm: Vec<f32>,
    ffn: Ffn<'a>,
}

/// A loaded deepseek2 model.
#[derive(Debug)]
pub struct Deepseek2<'a> {
    /// Common hyperparameters (`head_dim_k` etc. are the file's MLA cache widths).
    pub hp: Hparams,
    /// deepseek2-specific ones.
    pub ds: Deepseek2Params,
    tok_embd: Linear<'a>,
    output_norm: Vec<f32>,
    output: Linear<'a>,
    tied: bool, // output is token_embd
    layers: Vec<Layer<'a>>,
    rope: Rope,
}

fn key(k: &str) -> String {
    format!("{}.{k}", Arch::Deepseek2.name())
}

fn opt_u64(file: &GgufFile, k: &str) -> Option<usize> {
    file.get(&key(k))
        .and_then(Value::as_u64)
        .map(|v| v as usize)
}

fn need(file: &GgufFile, k: &str, max: usize) -> Result<usize, ModelError> {
    match file.get(&key(k)).and_then(Value::as_u64) {
        Some(v) if v >= 1 && (v as usize) <= max => Ok(v as usize),
        Some(v) => Err(ModelError::BadValue {
            key: key(k),
            value: v.to_string(),
            why: "out of range for this model",
        }),
        None => Err(ModelError::MissingKey {
            key: key(k),
            want: "an unsigned integer",
        }),
    }
}

impl Deepseek2Params {
    /// Reads the MLA and MoE keys (llama.cpp `llama_model_deepseek2::load_arch_hparams`).
    pub fn read(file: &GgufFile, hp: &Hparams) -> Result<Deepseek2Params, ModelError> {
        let k = |x: Key| x.for_arch(Arch::Deepseek2);
        let limit = 1 << 20;
        let kv_lora_rank = need(file, Key::KvLoraRank.suffix(), limit)?;
        let q_lora_rank = match opt_u64(file, Key::QLoraRank.suffix()) {
            Some(_) => Some(need(file, Key::QLoraRank.suffix(), limit)?),
            None => None,
        };
        // Split-tensor (MLA) files give the decompressed head widths in the
        // `_mla` keys and the cache widths in key_length/value_length; legacy
        // files give the decompressed widths in key_length/value_length.
        let k_head = opt_u64(file, Key::KeyLengthMla.suffix()).unwrap_or(hp.head_dim_k);
        let v_dim = opt_u64(file, Key::ValueLengthMla.suffix()).unwrap_or(hp.head_dim_v);
        let rope = hp.n_rot;
        if k_head <= rope || v_dim == 0 {
            return Err(ModelError::BadValue {
                key: k(Key::KeyLengthMla),
                value: k_head.to_string(),
                why: "must exceed rope.dimension_count",
            });
        }
        let yarn_log_mul = file
            .get(&k(Key::RopeScalingYarnLogMul))
            .and_then(Value::as_f32)
            .unwrap_or(0.0);
        let (freq_scale, yarn) = match hp.rope_scaling {
            RopeScaling::None => (1.0, false),
            RopeScaling::Linear { factor } => (1.0 / factor, false),
            RopeScaling::Yarn { factor, .. } => (1.0 / factor, true),
        };
        let (scale, _) = mla::deepseek2_scales(freq_scale, yarn, yarn_log_mul, k_head);
        let n_dense = opt_u64(file, Key::LeadingDenseBlockCount.suffix()).unwrap_or(0);
        let n_moe = hp.n_layer.saturating_sub(n_dense);
        let moe = if n_moe == 0 {
            MoeParams {
                n_expert: 0,
                n_expert_used: 0,
                n_ff_exp: 0,
                n_shared: 0,
                weights_scale: 1.0,
                weights_norm: false,
                sigmoid: false,
                n_group: 0,
                n_group_used: 0,
            }
        } else {
            let n_expert = need(file, Key::ExpertCount.suffix(), 1 << 16)?;
            let n_expert_used = need(file, Key::ExpertUsedCount.suffix(), n_expert)?;
            let gating = opt_u64(file, Key::ExpertGatingFunc.suffix()).unwrap_or(1);
            if gating != 1 && gating != 2 {
                return Err(ModelError::BadValue {
                    key: key(Key::ExpertGatingFunc.suffix()),
                    value: gating.to_string(),
                    why: "supported: 1 (softmax), 2 (sigmoid)",
                });
            }
            let n_group = opt_u64(file, Key::ExpertGroupCount.suffix()).unwrap_or(0);
            let n_group_used = opt_u64(file, Key::ExpertGroupUsedCount.suffix()).unwrap_or(0);
            if n_group > 1
                && (n_expert % n_group != 0 || n_group_used == 0 || n_group_used > n_group)
            {
                return Err(ModelError::BadValue {
                    key: key(Key::ExpertGroupCount.suffix()),
                    value: n_group.to_string(),
                    why: "must divide expert_count, with 1..=groups used",
                });
            }
            MoeParams {
                n_expert,
                n_expert_used,
                n_ff_exp: need(file, Key::ExpertFeedForwardLength.suffix(), limit)?,
                n_shared: opt_u64(file, Key::ExpertSharedCount.suffix()).unwrap_or(0),
                weights_scale: file
                    .get(&key(Key::ExpertWeightsScale.suffix()))
                    .and_then(Value::as_f32)
                    .filter(|&s| s != 0.0)
                    .unwrap_or(1.0),
                weights_norm: file
                    .get(&key(Key::ExpertWeightsNorm.suffix()))
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                sigmoid: gating == 2,
                n_group,
                n_group_used,
            }
        };
        Ok(Deepseek2Params {
            mla: MlaShape {
                n_head: hp.n_head,
                kv_lora_rank,
                nope: k_head - rope,
                rope,
                v_dim,
                scale,
            },
            q_lora_rank,
            n_dense,
            moe,
        })
    }
}

impl MoeParams {
    /// The routing rule as llama.cpp's `build_moe_ffn` runs it for deepseek2:
    /// with expert groups, a group scores the sum of its two best biased
    /// scores (llama.cpp does this for every deepseek2 file; transformers'
    /// DeepSeek-V2 `group_limited_greedy` would take the best one).
    pub fn router(&self) -> RouterSpec {
        RouterSpec {
            n_expert: self.n_expert,
            n_used: self.n_expert_used,
            score: if self.sigmoid {
                ScoreFunc::Sigmoid
            } else {
                ScoreFunc::Softmax
            },
            groups: (self.n_group > 1).then_some(GroupLimit {
                n_group: self.n_group,
                topk_group: self.n_group_used,
                score: GroupScore::SumTop2,
            }),
            norm: self.weights_norm,
            scale: self.weights_scale,
        }
    }
}

impl<'a> Deepseek2<'a> {
    /// Loads a `deepseek2` file.
    pub fn load(file: &'a GgufFile) -> Result<Deepseek2<'a>, ModelError> {
        let mut hp = Hparams::read(file)?;
        if hp.arch != Arch::Deepseek2 {
            return Err(ModelError::BadValue {
                key: "general.architecture".into(),
                value: hp.arch.name().into(),
                why: "Deepseek2::load runs deepseek2 only (Model::load runs every architecture)",
            });
        }
        let ds = Deepseek2Params::read(file, &hp)?;
        // The common fields read the MoE keys only for the common block's
        // MoE architectures; fill them in so every reader sees this file's.
        hp.n_expert = ds.moe.n_expert;
        hp.n_expert_used = ds.moe.n_expert_used;
        hp.n_ff_exp = ds.moe.n_ff_exp;
        hp.n_ff_shexp = ds.moe.n_shared * ds.moe.n_ff_exp;
        hp.router = Some(ds.moe.router());
        let s = ds.mla;
        let d = hp.n_embd;
        let tok_embd = Linear::load(file, &Tensor::TokenEmbd.weight(0), hp.n_vocab, d)?;
        let output_norm = weights::load_vec(file, &Tensor::OutputNorm.weight(0), d)?;
        let tied = !weights::has(file, &Tensor::Output.weight(0));
        let output = if tied {
            tok_embd.clone()
        } else {
            Linear::load(file, &Tensor::Output.weight(0), hp.n_vocab, d)?
        };
        let (freq_scale, yarn) = match hp.rope_scaling {
            RopeScaling::Yarn { factor, .. } => (1.0 / factor, true),
            _ => (1.0, false),
        };
        let yarn_log_mul = file
            .get(&Key::RopeScalingYarnLogMul.for_arch(Arch::Deepseek2))
            .and_then(Value::as_f32)
            .unwrap_or(0.0);
        let mut rope = Rope::new(
            hp.arch.rope_style(),
            s.rope,
            hp.rope_base,
            hp.rope_scaling,
            None,
        );
        if yarn {
            let (_, attn_factor) =
                mla::deepseek2_scales(freq_scale, true, yarn_log_mul, s.nope + s.rope);
            rope = rope.with_attn_factor(attn_factor);
        }
        let mut layers = Vec::with_capacity(hp.n_layer);
        let qw = s.n_head * s.q_head();
        for i in 0..hp.n_layer {
            let lin = |t: Tensor, rows, cols| Linear::load(file, &t.weight(i), rows, cols);
            let q = match ds.q_lora_rank {
                Some(rank) => QProj::Lora {
                    a: lin(Tensor::AttnQA, rank, d)?,
                    norm: weights::load_vec(file, &Tensor::AttnQANorm.weight(i), rank)?,
                    b: lin(Tensor::AttnQB, qw, rank)?,
                },
                None => QProj::Plain(lin(Tensor::AttnQ, qw, d)?),
            };
            let (k_b, v_b) = if weights::has(file, &Tensor::AttnKB.weight(i)) {
                let k_b = Linear::load_slices(
                    file,
                    &Tensor::AttnKB.weight(i),
                    s.n_head,
                    s.kv_lora_rank,
                    s.nope,
                )?;
                let v_b = Linear::load_slices(
                    file,
                    &Tensor::AttnVB.weight(i),
                    s.n_head,
                    s.v_dim,
                    s.kv_lora_rank,
                )?;
                (
                    k_b.into_iter().map(HeadMat::Mapped).collect(),
                    v_b.into_iter().map(HeadMat::Mapped).collect(),
                )
            } else {
                let kv_b = lin(
                    Tensor::AttnKvB,
                    s.n_head * (s.nope + s.v_dim),
                    s.kv_lora_rank,
                )?;
                mla::split_kv_b(&kv_b, &s)?
            };
            let attn = MlaLayer {
                q,
                kv_a: lin(Tensor::AttnKvAMqa, s.cache_width(), d)?,
                kv_a_norm: weights::load_vec(file, &Tensor::AttnKvANorm.weight(i), s.kv_lora_rank)?,
                k_b,
                v_b,
                wo: lin(Tensor::AttnOutput, d, s.n_head * s.v_dim)?,
            };
            let ffn = if i < ds.n_dense {
                Ffn::Dense {
                    gate: lin(Tensor::FfnGate, hp.n_ff, d)?,
                    up: lin(Tensor::FfnUp, hp.n_ff, d)?,
                    down: lin(Tensor::FfnDown, d, hp.n_ff)?,
                }
            } else {
                let m = &ds.moe;
                let shared = if m.n_shared > 0 {
                    Shared::Plain(m.n_shared * m.n_ff_exp)
                } else {
                    Shared::No
                };
                Ffn::Moe(MoeFfn::load(file, i, m.router(), d, m.n_ff_exp, shared)?)
            };
            layers.push(Layer {
                attn_norm: weights::load_vec(file, &Tensor::AttnNorm.weight(i), d)?,
                attn,
                ffn_norm: weights::load_vec(file, &Tensor::FfnNorm.weight(i), d)?,
                ffn,
            });
        }
        Ok(Deepseek2 {
            hp,
            ds,
            tok_embd,
            output_norm,
            output,
            tied,
            layers,
            rope,
        })
    }

    /// A fresh context of up to `n_ctx` positions (0: the training length).
    /// Its cache holds `kv_lora_rank + rope` floats per position and layer.
    pub fn context(&self, n_ctx: usize) -> Context {
        let n_ctx = if n_ctx == 0 {
            self.hp.n_ctx_train
        } else {
            n_ctx
        };
        Context {
            cache: KvCache::new(self.hp.n_layer, n_ctx, self.ds.mla.cache_width(), 0),
            logits: Vec::new(),
            buf: Default::default(),
            trace: None,
            expert_counts: self.layers.iter().map(|l| l.ffn.usage_counters()).collect(),
        }
    }

    /// Bytes of weights read for one token (as [`super::Model::bytes_per_token`]).
    pub fn bytes_per_token(&self) -> usize {
        let per_layer: usize = self
            .layers
            .iter()
            .map(|l| l.attn.bytes() + l.ffn.active_bytes())
            .sum();
        per_layer + self.output.bytes() + self.tok_embd.bytes() / self.hp.n_vocab
    }

    /// Bytes of all weights (every expert included; the output matrix once
    /// when it is the embedding).
    pub fn total_bytes(&self) -> usize {
        let per_layer: usize = self
            .layers
            .iter()
            .map(|l| l.attn.bytes() + l.ffn.total_bytes())
            .sum();
        let output = if self.tied { 0 } else { self.output.bytes() };
        per_layer + output + self.tok_embd.bytes()
    }

    /// The mapped weight matrices (attention, dense FFNs, routers, shared
    /// experts, output); the experts are in [`Deepseek2::experts`].
    pub fn linears(&self) -> Vec<&Linear<'a>> {
        let mut v = Vec::new();
        for l in &self.layers {
            v.extend(l.attn.linears());
            v.extend(l.ffn.linears());
        }
        v.push(&self.output);
        v
    }

    /// The stacked expert tensors of every MoE block (gate, up, down).
    pub fn experts(&self) -> Vec<&weights::Experts<'a>> {
        self.layers.iter().flat_map(|l| l.ffn.experts()).collect()
    }

    /// Runs `tokens` at the next positions of `ctx` (as [`super::Model::forward`]).
    pub fn forward<'c>(
        &self,
        ctx: &'c mut Context,
        tokens: &[u32],
        outputs: Outputs,
    ) -> Result<&'c [f32], ModelError> {
        super::run_batches(ctx, tokens, self.hp.n_vocab, outputs, |ctx, chunk, want| {
            self.batch(ctx, chunk, want)
        })
    }

    fn batch(
        &self,
        ctx: &mut Context,
        tokens: &[u32],
        outputs: Option<Outputs>,
    ) -> Result<(), ModelError> {
        let hp = &self.hp;
        let s = &self.ds.mla;
        let n = tokens.len();
        let d = hp.n_embd;
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
        resize(&mut b.proj, n * d);
        resize(&mut b.cs, n * s.rope);
        for (t, &id) in tokens.iter().enumerate() {
            self.tok_embd
                .row(id as usize, &mut b.x[t * d..(t + 1) * d])?;
        }
        for (t, cs) in b.cs.chunks_exact_mut(s.rope).enumerate() {
            self.rope.cos_sin(pos0 + t, cs);
        }
        tr("inp_embd", -1, &b.x);
        for (il, layer) in self.layers.iter().enumerate() {
            let il_i = il as i32;
            norm::rms_norm(&b.x, &layer.attn_norm, hp.rms_eps, &mut b.h);
            tr("attn_norm", il_i, &b.h);
            layer.attn.forward(
                s,
                hp.rms_eps,
                &self.rope,
                &b.h,
                n,
                &b.cs,
                cache,
                il,
                &mut b.mla,
                &mut b.mm,
                &mut b.proj,
            )?;
            tr("attn_out", il_i, &b.proj);
            add_in_place(&mut b.x, &b.proj);
            tr("ffn_inp", il_i, &b.x);
            norm::rms_norm(&b.x, &layer.ffn_norm, hp.rms_eps, &mut b.h);
            tr("ffn_norm", il_i, &b.h);
            layer.ffn.forward(b, n, &mut expert_counts[il])?;
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
        tr("result_output", -1, &logits[start..]);
        Ok(())
    }
}
