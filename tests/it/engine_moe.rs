//! Mixture-of-Experts models against the tiny random fixtures of
//! `tests/data/moe/` (README there): logits of every position of every prompt
//! compared with `transformers` (F32 file) and with llama.cpp (the same
//! quantized files), top-1 at every position, greedy continuations, batched
//! prompt == token-by-token, and the expert usage counters.

use std::path::PathBuf;

use byline::engine::gguf::GgufFile;
use byline::engine::model::{Model, Outputs};
use serde_json::Value;

use crate::support::model::data;

fn dir(fixture: &str) -> PathBuf {
    data(&format!("moe/{fixture}"))
}

fn read_f32(path: &std::path::Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn load_json(path: &std::path::Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).expect("reference JSON parses")
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}

fn argmax(x: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best
}

/// What one model file did against one reference logits file.
#[derive(Debug)]
struct Stats {
    max_abs: f32,
    top1_mismatch: usize,
    positions: usize,
    greedy: Vec<Vec<u32>>, // per prompt, our argmax of the continuation rows
}

/// Runs every prompt+continuation of `fixture` through `model_file` in one
/// batch and compares every position's logits with `ref_file`.
fn measure(fixture: &str, model_file: &str, ref_file: &str) -> Stats {
    let d = dir(fixture);
    let reference = load_json(&d.join("ref.json"));
    let want = read_f32(&d.join(ref_file));
    let file = GgufFile::open(&d.join(model_file)).expect("fixture opens");
    let model = Model::load(&file).expect("fixture loads");
    assert_eq!(model.hp.n_expert, 8, "{fixture}: expert count");
    let nv = model.hp.n_vocab;
    let mut st = Stats {
        max_abs: 0.0,
        top1_mismatch: 0,
        positions: 0,
        greedy: Vec::new(),
    };
    for p in reference["prompts"].as_array().expect("prompts") {
        let prompt = ids(&p["prompt"]);
        let mut tokens = prompt.clone();
        tokens.extend(ids(&p["continuation"]));
        let off = p["logits_offset"].as_u64().expect("offset") as usize;
        let n = p["n_positions"].as_u64().expect("n_positions") as usize;
        assert_eq!(n, tokens.len());
        let mut ctx = model.context(64);
        let got = model
            .forward(&mut ctx, &tokens, Outputs::All)
            .expect("forward");
        let mut greedy = Vec::new();
        for i in 0..n {
            let g = &got[i * nv..(i + 1) * nv];
            let w = &want[off + i * nv..off + (i + 1) * nv];
            for (a, b) in g.iter().zip(w) {
                st.max_abs = st.max_abs.max((a - b).abs());
            }
            if argmax(g) != argmax(w) {
                st.top1_mismatch += 1;
            }
            st.positions += 1;
            if i + 1 >= prompt.len() && i + 1 < n {
                greedy.push(argmax(g) as u32);
            }
        }
        st.greedy.push(greedy);
    }
    st
}

fn continuations(fixture: &str) -> Vec<Vec<u32>> {
    let reference = load_json(&dir(fixture).join("ref.json"));
    reference["prompts"]
        .as_array()
        .expect("prompts")
        .iter()
        .map(|p| ids(&p["continuation"]))
        .collect()
}

/// Our own step-by-step greedy continuation of every prompt (8 tokens).
fn generate_greedy(fixture: &str, model_file: &str) -> Vec<Vec<u32>> {
    let d = dir(fixture);
    let reference = load_json(&d.join("ref.json"));
    let file = GgufFile::open(&d.join(model_file)).expect("fixture opens");
    let model = Model::load(&file).expect("fixture loads");
    let mut out = Vec::new();
    for p in reference["prompts"].as_array().expect("prompts") {
        let mut ctx = model.context(64);
        let mut next = argmax(
            model
                .forward(&mut ctx, &ids(&p["prompt"]), Outputs::Last)
                .expect("prompt"),
        ) as u32;
        let mut seq = vec![next];
        while seq.len() < 8 {
            next = argmax(
                model
                    .forward(&mut ctx, &[next], Outputs::Last)
                    .expect("step"),
            ) as u32;
            seq.push(next);
        }
        out.push(seq);
    }
    out
}

/// llama.cpp's own step-by-step greedy continuation of a quantized file.
fn llamacpp_greedy(fixture: &str, quant: &str) -> Vec<Vec<u32>> {
    let j = load_json(&dir(fixture).join("llamacpp.json"));
    j["runs"][quant]["prompts"]
        .as_array()
        .expect("prompts")
        .iter()
        .map(|p| ids(&p["greedy"]))
        .collect()
}

/// F32 file against transformers: F32 weights and compute on both sides, only
/// summation order differs (and the routing margins are >= 2e-3 by
/// construction), so every logit agrees to `F32_TOL` and every top-1 and the
/// greedy continuation are equal.
const F32_TOL: f32 = 1e-4;

fn check_f32(fixture: &str) {
    let st = measure(fixture, "model-f32.gguf", "logits-hf.f32");
    eprintln!("{fixture} f32 vs transformers: {st:?}");
    assert!(
        st.max_abs <= F32_TOL,
        "{fixture}: max abs diff {} > {F32_TOL}",
        st.max_abs
    );
    assert_eq!(st.top1_mismatch, 0, "{fixture}: top-1 differs");
    assert_eq!(st.greedy, continuations(fixture), "{fixture}: greedy");
    assert_eq!(
        generate_greedy(fixture, "model-f32.gguf"),
        continuations(fixture),
        "{fixture}: step-by-step greedy"
    );
}

