//! Multi-head latent attention (DeepSeek-V2, DeepSeek-AI 2024) in the
//! "absorbed" form llama.cpp runs for `deepseek2` GGUFs:
//!
//! ```text
//! q          = (rmsnorm(h Wq_a) * q_a_norm) Wq_b   or  h Wq      // (n_head, nope + rope)
//! [c, k_pe]  = h Wkv_a_mqa                                       // (kv_lora + rope)
//! c          = rmsnorm(c) * kv_a_norm                            // the KV latent
//! q_pe, k_pe = rope(q_pe), rope(k_pe)                            // rope part only, normal style
//! q_abs_h    = Wk_b[h] q_nope_h                                  // (kv_lora), key decompression absorbed into q
//! score_h,p  = scale * ([q_abs_h, q_pe_h] . [c_p, k_pe_p])       // one shared "KV head" (MQA)
//! o_h        = Wv_b[h] sum_p softmax(score_h)_p c_p              // value decompression after the sum
//! out        = [o_1 .. o_n_head] Wo
//! ```
//!
//! KV cache: one row of `kv_lora + rope` floats per position and layer (the
//! normed latent followed by the roped shared key), stored in the keys half
//! of [`KvCache`] with an empty values half; the latent is both key and value.
//! For DeepSeek-V3 that is 576 floats per position and layer instead of
//! 128 heads x (192 + 128) for expanded keys and values.
//!
//! Files with the legacy unsplit `attn_kv_b` are run the same way: at load its
//! key rows are transposed into per-head `Wk_b` and its value rows become
//! `Wv_b`, dequantized to f32 (owned memory, where the split tensors are used
//! in place from the mapping).

use rayon::prelude::*;

use super::attention::{self, KvCache};
use super::error::ModelError;
use super::norm;
use super::rope::Rope;
use super::weights::{Linear, forward_group};
use crate::engine::kernels::Scratch;

/// Widths of one MLA layer.
#[derive(Debug, Clone, Copy)]
pub struct MlaShape {
    /// Query heads.
    pub n_head: usize,
    /// Rank of the compressed KV latent.
    pub kv_lora_rank: usize,
    /// Non-rotated part of a query/key head.
    pub nope: usize,
    /// Rotated part of a query/key head (shared by all heads on the key side).
    pub rope: usize,
    /// Width of a decompressed value head.
    pub v_dim: usize,
    /// Score scale (llama.cpp `kq_scale`: mscale^2 / sqrt(nope + rope)).
    pub scale: f32,
}

impl MlaShape {
    /// Floats per position in the cache: latent then rope key.
    pub fn cache_width(&self) -> usize {
        self.kv_lora_rank + self.rope
    }

    /// Width of a query head before absorption.
    pub fn q_head(&self) -> usize {
        self.nope + self.rope
    }
}

/// How queries are projected.
#[derive(Debug)]
pub enum QProj<'a> {
    /// `attn_q` (DeepSeek-V2-Lite).
    Plain(Linear<'a>),
    /// `attn_q_a`, `attn_q_a_norm`, `attn_q_b` (q-LoRA).
    Lora {
        /// (q_lora_rank, n_embd).
        a: Linear<'a>,
        /// (q_lora_rank).
        norm: Vec<f32>,
        /// (n_head * (nope + rope), q_lora_rank).
        b: Linear<'a>,
    },
}

/// One head's decompression matrix: from the mapping or dequantized.
#[derive(Debug)]
pub enum HeadMat<'a> {
    /// A slice of `attn_k_b` / `attn_v_b` used in place.
    Mapped(Linear<'a>),
    /// Dequantized rows (rows x cols, row-major), from a legacy `attn_kv_b`.
    Owned {
        /// Output features.
        rows: usize,
        /// Input features.
        cols: usize,
        /// The values.
        w: Vec<f32>,
    },
}

impl HeadMat<'_> {
    fn forward(
        &self,
        x: &[f32],
        n: usize,
        out: &mut [f32],
        scratch: &mut Scratch,
    ) -> Result<(), ModelError> {
        match self {
            HeadMat::Mapped(l) => l.forward(x, n, out, scratch),
            HeadMat::Owned { rows, cols, w } => {
                for (xt, ot) in x.chunks_exact(*cols).zip(out.chunks_exact_mut(*rows)) {
                    for (o, wr) in ot.iter_mut().zip(w.chunks_exact(*cols)) {
                        *o = attention::dot(wr, xt);
                    }
                }
                Ok(())
            }
        }
    }

    /// Bytes of weights.
    pub fn bytes(&self) -> usize {
        match self {
            HeadMat::Mapped(l) => l.bytes(),
            HeadMat::Owned { w, .. } => w.len() * 4,
        }
    }
}

