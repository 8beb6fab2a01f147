//! Answer stage: retrieves allowed passages, builds the prompt in the
//! model's own chat template, generates (streamed), checks every sentence
//! against the allowed passages and records the answer.
//!
//! In: a question, the store, a loaded [`Generator`]. Out: an [`Answer`]
//! (the `byline ask --json` object) stored in `answers`. Never: printing.
//!
//! The stages are public separately so a server can run generation on a
//! blocking thread and cancel it: [`prepare`] (async: retrieval, prompt),
//! [`Generator::draft`] (sync, streams text to a callback that may stop it),
//! [`finish`] (async: check, citations, record). [`ask`] runs all three.

pub mod check;

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::engine::chat::{ChatError, ChatMessage, ChatTemplate};
use crate::engine::gguf::GgufFile;
use crate::engine::model::{Model, ModelError};
use crate::engine::sampling::{
    self, GenerateOptions, Sampler, SamplerConfig, StopReason, StopStrings,
};
use crate::engine::tokenizer::{Tokenizer, TokenizerError};
use crate::index::{self, Retrieved};
use crate::store::answers::{NewAnswer, NewCitation};
use crate::store::{Store, StoreError};
use check::{CheckConfig, CheckedSentence, SentenceKind, Source};

/// What can go wrong answering a question.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("reading model {path}: {detail}")]
    Model { path: String, detail: String },
    #[error(transparent)]
    Chat(#[from] ChatError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error("generating: {0}")]
    Generate(#[from] ModelError),
    #[error("the question is empty")]
    EmptyQuestion,
    #[error("the question has {chars} characters, more than the limit of {limit}")]
    QuestionTooLong { chars: usize, limit: usize },
    #[error("the prompt needs {tokens} tokens, more than the model window of {limit}")]
    PromptTooLong { tokens: usize, limit: usize },
    /// The streaming callback stopped generation; nothing was recorded.
    #[error("answer cancelled by the caller")]
    Cancelled,
}

/// Longest question accepted, in characters.
pub const MAX_QUESTION_CHARS: usize = 2000;

/// Settings of one question.
#[derive(Debug, Clone)]
pub struct AskOptions {
    /// Only verdicts decided under this policy (sha256 of its bytes) count.
    pub policy_sha256: Option<String>,
    /// Passages retrieved (BM25) and checked against.
    pub retrieve_k: usize,
    /// Of those, at most this many go into the prompt.
    pub prompt_passages: usize,
    /// Most prompt tokens (passages are dropped from the end to fit; also
    /// capped by the model window less `max_tokens`).
    pub prompt_budget_tokens: usize,
    /// Most generated tokens.
    pub max_tokens: usize,
    /// Refuse before generating when no retrieved passage holds at least
    /// this share of the question's content terms.
    pub min_coverage: f64,
    /// The checker's settings.
    pub check: CheckConfig,
    /// Store the answer in `answers` (and the audit log).
    pub record: bool,
    /// Earlier turns of a conversation (`user` and `assistant` messages,
    /// oldest first), before the question. They shape retrieval (a
    /// follow-up question is completed with the salient words of earlier
    /// user turns, see [`retrieval_query`]) and the prompt (rendered before
    /// the question through the model's chat template, oldest dropped
    /// first to fit the budget).
    pub history: Vec<ChatMessage>,
    /// How the draft is sampled and where it stops.
    pub sampling: DraftOptions,
}

/// Sampling and stop sequences of one draft.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DraftOptions {
    /// 0 (the default) is greedy decoding; above 0, sampling at this
    /// temperature.
    pub temperature: f32,
    /// Nucleus sampling cut-off (default 0.95 when sampling).
    pub top_p: Option<f32>,
    /// Seed of the sampler's random stream (default: from the clock).
    pub seed: Option<u64>,
    /// Extra stop sequences: the draft is cut before the first of them.
    pub stop: Vec<String>,
}

impl Default for AskOptions {
    fn default() -> Self {
        AskOptions {
            policy_sha256: None,
            retrieve_k: 8,
            prompt_passages: 2,
            prompt_budget_tokens: 768,
            max_tokens: 96,
            min_coverage: 0.5,
            check: CheckConfig::default(),
            record: true,
            history: Vec::new(),
            sampling: DraftOptions::default(),
        }
    }
}

/// A model ready to answer: weights, tokenizer, chat template.
pub struct Generator<'a> {
    model: Model<'a>,
    tok: Tokenizer,
    template: ChatTemplate,
    eos: Vec<u32>,
    n_ctx_train: usize,
    /// The model file as given.
    pub model_path: String,
    /// sha256 of the model file.
    pub model_sha256: String,
}

impl std::fmt::Debug for Generator<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generator")
            .field("model_path", &self.model_path)
            .field("model_sha256", &self.model_sha256)
            .finish_non_exhaustive()
    }
}

/// The model's raw text for one prompt.
#[derive(Debug, Clone)]
pub struct Draft {
    pub text: String,
    pub prompt_tokens: usize,
    pub tokens: usize,
    pub stop: String,
    pub seconds: f64,
}

