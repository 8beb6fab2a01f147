//! AVX2 + FMA + F16C kernels for the IQ types and MXFP4 (one per type; a
//! four-token tile for IQ4_NL and MXFP4).
//!
//! 16-entry value tables (IQ4_NL, IQ4_XS, MXFP4) are looked up with
//! `_mm256_shuffle_epi8`; grid types gather 8-byte (or 4-byte) grid rows
//! into a vector and apply signs with `_mm256_sign_epi8`. Every `unsafe fn`
//! carries `#[target_feature]`; the safe wrappers below are reachable only
//! through the table returned by [`avx2`], which `x86_64::avx2` installs
//! after detecting avx2, fma and f16c.

use std::arch::x86_64::*;

use super::iq::IqKernels;
use super::{Dots, dot4_by_dot1};
use crate::engine::quant::iq_grids::*;
use crate::engine::quant::*;

/// The AVX2 IQ set. Only called by `x86_64::avx2` after feature detection.
pub(super) fn avx2() -> IqKernels {
    IqKernels {
        iq4_nl: Dots {
            dot1: iq4_nl_dot1,
            dot4: iq4_nl_dot4,
            ..dot4_by_dot1!(iq4_nl_dot1, BlockIQ4NL, BlockQ8_0)
        },
        mxfp4: Dots {
            dot1: mxfp4_dot1,
            dot4: mxfp4_dot4,
            ..dot4_by_dot1!(mxfp4_dot1, BlockMXFP4, BlockQ8_0)
        },
        iq4_xs: dot4_by_dot1!(iq4_xs_dot1, BlockIQ4XS, BlockQ8K),
        iq3_xxs: dot4_by_dot1!(iq3_xxs_dot1, BlockIQ3XXS, BlockQ8K),
        iq3_s: dot4_by_dot1!(iq3_s_dot1, BlockIQ3S, BlockQ8K),
        iq2_xxs: dot4_by_dot1!(iq2_xxs_dot1, BlockIQ2XXS, BlockQ8K),
        iq2_xs: dot4_by_dot1!(iq2_xs_dot1, BlockIQ2XS, BlockQ8K),
        iq2_s: dot4_by_dot1!(iq2_s_dot1, BlockIQ2S, BlockQ8K),
        iq1_s: dot4_by_dot1!(iq1_s_dot1, BlockIQ1S, BlockQ8K),
        iq1_m: dot4_by_dot1!(iq1_m_dot1, BlockIQ1M, BlockQ8K),
    }
}

// Safe wrappers. SAFETY (all of them): only installed in the table built by
// `avx2()`, which `x86_64::avx2` calls after detecting avx2, fma and f16c;
// the implementations index only within `w.iter().zip(y)` (or the shortest
// of `w` and the four `y`s) and inside fixed-size block fields.
macro_rules! wrap {
    ($name:ident, $imp:ident, $w:ty, $a:ty, 1) => {
        fn $name(w: &[$w], y: &[$a]) -> f32 {
            // SAFETY: see above.
            unsafe { $imp(w, y) }
        }
    };
    ($name:ident, $imp:ident, $w:ty, $a:ty, 4) => {
        fn $name(w: &[$w], y: [&[$a]; 4]) -> [f32; 4] {
            // SAFETY: see above.
            unsafe { $imp(w, y) }
        }
    };
}

