//! Read side of the provenance audit (every URL the crawl met, current
//! verdicts, a page's trail) and its two writers: numbered exports and
//! `forget` (content erased, tombstone kept, audit event appended).

use sqlx::Row;

use super::answers::flag_and_log_on;
use super::audit::{append_event, sha256_hex};
use super::raw::forget_raw_in;
use super::verdicts::{VerdictDb, VerdictRow};
use super::{Store, StoreError};

/// One frontier URL with what became of it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UrlRow {
    pub frontier_id: i64,
    pub url: String,
    pub url_norm: String,
    pub origin: String,
    pub depth: i64,
    pub state: String,
    pub skip_reason: Option<String>,
    pub last_error: Option<String>,
    pub page_id: Option<i64>,
    pub title: Option<String>,
    pub status: Option<i64>,
    pub fetched_at: Option<i64>,
}

/// One fetch of a URL, for `audit why`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FetchRow {
    pub id: i64,
    pub attempt: i64,
    pub requested_url: String,
    pub final_url: Option<String>,
    pub redirect_chain: String,
    pub fetched_at: i64,
    pub status: Option<i64>,
    pub content_type: Option<String>,
    pub body_sha256: Option<String>,
    pub body_bytes: Option<i64>,
    pub error_kind: Option<String>,
    pub error_detail: Option<String>,
}

/// The robots.txt decision for a URL, with the version that decided.
#[derive(Debug, Clone)]
pub struct RobotsRow {
    pub decision_id: i64,
    pub allowed: bool,
    pub matched_line: Option<i64>,
    pub rule: Option<String>,
    pub reason: Option<String>,
    pub decided_at: i64,
    pub version_id: i64,
    pub robots_url: String,
    pub robots_status: Option<i64>,
    pub robots_outcome: String,
    pub robots_sha256: Option<String>,
    pub robots_fetched_at: i64,
    pub robots_body: Option<Vec<u8>>,
}

/// A forgotten URL.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Tombstone {
    pub url_sha256: String,
    pub origin: String,
    pub forgotten_at: i64,
    pub reason: String,
}

/// A numbered export as recorded.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ExportRow {
    pub version: i64,
    pub created_at: i64,
    pub format: String,
    pub filters: String,
    pub records: i64,
    pub merkle_root: String,
    pub manifest_sha256: String,
}

/// What `forget` erased.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Forgotten {
    pub urls: Vec<String>,
    pub pages_erased: u64,
    /// Raw captures (response bodies) deleted: those no remaining page uses.
    pub raw_erased: u64,
    /// URLs already forgotten with nothing left to erase (nothing logged).
    pub already: Vec<String>,
    /// Answer records whose quotes of a forgotten page were replaced.
    pub answers_redacted: u64,
    /// Answers flagged now because they cited a forgotten page.
    pub flagged_answers: Vec<i64>,
    /// Whether the WAL was checkpointed and truncated afterwards (false
    /// when a reader held it: old page images may stay until the next
    /// checkpoint).
    pub checkpointed: bool,
}

/// The tombstone key of a normalised URL.
pub fn url_key(url_norm: &str) -> String {
    sha256_hex(url_norm.as_bytes())
}

/// The query of [`UrlRow`]s with `$tail` (`WHERE …`, `ORDER BY …`)
/// appended; the same text on both backends.
macro_rules! audit_urls_sql {
    ($tail:literal) => {
        concat!(
            "SELECT f.id AS frontier_id, f.url, f.url_norm, f.origin, f.depth, f.state, f.skip_reason,
            f.last_error, p.id AS page_id, p.title,
            (SELECT status FROM fetches x WHERE x.frontier_id = f.id ORDER BY x.id DESC LIMIT 1) AS status,
            (SELECT fetched_at FROM fetches x WHERE x.frontier_id = f.id ORDER BY x.id DESC LIMIT 1) AS fetched_at
     FROM frontier f LEFT JOIN pages p ON p.frontier_id = f.id ",
            $tail
        )
    };
}

