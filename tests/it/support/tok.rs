//! Tokenizer-test helpers: the default model's path by the project convention
//! and a minimal GGUF metadata reader used until the engine's reader is wired in.

use std::collections::HashMap;
use std::path::PathBuf;

use byline::engine::tokenizer::TokenizerData;

#[derive(Debug, Clone)]
pub enum Kv {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    Arr(Vec<Kv>),
}

struct Cur<'a> {
    b: &'a [u8],
    p: usize,
}

impl Cur<'_> {
    fn take(&mut self, n: usize) -> &[u8] {
        let s = &self.b[self.p..self.p + n];
        self.p += n;
        s
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take(4).try_into().unwrap())
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take(8).try_into().unwrap())
    }
    fn string(&mut self) -> String {
        let n = self.u64() as usize;
        String::from_utf8(self.take(n).to_vec()).unwrap()
    }
    fn value(&mut self, t: u32) -> Kv {
        match t {
            0 => Kv::Int(self.take(1)[0] as i64),
            1 => Kv::Int(self.take(1)[0] as i8 as i64),
            2 => Kv::Int(u16::from_le_bytes(self.take(2).try_into().unwrap()) as i64),
            3 => Kv::Int(i16::from_le_bytes(self.take(2).try_into().unwrap()) as i64),
            4 => Kv::Int(self.u32() as i64),
            5 => Kv::Int(self.u32() as i32 as i64),
            6 => Kv::Float(f32::from_le_bytes(self.take(4).try_into().unwrap()) as f64),
            7 => Kv::Bool(self.take(1)[0] != 0),
            8 => Kv::Str(self.string()),
            9 => {
                let et = self.u32();
                let n = self.u64() as usize;
                Kv::Arr((0..n).map(|_| self.value(et)).collect())
            }
            10 => Kv::Int(self.u64() as i64),
            11 => Kv::Int(self.u64() as i64),
            12 => Kv::Float(f64::from_le_bytes(self.take(8).try_into().unwrap())),
            t => panic!("gguf value type {t}"),
        }
    }
}

pub fn read_kv(path: &std::path::Path) -> HashMap<String, Kv> {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut c = Cur { b: &b, p: 0 };
    assert_eq!(c.take(4), b"GGUF");
    let _version = c.u32();
    let _n_tensors = c.u64();
    let n_kv = c.u64();
    let mut out = HashMap::new();
    for _ in 0..n_kv {
        let k = c.string();
        let t = c.u32();
        out.insert(k, c.value(t));
    }
    out
}

pub fn tokenizer_data(path: &std::path::Path) -> TokenizerData {
    let kv = read_kv(path);
    let s = |k: &str| match kv.get(k) {
        Some(Kv::Str(s)) => Some(s.clone()),
        _ => None,
    };
    let i = |k: &str| match kv.get(k) {
        Some(Kv::Int(v)) => Some(*v as u32),
        _ => None,
    };
    let b = |k: &str| match kv.get(k) {
        Some(Kv::Bool(v)) => Some(*v),
        _ => None,
    };
    let strs = |k: &str| match kv.get(k) {
        Some(Kv::Arr(a)) => a
            .iter()
            .map(|v| match v {
                Kv::Str(s) => s.clone(),
                _ => panic!("{k}"),
            })
            .collect(),
        _ => Vec::new(),
    };
    TokenizerData {
        model: s("tokenizer.ggml.model").unwrap(),
        pre: s("tokenizer.ggml.pre"),
        tokens: strs("tokenizer.ggml.tokens"),
        token_types: match kv.get("tokenizer.ggml.token_type") {
            Some(Kv::Arr(a)) => a
                .iter()
                .map(|v| match v {
                    Kv::Int(x) => *x as i32,
                    _ => panic!("token_type"),
                })
                .collect(),
            _ => Vec::new(),
        },
        scores: match kv.get("tokenizer.ggml.scores") {
            Some(Kv::Arr(a)) => a
                .iter()
                .map(|v| match v {
                    Kv::Float(x) => *x as f32,
                    _ => panic!("scores"),
                })
                .collect(),
            _ => Vec::new(),
        },
        merges: strs("tokenizer.ggml.merges"),
        bos_id: i("tokenizer.ggml.bos_token_id"),
        eos_id: i("tokenizer.ggml.eos_token_id"),
        unk_id: i("tokenizer.ggml.unknown_token_id"),
        pad_id: i("tokenizer.ggml.padding_token_id"),
        eot_id: i("tokenizer.ggml.eot_token_id"),
        add_bos: b("tokenizer.ggml.add_bos_token"),
        add_eos: b("tokenizer.ggml.add_eos_token"),
        add_space_prefix: b("tokenizer.ggml.add_space_prefix"),
    }
}

/// File name of the default model.
pub const DEFAULT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// `BYLINE_MODEL`, else `$BYLINE_MODEL_DIR`, else `$XDG_CACHE_HOME/byline/models`,
/// else `~/.cache/byline/models`, joined with the default model's file name.
pub fn default_model_path() -> PathBuf {
    if let Some(p) = std::env::var_os("BYLINE_MODEL") {
        return PathBuf::from(p);
    }
    let dir = if let Some(d) = std::env::var_os("BYLINE_MODEL_DIR") {
        PathBuf::from(d)
    } else if let Some(x) = std::env::var_os("XDG_CACHE_HOME") {
        PathBuf::from(x).join("byline").join("models")
    } else {
        let home = std::env::var_os("HOME").expect("HOME is not set");
        PathBuf::from(home)
            .join(".cache")
            .join("byline")
            .join("models")
    };
    dir.join(DEFAULT_MODEL_FILE)
}

/// The default model's path; panics (fails the test) if the file is missing.
pub fn require_default_model() -> PathBuf {
    let p = default_model_path();
    assert!(
        p.is_file(),
        "default model missing at {} (run .ci/run or `byline model fetch`)",
        p.display()
    );
    p
}
