//! The `deepseek2` architecture (MLA + shared-expert MoE) against the tiny
//! random fixtures in `tests/data/moe/{deepseek2,deepseek2-lite,deepseek2-v3}`
//! (see that directory's README): transformers' residual stream after the
//! leading dense blocks (`hidden-hf-dense.f32`, from
//! `tools/ref_deepseek2_hidden.py`), which checks MLA without any MoE code;
//! then whole-model logits at every position against transformers (F32) and
//! against llama.cpp and dequantized transformers (Q8_0, Q4_0), and greedy
//! decoding through the latent KV cache.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use byline::engine::gguf::GgufFile;
use byline::engine::model::deepseek2::Deepseek2;
use byline::engine::model::{Model, Outputs};
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

    got.lock().unwrap().clone()
}

/// Compares the dense blocks' output of `model-<ty>.gguf` with transformers
/// run on that file's dequantized weights; returns the worst per-position
/// max abs difference relative to the reference row's RMS.
fn check_dense(fixture: &str, ty: &str, tol: f32) -> f32 {
    let reference = match ty {
        "f32" | "f32-kvb" => "hidden-hf-dense.f32".to_string(),
        q => format!("hidden-hf-dense-dequant-{q}.f32"),
    };
    let meta = json(dir(fixture).join("hidden-hf-dense.json"));
    let want = f32s(dir(fixture).join(reference));
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

/// The legacy unsplit `attn_kv_b` layout (`tools/make_deepseek2_kvb.py`,
/// which llama.cpp also loads) gives the same hidden states as the split one.
#[test]
fn legacy_kv_b_files_run_like_split_ones() {
    check_dense("deepseek2", "f32-kvb", DENSE_TOL_F32);
}

#[test]
fn dense_mla_blocks_of_quantized_files_match_dequantized_transformers() {
    for fixture in FIXTURES {
        for ty in ["q8_0", "q4_0"] {
            check_dense(fixture, ty, DENSE_TOL_QUANT);
        }
    }
}

/// The latent KV cache: the dense blocks' output for a token decoded one at
/// a time after a batched prompt equals the output of the whole sequence in
/// one batch.
#[test]
fn decoding_through_the_latent_cache_equals_one_batch() {
    for fixture in FIXTURES {
        let file = GgufFile::open(&dir(fixture).join("model-f32.gguf")).expect("opens");
        let model = Deepseek2::load(&file).expect("loads");
        let n_dense = model.ds.n_dense as i32;
        let d = model.hp.n_embd;
        let (seq, n_prompt, _) = sequences(fixture).remove(0);
        let batch = dense_hidden(&model, &seq);
        let last = |h: &[(i32, Vec<f32>)]| h.iter().find(|(l, _)| *l == n_dense - 1).cloned();
        let whole = last(&batch).expect("traced").1;
        let got: Arc<Mutex<Vec<Vec<f32>>>> = Arc::default();
        let sink = got.clone();
        let mut ctx = model.context(64);
        ctx.set_trace(Some(Box::new(move |name, il, v| {
            if name == "l_out" && il == n_dense - 1 {
                sink.lock().unwrap().push(v.to_vec());
            }
        })));
        let _ = model.forward(&mut ctx, &seq[..n_prompt], Outputs::Last);
        // A failing MoE block leaves the cache unadvanced; advance by the prompt.
        for (i, &tok) in seq[n_prompt..].iter().enumerate() {
            if ctx.cache.len() != n_prompt + i {
                break;
            }
            let _ = model.forward(&mut ctx, &[tok], Outputs::Last);
        }
        let got = got.lock().unwrap();
        assert!(got.len() > 1, "{fixture}: decode steps ran");
        for (step, row) in got.iter().skip(1).enumerate() {
            let t = n_prompt + step;
            let want = &whole[t * d..(t + 1) * d];
            for (a, b) in row.iter().zip(want) {
                assert!((a - b).abs() < 1e-4, "{fixture} position {t}: {a} vs {b}");
            }
        }
    }
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

fn top2_margin(x: &[f32]) -> f32 {
    let a = argmax(x);
    let b = x
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != a)
        .map(|(_, &v)| v)
        .fold(f32::NEG_INFINITY, f32::max);
    x[a] - b
}

/// F32 file, F32 compute, against transformers' logits: float rounding only
/// (llama.cpp itself is within 1e-5 of them). Logits are O(1)-O(10).
const LOGITS_TOL_F32: f32 = 1e-3;

/// Quantized files against llama.cpp's logits on the same file and against
/// transformers on that file's dequantized weights. Those two references
/// differ from each other by up to 0.17 per position (README: llama.cpp rounds
/// activations to Q8_0, and to F16 before the F16 MLA tensors); the engine
/// rounds activations like ggml but keeps F32 for F16 weights and sums in its
/// own order, and sits between them: measured max 0.130 from llama.cpp and
/// 0.134 from the dequantized reference (deepseek2-lite, 26 layers), 0.07-0.10
/// on the 2-layer fixtures. A wrong expert, a wrong group or a wrong slice
/// moves logits by whole units.
const LOGITS_TOL_QUANT: f32 = 0.2;

/// Largest logit difference allowed between the cached decode (dot kernels)
/// and one batch over the same tokens (8-row panels for 16+ tokens): both
/// exact in their integer sums, they add the f32 block products in different
/// orders. Measured up to 0.035 on these fixtures (Q8_0).
const PATH_TOL: f32 = 0.05;

/// Top-1 must equal the reference's unless the reference's own top-2 margin
/// is below this (measured: every disagreement is at a margin below 0.03).
const TIE: f32 = 0.05;

const VOCAB: usize = 320;

/// Whole-sequence logits (one batch, every position) against the reference:
/// max abs diff within `tol`, top-1 equal except at reference near-ties.
fn check_logits(fixture: &str, ty: &str, reference: &str, tol: f32) {
    let file = GgufFile::open(&dir(fixture).join(format!("model-{ty}.gguf"))).expect("opens");
    let model = Deepseek2::load(&file).expect("loads");
    compare_logits(fixture, ty, reference, tol, |seq| {
        let mut ctx = model.context(64);
        model
            .forward(&mut ctx, seq, Outputs::All)
            .expect("forward")
            .to_vec()
    });
}

/// Every position's logits from `run(sequence)` against `reference`.
fn compare_logits(
    fixture: &str,
    ty: &str,
    reference: &str,
    tol: f32,
    mut run: impl FnMut(&[u32]) -> Vec<f32>,
) {
    let want = f32s(dir(fixture).join(reference));
    let mut worst = 0.0f32;
    for (pi, (seq, _, off)) in sequences(fixture).iter().enumerate() {
        let got = run(seq);
        for (t, (a, b)) in got
            .chunks_exact(VOCAB)
            .zip(want[*off..off + seq.len() * VOCAB].chunks_exact(VOCAB))
            .enumerate()
        {
            let diff = a
                .iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0f32, f32::max);
            worst = worst.max(diff);
            assert!(
                diff <= tol,
                "{fixture} {ty} prompt {pi} position {t}: max |diff| {diff} vs {reference} (tolerance {tol})"
            );
            if top2_margin(b) >= TIE {
                assert_eq!(
                    argmax(a),
                    argmax(b),
                    "{fixture} {ty} prompt {pi} position {t}: top-1 differs from {reference}"
                );
            }
        }
    }
    eprintln!("{fixture} {ty}: logits max |diff| {worst:.2e} vs {reference} (tolerance {tol})");
}

