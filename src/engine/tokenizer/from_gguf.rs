//! Reading [`TokenizerData`] from a GGUF file's `tokenizer.ggml.*` metadata.

use super::{Tokenizer, TokenizerData, TokenizerError};
use crate::engine::gguf::{GgufFile, Value};

fn meta_err(key: &str, message: impl Into<String>) -> TokenizerError {
    TokenizerError::Metadata {
        key: key.to_string(),
        message: message.into(),
    }
}

fn opt_str(f: &GgufFile, key: &str) -> Result<Option<String>, TokenizerError> {
    match f.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_str()
            .map(|s| Some(s.to_string()))
            .ok_or_else(|| meta_err(key, "is not a string")),
    }
}

fn opt_id(f: &GgufFile, key: &str) -> Result<Option<u32>, TokenizerError> {
    match f.get(key) {
        None => Ok(None),
        // llama.cpp writes -1 (as u32::MAX or a negative int) for "none".
        Some(v) => match v.as_i64() {
            Some(i) if i < 0 || i == u32::MAX as i64 => Ok(None),
            Some(i) => u32::try_from(i)
                .map(Some)
                .map_err(|_| meta_err(key, format!("is {i}, limit is {}", u32::MAX))),
            None => Err(meta_err(key, "is not an integer")),
        },
    }
}

fn opt_bool(f: &GgufFile, key: &str) -> Result<Option<bool>, TokenizerError> {
    match f.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_bool()
            .map(Some)
            .ok_or_else(|| meta_err(key, "is not a bool")),
    }
}

fn array<'a>(f: &'a GgufFile, key: &str) -> Result<Option<&'a [Value]>, TokenizerError> {
    match f.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_array()
            .map(Some)
            .ok_or_else(|| meta_err(key, "is not an array")),
    }
}

fn strings(f: &GgufFile, key: &str) -> Result<Vec<String>, TokenizerError> {
    let Some(a) = array(f, key)? else {
        return Ok(Vec::new());
    };
    a.iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| meta_err(key, format!("entry {i} is not a string")))
        })
        .collect()
}

impl TokenizerData {
    /// Reads the `tokenizer.ggml.*` keys of a GGUF file.
    pub fn from_gguf(f: &GgufFile) -> Result<TokenizerData, TokenizerError> {
        let model = opt_str(f, "tokenizer.ggml.model")?
            .ok_or_else(|| meta_err("tokenizer.ggml.model", "is missing"))?;
        let tokens = strings(f, "tokenizer.ggml.tokens")?;
        let token_types = match array(f, "tokenizer.ggml.token_type")? {
            None => Vec::new(),
            Some(a) => a
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_i64()
                        .and_then(|x| i32::try_from(x).ok())
                        .ok_or_else(|| {
                            meta_err(
                                "tokenizer.ggml.token_type",
                                format!("entry {i} is not an i32"),
                            )
                        })
                })
                .collect::<Result<_, _>>()?,
        };
        let scores = match array(f, "tokenizer.ggml.scores")? {
            None => Vec::new(),
            Some(a) => a
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_f32().ok_or_else(|| {
                        meta_err(
                            "tokenizer.ggml.scores",
                            format!("entry {i} is not a number"),
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        Ok(TokenizerData {
            model,
            pre: opt_str(f, "tokenizer.ggml.pre")?,
            tokens,
            token_types,
            scores,
            merges: strings(f, "tokenizer.ggml.merges")?,
            bos_id: opt_id(f, "tokenizer.ggml.bos_token_id")?,
            eos_id: opt_id(f, "tokenizer.ggml.eos_token_id")?,
            unk_id: opt_id(f, "tokenizer.ggml.unknown_token_id")?,
            pad_id: opt_id(f, "tokenizer.ggml.padding_token_id")?,
            eot_id: opt_id(f, "tokenizer.ggml.eot_token_id")?,
            add_bos: opt_bool(f, "tokenizer.ggml.add_bos_token")?,
            add_eos: opt_bool(f, "tokenizer.ggml.add_eos_token")?,
            add_space_prefix: opt_bool(f, "tokenizer.ggml.add_space_prefix")?,
        })
    }
}

impl Tokenizer {
    /// Builds the tokenizer described by a GGUF file's metadata.
    pub fn from_gguf(f: &GgufFile) -> Result<Tokenizer, TokenizerError> {
        Tokenizer::new(TokenizerData::from_gguf(f)?)
    }
}
