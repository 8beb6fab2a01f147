//! AVX2 + FMA + F16C kernels (x86_64).
//!
//! Every `unsafe fn` here carries `#[target_feature]`; the safe wrappers are
//! private and reachable only through the table returned by [`avx2`], which
//! is built after runtime detection of all three features.

use std::arch::x86_64::*;

use super::{Dots, Kernels, dot4_by_dot1, scalar};
use crate::engine::quant::*;

/// The AVX2+FMA kernel set, if this CPU has AVX2, FMA and F16C.
pub fn avx2() -> Option<Kernels> {
    if !(is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c"))
    {
        return None;
    }
    Some(Kernels {
        name: "avx2-fma",
        q4_0: Dots {
            dot1: q4_0_dot1,
            dot4: q4_0_dot4,
        },
        q4_1: Dots {
            dot1: q4_1_dot1,
            dot4: q4_1_dot4,
        },
        q5_0: dot4_by_dot1!(scalar::dot_q5_0_q8_0, BlockQ5_0, BlockQ8_0),
        q5_1: dot4_by_dot1!(scalar::dot_q5_1_q8_1, BlockQ5_1, BlockQ8_1),
        q8_0: Dots {
            dot1: q8_0_dot1,
            dot4: q8_0_dot4,
        },
        q2k: dot4_by_dot1!(scalar::dot_q2k_q8k, BlockQ2K, BlockQ8K),
        q3k: dot4_by_dot1!(scalar::dot_q3k_q8k, BlockQ3K, BlockQ8K),
        q4k: dot4_by_dot1!(scalar::dot_q4k_q8k, BlockQ4K, BlockQ8K),
        q5k: dot4_by_dot1!(scalar::dot_q5k_q8k, BlockQ5K, BlockQ8K),
        q6k: dot4_by_dot1!(scalar::dot_q6k_q8k, BlockQ6K, BlockQ8K),
        q8k: dot4_by_dot1!(scalar::dot_q8k_q8k, BlockQ8K, BlockQ8K),
        f32: Dots {
            dot1: f32_dot1,
            dot4: f32_dot4,
        },
        quantize_q8_0: scalar::quantize_row_q8_0,
        quantize_q8_1: scalar::quantize_row_q8_1,
    })
}

// Safe wrappers. SAFETY (all of them): only installed in the table built by
// `avx2()`, after detecting avx2, fma and f16c.
macro_rules! wrap {
    ($name:ident, $imp:ident, $w:ty, $a:ty, 1) => {
        fn $name(w: &[$w], y: &[$a]) -> f32 {
            // SAFETY: see above; the implementation indexes only within
            // `w.iter().zip(y)`.
            unsafe { $imp(w, y) }
        }
    };
    ($name:ident, $imp:ident, $w:ty, $a:ty, 4) => {
        fn $name(w: &[$w], y: [&[$a]; 4]) -> [f32; 4] {
            // SAFETY: see above; the implementation indexes only within the
            // shortest of `w` and the four `y`s.
            unsafe { $imp(w, y) }
        }
    };
}

wrap!(q4_0_dot1, q4_0_dot1_imp, BlockQ4_0, BlockQ8_0, 1);
wrap!(q4_0_dot4, q4_0_dot4_imp, BlockQ4_0, BlockQ8_0, 4);
wrap!(q4_1_dot1, q4_1_dot1_imp, BlockQ4_1, BlockQ8_1, 1);
wrap!(q4_1_dot4, q4_1_dot4_imp, BlockQ4_1, BlockQ8_1, 4);
wrap!(q8_0_dot1, q8_0_dot1_imp, BlockQ8_0, BlockQ8_0, 1);
wrap!(q8_0_dot4, q8_0_dot4_imp, BlockQ8_0, BlockQ8_0, 4);
wrap!(f32_dot1, f32_dot1_imp, u8, f32, 1);
wrap!(f32_dot4, f32_dot4_imp, u8, f32, 4);

// ------------------------------------------------------------- helpers

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn hsum_f32x8(x: __m256) -> f32 {
    let r = _mm_add_ps(_mm256_extractf128_ps(x, 1), _mm256_castps256_ps128(x));
    let r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    let r = _mm_add_ss(r, _mm_movehdup_ps(r));
    _mm_cvtss_f32(r)
}

/// Two f16 scales converted at once: returns f32(a) * f32(b).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn f16_mul(a: [u8; 2], b: [u8; 2]) -> f32 {
    let v = _mm_cvtph_ps(_mm_set_epi16(
        0,
        0,
        0,
        0,
        0,
        0,
        i16::from_le_bytes(b),
        i16::from_le_bytes(a),
    ));
    let hi = _mm_movehdup_ps(v);
    _mm_cvtss_f32(_mm_mul_ss(v, hi))
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn f16_one(a: [u8; 2]) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_set1_epi16(i16::from_le_bytes(a))))
}

