//! Index stage: splits stored page text into sentence-aware passages and
//! retrieves them with SQLite FTS5 (BM25).
//!
//! In: pages in the store. Out: passages with code-point offsets into the
//! stored text; retrieval hits over pages whose newest `rag_attributed`
//! verdict allows the use (the store joins the verdict at query time).
//! Never: prompts, generation, printing.

pub mod eval;
pub mod text;

use crate::store::passages::{NewPassage, PassageHit};
use crate::store::{Store, StoreError};

pub use text::{
    content_roots, content_terms, fts_query, query_words, sentences, split_passages,
    title_without_site,
};

/// The layout of the passage index: 2 indexes titles without the site name.
/// [`refresh`] brings an older corpus up to it.
pub const PASSAGE_INDEX_VERSION: i64 = 2;

/// Longest passage in bytes before a new one starts (one sentence may be
/// longer; it is never cut).
pub const PASSAGE_MAX_BYTES: usize = 420;

/// Pages split and stored per transaction by [`refresh`]: at most this
/// many, and no more once their texts hold [`INDEX_CHUNK_TEXT_BYTES`].
const INDEX_CHUNK_PAGES: i64 = 256;

/// Text bytes after which [`refresh`] closes a chunk (the page that
/// reaches it is the chunk's last): the pass holds about this much text,
/// plus one page, at a time. FTS5 holds a chunk's new terms in memory up to
/// `hashsize` (4 MiB here, see the migration) and writes them as one
/// segment at commit, so a chunk is one segment: fewer, larger segments
/// are fewer merges (issue #26).
const INDEX_CHUNK_TEXT_BYTES: usize = 2 * 1024 * 1024;

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
    if store.passage_index_version().await? != Some(PASSAGE_INDEX_VERSION) {
        let titles: Vec<(i64, String)> = store
            .indexed_page_titles()
            .await?
            .into_iter()
            .map(|(id, t, site)| (id, title_without_site(&t, site.as_deref())))
            .collect();
        store
            .retitle_passages(&titles, PASSAGE_INDEX_VERSION)
            .await?;
    }
    // In chunks of pages: bounded memory whatever the corpus size, and one
    // transaction (one FTS flush) per chunk rather than per page.
    let mut after = 0i64;
    loop {
        let pages = store
            .pages_to_index(after, INDEX_CHUNK_PAGES, INDEX_CHUNK_TEXT_BYTES)
            .await?;
        let Some(last) = pages.last() else { break };
        after = last.page_id;
        let mut chunk = Vec::with_capacity(pages.len());
        for mut page in pages {
            page.title = title_without_site(&page.title, page.site_name.as_deref());
            let passages: Vec<NewPassage> =
                split_passages(&page.text, &page.nosnippet_spans, PASSAGE_MAX_BYTES)
                    .into_iter()
                    .map(|p| NewPassage {
                        start_char: p.start_char as i64,
                        end_char: p.end_char as i64,
                        text: p.text,
                    })
                    .collect();
            // The page text is not stored again; only the passages are.
            page.text = String::new();
            report.pages += 1;
            report.passages += passages.len();
            chunk.push((page, passages));
        }
        store.replace_passages(&chunk, now).await?;
    }
    report.total_passages = store.passage_count().await?;
    Ok(report)
}

/// Records that the sample site of `byline demo` is served at `origin` now:
/// the origin it was served at before (if different) is marked gone, so its
/// pages, whose URLs no longer answer, are never retrieved again; `origin`
/// itself is marked live. Returns the origin marked gone.
pub async fn demo_served_at(store: &Store, origin: &str) -> Result<Option<String>, StoreError> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let before = store.demo_origin().await?;
    let mut gone = None;
    if let Some(old) = before.filter(|o| o != origin) {
        store
            .mark_origin_gone(
                &old,
                &format!("byline demo now serves the sample site at {origin}"),
                now,
            )
            .await?;
        gone = Some(old);
    }
    store.mark_origin_live(origin).await?;
    store.set_demo_origin(origin).await?;
    Ok(gone)
}