impl<'a> Generator<'a> {
    /// Loads the model in `file` (opened from `path`, whose sha256 is given:
    /// see [`model_sha256`]).
    pub fn new(file: &'a GgufFile, path: &Path, sha256: String) -> Result<Self, AnswerError> {
        let err = |detail: String| AnswerError::Model {
            path: path.display().to_string(),
            detail,
        };
        let model = Model::load(file).map_err(|e| err(e.to_string()))?;
        let tok = Tokenizer::from_gguf(file)?;
        let template = ChatTemplate::from_gguf(file)?;
        let eos = (0..tok.n_vocab() as u32)
            .filter(|&i| tok.is_eog(i))
            .collect();
        let n_ctx_train = crate::engine::model::Hparams::read(file)
            .map(|h| h.n_ctx_train)
            .map_err(|e| err(e.to_string()))?;
        Ok(Generator {
            model,
            tok,
            template,
            eos,
            n_ctx_train,
            model_path: path.display().to_string(),
            model_sha256: sha256,
        })
    }

    /// The messages rendered in the model's chat template and tokenized.
    pub fn prompt_tokens(&self, messages: &[ChatMessage]) -> Result<Vec<u32>, AnswerError> {
        let text = self.template.render(messages, true)?;
        let bos = self.template.bos_token();
        let add_special = bos.is_empty() || !text.starts_with(bos);
        Ok(self.tok.encode(&text, add_special, true))
    }

    /// The model's window in tokens.
    pub fn n_ctx(&self) -> usize {
        self.n_ctx_train
    }

    /// Greedy generation of at most `max_tokens` after `prompt`, streaming
    /// each complete piece of text to `on_text`; returning
    /// `ControlFlow::Break` from it cancels ([`AnswerError::Cancelled`]).
    pub fn draft(
        &self,
        prompt: &[u32],
        max_tokens: usize,
        on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Draft, AnswerError> {
        self.draft_with(prompt, max_tokens, &DraftOptions::default(), on_text)
    }

    /// Tokens of `text` as the model's tokenizer splits it (no special
    /// tokens added).
    pub fn count_tokens(&self, text: &str) -> usize {
        self.tok.encode(text, false, false).len()
    }

    /// [`Generator::draft`] with sampling and stop sequences: temperature 0
    /// is greedy, above 0 a seeded draw; the text is cut before the first
    /// stop sequence (`stop` is then `stop_sequence`).
    pub fn draft_with(
        &self,
        prompt: &[u32],
        max_tokens: usize,
        sampling: &DraftOptions,
        on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Draft, AnswerError> {
        let t0 = Instant::now();
        let n_ctx = (prompt.len() + max_tokens + 1).min(self.n_ctx_train.max(1));
        if prompt.len() >= n_ctx {
            return Err(AnswerError::PromptTooLong {
                tokens: prompt.len(),
                limit: self.n_ctx_train,
            });
        }
        let mut ctx = self.model.context(n_ctx);
        let base = if sampling.temperature > 0.0 {
            SamplerConfig {
                temperature: sampling.temperature,
                top_p: sampling.top_p.unwrap_or(0.95),
                seed: sampling.seed.unwrap_or_else(clock_seed),
                ..SamplerConfig::default()
            }
        } else {
            SamplerConfig::greedy()
        };
        let mut sampler = Sampler::new(SamplerConfig {
            repeat_penalty: 1.1,
            repeat_last_n: 64,
            ..base
        });
        let opts = GenerateOptions {
            max_tokens,
            eos: self.eos.clone(),
        };
        let mut detok = self.tok.detokenizer(false);
        let mut stops = StopStrings::new(
            ["<|im_end|>", "<|im_start|>", "\nQuestion:"]
                .into_iter()
                .map(str::to_string)
                .chain(sampling.stop.iter().cloned()),
        );
        // Everything detokenized, to tell which stop string ended the text.
        let mut raw = String::new();
        let mut text = String::new();
        let mut cancelled = false;
        let mut stopped_by_string = false;
        let (new, reason) =
            sampling::generate(&self.model, &mut ctx, prompt, &mut sampler, &opts, |id| {
                let piece = detok.push(id);
                raw.push_str(&piece);
                let fed = stops.feed(&piece);
                text.push_str(&fed.emit);
                if !fed.emit.is_empty() && on_text(&fed.emit).is_break() {
                    cancelled = true;
                    return ControlFlow::Break(());
                }
                if fed.stopped {
                    stopped_by_string = true;
                    return ControlFlow::Break(());
                }
                ControlFlow::Continue(())
            })?;
        if cancelled {
            return Err(AnswerError::Cancelled);
        }
        if !stopped_by_string {
            let rest = format!("{}{}", stops.feed(&detok.finish()).emit, stops.flush());
            if !rest.is_empty() {
                text.push_str(&rest);
                if on_text(&rest).is_break() {
                    return Err(AnswerError::Cancelled);
                }
            }
        }
        let stop = match reason {
            StopReason::Eos(_) => "eos",
            StopReason::MaxTokens => "max_tokens",
            StopReason::Callback
                if stopped_by_string
                    && raw.get(text.len()..).is_some_and(|rest| {
                        sampling
                            .stop
                            .iter()
                            .any(|s| !s.is_empty() && rest.starts_with(s.as_str()))
                    }) =>
            {
                "stop_sequence"
            }
            StopReason::Callback => "stop_string",
            StopReason::ContextFull => "context_full",
        };
        Ok(Draft {
            text,
            prompt_tokens: prompt.len(),
            tokens: new.len(),
            stop: stop.into(),
            seconds: t0.elapsed().as_secs_f64(),
        })
    }
}

/// A sampler seed from the clock, for sampling without a given seed.
fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// sha256 of a model file, remembered in the store by path, size and mtime.
pub async fn model_sha256(store: &Store, path: &Path) -> Result<String, AnswerError> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let err = |e: std::io::Error| AnswerError::Model {
        path: path.display().to_string(),
        detail: e.to_string(),
    };
    let meta = std::fs::metadata(path).map_err(err)?;
    let mtime_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    let key = path.display().to_string();
    let size = meta.len() as i64;
    if let Some(h) = store.model_hash(&key, size, mtime_ns).await? {
        return Ok(h);
    }
    let mut f = std::fs::File::open(path).map_err(err)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(err)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    let hex = hex::encode(h.finalize());
    store
        .remember_model_hash(&key, size, mtime_ns, &hex)
        .await?;
    Ok(hex)
}

/// One source shown in the prompt or kept for checking.
#[derive(Debug, Clone)]
pub struct PreparedSource {
    pub retrieved: Retrieved,
    /// Its `[n]` in the prompt, if it was shown.
    pub prompt_n: Option<usize>,
}

/// Retrieval and prompt for one question.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub question: String,
    /// What retrieval searched for (and the checker read as the question):
    /// the question, completed with earlier turns' words for a follow-up.
    pub retrieval_query: String,
    /// Earlier conversation messages that fitted into the prompt.
    pub history_in_prompt: usize,
    pub sources: Vec<PreparedSource>,
    pub messages: Vec<ChatMessage>,
    /// Set when the question is refused before generation.
    pub refusal: Option<String>,
    pub started: Instant,
}

