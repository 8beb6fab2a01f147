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
        q5_0: dot4_by_dot1!(q5_0_dot1, BlockQ5_0, BlockQ8_0),
        q5_1: dot4_by_dot1!(q5_1_dot1, BlockQ5_1, BlockQ8_1),
        q8_0: Dots {
            dot1: q8_0_dot1,
            dot4: q8_0_dot4,
        },
        q2k: dot4_by_dot1!(scalar::dot_q2k_q8k, BlockQ2K, BlockQ8K),
        q3k: dot4_by_dot1!(scalar::dot_q3k_q8k, BlockQ3K, BlockQ8K),
        q4k: dot4_by_dot1!(q4k_dot1, BlockQ4K, BlockQ8K),
        q5k: dot4_by_dot1!(q5k_dot1, BlockQ5K, BlockQ8K),
        q6k: dot4_by_dot1!(q6k_dot1, BlockQ6K, BlockQ8K),
        q8k: dot4_by_dot1!(q8k_dot1, BlockQ8K, BlockQ8K),
        f32: Dots {
            dot1: f32_dot1,
            dot4: f32_dot4,
        },
        f16: dot4_by_dot1!(f16_dot1, u8, f32),
        bf16: dot4_by_dot1!(bf16_dot1, u8, f32),
        quantize_q8_0: quantize_q8_0,
        quantize_q8_1: quantize_q8_1,
        quantize_q8k: scalar::quantize_row_q8_k,
        iq: super::iq_x86_64::avx2(),
        panel: super::gemm::avx2::kernels(),
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
wrap!(q5_0_dot1, q5_0_dot1_imp, BlockQ5_0, BlockQ8_0, 1);
wrap!(q4k_dot1, q4k_dot1_imp, BlockQ4K, BlockQ8K, 1);
wrap!(q6k_dot1, q6k_dot1_imp, BlockQ6K, BlockQ8K, 1);
wrap!(q5_1_dot1, q5_1_dot1_imp, BlockQ5_1, BlockQ8_1, 1);
wrap!(q5k_dot1, q5k_dot1_imp, BlockQ5K, BlockQ8K, 1);
wrap!(q8k_dot1, q8k_dot1_imp, BlockQ8K, BlockQ8K, 1);
wrap!(f16_dot1, f16_dot1_imp, u8, f32, 1);
wrap!(bf16_dot1, bf16_dot1_imp, u8, f32, 1);
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

// ------------------------------------------------------------- Q5_0

