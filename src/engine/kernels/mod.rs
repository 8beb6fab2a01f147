//! Kernels: one safe entry point per kernel, implementations chosen once at
//! run time by CPU detection.
//!
//! `scalar` is the readable reference; `x86_64` holds the AVX2+FMA paths.
//! `BYLINE_KERNELS=scalar` forces the reference everywhere (debugging,
//! benches). Kernels are single-threaded and pure; [`matmul`] runs rayon
//! over row chunks outside them.

pub mod iq;
pub mod iq_scalar;
#[cfg(target_arch = "x86_64")]
pub mod iq_x86_64;
pub mod scalar;
#[cfg(target_arch = "x86_64")]
pub mod x86_64;

use std::sync::OnceLock;

use rayon::prelude::*;

use crate::engine::quant::*;

/// Why a kernel call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KernelError {
    #[error("{ty} has no {what} kernel")]
    Unsupported { ty: GgmlType, what: &'static str },
    #[error("{what} has {len} elements, expected {expected}")]
    Length {
        what: &'static str,
        len: usize,
        expected: usize,
    },
    #[error("{ty} row of {cols} elements is not a multiple of the block size {block}")]
    Block {
        ty: GgmlType,
        cols: usize,
        block: usize,
    },
    #[error(transparent)]
    Cast(#[from] CastError),
}

/// Single-token dot: one weight row against one quantized activation row.
pub type Dot1<W, A> = fn(&[W], &[A]) -> f32;
/// Four-token dot: one weight row against four activation rows, each weight
/// block unpacked once.
pub type Dot4<W, A> = fn(&[W], [&[A]; 4]) -> [f32; 4];

/// The dot kernels for one (weight, activation) block pair.
pub struct Dots<W: 'static, A: 'static> {
    pub dot1: Dot1<W, A>,
    pub dot4: Dot4<W, A>,
}

impl<W, A> Clone for Dots<W, A> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<W, A> Copy for Dots<W, A> {}

/// The kernel table, filled once from CPU detection.
#[derive(Clone, Copy)]
pub struct Kernels {
    pub name: &'static str,
    pub q4_0: Dots<BlockQ4_0, BlockQ8_0>,
    pub q4_1: Dots<BlockQ4_1, BlockQ8_1>,
    pub q5_0: Dots<BlockQ5_0, BlockQ8_0>,
    pub q5_1: Dots<BlockQ5_1, BlockQ8_1>,
    pub q8_0: Dots<BlockQ8_0, BlockQ8_0>,
    pub q2k: Dots<BlockQ2K, BlockQ8K>,
    pub q3k: Dots<BlockQ3K, BlockQ8K>,
    pub q4k: Dots<BlockQ4K, BlockQ8K>,
    pub q5k: Dots<BlockQ5K, BlockQ8K>,
    pub q6k: Dots<BlockQ6K, BlockQ8K>,
    pub q8k: Dots<BlockQ8K, BlockQ8K>,
    pub f32: Dots<u8, f32>,
    pub quantize_q8_0: fn(&[f32], &mut [BlockQ8_0]),
    pub quantize_q8_1: fn(&[f32], &mut [BlockQ8_1]),
    /// The IQ types and MXFP4 (`iq.rs`).
    pub iq: iq::IqKernels,
}

/// Wraps a single-token dot as a four-token one (for formats without a
/// dedicated tiled kernel).
macro_rules! dot4_by_dot1 {
    ($f:path, $w:ty, $a:ty) => {{
        fn dot4(w: &[$w], y: [&[$a]; 4]) -> [f32; 4] {
            [$f(w, y[0]), $f(w, y[1]), $f(w, y[2]), $f(w, y[3])]
        }
        Dots::<$w, $a> {
            dot1: $f,
            dot4: dot4,
        }
    }};
}
pub(crate) use dot4_by_dot1;

impl Kernels {
    /// The scalar reference set.
    pub fn scalar() -> Kernels {
        Kernels {
            name: "scalar",
            q4_0: dot4_by_dot1!(scalar::dot_q4_0_q8_0, BlockQ4_0, BlockQ8_0),
            q4_1: dot4_by_dot1!(scalar::dot_q4_1_q8_1, BlockQ4_1, BlockQ8_1),
            q5_0: dot4_by_dot1!(scalar::dot_q5_0_q8_0, BlockQ5_0, BlockQ8_0),
            q5_1: dot4_by_dot1!(scalar::dot_q5_1_q8_1, BlockQ5_1, BlockQ8_1),
            q8_0: dot4_by_dot1!(scalar::dot_q8_0_q8_0, BlockQ8_0, BlockQ8_0),
            q2k: dot4_by_dot1!(scalar::dot_q2k_q8k, BlockQ2K, BlockQ8K),
            q3k: dot4_by_dot1!(scalar::dot_q3k_q8k, BlockQ3K, BlockQ8K),
            q4k: dot4_by_dot1!(scalar::dot_q4k_q8k, BlockQ4K, BlockQ8K),
            q5k: dot4_by_dot1!(scalar::dot_q5k_q8k, BlockQ5K, BlockQ8K),
            q6k: dot4_by_dot1!(scalar::dot_q6k_q8k, BlockQ6K, BlockQ8K),
            q8k: dot4_by_dot1!(scalar::dot_q8k_q8k, BlockQ8K, BlockQ8K),
            f32: dot4_by_dot1!(scalar::dot_f32, u8, f32),
            quantize_q8_0: scalar::quantize_row_q8_0,
            quantize_q8_1: scalar::quantize_row_q8_1,
            iq: iq::IqKernels::scalar(),
        }
    }

    /// Every kernel set this CPU can run, reference first (for tests and benches).
    pub fn available() -> Vec<Kernels> {
        let mut v = vec![Kernels::scalar()];
        #[cfg(target_arch = "x86_64")]
        if let Some(k) = x86_64::avx2() {
            v.push(k);
        }
        v
    }

    /// The best set for this CPU, unless `BYLINE_KERNELS=scalar`.
    fn detect() -> Kernels {
        if std::env::var("BYLINE_KERNELS").is_ok_and(|v| v == "scalar") {
            return Kernels::scalar();
        }
        Kernels::available()
            .pop()
            .expect("scalar is always available")
    }
}

/// The kernel set chosen for this process.
pub fn kernels() -> &'static Kernels {
    static K: OnceLock<Kernels> = OnceLock::new();
    K.get_or_init(Kernels::detect)
}

