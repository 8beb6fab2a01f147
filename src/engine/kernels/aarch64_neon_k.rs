//! NEON decode dots of the K-quants and IQ4_XS ([`NeonBlock`]s, generic over
//! the four-byte dot product; instantiated per set in `aarch64_neon.rs`).
//!
//! A block's 256 weights unpack to 16 registers of i8 (register `c` holds
//! elements `16c..16c+16`, so it meets activation bytes `16c..16c+16`); the
//! integer sums per scale group come from their dot products gathered four
//! groups to a register (`hsum4`), then multiplied by the group scales in
//! i32: the scalar reference's exact integers. The float
//! expression per block and the order of the block sum are the reference's,
//! so the results are its bits.

use std::arch::aarch64::*;

use super::aarch64_neon::{Dot, NeonBlock, hsum, hsum4, iq4_values, ld, nibbles};
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

/// The 16 dot registers of 256 unpacked weights (chunk `c`: elements
/// `16c..16c+16`) against a Q8_K block.
#[inline(always)]
unsafe fn dots16<D: Dot>(u: &[int8x16_t; 16], y: &BlockQ8K) -> [int32x4_t; 16] {
    // No closure here: a closure is a function of its own, compiled without
    // the caller's target features (and `sdot` needs them).
    // SAFETY: NEON is baseline.
    let mut isum = unsafe { [vdupq_n_s32(0); 16] };
    for (c, (isum, u)) in isum.iter_mut().zip(u).enumerate() {
        // SAFETY: 16 bytes inside the 256 activations; D's features.
        *isum = unsafe { D::dot(vdupq_n_s32(0), *u, ld(y.qs.as_ptr().add(16 * c))) };
    }
    isum
}

/// `Σ_c sc[c] * isum[c]` over 16 groups of 16 (`sc` four lanes per register).
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

/// `Σ_g sc[g] * isum[g]` over 8 groups of 32 (chunks `2g`, `2g + 1`).
#[inline(always)]
unsafe fn scaled8(isum: &[int32x4_t; 16], sc: &[int32x4_t; 2]) -> i32 {
    // SAFETY: NEON is baseline.
    unsafe {
        let g: [int32x4_t; 8] = std::array::from_fn(|g| vaddq_s32(isum[2 * g], isum[2 * g + 1]));
        let s0 = hsum4(g[0], g[1], g[2], g[3]);
        let s1 = hsum4(g[4], g[5], g[6], g[7]);
        hsum(vmlaq_s32(vmulq_s32(s0, sc[0]), s1, sc[1]))
    }
}

/// The four 2-bit fields of 16 bytes (shifts 0, 2, 4, 6).
#[inline(always)]
unsafe fn crumbs(v: uint8x16_t) -> [uint8x16_t; 4] {
    // SAFETY: NEON is baseline.
    unsafe {
        let three = vdupq_n_u8(3);
        [
            vandq_u8(v, three),
            vandq_u8(vshrq_n_u8::<2>(v), three),
            vandq_u8(vshrq_n_u8::<4>(v), three),
            vshrq_n_u8::<6>(v),
        ]
    }
}

/// Q2_K: 16 groups of 16 (`k2_index` in scalar.rs: element
/// `128n + 32j + 16h + i` is byte `32n + 16h + i` at shift `2j`, group
/// `8n + 2j + h`, which is its chunk).
impl NeonBlock<BlockQ8K> for BlockQ2K {
    type U = ([int8x16_t; 16], [int32x4_t; 4]);
    #[inline(always)]
    unsafe fn unpack(&self) -> Self::U {
        // SAFETY: loads of 16 bytes at offsets below 64 in `qs`.
        unsafe {
            let mut u = [vdupq_n_s8(0); 16];
            for n in 0..2 {
                for h in 0..2 {
                    let v = vld1q_u8(self.qs.as_ptr().add(32 * n + 16 * h));
                    for (j, q) in crumbs(v).into_iter().enumerate() {
                        u[8 * n + 2 * j + h] = vreinterpretq_s8_u8(q);
                    }
                }
            }
            (u, widen16(&self.scales.map(|s| s & 0xF), false))
        }
    }
    #[inline(always)]
    unsafe fn term<D: Dot>(&self, u: &Self::U, y: &BlockQ8K) -> f32 {
        // SAFETY: D's features.
        let sumi = unsafe { scaled16(&dots16::<D>(&u.0, y), &u.1) };
        let mut summ = 0i32;
        for is in 0..16 {
            summ += (self.scales[is] >> 4) as i32 * y.bsums[is] as i32;
        }
        y.d * f16_at(self.d) * sumi as f32 - y.d * f16_at(self.dmin) * summ as f32
    }
}

