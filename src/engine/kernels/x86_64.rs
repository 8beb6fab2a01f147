//! AVX2 + FMA + F16C kernels (x86_64).
//!
//! Every `unsafe fn` here carries `#[target_feature]`; the safe wrappers are
//! private and reachable only through the table returned by [`avx2`], which
//! is built after runtime detection of all three features.

use std::arch::x86_64::*;

use super::{Dots, Kernels, dot4_by_dot1};
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
            rows1: Some(q4_0_rows1),
        },
        q4_1: Dots {
            dot1: q4_1_dot1,
            dot4: q4_1_dot4,
            rows1: Some(q4_1_rows1),
        },
        q5_0: Dots {
            dot1: q5_0_dot1,
            dot4: q5_0_dot4,
            rows1: Some(q5_0_rows1),
        },
        q5_1: dot4_by_dot1!(q5_1_dot1, BlockQ5_1, BlockQ8_1),
        q8_0: Dots {
            dot1: q8_0_dot1,
            dot4: q8_0_dot4,
            rows1: Some(q8_0_rows1),
        },
        q2k: Dots {
            dot1: q2k_dot1,
            dot4: q2k_dot4,
            rows1: None,
        },
        q3k: Dots {
            dot1: q3k_dot1,
            dot4: q3k_dot4,
            rows1: None,
        },
        q4k: dot4_by_dot1!(q4k_dot1, BlockQ4K, BlockQ8K),
        q5k: dot4_by_dot1!(q5k_dot1, BlockQ5K, BlockQ8K),
        q6k: dot4_by_dot1!(q6k_dot1, BlockQ6K, BlockQ8K),
        q8k: dot4_by_dot1!(q8k_dot1, BlockQ8K, BlockQ8K),
        f32: Dots {
            dot1: f32_dot1,
            dot4: f32_dot4,
            rows1: None,
        },
        f16: dot4_by_dot1!(f16_dot1, u8, f32),
        bf16: dot4_by_dot1!(bf16_dot1, u8, f32),
        quantize_q8_0,
        quantize_q8_1,
        quantize_q8k,
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
    ($name:ident, $imp:ident, $w:ty, $a:ty, rows) => {
        fn $name(w: &[$w], y: &[$a], out: &mut [f32]) {
            // SAFETY: see above; the implementation indexes only within
            // `w`'s whole rows of `y.len()` blocks and `out`.
            unsafe { $imp(w, y, out) }
        }
    };
}

wrap!(q4_0_dot1, q4_0_dot1_imp, BlockQ4_0, BlockQ8_0, 1);
wrap!(q4_0_dot4, q4_0_dot4_imp, BlockQ4_0, BlockQ8_0, 4);
wrap!(q4_0_rows1, q4_0_rows1_imp, BlockQ4_0, BlockQ8_0, rows);
wrap!(q4_1_rows1, q4_1_rows1_imp, BlockQ4_1, BlockQ8_1, rows);
wrap!(q5_0_rows1, q5_0_rows1_imp, BlockQ5_0, BlockQ8_0, rows);
wrap!(q8_0_rows1, q8_0_rows1_imp, BlockQ8_0, BlockQ8_0, rows);
wrap!(q4_1_dot1, q4_1_dot1_imp, BlockQ4_1, BlockQ8_1, 1);
wrap!(q4_1_dot4, q4_1_dot4_imp, BlockQ4_1, BlockQ8_1, 4);
wrap!(q8_0_dot1, q8_0_dot1_imp, BlockQ8_0, BlockQ8_0, 1);
wrap!(q8_0_dot4, q8_0_dot4_imp, BlockQ8_0, BlockQ8_0, 4);
wrap!(q5_0_dot1, q5_0_dot1_imp, BlockQ5_0, BlockQ8_0, 1);
wrap!(q5_0_dot4, q5_0_dot4_imp, BlockQ5_0, BlockQ8_0, 4);
wrap!(q2k_dot1, q2k_dot1_imp, BlockQ2K, BlockQ8K, 1);
wrap!(q3k_dot1, q3k_dot1_imp, BlockQ3K, BlockQ8K, 1);
wrap!(q2k_dot4, q2k_dot4_imp, BlockQ2K, BlockQ8K, 4);
wrap!(q3k_dot4, q3k_dot4_imp, BlockQ3K, BlockQ8K, 4);
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

