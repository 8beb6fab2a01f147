//! Forward pass against llama.cpp: logits of the default model (and its
//! requantized versions) for a dozen prompts, a 64-token greedy continuation,
//! and full logits of tiny random-weight qwen2 / qwen3 fixtures. The reference
//! files come from `tools/ref_logits.py` and `tools/make_tiny_fixtures.py`.

use std::path::Path;

use byline::engine::gguf::GgufFile;
use byline::engine::model::{Model, ModelError, Outputs};
use serde_json::Value;

use crate::support::model::{data, default_model, model_in_dir};

/// Per-quant-type tolerance on the top-10 logits of the last position (max
/// absolute difference, in logits of typical magnitude 15-35).
///
/// Why not tighter: llama.cpp rounds activations to 8-bit blocks (Q8_0/Q8_1/Q8_K)
/// before every quantized dot product, stores K and V as f16, and sums in a
/// different order; the engine's kernels make their own (equally valid)
/// rounding choices. Thirty layers of that compound to a few tenths of a logit
/// at most. A wrong rope, norm, mask or weight layout moves logits by whole units
/// and flips the top-1, which the test checks exactly.
/// Largest top-10 logit difference accepted, per quant type. This 30-layer
/// model amplifies the last bits of f32 summation order to tenths of a logit:
/// the worst case over the twelve prompts (f16-KV references), measured with
/// three equally valid orders of our arithmetic (prompts through the dot
/// kernels; through the 8-row panels, the current code; panels plus an
/// attention that sums q·k in another order, tried and not kept):
/// Q4_1 0.41 / 0.43 / 0.36, Q8_0 0.57 / 0.67 / 0.75, Q4_0 0.72 / 0.72 / 0.72,
/// Q4_K_M 1.02 / 0.58 / 0.71. For scale: llama.cpp itself moves these logits
/// by up to 0.56 (Q8_0) and flips a top-1 (Q4_0 `list`) when only its K/V
/// cache precision changes from f16 to f32 (`tools/ref_logits.py --kv-f32`).
/// The default model (Q4_1, run in CI) keeps 0.75; the requantized files,
/// whose spread reaches 0.75 and 1.02, get 1.1.
fn tolerance(quant: &str) -> f32 {
    match quant {
        "Q4_1" => 0.75,
        _ => 1.1,
    }
}

/// Our top-1 may differ from llama.cpp's only when llama.cpp itself scores
/// our choice within this much of its own top-1 (a near-tie of the reference,
/// smaller than the 0.56 llama.cpp moves by itself between KV precisions).
/// One case uses it: Q4_0 `capital`, a three-way tie in llama.cpp (14.85,
/// 14.69, 14.40) where our top-1 is its third.
const TOP1_NEAR_TIE: f32 = 0.5;

/// The greedy continuation may leave llama.cpp's only where llama.cpp's own
/// top-2 margin is below this (a near-tie both engines can break either way).
const TIE_MARGIN: f32 = 0.15;

fn load_json(path: &Path) -> Value {
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

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("float") as f32)
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

/// Checks every prompt of a reference file: top-1 equal, top-10 logits within tolerance.
fn check_prompts(model_path: &Path, reference: &str, quant: &str) {
    let file = GgufFile::open(model_path).expect("model opens");
    let model = Model::load(&file).expect("model loads");
    let reference = load_json(&data(reference));
    let tol = tolerance(quant);
    let mut report = String::new();
    let mut worst = 0.0f32;
    for case in reference["cases"].as_array().expect("cases") {
        let name = case["name"].as_str().expect("name");
        let tokens = ids(&case["tokens"]);
        let want_ids = ids(&case["top_ids"]);
        let want = floats(&case["top_logits"]);
        let mut ctx = model.context(1024);
        let logits = model
            .forward(&mut ctx, &tokens, Outputs::Last)
            .expect("forward");
        let top = argmax(logits);
        let near_tie = want_ids
            .iter()
            .position(|&id| id as usize == top)
            .is_some_and(|i| want[0] - want[i] <= TOP1_NEAR_TIE);
        let diff = want_ids
            .iter()
            .zip(&want)
            .map(|(&id, &w)| (logits[id as usize] - w).abs())
            .fold(0.0f32, f32::max);
        worst = worst.max(diff);
        if (top as u32 != want_ids[0] && !near_tie) || diff > tol {
            report.push_str(&format!(
                "{name}: top-1 got {top} ({:.3}) want {} ({:.3}); max |diff| on top-10 {diff:.3} (tolerance {tol})\n",
                logits[top], want_ids[0], want[0]
            ));
        }
    }
    assert!(
        report.is_empty(),
        "{quant} disagrees with llama.cpp:\n{report}"
    );
    eprintln!("{quant}: worst top-10 logit difference {worst:.4} (tolerance {tol})");
}

