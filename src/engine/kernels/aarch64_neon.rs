//! NEON kernels (aarch64), in three sets chosen at run time:
//!
//! - `neon`: Armv8.0 Advanced SIMD only (every aarch64 CPU): four-byte dot
//!   products from `smull` + pairwise widening adds;
//! - `neon-dotprod`: the same kernels with `sdot` (FEAT_DotProd: i8 × i8 →
//!   i32, four products per lane in one instruction);
//! - `neon-i8mm`: `neon-dotprod` plus prompt panels on `smmla` (FEAT_I8MM:
//!   a 2×8 by 8×2 i8 matrix product into four i32 lanes: two tokens against
//!   two weight rows per instruction).
//!
//! The `sdot`/`smmla` intrinsics (`vdotq_s32`, `vmmlaq_s32`) are still
//! unstable in Rust (`stdarch_neon_dotprod`, `stdarch_neon_i8mm`), so those two
//! instructions are written as inline `asm!` inside functions compiled with
//! `#[target_feature(enable = "dotprod")]` / `"i8mm"`, which are only
//! installed after `is_aarch64_feature_detected!` says the CPU has them.
//!
//! Every kernel is written once, generic over [`Dot`] (the four-byte dot
//! product), and instantiated per set by [`variant!`]. The decode dots keep
//! the scalar reference's integer sums (exact) and its float operations per
//! block in the same order, so they give the reference's bits; the panels
//! (`aarch64_neon_panel.rs`) do the same per row.

use std::arch::aarch64::*;
use std::arch::asm;

use super::{Dots, Kernels, dot4_by_dot1};
use crate::engine::quant::*;

pub(super) use super::aarch64_neon_k::*;

/// Lane `i` of the result is `acc[i] + Σ_{k<4} a[4i+k] * b[4i+k]` (i8
/// products, exact i32 sums: what `sdot` computes).
pub(super) trait Dot {
    /// # Safety
    /// The CPU must have the instructions the implementation uses.
    unsafe fn dot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t;
}

/// Armv8.0 NEON: `smull`/`smull2` to i16 products, then pairwise widening
/// adds (no i16 sum of two products, so -128 × -128 is exact too).
pub(super) struct Plain;

impl Dot for Plain {
    #[inline(always)]
    unsafe fn dot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
        // SAFETY: NEON is part of every aarch64 target.
        unsafe {
            let lo = vmull_s8(vget_low_s8(a), vget_low_s8(b));
            let hi = vmull_high_s8(a, b);
            vaddq_s32(acc, vpaddq_s32(vpaddlq_s16(lo), vpaddlq_s16(hi)))
        }
    }
}

/// FEAT_DotProd: one `sdot`.
pub(super) struct Sdot;

impl Dot for Sdot {
    #[inline(always)]
    unsafe fn dot(mut acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
        // SAFETY: only reached from functions compiled for "dotprod" and
        // installed after detecting it; the instruction touches registers only.
        unsafe {
            asm!(
                "sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b",
                acc = inout(vreg) acc,
                a = in(vreg) a,
                b = in(vreg) b,
                options(pure, nomem, nostack, preserves_flags)
            );
        }
        acc
    }
}