/// The instruction after the sources. One user turn (the template adds its
/// own system turn): with SmolLM2-135M this gave the most grounded drafts of
/// the variants tried (a separate system message, question before sources).
pub const INSTRUCTION: &str = "Using the sources above, answer in one short sentence and \
cite the source like [1]. If the sources do not answer the question, say \"The sources do \
not answer this.\"";

fn source_block(n: usize, r: &Retrieved) -> String {
    let title = r.hit.title.as_deref().unwrap_or(&r.hit.url);
    format!("[{n}] {title} ({})\n{}", r.hit.url, r.hit.text)
}

fn user_message(question: &str, blocks: &[String]) -> String {
    format!(
        "{}\n\n{INSTRUCTION}\nQuestion: {question}",
        blocks.join("\n\n")
    )
}

/// Words that point back to something named earlier in a conversation.
const ANAPHORA: &[&str] = &[
    "it", "its", "it's", "they", "them", "their", "theirs", "there", "that", "this", "these",
    "those", "he", "him", "his", "she", "her", "hers", "same", "one",
];

/// Most words taken from earlier turns into a follow-up's retrieval query.
const MAX_CONTEXT_WORDS: usize = 6;

/// Whether `question` leans on earlier turns: it has a word pointing back
/// (it, they, there, that, ...) or at most one content word of its own
/// beyond the question frame ("And the price?").
pub fn is_follow_up(question: &str) -> bool {
    let words = index::text::words(question);
    let anaphoric = words
        .iter()
        .any(|(_, _, w)| ANAPHORA.contains(&w.to_lowercase().as_str()));
    let own = index::text::query_words(question)
        .into_iter()
        .filter(|w| !index::text::is_stopword(w))
        .count();
    anaphoric || own <= 1
}

/// The retrieval query for `question` after `history`: the question as is,
/// or for a follow-up ([`is_follow_up`]) the question followed by the
/// content words of earlier user turns, newest turn first, that it lacks
/// (at most [`MAX_CONTEXT_WORDS`]). Deterministic, so a conversation
/// replayed retrieves the same passages.
pub fn retrieval_query(question: &str, history: &[ChatMessage]) -> String {
    let question = question.trim();
    if !history.iter().any(|m| m.role == "user") || !is_follow_up(question) {
        return question.to_string();
    }
    let own: std::collections::BTreeSet<String> = index::text::query_words(question)
        .iter()
        .map(|w| index::text::root(w))
        .collect();
    let mut roots = own.clone();
    let mut extra: Vec<String> = Vec::new();
    'turns: for m in history.iter().rev().filter(|m| m.role == "user") {
        for w in index::text::query_words(&m.content) {
            if extra.len() >= MAX_CONTEXT_WORDS {
                break 'turns;
            }
            if index::text::is_stopword(&w) || ANAPHORA.contains(&w.as_str()) {
                continue;
            }
            if roots.insert(index::text::root(&w)) {
                extra.push(w);
            }
        }
    }
    if extra.is_empty() {
        question.to_string()
    } else {
        format!("{question} {}", extra.join(" "))
    }
}

