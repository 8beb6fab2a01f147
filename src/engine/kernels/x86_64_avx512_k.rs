//! AVX-512 VNNI decode dots of the K-quants (Q2_K .. Q6_K) and IQ4_XS.
//!
//! A Q8_K activation block (256 values) is four 512-bit registers; each
//! kernel rebuilds the weights of one 64-element stretch in the same byte
//! order (nibbles split by per-half shifts of one broadcast load, no
//! activation shuffles) and `vpdpbusd` sums four u8 x i8 products into each
//! i32 lane. A lane then belongs to exactly one sub-block, so its scale is a
//! lane vector (`vpermd` of the block's scales):
//!
//! - where a lane's four-product sum fits in i16 (Q2_K .. Q6_K: weights
//!   below 64, activations within ±128, so at most 4 · 63 · 128 = 32256) the
//!   scale is applied by `vpmaddwd` against the scale in the low 16 bits of
//!   the lane (the high half zero): exact, one instruction;
//! - IQ4_XS looks its values up offset by 128 (so unsigned), sums that can
//!   pass i16, so the scale goes through `vpmulld`, and `128 Σ ls · Σ qa`
//!   (from the activations' `bsums`) comes off afterwards.
//!
//! Offsets (Q6_K `q - 32`, Q3_K's missing high bit) and minimums (Q2_K,
//! Q4_K, Q5_K) are integer dot products of the scales with `bsums`. Every
//! integer is exact; per block the float work is `d · Σ lanes` (and
//! `dmin · Σ mins`), so against the scalar reference results differ only in
//! float summation order (the every-kernel-set tests' tolerance). Single-row
//! kernels only: the four-token and row kernels are them per row, so a
//! batch and its tokens one by one agree bit for bit.

use std::arch::x86_64::*;

use super::{Dots, Kernels, dot4_by_dot1};
use crate::engine::quant::iq_grids::KVALUES_IQ4NL;
use crate::engine::quant::*;

/// Puts the kernels of this file into an AVX-512 set (built by
/// `x86_64_avx512::avx512()` after detecting every feature enabled below).
pub(super) fn install(k: &mut Kernels) {
    k.q2k = dot4_by_dot1!(q2k_dot1, BlockQ2K, BlockQ8K);
    k.q3k = dot4_by_dot1!(q3k_dot1, BlockQ3K, BlockQ8K);
    k.q4k = dot4_by_dot1!(q4k_dot1, BlockQ4K, BlockQ8K);
    k.q5k = dot4_by_dot1!(q5k_dot1, BlockQ5K, BlockQ8K);
    k.q6k = dot4_by_dot1!(q6k_dot1, BlockQ6K, BlockQ8K);
    k.iq.iq4_xs = dot4_by_dot1!(iq4_xs_dot1, BlockIQ4XS, BlockQ8K);
}

macro_rules! wrap {
    ($name:ident, $imp:ident, $w:ty) => {
        fn $name(w: &[$w], y: &[BlockQ8K]) -> f32 {
            // SAFETY: installed only in the AVX-512 set, after detecting
            // every feature the implementation enables; it reads only
            // within the blocks of `w.iter().zip(y)`.
            unsafe { $imp(w, y) }
        }
    };
}
wrap!(q2k_dot1, q2k_imp, BlockQ2K);
wrap!(q3k_dot1, q3k_imp, BlockQ3K);
wrap!(q4k_dot1, q4k_imp, BlockQ4K);
wrap!(q5k_dot1, q5k_imp, BlockQ5K);
wrap!(q6k_dot1, q6k_imp, BlockQ6K);
wrap!(iq4_xs_dot1, iq4_xs_imp, BlockIQ4XS);

// ------------------------------------------------------------- helpers

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn f16_one(h: [u8; 2]) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(
        u16::from_le_bytes(h),
    ))))
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn hsum8(x: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps::<1>(x));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
}

/// 16-bit shift counts: `lo` in the low 256 bits, `hi` in the high ones.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn halves16(lo: i16, hi: i16) -> __m512i {
    _mm512_inserti64x4::<1>(
        _mm512_castsi256_si512(_mm256_set1_epi16(lo)),
        _mm256_set1_epi16(hi),
    )
}

/// Lane indices: lanes 0..8 take `a`, lanes 8..16 take `b`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn pick2(a: i32, b: i32) -> __m512i {
    _mm512_setr_epi32(a, a, a, a, a, a, a, a, b, b, b, b, b, b, b, b)
}

