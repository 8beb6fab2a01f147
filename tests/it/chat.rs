//! Chat-template golden tests: minijinja output must equal jinja2's
//! (`tools/ref_chat_template.py`, outputs in `tests/data/chat/`).

use std::path::{Path, PathBuf};

use byline::engine::chat::{ChatError, ChatMessage, ChatTemplate};

use crate::support::tok::{Kv, read_kv, require_default_model};

#[derive(Debug, serde::Deserialize)]
struct Expected {
    template: String,
    case: String,
    add_generation_prompt: bool,
    output: Option<String>,
    error: Option<String>,
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/chat")
}

fn read(name: &str) -> String {
    let p = dir().join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The default model's template, BOS and EOS texts, read from the GGUF.
fn model_template() -> (String, String, String) {
    let kv = read_kv(&require_default_model());
    let s = |k: &str| match kv.get(k) {
        Some(Kv::Str(s)) => s.clone(),
        other => panic!("{k}: {other:?}"),
    };
    let Some(Kv::Arr(tokens)) = kv.get("tokenizer.ggml.tokens") else {
        panic!("no tokens")
    };
    let tok = |k: &str| match kv.get(k) {
        Some(Kv::Int(i)) => match &tokens[*i as usize] {
            Kv::Str(s) => s.clone(),
            other => panic!("{other:?}"),
        },
        other => panic!("{k}: {other:?}"),
    };
    (
        s("tokenizer.chat_template"),
        tok("tokenizer.ggml.bos_token_id"),
        tok("tokenizer.ggml.eos_token_id"),
    )
}

#[test]
fn chat_templates_render_like_jinja2() {
    let (src, bos, eos) = model_template();
    assert_eq!(
        src,
        read("smollm2.jinja"),
        "default model's template changed"
    );
    let cases: serde_json::Value = serde_json::from_str(&read("cases.json")).unwrap();
    let smollm2 = ChatTemplate::new(&src, bos.clone(), eos.clone()).unwrap();
    let tools = ChatTemplate::new(&read("tools.jinja"), bos, eos).unwrap();
    let expected: Vec<Expected> = read("expected.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(expected.len() >= 20);
    let mut bad = Vec::new();
    for e in &expected {
        let t = match e.template.as_str() {
            "smollm2" => &smollm2,
            "tools" => &tools,
            other => panic!("template {other}"),
        };
        let case = &cases[&e.case];
        let got = t.render_json(
            &case["messages"],
            case.get("tools").filter(|v| !v.is_null()),
            e.add_generation_prompt,
        );
        match (&got, &e.output, &e.error) {
            (Ok(out), Some(want), _) if out == want => {}
            (Err(ChatError::Raised(msg)), None, Some(want)) if msg == want => {}
            _ => bad.push(format!(
                "{}/{} agp={}:\n ours {:?}\n jinja2 {:?}",
                e.template,
                e.case,
                e.add_generation_prompt,
                got,
                e.output.as_ref().or(e.error.as_ref())
            )),
        }
    }
    assert!(
        bad.is_empty(),
        "{} of {} differ:\n{}",
        bad.len(),
        expected.len(),
        bad.join("\n")
    );
}

#[test]
fn plain_messages_render_with_generation_prompt() {
    let (src, bos, eos) = model_template();
    let t = ChatTemplate::new(&src, bos, eos).unwrap();
    let out = t.render(&[ChatMessage::new("user", "hi")], true).unwrap();
    assert!(
        out.ends_with("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"),
        "{out:?}"
    );
    let out = t.render(&[ChatMessage::new("user", "hi")], false).unwrap();
    assert!(out.ends_with("hi<|im_end|>\n"), "{out:?}");
}