/// Name of the kernel set in use: "avx2-fma" or "scalar".
pub fn kernel_set() -> &'static str {
    kernels().name
}

/// Dequantizes `src` (whole blocks of `ty`) into `dst`, whose length must be
/// the element count.
pub fn dequantize_row(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<(), KernelError> {
    let bs = ty.block_size();
    let ts = ty.type_size();
    if !src.len().is_multiple_of(ts) {
        return Err(KernelError::Length {
            what: "source bytes",
            len: src.len(),
            expected: src.len().next_multiple_of(ts),
        });
    }
    let n = src.len() / ts * bs;
    if dst.len() != n {
        return Err(KernelError::Length {
            what: "destination",
            len: dst.len(),
            expected: n,
        });
    }
    match ty {
        GgmlType::F32 => scalar::dequantize_f32(src, dst),
        GgmlType::F16 => scalar::dequantize_f16(src, dst),
        GgmlType::BF16 => scalar::dequantize_bf16(src, dst),
        GgmlType::Q4_0 => scalar::dequantize_q4_0(cast_blocks(src)?, dst),
        GgmlType::Q4_1 => scalar::dequantize_q4_1(cast_blocks(src)?, dst),
        GgmlType::Q5_0 => scalar::dequantize_q5_0(cast_blocks(src)?, dst),
        GgmlType::Q5_1 => scalar::dequantize_q5_1(cast_blocks(src)?, dst),
        GgmlType::Q8_0 => scalar::dequantize_q8_0(cast_blocks(src)?, dst),
        GgmlType::Q8_1 => scalar::dequantize_q8_1(cast_blocks(src)?, dst),
        GgmlType::Q2K => scalar::dequantize_q2k(cast_blocks(src)?, dst),
        GgmlType::Q3K => scalar::dequantize_q3k(cast_blocks(src)?, dst),
        GgmlType::Q4K => scalar::dequantize_q4k(cast_blocks(src)?, dst),
        GgmlType::Q5K => scalar::dequantize_q5k(cast_blocks(src)?, dst),
        GgmlType::Q6K => scalar::dequantize_q6k(cast_blocks(src)?, dst),
        GgmlType::Q8K => scalar::dequantize_q8k(cast_blocks(src)?, dst),
        ty if iq::is_iq(ty) => iq::dequantize(ty, src, dst)?,
        _ => {
            return Err(KernelError::Unsupported {
                ty,
                what: "dequantize",
            });
        }
    }
    Ok(())
}

/// A quantized weight matrix borrowed from the mapping: `rows` rows of
/// `cols` elements, row-major. A GGUF 2-D weight has `cols = dims[0]` and
/// `rows = dims[1]`.
#[derive(Clone, Copy, Debug)]
pub struct QMatrix<'a> {
    pub ty: GgmlType,
    pub rows: usize,
    pub cols: usize,
    pub data: &'a [u8],
}

