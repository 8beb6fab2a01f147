//! `forget` written once for both backends: [`forget_in`] is the erasure
//! (what is erased, what the audit log gets, which answers are flagged),
//! generic over [`ForgetRows`], the statements it needs on one backend's
//! open transaction. The statements' SQL text is shared too (`$n`
//! placeholders, which SQLite reads as well); only the log's lock, the
//! audit append and the answer flag ([`LogTx`]) and SQLite's FTS merge
//! differ per backend.
//! What "no byte left" takes after the commit (SQLite: secure_delete and a
//! WAL checkpoint; PostgreSQL: VACUUM) is [`super::Store::forget`]'s.

use std::collections::HashSet;

use super::StoreError;
use super::audit::sha256_hex;
use super::provenance::{
    AnswerText, ErasedPage, EvidenceText, Forgotten, Redact, forgotten_placeholder, url_key,
};
use super::tx::LogTx;

/// A frontier row to erase: (id, url, url_norm, origin).
type Target = (i64, String, String, String);

const FRONTIER_OF_ORIGIN: &str =
    "SELECT id, url, url_norm, origin FROM frontier WHERE origin = $1 ORDER BY id";
const FRONTIER_OF_NORM: &str = "SELECT id, url, url_norm, origin FROM frontier WHERE url_norm = $1";
const TOMBSTONED: &str = "SELECT count(*) > 0 FROM tombstones WHERE url_sha256 = $1";
const MARK_FORGOTTEN: &str = "UPDATE frontier SET state = 'skipped', skip_reason = 'forgotten', updated_at = $1 WHERE id = $2";
const PAGES_OF: &str =
    "SELECT id, url, title, author, coalesce(text, '') FROM pages WHERE frontier_id = $1";
const DELETE_PASSAGES: &str = "DELETE FROM passages WHERE page_id = $1";
const ERASE_TEXT: &str = "UPDATE pages SET text = '' WHERE id = $1 AND text <> ''";
const ERASE_META: &str = "UPDATE pages SET title = NULL, author = NULL, site_name = NULL,
        published_at = NULL, modified_at = NULL
     WHERE id = $1 AND (title IS NOT NULL OR author IS NOT NULL OR site_name IS NOT NULL
                       OR published_at IS NOT NULL OR modified_at IS NOT NULL)";
const ERASE_ANCHORS: &str =
    "UPDATE links SET anchor_text = '' WHERE page_id = $1 AND anchor_text <> '' RETURNING rowid";
const EVIDENCE_OF: &str = "SELECT e.id, e.signal, e.location, e.raw, e.parsed FROM evidence e
     JOIN evidence_sets s ON s.id = e.set_id
     WHERE s.page_id = $1 OR s.page_url = $2 ORDER BY e.id";
const SET_EVIDENCE: &str = "UPDATE evidence SET raw = $1, parsed = $2 WHERE id = $3";
// Every capture of the page's URL: its current body and those of its
// earlier versions (`crawl --refresh` keeps one per changed version).
const RAWS_OF: &str = "SELECT DISTINCT fr.raw_sha256 FROM pages p
     JOIN fetches x ON x.frontier_id = p.frontier_id
     JOIN fetch_raw fr ON fr.fetch_id = x.id
     WHERE p.id = $1 ORDER BY fr.raw_sha256";
