//! Kernels: one safe entry point per kernel, implementations chosen once at
//! run time by CPU detection.
//!
//! `scalar` is the readable reference; `x86_64` holds the AVX2+FMA paths,
//! `x86_64_avx512` the AVX-512 VNNI ones; on aarch64, `aarch64_neon` holds
//! the NEON sets (`neon`, `neon-dotprod`, `neon-i8mm`).
//! `BYLINE_KERNELS=scalar|avx2|avx512|neon|neon-dotprod|neon-i8mm`
//! forces a set (debugging, benches; a set the CPU lacks falls back to the
//! best it has). Kernels are single-threaded and pure; [`matmul`] runs rayon
//! over row chunks outside them.

#[cfg(target_arch = "aarch64")]
pub mod aarch64_neon;
#[cfg(target_arch = "aarch64")]
mod aarch64_neon_k;
#[cfg(target_arch = "aarch64")]
mod aarch64_neon_panel;
pub mod gemm;
pub mod iq;
pub mod iq_scalar;
#[cfg(target_arch = "x86_64")]
pub mod iq_x86_64;
pub mod pool;
pub mod scalar;
#[cfg(target_arch = "x86_64")]
pub mod x86_64;
#[cfg(target_arch = "x86_64")]
pub mod x86_64_avx512;
#[cfg(target_arch = "x86_64")]
mod x86_64_avx512_k;
#[cfg(target_arch = "x86_64")]
pub mod x86_64_avxvnni;

use std::sync::{Mutex, OnceLock};

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
/// Whole weight rows against one token: `out[r] = dot(w row r, y)`, each row
/// `y.len()` blocks long. Kernels with per-block activation work (scales,
/// offset sums) do it once for all rows; same bits as `dot1` per row.
pub type Rows1<W, A> = fn(&[W], &[A], &mut [f32]);

/// The dot kernels for one (weight, activation) block pair.
pub struct Dots<W: 'static, A: 'static> {
    pub dot1: Dot1<W, A>,
    pub dot4: Dot4<W, A>,
    /// Decode's matrix-vector kernel, where one exists (else `dot1` per row).
    pub rows1: Option<Rows1<W, A>>,
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
    pub f16: Dots<u8, f32>,
    pub bf16: Dots<u8, f32>,
    pub quantize_q8_0: fn(&[f32], &mut [BlockQ8_0]),
    pub quantize_q8_1: fn(&[f32], &mut [BlockQ8_1]),
    pub quantize_q8k: fn(&[f32], &mut [BlockQ8K]),
    /// The IQ types and MXFP4 (`iq.rs`).
    pub iq: iq::IqKernels,
    /// Panel kernels for prompt batches ([`gemm`]).
    pub panel: gemm::PanelKernels,
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
            dot4,
            rows1: None,
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
            f16: dot4_by_dot1!(scalar::dot_f16, u8, f32),
            bf16: dot4_by_dot1!(scalar::dot_bf16, u8, f32),
            quantize_q8_0: scalar::quantize_row_q8_0,
            quantize_q8_1: scalar::quantize_row_q8_1,
            quantize_q8k: scalar::quantize_row_q8_k,
            iq: iq::IqKernels::scalar(),
            panel: gemm::PanelKernels::scalar(),
        }
    }

    /// Every kernel set this CPU can run, reference first (for tests and benches).
    pub fn available() -> Vec<Kernels> {
        let mut v = vec![Kernels::scalar()];
        #[cfg(target_arch = "x86_64")]
        if let Some(k) = x86_64::avx2() {
            v.push(k);
        }
        // AVX-VNNI (256-bit `vpdpbusd`): after avx2-fma, so `avx2` still
        // names the plain AVX2 set, and before avx512-vnni, the better one.
        #[cfg(target_arch = "x86_64")]
        if let Some(k) = x86_64_avxvnni::avxvnni() {
            v.push(k);
        }
        #[cfg(target_arch = "x86_64")]
        if let Some(k) = x86_64_avx512::avx512() {
            v.push(k);
        }
        #[cfg(target_arch = "aarch64")]
        v.extend(aarch64_neon::sets());
        v
    }

    /// The set `BYLINE_KERNELS` asks for (`scalar`, `avx2`, `avx2-vnni` or
    /// `avxvnni`, `avx512`, `neon`, `neon-dotprod`, `neon-i8mm`: the first
    /// set named so or whose name starts with it and a `-`) if this CPU has
    /// it, else the
    /// best set for this CPU.
    fn detect() -> Kernels {
        let mut sets = Kernels::available();
        if let Ok(want) = std::env::var("BYLINE_KERNELS")
            && let Some(k) = choose(&sets, &want)
        {
            return k;
        }
        sets.pop().expect("scalar is always available")
    }
}