/// Lane indices for sub-blocks of 16 in register `m` (64 elements): lane
/// `l` takes `4m + l / 4`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn pick4(m: i32) -> __m512i {
    let b = 4 * m;
    _mm512_setr_epi32(
        b,
        b,
        b,
        b,
        b + 1,
        b + 1,
        b + 1,
        b + 1,
        b + 2,
        b + 2,
        b + 2,
        b + 2,
        b + 3,
        b + 3,
        b + 3,
        b + 3,
    )
}

/// 32 bytes at `p` in both 256-bit halves.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn both(p: *const u8) -> __m512i {
    // SAFETY: the caller passes 32 readable bytes.
    _mm512_broadcast_i64x4(unsafe { _mm256_loadu_si256(p.cast()) })
}

/// 64 activation quants at `p`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn load64(p: *const i8) -> __m512i {
    // SAFETY: the caller passes 64 readable bytes.
    unsafe { _mm512_loadu_si512(p.cast()) }
}

/// `Σ_g m_g (bsums[2g] + bsums[2g+1])` per g in 8 lanes: `mins` holds the
/// eight mins in bytes 8..16.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn mins_dot(mins: __m128i, y: &BlockQ8K) -> __m256i {
    // Bytes m0, m0, m1, m1, ... as 16 i16 against the 16 bsums.
    let mm = _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(mins, mins));
    // SAFETY: bsums is 16 i16 (32 bytes).
    let bs = unsafe { _mm256_loadu_si256(y.bsums.as_ptr().cast()) };
    _mm256_madd_epi16(mm, bs)
}

/// `lane · scale` for lanes whose value fits in i16 and scales (signed,
/// 16-bit) in the low half of each i32 lane, high half zero.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn scale16(dp: __m512i, sc: __m512i) -> __m512i {
    _mm512_madd_epi16(dp, sc)
}

/// Sixteen i8 scales as i32 lanes holding the scale's 16 bits (high half
/// zero, the form [`scale16`] takes).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn scales16_i8(s: __m128i) -> __m512i {
    _mm512_and_si512(_mm512_cvtepi8_epi32(s), _mm512_set1_epi32(0xFFFF))
}

// ------------------------------------------------------------- Q4_K, Q5_K