// The page's frontier row is already marked forgotten. A capture stays
// while a page not forgotten has the same body in any of its versions.
// Every capture is a page's body: its current one (`content_sha256`, the
// capture's own hash: `crawl::page_record` makes it from that hash) or an
// earlier version's (`page_versions`, one row per change with the body
// hashes before and after); each is looked up by its hash index.
const DELETE_RAW: &str = "DELETE FROM raw_captures WHERE sha256 = $1
     AND NOT EXISTS (SELECT 1 FROM pages p JOIN frontier f ON f.id = p.frontier_id
          WHERE p.content_sha256 = $1 AND p.id <> $2
            AND NOT (f.state = 'skipped' AND f.skip_reason = 'forgotten'))
     AND NOT EXISTS (SELECT 1 FROM page_versions v
          JOIN pages p ON p.id = v.page_id JOIN frontier f ON f.id = p.frontier_id
          WHERE v.old_content_sha256 = $1 AND v.page_id <> $2
            AND NOT (f.state = 'skipped' AND f.skip_reason = 'forgotten'))
     AND NOT EXISTS (SELECT 1 FROM page_versions v
          JOIN pages p ON p.id = v.page_id JOIN frontier f ON f.id = p.frontier_id
          WHERE v.new_content_sha256 = $1 AND v.page_id <> $2
            AND NOT (f.state = 'skipped' AND f.skip_reason = 'forgotten'))";
const ANSWERS_CITING: &str =
    "SELECT DISTINCT answer_id FROM answer_citations WHERE page_id = $1 ORDER BY answer_id";
const QUOTES: &str =
    "SELECT quote FROM answer_citations WHERE answer_id = $1 AND page_id = $2 AND quote <> $3";
const ANSWER_TEXT: &str = "SELECT json, answer, draft FROM answers WHERE id = $1";
const SET_ANSWER: &str = "UPDATE answers SET json = $1, answer = $2, draft = $3 WHERE id = $4";
const SET_QUOTES: &str = "UPDATE answer_citations SET quote = $1
     WHERE answer_id = $2 AND page_id = $3 AND quote <> $1 RETURNING rowid";
const UNFLAGGED: &str = "SELECT count(*) FROM answers WHERE flagged_at IS NULL
       AND id IN (SELECT answer_id FROM answer_citations WHERE page_id = $1)";
const TOMBSTONE: &str = "INSERT INTO tombstones (url_sha256, origin, forgotten_at, reason)
     VALUES ($1, $2, $3, $4) ON CONFLICT (url_sha256) DO NOTHING";
const TOMBSTONE_ROW: &str = "SELECT rowid FROM tombstones WHERE url_sha256 = $1";

/// The tables `forget` rewrites or deletes from: what PostgreSQL vacuums
/// afterwards so no dead row version keeps erased bytes.
pub(crate) const ERASED_TABLES: &[&str] = &[
    "pages",
    "passages",
    "links",
    "evidence",
    "raw_captures",
    "answers",
    "answer_citations",
];

/// The statements of [`forget_in`] on one backend's open transaction.
pub(crate) trait ForgetRows: LogTx {
    async fn frontier_of_origin(&mut self, origin: &str) -> Result<Vec<Target>, StoreError>;
    async fn frontier_of_norm(&mut self, norm: &str) -> Result<Option<Target>, StoreError>;
    async fn tombstoned(&mut self, key: &str) -> Result<bool, StoreError>;
    async fn mark_forgotten(&mut self, frontier_id: i64, now: i64) -> Result<(), StoreError>;
    /// (id, url, title, author, text) of the frontier row's pages.
    #[allow(clippy::type_complexity)]
    async fn pages_of(
        &mut self,
        frontier_id: i64,
    ) -> Result<Vec<(i64, String, Option<String>, Option<String>, String)>, StoreError>;
    async fn delete_passages(&mut self, page_id: i64) -> Result<u64, StoreError>;
    async fn erase_text(&mut self, page_id: i64) -> Result<u64, StoreError>;
    async fn erase_meta(&mut self, page_id: i64) -> Result<u64, StoreError>;
    async fn erase_anchors(&mut self, page_id: i64) -> Result<Vec<i64>, StoreError>;
    async fn evidence_of(
        &mut self,
        page_id: i64,
        url: &str,
    ) -> Result<Vec<(i64, EvidenceText)>, StoreError>;
    async fn set_evidence(&mut self, id: i64, raw: &str, parsed: &str) -> Result<(), StoreError>;
    /// Deletes the raw captures of every version of the page, each unless
    /// a URL not forgotten has the same body; how many were deleted.
    async fn forget_raw(&mut self, page_id: i64) -> Result<u64, StoreError>;
    async fn answers_citing(&mut self, page_id: i64) -> Result<Vec<i64>, StoreError>;
    async fn quotes(
        &mut self,
        answer_id: i64,
        page_id: i64,
        placeholder: &str,
    ) -> Result<Vec<String>, StoreError>;
    async fn answer_text(&mut self, answer_id: i64) -> Result<Option<AnswerText>, StoreError>;
    async fn set_answer(&mut self, answer_id: i64, a: &AnswerText) -> Result<(), StoreError>;
    async fn set_quotes(
        &mut self,
        answer_id: i64,
        page_id: i64,
        placeholder: &str,
    ) -> Result<Vec<i64>, StoreError>;
    async fn unflagged(&mut self, page_id: i64) -> Result<i64, StoreError>;
    /// Inserts the tombstone (once); its row id.
    async fn tombstone(
        &mut self,
        key: &str,
        origin: &str,
        now: i64,
        reason: &str,
    ) -> Result<i64, StoreError>;
    /// After passages were deleted (SQLite: merge the FTS5 segments, so the
    /// old terms go; PostgreSQL: nothing, VACUUM follows the commit).
    async fn passages_deleted(&mut self) -> Result<(), StoreError>;
}