/// The set among `sets` named by `want` (`scalar`, `avx2`, `avx512`,
/// `neon`, `neon-dotprod`, `neon-i8mm`; an empty or unknown name chooses none).
fn choose(sets: &[Kernels], want: &str) -> Option<Kernels> {
    let want = want.trim();
    if want.is_empty() {
        return None;
    }
    // The target feature's name for the AVX-VNNI set.
    let want = if want == "avxvnni" { "avx2-vnni" } else { want };
    sets.iter()
        .find(|k| k.name == want || k.name.starts_with(&format!("{want}-")))
        .copied()
}

/// The kernel set chosen for this process.
pub fn kernels() -> &'static Kernels {
    static K: OnceLock<Kernels> = OnceLock::new();
    K.get_or_init(Kernels::detect)
}

/// Name of the kernel set in use: "avx512-vnni", "avx2-vnni", "avx2-fma",
/// "neon-i8mm", "neon-dotprod", "neon" or "scalar".
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
    matmul_many_with(k, &[*w], x, n_tokens, &mut [out], &mut Scratch::default())
}

/// Several products of one input (q/k/v, gate/up): `outs[i] = x · mats[i]ᵀ`
/// laid out as in [`matmul`]. The activations are quantized once per format
/// the matrices need and every matrix's rows go into one parallel region, so
/// a decode step pays one fork-join for the group instead of one per matrix.
/// `scratch` keeps the quantized activations and result tiles between calls.
pub fn matmul_many(
    mats: &[QMatrix],
    x: &[f32],
    n_tokens: usize,
    outs: &mut [&mut [f32]],
    scratch: &mut Scratch,
) -> Result<(), KernelError> {
    matmul_many_with(kernels(), mats, x, n_tokens, outs, scratch)
}

/// The activation format a weight type's dot kernels take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ActKind {
    Q8_0,
    Q8_1,
    Q8K,
    F32,
}

fn act_kind(ty: GgmlType) -> Result<ActKind, KernelError> {
    Ok(match ty {
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => ActKind::Q8_0,
        GgmlType::Q4_1 | GgmlType::Q5_1 => ActKind::Q8_1,
        GgmlType::Q2K
        | GgmlType::Q3K
        | GgmlType::Q4K
        | GgmlType::Q5K
        | GgmlType::Q6K
        | GgmlType::Q8K => ActKind::Q8K,
        GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => ActKind::F32,
        GgmlType::IQ4_NL | GgmlType::MXFP4 => ActKind::Q8_0,
        ty if iq::is_iq(ty) => ActKind::Q8K,
        ty => return Err(KernelError::Unsupported { ty, what: "matmul" }),
    })
}

/// Buffers reused across products: quantized activations per format and the
/// row-major result tiles of multi-token products. A warmed-up decode step
/// allocates nothing in them.
#[derive(Default)]
pub struct Scratch {
    q8_0: Vec<BlockQ8_0>,
    q8_1: Vec<BlockQ8_1>,
    q8k: Vec<BlockQ8K>,
    tiles: Vec<Vec<f32>>,
    /// Per activation format (Q8_0, Q8_1, Q8_K): the batch prepared for panels.
    prep: [gemm::Prepared; 3],
}