// ------------------------------------------------------------- four-block groups
//
// Q4_0, Q4_1, Q5_0 and Q8_0 rows are summed four blocks at a time: each block's
// exact integer dot product ends in one lane of a register (two horizontal
// adds for the four), converted once and multiplied by the four blocks'
// combined f32 scales in one fused multiply-add. That is about half the
// instructions of one float conversion, scale broadcast and FMA per block,
// and rounds like ggml's repacked kernels (one product per whole block). The
// one-token (`dot1`) and four-token (`dot4`) kernels run the same float
// operations for every (row, token), so they agree bit for bit. A row's last, partial group is padded with zero blocks (scale 0,
// integers 0), which adds exactly nothing.

/// Blocks per group.
pub(super) const G: usize = 4;

/// Lane k = the sum of the eight lanes of the k-th argument.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn sum4_i32(v: [__m256i; G]) -> __m128i {
    let t = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
    _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1))
}

/// The four lanes summed in a fixed order: (x0 + x2) + (x1 + x3).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn hsum_f32x4(x: __m128) -> f32 {
    let r = _mm_add_ps(x, _mm_movehl_ps(x, x));
    _mm_cvtss_f32(_mm_add_ss(r, _mm_movehdup_ps(r)))
}

/// Four f16 values (little-endian bytes) as four f32 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn f16x4(h: [[u8; 2]; G]) -> __m128 {
    let v = h
        .iter()
        .rev()
        .fold(0u64, |v, b| (v << 16) | u64::from(u16::from_le_bytes(*b)));
    _mm_cvtph_ps(_mm_cvtsi64_si128(v as i64))
}

/// Eight f16 values given as four pairs (`[a0 b0 a1 b1 ...]` in memory) as
/// `[a0 a1 a2 a3 | b0 b1 b2 b3]`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn f16_pairs(h: [[u8; 4]; G]) -> __m256 {
    let v = _mm_setr_epi32(
        i32::from_le_bytes(h[0]),
        i32::from_le_bytes(h[1]),
        i32::from_le_bytes(h[2]),
        i32::from_le_bytes(h[3]),
    );
    let f = _mm256_cvtph_ps(v);
    _mm256_permutevar8x32_ps(f, _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7))
}

/// 16 packed nibble bytes -> 32 bytes in 0..16, low nibbles first (ggml's
/// element order): one broadcast load, one variable shift, one mask.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn nibbles_u(qs: &[u8; 16]) -> __m256i {
    // SAFETY: 16 readable bytes.
    let t = unsafe { _mm_loadu_si128(qs.as_ptr().cast()) };
    let b = _mm256_srlv_epi64(
        _mm256_broadcastsi128_si256(t),
        _mm256_setr_epi64x(0, 0, 4, 4),
    );
    _mm256_and_si256(b, _mm256_set1_epi8(0x0F))
}

/// Block `j` of a group's f16 field, 0 past the group's end.
#[inline(always)]
fn field<B, const N: usize>(b: &[B], j: usize, f: impl Fn(&B) -> [u8; N]) -> [u8; N] {
    if j < b.len() { f(&b[j]) } else { [0; N] }
}

/// Activation blocks with 32 signed quants (Q8_0, Q8_1).
pub(super) trait Quants: Block {
    fn qs(&self) -> &[i8; 32];
}
impl Quants for BlockQ8_0 {
    fn qs(&self) -> &[i8; 32] {
        &self.qs
    }
}
impl Quants for BlockQ8_1 {
    fn qs(&self) -> &[i8; 32] {
        &self.qs
    }
}

/// The quants of a group's activation blocks, zero past its end.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn load_q<A: Quants>(y: &[A]) -> [__m256i; G] {
    let mut q = [_mm256_setzero_si256(); G];
    for j in 0..G {
        if j < y.len() {
            // SAFETY: block fields are fixed-size arrays.
            q[j] = unsafe { load32(y[j].qs()) };
        }
    }
    q
}

/// One format's group kernel: the weight side of four blocks prepared once,
/// the activation side split into its quants (loaded where used) and the
/// rest (`Ag`: scales, offset sums), then combined into the accumulator.
/// Decode's row kernel prepares every group's `Ag` once for all rows. A
/// group shorter than four (a row's end) is completed with zero vectors and
/// zero scales, which add exactly nothing.
pub(super) trait GroupDot {
    type W: Block;
    type A: Quants;
    type Wg: Copy;
    type Ag: Copy;
    unsafe fn prep_w(w: &[Self::W]) -> Self::Wg;
    unsafe fn prep_a(y: &[Self::A]) -> Self::Ag;
    unsafe fn fma(w: &Self::Wg, q: &[__m256i; G], y: &Self::Ag, acc: __m128) -> __m128;
}

