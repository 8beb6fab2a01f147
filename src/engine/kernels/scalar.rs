//! Scalar reference kernels: the spec every SIMD path is tested against.
//!
//! Readable, not fast. Dequantization follows the `gguf` Python package's
//! numpy code operation for operation, so the results agree bit for bit;
//! dot products follow ggml's `_generic` functions (integer sums inside a
//! block, one float multiply per block or sub-block).

use crate::engine::quant::*;

// ---------------------------------------------------------------- dequantize

/// x = f32(le bytes)
pub fn dequantize_f32(src: &[u8], dst: &mut [f32]) {
    for (d, s) in dst.iter_mut().zip(src.chunks_exact(4)) {
        *d = f32::from_le_bytes(s.try_into().unwrap());
    }
}

/// x = f32(f16)
pub fn dequantize_f16(src: &[u8], dst: &mut [f32]) {
    for (d, s) in dst.iter_mut().zip(src.chunks_exact(2)) {
        *d = f16_at([s[0], s[1]]);
    }
}

/// x = f32 with the bf16 bits as its upper half
pub fn dequantize_bf16(src: &[u8], dst: &mut [f32]) {
    for (d, s) in dst.iter_mut().zip(src.chunks_exact(2)) {
        *d = f32::from_bits((u16::from_le_bytes([s[0], s[1]]) as u32) << 16);
    }
}

/// x[j] = d * (q[j] - 8), low nibbles first then high nibbles
pub fn dequantize_q4_0(blocks: &[BlockQ4_0], dst: &mut [f32]) {
    for (b, y) in blocks.iter().zip(dst.chunks_exact_mut(QK4_0)) {
        let d = f16_at(b.d);
        for j in 0..QK4_0 / 2 {
            y[j] = d * ((b.qs[j] & 0xF) as i32 - 8) as f32;
            y[j + QK4_0 / 2] = d * ((b.qs[j] >> 4) as i32 - 8) as f32;
        }
    }
}

/// x[j] = d * q[j] + m
pub fn dequantize_q4_1(blocks: &[BlockQ4_1], dst: &mut [f32]) {
    for (b, y) in blocks.iter().zip(dst.chunks_exact_mut(QK4_1)) {
        let (d, m) = (f16_at(b.d), f16_at(b.m));
        for j in 0..QK4_1 / 2 {
            y[j] = d * (b.qs[j] & 0xF) as f32 + m;
            y[j + QK4_1 / 2] = d * (b.qs[j] >> 4) as f32 + m;
        }
    }
}

/// Fifth bits of a Q5 block: element j takes bit j of the little-endian `qh`.
fn q5_high(qh: [u8; 4], j: usize) -> u8 {
    (((u32::from_le_bytes(qh) >> j) & 1) as u8) << 4
}

/// x[j] = d * ((q[j] | h[j] << 4) - 16)
pub fn dequantize_q5_0(blocks: &[BlockQ5_0], dst: &mut [f32]) {
    for (b, y) in blocks.iter().zip(dst.chunks_exact_mut(QK5_0)) {
        let d = f16_at(b.d);
        for j in 0..QK5_0 / 2 {
            let q0 = (b.qs[j] & 0xF) | q5_high(b.qh, j);
            let q1 = (b.qs[j] >> 4) | q5_high(b.qh, j + 16);
            y[j] = d * (q0 as i32 - 16) as f32;
            y[j + QK5_0 / 2] = d * (q1 as i32 - 16) as f32;
        }
    }
}

/// x[j] = d * (q[j] | h[j] << 4) + m
pub fn dequantize_q5_1(blocks: &[BlockQ5_1], dst: &mut [f32]) {
    for (b, y) in blocks.iter().zip(dst.chunks_exact_mut(QK5_1)) {
        let (d, m) = (f16_at(b.d), f16_at(b.m));
        for j in 0..QK5_1 / 2 {
            let q0 = (b.qs[j] & 0xF) | q5_high(b.qh, j);
            let q1 = (b.qs[j] >> 4) | q5_high(b.qh, j + 16);
            y[j] = d * q0 as f32 + m;
            y[j + QK5_1 / 2] = d * q1 as f32 + m;
        }
    }
}

/// x[j] = d * q[j]
pub fn dequantize_q8_0(blocks: &[BlockQ8_0], dst: &mut [f32]) {
    for (b, y) in blocks.iter().zip(dst.chunks_exact_mut(QK8_0)) {
        let d = f16_at(b.d);
        for j in 0..QK8_0 {
            y[j] = d * b.qs[j] as f32;
        }
    }
}