/// The verdict columns, then `FROM verdicts v` and a condition: the newest
/// verdict of its page and purpose that the audit log vouches for.
macro_rules! verdicts_in_force_sql {
    ($where:literal, $tail:literal) => {
        concat!(
            "SELECT v.id, v.set_id, v.page_url, v.purpose, v.decision, v.conditions, v.reasons,
                    v.evidence_ids, v.policy_id, v.policy_sha256, v.decided_at
             FROM verdicts v WHERE ",
            $where,
            " v.id = (SELECT MAX(id) FROM verdicts w WHERE w.page_url = v.page_url AND w.purpose = v.purpose
                        AND EXISTS (SELECT 1 FROM audit_refs ar WHERE ar.tbl = 'verdicts' AND ar.row_id = w.id))
             ",
            $tail
        )
    };
}

/// A robots.txt decision joined with its version, as stored (the flag as
/// its 0/1 integer on both backends).
#[derive(sqlx::FromRow)]
struct RobotsDb {
    decision_id: i64,
    allowed: i64,
    matched_line: Option<i64>,
    rule: Option<String>,
    reason: Option<String>,
    decided_at: i64,
    version_id: i64,
    robots_url: String,
    robots_status: Option<i64>,
    robots_outcome: String,
    robots_sha256: Option<String>,
    robots_fetched_at: i64,
    robots_body: Option<Vec<u8>>,
}

impl From<RobotsDb> for RobotsRow {
    fn from(r: RobotsDb) -> RobotsRow {
        RobotsRow {
            decision_id: r.decision_id,
            allowed: r.allowed != 0,
            matched_line: r.matched_line,
            rule: r.rule,
            reason: r.reason,
            decided_at: r.decided_at,
            version_id: r.version_id,
            robots_url: r.robots_url,
            robots_status: r.robots_status,
            robots_outcome: r.robots_outcome,
            robots_sha256: r.robots_sha256,
            robots_fetched_at: r.robots_fetched_at,
            robots_body: r.robots_body,
        }
    }
}

impl Store {
    /// Every URL the crawl met, in frontier order, with its page and latest fetch.
    pub async fn audit_urls(&self) -> Result<Vec<UrlRow>, StoreError> {
        Ok(
            on_pool!(self, pool => sqlx::query_as(audit_urls_sql!("ORDER BY f.id"))
            .fetch_all(pool)
            .await?),
        )
    }

    /// The frontier rows whose as-discovered URL is `url` (one URL's rows,
    /// not the corpus), in frontier order.
    pub async fn audit_urls_named(&self, url: &str) -> Result<Vec<UrlRow>, StoreError> {
        Ok(
            on_pool!(self, pool => sqlx::query_as(audit_urls_sql!("WHERE f.url = $1 ORDER BY f.id"))
            .bind(url)
            .fetch_all(pool)
            .await?),
        )
    }

    /// The newest verdict of every page and purpose that the audit log
    /// vouches for (the ones in force).
    pub async fn current_verdicts(&self) -> Result<Vec<VerdictRow>, StoreError> {
        let rows: Vec<VerdictDb> = on_pool!(self, pool => sqlx::query_as(
            verdicts_in_force_sql!("", "ORDER BY v.page_url, v.purpose"),
        )
        .fetch_all(pool)
        .await?);
        rows.into_iter().map(VerdictRow::try_from).collect()
    }

    /// The verdicts in force of one page (the newest per purpose that the
    /// audit log vouches for).
    pub async fn current_verdicts_of(&self, page_url: &str) -> Result<Vec<VerdictRow>, StoreError> {
        let rows: Vec<VerdictDb> = on_pool!(self, pool => sqlx::query_as(
            verdicts_in_force_sql!("v.page_url = $1 AND", "ORDER BY v.purpose"),
        )
        .bind(page_url)
        .fetch_all(pool)
        .await?);
        rows.into_iter().map(VerdictRow::try_from).collect()
    }

