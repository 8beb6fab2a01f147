//! The one place model code touches the GGUF reader and the kernels: typed
//! weight handles over the memory map, row-parallel matrix products, and
//! small vectors (norm weights, biases) copied out as f32.

use rayon::prelude::*;

use super::error::ModelError;
use crate::engine::gguf::GgufFile;
use crate::engine::kernels::{self, QMatrix};
use crate::engine::quant::GgmlType;

/// A weight matrix used in place from the mapping: (rows, cols), row-major
/// in ggml order (dims[0] = cols is innermost), plus an optional f32 bias.
#[derive(Debug, Clone)]
pub struct Linear<'a> {
    /// Storage type of the rows.
    pub ty: GgmlType,
    /// Output features.
    pub rows: usize,
    /// Input features.
    pub cols: usize,
    data: &'a [u8],
    bias: Option<Vec<f32>>, // (rows)
}

impl<'a> Linear<'a> {
    /// Loads `name` and checks it is (rows, cols).
    pub fn load(
        file: &'a GgufFile,
        name: &str,
        rows: usize,
        cols: usize,
    ) -> Result<Linear<'a>, ModelError> {
        let view = file
            .tensor(name)
            .map_err(|e| tensor_err(file, name, e.to_string()))?;
        let dims: Vec<u64> = view.info.dims.iter().map(|&d| d as u64).collect();
        let want = vec![cols as u64, rows as u64];
        if dims != want {
            return Err(ModelError::Shape {
                name: name.to_string(),
                got: dims,
                want,
            });
        }
        Ok(Linear {
            ty: view.info.ty,
            rows,
            cols,
            data: view.data,
            bias: None,
        })
    }

    /// Attaches a bias of `rows` values.
    pub fn with_bias(mut self, bias: Vec<f32>) -> Self {
        debug_assert_eq!(bias.len(), self.rows);
        self.bias = Some(bias);
        self
    }

    /// Bytes of weights (for bandwidth estimates).
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    fn row_bytes(&self) -> usize {
        self.data.len() / self.rows
    }

    fn sub(&self, r0: usize, r1: usize) -> QMatrix<'a> {
        let rb = self.row_bytes();
        QMatrix {
            ty: self.ty,
            rows: r1 - r0,
            cols: self.cols,
            data: &self.data[r0 * rb..r1 * rb],
        }
    }

    /// Dequantizes row `r` into `dst` (cols values): the embedding lookup.
    pub fn row(&self, r: usize, dst: &mut [f32]) {
        let rb = self.row_bytes();
        kernels::dequantize_row(self.ty, &self.data[r * rb..(r + 1) * rb], dst);
    }

    /// `out[t*rows + r] = W[r] . x[t] (+ b[r])` for `n_tokens` inputs of `cols`.
    ///
    /// One token: the rows are split into chunks, one kernel call per chunk on
    /// the rayon pool. Several tokens: the tokens are split instead, so each
    /// call is a real matrix-matrix product writing a contiguous block of `out`.
    pub fn forward(&self, x: &[f32], n_tokens: usize, out: &mut [f32]) {
        debug_assert_eq!(x.len(), n_tokens * self.cols);
        debug_assert_eq!(out.len(), n_tokens * self.rows);
        let threads = rayon::current_num_threads();
        if threads == 1 {
            kernels::matmul(&self.sub(0, self.rows), x, n_tokens, out);
        } else if n_tokens == 1 {
            let chunk = row_chunk(self.rows, threads);
            out.par_chunks_mut(chunk).enumerate().for_each(|(c, o)| {
                let r0 = c * chunk;
                kernels::matmul(&self.sub(r0, r0 + o.len()), x, 1, o);
            });
        } else {
            let per = n_tokens.div_ceil(threads * 2).max(1);
            let m = self.sub(0, self.rows);
            out.par_chunks_mut(per * self.rows)
                .zip(x.par_chunks(per * self.cols))
                .for_each(|(o, xs)| kernels::matmul(&m, xs, xs.len() / self.cols, o));
        }
        if let Some(b) = &self.bias {
            for o in out.chunks_exact_mut(self.rows) {
                for (v, bi) in o.iter_mut().zip(b) {
                    *v += bi;
                }
            }
        }
    }
}

/// Several products of the same input, e.g. q/k/v or gate/up:
/// `outs[i] = mats[i] x`. For one token all row chunks of all matrices go to
/// the pool as one parallel job, so the threads meet once instead of once per
/// matrix (decoding a small model is dominated by those meetings).
pub fn forward_group(mats: &[&Linear<'_>], x: &[f32], n_tokens: usize, outs: &mut [&mut [f32]]) {
    debug_assert_eq!(mats.len(), outs.len());
    let threads = rayon::current_num_threads();
    if n_tokens != 1 || threads == 1 {
        for (m, o) in mats.iter().zip(outs.iter_mut()) {
            m.forward(x, n_tokens, o);
        }
        return;
    }
    let total: usize = mats.iter().map(|m| m.rows).sum();
    let chunk = row_chunk(total, threads);
    let mut jobs: Vec<(&Linear<'_>, usize, &mut [f32])> =
        Vec::with_capacity(total / chunk + mats.len());
    for (m, o) in mats.iter().zip(outs.iter_mut()) {
        for (c, oc) in o.chunks_mut(chunk).enumerate() {
            jobs.push((m, c * chunk, oc));
        }
    }
    jobs.into_par_iter().for_each(|(m, r0, o)| {
        kernels::matmul(&m.sub(r0, r0 + o.len()), x, 1, o);
    });
    for (m, o) in mats.iter().zip(outs.iter_mut()) {
        if let Some(b) = &m.bias {
            for (v, bi) in o.iter_mut().zip(b) {
                *v += bi;
            }
        }
    }
}

/// Rows per parallel chunk for a matrix-vector product: a few chunks per
/// thread for balance, a multiple of 16 rows, never empty.
fn row_chunk(rows: usize, threads: usize) -> usize {
    let c = rows.div_ceil(threads * 4);
    c.div_ceil(16).max(1) * 16
}

/// Loads a small tensor of any float or quantized type as `n` f32 values.
pub fn load_vec(file: &GgufFile, name: &str, n: usize) -> Result<Vec<f32>, ModelError> {
    let view = file
        .tensor(name)
        .map_err(|e| tensor_err(file, name, e.to_string()))?;
    let count: u64 = view.info.dims.iter().map(|&d| d as u64).product();
    if count != n as u64 {
        return Err(ModelError::Shape {
            name: name.to_string(),
            got: view.info.dims.iter().map(|&d| d as u64).collect(),
            want: vec![n as u64],
        });
    }
    let mut out = vec![0.0; n];
    kernels::dequantize_row(view.info.ty, view.data, &mut out);
    Ok(out)
}

/// Whether the file has a tensor named `name`.
pub fn has(file: &GgufFile, name: &str) -> bool {
    file.tensors().iter().any(|t| t.name == name)
}

fn tensor_err(file: &GgufFile, name: &str, msg: String) -> ModelError {
    if has(file, name) {
        ModelError::Tensor {
            name: name.to_string(),
            msg,
        }
    } else {
        ModelError::MissingTensor(name.to_string())
    }
}
