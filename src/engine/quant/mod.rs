//! ggml tensor types and their block layouts.
//!
//! Names follow ggml (`ggml-common.h`): `BlockQ4_1`, `BlockQ4K`, `QK_K`, so
//! one can grep across to llama.cpp. Every block struct is `#[repr(C)]` with a
//! compile-time size assert. Raw tensor bytes become blocks only through
//! [`cast_blocks`], which checks length and alignment.
//!
//! f16 fields are stored as `[u8; 2]` (read with [`f16_at`]) so that every
//! block has alignment 1: GGUF only guarantees `general.alignment` for the
//! start of a tensor, and blocks of 18 or 22 bytes put their fields at odd
//! addresses anyway.

#![allow(non_camel_case_types)]

use std::fmt;

/// Elements per block of the legacy quants (`Q4_0` .. `Q8_1`).
pub const QK4_0: usize = 32;
pub const QK4_1: usize = 32;
pub const QK5_0: usize = 32;
pub const QK5_1: usize = 32;
pub const QK8_0: usize = 32;
pub const QK8_1: usize = 32;
/// Elements per super-block of the K-quants.
pub const QK_K: usize = 256;
/// Bytes of packed 6-bit scales and mins in `Q4_K` and `Q5_K`.
pub const K_SCALE_SIZE: usize = 12;

/// A ggml tensor type with its on-disk numeric id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GgmlType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q8_1,
    Q2K,
    Q3K,
    Q4K,
    Q5K,
    Q6K,
    Q8K,
    IQ2_XXS,
    IQ2_XS,
    IQ3_XXS,
    IQ1_S,
    IQ4_NL,
    IQ3_S,
    IQ2_S,
    IQ4_XS,
    I8,
    I16,
    I32,
    I64,
    F64,
    IQ1_M,
    BF16,
    TQ1_0,
    TQ2_0,
    MXFP4,
}

impl GgmlType {
    /// All known types, in id order.
    pub const ALL: [GgmlType; 32] = [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
        GgmlType::Q8_1,
        GgmlType::Q2K,
        GgmlType::Q3K,
        GgmlType::Q4K,
        GgmlType::Q5K,
        GgmlType::Q6K,
        GgmlType::Q8K,
        GgmlType::IQ2_XXS,
        GgmlType::IQ2_XS,
        GgmlType::IQ3_XXS,
        GgmlType::IQ1_S,
        GgmlType::IQ4_NL,
        GgmlType::IQ3_S,
        GgmlType::IQ2_S,
        GgmlType::IQ4_XS,
        GgmlType::I8,
        GgmlType::I16,
        GgmlType::I32,
        GgmlType::I64,
        GgmlType::F64,
        GgmlType::IQ1_M,
        GgmlType::BF16,
        GgmlType::TQ1_0,
        GgmlType::TQ2_0,
        GgmlType::MXFP4,
    ];

    /// ggml's numeric id (`enum ggml_type`).
    pub fn id(self) -> u32 {
        use GgmlType::*;
        match self {
            F32 => 0,
            F16 => 1,
            Q4_0 => 2,
            Q4_1 => 3,
            Q5_0 => 6,
            Q5_1 => 7,
            Q8_0 => 8,
            Q8_1 => 9,
            Q2K => 10,
            Q3K => 11,
            Q4K => 12,
            Q5K => 13,
            Q6K => 14,
            Q8K => 15,
            IQ2_XXS => 16,
            IQ2_XS => 17,
            IQ3_XXS => 18,
            IQ1_S => 19,
            IQ4_NL => 20,
            IQ3_S => 21,
            IQ2_S => 22,
            IQ4_XS => 23,
            I8 => 24,
            I16 => 25,
            I32 => 26,
            I64 => 27,
            F64 => 28,
            IQ1_M => 29,
            BF16 => 30,
            TQ1_0 => 34,
            TQ2_0 => 35,
            MXFP4 => 39,
        }
    }

    /// The type with ggml id `id`, if known.
    pub fn from_id(id: u32) -> Option<GgmlType> {
        GgmlType::ALL.into_iter().find(|t| t.id() == id)
    }

    /// Elements per block (1 for plain scalar types).
    pub fn block_size(self) -> usize {
        use GgmlType::*;
        match self {
            F32 | F16 | BF16 | I8 | I16 | I32 | I64 | F64 => 1,
            Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | Q8_1 | IQ4_NL | MXFP4 => 32,
            Q2K | Q3K | Q4K | Q5K | Q6K | Q8K | IQ2_XXS | IQ2_XS | IQ3_XXS | IQ1_S | IQ3_S
            | IQ2_S | IQ4_XS | IQ1_M | TQ1_0 | TQ2_0 => QK_K,
        }
    }