/// Q3_K: as Q2_K, minus 4 where the `hmask` bit (`e / 32 = 4n + j`) of
/// element `e` (byte `e % 32`) is clear.
impl NeonBlock<BlockQ8K> for BlockQ3K {
    type U = ([int8x16_t; 16], [int32x4_t; 4]);
    #[inline(always)]
    unsafe fn unpack(&self) -> Self::U {
        // SAFETY: loads of 16 bytes at offsets below 64 in `qs`, 32 in `hmask`.
        unsafe {
            let mut u = [vdupq_n_s8(0); 16];
            let four = vdupq_n_u8(4);
            let hm = [
                vld1q_u8(self.hmask.as_ptr()),
                vld1q_u8(self.hmask.as_ptr().add(16)),
            ];
            for n in 0..2 {
                for (h, hm) in hm.iter().enumerate() {
                    let v = vld1q_u8(self.qs.as_ptr().add(32 * n + 16 * h));
                    for (j, q) in crumbs(v).into_iter().enumerate() {
                        let bit = vdupq_n_u8(1 << (4 * n + j));
                        let sub = vbicq_u8(four, vtstq_u8(*hm, bit));
                        u[8 * n + 2 * j + h] = vreinterpretq_s8_u8(vsubq_u8(q, sub));
                    }
                }
            }
            let mut sc = widen16(&scales_q3k(&self.scales), false);
            for s in &mut sc {
                *s = vsubq_s32(*s, vdupq_n_s32(32));
            }
            (u, sc)
        }
    }
    #[inline(always)]
    unsafe fn term<D: Dot>(&self, u: &Self::U, y: &BlockQ8K) -> f32 {
        // SAFETY: D's features.
        let sumi = unsafe { scaled16(&dots16::<D>(&u.0, y), &u.1) };
        f16_at(self.d) * y.d * sumi as f32
    }
}

/// Q4_K / Q5_K weights: 8 groups of 32 (`k4_index`: group `2j` is the low
/// nibbles of bytes `32j..32j+32`, group `2j+1` their high nibbles; chunk
/// `4j + 2·high + h`); `qh` adds bit `g` of `qh[l]` as the fifth bit.
#[inline(always)]
unsafe fn unpack45(qs: &[u8; QK_K / 2], qh: Option<&[u8; QK_K / 8]>) -> [int8x16_t; 16] {
    // SAFETY: loads of 16 bytes at offsets below 128 in `qs`, 32 in `qh`.
    unsafe {
        let mut u = [vdupq_n_s8(0); 16];
        let sixteen = vdupq_n_u8(0x10);
        for j in 0..4 {
            for h in 0..2 {
                let (mut lo, mut hi) = nibbles(qs.as_ptr().add(32 * j + 16 * h));
                if let Some(qh) = qh {
                    let hv = vld1q_u8(qh.as_ptr().add(16 * h));
                    let b0 = vandq_u8(vtstq_u8(hv, vdupq_n_u8(1 << (2 * j))), sixteen);
                    let b1 = vandq_u8(vtstq_u8(hv, vdupq_n_u8(1 << (2 * j + 1))), sixteen);
                    lo = vorrq_s8(lo, vreinterpretq_s8_u8(b0));
                    hi = vorrq_s8(hi, vreinterpretq_s8_u8(b1));
                }
                u[4 * j + h] = lo;
                u[4 * j + 2 + h] = hi;
            }
        }
        u
    }
}