/// 32 bits -> 32 bytes, 0xFF where bit j of `qh` is set.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn bytes_from_bits(qh: [u8; 4]) -> __m256i {
    let x = _mm256_set1_epi32(i32::from_le_bytes(qh));
    let shuf = _mm256_set_epi64x(
        0x0303030303030303,
        0x0202020202020202,
        0x0101010101010101,
        0x0000000000000000,
    );
    let bytes = _mm256_shuffle_epi8(x, shuf);
    let bytes = _mm256_or_si256(bytes, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
    _mm256_cmpeq_epi8(bytes, _mm256_set1_epi64x(-1))
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q5_0_dot1_imp(w: &[BlockQ5_0], y: &[BlockQ8_0]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for (x, y) in w.iter().zip(y) {
        let d = _mm256_set1_ps(f16_mul(x.d, y.d));
        // SAFETY: block fields are fixed-size arrays.
        let (qx, qy) = unsafe { (nibbles(&x.qs), load32(&y.qs)) };
        // Where the fifth bit is clear, OR in 0xF0: the byte reads q - 16.
        let hi = _mm256_andnot_si256(bytes_from_bits(x.qh), _mm256_set1_epi8(0xF0u8 as i8));
        let qx = _mm256_or_si256(qx, hi);
        acc = _mm256_fmadd_ps(d, mul_sum_i8(qx, qy), acc);
    }
    hsum_f32x8(acc)
}

// ------------------------------------------------------------- Q4_K

/// The eight 6-bit scales and mins of a Q4_K/Q5_K block as 16 bytes
/// `[sc0..8, m0..8]` (the packing `scale_min_k4` reads one at a time).
#[inline(always)]
fn k4_scales_mins(q: &[u8; K_SCALE_SIZE]) -> [u32; 4] {
    let a = u32::from_le_bytes([q[0], q[1], q[2], q[3]]);
    let b = u32::from_le_bytes([q[4], q[5], q[6], q[7]]);
    let c = u32::from_le_bytes([q[8], q[9], q[10], q[11]]);
    [
        a & 0x3f3f_3f3f,
        (c & 0x0f0f_0f0f) | (((a >> 6) & 0x0303_0303) << 4),
        b & 0x3f3f_3f3f,
        ((c >> 4) & 0x0f0f_0f0f) | (((b >> 6) & 0x0303_0303) << 4),
    ]
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4k_dot1_imp(w: &[BlockQ4K], y: &[BlockQ8K]) -> f32 {
    let m4 = _mm256_set1_epi8(0x0F);
    // shuffle masks broadcasting i16 element e of each 128-bit half
    let pick = |e: i16| _mm256_set1_epi16(((2 * e + 1) << 8) | (2 * e));
    let picks = [0, 1, 2, 3, 4, 5, 6, 7].map(pick);
    let mut acc = _mm256_setzero_ps();
    let mut summ = 0.0f32;
    for (x, y) in w.iter().zip(y) {
        let u = k4_scales_mins(&x.scales);
        // 16 i16: scales 0..8, then mins 0..8.
        let sm = _mm256_cvtepu8_epi16(_mm_set_epi32(
            u[3] as i32,
            u[2] as i32,
            u[1] as i32,
            u[0] as i32,
        ));
        let scales = _mm256_permute2x128_si256(sm, sm, 0x00);
        let mins = _mm256_extracti128_si256(sm, 1);
        // SAFETY: bsums is 16 i16 (32 bytes).
        let bs = unsafe { _mm256_loadu_si256(y.bsums.as_ptr().cast()) };
        let pairs = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
        let pm = _mm_madd_epi16(mins, pairs);
        let pm = _mm_add_epi32(pm, _mm_unpackhi_epi64(pm, pm));
        let pm = _mm_add_epi32(pm, _mm_shuffle_epi32(pm, 1));
        let mins_sum = _mm_cvtsi128_si32(pm);
        let mut sumi = _mm256_setzero_si256();
        for j in 0..QK_K / 64 {
            // SAFETY: 32-byte loads inside qs (128 bytes) and y.qs (256 bytes).
            let (q4, q8l, q8h) = unsafe {
                (
                    _mm256_loadu_si256(x.qs.as_ptr().add(32 * j).cast()),
                    _mm256_loadu_si256(y.qs.as_ptr().add(64 * j).cast()),
                    _mm256_loadu_si256(y.qs.as_ptr().add(64 * j + 32).cast()),
                )
            };
            let q4l = _mm256_and_si256(q4, m4);
            let q4h = _mm256_and_si256(_mm256_srli_epi16(q4, 4), m4);
            let sc_l = _mm256_shuffle_epi8(scales, picks[2 * j]);
            let sc_h = _mm256_shuffle_epi8(scales, picks[2 * j + 1]);
            let pl = _mm256_madd_epi16(sc_l, _mm256_maddubs_epi16(q4l, q8l));
            let ph = _mm256_madd_epi16(sc_h, _mm256_maddubs_epi16(q4h, q8h));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(pl, ph));
        }
        let d = f16_one(x.d) * y.d;
        summ += f16_one(x.dmin) * y.d * mins_sum as f32;
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum_f32x8(acc) - summ
}

// ------------------------------------------------------------- Q6_K

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q6k_dot1_imp(w: &[BlockQ6K], y: &[BlockQ8K]) -> f32 {
    let m4 = _mm256_set1_epi8(0x0F);
    let m2 = _mm256_set1_epi8(0x03);
    let m32s = _mm256_set1_epi8(32);
    let mut acc = _mm256_setzero_ps();
    for (x, y) in w.iter().zip(y) {
        let mut sumi = _mm256_setzero_si256();
        for n in 0..2 {
            // SAFETY: loads stay inside ql (128), qh (64) and y.qs (256 bytes).
            let (l1, l2, h) = unsafe {
                (
                    _mm256_loadu_si256(x.ql.as_ptr().add(64 * n).cast()),
                    _mm256_loadu_si256(x.ql.as_ptr().add(64 * n + 32).cast()),
                    _mm256_loadu_si256(x.qh.as_ptr().add(32 * n).cast()),
                )
            };
            let q = [
                _mm256_or_si256(
                    _mm256_and_si256(l1, m4),
                    _mm256_slli_epi16(_mm256_and_si256(h, m2), 4),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(l2, m4),
                    _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2), m2), 4),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                    _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 4), m2), 4),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16(l2, 4), m4),
                    _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 6), m2), 4),
                ),
            ];
            for (k, qk) in q.into_iter().enumerate() {
                // SAFETY: as above.
                let q8 = unsafe { _mm256_loadu_si256(y.qs.as_ptr().add(128 * n + 32 * k).cast()) };
                // (q - 32) * q8 = q * q8 - 32 * q8, in i16 pairs.
                let p =
                    _mm256_sub_epi16(_mm256_maddubs_epi16(qk, q8), _mm256_maddubs_epi16(m32s, q8));
                let is = 8 * n + 2 * k;
                let sc = _mm256_set_m128i(
                    _mm_set1_epi16(x.scales[is + 1] as i16),
                    _mm_set1_epi16(x.scales[is] as i16),
                );
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, sc));
            }
        }
        let d = f16_one(x.d) * y.d;
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum_f32x8(acc)
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

