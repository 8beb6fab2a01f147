//! The AVX-VNNI kernel set (x86_64): AVX2 width with the VEX-encoded
//! 256-bit `vpdpbusd` (`avxvnni`; Alder Lake and later cores, Sapphire
//! Rapids, Zen 5), for CPUs without AVX-512 or where AVX-512 is unwanted.
//!
//! It starts from the AVX2 set and replaces:
//!
//! - the prompt panels with panel pairs ([`super::gemm::avxvnni`]);
//! - the decode dots of Q4_0, Q4_1, Q5_0 and Q8_0: the AVX2 set's four-block
//!   groups with every `maddubs` + `madd` pair as one `vpdpbusd` (exact
//!   integer block sums either way, and the same float operations, so the
//!   same bits as the AVX2 set);
//! - the decode dots of Q2_K, Q3_K, Q4_K, Q5_K, Q6_K and IQ4_XS: the
//!   AVX-512 set's arithmetic (`x86_64_avx512_k.rs`) at 32 weights per
//!   `vpdpbusd`: four-product sums scaled exactly by `vpmaddwd` where they
//!   fit in 16 bits (IQ4_XS, looked up as `v + 128`: `vpmulld`), minimums
//!   and offsets from the activations' `bsums`.
//!
//! The intrinsic `_mm256_dpbusd_avx_epi32` and the `avxvnni` target feature
//! are stable Rust (no inline assembly needed). Every `unsafe fn` carries
//! `#[target_feature]`; the safe wrappers are reachable only through the
//! table built by [`avxvnni`], after run-time detection of the features.

use std::arch::x86_64::*;

use super::x86_64::{G, GroupDot, Q40, Q41, Q50, Q80, ROW_GROUPS, hsum_f32x4, load_q, sum4_i32};
use super::{Dots, Kernels, dot4_by_dot1};
use crate::engine::quant::iq_grids::KVALUES_IQ4NL;
use crate::engine::quant::*;

/// Whether this CPU has everything the AVX-VNNI set uses.
pub fn detected() -> bool {
    is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c")
        && is_x86_feature_detected!("avxvnni")
}

/// The AVX-VNNI kernel set ("avx2-vnni"), if this CPU has AVX2, FMA, F16C
/// and AVX-VNNI.
pub fn avxvnni() -> Option<Kernels> {
    if !detected() {
        return None;
    }
    let mut k = super::x86_64::avx2()?;
    k.name = "avx2-vnni";
    k.panel.pairs = Some(super::gemm::avxvnni::kernels());
    k.q4_0 = v40_dots();
    k.q4_1 = v41_dots();
    k.q5_0 = v50_dots();
    k.q8_0 = v80_dots();
    k.q2k = dot4_by_dot1!(q2k_dot1, BlockQ2K, BlockQ8K);
    k.q3k = dot4_by_dot1!(q3k_dot1, BlockQ3K, BlockQ8K);
    k.q4k = dot4_by_dot1!(q4k_dot1, BlockQ4K, BlockQ8K);
    k.q5k = dot4_by_dot1!(q5k_dot1, BlockQ5K, BlockQ8K);
    k.q6k = dot4_by_dot1!(q6k_dot1, BlockQ6K, BlockQ8K);
    k.iq.iq4_xs = dot4_by_dot1!(iq4_xs_dot1, BlockIQ4XS, BlockQ8K);
    Some(k)
}

/// `Σ` of four u8 x i8 products per i32 lane.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
fn dp(w: __m256i, a: __m256i) -> __m256i {
    _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), w, a)
}

// ------------------------------------------------------------- Q4_0 .. Q8_0
//
// The AVX2 set's group formats (weights, activations and float steps as
// there), with their integer block sums from `vpdpbusd`.

/// One group format's `fma` with VNNI: the AVX2 format `$base` prepares
/// both sides.
trait Vnni {
    type Base: GroupDot;
    unsafe fn fma(
        w: &<Self::Base as GroupDot>::Wg,
        q: &[__m256i; G],
        y: &<Self::Base as GroupDot>::Ag,
        acc: __m128,
    ) -> __m128;
}

