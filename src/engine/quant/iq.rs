//! Block layouts of the IQ ("importance") quants and MXFP4 (`ggml-common.h`).
//!
//! The IQ2/IQ3/IQ1 types store, per 8 (or 4) weights, an index into a grid
//! of magnitude rows ([`super::iq_grids`]) plus sign bits; IQ4_NL/IQ4_XS
//! store 4-bit indices into a non-linear table of 16 values; MXFP4 stores
//! e2m1 nibbles under one power-of-two (e8m0) scale per 32 weights.
//! Multi-byte integer fields are `[u8; N]` like the f16 ones, so every block
//! has alignment 1; the helpers below read them little-endian.

use super::{Block, GgmlType, QK_K};

/// Elements per block of IQ4_NL.
pub const QK4_NL: usize = 32;
/// Elements per block of MXFP4.
pub const QK_MXFP4: usize = 32;
/// Delta added to the {-1, 0, 1} grid values of IQ1_S / IQ1_M (sign per group).
pub const IQ1S_DELTA: f32 = 0.125;
pub const IQ1M_DELTA: f32 = 0.125;

block!(
    /// 256 weights, 8 groups of 32. Per group two u32: four grid indices
    /// (bytes), then 4 x 7 sign bits and a 4-bit scale in the top bits.
    /// `x = d * (0.5 + s) * 0.25 * grid * sign`.
    BlockIQ2XXS, GgmlType::IQ2_XXS, 66, { d: [u8; 2], qs: [u8; QK_K / 4] });
block!(
    /// 256 weights: u16 per 8 weights (9-bit grid index, 7 sign bits), a
    /// 4-bit scale per 16 weights. `x = d * (0.5 + s) * 0.25 * grid * sign`.
    BlockIQ2XS, GgmlType::IQ2_XS, 74, { d: [u8; 2], qs: [u8; QK_K / 4], scales: [u8; QK_K / 32] });
block!(
    /// 256 weights: 32 low index bytes, 32 sign bytes (8 explicit signs each),
    /// 2 high index bits per 8 weights in `qh`, a 4-bit scale per 16 weights.
    BlockIQ2S, GgmlType::IQ2_S, 82, { d: [u8; 2], qs: [u8; QK_K / 4], qh: [u8; QK_K / 32], scales: [u8; QK_K / 32] });
block!(
    /// 256 weights: 64 index bytes (4 weights each), then per group of 32 a
    /// u32 of 4 x 7 sign bits and a 4-bit scale. `x = d * (0.5 + s) * 0.5 * grid * sign`.
    BlockIQ3XXS, GgmlType::IQ3_XXS, 98, { d: [u8; 2], qs: [u8; 3 * QK_K / 8] });
block!(
    /// 256 weights: 64 low index bytes, 1 high index bit per 4 weights in
    /// `qh`, 256 explicit sign bits, a 4-bit scale per 32 weights.
    /// `x = d * (1 + 2 s) * grid * sign`.
    BlockIQ3S, GgmlType::IQ3_S, 110, { d: [u8; 2], qs: [u8; QK_K / 4], qh: [u8; QK_K / 32], signs: [u8; QK_K / 8], scales: [u8; QK_K / 64] });
block!(
    /// 256 weights: 32 low index bytes (8 weights each); per group of 32 a u16
    /// `qh` with 4 x 3 high index bits, a 3-bit scale and the delta sign.
    /// `x = d * (2 s + 1) * (grid ± 0.125)`.
    BlockIQ1S, GgmlType::IQ1_S, 50, { d: [u8; 2], qs: [u8; QK_K / 8], qh: [u8; QK_K / 16] });
block!(
    /// 256 weights: 32 low index bytes; a nibble per 8 weights in `qh` (3
    /// high index bits, delta sign); four u16 `scales` holding 3-bit scales
    /// per 16 weights and, in their top nibbles, the f16 super-scale.
    BlockIQ1M, GgmlType::IQ1_M, 56, { qs: [u8; QK_K / 8], qh: [u8; QK_K / 16], scales: [u8; QK_K / 32] });
block!(
    /// 32 weights: `x = d * KVALUES_IQ4NL[q]`, low nibbles first.
    BlockIQ4NL, GgmlType::IQ4_NL, 18, { d: [u8; 2], qs: [u8; QK4_NL / 2] });
