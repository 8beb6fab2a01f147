//! Kernel table and dispatch for the IQ types and MXFP4.
//!
//! Kept apart from the legacy and K-quant table so the two evolve without
//! touching each other: [`super::Kernels`] holds one [`IqKernels`], filled
//! from [`IqKernels::scalar`] or, after CPU detection, the AVX2 set.

use super::{Dots, KernelError, dot4_by_dot1, iq_scalar as s};
use crate::engine::quant::*;

/// The dot kernels of the IQ types and MXFP4.
#[derive(Clone, Copy)]
pub struct IqKernels {
    pub iq4_nl: Dots<BlockIQ4NL, BlockQ8_0>,
    pub mxfp4: Dots<BlockMXFP4, BlockQ8_0>,
    pub iq4_xs: Dots<BlockIQ4XS, BlockQ8K>,
    pub iq3_xxs: Dots<BlockIQ3XXS, BlockQ8K>,
    pub iq3_s: Dots<BlockIQ3S, BlockQ8K>,
    pub iq2_xxs: Dots<BlockIQ2XXS, BlockQ8K>,
    pub iq2_xs: Dots<BlockIQ2XS, BlockQ8K>,
    pub iq2_s: Dots<BlockIQ2S, BlockQ8K>,
    pub iq1_s: Dots<BlockIQ1S, BlockQ8K>,
    pub iq1_m: Dots<BlockIQ1M, BlockQ8K>,
}

impl IqKernels {
    /// The scalar reference set.
    pub fn scalar() -> IqKernels {
        IqKernels {
            iq4_nl: dot4_by_dot1!(s::dot_iq4_nl_q8_0, BlockIQ4NL, BlockQ8_0),
            mxfp4: dot4_by_dot1!(s::dot_mxfp4_q8_0, BlockMXFP4, BlockQ8_0),
            iq4_xs: dot4_by_dot1!(s::dot_iq4_xs_q8k, BlockIQ4XS, BlockQ8K),
            iq3_xxs: dot4_by_dot1!(s::dot_iq3_xxs_q8k, BlockIQ3XXS, BlockQ8K),
            iq3_s: dot4_by_dot1!(s::dot_iq3_s_q8k, BlockIQ3S, BlockQ8K),
            iq2_xxs: dot4_by_dot1!(s::dot_iq2_xxs_q8k, BlockIQ2XXS, BlockQ8K),
            iq2_xs: dot4_by_dot1!(s::dot_iq2_xs_q8k, BlockIQ2XS, BlockQ8K),
            iq2_s: dot4_by_dot1!(s::dot_iq2_s_q8k, BlockIQ2S, BlockQ8K),
            iq1_s: dot4_by_dot1!(s::dot_iq1_s_q8k, BlockIQ1S, BlockQ8K),
            iq1_m: dot4_by_dot1!(s::dot_iq1_m_q8k, BlockIQ1M, BlockQ8K),
        }
    }
}

/// The types this module serves.
pub const IQ_TYPES: [GgmlType; 10] = [
    GgmlType::IQ4_NL,
    GgmlType::IQ4_XS,
    GgmlType::MXFP4,
    GgmlType::IQ3_XXS,
    GgmlType::IQ3_S,
    GgmlType::IQ2_XXS,
    GgmlType::IQ2_XS,
    GgmlType::IQ2_S,
    GgmlType::IQ1_S,
    GgmlType::IQ1_M,
];

/// Whether `ty` is one of [`IQ_TYPES`].
pub fn is_iq(ty: GgmlType) -> bool {
    IQ_TYPES.contains(&ty)
}

/// Scalar dequantization of whole blocks of an IQ type or MXFP4 (lengths
/// already checked by the caller).
pub fn dequantize(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<(), KernelError> {
    match ty {
        GgmlType::IQ4_NL => s::dequantize_iq4_nl(cast_blocks(src)?, dst),
        GgmlType::IQ4_XS => s::dequantize_iq4_xs(cast_blocks(src)?, dst),
        GgmlType::MXFP4 => s::dequantize_mxfp4(cast_blocks(src)?, dst),
        GgmlType::IQ3_XXS => s::dequantize_iq3_xxs(cast_blocks(src)?, dst),
        GgmlType::IQ3_S => s::dequantize_iq3_s(cast_blocks(src)?, dst),
        GgmlType::IQ2_XXS => s::dequantize_iq2_xxs(cast_blocks(src)?, dst),
        GgmlType::IQ2_XS => s::dequantize_iq2_xs(cast_blocks(src)?, dst),
        GgmlType::IQ2_S => s::dequantize_iq2_s(cast_blocks(src)?, dst),
        GgmlType::IQ1_S => s::dequantize_iq1_s(cast_blocks(src)?, dst),
        GgmlType::IQ1_M => s::dequantize_iq1_m(cast_blocks(src)?, dst),
        ty => {
            return Err(KernelError::Unsupported {
                ty,
                what: "dequantize",
            });
        }
    }
    Ok(())
}

/// Rows of an IQ or MXFP4 weight against activations quantized to Q8_0
/// (IQ4_NL, MXFP4) or Q8_K (the rest), as ggml pairs them.
pub(super) fn rows(
    k: &super::Kernels,
    ty: GgmlType,
    w: &[u8],
    a: &super::Acts,
    out: &mut [f32],
) -> Result<(), KernelError> {
    use super::tile;
    let t = &k.iq;
    let nt = a.nt;
    match ty {
        GgmlType::IQ4_NL => tile(cast_blocks(w)?, a.q8_0, nt, t.iq4_nl, out),
        GgmlType::MXFP4 => tile(cast_blocks(w)?, a.q8_0, nt, t.mxfp4, out),
        GgmlType::IQ4_XS => tile(cast_blocks(w)?, a.q8k, nt, t.iq4_xs, out),
        GgmlType::IQ3_XXS => tile(cast_blocks(w)?, a.q8k, nt, t.iq3_xxs, out),
        GgmlType::IQ3_S => tile(cast_blocks(w)?, a.q8k, nt, t.iq3_s, out),
        GgmlType::IQ2_XXS => tile(cast_blocks(w)?, a.q8k, nt, t.iq2_xxs, out),
        GgmlType::IQ2_XS => tile(cast_blocks(w)?, a.q8k, nt, t.iq2_xs, out),
        GgmlType::IQ2_S => tile(cast_blocks(w)?, a.q8k, nt, t.iq2_s, out),
        GgmlType::IQ1_S => tile(cast_blocks(w)?, a.q8k, nt, t.iq1_s, out),
        GgmlType::IQ1_M => tile(cast_blocks(w)?, a.q8k, nt, t.iq1_m, out),
        ty => return Err(KernelError::Unsupported { ty, what: "matmul" }),
    }
    Ok(())
}

#[cfg(test)]
#[path = "iq_tests.rs"]
mod tests;