struct V40;
impl Vnni for V40 {
    type Base = Q40;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avxvnni")]
    unsafe fn fma(
        w: &([__m256i; G], __m128),
        q: &[__m256i; G],
        y: &(__m128i, __m128),
        acc: __m128,
    ) -> __m128 {
        let s: [__m256i; G] = std::array::from_fn(|j| dp(w.0[j], q[j]));
        let d = _mm_mul_ps(w.1, y.1);
        _mm_fmadd_ps(d, _mm_cvtepi32_ps(_mm_sub_epi32(sum4_i32(s), y.0)), acc)
    }
}

struct V50;
impl Vnni for V50 {
    type Base = Q50;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avxvnni")]
    unsafe fn fma(
        w: &([__m256i; G], __m128),
        q: &[__m256i; G],
        y: &(__m128i, __m128),
        acc: __m128,
    ) -> __m128 {
        // SAFETY: the same arithmetic as Q4_0's (q unsigned, offsets in `y`).
        unsafe { V40::fma(w, q, y, acc) }
    }
}

struct V41;
impl Vnni for V41 {
    type Base = Q41;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avxvnni")]
    unsafe fn fma(w: &([__m256i; G], __m256), q: &[__m256i; G], y: &__m256, acc: __m128) -> __m128 {
        let s: [__m256i; G] = std::array::from_fn(|j| dp(w.0[j], q[j]));
        let d = _mm_mul_ps(_mm256_castps256_ps128(w.1), _mm256_castps256_ps128(*y));
        let acc = _mm_fmadd_ps(d, _mm_cvtepi32_ps(sum4_i32(s)), acc);
        _mm_fmadd_ps(
            _mm256_extractf128_ps(w.1, 1),
            _mm256_extractf128_ps(*y, 1),
            acc,
        )
    }
}

struct V80;
impl Vnni for V80 {
    type Base = Q80;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avxvnni")]
    unsafe fn fma(w: &([__m256i; G], __m128), q: &[__m256i; G], y: &__m128, acc: __m128) -> __m128 {
        // |x| times y with x's sign (the AVX2 set's sign trick).
        let s: [__m256i; G] = std::array::from_fn(|j| {
            let (x, q) = (w.0[j], q[j]);
            dp(_mm256_sign_epi8(x, x), _mm256_sign_epi8(q, x))
        });
        let d = _mm_mul_ps(w.1, *y);
        _mm_fmadd_ps(d, _mm_cvtepi32_ps(sum4_i32(s)), acc)
    }
}

type W<K> = <<K as Vnni>::Base as GroupDot>::W;
type A<K> = <<K as Vnni>::Base as GroupDot>::A;