impl std::fmt::Debug for Scratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scratch")
            .field("q8_0", &self.q8_0.len())
            .field("q8_1", &self.q8_1.len())
            .field("q8k", &self.q8k.len())
            .finish()
    }
}

/// Quantizes each token's row of `cols` values into `out` (resized).
fn quantize_into<A: Block>(x: &[f32], cols: usize, f: fn(&[f32], &mut [A]), out: &mut Vec<A>) {
    let per_row = cols / A::TYPE.block_size();
    let n_tokens = x.len() / cols;
    out.resize(per_row * n_tokens, A::zeroed());
    if n_tokens > 1 {
        out.par_chunks_mut(per_row)
            .zip(x.par_chunks(cols))
            .for_each(|(q, x)| f(x, q));
    } else {
        f(x, out);
    }
}

fn check_shape(w: &QMatrix, x: &[f32], n_tokens: usize, out: &[f32]) -> Result<(), KernelError> {
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
    Ok(())
}

/// [`matmul_many`] with an explicit kernel set.
pub fn matmul_many_with(
    k: &Kernels,
    mats: &[QMatrix],
    x: &[f32],
    n_tokens: usize,
    outs: &mut [&mut [f32]],
    scratch: &mut Scratch,
) -> Result<(), KernelError> {
    if mats.len() != outs.len() {
        return Err(KernelError::Length {
            what: "outputs",
            len: outs.len(),
            expected: mats.len(),
        });
    }
    let mut need = [false; 3];
    for (w, out) in mats.iter().zip(outs.iter()) {
        check_shape(w, x, n_tokens, out)?;
        match act_kind(w.ty)? {
            ActKind::Q8_0 => need[0] = true,
            ActKind::Q8_1 => need[1] = true,
            ActKind::Q8K => need[2] = true,
            ActKind::F32 => {}
        }
    }
    if n_tokens == 0 || mats.iter().all(|w| w.rows == 0) {
        return Ok(());
    }
    let cols = x.len() / n_tokens;
    let Scratch {
        q8_0,
        q8_1,
        q8k,
        tiles,
        prep,
    } = scratch;
    if need[0] {
        quantize_into(x, cols, k.quantize_q8_0, q8_0);
    }
    if need[1] {
        quantize_into(x, cols, k.quantize_q8_1, q8_1);
    }
    if need[2] {
        quantize_into(x, cols, k.quantize_q8k, q8k);
    }
    // Batches large enough go through 8-row panels (gemm.rs) for the
    // formats that have them.
    let panels = n_tokens >= gemm::MIN_TOKENS && panels_enabled();
    let mut use_prep = [false; 3];
    if panels {
        for w in mats {
            if gemm::format_of(w.ty).is_some() && w.rows >= gemm::PANEL_ROWS {
                match act_kind(w.ty)? {
                    ActKind::Q8_0 => use_prep[0] = true,
                    ActKind::Q8_1 => use_prep[1] = true,
                    ActKind::Q8K => use_prep[2] = true,
                    ActKind::F32 => {}
                }
            }
        }
        let [p0, p1, pk] = prep;
        if use_prep[0] {
            p0.from_q8_0(q8_0, cols, n_tokens);
        }
        if use_prep[1] {
            p1.from_q8_1(q8_1, cols, n_tokens);
        }
        if use_prep[2] {
            pk.from_q8k(q8k, cols, n_tokens);
        }
        // Panel-pair kernels read the batch tiled by eight tokens.
        if k.panel.pairs.is_some() {
            for (p, _) in [p0, p1, pk].into_iter().zip(use_prep).filter(|(_, u)| *u) {
                p.tile8();
            }
        }
    }
    let [p0, p1, pk] = &*prep;
    let acts = Acts {
        q8_0,
        q8_1,
        q8k,
        x,
        nt: n_tokens,
        prep: [
            use_prep[0].then_some(p0),
            use_prep[1].then_some(p1),
            use_prep[2].then_some(pk),
        ],
    };
    let nt = n_tokens;
    let total_rows: usize = mats.iter().map(|w| w.rows).sum();
    let chunk = rows_per_chunk(total_rows, nt);
    // One task per row chunk of every matrix, each writing its own slice of
    // a row-major (rows, nt) tile (the output itself when nt == 1).
    if nt > 1 {
        tiles.resize_with(mats.len().max(tiles.len()), Vec::new);
    }
    let mut tasks: Vec<Task> = Vec::new();
    if nt == 1 {
        for (i, out) in outs.iter_mut().enumerate() {
            for (c, o) in out.chunks_mut(chunk).enumerate() {
                tasks.push((i, c * chunk, o));
            }
        }
    } else {
        // A task's slice holds its rows token-major (`o[t * n + r]` for its
        // n rows); chunks are whole panels, and a matrix's last rows beyond
        // them get a task of their own.
        for (i, (w, tile)) in mats.iter().zip(tiles.iter_mut()).enumerate() {
            tile.resize(w.rows * nt, 0.0);
            let mut rest: &mut [f32] = tile;
            let mut r0 = 0;
            while r0 < w.rows {
                let mut n = chunk.min(w.rows - r0);
                if n > gemm::PANEL_ROWS && !n.is_multiple_of(gemm::PANEL_ROWS) {
                    n -= n % gemm::PANEL_ROWS;
                }
                let (o, tail) = rest.split_at_mut(n * nt);
                tasks.push((i, r0, o));
                rest = tail;
                r0 += n;
            }
        }
    }
    let spans: Vec<(usize, usize, usize)> = if nt > 1 {
        tasks
            .iter()
            .map(|(i, r0, o)| (*i, *r0, o.len() / nt))
            .collect()
    } else {
        Vec::new()
    };
    let run = |(i, r0, o): (usize, usize, &mut [f32])| {
        let w = &mats[i];
        let rb = w.data.len() / w.rows;
        let r1 = r0 + o.len() / nt;
        rows_of(k, w.ty, &w.data[r0 * rb..r1 * rb], &acts, o)
    };
    if tasks.len() == 1 || rayon::current_num_threads() == 1 || pool::in_job() {
        tasks.into_iter().try_for_each(run)?;
    } else if !(nt == 1 && on_pool(&mut tasks, &run)?) {
        tasks.into_par_iter().try_for_each(run)?;
    }
    if nt > 1 {
        assemble(&spans, tiles, nt, outs);
    }
    Ok(())
}

