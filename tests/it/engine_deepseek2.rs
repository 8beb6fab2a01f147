//! The `deepseek2` architecture (MLA + shared-expert MoE) against the tiny
//! random fixtures in `tests/data/moe/{deepseek2,deepseek2-lite,deepseek2-v3}`
//! (see that directory's README): transformers' residual stream after the
//! leading dense blocks (`hidden-hf-dense.f32`, from
//! `tools/ref_deepseek2_hidden.py`), which checks MLA without any MoE code.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use byline::engine::gguf::GgufFile;
use byline::engine::model::Outputs;
use byline::engine::model::deepseek2::Deepseek2;
use serde_json::Value;

use crate::support::model::data;

const FIXTURES: [&str; 3] = ["deepseek2", "deepseek2-lite", "deepseek2-v3"];

fn dir(fixture: &str) -> PathBuf {
    data(&format!("moe/{fixture}"))
}

fn json(path: PathBuf) -> Value {
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).expect("reference JSON parses")
}

fn f32s(path: PathBuf) -> Vec<f32> {
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}

/// Prompt + continuation of each reference prompt, with its logits offset.
fn sequences(fixture: &str) -> Vec<(Vec<u32>, usize, usize)> {
    let r = json(dir(fixture).join("ref.json"));
    r["prompts"]
        .as_array()
        .expect("prompts")
        .iter()
        .map(|p| {
            let prompt = ids(&p["prompt"]);
            let mut seq = prompt.clone();
            seq.extend(ids(&p["continuation"]));
            (
                seq,
                prompt.len(),
                p["logits_offset"].as_u64().expect("offset") as usize,
            )
        })
        .collect()
}

/// Residual stream after the dense blocks, per traced layer, for each prompt.
fn dense_hidden(model: &Deepseek2, seq: &[u32]) -> Vec<(i32, Vec<f32>)> {
    let got: Arc<Mutex<Vec<(i32, Vec<f32>)>>> = Arc::default();
    let sink = got.clone();
    let mut ctx = model.context(64);
    ctx.set_trace(Some(Box::new(move |name, il, v| {
        if name == "l_out" {
            sink.lock().unwrap().push((il, v.to_vec()));
        }
    })));
    // Runs the whole model; only the dense blocks are compared here.
    let _ = model.forward(&mut ctx, seq, Outputs::All);
    let out = got.lock().unwrap().clone();
    out
}

/// Compares the dense blocks' output of `model-<ty>.gguf` with transformers
/// run on that file's dequantized weights; returns the worst per-position
/// max abs difference relative to the reference row's RMS.
fn check_dense(fixture: &str, ty: &str, tol: f32) -> f32 {
    let meta = json(dir(fixture).join("hidden-hf-dense.json"));
    let want = f32s(dir(fixture).join(match ty {
        "f32" => "hidden-hf-dense.f32".to_string(),
        q => format!("hidden-hf-dense-dequant-{q}.f32"),
    }));
    let layers: Vec<i32> = meta["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|x| x.as_i64().expect("layer") as i32)
        .collect();
    let n_embd = meta["n_embd"].as_u64().expect("n_embd") as usize;
    let file = GgufFile::open(&dir(fixture).join(format!("model-{ty}.gguf"))).expect("opens");
    let model = Deepseek2::load(&file).expect("loads");
    let mut worst = 0.0f32;
    for (pi, (seq, _, _)) in sequences(fixture).iter().enumerate() {
        let got = dense_hidden(&model, seq);
        let mut off = meta["offsets"][pi].as_u64().expect("offset") as usize;
        for &il in &layers {
            let ours = &got.iter().find(|(l, _)| *l == il).expect("layer traced").1;
            let n = seq.len() * n_embd;
            let theirs = &want[off..off + n];
            off += n;
            // Per position: max |diff| relative to the reference row's RMS.
            for (t, (a, b)) in ours
                .chunks_exact(n_embd)
                .zip(theirs.chunks_exact(n_embd))
                .enumerate()
            {
                let rms = (b.iter().map(|x| x * x).sum::<f32>() / n_embd as f32).sqrt();
                let diff = a
                    .iter()
                    .zip(b)
                    .map(|(x, y)| (x - y).abs())
                    .fold(0.0f32, f32::max)
                    / rms;
                worst = worst.max(diff);
                assert!(
                    diff <= tol,
                    "{fixture} {ty} prompt {pi} layer {il} position {t}: max |diff| / rms = {diff} (tolerance {tol})"
                );
            }
        }
    }
    eprintln!("{fixture} {ty}: dense blocks max |diff| / row rms {worst:.2e} (tolerance {tol})");
    worst
}

/// F32 weights, F32 compute: the residual stream after the dense MLA blocks
/// equals transformers' to float rounding (values are O(1)). A wrong rope
/// style, split, norm, score scale or latent cache moves it by whole units.
const DENSE_TOL_F32: f32 = 1e-4;

/// Quantized files: the engine rounds activations to Q8_0 blocks before Q8_0 /
/// Q4_0 products as ggml does, while the reference computes in F32 with the
/// dequantized weights. Measured worst, relative to the row RMS: 0.035
/// (2 layers) and 0.082 (deepseek2-lite, 24 layers), the same for Q8_0 and
/// Q4_0, so it is the activation rounding, not the weights; a wrong layout of
/// a quantized or F16 per-head slice is off by the whole row (ratio ~1).
const DENSE_TOL_QUANT: f32 = 0.15;

#[test]
fn dense_mla_blocks_match_transformers_hidden_states() {
    for fixture in FIXTURES {
        check_dense(fixture, "f32", DENSE_TOL_F32);
    }
}

#[test]
fn dense_mla_blocks_of_quantized_files_match_dequantized_transformers() {
    for fixture in FIXTURES {
        for ty in ["q8_0", "q4_0"] {
            check_dense(fixture, ty, DENSE_TOL_QUANT);
        }
    }
}
