//! NEON decode dots of the K-quants and IQ4_XS (generic over the four-byte
//! dot product; instantiated per set in `aarch64_neon.rs`).
//!
//! Each block's integer sums per scale group come from 16-byte dot products
//! gathered four groups to a register (`hsum4`), then multiplied by the
//! group scales in i32: the scalar reference's exact integers. The float
//! expression per block and the order of the block sum are the reference's,
//! so the results are its bits.

use std::arch::aarch64::*;

use super::aarch64_neon::{Dot, hsum, hsum4, iq4_values, ld, nibbles};
use crate::engine::quant::*;

/// Sixteen i32 from sixteen bytes (`u8` when `SIGNED` is false).
#[inline(always)]
unsafe fn widen16(s: &[u8; 16], signed: bool) -> [int32x4_t; 4] {
    // SAFETY: 16 readable bytes; NEON is baseline.
    unsafe {
        let v = vld1q_u8(s.as_ptr());
        let (lo, hi) = if signed {
            let v = vreinterpretq_s8_u8(v);
            (vmovl_s8(vget_low_s8(v)), vmovl_high_s8(v))
        } else {
            (
                vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(v))),
                vreinterpretq_s16_u16(vmovl_high_u8(v)),
            )
        };
        [
            vmovl_s16(vget_low_s16(lo)),
            vmovl_high_s16(lo),
            vmovl_s16(vget_low_s16(hi)),
            vmovl_high_s16(hi),
        ]
    }
}

/// `Σ_i sc[i] * isum[i]` over 16 groups, `isum` as 16 dot registers.
#[inline(always)]
unsafe fn scaled16(isum: &[int32x4_t; 16], sc: &[int32x4_t; 4]) -> i32 {
    // SAFETY: NEON is baseline.
    unsafe {
        let mut acc = vdupq_n_s32(0);
        for (q, s) in sc.iter().enumerate() {
            let g = hsum4(
                isum[4 * q],
                isum[4 * q + 1],
                isum[4 * q + 2],
                isum[4 * q + 3],
            );
            acc = vmlaq_s32(acc, g, *s);
        }
        hsum(acc)
    }
}

/// Q2_K: 16 groups of 16 (`k2_index` in scalar.rs: byte `32n + l`, shift
/// `2j`, group `8n + 2j + l/16`).
#[inline(always)]
pub(in crate::engine::kernels) unsafe fn q2k<D: Dot>(w: &[BlockQ2K], y: &[BlockQ8K]) -> f32 {
    let mut sumf = 0.0;
    for (x, y) in w.iter().zip(y) {
        // SAFETY: every load is 16 bytes inside the block's arrays (offsets
        // below 64 in `qs`, below 256 in the activations); D's features.
        let (sumi, summ) = unsafe {
            let mut isum = [vdupq_n_s32(0); 16];
            let three = vdupq_n_u8(3);
            for n in 0..2 {
                for h in 0..2 {
                    let v = vld1q_u8(x.qs.as_ptr().add(32 * n + 16 * h));
                    let q = [
                        vandq_u8(v, three),
                        vandq_u8(vshrq_n_u8::<2>(v), three),
                        vandq_u8(vshrq_n_u8::<4>(v), three),
                        vshrq_n_u8::<6>(v),
                    ];
                    for (j, q) in q.into_iter().enumerate() {
                        let a = ld(y.qs.as_ptr().add(128 * n + 32 * j + 16 * h));
                        let g = 8 * n + 2 * j + h;
                        isum[g] = D::dot(isum[g], vreinterpretq_s8_u8(q), a);
                    }
                }
            }
            let sc: [u8; 16] = x.scales.map(|s| s & 0xF);
            let sumi = scaled16(&isum, &widen16(&sc, false));
            let mut summ = 0i32;
            for is in 0..16 {
                summ += (x.scales[is] >> 4) as i32 * y.bsums[is] as i32;
            }
            (sumi, summ)
        };
        sumf += y.d * f16_at(x.d) * sumi as f32 - y.d * f16_at(x.dmin) * summ as f32;
    }
    sumf
}