wrap!(iq4_nl_dot1, iq4_nl_dot1_imp, BlockIQ4NL, BlockQ8_0, 1);
wrap!(iq4_nl_dot4, iq4_nl_dot4_imp, BlockIQ4NL, BlockQ8_0, 4);
wrap!(mxfp4_dot1, mxfp4_dot1_imp, BlockMXFP4, BlockQ8_0, 1);
wrap!(mxfp4_dot4, mxfp4_dot4_imp, BlockMXFP4, BlockQ8_0, 4);
wrap!(iq4_xs_dot1, iq4_xs_dot1_imp, BlockIQ4XS, BlockQ8K, 1);
wrap!(iq2_xxs_dot1, iq2_xxs_dot1_imp, BlockIQ2XXS, BlockQ8K, 1);
wrap!(iq3_xxs_dot1, iq3_xxs_dot1_imp, BlockIQ3XXS, BlockQ8K, 1);
wrap!(iq1_s_dot1, iq1_s_dot1_imp, BlockIQ1S, BlockQ8K, 1);
wrap!(iq2_xs_dot1, iq2_xs_dot1_imp, BlockIQ2XS, BlockQ8K, 1);
wrap!(iq2_s_dot1, iq2_s_dot1_imp, BlockIQ2S, BlockQ8K, 1);
wrap!(iq3_s_dot1, iq3_s_dot1_imp, BlockIQ3S, BlockQ8K, 1);
wrap!(iq1_m_dot1, iq1_m_dot1_imp, BlockIQ1M, BlockQ8K, 1);

// ------------------------------------------------------------- helpers

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn hsum_f32x8(x: __m256) -> f32 {
    let r = _mm_add_ps(_mm256_extractf128_ps(x, 1), _mm256_castps256_ps128(x));
    let r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    let r = _mm_add_ss(r, _mm_movehdup_ps(r));
    _mm_cvtss_f32(r)
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn f16_one(a: [u8; 2]) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_set1_epi16(i16::from_le_bytes(a))))
}

/// i16 pair sums of x * y for signed bytes (|x|, |y| <= 127).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn mul_add_i8(x: __m256i, y: __m256i) -> __m256i {
    _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x))
}

/// 16 packed nibbles looked up in a 16-entry byte table: lanes 0..16 from
/// the low nibbles, 16..32 from the high nibbles.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn lookup_nibbles(qs: &[u8], table: __m128i) -> __m256i {
    debug_assert!(qs.len() >= 16);
    // SAFETY: callers pass at least 16 readable bytes.
    let q = unsafe { _mm_loadu_si128(qs.as_ptr().cast()) };
    let m4 = _mm_set1_epi8(0x0F);
    let lo = _mm_shuffle_epi8(table, _mm_and_si128(q, m4));
    let hi = _mm_shuffle_epi8(table, _mm_and_si128(_mm_srli_epi16(q, 4), m4));
    _mm256_set_m128i(hi, lo)
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn table16(t: &[i8; 16]) -> __m128i {
    // SAFETY: 16 readable bytes.
    unsafe { _mm_loadu_si128(t.as_ptr().cast()) }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load32(q: &[i8]) -> __m256i {
    debug_assert!(q.len() >= 32);
    // SAFETY: callers pass at least 32 readable bytes.
    unsafe { _mm256_loadu_si256(q.as_ptr().cast()) }
}

/// KSIGNS_IQ2XS expanded to 8 bytes of +1 / -1 (as 0x01 / 0xFF) per entry,
/// for `_mm256_sign_epi8`.
static SIGNS8: [u64; 128] = {
    let mut t = [0u64; 128];
    let mut i = 0;
    while i < 128 {
        let s = KSIGNS_IQ2XS[i];
        let mut v = 0u64;
        let mut j = 0;
        while j < 8 {
            let b: u64 = if (s >> j) & 1 == 1 { 0xFF } else { 0x01 };
            v |= b << (8 * j);
            j += 1;
        }
        t[i] = v;
        i += 1;
    }
    t
};

/// The four sign groups of a 7-bit-per-8 sign word, as +1/-1 bytes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn signs4(aux: u32) -> __m256i {
    let s = |l: u32| SIGNS8[((aux >> (7 * l)) & 127) as usize] as i64;
    _mm256_set_epi64x(s(3), s(2), s(1), s(0))
}

