//! Tokenizer golden tests: our ids must equal llama.cpp's (produced by
//! `tools/ref_tokenizer.py`, committed under `tests/data/tokenizer/`).

use std::path::{Path, PathBuf};

use byline::engine::tokenizer::{Tokenizer, TokenizerData};

use crate::support::tok::{require_default_model, tokenizer_data};

#[derive(Debug, serde::Deserialize)]
struct Golden {
    text: String,
    parse_special: bool,
    ids: Vec<u32>,
    decoded: String,
}

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tokenizer")
}

fn load_golden(name: &str) -> Vec<Golden> {
    let p = data_dir().join(name);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    text.lines()
        .map(|l| serde_json::from_str(l).expect("golden line"))
        .collect()
}

/// Checks every golden record; returns the mismatches as readable lines.
fn check(tok: &Tokenizer, golden: &[Golden]) -> Vec<String> {
    let mut bad = Vec::new();
    for g in golden {
        let ids = tok.encode(&g.text, false, g.parse_special);
        if ids != g.ids {
            bad.push(format!(
                "{:?} (parse_special={}): ours {:?} llama.cpp {:?}",
                g.text, g.parse_special, ids, g.ids
            ));
            continue;
        }
        let dec = tok.decode(&ids, g.parse_special);
        if dec != g.decoded {
            bad.push(format!(
                "{:?}: decoded {:?} llama.cpp {:?}",
                g.text, dec, g.decoded
            ));
        }
    }
    bad
}

fn smollm2() -> Tokenizer {
    Tokenizer::new(tokenizer_data(&require_default_model())).expect("tokenizer from default model")
}

#[test]
fn smollm2_ids_equal_llama_cpp() {
    let tok = smollm2();
    let golden = load_golden("smollm2.jsonl");
    assert!(
        golden.len() >= 400,
        "golden set too small: {}",
        golden.len()
    );
    let bad = check(&tok, &golden);
    assert!(
        bad.is_empty(),
        "{} of {} differ:\n{}",
        bad.len(),
        golden.len(),
        bad.join("\n")
    );
}

#[test]
fn smollm2_decode_round_trips() {
    let tok = smollm2();
    for g in load_golden("smollm2.jsonl") {
        let ids = tok.encode(&g.text, false, g.parse_special);
        // With special parsing on, control tokens render as their text.
        assert_eq!(tok.decode(&ids, g.parse_special), g.text, "{:?}", g.text);
    }
}

#[test]
fn smollm2_special_tokens_split_only_when_asked() {
    let tok = smollm2();
    let text = "<|im_start|>user\nhi<|im_end|>\n";
    let on = tok.encode(text, false, true);
    assert_eq!(on[0], 1);
    assert!(on.contains(&2));
    let off = tok.encode(text, false, false);
    assert!(!off.contains(&1) && !off.contains(&2), "{off:?}");
    assert!(tok.is_eog(2));
    assert!(!tok.is_eog(1));
    // add_bos_token is false in this model.
    assert_eq!(
        tok.encode("hi", true, false),
        tok.encode("hi", false, false)
    );
}

/// GPT-2's vocabulary with `pre` overridden, checked against llama.cpp run
/// on the same vocabulary with that `pre`.
fn check_pre(pre: &str) {
    let mut data: TokenizerData = tokenizer_data(&data_dir().join("gpt2-vocab.gguf"));
    data.pre = Some(pre.to_string());
    let tok = Tokenizer::new(data).expect("gpt2 vocab tokenizer");
    let golden = load_golden(&format!("pre-{pre}.jsonl"));
    assert!(golden.len() >= 200);
    let bad = check(&tok, &golden);
    assert!(
        bad.is_empty(),
        "pre={pre}: {} of {} differ:\n{}",
        bad.len(),
        golden.len(),
        bad.join("\n")
    );
}

#[test]
fn pre_gpt2_ids_equal_llama_cpp() {
    check_pre("gpt-2");
}

#[test]
fn pre_llama3_ids_equal_llama_cpp() {
    check_pre("llama-bpe");
}

#[test]
fn pre_qwen2_ids_equal_llama_cpp() {
    check_pre("qwen2");
}

#[test]
fn pre_default_ids_equal_llama_cpp() {
    check_pre("default");
}

#[test]
fn detokenizer_never_splits_a_character() {
    let tok = smollm2();
    for text in ["👨‍👩‍👧‍👦 family", "東京🦀", "🏳️‍🌈 done", "é😀x"]
    {
        let ids = tok.encode(text, false, false);
        let mut d = tok.detokenizer(false);
        let mut out = String::new();
        let mut partial_seen = false;
        for &id in &ids {
            let piece = d.push(id);
            // Every chunk is whole UTF-8 by type; check nothing is lost or replaced.
            assert!(!piece.contains('\u{fffd}'), "{text:?}: {piece:?}");
            if std::str::from_utf8(&tok.decode_bytes(&[id], false)).is_err() {
                partial_seen = true;
            }
            out.push_str(&piece);
        }
        out.push_str(&d.finish());
        assert_eq!(out, text);
        assert!(
            partial_seen,
            "{text:?} never split a character across tokens: {ids:?}"
        );
    }
}

fn phi3() -> Tokenizer {
    Tokenizer::new(tokenizer_data(&data_dir().join("phi3-spm-vocab.gguf"))).expect("phi3 spm")
}

#[test]
fn sentencepiece_ids_equal_llama_cpp() {
    let tok = phi3();
    let golden = load_golden("phi3-spm.jsonl");
    assert!(golden.len() >= 400);
    let bad = check(&tok, &golden);
    assert!(
        bad.is_empty(),
        "{} of {} differ:\n{}",
        bad.len(),
        golden.len(),
        bad.join("\n")
    );
}

#[test]
fn sentencepiece_bos_space_prefix_and_byte_fallback() {
    let tok = phi3();
    let ids = tok.encode("hi", true, false);
    assert_eq!(ids[0], 1, "BOS first: {ids:?}");
    assert_eq!(tok.decode(&ids[1..], false), " hi");
    // A character missing from the vocabulary falls back to <0xXX> tokens,
    // and the streaming decoder holds the partial bytes back.
    let ids = tok.encode("\u{1F9FF}", false, false);
    let texts: Vec<&str> = ids.iter().map(|&i| tok.token_text(i).unwrap()).collect();
    assert!(
        texts.iter().filter(|t| t.starts_with("<0x")).count() == 4,
        "{texts:?}"
    );
    let mut d = tok.detokenizer(false);
    let pieces: Vec<String> = ids.iter().map(|&i| d.push(i)).collect();
    assert_eq!(pieces.concat(), " \u{1F9FF}");
    assert_eq!(pieces.last().unwrap(), "\u{1F9FF}");
}

#[test]
fn from_gguf_reads_the_default_model() {
    let f = byline::engine::gguf::GgufFile::open(&require_default_model()).expect("open gguf");
    let tok = Tokenizer::from_gguf(&f).expect("tokenizer from gguf");
    assert_eq!(tok.n_vocab(), 49152);
    let golden = load_golden("smollm2.jsonl");
    let bad = check(&tok, &golden);
    assert!(bad.is_empty(), "{} differ:\n{}", bad.len(), bad.join("\n"));
}
