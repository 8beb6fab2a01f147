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
//! product), and instantiated per set by `variant!`: per weight type a
//! [`NeonBlock`] unpacks a block to i8 vectors and gives its float term
//! against one activation block, which makes the one-token and the
//! four-token dot (each block unpacked once for four tokens). The decode dots
//! keep the scalar reference's integer sums (exact) and its float operations
//! per block in the same order, so they give the reference's bits; the
//! panels (`aarch64_neon_panel.rs`) do the same per row. The K-quants and
//! IQ4_XS are in `aarch64_neon_k.rs`.

use std::arch::aarch64::*;
use std::arch::asm;

use super::{Dots, Kernels};
use crate::engine::quant::*;

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

/// A weight block type with NEON kernels: its weights are unpacked to i8
/// vectors once ([`unpack`](Self::unpack)), then dotted with any number of
/// activation blocks ([`term`](Self::term): the block's float term of the
/// sum, the scalar reference's expression for it).
pub(super) trait NeonBlock<A>: Sized {
    type U;
    /// # Safety
    /// NEON (baseline on aarch64).
    unsafe fn unpack(&self) -> Self::U;
    /// # Safety
    /// The CPU must have D's instructions.
    unsafe fn term<D: Dot>(&self, u: &Self::U, y: &A) -> f32;
}

/// One weight row against one activation row (blocks zipped).
#[inline(always)]
unsafe fn dot1<D: Dot, W: NeonBlock<A>, A>(w: &[W], y: &[A]) -> f32 {
    let mut sumf = 0.0;
    for (x, y) in w.iter().zip(y) {
        // SAFETY: the caller has D's features.
        sumf += unsafe { x.term::<D>(&x.unpack(), y) };
    }
    sumf
}

/// One weight row against four activation rows, each block unpacked once;
/// per token the same float operations as [`dot1`] (so the same bits).
#[inline(always)]
unsafe fn dot4<D: Dot, W: NeonBlock<A>, A>(w: &[W], y: [&[A]; 4]) -> [f32; 4] {
    let mut sumf = [0.0f32; 4];
    for (i, x) in w.iter().enumerate() {
        // SAFETY: the caller has D's features.
        let u = unsafe { x.unpack() };
        for (s, y) in sumf.iter_mut().zip(y) {
            if let Some(b) = y.get(i) {
                // SAFETY: as above.
                *s += unsafe { x.term::<D>(&u, b) };
            }
        }
    }
    sumf
}

