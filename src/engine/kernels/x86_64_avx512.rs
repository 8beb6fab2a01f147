//! The AVX-512 kernel set (x86_64): AVX-512 F/BW/VL with VNNI (`vpdpbusd`).
//!
//! It starts from the AVX2 set (every kernel without a wider version here
//! stays the AVX2 one) and replaces the prompt panels with panel pairs
//! ([`super::gemm::avx512`]) and the decode dots of the formats below with
//! VNNI versions (the K-quants' and IQ4_XS's in `x86_64_avx512_k.rs`).
//! Every `unsafe fn` carries `#[target_feature]`; the safe
//! wrappers are reachable only through the table built by [`avx512`], after
//! runtime detection of all the features.

use super::Kernels;

/// Whether this CPU has everything the AVX-512 set uses.
pub fn detected() -> bool {
    is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx512vnni")
}

/// The AVX-512 VNNI kernel set, if this CPU has AVX-512 F/BW/VL/VNNI (and
/// the AVX2 set's AVX2, FMA, F16C).
pub fn avx512() -> Option<Kernels> {
    if !detected() {
        return None;
    }
    let mut k = super::x86_64::avx2()?;
    k.name = "avx512-vnni";
    k.panel.pairs = Some(super::gemm::avx512::kernels());
    k.q4_0 = q4_0_dots();
    k.q4_1 = q4_1_dots();
    k.q5_0 = q5_0_dots();
    k.q8_0 = q8_0_dots();
    super::x86_64_avx512_k::install(&mut k);
    Some(k)
}

use std::arch::x86_64::*;

use super::Dots;
use crate::engine::quant::*;

// ------------------------------------------------------------- decode dots
//
// Q4_0, Q4_1, Q5_0 and Q8_0 rows go four blocks (128 weights) at a time
// through 512-bit registers: the weights' low nibbles of the four blocks in
// one register and the high nibbles in another (Q8_0: two blocks a
// register), against the activations in the same layout, prepared once per
// token for all rows in decode's row kernel. `vpdpbusd` sums u8 x i8
// products into 16 i32 lanes, four (Q8_0: eight) per block; each lane is
// converted and scaled by its block's `d_w * d_y` into a float accumulator,
// and the row's lanes are summed once at its end. Weights with an offset
// (Q4_0 `q - 8`, Q5_0 `q - 16`, Q8_0 stored as `q + 128`) subtract
// `offset * y` lane by lane, prepared with the activations, so every lane's
// integer is exact. `dot1`, `dot4` and `rows1` run the same float operations
// for every (row, token), so they agree bit for bit; against the scalar
// reference they differ only in float summation order.

/// Blocks per group.
const G: usize = 4;

/// Groups whose activation side [`rows1`] keeps on the stack (rows of up to
/// 128 * 4 * 32 = 16384 elements); longer rows go through [`dot1`] row by row.
const ROW_GROUPS: usize = 128;

/// Float accumulators: per-lane products and 4-wide offset terms.
type Acc = (__m512, __m128);

/// One format's group kernel (as the AVX2 set's `GroupDot`).
trait Wide {
    type W: Block;
    type A: Block;
    type Wg: Copy;
    type Ag: Copy;
    /// `w`: 1..=4 blocks; missing blocks are zero (add nothing).
    unsafe fn prep_w(w: &[Self::W]) -> Self::Wg;
    unsafe fn prep_a(y: &[Self::A]) -> Self::Ag;
    unsafe fn fma(w: &Self::Wg, a: &Self::Ag, acc: Acc) -> Acc;
}

/// Runs `$body` for every group `$g` of `$n` blocks with `$len` blocks in it
/// (whole groups with a constant length first, then a partial last one).
macro_rules! for_groups {
    ($n:expr, |$g:ident, $len:ident| $body:block) => {{
        let n: usize = $n;
        for $g in 0..n / G {
            let $len = G;
            $body
        }
        if n % G != 0 {
            let $g = n / G;
            let $len = n % G;
            $body
        }
    }};
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn hsum(acc: Acc) -> f32 {
    let x = acc.1;
    let r = _mm_add_ps(x, _mm_movehl_ps(x, x));
    let r = _mm_add_ss(r, _mm_movehdup_ps(r));
    _mm512_reduce_add_ps(acc.0) + _mm_cvtss_f32(r)
}

/// Four f16 values as four f32 lanes, 0 past `b.len()`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn f16x4<B>(b: &[B], f: impl Fn(&B) -> [u8; 2]) -> __m128 {
    let h = |j: usize| -> i64 {
        if j < b.len() {
            i64::from(u16::from_le_bytes(f(&b[j])))
        } else {
            0
        }
    };
    let v = h(0) | h(1) << 16 | h(2) << 32 | h(3) << 48;
    _mm_cvtph_ps(_mm_cvtsi64_si128(v))
}