/// One layer's MLA weights.
#[derive(Debug)]
pub struct MlaLayer<'a> {
    /// Query projection.
    pub q: QProj<'a>,
    /// `attn_kv_a_mqa`: (kv_lora_rank + rope, n_embd).
    pub kv_a: Linear<'a>,
    /// `attn_kv_a_norm`: (kv_lora_rank).
    pub kv_a_norm: Vec<f32>,
    /// Per head (kv_lora_rank, nope): absorbs key decompression into q.
    pub k_b: Vec<HeadMat<'a>>,
    /// Per head (v_dim, kv_lora_rank): value decompression.
    pub v_b: Vec<HeadMat<'a>>,
    /// `attn_output`: (n_embd, n_head * v_dim).
    pub wo: Linear<'a>,
}

/// Builds per-head `Wk_b` (transposed key rows) and `Wv_b` from a legacy
/// `attn_kv_b` of (n_head * (nope + v_dim), kv_lora_rank).
pub fn split_kv_b<'a>(
    kv_b: &Linear<'_>,
    s: &MlaShape,
) -> Result<(Vec<HeadMat<'a>>, Vec<HeadMat<'a>>), ModelError> {
    let r = s.kv_lora_rank;
    let per_head = s.nope + s.v_dim;
    let mut row = vec![0.0f32; r];
    let mut k_b = Vec::with_capacity(s.n_head);
    let mut v_b = Vec::with_capacity(s.n_head);
    for h in 0..s.n_head {
        let mut k = vec![0.0f32; r * s.nope]; // (kv_lora, nope)
        let mut v = vec![0.0f32; s.v_dim * r]; // (v_dim, kv_lora)
        for j in 0..per_head {
            kv_b.row(h * per_head + j, &mut row)?;
            if j < s.nope {
                for (c, &x) in row.iter().enumerate() {
                    k[c * s.nope + j] = x;
                }
            } else {
                v[(j - s.nope) * r..(j - s.nope + 1) * r].copy_from_slice(&row);
            }
        }
        k_b.push(HeadMat::Owned {
            rows: r,
            cols: s.nope,
            w: k,
        });
        v_b.push(HeadMat::Owned {
            rows: s.v_dim,
            cols: r,
            w: v,
        });
    }
    Ok((k_b, v_b))
}

/// Scratch buffers of the MLA block, reused across calls.
#[derive(Debug, Default)]
pub struct MlaBuffers {
    qa: Vec<f32>,   // (n, q_lora_rank)
    q: Vec<f32>,    // (n, n_head * (nope + rope))
    kv: Vec<f32>,   // (n, kv_lora + rope): this step's cache rows
    qcat: Vec<f32>, // (n, n_head, kv_lora + rope): absorbed queries
    lat: Vec<f32>,  // (n, n_head, kv_lora): attention output in latent space
    gin: Vec<f32>,  // (n, max(nope, kv_lora)): one head's inputs gathered
    gout: Vec<f32>, // (n, max(kv_lora, v_dim)): one head's outputs
    att: Vec<f32>,  // (n, n_head * v_dim)
}

impl<'a> MlaLayer<'a> {
    /// Bytes of the block's weights (all read for every token).
    pub fn bytes(&self) -> usize {
        let q = match &self.q {
            QProj::Plain(w) => w.bytes(),
            QProj::Lora { a, norm, b } => a.bytes() + 4 * norm.len() + b.bytes(),
        };
        let heads: usize = self.k_b.iter().chain(&self.v_b).map(HeadMat::bytes).sum();
        q + self.kv_a.bytes() + 4 * self.kv_a_norm.len() + heads + self.wo.bytes()
    }

    /// The mapped matrices (dequantized heads of a legacy `attn_kv_b` are not).
    pub fn linears(&self) -> Vec<&Linear<'a>> {
        let mut v = match &self.q {
            QProj::Plain(w) => vec![w],
            QProj::Lora { a, b, .. } => vec![a, b],
        };
        v.push(&self.kv_a);
        for h in self.k_b.iter().chain(&self.v_b) {
            if let HeadMat::Mapped(l) = h {
                v.push(l);
            }
        }
        v.push(&self.wo);
        v
    }
}

