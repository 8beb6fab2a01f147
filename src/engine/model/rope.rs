//! Rotary position embeddings (Su et al. 2021) with ggml's conventions:
//! `theta_i = pos * base^(-2i/n_rot) / freq_factor_i`, optionally stretched by
//! linear scaling (`freq_scale`) or YaRN (Peng et al. 2023), rotating either
//! adjacent pairs (normal) or dimension i with i + n_rot/2 (NeoX).
//!
//! The angle is built by repeated multiplication in f32 like
//! `ggml_rope_cache_init`, so positions agree with llama.cpp to the last bit
//! of the angle rather than to a rounding of `powf`.

use crate::engine::arch::RopeStyle;

/// How the context is stretched beyond the trained length.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RopeScaling {
    /// No stretching.
    None,
    /// Positions divided by `factor` (`freq_scale = 1/factor`).
    Linear { factor: f32 },
    /// YaRN with `factor` and the original training context.
    Yarn { factor: f32, orig_ctx: usize },
}

/// A configured rotary embedding for one model.
#[derive(Debug, Clone)]
pub struct Rope {
    /// Pairing of dimensions.
    pub style: RopeStyle,
    /// Rotated dimensions per head (the rest pass through).
    pub n_rot: usize,
    /// theta base.
    pub freq_base: f32,
    freq_scale: f32,
    ext_factor: f32,
    attn_factor: f32,
    corr_dims: [f32; 2],
    /// Per-pair divisors (`rope_freqs.weight`, Llama 3), n_rot/2 values.
    freq_factors: Option<Vec<f32>>,
}

impl Rope {
    /// Builds the rotary embedding; mirrors llama.cpp's `llama_context`
    /// set-up of `yarn_ext_factor` / `yarn_attn_factor` for YaRN.
    pub fn new(
        style: RopeStyle,
        n_rot: usize,
        freq_base: f32,
        scaling: RopeScaling,
        freq_factors: Option<Vec<f32>>,
    ) -> Rope {
        let (freq_scale, ext_factor, attn_factor, corr_dims) = match scaling {
            RopeScaling::None => (1.0, 0.0, 1.0, [0.0, 0.0]),
            RopeScaling::Linear { factor } => (1.0 / factor, 0.0, 1.0, [0.0, 0.0]),
            RopeScaling::Yarn { factor, orig_ctx } => {
                let mscale = if factor <= 1.0 {
                    1.0
                } else {
                    0.1 * factor.ln() + 1.0
                };
                // llama-context.cpp cancels the magnitude factor rope_yarn re-applies.
                let attn = mscale / (1.0 + 0.1 * factor.ln());
                let dims = yarn_corr_dims(n_rot, orig_ctx, freq_base, 32.0, 1.0);
                (1.0 / factor, 1.0, attn, dims)
            }
        };
        Rope {
            style,
            n_rot,
            freq_base,
            freq_scale,
            ext_factor,
            attn_factor,
            corr_dims,
            freq_factors,
        }
    }

    /// Replaces the magnitude factor the (cos, sin) table is scaled by
    /// (llama.cpp's `yarn_attn_factor`; deepseek2 cancels YaRN's own factor
    /// and folds it into the score scale instead).
    pub fn with_attn_factor(mut self, attn_factor: f32) -> Rope {
        self.attn_factor = attn_factor;
        self
    }

    /// Fills `cs` (length n_rot) with interleaved (cos, sin) for position `pos`.
    pub fn cos_sin(&self, pos: usize, cs: &mut [f32]) {
        debug_assert_eq!(cs.len(), self.n_rot);
        let theta_scale = self.freq_base.powf(-2.0 / self.n_rot as f32);
        let mut theta = pos as f32;
        for i0 in (0..self.n_rot).step_by(2) {
            let ff = self.freq_factors.as_ref().map_or(1.0, |f| f[i0 / 2]);
            let theta_extrap = theta / ff;
            let theta_interp = self.freq_scale * theta_extrap;
            let (mut t, mut mscale) = (theta_interp, self.attn_factor);
            if self.ext_factor != 0.0 {
                let ramp_mix =
                    yarn_ramp(self.corr_dims[0], self.corr_dims[1], i0) * self.ext_factor;
                t = theta_interp * (1.0 - ramp_mix) + theta_extrap * ramp_mix;
                mscale *= 1.0 + 0.1 * (1.0 / self.freq_scale).ln();
            }
            cs[i0] = t.cos() * mscale;
            cs[i0 + 1] = t.sin() * mscale;
            theta *= theta_scale;
        }
    }