#[test]
fn f32_logits_match_transformers_at_every_position() {
    for fixture in FIXTURES {
        check_logits(fixture, "f32", "logits-hf.f32", LOGITS_TOL_F32);
    }
    check_logits("deepseek2", "f32-kvb", "logits-hf.f32", LOGITS_TOL_F32);
}

/// The path every command takes (`Model::load`, `Model::context`,
/// `Model::forward`: `byline generate`, answers, `byline bench engine`) runs
/// deepseek2 files: the same logits as the references, the MoE blocks' usage
/// counters count `n_expert_used` experts per token and the dense blocks none,
/// and the byte accounting covers the experts.
#[test]
fn model_load_runs_deepseek2_files_like_every_cli_path() {
    for fixture in FIXTURES {
        for (ty, reference, tol) in [
            ("f32", "logits-hf.f32", LOGITS_TOL_F32),
            ("q4_0", "logits-llamacpp-q4_0.f32", LOGITS_TOL_QUANT),
        ] {
            let path = dir(fixture).join(format!("model-{ty}.gguf"));
            let file = GgufFile::open(&path).expect("opens");
            let model = Model::load(&file).expect("Model::load runs deepseek2");
            assert_eq!(model.hp.arch.name(), "deepseek2");
            let n_dense = Deepseek2::load(&file).expect("loads").ds.n_dense;
            let k = model.hp.n_expert_used as u64;
            assert!(k >= 1, "{fixture}: experts used per token");
            compare_logits(fixture, ty, reference, tol, |seq| {
                let mut ctx = model.context(64);
                let logits = model
                    .forward(&mut ctx, seq, Outputs::All)
                    .expect("forward")
                    .to_vec();
                let usage = ctx.expert_usage();
                assert_eq!(usage.len(), model.hp.n_layer, "{fixture}: a row per layer");
                for (il, row) in usage.iter().enumerate() {
                    if il < n_dense {
                        assert!(row.is_empty(), "{fixture} layer {il} is dense");
                    } else {
                        let routed: u64 = row.iter().sum();
                        assert_eq!(routed, k * seq.len() as u64, "{fixture} layer {il}");
                    }
                }
                logits
            });
            assert!(
                model.experts().count() > 0,
                "{fixture}: expert tensors listed"
            );
            let expert_bytes: usize = model.experts().map(|e| e.bytes()).sum();
            let (active, total) = (model.bytes_per_token(), model.total_bytes());
            assert!(
                active < total && expert_bytes < total,
                "{fixture} {ty}: active {active}, experts {expert_bytes}, total {total}"
            );
            let file_len = std::fs::metadata(&path).expect("stat").len() as usize;
            assert!(
                total <= file_len,
                "{fixture} {ty}: {total} > file {file_len}"
            );
        }
    }
}

