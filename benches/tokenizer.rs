//! Tokenizer throughput on the default model's vocabulary (SmolLM2 byte-level
//! BPE, `smollm` pre-tokenizer): encode and decode of the bundled sample
//! site's text (English prose, a German page, lists, numbers, code-like
//! markup), in bytes of text per second.
//!
//! `cargo bench --bench tokenizer`. The model file is found the way every
//! engine command finds it (`BYLINE_MODEL`, else the model directory); the
//! bench exits with a message if it is missing (`byline model fetch`).

use std::path::PathBuf;
use std::sync::OnceLock;

use byline::engine::gguf::GgufFile;
use byline::engine::tokenizer::Tokenizer;
use divan::Bencher;
use divan::counter::BytesCount;

fn main() {
    let _ = tokenizer();
    divan::main();
}

fn model_path() -> PathBuf {
    if let Some(p) = std::env::var_os("BYLINE_MODEL") {
        return PathBuf::from(p);
    }
    byline::cli::model_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf")
}

fn tokenizer() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| {
        let p = model_path();
        let f = GgufFile::open(&p).unwrap_or_else(|e| {
            eprintln!("{}: {e} (run `byline model fetch`)", p.display());
            std::process::exit(2)
        });
        Tokenizer::from_gguf(&f).expect("tokenizer loads")
    })
}

/// The text of every page of the bundled sample site, tags stripped crudely
/// (the bench needs realistic text, not a faithful extraction).
fn corpus() -> &'static str {
    static C: OnceLock<String> = OnceLock::new();
    C.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/site");
        let mut files = Vec::new();
        let mut stack = vec![root];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).expect("sample site dir") {
                let p = e.expect("dir entry").path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "html") {
                    files.push(p);
                }
            }
        }
        files.sort();
        let mut out = String::new();
        for f in files {
            let html = std::fs::read_to_string(&f).expect("page reads");
            let mut in_tag = false;
            for c in html.chars() {
                match c {
                    '<' => in_tag = true,
                    '>' => {
                        in_tag = false;
                        out.push(' ');
                    }
                    c if !in_tag => out.push(c),
                    _ => {}
                }
            }
        }
        out
    })
}

#[divan::bench]
fn encode_sample_site(b: Bencher) {
    let t = tokenizer();
    let text = corpus();
    b.counter(BytesCount::new(text.len()))
        .bench(|| t.encode(divan::black_box(text), false, false));
}

#[divan::bench]
fn decode_sample_site(b: Bencher) {
    let t = tokenizer();
    let text = corpus();
    let ids = t.encode(text, false, false);
    b.counter(BytesCount::new(text.len()))
        .bench(|| t.decode(divan::black_box(&ids), false));
}

#[divan::bench]
fn encode_chat_prompt(b: Bencher) {
    let t = tokenizer();
    let text = "<|im_start|>system\nAnswer from the sources and cite them as [1], [2].<|im_end|>\n\
                <|im_start|>user\nWhen does the library open on Sundays, and who said so?<|im_end|>\n\
                <|im_start|>assistant\n";
    b.counter(BytesCount::new(text.len()))
        .bench(|| t.encode(divan::black_box(text), false, true));
}
