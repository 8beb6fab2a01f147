//! One seeded runner: the same random blocks go through every kernel set
//! this CPU has, compared with the scalar reference; and the scalar matmul
//! is compared with an f32 product of the dequantized weights.

use super::*;

pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e3779b97f4a7c15) | 1)
    }
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform in [-1, 1).
    pub(crate) fn f32(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// Byte offsets of the f16 scale fields inside one block.
fn f16_fields(ty: GgmlType) -> &'static [usize] {
    match ty {
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => &[0],
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4K | GgmlType::Q5K => &[0, 2],
        GgmlType::Q2K => &[80, 82],
        GgmlType::Q3K => &[108],
        GgmlType::Q6K => &[208],
        _ => &[],
    }
}

/// Random but valid data for `n` elements of `ty` (finite scales of a
/// realistic size).
pub(crate) fn random_data(ty: GgmlType, n: usize, rng: &mut Rng) -> Vec<u8> {
    let blocks = n / ty.block_size();
    let ts = ty.type_size();
    let mut out: Vec<u8> = (0..blocks * ts).map(|_| rng.next() as u8).collect();
    match ty {
        GgmlType::F32 => {
            for c in out.chunks_exact_mut(4) {
                c.copy_from_slice(&rng.f32().to_le_bytes());
            }
        }
        GgmlType::F16 => {
            for c in out.chunks_exact_mut(2) {
                c.copy_from_slice(&f16_bytes(rng.f32()));
            }
        }
        GgmlType::BF16 => {
            for c in out.chunks_exact_mut(2) {
                let b = (rng.f32().to_bits() >> 16) as u16;
                c.copy_from_slice(&b.to_le_bytes());
            }
        }
        GgmlType::Q8K => {
            for b in out.chunks_exact_mut(ts) {
                b[0..4].copy_from_slice(&(rng.f32() * 0.01).to_le_bytes());
            }
        }
        _ => {
            for b in out.chunks_exact_mut(ts) {
                for &o in f16_fields(ty) {
                    b[o..o + 2].copy_from_slice(&f16_bytes(rng.f32() * 0.05));
                }
            }
        }
    }
    out
}

pub(crate) const MATMUL_TYPES: [GgmlType; 14] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q2K,
    GgmlType::Q3K,
    GgmlType::Q4K,
    GgmlType::Q5K,
    GgmlType::Q6K,
    GgmlType::Q8K,
];