/// The activations of one product in every format prepared for it.
pub(super) struct Acts<'a> {
    q8_0: &'a [BlockQ8_0],
    q8_1: &'a [BlockQ8_1],
    q8k: &'a [BlockQ8K],
    x: &'a [f32],
    nt: usize,
    /// Prepared for panels, per format (Q8_0, Q8_1, Q8_K), when in use.
    prep: [Option<&'a gemm::Prepared>; 3],
}

/// `BYLINE_GEMM=off` turns the panel path off (for side-by-side measurements).
fn panels_enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| !std::env::var("BYLINE_GEMM").is_ok_and(|v| v == "off"))
}

/// Rows of one weight type (whole rows in `wdata`) against all tokens into
/// `out[t * rows + r]` (token-major; `rows = out.len() / nt`).
fn rows_of(
    k: &Kernels,
    ty: GgmlType,
    wdata: &[u8],
    a: &Acts,
    out: &mut [f32],
) -> Result<(), KernelError> {
    let nt = a.nt;
    if let (Some(f), Ok(kind)) = (gemm::format_of(ty), act_kind(ty)) {
        let prep = match kind {
            ActKind::Q8_0 => a.prep[0],
            ActKind::Q8_1 => a.prep[1],
            ActKind::Q8K => a.prep[2],
            ActKind::F32 => None,
        };
        let rows = out.len() / nt;
        if let Some(p) = prep.filter(|_| rows.is_multiple_of(gemm::PANEL_ROWS)) {
            return gemm::rows(k, ty, wdata, &p.view(f.sub()), out);
        }
    }
    tiles_of(k, ty, wdata, a, out)
}