/// x[j] = d * q[j]
pub fn dequantize_q8_1(blocks: &[BlockQ8_1], dst: &mut [f32]) {
    for (b, y) in blocks.iter().zip(dst.chunks_exact_mut(QK8_1)) {
        let d = f16_at(b.d);
        for j in 0..QK8_1 {
            y[j] = d * b.qs[j] as f32;
        }
    }
}

/// Element e = 128n + 32j + l of a Q2_K/Q3_K block: byte `32n + l` of `qs`,
/// bits `2j..2j+2`, sub-block scale `8n + 2j + l/16`.
fn k2_index(e: usize) -> (usize, u32, usize) {
    let (n, j, l) = (e / 128, (e % 128) / 32, e % 32);
    (32 * n + l, 2 * j as u32, 8 * n + 2 * j + l / 16)
}

/// x = (d * (sc & 15)) * q - (dmin * (sc >> 4)), q in 0..4
pub fn dequantize_q2k(blocks: &[BlockQ2K], dst: &mut [f32]) {
    for (b, y) in blocks.iter().zip(dst.chunks_exact_mut(QK_K)) {
        let (d, dmin) = (f16_at(b.d), f16_at(b.dmin));
        for (e, v) in y.iter_mut().enumerate() {
            let (byte, shift, is) = k2_index(e);
            let q = (b.qs[byte] >> shift) & 3;
            let sc = b.scales[is];
            *v = (d * (sc & 0xF) as f32) * q as f32 - dmin * (sc >> 4) as f32;
        }
    }
}

/// x = (d * (sc - 32)) * (q - 4 * (1 - h)), q in 0..4, h the hmask bit
pub fn dequantize_q3k(blocks: &[BlockQ3K], dst: &mut [f32]) {
    for (b, y) in blocks.iter().zip(dst.chunks_exact_mut(QK_K)) {
        let d = f16_at(b.d);
        let scales = scales_q3k(&b.scales);
        for (e, v) in y.iter_mut().enumerate() {
            let (byte, shift, is) = k2_index(e);
            let l = e % 32;
            let hbit = (b.hmask[l] >> (e / 32)) & 1;
            let q = ((b.qs[byte] >> shift) & 3) as i32 - if hbit == 1 { 0 } else { 4 };
            *v = (d * (scales[is] as i32 - 32) as f32) * q as f32;
        }
    }
}

/// Element e of a Q4_K/Q5_K block: group `e/32` (scale/min index), byte
/// `32*(e/64) + e%32` of `qs`, high nibble when `(e/32)` is odd.
fn k4_index(e: usize) -> (usize, usize, bool) {
    let g = e / 32;
    (g, 32 * (e / 64) + e % 32, g % 2 == 1)
}

/// x = (d * sc) * q - (dmin * m), q in 0..16
pub fn dequantize_q4k(blocks: &[BlockQ4K], dst: &mut [f32]) {
    for (b, y) in blocks.iter().zip(dst.chunks_exact_mut(QK_K)) {
        let (d, dmin) = (f16_at(b.d), f16_at(b.dmin));
        for (e, v) in y.iter_mut().enumerate() {
            let (g, byte, high) = k4_index(e);
            let (sc, m) = scale_min_k4(g, &b.scales);
            let q = if high {
                b.qs[byte] >> 4
            } else {
                b.qs[byte] & 0xF
            };
            *v = (d * sc as f32) * q as f32 - dmin * m as f32;
        }
    }
}

/// x = (d * sc) * (q | h << 4) - (dmin * m), h = bit g of qh[e % 32]
pub fn dequantize_q5k(blocks: &[BlockQ5K], dst: &mut [f32]) {
    for (b, y) in blocks.iter().zip(dst.chunks_exact_mut(QK_K)) {
        let (d, dmin) = (f16_at(b.d), f16_at(b.dmin));
        for (e, v) in y.iter_mut().enumerate() {
            let (g, byte, high) = k4_index(e);
            let (sc, m) = scale_min_k4(g, &b.scales);
            let lo = if high {
                b.qs[byte] >> 4
            } else {
                b.qs[byte] & 0xF
            };
            let q = lo | (((b.qh[e % 32] >> g) & 1) << 4);
            *v = (d * sc as f32) * q as f32 - dmin * m as f32;
        }
    }
}

