//! Retrieval passages and their FTS5 index. Only passages whose page's newest
//! `rag_attributed` verdict allows the use are ever returned: the verdict is
//! joined at query time, so revocations and `forget` need no rebuild.

use super::audit::{placeholders, write_pieces};
use super::{Store, StoreError};

/// A stored page that needs (re)splitting into passages.
#[derive(Debug, Clone)]
pub struct PageToIndex {
    pub page_id: i64,
    pub url: String,
    pub title: String,
    /// `og:site_name`, if the page states one.
    pub site_name: Option<String>,
    pub text: String,
    pub text_sha256: String,
    /// Byte ranges of `text` from `data-nosnippet` elements.
    pub nosnippet_spans: Vec<(usize, usize)>,
}

/// One passage to store: code-point offsets into the page text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPassage {
    pub start_char: i64,
    pub end_char: i64,
    pub text: String,
}

/// A passage found by [`Store::search_passages`], with the page and the
/// verdict that allows its use.
#[derive(Debug, Clone)]
pub struct PassageHit {
    pub passage_id: i64,
    pub page_id: i64,
    pub ordinal: i64,
    pub start_char: i64,
    pub end_char: i64,
    pub text: String,
    pub url: String,
    pub title: Option<String>,
    /// The title as indexed with the passage (without the site name).
    pub index_title: String,
    pub author: Option<String>,
    pub site_name: Option<String>,
    pub verdict_id: i64,
    pub verdict_set_id: i64,
    pub decision: String,
    pub conditions: Vec<String>,
    pub policy_sha256: String,
    /// FTS5 `bm25()`: lower (more negative) is better.
    pub bm25: f64,
}

/// The newest `rag_attributed` verdict the audit log vouches for, of every
/// page the log vouches for with passages whose origin is not gone, that is
/// not gone itself (404/410 at a recheck), and which is no duplicate of a
/// page still served,
/// as `(url_key, verdict_id)`; the join used by retrieval, shared here so the
/// `search_passages` and `allowed_passage` queries cannot drift apart.
pub(crate) const CURRENT_VERDICT_JOIN: &str = concat!(
    r#"
    JOIN pages pg ON pg.id = ps.page_id AND pg.text_sha256 = ps.text_sha256
                  AND EXISTS (SELECT 1 FROM audit_refs ap WHERE ap.tbl = 'pages' AND ap.row_id = pg.id)
    JOIN frontier fr ON fr.id = pg.frontier_id
    JOIN verdicts v ON v.id = "#,
    newest_verdict_sql!("IN (fr.url, pg.url)", "'rag_attributed'"),
    r#"
    AND NOT EXISTS (SELECT 1 FROM gone_origins g
                    WHERE g.origin = fr.origin
                       OR substr(pg.url, 1, length(g.origin) + 1) = g.origin || '/')
    AND NOT EXISTS (SELECT 1 FROM gone_pages gp WHERE gp.page_id = pg.id)
    AND (pg.duplicate_of IS NULL OR EXISTS (SELECT 1 FROM pages o
                                            JOIN frontier ofr ON ofr.id = o.frontier_id
                                            JOIN gone_origins og ON og.origin = ofr.origin
                                            WHERE o.id = pg.duplicate_of))"#
);

/// SQLite's retrieval: FTS5 match `?1`, policy `?2` (or any), at most `?3`.
fn search_sql() -> String {
    format!(
        "SELECT {HIT_COLUMNS}, bm25(passages_fts, 1.0, 0.3) AS score
         FROM passages_fts
         JOIN passages ps ON ps.id = passages_fts.rowid
         {CURRENT_VERDICT_JOIN}
         WHERE passages_fts MATCH ?1 AND {ALLOWED} AND (?2 IS NULL OR v.policy_sha256 = ?2)
         ORDER BY score LIMIT CAST(?3 AS BIGINT)"
    )
}