/// FEAT_I8MM `smmla`: with `a` = two rows of 8 i8 (`a0`, `a1`) and `b` = two
/// rows of 8 (`b0`, `b1`), adds `[a0·b0, a0·b1, a1·b0, a1·b1]` to `acc`.
///
/// # Safety
/// The CPU must have FEAT_I8MM.
#[inline(always)]
pub(super) unsafe fn smmla(mut acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    // SAFETY: the caller's contract; registers only.
    unsafe {
        asm!(
            "smmla {acc:v}.4s, {a:v}.16b, {b:v}.16b",
            acc = inout(vreg) acc,
            a = in(vreg) a,
            b = in(vreg) b,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    acc
}

/// Whether this CPU has FEAT_DotProd.
pub fn has_dotprod() -> bool {
    std::arch::is_aarch64_feature_detected!("dotprod")
}

/// Whether this CPU has FEAT_DotProd and FEAT_I8MM.
pub fn has_i8mm() -> bool {
    has_dotprod() && std::arch::is_aarch64_feature_detected!("i8mm")
}

/// Every NEON set this CPU can run, best last: `neon` always, then
/// `neon-dotprod` and `neon-i8mm` where detected.
pub fn sets() -> Vec<Kernels> {
    let mut v = vec![table(
        "neon",
        plain::dots(),
        super::aarch64_neon_panel::plain(),
    )];
    if has_dotprod() {
        v.push(table(
            "neon-dotprod",
            dotprod::dots(),
            super::aarch64_neon_panel::dotprod(),
        ));
    }
    if has_i8mm() {
        v.push(table(
            "neon-i8mm",
            dotprod::dots(),
            super::aarch64_neon_panel::i8mm(),
        ));
    }
    v
}

/// One set's decode dots (the rest of the table is the scalar one).
pub(super) struct SetDots {
    q4_0: Dots<BlockQ4_0, BlockQ8_0>,
    q4_1: Dots<BlockQ4_1, BlockQ8_1>,
    q5_0: Dots<BlockQ5_0, BlockQ8_0>,
    q5_1: Dots<BlockQ5_1, BlockQ8_1>,
    q8_0: Dots<BlockQ8_0, BlockQ8_0>,
    q2k: Dots<BlockQ2K, BlockQ8K>,
    q3k: Dots<BlockQ3K, BlockQ8K>,
    q4k: Dots<BlockQ4K, BlockQ8K>,
    q5k: Dots<BlockQ5K, BlockQ8K>,
    q6k: Dots<BlockQ6K, BlockQ8K>,
    q8k: Dots<BlockQ8K, BlockQ8K>,
    iq4_xs: Dots<BlockIQ4XS, BlockQ8K>,
    iq4_nl: Dots<BlockIQ4NL, BlockQ8_0>,
}

fn table(name: &'static str, d: SetDots, panel: super::gemm::PanelKernels) -> Kernels {
    let mut k = Kernels::scalar();
    k.name = name;
    k.q4_0 = d.q4_0;
    k.q4_1 = d.q4_1;
    k.q5_0 = d.q5_0;
    k.q5_1 = d.q5_1;
    k.q8_0 = d.q8_0;
    k.q2k = d.q2k;
    k.q3k = d.q3k;
    k.q4k = d.q4k;
    k.q5k = d.q5k;
    k.q6k = d.q6k;
    k.q8k = d.q8k;
    k.iq.iq4_xs = d.iq4_xs;
    k.iq.iq4_nl = d.iq4_nl;
    k.panel = panel;
    k
}

/// One module of safe dot kernels per set: each wraps the generic kernel
/// instantiated with `$d` inside a function compiled for `$feat`.
macro_rules! variant {
    ($m:ident, $d:ty, $feat:literal) => {
        mod $m {
            use super::*;

            macro_rules! wrap {
                ($name:ident, $w:ty, $a:ty) => {
                    fn $name(w: &[$w], y: &[$a]) -> f32 {
                        #[target_feature(enable = $feat)]
                        unsafe fn imp(w: &[$w], y: &[$a]) -> f32 {
                            // SAFETY: this function is compiled for the set's
                            // features; the kernel reads whole blocks of the
                            // zipped slices only.
                            unsafe { super::$name::<$d>(w, y) }
                        }
                        // SAFETY: installed only in the set built after
                        // detecting `$feat` (see `sets`).
                        unsafe { imp(w, y) }
                    }
                };
            }
            wrap!(q4_0, BlockQ4_0, BlockQ8_0);
            wrap!(q4_1, BlockQ4_1, BlockQ8_1);
            wrap!(q5_0, BlockQ5_0, BlockQ8_0);
            wrap!(q5_1, BlockQ5_1, BlockQ8_1);
            wrap!(q8_0, BlockQ8_0, BlockQ8_0);
            wrap!(q2k, BlockQ2K, BlockQ8K);
            wrap!(q3k, BlockQ3K, BlockQ8K);
            wrap!(q4k, BlockQ4K, BlockQ8K);
            wrap!(q5k, BlockQ5K, BlockQ8K);
            wrap!(q6k, BlockQ6K, BlockQ8K);
            wrap!(q8k, BlockQ8K, BlockQ8K);
            wrap!(iq4_xs, BlockIQ4XS, BlockQ8K);
            wrap!(iq4_nl, BlockIQ4NL, BlockQ8_0);

            pub(super) fn dots() -> SetDots {
                SetDots {
                    q4_0: dot4_by_dot1!(q4_0, BlockQ4_0, BlockQ8_0),
                    q4_1: dot4_by_dot1!(q4_1, BlockQ4_1, BlockQ8_1),
                    q5_0: dot4_by_dot1!(q5_0, BlockQ5_0, BlockQ8_0),
                    q5_1: dot4_by_dot1!(q5_1, BlockQ5_1, BlockQ8_1),
                    q8_0: dot4_by_dot1!(q8_0, BlockQ8_0, BlockQ8_0),
                    q2k: dot4_by_dot1!(q2k, BlockQ2K, BlockQ8K),
                    q3k: dot4_by_dot1!(q3k, BlockQ3K, BlockQ8K),
                    q4k: dot4_by_dot1!(q4k, BlockQ4K, BlockQ8K),
                    q5k: dot4_by_dot1!(q5k, BlockQ5K, BlockQ8K),
                    q6k: dot4_by_dot1!(q6k, BlockQ6K, BlockQ8K),
                    q8k: dot4_by_dot1!(q8k, BlockQ8K, BlockQ8K),
                    iq4_xs: dot4_by_dot1!(iq4_xs, BlockIQ4XS, BlockQ8K),
                    iq4_nl: dot4_by_dot1!(iq4_nl, BlockIQ4NL, BlockQ8_0),
                }
            }
        }
    };
}

variant!(plain, Plain, "neon");
variant!(dotprod, Sdot, "neon,dotprod");

// ------------------------------------------------------------ helpers

/// Sum of all four lanes.
#[inline(always)]
pub(super) unsafe fn hsum(v: int32x4_t) -> i32 {
    // SAFETY: NEON is baseline on aarch64.
    unsafe { vaddvq_s32(v) }
}

/// `[Σa, Σb, Σc, Σd]`.
#[inline(always)]
pub(super) unsafe fn hsum4(a: int32x4_t, b: int32x4_t, c: int32x4_t, d: int32x4_t) -> int32x4_t {
    // SAFETY: NEON is baseline on aarch64.
    unsafe { vpaddq_s32(vpaddq_s32(a, b), vpaddq_s32(c, d)) }
}

/// The 16 bytes at `p` as i8.
#[inline(always)]
pub(super) unsafe fn ld(p: *const i8) -> int8x16_t {
    // SAFETY: the caller passes 16 readable bytes.
    unsafe { vld1q_s8(p) }
}

/// Low and high nibbles of 16 bytes (values 0..16 as i8).
#[inline(always)]
pub(super) unsafe fn nibbles(p: *const u8) -> (int8x16_t, int8x16_t) {
    // SAFETY: the caller passes 16 readable bytes.
    unsafe {
        let v = vld1q_u8(p);
        (
            vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(0xF))),
            vreinterpretq_s8_u8(vshrq_n_u8::<4>(v)),
        )
    }
}

