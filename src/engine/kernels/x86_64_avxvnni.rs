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
//!
//! The decode dots of Q2_K..Q6_K and IQ4_XS stay the AVX2 set's: a port of
//! the AVX-512 set's VNNI arithmetic to 32 weights per `vpdpbusd` (session
//! 10) decoded K-quant models a third slower than AVX2 here, and was
//! removed (it is in the history: `git log -- this file`).
//!
//! The intrinsic `_mm256_dpbusd_avx_epi32` and the `avxvnni` target feature
//! are stable Rust (no inline assembly needed). Every `unsafe fn` carries
//! `#[target_feature]`; the safe wrappers are reachable only through the
//! table built by [`avxvnni`], after run-time detection of the features.

use std::arch::x86_64::*;

use super::x86_64::{G, GroupDot, Q40, Q41, Q50, Q80, ROW_GROUPS, hsum_f32x4, load_q, sum4_i32};
use super::{Dots, Kernels};

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
    // Q2_K..Q6_K and IQ4_XS keep the AVX2 set's decode dots: a 256-bit
    // port of the AVX-512 set's VNNI arithmetic for them decoded the
    // synthetic qwen3moe Q4_K_M at 75-77 tok/s against AVX2's 120-124
    // (2 threads, quiet). Their prompt panels are the VNNI ones above.
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