// ------------------------------------------------------------- IQ4_NL / MXFP4

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn iq4_nl_dot1_imp(w: &[BlockIQ4NL], y: &[BlockQ8_0]) -> f32 {
    // SAFETY: fixed-size table and block fields.
    let values = unsafe { table16(&KVALUES_IQ4NL) };
    let ones = _mm256_set1_epi16(1);
    let mut acc = _mm256_setzero_ps();
    for (x, y) in w.iter().zip(y) {
        // SAFETY: as above.
        let (qx, qy) = unsafe { (lookup_nibbles(&x.qs, values), load32(&y.qs)) };
        let p = _mm256_madd_epi16(mul_add_i8(qx, qy), ones);
        let d = _mm256_set1_ps(f16_one(x.d) * f16_one(y.d));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), acc);
    }
    hsum_f32x8(acc)
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn iq4_nl_dot4_imp(w: &[BlockIQ4NL], y: [&[BlockQ8_0]; 4]) -> [f32; 4] {
    let n = w.len().min(y.iter().map(|y| y.len()).min().unwrap());
    // SAFETY: fixed-size table.
    let values = unsafe { table16(&KVALUES_IQ4NL) };
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_ps(); 4];
    for (i, x) in w[..n].iter().enumerate() {
        // SAFETY: fixed-size block field.
        let qx = unsafe { lookup_nibbles(&x.qs, values) };
        let ax = _mm256_sign_epi8(qx, qx);
        let dx = f16_one(x.d);
        for t in 0..4 {
            let yb = &y[t][i];
            // SAFETY: fixed-size block field.
            let qy = unsafe { load32(&yb.qs) };
            let p = _mm256_madd_epi16(_mm256_maddubs_epi16(ax, _mm256_sign_epi8(qy, qx)), ones);
            let d = _mm256_set1_ps(dx * f16_one(yb.d));
            acc[t] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), acc[t]);
        }
    }
    acc.map(|a| hsum_f32x8(a))
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn mxfp4_dot1_imp(w: &[BlockMXFP4], y: &[BlockQ8_0]) -> f32 {
    // SAFETY: fixed-size table and block fields.
    let values = unsafe { table16(&KVALUES_MXFP4) };
    let ones = _mm256_set1_epi16(1);
    let mut acc = _mm256_setzero_ps();
    for (x, y) in w.iter().zip(y) {
        // SAFETY: as above.
        let (qx, qy) = unsafe { (lookup_nibbles(&x.qs, values), load32(&y.qs)) };
        let p = _mm256_madd_epi16(mul_add_i8(qx, qy), ones);
        let d = _mm256_set1_ps(e8m0_to_f32_half(x.e) * f16_one(y.d));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), acc);
    }
    hsum_f32x8(acc)
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn mxfp4_dot4_imp(w: &[BlockMXFP4], y: [&[BlockQ8_0]; 4]) -> [f32; 4] {
    let n = w.len().min(y.iter().map(|y| y.len()).min().unwrap());
    // SAFETY: fixed-size table.
    let values = unsafe { table16(&KVALUES_MXFP4) };
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_ps(); 4];
    for (i, x) in w[..n].iter().enumerate() {
        // SAFETY: fixed-size block field.
        let qx = unsafe { lookup_nibbles(&x.qs, values) };
        let ax = _mm256_sign_epi8(qx, qx);
        let dx = e8m0_to_f32_half(x.e);
        for t in 0..4 {
            let yb = &y[t][i];
            // SAFETY: fixed-size block field.
            let qy = unsafe { load32(&yb.qs) };
            let p = _mm256_madd_epi16(_mm256_maddubs_epi16(ax, _mm256_sign_epi8(qy, qx)), ones);
            let d = _mm256_set1_ps(dx * f16_one(yb.d));
            acc[t] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), acc[t]);
        }
    }
    acc.map(|a| hsum_f32x8(a))
}

// ------------------------------------------------------------- IQ4_XS

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn iq4_xs_dot1_imp(w: &[BlockIQ4XS], y: &[BlockQ8K]) -> f32 {
    // SAFETY: fixed-size table.
    let values = unsafe { table16(&KVALUES_IQ4NL) };
    let mut acc = _mm256_setzero_ps();
    for (x, y) in w.iter().zip(y) {
        let mut sumi = _mm256_setzero_si256();
        for ib in 0..8 {
            // SAFETY: 16 bytes inside qs (128), 32 inside y.qs (256).
            let (qx, qy) = unsafe {
                (
                    lookup_nibbles(&x.qs[16 * ib..], values),
                    load32(&y.qs[32 * ib..]),
                )
            };
            let ls = _mm256_set1_epi16((iq4xs_scale(x, ib) - 32) as i16);
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(mul_add_i8(qx, qy), ls));
        }
        let d = _mm256_set1_ps(f16_one(x.d) * y.d);
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum_f32x8(acc)
}