/// Q3_K: as Q2_K, minus 4 where the `hmask` bit (`e / 32`) is clear.
#[inline(always)]
pub(in crate::engine::kernels) unsafe fn q3k<D: Dot>(w: &[BlockQ3K], y: &[BlockQ8K]) -> f32 {
    let mut sumf = 0.0;
    for (x, y) in w.iter().zip(y) {
        // SAFETY: as in q2k (`hmask` is 32 bytes: two loads).
        let sumi = unsafe {
            let mut isum = [vdupq_n_s32(0); 16];
            let three = vdupq_n_u8(3);
            let four = vdupq_n_u8(4);
            let hm = [
                vld1q_u8(x.hmask.as_ptr()),
                vld1q_u8(x.hmask.as_ptr().add(16)),
            ];
            for n in 0..2 {
                for (h, hm) in hm.iter().enumerate() {
                    let v = vld1q_u8(x.qs.as_ptr().add(32 * n + 16 * h));
                    let q = [
                        vandq_u8(v, three),
                        vandq_u8(vshrq_n_u8::<2>(v), three),
                        vandq_u8(vshrq_n_u8::<4>(v), three),
                        vshrq_n_u8::<6>(v),
                    ];
                    for (j, q) in q.into_iter().enumerate() {
                        let bit = vdupq_n_u8(1 << (4 * n + j));
                        let sub = vbicq_u8(four, vtstq_u8(*hm, bit));
                        let q = vsubq_s8(vreinterpretq_s8_u8(q), vreinterpretq_s8_u8(sub));
                        let a = ld(y.qs.as_ptr().add(128 * n + 32 * j + 16 * h));
                        let g = 8 * n + 2 * j + h;
                        isum[g] = D::dot(isum[g], q, a);
                    }
                }
            }
            let sc = scales_q3k(&x.scales);
            let mut s = widen16(&sc, false);
            for s in &mut s {
                *s = vsubq_s32(*s, vdupq_n_s32(32));
            }
            scaled16(&isum, &s)
        };
        sumf += f16_at(x.d) * y.d * sumi as f32;
    }
    sumf
}

/// Q4_K / Q5_K: 8 groups of 32 (`k4_index`: group `2j` is the low nibbles of
/// bytes `32j..32j+32`, group `2j+1` their high nibbles); `FIVE` adds bit
/// `g` of `qh[l]` as the fifth bit.
#[inline(always)]
unsafe fn q45k<D: Dot, const FIVE: bool>(
    d: [u8; 2],
    dmin: [u8; 2],
    scales: &[u8; K_SCALE_SIZE],
    qs: &[u8; QK_K / 2],
    qh: &[u8; QK_K / 8],
    y: &BlockQ8K,
) -> f32 {
    // SAFETY: loads of 16 bytes at offsets below 128 in `qs`, 32 in `qh`,
    // 256 in the activations; D's features.
    let (sumi, summ) = unsafe {
        let mut isum = [vdupq_n_s32(0); 8];
        let sixteen = vdupq_n_u8(0x10);
        let hv = [vld1q_u8(qh.as_ptr()), vld1q_u8(qh.as_ptr().add(16))];
        for j in 0..4 {
            for (h, hv) in hv.iter().enumerate() {
                let (mut lo, mut hi) = nibbles(qs.as_ptr().add(32 * j + 16 * h));
                if FIVE {
                    let b0 = vandq_u8(vtstq_u8(*hv, vdupq_n_u8(1 << (2 * j))), sixteen);
                    let b1 = vandq_u8(vtstq_u8(*hv, vdupq_n_u8(1 << (2 * j + 1))), sixteen);
                    lo = vorrq_s8(lo, vreinterpretq_s8_u8(b0));
                    hi = vorrq_s8(hi, vreinterpretq_s8_u8(b1));
                }
                let a0 = ld(y.qs.as_ptr().add(64 * j + 16 * h));
                let a1 = ld(y.qs.as_ptr().add(64 * j + 32 + 16 * h));
                isum[2 * j] = D::dot(isum[2 * j], lo, a0);
                isum[2 * j + 1] = D::dot(isum[2 * j + 1], hi, a1);
            }
        }
        let mut sc = [0i32; 8];
        let mut summ = 0i32;
        for (g, sc) in sc.iter_mut().enumerate() {
            let (s, m) = scale_min_k4(g, scales);
            *sc = s as i32;
            summ += m as i32 * (y.bsums[2 * g] as i32 + y.bsums[2 * g + 1] as i32);
        }
        let s0 = hsum4(isum[0], isum[1], isum[2], isum[3]);
        let s1 = hsum4(isum[4], isum[5], isum[6], isum[7]);
        let p = vmlaq_s32(
            vmulq_s32(s0, vld1q_s32(sc.as_ptr())),
            s1,
            vld1q_s32(sc.as_ptr().add(4)),
        );
        (hsum(p), summ)
    };
    f16_at(d) * y.d * sumi as f32 - f16_at(dmin) * y.d * summ as f32
}

#[inline(always)]
pub(in crate::engine::kernels) unsafe fn q4k<D: Dot>(w: &[BlockQ4K], y: &[BlockQ8K]) -> f32 {
    let mut sumf = 0.0;
    let none = [0u8; QK_K / 8];
    for (x, y) in w.iter().zip(y) {
        // SAFETY: D's features (the caller's contract).
        sumf += unsafe { q45k::<D, false>(x.d, x.dmin, &x.scales, &x.qs, &none, y) };
    }
    sumf
}

#[inline(always)]
pub(in crate::engine::kernels) unsafe fn q5k<D: Dot>(w: &[BlockQ5K], y: &[BlockQ8K]) -> f32 {
    let mut sumf = 0.0;
    for (x, y) in w.iter().zip(y) {
        // SAFETY: D's features (the caller's contract).
        sumf += unsafe { q45k::<D, true>(x.d, x.dmin, &x.scales, &x.qs, &x.qh, y) };
    }
    sumf
}

