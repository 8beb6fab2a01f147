//! Byte-level BPE (`tokenizer.ggml.model = gpt2`).
//!
//! Every byte of a pre-tokenized word starts as its own symbol (the GPT-2
//! byte-to-unicode table names each byte's token); adjacent symbols are then
//! merged, lowest merge rank first and leftmost first on ties, until no pair
//! of neighbours has a merge. A final symbol that is not a vocabulary entry
//! falls back to its single-byte tokens, as in llama.cpp.

use std::collections::HashMap;

use super::TokenizerError;
use super::pretok::{PreKind, PreTokenizer};

/// The GPT-2 byte-to-unicode table: printable Latin-1 bytes map to
/// themselves, every other byte to U+0100 and up, in byte order.
pub fn byte_to_char_table() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut next = 256u32;
    for b in 0..256u32 {
        let printable =
            (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || (0xae..=0xff).contains(&b);
        let cp = if printable {
            b
        } else {
            let cp = next;
            next += 1;
            cp
        };
        table[b as usize] = char::from_u32(cp).unwrap_or('\u{fffd}');
    }
    table
}

/// The inverse of [`byte_to_char_table`].
pub fn char_to_byte_map() -> HashMap<char, u8> {
    byte_to_char_table()
        .iter()
        .enumerate()
        .map(|(b, &c)| (c, b as u8))
        .collect()
}

/// Byte-level BPE state built once from the vocabulary and merges.
#[derive(Debug)]
pub struct Bpe {
    pre: PreTokenizer,
    /// Symbol id of each byte's single-char text (a pseudo id if the
    /// vocabulary lacks it).
    byte_symbol: [u32; 256],
    /// (left symbol, right symbol) -> (rank, merged symbol).
    merges: HashMap<(u32, u32), (u32, u32)>,
    /// Number of real tokens; symbol ids at or above it are pseudo symbols
    /// (merge results or bytes missing from the vocabulary).
    n_vocab: u32,
    /// Byte strings of the pseudo symbols, indexed by `id - n_vocab`.
    pseudo: Vec<Vec<u8>>,
    /// Raw bytes of every real token (for pseudo-symbol fallback).
    token_bytes: Vec<Vec<u8>>,
    /// Byte string -> token id, for `ignore_merges` and lookups.
    bytes_to_id: HashMap<Vec<u8>, u32>,
}

impl Bpe {
    /// Builds the merge table. `tokens` are the vocabulary texts in GPT-2's
    /// byte-to-unicode spelling, `merges` are `"left right"` strings in rank order.
    pub fn new(
        tokens: &[String],
        token_to_id: &HashMap<String, u32>,
        merges: &[String],
        pre: PreKind,
    ) -> Result<Bpe, TokenizerError> {
        let pre = PreTokenizer::new(pre)?;
        let n_vocab = tokens.len() as u32;
        let c2b = char_to_byte_map();
        let decode = |s: &str| -> Vec<u8> {
            let mut out = Vec::with_capacity(s.len());
            for c in s.chars() {
                match c2b.get(&c) {
                    Some(&b) => out.push(b),
                    None => {
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    }
                }
            }
            out
        };
        let token_bytes: Vec<Vec<u8>> = tokens.iter().map(|t| decode(t)).collect();
        let mut bytes_to_id: HashMap<Vec<u8>, u32> = HashMap::with_capacity(tokens.len());
        for (text, &id) in token_to_id {
            bytes_to_id.insert(decode(text), id);
        }
        let mut pseudo: Vec<Vec<u8>> = Vec::new();
        let mut pseudo_ids: HashMap<String, u32> = HashMap::new();
        let mut symbol_of = |text: &str, pseudo: &mut Vec<Vec<u8>>| -> u32 {
            if let Some(&id) = token_to_id.get(text) {
                return id;
            }
            if let Some(&id) = pseudo_ids.get(text) {
                return id;
            }
            let id = n_vocab + pseudo.len() as u32;
            pseudo.push(decode(text));
            pseudo_ids.insert(text.to_string(), id);
            id
        };
        let table = byte_to_char_table();
        let mut byte_symbol = [0u32; 256];
        for (b, c) in table.iter().enumerate() {
            byte_symbol[b] = symbol_of(&c.to_string(), &mut pseudo);
        }
        let mut merge_map = HashMap::with_capacity(merges.len());
        for (rank, m) in merges.iter().enumerate() {
            let Some((l, r)) = m.split_once(' ') else {
                return Err(TokenizerError::BadMerge {
                    index: rank,
                    text: m.clone(),
                });
            };
            let li = symbol_of(l, &mut pseudo);
            let ri = symbol_of(r, &mut pseudo);
            let merged = format!("{l}{r}");
            let mi = symbol_of(&merged, &mut pseudo);
            // The first (lowest-rank) entry for a pair wins, like a rank lookup.
            merge_map.entry((li, ri)).or_insert((rank as u32, mi));
        }
        Ok(Bpe {
            pre,
            byte_symbol,
            merges: merge_map,
            n_vocab,
            pseudo,
            token_bytes,
            bytes_to_id,
        })
    }