/// Runs `$body` for every group `$g` of `$n` blocks with `$len` blocks in it:
/// the whole groups (a constant length, so the per-block checks fold away),
/// then the row's partial last one.
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

/// dot1 / dot4 for one [`GroupDot`] format.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn group_dot1<K: GroupDot>(w: &[K::W], y: &[K::A]) -> f32 {
    let n = w.len().min(y.len());
    let mut acc = _mm_setzero_ps();
    for_groups!(n, |g, len| {
        let (wg, yg) = (&w[g * G..g * G + len], &y[g * G..g * G + len]);
        // SAFETY: the caller enabled the target features.
        acc = unsafe { K::fma(&K::prep_w(wg), &load_q(yg), &K::prep_a(yg), acc) };
    });
    hsum_f32x4(acc)
}

/// Groups whose activation side [`group_rows1`] keeps on the stack (rows of
/// up to 256 * 4 * 32 = 32768 elements); longer rows go through
/// [`group_dot1`] row by row.
pub(super) const ROW_GROUPS: usize = 256;

/// `out[r] = dot(w row r, y)` for one token: the activation side of every
/// group is prepared once for all rows (decode's matrix-vector products).
/// The same float operations as [`group_dot1`] per row, so the same bits.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn group_rows1<K: GroupDot>(w: &[K::W], y: &[K::A], out: &mut [f32]) {
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
    let mut ag = [const { std::mem::MaybeUninit::<K::Ag>::uninit() }; ROW_GROUPS];
    for_groups!(nb, |g, len| {
        // SAFETY: as above.
        ag[g].write(unsafe { K::prep_a(&y[g * G..g * G + len]) });
    });
    for (o, wr) in out.iter_mut().zip(rows) {
        let mut acc = _mm_setzero_ps();
        for_groups!(nb, |g, len| {
            super::prefetch_ahead(&wr[g * G..g * G + len]);
            let yg = &y[g * G..g * G + len];
            // SAFETY: groups 0..nb.div_ceil(G) were written above; features
            // as above.
            acc = unsafe {
                let a = ag[g].assume_init_ref();
                K::fma(&K::prep_w(&wr[g * G..g * G + len]), &load_q(yg), a, acc)
            };
        });
        *o = hsum_f32x4(acc);
    }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn group_dot4<K: GroupDot>(w: &[K::W], y: [&[K::A]; 4]) -> [f32; 4] {
    let n = w.len().min(y.iter().map(|y| y.len()).min().unwrap());
    let mut acc = [_mm_setzero_ps(); 4];
    for_groups!(n, |g, len| {
        // SAFETY: as above.
        let wp = unsafe { K::prep_w(&w[g * G..g * G + len]) };
        for t in 0..4 {
            let yg = &y[t][g * G..g * G + len];
            // SAFETY: as above.
            acc[t] = unsafe { K::fma(&wp, &load_q(yg), &K::prep_a(yg), acc[t]) };
        }
    });
    [
        hsum_f32x4(acc[0]),
        hsum_f32x4(acc[1]),
        hsum_f32x4(acc[2]),
        hsum_f32x4(acc[3]),
    ]
}

/// Four Q8_0 activation blocks for weights stored as `q + offset`
/// (unsigned): per block `offset * sum(y)` to subtract, and the scales.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn offset_group(y: &[BlockQ8_0], offset: i8) -> (__m128i, __m128) {
    // SAFETY: the features are enabled here too.
    let q = unsafe { load_q(y) };
    let one = _mm256_set1_epi16(1);
    let c = q.map(|q| _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(offset), q), one));
    (
        sum4_i32(c),
        f16x4(std::array::from_fn(|j| field(y, j, |b| b.d))),
    )
}

