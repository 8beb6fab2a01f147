//! Mixture-of-Experts routing: from one token's router logits to the chosen
//! experts and their mixing weights, as data ([`RouterSpec`]) so every MoE
//! architecture (qwen2moe, qwen3moe, Mixtral, OLMoE, GraniteMoE, DeepSeek
//! V2/V3) uses the same function.
//!
//! The steps follow llama.cpp's `llm_graph_context::build_moe_ffn`:
//!
//! ```text
//! probs     = softmax(logits) | sigmoid(logits)          // ScoreFunc
//! select    = probs + exp_probs_b (if given)              // bias: choosing only
//! if groups: group score = max(select in group)           // GroupScore::Max (V2)
//!                        | sum of top-2 select in group   // GroupScore::SumTop2 (V3)
//!            keep the topk_group best groups, mask the rest
//! ids       = top-k(select)                               // ties: lower index first
//! weights   = probs[ids]                                  // unbiased scores
//! if norm:  weights /= max(sum(weights), 2^-14)           // llama.cpp's clamp
//! weights  *= scale                                       // routed_scaling_factor
//! ```

/// How router logits become expert scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScoreFunc {
    /// Softmax over all experts (Mixtral, Qwen-MoE, OLMoE, Granite, DeepSeek-V2).
    Softmax,
    /// Independent sigmoid per expert (DeepSeek-V3/R1).
    Sigmoid,
}

/// How a group of experts is scored in group-limited routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupScore {
    /// The group's best expert score (DeepSeek-V2 `group_limited_greedy`).
    Max,
    /// The sum of the group's two best selection scores (DeepSeek-V3 `noaux_tc`,
    /// llama.cpp's `ggml_argsort_top_k(..., 2)` then `sum_rows`).
    SumTop2,
}

/// Group-limited selection: experts split into `n_group` equal groups, only
/// experts of the `topk_group` best groups can be chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupLimit {
    /// Number of groups (`expert_group_count`, HF `n_group`).
    pub n_group: usize,
    /// Groups kept per token (`expert_group_used_count`, HF `topk_group`).
    pub topk_group: usize,
    /// How a group is scored.
    pub score: GroupScore,
}

/// One architecture's routing rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RouterSpec {
    /// Experts per layer (`expert_count`).
    pub n_expert: usize,
    /// Experts chosen per token (`expert_used_count`).
    pub n_used: usize,
    /// Softmax or sigmoid scores.
    pub score: ScoreFunc,
    /// Group-limited selection, if any.
    pub groups: Option<GroupLimit>,
    /// Renormalise the chosen weights to sum to 1 (HF `norm_topk_prob`).
    pub norm: bool,
    /// Multiply the final weights (`expert_weights_scale`, HF `routed_scaling_factor`).
    pub scale: f32,
}

/// llama.cpp clamps the renormalisation denominator to this (fp16's smallest normal).
pub const NORM_MIN: f32 = 6.103_515_6e-5;

impl RouterSpec {
    /// Plain softmax top-k, optionally renormalised, scale 1.
    pub fn softmax_top_k(n_expert: usize, n_used: usize, norm: bool) -> RouterSpec {
        RouterSpec {
            n_expert,
            n_used,
            score: ScoreFunc::Softmax,
            groups: None,
            norm,
            scale: 1.0,
        }
    }

    /// Checks the numbers fit together; the message names the offending value.
    pub fn check(&self) -> Result<(), String> {
        if self.n_expert == 0 || self.n_used == 0 || self.n_used > self.n_expert {
            return Err(format!(
                "expert_used_count {} must be between 1 and expert_count {}",
                self.n_used, self.n_expert
            ));
        }
        if let Some(g) = self.groups {
            if g.n_group == 0 || !self.n_expert.is_multiple_of(g.n_group) {
                return Err(format!(
                    "expert group count {} must divide expert_count {}",
                    g.n_group, self.n_expert
                ));
            }
            if g.topk_group == 0 || g.topk_group > g.n_group {
                return Err(format!(
                    "expert groups used {} must be between 1 and the group count {}",
                    g.topk_group, g.n_group
                ));
            }
            if g.topk_group * (self.n_expert / g.n_group) < self.n_used {
                return Err(format!(
                    "{} kept groups of {} experts cannot supply {} experts",
                    g.topk_group,
                    self.n_expert / g.n_group,
                    self.n_used
                ));
            }
        }
        Ok(())
    }
}