// ------------------------------------------------------------- activations

/// Rounds half away from zero, as `f32::round` (and ggml's scalar `roundf`),
/// so the vector quantizers give the scalar ones' bytes exactly.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn round_away(v: __m256) -> __m256 {
    let sign = _mm256_and_ps(v, _mm256_set1_ps(-0.0));
    let a = _mm256_andnot_ps(_mm256_set1_ps(-0.0), v);
    let t = _mm256_round_ps(a, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    // a - t is exact for |a| < 2^23; larger values are already integers.
    let up = _mm256_cmp_ps(_mm256_sub_ps(a, t), _mm256_set1_ps(0.5), _CMP_GE_OQ);
    let r = _mm256_add_ps(t, _mm256_and_ps(up, _mm256_set1_ps(1.0)));
    _mm256_or_ps(r, sign)
}

/// One block of 32 values: its 32 quantized bytes, d, and the byte sum.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn quantize_block32(x: &[f32], qs: &mut [i8; 32]) -> (f32, i32) {
    debug_assert!(x.len() >= 32);
    // SAFETY: the caller passes at least 32 values; loads stay inside them.
    let v = unsafe {
        [
            _mm256_loadu_ps(x.as_ptr()),
            _mm256_loadu_ps(x.as_ptr().add(8)),
            _mm256_loadu_ps(x.as_ptr().add(16)),
            _mm256_loadu_ps(x.as_ptr().add(24)),
        ]
    };
    let abs = _mm256_set1_ps(-0.0);
    let m = _mm256_max_ps(
        _mm256_max_ps(_mm256_andnot_ps(abs, v[0]), _mm256_andnot_ps(abs, v[1])),
        _mm256_max_ps(_mm256_andnot_ps(abs, v[2]), _mm256_andnot_ps(abs, v[3])),
    );
    let m = _mm_max_ps(_mm256_extractf128_ps(m, 1), _mm256_castps256_ps128(m));
    let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    let m = _mm_max_ss(m, _mm_movehdup_ps(m));
    let amax = _mm_cvtss_f32(m);
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let idv = _mm256_set1_ps(id);
    let i = v.map(|v| _mm256_cvtps_epi32(round_away(_mm256_mul_ps(v, idv))));
    // Pack 4 x 8 i32 into 32 i8 in order (packs interleave 128-bit lanes).
    let p01 = _mm256_packs_epi32(i[0], i[1]);
    let p23 = _mm256_packs_epi32(i[2], i[3]);
    let p = _mm256_packs_epi16(p01, p23);
    let p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    // SAFETY: `qs` has 32 bytes.
    unsafe { _mm256_storeu_si256(qs.as_mut_ptr().cast(), p) };
    let s = _mm256_add_epi32(_mm256_add_epi32(i[0], i[1]), _mm256_add_epi32(i[2], i[3]));
    let s = _mm_add_epi32(_mm256_extracti128_si256(s, 1), _mm256_castsi256_si128(s));
    let s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
    (d, _mm_cvtsi128_si32(s))
}