/// `out[t*rows + r] = dot(W[r, :], x[t*cols..(t+1)*cols])` for `t` in
/// `0..n_tokens` (y = x · Wᵀ).
///
/// Activations are quantized once per call the way ggml does (Q8_0 for
/// Q4_0/Q5_0/Q8_0, Q8_1 for Q4_1/Q5_1, Q8_K for the K-quants); rows are
/// split into chunks over rayon; inside a chunk tokens are processed four at
/// a time so each weight block is unpacked once per four tokens.
pub fn matmul(w: &QMatrix, x: &[f32], n_tokens: usize, out: &mut [f32]) -> Result<(), KernelError> {
    matmul_with(kernels(), w, x, n_tokens, out)
}

/// [`matmul`] with an explicit kernel set (tests and benches compare sets).
pub fn matmul_with(
    k: &Kernels,
    w: &QMatrix,
    x: &[f32],
    n_tokens: usize,
    out: &mut [f32],
) -> Result<(), KernelError> {
    let (rows, cols) = (w.rows, w.cols);
    let bs = w.ty.block_size();
    if !cols.is_multiple_of(bs) {
        return Err(KernelError::Block {
            ty: w.ty,
            cols,
            block: bs,
        });
    }
    let row_bytes = cols / bs * w.ty.type_size();
    if w.data.len() != rows * row_bytes {
        return Err(KernelError::Length {
            what: "weight bytes",
            len: w.data.len(),
            expected: rows * row_bytes,
        });
    }
    if x.len() != n_tokens * cols {
        return Err(KernelError::Length {
            what: "activations",
            len: x.len(),
            expected: n_tokens * cols,
        });
    }
    if out.len() != n_tokens * rows {
        return Err(KernelError::Length {
            what: "output",
            len: out.len(),
            expected: n_tokens * rows,
        });
    }
    if rows == 0 || n_tokens == 0 {
        return Ok(());
    }
    let s = Shape {
        rows,
        row_bytes,
        n_tokens,
    };
    match w.ty {
        GgmlType::Q4_0 => run(&s, w.data, &quantize(x, cols, k.quantize_q8_0), k.q4_0, out),
        GgmlType::Q4_1 => run(&s, w.data, &quantize(x, cols, k.quantize_q8_1), k.q4_1, out),
        GgmlType::Q5_0 => run(&s, w.data, &quantize(x, cols, k.quantize_q8_0), k.q5_0, out),
        GgmlType::Q5_1 => run(&s, w.data, &quantize(x, cols, k.quantize_q8_1), k.q5_1, out),
        GgmlType::Q8_0 => run(&s, w.data, &quantize(x, cols, k.quantize_q8_0), k.q8_0, out),
        GgmlType::Q2K => run(
            &s,
            w.data,
            &quantize(x, cols, scalar::quantize_row_q8_k),
            k.q2k,
            out,
        ),
        GgmlType::Q3K => run(
            &s,
            w.data,
            &quantize(x, cols, scalar::quantize_row_q8_k),
            k.q3k,
            out,
        ),
        GgmlType::Q4K => run(
            &s,
            w.data,
            &quantize(x, cols, scalar::quantize_row_q8_k),
            k.q4k,
            out,
        ),
        GgmlType::Q5K => run(
            &s,
            w.data,
            &quantize(x, cols, scalar::quantize_row_q8_k),
            k.q5k,
            out,
        ),
        GgmlType::Q6K => run(
            &s,
            w.data,
            &quantize(x, cols, scalar::quantize_row_q8_k),
            k.q6k,
            out,
        ),
        GgmlType::Q8K => run(
            &s,
            w.data,
            &quantize(x, cols, scalar::quantize_row_q8_k),
            k.q8k,
            out,
        ),
        ty if iq::is_iq(ty) => iq::matmul(k, ty, &s, w.data, x, cols, out),
        GgmlType::F32 => run_float(&s, w.data, x, k.f32, out),
        GgmlType::F16 | GgmlType::BF16 => {
            // Convert weights row by row to f32 bytes inside the row kernel.
            let conv = if w.ty == GgmlType::F16 {
                scalar::dot_f16 as Dot1<u8, f32>
            } else {
                scalar::dot_bf16 as Dot1<u8, f32>
            };
            run_float(
                &s,
                w.data,
                x,
                Dots {
                    dot1: conv,
                    dot4: dot4_float(w.ty),
                },
                out,
            )
        }
        ty => Err(KernelError::Unsupported { ty, what: "matmul" }),
    }
}

fn dot4_float(ty: GgmlType) -> Dot4<u8, f32> {
    fn f16x4(w: &[u8], y: [&[f32]; 4]) -> [f32; 4] {
        y.map(|y| scalar::dot_f16(w, y))
    }
    fn bf16x4(w: &[u8], y: [&[f32]; 4]) -> [f32; 4] {
        y.map(|y| scalar::dot_bf16(w, y))
    }
    if ty == GgmlType::F16 { f16x4 } else { bf16x4 }
}