/// SQLite's check of one cited passage `?1` under policy `?2` (or any).
fn allowed_sql() -> String {
    format!(
        "SELECT {HIT_COLUMNS}, 0.0 AS score FROM passages ps
         {CURRENT_VERDICT_JOIN}
         WHERE ps.id = ?1 AND {ALLOWED} AND (?2 IS NULL OR v.policy_sha256 = ?2)"
    )
}

pub(crate) const HIT_COLUMNS: &str =
    "ps.id, ps.page_id, ps.ordinal, ps.start_char, ps.end_char, ps.text, pg.url,
    pg.title, pg.author, pg.site_name, v.id AS verdict_id, v.set_id, v.decision, v.conditions,
    v.policy_sha256, ps.title AS index_title";

/// Pages whose passages are missing or stale, after page id `$1`, at most
/// `$2` (`$n` parameters: the same text runs on both backends).
/// The LIMIT is cast so SQLite does not re-plan the statement at every
/// bind (see `frontier::READY`).
pub(crate) const PAGES_TO_INDEX: &str =
    "SELECT p.id, p.url, coalesce(p.title, '') AS title, p.text,
        p.text_sha256, p.nosnippet_spans, p.site_name
     FROM pages p
     WHERE (p.duplicate_of IS NULL
            OR EXISTS (SELECT 1 FROM pages o
                       JOIN frontier ofr ON ofr.id = o.frontier_id
                       JOIN gone_origins og ON og.origin = ofr.origin
                       WHERE o.id = p.duplicate_of))
       AND NOT EXISTS (SELECT 1 FROM passages ps
                       WHERE ps.page_id = p.id AND ps.text_sha256 = p.text_sha256)
       AND p.id > $1
     ORDER BY p.id LIMIT CAST($2 AS BIGINT)";

/// A row of [`PAGES_TO_INDEX`].
#[derive(sqlx::FromRow)]
pub(crate) struct ToIndexRow {
    id: i64,
    url: String,
    title: String,
    text: String,
    text_sha256: String,
    nosnippet_spans: String,
    site_name: Option<String>,
}

impl ToIndexRow {
    pub(crate) fn into_page(self) -> Result<PageToIndex, StoreError> {
        let pairs: Vec<[usize; 2]> =
            serde_json::from_str(&self.nosnippet_spans).map_err(|e| StoreError::Corrupt {
                table: "pages",
                column: "nosnippet_spans",
                detail: e.to_string(),
            })?;
        Ok(PageToIndex {
            page_id: self.id,
            url: self.url,
            title: self.title,
            site_name: self.site_name,
            text: self.text,
            text_sha256: self.text_sha256,
            nosnippet_spans: pairs.into_iter().map(|[a, b]| (a, b)).collect(),
        })
    }
}

/// Collects rows of [`PAGES_TO_INDEX`] until their texts hold
/// `max_text_bytes` (the row that reaches it included), then stops reading.
pub(crate) async fn take_text_bytes<'a, E>(
    mut rows: futures_util::stream::BoxStream<'a, Result<ToIndexRow, E>>,
    max_text_bytes: usize,
) -> Result<Vec<PageToIndex>, StoreError>
where
    StoreError: From<E>,
{
    use futures_util::TryStreamExt;
    let mut pages = Vec::new();
    let mut bytes = 0usize;
    while let Some(row) = rows.try_next().await? {
        let page = row.into_page()?;
        bytes = bytes.saturating_add(page.text.len());
        pages.push(page);
        if bytes >= max_text_bytes {
            break;
        }
    }
    Ok(pages)
}

pub(crate) const ALLOWED: &str = "v.decision IN ('allowed', 'allowed_with_conditions')";

