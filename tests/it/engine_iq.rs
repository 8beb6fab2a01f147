//! Models whose matrices are stored in the IQ types and MXFP4 load and match
//! llama.cpp: tiny one-layer llama fixtures made by `tools/make_iq_fixtures.py`
//! (same random weights quantized by ggml to each type), with llama.cpp's
//! logits for every position of two prompts.

use byline::engine::gguf::GgufFile;
use byline::engine::model::{Model, Outputs};
use byline::engine::quant::GgmlType;
use serde_json::Value;

use crate::support::model::data;

/// Max |ours - llama.cpp| over a row, as a fraction of the row's largest
/// |logit| (about 150-220 here: the embeddings are not scaled down).
///
/// Both sides quantize activations to the same 8-bit formats and keep an F32
/// KV cache, so nearly every row agrees to float rounding ([`EXACT`]). In
/// the committed fixtures one row (the same prompt position) of IQ4_NL, MXFP4
/// and IQ2_XS is off by 0.42-0.71 logits, at most 4.1e-3 relative. For the
/// two Q8_0-activation types that fits an activation rounded to different
/// 8-bit neighbours (llama.cpp's AVX2 Q8_0 quantizer multiplies by 127/max
/// and rounds half to even; ours divides by max/127 and rounds half away
/// from zero); for IQ2_XS (Q8_K activations) the cause is not pinned down.
/// A wrong grid row, sign or scale moves logits by whole units in every row.
const REL_TOLERANCE: f32 = 1e-2;
/// Rows within this relative difference count as exact.
const EXACT: f32 = 1e-5;
/// Rows per fixture allowed between [`EXACT`] and [`REL_TOLERANCE`].
const MAX_INEXACT_ROWS: usize = 1;

fn check(name: &str, ty: GgmlType) {
    let path = data(&format!("tiny/iq/{name}.gguf"));
    let file = GgufFile::open(&path).expect("fixture opens");
    let n_ty = file.tensors().iter().filter(|t| t.ty == ty).count();
    assert_eq!(n_ty, 7, "{name}: expected 7 matrices of type {ty}");
    let model = Model::load(&file).expect("fixture loads");
    let text = std::fs::read_to_string(data(&format!("tiny/iq/{name}.logits.json"))).unwrap();
    let reference: Value = serde_json::from_str(&text).unwrap();
    let n_vocab = model.hp.n_vocab;
    let mut worst = 0f32;
    let mut inexact = 0;
    for case in reference["cases"].as_array().expect("cases") {
        let tokens: Vec<u32> = case["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let mut ctx = model.context(128);
        let got = model
            .forward(&mut ctx, &tokens, Outputs::All)
            .expect("forward")
            .to_vec();
        for (t, want) in case["logits"].as_array().unwrap().iter().enumerate() {
            let want: Vec<f32> = want
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
            let row = &got[t * n_vocab..(t + 1) * n_vocab];
            let scale = want.iter().fold(1.0f32, |m, x| m.max(x.abs()));
            let diff = row
                .iter()
                .zip(&want)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            worst = worst.max(diff / scale);
            if diff > EXACT * scale {
                inexact += 1;
            }
            assert!(
                diff <= REL_TOLERANCE * scale,
                "{name} prompt of {} tokens, position {t}: max logit difference {diff} (scale {scale})",
                tokens.len()
            );
            // Top-1 agrees unless llama.cpp's own top two are closer than the tolerance.
            let top = |x: &[f32]| (0..x.len()).fold(0, |b, i| if x[i] > x[b] { i } else { b });
            let (ours, theirs) = (top(row), top(&want));
            if ours != theirs {
                assert!(
                    want[theirs] - want[ours] <= 2.0 * REL_TOLERANCE * scale,
                    "{name} position {t}: top-1 {ours} vs llama.cpp {theirs}"
                );
            }
        }
    }
    assert!(
        inexact <= MAX_INEXACT_ROWS,
        "{name}: {inexact} rows differ by more than {EXACT} relative (worst {worst:.2e})"
    );
    eprintln!("{name}: worst relative logit difference {worst:.2e}, {inexact} inexact rows");
}

#[test]
fn iq4_nl_fixture_matches_llama_cpp() {
    check("iq4_nl", GgmlType::IQ4_NL);
}

#[test]
fn iq4_xs_fixture_matches_llama_cpp() {
    check("iq4_xs", GgmlType::IQ4_XS);
}

#[test]
fn mxfp4_fixture_matches_llama_cpp() {
    check("mxfp4", GgmlType::MXFP4);
}

#[test]
fn iq3_xxs_fixture_matches_llama_cpp() {
    check("iq3_xxs", GgmlType::IQ3_XXS);
}

#[test]
fn iq3_s_fixture_matches_llama_cpp() {
    check("iq3_s", GgmlType::IQ3_S);
}

#[test]
fn iq2_xxs_fixture_matches_llama_cpp() {
    check("iq2_xxs", GgmlType::IQ2_XXS);
}

#[test]
fn iq2_xs_fixture_matches_llama_cpp() {
    check("iq2_xs", GgmlType::IQ2_XS);
}

#[test]
fn iq2_s_fixture_matches_llama_cpp() {
    check("iq2_s", GgmlType::IQ2_S);
}

#[test]
fn iq1_s_fixture_matches_llama_cpp() {
    check("iq1_s", GgmlType::IQ1_S);
}

#[test]
fn iq1_m_fixture_matches_llama_cpp() {
    check("iq1_m", GgmlType::IQ1_M);
}