/// Indices of the `k` largest values of `v`, largest first, ties to the lower
/// index; `NEG_INFINITY` entries are never chosen before finite ones.
fn top_k(v: &[f32], k: usize, out: &mut Vec<usize>) {
    out.clear();
    out.extend(0..v.len());
    out.sort_by(|&a, &b| v[b].total_cmp(&v[a]).then(a.cmp(&b)));
    out.truncate(k);
}

/// Routes one token. `logits` has `spec.n_expert` router outputs, `bias`
/// (if any) the per-expert selection bias (`exp_probs_b`). Writes the chosen
/// expert ids (best first) and their weights, `spec.n_used` each.
pub fn route(
    spec: &RouterSpec,
    logits: &[f32],
    bias: Option<&[f32]>,
    ids: &mut [u32],
    weights: &mut [f32],
) {
    let n = spec.n_expert;
    debug_assert_eq!(logits.len(), n);
    debug_assert_eq!(ids.len(), spec.n_used);
    debug_assert_eq!(weights.len(), spec.n_used);
    let probs: Vec<f32> = match spec.score {
        ScoreFunc::Softmax => {
            let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let e: Vec<f32> = logits.iter().map(|&l| (l - max).exp()).collect();
            let sum: f32 = e.iter().sum();
            e.iter().map(|&v| v / sum).collect()
        }
        ScoreFunc::Sigmoid => logits.iter().map(|&l| 1.0 / (1.0 + (-l).exp())).collect(),
    };
    let mut select: Vec<f32> = match bias {
        Some(b) => probs.iter().zip(b).map(|(&p, &b)| p + b).collect(),
        None => probs.clone(),
    };
    let mut order = Vec::with_capacity(n);
    if let Some(g) = spec.groups {
        let per = n / g.n_group;
        let group_scores: Vec<f32> = select
            .chunks_exact(per)
            .map(|grp| match g.score {
                GroupScore::Max => grp.iter().copied().fold(f32::NEG_INFINITY, f32::max),
                GroupScore::SumTop2 => {
                    top_k(grp, 2.min(per), &mut order);
                    order.iter().map(|&i| grp[i]).sum()
                }
            })
            .collect();
        top_k(&group_scores, g.topk_group, &mut order);
        for (gi, grp) in select.chunks_exact_mut(per).enumerate() {
            if !order.contains(&gi) {
                grp.fill(f32::NEG_INFINITY);
            }
        }
    }
    top_k(&select, spec.n_used, &mut order);
    for ((id, w), &e) in ids.iter_mut().zip(weights.iter_mut()).zip(&order) {
        *id = e as u32;
        *w = probs[e];
    }
    if spec.norm {
        let sum: f32 = weights.iter().sum();
        let sum = sum.max(NORM_MIN);
        for w in weights.iter_mut() {
            *w /= sum;
        }
    }
    if spec.scale != 1.0 {
        for w in weights.iter_mut() {
            *w *= spec.scale;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(spec: &RouterSpec, logits: &[f32], bias: Option<&[f32]>) -> (Vec<u32>, Vec<f32>) {
        let mut ids = vec![0; spec.n_used];
        let mut w = vec![0.0; spec.n_used];
        route(spec, logits, bias, &mut ids, &mut w);
        (ids, w)
    }

    fn close(a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-6, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn softmax_top_k_without_and_with_renormalisation() {
        // logits ln(1), ln(2), ln(3), ln(4): softmax = 0.1, 0.2, 0.3, 0.4.
        let logits: Vec<f32> = [1.0f32, 2.0, 3.0, 4.0].iter().map(|v| v.ln()).collect();
        let spec = RouterSpec::softmax_top_k(4, 2, false);
        let (ids, w) = run(&spec, &logits, None);
        assert_eq!(ids, [3, 2]);
        close(&w, &[0.4, 0.3]);
        let spec = RouterSpec::softmax_top_k(4, 2, true);
        let (ids, w) = run(&spec, &logits, None);
        assert_eq!(ids, [3, 2]);
        close(&w, &[4.0 / 7.0, 3.0 / 7.0]);
    }

    #[test]
    fn ties_go_to_the_lower_expert_index() {
        let spec = RouterSpec::softmax_top_k(4, 2, true);
        let (ids, w) = run(&spec, &[0.5, 1.0, 1.0, 1.0], None);
        assert_eq!(ids, [1, 2]);
        close(&w, &[0.5, 0.5]);
    }

    #[test]
    fn sigmoid_bias_chooses_but_weights_come_from_unbiased_scores() {
        // sigmoid(0) = 0.5, sigmoid(ln 3) = 0.75, sigmoid(-ln 3) = 0.25.
        let logits = [0.0f32, 3f32.ln(), -(3f32.ln()), 0.0];
        let spec = RouterSpec {
            n_expert: 4,
            n_used: 2,
            score: ScoreFunc::Sigmoid,
            groups: None,
            norm: false,
            scale: 2.0,
        };
        let (ids, w) = run(&spec, &logits, None);
        assert_eq!(ids, [1, 0]);
        close(&w, &[1.5, 1.0]);
        // Bias lifts expert 2 (0.25 + 1 = 1.25) to the top; its weight stays 0.25.
        let bias = [0.0f32, 0.0, 1.0, 0.0];
        let (ids, w) = run(&spec, &logits, Some(&bias));
        assert_eq!(ids, [2, 1]);
        close(&w, &[0.5, 1.5]);
        // Renormalised then scaled: (0.25, 0.75) / 1.0 * 2.
        let spec = RouterSpec { norm: true, ..spec };
        let (_, w) = run(&spec, &logits, Some(&bias));
        close(&w, &[0.5, 1.5]);
    }

    #[test]
    fn group_limit_by_sum_of_top_two_differs_from_max() {
        // Two groups of three experts (sigmoid-free: use softmax of ln values
        // so probs are the given numbers over their sum 2.0).
        let p = [0.50f32, 0.02, 0.02, 0.48, 0.47, 0.51];
        let logits: Vec<f32> = p.iter().map(|v| v.ln()).collect();
        let mut spec = RouterSpec {
            n_expert: 6,
            n_used: 2,
            score: ScoreFunc::Softmax,
            groups: Some(GroupLimit {
                n_group: 2,
                topk_group: 1,
                score: GroupScore::Max,
            }),
            norm: false,
            scale: 1.0,
        };
        // Max: group 0 scores 0.25, group 1 0.255: group 1 wins; its best two are 5, 3.
        let (ids, w) = run(&spec, &logits, None);
        assert_eq!(ids, [5, 3]);
        close(&w, &[0.255, 0.24]);
        // Same by sum of top two: group 0 0.26, group 1 0.495: group 1.
        spec.groups = Some(GroupLimit {
            n_group: 2,
            topk_group: 1,
            score: GroupScore::SumTop2,
        });
        assert_eq!(run(&spec, &logits, None).0, [5, 3]);
        // Bias expert 2 by 0.24: group 0 by sum of top two = 0.25 + 0.25 = 0.5 > 0.495
        // wins, by max 0.25 < 0.255 it still loses. Weights stay unbiased.
        let bias = [0.0f32, 0.0, 0.24, 0.0, 0.0, 0.0];
        let (ids, w) = run(&spec, &logits, Some(&bias));
        assert_eq!(ids, [0, 2]);
        close(&w, &[0.25, 0.01]);
        spec.groups = Some(GroupLimit {
            n_group: 2,
            topk_group: 1,
            score: GroupScore::Max,
        });
        assert_eq!(run(&spec, &logits, Some(&bias)).0, [5, 3]);
        // Without the group limit the global top two are 5 and 0.
        spec.groups = None;
        assert_eq!(run(&spec, &logits, None).0, [5, 0]);
    }

    #[test]
    fn renormalisation_clamps_a_vanishing_sum() {
        let spec = RouterSpec {
            n_expert: 2,
            n_used: 1,
            score: ScoreFunc::Sigmoid,
            groups: None,
            norm: true,
            scale: 1.0,
        };
        let (_, w) = run(&spec, &[-30.0, -40.0], None);
        let p = 1.0 / (1.0 + 30f32.exp());
        let ratio = w[0] / (p / NORM_MIN);
        assert!((ratio - 1.0).abs() < 1e-5, "{} vs {}", w[0], p / NORM_MIN);
        assert!(w[0] < 1e-8);
    }

    #[test]
    fn check_rejects_inconsistent_specs() {
        assert!(RouterSpec::softmax_top_k(8, 2, true).check().is_ok());
        assert!(RouterSpec::softmax_top_k(2, 3, true).check().is_err());
        let mut s = RouterSpec::softmax_top_k(8, 4, true);
        s.groups = Some(GroupLimit {
            n_group: 3,
            topk_group: 1,
            score: GroupScore::Max,
        });
        assert!(s.check().unwrap_err().contains("must divide"));
        s.groups = Some(GroupLimit {
            n_group: 4,
            topk_group: 1,
            score: GroupScore::Max,
        });
        assert!(s.check().unwrap_err().contains("cannot supply"));
    }
}