/// [`rows_of`] through the dot kernels.
fn tiles_of(
    k: &Kernels,
    ty: GgmlType,
    wdata: &[u8],
    a: &Acts,
    out: &mut [f32],
) -> Result<(), KernelError> {
    let nt = a.nt;
    match ty {
        GgmlType::Q4_0 => tile(cast_blocks(wdata)?, a.q8_0, nt, k.q4_0, out),
        GgmlType::Q4_1 => tile(cast_blocks(wdata)?, a.q8_1, nt, k.q4_1, out),
        GgmlType::Q5_0 => tile(cast_blocks(wdata)?, a.q8_0, nt, k.q5_0, out),
        GgmlType::Q5_1 => tile(cast_blocks(wdata)?, a.q8_1, nt, k.q5_1, out),
        GgmlType::Q8_0 => tile(cast_blocks(wdata)?, a.q8_0, nt, k.q8_0, out),
        GgmlType::Q2K => tile(cast_blocks(wdata)?, a.q8k, nt, k.q2k, out),
        GgmlType::Q3K => tile(cast_blocks(wdata)?, a.q8k, nt, k.q3k, out),
        GgmlType::Q4K => tile(cast_blocks(wdata)?, a.q8k, nt, k.q4k, out),
        GgmlType::Q5K => tile(cast_blocks(wdata)?, a.q8k, nt, k.q5k, out),
        GgmlType::Q6K => tile(cast_blocks(wdata)?, a.q8k, nt, k.q6k, out),
        GgmlType::Q8K => tile(cast_blocks(wdata)?, a.q8k, nt, k.q8k, out),
        GgmlType::F32 => tile(wdata, a.x, nt, k.f32, out),
        GgmlType::F16 => tile(wdata, a.x, nt, k.f16, out),
        GgmlType::BF16 => tile(wdata, a.x, nt, k.bf16, out),
        ty if iq::is_iq(ty) => return iq::rows(k, ty, wdata, a, out),
        ty => return Err(KernelError::Unsupported { ty, what: "matmul" }),
    }
    Ok(())
}

/// How far ahead of the weights being read decode asks for them, in bytes.
/// The hardware prefetcher follows a stream only within a 4 KiB page, so
/// each row chunk otherwise starts every page with a miss; software
/// prefetch one page ahead measured 10-15% faster decoding here (Q4_0, Q4_1,
/// Q8_0 at 2048-8192 bytes alike).
const PREFETCH_AHEAD: usize = 4096;