/// Implements [`ForgetRows`] for one backend's connection with the shared
/// SQL text above, plus that backend's own methods (`$($own)*`).
macro_rules! forget_rows {
    ($conn:ty, $($own:item)*) => {
        impl ForgetRows for $conn {
            $($own)*
            async fn frontier_of_origin(&mut self, origin: &str) -> Result<Vec<Target>, StoreError> {
                Ok(sqlx::query_as(FRONTIER_OF_ORIGIN).bind(origin).fetch_all(&mut *self).await?)
            }
            async fn frontier_of_norm(&mut self, norm: &str) -> Result<Option<Target>, StoreError> {
                Ok(sqlx::query_as(FRONTIER_OF_NORM).bind(norm).fetch_optional(&mut *self).await?)
            }
            async fn tombstoned(&mut self, key: &str) -> Result<bool, StoreError> {
                Ok(sqlx::query_scalar(TOMBSTONED).bind(key).fetch_one(&mut *self).await?)
            }
            async fn mark_forgotten(&mut self, frontier_id: i64, now: i64) -> Result<(), StoreError> {
                sqlx::query(MARK_FORGOTTEN).bind(now).bind(frontier_id).execute(&mut *self).await?;
                Ok(())
            }
            async fn pages_of(
                &mut self,
                frontier_id: i64,
            ) -> Result<Vec<(i64, String, Option<String>, Option<String>, String)>, StoreError> {
                Ok(sqlx::query_as(PAGES_OF).bind(frontier_id).fetch_all(&mut *self).await?)
            }
            async fn delete_passages(&mut self, page_id: i64) -> Result<u64, StoreError> {
                Ok(sqlx::query(DELETE_PASSAGES).bind(page_id).execute(&mut *self).await?.rows_affected())
            }
            async fn erase_text(&mut self, page_id: i64) -> Result<u64, StoreError> {
                Ok(sqlx::query(ERASE_TEXT).bind(page_id).execute(&mut *self).await?.rows_affected())
            }
            async fn erase_meta(&mut self, page_id: i64) -> Result<u64, StoreError> {
                Ok(sqlx::query(ERASE_META).bind(page_id).execute(&mut *self).await?.rows_affected())
            }
            async fn erase_anchors(&mut self, page_id: i64) -> Result<Vec<i64>, StoreError> {
                Ok(sqlx::query_scalar(ERASE_ANCHORS).bind(page_id).fetch_all(&mut *self).await?)
            }
            async fn evidence_of(
                &mut self,
                page_id: i64,
                url: &str,
            ) -> Result<Vec<(i64, EvidenceText)>, StoreError> {
                let rows: Vec<(i64, String, String, String, String)> = sqlx::query_as(EVIDENCE_OF)
                    .bind(page_id)
                    .bind(url)
                    .fetch_all(&mut *self)
                    .await?;
                Ok(rows
                    .into_iter()
                    .map(|(id, signal, location, raw, parsed)| {
                        (id, EvidenceText { signal, location, raw, parsed })
                    })
                    .collect())
            }
            async fn set_evidence(&mut self, id: i64, raw: &str, parsed: &str) -> Result<(), StoreError> {
                sqlx::query(SET_EVIDENCE).bind(raw).bind(parsed).bind(id).execute(&mut *self).await?;
                Ok(())
            }
            async fn forget_raw(&mut self, page_id: i64) -> Result<u64, StoreError> {
                let shas: Vec<String> =
                    sqlx::query_scalar(RAWS_OF).bind(page_id).fetch_all(&mut *self).await?;
                let mut erased = 0u64;
                for sha in &shas {
                    let n = sqlx::query(DELETE_RAW)
                        .bind(sha)
                        .bind(page_id)
                        .execute(&mut *self)
                        .await?
                        .rows_affected();
                    erased = erased.saturating_add(n);
                }
                Ok(erased)
            }
            async fn answers_citing(&mut self, page_id: i64) -> Result<Vec<i64>, StoreError> {
                Ok(sqlx::query_scalar(ANSWERS_CITING).bind(page_id).fetch_all(&mut *self).await?)
            }
            async fn quotes(
                &mut self,
                answer_id: i64,
                page_id: i64,
                placeholder: &str,
            ) -> Result<Vec<String>, StoreError> {
                Ok(sqlx::query_scalar(QUOTES)
                    .bind(answer_id)
                    .bind(page_id)
                    .bind(placeholder)
                    .fetch_all(&mut *self)
                    .await?)
            }
            async fn answer_text(&mut self, answer_id: i64) -> Result<Option<AnswerText>, StoreError> {
                let r: Option<(String, String, String)> =
                    sqlx::query_as(ANSWER_TEXT).bind(answer_id).fetch_optional(&mut *self).await?;
                Ok(r.map(|(json, answer, draft)| AnswerText { json, answer, draft }))
            }
            async fn set_answer(&mut self, answer_id: i64, a: &AnswerText) -> Result<(), StoreError> {
                sqlx::query(SET_ANSWER)
                    .bind(&a.json)
                    .bind(&a.answer)
                    .bind(&a.draft)
                    .bind(answer_id)
                    .execute(&mut *self)
                    .await?;
                Ok(())
            }
            async fn set_quotes(
                &mut self,
                answer_id: i64,
                page_id: i64,
                placeholder: &str,
            ) -> Result<Vec<i64>, StoreError> {
                Ok(sqlx::query_scalar(SET_QUOTES)
                    .bind(placeholder)
                    .bind(answer_id)
                    .bind(page_id)
                    .fetch_all(&mut *self)
                    .await?)
            }
            async fn unflagged(&mut self, page_id: i64) -> Result<i64, StoreError> {
                Ok(sqlx::query_scalar(UNFLAGGED).bind(page_id).fetch_one(&mut *self).await?)
            }
            async fn tombstone(
                &mut self,
                key: &str,
                origin: &str,
                now: i64,
                reason: &str,
            ) -> Result<i64, StoreError> {
                sqlx::query(TOMBSTONE)
                    .bind(key)
                    .bind(origin)
                    .bind(now)
                    .bind(reason)
                    .execute(&mut *self)
                    .await?;
                Ok(sqlx::query_scalar(TOMBSTONE_ROW).bind(key).fetch_one(&mut *self).await?)
            }
        }
    };
}

