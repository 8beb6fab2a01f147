//! The model-path convention shared by the engine tests: `BYLINE_MODEL`
//! overrides the default model file; models live in `$BYLINE_MODEL_DIR`, else
//! `$XDG_CACHE_HOME/byline/models`, else `~/.cache/byline/models`.

use std::path::PathBuf;

/// File name of the default model (SmolLM2-135M-Instruct, Q4_1).
pub const DEFAULT_MODEL: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// The directory models are kept in.
pub fn model_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("BYLINE_MODEL_DIR") {
        return PathBuf::from(d);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache")
        });
    cache.join("byline").join("models")
}

/// The default model; panics (fails the test) with the fix if it is missing.
pub fn default_model() -> PathBuf {
    let p = std::env::var_os("BYLINE_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| model_dir().join(DEFAULT_MODEL));
    assert!(
        p.is_file(),
        "default model missing at {}\n\nrun tools/fetch_default_model.sh (or `byline model fetch`)",
        p.display()
    );
    p
}

/// A model file in the model directory that the `#[ignore]`d tests need; panics
/// with how to make it if missing.
pub fn model_in_dir(name: &str) -> PathBuf {
    let p = model_dir().join(name);
    assert!(
        p.is_file(),
        "{} missing\n\nmake it with: /work/venv/bin/python tools/ref_logits.py --quantize",
        p.display()
    );
    p
}

/// A file under `tests/data/`.
pub fn data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}
