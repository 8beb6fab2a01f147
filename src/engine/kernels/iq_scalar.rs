//! Scalar reference kernels for the IQ types and MXFP4.
//!
//! Dequantization follows gguf-py's numpy code operation for operation (the
//! same float products in the same order), so results agree bit for bit;
//! dot products follow ggml's `_generic` functions: integer sums of grid
//! value times activation inside a group, one float multiply per block.
//! IQ4_NL and MXFP4 pair with Q8_0 activations, the 256-wide types with Q8_K.

use crate::engine::quant::iq_grids::*;
use crate::engine::quant::*;

/// -1.0 where bit `j` of `signs` is set, else 1.0.
#[inline(always)]
fn sign_f(signs: u8, j: usize) -> f32 {
    if signs >> j & 1 == 1 { -1.0 } else { 1.0 }
}

/// -1 where bit `j` of `signs` is set, else 1.
#[inline(always)]
fn sign_i(signs: u8, j: usize) -> i32 {
    if signs >> j & 1 == 1 { -1 } else { 1 }
}

// ------------------------------------------------------------ IQ2_XXS

/// Group `ib` (0..8): its four grid rows, the 7-bit sign word and the 4-bit scale.
#[inline(always)]
fn iq2xxs_group(b: &BlockIQ2XXS, ib: usize) -> ([u8; 4], u32, u32) {
    let idx = [
        b.qs[8 * ib],
        b.qs[8 * ib + 1],
        b.qs[8 * ib + 2],
        b.qs[8 * ib + 3],
    ];
    let aux = u32_at(&b.qs, 2 * ib + 1);
    (idx, aux, aux >> 28)
}

/// x = d * (0.5 + s) * 0.25 * grid * sign
pub fn dequantize_iq2_xxs(blocks: &[BlockIQ2XXS], dst: &mut [f32]) {
    for (b, y) in blocks.iter().zip(dst.chunks_exact_mut(QK_K)) {
        let d = f16_at(b.d);
        for ib in 0..8 {
            let (idx, aux, s) = iq2xxs_group(b, ib);
            let db = d * (0.5 + s as f32) * 0.25;
            for l in 0..4 {
                let grid = &IQ2XXS_GRID[idx[l] as usize];
                let signs = KSIGNS_IQ2XS[((aux >> (7 * l)) & 127) as usize];
                for j in 0..8 {
                    y[32 * ib + 8 * l + j] = db * grid[j] as f32 * sign_f(signs, j);
                }
            }
        }
    }
}

/// 0.125 * sum over blocks of (dx*dy) * sum((2s+1) * sum32(grid*sign*qy))
pub fn dot_iq2_xxs_q8k(w: &[BlockIQ2XXS], y: &[BlockQ8K]) -> f32 {
    let mut sumf = 0.0;
    for (x, y) in w.iter().zip(y) {
        let mut bsum = 0i32;
        for ib in 0..8 {
            let (idx, aux, s) = iq2xxs_group(x, ib);
            let mut sumi = 0i32;
            for l in 0..4 {
                let grid = &IQ2XXS_GRID[idx[l] as usize];
                let signs = KSIGNS_IQ2XS[((aux >> (7 * l)) & 127) as usize];
                for j in 0..8 {
                    let q8 = y.qs[32 * ib + 8 * l + j] as i32;
                    sumi += grid[j] as i32 * q8 * sign_i(signs, j);
                }
            }
            bsum += sumi * (2 * s as i32 + 1);
        }
        sumf += f16_at(x.d) * y.d * bsum as f32;
    }
    0.125 * sumf
}

// ------------------------------------------------------------ IQ2_XS

/// Grid row, signs and 4-bit scale of the 8 weights `8k..8k+8` (k in 0..32).
#[inline(always)]
fn iq2xs_part(b: &BlockIQ2XS, k: usize) -> (&'static [u8; 8], u8, u8) {
    let q = u16_at(&b.qs, k);
    let sc = (b.scales[k / 4] >> (4 * ((k % 4) / 2))) & 0xF;
    (
        &IQ2XS_GRID[(q & 511) as usize],
        KSIGNS_IQ2XS[(q >> 9) as usize],
        sc,
    )
}