    /// The pre-tokenizer in use.
    pub fn pre(&self) -> &PreTokenizer {
        &self.pre
    }

    /// Tokenizes a fragment of plain text (no special tokens) into `out`.
    pub fn encode_into(&self, text: &str, out: &mut Vec<u32>) {
        let mut symbols: Vec<u32> = Vec::new();
        for word in self.pre.split(text) {
            if self.pre.kind().ignore_merges()
                && let Some(&id) = self.bytes_to_id.get(word.as_bytes())
            {
                out.push(id);
                continue;
            }
            symbols.clear();
            symbols.extend(word.bytes().map(|b| self.byte_symbol[b as usize]));
            self.merge(&mut symbols);
            for &s in &symbols {
                if s < self.n_vocab {
                    out.push(s);
                } else {
                    // Not a token: fall back to the single-byte tokens that exist.
                    for &b in &self.pseudo[(s - self.n_vocab) as usize] {
                        let bs = self.byte_symbol[b as usize];
                        if bs < self.n_vocab {
                            out.push(bs);
                        }
                    }
                }
            }
        }
    }

    /// Applies merges to `symbols` in place: lowest rank first, leftmost on ties.
    fn merge(&self, symbols: &mut Vec<u32>) {
        if symbols.len() < 2 {
            return;
        }
        // ranks[i] is the merge of (symbols[i], symbols[i+1]), if any.
        let mut ranks: Vec<(u32, u32)> = (0..symbols.len() - 1)
            .map(|i| self.pair(symbols[i], symbols[i + 1]))
            .collect();
        loop {
            let mut best = u32::MAX;
            let mut at = usize::MAX;
            for (i, &(rank, _)) in ranks.iter().enumerate() {
                if rank < best {
                    best = rank;
                    at = i;
                }
            }
            if at == usize::MAX {
                break;
            }
            symbols[at] = ranks[at].1;
            symbols.remove(at + 1);
            ranks.remove(at);
            if at < ranks.len() {
                ranks[at] = self.pair(symbols[at], symbols[at + 1]);
            }
            if at > 0 {
                ranks[at - 1] = self.pair(symbols[at - 1], symbols[at]);
            }
        }
    }

    #[inline]
    fn pair(&self, l: u32, r: u32) -> (u32, u32) {
        self.merges.get(&(l, r)).copied().unwrap_or((u32::MAX, 0))
    }

    /// Raw bytes of a real token's text (GPT-2 spelling decoded).
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        self.token_bytes
            .get(id as usize)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_table_is_a_bijection_onto_printable_chars() {
        let t = byte_to_char_table();
        assert_eq!(t[b'A' as usize], 'A');
        assert_eq!(t[b' ' as usize], '\u{120}'); // Ġ
        assert_eq!(t[b'\n' as usize], '\u{10a}'); // Ċ
        let m = char_to_byte_map();
        assert_eq!(m.len(), 256);
    }

    #[test]
    fn merges_apply_by_rank_not_position() {
        let tokens: Vec<String> = ["a", "b", "c", "ab", "bc", "abc"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let map: HashMap<String, u32> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        // "b c" has the better rank, so "abc" goes a + bc, and "a bc" is not a merge.
        let merges = vec!["b c".to_string(), "a b".to_string()];
        let bpe = Bpe::new(&tokens, &map, &merges, PreKind::Gpt2).unwrap();
        let mut out = Vec::new();
        bpe.encode_into("abc", &mut out);
        assert_eq!(out, [0, 4]);
        out.clear();
        bpe.encode_into("ab", &mut out);
        assert_eq!(out, [3]);
    }
}