/// Q4_0 x Q8_0: `sum (q - 8) * y = sum q * y - 8 * sum y`, q unsigned.
pub(super) struct Q40;
impl GroupDot for Q40 {
    type W = BlockQ4_0;
    type A = BlockQ8_0;
    type Wg = ([__m256i; G], __m128);
    type Ag = (__m128i, __m128);
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn prep_w(w: &[BlockQ4_0]) -> Self::Wg {
        let mut q = [_mm256_setzero_si256(); G];
        for j in 0..G {
            // SAFETY: block fields are fixed-size arrays.
            if j < w.len() {
                q[j] = unsafe { nibbles_u(&w[j].qs) };
            }
        }
        (q, f16x4(std::array::from_fn(|j| field(w, j, |b| b.d))))
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn prep_a(y: &[BlockQ8_0]) -> Self::Ag {
        // SAFETY: the features are enabled here too.
        unsafe { offset_group(y, 8) }
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn fma(w: &Self::Wg, q: &[__m256i; G], y: &Self::Ag, acc: __m128) -> __m128 {
        let one = _mm256_set1_epi16(1);
        let s: [__m256i; G] =
            std::array::from_fn(|j| _mm256_madd_epi16(_mm256_maddubs_epi16(w.0[j], q[j]), one));
        let d = _mm_mul_ps(w.1, y.1);
        _mm_fmadd_ps(d, _mm_cvtepi32_ps(_mm_sub_epi32(sum4_i32(s), y.0)), acc)
    }
}

/// Q5_0 x Q8_0: as Q4_0 with five-bit q and offset 16.
pub(super) struct Q50;
impl GroupDot for Q50 {
    type W = BlockQ5_0;
    type A = BlockQ8_0;
    type Wg = ([__m256i; G], __m128);
    type Ag = (__m128i, __m128);
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn prep_w(w: &[BlockQ5_0]) -> Self::Wg {
        let mut q = [_mm256_setzero_si256(); G];
        for j in 0..G {
            if j < w.len() {
                // SAFETY: block fields are fixed-size arrays.
                let lo = unsafe { nibbles_u(&w[j].qs) };
                let hi = _mm256_and_si256(bytes_from_bits(w[j].qh), _mm256_set1_epi8(0x10));
                q[j] = _mm256_or_si256(lo, hi);
            }
        }
        (q, f16x4(std::array::from_fn(|j| field(w, j, |b| b.d))))
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn prep_a(y: &[BlockQ8_0]) -> Self::Ag {
        // SAFETY: the features are enabled here too.
        unsafe { offset_group(y, 16) }
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn fma(w: &Self::Wg, q: &[__m256i; G], y: &Self::Ag, acc: __m128) -> __m128 {
        // SAFETY: the same arithmetic as Q4_0's (q unsigned, offset sums in `y`).
        unsafe { Q40::fma(w, q, y, acc) }
    }
}

/// Q4_1 x Q8_1: `sum (d q + m) * dy qy = d dy sum q qy + m s`.
pub(super) struct Q41;
impl GroupDot for Q41 {
    type W = BlockQ4_1;
    type A = BlockQ8_1;
    type Wg = ([__m256i; G], __m256);
    type Ag = __m256;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn prep_w(w: &[BlockQ4_1]) -> Self::Wg {
        let mut q = [_mm256_setzero_si256(); G];
        let mut dm = [[0u8; 4]; G];
        for j in 0..G {
            // SAFETY: block fields are fixed-size arrays.
            if j < w.len() {
                q[j] = unsafe { nibbles_u(&w[j].qs) };
                dm[j] = [w[j].d[0], w[j].d[1], w[j].m[0], w[j].m[1]];
            }
        }
        (q, f16_pairs(dm))
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn prep_a(y: &[BlockQ8_1]) -> Self::Ag {
        f16_pairs(std::array::from_fn(|j| {
            field(y, j, |b| [b.d[0], b.d[1], b.s[0], b.s[1]])
        }))
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn fma(w: &Self::Wg, q: &[__m256i; G], y: &Self::Ag, acc: __m128) -> __m128 {
        let one = _mm256_set1_epi16(1);
        let s: [__m256i; G] =
            std::array::from_fn(|j| _mm256_madd_epi16(_mm256_maddubs_epi16(w.0[j], q[j]), one));
        let d = _mm_mul_ps(_mm256_castps256_ps128(w.1), _mm256_castps256_ps128(*y));
        let acc = _mm_fmadd_ps(d, _mm_cvtepi32_ps(sum4_i32(s)), acc);
        _mm_fmadd_ps(
            _mm256_extractf128_ps(w.1, 1),
            _mm256_extractf128_ps(*y, 1),
            acc,
        )
    }
}

/// Q8_0 x Q8_0 (sign trick: |x| times y with x's sign).
pub(super) struct Q80;
impl GroupDot for Q80 {
    type W = BlockQ8_0;
    type A = BlockQ8_0;
    type Wg = ([__m256i; G], __m128);
    type Ag = __m128;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn prep_w(w: &[BlockQ8_0]) -> Self::Wg {
        // SAFETY: the features are enabled here too.
        let q = unsafe { load_q(w) };
        (q, f16x4(std::array::from_fn(|j| field(w, j, |b| b.d))))
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn prep_a(y: &[BlockQ8_0]) -> Self::Ag {
        f16x4(std::array::from_fn(|j| field(y, j, |b| b.d)))
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn fma(w: &Self::Wg, q: &[__m256i; G], y: &Self::Ag, acc: __m128) -> __m128 {
        let one = _mm256_set1_epi16(1);
        let s: [__m256i; G] = std::array::from_fn(|j| {
            let (x, q) = (w.0[j], q[j]);
            let p = _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(q, x));
            _mm256_madd_epi16(p, one)
        });
        let d = _mm_mul_ps(w.1, *y);
        _mm_fmadd_ps(d, _mm_cvtepi32_ps(sum4_i32(s)), acc)
    }
}

macro_rules! group_kernels {
    ($k:ty, $dot1:ident, $dot4:ident, $rows1:ident) => {
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn $dot1(w: &[<$k as GroupDot>::W], y: &[<$k as GroupDot>::A]) -> f32 {
            // SAFETY: features enabled on this function.
            unsafe { group_dot1::<$k>(w, y) }
        }
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn $dot4(w: &[<$k as GroupDot>::W], y: [&[<$k as GroupDot>::A]; 4]) -> [f32; 4] {
            // SAFETY: as above.
            unsafe { group_dot4::<$k>(w, y) }
        }
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn $rows1(w: &[<$k as GroupDot>::W], y: &[<$k as GroupDot>::A], out: &mut [f32]) {
            // SAFETY: as above.
            unsafe { group_rows1::<$k>(w, y, out) }
        }
    };
}
group_kernels!(Q40, q4_0_dot1_imp, q4_0_dot4_imp, q4_0_rows1_imp);
group_kernels!(Q41, q4_1_dot1_imp, q4_1_dot4_imp, q4_1_rows1_imp);
group_kernels!(Q80, q8_0_dot1_imp, q8_0_dot4_imp, q8_0_rows1_imp);
group_kernels!(Q50, q5_0_dot1_imp, q5_0_dot4_imp, q5_0_rows1_imp);

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

// ------------------------------------------------------------- Q4_K

/// The eight 6-bit scales and mins of a Q4_K/Q5_K block as 16 bytes
/// `[sc0..8, m0..8]` (the packing `scale_min_k4` reads one at a time).
#[inline(always)]
pub(super) fn k4_scales_mins(q: &[u8; K_SCALE_SIZE]) -> [u32; 4] {
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

/// Transposes eight registers of 32-bit lanes: lane j of result i is lane
/// i of `r[j]` (pure data movement, so integer lanes pass through the float
/// shuffles unchanged). Used by attention's scores and the panel interleave.
#[inline]
#[target_feature(enable = "avx")]
pub(crate) fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
    let t0 = _mm256_unpacklo_ps(r[0], r[1]);
    let t1 = _mm256_unpackhi_ps(r[0], r[1]);
    let t2 = _mm256_unpacklo_ps(r[2], r[3]);
    let t3 = _mm256_unpackhi_ps(r[2], r[3]);
    let t4 = _mm256_unpacklo_ps(r[4], r[5]);
    let t5 = _mm256_unpackhi_ps(r[4], r[5]);
    let t6 = _mm256_unpacklo_ps(r[6], r[7]);
    let t7 = _mm256_unpackhi_ps(r[6], r[7]);
    let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let s1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
    let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let s3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
    let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let s5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
    let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let s7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
    [
        _mm256_permute2f128_ps::<0x20>(s0, s4),
        _mm256_permute2f128_ps::<0x20>(s1, s5),
        _mm256_permute2f128_ps::<0x20>(s2, s6),
        _mm256_permute2f128_ps::<0x20>(s3, s7),
        _mm256_permute2f128_ps::<0x31>(s0, s4),
        _mm256_permute2f128_ps::<0x31>(s1, s5),
        _mm256_permute2f128_ps::<0x31>(s2, s6),
        _mm256_permute2f128_ps::<0x31>(s3, s7),
    ]
}

// ------------------------------------------------------------- Q2_K, Q3_K
//
// Both store 2 low bits per weight: byte `32 n + l` of `qs` holds element
// `128 n + 32 j + l` in bits `2 j`, `2 j + 1` (n = 0, 1; j = 0..4), and one
// scale per 16 elements. A 32-byte load of `qs` shifted by `2 j` and masked
// gives the 32 elements of group `4 n + j` in order; `maddubs` against the
// activations leaves elements 0..16 of the group in the low 128 bits and
// 16..32 in the high ones, so one i16 scale per half (scales `2 g`,
// `2 g + 1`) multiplies them in `madd`.

/// Per 128-bit half, a `pshufb` mask broadcasting i16 element `e0` (low
/// half) or `e1` (high half) of that half.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn pick_pair(e0: i16, e1: i16) -> __m256i {
    let pick = |e: i16| _mm_set1_epi16(((2 * e + 1) << 8) | (2 * e));
    _mm256_set_m128i(pick(e1), pick(e0))
}

/// The eight i32 lanes summed.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn hsum_i32x8(v: __m256i) -> i32 {
    let x = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    let x = _mm_add_epi32(x, _mm_unpackhi_epi64(x, x));
    _mm_cvtsi128_si32(_mm_add_epi32(x, _mm_shuffle_epi32(x, 1)))
}

/// Sixteen i16 scales (element `i` = scale of elements `16 i..16 i + 16`)
/// as two vectors holding scales 0..8 and 8..16 in both halves, plus the
/// masks picking scales `2 g`, `2 g + 1` (mod 8) for group `g` (mod 4).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn k2_scale_halves(sc16: __m256i) -> ([__m256i; 2], [__m256i; 4]) {
    (
        [
            _mm256_permute2x128_si256(sc16, sc16, 0x00),
            _mm256_permute2x128_si256(sc16, sc16, 0x11),
        ],
        [
            pick_pair(0, 1),
            pick_pair(2, 3),
            pick_pair(4, 5),
            pick_pair(6, 7),
        ],
    )
}

/// `sum_is sc_is * sum16(u * y)` over one block for each of `N` tokens
/// (the weights unpacked once), u = the two low bits plus, with `hmask`
/// (Q3_K), 4 times bit `g` of each hmask byte for group g.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn k2_sum<const N: usize>(
    qs: &[u8; QK_K / 4],
    hmask: Option<__m256i>,
    y: [&BlockQ8K; N],
    sc: [__m256i; 2],
    picks: [__m256i; 4],
) -> [__m256i; N] {
    let (m3, one) = (_mm256_set1_epi8(3), _mm256_set1_epi8(1));
    let mut sumi = [_mm256_setzero_si256(); N];
    for n in 0..2 {
        // SAFETY: 32-byte loads inside qs (64 bytes) and y.qs (256 bytes).
        let q = unsafe { _mm256_loadu_si256(qs.as_ptr().add(32 * n).cast()) };
        for j in 0..4 {
            let mut w = _mm256_and_si256(_mm256_srl_epi16(q, _mm_cvtsi32_si128(2 * j as i32)), m3);
            if let Some(hm) = hmask {
                // Shifting 16-bit lanes by g < 8 leaves bit g of each byte at its bit 0.
                let b = _mm256_srl_epi16(hm, _mm_cvtsi32_si128((4 * n + j) as i32));
                w = _mm256_or_si256(w, _mm256_slli_epi16(_mm256_and_si256(b, one), 2));
            }
            let s = _mm256_shuffle_epi8(sc[n], picks[j]);
            for t in 0..N {
                // SAFETY: as above.
                let yv =
                    unsafe { _mm256_loadu_si256(y[t].qs.as_ptr().add(128 * n + 32 * j).cast()) };
                let p = _mm256_maddubs_epi16(w, yv);
                sumi[t] = _mm256_add_epi32(sumi[t], _mm256_madd_epi16(s, p));
            }
        }
    }
    sumi
}

/// Q2_K x Q8_K for `N` tokens: `d dy sum sc * sum16(q y) - dmin dy sum m * bsum16`.
/// Every token gets the same float operations whatever `N`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q2k_dotn<const N: usize>(w: &[BlockQ2K], y: [&[BlockQ8K]; N]) -> [f32; N] {
    let m4 = _mm_set1_epi8(0x0F);
    let nb = y.iter().fold(w.len(), |n, y| n.min(y.len()));
    let mut acc = [_mm256_setzero_ps(); N];
    let mut summ = [0.0f32; N];
    for (b, x) in w[..nb].iter().enumerate() {
        // SAFETY: scales is 16 bytes.
        let raw = unsafe { _mm_loadu_si128(x.scales.as_ptr().cast()) };
        let sc16 = _mm256_cvtepu8_epi16(_mm_and_si128(raw, m4));
        let mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(raw, 4), m4));
        let (sc, picks) = k2_scale_halves(sc16);
        let yb: [&BlockQ8K; N] = std::array::from_fn(|t| &y[t][b]);
        // SAFETY: the features are enabled here too.
        let sumi = unsafe { k2_sum(&x.qs, None, yb, sc, picks) };
        for t in 0..N {
            // SAFETY: bsums is 16 i16.
            let bs = unsafe { _mm256_loadu_si256(yb[t].bsums.as_ptr().cast()) };
            let mins_sum = hsum_i32x8(_mm256_madd_epi16(mins, bs));
            let d = _mm256_set1_ps(f16_one(x.d) * yb[t].d);
            acc[t] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi[t]), acc[t]);
            summ[t] += f16_one(x.dmin) * yb[t].d * mins_sum as f32;
        }
    }
    std::array::from_fn(|t| hsum_f32x8(acc[t]) - summ[t])
}