/// The fifth bits of a Q5_0/Q5_1 block as `0x10` bytes: elements 0..16 and 16..32.
#[inline(always)]
unsafe fn q5_high(qh: [u8; 4]) -> (int8x16_t, int8x16_t) {
    const IDX_LO: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1];
    const IDX_HI: [u8; 16] = [2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3];
    const BITS: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];
    // SAFETY: constant 16-byte tables; NEON is baseline.
    unsafe {
        let h = vreinterpretq_u8_u32(vdupq_n_u32(u32::from_le_bytes(qh)));
        let bits = vld1q_u8(BITS.as_ptr());
        let sixteen = vdupq_n_u8(0x10);
        let lo = vandq_u8(
            vtstq_u8(vqtbl1q_u8(h, vld1q_u8(IDX_LO.as_ptr())), bits),
            sixteen,
        );
        let hi = vandq_u8(
            vtstq_u8(vqtbl1q_u8(h, vld1q_u8(IDX_HI.as_ptr())), bits),
            sixteen,
        );
        (vreinterpretq_s8_u8(lo), vreinterpretq_s8_u8(hi))
    }
}

/// `Σ q·qa` of one 32-weight block given as two halves (elements 0..16 and 16..32).
#[inline(always)]
unsafe fn block32<D: Dot>(lo: int8x16_t, hi: int8x16_t, qa: &[i8; 32]) -> i32 {
    // SAFETY: `qa` is 32 bytes; the caller has D's features.
    unsafe {
        let z = vdupq_n_s32(0);
        hsum(D::dot(
            D::dot(z, lo, ld(qa.as_ptr())),
            hi,
            ld(qa.as_ptr().add(16)),
        ))
    }
}

// ------------------------------------------------------------ legacy quants
//
// Same per-block float expressions as `scalar.rs`, summed in the same order.