/// x = d * (0.5 + s) * 0.25 * grid * sign, s per 16 weights
pub fn dequantize_iq2_xs(blocks: &[BlockIQ2XS], dst: &mut [f32]) {
    for (b, y) in blocks.iter().zip(dst.chunks_exact_mut(QK_K)) {
        let d = f16_at(b.d);
        for k in 0..32 {
            let (grid, signs, s) = iq2xs_part(b, k);
            let db = d * (0.5 + s as f32) * 0.25;
            for j in 0..8 {
                y[8 * k + j] = db * grid[j] as f32 * sign_f(signs, j);
            }
        }
    }
}

/// 0.125 * sum over blocks of (dx*dy) * sum((2s+1) * sum16(grid*sign*qy))
pub fn dot_iq2_xs_q8k(w: &[BlockIQ2XS], y: &[BlockQ8K]) -> f32 {
    let mut sumf = 0.0;
    for (x, y) in w.iter().zip(y) {
        let mut bsum = 0i32;
        for k in 0..32 {
            let (grid, signs, s) = iq2xs_part(x, k);
            let mut sumi = 0i32;
            for j in 0..8 {
                sumi += grid[j] as i32 * y.qs[8 * k + j] as i32 * sign_i(signs, j);
            }
            bsum += sumi * (2 * s as i32 + 1);
        }
        sumf += f16_at(x.d) * y.d * bsum as f32;
    }
    0.125 * sumf
}

// ------------------------------------------------------------ IQ2_S

/// Grid row, signs and 4-bit scale of the 8 weights `8k..8k+8` (k in 0..32).
#[inline(always)]
fn iq2s_part(b: &BlockIQ2S, k: usize) -> (&'static [u8; 8], u8, u8) {
    let hi = ((b.qh[k / 4] >> (2 * (k % 4))) & 3) as usize;
    let sc = (b.scales[k / 4] >> (4 * ((k % 4) / 2))) & 0xF;
    (&IQ2S_GRID[b.qs[k] as usize | hi << 8], b.qs[32 + k], sc)
}

/// x = d * (0.5 + s) * 0.25 * grid * sign, s per 16 weights
pub fn dequantize_iq2_s(blocks: &[BlockIQ2S], dst: &mut [f32]) {
    for (b, y) in blocks.iter().zip(dst.chunks_exact_mut(QK_K)) {
        let d = f16_at(b.d);
        for k in 0..32 {
            let (grid, signs, s) = iq2s_part(b, k);
            let db = d * (0.5 + s as f32) * 0.25;
            for j in 0..8 {
                y[8 * k + j] = db * grid[j] as f32 * sign_f(signs, j);
            }
        }
    }
}

/// 0.125 * sum over blocks of (dx*dy) * sum((2s+1) * sum16(grid*sign*qy))
pub fn dot_iq2_s_q8k(w: &[BlockIQ2S], y: &[BlockQ8K]) -> f32 {
    let mut sumf = 0.0;
    for (x, y) in w.iter().zip(y) {
        let mut bsum = 0i32;
        for k in 0..32 {
            let (grid, signs, s) = iq2s_part(x, k);
            let mut sumi = 0i32;
            for j in 0..8 {
                sumi += grid[j] as i32 * y.qs[8 * k + j] as i32 * sign_i(signs, j);
            }
            bsum += sumi * (2 * s as i32 + 1);
        }
        sumf += f16_at(x.d) * y.d * bsum as f32;
    }
    0.125 * sumf
}

// ------------------------------------------------------------ IQ3_XXS

/// The magnitude of weight `8l + j` (l in 0..4, j in 0..8) of group `ib`.
#[inline(always)]
fn iq3xxs_mag(b: &BlockIQ3XXS, ib: usize, l: usize, j: usize) -> u8 {
    IQ3XXS_GRID[b.qs[8 * ib + 2 * l + j / 4] as usize][j % 4]
}

/// x = d * (0.5 + s) * 0.5 * grid * sign
pub fn dequantize_iq3_xxs(blocks: &[BlockIQ3XXS], dst: &mut [f32]) {
    for (b, y) in blocks.iter().zip(dst.chunks_exact_mut(QK_K)) {
        let d = f16_at(b.d);
        for ib in 0..8 {
            let aux = u32_at(&b.qs[QK_K / 4..], ib);
            let db = d * (0.5 + (aux >> 28) as f32) * 0.5;
            for l in 0..4 {
                let signs = KSIGNS_IQ2XS[((aux >> (7 * l)) & 127) as usize];
                for j in 0..8 {
                    y[32 * ib + 8 * l + j] = db * iq3xxs_mag(b, ib, l, j) as f32 * sign_f(signs, j);
                }
            }
        }
    }
}

