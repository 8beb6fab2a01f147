//! Errors from loading and running a model.

use thiserror::Error;

use crate::engine::arch::ARCHES;

/// Every architecture [`super::Model::load`] runs, comma-separated.
fn supported() -> String {
    let names: Vec<&str> = ARCHES.iter().map(|a| a.name()).collect();
    names.join(", ")
}

/// Why a model could not be loaded or run.
#[derive(Debug, Error)]
pub enum ModelError {
    /// `general.architecture` names something this engine does not run.
    #[error("unsupported architecture {0:?}, expected one of {expected}", expected = supported())]
    UnsupportedArch(String),
    /// A required metadata key is missing or has the wrong type.
    #[error("metadata key {key} is missing or not {want}")]
    MissingKey { key: String, want: &'static str },
    /// A metadata value is outside what the model code can handle.
    #[error("metadata {key} = {value} is invalid: {why}")]
    BadValue {
        key: String,
        value: String,
        why: &'static str,
    },
    /// A required tensor is missing.
    #[error("tensor {0} is missing")]
    MissingTensor(String),
    /// A tensor has a shape the hyperparameters do not predict.
    #[error("tensor {name} has dims {got:?}, expected {want:?}")]
    Shape {
        name: String,
        got: Vec<u64>,
        want: Vec<u64>,
    },
    /// The GGUF reader or a kernel refused a tensor.
    #[error("tensor {name}: {msg}")]
    Tensor { name: String, msg: String },
    /// A token id is not in the vocabulary.
    #[error("token id {id} is out of range, vocabulary has {n_vocab} entries")]
    TokenOutOfRange { id: u32, n_vocab: usize },
    /// The context window is full.
    #[error("context is full: {used} positions used + {adding} new > {n_ctx}")]
    ContextFull {
        used: usize,
        adding: usize,
        n_ctx: usize,
    },
}