#[inline]
#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
unsafe fn group_dot1<K: Vnni>(w: &[W<K>], y: &[A<K>]) -> f32 {
    let n = w.len().min(y.len());
    let mut acc = _mm_setzero_ps();
    let mut g0 = 0;
    while g0 < n {
        let len = G.min(n - g0);
        let (wg, yg) = (&w[g0..g0 + len], &y[g0..g0 + len]);
        // SAFETY: the caller enabled the target features (a superset of the
        // AVX2 set's).
        acc = unsafe { K::fma(&K::Base::prep_w(wg), &load_q(yg), &K::Base::prep_a(yg), acc) };
        g0 += G;
    }
    hsum_f32x4(acc)
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
unsafe fn group_dot4<K: Vnni>(w: &[W<K>], y: [&[A<K>]; 4]) -> [f32; 4] {
    let n = w.len().min(y.iter().map(|y| y.len()).min().unwrap_or(0));
    let mut acc = [_mm_setzero_ps(); 4];
    let mut g0 = 0;
    while g0 < n {
        let len = G.min(n - g0);
        // SAFETY: as above.
        let wp = unsafe { K::Base::prep_w(&w[g0..g0 + len]) };
        for (acc, y) in acc.iter_mut().zip(y) {
            let yg = &y[g0..g0 + len];
            // SAFETY: as above.
            *acc = unsafe { K::fma(&wp, &load_q(yg), &K::Base::prep_a(yg), *acc) };
        }
        g0 += G;
    }
    acc.map(|a| hsum_f32x4(a))
}

/// Decode's rows: every group's activation side prepared once for all rows.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
unsafe fn group_rows1<K: Vnni>(w: &[W<K>], y: &[A<K>], out: &mut [f32]) {
    let nb = y.len();
    if nb == 0 {
        out.fill(0.0);
        return;
    }
    let rows = w.chunks_exact(nb);
    if nb.div_ceil(G) > ROW_GROUPS {
        for (o, wr) in out.iter_mut().zip(rows) {
            // SAFETY: the caller enabled the target features.
            *o = unsafe { group_dot1::<K>(wr, y) };
        }
        return;
    }
    type Ag<K> = <<K as Vnni>::Base as GroupDot>::Ag;
    let mut ag = [const { std::mem::MaybeUninit::<Ag<K>>::uninit() }; ROW_GROUPS];
    let mut g0 = 0;
    while g0 < nb {
        let len = G.min(nb - g0);
        // SAFETY: as above.
        ag[g0 / G].write(unsafe { K::Base::prep_a(&y[g0..g0 + len]) });
        g0 += G;
    }
    for (o, wr) in out.iter_mut().zip(rows) {
        let mut acc = _mm_setzero_ps();
        let mut g0 = 0;
        while g0 < nb {
            let len = G.min(nb - g0);
            let wg = &wr[g0..g0 + len];
            super::prefetch_ahead(wg);
            let yg = &y[g0..g0 + len];
            // SAFETY: groups 0..nb.div_ceil(G) were written above; features
            // as above.
            acc = unsafe {
                let a = ag[g0 / G].assume_init_ref();
                K::fma(&K::Base::prep_w(wg), &load_q(yg), a, acc)
            };
            g0 += G;
        }
        *o = hsum_f32x4(acc);
    }
}

macro_rules! vnni_kernels {
    ($k:ty, $dots:ident) => {
        fn $dots() -> Dots<W<$k>, A<$k>> {
            // SAFETY (all three): installed only in the table built by
            // `avxvnni()`, after detecting every feature enabled here; the
            // implementations index only within their slices.
            fn d1(w: &[W<$k>], y: &[A<$k>]) -> f32 {
                unsafe { group_dot1::<$k>(w, y) }
            }
            fn d4(w: &[W<$k>], y: [&[A<$k>]; 4]) -> [f32; 4] {
                unsafe { group_dot4::<$k>(w, y) }
            }
            fn r1(w: &[W<$k>], y: &[A<$k>], out: &mut [f32]) {
                unsafe { group_rows1::<$k>(w, y, out) }
            }
            Dots {
                dot1: d1,
                dot4: d4,
                rows1: Some(r1),
            }
        }
    };
}
vnni_kernels!(V40, v40_dots);
vnni_kernels!(V41, v41_dots);
vnni_kernels!(V50, v50_dots);
vnni_kernels!(V80, v80_dots);

// ------------------------------------------------------------- K-quants

macro_rules! wrap {
    ($name:ident, $imp:ident, $w:ty) => {
        fn $name(w: &[$w], y: &[BlockQ8K]) -> f32 {
            // SAFETY: installed only in the AVX-VNNI set, after detecting
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

#[inline]
#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
fn f16_one(h: [u8; 2]) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(
        u16::from_le_bytes(h),
    ))))
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
fn hsum8(x: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps::<1>(x));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
}

/// 32 bytes at `p`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
unsafe fn load(p: *const u8) -> __m256i {
    // SAFETY: the caller passes 32 readable bytes.
    unsafe { _mm256_loadu_si256(p.cast()) }
}

/// Bits `k, k + 1, .. k + width - 1` of every byte (`k + width <= 8`):
/// a 16-bit shift, then a byte mask (bits from the neighbouring byte land
/// above the mask).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
fn bits(v: __m256i, k: i32, mask: i8) -> __m256i {
    _mm256_and_si256(
        _mm256_srl_epi16(v, _mm_cvtsi32_si128(k)),
        _mm256_set1_epi8(mask),
    )
}

/// A four-product sum that fits in i16 times a scale held in the low 16
/// bits of its lane (high half zero): exact, one `vpmaddwd`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
fn scale16(dp: __m256i, sc: __m256i) -> __m256i {
    _mm256_madd_epi16(dp, sc)
}

/// A scale for every lane, in the form [`scale16`] takes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
fn sc_all(s: i32) -> __m256i {
    _mm256_set1_epi32(s & 0xFFFF)
}