/// Retrieves allowed passages and builds the prompt, fitted to the token
/// budget; refuses (sets `refusal`) when nothing allowed is relevant enough.
pub async fn prepare(
    store: &Store,
    generator: &Generator<'_>,
    question: &str,
    opts: &AskOptions,
) -> Result<Prepared, AnswerError> {
    let started = Instant::now();
    let question = question.trim();
    if question.is_empty() {
        return Err(AnswerError::EmptyQuestion);
    }
    let chars = question.chars().count();
    if chars > MAX_QUESTION_CHARS {
        return Err(AnswerError::QuestionTooLong {
            chars,
            limit: MAX_QUESTION_CHARS,
        });
    }
    let query = retrieval_query(question, &opts.history);
    let retrieved = index::retrieve(
        store,
        &query,
        opts.policy_sha256.as_deref(),
        opts.retrieve_k,
    )
    .await?;
    let best = retrieved.iter().map(|r| r.coverage).fold(0.0, f64::max);
    let mut refusal = None;
    if retrieved.is_empty() {
        refusal =
            Some("no passage of a page allowed for rag_attributed matches the question".into());
    } else if best < opts.min_coverage {
        refusal = Some(format!(
            "no page allowed for rag_attributed is about the question (best passage holds {:.0}% of its terms, at least {:.0}% needed)",
            best * 100.0,
            opts.min_coverage * 100.0
        ));
    }
    let mut sources: Vec<PreparedSource> = retrieved
        .into_iter()
        .map(|retrieved| PreparedSource {
            retrieved,
            prompt_n: None,
        })
        .collect();
    let mut messages = Vec::new();
    let mut history_in_prompt = 0;
    if refusal.is_none() {
        // Relevant passages in retrieval order (rarity-weighted coverage,
        // then BM25).
        let mut order: Vec<usize> = (0..sources.len())
            .filter(|&i| sources[i].retrieved.coverage >= opts.min_coverage / 2.0)
            .collect();
        order.truncate(opts.prompt_passages.max(1));
        let budget = opts
            .prompt_budget_tokens
            .min(generator.n_ctx().saturating_sub(opts.max_tokens + 1));
        // Earlier turns as the model's own chat turns (a conversation
        // starts with a user turn: a leading assistant message is dropped).
        let mut history: &[ChatMessage] = &opts.history;
        while history.first().is_some_and(|m| m.role != "user") {
            history = history.get(1..).unwrap_or(&[]);
        }
        loop {
            let blocks: Vec<String> = order
                .iter()
                .enumerate()
                .map(|(i, &s)| source_block(i + 1, &sources[s].retrieved))
                .collect();
            let mut m: Vec<ChatMessage> = history.to_vec();
            m.push(ChatMessage::new("user", user_message(question, &blocks)));
            let n = generator.prompt_tokens(&m)?.len();
            if n <= budget {
                messages = m;
                history_in_prompt = history.len();
                break;
            }
            // Over budget: drop the oldest exchange (user turn and the
            // replies after it) first, then passages from the end.
            if !history.is_empty() {
                let next_user = history
                    .iter()
                    .skip(1)
                    .position(|x| x.role == "user")
                    .map_or(history.len(), |i| i + 1);
                history = history.get(next_user..).unwrap_or(&[]);
                continue;
            }
            if order.len() <= 1 {
                return Err(AnswerError::PromptTooLong {
                    tokens: n,
                    limit: budget,
                });
            }
            order.pop();
        }
        for (i, &s) in order.iter().enumerate() {
            sources[s].prompt_n = Some(i + 1);
        }
    }
    Ok(Prepared {
        question: question.to_string(),
        retrieval_query: query,
        history_in_prompt,
        sources,
        messages,
        refusal,
        started,
    })
}

/// One citation of a checked answer (see README, `byline ask --json`).
#[derive(Debug, Clone, Serialize)]
pub struct Citation {
    pub n: usize,
    pub url: String,
    pub title: Option<String>,
    pub author: Option<String>,
    pub site: Option<String>,
    /// SPDX id (or licence family / LicenseRef) from the licence evidence.
    pub licence: Option<String>,
    pub licence_url: Option<String>,
    /// Title, author, source and licence, as CC attribution asks.
    pub attribution: String,
    /// Verbatim span of the source (empty when the page forbids quoting).
    pub quote: String,
    /// Code-point offsets of `quote` in the page's stored text.
    pub start: usize,
    pub end: usize,
    pub support: f64,
    pub verbatim: bool,
    pub verdict_id: i64,
    pub decision: String,
    pub conditions: Vec<String>,
    pub policy_sha256: String,
    pub page_id: i64,
    pub passage_id: i64,
}