/// One module of safe dot kernels per set: each wraps the generic kernels
/// instantiated with `$d` inside functions compiled for `$feat`.
macro_rules! variant {
    ($m:ident, $d:ty, $feat:literal) => {
        mod $m {
            use super::*;

            macro_rules! dots {
                ($w:ty, $a:ty) => {{
                    fn dot1(w: &[$w], y: &[$a]) -> f32 {
                        #[target_feature(enable = $feat)]
                        unsafe fn imp(w: &[$w], y: &[$a]) -> f32 {
                            // SAFETY: compiled for the set's features; the
                            // kernel reads whole blocks of the zipped slices.
                            unsafe { super::dot1::<$d, $w, $a>(w, y) }
                        }
                        // SAFETY: installed only in the set built after
                        // detecting `$feat` (see `sets`).
                        unsafe { imp(w, y) }
                    }
                    fn dot4(w: &[$w], y: [&[$a]; 4]) -> [f32; 4] {
                        #[target_feature(enable = $feat)]
                        unsafe fn imp(w: &[$w], y: [&[$a]; 4]) -> [f32; 4] {
                            // SAFETY: as in dot1; activation blocks by `get`.
                            unsafe { super::dot4::<$d, $w, $a>(w, y) }
                        }
                        // SAFETY: as in dot1.
                        unsafe { imp(w, y) }
                    }
                    Dots::<$w, $a> {
                        dot1,
                        dot4,
                        rows1: None,
                    }
                }};
            }

            pub(super) fn dots() -> SetDots {
                SetDots {
                    q4_0: dots!(BlockQ4_0, BlockQ8_0),
                    q4_1: dots!(BlockQ4_1, BlockQ8_1),
                    q5_0: dots!(BlockQ5_0, BlockQ8_0),
                    q5_1: dots!(BlockQ5_1, BlockQ8_1),
                    q8_0: dots!(BlockQ8_0, BlockQ8_0),
                    q2k: dots!(BlockQ2K, BlockQ8K),
                    q3k: dots!(BlockQ3K, BlockQ8K),
                    q4k: dots!(BlockQ4K, BlockQ8K),
                    q5k: dots!(BlockQ5K, BlockQ8K),
                    q6k: dots!(BlockQ6K, BlockQ8K),
                    q8k: dots!(BlockQ8K, BlockQ8K),
                    iq4_xs: dots!(BlockIQ4XS, BlockQ8K),
                    iq4_nl: dots!(BlockIQ4NL, BlockQ8_0),
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
// Per block the scalar reference's float expression (`scalar.rs`).

impl NeonBlock<BlockQ8_0> for BlockQ4_0 {
    type U = (int8x16_t, int8x16_t);
    #[inline(always)]
    unsafe fn unpack(&self) -> Self::U {
        // SAFETY: 16 bytes of `qs`.
        unsafe {
            let (lo, hi) = nibbles(self.qs.as_ptr());
            let eight = vdupq_n_s8(8);
            (vsubq_s8(lo, eight), vsubq_s8(hi, eight))
        }
    }
    #[inline(always)]
    unsafe fn term<D: Dot>(&self, u: &Self::U, y: &BlockQ8_0) -> f32 {
        // SAFETY: the caller has D's features.
        let sumi = unsafe { block32::<D>(u.0, u.1, &y.qs) };
        sumi as f32 * (f16_at(self.d) * f16_at(y.d))
    }
}

impl NeonBlock<BlockQ8_1> for BlockQ4_1 {
    type U = (int8x16_t, int8x16_t);
    #[inline(always)]
    unsafe fn unpack(&self) -> Self::U {
        // SAFETY: 16 bytes of `qs`.
        unsafe { nibbles(self.qs.as_ptr()) }
    }
    #[inline(always)]
    unsafe fn term<D: Dot>(&self, u: &Self::U, y: &BlockQ8_1) -> f32 {
        // SAFETY: the caller has D's features.
        let sumi = unsafe { block32::<D>(u.0, u.1, &y.qs) };
        sumi as f32 * (f16_at(self.d) * f16_at(y.d)) + f16_at(self.m) * f16_at(y.s)
    }
}

impl NeonBlock<BlockQ8_0> for BlockQ5_0 {
    type U = (int8x16_t, int8x16_t);
    #[inline(always)]
    unsafe fn unpack(&self) -> Self::U {
        // SAFETY: 16 bytes of `qs`.
        unsafe {
            let (lo, hi) = nibbles(self.qs.as_ptr());
            let (hlo, hhi) = q5_high(self.qh);
            let sixteen = vdupq_n_s8(16);
            (
                vsubq_s8(vorrq_s8(lo, hlo), sixteen),
                vsubq_s8(vorrq_s8(hi, hhi), sixteen),
            )
        }
    }
    #[inline(always)]
    unsafe fn term<D: Dot>(&self, u: &Self::U, y: &BlockQ8_0) -> f32 {
        // SAFETY: the caller has D's features.
        let sumi = unsafe { block32::<D>(u.0, u.1, &y.qs) };
        sumi as f32 * (f16_at(self.d) * f16_at(y.d))
    }
}

impl NeonBlock<BlockQ8_1> for BlockQ5_1 {
    type U = (int8x16_t, int8x16_t);
    #[inline(always)]
    unsafe fn unpack(&self) -> Self::U {
        // SAFETY: 16 bytes of `qs`.
        unsafe {
            let (lo, hi) = nibbles(self.qs.as_ptr());
            let (hlo, hhi) = q5_high(self.qh);
            (vorrq_s8(lo, hlo), vorrq_s8(hi, hhi))
        }
    }
    #[inline(always)]
    unsafe fn term<D: Dot>(&self, u: &Self::U, y: &BlockQ8_1) -> f32 {
        // SAFETY: the caller has D's features.
        let sumi = unsafe { block32::<D>(u.0, u.1, &y.qs) };
        sumi as f32 * (f16_at(self.d) * f16_at(y.d)) + f16_at(self.m) * f16_at(y.s)
    }
}

impl NeonBlock<BlockQ8_0> for BlockQ8_0 {
    type U = (int8x16_t, int8x16_t);
    #[inline(always)]
    unsafe fn unpack(&self) -> Self::U {
        // SAFETY: 32 bytes of `qs`.
        unsafe { (ld(self.qs.as_ptr()), ld(self.qs.as_ptr().add(16))) }
    }
    #[inline(always)]
    unsafe fn term<D: Dot>(&self, u: &Self::U, y: &BlockQ8_0) -> f32 {
        // SAFETY: the caller has D's features.
        let sumi = unsafe { block32::<D>(u.0, u.1, &y.qs) };
        sumi as f32 * (f16_at(self.d) * f16_at(y.d))
    }
}

impl NeonBlock<BlockQ8_0> for BlockIQ4NL {
    type U = (int8x16_t, int8x16_t);
    #[inline(always)]
    unsafe fn unpack(&self) -> Self::U {
        // SAFETY: 16 bytes of `qs`.
        unsafe { iq4_values(self.qs.as_ptr()) }
    }
    #[inline(always)]
    unsafe fn term<D: Dot>(&self, u: &Self::U, y: &BlockQ8_0) -> f32 {
        // SAFETY: the caller has D's features.
        let sumi = unsafe { block32::<D>(u.0, u.1, &y.qs) };
        sumi as f32 * (f16_at(self.d) * f16_at(y.d))
    }
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