/// The 6-bit value of element e (0..256) of a Q6_K block, and its scale index.
fn q6k_value(b: &BlockQ6K, e: usize) -> (i32, usize) {
    // Halves of 128; within a half, quarter k = 0..4 of 32 elements.
    let (n, k, l) = (e / 128, (e % 128) / 32, e % 32);
    let ql = b.ql[64 * n + l + 32 * (k % 2)];
    let lo = if k < 2 { ql & 0xF } else { ql >> 4 };
    let hi = (b.qh[32 * n + l] >> (2 * k)) & 3;
    (((lo | (hi << 4)) as i32) - 32, 8 * n + l / 16 + 2 * k)
}

/// x = (d * sc) * (q - 32), q in 0..64
pub fn dequantize_q6k(blocks: &[BlockQ6K], dst: &mut [f32]) {
    for (b, y) in blocks.iter().zip(dst.chunks_exact_mut(QK_K)) {
        let d = f16_at(b.d);
        for (e, v) in y.iter_mut().enumerate() {
            let (q, is) = q6k_value(b, e);
            *v = (d * b.scales[is] as f32) * q as f32;
        }
    }
}

/// x = d * q
pub fn dequantize_q8k(blocks: &[BlockQ8K], dst: &mut [f32]) {
    for (b, y) in blocks.iter().zip(dst.chunks_exact_mut(QK_K)) {
        for j in 0..QK_K {
            y[j] = b.d * b.qs[j] as f32;
        }
    }
}

// ------------------------------------------------- quantize (activations)

/// d = max|x| / 127, q = round(x / d)
pub fn quantize_row_q8_0(x: &[f32], out: &mut [BlockQ8_0]) {
    for (b, x) in out.iter_mut().zip(x.chunks_exact(QK8_0)) {
        let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        b.d = f16_bytes(d);
        for (q, v) in b.qs.iter_mut().zip(x) {
            *q = (v * id).round() as i8;
        }
    }
}

/// As Q8_0, plus s = d * sum(q)
pub fn quantize_row_q8_1(x: &[f32], out: &mut [BlockQ8_1]) {
    for (b, x) in out.iter_mut().zip(x.chunks_exact(QK8_1)) {
        let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let mut sum = 0i32;
        for (q, v) in b.qs.iter_mut().zip(x) {
            *q = (v * id).round() as i8;
            sum += *q as i32;
        }
        b.d = f16_bytes(d);
        b.s = f16_bytes(sum as f32 * d);
    }
}

/// The value of largest magnitude maps to -127: iscale = -127 / max, d = 1 / iscale
pub fn quantize_row_q8_k(x: &[f32], out: &mut [BlockQ8K]) {
    for (b, x) in out.iter_mut().zip(x.chunks_exact(QK_K)) {
        let (mut amax, mut max) = (0f32, 0f32);
        for &v in x {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        if amax == 0.0 {
            *b = BlockQ8K {
                d: 0.0,
                qs: [0; QK_K],
                bsums: [0; QK_K / 16],
            };
            continue;
        }
        let iscale = -127.0 / max;
        for (q, v) in b.qs.iter_mut().zip(x) {
            *q = ((iscale * v).round() as i32).min(127) as i8;
        }
        for (s, q) in b.bsums.iter_mut().zip(b.qs.chunks_exact(16)) {
            *s = q.iter().map(|&v| v as i16).sum();
        }
        b.d = 1.0 / iscale;
    }
}

// ---------------------------------------------------------------- dot

/// sum x*y
pub fn dot_f32(w: &[u8], x: &[f32]) -> f32 {
    w.chunks_exact(4)
        .zip(x)
        .map(|(b, &v)| f32::from_le_bytes(b.try_into().unwrap()) * v)
        .sum()
}

/// sum f32(w)*x
pub fn dot_f16(w: &[u8], x: &[f32]) -> f32 {
    w.chunks_exact(2)
        .zip(x)
        .map(|(b, &v)| f16_at([b[0], b[1]]) * v)
        .sum()
}

/// sum f32(w)*x
pub fn dot_bf16(w: &[u8], x: &[f32]) -> f32 {
    w.chunks_exact(2)
        .zip(x)
        .map(|(b, &v)| f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16) * v)
        .sum()
}

