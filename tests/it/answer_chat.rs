//! `ChatTemplate::from_gguf` and `byline generate --chat` on the default model.

use std::process::Command;

use byline::engine::chat::{ChatMessage, ChatTemplate};
use byline::engine::gguf::GgufFile;

use crate::support::byline_bin;
use crate::support::model::default_model;

#[test]
fn from_gguf_reads_the_template_and_the_special_token_texts() {
    let file = GgufFile::open(&default_model()).expect("opening the default model");
    let t = ChatTemplate::from_gguf(&file).expect("the default model has a chat template");
    assert_eq!(t.bos_token(), "<|im_start|>");
    assert_eq!(t.eos_token(), "<|im_end|>");
    let out = t
        .render(
            &[
                ChatMessage::new("system", "Be brief."),
                ChatMessage::new("user", "Hello?"),
            ],
            true,
        )
        .expect("rendering");
    assert_eq!(
        out,
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHello?<|im_end|>\n<|im_start|>assistant\n"
    );
}

#[test]
fn generate_chat_streams_a_reply_to_a_user_turn() {
    let out = Command::new(byline_bin())
        .args(["generate", "--chat", "--temp", "0", "-n", "8", "--prompt"])
        .arg("Name a colour.")
        .arg("--model")
        .arg(default_model())
        .output()
        .expect("running byline generate --chat");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(!stdout.trim().is_empty(), "no reply:\n{stderr}");
    assert!(
        !stdout.contains("<|im_start|>") && !stdout.contains("<|im_end|>"),
        "special tokens leaked: {stdout}"
    );
    // The default system turn of SmolLM2's template makes the prompt longer
    // than the bare user text.
    let n: usize = stderr
        .split('[')
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no prompt token count in {stderr}"));
    assert!(n > 20, "prompt of {n} tokens is not a chat turn: {stderr}");
}