block!(
    /// 256 weights in 8 groups of 32: `x = d * (s - 32) * KVALUES_IQ4NL[q]`,
    /// s 6 bits (low 4 in `scales_l`, high 2 in `scales_h`).
    BlockIQ4XS, GgmlType::IQ4_XS, 136, { d: [u8; 2], scales_h: [u8; 2], scales_l: [u8; QK_K / 64], qs: [u8; QK_K / 2] });
block!(
    /// 32 weights: `x = 2^(e - 128) * KVALUES_MXFP4[q]` (doubled e2m1 values
    /// under half the e8m0 scale), low nibbles first.
    BlockMXFP4, GgmlType::MXFP4, 17, { e: u8, qs: [u8; QK_MXFP4 / 2] });

/// Reads a little-endian u16 at `b[2i..2i+2]`.
#[inline(always)]
pub fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([b[2 * i], b[2 * i + 1]])
}

/// Reads a little-endian u32 at `b[4i..4i+4]`.
#[inline(always)]
pub fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]])
}

/// Half the e8m0 scale as f32: 2^(e - 128), exact, subnormal for e < 2
/// (`ggml_e8m0_to_fp32_half`).
#[inline(always)]
pub fn e8m0_to_f32_half(e: u8) -> f32 {
    let bits = if e < 2 {
        0x0020_0000u32 << e
    } else {
        ((e as u32) - 1) << 23
    };
    f32::from_bits(bits)
}

/// The f16 super-scale of an IQ1_M block, spread over the top nibbles of
/// its four u16 scale words.
#[inline(always)]
pub fn iq1m_d(scales: &[u8; 8]) -> [u8; 2] {
    let s = |i| u16_at(scales, i);
    let d = (s(0) >> 12) | ((s(1) >> 8) & 0x00F0) | ((s(2) >> 4) & 0x0F00) | (s(3) & 0xF000);
    d.to_le_bytes()
}

/// The 6-bit scale (0..64, before subtracting 32) of group `ib` (0..8) of an IQ4_XS block.
#[inline(always)]
pub fn iq4xs_scale(b: &BlockIQ4XS, ib: usize) -> i32 {
    let lo = (b.scales_l[ib / 2] >> (4 * (ib % 2))) & 0xF;
    let hi = ((u16::from_le_bytes(b.scales_h) >> (2 * ib)) & 3) as u8;
    (lo | (hi << 4)) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iq_block_sizes_match_type_sizes() {
        assert_eq!(size_of::<BlockIQ2XXS>(), GgmlType::IQ2_XXS.type_size());
        assert_eq!(size_of::<BlockIQ2XS>(), GgmlType::IQ2_XS.type_size());
        assert_eq!(size_of::<BlockIQ2S>(), GgmlType::IQ2_S.type_size());
        assert_eq!(size_of::<BlockIQ3XXS>(), GgmlType::IQ3_XXS.type_size());
        assert_eq!(size_of::<BlockIQ3S>(), GgmlType::IQ3_S.type_size());
        assert_eq!(size_of::<BlockIQ1S>(), GgmlType::IQ1_S.type_size());
        assert_eq!(size_of::<BlockIQ1M>(), GgmlType::IQ1_M.type_size());
        assert_eq!(size_of::<BlockIQ4NL>(), GgmlType::IQ4_NL.type_size());
        assert_eq!(size_of::<BlockIQ4XS>(), GgmlType::IQ4_XS.type_size());
        assert_eq!(size_of::<BlockMXFP4>(), GgmlType::MXFP4.type_size());
        assert_eq!(GgmlType::IQ4_NL.block_size(), QK4_NL);
        assert_eq!(GgmlType::MXFP4.block_size(), QK_MXFP4);
    }

    #[test]
    fn e8m0_half_covers_the_range() {
        assert_eq!(e8m0_to_f32_half(128), 1.0);
        assert_eq!(e8m0_to_f32_half(127), 0.5);
        assert_eq!(e8m0_to_f32_half(1), 2f32.powi(-127));
        assert_eq!(e8m0_to_f32_half(0), 2f32.powi(-128));
        assert_eq!(e8m0_to_f32_half(255), 2f32.powi(127));
    }

    #[test]
    fn iq1m_scale_reassembles_the_f16() {
        let d: u16 = 0xABCD;
        let mut s = [0u8; 8];
        for j in 0..4 {
            let w = 0x0123u16 | (((d >> (4 * j)) & 0xF) << 12);
            s[2 * j..2 * j + 2].copy_from_slice(&w.to_le_bytes());
        }
        assert_eq!(iq1m_d(&s), d.to_le_bytes());
    }
}
