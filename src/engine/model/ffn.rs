//! Gated feed-forward activation (SwiGLU, Shazeer 2020).

/// `gate = silu(gate) * up`, elementwise: `silu(x) = x / (1 + exp(-x))`
/// (ggml `ggml_vec_swiglu_f32`), on the kernel set's lanes with the
/// softmax's exponential ([`super::attention::swiglu`]).
pub fn swiglu_in_place(gate: &mut [f32], up: &[f32]) {
    super::attention::swiglu(gate, up)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swiglu_matches_the_formula() {
        let mut g = [-2.0f32, 0.0, 1.0, 4.0];
        let u = [1.0f32, 5.0, 2.0, -0.5];
        let want: Vec<f32> = g
            .iter()
            .zip(&u)
            .map(|(&x, &y)| x * (1.0 / (1.0 + (-x).exp())) * y)
            .collect();
        swiglu_in_place(&mut g, &u);
        for (a, b) in g.iter().zip(&want) {
            assert!((a - b).abs() < 1e-6);
        }
        assert_eq!(g[1], 0.0);
    }
}