/// Lane `k` of the 4-lane `x` into lanes `4k..4k+4` (`PER = 4`) or `8k..8k+8`
/// of the halves (`PER = 8`, lanes 0, 1 of `x`; 2, 3 with `HI`).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn spread<const PER: usize, const HI: bool>(x: __m128) -> __m512 {
    let idx = match (PER, HI) {
        (4, _) => _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3),
        (_, false) => _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1),
        (_, true) => _mm512_setr_epi32(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3),
    };
    _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(x))
}

/// Sixteen bytes at `p(j)` of each of the `len` (1..=4) blocks into the four
/// 128-bit lanes (zero past `len`).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn lanes16(len: usize, p: impl Fn(usize) -> *const u8) -> __m512i {
    // SAFETY (all loads): the caller passes 16 readable bytes at p(j), j < len.
    unsafe {
        let mut v = _mm512_castsi128_si512(_mm_loadu_si128(p(0).cast()));
        if len < 4 {
            v = _mm512_zextsi128_si512(_mm512_castsi512_si128(v));
        }
        if len > 1 {
            v = _mm512_inserti32x4::<1>(v, _mm_loadu_si128(p(1).cast()));
        }
        if len > 2 {
            v = _mm512_inserti32x4::<2>(v, _mm_loadu_si128(p(2).cast()));
        }
        if len > 3 {
            v = _mm512_inserti32x4::<3>(v, _mm_loadu_si128(p(3).cast()));
        }
        v
    }
}

/// Nibble weights: low nibbles (elements 0..16 of each block) and high
/// nibbles (16..32), four blocks' `qs` given.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn split_nibbles(v: __m512i) -> (__m512i, __m512i) {
    let m = _mm512_set1_epi8(0x0F);
    (
        _mm512_and_si512(v, m),
        _mm512_and_si512(_mm512_srli_epi16(v, 4), m),
    )
}

/// The activation quants of a group in the nibble layout: elements 0..16 of
/// each block in one register, 16..32 in the other.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn act_halves(len: usize, qs: impl Fn(usize) -> *const i8) -> (__m512i, __m512i) {
    // SAFETY: 32 readable bytes at qs(j) for j < len (the caller's blocks).
    unsafe {
        (
            lanes16(len, |j| qs(j).cast()),
            lanes16(len, |j| qs(j).add(16).cast()),
        )
    }
}

/// `offset * y` per lane for weights stored as `q + offset` (unsigned bytes).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn offset_terms(offset: u8, y: &[__m512i]) -> __m512i {
    let o = _mm512_set1_epi8(offset as i8);
    y.iter()
        .fold(_mm512_setzero_si512(), |c, &y| _mm512_dpbusd_epi32(c, o, y))
}

/// Q4_1 x Q8_1: `d dy Σ q qy + m s`.
struct Q41;
impl Wide for Q41 {
    type W = BlockQ4_1;
    type A = BlockQ8_1;
    type Wg = (__m512i, __m512i, __m128, __m128);
    type Ag = (__m512i, __m512i, __m128, __m128);
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn prep_w(w: &[BlockQ4_1]) -> Self::Wg {
        // SAFETY: 16 bytes of `qs` in each block.
        let (lo, hi) = split_nibbles(unsafe { lanes16(w.len(), |j| w[j].qs.as_ptr()) });
        (lo, hi, f16x4(w, |b| b.d), f16x4(w, |b| b.m))
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn prep_a(y: &[BlockQ8_1]) -> Self::Ag {
        // SAFETY: 32 quants in each block.
        let (lo, hi) = unsafe { act_halves(y.len(), |j| y[j].qs.as_ptr()) };
        (lo, hi, f16x4(y, |b| b.d), f16x4(y, |b| b.s))
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn fma(w: &Self::Wg, a: &Self::Ag, acc: Acc) -> Acc {
        let i = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w.0, a.0);
        let i = _mm512_dpbusd_epi32(i, w.1, a.1);
        let d = spread::<4, false>(_mm_mul_ps(w.2, a.2));
        (
            _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(i), acc.0),
            _mm_fmadd_ps(w.3, a.3, acc.1),
        )
    }
}