/// Lanes 0..4 take scale `a`, lanes 4..8 `b` (sub-blocks of 16: 32
/// elements, the four-product lanes of one in each half).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
fn sc_two(a: i32, b: i32) -> __m256i {
    let (a, b) = (a & 0xFFFF, b & 0xFFFF);
    _mm256_setr_epi32(a, a, a, a, b, b, b, b)
}

/// Q4_K and Q5_K (`FIVE`): `d Σ_g sc_g Σ q qa - dmin Σ_g m_g Σ qa`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
unsafe fn k45<const FIVE: bool>(
    d: [u8; 2],
    dmin: [u8; 2],
    scales: &[u8; K_SCALE_SIZE],
    qh: &[u8; 32],
    qs: &[u8; 128],
    y: &BlockQ8K,
    acc: (__m256, __m256),
) -> (__m256, __m256) {
    let u = super::x86_64::k4_scales_mins(scales);
    let sc: [u8; 8] = [u[0].to_le_bytes(), u[1].to_le_bytes()]
        .concat()
        .try_into()
        .expect("8");
    // SAFETY: qh is 32 bytes.
    let h = if FIVE {
        unsafe { load(qh.as_ptr()) }
    } else {
        _mm256_setzero_si256()
    };
    let mut sumi = _mm256_setzero_si256();
    for j in 0..4 {
        // Group 2j: low nibbles of qs[32j..32j+32]; 2j + 1: their high ones.
        // SAFETY: 32 bytes inside qs (128), 64 inside y.qs (256).
        let (q, a0, a1) = unsafe {
            (
                load(qs.as_ptr().add(32 * j)),
                load(y.qs.as_ptr().add(64 * j).cast()),
                load(y.qs.as_ptr().add(64 * j + 32).cast()),
            )
        };
        for (i, a) in [a0, a1].into_iter().enumerate() {
            let g = 2 * j + i;
            let mut q = bits(q, 4 * i as i32, 0x0F);
            if FIVE {
                // Bit g of qh[l] is the fifth bit of element l of group g.
                q = _mm256_or_si256(q, _mm256_slli_epi16::<4>(bits(h, g as i32, 1)));
            }
            sumi = _mm256_add_epi32(sumi, scale16(dp(q, a), sc_all(i32::from(sc[g]))));
        }
    }
    // Σ_g m_g (bsums[2g] + bsums[2g+1]): bytes m0, m0, m1, m1, .. as i16.
    let mins = _mm_set_epi32(0, 0, u[3] as i32, u[2] as i32);
    let mm = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mins, mins));
    // SAFETY: bsums is 16 i16.
    let bs = unsafe { load(y.bsums.as_ptr().cast()) };
    let pm = _mm256_madd_epi16(mm, bs);
    let dd = f16_one(d) * y.d;
    let dm = f16_one(dmin) * y.d;
    (
        _mm256_fmadd_ps(_mm256_set1_ps(dd), _mm256_cvtepi32_ps(sumi), acc.0),
        _mm256_fmadd_ps(_mm256_set1_ps(dm), _mm256_cvtepi32_ps(pm), acc.1),
    )
}

#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
unsafe fn q4k_imp(w: &[BlockQ4K], y: &[BlockQ8K]) -> f32 {
    let mut acc = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let none = [0u8; 32];
    for (x, y) in w.iter().zip(y) {
        // SAFETY: features enabled here.
        acc = unsafe { k45::<false>(x.d, x.dmin, &x.scales, &none, &x.qs, y, acc) };
    }
    hsum8(acc.0) - hsum8(acc.1)
}

#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
unsafe fn q5k_imp(w: &[BlockQ5K], y: &[BlockQ8K]) -> f32 {
    let mut acc = (_mm256_setzero_ps(), _mm256_setzero_ps());
    for (x, y) in w.iter().zip(y) {
        // SAFETY: features enabled here.
        acc = unsafe { k45::<true>(x.d, x.dmin, &x.scales, &x.qh, &x.qs, y, acc) };
    }
    hsum8(acc.0) - hsum8(acc.1)
}

