//! Retrieval quality on a labelled question set: hit@1, hit@5 and mean
//! reciprocal rank of the first passage from a page that answers the
//! question (`byline bench answers`, tests).

use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError};

/// The bundled labelled set over the sample site (`tests/data/retrieval/`).
pub const SAMPLE_SITE_RETRIEVAL_JSONL: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/retrieval/sample_site.jsonl"
));

/// Ranks beyond this count as a miss (reciprocal rank 0).
pub const MAX_RANK: usize = 20;

/// One labelled question: the URL paths of the pages that answer it.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct LabelledQuestion {
    pub id: String,
    pub question: String,
    pub pages: Vec<String>,
}

/// Reads a labelled set: one JSON object per line, blank lines skipped.
pub fn parse_labelled(text: &str) -> Result<Vec<LabelledQuestion>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| format!("line {}: {e}", i + 1)))
        .collect()
}

/// Where one question's first answering passage ranked.
#[derive(Debug, Clone, Serialize)]
pub struct QuestionRank {
    pub id: String,
    pub question: String,
    /// 1-based rank among retrieved passages; `None` beyond [`MAX_RANK`].
    pub rank: Option<usize>,
    /// The page path of the top passage.
    pub top: Option<String>,
}

/// hit@1, hit@5 and MRR over a set.
#[derive(Debug, Clone, Serialize)]
pub struct RetrievalScores {
    pub questions: usize,
    pub hit_at_1: f64,
    pub hit_at_5: f64,
    pub mrr: f64,
    pub ranks: Vec<QuestionRank>,
}

/// Retrieves for every question (pages under `origin`, e.g.
/// `http://127.0.0.1:8000`) and scores the ranks.
pub async fn evaluate(
    store: &Store,
    origin: &str,
    questions: &[LabelledQuestion],
    policy_sha256: Option<&str>,
) -> Result<RetrievalScores, StoreError> {
    let origin = origin.trim_end_matches('/');
    let mut ranks = Vec::new();
    for q in questions {
        let got = super::retrieve(store, &q.question, policy_sha256, MAX_RANK).await?;
        // A page stored under a link with a fragment (`/a.html#part`) is
        // still the page `/a.html`.
        let path_of = |url: &str| {
            url.strip_prefix(origin)
                .map(|p| p.split('#').next().unwrap_or(p).to_string())
        };
        let rank = got
            .iter()
            .position(|r| path_of(&r.hit.url).is_some_and(|p| q.pages.contains(&p)))
            .map(|i| i + 1);
        ranks.push(QuestionRank {
            id: q.id.clone(),
            question: q.question.clone(),
            rank,
            top: got
                .first()
                .map(|r| path_of(&r.hit.url).unwrap_or_else(|| r.hit.url.clone())),
        });
    }
    let n = ranks.len().max(1) as f64;
    let hit = |k: usize| {
        ranks
            .iter()
            .filter(|r| r.rank.is_some_and(|x| x <= k))
            .count() as f64
            / n
    };
    let mrr = ranks
        .iter()
        .map(|r| r.rank.map_or(0.0, |x| 1.0 / x as f64))
        .sum::<f64>()
        / n;
    Ok(RetrievalScores {
        questions: ranks.len(),
        hit_at_1: hit(1),
        hit_at_5: hit(5),
        mrr,
        ranks,
    })
}