/// 0.25 * sum over blocks of (dx*dy) * sum((2s+1) * sum32(grid*sign*qy))
pub fn dot_iq3_xxs_q8k(w: &[BlockIQ3XXS], y: &[BlockQ8K]) -> f32 {
    let mut sumf = 0.0;
    for (x, y) in w.iter().zip(y) {
        let mut bsum = 0i32;
        for ib in 0..8 {
            let aux = u32_at(&x.qs[QK_K / 4..], ib);
            let mut sumi = 0i32;
            for l in 0..4 {
                let signs = KSIGNS_IQ2XS[((aux >> (7 * l)) & 127) as usize];
                for j in 0..8 {
                    let q8 = y.qs[32 * ib + 8 * l + j] as i32;
                    sumi += iq3xxs_mag(x, ib, l, j) as i32 * q8 * sign_i(signs, j);
                }
            }
            bsum += sumi * (2 * (aux >> 28) as i32 + 1);
        }
        sumf += f16_at(x.d) * y.d * bsum as f32;
    }
    0.25 * sumf
}

// ------------------------------------------------------------ IQ3_S

/// The magnitude of weight `e` (0..256) of an IQ3_S block.
#[inline(always)]
fn iq3s_mag(b: &BlockIQ3S, e: usize) -> u8 {
    let k = e / 4;
    let hi = ((b.qh[k / 8] >> (k % 8)) & 1) as usize;
    IQ3S_GRID[b.qs[k] as usize | hi << 8][e % 4]
}

/// The 4-bit scale of group `ib` (0..8) of an IQ3_S block.
#[inline(always)]
fn iq3s_scale(b: &BlockIQ3S, ib: usize) -> u8 {
    (b.scales[ib / 2] >> (4 * (ib % 2))) & 0xF
}

/// x = d * (1 + 2s) * grid * sign
pub fn dequantize_iq3_s(blocks: &[BlockIQ3S], dst: &mut [f32]) {
    for (b, y) in blocks.iter().zip(dst.chunks_exact_mut(QK_K)) {
        let d = f16_at(b.d);
        for (e, v) in y.iter_mut().enumerate() {
            let db = d * (1 + 2 * iq3s_scale(b, e / 32)) as f32;
            *v = db * iq3s_mag(b, e) as f32 * sign_f(b.signs[e / 8], e % 8);
        }
    }
}

/// sum over blocks of (dx*dy) * sum((1+2s) * sum32(grid*sign*qy))
pub fn dot_iq3_s_q8k(w: &[BlockIQ3S], y: &[BlockQ8K]) -> f32 {
    let mut sumf = 0.0;
    for (x, y) in w.iter().zip(y) {
        let mut bsum = 0i32;
        for ib in 0..8 {
            let mut sumi = 0i32;
            for e in 32 * ib..32 * ib + 32 {
                let s = sign_i(x.signs[e / 8], e % 8);
                sumi += iq3s_mag(x, e) as i32 * y.qs[e] as i32 * s;
            }
            bsum += sumi * (1 + 2 * iq3s_scale(x, ib) as i32);
        }
        sumf += f16_at(x.d) * y.d * bsum as f32;
    }
    sumf
}

// ------------------------------------------------------------ IQ1_S