/// One sentence of the draft after checking.
#[derive(Debug, Clone, Serialize)]
pub struct SentenceReport {
    pub text: String,
    pub kind: SentenceKind,
    pub supported: bool,
    /// Citation numbers (into `citations`) backing it.
    pub citations: Vec<usize>,
    pub support: f64,
    /// The checker moved the citation away from what the model cited.
    pub reattached: bool,
    /// The `[n]` the model wrote (prompt numbering).
    pub model_citations: Vec<usize>,
    /// Whether each model citation alone supports the sentence.
    pub model_citation_support: Vec<bool>,
    /// Why the checker kept or dropped it, in words.
    pub why: String,
    /// The content words it adds beyond the question (roots); empty for
    /// everything that is not a claim.
    pub novel_terms: Vec<String>,
    /// The passage span it was checked against: the supporting one, or
    /// when dropped the best one (null when it is not a claim).
    pub evidence: Option<Evidence>,
}

/// The passage span a sentence was checked against and how it matched.
#[derive(Debug, Clone, Serialize)]
pub struct Evidence {
    pub passage_id: i64,
    pub page_id: i64,
    pub url: String,
    /// This passage supports the sentence.
    pub supports: bool,
    /// Its score for the sentence.
    pub score: f64,
    /// The passage sentence(s) that match best, cut to the page's quote
    /// limit (empty when it forbids quoting).
    pub quote: String,
    /// Code-point offsets of the (uncut) span in the page's stored text.
    pub start: usize,
    pub end: usize,
    /// The sentence's content terms found in the passage or page title.
    pub matched_terms: Vec<String>,
    /// Those found in neither.
    pub missing_terms: Vec<String>,
    /// Each number and name of the sentence and whether the passage has it
    /// in the same role (beside another word of the claim).
    pub roles: Vec<RoleReport>,
}

/// One number or name of a claim and its role in the passage.
#[derive(Debug, Clone, Serialize)]
pub struct RoleReport {
    pub term: String,
    /// `number` or `name`.
    pub kind: &'static str,
    pub anchored: bool,
    /// The claim's words in the same passage sentence.
    pub anchors: Vec<String>,
    /// Code-point offsets in the page text of the passage sentence holding
    /// it (null when the passage lacks it).
    pub start: Option<usize>,
    pub end: Option<usize>,
}

/// One retrieved passage.
#[derive(Debug, Clone, Serialize)]
pub struct RetrievedReport {
    pub passage_id: i64,
    pub page_id: i64,
    pub url: String,
    pub bm25: f64,
    pub coverage: f64,
    /// The ranking score: rarity-weighted coverage with a phrase bonus.
    pub score: f64,
    pub prompt_n: Option<usize>,
}

/// A checked answer: the `byline ask --json` object.
#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    pub answer_id: Option<i64>,
    pub question: String,
    pub answer: String,
    pub refused: bool,
    pub reason: Option<String>,
    pub citations: Vec<Citation>,
    pub sentences: Vec<SentenceReport>,
    pub draft: String,
    pub model: String,
    pub model_sha256: String,
    pub policy_sha256: Option<String>,
    pub retrieved: Vec<RetrievedReport>,
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
    pub seconds: f64,
    /// Why the draft ended: `eos`, `max_tokens`, `stop_string` (the chat
    /// format's own), `stop_sequence` (the caller's), `context_full`; null
    /// when nothing was generated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub draft_stop: Option<String>,
    /// For a follow-up in a conversation: what retrieval searched for (the
    /// question completed with earlier turns' words); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retrieval_query: Option<String>,
    /// Earlier conversation messages rendered into the prompt (absent for
    /// a single question).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history_messages: Option<usize>,
}

/// The refusal text shown as `answer`.
pub const REFUSAL_TEXT: &str = "I cannot answer this from the sources I am allowed to use.";

/// Generates for a prepared question (or not, when refused) and finishes.
pub async fn ask(
    store: &Store,
    generator: &Generator<'_>,
    question: &str,
    opts: &AskOptions,
    on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
) -> Result<Answer, AnswerError> {
    let prepared = prepare(store, generator, question, opts).await?;
    let draft = if prepared.refusal.is_none() {
        let prompt = generator.prompt_tokens(&prepared.messages)?;
        Some(generator.draft_with(&prompt, opts.max_tokens, &opts.sampling, on_text)?)
    } else {
        None
    };
    finish(store, generator, prepared, draft, opts).await
}

/// Licence id and URL of a page from the evidence set its verdict used:
/// the policy's one choice ([`crate::policy::evaluate::page_licence`]), so
/// a citation names the licence the verdict was decided under. Public so
/// that a test can hold citations, verdicts and exports to one licence.
pub async fn citation_licence(
    store: &Store,
    set_id: i64,
) -> Result<(Option<String>, Option<String>), StoreError> {
    let rows = store.evidence_rows(set_id).await?;
    let best =
        crate::policy::evaluate::page_licence(rows.iter().map(|r| &r.evidence)).map(|(_, f, _)| f);
    Ok(match best {
        Some(f) => (Some(f.effective_id()), f.url.clone()),
        None => (None, None),
    })
}