forget_rows!(
    sqlx::SqliteConnection,
    async fn passages_deleted(&mut self) -> Result<(), StoreError> {
        // FTS5 deletes leave the old terms in their segments until a merge:
        // merge everything now (secure_delete zeroes the freed pages).
        sqlx::query("INSERT INTO passages_fts (passages_fts) VALUES ('optimize')")
            .execute(&mut *self)
            .await?;
        Ok(())
    }
);

forget_rows!(
    sqlx::PgConnection,
    async fn passages_deleted(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
);

/// The erasure of `url_norms` and/or every URL of `origin` on an open
/// transaction (see [`super::Store::forget`]); the caller commits.
pub(crate) async fn forget_in<C: ForgetRows>(
    tx: &mut C,
    url_norms: &[String],
    origin: Option<&str>,
    reason: &str,
    now: i64,
    redact: Redact<'_>,
) -> Result<Forgotten, StoreError> {
    tx.lock_log().await?;
    let mut targets: Vec<(Option<i64>, String, String, String)> = Vec::new();
    if let Some(o) = origin {
        targets.extend(
            tx.frontier_of_origin(o)
                .await?
                .into_iter()
                .map(|(id, url, norm, o)| (Some(id), url, norm, o)),
        );
    }
    for n in url_norms {
        match tx.frontier_of_norm(n).await? {
            Some((id, url, norm, o)) => targets.push((Some(id), url, norm, o)),
            None => {
                // Never met: a tombstone still keeps it from being crawled.
                let o = url::Url::parse(n)
                    .map(|u| u.origin().ascii_serialization())
                    .unwrap_or_default();
                targets.push((None, n.clone(), n.clone(), o));
            }
        }
    }
    let mut seen = HashSet::new();
    targets.retain(|t| seen.insert(t.2.clone()));
    let mut out = Forgotten::default();
    let mut passages_touched = false;
    for (fid, url, norm, o) in targets {
        let key = url_key(&norm);
        let placeholder = forgotten_placeholder(&key);
        let tombstoned = tx.tombstoned(&key).await?;
        let mut erased = 0u64;
        let mut raw_erased = 0u64;
        let mut changed = false;
        let mut pages: Vec<(i64, String)> = Vec::new();
        let mut link_rows: Vec<i64> = Vec::new();
        let mut answer_rows: Vec<i64> = Vec::new();
        let mut citation_rows: Vec<i64> = Vec::new();
        let mut evidence_rows: Vec<i64> = Vec::new();
        let mut redacted: Vec<serde_json::Value> = Vec::new();
        if let Some(fid) = fid {
            tx.mark_forgotten(fid, now).await?;
            for (page_id, page_url, title, author, text) in tx.pages_of(fid).await? {
                let page = ErasedPage {
                    page_id,
                    url: page_url,
                    title,
                    author,
                    text,
                    placeholder: placeholder.clone(),
                };
                let pid = page.page_id;
                // Retrieval passages hold copies of the text (SQLite's FTS
                // rows follow by trigger, PostgreSQL's tsvector is a column).
                if tx.delete_passages(pid).await? > 0 {
                    passages_touched = true;
                    changed = true;
                }
                // Counted only when there was text left to erase.
                erased += tx.erase_text(pid).await?;
                let meta = tx.erase_meta(pid).await?;
                let links = tx.erase_anchors(pid).await?;
                // Evidence gathered from the page (its title and author,
                // text around a notice) holds copies too.
                for (id, before) in tx.evidence_of(pid, &page.url).await? {
                    let (raw, parsed) = redact.evidence(&page, &before);
                    if raw != before.raw || parsed != before.parsed {
                        tx.set_evidence(id, &raw, &parsed).await?;
                        evidence_rows.push(id);
                    }
                }
                let raw = tx.forget_raw(pid).await?;
                raw_erased += raw;
                // Answer records quoting it.
                for aid in tx.answers_citing(pid).await? {
                    let quotes = tx.quotes(aid, pid, &placeholder).await?;
                    let Some(before) = tx.answer_text(aid).await? else {
                        continue;
                    };
                    let after = redact.answer(&page, &quotes, &before);
                    if after != before {
                        tx.set_answer(aid, &after).await?;
                        answer_rows.push(aid);
                        redacted.push(serde_json::json!({
                            "answer_id": aid, "json_sha256": sha256_hex(after.json.as_bytes()),
                        }));
                    }
                    citation_rows.extend(tx.set_quotes(aid, pid, &placeholder).await?);
                }
                if meta > 0 || !links.is_empty() || raw > 0 {
                    changed = true;
                }
                link_rows.extend(links);
                pages.push((pid, page.url));
            }
        }
        if erased > 0
            || !answer_rows.is_empty()
            || !citation_rows.is_empty()
            || !evidence_rows.is_empty()
        {
            changed = true;
        }
        // Answers citing it that are not flagged yet (a page forgotten
        // before forget flagged answers).
        let mut unflagged = false;
        for (pid, _) in &pages {
            unflagged |= tx.unflagged(*pid).await? > 0;
        }
        if tombstoned && !changed && !unflagged {
            out.already.push(url);
            continue;
        }
        out.pages_erased += erased;
        out.raw_erased += raw_erased;
        out.answers_redacted += answer_rows.len() as u64;
        let rowid = tx.tombstone(&key, &o, now, reason).await?;
        let payload = serde_json::json!({
            "url_sha256": key, "reason": reason, "pages_erased": erased,
            "raw_captures_erased": raw_erased, "answers_redacted": redacted,
        });
        // The rows as erased: the newest event covering each, so `audit
        // verify` checks them against these hashes (the older events'
        // hashes of the same rows are superseded, as for a flag).
        let mut refs: Vec<(&str, i64)> = vec![("tombstones", rowid)];
        refs.extend(pages.iter().map(|(p, _)| ("pages", *p)));
        refs.extend(link_rows.iter().map(|r| ("links", *r)));
        refs.extend(answer_rows.iter().map(|r| ("answers", *r)));
        refs.extend(citation_rows.iter().map(|r| ("answer_citations", *r)));
        refs.extend(evidence_rows.iter().map(|r| ("evidence", *r)));
        // One event per page URL (the subject `audit verify` checks erased
        // texts against) and one for the frontier URL when it differs.
        let mut subjects: Vec<String> = pages.iter().map(|(_, u)| u.clone()).collect();
        if !subjects.contains(&url) {
            subjects.push(url.clone());
        }
        let mut first_seq = None;
        for (i, s) in subjects.iter().enumerate() {
            let r: &[(&str, i64)] = if i == 0 { &refs } else { &refs[..1] };
            let p = if i == 0 {
                payload.clone()
            } else {
                let mut p = payload.clone();
                p["answers_redacted"] = serde_json::json!([]);
                p
            };
            let e = tx.append_event(now, "forget", s, &p, r).await?;
            first_seq.get_or_insert(e.seq);
        }
        let seq = first_seq.unwrap_or(0);
        for (pid, _) in &pages {
            let flagged = tx.flag_and_log(*pid, ("forget_seq", seq), now).await?;
            out.flagged_answers.extend(flagged);
        }
        out.urls.push(url);
    }
    if passages_touched {
        tx.passages_deleted().await?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::probe::{Bind, indexes, plan};

    /// Issue #26: `fetch_raw` has no index by body hash (each stored page
    /// paid a write at a random place of it); `forget` finds the other
    /// pages using a capture through the hash indexes of `pages` and
    /// `page_versions`, never by a scan.
    #[tokio::test]
    async fn forget_finds_a_captures_other_pages_by_index() {
        let (_dir, store) = crate::store::probe::fresh().await;
        let pool = store.pool().unwrap();
        assert!(indexes(pool, "fetch_raw").await.is_empty());
        let plan = plan(pool, DELETE_RAW, &[Bind::Text("00"), Bind::Int(1)]).await;
        for index in [
            "pages_by_content (content_sha256=?)",
            "page_versions_by_old_content (old_content_sha256=?)",
            "page_versions_by_new_content (new_content_sha256=?)",
        ] {
            assert!(
                plan.iter().any(|d| d.ends_with(index)),
                "{index}: {plan:#?}"
            );
        }
        assert!(!plan.iter().any(|d| d.starts_with("SCAN")), "{plan:#?}");
    }
}