/// 16 packed nibble bytes -> 32 bytes: low nibbles in lanes 0..16, high
/// nibbles in lanes 16..32 (ggml's element order).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn nibbles(qs: &[u8; 16]) -> __m256i {
    // SAFETY: 16 readable bytes.
    let t = unsafe { _mm_loadu_si128(qs.as_ptr().cast()) };
    let b = _mm256_insertf128_si256(_mm256_castsi128_si256(t), _mm_srli_epi16(t, 4), 1);
    _mm256_and_si256(b, _mm256_set1_epi8(0x0F))
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load32(q: &[i8; 32]) -> __m256i {
    // SAFETY: 32 readable bytes.
    unsafe { _mm256_loadu_si256(q.as_ptr().cast()) }
}

/// Sum of u8 x i8 products in groups of 8, as eight f32 lanes (x unsigned < 128).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn mul_sum_us8(x: __m256i, y: __m256i) -> __m256 {
    let dot = _mm256_maddubs_epi16(x, y);
    _mm256_cvtepi32_ps(_mm256_madd_epi16(dot, _mm256_set1_epi16(1)))
}

/// Sum of i8 x i8 products in groups of 8, as eight f32 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn mul_sum_i8(x: __m256i, y: __m256i) -> __m256 {
    let ax = _mm256_sign_epi8(x, x);
    let sy = _mm256_sign_epi8(y, x);
    mul_sum_us8(ax, sy)
}