/// The attribution line: title, author, source, licence (CC "TASL").
pub fn attribution(
    title: Option<&str>,
    author: Option<&str>,
    site: Option<&str>,
    url: &str,
    licence: Option<&str>,
    licence_url: Option<&str>,
) -> String {
    let mut s = format!("\"{}\"", title.unwrap_or(url));
    if let Some(a) = author {
        s.push_str(&format!(" by {a}"));
    }
    if let Some(site) = site {
        s.push_str(&format!(", {site}"));
    }
    s.push_str(&format!(", {url}"));
    match (licence, licence_url) {
        (Some(l), Some(u)) => s.push_str(&format!(", licensed under {l} ({u})")),
        (Some(l), None) => s.push_str(&format!(", licensed under {l}")),
        _ => s.push_str(", no licence stated (used under the site's consent signals)"),
    }
    s
}

/// Code points of `text` before byte `byte` (a byte inside a character
/// counts that character as after it; past the end, all of them).
fn char_offset(text: &str, byte: usize) -> usize {
    text.char_indices().take_while(|(i, _)| *i < byte).count()
}

/// The retrieved passages as the checker reads them.
fn checker_sources(prepared: &Prepared) -> Vec<Source> {
    let mut checker_sources: Vec<Source> = Vec::new();
    for s in &prepared.sources {
        let no_quote = s.retrieved.hit.conditions.iter().any(|c| c == "no_quote");
        let max = s
            .retrieved
            .hit
            .conditions
            .iter()
            .filter_map(|c| c.strip_prefix("max_quote_chars:"))
            .filter_map(|n| n.parse::<usize>().ok())
            .min();
        checker_sources.push(Source {
            prompt_n: s.prompt_n,
            text: s.retrieved.hit.text.clone(),
            // The title without the site name: the site's name is on every
            // page and supports nothing.
            title: s.retrieved.hit.index_title.clone(),
            max_quote_chars: if no_quote { Some(0) } else { max },
        });
    }
    checker_sources
}

/// Checks a draft while it is generated: each sentence is checked as soon
/// as the next one begins (the last at [`LiveCheck::finish`]), and those
/// that pass come out with their citation numbers, numbered exactly as
/// [`finish`] numbers them (the checker is deterministic per sentence).
/// [`finish`]'s record stays the authority: it also re-verifies that every
/// cited page is still allowed.
pub struct LiveCheck {
    question: String,
    sources: Vec<Source>,
    cfg: CheckConfig,
    text: String,
    checked: usize,
    cites: HashMap<(usize, usize, usize), usize>,
}

impl LiveCheck {
    pub fn new(prepared: &Prepared, opts: &AskOptions) -> LiveCheck {
        LiveCheck {
            question: prepared.retrieval_query.clone(),
            sources: checker_sources(prepared),
            cfg: opts.check.clone(),
            text: String::new(),
            checked: 0,
            cites: HashMap::new(),
        }
    }

    /// Adds drafted text; returns the sentences completed by it that
    /// passed, each as `text [n]`.
    pub fn push(&mut self, piece: &str) -> Vec<String> {
        self.text.push_str(piece);
        let spans = crate::index::text::sentences(&self.text);
        match spans.len().checked_sub(1).and_then(|last| spans.get(last)) {
            Some(&(upto, _)) if spans.len() >= 2 => self.emit(upto),
            _ => Vec::new(),
        }
    }

    /// The draft is complete: the passing sentences not yet returned.
    pub fn finish(&mut self) -> Vec<String> {
        self.emit(self.text.len())
    }

    fn emit(&mut self, upto: usize) -> Vec<String> {
        let Some(done) = self.text.get(..upto) else {
            return Vec::new();
        };
        let checked = check::check(&self.question, done, &self.sources, &self.cfg);
        let mut out = Vec::new();
        for c in checked.iter().skip(self.checked) {
            if let Some(sup) = c.support
                && let Some(src) = self.sources.get(sup.source)
            {
                let (qa, qb) = check::quote_span(src, &sup);
                let next = self.cites.len() + 1;
                let n = *self.cites.entry((sup.source, qa, qb)).or_insert(next);
                out.push(format!("{} [{n}]", c.text));
            }
        }
        self.checked = self.checked.max(checked.len());
        out
    }
}

