//! NEON prompt panels (see `gemm.rs` for the panel layout).
//!
//! A panel's four weights of eight rows (32 bytes) are two registers, rows
//! 0..4 and 4..8, each lane one row's four weights: a four-byte dot product
//! ([`Dot`]: `sdot`, or `smull` + pairwise adds) against four activation bytes
//! broadcast to every lane gives four rows' partial sums in the four lanes.
//! Every panel format fits i8 (u4/u5/u6 hold 0..64, s8 is i8), so one kernel
//! serves all four. The i8mm kernel instead zips two groups of four into
//! eight consecutive weights of two rows and multiplies them with eight
//! activations of two tokens in one `smmla` (2 × 2 results).
//!
//! Integer sums are exact; per row the float operations are the scalar
//! panel's (`acc = fma(d * da, isum, acc); acc = fma(m, sa, acc)` per
//! sub-block, in order), so every set gives the reference's bits.

use std::arch::aarch64::*;

use super::aarch64_neon::{Dot, Plain, Sdot, iq4_values, smmla};
use super::gemm::{ActView, PANEL_ROWS, Panel, PanelKernels, scalar};

macro_rules! panel_fn {
    ($name:ident, $feat:literal, $($imp:tt)*) => {
        fn $name(p: &Panel, a: &ActView, out: &mut [f32], stride: usize) {
            #[target_feature(enable = $feat)]
            unsafe fn imp(p: &Panel, a: &ActView, out: &mut [f32], stride: usize) {
                // SAFETY: compiled for the set's features; the kernel checks
                // every length before its unchecked loads.
                unsafe { $($imp)*(p, a, out, stride) }
            }
            // SAFETY: installed only in the set built after detecting `$feat`.
            unsafe { imp(p, a, out, stride) }
        }
    };
}

panel_fn!(plain_32, "neon", panel_imp::<Plain, 32>);
panel_fn!(plain_16, "neon", panel_imp::<Plain, 16>);
panel_fn!(dot_32, "neon,dotprod", panel_imp::<Sdot, 32>);
panel_fn!(dot_16, "neon,dotprod", panel_imp::<Sdot, 16>);
panel_fn!(mm_32, "neon,dotprod,i8mm", mmla_imp::<32>);
panel_fn!(mm_16, "neon,dotprod,i8mm", mmla_imp::<16>);

fn set(
    f32s: fn(&Panel, &ActView, &mut [f32], usize),
    f16s: fn(&Panel, &ActView, &mut [f32], usize),
) -> PanelKernels {
    PanelKernels {
        u4: f32s,
        u5: f32s,
        u6: f16s,
        s8: f32s,
        interleave: scalar::interleave,
        iq4,
        pairs: None,
    }
}

/// Armv8.0 NEON panels.
pub(super) fn plain() -> PanelKernels {
    set(plain_32, plain_16)
}

/// `sdot` panels. Only called after detecting dotprod.
pub(super) fn dotprod() -> PanelKernels {
    set(dot_32, dot_16)
}

/// `smmla` panels. Only called after detecting dotprod and i8mm.
pub(super) fn i8mm() -> PanelKernels {
    set(mm_32, mm_16)
}

fn iq4(qs: &[u8; 16], out: &mut [u8]) {
    let out = &mut out[..32];
    // SAFETY: 16 readable bytes in `qs`, 32 writable in `out`; NEON is baseline.
    unsafe {
        let (lo, hi) = iq4_values(qs.as_ptr());
        vst1q_s8(out.as_mut_ptr().cast(), lo);
        vst1q_s8(out.as_mut_ptr().add(16).cast(), hi);
    }
}

/// The length checks every kernel makes before its unchecked loads.
fn check(p: &Panel, a: &ActView, out: &[f32], stride: usize, sub: usize) {
    let (cols, nt) = (a.cols, a.nt);
    let n_sub = cols / sub;
    assert!(cols.is_multiple_of(sub));
    assert!(p.q.len() >= cols * PANEL_ROWS && p.d.len() >= n_sub * PANEL_ROWS);
    assert!(p.m.len() >= n_sub * PANEL_ROWS && stride >= PANEL_ROWS);
    assert!(nt == 0 || out.len() >= (nt - 1) * stride + PANEL_ROWS);
    assert!(a.qa.len() >= nt * cols && a.d.len() >= nt * n_sub && a.s.len() >= nt * n_sub);
}