#[test]
fn default_model_top1_and_logits_match_llama_cpp_for_every_prompt() {
    check_prompts(
        &default_model(),
        "logits/SmolLM2-135M-Instruct.Q4_1.json",
        "Q4_1",
    );
}

#[test]
fn default_model_greedy_continuation_matches_llama_cpp() {
    let file = GgufFile::open(&default_model()).expect("model opens");
    let model = Model::load(&file).expect("model loads");
    let reference = load_json(&data("logits/SmolLM2-135M-Instruct.Q4_1.json"));
    let mut checked = 0;
    for case in reference["cases"].as_array().expect("cases") {
        let Some(greedy) = case.get("greedy") else {
            continue;
        };
        let name = case["name"].as_str().expect("name");
        let want = ids(greedy);
        let margins = floats(&case["greedy_margins"]);
        let mut ctx = model.context(1024);
        let mut logits = model
            .forward(&mut ctx, &ids(&case["tokens"]), Outputs::Last)
            .expect("forward")
            .to_vec();
        for (step, &w) in want.iter().enumerate() {
            let got = argmax(&logits) as u32;
            if got != w {
                // Only a near-tie in llama.cpp's own logits may explain a divergence.
                assert!(
                    margins[step] < TIE_MARGIN,
                    "{name}: step {step} got {got}, llama.cpp {w} with a top-2 margin of {:.4} (not a near-tie, limit {TIE_MARGIN})",
                    margins[step]
                );
                // Ours may separate the two by no more than our logits may
                // differ from llama.cpp's (the prompt test's tolerance): after
                // dozens of steps the f32 summation order alone (panels vs dot
                // kernels for the prompt) moved our margin at chat_hello step 35
                // from 0.09 to 0.28 where llama.cpp's is 0.014.
                let ours = (logits[got as usize] - logits[w as usize]).abs();
                assert!(
                    ours < tolerance("Q4_1"),
                    "{name}: step {step}: our margin between {got} and {w} is {ours:.4}, beyond the logit tolerance"
                );
                eprintln!(
                    "{name}: diverges at step {step} on a near-tie (llama.cpp margin {:.4}, ours {ours:.4})",
                    margins[step]
                );
                break;
            }
            logits = model
                .forward(&mut ctx, &[got], Outputs::Last)
                .expect("forward")
                .to_vec();
            if step + 1 == want.len() {
                eprintln!("{name}: all {} greedy tokens identical", want.len());
            }
        }
        checked += 1;
    }
    assert!(checked >= 1, "the reference has no greedy continuation");
}

#[test]
fn prompt_in_one_batch_equals_token_by_token() {
    let file = GgufFile::open(&default_model()).expect("model opens");
    let model = Model::load(&file).expect("model loads");
    let tokens: Vec<u32> = vec![504, 3575, 282, 4649, 314, 1345, 28, 357, 253, 1767];
    let mut a = model.context(64);
    let all = model
        .forward(&mut a, &tokens, Outputs::All)
        .expect("forward")
        .to_vec();
    let n_vocab = model.hp.n_vocab;
    assert_eq!(all.len(), tokens.len() * n_vocab);
    let mut b = model.context(64);
    for (t, &tok) in tokens.iter().enumerate() {
        let row = model
            .forward(&mut b, &[tok], Outputs::Last)
            .expect("forward");
        let batch_row = &all[t * n_vocab..(t + 1) * n_vocab];
        let diff = row
            .iter()
            .zip(batch_row)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(
            diff < 0.05,
            "position {t}: batch and incremental differ by {diff}"
        );
        assert_eq!(argmax(row), argmax(batch_row), "position {t}");
    }
    assert_eq!(a.cache.len(), tokens.len());
    assert_eq!(b.cache.len(), tokens.len());
}