/// Q6_K: `d Σ_s sc_s Σ (q - 32) qa`, the 32 as `32 Σ_s sc_s bsums_s`.
#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
unsafe fn q6k_imp(w: &[BlockQ6K], y: &[BlockQ8K]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for (x, y) in w.iter().zip(y) {
        // SAFETY: scales is 16 i8, bsums 16 i16.
        let (sc8, bs) = unsafe {
            (
                _mm_loadu_si128(x.scales.as_ptr().cast()),
                load(y.bsums.as_ptr().cast()),
            )
        };
        let sc = x.scales.map(i32::from);
        let mut sumi = _mm256_setzero_si256();
        for n in 0..2 {
            // Elements 128n + 32k + l: the low (k < 2) or high nibble of
            // ql[64n + l + 32 (k % 2)] and bits 2k of qh[32n + l].
            // SAFETY: 64 bytes inside ql (128), 32 inside qh (64).
            let (l0, l1, h) = unsafe {
                (
                    load(x.ql.as_ptr().add(64 * n)),
                    load(x.ql.as_ptr().add(64 * n + 32)),
                    load(x.qh.as_ptr().add(32 * n)),
                )
            };
            for k in 0..4 {
                let l = if k % 2 == 0 { l0 } else { l1 };
                let lo = bits(l, if k < 2 { 0 } else { 4 }, 0x0F);
                let hi = bits(h, 2 * k as i32, 0x03);
                let q = _mm256_or_si256(lo, _mm256_slli_epi16::<4>(hi));
                // SAFETY: 32 bytes inside y.qs (256).
                let a = unsafe { load(y.qs.as_ptr().add(128 * n + 32 * k).cast()) };
                let s = 8 * n + 2 * k;
                sumi = _mm256_add_epi32(sumi, scale16(dp(q, a), sc_two(sc[s], sc[s + 1])));
            }
        }
        let off = _mm256_slli_epi32::<5>(_mm256_madd_epi16(_mm256_cvtepi8_epi16(sc8), bs));
        let sumi = _mm256_sub_epi32(sumi, off);
        let d = f16_one(x.d) * y.d;
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum8(acc)
}

/// Q2_K: `d Σ_s sc_s Σ q qa - dmin Σ_s m_s bsums_s` (sc, m: 4-bit halves).
#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
unsafe fn q2k_imp(w: &[BlockQ2K], y: &[BlockQ8K]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let mut accm = _mm256_setzero_ps();
    for (x, y) in w.iter().zip(y) {
        // SAFETY: scales is 16 bytes, bsums 16 i16.
        let (s8, bs) = unsafe {
            (
                _mm_loadu_si128(x.scales.as_ptr().cast()),
                load(y.bsums.as_ptr().cast()),
            )
        };
        let sc = x.scales.map(|b| i32::from(b & 0x0F));
        let mn = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16::<4>(s8), _mm_set1_epi8(0x0F)));
        let mut sumi = _mm256_setzero_si256();
        for n in 0..2 {
            // Elements 128n + 32k + l are bits 2k of qs[32n + l].
            // SAFETY: 32 bytes inside qs (64).
            let q = unsafe { load(x.qs.as_ptr().add(32 * n)) };
            for k in 0..4 {
                // SAFETY: 32 bytes inside y.qs (256).
                let a = unsafe { load(y.qs.as_ptr().add(128 * n + 32 * k).cast()) };
                let s = 8 * n + 2 * k;
                let c = bits(q, 2 * k as i32, 0x03);
                sumi = _mm256_add_epi32(sumi, scale16(dp(c, a), sc_two(sc[s], sc[s + 1])));
            }
        }
        let pm = _mm256_madd_epi16(mn, bs);
        let d = f16_one(x.d) * y.d;
        let dm = f16_one(x.dmin) * y.d;
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
        accm = _mm256_fmadd_ps(_mm256_set1_ps(dm), _mm256_cvtepi32_ps(pm), accm);
    }
    hsum8(acc) - hsum8(accm)
}