/// Group `ib` (0..8) of an IQ1_S block: its four grid rows, 3-bit scale and delta sign.
#[inline(always)]
fn iq1s_group(b: &BlockIQ1S, ib: usize) -> ([&'static [i8; 8]; 4], i32, bool) {
    let qh = u16_at(&b.qh, ib);
    let row =
        |l: usize| &IQ1S_GRID[b.qs[4 * ib + l] as usize | (((qh >> (3 * l)) & 7) as usize) << 8];
    (
        [row(0), row(1), row(2), row(3)],
        ((qh >> 12) & 7) as i32,
        qh & 0x8000 != 0,
    )
}

/// x = d * (2s + 1) * (grid ± 0.125)
pub fn dequantize_iq1_s(blocks: &[BlockIQ1S], dst: &mut [f32]) {
    for (b, y) in blocks.iter().zip(dst.chunks_exact_mut(QK_K)) {
        let d = f16_at(b.d);
        for ib in 0..8 {
            let (rows, s, neg) = iq1s_group(b, ib);
            let dl = d * (2 * s + 1) as f32;
            let delta = if neg { -IQ1S_DELTA } else { IQ1S_DELTA };
            for l in 0..4 {
                for j in 0..8 {
                    y[32 * ib + 8 * l + j] = dl * (rows[l][j] as f32 + delta);
                }
            }
        }
    }
}

/// sum over blocks of (dx*dy) * (sum((2s+1) * sum32(grid*qy)) + 0.125 * sum((2s+1) * ±bsum32))
pub fn dot_iq1_s_q8k(w: &[BlockIQ1S], y: &[BlockQ8K]) -> f32 {
    let mut sumf = 0.0;
    for (x, y) in w.iter().zip(y) {
        let (mut sumi, mut sumi1) = (0i32, 0i32);
        for ib in 0..8 {
            let (rows, s, neg) = iq1s_group(x, ib);
            let ls = 2 * s + 1;
            let mut lsum = 0i32;
            for l in 0..4 {
                for j in 0..8 {
                    lsum += rows[l][j] as i32 * y.qs[32 * ib + 8 * l + j] as i32;
                }
            }
            let ysum = y.bsums[2 * ib] as i32 + y.bsums[2 * ib + 1] as i32;
            sumi += ls * lsum;
            sumi1 += ls * if neg { -ysum } else { ysum };
        }
        sumf += f16_at(x.d) * y.d * (sumi as f32 + IQ1S_DELTA * sumi1 as f32);
    }
    sumf
}

// ------------------------------------------------------------ IQ1_M

/// The 8 weights `8k..8k+8` (k in 0..32) of an IQ1_M block: grid row, the
/// 3-bit scale of their 16-weight half, delta sign.
#[inline(always)]
fn iq1m_part(b: &BlockIQ1M, k: usize) -> (&'static [i8; 8], i32, bool) {
    let h = (b.qh[k / 2] >> (4 * (k % 2))) & 0xF;
    let g = k / 2;
    let s = (u16_at(&b.scales, g / 4) >> (3 * (g % 4))) & 7;
    let row = &IQ1S_GRID[b.qs[k] as usize | ((h & 7) as usize) << 8];
    (row, s as i32, h & 8 != 0)
}

/// x = d * (2s + 1) * (grid ± 0.125), s per 16 weights
pub fn dequantize_iq1_m(blocks: &[BlockIQ1M], dst: &mut [f32]) {
    for (b, y) in blocks.iter().zip(dst.chunks_exact_mut(QK_K)) {
        let d = f16_at(iq1m_d(&b.scales));
        for k in 0..32 {
            let (row, s, neg) = iq1m_part(b, k);
            let dl = d * (2 * s + 1) as f32;
            let delta = if neg { -IQ1M_DELTA } else { IQ1M_DELTA };
            for j in 0..8 {
                y[8 * k + j] = dl * (row[j] as f32 + delta);
            }
        }
    }
}

/// sum over blocks of (d*dy) * (sum((2s+1) * sum16(grid*qy)) + 0.125 * sum((2s+1) * sum8(±qy)))
pub fn dot_iq1_m_q8k(w: &[BlockIQ1M], y: &[BlockQ8K]) -> f32 {
    let mut sumf = 0.0;
    for (x, y) in w.iter().zip(y) {
        let (mut sumi1, mut sumi2) = (0i32, 0i32);
        for k in 0..32 {
            let (row, s, neg) = iq1m_part(x, k);
            let ls = 2 * s + 1;
            let q8 = &y.qs[8 * k..8 * k + 8];
            let lsum: i32 = (0..8).map(|j| row[j] as i32 * q8[j] as i32).sum();
            let qsum: i32 = q8.iter().map(|&v| v as i32).sum();
            sumi1 += ls * lsum;
            sumi2 += ls * if neg { -qsum } else { qsum };
        }
        sumf += f16_at(iq1m_d(&x.scales)) * y.d * (sumi1 as f32 + IQ1M_DELTA * sumi2 as f32);
    }
    sumf
}

// ------------------------------------------------------------ IQ4_NL

/// x[j] = d * KVALUES_IQ4NL[q[j]], low nibbles then high nibbles
pub fn dequantize_iq4_nl(blocks: &[BlockIQ4NL], dst: &mut [f32]) {
    for (b, y) in blocks.iter().zip(dst.chunks_exact_mut(QK4_NL)) {
        let d = f16_at(b.d);
        for j in 0..QK4_NL / 2 {
            y[j] = d * KVALUES_IQ4NL[(b.qs[j] & 0xF) as usize] as f32;
            y[j + QK4_NL / 2] = d * KVALUES_IQ4NL[(b.qs[j] >> 4) as usize] as f32;
        }
    }
}

/// sum over blocks of (dx*dy) * sum(kv[qx] * qy)
pub fn dot_iq4_nl_q8_0(w: &[BlockIQ4NL], y: &[BlockQ8_0]) -> f32 {
    let mut sumf = 0.0;
    for (x, y) in w.iter().zip(y) {
        let mut sumi = 0i32;
        for j in 0..QK4_NL / 2 {
            sumi += KVALUES_IQ4NL[(x.qs[j] & 0xF) as usize] as i32 * y.qs[j] as i32;
            sumi += KVALUES_IQ4NL[(x.qs[j] >> 4) as usize] as i32 * y.qs[j + 16] as i32;
        }
        sumf += f16_at(x.d) * f16_at(y.d) * sumi as f32;
    }
    sumf
}

// ------------------------------------------------------------ IQ4_XS

/// x = (d * (s - 32)) * KVALUES_IQ4NL[q], per group of 32 low nibbles then high
pub fn dequantize_iq4_xs(blocks: &[BlockIQ4XS], dst: &mut [f32]) {
    for (b, y) in blocks.iter().zip(dst.chunks_exact_mut(QK_K)) {
        let d = f16_at(b.d);
        for ib in 0..8 {
            let dl = d * (iq4xs_scale(b, ib) - 32) as f32;
            let qs = &b.qs[16 * ib..16 * ib + 16];
            for j in 0..16 {
                y[32 * ib + j] = dl * KVALUES_IQ4NL[(qs[j] & 0xF) as usize] as f32;
                y[32 * ib + j + 16] = dl * KVALUES_IQ4NL[(qs[j] >> 4) as usize] as f32;
            }
        }
    }
}

/// sum over blocks of (dx*dy) * sum((s - 32) * sum32(kv[qx] * qy))
pub fn dot_iq4_xs_q8k(w: &[BlockIQ4XS], y: &[BlockQ8K]) -> f32 {
    let mut sumf = 0.0;
    for (x, y) in w.iter().zip(y) {
        let mut sumi = 0i32;
        for ib in 0..8 {
            let qs = &x.qs[16 * ib..16 * ib + 16];
            let q8 = &y.qs[32 * ib..32 * ib + 32];
            let mut s = 0i32;
            for j in 0..16 {
                s += KVALUES_IQ4NL[(qs[j] & 0xF) as usize] as i32 * q8[j] as i32;
                s += KVALUES_IQ4NL[(qs[j] >> 4) as usize] as i32 * q8[j + 16] as i32;
            }
            sumi += (iq4xs_scale(x, ib) - 32) * s;
        }
        sumf += f16_at(x.d) * y.d * sumi as f32;
    }
    sumf
}

// ------------------------------------------------------------ MXFP4

/// x[j] = 2^(e-128) * KVALUES_MXFP4[q[j]], low nibbles then high nibbles
pub fn dequantize_mxfp4(blocks: &[BlockMXFP4], dst: &mut [f32]) {
    for (b, y) in blocks.iter().zip(dst.chunks_exact_mut(QK_MXFP4)) {
        let d = e8m0_to_f32_half(b.e);
        for j in 0..QK_MXFP4 / 2 {
            y[j] = d * KVALUES_MXFP4[(b.qs[j] & 0xF) as usize] as f32;
            y[j + QK_MXFP4 / 2] = d * KVALUES_MXFP4[(b.qs[j] >> 4) as usize] as f32;
        }
    }
}

/// sum over blocks of (2^(e-128) * dy) * sum(kv[qx] * qy)
pub fn dot_mxfp4_q8_0(w: &[BlockMXFP4], y: &[BlockQ8_0]) -> f32 {
    let mut sumf = 0.0;
    for (x, y) in w.iter().zip(y) {
        let mut sumi = 0i32;
        for j in 0..QK_MXFP4 / 2 {
            sumi += KVALUES_MXFP4[(x.qs[j] & 0xF) as usize] as i32 * y.qs[j] as i32;
            sumi += KVALUES_MXFP4[(x.qs[j] >> 4) as usize] as i32 * y.qs[j + 16] as i32;
        }
        sumf += e8m0_to_f32_half(x.e) * f16_at(y.d) * sumi as f32;
    }
    sumf
}