/// Relative tolerance of the quantized matmul against the f32 product of
/// dequantized weights (the activation quantization error), per format.
fn act_tolerance(ty: GgmlType) -> f32 {
    match ty {
        GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => 1e-5,
        _ => 0.03,
    }
}

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
        for r in 0..rows {
            let xr = &x[t * cols..(t + 1) * cols];
            let wr = &wf[r * cols..(r + 1) * cols];
            let exact: f64 = wr.iter().zip(xr).map(|(a, b)| *a as f64 * *b as f64).sum();
            let scale: f64 = wr
                .iter()
                .zip(xr)
                .map(|(a, b)| (*a as f64 * *b as f64).abs())
                .sum();
            let got = reference[t * rows + r] as f64;
            assert!(
                (got - exact).abs() <= act_tolerance(ty) as f64 * scale + 1e-6,
                "{ty} scalar t={t} r={r}: {got} vs exact {exact} (scale {scale})"
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
fn every_kernel_set_matches_scalar_for_one_token() {
    for (i, ty) in MATMUL_TYPES.into_iter().enumerate() {
        check_matmul(ty, 37, 512, 1, 100 + i as u64);
    }
}

#[test]
fn every_kernel_set_matches_scalar_for_token_tiles_and_remainders() {
    for (i, ty) in MATMUL_TYPES.into_iter().enumerate() {
        check_matmul(ty, 19, 256, 7, 200 + i as u64);
    }
}

#[test]
fn default_model_shape_q4_1_matches() {
    check_matmul(GgmlType::Q4_1, 96, 576, 9, 7);
    check_matmul(GgmlType::Q8_0, 64, 576, 5, 8);
    for ty in [GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q8_0] {
        check_matmul(ty, 96, 576, 1, 9);
        check_matmul(ty, 64, 1536, 1, 10);
    }
}

#[test]
fn matmul_checks_lengths_and_blocks() {
    let data = vec![0u8; 40];
    let w = QMatrix {
        ty: GgmlType::Q4_1,
        rows: 1,
        cols: 64,
        data: &data,
    };
    let mut out = [0f32; 1];
    assert_eq!(
        matmul(&w, &[0.0; 63], 1, &mut out).unwrap_err().to_string(),
        "activations has 63 elements, expected 64"
    );
    let w2 = QMatrix { cols: 48, ..w };
    assert_eq!(
        matmul(&w2, &[0.0; 48], 1, &mut out)
            .unwrap_err()
            .to_string(),
        "q4_1 row of 48 elements is not a multiple of the block size 32"
    );
    let w3 = QMatrix { rows: 2, ..w };
    assert_eq!(
        matmul(&w3, &[0.0; 64], 1, &mut [0.0; 2])
            .unwrap_err()
            .to_string(),
        "weight bytes has 40 elements, expected 80"
    );
}

/// On a CPU with AVX-512 F/BW/VL/VNNI the AVX-512 set is among the sets
/// (so every every-kernel-set test here runs it) and is the default choice.
#[cfg(target_arch = "x86_64")]
#[test]
fn avx512_set_is_available_where_the_cpu_has_it() {
    let names: Vec<&str> = Kernels::available().iter().map(|k| k.name).collect();
    if super::x86_64_avx512::detected() {
        assert_eq!(names.last(), Some(&"avx512-vnni"), "{names:?}");
        assert!(
            super::x86_64_avx512::avx512()
                .unwrap()
                .panel
                .pairs
                .is_some()
        );
    } else {
        assert!(!names.contains(&"avx512-vnni"), "{names:?}");
    }
}

/// `BYLINE_KERNELS` names a set by its prefix; unknown names choose none.
#[test]
fn byline_kernels_names_a_set() {
    let sets = Kernels::available();
    let pick = |w: &str| super::choose(&sets, w).map(|k| k.name);
    assert_eq!(pick("scalar"), Some("scalar"));
    assert_eq!(pick(" scalar "), Some("scalar"));
    assert_eq!(pick(""), None);
    assert_eq!(pick("avx"), None);
    let has = |n: &str| sets.iter().any(|k| k.name == n);
    assert_eq!(pick("neon"), has("neon").then_some("neon"));
    assert_eq!(
        pick("neon-dotprod"),
        has("neon-dotprod").then_some("neon-dotprod")
    );
    assert_eq!(pick("neon-i8mm"), has("neon-i8mm").then_some("neon-i8mm"));
    assert_eq!(pick("neon-"), None);
    assert_eq!(pick("avx2"), has("avx2-fma").then_some("avx2-fma"));
    assert_eq!(pick("avx2-fma"), has("avx2-fma").then_some("avx2-fma"));
    assert_eq!(pick("avx512"), has("avx512-vnni").then_some("avx512-vnni"));
    assert_eq!(pick("avx2-vnni"), has("avx2-vnni").then_some("avx2-vnni"));
    assert_eq!(pick("avxvnni"), has("avx2-vnni").then_some("avx2-vnni"));
}

/// On a CPU with AVX-VNNI (and AVX2, FMA, F16C) the AVX-VNNI set is among
/// the sets, after the plain AVX2 one, with its panel-pair kernels.
#[cfg(target_arch = "x86_64")]
#[test]
fn avxvnni_set_is_available_where_the_cpu_has_it() {
    let names: Vec<&str> = Kernels::available().iter().map(|k| k.name).collect();
    let at = |n: &str| names.iter().position(|k| *k == n);
    if super::x86_64_avxvnni::detected() {
        assert!(at("avx2-vnni") > at("avx2-fma"), "{names:?}");
        let k = super::x86_64_avxvnni::avxvnni().unwrap();
        assert!(k.panel.pairs.is_some());
    } else {
        assert_eq!(at("avx2-vnni"), None, "{names:?}");
    }
}

#[test]
fn kernel_set_name_is_known() {
    let known = [
        "scalar",
        "avx2-fma",
        "avx2-vnni",
        "avx512-vnni",
        "neon",
        "neon-dotprod",
        "neon-i8mm",
    ];
    assert!(known.contains(&kernel_set()));
}

/// On aarch64 the NEON sets are among the sets (so every every-kernel-set
/// test here runs them), `neon-dotprod` and `neon-i8mm` exactly where the CPU
/// has the features, the best one last. `BYLINE_TEST_REQUIRE_SETS` (a comma
/// list; `tools/test_aarch64.sh` sets it under `qemu-aarch64 -cpu max`)
/// makes a missing set a failure instead of a silent skip.
#[cfg(target_arch = "aarch64")]
#[test]
fn neon_sets_are_available_where_the_cpu_has_them() {
    use super::aarch64_neon::{has_dotprod, has_i8mm};
    let names: Vec<&str> = Kernels::available().iter().map(|k| k.name).collect();
    let mut want = vec!["scalar", "neon"];
    if has_dotprod() {
        want.push("neon-dotprod");
    }
    if has_i8mm() {
        want.push("neon-i8mm");
    }
    assert_eq!(names, want);
    if let Ok(req) = std::env::var("BYLINE_TEST_REQUIRE_SETS") {
        for n in req.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            assert!(names.contains(&n), "{n} required but missing: {names:?}");
        }
    }
}

/// The NEON sets keep the scalar reference's integer sums and its float
/// operations per block in the same order, so (unlike the x86 sets, held to
/// 1e-4 above) their products equal it bit for bit: one token (decode dots),
/// five (the four-token tiles and a remainder) and twenty (panels).
#[cfg(target_arch = "aarch64")]
#[test]
fn neon_sets_equal_the_scalar_reference_bit_for_bit() {
    let mut types = MATMUL_TYPES.to_vec();
    types.extend([GgmlType::IQ4_NL, GgmlType::IQ4_XS]);
    let scalar = Kernels::scalar();
    let neon: Vec<Kernels> = Kernels::available()
        .into_iter()
        .filter(|k| k.name.starts_with("neon"))
        .collect();
    assert!(!neon.is_empty());
    for (i, ty) in types.into_iter().enumerate() {
        let (rows, cols) = (24, 512);
        let mut rng = Rng::new(700 + i as u64);
        let mut data = random_data(ty, rows * cols, &mut rng);
        if matches!(ty, GgmlType::IQ4_NL | GgmlType::IQ4_XS) {
            for b in data.chunks_exact_mut(ty.type_size()) {
                b[0..2].copy_from_slice(&f16_bytes(rng.f32() * 0.02));
            }
        }
        let w = QMatrix {
            ty,
            rows,
            cols,
            data: &data,
        };
        for nt in [1, 5, 20] {
            let x: Vec<f32> = (0..nt * cols).map(|_| rng.f32() * 4.0).collect();
            let mut want = vec![0f32; rows * nt];
            matmul_with(&scalar, &w, &x, nt, &mut want).unwrap();
            for set in &neon {
                let mut got = vec![0f32; rows * nt];
                matmul_with(set, &w, &x, nt, &mut got).unwrap();
                let got: Vec<u32> = got.iter().map(|v| v.to_bits()).collect();
                let want: Vec<u32> = want.iter().map(|v| v.to_bits()).collect();
                assert_eq!(got, want, "{ty} {} with {nt} tokens", set.name);
            }
        }
    }
}

#[test]
fn dequantize_row_checks_destination_length() {
    let src = vec![0u8; 20];
    let mut dst = vec![0f32; 31];
    assert_eq!(
        dequantize_row(GgmlType::Q4_1, &src, &mut dst)
            .unwrap_err()
            .to_string(),
        "destination has 31 elements, expected 32"
    );
    assert!(dequantize_row(GgmlType::TQ1_0, &[0u8; 54], &mut [0f32; 256]).is_err());
}

#[test]
fn q8_activation_quantization_round_trips() {
    let mut rng = Rng::new(3);
    let x: Vec<f32> = (0..512).map(|_| rng.f32()).collect();
    let mut q = vec![BlockQ8K::zeroed(); 2];
    scalar::quantize_row_q8_k(&x, &mut q);
    let mut back = vec![0f32; 512];
    scalar::dequantize_q8k(&q, &mut back);
    for (a, b) in x.iter().zip(&back) {
        assert!((a - b).abs() <= 1.0 / 127.0 + 1e-6, "{a} vs {b}");
    }
    for (b, qs) in q.iter().zip(q.iter().map(|b| b.qs)) {
        assert_eq!(
            b.bsums[3],
            qs[48..64].iter().map(|&v| v as i16).sum::<i16>()
        );
    }
}

/// Our scalar dequantization equals the `gguf` Python package's numpy
/// dequantizers bit for bit (data from `tools/gguf_dequant_ref.py`).
#[test]
fn quant_matches_gguf_python_bit_for_bit() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/quant");
    let types = [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::BF16,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
        GgmlType::Q2K,
        GgmlType::Q3K,
        GgmlType::Q4K,
        GgmlType::Q5K,
        GgmlType::Q6K,
    ];
    for ty in types {
        let name = ty.name().to_lowercase();
        let blocks = std::fs::read(dir.join(format!("{name}.blocks"))).unwrap();
        let want: Vec<u32> = std::fs::read(dir.join(format!("{name}.f32")))
            .unwrap()
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        let mut got = vec![0f32; want.len()];
        dequantize_row(ty, &blocks, &mut got).unwrap();
        let mismatches: Vec<usize> = (0..want.len())
            .filter(|&i| got[i].to_bits() != want[i])
            .collect();
        assert!(
            mismatches.is_empty(),
            "{ty}: {} of {} differ, first at {}: ours {} gguf {}",
            mismatches.len(),
            want.len(),
            mismatches[0],
            got[mismatches[0]],
            f32::from_bits(want[mismatches[0]])
        );
    }
}