/// sum over blocks of (dx*dy) * sum((qx - 8) * qy)
pub fn dot_q4_0_q8_0(w: &[BlockQ4_0], y: &[BlockQ8_0]) -> f32 {
    let mut sumf = 0.0;
    for (x, y) in w.iter().zip(y) {
        let mut sumi = 0i32;
        for j in 0..QK4_0 / 2 {
            sumi += ((x.qs[j] & 0xF) as i32 - 8) * y.qs[j] as i32;
            sumi += ((x.qs[j] >> 4) as i32 - 8) * y.qs[j + 16] as i32;
        }
        sumf += sumi as f32 * (f16_at(x.d) * f16_at(y.d));
    }
    sumf
}

/// sum over blocks of (dx*dy) * sum(qx * qy) + mx * sy
pub fn dot_q4_1_q8_1(w: &[BlockQ4_1], y: &[BlockQ8_1]) -> f32 {
    let mut sumf = 0.0;
    for (x, y) in w.iter().zip(y) {
        let mut sumi = 0i32;
        for j in 0..QK4_1 / 2 {
            sumi += (x.qs[j] & 0xF) as i32 * y.qs[j] as i32;
            sumi += (x.qs[j] >> 4) as i32 * y.qs[j + 16] as i32;
        }
        sumf += sumi as f32 * (f16_at(x.d) * f16_at(y.d)) + f16_at(x.m) * f16_at(y.s);
    }
    sumf
}

/// sum over blocks of (dx*dy) * sum((qx - 16) * qy)
pub fn dot_q5_0_q8_0(w: &[BlockQ5_0], y: &[BlockQ8_0]) -> f32 {
    let mut sumf = 0.0;
    for (x, y) in w.iter().zip(y) {
        let mut sumi = 0i32;
        for j in 0..QK5_0 / 2 {
            let q0 = ((x.qs[j] & 0xF) | q5_high(x.qh, j)) as i32 - 16;
            let q1 = ((x.qs[j] >> 4) | q5_high(x.qh, j + 16)) as i32 - 16;
            sumi += q0 * y.qs[j] as i32 + q1 * y.qs[j + 16] as i32;
        }
        sumf += sumi as f32 * (f16_at(x.d) * f16_at(y.d));
    }
    sumf
}

/// sum over blocks of (dx*dy) * sum(qx * qy) + mx * sy
pub fn dot_q5_1_q8_1(w: &[BlockQ5_1], y: &[BlockQ8_1]) -> f32 {
    let mut sumf = 0.0;
    for (x, y) in w.iter().zip(y) {
        let mut sumi = 0i32;
        for j in 0..QK5_1 / 2 {
            let q0 = ((x.qs[j] & 0xF) | q5_high(x.qh, j)) as i32;
            let q1 = ((x.qs[j] >> 4) | q5_high(x.qh, j + 16)) as i32;
            sumi += q0 * y.qs[j] as i32 + q1 * y.qs[j + 16] as i32;
        }
        sumf += sumi as f32 * (f16_at(x.d) * f16_at(y.d)) + f16_at(x.m) * f16_at(y.s);
    }
    sumf
}

/// sum over blocks of (dx*dy) * sum(qx * qy)
pub fn dot_q8_0_q8_0(w: &[BlockQ8_0], y: &[BlockQ8_0]) -> f32 {
    let mut sumf = 0.0;
    for (x, y) in w.iter().zip(y) {
        let sumi: i32 =
            x.qs.iter()
                .zip(&y.qs)
                .map(|(&a, &b)| a as i32 * b as i32)
                .sum();
        sumf += sumi as f32 * (f16_at(x.d) * f16_at(y.d));
    }
    sumf
}

/// sum over blocks of (dx*dy) * sum((sc&15) * sum16(q*qy)) - (dminx*dy) * sum((sc>>4) * bsum)
pub fn dot_q2k_q8k(w: &[BlockQ2K], y: &[BlockQ8K]) -> f32 {
    let mut sumf = 0.0;
    for (x, y) in w.iter().zip(y) {
        let mut isum = [0i32; 16];
        for e in 0..QK_K {
            let (byte, shift, is) = k2_index(e);
            isum[is] += ((x.qs[byte] >> shift) & 3) as i32 * y.qs[e] as i32;
        }
        let mut sumi = 0i32;
        let mut summ = 0i32;
        for is in 0..16 {
            sumi += (x.scales[is] & 0xF) as i32 * isum[is];
            summ += (x.scales[is] >> 4) as i32 * y.bsums[is] as i32;
        }
        sumf += y.d * f16_at(x.d) * sumi as f32 - y.d * f16_at(x.dmin) * summ as f32;
    }
    sumf
}

