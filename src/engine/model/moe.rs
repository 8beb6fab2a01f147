//! The Mixture-of-Experts feed-forward block (llama.cpp `build_moe_ffn` with
//! SwiGLU experts), with optional shared expert(s):
//!
//! ```text
//! logits  = h W_gate_inp                                  // "ffn_moe_logits", (n, n_expert)
//! ids, w  = route(logits)                                 // router.rs
//! moe(h)  = sum_k w_k * down_e(silu(gate_e h) * up_e h)   // e = ids_k
//! shexp   = down_s(silu(gate_s h) * up_s h)               // if ffn_*_shexp
//!           * sigmoid(h W_gate_inp_shexp)                 // qwen2moe only
//! out     = moe(h) + shexp
//! ```
//!
//! Expert-aware execution: the batch's tokens are grouped by expert, each
//! used expert runs one matrix-matrix product over its tokens (its weights are
//! read once per batch), unused experts are never touched, and the used
//! experts run in parallel (rayon) with the kernels splitting rows inside.

use rayon::prelude::*;

use super::error::ModelError;
use super::ffn;
use super::router::{self, RouterSpec};
use super::weights::{self, Experts, Linear};
use crate::engine::arch::Tensor;
use crate::engine::gguf::GgufFile;
use crate::engine::kernels::{self, Scratch};

/// One routed expert's down product in a decode step: its gate|up rows
/// (SwiGLU applied in place), its output, its product scratch, its result.
type DownItem<'s> = (
    &'s mut [f32],
    &'s mut [f32],
    &'s mut Scratch,
    Result<(), ModelError>,
);

/// The shared expert of a MoE layer (qwen2moe, DeepSeek).
#[derive(Debug)]
pub struct SharedExpert<'a> {
    gate: Linear<'a>,           // (n_ff_shexp, n_embd)
    up: Linear<'a>,             // (n_ff_shexp, n_embd)
    down: Linear<'a>,           // (n_embd, n_ff_shexp)
    gate_inp: Option<Vec<f32>>, // (n_embd): sigmoid gate (qwen2moe), stored [n_embd] or [n_embd, 1]
}

/// One layer's MoE FFN: router, stacked experts, optional shared expert.
#[derive(Debug)]
pub struct MoeFfn<'a> {
    /// The routing rule.
    pub spec: RouterSpec,
    router: Linear<'a>,         // (n_expert, n_embd)
    sel_bias: Option<Vec<f32>>, // (n_expert) exp_probs_b
    gate: Experts<'a>,          // n_expert x (n_ff_exp, n_embd)
    up: Experts<'a>,            // n_expert x (n_ff_exp, n_embd)
    down: Experts<'a>,          // n_expert x (n_embd, n_ff_exp)
    shared: Option<SharedExpert<'a>>,
}

/// What shared expert a layer has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shared {
    /// None.
    No,
    /// `ffn_{gate,up,down}_shexp` of this hidden width (all shared experts
    /// concatenated, as llama.cpp stores DeepSeek's).
    Plain(usize),
    /// As `Plain`, scaled by `sigmoid(h . ffn_gate_inp_shexp)` (qwen2moe).
    Gated(usize),
}

/// One expert's share of a batch.
#[derive(Default)]
struct ExpertBuf {
    tokens: Vec<u32>,  // batch rows routed here
    weights: Vec<f32>, // their mixing weights
}

/// Scratch space for [`MoeFfn::forward`], reused across layers and calls.
#[derive(Default)]
pub struct MoeScratch {
    logits: Vec<f32>, // (n, n_expert)
    ids: Vec<u32>,    // (n, n_used)
    w: Vec<f32>,      // (n, n_used)
    experts: Vec<ExpertBuf>,
    // A batch's (n * n_used) expert rows, cut into one slice per expert in
    // expert order: gathered inputs, gate, up, expert outputs. Sized by the
    // batch, not by the sum of every expert's largest share over the layers
    // (per-expert buffers measured ~600 MB for 512 tokens, 64 experts).
    bx: Vec<f32>,
    bgate: Vec<f32>,
    bup: Vec<f32>,
    by: Vec<f32>,
    // Product scratch, one per expert running at the moment.
    mm_pool: std::sync::Mutex<Vec<Scratch>>,
    sh_gate: Vec<f32>,
    sh_up: Vec<f32>,
    sh_out: Vec<f32>,
    mm: Scratch,
    one_sel: Vec<(usize, f32)>, // one token: (expert, weight), by expert id
    one_gu: Vec<f32>,           // one token: (n_used, 2 * n_ff_exp) gate | up
    one_y: Vec<f32>,            // one token: (n_used, n_embd)
    one_mm: Vec<Scratch>,       // one token: a scratch per chosen expert
}