/// A quantized file against llama.cpp on the same file. Both quantize the
/// activations to 8-bit blocks before the dot products, but not bit for bit
/// the same way (summation order, SIMD rounding), so logits agree to `tol`
/// (stated per fixture and type below, from measurement with headroom);
/// top-1 must be equal at every position and the greedy continuation must be
/// llama.cpp's own.
///
/// Measured (max abs over all 69 positions of the three prompts, 320 logits
/// each): q8_0 0 (qwen2moe, granitemoe) to 0.056 (mixtral); q4_0 0 (qwen3moe,
/// qwen2moe, mixtral, olmoe) to 0.042 (granitemoe).
const QUANT_TOL: f32 = 0.1;

fn check_quant(fixture: &str, quant: &str, tol: f32) {
    let st = measure(
        fixture,
        &format!("model-{quant}.gguf"),
        &format!("logits-llamacpp-{quant}.f32"),
    );
    eprintln!("{fixture} {quant} vs llama.cpp: {st:?}");
    assert!(
        st.max_abs <= tol,
        "{fixture} {quant}: max abs diff {} > {tol}",
        st.max_abs
    );
    assert_eq!(st.top1_mismatch, 0, "{fixture} {quant}: top-1 differs");
    assert_eq!(
        generate_greedy(fixture, &format!("model-{quant}.gguf")),
        llamacpp_greedy(fixture, quant),
        "{fixture} {quant}: greedy"
    );
}

/// Batched prompt processing (tokens grouped by expert) gives the logits of
/// feeding the tokens one at a time, and the usage counters add up.
fn check_batch_equals_stepwise(fixture: &str) {
    let d = dir(fixture);
    let file = GgufFile::open(&d.join("model-f32.gguf")).expect("fixture opens");
    let model = Model::load(&file).expect("fixture loads");
    let reference = load_json(&d.join("ref.json"));
    let tokens = ids(&reference["prompts"][2]["prompt"]);
    let mut ctx = model.context(64);
    let batch = model
        .forward(&mut ctx, &tokens, Outputs::All)
        .expect("forward")
        .to_vec();
    let k = model.hp.n_expert_used as u64;
    for (il, c) in ctx.expert_usage().iter().enumerate() {
        assert_eq!(c.len(), 8, "{fixture} layer {il}");
        assert_eq!(
            c.iter().sum::<u64>(),
            tokens.len() as u64 * k,
            "{fixture} layer {il}: {c:?}"
        );
        assert!(c.iter().filter(|&&x| x > 0).count() > 2, "{fixture}: {c:?}");
    }
    let mut ctx = model.context(64);
    let nv = model.hp.n_vocab;
    for (i, &t) in tokens.iter().enumerate() {
        let one = model.forward(&mut ctx, &[t], Outputs::Last).expect("step");
        for (a, b) in one.iter().zip(&batch[i * nv..(i + 1) * nv]) {
            assert!((a - b).abs() < 1e-4, "{fixture} position {i}: {a} vs {b}");
        }
    }
    ctx.reset_expert_usage();
    assert!(ctx.expert_usage().iter().flatten().all(|&c| c == 0));
}

#[test]
fn qwen3moe_f32_matches_transformers() {
    check_f32("qwen3moe");
}

#[test]
fn qwen3moe_quantized_match_llama_cpp() {
    check_quant("qwen3moe", "q8_0", QUANT_TOL);
    check_quant("qwen3moe", "q4_0", QUANT_TOL);
}

#[test]
fn qwen3moe_batch_equals_token_by_token() {
    check_batch_equals_stepwise("qwen3moe");
}

#[test]
fn qwen2moe_f32_matches_transformers() {
    check_f32("qwen2moe");
}

#[test]
fn qwen2moe_quantized_match_llama_cpp() {
    check_quant("qwen2moe", "q8_0", QUANT_TOL);
    check_quant("qwen2moe", "q4_0", QUANT_TOL);
}

#[test]
fn qwen2moe_batch_equals_token_by_token() {
    check_batch_equals_stepwise("qwen2moe");
}

#[test]
fn mixtral_f32_matches_transformers() {
    check_f32("mixtral");
}

#[test]
fn mixtral_quantized_match_llama_cpp() {
    check_quant("mixtral", "q8_0", QUANT_TOL);
    check_quant("mixtral", "q4_0", QUANT_TOL);
}

#[test]
fn mixtral_batch_equals_token_by_token() {
    check_batch_equals_stepwise("mixtral");
}

#[test]
fn olmoe_f32_matches_transformers() {
    check_f32("olmoe");
}

#[test]
fn olmoe_quantized_match_llama_cpp() {
    check_quant("olmoe", "q8_0", QUANT_TOL);
    check_quant("olmoe", "q4_0", QUANT_TOL);
}

#[test]
fn olmoe_batch_equals_token_by_token() {
    check_batch_equals_stepwise("olmoe");
}

#[test]
fn granitemoe_f32_matches_transformers() {
    check_f32("granitemoe");
}

#[test]
fn granitemoe_quantized_match_llama_cpp() {
    check_quant("granitemoe", "q8_0", QUANT_TOL);
    check_quant("granitemoe", "q4_0", QUANT_TOL);
}

#[test]
fn granitemoe_batch_equals_token_by_token() {
    check_batch_equals_stepwise("granitemoe");
}