    /// Every verdict of one page the audit log vouches for, oldest first
    /// (history included).
    pub async fn verdict_history(&self, page_url: &str) -> Result<Vec<VerdictRow>, StoreError> {
        let rows: Vec<VerdictDb> = on_pool!(self, pool => sqlx::query_as(
            "SELECT id, set_id, page_url, purpose, decision, conditions, reasons, evidence_ids,
                    policy_id, policy_sha256, decided_at
             FROM verdicts WHERE page_url = $1 AND EXISTS (SELECT 1 FROM audit_refs ar WHERE ar.tbl = 'verdicts' AND ar.row_id = verdicts.id) ORDER BY id",
        )
        .bind(page_url)
        .fetch_all(pool)
        .await?);
        rows.into_iter().map(VerdictRow::try_from).collect()
    }

    /// Policy versions with the number of verdicts in force citing them.
    pub async fn policies_in_use(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_as(
            "SELECT p.policy_id, p.sha256,
                    (SELECT count(*) FROM verdicts v WHERE v.policy_sha256 = p.sha256
                       AND v.id = (SELECT MAX(id) FROM verdicts w WHERE w.page_url = v.page_url AND w.purpose = v.purpose
                                    AND EXISTS (SELECT 1 FROM audit_refs ar WHERE ar.tbl = 'verdicts' AND ar.row_id = w.id)))
             FROM policies_seen p ORDER BY p.first_seen_at, p.sha256",
        )
        .fetch_all(pool)
        .await?))
    }

    /// The frontier row of a URL (by normalised or as-discovered form).
    pub async fn audit_url(&self, url: &str, url_norm: &str) -> Result<Option<UrlRow>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_as(audit_urls_sql!(
            "WHERE f.url_norm = $1 OR f.url = $2 ORDER BY f.id LIMIT 1"
        ))
        .bind(url_norm)
        .bind(url)
        .fetch_optional(pool)
        .await?))
    }

    /// Every fetch of a frontier URL, oldest first.
    pub async fn fetches_of(&self, frontier_id: i64) -> Result<Vec<FetchRow>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_as(
            "SELECT id, attempt, requested_url, final_url, redirect_chain, fetched_at, status, content_type,
                    body_sha256, body_bytes, error_kind, error_detail
             FROM fetches WHERE frontier_id = $1 ORDER BY id",
        )
        .bind(frontier_id)
        .fetch_all(pool)
        .await?))
    }

    /// The newest robots.txt decision of a frontier URL and the version that made it.
    pub async fn robots_decision_of(
        &self,
        frontier_id: i64,
    ) -> Result<Option<RobotsRow>, StoreError> {
        let r: Option<RobotsDb> = on_pool!(self, pool => sqlx::query_as(
            "SELECT d.id AS decision_id, d.allowed, d.matched_line, d.rule, d.reason, d.decided_at,
                    v.id AS version_id, v.url AS robots_url, v.status AS robots_status,
                    v.outcome AS robots_outcome, v.body_sha256 AS robots_sha256,
                    v.fetched_at AS robots_fetched_at, v.body AS robots_body
             FROM robots_decisions d JOIN robots_versions v ON v.id = d.robots_version_id
             WHERE d.frontier_id = $1 ORDER BY d.id DESC LIMIT 1",
        )
        .bind(frontier_id)
        .fetch_optional(pool)
        .await?);
        Ok(r.map(RobotsRow::from))
    }

    /// The robots.txt version fetched from `url` at `fetched_at` with body
    /// `body_sha256` (what an evidence row's fetch reference names), newest
    /// first when several match. The decision fields are left empty.
    pub async fn robots_version_at(
        &self,
        url: &str,
        fetched_at: i64,
        body_sha256: Option<&str>,
    ) -> Result<Option<RobotsRow>, StoreError> {
        let r: Option<RobotsDb> = on_pool!(self, pool => sqlx::query_as(
            "SELECT CAST(0 AS BIGINT) AS decision_id, CAST(0 AS BIGINT) AS allowed,
                    CAST(NULL AS BIGINT) AS matched_line, CAST(NULL AS TEXT) AS rule,
                    CAST(NULL AS TEXT) AS reason,
                    CAST(0 AS BIGINT) AS decided_at, id AS version_id, url AS robots_url, status AS robots_status,
                    outcome AS robots_outcome, body_sha256 AS robots_sha256,
                    fetched_at AS robots_fetched_at, body AS robots_body
             FROM robots_versions
             WHERE url = $1 AND fetched_at = $2 AND ($3 IS NULL OR body_sha256 = $3)
             ORDER BY id DESC LIMIT 1",
        )
        .bind(url)
        .bind(fetched_at)
        .bind(body_sha256)
        .fetch_optional(pool)
        .await?);
        Ok(r.map(RobotsRow::from))
    }

    /// Every evidence set (one observation of the page: a crawl or a
    /// recheck) of `page_url` the log vouches for: `(set id, observed_at)`,
    /// oldest first.
    pub async fn evidence_sets_of(&self, page_url: &str) -> Result<Vec<(i64, i64)>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_as(
            "SELECT id, observed_at FROM evidence_sets WHERE page_url = $1
               AND EXISTS (SELECT 1 FROM audit_refs ar WHERE ar.tbl = 'evidence_sets' AND ar.row_id = evidence_sets.id)
             ORDER BY id",
        )
        .bind(page_url)
        .fetch_all(pool)
        .await?))
    }

    /// The first audit event covering row `row_id` of `table` (its place
    /// in the log), if any.
    pub async fn logged_seq(&self, table: &str, row_id: i64) -> Result<Option<i64>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_scalar(
            "SELECT min(seq) FROM audit_refs WHERE tbl = $1 AND row_id = $2",
        )
        .bind(table)
        .bind(row_id)
        .fetch_one(pool)
        .await?))
    }

    /// The first audit event covering the tombstone of a normalised URL.
    pub async fn tombstone_seq(&self, url_norm: &str) -> Result<Option<i64>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_scalar(
            "SELECT min(seq) FROM audit_refs WHERE tbl = 'tombstones'
               AND row_id = (SELECT rowid FROM tombstones WHERE url_sha256 = $1)",
        )
        .bind(url_key(url_norm))
        .fetch_one(pool)
        .await?))
    }

    /// The tombstone of a normalised URL, if it was forgotten.
    pub async fn tombstone(&self, url_norm: &str) -> Result<Option<Tombstone>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_as(
            "SELECT url_sha256, origin, forgotten_at, reason FROM tombstones WHERE url_sha256 = $1",
        )
        .bind(url_key(url_norm))
        .fetch_optional(pool)
        .await?))
    }

    /// Links not followed, by reason (scope, nofollow, traps, budgets), and
    /// frontier URLs not fetched, by skip reason: `(reason, count)`, most first.
    pub async fn not_followed_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_as(
            "SELECT reason, CAST(sum(n) AS BIGINT) FROM (
                 SELECT skip_reason AS reason, count(*) AS n FROM links
                  WHERE skip_reason IS NOT NULL GROUP BY skip_reason
                 UNION ALL
                 SELECT skip_reason, count(*) FROM frontier
                  WHERE state = 'skipped' AND skip_reason IS NOT NULL GROUP BY skip_reason) AS skipped
             GROUP BY reason ORDER BY 2 DESC, 1",
        )
        .fetch_all(pool)
        .await?))
    }

    /// Number of tombstones.
    pub async fn tombstone_count(&self) -> Result<i64, StoreError> {
        Ok(
            on_pool!(self, pool => sqlx::query_scalar("SELECT count(*) FROM tombstones")
            .fetch_one(pool)
            .await?),
        )
    }

    /// Erases the stored content of every frontier URL whose normalised form
    /// is in `url_norms` or whose origin is `origin`, leaving nothing of it
    /// in the database file: page text, title, author, site name and dates;
    /// its passages and their FTS5 index terms (the index is merged so no
    /// old segment keeps them); its links' anchor texts; its raw capture
    /// (unless another page uses it); and every quote of it in answer
    /// records, which `redact` rewrites (the quotes replaced by a
    /// placeholder naming the tombstone). The connection runs with
    /// `PRAGMA secure_delete = ON` (freed space is zeroed) and the WAL is
    /// checkpointed and truncated afterwards, so no old page image keeps it.
    ///
    /// The audit log gets one `forget` event per URL covering the rows as
    /// erased (tombstone, page, links, answers, citations: the newest hash
    /// of each) with the new answers' `json_sha256`, never the content; the
    /// answers that cited the page are flagged (`answer.flag`). All of it is
    /// one transaction. A URL with a tombstone and nothing left to erase is
    /// reported under `already` and logged nothing.
    pub async fn forget(
        &self,
        url_norms: &[String],
        origin: Option<&str>,
        reason: &str,
        now: i64,
        redact: Redact<'_>,
    ) -> Result<Forgotten, StoreError> {
        let mut conn = self.pool()?.acquire().await?;
        let was_secure: i64 = sqlx::query_scalar("PRAGMA secure_delete")
            .fetch_one(&mut *conn)
            .await?;
        sqlx::query("PRAGMA secure_delete = ON")
            .execute(&mut *conn)
            .await?;
        let out = forget_on(&mut conn, url_norms, origin, reason, now, redact).await;
        let mut out = match out {
            Ok(o) => o,
            Err(e) => {
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "PRAGMA secure_delete = {was_secure}"
                )))
                .execute(&mut *conn)
                .await;
                return Err(e);
            }
        };
        // Old page images in the WAL still hold what was erased: copy the
        // log into the file (whose freed pages are now zeros) and truncate it.
        if !out.urls.is_empty() {
            let r = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .fetch_one(&mut *conn)
                .await?;
            let busy: i64 = r.try_get(0).unwrap_or(1);
            out.checkpointed = busy == 0;
        } else {
            out.checkpointed = true;
        }
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "PRAGMA secure_delete = {}",
            i64::from(was_secure != 0)
        )))
        .execute(&mut *conn)
        .await?;
        Ok(out)
    }

    /// Records a numbered export and appends its audit event; returns the version.
    pub async fn record_export(
        &self,
        created_at: i64,
        format: &str,
        filters_json: &str,
        records: i64,
        merkle_root: &str,
        manifest_sha256: &str,
    ) -> Result<i64, StoreError> {
        let e = NewExport {
            created_at,
            format,
            filters_json,
            records,
            merkle_root,
            manifest_sha256,
        };
        if let Some(pg) = self.pg() {
            return super::pg::provenance::record_export(pg, &e).await;
        }
        let mut tx = self.pool()?.begin().await?;
        let version: i64 = sqlx::query_scalar(
            "INSERT INTO exports (created_at, format, filters, records, merkle_root, manifest_sha256)
             VALUES (?, ?, ?, ?, ?, ?) RETURNING version",
        )
        .bind(created_at)
        .bind(format)
        .bind(filters_json)
        .bind(records)
        .bind(merkle_root)
        .bind(manifest_sha256)
        .fetch_one(&mut *tx)
        .await?;
        let (subject, payload) = e.event(version);
        append_event(
            &mut tx,
            created_at,
            "export",
            &subject,
            &payload,
            &[("exports", version)],
        )
        .await?;
        tx.commit().await?;
        Ok(version)
    }

    /// The number the next export will get.
    pub async fn next_export_version(&self) -> Result<i64, StoreError> {
        let v: Option<i64> = on_pool!(self, pool => sqlx::query_scalar("SELECT max(version) FROM exports")
            .fetch_one(pool)
            .await?);
        Ok(v.unwrap_or(0) + 1)
    }

    /// Every export so far, oldest first.
    pub async fn exports(&self) -> Result<Vec<ExportRow>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_as(
            "SELECT version, created_at, format, filters, records, merkle_root, manifest_sha256
             FROM exports ORDER BY version",
        )
        .fetch_all(pool)
        .await?))
    }
}