#[test]
fn every_set_quantizes_activations_like_scalar_byte_for_byte() {
    let mut rng = Rng::new(17);
    // Include exact halves (ties round away from zero) and an all-zero block.
    let mut x: Vec<f32> = (0..1024).map(|_| rng.f32() * 3.0).collect();
    // Block 0 has d = 1 exactly, so these are ties.
    x[0] = 127.0;
    x[1] = 2.5;
    x[2] = -3.5;
    x[3] = 0.5;
    x[64..96].fill(0.0);
    // Q8_K: in block 1 the largest magnitude twice, negative first (it sets
    // the sign of the scale); block 2 all zero.
    x[300] = -9.0;
    x[301] = 9.0;
    x[512..768].fill(0.0);
    let s = Kernels::scalar();
    let (mut a0, mut a1, mut ak) = (
        vec![BlockQ8_0::zeroed(); 32],
        vec![BlockQ8_1::zeroed(); 32],
        vec![BlockQ8K::zeroed(); 4],
    );
    (s.quantize_q8_0)(&x, &mut a0);
    (s.quantize_q8_1)(&x, &mut a1);
    (s.quantize_q8k)(&x, &mut ak);
    for set in &Kernels::available()[1..] {
        let (mut b0, mut b1, mut bk) = (a0.clone(), a1.clone(), ak.clone());
        b0.fill(BlockQ8_0::zeroed());
        b1.fill(BlockQ8_1::zeroed());
        bk.fill(BlockQ8K::zeroed());
        (set.quantize_q8_0)(&x, &mut b0);
        (set.quantize_q8_1)(&x, &mut b1);
        (set.quantize_q8k)(&x, &mut bk);
        for (i, (a, b)) in a0.iter().zip(&b0).enumerate() {
            assert_eq!((a.d, a.qs), (b.d, b.qs), "{} q8_0 block {i}", set.name);
        }
        for (i, (a, b)) in a1.iter().zip(&b1).enumerate() {
            assert_eq!(
                (a.d, a.s, a.qs),
                (b.d, b.s, b.qs),
                "{} q8_1 block {i}",
                set.name
            );
        }
        for (i, (a, b)) in ak.iter().zip(&bk).enumerate() {
            assert_eq!(
                (a.d.to_bits(), a.qs, a.bsums),
                (b.d.to_bits(), b.qs, b.bsums),
                "{} q8_k block {i}",
                set.name
            );
        }
    }
}