// ------------------------------------------------------------- IQ2_XXS

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn iq2_xxs_dot1_imp(w: &[BlockIQ2XXS], y: &[BlockQ8K]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for (x, y) in w.iter().zip(y) {
        let mut sumi = _mm256_setzero_si256();
        for ib in 0..8 {
            let g = |l: usize| u64::from_le_bytes(IQ2XXS_GRID[x.qs[8 * ib + l] as usize]) as i64;
            let grid = _mm256_set_epi64x(g(3), g(2), g(1), g(0));
            let aux = u32_at(&x.qs, 2 * ib + 1);
            // SAFETY: 32 bytes inside y.qs (256).
            let q8 = unsafe { load32(&y.qs[32 * ib..]) };
            let q8s = _mm256_sign_epi8(q8, signs4(aux));
            let dot = _mm256_maddubs_epi16(grid, q8s);
            let ls = _mm256_set1_epi16((2 * (aux >> 28) + 1) as i16);
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(dot, ls));
        }
        let d = _mm256_set1_ps(f16_one(x.d) * y.d);
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
    }
    0.125 * hsum_f32x8(acc)
}

// ------------------------------------------------------------- IQ3_XXS

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn iq3_xxs_dot1_imp(w: &[BlockIQ3XXS], y: &[BlockQ8K]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for (x, y) in w.iter().zip(y) {
        let mut sumi = _mm256_setzero_si256();
        for ib in 0..8 {
            let g = |k: usize| u32::from_le_bytes(IQ3XXS_GRID[x.qs[8 * ib + k] as usize]) as i32;
            let grid = _mm256_set_epi32(g(7), g(6), g(5), g(4), g(3), g(2), g(1), g(0));
            let aux = u32_at(&x.qs[QK_K / 4..], ib);
            // SAFETY: 32 bytes inside y.qs (256).
            let q8 = unsafe { load32(&y.qs[32 * ib..]) };
            let q8s = _mm256_sign_epi8(q8, signs4(aux));
            let dot = _mm256_maddubs_epi16(grid, q8s);
            let ls = _mm256_set1_epi16((2 * (aux >> 28) + 1) as i16);
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(dot, ls));
        }
        let d = _mm256_set1_ps(f16_one(x.d) * y.d);
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
    }
    0.25 * hsum_f32x8(acc)
}

// ------------------------------------------------------------- IQ1_S

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn iq1_s_dot1_imp(w: &[BlockIQ1S], y: &[BlockQ8K]) -> f32 {
    let ones8 = _mm256_set1_epi8(1);
    let mut sumf = 0.0f32;
    for (x, y) in w.iter().zip(y) {
        let mut sumi = _mm256_setzero_si256();
        let mut sumi1 = 0i32;
        for ib in 0..8 {
            let qh = u16_at(&x.qh, ib);
            let g = |l: usize| {
                let idx = x.qs[4 * ib + l] as usize | (((qh >> (3 * l)) & 7) as usize) << 8;
                u64::from_le_bytes(IQ1S_GRID[idx].map(|v| v as u8)) as i64
            };
            let grid = _mm256_set_epi64x(g(3), g(2), g(1), g(0));
            // SAFETY: 32 bytes inside y.qs (256).
            let q8 = unsafe { load32(&y.qs[32 * ib..]) };
            // grid in {-1, 0, 1}: sign() multiplies q8 by it.
            let prod = _mm256_sign_epi8(q8, grid);
            let dot = _mm256_maddubs_epi16(ones8, prod);
            let ls = (2 * ((qh >> 12) & 7) + 1) as i32;
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(dot, _mm256_set1_epi16(ls as i16)));
            let ysum = y.bsums[2 * ib] as i32 + y.bsums[2 * ib + 1] as i32;
            sumi1 += ls * if qh & 0x8000 != 0 { -ysum } else { ysum };
        }
        let isum = hsum_f32x8(_mm256_cvtepi32_ps(sumi));
        sumf += f16_one(x.d) * y.d * (isum + IQ1S_DELTA * sumi1 as f32);
    }
    sumf
}