impl MlaLayer<'_> {
    /// Runs the attention block for `n` tokens at positions `pos0..pos0+n`:
    /// `h` is the normed input (n, n_embd), `cs` the (cos, sin) rows of the
    /// positions (n, rope); appends this step's rows to `cache` layer `il`
    /// and writes the projected output (n, n_embd) to `out`.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        s: &MlaShape,
        rms_eps: f32,
        rope: &Rope,
        h: &[f32],
        n: usize,
        cs: &[f32],
        cache: &mut KvCache,
        il: usize,
        b: &mut MlaBuffers,
        mm: &mut Scratch,
        out: &mut [f32],
    ) -> Result<(), ModelError> {
        let (nh, r, qw, cw) = (s.n_head, s.kv_lora_rank, s.q_head(), s.cache_width());
        b.q.resize(n * nh * qw, 0.0);
        b.kv.resize(n * cw, 0.0);
        match &self.q {
            QProj::Plain(wq) => {
                forward_group(&[wq, &self.kv_a], h, n, &mut [&mut b.q, &mut b.kv], mm)?
            }
            QProj::Lora { a, norm: qn, b: wb } => {
                b.qa.resize(n * a.rows, 0.0);
                forward_group(&[a, &self.kv_a], h, n, &mut [&mut b.qa, &mut b.kv], mm)?;
                norm::rms_norm_in_place(&mut b.qa, qn, rms_eps);
                wb.forward(&b.qa, n, &mut b.q, mm)?;
            }
        }
        for (t, row) in b.kv.chunks_exact_mut(cw).enumerate() {
            let (c, k_pe) = row.split_at_mut(r);
            norm::rms_norm_in_place(c, &self.kv_a_norm, rms_eps);
            let cst = &cs[t * s.rope..(t + 1) * s.rope];
            rope.apply(k_pe, s.rope, cst);
            for head in b.q[t * nh * qw..(t + 1) * nh * qw].chunks_exact_mut(qw) {
                rope.apply(&mut head[s.nope..], s.rope, cst);
            }
        }
        // Absorb Wk_b into the queries, head by head, and append q_pe.
        b.qcat.resize(n * nh * cw, 0.0);
        b.gin.resize(n * s.nope.max(r), 0.0);
        b.gout.resize(n * r.max(s.v_dim), 0.0);
        for (hd, kb) in self.k_b.iter().enumerate() {
            let gin = &mut b.gin[..n * s.nope];
            for t in 0..n {
                let src = &b.q[(t * nh + hd) * qw..][..s.nope];
                gin[t * s.nope..(t + 1) * s.nope].copy_from_slice(src);
            }
            let gout = &mut b.gout[..n * r];
            kb.forward(gin, n, gout, mm)?;
            for t in 0..n {
                let dst = &mut b.qcat[(t * nh + hd) * cw..][..cw];
                dst[..r].copy_from_slice(&gout[t * r..(t + 1) * r]);
                dst[r..].copy_from_slice(&b.q[(t * nh + hd) * qw + s.nope..][..s.rope]);
            }
        }
        cache.append(il, &b.kv, &[]);
        let pos0 = cache.len();
        let (kc, _) = cache.layer(il);
        b.lat.resize(n * nh * r, 0.0);
        attend_latent(s, &b.qcat, kc, pos0, &mut b.lat);
        // Decompress the values head by head.
        b.att.resize(n * nh * s.v_dim, 0.0);
        for (hd, vb) in self.v_b.iter().enumerate() {
            let gin = &mut b.gin[..n * r];
            for t in 0..n {
                gin[t * r..(t + 1) * r].copy_from_slice(&b.lat[(t * nh + hd) * r..][..r]);
            }
            let gout = &mut b.gout[..n * s.v_dim];
            vb.forward(gin, n, gout, mm)?;
            for t in 0..n {
                b.att[(t * nh + hd) * s.v_dim..][..s.v_dim]
                    .copy_from_slice(&gout[t * s.v_dim..(t + 1) * s.v_dim]);
            }
        }
        self.wo.forward(&b.att, n, out, mm)
    }
}