#[test]
fn a_full_context_and_an_unknown_token_are_errors() {
    let file = GgufFile::open(&default_model()).expect("model opens");
    let model = Model::load(&file).expect("model loads");
    let mut ctx = model.context(4);
    let err = model
        .forward(&mut ctx, &[1, 2, 3, 4, 5], Outputs::Last)
        .unwrap_err();
    assert!(
        matches!(err, ModelError::ContextFull { n_ctx: 4, .. }),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "context is full: 0 positions used + 5 new > 4"
    );
    let err = model
        .forward(&mut ctx, &[49152], Outputs::Last)
        .unwrap_err();
    assert!(
        err.to_string().contains("token id 49152 is out of range"),
        "{err}"
    );
    // Nothing was stored by the refused calls.
    assert_eq!(ctx.cache.len(), 0);
}

#[test]
fn trace_hook_sees_every_layer_in_order() {
    use std::sync::{Arc, Mutex};
    let file = GgufFile::open(&default_model()).expect("model opens");
    let model = Model::load(&file).expect("model loads");
    let mut ctx = model.context(16);
    let seen = Arc::new(Mutex::new(Vec::<(String, i32, usize)>::new()));
    let sink = seen.clone();
    ctx.set_trace(Some(Box::new(move |name, il, v| {
        sink.lock().unwrap().push((name.to_string(), il, v.len()));
    })));
    model
        .forward(&mut ctx, &[1, 2, 3], Outputs::Last)
        .expect("forward");
    let seen = seen.lock().unwrap();
    let l_out: Vec<i32> = seen
        .iter()
        .filter(|s| s.0 == "l_out")
        .map(|s| s.1)
        .collect();
    assert_eq!(l_out, (0..30).collect::<Vec<_>>());
    assert!(
        seen.iter()
            .any(|s| s.0 == "attn_norm" && s.1 == 0 && s.2 == 3 * 576)
    );
    assert_eq!(seen.last().unwrap().0, "result_output");
    assert_eq!(seen.last().unwrap().2, 49152);
}

fn check_tiny(arch: &str) {
    let path = data(&format!("tiny/{arch}.gguf"));
    let file = GgufFile::open(&path).expect("fixture opens");
    let model = Model::load(&file).expect("fixture loads");
    assert_eq!(model.hp.arch.name(), arch);
    let reference = load_json(&data(&format!("tiny/{arch}.logits.json")));
    for case in reference["cases"].as_array().expect("cases") {
        let tokens = ids(&case["tokens"]);
        let rows: Vec<Vec<f32>> = case["logits"]
            .as_array()
            .expect("rows")
            .iter()
            .map(floats)
            .collect();
        // All positions in one batch.
        let mut ctx = model.context(128);
        let got = model
            .forward(&mut ctx, &tokens, Outputs::All)
            .expect("forward")
            .to_vec();
        let n_vocab = model.hp.n_vocab;
        for (t, want) in rows.iter().enumerate() {
            let row = &got[t * n_vocab..(t + 1) * n_vocab];
            // F32 weights and an F32 KV cache on both sides: only the summation
            // order differs, so agreement is to about 1e-5 relative.
            let scale = want.iter().fold(1.0f32, |m, x| m.max(x.abs()));
            for (i, (a, b)) in row.iter().zip(want).enumerate() {
                assert!(
                    (a - b).abs() <= 2e-4 * scale,
                    "{arch} prompt of {} tokens, position {t}, logit {i}: got {a}, llama.cpp {b}",
                    tokens.len()
                );
            }
        }
        // And the last position again when the prompt is fed one token at a time.
        let mut ctx = model.context(128);
        let mut last = Vec::new();
        for &tok in &tokens {
            last = model
                .forward(&mut ctx, &[tok], Outputs::Last)
                .expect("forward")
                .to_vec();
        }
        let want = rows.last().expect("one row at least");
        let scale = want.iter().fold(1.0f32, |m, x| m.max(x.abs()));
        for (a, b) in last.iter().zip(want) {
            assert!(
                (a - b).abs() <= 2e-4 * scale,
                "{arch} incremental: {a} vs {b}"
            );
        }
    }
}