impl Store {
    /// Pages whose passages are missing or were split from other text, in
    /// id order: not duplicates, unless the page duplicated is under a gone
    /// origin (then the copy, e.g. the sample site on its new port, stands
    /// in for it).
    /// At most `limit` of them with ids above `after`, and no more once
    /// their texts hold `max_text_bytes` (the page that reaches it is the
    /// last one; the first page is always returned), so a caller can walk a
    /// corpus of any size, and of pages of any size, in bounded memory.
    pub async fn pages_to_index(
        &self,
        after: i64,
        limit: i64,
        max_text_bytes: usize,
    ) -> Result<Vec<PageToIndex>, StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg::index_write::pages_to_index(pg, after, limit, max_text_bytes).await;
        }
        let rows = sqlx::query_as::<_, ToIndexRow>(PAGES_TO_INDEX)
            .bind(after)
            .bind(limit)
            .fetch(self.pool()?);
        take_text_bytes(rows, max_text_bytes).await
    }

    /// Replaces the passages of several pages in one transaction: one
    /// DELETE of the pages' old passages (their index rows follow by the
    /// `passages_fts_delete` trigger), the new passages with bound
    /// multi-row INSERTs (one per piece of [`write_pieces`]), then one
    /// INSERT … SELECT that adds all of them to the FTS index (issue #26).
    ///
    /// Why the index is written by one statement, last: a statement that
    /// writes to a table FTS5 is part of opens a statement savepoint, and
    /// FTS5 flushes its pending terms into a new segment (to be merged
    /// later) at every savepoint. The index is untouched until the last
    /// statement, so the chunk's new terms are flushed once, at commit
    /// (deletions of a re-indexed page's old rows are flushed before it).
    /// The rows were once sent as one JSON array read with `jsonb_each`;
    /// parsing it and reading its values back cost an eighth of the pass.
    pub async fn replace_passages(
        &self,
        pages: &[(PageToIndex, Vec<NewPassage>)],
        now: i64,
    ) -> Result<(), StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg::index_write::replace_passages(pg, pages, now).await;
        }
        if pages.is_empty() {
            return Ok(());
        }
        let page_ids =
            serde_json::to_string(&pages.iter().map(|(p, _)| p.page_id).collect::<Vec<i64>>())
                .map_err(json_error)?;
        let rows: Vec<(&PageToIndex, i64, &NewPassage)> = pages
            .iter()
            .flat_map(|(page, passages)| {
                passages
                    .iter()
                    .enumerate()
                    .map(move |(i, p)| (page, i64::try_from(i).unwrap_or(i64::MAX), p))
            })
            .collect();
        let mut tx = self.pool()?.begin().await?;
        // The DELETE takes the write lock, so no other writer adds
        // passages between it and the INSERTs: every new row's id is above
        // `last` (ids are assigned as max(id) + 1).
        sqlx::query("DELETE FROM passages WHERE page_id IN (SELECT value FROM json_each(?))")
            .bind(page_ids)
            .execute(&mut *tx)
            .await?;
        let last: i64 = sqlx::query_scalar("SELECT coalesce(max(id), 0) FROM passages")
            .fetch_one(&mut *tx)
            .await?;
        let mut at = 0usize;
        for k in write_pieces(rows.len()) {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(insert_passages_sql(k)));
            for &(page, ordinal, p) in rows.iter().skip(at).take(k) {
                q = q
                    .bind(page.page_id)
                    .bind(ordinal)
                    .bind(p.start_char)
                    .bind(p.end_char)
                    .bind(&p.text)
                    .bind(&page.title)
                    .bind(&page.text_sha256)
                    .bind(now);
            }
            q.execute(&mut *tx).await?;
            at += k;
        }
        sqlx::query(
            "INSERT INTO passages_fts (rowid, text, title)
             SELECT id, text, title FROM passages WHERE id > ? ORDER BY id",
        )
        .bind(last)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes every passage of a page (for `forget`); returns how many.
    pub async fn delete_passages(&self, page_id: i64) -> Result<u64, StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg::passages::delete_passages(pg, page_id).await;
        }
        let r = sqlx::query("DELETE FROM passages WHERE page_id = ?")
            .bind(page_id)
            .execute(self.pool()?)
            .await?;
        Ok(r.rows_affected())
    }

    /// The stored text of the newest page at `url` (the text passage and
    /// quote offsets point into).
    pub async fn page_text(&self, url: &str) -> Result<Option<String>, StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg::passages::page_text(pg, url).await;
        }
        Ok(
            sqlx::query_scalar("SELECT text FROM pages WHERE url = ? ORDER BY id DESC LIMIT 1")
                .bind(url)
                .fetch_optional(self.pool()?)
                .await?,
        )
    }

    /// Number of stored passages.
    pub async fn passage_count(&self) -> Result<i64, StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg::index_write::passage_count(pg).await;
        }
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM passages")
            .fetch_one(self.pool()?)
            .await?)
    }

    /// Full-text search (an FTS5 `MATCH` expression) over the passages whose
    /// page's newest `rag_attributed` verdict is allowed or allowed with
    /// conditions, best BM25 first. With `policy_sha256`, that newest verdict
    /// must also have been decided under that policy.
    pub async fn search_passages(
        &self,
        fts_query: &str,
        policy_sha256: Option<&str>,
        limit: usize,
    ) -> Result<Vec<PassageHit>, StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg::passages::search_passages(pg, fts_query, policy_sha256, limit).await;
        }
        let rows: Vec<HitRow> = sqlx::query_as(sqlx::AssertSqlSafe(search_sql()))
            .bind(fts_query)
            .bind(policy_sha256)
            .bind(limit as i64)
            .fetch_all(self.pool()?)
            .await?;
        rows.into_iter().map(hit_of).collect()
    }

    /// The passage if its page is still allowed for `rag_attributed` now
    /// (same rule as [`Store::search_passages`]).
    pub async fn allowed_passage(
        &self,
        passage_id: i64,
        policy_sha256: Option<&str>,
    ) -> Result<Option<PassageHit>, StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg::passages::allowed_passage(pg, passage_id, policy_sha256).await;
        }
        let row: Option<HitRow> = sqlx::query_as(sqlx::AssertSqlSafe(allowed_sql()))
            .bind(passage_id)
            .bind(policy_sha256)
            .fetch_optional(self.pool()?)
            .await?;
        row.map(hit_of).transpose()
    }
}