/// A file of an architecture no block runs is refused with every supported
/// architecture named.
#[test]
fn an_unsupported_architecture_is_refused_naming_every_supported_one() {
    use byline::engine::gguf::{Value as GgufValue, write::gguf};
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("mamba.gguf");
    let image = gguf(
        &[("general.architecture", GgufValue::String("mamba".into()))],
        &[],
    );
    std::fs::write(&path, image).expect("write");
    let file = GgufFile::open(&path).expect("opens");
    let err = Model::load(&file)
        .expect_err("mamba is not run")
        .to_string();
    assert!(err.contains("\"mamba\""), "{err}");
    for arch in byline::engine::arch::ARCHES {
        assert!(err.contains(arch.name()), "{err} lacks {}", arch.name());
    }
    for name in ["qwen3moe", "deepseek2", "granitemoe", "llama"] {
        assert!(err.contains(name), "{err}");
    }
}

#[test]
fn quantized_logits_match_llama_cpp_and_dequantized_transformers_at_every_position() {
    for fixture in FIXTURES {
        for ty in ["q8_0", "q4_0"] {
            let llama = format!("logits-llamacpp-{ty}.f32");
            check_logits(fixture, ty, &llama, LOGITS_TOL_QUANT);
            let dequant = format!("logits-hf-dequant-{ty}.f32");
            check_logits(fixture, ty, &dequant, LOGITS_TOL_QUANT);
        }
    }
}