/// A sign byte expanded to 8 bytes of +1 / -1 (0x01 / 0xFF), for `_mm256_sign_epi8`.
static SIGN_BYTES: [u64; 256] = {
    let mut t = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let mut v = 0u64;
        let mut j = 0;
        while j < 8 {
            let b: u64 = if (i >> j) & 1 == 1 { 0xFF } else { 0x01 };
            v |= b << (8 * j);
            j += 1;
        }
        t[i] = v;
        i += 1;
    }
    t
};

/// i16 multipliers: `lo` for lanes 0..8 (weights 0..16 of a 32), `hi` for 8..16.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn scales_16(lo: i32, hi: i32) -> __m256i {
    _mm256_set_m128i(_mm_set1_epi16(hi as i16), _mm_set1_epi16(lo as i16))
}

// ------------------------------------------------------------- IQ2_XS / IQ2_S

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn iq2_xs_dot1_imp(w: &[BlockIQ2XS], y: &[BlockQ8K]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for (x, y) in w.iter().zip(y) {
        let mut sumi = _mm256_setzero_si256();
        for ib in 0..8 {
            let q = |l: usize| u16_at(&x.qs, 4 * ib + l);
            let g = |l: usize| u64::from_le_bytes(IQ2XS_GRID[(q(l) & 511) as usize]) as i64;
            let sg = |l: usize| SIGN_BYTES[KSIGNS_IQ2XS[(q(l) >> 9) as usize] as usize] as i64;
            let grid = _mm256_set_epi64x(g(3), g(2), g(1), g(0));
            let signs = _mm256_set_epi64x(sg(3), sg(2), sg(1), sg(0));
            // SAFETY: 32 bytes inside y.qs (256).
            let q8 = unsafe { load32(&y.qs[32 * ib..]) };
            let dot = _mm256_maddubs_epi16(grid, _mm256_sign_epi8(q8, signs));
            let sc = x.scales[ib];
            let ls = scales_16(2 * (sc & 0xF) as i32 + 1, 2 * (sc >> 4) as i32 + 1);
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(dot, ls));
        }
        let d = _mm256_set1_ps(f16_one(x.d) * y.d);
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
    }
    0.125 * hsum_f32x8(acc)
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn iq2_s_dot1_imp(w: &[BlockIQ2S], y: &[BlockQ8K]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for (x, y) in w.iter().zip(y) {
        let mut sumi = _mm256_setzero_si256();
        for ib in 0..8 {
            let g = |l: usize| {
                let k = 4 * ib + l;
                let hi = ((x.qh[ib] >> (2 * l)) & 3) as usize;
                u64::from_le_bytes(IQ2S_GRID[x.qs[k] as usize | hi << 8]) as i64
            };
            let sg = |l: usize| SIGN_BYTES[x.qs[32 + 4 * ib + l] as usize] as i64;
            let grid = _mm256_set_epi64x(g(3), g(2), g(1), g(0));
            let signs = _mm256_set_epi64x(sg(3), sg(2), sg(1), sg(0));
            // SAFETY: 32 bytes inside y.qs (256).
            let q8 = unsafe { load32(&y.qs[32 * ib..]) };
            let dot = _mm256_maddubs_epi16(grid, _mm256_sign_epi8(q8, signs));
            let sc = x.scales[ib];
            let ls = scales_16(2 * (sc & 0xF) as i32 + 1, 2 * (sc >> 4) as i32 + 1);
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(dot, ls));
        }
        let d = _mm256_set1_ps(f16_one(x.d) * y.d);
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
    }
    0.125 * hsum_f32x8(acc)
}