impl Store {
    /// How many passages hold each FTS5 `MATCH` expression (one per term),
    /// for inverse document frequencies.
    pub async fn passage_counts(&self, fts_terms: &[String]) -> Result<Vec<i64>, StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg::passages::passage_counts(pg, fts_terms).await;
        }
        let mut out = Vec::with_capacity(fts_terms.len());
        for t in fts_terms {
            let n: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM passages_fts WHERE passages_fts MATCH ?")
                    .bind(t)
                    .fetch_one(self.pool()?)
                    .await?;
            out.push(n);
        }
        Ok(out)
    }

    /// The version of the passage index's layout the corpus was built with
    /// (`None`: before versions were kept).
    pub async fn passage_index_version(&self) -> Result<Option<i64>, StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg::index_write::passage_index_version(pg).await;
        }
        let v: Option<String> =
            sqlx::query_scalar("SELECT value FROM corpus_meta WHERE key = 'passage_index_version'")
                .fetch_optional(self.pool()?)
                .await?;
        Ok(v.and_then(|v| v.parse().ok()))
    }

    /// Every page with passages: `(page_id, title, site_name)`.
    pub async fn indexed_page_titles(
        &self,
    ) -> Result<Vec<(i64, String, Option<String>)>, StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg::index_write::indexed_page_titles(pg).await;
        }
        Ok(sqlx::query_as(
            "SELECT p.id, coalesce(p.title, ''), p.site_name FROM pages p
             WHERE EXISTS (SELECT 1 FROM passages ps WHERE ps.page_id = p.id) ORDER BY p.id",
        )
        .fetch_all(self.pool()?)
        .await?)
    }

    /// Sets the indexed title of every passage of each page, rebuilds the
    /// full-text index and records `version`, in one transaction. Passage
    /// ids stay (answers cite them).
    pub async fn retitle_passages(
        &self,
        titles: &[(i64, String)],
        version: i64,
    ) -> Result<(), StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg::index_write::retitle_passages(pg, titles, version).await;
        }
        let mut tx = self.pool()?.begin().await?;
        for (page_id, title) in titles {
            sqlx::query("UPDATE passages SET title = ? WHERE page_id = ?")
                .bind(title)
                .bind(page_id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("INSERT INTO passages_fts (passages_fts) VALUES ('rebuild')")
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO corpus_meta (key, value) VALUES ('passage_index_version', ?)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(version.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// An origin marked gone: its pages are never retrieved.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct GoneOrigin {
    pub origin: String,
    pub gone_at: i64,
    pub reason: String,
}

impl Store {
    /// Marks `origin` (`scheme://host[:port]`) gone: no passage of a page
    /// under it is retrieved from now on. Marking it again keeps the first
    /// time and reason.
    pub async fn mark_origin_gone(
        &self,
        origin: &str,
        reason: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg::passages::mark_origin_gone(pg, origin, reason, now).await;
        }
        sqlx::query(
            "INSERT INTO gone_origins (origin, gone_at, reason) VALUES (?, ?, ?)
             ON CONFLICT (origin) DO NOTHING",
        )
        .bind(origin)
        .bind(now)
        .bind(reason)
        .execute(self.pool()?)
        .await?;
        Ok(())
    }

    /// Marks `origin` live again; returns whether it was gone.
    pub async fn mark_origin_live(&self, origin: &str) -> Result<bool, StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg::passages::mark_origin_live(pg, origin).await;
        }
        let r = sqlx::query("DELETE FROM gone_origins WHERE origin = ?")
            .bind(origin)
            .execute(self.pool()?)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Every gone origin, oldest first.
    pub async fn gone_origins(&self) -> Result<Vec<GoneOrigin>, StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg::passages::gone_origins(pg).await;
        }
        Ok(sqlx::query_as(
            "SELECT origin, gone_at, reason FROM gone_origins ORDER BY gone_at, origin",
        )
        .fetch_all(self.pool()?)
        .await?)
    }

    /// The origin `byline demo` last served the sample site at.
    pub async fn demo_origin(&self) -> Result<Option<String>, StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg::meta::demo_origin(pg).await;
        }
        Ok(
            sqlx::query_scalar("SELECT value FROM corpus_meta WHERE key = 'demo_origin'")
                .fetch_optional(self.pool()?)
                .await?,
        )
    }

    /// Records where `byline demo` serves the sample site now.
    pub async fn set_demo_origin(&self, origin: &str) -> Result<(), StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg::meta::set_demo_origin(pg, origin).await;
        }
        sqlx::query(
            "INSERT INTO corpus_meta (key, value) VALUES ('demo_origin', ?)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(origin)
        .execute(self.pool()?)
        .await?;
        Ok(())
    }
}

