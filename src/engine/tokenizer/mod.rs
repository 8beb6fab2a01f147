//! Tokenizers built from GGUF metadata.
//!
//! Two vocabulary kinds, chosen by `tokenizer.ggml.model`:
//! * `gpt2`: byte-level BPE with the pre-tokenizer named by
//!   `tokenizer.ggml.pre` ([`bpe`], [`pretok`]);
//! * `llama`: SentencePiece-style scores-based merging with `▁` for spaces and
//!   `<0xXX>` byte fallback ([`spm`]).
//!
//! Special tokens (control, user-defined, unknown) are split out of the text
//! before the vocabulary model runs, the way llama.cpp does: with
//! `parse_special` off only user-defined tokens are recognised in text.
//! Ids match llama.cpp's for the golden sets in `tests/data/tokenizer/`.

pub mod bpe;
mod from_gguf;
pub mod pretok;
pub mod spm;

use std::collections::{HashMap, HashSet};

use aho_corasick::{AhoCorasick, MatchKind};

pub use pretok::{PreKind, PreTokenizer};

/// Errors building a tokenizer.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// `tokenizer.ggml.model` names a vocabulary kind we do not implement.
    #[error("unsupported tokenizer model {0:?} (supported: gpt2, llama)")]
    UnsupportedModel(String),
    /// `tokenizer.ggml.pre` names a pre-tokenizer we do not know.
    #[error("unknown pre-tokenizer {0:?}")]
    UnknownPre(String),
    /// A merge line is not `"left right"`.
    #[error("merge {index} is {text:?}, expected two tokens separated by one space")]
    BadMerge { index: usize, text: String },
    /// A pre-tokenizer regex failed to compile.
    #[error("pre-tokenizer regex {pattern:?} failed to compile: {message}")]
    Regex { pattern: String, message: String },
    /// The vocabulary is empty.
    #[error("tokenizer has no tokens")]
    Empty,
    /// A per-token array has the wrong length.
    #[error("{key} has {got} entries, expected {want} (one per token)")]
    Length {
        key: &'static str,
        got: usize,
        want: usize,
    },
    /// A special token id is out of range.
    #[error("{key} = {id} is out of range for {n} tokens")]
    BadId {
        key: &'static str,
        id: u32,
        n: usize,
    },
    /// A metadata key is missing or has the wrong type.
    #[error("gguf metadata {key}: {message}")]
    Metadata { key: String, message: String },
    /// Building the special-token matcher failed.
    #[error("special-token matcher: {0}")]
    Matcher(String),
}

/// GGUF token types (`tokenizer.ggml.token_type`).
pub mod token_type {
    pub const NORMAL: i32 = 1;
    pub const UNKNOWN: i32 = 2;
    pub const CONTROL: i32 = 3;
    pub const USER_DEFINED: i32 = 4;
    pub const UNUSED: i32 = 5;
    pub const BYTE: i32 = 6;
}