/// Eight rows (two registers) of token `t` into the output.
#[inline(always)]
fn store(acc: &[float32x4_t; 2], t: usize, stride: usize, out: &mut [f32]) {
    let o = &mut out[t * stride..t * stride + PANEL_ROWS];
    // SAFETY: `o` is 8 writable floats.
    unsafe {
        vst1q_f32(o.as_mut_ptr(), acc[0]);
        vst1q_f32(o.as_mut_ptr().add(4), acc[1]);
    }
}

/// Adds one sub-block's integer sums of token `t` (rows 0..4, 4..8) to its
/// accumulators, as the scalar panel does per row.
#[inline(always)]
unsafe fn scale_add(
    acc: &mut [float32x4_t; 2],
    isum: [int32x4_t; 2],
    p: &Panel,
    a: &ActView,
    s: usize,
    t: usize,
    n_sub: usize,
) {
    let i = t * n_sub + s;
    let (da, sa) = (a.d[i], a.s[i]);
    for h in 0..2 {
        // SAFETY: s < n_sub; the panel has 8 scales and offsets per sub-block
        // (checked by the caller).
        unsafe {
            let dv = vld1q_f32(p.d.as_ptr().add(s * PANEL_ROWS + 4 * h));
            let mv = vld1q_f32(p.m.as_ptr().add(s * PANEL_ROWS + 4 * h));
            acc[h] = vfmaq_f32(acc[h], vmulq_n_f32(dv, da), vcvtq_f32_s32(isum[h]));
            acc[h] = vfmaq_f32(acc[h], mv, vdupq_n_f32(sa));
        }
    }
}

#[inline(always)]
unsafe fn panel_imp<D: Dot, const SUB: usize>(
    p: &Panel,
    a: &ActView,
    out: &mut [f32],
    stride: usize,
) {
    check(p, a, out, stride, SUB);
    let nt = a.nt;
    let mut t = 0;
    while t + 4 <= nt {
        // SAFETY: lengths checked; tokens t..t+4 < nt; D's features.
        let acc = unsafe { tokens::<D, SUB, 4>(p, a, t) };
        for (j, acc) in acc.iter().enumerate() {
            store(acc, t + j, stride, out);
        }
        t += 4;
    }
    while t < nt {
        // SAFETY: as above.
        let acc = unsafe { tokens::<D, SUB, 1>(p, a, t) };
        store(&acc[0], t, stride, out);
        t += 1;
    }
}

/// Tokens `t0..t0+NT` against the panel with four-byte dots.
#[inline(always)]
unsafe fn tokens<D: Dot, const SUB: usize, const NT: usize>(
    p: &Panel,
    a: &ActView,
    t0: usize,
) -> [[float32x4_t; 2]; NT] {
    let (cols, n_sub) = (a.cols, a.cols / SUB);
    let qp = p.q.as_ptr();
    let ap = a.qa.as_ptr();
    // SAFETY (all loads): k + 4 <= cols; the panel holds cols * 8 bytes, the
    // activations nt * cols with t0 + NT <= nt (checked by the caller).
    unsafe {
        let mut acc = [[vdupq_n_f32(0.0); 2]; NT];
        for s in 0..n_sub {
            let mut isum = [[vdupq_n_s32(0); 2]; NT];
            for g in 0..SUB / 4 {
                let k = s * SUB + g * 4;
                let w0 = vld1q_s8(qp.add(k * 8).cast());
                let w1 = vld1q_s8(qp.add(k * 8 + 16).cast());
                for (j, isum) in isum.iter_mut().enumerate() {
                    let x = std::ptr::read_unaligned(ap.add((t0 + j) * cols + k).cast::<i32>());
                    let av = vreinterpretq_s8_s32(vdupq_n_s32(x));
                    isum[0] = D::dot(isum[0], w0, av);
                    isum[1] = D::dot(isum[1], w1, av);
                }
            }
            for (j, (acc, isum)) in acc.iter_mut().zip(isum).enumerate() {
                scale_add(acc, isum, p, a, s, t0 + j, n_sub);
            }
        }
        acc
    }
}