#[test]
fn tiny_qwen2_fixture_matches_llama_cpp_logits() {
    check_tiny("qwen2");
}

#[test]
fn tiny_qwen3_fixture_matches_llama_cpp_logits() {
    check_tiny("qwen3");
}

#[test]
#[ignore = "needs the requantized Q4_0 model made by tools/ref_logits.py --quantize (not in CI)"]
fn requantized_q4_0_matches_llama_cpp() {
    check_prompts(
        &model_in_dir("SmolLM2-135M-Instruct.Q4_0.gguf"),
        "logits/SmolLM2-135M-Instruct.Q4_0.json",
        "Q4_0",
    );
}

#[test]
#[ignore = "needs the requantized Q8_0 model made by tools/ref_logits.py --quantize (not in CI)"]
fn requantized_q8_0_matches_llama_cpp() {
    check_prompts(
        &model_in_dir("SmolLM2-135M-Instruct.Q8_0.gguf"),
        "logits/SmolLM2-135M-Instruct.Q8_0.json",
        "Q8_0",
    );
}

#[test]
#[ignore = "needs the requantized Q4_K_M model made by tools/ref_logits.py --quantize (not in CI)"]
fn requantized_q4_k_m_matches_llama_cpp() {
    check_prompts(
        &model_in_dir("SmolLM2-135M-Instruct.Q4_K_M.gguf"),
        "logits/SmolLM2-135M-Instruct.Q4_K_M.json",
        "Q4_K_M",
    );
}

#[test]
fn generation_stops_on_eos_max_tokens_and_callback() {
    use byline::engine::sampling::{GenerateOptions, Sampler, SamplerConfig, StopReason, generate};
    use std::ops::ControlFlow;
    let file = GgufFile::open(&data("tiny/qwen3.gguf")).expect("fixture opens");
    let model = Model::load(&file).expect("fixture loads");
    let prompt = [5u32, 17, 200];
    let greedy = |eos: Vec<u32>, max: usize, stop_after: usize| {
        let mut ctx = model.context(64);
        // A repetition penalty keeps the tiny random model from repeating one token.
        let mut sampler = Sampler::new(SamplerConfig {
            repeat_penalty: 3.0,
            ..SamplerConfig::greedy()
        });
        let mut seen = Vec::new();
        let (toks, why) = generate(
            &model,
            &mut ctx,
            &prompt,
            &mut sampler,
            &GenerateOptions {
                max_tokens: max,
                eos,
            },
            |t| {
                seen.push(t);
                if seen.len() == stop_after {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        )
        .expect("generate");
        assert_eq!(toks, seen, "every token is streamed exactly once");
        (toks, why, ctx.cache.len())
    };
    let (full, why, used) = greedy(vec![], 6, usize::MAX);
    assert_eq!(why, StopReason::MaxTokens);
    assert_eq!(full.len(), 6);
    // The prompt and every generated token but the last were run.
    assert_eq!(used, prompt.len() + 5);
    // The same greedy run with a later token declared EOS stops before its
    // first occurrence.
    let stop = full[3];
    let at = full.iter().position(|&t| t == stop).expect("present");
    let (toks, why, _) = greedy(vec![stop], 6, usize::MAX);
    assert_eq!(why, StopReason::Eos(stop));
    assert_eq!(toks, full[..at]);
    let (toks, why, _) = greedy(vec![], 6, 4);
    assert_eq!(why, StopReason::Callback);
    assert_eq!(toks, full[..4]);
}