    /// Bytes per block (`sizeof(block_xxx)` in ggml).
    pub fn type_size(self) -> usize {
        use GgmlType::*;
        match self {
            F32 => 4,
            F16 | BF16 => 2,
            I8 => 1,
            I16 => 2,
            I32 => 4,
            I64 | F64 => 8,
            Q4_0 => size_of::<BlockQ4_0>(),
            Q4_1 => size_of::<BlockQ4_1>(),
            Q5_0 => size_of::<BlockQ5_0>(),
            Q5_1 => size_of::<BlockQ5_1>(),
            Q8_0 => size_of::<BlockQ8_0>(),
            Q8_1 => size_of::<BlockQ8_1>(),
            Q2K => size_of::<BlockQ2K>(),
            Q3K => size_of::<BlockQ3K>(),
            Q4K => size_of::<BlockQ4K>(),
            Q5K => size_of::<BlockQ5K>(),
            Q6K => size_of::<BlockQ6K>(),
            Q8K => size_of::<BlockQ8K>(),
            IQ2_XXS => 66,
            IQ2_XS => 74,
            IQ3_XXS => 98,
            IQ1_S => 50,
            IQ4_NL => 18,
            IQ3_S => 110,
            IQ2_S => 82,
            IQ4_XS => 136,
            IQ1_M => 56,
            TQ1_0 => 54,
            TQ2_0 => 66,
            MXFP4 => 17,
        }
    }

    /// ggml's name (`ggml_type_name`): "f32", "q4_1", "q4_K", ...
    pub fn name(self) -> &'static str {
        use GgmlType::*;
        match self {
            F32 => "f32",
            F16 => "f16",
            Q4_0 => "q4_0",
            Q4_1 => "q4_1",
            Q5_0 => "q5_0",
            Q5_1 => "q5_1",
            Q8_0 => "q8_0",
            Q8_1 => "q8_1",
            Q2K => "q2_K",
            Q3K => "q3_K",
            Q4K => "q4_K",
            Q5K => "q5_K",
            Q6K => "q6_K",
            Q8K => "q8_K",
            IQ2_XXS => "iq2_xxs",
            IQ2_XS => "iq2_xs",
            IQ3_XXS => "iq3_xxs",
            IQ1_S => "iq1_s",
            IQ4_NL => "iq4_nl",
            IQ3_S => "iq3_s",
            IQ2_S => "iq2_s",
            IQ4_XS => "iq4_xs",
            I8 => "i8",
            I16 => "i16",
            I32 => "i32",
            I64 => "i64",
            F64 => "f64",
            IQ1_M => "iq1_m",
            BF16 => "bf16",
            TQ1_0 => "tq1_0",
            TQ2_0 => "tq2_0",
            MXFP4 => "mxfp4",
        }
    }

    /// Bytes needed for `n_elements` elements, or `None` when `n_elements`
    /// is not a whole number of blocks (or the size overflows).
    pub fn row_bytes(self, n_elements: u64) -> Option<u64> {
        let bs = self.block_size() as u64;
        if !n_elements.is_multiple_of(bs) {
            return None;
        }
        (n_elements / bs).checked_mul(self.type_size() as u64)
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Reads a little-endian IEEE half at `b[0..2]`.
#[inline(always)]
pub fn f16_at(b: [u8; 2]) -> f32 {
    half::f16::from_le_bytes(b).to_f32()
}

/// Encodes `x` as a little-endian IEEE half (round to nearest even).
#[inline(always)]
pub fn f16_bytes(x: f32) -> [u8; 2] {
    half::f16::from_f32(x).to_le_bytes()
}

/// A block layout that may be viewed directly over raw bytes.
///
/// # Safety
/// Implementors are `#[repr(C)]`, contain only integer or byte-array fields
/// (every bit pattern is valid) and have no padding.
pub unsafe trait Block: Copy + Send + Sync + 'static {
    /// The ggml type this block stores.
    const TYPE: GgmlType;

    /// A block of zero bytes.
    fn zeroed() -> Self {
        // SAFETY: implementors accept every bit pattern (trait contract).
        unsafe { std::mem::zeroed() }
    }
}

