//! `byline generate`: run a prompt through a GGUF model and stream the
//! continuation to stdout.

use std::io::Write;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use clap::Args;

use super::Global;
use super::exit::{InputResult, input};
use super::model::resolve_model;
use crate::engine::gguf::GgufFile;
use crate::engine::model::Model;
use crate::engine::sampling::{
    self, GenerateOptions, Sampler, SamplerConfig, StopReason, StopStrings,
};

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// The GGUF model: a file, or a name registered with `byline model add`
    /// (default: the default model in the model directory).
    #[arg(long, env = "BYLINE_MODEL")]
    pub model: Option<PathBuf>,
    /// The prompt text.
    #[arg(long)]
    pub prompt: String,
    /// Most tokens to generate.
    #[arg(short = 'n', long = "max-tokens", default_value_t = 256)]
    pub max_tokens: usize,
    /// Sampling temperature; 0 is greedy.
    #[arg(long = "temp", default_value_t = 0.8)]
    pub temperature: f32,
    /// RNG seed (default: from the clock).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Keep the k most likely tokens (0 = all).
    #[arg(long, default_value_t = 40)]
    pub top_k: usize,
    /// Nucleus sampling threshold (1 = off).
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    /// Minimum probability relative to the most likely token (0 = off).
    #[arg(long, default_value_t = 0.05)]
    pub min_p: f32,
    /// Repetition penalty over the last 64 tokens (1 = off).
    #[arg(long, default_value_t = 1.0)]
    pub repeat_penalty: f32,
    /// Wrap the prompt as a user turn in the model's chat template.
    #[arg(long)]
    pub chat: bool,
    /// A system message for --chat (default: the template's own).
    #[arg(long, requires = "chat")]
    pub system: Option<String>,
    /// Stop when this text appears (repeatable); it is not printed.
    #[arg(long)]
    pub stop: Vec<String>,
    /// Context window in tokens (0: the model's training length).
    #[arg(long, default_value_t = 4096)]
    pub ctx: usize,
    /// Worker threads (default: all cores).
    #[arg(long, short = 't')]
    pub threads: Option<usize>,
}