#[inline(always)]
unsafe fn mmla_imp<const SUB: usize>(p: &Panel, a: &ActView, out: &mut [f32], stride: usize) {
    check(p, a, out, stride, SUB);
    let nt = a.nt;
    let mut t = 0;
    while t + 4 <= nt {
        // SAFETY: lengths checked; tokens t..t+4 < nt; i8mm detected.
        let acc = unsafe { pairs::<SUB, 2>(p, a, t) };
        for (j, acc) in acc.iter().flatten().enumerate() {
            store(acc, t + j, stride, out);
        }
        t += 4;
    }
    if t + 2 <= nt {
        // SAFETY: as above.
        let acc = unsafe { pairs::<SUB, 1>(p, a, t) };
        for (j, acc) in acc.iter().flatten().enumerate() {
            store(acc, t + j, stride, out);
        }
        t += 2;
    }
    if t < nt {
        // SAFETY: as above (the i8mm set has dotprod too).
        let acc = unsafe { tokens::<Sdot, SUB, 1>(p, a, t) };
        store(&acc[0], t, stride, out);
    }
}

/// `NP` pairs of tokens from `t0` against the panel with `smmla`: result
/// `2j + u` is token `t0 + 2j + u`.
#[inline(always)]
unsafe fn pairs<const SUB: usize, const NP: usize>(
    p: &Panel,
    a: &ActView,
    t0: usize,
) -> [[[float32x4_t; 2]; 2]; NP] {
    let (cols, n_sub) = (a.cols, a.cols / SUB);
    let qp = p.q.as_ptr();
    let ap = a.qa.as_ptr();
    // SAFETY (all loads): k + 8 <= cols; the panel holds cols * 8 bytes, the
    // activations nt * cols with t0 + 2 NP <= nt (checked by the caller).
    unsafe {
        let mut acc = [[[vdupq_n_f32(0.0); 2]; 2]; NP];
        for s in 0..n_sub {
            // Per pair: rows (0,1), (2,3), (4,5), (6,7), each
            // [t·r, t·r', t'·r, t'·r'].
            let mut r = [[vdupq_n_s32(0); 4]; NP];
            for h in 0..SUB / 8 {
                let k = s * SUB + 8 * h;
                // Groups k/4 and k/4 + 1: rows 0..4 and 4..8 of each.
                let g0 = qp.add(k * 8).cast::<i32>();
                let g1 = qp.add(k * 8 + 32).cast::<i32>();
                let (a0, a1) = (vld1q_s32(g0), vld1q_s32(g0.add(4)));
                let (b0, b1) = (vld1q_s32(g1), vld1q_s32(g1.add(4)));
                let w = [
                    vreinterpretq_s8_s32(vzip1q_s32(a0, b0)),
                    vreinterpretq_s8_s32(vzip2q_s32(a0, b0)),
                    vreinterpretq_s8_s32(vzip1q_s32(a1, b1)),
                    vreinterpretq_s8_s32(vzip2q_s32(a1, b1)),
                ];
                for (j, r) in r.iter_mut().enumerate() {
                    let t = t0 + 2 * j;
                    let x = vcombine_s8(
                        vld1_s8(ap.add(t * cols + k)),
                        vld1_s8(ap.add((t + 1) * cols + k)),
                    );
                    for (r, w) in r.iter_mut().zip(w) {
                        *r = smmla(*r, x, w);
                    }
                }
            }
            for (j, (acc, r)) in acc.iter_mut().zip(r).enumerate() {
                let r = r.map(|v| vreinterpretq_s64_s32(v));
                let first = [
                    vreinterpretq_s32_s64(vzip1q_s64(r[0], r[1])),
                    vreinterpretq_s32_s64(vzip1q_s64(r[2], r[3])),
                ];
                let second = [
                    vreinterpretq_s32_s64(vzip2q_s64(r[0], r[1])),
                    vreinterpretq_s32_s64(vzip2q_s64(r[2], r[3])),
                ];
                scale_add(&mut acc[0], first, p, a, s, t0 + 2 * j, n_sub);
                scale_add(&mut acc[1], second, p, a, s, t0 + 2 * j + 1, n_sub);
            }
        }
        acc
    }
}