/// `INSERT INTO passages` of `n` rows, pages in the order given and each
/// page's passages in order (ids are assigned in that order, as by one
/// INSERT per page).
fn insert_passages_sql(n: usize) -> String {
    let row = format!("({})", placeholders(8));
    let rows = vec![row; n].join(", ");
    format!(
        "INSERT INTO passages (page_id, ordinal, start_char, end_char, text, title, text_sha256, indexed_at)
         VALUES {rows}"
    )
}

fn json_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        table: "passages",
        column: "text",
        detail: format!("encoding the page ids as JSON: {e}"),
    }
}

/// [`HIT_COLUMNS`] plus a `score`, as read from either backend.
#[derive(sqlx::FromRow)]
pub(crate) struct HitRow {
    id: i64,
    page_id: i64,
    ordinal: i64,
    start_char: i64,
    end_char: i64,
    text: String,
    url: String,
    title: Option<String>,
    author: Option<String>,
    site_name: Option<String>,
    verdict_id: i64,
    set_id: i64,
    decision: String,
    conditions: String,
    policy_sha256: String,
    index_title: String,
    score: f64,
}

pub(crate) fn hit_of(r: HitRow) -> Result<PassageHit, StoreError> {
    Ok(PassageHit {
        passage_id: r.id,
        page_id: r.page_id,
        ordinal: r.ordinal,
        start_char: r.start_char,
        end_char: r.end_char,
        text: r.text,
        url: r.url,
        title: r.title,
        index_title: r.index_title,
        author: r.author,
        site_name: r.site_name,
        verdict_id: r.verdict_id,
        verdict_set_id: r.set_id,
        decision: r.decision,
        conditions: serde_json::from_str(&r.conditions).map_err(|e| StoreError::Corrupt {
            table: "verdicts",
            column: "conditions",
            detail: e.to_string(),
        })?,
        policy_sha256: r.policy_sha256,
        bm25: r.score,
    })
}