pub async fn run(args: GenerateArgs, _global: &Global) -> anyhow::Result<ExitCode> {
    let path = resolve_model(args.model.clone())?;
    let file = GgufFile::open(&path)
        .with_context(|| format!("opening model {}", path.display()))
        .input()?;
    let model = Model::load(&file).with_context(|| format!("loading model {}", path.display()))?;
    let mut builder = rayon::ThreadPoolBuilder::new();
    if let Some(t) = args.threads {
        if t < 1 {
            return Err(input(anyhow::anyhow!(
                "--threads must be at least 1, got {t}"
            )));
        }
        builder = builder.num_threads(t);
    }
    let pool = builder.build().context("starting the worker threads")?;
    let tok = text::tokenizer(&file)?;
    let (prompt_text, add_special) = if args.chat {
        text::chat_prompt(&file, &args.prompt, args.system.as_deref())?
    } else {
        (args.prompt.clone(), true)
    };
    // Special-token text is parsed only in the template's own markup.
    let prompt = tok.encode(&prompt_text, add_special, args.chat);
    if prompt.is_empty() {
        return Err(input(anyhow::anyhow!("the prompt encodes to no tokens")));
    }
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    });
    let mut sampler = Sampler::new(SamplerConfig {
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        min_p: args.min_p,
        repeat_penalty: args.repeat_penalty,
        repeat_last_n: 64,
        seed,
    });
    let opts = GenerateOptions {
        max_tokens: args.max_tokens,
        eos: text::end_tokens(&tok),
    };
    let mut stops = StopStrings::new(args.stop.iter().cloned());
    let mut ctx = model.context(args.ctx);
    let mut detok = text::detokenizer(&tok);
    let t0 = Instant::now();
    let mut first: Option<f64> = None;
    let mut write_err: Option<std::io::Error> = None;
    let (new, reason) = pool.install(|| {
        let mut out = std::io::stdout().lock();
        sampling::generate(&model, &mut ctx, &prompt, &mut sampler, &opts, |id| {
            first.get_or_insert_with(|| t0.elapsed().as_secs_f64());
            let piece = detok.push(id);
            let fed = stops.feed(&piece);
            if let Err(e) = out.write_all(fed.emit.as_bytes()).and_then(|_| out.flush()) {
                write_err = Some(e);
                return ControlFlow::Break(());
            }
            if fed.stopped {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
    })?;
    if let Some(e) = write_err {
        super::exit::stdout_failed(e);
    }
    let mut out = std::io::stdout().lock();
    if reason != StopReason::Callback {
        let rest = format!("{}{}", stops.feed(&detok.finish()).emit, stops.flush());
        out.write_all(rest.as_bytes())
            .unwrap_or_else(|e| super::exit::stdout_failed(e));
    }
    writeln!(out).unwrap_or_else(|e| super::exit::stdout_failed(e));
    drop(out);
    let total = t0.elapsed().as_secs_f64();
    let pp = first.unwrap_or(total);
    if super::quiet() {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "[{} prompt tokens in {:.2}s ({:.1} tok/s); {} generated in {:.2}s ({:.1} tok/s); stop: {:?}; seed {seed}]",
        prompt.len(),
        pp,
        prompt.len() as f64 / pp,
        new.len(),
        total - pp,
        new.len().saturating_sub(1) as f64 / (total - pp).max(1e-9),
        reason
    );
    Ok(ExitCode::SUCCESS)
}

/// The tokenizer and chat template read from the GGUF metadata.
mod text {
    use anyhow::Context as _;

    use crate::engine::chat::{ChatMessage, ChatTemplate};
    use crate::engine::gguf::{GgufFile, Value};
    use crate::engine::tokenizer::{Detokenizer, Tokenizer, TokenizerData};

    /// Builds the tokenizer's plain metadata from `tokenizer.ggml.*`.
    pub fn tokenizer(file: &GgufFile) -> anyhow::Result<Tokenizer> {
        let s = |k: &str| file.get(k).and_then(Value::as_str).map(str::to_string);
        let id = |k: &str| file.get(k).and_then(Value::as_u64).map(|v| v as u32);
        let flag = |k: &str| file.get(k).and_then(Value::as_bool);
        let strings = |k: &str| -> Vec<String> {
            file.get(k)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let data = TokenizerData {
            model: s("tokenizer.ggml.model").context("the model has no tokenizer.ggml.model")?,
            pre: s("tokenizer.ggml.pre"),
            tokens: strings("tokenizer.ggml.tokens"),
            token_types: file
                .get("tokenizer.ggml.token_type")
                .and_then(Value::as_array)
                .map(|a| a.iter().map(|v| v.as_i64().unwrap_or(1) as i32).collect())
                .unwrap_or_default(),
            scores: file
                .get("tokenizer.ggml.scores")
                .and_then(Value::as_array)
                .map(|a| a.iter().map(|v| v.as_f32().unwrap_or(0.0)).collect())
                .unwrap_or_default(),
            merges: strings("tokenizer.ggml.merges"),
            bos_id: id("tokenizer.ggml.bos_token_id"),
            eos_id: id("tokenizer.ggml.eos_token_id"),
            unk_id: id("tokenizer.ggml.unknown_token_id"),
            pad_id: id("tokenizer.ggml.padding_token_id"),
            eot_id: id("tokenizer.ggml.eot_token_id"),
            add_bos: flag("tokenizer.ggml.add_bos_token"),
            add_eos: flag("tokenizer.ggml.add_eos_token"),
            add_space_prefix: flag("tokenizer.ggml.add_space_prefix"),
        };
        Ok(Tokenizer::new(data)?)
    }

    /// Every end-of-generation token id.
    pub fn end_tokens(tok: &Tokenizer) -> Vec<u32> {
        (0..tok.n_vocab() as u32)
            .filter(|&i| tok.is_eog(i))
            .collect()
    }

    pub fn detokenizer(tok: &Tokenizer) -> Detokenizer<'_> {
        tok.detokenizer(false)
    }

    /// The user's prompt as one user turn (after an optional system turn) in
    /// the model's chat template, ready for the assistant's reply; and
    /// whether the tokenizer should still add its BOS (not when the template
    /// already wrote it).
    pub fn chat_prompt(
        file: &GgufFile,
        user: &str,
        system: Option<&str>,
    ) -> anyhow::Result<(String, bool)> {
        let template = ChatTemplate::from_gguf(file).context("reading the chat template")?;
        let mut messages = Vec::new();
        if let Some(s) = system {
            messages.push(ChatMessage::new("system", s));
        }
        messages.push(ChatMessage::new("user", user));
        let text = template
            .render(&messages, true)
            .context("rendering the chat template")?;
        let bos = template.bos_token();
        let add_special = bos.is_empty() || !text.starts_with(bos);
        Ok((text, add_special))
    }
}