// ------------------------------------------------------------- IQ3_S

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn iq3_s_dot1_imp(w: &[BlockIQ3S], y: &[BlockQ8K]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for (x, y) in w.iter().zip(y) {
        let mut sumi = _mm256_setzero_si256();
        for ib in 0..8 {
            let g = |i: usize| {
                let hi = ((x.qh[ib] >> i) & 1) as usize;
                u32::from_le_bytes(IQ3S_GRID[x.qs[8 * ib + i] as usize | hi << 8]) as i32
            };
            let sg = |l: usize| SIGN_BYTES[x.signs[4 * ib + l] as usize] as i64;
            let grid = _mm256_set_epi32(g(7), g(6), g(5), g(4), g(3), g(2), g(1), g(0));
            let signs = _mm256_set_epi64x(sg(3), sg(2), sg(1), sg(0));
            // SAFETY: 32 bytes inside y.qs (256).
            let q8 = unsafe { load32(&y.qs[32 * ib..]) };
            let dot = _mm256_maddubs_epi16(grid, _mm256_sign_epi8(q8, signs));
            let ls = 1 + 2 * ((x.scales[ib / 2] >> (4 * (ib % 2))) & 0xF) as i16;
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(dot, _mm256_set1_epi16(ls)));
        }
        let d = _mm256_set1_ps(f16_one(x.d) * y.d);
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum_f32x8(acc)
}

// ------------------------------------------------------------- IQ1_M

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn iq1_m_dot1_imp(w: &[BlockIQ1M], y: &[BlockQ8K]) -> f32 {
    let ones8 = _mm256_set1_epi8(1);
    let mut sumf = 0.0f32;
    for (x, y) in w.iter().zip(y) {
        let mut sumi1 = _mm256_setzero_si256();
        let mut sumi2 = _mm256_setzero_si256();
        for ib in 0..8 {
            // Parts k = 4ib + l of 8 weights: nibble h of qh, grid row, delta sign.
            let h = |l: usize| (x.qh[2 * ib + l / 2] >> (4 * (l % 2))) & 0xF;
            let g = |l: usize| {
                let idx = x.qs[4 * ib + l] as usize | ((h(l) & 7) as usize) << 8;
                u64::from_le_bytes(IQ1S_GRID[idx].map(|v| v as u8)) as i64
            };
            let grid = _mm256_set_epi64x(g(3), g(2), g(1), g(0));
            // 3-bit scales of the two 16-weight halves.
            let sw = u16_at(&x.scales, ib / 2) >> (6 * (ib % 2));
            let (ls1, ls2) = (2 * (sw & 7) as i16 + 1, 2 * ((sw >> 3) & 7) as i16 + 1);
            // SAFETY: 32 bytes inside y.qs (256).
            let q8 = unsafe { load32(&y.qs[32 * ib..]) };
            let dot = _mm256_maddubs_epi16(ones8, _mm256_sign_epi8(q8, grid));
            sumi1 = _mm256_add_epi32(
                sumi1,
                _mm256_madd_epi16(dot, scales_16(ls1 as i32, ls2 as i32)),
            );
            // Delta term: ±ls times the sum of each part's 8 activations.
            let dl = |l: usize| {
                let ls = if l < 2 { ls1 } else { ls2 };
                if h(l) & 8 != 0 { -ls } else { ls }
            };
            let (d0, d1, d2, d3) = (dl(0), dl(1), dl(2), dl(3));
            let dm = _mm256_set_epi16(
                d3, d3, d3, d3, d2, d2, d2, d2, d1, d1, d1, d1, d0, d0, d0, d0,
            );
            let qsum = _mm256_maddubs_epi16(ones8, q8);
            sumi2 = _mm256_add_epi32(sumi2, _mm256_madd_epi16(qsum, dm));
        }
        let s1 = hsum_f32x8(_mm256_cvtepi32_ps(sumi1));
        let s2 = hsum_f32x8(_mm256_cvtepi32_ps(sumi2));
        sumf += f16_one(iq1m_d(&x.scales)) * y.d * (s1 + IQ1M_DELTA * s2);
    }
    sumf
}