#[cfg(test)]
mod tests {
    use super::{allowed_sql, search_sql};

    /// Issue #26: the FTS index merges a level once it holds 8 segments,
    /// keeps up to 4 MiB of new terms in memory before writing a segment,
    /// and new passages reach it only through `replace_passages`' one
    /// INSERT … SELECT (a trigger per row would flush a segment per
    /// statement); deletions still follow by trigger.
    #[tokio::test]
    async fn the_passage_index_merges_by_eight_and_is_filled_by_the_pass() {
        let (_dir, store) = crate::store::probe::fresh().await;
        let pool = store.pool().unwrap();
        let automerge: i64 =
            sqlx::query_scalar("SELECT v FROM passages_fts_config WHERE k = 'automerge'")
                .fetch_one(pool)
                .await
                .unwrap();
        assert_eq!(automerge, 8);
        let hashsize: i64 =
            sqlx::query_scalar("SELECT v FROM passages_fts_config WHERE k = 'hashsize'")
                .fetch_one(pool)
                .await
                .unwrap();
        assert_eq!(hashsize, 4 * 1024 * 1024);
        let triggers: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'passages'
             ORDER BY name",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        assert_eq!(triggers, ["passages_fts_delete"]);
    }

    /// Issue #26: retrieval reaches a page's `rag_attributed` verdict
    /// through the page's evidence sets (by URL) and their verdicts (by
    /// set), never by scanning either table.
    #[tokio::test]
    async fn retrieval_finds_verdicts_through_evidence_sets() {
        use crate::store::probe::{Bind, plan};
        let (_dir, store) = crate::store::probe::fresh().await;
        let pool = store.pool().unwrap();
        for (sql, binds) in [
            (
                search_sql(),
                vec![Bind::Text("x"), Bind::Text("p"), Bind::Int(5)],
            ),
            (allowed_sql(), vec![Bind::Int(1), Bind::Text("p")]),
        ] {
            let sql: &'static str = Box::leak(sql.into_boxed_str());
            let plan = plan(pool, sql, &binds).await;
            for want in [
                "SEARCH ws USING COVERING INDEX evidence_sets_by_page (page_url=?)",
                "SEARCH w USING INDEX verdicts_by_set (set_id=? AND purpose=?)",
            ] {
                assert!(plan.iter().any(|d| d == want), "{want}: {plan:#?}");
            }
            for table in ["ws", "w", "v", "verdicts", "evidence_sets"] {
                assert!(
                    !plan.iter().any(|d| d.starts_with(&format!("SCAN {table} "))
                        || *d == format!("SCAN {table}")),
                    "{table}: {plan:#?}"
                );
            }
        }
    }
}