/// Q4_K and Q5_K (`FIVE`): `d Σ_g sc_g Σ q qa - dmin Σ_g m_g Σ qa`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn k45<const FIVE: bool>(
    d: [u8; 2],
    dmin: [u8; 2],
    scales: &[u8; K_SCALE_SIZE],
    qh: Option<&[u8; 32]>,
    qs: &[u8; 128],
    y: &BlockQ8K,
    acc: (__m512, __m256),
) -> (__m512, __m256) {
    let m4 = _mm512_set1_epi8(0x0F);
    let shift = halves16(0, 4);
    let u = super::x86_64::k4_scales_mins(scales);
    // Bytes sc0..8, m0..8; as i32 lanes (the scales are 6-bit, unsigned).
    let sm = _mm_set_epi32(u[3] as i32, u[2] as i32, u[1] as i32, u[0] as i32);
    let s32 = _mm512_cvtepu8_epi32(sm);
    // SAFETY: qh is 32 bytes.
    let h = qh.map(|h| unsafe { both(h.as_ptr()) });
    let mut sumi = _mm512_setzero_si512();
    for j in 0..4 {
        // Elements 64j..64j+64: group 2j from the low nibbles of
        // qs[32j..32j+32], group 2j+1 from their high nibbles.
        // SAFETY: 32 bytes inside qs (128), 64 inside y.qs (256).
        let (q, a) = unsafe {
            (
                both(qs.as_ptr().add(32 * j)),
                load64(y.qs.as_ptr().add(64 * j)),
            )
        };
        let mut q = _mm512_and_si512(_mm512_srlv_epi16(q, shift), m4);
        if FIVE && let Some(h) = h {
            // Bit g of qh[l] is the fifth bit of element l of group g.
            let bit = halves16(1 << (2 * j), 1 << (2 * j + 1));
            let bit = _mm512_and_si512(bit, _mm512_set1_epi16(0x00FF));
            let bit = _mm512_or_si512(bit, _mm512_slli_epi16::<8>(bit));
            let k = _mm512_test_epi8_mask(h, bit);
            q = _mm512_mask_add_epi8(q, k, q, _mm512_set1_epi8(0x10));
        }
        let dp = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q, a);
        let sc = _mm512_permutexvar_epi32(pick2(2 * j as i32, 2 * j as i32 + 1), s32);
        sumi = _mm512_add_epi32(sumi, scale16(dp, sc));
    }
    let pm = mins_dot(sm, y);
    let dd = f16_one(d) * y.d;
    let dm = f16_one(dmin) * y.d;
    (
        _mm512_fmadd_ps(_mm512_set1_ps(dd), _mm512_cvtepi32_ps(sumi), acc.0),
        _mm256_fmadd_ps(_mm256_set1_ps(dm), _mm256_cvtepi32_ps(pm), acc.1),
    )
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn q4k_imp(w: &[BlockQ4K], y: &[BlockQ8K]) -> f32 {
    let mut acc = (_mm512_setzero_ps(), _mm256_setzero_ps());
    for (x, y) in w.iter().zip(y) {
        // SAFETY: features enabled here.
        acc = unsafe { k45::<false>(x.d, x.dmin, &x.scales, None, &x.qs, y, acc) };
    }
    _mm512_reduce_add_ps(acc.0) - hsum8(acc.1)
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn q5k_imp(w: &[BlockQ5K], y: &[BlockQ8K]) -> f32 {
    let mut acc = (_mm512_setzero_ps(), _mm256_setzero_ps());
    for (x, y) in w.iter().zip(y) {
        // SAFETY: features enabled here.
        acc = unsafe { k45::<true>(x.d, x.dmin, &x.scales, Some(&x.qh), &x.qs, y, acc) };
    }
    _mm512_reduce_add_ps(acc.0) - hsum8(acc.1)
}

// ------------------------------------------------------------- Q6_K

/// `d Σ_s sc_s Σ (q - 32) qa`, the 32 as `32 Σ_s sc_s bsums_s`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn q6k_imp(w: &[BlockQ6K], y: &[BlockQ8K]) -> f32 {
    let m4 = _mm512_set1_epi8(0x0F);
    let m2 = _mm512_set1_epi8(0x03);
    let sh = [halves16(0, 2), halves16(4, 6)];
    let mut acc = _mm512_setzero_ps();
    for (x, y) in w.iter().zip(y) {
        // SAFETY: scales is 16 i8, bsums 16 i16.
        let (sc8, bs) = unsafe {
            (
                _mm_loadu_si128(x.scales.as_ptr().cast()),
                _mm256_loadu_si256(y.bsums.as_ptr().cast()),
            )
        };
        let s32 = scales16_i8(sc8);
        let mut sumi = _mm512_setzero_si512();
        for n in 0..2 {
            // Register m = 2n + i holds elements 128n + 64i + b: the low
            // (i = 0) or high (i = 1) nibble of ql[64n + b] and bits
            // 2(2i + b / 32) of qh[32n + b % 32].
            // SAFETY: 64 bytes inside ql (128), 32 inside qh (64), 128
            // inside y.qs (256).
            let (l, h, a0, a1) = unsafe {
                (
                    _mm512_loadu_si512(x.ql.as_ptr().add(64 * n).cast()),
                    both(x.qh.as_ptr().add(32 * n)),
                    load64(y.qs.as_ptr().add(128 * n)),
                    load64(y.qs.as_ptr().add(128 * n + 64)),
                )
            };
            for (i, a) in [a0, a1].into_iter().enumerate() {
                let lo = if i == 0 { l } else { _mm512_srli_epi16::<4>(l) };
                let lo = _mm512_and_si512(lo, m4);
                let hi = _mm512_and_si512(_mm512_srlv_epi16(h, sh[i]), m2);
                let q = _mm512_or_si512(lo, _mm512_slli_epi16::<4>(hi));
                let dp = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q, a);
                let sc = _mm512_permutexvar_epi32(pick4((2 * n + i) as i32), s32);
                sumi = _mm512_add_epi32(sumi, scale16(dp, sc));
            }
        }
        let off = _mm256_slli_epi32::<5>(_mm256_madd_epi16(_mm256_cvtepi8_epi16(sc8), bs));
        let sumi = _mm512_sub_epi32(sumi, _mm512_zextsi256_si512(off));
        let d = f16_one(x.d) * y.d;
        acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sumi), acc);
    }
    _mm512_reduce_add_ps(acc)
}