/// Why bytes could not be viewed as blocks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CastError {
    #[error("{ty} data of {len} bytes is not a whole number of {block}-byte blocks")]
    Length {
        ty: GgmlType,
        len: usize,
        block: usize,
    },
    #[error("{ty} data at address {addr:#x} is not aligned to {align} bytes")]
    Alignment {
        ty: GgmlType,
        addr: usize,
        align: usize,
    },
}

/// The one checked cast from raw bytes to a slice of blocks.
pub fn cast_blocks<B: Block>(bytes: &[u8]) -> Result<&[B], CastError> {
    let size = size_of::<B>();
    if !bytes.len().is_multiple_of(size) {
        return Err(CastError::Length {
            ty: B::TYPE,
            len: bytes.len(),
            block: size,
        });
    }
    let align = align_of::<B>();
    if !(bytes.as_ptr() as usize).is_multiple_of(align) {
        return Err(CastError::Alignment {
            ty: B::TYPE,
            addr: bytes.as_ptr() as usize,
            align,
        });
    }
    // SAFETY: `B: Block` is plain old data with no invalid bit patterns and no
    // padding; length and alignment were checked above; the lifetime is tied
    // to `bytes`.
    Ok(unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<B>(), bytes.len() / size) })
}

/// Mutable counterpart of [`cast_blocks`] (used to write quantized activations).
pub fn cast_blocks_mut<B: Block>(bytes: &mut [u8]) -> Result<&mut [B], CastError> {
    let size = size_of::<B>();
    if !bytes.len().is_multiple_of(size) {
        return Err(CastError::Length {
            ty: B::TYPE,
            len: bytes.len(),
            block: size,
        });
    }
    let align = align_of::<B>();
    if !(bytes.as_ptr() as usize).is_multiple_of(align) {
        return Err(CastError::Alignment {
            ty: B::TYPE,
            addr: bytes.as_ptr() as usize,
            align,
        });
    }
    // SAFETY: as in `cast_blocks`; the exclusive borrow is carried over.
    Ok(unsafe {
        std::slice::from_raw_parts_mut(bytes.as_mut_ptr().cast::<B>(), bytes.len() / size)
    })
}