/// A group of matrices of different types sharing one input gives each
/// matrix's own product, for one token and for a batch, in every kernel set.
#[test]
fn grouped_products_equal_separate_ones() {
    let cols = 512;
    let types = [GgmlType::Q4_1, GgmlType::Q8_0, GgmlType::Q4K, GgmlType::F16];
    let rows = [37, 8, 13, 5];
    let mut rng = Rng::new(23);
    let data: Vec<Vec<u8>> = types
        .iter()
        .zip(rows)
        .map(|(&ty, r)| random_data(ty, r * cols, &mut rng))
        .collect();
    let mats: Vec<QMatrix> = types
        .iter()
        .zip(rows)
        .zip(&data)
        .map(|((&ty, rows), data)| QMatrix {
            ty,
            rows,
            cols,
            data,
        })
        .collect();
    let mut scratch = Scratch::default();
    for nt in [1, 6] {
        let x: Vec<f32> = (0..nt * cols).map(|_| rng.f32()).collect();
        for set in Kernels::available() {
            let mut outs: Vec<Vec<f32>> = rows.iter().map(|r| vec![0f32; r * nt]).collect();
            let mut refs: Vec<&mut [f32]> = outs.iter_mut().map(|o| o.as_mut_slice()).collect();
            matmul_many_with(&set, &mats, &x, nt, &mut refs, &mut scratch).unwrap();
            for (w, got) in mats.iter().zip(&outs) {
                let mut want = vec![0f32; w.rows * nt];
                matmul_with(&set, w, &x, nt, &mut want).unwrap();
                assert_eq!(got, &want, "{} {} nt={nt}", set.name, w.ty);
            }
        }
    }
}