    /// Rotates every head of one token's vector `x` (n_heads * head_dim) in place,
    /// given the (cos, sin) table of its position.
    pub fn apply(&self, x: &mut [f32], head_dim: usize, cs: &[f32]) {
        let n = self.n_rot;
        for head in x.chunks_exact_mut(head_dim) {
            match self.style {
                RopeStyle::Normal => {
                    for i0 in (0..n).step_by(2) {
                        let (c, s) = (cs[i0], cs[i0 + 1]);
                        let (x0, x1) = (head[i0], head[i0 + 1]);
                        head[i0] = x0 * c - x1 * s;
                        head[i0 + 1] = x0 * s + x1 * c;
                    }
                }
                RopeStyle::Neox => {
                    let half = n / 2;
                    for i0 in (0..n).step_by(2) {
                        let (c, s) = (cs[i0], cs[i0 + 1]);
                        let i = i0 / 2;
                        let (x0, x1) = (head[i], head[i + half]);
                        head[i] = x0 * c - x1 * s;
                        head[i + half] = x0 * s + x1 * c;
                    }
                }
            }
        }
    }
}

/// ggml `rope_yarn_ramp`.
fn yarn_ramp(low: f32, high: f32, i0: usize) -> f32 {
    let y = ((i0 / 2) as f32 - low) / (high - low).max(0.001);
    1.0 - y.clamp(0.0, 1.0)
}

/// ggml `ggml_rope_yarn_corr_dims`: the dimensions where interpolation starts and ends.
fn yarn_corr_dims(
    n_dims: usize,
    n_ctx_orig: usize,
    base: f32,
    beta_fast: f32,
    beta_slow: f32,
) -> [f32; 2] {
    let dim = |n_rot: f32| {
        n_dims as f32 * (n_ctx_orig as f32 / (n_rot * 2.0 * std::f32::consts::PI)).ln()
            / (2.0 * base.ln())
    };
    let start = dim(beta_fast).floor();
    let end = dim(beta_slow).ceil();
    [start.max(0.0), end.min(n_dims as f32 - 1.0)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(rope: &Rope, pos: usize) -> Vec<f32> {
        let mut cs = vec![0.0; rope.n_rot];
        rope.cos_sin(pos, &mut cs);
        cs
    }

    #[test]
    fn position_zero_is_the_identity() {
        for style in [RopeStyle::Normal, RopeStyle::Neox] {
            let rope = Rope::new(style, 8, 10000.0, RopeScaling::None, None);
            let x: Vec<f32> = (0..16).map(|i| i as f32).collect();
            let mut y = x.clone();
            rope.apply(&mut y, 8, &table(&rope, 0));
            assert_eq!(x, y);
        }
    }

    #[test]
    fn normal_rotates_adjacent_pairs_and_neox_rotates_halves() {
        let pos = 3;
        let base = 100.0f32;
        let normal = Rope::new(RopeStyle::Normal, 4, base, RopeScaling::None, None);
        let neox = Rope::new(RopeStyle::Neox, 4, base, RopeScaling::None, None);
        let x = [1.0f32, 2.0, 3.0, 4.0];
        let rot = |x0: f32, x1: f32, th: f32| {
            (x0 * th.cos() - x1 * th.sin(), x0 * th.sin() + x1 * th.cos())
        };
        let th0 = pos as f32;
        let th1 = pos as f32 * base.powf(-0.5);

        let mut y = x;
        normal.apply(&mut y, 4, &table(&normal, pos));
        let (a, b) = rot(1.0, 2.0, th0);
        let (c, d) = rot(3.0, 4.0, th1);
        for (got, want) in y.iter().zip([a, b, c, d]) {
            assert!((got - want).abs() < 1e-5, "{y:?}");
        }

        let mut y = x;
        neox.apply(&mut y, 4, &table(&neox, pos));
        let (a, c) = rot(1.0, 3.0, th0);
        let (b, d) = rot(2.0, 4.0, th1);
        for (got, want) in y.iter().zip([a, b, c, d]) {
            assert!((got - want).abs() < 1e-5, "{y:?}");
        }
    }

    #[test]
    fn rotation_keeps_the_norm_and_dot_products_depend_on_distance() {
        let rope = Rope::new(RopeStyle::Neox, 16, 10000.0, RopeScaling::None, None);
        let q: Vec<f32> = (0..16).map(|i| (i as f32 * 0.7).sin()).collect();
        let k: Vec<f32> = (0..16).map(|i| (i as f32 * 1.3).cos()).collect();
        let dot_at = |pq: usize, pk: usize| {
            let (mut a, mut b) = (q.clone(), k.clone());
            rope.apply(&mut a, 16, &table(&rope, pq));
            rope.apply(&mut b, 16, &table(&rope, pk));
            let n: f32 = a.iter().map(|v| v * v).sum();
            assert!((n - q.iter().map(|v| v * v).sum::<f32>()).abs() < 1e-3);
            a.iter().zip(&b).map(|(x, y)| x * y).sum::<f32>()
        };
        assert!((dot_at(10, 7) - dot_at(23, 20)).abs() < 1e-3);
    }

    #[test]
    fn linear_scaling_divides_the_position() {
        let plain = Rope::new(RopeStyle::Normal, 8, 10000.0, RopeScaling::None, None);
        let lin = Rope::new(
            RopeStyle::Normal,
            8,
            10000.0,
            RopeScaling::Linear { factor: 4.0 },
            None,
        );
        let a = table(&plain, 2);
        let b = table(&lin, 8);
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-5);
        }
    }
}