#[inline(always)]
pub(super) unsafe fn q4_0<D: Dot>(w: &[BlockQ4_0], y: &[BlockQ8_0]) -> f32 {
    let mut sumf = 0.0;
    for (x, y) in w.iter().zip(y) {
        // SAFETY: 16 bytes of `qs`; the caller has D's features.
        let sumi = unsafe {
            let (lo, hi) = nibbles(x.qs.as_ptr());
            let eight = vdupq_n_s8(8);
            block32::<D>(vsubq_s8(lo, eight), vsubq_s8(hi, eight), &y.qs)
        };
        sumf += sumi as f32 * (f16_at(x.d) * f16_at(y.d));
    }
    sumf
}

#[inline(always)]
pub(super) unsafe fn q4_1<D: Dot>(w: &[BlockQ4_1], y: &[BlockQ8_1]) -> f32 {
    let mut sumf = 0.0;
    for (x, y) in w.iter().zip(y) {
        // SAFETY: as in q4_0.
        let sumi = unsafe {
            let (lo, hi) = nibbles(x.qs.as_ptr());
            block32::<D>(lo, hi, &y.qs)
        };
        sumf += sumi as f32 * (f16_at(x.d) * f16_at(y.d)) + f16_at(x.m) * f16_at(y.s);
    }
    sumf
}

#[inline(always)]
pub(super) unsafe fn q5_0<D: Dot>(w: &[BlockQ5_0], y: &[BlockQ8_0]) -> f32 {
    let mut sumf = 0.0;
    for (x, y) in w.iter().zip(y) {
        // SAFETY: as in q4_0.
        let sumi = unsafe {
            let (lo, hi) = nibbles(x.qs.as_ptr());
            let (hlo, hhi) = q5_high(x.qh);
            let sixteen = vdupq_n_s8(16);
            block32::<D>(
                vsubq_s8(vorrq_s8(lo, hlo), sixteen),
                vsubq_s8(vorrq_s8(hi, hhi), sixteen),
                &y.qs,
            )
        };
        sumf += sumi as f32 * (f16_at(x.d) * f16_at(y.d));
    }
    sumf
}

#[inline(always)]
pub(super) unsafe fn q5_1<D: Dot>(w: &[BlockQ5_1], y: &[BlockQ8_1]) -> f32 {
    let mut sumf = 0.0;
    for (x, y) in w.iter().zip(y) {
        // SAFETY: as in q4_0.
        let sumi = unsafe {
            let (lo, hi) = nibbles(x.qs.as_ptr());
            let (hlo, hhi) = q5_high(x.qh);
            block32::<D>(vorrq_s8(lo, hlo), vorrq_s8(hi, hhi), &y.qs)
        };
        sumf += sumi as f32 * (f16_at(x.d) * f16_at(y.d)) + f16_at(x.m) * f16_at(y.s);
    }
    sumf
}

#[inline(always)]
pub(super) unsafe fn q8_0<D: Dot>(w: &[BlockQ8_0], y: &[BlockQ8_0]) -> f32 {
    let mut sumf = 0.0;
    for (x, y) in w.iter().zip(y) {
        // SAFETY: 32 bytes of `qs`; the caller has D's features.
        let sumi = unsafe { block32::<D>(ld(x.qs.as_ptr()), ld(x.qs.as_ptr().add(16)), &y.qs) };
        sumf += sumi as f32 * (f16_at(x.d) * f16_at(y.d));
    }
    sumf
}

#[inline(always)]
pub(super) unsafe fn iq4_nl<D: Dot>(w: &[BlockIQ4NL], y: &[BlockQ8_0]) -> f32 {
    let mut sumf = 0.0;
    for (x, y) in w.iter().zip(y) {
        // SAFETY: 16 bytes of `qs`, the 16-entry table; D's features.
        let sumi = unsafe {
            let (lo, hi) = iq4_values(x.qs.as_ptr());
            block32::<D>(lo, hi, &y.qs)
        };
        sumf += sumi as f32 * (f16_at(x.d) * f16_at(y.d));
    }
    sumf
}

/// 16 IQ4 nibble bytes through `KVALUES_IQ4NL`: elements 0..16 (low
/// nibbles) and 16..32 (high nibbles).
#[inline(always)]
pub(super) unsafe fn iq4_values(p: *const u8) -> (int8x16_t, int8x16_t) {
    // SAFETY: 16 readable bytes at `p` (caller); the table has 16 entries.
    unsafe {
        let table = vld1q_s8(crate::engine::quant::iq_grids::KVALUES_IQ4NL.as_ptr());
        let v = vld1q_u8(p);
        (
            vqtbl1q_s8(table, vandq_u8(v, vdupq_n_u8(0xF))),
            vqtbl1q_s8(table, vshrq_n_u8::<4>(v)),
        )
    }
}
