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

/// F32 weights, F32 compute: the residual stream after the dense MLA blocks
/// equals transformers' to float rounding. A wrong rope style, split, norm,
/// score scale or latent cache moves it by whole units.
const DENSE_TOL: f32 = 1e-4;

#[test]
fn dense_mla_blocks_match_transformers_hidden_states() {
    for fixture in FIXTURES {
        let meta = json(dir(fixture).join("hidden-hf-dense.json"));
        let want = f32s(dir(fixture).join("hidden-hf-dense.f32"));
        let layers: Vec<i32> = meta["layers"]
            .as_array()
            .expect("layers")
            .iter()
            .map(|x| x.as_i64().expect("layer") as i32)
            .collect();
        let n_embd = meta["n_embd"].as_u64().expect("n_embd") as usize;
        let file = GgufFile::open(&dir(fixture).join("model-f32.gguf")).expect("opens");
        let model = Deepseek2::load(&file).expect("loads");
        let mut worst = 0.0f32;
        for (pi, (seq, _, _)) in sequences(fixture).iter().enumerate() {
            let got: Arc<Mutex<Vec<(i32, Vec<f32>)>>> = Arc::default();
            let sink = got.clone();
            let mut ctx = model.context(64);
            ctx.set_trace(Some(Box::new(move |name, il, v| {
                if name == "l_out" {
                    sink.lock().unwrap().push((il, v.to_vec()));
                }
            })));
            // Runs the whole model; MoE layers are not checked here.
            let _ = model.forward(&mut ctx, seq, Outputs::All);
            let got = got.lock().unwrap();
            let mut off = meta["offsets"][pi].as_u64().expect("offset") as usize;
            for &il in &layers {
                let ours = &got.iter().find(|(l, _)| *l == il).expect("layer traced").1;
                let n = seq.len() * n_embd;
                let theirs = &want[off..off + n];
                off += n;
                for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
                    let diff = (a - b).abs();
                    worst = worst.max(diff);
                    assert!(
                        diff <= DENSE_TOL * (1.0 + b.abs()),
                        "{fixture} prompt {pi} layer {il} position {} dim {}: {a} vs {b}",
                        i / n_embd,
                        i % n_embd
                    );
                }
            }
        }
        eprintln!("{fixture}: dense blocks max abs diff {worst:.2e}");
    }
}