// ------------------------------------------------------------- Q2_K, Q3_K

/// The 2-bit fields of 32 bytes at `p` (in both halves) for register `m`
/// of a 128-element half: element `64i + b` of the half is bits
/// `2(2i + b / 32)` of byte `b % 32`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn crumbs(q: __m512i, i: usize) -> __m512i {
    let sh = if i == 0 {
        halves16(0, 2)
    } else {
        halves16(4, 6)
    };
    _mm512_and_si512(_mm512_srlv_epi16(q, sh), _mm512_set1_epi8(3))
}

/// `d Σ_s sc_s Σ q qa - dmin Σ_s m_s bsums_s` (sc, m: 4-bit halves of `scales`).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn q2k_imp(w: &[BlockQ2K], y: &[BlockQ8K]) -> f32 {
    let mut acc = _mm512_setzero_ps();
    let mut accm = _mm256_setzero_ps();
    for (x, y) in w.iter().zip(y) {
        // SAFETY: scales is 16 bytes, bsums 16 i16.
        let (s8, bs) = unsafe {
            (
                _mm_loadu_si128(x.scales.as_ptr().cast()),
                _mm256_loadu_si256(y.bsums.as_ptr().cast()),
            )
        };
        let sc = _mm512_cvtepu8_epi32(_mm_and_si128(s8, _mm_set1_epi8(0x0F)));
        let mn = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16::<4>(s8), _mm_set1_epi8(0x0F)));
        let mut sumi = _mm512_setzero_si512();
        for n in 0..2 {
            // Elements 128n + 32k + l are bits 2k of qs[32n + l].
            // SAFETY: 32 bytes inside qs (64), 128 inside y.qs (256).
            let (q, a0, a1) = unsafe {
                (
                    both(x.qs.as_ptr().add(32 * n)),
                    load64(y.qs.as_ptr().add(128 * n)),
                    load64(y.qs.as_ptr().add(128 * n + 64)),
                )
            };
            for (i, a) in [a0, a1].into_iter().enumerate() {
                let dp = _mm512_dpbusd_epi32(_mm512_setzero_si512(), crumbs(q, i), a);
                let s = _mm512_permutexvar_epi32(pick4((2 * n + i) as i32), sc);
                sumi = _mm512_add_epi32(sumi, scale16(dp, s));
            }
        }
        let pm = _mm256_madd_epi16(mn, bs);
        let d = f16_one(x.d) * y.d;
        let dm = f16_one(x.dmin) * y.d;
        acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sumi), acc);
        accm = _mm256_fmadd_ps(_mm256_set1_ps(dm), _mm256_cvtepi32_ps(pm), accm);
    }
    _mm512_reduce_add_ps(acc) - hsum8(accm)
}

/// `d Σ_s (sc_s - 32) Σ (q - 4 [hbit clear]) qa`: the weights as `q + 4 h`
/// (0..8, unsigned) and `4 Σ_s sc_s bsums_s` off.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn q3k_imp(w: &[BlockQ3K], y: &[BlockQ8K]) -> f32 {
    let mut acc = _mm512_setzero_ps();
    for (x, y) in w.iter().zip(y) {
        let scb = scales_q3k(&x.scales);
        // SAFETY: 16 bytes; bsums is 16 i16; hmask 32 bytes.
        let (s8, bs, hm) = unsafe {
            (
                _mm_sub_epi8(_mm_loadu_si128(scb.as_ptr().cast()), _mm_set1_epi8(32)),
                _mm256_loadu_si256(y.bsums.as_ptr().cast()),
                both(x.hmask.as_ptr()),
            )
        };
        let s32 = scales16_i8(s8);
        let mut sumi = _mm512_setzero_si512();
        for n in 0..2 {
            // SAFETY: as Q2_K's.
            let (q, a0, a1) = unsafe {
                (
                    both(x.qs.as_ptr().add(32 * n)),
                    load64(y.qs.as_ptr().add(128 * n)),
                    load64(y.qs.as_ptr().add(128 * n + 64)),
                )
            };
            for (i, a) in [a0, a1].into_iter().enumerate() {
                // Element 128n + 32k + l: high bit is bit 4n + k of hmask[l].
                let k0 = 4 * n + 2 * i;
                let bit = halves16(1 << k0, 1 << (k0 + 1));
                let bit = _mm512_and_si512(bit, _mm512_set1_epi16(0x00FF));
                let bit = _mm512_or_si512(bit, _mm512_slli_epi16::<8>(bit));
                let k = _mm512_test_epi8_mask(hm, bit);
                let q = crumbs(q, i);
                let q = _mm512_mask_add_epi8(q, k, q, _mm512_set1_epi8(4));
                let dp = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q, a);
                let s = _mm512_permutexvar_epi32(pick4((2 * n + i) as i32), s32);
                sumi = _mm512_add_epi32(sumi, scale16(dp, s));
            }
        }
        let off = _mm256_slli_epi32::<2>(_mm256_madd_epi16(_mm256_cvtepi8_epi16(s8), bs));
        let sumi = _mm512_sub_epi32(sumi, _mm512_zextsi256_si512(off));
        let d = f16_one(x.d) * y.d;
        acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sumi), acc);
    }
    _mm512_reduce_add_ps(acc)
}

