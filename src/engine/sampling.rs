//! Sampling: turn the last position's logits into the next token.
//!
//! The chain follows llama.cpp's common sampler order: repetition penalty,
//! top-k, top-p, min-p, temperature, then a seeded draw. A temperature of 0
//! (or below) is greedy: the arg-max after penalties, lowest id on a tie.
//! Stop strings are matched on the streamed text with a hold-back buffer, so
//! a stop string split over several tokens never reaches the caller.

use std::ops::ControlFlow;

use crate::engine::model::{Context, Model, ModelError, Outputs};

/// Sampler settings (llama.cpp `common_params_sampling` names and defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct SamplerConfig {
    /// Softmax temperature; `<= 0` means greedy.
    pub temperature: f32,
    /// Keep the k most likely tokens (0 = all).
    pub top_k: usize,
    /// Keep the smallest set whose probability reaches p (1.0 = all).
    pub top_p: f32,
    /// Drop tokens less likely than `min_p` times the most likely one (0 = off).
    pub min_p: f32,
    /// Divide positive / multiply negative logits of recent tokens (1.0 = off).
    pub repeat_penalty: f32,
    /// How many recent tokens the penalty looks at.
    pub repeat_last_n: usize,
    /// RNG seed.
    pub seed: u64,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            seed: 0,
        }
    }
}

impl SamplerConfig {
    /// Pure arg-max decoding.
    pub fn greedy() -> Self {
        SamplerConfig {
            temperature: 0.0,
            ..SamplerConfig::default()
        }
    }
}

/// A stateful sampler: the config plus its random stream.
#[derive(Debug, Clone)]
pub struct Sampler {
    cfg: SamplerConfig,
    rng: Rng,
    cand: Vec<(u32, f32)>,
}