/// Asks for the cache lines `PREFETCH_AHEAD` bytes past `w` (a hint: no
/// access is made, and addresses past the mapping are harmless).
#[inline(always)]
pub(crate) fn prefetch_ahead<W>(w: &[W]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let p = w.as_ptr().cast::<i8>().wrapping_add(PREFETCH_AHEAD);
        for off in (0..size_of_val(w)).step_by(64) {
            // SAFETY: prefetch is a hint; it never faults, whatever the address.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(off)) };
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        let p = w.as_ptr().cast::<u8>().wrapping_add(PREFETCH_AHEAD);
        for off in (0..size_of_val(w)).step_by(64) {
            // SAFETY: `prfm` is a hint; it never faults, whatever the address.
            unsafe {
                std::arch::asm!(
                    "prfm pldl1keep, [{p}]",
                    p = in(reg) p.wrapping_add(off),
                    options(nostack, preserves_flags, readonly)
                )
            };
        }
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let _ = w;
}

/// `out[t * rows + r] = dot(w row r, y row t)`; `w` holds `rows = out.len() / nt`
/// whole rows, `y` holds `nt` rows. Tokens go four at a time through the
/// tiled kernel, the remainder one at a time.
pub(super) fn tile<W, A>(w: &[W], y: &[A], nt: usize, dots: Dots<W, A>, out: &mut [f32]) {
    let rows = out.len() / nt;
    let per_row = w.len() / rows;
    let a_per_row = y.len() / nt;
    let ys = |t: usize| &y[t * a_per_row..(t + 1) * a_per_row];
    if nt == 1 {
        match dots.rows1 {
            Some(f) => f(&w[..rows * per_row], &y[..per_row], out),
            None => {
                for (o, wr) in out.iter_mut().zip(w.chunks_exact(per_row)) {
                    prefetch_ahead(wr);
                    *o = (dots.dot1)(wr, y);
                }
            }
        }
        return;
    }
    let mut t = 0;
    while t + 4 <= nt {
        let yt = [ys(t), ys(t + 1), ys(t + 2), ys(t + 3)];
        for (r, wr) in w.chunks_exact(per_row).enumerate() {
            let v = (dots.dot4)(wr, yt);
            for (j, v) in v.into_iter().enumerate() {
                out[(t + j) * rows + r] = v;
            }
        }
        t += 4;
    }
    for t in t..nt {
        for (r, wr) in w.chunks_exact(per_row).enumerate() {
            out[t * rows + r] = (dots.dot1)(wr, ys(t));
        }
    }
}

/// One product task: matrix index, first row, output slice.
type Task<'t> = (usize, usize, &'t mut [f32]);

/// Decoding's many short regions run on the spinning pool (pool.rs);
/// `Ok(false)` (nothing run) when it is switched off or busy.
fn on_pool(
    tasks: &mut [Task<'_>],
    run: &(dyn Fn(Task<'_>) -> Result<(), KernelError> + Sync),
) -> Result<bool, KernelError> {
    let failed: Mutex<Option<KernelError>> = Mutex::new(None);
    let ran = pool::for_each_mut(tasks, &|_, (i, r0, o)| {
        if let Err(e) = run((*i, *r0, &mut **o)) {
            *failed.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
        }
    });
    match failed.into_inner().unwrap_or_else(|e| e.into_inner()) {
        Some(e) => Err(e),
        None => Ok(ran),
    }
}

/// Rows per rayon task: small enough to balance, large enough to amortise.
fn rows_per_chunk(rows: usize, n_tokens: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    let target = if n_tokens == 1 { 16 } else { 4 };
    let chunk = rows.div_ceil(threads * target).clamp(1, 64);
    if n_tokens >= gemm::MIN_TOKENS {
        // Whole panels.
        chunk.next_multiple_of(gemm::PANEL_ROWS)
    } else {
        chunk
    }
}

/// Copies every task's token-major block (`spans`: matrix, first row, rows;
/// in order, each matrix's tile filled front to back) into the outputs,
/// `out[t * rows + r]`: one contiguous copy per task and token.
fn assemble(
    spans: &[(usize, usize, usize)],
    tiles: &[Vec<f32>],
    nt: usize,
    outs: &mut [&mut [f32]],
) {
    for (i, out) in outs.iter_mut().enumerate() {
        let rows = out.len() / nt;
        let tile = &tiles[i];
        let mine: Vec<(usize, usize)> = spans
            .iter()
            .filter(|s| s.0 == i)
            .map(|s| (s.1, s.2))
            .collect();
        out.par_chunks_mut(rows).enumerate().for_each(|(t, o)| {
            for &(r0, n) in &mine {
                let src = r0 * nt + t * n;
                o[r0..r0 + n].copy_from_slice(&tile[src..src + n]);
            }
        });
    }
}

#[cfg(test)]
mod tests;