/// The four-token kernels give each row exactly what the
/// single-row kernel gives, so a prompt run as one batch and the same prompt
/// run token by token produce bit-identical logits (this small model
/// amplifies even last-bit differences at its attention-sink position).
#[test]
fn tiled_kernels_equal_the_single_row_kernel_bit_for_bit() {
    let cols = 576;
    for (i, ty) in MATMUL_TYPES.into_iter().enumerate() {
        let mut rng = Rng::new(300 + i as u64);
        let cols = if ty.block_size() == 256 { 512 } else { cols };
        let data = random_data(ty, 6 * cols, &mut rng);
        let x: Vec<f32> = (0..5 * cols).map(|_| rng.f32() * 40.0).collect();
        let w = QMatrix {
            ty,
            rows: 6,
            cols,
            data: &data,
        };
        for set in Kernels::available() {
            let mut batch = vec![0f32; 6 * 5];
            matmul_with(&set, &w, &x, 5, &mut batch).unwrap();
            for t in 0..5 {
                let mut one = vec![0f32; 6];
                matmul_with(&set, &w, &x[t * cols..(t + 1) * cols], 1, &mut one).unwrap();
                assert_eq!(
                    one,
                    batch[t * 6..(t + 1) * 6],
                    "{ty} {} token {t}",
                    set.name
                );
            }
        }
    }
}

/// Decode's row kernels (`rows1`: the activation side prepared once for all
/// rows) give every row exactly the single-row kernel's bits, for rows of
/// whole four-block groups, a partial last group, a single block, and rows
/// long enough to take the fallback past `ROW_GROUPS`.
#[test]
fn decode_row_kernels_equal_the_single_row_kernel_bit_for_bit() {
    fn check<W: Block, A: Block>(
        name: &str,
        dots: Dots<W, A>,
        quantize: fn(&[f32], &mut [A]),
        seed: u64,
    ) {
        let Some(rows1) = dots.rows1 else { return };
        for cols in [32, 96, 576, 1536, 33 * 1024] {
            let mut rng = Rng::new(seed + cols as u64);
            let rows = 5;
            let data = random_data(W::TYPE, rows * cols, &mut rng);
            let w: &[W] = cast_blocks(&data).unwrap();
            let x: Vec<f32> = (0..cols).map(|_| rng.f32() * 3.0).collect();
            let mut y = vec![A::zeroed(); cols / 32];
            quantize(&x, &mut y);
            let mut got = vec![f32::NAN; rows];
            rows1(w, &y, &mut got);
            let want: Vec<f32> = w
                .chunks_exact(y.len())
                .map(|r| (dots.dot1)(r, &y))
                .collect();
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "{name} {} cols={cols}", W::TYPE);
        }
    }
    for set in Kernels::available() {
        check(set.name, set.q4_0, set.quantize_q8_0, 1);
        check(set.name, set.q4_1, set.quantize_q8_1, 2);
        check(set.name, set.q5_0, set.quantize_q8_0, 3);
        check(set.name, set.q5_1, set.quantize_q8_1, 4);
        check(set.name, set.q8_0, set.quantize_q8_0, 5);
    }
}