/// Q3_K: `d Σ_s (sc_s - 32) Σ (q - 4 [hbit clear]) qa`: the weights as
/// `q + 4 h` (0..8, unsigned) and `4 Σ_s (sc_s - 32) bsums_s` off.
#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
unsafe fn q3k_imp(w: &[BlockQ3K], y: &[BlockQ8K]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for (x, y) in w.iter().zip(y) {
        let scb = scales_q3k(&x.scales);
        let sc = scb.map(|b| i32::from(b) - 32);
        // SAFETY: 16 bytes; bsums is 16 i16; hmask 32 bytes.
        let (s8, bs, hm) = unsafe {
            (
                _mm_sub_epi8(_mm_loadu_si128(scb.as_ptr().cast()), _mm_set1_epi8(32)),
                load(y.bsums.as_ptr().cast()),
                load(x.hmask.as_ptr()),
            )
        };
        let mut sumi = _mm256_setzero_si256();
        for n in 0..2 {
            // SAFETY: 32 bytes inside qs (64).
            let q = unsafe { load(x.qs.as_ptr().add(32 * n)) };
            for k in 0..4 {
                // Element 128n + 32k + l: high bit is bit 4n + k of hmask[l].
                let h = bits(hm, (4 * n + k) as i32, 1);
                let c = _mm256_or_si256(bits(q, 2 * k as i32, 0x03), _mm256_slli_epi16::<2>(h));
                // SAFETY: 32 bytes inside y.qs (256).
                let a = unsafe { load(y.qs.as_ptr().add(128 * n + 32 * k).cast()) };
                let s = 8 * n + 2 * k;
                sumi = _mm256_add_epi32(sumi, scale16(dp(c, a), sc_two(sc[s], sc[s + 1])));
            }
        }
        let off = _mm256_slli_epi32::<2>(_mm256_madd_epi16(_mm256_cvtepi8_epi16(s8), bs));
        let sumi = _mm256_sub_epi32(sumi, off);
        let d = f16_one(x.d) * y.d;
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum8(acc)
}

/// IQ4_XS: `d Σ_ib (ls_ib - 32) Σ v qa` with `v` from the IQ4 table, looked
/// up as `v + 128` (unsigned), `128 Σ_ib ls_ib Σ qa` taken off.
#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
unsafe fn iq4_xs_imp(w: &[BlockIQ4XS], y: &[BlockQ8K]) -> f32 {
    let table: [u8; 16] = KVALUES_IQ4NL.map(|v| (i16::from(v) + 128) as u8);
    // SAFETY: 16 bytes.
    let table = _mm256_broadcastsi128_si256(unsafe { _mm_loadu_si128(table.as_ptr().cast()) });
    let m4 = _mm256_set1_epi8(0x0F);
    let shift = _mm256_setr_epi64x(0, 0, 4, 4);
    let ones = _mm256_set1_epi16(1);
    let mut acc = _mm256_setzero_ps();
    for (x, y) in w.iter().zip(y) {
        let ls: [i32; 8] = std::array::from_fn(|ib| iq4xs_scale(x, ib) - 32);
        let mut sumi = _mm256_setzero_si256();
        for (ib, &l) in ls.iter().enumerate() {
            // Sub-block ib: 16 bytes, low nibbles the first 16 elements,
            // high nibbles the next 16.
            // SAFETY: 16 bytes inside qs (128), 32 inside y.qs (256).
            let (q, a) = unsafe {
                (
                    _mm_loadu_si128(x.qs.as_ptr().add(16 * ib).cast()),
                    load(y.qs.as_ptr().add(32 * ib).cast()),
                )
            };
            let nib =
                _mm256_and_si256(_mm256_srlv_epi64(_mm256_broadcastsi128_si256(q), shift), m4);
            let v = _mm256_shuffle_epi8(table, nib);
            sumi = _mm256_add_epi32(sumi, _mm256_mullo_epi32(dp(v, a), _mm256_set1_epi32(l)));
        }
        // SAFETY: 8 i32; bsums 16 i16.
        let (lsv, bs) = unsafe {
            (
                _mm256_loadu_si256(ls.as_ptr().cast()),
                load(y.bsums.as_ptr().cast()),
            )
        };
        let pairs = _mm256_madd_epi16(bs, ones);
        let off = _mm256_slli_epi32::<7>(_mm256_mullo_epi32(pairs, lsv));
        let sumi = _mm256_sub_epi32(sumi, off);
        let d = f16_one(x.d) * y.d;
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum8(acc)
}
