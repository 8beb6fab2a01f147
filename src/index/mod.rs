//! Index stage: splits stored page text into sentence-aware passages and
//! retrieves them with SQLite FTS5 (BM25).
//!
//! In: pages in the store. Out: passages with code-point offsets into the
//! stored text; retrieval hits over pages whose newest `rag_attributed`
//! verdict allows the use (the store joins the verdict at query time).
//! Never: prompts, generation, printing.

pub mod text;

use crate::store::passages::{NewPassage, PassageHit};
use crate::store::{Store, StoreError};

pub use text::{content_terms, fts_query, sentences, split_passages};

/// Longest passage in bytes before a new one starts (one sentence may be
/// longer; it is never cut).
pub const PASSAGE_MAX_BYTES: usize = 420;

/// What [`refresh`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexReport {
    /// Pages split now (new or with changed text).
    pub pages: usize,
    /// Passages written now.
    pub passages: usize,
    /// Passages in the index afterwards.
    pub total_passages: i64,
}

/// Splits every page that has no passages yet (or whose text changed since)
/// and stores its passages. Cheap when nothing changed.
pub async fn refresh(store: &Store) -> Result<IndexReport, StoreError> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut report = IndexReport::default();
    for page in store.pages_to_index().await? {
        let passages: Vec<NewPassage> =
            split_passages(&page.text, &page.nosnippet_spans, PASSAGE_MAX_BYTES)
                .into_iter()
                .map(|p| NewPassage {
                    start_char: p.start_char as i64,
                    end_char: p.end_char as i64,
                    text: p.text,
                })
                .collect();
        store.replace_passages(&page, &passages, now).await?;
        report.pages += 1;
        report.passages += passages.len();
    }
    report.total_passages = store.passage_count().await?;
    Ok(report)
}

/// One retrieved passage with its lexical relevance to the question.
#[derive(Debug, Clone)]
pub struct Retrieved {
    pub hit: PassageHit,
    /// Share of the question's content terms found in the passage or its
    /// page title, 0..=1.
    pub coverage: f64,
}

/// The `k` best allowed passages for `question` by BM25, each with its
/// term coverage. Empty when the question has no content terms or nothing
/// allowed matches.
pub async fn retrieve(
    store: &Store,
    question: &str,
    policy_sha256: Option<&str>,
    k: usize,
) -> Result<Vec<Retrieved>, StoreError> {
    let Some(q) = fts_query(question) else {
        return Ok(Vec::new());
    };
    let hits = store.search_passages(&q, policy_sha256, k).await?;
    let terms = content_terms(question);
    Ok(hits
        .into_iter()
        .map(|hit| {
            let mut have = content_terms(&hit.text);
            have.extend(content_terms(hit.title.as_deref().unwrap_or("")));
            let found = terms.iter().filter(|t| have.contains(*t)).count();
            let coverage = if terms.is_empty() {
                0.0
            } else {
                found as f64 / terms.len() as f64
            };
            Retrieved { hit, coverage }
        })
        .collect())
}