/// Q6_K: halves `n` of 128, quarters `k` of 32 (low nibbles of `ql` for
/// k < 2, high for k ≥ 2; two bits of `qh` at `2k`), groups `8n + 2k + l/16`.
#[inline(always)]
pub(in crate::engine::kernels) unsafe fn q6k<D: Dot>(w: &[BlockQ6K], y: &[BlockQ8K]) -> f32 {
    let mut sumf = 0.0;
    for (x, y) in w.iter().zip(y) {
        // SAFETY: loads of 16 bytes at offsets below 128 in `ql`, 64 in `qh`,
        // 256 in the activations; D's features.
        let sumi = unsafe {
            let mut isum = [vdupq_n_s32(0); 16];
            let m4 = vdupq_n_u8(0xF);
            let m3 = vdupq_n_u8(0x30);
            let off = vdupq_n_s8(32);
            for n in 0..2 {
                for h in 0..2 {
                    let qh = vld1q_u8(x.qh.as_ptr().add(32 * n + 16 * h));
                    let l0 = vld1q_u8(x.ql.as_ptr().add(64 * n + 16 * h));
                    let l1 = vld1q_u8(x.ql.as_ptr().add(64 * n + 32 + 16 * h));
                    let q = [
                        vorrq_u8(vandq_u8(l0, m4), vandq_u8(vshlq_n_u8::<4>(qh), m3)),
                        vorrq_u8(vandq_u8(l1, m4), vandq_u8(vshlq_n_u8::<2>(qh), m3)),
                        vorrq_u8(vshrq_n_u8::<4>(l0), vandq_u8(qh, m3)),
                        vorrq_u8(vshrq_n_u8::<4>(l1), vandq_u8(vshrq_n_u8::<2>(qh), m3)),
                    ];
                    for (k, q) in q.into_iter().enumerate() {
                        let q = vsubq_s8(vreinterpretq_s8_u8(q), off);
                        let a = ld(y.qs.as_ptr().add(128 * n + 32 * k + 16 * h));
                        let g = 8 * n + 2 * k + h;
                        isum[g] = D::dot(isum[g], q, a);
                    }
                }
            }
            let sc: &[u8; 16] = &*(x.scales.as_ptr().cast::<[u8; 16]>());
            scaled16(&isum, &widen16(sc, true))
        };
        sumf += f16_at(x.d) * y.d * sumi as f32;
    }
    sumf
}

#[inline(always)]
pub(in crate::engine::kernels) unsafe fn q8k<D: Dot>(w: &[BlockQ8K], y: &[BlockQ8K]) -> f32 {
    let mut sumf = 0.0;
    for (x, y) in w.iter().zip(y) {
        // SAFETY: 16 loads of 16 bytes inside the 256-byte arrays; D's features.
        let sumi = unsafe {
            let mut acc = [vdupq_n_s32(0); 4];
            for i in 0..16 {
                let (a, b) = (ld(x.qs.as_ptr().add(16 * i)), ld(y.qs.as_ptr().add(16 * i)));
                acc[i % 4] = D::dot(acc[i % 4], a, b);
            }
            hsum(vaddq_s32(
                vaddq_s32(acc[0], acc[1]),
                vaddq_s32(acc[2], acc[3]),
            ))
        };
        sumf += x.d * y.d * sumi as f32;
    }
    sumf
}

/// IQ4_XS: 8 groups of 32 through the IQ4 value table, 6-bit scales - 32.
#[inline(always)]
pub(in crate::engine::kernels) unsafe fn iq4_xs<D: Dot>(w: &[BlockIQ4XS], y: &[BlockQ8K]) -> f32 {
    let mut sumf = 0.0;
    for (x, y) in w.iter().zip(y) {
        // SAFETY: loads of 16 bytes at offsets below 128 in `qs`, 256 in the
        // activations; D's features.
        let sumi = unsafe {
            let mut isum = [vdupq_n_s32(0); 8];
            for (ib, isum) in isum.iter_mut().enumerate() {
                let (lo, hi) = iq4_values(x.qs.as_ptr().add(16 * ib));
                let a0 = ld(y.qs.as_ptr().add(32 * ib));
                let a1 = ld(y.qs.as_ptr().add(32 * ib + 16));
                *isum = D::dot(D::dot(*isum, lo, a0), hi, a1);
            }
            let sc: [i32; 8] = std::array::from_fn(|ib| iq4xs_scale(x, ib) - 32);
            let s0 = hsum4(isum[0], isum[1], isum[2], isum[3]);
            let s1 = hsum4(isum[4], isum[5], isum[6], isum[7]);
            hsum(vmlaq_s32(
                vmulq_s32(s0, vld1q_s32(sc.as_ptr())),
                s1,
                vld1q_s32(sc.as_ptr().add(4)),
            ))
        };
        sumf += f16_at(x.d) * y.d * sumi as f32;
    }
    sumf
}