/// Tokenizer metadata as plain data, as found under `tokenizer.ggml.*`.
#[derive(Debug, Clone, Default)]
pub struct TokenizerData {
    /// `tokenizer.ggml.model`: `gpt2` or `llama`.
    pub model: String,
    /// `tokenizer.ggml.pre`.
    pub pre: Option<String>,
    /// `tokenizer.ggml.tokens`.
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.token_type` (empty: all normal).
    pub token_types: Vec<i32>,
    /// `tokenizer.ggml.scores` (SentencePiece; may be empty for BPE).
    pub scores: Vec<f32>,
    /// `tokenizer.ggml.merges` (BPE).
    pub merges: Vec<String>,
    pub bos_id: Option<u32>,
    pub eos_id: Option<u32>,
    pub unk_id: Option<u32>,
    pub pad_id: Option<u32>,
    pub eot_id: Option<u32>,
    /// `tokenizer.ggml.add_bos_token` (None: the model kind's default).
    pub add_bos: Option<bool>,
    /// `tokenizer.ggml.add_eos_token`.
    pub add_eos: Option<bool>,
    /// `tokenizer.ggml.add_space_prefix` (SentencePiece; default true).
    pub add_space_prefix: Option<bool>,
}

// Token attributes, as llama.cpp derives them from the token types.
const ATTR_NORMAL: u8 = 1;
const ATTR_UNKNOWN: u8 = 2;
const ATTR_CONTROL: u8 = 4;
const ATTR_USER_DEFINED: u8 = 8;
const ATTR_UNUSED: u8 = 16;
const ATTR_BYTE: u8 = 32;

/// Texts that end generation; llama.cpp marks them control tokens and
/// end-of-generation even when the file marks them otherwise.
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<\u{ff5c}end\u{2581}of\u{2581}sentence\u{ff5c}>",
    "[e~[",
];

/// Fill-in-the-middle markers llama.cpp also forces to control tokens; the
/// pad, repo and file-separator ones end generation too.
const FIM_TEXTS: &[(&str, bool)] = &[
    ("<|fim_prefix|>", false),
    ("<fim-prefix>", false),
    ("<fim_prefix>", false),
    ("<\u{ff5c}fim\u{2581}begin\u{ff5c}>", false),
    ("<PRE>", false),
    ("\u{2581}<PRE>", false),
    ("<|code_prefix|>", false),
    ("<|prefix|>", false),
    ("<|fim_suffix|>", false),
    ("<fim-suffix>", false),
    ("<fim_suffix>", false),
    ("<\u{ff5c}fim\u{2581}hole\u{ff5c}>", false),
    ("<SUF>", false),
    ("\u{2581}<SUF>", false),
    ("<|code_suffix|>", false),
    ("<|suffix|>", false),
    ("<|fim_middle|>", false),
    ("<fim-middle>", false),
    ("<fim_middle>", false),
    ("<\u{ff5c}fim\u{2581}end\u{ff5c}>", false),
    ("<MID>", false),
    ("\u{2581}<MID>", false),
    ("<|code_middle|>", false),
    ("<|middle|>", false),
    ("<|fim_pad|>", true),
    ("<fim-pad>", true),
    ("<fim_pad>", true),
    ("<PAD>", true),
    ("[PAD]", true),
    ("<|fim_repo|>", true),
    ("<|repo_name|>", true),
    ("<fim-repo>", true),
    ("<REPO>", true),
    ("<reponame>", true),
    ("<|file_sep|>", true),
];

#[derive(Debug)]
enum Model {
    Bpe(bpe::Bpe),
    Spm(spm::Spm),
}

/// Splits special-token text out of input.
#[derive(Debug)]
struct SpecialMatcher {
    ac: AhoCorasick,
    ids: Vec<u32>,
}

impl SpecialMatcher {
    fn new(tokens: &[String], ids: Vec<u32>) -> Result<Option<SpecialMatcher>, TokenizerError> {
        let ids: Vec<u32> = ids
            .into_iter()
            .filter(|&i| !tokens[i as usize].is_empty())
            .collect();
        if ids.is_empty() {
            return Ok(None);
        }
        let ac = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(ids.iter().map(|&i| tokens[i as usize].as_str()))
            .map_err(|e| TokenizerError::Matcher(e.to_string()))?;
        Ok(Some(SpecialMatcher { ac, ids }))
    }
}

/// A tokenizer for one vocabulary.
#[derive(Debug)]
pub struct Tokenizer {
    model: Model,
    tokens: Vec<String>,
    attrs: Vec<u8>,
    token_to_id: HashMap<String, u32>,
    /// Matches control, user-defined and unknown tokens (`parse_special` on).
    special_all: Option<SpecialMatcher>,
    /// Matches user-defined tokens only (`parse_special` off).
    special_user: Option<SpecialMatcher>,
    bos: Option<u32>,
    eos: Option<u32>,
    eog: HashSet<u32>,
    add_bos: bool,
    add_eos: bool,
    add_space_prefix: bool,
}

/// A piece of input after special-token splitting.
enum Fragment<'t> {
    Text(&'t str),
    Token(u32),
}

impl Tokenizer {
    /// Builds a tokenizer from plain metadata.
    pub fn new(data: TokenizerData) -> Result<Tokenizer, TokenizerError> {
        let n = data.tokens.len();
        if n == 0 {
            return Err(TokenizerError::Empty);
        }
        if !data.token_types.is_empty() && data.token_types.len() != n {
            return Err(TokenizerError::Length {
                key: "tokenizer.ggml.token_type",
                got: data.token_types.len(),
                want: n,
            });
        }
        if !data.scores.is_empty() && data.scores.len() != n {
            return Err(TokenizerError::Length {
                key: "tokenizer.ggml.scores",
                got: data.scores.len(),
                want: n,
            });
        }
        for (key, id) in [
            ("tokenizer.ggml.bos_token_id", data.bos_id),
            ("tokenizer.ggml.eos_token_id", data.eos_id),
            ("tokenizer.ggml.unknown_token_id", data.unk_id),
            ("tokenizer.ggml.padding_token_id", data.pad_id),
            ("tokenizer.ggml.eot_token_id", data.eot_id),
        ] {
            if let Some(id) = id
                && id as usize >= n
            {
                return Err(TokenizerError::BadId { key, id, n });
            }
        }
        let mut token_to_id = HashMap::with_capacity(n);
        for (i, t) in data.tokens.iter().enumerate() {
            // Later duplicates win, as in llama.cpp's map.
            token_to_id.insert(t.clone(), i as u32);
        }
        let mut attrs: Vec<u8> = (0..n)
            .map(|i| match data.token_types.get(i).copied().unwrap_or(1) {
                token_type::NORMAL => ATTR_NORMAL,
                token_type::UNKNOWN => ATTR_UNKNOWN,
                token_type::CONTROL => ATTR_CONTROL,
                token_type::USER_DEFINED => ATTR_USER_DEFINED,
                token_type::UNUSED => ATTR_UNUSED,
                token_type::BYTE => ATTR_BYTE,
                _ => 0,
            })
            .collect();
        let mut eog = HashSet::new();
        for id in [data.eos_id, data.eot_id].into_iter().flatten() {
            eog.insert(id);
        }
        for text in EOG_TEXTS {
            if let Some(&id) = token_to_id.get(*text) {
                eog.insert(id);
                attrs[id as usize] |= ATTR_CONTROL;
            }
        }
        for (text, ends) in FIM_TEXTS {
            if let Some(&id) = token_to_id.get(*text) {
                if *ends {
                    eog.insert(id);
                }
                attrs[id as usize] |= ATTR_CONTROL;
            }
        }
        let (model, add_bos_default, add_space_prefix) = match data.model.as_str() {
            "gpt2" => {
                let kind = PreKind::from_name(data.pre.as_deref())?;
                let bpe = bpe::Bpe::new(&data.tokens, &token_to_id, &data.merges, kind)?;
                (Model::Bpe(bpe), kind == PreKind::Llama3, false)
            }
            "llama" => (
                Model::Spm(spm::Spm::new(&data.scores, &token_to_id)),
                true,
                data.add_space_prefix.unwrap_or(true),
            ),
            other => return Err(TokenizerError::UnsupportedModel(other.to_string())),
        };
        // Longest first, as llama.cpp orders its special-token cache.
        let mut all: Vec<u32> = (0..n as u32)
            .filter(|&i| attrs[i as usize] & (ATTR_CONTROL | ATTR_USER_DEFINED | ATTR_UNKNOWN) != 0)
            .collect();
        all.sort_by_key(|&i| std::cmp::Reverse(data.tokens[i as usize].len()));
        let user: Vec<u32> = all
            .iter()
            .copied()
            .filter(|&i| attrs[i as usize] & (ATTR_CONTROL | ATTR_UNKNOWN) == 0)
            .collect();
        let special_all = SpecialMatcher::new(&data.tokens, all)?;
        let special_user = SpecialMatcher::new(&data.tokens, user)?;
        Ok(Tokenizer {
            model,
            tokens: data.tokens,
            attrs,
            token_to_id,
            special_all,
            special_user,
            bos: data.bos_id,
            eos: data.eos_id,
            eog,
            add_bos: data.add_bos.unwrap_or(add_bos_default),
            add_eos: data.add_eos.unwrap_or(false),
            add_space_prefix,
        })
    }

    /// Number of tokens in the vocabulary.
    pub fn n_vocab(&self) -> usize {
        self.tokens.len()
    }

    /// Beginning-of-sequence token.
    pub fn bos(&self) -> Option<u32> {
        self.bos
    }

    /// End-of-sequence token.
    pub fn eos(&self) -> Option<u32> {
        self.eos
    }

    /// Whether the model wants BOS prepended when `add_special` is set.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// Whether `id` ends generation (EOS, EOT, `<|im_end|>`, ...).
    pub fn is_eog(&self, id: u32) -> bool {
        self.eog.contains(&id)
    }

    /// Whether `id` is a control token (rendered only with `special`).
    pub fn is_control(&self, id: u32) -> bool {
        self.attrs
            .get(id as usize)
            .is_some_and(|a| a & ATTR_CONTROL != 0)
    }

    /// The token's text as stored in the vocabulary.
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// The id of a token given its exact vocabulary text.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.token_to_id.get(text).copied()
    }

    /// Splits special tokens out of `text`.
    fn fragments<'t>(&self, text: &'t str, parse_special: bool) -> Vec<Fragment<'t>> {
        let matcher = if parse_special {
            &self.special_all
        } else {
            &self.special_user
        };
        let mut out = Vec::new();
        let Some(m) = matcher else {
            if !text.is_empty() {
                out.push(Fragment::Text(text));
            }
            return out;
        };
        let mut last = 0;
        for hit in m.ac.find_iter(text) {
            if hit.start() > last {
                out.push(Fragment::Text(&text[last..hit.start()]));
            }
            out.push(Fragment::Token(m.ids[hit.pattern().as_usize()]));
            last = hit.end();
        }
        if last < text.len() {
            out.push(Fragment::Text(&text[last..]));
        }
        out
    }

    /// Tokenizes `text`. `add_special` adds BOS/EOS as the model asks;
    /// `parse_special` recognises control tokens written in the text.
    pub fn encode(&self, text: &str, add_special: bool, parse_special: bool) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if add_special
            && self.add_bos
            && let Some(b) = self.bos
        {
            out.push(b);
        }
        let frags = self.fragments(text, parse_special);
        match &self.model {
            Model::Bpe(bpe) => {
                for f in frags {
                    match f {
                        Fragment::Text(t) => bpe.encode_into(t, &mut out),
                        Fragment::Token(id) => out.push(id),
                    }
                }
            }
            Model::Spm(spm) => {
                let mut prev_special = true;
                let mut buf = String::new();
                for f in frags {
                    match f {
                        Fragment::Text(t) => {
                            buf.clear();
                            if self.add_space_prefix && prev_special {
                                buf.push('\u{2581}');
                            }
                            for c in t.chars() {
                                buf.push(if c == ' ' { '\u{2581}' } else { c });
                            }
                            spm.encode_into(&buf, &self.token_to_id, &mut out);
                            prev_special = false;
                        }
                        Fragment::Token(id) => {
                            out.push(id);
                            prev_special = true;
                        }
                    }
                }
            }
        }
        if add_special
            && self.add_eos
            && let Some(e) = self.eos
        {
            out.push(e);
        }
        out
    }

    /// The bytes token `id` stands for. Control and unknown tokens give
    /// nothing unless `special` is set (then their text).
    pub fn token_bytes(&self, id: u32, special: bool) -> Vec<u8> {
        let Some(attr) = self.attrs.get(id as usize).copied() else {
            return Vec::new();
        };
        if !special && attr & (ATTR_CONTROL | ATTR_UNKNOWN) != 0 {
            return Vec::new();
        }
        let text = &self.tokens[id as usize];
        if attr & (ATTR_CONTROL | ATTR_UNKNOWN | ATTR_USER_DEFINED) != 0 {
            return text.as_bytes().to_vec();
        }
        match &self.model {
            Model::Bpe(bpe) => {
                if attr & ATTR_NORMAL != 0 {
                    bpe.token_bytes(id).to_vec()
                } else if attr & ATTR_BYTE != 0 {
                    parse_byte_token(text).map(|b| vec![b]).unwrap_or_default()
                } else {
                    Vec::new()
                }
            }
            Model::Spm(_) => {
                if attr & ATTR_NORMAL != 0 {
                    text.replace('\u{2581}', " ").into_bytes()
                } else if attr & ATTR_BYTE != 0 {
                    parse_byte_token(text).map(|b| vec![b]).unwrap_or_default()
                } else {
                    Vec::new()
                }
            }
        }
    }

    /// Decodes `ids` to bytes, piece by piece.
    pub fn decode_bytes(&self, ids: &[u32], special: bool) -> Vec<u8> {
        let mut out = Vec::new();
        for &id in ids {
            out.extend(self.token_bytes(id, special));
        }
        out
    }

    /// Decodes `ids` to text; invalid UTF-8 becomes U+FFFD.
    pub fn decode(&self, ids: &[u32], special: bool) -> String {
        String::from_utf8_lossy(&self.decode_bytes(ids, special)).into_owned()
    }

    /// A streaming decoder over this tokenizer.
    pub fn detokenizer(&self, special: bool) -> Detokenizer<'_> {
        Detokenizer {
            tok: self,
            special,
            pending: Vec::new(),
        }
    }
}

/// Parses `<0xXX>` into its byte.
fn parse_byte_token(text: &str) -> Option<u8> {
    let hex = text.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

/// Streaming detokenization: push token ids, get back only complete UTF-8.
///
/// Bytes of a character split across tokens are held back until the
/// character is complete; bytes that can never become valid UTF-8 are
/// emitted as U+FFFD.
#[derive(Debug)]
pub struct Detokenizer<'a> {
    tok: &'a Tokenizer,
    special: bool,
    pending: Vec<u8>,
}

impl Detokenizer<'_> {
    /// Adds one token; returns the text that is now complete.
    pub fn push(&mut self, id: u32) -> String {
        let bytes = self.tok.token_bytes(id, self.special);
        self.push_bytes(&bytes)
    }

    fn push_bytes(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let good = e.valid_up_to();
                    // The prefix up to `good` was just validated.
                    out.push_str(std::str::from_utf8(&self.pending[..good]).unwrap_or_default());
                    match e.error_len() {
                        // Incomplete character at the end: hold it back.
                        None => {
                            self.pending.drain(..good);
                            return out;
                        }
                        // Invalid bytes: replace them and go on.
                        Some(bad) => {
                            out.push('\u{fffd}');
                            self.pending.drain(..good + bad);
                        }
                    }
                }
            }
        }
    }

    /// Ends the stream; held-back bytes of an unfinished character become U+FFFD.
    pub fn finish(&mut self) -> String {
        if self.pending.is_empty() {
            return String::new();
        }
        let s = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A byte-level vocabulary of the 256 single bytes and no merges.
    fn bytes_only() -> Tokenizer {
        let tokens: Vec<String> = bpe::byte_to_char_table()
            .iter()
            .map(|c| c.to_string())
            .collect();
        Tokenizer::new(TokenizerData {
            model: "gpt2".into(),
            pre: Some("gpt-2".into()),
            tokens,
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn detokenizer_holds_back_partial_characters() {
        let tok = bytes_only();
        let text = "é😀東";
        let ids = tok.encode(text, false, false);
        assert_eq!(ids.len(), text.len());
        let mut d = tok.detokenizer(false);
        let pieces: Vec<String> = ids.iter().map(|&i| d.push(i)).collect();
        // é is 2 bytes, 😀 4, 東 3: output appears only on each last byte.
        let expect = ["", "é", "", "", "", "😀", "", "", "東"];
        assert_eq!(pieces, expect);
        assert_eq!(d.finish(), "");
    }

    #[test]
    fn detokenizer_replaces_invalid_and_unfinished_bytes() {
        let tok = bytes_only();
        let table = bpe::byte_to_char_table();
        let id = |b: u8| tok.token_id(&table[b as usize].to_string()).unwrap();
        let mut d = tok.detokenizer(false);
        assert_eq!(d.push(id(b'a')), "a");
        assert_eq!(d.push(id(0xff)), "\u{fffd}");
        assert_eq!(d.push(id(0xe6)), "");
        assert_eq!(d.push(id(b'b')), "\u{fffd}b");
        assert_eq!(d.push(id(0xf0)), "");
        assert_eq!(d.finish(), "\u{fffd}");
    }

    #[test]
    fn bad_metadata_is_rejected_with_the_key() {
        let mut data = TokenizerData {
            model: "gpt2".into(),
            tokens: vec!["a".into(), "b".into()],
            bos_id: Some(7),
            ..Default::default()
        };
        let e = Tokenizer::new(data.clone()).unwrap_err().to_string();
        assert!(
            e.contains("bos_token_id = 7") && e.contains("2 tokens"),
            "{e}"
        );
        data.bos_id = None;
        data.token_types = vec![1];
        let e = Tokenizer::new(data.clone()).unwrap_err().to_string();
        assert!(e.contains("token_type has 1 entries, expected 2"), "{e}");
        data.token_types = vec![];
        data.model = "bert".into();
        assert!(matches!(
            Tokenizer::new(data),
            Err(TokenizerError::UnsupportedModel(_))
        ));
    }

    #[test]
    fn byte_token_parsing() {
        assert_eq!(parse_byte_token("<0x0A>"), Some(10));
        assert_eq!(parse_byte_token("<0xff>"), Some(255));
        assert_eq!(parse_byte_token("<0x1>"), None);
        assert_eq!(parse_byte_token("0x41"), None);
    }
}