macro_rules! block {
    ($(#[$m:meta])* $name:ident, $ty:expr, $size:expr, { $($field:ident : $fty:ty),* $(,)? }) => {
        $(#[$m])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub struct $name { $(pub $field: $fty),* }
        const _: () = assert!(size_of::<$name>() == $size);
        const _: () = assert!(align_of::<$name>() == 1);
        // SAFETY: repr(C), integer/byte-array fields only, size asserted equal
        // to the sum of the fields (no padding).
        unsafe impl Block for $name { const TYPE: GgmlType = $ty; }
    };
}

block!(
    /// 32 weights: `x = (q - 8) * d`, q in 0..16.
    BlockQ4_0, GgmlType::Q4_0, 18, { d: [u8; 2], qs: [u8; QK4_0 / 2] });
block!(
    /// 32 weights: `x = q * d + m`, q in 0..16.
    BlockQ4_1, GgmlType::Q4_1, 20, { d: [u8; 2], m: [u8; 2], qs: [u8; QK4_1 / 2] });
block!(
    /// 32 weights: `x = (q - 16) * d`, q in 0..32 (fifth bit in `qh`).
    BlockQ5_0, GgmlType::Q5_0, 22, { d: [u8; 2], qh: [u8; 4], qs: [u8; QK5_0 / 2] });
block!(
    /// 32 weights: `x = q * d + m`, q in 0..32 (fifth bit in `qh`).
    BlockQ5_1, GgmlType::Q5_1, 24, { d: [u8; 2], m: [u8; 2], qh: [u8; 4], qs: [u8; QK5_1 / 2] });
block!(
    /// 32 weights: `x = q * d`, q in -128..128.
    BlockQ8_0, GgmlType::Q8_0, 34, { d: [u8; 2], qs: [i8; QK8_0] });
block!(
    /// 32 values: `x = q * d`, plus `s = d * sum(q)` (activation side of Q4_1/Q5_1).
    BlockQ8_1, GgmlType::Q8_1, 36, { d: [u8; 2], s: [u8; 2], qs: [i8; QK8_1] });
block!(
    /// 256 weights in 16 groups of 16: `x = d * (sc & 15) * q - dmin * (sc >> 4)`, q in 0..4.
    BlockQ2K, GgmlType::Q2K, 84, { scales: [u8; QK_K / 16], qs: [u8; QK_K / 4], d: [u8; 2], dmin: [u8; 2] });
block!(
    /// 256 weights in 16 groups of 16: `x = d * (sc - 32) * (q - 4 * !hbit)`, q in 0..4, 6-bit scales.
    BlockQ3K, GgmlType::Q3K, 110, { hmask: [u8; QK_K / 8], qs: [u8; QK_K / 4], scales: [u8; 12], d: [u8; 2] });
block!(
    /// 256 weights in 8 groups of 32: `x = d * sc * q - dmin * m`, q in 0..16, 6-bit sc and m.
    BlockQ4K, GgmlType::Q4K, 144, { d: [u8; 2], dmin: [u8; 2], scales: [u8; K_SCALE_SIZE], qs: [u8; QK_K / 2] });
block!(
    /// 256 weights in 8 groups of 32: `x = d * sc * q - dmin * m`, q in 0..32, 6-bit sc and m.
    BlockQ5K, GgmlType::Q5K, 176, { d: [u8; 2], dmin: [u8; 2], scales: [u8; K_SCALE_SIZE], qh: [u8; QK_K / 8], qs: [u8; QK_K / 2] });
block!(
    /// 256 weights in 16 groups of 16: `x = d * sc * (q - 32)`, q in 0..64, i8 scales.
    BlockQ6K, GgmlType::Q6K, 210, { ql: [u8; QK_K / 2], qh: [u8; QK_K / 4], scales: [i8; QK_K / 16], d: [u8; 2] });

// The IQ types and MXFP4 (after `block!`, which they use).
mod iq;
#[rustfmt::skip]
pub mod iq_grids;
pub use iq::*;

/// 256 values: `x = q * d` with an f32 `d`, plus sums of each 16 `q`s
/// (the activation side of the K-quants). Native-endian fields: only ever
/// built in memory by `quantize_row_q8_k`, never read from a file.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ8K {
    pub d: f32,
    pub qs: [i8; QK_K],
    pub bsums: [i16; QK_K / 16],
}
const _: () = assert!(size_of::<BlockQ8K>() == 292);
// SAFETY: repr(C); f32, i8 and i16 fields accept every bit pattern; 4 + 256 +
// 32 = 292 bytes, no padding (asserted).
unsafe impl Block for BlockQ8K {
    const TYPE: GgmlType = GgmlType::Q8K;
}

/// Unpacks the 6-bit scale and min of group `j` (0..8) of a `Q4_K`/`Q5_K`
/// block (`get_scale_min_k4` in ggml).
#[inline(always)]
pub fn scale_min_k4(j: usize, q: &[u8; K_SCALE_SIZE]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Unpacks the 16 6-bit scales of a `Q3_K` block (before subtracting 32).
pub fn scales_q3k(s: &[u8; 12]) -> [u8; 16] {
    let mut out = [0u8; 16];
    for j in 0..16 {
        let low = if j < 8 { s[j] & 0xF } else { s[j - 8] >> 4 };
        let high = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
        out[j] = low | (high << 4);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_ids_round_trip_and_sizes_match_ggml() {
        for t in GgmlType::ALL {
            assert_eq!(GgmlType::from_id(t.id()), Some(t));
        }
        assert_eq!(GgmlType::from_id(4), None);
        assert_eq!(GgmlType::Q4_1.type_size(), 20);
        assert_eq!(GgmlType::Q4K.type_size(), 144);
        assert_eq!(GgmlType::Q6K.block_size(), 256);
        assert_eq!(GgmlType::Q4_1.row_bytes(576), Some(360));
        assert_eq!(GgmlType::Q4_1.row_bytes(577), None);
    }

    #[test]
    fn cast_blocks_rejects_partial_blocks() {
        let bytes = [0u8; 41];
        let err = cast_blocks::<BlockQ4_1>(&bytes).unwrap_err();
        assert_eq!(
            err.to_string(),
            "q4_1 data of 41 bytes is not a whole number of 20-byte blocks"
        );
        assert_eq!(cast_blocks::<BlockQ4_1>(&bytes[..40]).unwrap().len(), 2);
    }

    #[test]
    fn cast_blocks_rejects_misaligned_q8k() {
        let v = vec![0u32; 200];
        // SAFETY: viewing initialised u32s as bytes.
        let bytes = unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), 800) };
        assert!(cast_blocks::<BlockQ8K>(&bytes[1..293]).is_err());
        assert_eq!(cast_blocks::<BlockQ8K>(&bytes[..584]).unwrap().len(), 2);
    }
}