/// sum over blocks of (dx*dy) * sum((sc - 32) * sum16(q*qy)), q in -4..4
pub fn dot_q3k_q8k(w: &[BlockQ3K], y: &[BlockQ8K]) -> f32 {
    let mut sumf = 0.0;
    for (x, y) in w.iter().zip(y) {
        let scales = scales_q3k(&x.scales);
        let mut isum = [0i32; 16];
        for e in 0..QK_K {
            let (byte, shift, is) = k2_index(e);
            let hbit = (x.hmask[e % 32] >> (e / 32)) & 1;
            let q = ((x.qs[byte] >> shift) & 3) as i32 - if hbit == 1 { 0 } else { 4 };
            isum[is] += q * y.qs[e] as i32;
        }
        let sumi: i32 = (0..16).map(|is| (scales[is] as i32 - 32) * isum[is]).sum();
        sumf += f16_at(x.d) * y.d * sumi as f32;
    }
    sumf
}

/// sum over blocks of (dx*dy) * sum(sc * sum32(q*qy)) - (dminx*dy) * sum(m * bsum32)
pub fn dot_q4k_q8k(w: &[BlockQ4K], y: &[BlockQ8K]) -> f32 {
    let mut sumf = 0.0;
    for (x, y) in w.iter().zip(y) {
        let mut isum = [0i32; 8];
        for e in 0..QK_K {
            let (g, byte, high) = k4_index(e);
            let q = if high {
                x.qs[byte] >> 4
            } else {
                x.qs[byte] & 0xF
            };
            isum[g] += q as i32 * y.qs[e] as i32;
        }
        let (mut sumi, mut summ) = (0i32, 0i32);
        for g in 0..8 {
            let (sc, m) = scale_min_k4(g, &x.scales);
            sumi += sc as i32 * isum[g];
            summ += m as i32 * (y.bsums[2 * g] as i32 + y.bsums[2 * g + 1] as i32);
        }
        sumf += f16_at(x.d) * y.d * sumi as f32 - f16_at(x.dmin) * y.d * summ as f32;
    }
    sumf
}

/// As Q4_K with a fifth bit per weight from `qh`
pub fn dot_q5k_q8k(w: &[BlockQ5K], y: &[BlockQ8K]) -> f32 {
    let mut sumf = 0.0;
    for (x, y) in w.iter().zip(y) {
        let mut isum = [0i32; 8];
        for e in 0..QK_K {
            let (g, byte, high) = k4_index(e);
            let lo = if high {
                x.qs[byte] >> 4
            } else {
                x.qs[byte] & 0xF
            };
            let q = lo | (((x.qh[e % 32] >> g) & 1) << 4);
            isum[g] += q as i32 * y.qs[e] as i32;
        }
        let (mut sumi, mut summ) = (0i32, 0i32);
        for g in 0..8 {
            let (sc, m) = scale_min_k4(g, &x.scales);
            sumi += sc as i32 * isum[g];
            summ += m as i32 * (y.bsums[2 * g] as i32 + y.bsums[2 * g + 1] as i32);
        }
        sumf += f16_at(x.d) * y.d * sumi as f32 - f16_at(x.dmin) * y.d * summ as f32;
    }
    sumf
}

/// sum over blocks of (dx*dy) * sum(sc * sum16((q - 32) * qy))
pub fn dot_q6k_q8k(w: &[BlockQ6K], y: &[BlockQ8K]) -> f32 {
    let mut sumf = 0.0;
    for (x, y) in w.iter().zip(y) {
        let mut isum = [0i32; 16];
        for e in 0..QK_K {
            let (q, is) = q6k_value(x, e);
            isum[is] += q * y.qs[e] as i32;
        }
        let sumi: i32 = (0..16).map(|is| x.scales[is] as i32 * isum[is]).sum();
        sumf += f16_at(x.d) * y.d * sumi as f32;
    }
    sumf
}

/// sum over blocks of (dx*dy) * sum(qx * qy)
pub fn dot_q8k_q8k(w: &[BlockQ8K], y: &[BlockQ8K]) -> f32 {
    let mut sumf = 0.0;
    for (x, y) in w.iter().zip(y) {
        let sumi: i32 =
            x.qs.iter()
                .zip(&y.qs)
                .map(|(&a, &b)| a as i32 * b as i32)
                .sum();
        sumf += x.d * y.d * sumi as f32;
    }
    sumf
}