/// The 6-bit scales (as two registers) and mins of a Q4_K/Q5_K block.
#[inline(always)]
unsafe fn scales45(scales: &[u8; K_SCALE_SIZE]) -> ([int32x4_t; 2], [i32; 8]) {
    let mut sc = [0i32; 8];
    let mut mins = [0i32; 8];
    for g in 0..8 {
        let (s, m) = scale_min_k4(g, scales);
        (sc[g], mins[g]) = (s as i32, m as i32);
    }
    // SAFETY: 8 readable i32.
    let v = unsafe { [vld1q_s32(sc.as_ptr()), vld1q_s32(sc.as_ptr().add(4))] };
    (v, mins)
}

/// The float term of a Q4_K/Q5_K block (scalar `dot_q4k_q8k`'s).
#[inline(always)]
unsafe fn term45<D: Dot>(
    d: [u8; 2],
    dmin: [u8; 2],
    u: &([int8x16_t; 16], [int32x4_t; 2], [i32; 8]),
    y: &BlockQ8K,
) -> f32 {
    // SAFETY: D's features.
    let sumi = unsafe { scaled8(&dots16::<D>(&u.0, y), &u.1) };
    let mut summ = 0i32;
    for g in 0..8 {
        summ += u.2[g] * (y.bsums[2 * g] as i32 + y.bsums[2 * g + 1] as i32);
    }
    f16_at(d) * y.d * sumi as f32 - f16_at(dmin) * y.d * summ as f32
}

impl NeonBlock<BlockQ8K> for BlockQ4K {
    type U = ([int8x16_t; 16], [int32x4_t; 2], [i32; 8]);
    #[inline(always)]
    unsafe fn unpack(&self) -> Self::U {
        // SAFETY: NEON is baseline.
        unsafe {
            let (sc, mins) = scales45(&self.scales);
            (unpack45(&self.qs, None), sc, mins)
        }
    }
    #[inline(always)]
    unsafe fn term<D: Dot>(&self, u: &Self::U, y: &BlockQ8K) -> f32 {
        // SAFETY: D's features.
        unsafe { term45::<D>(self.d, self.dmin, u, y) }
    }
}

impl NeonBlock<BlockQ8K> for BlockQ5K {
    type U = ([int8x16_t; 16], [int32x4_t; 2], [i32; 8]);
    #[inline(always)]
    unsafe fn unpack(&self) -> Self::U {
        // SAFETY: NEON is baseline.
        unsafe {
            let (sc, mins) = scales45(&self.scales);
            (unpack45(&self.qs, Some(&self.qh)), sc, mins)
        }
    }
    #[inline(always)]
    unsafe fn term<D: Dot>(&self, u: &Self::U, y: &BlockQ8K) -> f32 {
        // SAFETY: D's features.
        unsafe { term45::<D>(self.d, self.dmin, u, y) }
    }
}