/// The 16 six-bit scales of a Q3_K block minus 32, as i8 (what
/// `quant::scales_q3k` unpacks one at a time, four at a time in u32 words:
/// low nibbles from bytes 0..8, two high bits from bytes 8..12).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn q3k_scales(s: &[u8; 12]) -> __m128i {
    let word = |i: usize| u32::from_le_bytes([s[4 * i], s[4 * i + 1], s[4 * i + 2], s[4 * i + 3]]);
    let (a0, a1, t) = (word(0), word(1), word(2));
    let (lo4, lo2) = (0x0F0F_0F0Fu32, 0x0303_0303u32);
    let w = [
        (a0 & lo4) | ((t & lo2) << 4),
        (a1 & lo4) | (((t >> 2) & lo2) << 4),
        ((a0 >> 4) & lo4) | (((t >> 4) & lo2) << 4),
        ((a1 >> 4) & lo4) | (((t >> 6) & lo2) << 4),
    ];
    let v = _mm_setr_epi32(w[0] as i32, w[1] as i32, w[2] as i32, w[3] as i32);
    _mm_sub_epi8(v, _mm_set1_epi8(32))
}

/// Q3_K x Q8_K for `N` tokens: q = low2 + 4 * hbit - 4 in -4..4, six-bit
/// scales minus 32: `d dy sum s * (sum16(u y) - 4 bsum16)` with
/// u = low2 + 4 * hbit unsigned.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q3k_dotn<const N: usize>(w: &[BlockQ3K], y: [&[BlockQ8K]; N]) -> [f32; N] {
    let nb = y.iter().fold(w.len(), |n, y| n.min(y.len()));
    let mut acc = [_mm256_setzero_ps(); N];
    for (b, x) in w[..nb].iter().enumerate() {
        let sc16 = _mm256_cvtepi8_epi16(q3k_scales(&x.scales));
        // SAFETY: 32 bytes of hmask.
        let hm = unsafe { _mm256_loadu_si256(x.hmask.as_ptr().cast()) };
        let (sc, picks) = k2_scale_halves(sc16);
        let yb: [&BlockQ8K; N] = std::array::from_fn(|t| &y[t][b]);
        // SAFETY: the features are enabled here too.
        let sumi = unsafe { k2_sum(&x.qs, Some(hm), yb, sc, picks) };
        for t in 0..N {
            // SAFETY: bsums is 16 i16.
            let bs = unsafe { _mm256_loadu_si256(yb[t].bsums.as_ptr().cast()) };
            let offset = _mm256_slli_epi32(_mm256_madd_epi16(sc16, bs), 2);
            let s = _mm256_sub_epi32(sumi[t], offset);
            let d = _mm256_set1_ps(f16_one(x.d) * yb[t].d);
            acc[t] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(s), acc[t]);
        }
    }
    std::array::from_fn(|t| hsum_f32x8(acc[t]))
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q2k_dot1_imp(w: &[BlockQ2K], y: &[BlockQ8K]) -> f32 {
    // SAFETY: features enabled on this function.
    unsafe { q2k_dotn::<1>(w, [y])[0] }
}
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q2k_dot4_imp(w: &[BlockQ2K], y: [&[BlockQ8K]; 4]) -> [f32; 4] {
    // SAFETY: as above.
    unsafe { q2k_dotn::<4>(w, y) }
}
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q3k_dot1_imp(w: &[BlockQ3K], y: &[BlockQ8K]) -> f32 {
    // SAFETY: as above.
    unsafe { q3k_dotn::<1>(w, [y])[0] }
}
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q3k_dot4_imp(w: &[BlockQ3K], y: [&[BlockQ8K]; 4]) -> [f32; 4] {
    // SAFETY: as above.
    unsafe { q3k_dotn::<4>(w, y) }
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

/// Q8_K activations, byte for byte the scalar quantizer's: the value of
/// largest magnitude (the first one on ties) maps to -127, every value is
/// rounded half away from zero, plus the sums of each 16.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn quantize_q8k_imp(x: &[f32], out: &mut [BlockQ8K]) {
    let abs = _mm256_set1_ps(-0.0);
    for (b, x) in out.iter_mut().zip(x.chunks_exact(QK_K)) {
        let x: &[f32; QK_K] = x.try_into().unwrap();
        // SAFETY (all loads below): `x` has QK_K values; every load reads 8
        // of them at a multiple of 8.
        let ld = |i: usize| unsafe { _mm256_loadu_ps(x.as_ptr().add(i)) };
        let mut m = _mm256_setzero_ps();
        for i in (0..QK_K).step_by(8) {
            // max_ps returns its second operand when the first is NaN: NaNs
            // are skipped, as by the scalar `>`.
            m = _mm256_max_ps(_mm256_andnot_ps(abs, ld(i)), m);
        }
        let h = _mm_max_ps(_mm256_extractf128_ps(m, 1), _mm256_castps256_ps128(m));
        let h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        let amax = _mm_cvtss_f32(_mm_max_ss(h, _mm_movehdup_ps(h)));
        if amax == 0.0 {
            *b = BlockQ8K::zeroed();
            continue;
        }
        let av = _mm256_set1_ps(amax);
        let mut first = QK_K;
        for i in (0..QK_K).step_by(8) {
            let eq = _mm256_cmp_ps(_mm256_andnot_ps(abs, ld(i)), av, _CMP_EQ_OQ);
            let mask = _mm256_movemask_ps(eq);
            if mask != 0 {
                first = i + mask.trailing_zeros() as usize;
                break;
            }
        }
        let iscale = -127.0 / x[first];
        let iv = _mm256_set1_ps(iscale);
        for c in 0..QK_K / 32 {
            let i: [__m256i; 4] = std::array::from_fn(|k| {
                _mm256_cvtps_epi32(round_away(_mm256_mul_ps(ld(c * 32 + k * 8), iv)))
            });
            let p = _mm256_packs_epi16(
                _mm256_packs_epi32(i[0], i[1]),
                _mm256_packs_epi32(i[2], i[3]),
            );
            let p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            // SAFETY: 32 bytes at a multiple of 32 inside `qs`.
            unsafe { _mm256_storeu_si256(b.qs.as_mut_ptr().add(c * 32).cast(), p) };
            // Byte sums of each 8 as u64 lanes (bytes offset by 128).
            let sad = _mm256_sad_epu8(
                _mm256_xor_si256(p, _mm256_set1_epi8(i8::MIN)),
                _mm256_setzero_si256(),
            );
            let mut l = [0u64; 4];
            // SAFETY: 32 bytes into a [u64; 4].
            unsafe { _mm256_storeu_si256(l.as_mut_ptr().cast(), sad) };
            b.bsums[2 * c] = (l[0] + l[1]) as i16 - 16 * 128;
            b.bsums[2 * c + 1] = (l[2] + l[3]) as i16 - 16 * 128;
        }
        b.d = 1.0 / iscale;
    }
}

fn quantize_q8k(x: &[f32], out: &mut [BlockQ8K]) {
    // SAFETY: see the wrappers above.
    unsafe { quantize_q8k_imp(x, out) }
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
