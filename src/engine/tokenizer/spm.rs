//! SentencePiece-style tokenizer (`tokenizer.ggml.model = llama`).
//!
//! Spaces become `▁`; the text starts as one symbol per UTF-8 character;
//! the adjacent pair whose concatenation is the vocabulary entry with the
//! highest score is merged first (leftmost on ties) until no pair forms an
//! entry. A final symbol that is not an entry becomes its bytes' `<0xXX>`
//! tokens.

use std::collections::HashMap;

/// Scores-based merging over a SentencePiece vocabulary.
#[derive(Debug)]
pub struct Spm {
    scores: Vec<f32>,
    /// Token id of each byte, from `<0xXX>` entries or the bare byte.
    byte_token: [Option<u32>; 256],
}

impl Spm {
    /// Builds the byte-fallback table. `scores` may be shorter than the
    /// vocabulary (missing scores count as 0).
    pub fn new(scores: &[f32], token_to_id: &HashMap<String, u32>) -> Spm {
        let mut byte_token = [None; 256];
        for (b, slot) in byte_token.iter_mut().enumerate() {
            let hex = format!("<0x{b:02X}>");
            *slot = token_to_id.get(&hex).copied().or_else(|| {
                let s = [b as u8];
                std::str::from_utf8(&s)
                    .ok()
                    .and_then(|s| token_to_id.get(s).copied())
            });
        }
        Spm {
            scores: scores.to_vec(),
            byte_token,
        }
    }

    /// The token of byte `b`, if the vocabulary has one.
    pub fn byte_token(&self, b: u8) -> Option<u32> {
        self.byte_token[b as usize]
    }

    fn score(&self, id: u32) -> f32 {
        self.scores.get(id as usize).copied().unwrap_or(0.0)
    }

    /// Tokenizes `text` (spaces already escaped to `▁`) into `out`.
    pub fn encode_into(&self, text: &str, token_to_id: &HashMap<String, u32>, out: &mut Vec<u32>) {
        // Symbols are byte ranges of `text`.
        let mut syms: Vec<(usize, usize)> = text
            .char_indices()
            .map(|(i, c)| (i, i + c.len_utf8()))
            .collect();
        // best[i]: (score, token) of merging syms[i] and syms[i+1].
        let pair = |a: (usize, usize), b: (usize, usize)| -> Option<(f32, u32)> {
            token_to_id
                .get(&text[a.0..b.1])
                .map(|&id| (self.score(id), id))
        };
        let mut best: Vec<Option<(f32, u32)>> = (0..syms.len().saturating_sub(1))
            .map(|i| pair(syms[i], syms[i + 1]))
            .collect();
        loop {
            let mut at = None;
            let mut top = f32::NEG_INFINITY;
            for (i, p) in best.iter().enumerate() {
                if let Some((s, _)) = p
                    && (at.is_none() || *s > top)
                {
                    top = *s;
                    at = Some(i);
                }
            }
            let Some(i) = at else { break };
            syms[i] = (syms[i].0, syms[i + 1].1);
            syms.remove(i + 1);
            best.remove(i);
            if i < best.len() {
                best[i] = pair(syms[i], syms[i + 1]);
            }
            if i > 0 {
                best[i - 1] = pair(syms[i - 1], syms[i]);
            }
        }
        for (a, b) in syms {
            let piece = &text[a..b];
            match token_to_id.get(piece) {
                Some(&id) => out.push(id),
                None => {
                    for &byte in piece.as_bytes() {
                        if let Some(id) = self.byte_token[byte as usize] {
                            out.push(id);
                        }
                    }
                }
            }
        }
    }
}