/// A numbered export to record ([`Store::record_export`]).
pub(crate) struct NewExport<'a> {
    pub created_at: i64,
    pub format: &'a str,
    pub filters_json: &'a str,
    pub records: i64,
    pub merkle_root: &'a str,
    pub manifest_sha256: &'a str,
}

impl NewExport<'_> {
    /// The `export` audit event of version `version`: (subject, payload).
    pub(crate) fn event(&self, version: i64) -> (String, serde_json::Value) {
        let payload = serde_json::json!({
            "version": version, "format": self.format, "records": self.records,
            "merkle_root": self.merkle_root,
        });
        (format!("export:{version}"), payload)
    }
}

/// The placeholder that replaces a forgotten page's quotes in answer
/// records: it names the tombstone (the sha256 of the normalised URL).
pub fn forgotten_placeholder(url_sha256: &str) -> String {
    format!("[forgotten: tombstone {url_sha256}]")
}

/// A page as it was before `forget` erased it, for redacting answers.
#[derive(Debug, Clone)]
pub struct ErasedPage {
    pub page_id: i64,
    pub url: String,
    pub title: Option<String>,
    pub author: Option<String>,
    pub text: String,
    /// [`forgotten_placeholder`] of its tombstone.
    pub placeholder: String,
}

/// The text columns of an answer record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerText {
    pub json: String,
    pub answer: String,
    pub draft: String,
}