fn quantize_q8_0(x: &[f32], out: &mut [BlockQ8_0]) {
    for (b, x) in out.iter_mut().zip(x.chunks_exact(QK8_0)) {
        // SAFETY: see the wrappers above; `x` has 32 values.
        let (d, _) = unsafe { quantize_block32(x, &mut b.qs) };
        b.d = f16_bytes(d);
    }
}

fn quantize_q8_1(x: &[f32], out: &mut [BlockQ8_1]) {
    for (b, x) in out.iter_mut().zip(x.chunks_exact(QK8_1)) {
        // SAFETY: see the wrappers above; `x` has 32 values.
        let (d, sum) = unsafe { quantize_block32(x, &mut b.qs) };
        b.d = f16_bytes(d);
        b.s = f16_bytes(sum as f32 * d);
    }
}

// ------------------------------------------------------------- Q5_1

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q5_1_dot1_imp(w: &[BlockQ5_1], y: &[BlockQ8_1]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let mut summs = 0.0f32;
    for (x, y) in w.iter().zip(y) {
        summs += f16_mul(x.m, y.s);
        let d = _mm256_set1_ps(f16_mul(x.d, y.d));
        // SAFETY: block fields are fixed-size arrays.
        let (qx, qy) = unsafe { (nibbles(&x.qs), load32(&y.qs)) };
        // The fifth bit: 0x10 where it is set; q stays unsigned (< 32).
        let hi = _mm256_and_si256(bytes_from_bits(x.qh), _mm256_set1_epi8(0x10));
        acc = _mm256_fmadd_ps(d, mul_sum_us8(_mm256_or_si256(qx, hi), qy), acc);
    }
    hsum_f32x8(acc) + summs
}

// ------------------------------------------------------------- Q5_K

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q5k_dot1_imp(w: &[BlockQ5K], y: &[BlockQ8K]) -> f32 {
    let m4 = _mm256_set1_epi8(0x0F);
    let one = _mm256_set1_epi8(1);
    let mut acc = _mm256_setzero_ps();
    let mut summ = 0.0f32;
    for (x, y) in w.iter().zip(y) {
        let mut sumi = _mm256_setzero_si256();
        let mut mins = 0i32;
        // SAFETY: qh is 32 bytes.
        let qh = unsafe { _mm256_loadu_si256(x.qh.as_ptr().cast()) };
        for j in 0..QK_K / 64 {
            let (sc_l, m_l) = scale_min_k4(2 * j, &x.scales);
            let (sc_h, m_h) = scale_min_k4(2 * j + 1, &x.scales);
            mins += m_l as i32 * (y.bsums[4 * j] as i32 + y.bsums[4 * j + 1] as i32);
            mins += m_h as i32 * (y.bsums[4 * j + 2] as i32 + y.bsums[4 * j + 3] as i32);
            // SAFETY: 32-byte loads inside qs (128 bytes) and y.qs (256 bytes).
            let (q4, q8l, q8h) = unsafe {
                (
                    _mm256_loadu_si256(x.qs.as_ptr().add(32 * j).cast()),
                    _mm256_loadu_si256(y.qs.as_ptr().add(64 * j).cast()),
                    _mm256_loadu_si256(y.qs.as_ptr().add(64 * j + 32).cast()),
                )
            };
            // Bit g of qh[e] is the fifth bit of element e of group g;
            // groups 2j and 2j+1 here. Shifting 16-bit lanes then masking
            // per byte keeps each byte's own bit.
            let hl = _mm256_and_si256(shr16(qh, 2 * j), one);
            let hh = _mm256_and_si256(shr16(qh, 2 * j + 1), one);
            let q5l = _mm256_or_si256(_mm256_and_si256(q4, m4), _mm256_slli_epi16(hl, 4));
            let q5h = _mm256_or_si256(
                _mm256_and_si256(_mm256_srli_epi16(q4, 4), m4),
                _mm256_slli_epi16(hh, 4),
            );
            let pl = _mm256_madd_epi16(
                _mm256_set1_epi16(sc_l as i16),
                _mm256_maddubs_epi16(q5l, q8l),
            );
            let ph = _mm256_madd_epi16(
                _mm256_set1_epi16(sc_h as i16),
                _mm256_maddubs_epi16(q5h, q8h),
            );
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(pl, ph));
        }
        let d = f16_one(x.d) * y.d;
        summ += f16_one(x.dmin) * y.d * mins as f32;
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum_f32x8(acc) - summ
}

