//! IQ and MXFP4 kernels: bit-exact dequantization against the committed
//! references, and the seeded comparison of every kernel set with the
//! scalar one (plus the scalar product against an f64 product of the
//! dequantized weights).

use super::super::tests::Rng;
use super::super::{Kernels, QMatrix, dequantize_row, matmul_with};
use super::*;

/// Random but valid data for `n` elements of `ty`: random bytes (every bit
/// pattern of the index, sign and scale fields is valid) with a finite f16
/// super-scale of a realistic size, or a moderate e8m0 exponent for MXFP4.
fn random_data(ty: GgmlType, n: usize, rng: &mut Rng) -> Vec<u8> {
    let ts = ty.type_size();
    let mut out: Vec<u8> = (0..n / ty.block_size() * ts)
        .map(|_| rng.next() as u8)
        .collect();
    for b in out.chunks_exact_mut(ts) {
        let d = f16_bytes(rng.f32() * 0.02);
        match ty {
            GgmlType::MXFP4 => b[0] = 118 + (rng.next() % 12) as u8,
            GgmlType::IQ1_M => {
                let d = u16::from_le_bytes(d);
                for j in 0..4 {
                    let o = 48 + 2 * j;
                    let w = (u16::from_le_bytes([b[o], b[o + 1]]) & 0x0FFF)
                        | (((d >> (4 * j)) & 0xF) << 12);
                    b[o..o + 2].copy_from_slice(&w.to_le_bytes());
                }
            }
            _ => b[0..2].copy_from_slice(&d),
        }
    }
    out
}

/// Relative tolerance of the quantized product against the f64 product of
/// the dequantized weights, as a fraction of sum |w * x|: the error of
/// quantizing activations to 8 bits (about 1/254 per value, far less once
/// summed; 0.03 leaves room for short rows).
const ACT_TOLERANCE: f64 = 0.03;

fn check_matmul(ty: GgmlType, rows: usize, cols: usize, n_tokens: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let data = random_data(ty, rows * cols, &mut rng);
    let x: Vec<f32> = (0..n_tokens * cols).map(|_| rng.f32()).collect();
    let w = QMatrix {
        ty,
        rows,
        cols,
        data: &data,
    };
    let mut wf = vec![0f32; rows * cols];
    dequantize_row(ty, &data, &mut wf).unwrap();

    let sets = Kernels::available();
    let mut reference = vec![0f32; rows * n_tokens];
    matmul_with(&sets[0], &w, &x, n_tokens, &mut reference).unwrap();
    for t in 0..n_tokens {
        let xr = &x[t * cols..(t + 1) * cols];
        for r in 0..rows {
            let wr = &wf[r * cols..(r + 1) * cols];
            let exact: f64 = wr.iter().zip(xr).map(|(a, b)| *a as f64 * *b as f64).sum();
            let scale: f64 = wr
                .iter()
                .zip(xr)
                .map(|(a, b)| (*a as f64 * *b as f64).abs())
                .sum();
            let got = reference[t * rows + r] as f64;
            assert!(
                (got - exact).abs() <= ACT_TOLERANCE * scale + 1e-6,
                "{ty} scalar t={t} r={r}: {got} vs dequantized f64 {exact} (scale {scale})"
            );
        }
    }
    for set in &sets[1..] {
        let mut out = vec![0f32; rows * n_tokens];
        matmul_with(set, &w, &x, n_tokens, &mut out).unwrap();
        for (i, (a, b)) in out.iter().zip(&reference).enumerate() {
            // Same integer sums, different float summation order.
            let tol = 1e-4 * b.abs().max(1.0);
            assert!(
                (a - b).abs() <= tol,
                "{ty} {} at {i}: {a} vs scalar {b}",
                set.name
            );
        }
    }
}

#[test]
fn iq_every_kernel_set_matches_scalar_for_one_token() {
    for (i, ty) in IQ_TYPES.into_iter().enumerate() {
        check_matmul(ty, 37, 512, 1, 300 + i as u64);
    }
}

#[test]
fn iq_every_kernel_set_matches_scalar_for_token_tiles_and_remainders() {
    for (i, ty) in IQ_TYPES.into_iter().enumerate() {
        check_matmul(ty, 19, 768, 7, 400 + i as u64);
    }
}

/// The dot kernels pair with the activation format ggml uses: the product
/// of a weight with a one-hot activation row picks out that weight (up to
/// the activation scale), for every position of a block.
#[test]
fn iq_dot_of_one_hot_activation_reads_each_weight() {
    for (i, ty) in IQ_TYPES.into_iter().enumerate() {
        let cols = 256;
        let mut rng = Rng::new(500 + i as u64);
        let data = random_data(ty, cols, &mut rng);
        let mut wf = vec![0f32; cols];
        dequantize_row(ty, &data, &mut wf).unwrap();
        let w = QMatrix {
            ty,
            rows: 1,
            cols,
            data: &data,
        };
        for set in Kernels::available() {
            for e in (0..cols).step_by(7) {
                let mut x = vec![0f32; cols];
                x[e] = 1.0;
                let mut out = [0f32];
                matmul_with(&set, &w, &x, 1, &mut out).unwrap();
                let tol = 1e-3 * wf[e].abs().max(1e-3);
                assert!(
                    (out[0] - wf[e]).abs() <= tol,
                    "{ty} {} element {e}: dot {} vs weight {}",
                    set.name,
                    out[0],
                    wf[e]
                );
            }
        }
    }
}

/// Our scalar dequantization equals gguf 0.19.0's numpy dequantizers (which
/// the generating script checked against ggml's own) bit for bit, on random
/// blocks and on blocks that use every grid row (`tools/gguf_iq_ref.py`).
#[test]
fn iq_dequant_matches_reference_bit_for_bit() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/quant");
    for ty in IQ_TYPES {
        let name = ty.name();
        let blocks = std::fs::read(dir.join(format!("{name}.blocks"))).unwrap();
        let want: Vec<u32> = std::fs::read(dir.join(format!("{name}.f32")))
            .unwrap()
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        assert!(
            want.len() >= 2048,
            "{ty}: only {} reference values",
            want.len()
        );
        let mut got = vec![0f32; want.len()];
        dequantize_row(ty, &blocks, &mut got).unwrap();
        let bad: Vec<usize> = (0..want.len())
            .filter(|&i| got[i].to_bits() != want[i])
            .collect();
        assert!(
            bad.is_empty(),
            "{ty}: {} of {} differ, first at {}: ours {} reference {}",
            bad.len(),
            want.len(),
            bad[0],
            got[bad[0]],
            f32::from_bits(want[bad[0]])
        );
    }
}

#[test]
fn iq_dequantize_rejects_partial_blocks() {
    let err = dequantize_row(GgmlType::IQ2_XXS, &[0u8; 65], &mut [0f32; 256]).unwrap_err();
    assert_eq!(err.to_string(), "source bytes has 65 elements, expected 66");
    assert!(dequantize_row(GgmlType::IQ2_XXS, &[0u8; 66], &mut [0f32; 256]).is_ok());
}