// ------------------------------------------------------------- IQ4_XS

/// `d Σ_ib (ls_ib - 32) Σ v qa` with `v` from the IQ4 table: looked up as
/// `v + 128` (unsigned), the `128 Σ qa` per sub-block taken off.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn iq4_xs_imp(w: &[BlockIQ4XS], y: &[BlockQ8K]) -> f32 {
    let table: [u8; 16] = KVALUES_IQ4NL.map(|v| (i16::from(v) + 128) as u8);
    // SAFETY: 16 bytes.
    let table = _mm512_broadcast_i32x4(unsafe { _mm_loadu_si128(table.as_ptr().cast()) });
    let m4 = _mm512_set1_epi8(0x0F);
    // Per 128-bit lane: low nibbles, high nibbles, low, high.
    let shift = _mm512_setr_epi64(
        0,
        0,
        0x0004_0004_0004_0004,
        0x0004_0004_0004_0004,
        0,
        0,
        0x0004_0004_0004_0004,
        0x0004_0004_0004_0004,
    );
    let ones = _mm256_set1_epi16(1);
    let mut acc = _mm512_setzero_ps();
    for (x, y) in w.iter().zip(y) {
        let ls: [i32; 8] = std::array::from_fn(|ib| iq4xs_scale(x, ib) - 32);
        // SAFETY: 8 i32; bsums 16 i16.
        let (ls, bs) = unsafe {
            (
                _mm256_loadu_si256(ls.as_ptr().cast()),
                _mm256_loadu_si256(y.bsums.as_ptr().cast()),
            )
        };
        let ls16 = _mm512_castsi256_si512(ls);
        let mut sumi = _mm512_setzero_si512();
        for r in 0..4 {
            // Sub-blocks 2r, 2r + 1: 16 bytes each, low nibbles the first
            // 16 elements, high nibbles the next 16.
            // SAFETY: 32 bytes inside qs (128), 64 inside y.qs (256).
            let (q, a) = unsafe {
                (
                    _mm512_castsi256_si512(_mm256_loadu_si256(x.qs.as_ptr().add(32 * r).cast())),
                    load64(y.qs.as_ptr().add(64 * r)),
                )
            };
            let q = _mm512_shuffle_i64x2::<0x50>(q, q);
            let nib = _mm512_and_si512(_mm512_srlv_epi16(q, shift), m4);
            let v = _mm512_shuffle_epi8(table, nib);
            let dp = _mm512_dpbusd_epi32(_mm512_setzero_si512(), v, a);
            let s = _mm512_permutexvar_epi32(pick2(2 * r as i32, 2 * r as i32 + 1), ls16);
            sumi = _mm512_add_epi32(sumi, _mm512_mullo_epi32(dp, s));
        }
        // 128 Σ_ib ls_ib (bsums[2ib] + bsums[2ib + 1]).
        let pairs = _mm256_madd_epi16(bs, ones);
        let off = _mm256_slli_epi32::<7>(_mm256_mullo_epi32(pairs, ls));
        let sumi = _mm512_sub_epi32(sumi, _mm512_zextsi256_si512(off));
        let d = f16_one(x.d) * y.d;
        acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sumi), acc);
    }
    _mm512_reduce_add_ps(acc)
}