impl Sampler {
    /// A sampler seeded from `cfg.seed`.
    pub fn new(cfg: SamplerConfig) -> Sampler {
        Sampler {
            rng: Rng::new(cfg.seed),
            cfg,
            cand: Vec::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &SamplerConfig {
        &self.cfg
    }

    /// Picks the next token from `logits` (one per vocabulary entry) given the
    /// tokens so far (`history`, prompt included, for the repetition penalty).
    pub fn sample(&mut self, logits: &[f32], history: &[u32]) -> u32 {
        let cfg = &self.cfg;
        let recent = &history[history.len().saturating_sub(cfg.repeat_last_n)..];
        let penalised = |id: usize, l: f32| -> f32 {
            if cfg.repeat_penalty != 1.0 && recent.contains(&(id as u32)) {
                if l > 0.0 {
                    l / cfg.repeat_penalty
                } else {
                    l * cfg.repeat_penalty
                }
            } else {
                l
            }
        };
        if cfg.temperature <= 0.0 {
            let mut best = (0usize, f32::NEG_INFINITY);
            for (id, &l) in logits.iter().enumerate() {
                let l = penalised(id, l);
                if l > best.1 {
                    best = (id, l);
                }
            }
            return best.0 as u32;
        }
        self.cand.clear();
        self.cand.extend(
            logits
                .iter()
                .enumerate()
                .map(|(id, &l)| (id as u32, penalised(id, l)))
                .filter(|c| !c.1.is_nan()),
        );
        let by_logit = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        let k = if cfg.top_k == 0 {
            self.cand.len()
        } else {
            cfg.top_k.min(self.cand.len())
        };
        if k < self.cand.len() {
            self.cand.select_nth_unstable_by(k - 1, by_logit);
            self.cand.truncate(k);
        }
        self.cand.sort_unstable_by(by_logit);
        let Some(&(_, max)) = self.cand.first() else {
            return 0;
        };
        // Probabilities at temperature 1 for top-p and min-p (llama.cpp applies
        // them before temperature).
        let probs: Vec<f32> = self.cand.iter().map(|c| (c.1 - max).exp()).collect();
        let z: f32 = probs.iter().sum();
        if cfg.top_p < 1.0 {
            let mut cum = 0.0;
            let mut keep = self.cand.len();
            for (i, p) in probs.iter().enumerate() {
                cum += p / z;
                if cum >= cfg.top_p {
                    keep = i + 1;
                    break;
                }
            }
            self.cand.truncate(keep.max(1));
        }
        if cfg.min_p > 0.0 {
            let floor = max + cfg.min_p.ln();
            let keep = self.cand.iter().take_while(|c| c.1 >= floor).count();
            self.cand.truncate(keep.max(1));
        }
        let t = cfg.temperature;
        let weights: Vec<f32> = self.cand.iter().map(|c| ((c.1 - max) / t).exp()).collect();
        let total: f32 = weights.iter().sum();
        let mut r = self.rng.next_f32() * total;
        for (c, w) in self.cand.iter().zip(&weights) {
            if r < *w {
                return c.0;
            }
            r -= w;
        }
        self.cand.last().expect("at least one candidate is kept").0
    }
}

/// xoshiro256** (Blackman & Vigna), seeded through splitmix64.
#[derive(Debug, Clone)]
struct Rng {
    s: [u64; 4],
}

impl Rng {
    fn new(seed: u64) -> Rng {
        let mut z = seed;
        let mut next = || {
            z = z.wrapping_add(0x9e3779b97f4a7c15);
            let mut x = z;
            x = (x ^ (x >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94d049bb133111eb);
            x ^ (x >> 31)
        };
        Rng {
            s: [next(), next(), next(), next()],
        }
    }

    fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1).
    fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// What a chunk of streamed text turned into after stop-string matching.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StopFeed {
    /// Text that is safe to show now.
    pub emit: String,
    /// A stop string was found; nothing after it is emitted.
    pub stopped: bool,
}

/// Finds stop strings in streamed text. Text that could be the start of a
/// stop string is held back until it is known not to be one.
#[derive(Debug, Clone, Default)]
pub struct StopStrings {
    stops: Vec<String>,
    pending: String,
}

impl StopStrings {
    /// A matcher for these stop strings (empty strings are ignored).
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(stops: I) -> StopStrings {
        StopStrings {
            stops: stops
                .into_iter()
                .map(Into::into)
                .filter(|s: &String| !s.is_empty())
                .collect(),
            pending: String::new(),
        }
    }

    /// Adds streamed text; returns what can be shown and whether to stop.
    pub fn feed(&mut self, text: &str) -> StopFeed {
        self.pending.push_str(text);
        let first = self
            .stops
            .iter()
            .filter_map(|s| self.pending.find(s.as_str()))
            .min();
        if let Some(at) = first {
            let emit = self.pending[..at].to_string();
            self.pending.clear();
            return StopFeed {
                emit,
                stopped: true,
            };
        }
        // Hold back the longest suffix that is a proper prefix of some stop string.
        let mut hold = 0;
        for s in &self.stops {
            for (i, _) in s.char_indices().skip(1) {
                if i > hold && self.pending.ends_with(&s[..i]) {
                    hold = i;
                }
            }
        }
        let cut = self.pending.len() - hold;
        let emit = self.pending[..cut].to_string();
        self.pending.drain(..cut);
        StopFeed {
            emit,
            stopped: false,
        }
    }

    /// Releases held-back text at the end of generation.
    pub fn flush(&mut self) -> String {
        std::mem::take(&mut self.pending)
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// An end-of-sequence (or end-of-turn) token was sampled; it is not emitted.
    Eos(u32),
    /// `max_tokens` were generated.
    MaxTokens,
    /// The callback asked to stop (e.g. a stop string matched).
    Callback,
    /// The context window is full.
    ContextFull,
}

/// Settings for [`generate`].
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// Most new tokens.
    pub max_tokens: usize,
    /// Tokens that end generation (EOS, end of turn).
    pub eos: Vec<u32>,
}

/// Runs the prompt (after what `ctx` already holds), then samples up to
/// `max_tokens` tokens, calling `on_token` with each one as it is produced.
/// The callback returns `ControlFlow::Break(())` to stop (stop strings live
/// there, on the detokenized text). Returns the new tokens and why it stopped.
pub fn generate(
    model: &Model<'_>,
    ctx: &mut Context,
    prompt: &[u32],
    sampler: &mut Sampler,
    opts: &GenerateOptions,
    mut on_token: impl FnMut(u32) -> ControlFlow<()>,
) -> Result<(Vec<u32>, StopReason), ModelError> {
    let mut history: Vec<u32> = prompt.to_vec();
    let mut out = Vec::new();
    let mut logits = model.forward(ctx, prompt, Outputs::Last)?.to_vec();
    loop {
        if out.len() >= opts.max_tokens {
            return Ok((out, StopReason::MaxTokens));
        }
        let tok = sampler.sample(&logits, &history);
        if opts.eos.contains(&tok) {
            return Ok((out, StopReason::Eos(tok)));
        }
        out.push(tok);
        history.push(tok);
        if on_token(tok).is_break() {
            return Ok((out, StopReason::Callback));
        }
        if out.len() >= opts.max_tokens {
            return Ok((out, StopReason::MaxTokens));
        }
        if ctx.cache.len() >= ctx.cache.n_ctx() {
            return Ok((out, StopReason::ContextFull));
        }
        logits.clear();
        logits.extend_from_slice(model.forward(ctx, &[tok], Outputs::Last)?);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logits() -> Vec<f32> {
        vec![1.0, 3.0, 2.0, 3.0, -1.0, 0.5]
    }

    #[test]
    fn greedy_takes_the_arg_max_and_the_lowest_id_on_a_tie() {
        let mut s = Sampler::new(SamplerConfig::greedy());
        assert_eq!(s.sample(&logits(), &[]), 1);
    }

    #[test]
    fn repetition_penalty_demotes_recent_tokens() {
        let mut s = Sampler::new(SamplerConfig {
            repeat_penalty: 2.0,
            ..SamplerConfig::greedy()
        });
        // 1 and 3 are penalised to 1.5, so 2 (logit 2.0) wins.
        assert_eq!(s.sample(&logits(), &[1, 3]), 2);
        // Outside the window the penalty does not apply.
        let mut s = Sampler::new(SamplerConfig {
            repeat_penalty: 2.0,
            repeat_last_n: 1,
            ..SamplerConfig::greedy()
        });
        assert_eq!(s.sample(&logits(), &[1, 5]), 1);
    }

    #[test]
    fn top_k_one_is_greedy_at_any_temperature() {
        let mut s = Sampler::new(SamplerConfig {
            temperature: 5.0,
            top_k: 1,
            seed: 7,
            ..SamplerConfig::default()
        });
        for _ in 0..50 {
            assert_eq!(s.sample(&logits(), &[]), 1);
        }
    }

    #[test]
    fn same_seed_same_draws_and_frequencies_follow_the_softmax() {
        let cfg = SamplerConfig {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            seed: 42,
            ..SamplerConfig::default()
        };
        let l = vec![0.0f32, (2.0f32).ln(), (5.0f32).ln()]; // probabilities 1/8, 2/8, 5/8
        let mut a = Sampler::new(cfg.clone());
        let mut b = Sampler::new(cfg.clone());
        let mut counts = [0usize; 3];
        for _ in 0..8000 {
            let x = a.sample(&l, &[]);
            assert_eq!(x, b.sample(&l, &[]));
            counts[x as usize] += 1;
        }
        for (c, p) in counts.iter().zip([1.0 / 8.0, 2.0 / 8.0, 5.0 / 8.0]) {
            let f = *c as f64 / 8000.0;
            assert!((f - p).abs() < 0.03, "{counts:?}");
        }
        let mut c = Sampler::new(SamplerConfig { seed: 43, ..cfg });
        let da: Vec<u32> = (0..32).map(|_| a.sample(&l, &[])).collect();
        let dc: Vec<u32> = (0..32).map(|_| c.sample(&l, &[])).collect();
        assert_ne!(da, dc);
    }

    #[test]
    fn top_p_and_min_p_cut_the_tail() {
        // probabilities ~ 0.64, 0.24, 0.09, 0.03
        let l = vec![3.0f32, 2.0, 1.0, 0.0];
        let mut s = Sampler::new(SamplerConfig {
            temperature: 1.0,
            top_k: 0,
            top_p: 0.85,
            min_p: 0.0,
            seed: 1,
            ..SamplerConfig::default()
        });
        for _ in 0..500 {
            assert!(s.sample(&l, &[]) < 2);
        }
        let mut s = Sampler::new(SamplerConfig {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.3, // keeps p >= 0.3 * 0.64
            seed: 1,
            ..SamplerConfig::default()
        });
        let seen: std::collections::BTreeSet<u32> = (0..500).map(|_| s.sample(&l, &[])).collect();
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec![0, 1]);
    }

    #[test]
    fn stop_string_split_over_chunks_is_never_emitted() {
        let mut st = StopStrings::new(["<|im_end|>", "\n\nUser:"]);
        let mut shown = String::new();
        let mut stopped = false;
        for chunk in ["Hello", " world", "<|im", "_e", "nd|>", "after"] {
            let f = st.feed(chunk);
            shown.push_str(&f.emit);
            if f.stopped {
                stopped = true;
                break;
            }
        }
        assert!(stopped);
        assert_eq!(shown, "Hello world");
    }

    #[test]
    fn held_back_text_is_released_when_it_stops_matching() {
        let mut st = StopStrings::new(["STOP"]);
        assert_eq!(st.feed("abcST").emit, "abc");
        assert_eq!(st.feed("x").emit, "STx");
        assert_eq!(st.feed("S").emit, "");
        assert_eq!(st.flush(), "S");
    }
}
