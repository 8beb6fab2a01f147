//! Pre-tokenizers for byte-level BPE, chosen by `tokenizer.ggml.pre`.
//!
//! Each pre-tokenizer is a list of regexes applied in sequence, the way
//! llama.cpp does it: the first regex splits the text into pieces, each
//! following regex splits every piece again. Text a regex does not match is
//! kept as a piece of its own (never dropped), and look-ahead never sees past
//! the end of the piece it runs on. The regex lists are the ones llama.cpp
//! uses for each `pre` value (`llama-vocab.cpp`).

use fancy_regex::Regex;

use super::TokenizerError;

/// GPT-2's split, with the trailing `\s+` that GPT-2's original regex has and
/// that llama.cpp's splitter applies implicitly.
const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

/// Llama 3's split with the case-insensitive contractions spelled out.
const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Qwen2: as Llama 3 but single digits.
const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Which family of split rules a `tokenizer.ggml.pre` value selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreKind {
    /// llama.cpp's fallback list (used for `default` and a missing `pre`).
    Default,
    /// GPT-2 and relatives (`gpt-2`, `mpt`, `olmo`, ...).
    Gpt2,
    /// Digits isolated one by one, then GPT-2 (`smollm`, `starcoder`, ...).
    Smollm,
    /// Llama 3 (`llama3`, `llama-bpe`, ...).
    Llama3,
    /// Qwen2 (`qwen2`, `stablelm2`, ...).
    Qwen2,
}

impl PreKind {
    /// Maps a `tokenizer.ggml.pre` value to its split rules.
    pub fn from_name(pre: Option<&str>) -> Result<PreKind, TokenizerError> {
        let Some(name) = pre else {
            return Ok(PreKind::Default);
        };
        Ok(match name {
            "default" => PreKind::Default,
            "gpt-2" | "gpt2" | "phi-2" | "mpt" | "olmo" | "jais" | "trillion"
            | "granite-docling" | "roberta-bpe" | "jina-v1-en" | "jina-v2-code" => PreKind::Gpt2,
            "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone"
            | "minerva-7b" => PreKind::Smollm,
            "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral"
            | "midm-2.0" | "lfm2" | "dbrx" | "smaug-bpe" => PreKind::Llama3,
            "qwen2" | "deepseek-r1-qwen" | "megrez" | "stablelm2" | "hunyuan" => PreKind::Qwen2,
            other => return Err(TokenizerError::UnknownPre(other.to_string())),
        })
    }

    fn patterns(self) -> &'static [&'static str] {
        match self {
            PreKind::Default => &[r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", r"[0-9][0-9][0-9]"],
            PreKind::Gpt2 => &[GPT2],
            PreKind::Smollm => &[r"\p{N}", GPT2],
            PreKind::Llama3 => &[LLAMA3],
            PreKind::Qwen2 => &[QWEN2],
        }
    }

    /// Whether a word already in the vocabulary is emitted whole, skipping the
    /// merges (llama.cpp's `ignore_merges`, set for Llama 3).
    pub fn ignore_merges(self) -> bool {
        matches!(self, PreKind::Llama3)
    }
}

/// A compiled pre-tokenizer.
#[derive(Debug)]
pub struct PreTokenizer {
    kind: PreKind,
    regexes: Vec<Regex>,
}

impl PreTokenizer {
    /// Compiles the regex list for `kind`.
    pub fn new(kind: PreKind) -> Result<PreTokenizer, TokenizerError> {
        let regexes = kind
            .patterns()
            .iter()
            .map(|p| {
                Regex::new(p).map_err(|e| TokenizerError::Regex {
                    pattern: (*p).to_string(),
                    message: e.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PreTokenizer { kind, regexes })
    }

    /// The split rules in use.
    pub fn kind(&self) -> PreKind {
        self.kind
    }

    /// Splits `text` into words; the concatenation of the words is `text`.
    pub fn split<'t>(&self, text: &'t str) -> Vec<&'t str> {
        let mut pieces: Vec<&'t str> = if text.is_empty() {
            Vec::new()
        } else {
            vec![text]
        };
        let mut next = Vec::with_capacity(text.len() / 3 + 1);
        for re in &self.regexes {
            next.clear();
            for &piece in &pieces {
                split_keep(re, piece, &mut next);
            }
            std::mem::swap(&mut pieces, &mut next);
        }
        pieces
    }
}

/// Appends the matches of `re` in `piece` to `out`, with the unmatched text
/// between them kept as pieces too.
fn split_keep<'t>(re: &Regex, piece: &'t str, out: &mut Vec<&'t str>) {
    let mut last = 0;
    for m in re.find_iter(piece) {
        // A backtracking limit error cannot happen with these patterns on
        // valid text; if it did, the rest of the piece is kept whole.
        let Ok(m) = m else { break };
        if m.start() > last {
            out.push(&piece[last..m.start()]);
        }
        if m.end() > m.start() {
            out.push(m.as_str());
        }
        last = m.end();
    }
    if last < piece.len() {
        out.push(&piece[last..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(kind: PreKind, s: &str) -> Vec<String> {
        PreTokenizer::new(kind)
            .unwrap()
            .split(s)
            .into_iter()
            .map(String::from)
            .collect()
    }

    #[test]
    fn smollm_isolates_digits_and_keeps_lone_newline() {
        assert_eq!(
            split(PreKind::Smollm, "In 2024,\nok"),
            ["In", " ", "2", "0", "2", "4", ",", "\n", "ok"]
        );
    }

    #[test]
    fn llama3_groups_three_digits_and_newlines() {
        assert_eq!(
            split(PreKind::Llama3, "abc 12345\n\nx"),
            ["abc", " ", "123", "45", "\n\n", "x"]
        );
        assert_eq!(split(PreKind::Llama3, "I'M here"), ["I", "'M", " here"]);
    }

    #[test]
    fn qwen2_single_digits() {
        assert_eq!(split(PreKind::Qwen2, "x 123"), ["x", " ", "1", "2", "3"]);
    }

    #[test]
    fn whitespace_run_leaves_last_space_for_the_word() {
        assert_eq!(split(PreKind::Gpt2, "a   b"), ["a", "  ", " b"]);
        assert_eq!(split(PreKind::Gpt2, "a   "), ["a", "   "]);
    }

    #[test]
    fn unknown_pre_is_an_error() {
        assert!(matches!(
            PreKind::from_name(Some("nope")),
            Err(TokenizerError::UnknownPre(_))
        ));
    }
}