/// The K-quant and IQ4_XS dots of every set at the ends of their integer
/// ranges (all-ones and all-zero weight bits, scales at their largest,
/// activations at ±127, the most `quantize_row_q8_k` gives) against the
/// scalar reference: the wide kernels keep four-product sums in 16 bits
/// before scaling, so these are the inputs that would overflow a wrong
/// bound. (-128 never comes out of the quantizer; the AVX2 sets' sign
/// trick would get it wrong.)
#[test]
fn k_quant_dots_at_integer_extremes_match_scalar() {
    fn acts(pattern: usize, rng: &mut Rng) -> Vec<BlockQ8K> {
        let mut b = vec![BlockQ8K::zeroed(); 2];
        for blk in &mut b {
            blk.d = 1.0;
            for (e, q) in blk.qs.iter_mut().enumerate() {
                *q = match pattern {
                    0 => 127,
                    1 => -127,
                    2 => {
                        if e % 2 == 0 {
                            127
                        } else {
                            -127
                        }
                    }
                    _ => (rng.next() as i8).max(-127),
                };
            }
            for (j, s) in blk.bsums.iter_mut().enumerate() {
                *s = blk.qs[16 * j..16 * j + 16].iter().map(|&q| q as i16).sum();
            }
        }
        b
    }
    fn weights(ty: GgmlType, pattern: usize, rng: &mut Rng) -> Vec<u8> {
        let ts = ty.type_size();
        let mut out: Vec<u8> = (0..2 * ts)
            .map(|_| match pattern {
                0 => 0xFF,
                1 => 0x00,
                2 => 0xAA,
                _ => rng.next() as u8,
            })
            .collect();
        let one = f16_bytes(1.0);
        for b in out.chunks_exact_mut(ts) {
            let fields: &[usize] = match ty {
                GgmlType::IQ4_XS => &[0],
                ty => f16_fields(ty),
            };
            for &o in fields {
                b[o..o + 2].copy_from_slice(&one);
            }
        }
        out
    }
    fn check<W: Block>(name: &str, ty: GgmlType, f: Dot1<W, BlockQ8K>, r: Dot1<W, BlockQ8K>) {
        let mut rng = Rng::new(4242);
        for wp in 0..4 {
            for ap in 0..4 {
                let data = weights(ty, wp, &mut rng);
                let w: &[W] = cast_blocks(&data).unwrap();
                let y = acts(ap, &mut rng);
                let (got, want) = (f(w, &y), r(w, &y));
                let tol = 1e-5 * want.abs().max(1.0);
                assert!(
                    (got - want).abs() <= tol,
                    "{name} {ty} weights {wp} acts {ap}: {got} vs scalar {want}"
                );
            }
        }
    }
    let s = Kernels::scalar();
    for set in Kernels::available() {
        check(set.name, GgmlType::Q2K, set.q2k.dot1, s.q2k.dot1);
        check(set.name, GgmlType::Q3K, set.q3k.dot1, s.q3k.dot1);
        check(set.name, GgmlType::Q4K, set.q4k.dot1, s.q4k.dot1);
        check(set.name, GgmlType::Q5K, set.q5k.dot1, s.q5k.dot1);
        check(set.name, GgmlType::Q6K, set.q6k.dot1, s.q6k.dot1);
        check(
            set.name,
            GgmlType::IQ4_XS,
            set.iq.iq4_xs.dot1,
            s.iq.iq4_xs.dot1,
        );
    }
}
