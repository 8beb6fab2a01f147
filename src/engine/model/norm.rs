//! RMSNorm (Zhang & Sennrich 2019), as ggml's `rms_norm` then `mul` by weight.

/// `y = x / sqrt(mean(x^2) + eps) * w`, row by row over `x` (rows of `w.len()`).
///
/// The sum of squares is kept in f64 like ggml's `ggml_float` accumulator.
pub fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let n = w.len();
    debug_assert_eq!(x.len(), out.len());
    debug_assert_eq!(x.len() % n, 0);
    for (xr, or) in x.chunks_exact(n).zip(out.chunks_exact_mut(n)) {
        let scale = rms_scale(xr, eps);
        for ((o, &v), &g) in or.iter_mut().zip(xr).zip(w) {
            *o = v * scale * g;
        }
    }
}

/// Same as [`rms_norm`] but in place.
pub fn rms_norm_in_place(x: &mut [f32], w: &[f32], eps: f32) {
    let n = w.len();
    debug_assert_eq!(x.len() % n, 0);
    for xr in x.chunks_exact_mut(n) {
        let scale = rms_scale(xr, eps);
        for (v, &g) in xr.iter_mut().zip(w) {
            *v = *v * scale * g;
        }
    }
}

fn rms_scale(x: &[f32], eps: f32) -> f32 {
    let sum: f64 = x.iter().map(|&v| (v * v) as f64).sum();
    let mean = (sum / x.len() as f64) as f32;
    1.0 / (mean + eps).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rms_norm_of_a_constant_row_is_the_weight() {
        let x = [3.0f32; 8];
        let w: Vec<f32> = (0..8).map(|i| i as f32 * 0.5).collect();
        let mut out = [0.0f32; 8];
        rms_norm(&x, &w, 0.0, &mut out);
        for (o, g) in out.iter().zip(&w) {
            assert!((o - g).abs() < 1e-6, "{o} vs {g}");
        }
    }

    #[test]
    fn rms_norm_works_row_by_row_and_in_place_agrees() {
        let x: Vec<f32> = (0..12).map(|i| (i as f32 - 5.5) * 0.3).collect();
        let w = [1.0f32, 2.0, 0.5, -1.0];
        let mut out = vec![0.0; 12];
        rms_norm(&x, &w, 1e-5, &mut out);
        for (r, row) in x.chunks(4).enumerate() {
            let ms = row.iter().map(|v| v * v).sum::<f32>() / 4.0;
            for i in 0..4 {
                let want = row[i] / (ms + 1e-5).sqrt() * w[i];
                assert!((out[r * 4 + i] - want).abs() < 1e-5);
            }
        }
        let mut y = x.clone();
        rms_norm_in_place(&mut y, &w, 1e-5);
        assert_eq!(y, out);
    }
}