/// [`ask`] streaming the checked answer instead of the draft: `on_sentence`
/// gets each sentence (`text [n]`) as soon as it passes the checker.
pub async fn ask_checked_stream(
    store: &Store,
    generator: &Generator<'_>,
    question: &str,
    opts: &AskOptions,
    on_sentence: &mut dyn FnMut(&str) -> ControlFlow<()>,
) -> Result<Answer, AnswerError> {
    let prepared = prepare(store, generator, question, opts).await?;
    let draft = if prepared.refusal.is_none() {
        let mut live = LiveCheck::new(&prepared, opts);
        let prompt = generator.prompt_tokens(&prepared.messages)?;
        let mut on_text = |t: &str| {
            for s in live.push(t) {
                if on_sentence(&s).is_break() {
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        };
        let d = generator.draft_with(&prompt, opts.max_tokens, &opts.sampling, &mut on_text)?;
        for s in live.finish() {
            if on_sentence(&s).is_break() {
                return Err(AnswerError::Cancelled);
            }
        }
        Some(d)
    } else {
        None
    };
    finish(store, generator, prepared, draft, opts).await
}

/// Checks the draft, builds the citations, re-verifies that every cited
/// page is still allowed, records the answer.
pub async fn finish(
    store: &Store,
    generator: &Generator<'_>,
    prepared: Prepared,
    draft: Option<Draft>,
    opts: &AskOptions,
) -> Result<Answer, AnswerError> {
    let question = prepared.question.clone();
    // The checker reads the question in its conversation: a follow-up's
    // restatement of earlier turns is no claim either.
    let check_question = prepared.retrieval_query.clone();
    let draft_text = draft.as_ref().map(|d| d.text.clone()).unwrap_or_default();
    let checker_sources = checker_sources(&prepared);
    let checked: Vec<CheckedSentence> = if draft.is_some() {
        check::check(&check_question, &draft_text, &checker_sources, &opts.check)
    } else {
        Vec::new()
    };
    // Re-verify at the end: a revocation during generation must win.
    let mut still_allowed: HashMap<usize, bool> = HashMap::new();
    for s in checked.iter().filter_map(|c| c.support) {
        if let std::collections::hash_map::Entry::Vacant(e) = still_allowed.entry(s.source) {
            let hit = &prepared.sources[s.source].retrieved.hit;
            let ok = store
                .allowed_passage(hit.passage_id, opts.policy_sha256.as_deref())
                .await?
                .is_some_and(|h| h.verdict_id == hit.verdict_id);
            e.insert(ok);
        }
    }
    let mut citations: Vec<Citation> = Vec::new();
    let mut by_source_quote: HashMap<(usize, usize, usize), usize> = HashMap::new();
    let mut licences: HashMap<i64, (Option<String>, Option<String>)> = HashMap::new();
    let mut sentences = Vec::new();
    let mut answer_parts = Vec::new();
    for c in &checked {
        let support = c
            .support
            .filter(|s| still_allowed.get(&s.source) == Some(&true));
        let mut cites = Vec::new();
        if let Some(sup) = support {
            let src = &checker_sources[sup.source];
            let (qa, qb) = check::quote_span(src, &sup);
            let key = (sup.source, qa, qb);
            let n = match by_source_quote.get(&key) {
                Some(&n) => n,
                None => {
                    let hit = &prepared.sources[sup.source].retrieved.hit;
                    if let std::collections::hash_map::Entry::Vacant(e) =
                        licences.entry(hit.verdict_set_id)
                    {
                        let l = citation_licence(store, hit.verdict_set_id).await?;
                        e.insert(l);
                    }
                    let (licence, licence_url) = licences[&hit.verdict_set_id].clone();
                    let n = citations.len() + 1;
                    // A stored offset: read as-is from the corpus file, so never trusted
                    // to be non-negative.
                    let base = usize::try_from(hit.start_char).unwrap_or(0);
                    citations.push(Citation {
                        n,
                        url: hit.url.clone(),
                        title: hit.title.clone(),
                        author: hit.author.clone(),
                        site: hit.site_name.clone(),
                        attribution: attribution(
                            hit.title.as_deref(),
                            hit.author.as_deref(),
                            hit.site_name.as_deref(),
                            &hit.url,
                            licence.as_deref(),
                            licence_url.as_deref(),
                        ),
                        licence,
                        licence_url,
                        quote: src.text.get(qa..qb).unwrap_or_default().to_string(),
                        start: base.saturating_add(char_offset(&src.text, qa)),
                        end: base.saturating_add(char_offset(&src.text, qb)),
                        support: sup.score,
                        verbatim: sup.verbatim,
                        verdict_id: hit.verdict_id,
                        decision: hit.decision.clone(),
                        conditions: hit.conditions.clone(),
                        policy_sha256: hit.policy_sha256.clone(),
                        page_id: hit.page_id,
                        passage_id: hit.passage_id,
                    });
                    by_source_quote.insert(key, n);
                    n
                }
            };
            cites.push(n);
            answer_parts.push(format!("{} [{n}]", c.text));
        }
        let evidence = c.explain.as_ref().map(|ex| {
            let src = &checker_sources[ex.source];
            let hit = &prepared.sources[ex.source].retrieved.hit;
            let base = usize::try_from(hit.start_char).unwrap_or(0);
            let sup = match c.support {
                Some(s) if s.source == ex.source => s,
                _ => check::Support {
                    source: ex.source,
                    ..check::support_score(
                        &check_question,
                        &c.text,
                        &src.text,
                        &src.title,
                        &opts.check,
                    )
                },
            };
            let (qa, qb) = check::quote_span(src, &sup);
            Evidence {
                passage_id: hit.passage_id,
                page_id: hit.page_id,
                url: hit.url.clone(),
                supports: support.is_some_and(|s| s.source == ex.source),
                score: sup.score,
                quote: src.text.get(qa..qb).unwrap_or_default().to_string(),
                start: base.saturating_add(char_offset(&src.text, sup.quote_start)),
                end: base.saturating_add(char_offset(&src.text, sup.quote_end)),
                matched_terms: ex.matched.clone(),
                missing_terms: ex.missing.clone(),
                roles: ex
                    .roles
                    .iter()
                    .map(|r| RoleReport {
                        term: r.term.clone(),
                        kind: r.kind,
                        anchored: r.anchored,
                        anchors: r.anchors.clone(),
                        start: r.sentence.map(|(a, _)| base + char_offset(&src.text, a)),
                        end: r.sentence.map(|(_, b)| base + char_offset(&src.text, b)),
                    })
                    .collect(),
            }
        });
        let why = if c.support.is_some() && support.is_none() {
            format!(
                "{}; but the page is no longer allowed for rag_attributed",
                c.why
            )
        } else {
            c.why.clone()
        };
        sentences.push(SentenceReport {
            why,
            novel_terms: c.novel_terms.clone(),
            evidence,
            text: c.text.clone(),
            kind: c.kind,
            supported: support.is_some(),
            citations: cites,
            support: support.map(|s| s.score).unwrap_or(c.best_score),
            reattached: c.reattached && support.is_some(),
            model_citations: c.model_citations.clone(),
            model_citation_support: c.model_citation_support.clone(),
        });
    }
    let (refused, reason) = if let Some(r) = &prepared.refusal {
        (true, Some(r.clone()))
    } else if citations.is_empty() {
        let said_no = checked.iter().any(|c| c.kind == SentenceKind::NoAnswer);
        let claims = checked
            .iter()
            .filter(|c| c.kind == SentenceKind::Claim)
            .count();
        let restated = checked
            .iter()
            .filter(|c| matches!(c.kind, SentenceKind::Restatement | SentenceKind::Question))
            .count();
        let r = if said_no && claims == 0 {
            "the model found no answer in the allowed sources".to_string()
        } else if claims == 0 && restated > 0 {
            format!(
                "the draft only restated the question ({restated} sentence(s)); nothing informative is left to check"
            )
        } else if claims == 0 {
            "the model gave no answer".to_string()
        } else {
            format!(
                "no sentence of the draft is supported by an allowed source ({claims} checked, best support {:.2} < {:.2}{})",
                checked.iter().map(|c| c.best_score).fold(0.0, f64::max),
                opts.check.min_support,
                if restated > 0 {
                    format!("; {restated} sentence(s) restating the question are no claim")
                } else {
                    String::new()
                }
            )
        };
        (true, Some(r))
    } else {
        (false, None)
    };
    let answer_text = if refused {
        REFUSAL_TEXT.to_string()
    } else {
        answer_parts.join(" ")
    };
    let mut answer = Answer {
        answer_id: None,
        question,
        answer: answer_text,
        refused,
        reason,
        citations,
        sentences,
        draft: draft_text,
        model: generator.model_path.clone(),
        model_sha256: generator.model_sha256.clone(),
        policy_sha256: opts.policy_sha256.clone(),
        retrieved: prepared
            .sources
            .iter()
            .map(|s| RetrievedReport {
                passage_id: s.retrieved.hit.passage_id,
                page_id: s.retrieved.hit.page_id,
                url: s.retrieved.hit.url.clone(),
                bm25: s.retrieved.hit.bm25,
                coverage: (s.retrieved.coverage * 1000.0).round() / 1000.0,
                score: s.retrieved.score,
                prompt_n: s.prompt_n,
            })
            .collect(),
        prompt_tokens: draft.as_ref().map(|d| d.prompt_tokens).unwrap_or(0),
        generated_tokens: draft.as_ref().map(|d| d.tokens).unwrap_or(0),
        seconds: 0.0,
        draft_stop: draft.as_ref().map(|d| d.stop.clone()),
        retrieval_query: (prepared.retrieval_query != prepared.question)
            .then(|| prepared.retrieval_query.clone()),
        history_messages: (!opts.history.is_empty()).then_some(prepared.history_in_prompt),
    };
    answer.seconds = (prepared.started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
    if opts.record {
        let json = serde_json::to_string(&answer).expect("answers serialize");
        let id = store
            .record_answer(&NewAnswer {
                asked_at: time::OffsetDateTime::now_utc().unix_timestamp(),
                question: &answer.question,
                answer: &answer.answer,
                draft: &answer.draft,
                refused: answer.refused,
                reason: answer.reason.as_deref(),
                model_path: &answer.model,
                model_sha256: &answer.model_sha256,
                policy_sha256: answer.policy_sha256.as_deref(),
                seconds: answer.seconds,
                json: &json,
                citations: answer
                    .citations
                    .iter()
                    .map(|c| NewCitation {
                        n: c.n as i64,
                        page_id: c.page_id,
                        passage_id: c.passage_id,
                        url: &c.url,
                        verdict_id: c.verdict_id,
                        policy_sha256: &c.policy_sha256,
                        licence: c.licence.as_deref(),
                        quote: &c.quote,
                        start_char: c.start as i64,
                        end_char: c.end as i64,
                        support: c.support,
                    })
                    .collect(),
            })
            .await?;
        answer.answer_id = Some(id);
    }
    Ok(answer)
}

#[cfg(test)]
mod offset_tests {
    #[test]
    fn char_offsets_never_cut_a_character() {
        assert_eq!(super::char_offset("aé b", 3), 2);
        assert_eq!(super::char_offset("aé b", 2), 2, "inside é");
        assert_eq!(super::char_offset("aé b", 99), 4);
        assert_eq!(super::char_offset("", 1), 0);
    }
}