/// Greedy decoding through the latent KV cache (prompt in one batch, then one
/// token per step). F32: exactly transformers' continuation. Quantized:
/// llama.cpp's own step-by-step greedy run on the same file, up to a step where
/// the two choices are within `2 * LOGITS_TOL_QUANT` in our own logits (a
/// near-tie the measured logit differences can flip; the references
/// themselves split there: see dequant.json); comparison stops at such a
/// step. In every case the cached steps must pick what one batch over prompt +
/// continuation picks (the cache changes nothing), up to a flip at a near-tie
/// within `PATH_TOL` for quantized files.
#[test]
fn greedy_continuations_match_the_references() {
    let mut diverged = Vec::new();
    for fixture in FIXTURES {
        let lc = json(dir(fixture).join("llamacpp.json"));
        let r = json(dir(fixture).join("ref.json"));
        for ty in ["f32", "q8_0", "q4_0"] {
            let file =
                GgufFile::open(&dir(fixture).join(format!("model-{ty}.gguf"))).expect("opens");
            let model = Deepseek2::load(&file).expect("loads");
            for (pi, p) in r["prompts"].as_array().expect("prompts").iter().enumerate() {
                let prompt = ids(&p["prompt"]);
                let (got, steps) = greedy_with_logits(&model, &prompt, 8);
                // The cache changes nothing: one batch picks the same tokens.
                let mut seq = prompt.clone();
                seq.extend(&got);
                let mut ctx = model.context(64);
                let all = model
                    .forward(&mut ctx, &seq, Outputs::All)
                    .expect("batch")
                    .to_vec();
                for (i, &tok) in got.iter().enumerate() {
                    let row = &all[(prompt.len() - 1 + i) * VOCAB..][..VOCAB];
                    let best = argmax(row);
                    // A batch of 16+ tokens runs the panel kernels, whose f32
                    // summation order differs from the decode dots: only a
                    // near-tie within that difference may flip.
                    let gap = row[best] - row[tok as usize];
                    assert!(
                        best as u32 == tok || (ty != "f32" && gap <= PATH_TOL),
                        "{fixture} {ty} prompt {pi} step {i}: cached decode picks {tok}, one batch {best} (by {gap})"
                    );
                }
                if ty == "f32" {
                    assert_eq!(
                        got,
                        ids(&p["continuation"]),
                        "{fixture} f32 prompt {pi}: greedy continuation"
                    );
                    continue;
                }
                let want = ids(&lc["runs"][ty]["prompts"][pi]["greedy"]);
                for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
                    if g != w {
                        let gap = steps[i][g as usize] - steps[i][w as usize];
                        assert!(
                            gap <= 2.0 * LOGITS_TOL_QUANT,
                            "{fixture} {ty} prompt {pi} step {i}: got {g}, llama.cpp {w}, our logit gap {gap} is no near-tie"
                        );
                        diverged.push(format!(
                            "{fixture} {ty} prompt {pi} step {i} (gap {gap:.3})"
                        ));
                        break;
                    }
                }
            }
        }
    }
    eprintln!("near-tie divergences from llama.cpp's greedy run: {diverged:?}");
}

/// Greedy decoding through the cache; also returns each step's logits.
fn greedy_with_logits(model: &Deepseek2, prompt: &[u32], n: usize) -> (Vec<u32>, Vec<Vec<f32>>) {
    let mut ctx = model.context(64);
    let mut logits = model
        .forward(&mut ctx, prompt, Outputs::Last)
        .expect("prompt")
        .to_vec();
    let (mut out, mut steps) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let id = argmax(&logits) as u32;
        out.push(id);
        steps.push(logits);
        logits = model
            .forward(&mut ctx, &[id], Outputs::Last)
            .expect("step")
            .to_vec();
    }
    (out, steps)
}