/// 16-bit lanes shifted right by a run-time count (0..8).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn shr16(x: __m256i, n: usize) -> __m256i {
    _mm256_srl_epi16(x, _mm_cvtsi32_si128(n as i32))
}

// ------------------------------------------------------------- Q8_K

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8k_dot1_imp(w: &[BlockQ8K], y: &[BlockQ8K]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for (x, y) in w.iter().zip(y) {
        let mut sumi = _mm256_setzero_si256();
        for j in 0..QK_K / 32 {
            // SAFETY: 32-byte loads inside both 256-byte qs arrays.
            let (a, b) = unsafe {
                (
                    _mm256_loadu_si256(x.qs.as_ptr().add(32 * j).cast()),
                    _mm256_loadu_si256(y.qs.as_ptr().add(32 * j).cast()),
                )
            };
            // Widened to i16 first: both sides may be -128, which the
            // u8 x i8 trick of the other kernels cannot take.
            let (a_lo, a_hi) = widen_i8(a);
            let (b_lo, b_hi) = widen_i8(b);
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(a_lo, b_lo));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(a_hi, b_hi));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(x.d * y.d), _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum_f32x8(acc)
}

/// 32 i8 -> two vectors of 16 i16.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn widen_i8(x: __m256i) -> (__m256i, __m256i) {
    (
        _mm256_cvtepi8_epi16(_mm256_castsi256_si128(x)),
        _mm256_cvtepi8_epi16(_mm256_extracti128_si256(x, 1)),
    )
}

// ------------------------------------------------------------- F16 / BF16

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16_dot1_imp(w: &[u8], y: &[f32]) -> f32 {
    let n = (w.len() / 2).min(y.len());
    let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: i + 16 <= n keeps the 32-byte and 64-byte loads in bounds.
        let (a0, a1, b0, b1) = unsafe {
            (
                _mm256_cvtph_ps(_mm_loadu_si128(w.as_ptr().add(2 * i).cast())),
                _mm256_cvtph_ps(_mm_loadu_si128(w.as_ptr().add(2 * i + 16).cast())),
                _mm256_loadu_ps(y.as_ptr().add(i)),
                _mm256_loadu_ps(y.as_ptr().add(i + 8)),
            )
        };
        acc0 = _mm256_fmadd_ps(a0, b0, acc0);
        acc1 = _mm256_fmadd_ps(a1, b1, acc1);
        i += 16;
    }
    let mut s = hsum_f32x8(_mm256_add_ps(acc0, acc1));
    for j in i..n {
        s += f16_one([w[2 * j], w[2 * j + 1]]) * y[j];
    }
    s
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn bf16_dot1_imp(w: &[u8], y: &[f32]) -> f32 {
    let n = (w.len() / 2).min(y.len());
    let mut acc = _mm256_setzero_ps();
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n keeps the 16-byte and 32-byte loads in bounds.
        let (h, b) = unsafe {
            (
                _mm_loadu_si128(w.as_ptr().add(2 * i).cast()),
                _mm256_loadu_ps(y.as_ptr().add(i)),
            )
        };
        // bf16 is the top half of an f32.
        let a = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
        acc = _mm256_fmadd_ps(a, b, acc);
        i += 8;
    }
    let mut s = hsum_f32x8(acc);
    for j in i..n {
        s += f32::from_bits((u16::from_le_bytes([w[2 * j], w[2 * j + 1]]) as u32) << 16) * y[j];
    }
    s
}