/// Q6_K: element `128n + 32k + 16h + i`: low nibble (k < 2) or high nibble
/// (k ≥ 2) of `ql[64n + 32(k % 2) + 16h + i]`, two bits of
/// `qh[32n + 16h + i]` at `2k`, minus 32; group `8n + 2k + h` (its chunk).
impl NeonBlock<BlockQ8K> for BlockQ6K {
    type U = ([int8x16_t; 16], [int32x4_t; 4]);
    #[inline(always)]
    unsafe fn unpack(&self) -> Self::U {
        // SAFETY: loads of 16 bytes at offsets below 128 in `ql`, 64 in `qh`,
        // 16 in `scales`.
        unsafe {
            let mut u = [vdupq_n_s8(0); 16];
            let m4 = vdupq_n_u8(0xF);
            let m3 = vdupq_n_u8(0x30);
            let off = vdupq_n_s8(32);
            for n in 0..2 {
                for h in 0..2 {
                    let qh = vld1q_u8(self.qh.as_ptr().add(32 * n + 16 * h));
                    let l0 = vld1q_u8(self.ql.as_ptr().add(64 * n + 16 * h));
                    let l1 = vld1q_u8(self.ql.as_ptr().add(64 * n + 32 + 16 * h));
                    let q = [
                        vorrq_u8(vandq_u8(l0, m4), vandq_u8(vshlq_n_u8::<4>(qh), m3)),
                        vorrq_u8(vandq_u8(l1, m4), vandq_u8(vshlq_n_u8::<2>(qh), m3)),
                        vorrq_u8(vshrq_n_u8::<4>(l0), vandq_u8(qh, m3)),
                        vorrq_u8(vshrq_n_u8::<4>(l1), vandq_u8(vshrq_n_u8::<2>(qh), m3)),
                    ];
                    for (k, q) in q.into_iter().enumerate() {
                        u[8 * n + 2 * k + h] = vsubq_s8(vreinterpretq_s8_u8(q), off);
                    }
                }
            }
            let sc: &[u8; 16] = &*(self.scales.as_ptr().cast::<[u8; 16]>());
            (u, widen16(sc, true))
        }
    }
    #[inline(always)]
    unsafe fn term<D: Dot>(&self, u: &Self::U, y: &BlockQ8K) -> f32 {
        // SAFETY: D's features.
        let sumi = unsafe { scaled16(&dots16::<D>(&u.0, y), &u.1) };
        f16_at(self.d) * y.d * sumi as f32
    }
}

impl NeonBlock<BlockQ8K> for BlockQ8K {
    type U = ();
    #[inline(always)]
    unsafe fn unpack(&self) {}
    #[inline(always)]
    unsafe fn term<D: Dot>(&self, _: &(), y: &BlockQ8K) -> f32 {
        // SAFETY: 16 loads of 16 bytes inside the 256-byte arrays; D's features.
        let sumi = unsafe {
            let mut acc = [vdupq_n_s32(0); 4];
            for i in 0..16 {
                let (a, b) = (
                    ld(self.qs.as_ptr().add(16 * i)),
                    ld(y.qs.as_ptr().add(16 * i)),
                );
                acc[i % 4] = D::dot(acc[i % 4], a, b);
            }
            hsum(vaddq_s32(
                vaddq_s32(acc[0], acc[1]),
                vaddq_s32(acc[2], acc[3]),
            ))
        };
        self.d * y.d * sumi as f32
    }
}

/// IQ4_XS: 8 groups of 32 through the IQ4 value table (group `ib`: chunks
/// `2ib`, low nibbles, and `2ib + 1`, high nibbles), 6-bit scales - 32.
impl NeonBlock<BlockQ8K> for BlockIQ4XS {
    type U = ([int8x16_t; 16], [int32x4_t; 2]);
    #[inline(always)]
    unsafe fn unpack(&self) -> Self::U {
        // SAFETY: loads of 16 bytes at offsets below 128 in `qs`.
        unsafe {
            let mut u = [vdupq_n_s8(0); 16];
            for ib in 0..8 {
                (u[2 * ib], u[2 * ib + 1]) = iq4_values(self.qs.as_ptr().add(16 * ib));
            }
            let sc: [i32; 8] = std::array::from_fn(|ib| iq4xs_scale(self, ib) - 32);
            (u, [vld1q_s32(sc.as_ptr()), vld1q_s32(sc.as_ptr().add(4))])
        }
    }
    #[inline(always)]
    unsafe fn term<D: Dot>(&self, u: &Self::U, y: &BlockQ8K) -> f32 {
        // SAFETY: D's features.
        let sumi = unsafe { scaled8(&dots16::<D>(&u.0, y), &u.1) };
        f16_at(self.d) * y.d * sumi as f32
    }
}