impl std::fmt::Debug for MoeScratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MoeScratch")
            .field("experts", &self.experts.len())
            .finish()
    }
}

/// `buf` cut into consecutive slices of `c * width` values, one per count.
fn cut<'b>(mut buf: &'b mut [f32], counts: &[usize], width: usize) -> Vec<&'b mut [f32]> {
    counts
        .iter()
        .map(|&c| {
            let (a, rest) = std::mem::take(&mut buf).split_at_mut(c * width);
            buf = rest;
            a
        })
        .collect()
}

impl<'a> MoeFfn<'a> {
    /// Loads layer `il`'s router, experts (`n_ff_exp` wide) and shared expert.
    /// The selection bias `exp_probs_b.bias` is used when the file has it.
    pub fn load(
        file: &'a GgufFile,
        il: usize,
        spec: RouterSpec,
        n_embd: usize,
        n_ff_exp: usize,
        shared: Shared,
    ) -> Result<MoeFfn<'a>, ModelError> {
        spec.check().map_err(|why| ModelError::Tensor {
            name: Tensor::FfnGateInp.weight(il),
            msg: why,
        })?;
        let ne = spec.n_expert;
        let router = Linear::load(file, &Tensor::FfnGateInp.weight(il), ne, n_embd)?;
        let bias_name = Tensor::FfnExpProbsB.bias(il);
        let sel_bias = if weights::has(file, &bias_name) {
            Some(weights::load_vec(file, &bias_name, ne)?)
        } else {
            None
        };
        let exps = |t: Tensor, rows, cols| Experts::load(file, &t.weight(il), ne, rows, cols);
        let shared = match shared {
            Shared::No => None,
            Shared::Plain(w) | Shared::Gated(w) => {
                let lin = |t: Tensor, rows, cols| Linear::load(file, &t.weight(il), rows, cols);
                Some(SharedExpert {
                    gate: lin(Tensor::FfnGateShexp, w, n_embd)?,
                    up: lin(Tensor::FfnUpShexp, w, n_embd)?,
                    down: lin(Tensor::FfnDownShexp, n_embd, w)?,
                    gate_inp: match shared {
                        Shared::Gated(_) => Some(weights::load_vec(
                            file,
                            &Tensor::FfnGateInpShexp.weight(il),
                            n_embd,
                        )?),
                        _ => None,
                    },
                })
            }
        };
        Ok(MoeFfn {
            spec,
            router,
            sel_bias,
            gate: exps(Tensor::FfnGateExps, n_ff_exp, n_embd)?,
            up: exps(Tensor::FfnUpExps, n_ff_exp, n_embd)?,
            down: exps(Tensor::FfnDownExps, n_embd, n_ff_exp)?,
            shared,
        })
    }

    /// Bytes read per token: router, `n_used` experts, shared expert.
    pub fn active_bytes(&self) -> usize {
        let per_expert =
            self.gate.expert_bytes() + self.up.expert_bytes() + self.down.expert_bytes();
        let shared = self.shared.as_ref().map_or(0, |s| {
            s.gate.bytes()
                + s.up.bytes()
                + s.down.bytes()
                + s.gate_inp.as_ref().map_or(0, |g| 4 * g.len())
        });
        self.router.bytes() + self.spec.n_used * per_expert + shared
    }

    /// Bytes of all weights of the block.
    pub fn total_bytes(&self) -> usize {
        self.router.bytes()
            + self.gate.bytes()
            + self.up.bytes()
            + self.down.bytes()
            + self.shared.as_ref().map_or(0, |s| {
                s.gate.bytes()
                    + s.up.bytes()
                    + s.down.bytes()
                    + s.gate_inp.as_ref().map_or(0, |g| 4 * g.len())
            })
    }

    /// The dense matrices of the block (router, shared expert).
    pub fn linears(&self) -> Vec<&Linear<'a>> {
        let mut v = vec![&self.router];
        if let Some(s) = &self.shared {
            v.extend([&s.gate, &s.up, &s.down]);
        }
        v
    }

    /// The stacked expert tensors (gate, up, down).
    pub fn experts(&self) -> [&Experts<'a>; 3] {
        [&self.gate, &self.up, &self.down]
    }

    /// Chooses experts for each of the `n` rows of `h` (n x n_embd): writes
    /// `ids` and `w` (n x n_used) into the scratch, returns them.
    pub fn route<'s>(
        &self,
        h: &[f32],
        n: usize,
        s: &'s mut MoeScratch,
    ) -> Result<(&'s [u32], &'s [f32]), ModelError> {
        let (ne, k) = (self.spec.n_expert, self.spec.n_used);
        s.logits.resize(n * ne, 0.0);
        self.router.forward(h, n, &mut s.logits, &mut s.mm)?;
        s.ids.resize(n * k, 0);
        s.w.resize(n * k, 0.0);
        for ((l, ids), w) in s
            .logits
            .chunks_exact(ne)
            .zip(s.ids.chunks_exact_mut(k))
            .zip(s.w.chunks_exact_mut(k))
        {
            router::route(&self.spec, l, self.sel_bias.as_deref(), ids, w);
        }
        Ok((&s.ids, &s.w))
    }

    /// `out = moe(h) (+ shared(h))` for `n` rows of `h` (n x n_embd), `out`
    /// (n x n_embd) overwritten. `counts[e]` grows by the tokens routed to `e`.
    pub fn forward(
        &self,
        h: &[f32],
        n: usize,
        out: &mut [f32],
        s: &mut MoeScratch,
        counts: &mut [u64],
    ) -> Result<(), ModelError> {
        self.route(h, n, s)?;
        if n == 1 {
            self.routed_one(h, out, s, counts)?;
        } else {
            self.routed_batch(h, n, out, s, counts)?;
        }
        self.add_shared(h, n, out, s)
    }

    /// One token (decoding): every chosen expert reads the same input, so
    /// the gate and up products of all of them form one group (one
    /// activation quantization, one parallel region instead of one per
    /// expert); the down products run in parallel over the experts. The
    /// outputs are mixed in ascending expert order, as the batched path
    /// mixes them, so both give the same bits.
    fn routed_one(
        &self,
        h: &[f32],
        out: &mut [f32],
        s: &mut MoeScratch,
        counts: &mut [u64],
    ) -> Result<(), ModelError> {
        let d = self.router.cols;
        let k = self.spec.n_used;
        let ff = self.gate.rows;
        s.one_sel.clear();
        s.one_sel.extend(
            s.ids[..k]
                .iter()
                .zip(&s.w[..k])
                .map(|(&e, &w)| (e as usize, w)),
        );
        s.one_sel.sort_unstable_by_key(|&(e, _)| e);
        for &(e, _) in &s.one_sel {
            counts[e] += 1;
        }
        let mats: Vec<Linear<'a>> = s
            .one_sel
            .iter()
            .flat_map(|&(e, _)| [self.gate.expert(e), self.up.expert(e)])
            .collect();
        let refs: Vec<&Linear<'a>> = mats.iter().collect();
        s.one_gu.resize(k * 2 * ff, 0.0);
        let mut outs: Vec<&mut [f32]> = s.one_gu.chunks_exact_mut(ff).collect();
        weights::forward_group(&refs, &h[..d], 1, &mut outs, &mut s.mm)?;
        s.one_y.resize(k * d, 0.0);
        if s.one_mm.len() < k {
            s.one_mm.resize_with(k, Scratch::default);
        }
        let sel = &s.one_sel;
        let down = |i: usize, gu: &mut [f32], y: &mut [f32], mm: &mut Scratch| {
            let (g, u) = gu.split_at_mut(ff);
            ffn::swiglu_in_place(g, u);
            self.down.expert(sel[i].0).forward(g, 1, y, mm)
        };
        // One expert per item on the spinning pool (each product serial
        // inside it), else rayon over the experts.
        let mut items: Vec<DownItem<'_>> = s
            .one_gu
            .chunks_exact_mut(2 * ff)
            .zip(s.one_y.chunks_exact_mut(d))
            .zip(s.one_mm[..k].iter_mut())
            .map(|((gu, y), mm)| (gu, y, mm, Ok(())))
            .collect();
        if kernels::pool::for_each_mut(&mut items, &|i, (gu, y, mm, r)| *r = down(i, gu, y, mm)) {
            items.into_iter().try_for_each(|it| it.3)?;
        } else {
            items
                .into_par_iter()
                .enumerate()
                .try_for_each(|(i, (gu, y, mm, _))| down(i, gu, y, mm))?;
        }
        out[..d].fill(0.0);
        for (&(_, w), y) in s.one_sel.iter().zip(s.one_y.chunks_exact(d)) {
            for (o, &v) in out[..d].iter_mut().zip(y) {
                *o += w * v;
            }
        }
        Ok(())
    }

    /// A batch: tokens grouped by expert, each used expert's weights read
    /// once for all its tokens, experts in parallel.
    fn routed_batch(
        &self,
        h: &[f32],
        n: usize,
        out: &mut [f32],
        s: &mut MoeScratch,
        counts: &mut [u64],
    ) -> Result<(), ModelError> {
        let d = self.router.cols;
        let (ne, k) = (self.spec.n_expert, self.spec.n_used);
        let ff = self.gate.rows;
        if s.experts.len() < ne {
            s.experts.resize_with(ne, ExpertBuf::default);
        }
        for b in &mut s.experts {
            b.tokens.clear();
            b.weights.clear();
        }
        for t in 0..n {
            for j in 0..k {
                let e = s.ids[t * k + j] as usize;
                s.experts[e].tokens.push(t as u32);
                s.experts[e].weights.push(s.w[t * k + j]);
            }
        }
        for (c, b) in counts.iter_mut().zip(&s.experts) {
            *c += b.tokens.len() as u64;
        }
        let cnts: Vec<usize> = s.experts[..ne].iter().map(|b| b.tokens.len()).collect();
        let rows = n * k;
        s.bx.resize(rows * d, 0.0);
        s.bgate.resize(rows * ff, 0.0);
        s.bup.resize(rows * ff, 0.0);
        s.by.resize(rows * d, 0.0);
        let parts = cut(&mut s.bx, &cnts, d)
            .into_iter()
            .zip(cut(&mut s.bgate, &cnts, ff))
            .zip(cut(&mut s.bup, &cnts, ff))
            .zip(cut(&mut s.by, &cnts, d));
        let work: Vec<_> = s.experts[..ne]
            .iter()
            .zip(parts)
            .enumerate()
            .filter(|(_, (b, _))| !b.tokens.is_empty())
            .collect();
        let pool = &s.mm_pool;
        work.into_par_iter().try_for_each(
            |(e, (b, (((x, gate), up), y)))| -> Result<(), ModelError> {
                let cnt = b.tokens.len();
                for (row, &t) in x.chunks_exact_mut(d).zip(&b.tokens) {
                    let t = t as usize;
                    row.copy_from_slice(&h[t * d..(t + 1) * d]);
                }
                let mut mm = pool
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .pop()
                    .unwrap_or_default();
                let r = weights::forward_group(
                    &[&self.gate.expert(e), &self.up.expert(e)],
                    x,
                    cnt,
                    &mut [&mut *gate, &mut *up],
                    &mut mm,
                )
                .and_then(|()| {
                    ffn::swiglu_in_place(gate, up);
                    self.down.expert(e).forward(gate, cnt, y, &mut mm)
                });
                pool.lock().unwrap_or_else(|e| e.into_inner()).push(mm);
                r
            },
        )?;
        out[..n * d].fill(0.0);
        let mut ys = s.by.chunks_exact(d);
        for b in &s.experts[..ne] {
            for ((&t, &w), y) in b.tokens.iter().zip(&b.weights).zip(ys.by_ref()) {
                let t = t as usize;
                for (o, &v) in out[t * d..(t + 1) * d].iter_mut().zip(y) {
                    *o += w * v;
                }
            }
        }
        Ok(())
    }

    /// Adds the shared expert's output (if any) to `out`.
    fn add_shared(
        &self,
        h: &[f32],
        n: usize,
        out: &mut [f32],
        s: &mut MoeScratch,
    ) -> Result<(), ModelError> {
        let d = self.router.cols;
        if let Some(sh) = &self.shared {
            let w = sh.gate.rows;
            s.sh_gate.resize(n * w, 0.0);
            s.sh_up.resize(n * w, 0.0);
            s.sh_out.resize(n * d, 0.0);
            weights::forward_group(
                &[&sh.gate, &sh.up],
                h,
                n,
                &mut [&mut s.sh_gate, &mut s.sh_up],
                &mut s.mm,
            )?;
            ffn::swiglu_in_place(&mut s.sh_gate, &s.sh_up);
            sh.down.forward(&s.sh_gate, n, &mut s.sh_out, &mut s.mm)?;
            if let Some(gi) = &sh.gate_inp {
                for (row, x) in s.sh_out.chunks_exact_mut(d).zip(h.chunks_exact(d)) {
                    let g: f32 = gi.iter().zip(x).map(|(a, b)| a * b).sum();
                    let g = 1.0 / (1.0 + (-g).exp());
                    row.iter_mut().for_each(|v| *v *= g);
                }
            }
            for (o, &v) in out.iter_mut().zip(&s.sh_out) {
                *o += v;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::model::Hparams;

    /// The one-token path (all gate/up products in one group) gives the same
    /// bits and the same usage counts as the batched path run on one token,
    /// for every layer of the quantized fixtures (with and without a shared expert).
    #[test]
    fn one_token_path_equals_the_batched_path_bit_for_bit() {
        for (fixture, gated) in [("qwen3moe", false), ("qwen2moe", true), ("olmoe", false)] {
            for ty in ["f32", "q8_0", "q4_0"] {
                let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join(format!("tests/data/moe/{fixture}/model-{ty}.gguf"));
                let file = GgufFile::open(&path).expect("fixture opens");
                let hp = Hparams::read(&file).expect("hparams");
                let shared = if gated {
                    Shared::Gated(hp.n_ff_shexp)
                } else {
                    Shared::No
                };
                for il in 0..hp.n_layer {
                    let m = MoeFfn::load(
                        &file,
                        il,
                        hp.router.unwrap(),
                        hp.n_embd,
                        hp.n_ff_exp,
                        shared,
                    )
                    .expect("layer loads");
                    let d = hp.n_embd;
                    for seed in 0..8u32 {
                        let mut x = seed.wrapping_mul(2654435761).wrapping_add(il as u32 + 1);
                        let h: Vec<f32> = (0..d)
                            .map(|_| {
                                x ^= x << 13;
                                x ^= x >> 17;
                                x ^= x << 5;
                                (x as f32 / u32::MAX as f32) * 4.0 - 2.0
                            })
                            .collect();
                        let (mut a, mut b) = (vec![0.0; d], vec![0.0; d]);
                        let (mut ca, mut cb) = (vec![0u64; hp.n_expert], vec![0u64; hp.n_expert]);
                        let mut s = MoeScratch::default();
                        m.forward(&h, 1, &mut a, &mut s, &mut ca)
                            .expect("one token");
                        m.route(&h, 1, &mut s).expect("route");
                        m.routed_batch(&h, 1, &mut b, &mut s, &mut cb)
                            .expect("batch path");
                        m.add_shared(&h, 1, &mut b, &mut s).expect("shared");
                        assert_eq!(a, b, "{fixture} {ty} layer {il} seed {seed}");
                        assert_eq!(ca, cb, "{fixture} {ty} layer {il} seed {seed}");
                        assert_eq!(ca.iter().sum::<u64>(), hp.n_expert_used as u64);
                    }
                }
            }
        }
    }
}