/// Causal attention of absorbed queries `q` (n, n_head, kv_lora + rope) over
/// cache rows `kc` (positions 0..pos0+n, kv_lora + rope each): the latent part
/// of a row is its value. Writes (n, n_head, kv_lora) to `out`.
pub fn attend_latent(s: &MlaShape, q: &[f32], kc: &[f32], pos0: usize, out: &mut [f32]) {
    let (nh, r, cw) = (s.n_head, s.kv_lora_rank, s.cache_width());
    let n = q.len() / (nh * cw);
    debug_assert!(kc.len() >= (pos0 + n) * cw);
    debug_assert_eq!(out.len(), n * nh * r);
    let one = |scores: &mut Vec<f32>, idx: usize, o: &mut [f32]| {
        let t = idx / nh;
        let qh = &q[idx * cw..(idx + 1) * cw];
        let n_pos = pos0 + t + 1;
        scores.clear();
        let mut max = f32::NEG_INFINITY;
        for p in 0..n_pos {
            let x = attention::dot(qh, &kc[p * cw..(p + 1) * cw]) * s.scale;
            max = max.max(x);
            scores.push(x);
        }
        let mut sum = 0.0f64;
        for x in scores.iter_mut() {
            *x = (*x - max).exp();
            sum += *x as f64;
        }
        let inv = (1.0 / sum) as f32;
        o.fill(0.0);
        for (p, &w) in scores.iter().enumerate() {
            attention::axpy(w * inv, &kc[p * cw..p * cw + r], o);
        }
    };
    let work = n * nh * (pos0 + n) * cw;
    if work < 1 << 16 || rayon::current_num_threads() == 1 {
        let mut scores = Vec::with_capacity(pos0 + n);
        for (idx, o) in out.chunks_exact_mut(r).enumerate() {
            one(&mut scores, idx, o);
        }
    } else {
        out.par_chunks_exact_mut(r).enumerate().for_each_init(
            || Vec::with_capacity(pos0 + n),
            |scores, (idx, o)| one(scores, idx, o),
        );
    }
}

/// llama.cpp's deepseek2 score scale and rope magnitude under YaRN.
///
/// `freq_scale` is 1/factor (1 without scaling), `yarn` whether YaRN is on,
/// `yarn_log_mul` the file's `rope.scaling.yarn_log_multiplier` (0 if
/// absent; the converter stores 0.1 * mscale_all_dim), `k_head` = nope + rope.
/// Returns (kq_scale, rope attn_factor): llama-context.cpp sets
/// `yarn_attn_factor`, the graph undoes YaRN's magnitude factor and squares
/// `mscale` into the score scale.
pub fn deepseek2_scales(
    freq_scale: f32,
    yarn: bool,
    yarn_log_mul: f32,
    k_head: usize,
) -> (f32, f32) {
    let log_mul = yarn_log_mul / 0.1;
    let factor = 1.0 / freq_scale;
    let get_mscale = |scale: f32, m: f32| {
        if scale <= 1.0 {
            1.0
        } else {
            0.1 * m * scale.ln() + 1.0
        }
    };
    let attn_factor = if yarn {
        let base = if log_mul != 0.0 {
            // deepseek2: mscale = mscale_all_dim unless it is 1, so the ratio is 1.
            let m = if log_mul != 1.0 { log_mul } else { 1.0 };
            get_mscale(factor, m) / get_mscale(factor, log_mul)
        } else {
            get_mscale(factor, 1.0)
        };
        base / (1.0 + 0.1 * factor.ln())
    } else {
        1.0
    };
    let org = attn_factor * (1.0 + 0.1 * factor.ln());
    let mscale = org * (1.0 + 0.1 * log_mul * factor.ln());
    (mscale * mscale / (k_head as f32).sqrt(), attn_factor)
}