struct Shape {
    rows: usize,
    row_bytes: usize,
    n_tokens: usize,
}

/// Quantizes each token's row of `cols` values into activation blocks.
fn quantize<A: Block>(x: &[f32], cols: usize, f: fn(&[f32], &mut [A])) -> Vec<A> {
    let per_row = cols / A::TYPE.block_size();
    let n_tokens = x.len() / cols;
    let mut out = vec![A::zeroed(); per_row * n_tokens];
    if n_tokens > 1 {
        out.par_chunks_mut(per_row)
            .zip(x.par_chunks(cols))
            .for_each(|(q, x)| f(x, q));
    } else {
        f(x, &mut out);
    }
    out
}

/// Rows per rayon task: small enough to balance, large enough to amortise.
fn rows_per_chunk(rows: usize, n_tokens: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    let target = if n_tokens == 1 { 16 } else { 4 };
    rows.div_ceil(threads * target).clamp(1, 64)
}

fn run<W: Block, A: Block>(
    s: &Shape,
    wdata: &[u8],
    xq: &[A],
    dots: Dots<W, A>,
    out: &mut [f32],
) -> Result<(), KernelError> {
    let w: &[W] = cast_blocks(wdata)?;
    let per_row = w.len() / s.rows;
    let a_per_row = xq.len() / s.n_tokens;
    let chunk = rows_per_chunk(s.rows, s.n_tokens);
    let nt = s.n_tokens;
    let _ = s.row_bytes;
    if nt == 1 {
        out.par_chunks_mut(chunk)
            .zip(w.par_chunks(chunk * per_row))
            .for_each(|(o, wc)| {
                for (o, wr) in o.iter_mut().zip(wc.chunks_exact(per_row)) {
                    *o = (dots.dot1)(wr, xq);
                }
            });
        return Ok(());
    }
    // Token-major results per row chunk: tmp[r * nt + t], then transpose.
    let mut tmp = vec![0f32; s.rows * nt];
    tmp.par_chunks_mut(chunk * nt)
        .zip(w.par_chunks(chunk * per_row))
        .for_each(|(o, wc)| {
            let ys = |t: usize| &xq[t * a_per_row..(t + 1) * a_per_row];
            let mut t = 0;
            while t + 4 <= nt {
                let y = [ys(t), ys(t + 1), ys(t + 2), ys(t + 3)];
                for (r, wr) in wc.chunks_exact(per_row).enumerate() {
                    let v = (dots.dot4)(wr, y);
                    o[r * nt + t..r * nt + t + 4].copy_from_slice(&v);
                }
                t += 4;
            }
            for t in t..nt {
                for (r, wr) in wc.chunks_exact(per_row).enumerate() {
                    o[r * nt + t] = (dots.dot1)(wr, ys(t));
                }
            }
        });
    transpose(&tmp, s.rows, nt, out);
    Ok(())
}

fn run_float(
    s: &Shape,
    wdata: &[u8],
    x: &[f32],
    dots: Dots<u8, f32>,
    out: &mut [f32],
) -> Result<(), KernelError> {
    let nt = s.n_tokens;
    let cols = x.len() / nt;
    let chunk = rows_per_chunk(s.rows, nt);
    let mut tmp = vec![0f32; s.rows * nt];
    tmp.par_chunks_mut(chunk * nt)
        .zip(wdata.par_chunks(chunk * s.row_bytes))
        .for_each(|(o, wc)| {
            let ys = |t: usize| &x[t * cols..(t + 1) * cols];
            let mut t = 0;
            while t + 4 <= nt {
                let y = [ys(t), ys(t + 1), ys(t + 2), ys(t + 3)];
                for (r, wr) in wc.chunks_exact(s.row_bytes).enumerate() {
                    let v = (dots.dot4)(wr, y);
                    o[r * nt + t..r * nt + t + 4].copy_from_slice(&v);
                }
                t += 4;
            }
            for t in t..nt {
                for (r, wr) in wc.chunks_exact(s.row_bytes).enumerate() {
                    o[r * nt + t] = (dots.dot1)(wr, ys(t));
                }
            }
        });
    transpose(&tmp, s.rows, nt, out);
    Ok(())
}

/// out[t * rows + r] = tmp[r * nt + t]
fn transpose(tmp: &[f32], rows: usize, nt: usize, out: &mut [f32]) {
    if nt == 1 {
        out.copy_from_slice(tmp);
        return;
    }
    out.par_chunks_mut(rows).enumerate().for_each(|(t, o)| {
        for (r, v) in o.iter_mut().enumerate() {
            *v = tmp[r * nt + t];
        }
    });
}

#[cfg(test)]
mod tests;
