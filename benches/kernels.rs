//! Kernel micro-benchmarks: `matmul` per weight type at the default model's
//! shapes (SmolLM2-135M: d=576, FFN 1536), for 1 token (decode) and 512
//! tokens (prompt). Throughput is weight bytes per second.
//!
//! `cargo bench --bench kernels`; `BYLINE_KERNELS=scalar` for the reference;
//! `RAYON_NUM_THREADS=1` for one thread.

use byline::engine::kernels::{QMatrix, kernel_set, matmul};
use byline::engine::quant::GgmlType;
use divan::Bencher;
use divan::counter::BytesCount;

fn main() {
    eprintln!("kernel set: {}", kernel_set());
    divan::main();
}

const TYPES: [&str; 11] = [
    "q4_1", "q8_0", "q4_0", "q5_0", "q2_K", "q3_K", "q4_K", "q6_K", "q5_K", "iq4_xs", "f32",
];

fn ty(name: &str) -> GgmlType {
    GgmlType::ALL
        .into_iter()
        .find(|t| t.name() == name)
        .unwrap()
}

/// Valid random weights: random bytes with small finite f16 scales.
fn weights(ty: GgmlType, rows: usize, cols: usize) -> Vec<u8> {
    let mut s = 0x2545f4914f6cdd1du64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let n = rows * cols / ty.block_size() * ty.type_size();
    let mut v: Vec<u8> = (0..n).map(|_| next() as u8).collect();
    let f16s: &[usize] = match ty {
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 | GgmlType::IQ4_XS => &[0],
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4K | GgmlType::Q5K => &[0, 2],
        GgmlType::Q6K => &[208],
        GgmlType::Q2K => &[80, 82],
        GgmlType::Q3K => &[108],
        _ => &[],
    };
    if ty == GgmlType::F32 {
        for c in v.chunks_exact_mut(4) {
            c.copy_from_slice(&((next() % 1000) as f32 * 1e-3).to_le_bytes());
        }
    }
    for b in v.chunks_exact_mut(ty.type_size()) {
        for &o in f16s {
            b[o..o + 2].copy_from_slice(&half::f16::from_f32(0.01).to_le_bytes());
        }
    }
    v
}

fn bench(b: Bencher, name: &str, rows: usize, cols: usize, n_tokens: usize) {
    let ty = ty(name);
    if !cols.is_multiple_of(ty.block_size()) {
        return;
    }
    let data = weights(ty, rows, cols);
    let x: Vec<f32> = (0..n_tokens * cols)
        .map(|i| ((i % 97) as f32 - 48.0) / 50.0)
        .collect();
    let mut out = vec![0f32; rows * n_tokens];
    let w = QMatrix {
        ty,
        rows,
        cols,
        data: &data,
    };
    b.counter(BytesCount::new(data.len()))
        .bench_local(|| matmul(&w, divan::black_box(&x), n_tokens, &mut out).unwrap());
}

/// attn_q / attn_output: 576 x 576 (K-quants skip: 576 is not a multiple of 256).
#[divan::bench(args = TYPES)]
fn tg_576x576(b: Bencher, name: &str) {
    bench(b, name, 576, 576, 1);
}

/// ffn_up / ffn_gate: 1536 rows x 576 cols.
#[divan::bench(args = TYPES)]
fn tg_1536x576(b: Bencher, name: &str) {
    bench(b, name, 1536, 576, 1);
}

/// ffn_down: 576 rows x 1536 cols.
#[divan::bench(args = TYPES)]
fn tg_576x1536(b: Bencher, name: &str) {
    bench(b, name, 576, 1536, 1);
}

/// Output head (tied token_embd, Q8_0 in the default model): 49152 x 576.
#[divan::bench(args = ["q8_0", "q4_1"])]
fn tg_49152x576(b: Bencher, name: &str) {
    bench(b, name, 49152, 576, 1);
}

/// The synthetic qwen3moe's expert shapes (d=1024, expert FFN 512), one
/// token: ffn_down (1024 x 512) and gate/up (512 x 1024).
#[divan::bench(args = TYPES)]
fn tg_512x1024(b: Bencher, name: &str) {
    bench(b, name, 512, 1024, 1);
}

/// Prompt processing, 512 tokens, ffn_up shape.
#[divan::bench(args = TYPES, sample_count = 10)]
fn pp512_1536x576(b: Bencher, name: &str) {
    bench(b, name, 1536, 576, 512);
}

/// Prompt processing, 512 tokens, ffn_down shape.
#[divan::bench(args = TYPES, sample_count = 10)]
fn pp512_576x1536(b: Bencher, name: &str) {
    bench(b, name, 576, 1536, 512);
}