// ------------------------------------------------------------- Q4_0

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_0_dot1_imp(w: &[BlockQ4_0], y: &[BlockQ8_0]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for (x, y) in w.iter().zip(y) {
        let d = _mm256_set1_ps(f16_mul(x.d, y.d));
        // SAFETY: block fields are fixed-size arrays.
        let (qx, qy) = unsafe { (nibbles(&x.qs), load32(&y.qs)) };
        let qx = _mm256_sub_epi8(qx, _mm256_set1_epi8(8));
        acc = _mm256_fmadd_ps(d, mul_sum_i8(qx, qy), acc);
    }
    hsum_f32x8(acc)
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_0_dot4_imp(w: &[BlockQ4_0], y: [&[BlockQ8_0]; 4]) -> [f32; 4] {
    let n = w.len().min(y.iter().map(|y| y.len()).min().unwrap());
    let mut acc = [_mm256_setzero_ps(); 4];
    for (i, x) in w[..n].iter().enumerate() {
        // SAFETY: block fields are fixed-size arrays.
        let qx = unsafe { nibbles(&x.qs) };
        let qx = _mm256_sub_epi8(qx, _mm256_set1_epi8(8));
        // |qx| and its sign are shared by the four tokens.
        let ax = _mm256_sign_epi8(qx, qx);
        let dx = f16_one(x.d);
        for t in 0..4 {
            let yb = &y[t][i];
            // SAFETY: as above.
            let qy = unsafe { load32(&yb.qs) };
            let sy = _mm256_sign_epi8(qy, qx);
            let d = _mm256_set1_ps(dx * f16_one(yb.d));
            acc[t] = _mm256_fmadd_ps(d, mul_sum_us8(ax, sy), acc[t]);
        }
    }
    acc.map(|a| hsum_f32x8(a))
}

// ------------------------------------------------------------- Q4_1

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_1_dot1_imp(w: &[BlockQ4_1], y: &[BlockQ8_1]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let mut summs = 0.0f32;
    for (x, y) in w.iter().zip(y) {
        summs += f16_mul(x.m, y.s);
        let d = _mm256_set1_ps(f16_mul(x.d, y.d));
        // SAFETY: block fields are fixed-size arrays.
        let (qx, qy) = unsafe { (nibbles(&x.qs), load32(&y.qs)) };
        acc = _mm256_fmadd_ps(d, mul_sum_us8(qx, qy), acc);
    }
    hsum_f32x8(acc) + summs
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_1_dot4_imp(w: &[BlockQ4_1], y: [&[BlockQ8_1]; 4]) -> [f32; 4] {
    let n = w.len().min(y.iter().map(|y| y.len()).min().unwrap());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut summs = [0.0f32; 4];
    for (i, x) in w[..n].iter().enumerate() {
        // SAFETY: block fields are fixed-size arrays.
        let qx = unsafe { nibbles(&x.qs) };
        let (dx, mx) = (f16_one(x.d), f16_one(x.m));
        for t in 0..4 {
            let yb = &y[t][i];
            // SAFETY: as above.
            let qy = unsafe { load32(&yb.qs) };
            summs[t] += mx * f16_one(yb.s);
            let d = _mm256_set1_ps(dx * f16_one(yb.d));
            acc[t] = _mm256_fmadd_ps(d, mul_sum_us8(qx, qy), acc[t]);
        }
    }
    [0, 1, 2, 3].map(|t| hsum_f32x8(acc[t]) + summs[t])
}

// ------------------------------------------------------------- Q8_0

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_0_dot1_imp(w: &[BlockQ8_0], y: &[BlockQ8_0]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for (x, y) in w.iter().zip(y) {
        let d = _mm256_set1_ps(f16_mul(x.d, y.d));
        // SAFETY: block fields are fixed-size arrays.
        let (qx, qy) = unsafe { (load32(&x.qs), load32(&y.qs)) };
        acc = _mm256_fmadd_ps(d, mul_sum_i8(qx, qy), acc);
    }
    hsum_f32x8(acc)
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_0_dot4_imp(w: &[BlockQ8_0], y: [&[BlockQ8_0]; 4]) -> [f32; 4] {
    let n = w.len().min(y.iter().map(|y| y.len()).min().unwrap());
    let mut acc = [_mm256_setzero_ps(); 4];
    for (i, x) in w[..n].iter().enumerate() {
        // SAFETY: block fields are fixed-size arrays.
        let qx = unsafe { load32(&x.qs) };
        let ax = _mm256_sign_epi8(qx, qx);
        let dx = f16_one(x.d);
        for t in 0..4 {
            let yb = &y[t][i];
            // SAFETY: as above.
            let qy = unsafe { load32(&yb.qs) };
            let sy = _mm256_sign_epi8(qy, qx);
            let d = _mm256_set1_ps(dx * f16_one(yb.d));
            acc[t] = _mm256_fmadd_ps(d, mul_sum_us8(ax, sy), acc[t]);
        }
    }
    acc.map(|a| hsum_f32x8(a))
}

// ------------------------------------------------------------- F32

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f32_dot1_imp(w: &[u8], y: &[f32]) -> f32 {
    let n = (w.len() / 4).min(y.len());
    let mut acc = _mm256_setzero_ps();
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n keeps both 32-byte loads in bounds.
        let (a, b) = unsafe {
            (
                _mm256_loadu_ps(w.as_ptr().add(4 * i).cast()),
                _mm256_loadu_ps(y.as_ptr().add(i)),
            )
        };
        acc = _mm256_fmadd_ps(a, b, acc);
        i += 8;
    }
    let mut s = hsum_f32x8(acc);
    for j in i..n {
        s += f32::from_le_bytes(w[4 * j..4 * j + 4].try_into().unwrap()) * y[j];
    }
    s
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f32_dot4_imp(w: &[u8], y: [&[f32]; 4]) -> [f32; 4] {
    // SAFETY: same contract as the single-token kernel.
    y.map(|y| unsafe { f32_dot1_imp(w, y) })
}
