//! The one place model code touches the GGUF reader and the kernels: typed
//! weight handles over the memory map, row-parallel matrix products, and
//! small vectors (norm weights, biases) copied out as f32.

use super::error::ModelError;
use crate::engine::gguf::GgufFile;
use crate::engine::kernels::{self, QMatrix, Scratch};
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
        let dims: Vec<u64> = view.info.dims.clone();
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
    pub fn row(&self, r: usize, dst: &mut [f32]) -> Result<(), ModelError> {
        let rb = self.row_bytes();
        kernels::dequantize_row(self.ty, &self.data[r * rb..(r + 1) * rb], dst)
            .map_err(|e| self.err(e))
    }

    fn err(&self, e: kernels::KernelError) -> ModelError {
        ModelError::Tensor {
            name: format!("{} matrix ({} x {})", self.ty, self.rows, self.cols),
            msg: e.to_string(),
        }
    }

    /// `out[t*rows + r] = W[r] . x[t] (+ b[r])` for `n_tokens` inputs of `cols`.
    /// The kernels quantize the activations once and split rows over the
    /// rayon pool; `scratch` is reused across calls.
    pub fn forward(
        &self,
        x: &[f32],
        n_tokens: usize,
        out: &mut [f32],
        scratch: &mut Scratch,
    ) -> Result<(), ModelError> {
        forward_group(&[self], x, n_tokens, &mut [out], scratch)
    }

    fn add_bias(&self, out: &mut [f32]) {
        if let Some(b) = &self.bias {
            for o in out.chunks_exact_mut(self.rows) {
                for (v, bi) in o.iter_mut().zip(b) {
                    *v += bi;
                }
            }
        }
    }
}

impl<'a> Linear<'a> {
    /// Loads a 3-D tensor `name` of dims (cols, rows, n) as `n` matrices of
    /// (rows, cols), e.g. MLA's per-head `attn_k_b` / `attn_v_b`.
    pub fn load_slices(
        file: &'a GgufFile,
        name: &str,
        n: usize,
        rows: usize,
        cols: usize,
    ) -> Result<Vec<Linear<'a>>, ModelError> {
        let view = file
            .tensor(name)
            .map_err(|e| tensor_err(file, name, e.to_string()))?;
        let want = vec![cols as u64, rows as u64, n as u64];
        if view.info.dims != want {
            return Err(ModelError::Shape {
                name: name.to_string(),
                got: view.info.dims.clone(),
                want,
            });
        }
        let per = view.data.len() / n;
        Ok(view
            .data
            .chunks_exact(per)
            .map(|data| Linear {
                ty: view.info.ty,
                rows,
                cols,
                data,
                bias: None,
            })
            .collect())
    }
}

/// Several products of the same input, e.g. q/k/v or gate/up: `outs[i] = mats[i] x`.
/// One activation quantization and one parallel region for the whole group.
pub fn forward_group(
    mats: &[&Linear<'_>],
    x: &[f32],
    n_tokens: usize,
    outs: &mut [&mut [f32]],
    scratch: &mut Scratch,
) -> Result<(), ModelError> {
    debug_assert_eq!(mats.len(), outs.len());
    let q: Vec<QMatrix> = mats.iter().map(|m| m.sub(0, m.rows)).collect();
    kernels::matmul_many(&q, x, n_tokens, outs, scratch).map_err(|e| mats[0].err(e))?;
    for (m, o) in mats.iter().zip(outs.iter_mut()) {
        m.add_bias(o);
    }
    Ok(())
}

/// Loads a small tensor of any float or quantized type as `n` f32 values.
pub fn load_vec(file: &GgufFile, name: &str, n: usize) -> Result<Vec<f32>, ModelError> {
    let view = file
        .tensor(name)
        .map_err(|e| tensor_err(file, name, e.to_string()))?;
    let count: u64 = view.info.dims.iter().copied().product();
    if count != n as u64 {
        return Err(ModelError::Shape {
            name: name.to_string(),
            got: view.info.dims.iter().copied().collect(),
            want: vec![n as u64],
        });
    }
    let mut out = vec![0.0; n];
    kernels::dequantize_row(view.info.ty, view.data, &mut out).map_err(|e| ModelError::Tensor {
        name: name.to_string(),
        msg: e.to_string(),
    })?;
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

/// A 3-D expert tensor used in place from the mapping: `n_expert` stacked
/// (rows, cols) matrices (ggml dims [cols, rows, n_expert]). An expert is a
/// byte range of the mapping; nothing is copied.
#[derive(Debug, Clone)]
pub struct Experts<'a> {
    /// Storage type.
    pub ty: GgmlType,
    /// Number of experts.
    pub n_expert: usize,
    /// Output features of one expert.
    pub rows: usize,
    /// Input features of one expert.
    pub cols: usize,
    data: &'a [u8],
}

impl<'a> Experts<'a> {
    /// Loads `name` and checks it is (n_expert, rows, cols).
    pub fn load(
        file: &'a GgufFile,
        name: &str,
        n_expert: usize,
        rows: usize,
        cols: usize,
    ) -> Result<Experts<'a>, ModelError> {
        let view = file
            .tensor(name)
            .map_err(|e| tensor_err(file, name, e.to_string()))?;
        let want = vec![cols as u64, rows as u64, n_expert as u64];
        if view.info.dims != want {
            return Err(ModelError::Shape {
                name: name.to_string(),
                got: view.info.dims.clone(),
                want,
            });
        }
        let ty = view.info.ty;
        let bs = ty.block_size();
        if !cols.is_multiple_of(bs)
            || view.data.len() != n_expert * rows * cols / bs * ty.type_size()
        {
            return Err(ModelError::Tensor {
                name: name.to_string(),
                msg: format!(
                    "{} bytes do not hold {n_expert} x {rows} rows of {cols} {ty} values",
                    view.data.len()
                ),
            });
        }
        Ok(Experts {
            ty,
            n_expert,
            rows,
            cols,
            data: view.data,
        })
    }

    /// Expert `e` as a matrix borrowing its rows of the mapping.
    pub fn expert(&self, e: usize) -> Linear<'a> {
        let per = self.data.len() / self.n_expert;
        Linear {
            ty: self.ty,
            rows: self.rows,
            cols: self.cols,
            data: &self.data[e * per..(e + 1) * per],
            bias: None,
        }
    }

    /// Bytes of one expert.
    pub fn expert_bytes(&self) -> usize {
        self.data.len() / self.n_expert
    }

    /// Bytes of all experts.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }
}