/// One evidence row of an erased page: `(raw, parsed)` as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceText {
    pub signal: String,
    pub location: String,
    pub raw: String,
    pub parsed: String,
}

/// Decides what of a row came from an erased page and rewrites it (the
/// audit stage's rules; the store only reads and writes).
pub trait Redactor: Send + Sync {
    /// An answer record that cited the page, given the quotes its
    /// citations took from it.
    fn answer(&self, page: &ErasedPage, quotes: &[String], a: &AnswerText) -> AnswerText;
    /// An evidence row gathered from the page: the new `(raw, parsed)`.
    fn evidence(&self, page: &ErasedPage, e: &EvidenceText) -> (String, String);
}

/// The redactor `forget` is given.
pub type Redact<'a> = &'a dyn Redactor;

async fn forget_on(
    conn: &mut sqlx::SqliteConnection,
    url_norms: &[String],
    origin: Option<&str>,
    reason: &str,
    now: i64,
    redact: Redact<'_>,
) -> Result<Forgotten, StoreError> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    // A write first: the write lock is held before anything is read.
    sqlx::query("UPDATE frontier SET updated_at = updated_at WHERE 0")
        .execute(&mut *tx)
        .await?;
    let mut targets: Vec<(Option<i64>, String, String, String)> = Vec::new();
    if let Some(o) = origin {
        let rows = sqlx::query(
            "SELECT id, url, url_norm, origin FROM frontier WHERE origin = ? ORDER BY id",
        )
        .bind(o)
        .fetch_all(&mut *tx)
        .await?;
        targets.extend(
            rows.iter()
                .map(|r| (Some(r.get(0)), r.get(1), r.get(2), r.get(3))),
        );
    }
    for n in url_norms {
        let r = sqlx::query("SELECT id, url, url_norm, origin FROM frontier WHERE url_norm = ?")
            .bind(n)
            .fetch_optional(&mut *tx)
            .await?;
        match r {
            Some(r) => targets.push((Some(r.get(0)), r.get(1), r.get(2), r.get(3))),
            None => {
                // Never met: a tombstone still keeps it from being crawled.
                let o = url::Url::parse(n)
                    .map(|u| u.origin().ascii_serialization())
                    .unwrap_or_default();
                targets.push((None, n.clone(), n.clone(), o));
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    targets.retain(|t| seen.insert(t.2.clone()));
    let mut out = Forgotten::default();
    let mut fts_touched = false;
    for (fid, url, norm, o) in targets {
        let key = url_key(&norm);
        let placeholder = forgotten_placeholder(&key);
        let tombstoned: bool =
            sqlx::query_scalar("SELECT count(*) > 0 FROM tombstones WHERE url_sha256 = ?")
                .bind(&key)
                .fetch_one(&mut *tx)
                .await?;
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
            sqlx::query(
                "UPDATE frontier SET state = 'skipped', skip_reason = 'forgotten', updated_at = ? WHERE id = ?",
            )
            .bind(now)
            .bind(fid)
            .execute(&mut *tx)
            .await?;
            let rows =
                sqlx::query("SELECT id, url, title, author, text FROM pages WHERE frontier_id = ?")
                    .bind(fid)
                    .fetch_all(&mut *tx)
                    .await?;
            for r in rows {
                let page = ErasedPage {
                    page_id: r.try_get(0)?,
                    url: r.try_get(1)?,
                    title: r.try_get(2).unwrap_or(None),
                    author: r.try_get(3).unwrap_or(None),
                    text: r.try_get(4).unwrap_or_default(),
                    placeholder: placeholder.clone(),
                };
                let pid = page.page_id;
                // Retrieval passages hold copies of the text (the FTS rows
                // follow by trigger).
                let n = sqlx::query("DELETE FROM passages WHERE page_id = ?")
                    .bind(pid)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if n > 0 {
                    fts_touched = true;
                    changed = true;
                }
                // Counted only when there was text left to erase.
                erased += sqlx::query("UPDATE pages SET text = '' WHERE id = ? AND text <> ''")
                    .bind(pid)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                let meta = sqlx::query(
                    "UPDATE pages SET title = NULL, author = NULL, site_name = NULL,
                            published_at = NULL, modified_at = NULL
                     WHERE id = ? AND (title IS NOT NULL OR author IS NOT NULL OR site_name IS NOT NULL
                                       OR published_at IS NOT NULL OR modified_at IS NOT NULL)",
                )
                .bind(pid)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                let links: Vec<i64> = sqlx::query_scalar(
                    "UPDATE links SET anchor_text = '' WHERE page_id = ? AND anchor_text <> '' RETURNING rowid",
                )
                .bind(pid)
                .fetch_all(&mut *tx)
                .await?;
                // Evidence gathered from the page (its title and author,
                // text around a notice) holds copies too.
                let ev = sqlx::query(
                    "SELECT e.id, e.signal, e.location, e.raw, e.parsed FROM evidence e
                     JOIN evidence_sets s ON s.id = e.set_id
                     WHERE s.page_id = ?1 OR s.page_url = ?2 ORDER BY e.id",
                )
                .bind(pid)
                .bind(&page.url)
                .fetch_all(&mut *tx)
                .await?;
                for r in ev {
                    let id: i64 = r.try_get(0)?;
                    let before = EvidenceText {
                        signal: r.try_get(1)?,
                        location: r.try_get(2)?,
                        raw: r.try_get(3)?,
                        parsed: r.try_get(4)?,
                    };
                    let (raw, parsed) = redact.evidence(&page, &before);
                    if raw != before.raw || parsed != before.parsed {
                        sqlx::query("UPDATE evidence SET raw = ?, parsed = ? WHERE id = ?")
                            .bind(&raw)
                            .bind(&parsed)
                            .bind(id)
                            .execute(&mut *tx)
                            .await?;
                        evidence_rows.push(id);
                    }
                }
                let raw = forget_raw_in(&mut tx, pid).await?;
                raw_erased += raw;
                // Answer records quoting it.
                let answers: Vec<i64> = sqlx::query_scalar(
                    "SELECT DISTINCT answer_id FROM answer_citations WHERE page_id = ? ORDER BY answer_id",
                )
                .bind(pid)
                .fetch_all(&mut *tx)
                .await?;
                for aid in answers {
                    let quotes: Vec<String> = sqlx::query_scalar(
                        "SELECT quote FROM answer_citations WHERE answer_id = ? AND page_id = ? AND quote <> ?",
                    )
                    .bind(aid)
                    .bind(pid)
                    .bind(&placeholder)
                    .fetch_all(&mut *tx)
                    .await?;
                    let Some(r) =
                        sqlx::query("SELECT json, answer, draft FROM answers WHERE id = ?")
                            .bind(aid)
                            .fetch_optional(&mut *tx)
                            .await?
                    else {
                        continue;
                    };
                    let before = AnswerText {
                        json: r.try_get(0)?,
                        answer: r.try_get(1)?,
                        draft: r.try_get(2)?,
                    };
                    let after = redact.answer(&page, &quotes, &before);
                    if after != before {
                        sqlx::query(
                            "UPDATE answers SET json = ?, answer = ?, draft = ? WHERE id = ?",
                        )
                        .bind(&after.json)
                        .bind(&after.answer)
                        .bind(&after.draft)
                        .bind(aid)
                        .execute(&mut *tx)
                        .await?;
                        answer_rows.push(aid);
                        redacted.push(serde_json::json!({
                            "answer_id": aid, "json_sha256": sha256_hex(after.json.as_bytes()),
                        }));
                    }
                    let cits: Vec<i64> = sqlx::query_scalar(
                        "UPDATE answer_citations SET quote = ?1
                         WHERE answer_id = ?2 AND page_id = ?3 AND quote <> ?1 RETURNING rowid",
                    )
                    .bind(&placeholder)
                    .bind(aid)
                    .bind(pid)
                    .fetch_all(&mut *tx)
                    .await?;
                    citation_rows.extend(cits);
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
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM answers WHERE flagged_at IS NULL
                   AND id IN (SELECT answer_id FROM answer_citations WHERE page_id = ?)",
            )
            .bind(pid)
            .fetch_one(&mut *tx)
            .await?;
            unflagged |= n > 0;
        }
        if tombstoned && !changed && !unflagged {
            out.already.push(url);
            continue;
        }
        out.pages_erased += erased;
        out.raw_erased += raw_erased;
        out.answers_redacted += answer_rows.len() as u64;
        sqlx::query(
            "INSERT INTO tombstones (url_sha256, origin, forgotten_at, reason) VALUES (?, ?, ?, ?)
             ON CONFLICT (url_sha256) DO NOTHING",
        )
        .bind(&key)
        .bind(&o)
        .bind(now)
        .bind(reason)
        .execute(&mut *tx)
        .await?;
        let rowid: i64 = sqlx::query_scalar("SELECT rowid FROM tombstones WHERE url_sha256 = ?")
            .bind(&key)
            .fetch_one(&mut *tx)
            .await?;
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
            let e = append_event(&mut tx, now, "forget", s, &p, r).await?;
            first_seq.get_or_insert(e.seq);
        }
        let seq = first_seq.unwrap_or(0);
        for (pid, _) in &pages {
            let flagged = flag_and_log_on(&mut tx, *pid, ("forget_seq", seq), now).await?;
            out.flagged_answers.extend(flagged);
        }
        out.urls.push(url);
    }
    if fts_touched {
        // FTS5 deletes leave the old terms in their segments until a merge:
        // merge everything now (secure_delete zeroes the freed pages).
        sqlx::query("INSERT INTO passages_fts (passages_fts) VALUES ('optimize')")
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(out)
}