/// Q4_0 (`OFF` = 8) and Q5_0 (`OFF` = 16) x Q8_0: `d dy Σ (q - OFF) qy`.
struct Q40<const FIVE: bool>;
impl<const FIVE: bool> Wide for Q40<FIVE> {
    type W = BlockQ4_0;
    type A = BlockQ8_0;
    type Wg = (__m512i, __m512i, __m128);
    type Ag = (__m512i, __m512i, __m128, __m512i);
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn prep_w(w: &[BlockQ4_0]) -> Self::Wg {
        // SAFETY: 16 bytes of `qs` in each block.
        let (lo, hi) = split_nibbles(unsafe { lanes16(w.len(), |j| w[j].qs.as_ptr()) });
        (lo, hi, f16x4(w, |b| b.d))
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn prep_a(y: &[BlockQ8_0]) -> Self::Ag {
        // SAFETY: 32 quants in each block.
        let (lo, hi) = unsafe { act_halves(y.len(), |j| y[j].qs.as_ptr()) };
        let off = if FIVE { 16 } else { 8 };
        (lo, hi, f16x4(y, |b| b.d), offset_terms(off, &[lo, hi]))
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn fma(w: &Self::Wg, a: &Self::Ag, acc: Acc) -> Acc {
        let i = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w.0, a.0);
        let i = _mm512_sub_epi32(_mm512_dpbusd_epi32(i, w.1, a.1), a.3);
        let d = spread::<4, false>(_mm_mul_ps(w.2, a.2));
        (_mm512_fmadd_ps(d, _mm512_cvtepi32_ps(i), acc.0), acc.1)
    }
}

/// Q5_0 x Q8_0: the Q4_0 kernel with the fifth bit or-ed in by byte masks.
struct Q50;
impl Wide for Q50 {
    type W = BlockQ5_0;
    type A = BlockQ8_0;
    type Wg = (__m512i, __m512i, __m128);
    type Ag = <Q40<true> as Wide>::Ag;
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn prep_w(w: &[BlockQ5_0]) -> Self::Wg {
        // SAFETY: 16 bytes of `qs` in each block.
        let (lo, hi) = split_nibbles(unsafe { lanes16(w.len(), |j| w[j].qs.as_ptr()) });
        let (mut mlo, mut mhi) = (0u64, 0u64);
        for (j, b) in w.iter().enumerate().take(G) {
            let qh = u32::from_le_bytes(b.qh) as u64;
            mlo |= (qh & 0xFFFF) << (16 * j);
            mhi |= (qh >> 16) << (16 * j);
        }
        // q < 16, so adding 16 where the bit is set is or-ing it in.
        let bit = _mm512_set1_epi8(0x10);
        (
            _mm512_mask_add_epi8(lo, mlo, lo, bit),
            _mm512_mask_add_epi8(hi, mhi, hi, bit),
            f16x4(w, |b| b.d),
        )
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn prep_a(y: &[BlockQ8_0]) -> Self::Ag {
        // SAFETY: as Q4_0's.
        unsafe { Q40::<true>::prep_a(y) }
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn fma(w: &Self::Wg, a: &Self::Ag, acc: Acc) -> Acc {
        // SAFETY: the same arithmetic as Q4_0's (offset 16 in `a`).
        unsafe { Q40::<true>::fma(w, a, acc) }
    }
}

/// Q8_0 x Q8_0: weights as `q + 128` (`q ^ 0x80`), two blocks a register.
struct Q80;
impl Wide for Q80 {
    type W = BlockQ8_0;
    type A = BlockQ8_0;
    type Wg = (__m512i, __m512i, __m128);
    type Ag = (__m512i, __m512i, __m128, __m512i, __m512i);
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn prep_w(w: &[BlockQ8_0]) -> Self::Wg {
        let flip = _mm512_set1_epi8(-128);
        // SAFETY: 32 quants in each block.
        let (a, b) = unsafe { pairs32(w.len(), |j| w[j].qs.as_ptr()) };
        (
            _mm512_xor_si512(a, flip),
            _mm512_xor_si512(b, flip),
            f16x4(w, |b| b.d),
        )
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn prep_a(y: &[BlockQ8_0]) -> Self::Ag {
        // SAFETY: 32 quants in each block.
        let (a, b) = unsafe { pairs32(y.len(), |j| y[j].qs.as_ptr()) };
        (
            a,
            b,
            f16x4(y, |b| b.d),
            offset_terms(128, &[a]),
            offset_terms(128, &[b]),
        )
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn fma(w: &Self::Wg, a: &Self::Ag, acc: Acc) -> Acc {
        let z = _mm512_setzero_si512();
        let i0 = _mm512_sub_epi32(_mm512_dpbusd_epi32(z, w.0, a.0), a.3);
        let i1 = _mm512_sub_epi32(_mm512_dpbusd_epi32(z, w.1, a.1), a.4);
        let d = _mm_mul_ps(w.2, a.2);
        let acc0 = _mm512_fmadd_ps(spread::<8, false>(d), _mm512_cvtepi32_ps(i0), acc.0);
        (
            _mm512_fmadd_ps(spread::<8, true>(d), _mm512_cvtepi32_ps(i1), acc0),
            acc.1,
        )
    }
}

/// The 32 quants of blocks 0, 1 in one register and of 2, 3 in another
/// (zero past `len`, 1..=4).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn pairs32(len: usize, qs: impl Fn(usize) -> *const i8) -> (__m512i, __m512i) {
    // SAFETY: 32 readable bytes at qs(j) for j < len.
    unsafe {
        let ld = |j: usize| {
            if j < len {
                _mm256_loadu_si256(qs(j).cast())
            } else {
                _mm256_setzero_si256()
            }
        };
        let two = |a, b| _mm512_inserti64x4::<1>(_mm512_castsi256_si512(a), b);
        (two(ld(0), ld(1)), two(ld(2), ld(3)))
    }
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn dot1<K: Wide>(w: &[K::W], y: &[K::A]) -> f32 {
    let n = w.len().min(y.len());
    let mut acc: Acc = (_mm512_setzero_ps(), _mm_setzero_ps());
    for_groups!(n, |g, len| {
        let (wg, yg) = (&w[g * G..g * G + len], &y[g * G..g * G + len]);
        // SAFETY: the caller enabled the target features.
        acc = unsafe { K::fma(&K::prep_w(wg), &K::prep_a(yg), acc) };
    });
    hsum(acc)
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn dot4<K: Wide>(w: &[K::W], y: [&[K::A]; 4]) -> [f32; 4] {
    let n = w.len().min(y.iter().map(|y| y.len()).min().unwrap_or(0));
    let mut acc: [Acc; 4] = [(_mm512_setzero_ps(), _mm_setzero_ps()); 4];
    for_groups!(n, |g, len| {
        // SAFETY: as above.
        let wp = unsafe { K::prep_w(&w[g * G..g * G + len]) };
        for (acc, y) in acc.iter_mut().zip(y) {
            // SAFETY: as above.
            *acc = unsafe { K::fma(&wp, &K::prep_a(&y[g * G..g * G + len]), *acc) };
        }
    });
    acc.map(|a| hsum(a))
}

/// `out[r] = dot(w row r, y)`: the activation side of every group prepared
/// once for all rows; the same float operations as [`dot1`] per row.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn rows1<K: Wide>(w: &[K::W], y: &[K::A], out: &mut [f32]) {
    let nb = y.len();
    if nb == 0 {
        out.fill(0.0);
        return;
    }
    let rows = w.chunks_exact(nb);
    if nb.div_ceil(G) > ROW_GROUPS {
        for (o, wr) in out.iter_mut().zip(rows) {
            // SAFETY: the caller enabled the target features.
            *o = unsafe { dot1::<K>(wr, y) };
        }
        return;
    }
    let mut ag = [const { std::mem::MaybeUninit::<K::Ag>::uninit() }; ROW_GROUPS];
    for_groups!(nb, |g, len| {
        // SAFETY: as above.
        ag[g].write(unsafe { K::prep_a(&y[g * G..g * G + len]) });
    });
    for (o, wr) in out.iter_mut().zip(rows) {
        let mut acc: Acc = (_mm512_setzero_ps(), _mm_setzero_ps());
        for_groups!(nb, |g, len| {
            let wg = &wr[g * G..g * G + len];
            super::prefetch_ahead(wg);
            // SAFETY: groups 0..nb.div_ceil(G) were written above; features
            // as above.
            acc = unsafe { K::fma(&K::prep_w(wg), ag[g].assume_init_ref(), acc) };
        });
        *o = hsum(acc);
    }
}

macro_rules! wide_kernels {
    ($k:ty, $dots:ident) => {
        fn $dots() -> Dots<<$k as Wide>::W, <$k as Wide>::A> {
            type W = <$k as Wide>::W;
            type A = <$k as Wide>::A;
            // SAFETY (all three): installed only in the table built by
            // `avx512()`, after detecting every feature enabled here; the
            // implementations index only within their slices.
            fn d1(w: &[W], y: &[A]) -> f32 {
                unsafe { dot1::<$k>(w, y) }
            }
            fn d4(w: &[W], y: [&[A]; 4]) -> [f32; 4] {
                unsafe { dot4::<$k>(w, y) }
            }
            fn r1(w: &[W], y: &[A], out: &mut [f32]) {
                unsafe { rows1::<$k>(w, y, out) }
            }
            Dots {
                dot1: d1,
                dot4: d4,
                rows1: Some(r1),
            }
        }
    };
}
wide_kernels!(Q40<false>, q4_0_dots);
wide_kernels!(Q41, q4_1_dots);
wide_kernels!(Q50, q5_0_dots);
wide_kernels!(Q80, q8_0_dots);