/// One retrieved passage with its lexical relevance to the question.
#[derive(Debug, Clone)]
pub struct Retrieved {
    pub hit: PassageHit,
    /// Share of the question's words (see [`query_words`]) found in the
    /// passage or its indexed title, 0..=1.
    pub coverage: f64,
    /// The same share weighted by each word's rarity in the index (inverse
    /// document frequency), 0..=1: the ranking key.
    pub score: f64,
}

/// Candidates read from FTS5 per passage returned, before re-ranking.
const POOL_FACTOR: usize = 6;

/// The `k` best allowed passages for `question`. FTS5 (BM25, text and
/// title) finds candidates matching any question word; they are re-ranked
/// by the rarity-weighted share of the question's words the passage and
/// its title hold, adjacent question words found adjacent (a phrase such
/// as "River Museum") adding to it, BM25 breaking ties. Empty when the
/// question has no content words or nothing allowed matches.
pub async fn retrieve(
    store: &Store,
    question: &str,
    policy_sha256: Option<&str>,
    k: usize,
) -> Result<Vec<Retrieved>, StoreError> {
    let Some(q) = fts_query(question) else {
        return Ok(Vec::new());
    };
    let qwords = query_words(question);
    let pool = store
        .search_passages(&q, policy_sha256, k.saturating_mul(POOL_FACTOR).max(40))
        .await?;
    if pool.is_empty() {
        return Ok(Vec::new());
    }
    let n = store.passage_count().await?.max(1) as f64;
    let dfs = store
        .passage_counts(
            &qwords
                .iter()
                .map(|w| format!("\"{}\"", w.replace('"', "")))
                .collect::<Vec<_>>(),
        )
        .await?;
    // One weight per distinct root (two words of one root count once).
    let mut terms: Vec<(String, f64)> = Vec::new();
    for (w, df) in qwords.iter().zip(dfs) {
        let r = text::root(w);
        let df = df as f64;
        let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
        match terms.iter_mut().find(|(x, _)| *x == r) {
            Some(e) => e.1 = e.1.max(idf),
            None => terms.push((r, idf)),
        }
    }
    let total: f64 = terms.iter().map(|(_, w)| w).sum();
    let bigrams: Vec<(String, String)> = question_bigrams(question);
    let mut out: Vec<Retrieved> = pool
        .into_iter()
        .map(|hit| {
            let mut have = content_roots(&hit.text);
            have.extend(content_roots(&hit.index_title));
            let found = terms.iter().filter(|(t, _)| have.contains(t)).count();
            let coverage = if terms.is_empty() {
                0.0
            } else {
                found as f64 / terms.len() as f64
            };
            let weighted = if total > 0.0 {
                terms
                    .iter()
                    .filter(|(t, _)| have.contains(t))
                    .map(|(_, w)| w)
                    .sum::<f64>()
                    / total
            } else {
                0.0
            };
            let phrase = if bigrams.is_empty() {
                0.0
            } else {
                let adj = passage_bigrams(&hit.text);
                bigrams.iter().filter(|b| adj.contains(b)).count() as f64 / bigrams.len() as f64
            };
            let score = (weighted * 0.9 + phrase * 0.1).min(1.0);
            Retrieved {
                hit,
                coverage,
                score: (score * 1000.0).round() / 1000.0,
            }
        })
        .collect();
    // Stable: equal scores keep BM25 order.
    out.sort_by(|a, b| {
        b.score
            .partial_cmp(&a.score)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    out.truncate(k);
    Ok(out)
}

/// Pairs of adjacent question words (no stopword between), as roots.
fn question_bigrams(question: &str) -> Vec<(String, String)> {
    let ws = text::words(question);
    let mut out = Vec::new();
    for pair in ws.windows(2) {
        let (a, b) = (&pair[0].2, &pair[1].2);
        if text::is_stopword(a) || text::is_stopword(b) {
            continue;
        }
        let bg = (text::root(a), text::root(b));
        if !out.contains(&bg) {
            out.push(bg);
        }
    }
    out
}

/// Every pair of adjacent words of `text`, as roots.
fn passage_bigrams(text: &str) -> std::collections::BTreeSet<(String, String)> {
    let ws = text::words(text);
    ws.windows(2)
        .map(|p| (text::root(&p[0].2), text::root(&p[1].2)))
        .collect()
}