/// Dequantizes all of `l` (for tests and the legacy split).
pub fn dequantize_all(l: &Linear<'_>) -> Result<Vec<f32>, ModelError> {
    let mut w = vec![0.0; l.rows * l.cols];
    for (r, row) in w.chunks_exact_mut(l.cols).enumerate() {
        l.row(r, row)?;
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(n: usize, seed: u32) -> Vec<f32> {
        let mut x = seed.wrapping_mul(2654435761).wrapping_add(1);
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x as f32 / u32::MAX as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// The absorbed form equals plain multi-head attention over decompressed
    /// keys `[Wk_b^T c, k_pe]` and values `Wv_b c`.
    #[test]
    fn absorbed_latent_attention_equals_expanded_attention() {
        let s = MlaShape {
            n_head: 3,
            kv_lora_rank: 8,
            nope: 4,
            rope: 2,
            v_dim: 5,
            scale: 0.4,
        };
        let (pos0, n) = (4, 3);
        let n_pos = pos0 + n;
        let cw = s.cache_width();
        let kc = seq(n_pos * cw, 1);
        let q = seq(n * s.n_head * s.q_head(), 2); // [nope, rope] per head
        let wk: Vec<Vec<f32>> = (0..s.n_head).map(|h| seq(8 * 4, 10 + h as u32)).collect(); // (kv_lora, nope)
        let wv: Vec<Vec<f32>> = (0..s.n_head).map(|h| seq(5 * 8, 20 + h as u32)).collect(); // (v_dim, kv_lora)
        // absorbed
        let mut qcat = vec![0.0; n * s.n_head * cw];
        for t in 0..n {
            for h in 0..s.n_head {
                let qh = &q[(t * s.n_head + h) * s.q_head()..][..s.q_head()];
                let dst = &mut qcat[(t * s.n_head + h) * cw..][..cw];
                for c in 0..8 {
                    dst[c] = (0..4).map(|j| wk[h][c * 4 + j] * qh[j]).sum();
                }
                dst[8..].copy_from_slice(&qh[4..]);
            }
        }
        let mut lat = vec![0.0; n * s.n_head * 8];
        attend_latent(&s, &qcat, &kc, pos0, &mut lat);
        for t in 0..n {
            for h in 0..s.n_head {
                let qh = &q[(t * s.n_head + h) * s.q_head()..][..s.q_head()];
                let lh = &lat[(t * s.n_head + h) * 8..][..8];
                let got: Vec<f32> = (0..5)
                    .map(|d| (0..8).map(|c| wv[h][d * 8 + c] * lh[c]).sum())
                    .collect();
                // expanded
                let mut sc = Vec::new();
                for p in 0..=pos0 + t {
                    let row = &kc[p * cw..(p + 1) * cw];
                    let k_nope: Vec<f32> = (0..4)
                        .map(|j| (0..8).map(|c| wk[h][c * 4 + j] * row[c]).sum())
                        .collect();
                    let dot: f32 = (0..4).map(|j| qh[j] * k_nope[j]).sum::<f32>()
                        + qh[4] * row[8]
                        + qh[5] * row[9];
                    sc.push(dot * s.scale);
                }
                let m = sc.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                let e: Vec<f32> = sc.iter().map(|x| (x - m).exp()).collect();
                let z: f32 = e.iter().sum();
                for d in 0..5 {
                    let want: f32 = (0..=pos0 + t)
                        .map(|p| {
                            let row = &kc[p * cw..(p + 1) * cw];
                            let v: f32 = (0..8).map(|c| wv[h][d * 8 + c] * row[c]).sum();
                            e[p] / z * v
                        })
                        .sum();
                    assert!(
                        (got[d] - want).abs() < 1e-5,
                        "t{t} h{h} d{d}: {} vs {want}",
                        got[d]
                    );
                }
            }
        }
    }

    #[test]
    fn scales_without_scaling_are_one_over_sqrt_head() {
        let (kq, af) = deepseek2_scales(1.0, false, 0.0, 192);
        assert!((kq - 1.0 / 192f32.sqrt()).abs() < 1e-7);
        assert_eq!(af, 1.0);
    }

    #[test]
    fn yarn_scales_follow_llama_cpp() {
        // DeepSeek-V3: factor 40, mscale_all_dim 1.0 -> yarn_log_multiplier 0.1.
        let f = 40.0f32;
        let (kq, af) = deepseek2_scales(1.0 / f, true, 0.1, 192);
        let m = 1.0 + 0.1 * f.ln();
        assert!((kq - m * m / 192f32.sqrt()).abs() < 1e-6, "{kq}");
        // the rope table's magnitude (attn_factor * (1 + 0.1 ln f)) is 1
        assert!((af * (1.0 + 0.1 * f.ln()) - 1.0).abs() < 1e-6);
        // DeepSeek-V2-Lite: mscale = mscale_all_dim = 0.707
        let (kq, af) = deepseek2_scales(1.0 / f, true, 0.0707, 192);
        let m = 1.0 + 0.1 * 0.707 * f.ln();
        assert!((kq - m * m / 192f32.sqrt()).abs() < 1e-5, "{kq}");
        assert!((af * (1.0 + 0.1 * f.ln()) - 1.0).abs() < 1e-6);
    }
}
