//! Re-crawl (`byline crawl --refresh`, `audit recheck --bodies`): what a
//! revisit of a stored page needs to know (its last good fetch's
//! validators, its schedule) and what it records: the fetch (a `304 Not
//! Modified` is a fetch with status 304 and no body), the page brought up
//! to a changed body with a `page_versions` row, the changed page's new
//! links and frontier rows, the consent evidence and verdicts, and the
//! revisit schedule, in one transaction with one `page.check` audit event.

use sqlx::Row;

use super::audit::append_event;
use std::collections::HashSet;

use super::crawl::{
    FetchRecord, LinkBudget, LinkRecord, PageRecord, insert_fetch_in, queue_and_insert_links,
};
use super::evidence::{ConsentRecord, insert_consent_in};
use super::raw::insert_raw_in;
use super::{Store, StoreError};

/// A stored page as a revisit finds it.
#[derive(Debug, Clone)]
pub struct StoredPage {
    pub page_id: i64,
    /// `pages.url` (the final URL of its last good fetch).
    pub url: String,
    pub frontier_id: i64,
    pub depth: i64,
    /// The fetch the page's text came from (its last good fetch).
    pub fetch_id: i64,
    pub fetched_at: i64,
    pub text_sha256: String,
    pub content_sha256: String,
    /// That fetch's response headers (validators, header evidence).
    pub headers: Vec<(String, String)>,
    pub schedule: Option<Schedule>,
}

/// A page's revisit schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub interval_secs: i64,
    pub last_checked_at: i64,
    pub next_due_at: i64,
}

/// The schedule a revisit leaves behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduleUpdate {
    pub interval_secs: i64,
    pub next_due_at: i64,
    pub last_status: Option<u16>,
    pub last_changed: bool,
}

/// A changed body: the page's new content and the signal codes that changed.
pub struct NewVersion<'a> {
    pub page: &'a PageRecord,
    pub links: &'a mut [LinkRecord],
    /// `+code` / `-code`: verdict reasons that appeared or disappeared.
    pub signals_changed: &'a [String],
}

/// One revisit to record.
pub struct CheckRecord<'a> {
    pub page: &'a StoredPage,
    pub run_id: Option<i64>,
    pub fetch: &'a FetchRecord,
    pub version: Option<NewVersion<'a>>,
    pub consent: Option<&'a ConsentRecord>,
    pub schedule: ScheduleUpdate,
    pub budget: LinkBudget,
    pub now: i64,
}

/// What [`Store::record_check`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checked {
    pub fetch_id: i64,
    pub version_id: Option<i64>,
    pub new_urls: u64,
    pub event_seq: i64,
}

/// One stored version change of a page (`audit history`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageVersion {
    pub id: i64,
    pub page_id: i64,
    pub url: String,
    pub run_id: Option<i64>,
    /// The fetch of the text before (the page's first version: its crawl).
    pub prev_fetch_id: i64,
    /// The fetch that brought the new text.
    pub fetch_id: i64,
    pub old_text_sha256: String,
    pub new_text_sha256: String,
    pub old_content_sha256: String,
    pub new_content_sha256: String,
    /// `+code` / `-code`: verdict reasons that appeared or disappeared.
    pub signals_changed: Vec<String>,
    pub seen_at: i64,
}

fn corrupt(table: &'static str, column: &'static str, detail: impl ToString) -> StoreError {
    StoreError::Corrupt {
        table,
        column,
        detail: detail.to_string(),
    }
}

impl Store {
    /// A stored page by id, with its last good fetch and schedule.
    pub async fn refresh_page(&self, page_id: i64) -> Result<Option<StoredPage>, StoreError> {
        let row = sqlx::query(
            "SELECT p.id, p.url, p.frontier_id, fr.depth, p.fetch_id, f.fetched_at, p.text_sha256,
                    p.content_sha256, f.response_headers, s.interval_secs, s.last_checked_at, s.next_due_at
             FROM pages p JOIN fetches f ON f.id = p.fetch_id JOIN frontier fr ON fr.id = p.frontier_id
             LEFT JOIN revisit_schedule s ON s.page_id = p.id
             WHERE p.id = ?",
        )
        .bind(page_id)
        .fetch_optional(self.pool()?)
        .await?;
        let Some(r) = row else {
            return Ok(None);
        };
        let headers: String = r.get(8);
        let headers: Vec<(String, String)> = serde_json::from_str(&headers)
            .map_err(|e| corrupt("fetches", "response_headers", e))?;
        let interval: Option<i64> = r.get(9);
        Ok(Some(StoredPage {
            page_id: r.get(0),
            url: r.get(1),
            frontier_id: r.get(2),
            depth: r.get(3),
            fetch_id: r.get(4),
            fetched_at: r.get(5),
            text_sha256: r.get(6),
            content_sha256: r.get(7),
            headers,
            schedule: interval.map(|interval_secs| Schedule {
                interval_secs,
                last_checked_at: r.get(10),
                next_due_at: r.get(11),
            }),
        }))
    }

    /// Records one revisit in one transaction (see the module docs).
    pub async fn record_check(&self, c: CheckRecord<'_>) -> Result<Checked, StoreError> {
        let mut tx = self.pool()?.begin().await?;
        let f = c.fetch;
        let page = c.page;
        let attempt: i64 = sqlx::query_scalar(
            "SELECT coalesce(max(attempt), 0) + 1 FROM fetches WHERE frontier_id = ?",
        )
        .bind(page.frontier_id)
        .fetch_one(&mut *tx)
        .await?;
        let fetch_id = insert_fetch_in(&mut tx, f, page.frontier_id, attempt, None).await?;
        let mut refs: Vec<(&str, i64)> = vec![("fetches", fetch_id)];
        let mut done = Checked {
            fetch_id,
            ..Checked::default()
        };
        if let Some(v) = c.version {
            let p = v.page;
            sqlx::query(
                "UPDATE pages SET fetch_id = ?, url = ?, title = ?, author = ?, site_name = ?, published_at = ?,
                     modified_at = ?, canonical_url = ?, language = ?, meta_robots = ?, text = ?, text_sha256 = ?,
                     extractor_version = ?, content_sha256 = ?, nosnippet_spans = ?
                 WHERE id = ?",
            )
            .bind(fetch_id)
            .bind(&p.url)
            .bind(&p.title)
            .bind(&p.author)
            .bind(&p.site_name)
            .bind(&p.published_at)
            .bind(&p.modified_at)
            .bind(&p.canonical_url)
            .bind(&p.language)
            .bind(&p.meta_robots)
            .bind(&p.text)
            .bind(&p.text_sha256)
            .bind(&p.extractor_version)
            .bind(&p.content_sha256)
            .bind(spans_json(&p.nosnippet_spans))
            .bind(page.page_id)
            .execute(&mut *tx)
            .await?;
            refs.push(("pages", page.page_id));
            if let Some(raw) = &p.raw {
                refs.push(("fetch_raw", insert_raw_in(&mut tx, fetch_id, raw).await?));
            }
            let version_id: i64 = sqlx::query(
                "INSERT INTO page_versions (page_id, url, run_id, prev_fetch_id, fetch_id, old_text_sha256,
                     new_text_sha256, old_content_sha256, new_content_sha256, signals_changed, seen_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            )
            .bind(page.page_id)
            .bind(&page.url)
            .bind(c.run_id)
            .bind(page.fetch_id)
            .bind(fetch_id)
            .bind(&page.text_sha256)
            .bind(&p.text_sha256)
            .bind(&page.content_sha256)
            .bind(&p.content_sha256)
            .bind(
                serde_json::to_string(v.signals_changed)
                    .map_err(|e| corrupt("page_versions", "signals_changed", e))?,
            )
            .bind(c.now)
            .fetch_one(&mut *tx)
            .await?
            .get(0);
            refs.push(("page_versions", version_id));
            done.version_id = Some(version_id);
            // New links of the new version only (those already recorded for
            // the page stay as they were), numbered after the existing ones,
            // queued and inserted as a crawl does it.
            let next: i64 = sqlx::query_scalar(
                "SELECT coalesce(max(ordinal), -1) + 1 FROM links WHERE page_id = ?",
            )
            .bind(page.page_id)
            .fetch_one(&mut *tx)
            .await?;
            let had: HashSet<String> =
                sqlx::query_scalar("SELECT target_url FROM links WHERE page_id = ?")
                    .bind(page.page_id)
                    .fetch_all(&mut *tx)
                    .await?
                    .into_iter()
                    .collect();
            let mut seen: HashSet<&str> = HashSet::new();
            let fresh: Vec<usize> = v
                .links
                .iter()
                .enumerate()
                .filter(|(_, l)| !had.contains(&l.target_url) && seen.insert(l.target_url.as_str()))
                .map(|(i, _)| i)
                .collect();
            let mut new_links: Vec<LinkRecord> = fresh
                .iter()
                .filter_map(|&i| v.links.get(i).cloned())
                .collect();
            let (new_urls, rows) = queue_and_insert_links(
                &mut *tx,
                page.page_id,
                next,
                &mut new_links,
                c.budget,
                f.run_id,
                c.now,
            )
            .await?;
            done.new_urls += new_urls;
            refs.extend(rows);
            // The budget's skip reasons, back on the caller's links.
            for (&i, l) in fresh.iter().zip(new_links) {
                if let Some(slot) = v.links.get_mut(i) {
                    slot.skip_reason = l.skip_reason;
                }
            }
        }
        let s = c.schedule;
        sqlx::query(
            "INSERT INTO revisit_schedule (page_id, url, interval_secs, last_checked_at, last_status, last_changed, next_due_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (page_id) DO UPDATE SET url = excluded.url, interval_secs = excluded.interval_secs,
                 last_checked_at = excluded.last_checked_at, last_status = excluded.last_status,
                 last_changed = excluded.last_changed, next_due_at = excluded.next_due_at",
        )
        .bind(page.page_id)
        .bind(&page.url)
        .bind(s.interval_secs)
        .bind(c.now)
        .bind(s.last_status.map(i64::from))
        .bind(s.last_changed)
        .bind(s.next_due_at)
        .execute(&mut *tx)
        .await?;
        let sched_rowid: i64 =
            sqlx::query_scalar("SELECT rowid FROM revisit_schedule WHERE page_id = ?")
                .bind(page.page_id)
                .fetch_one(&mut *tx)
                .await?;
        refs.push(("revisit_schedule", sched_rowid));
        let payload = serde_json::json!({
            "page_id": page.page_id, "url": page.url, "status": f.status,
            "error_kind": f.error_kind, "body_sha256": f.body_sha256,
            "unchanged": f.status == Some(304), "version_id": done.version_id,
            "interval_secs": s.interval_secs, "next_due_at": s.next_due_at,
        });
        let ev = append_event(
            &mut tx,
            f.fetched_at,
            "page.check",
            &f.requested_url,
            &payload,
            &refs,
        )
        .await?;
        done.event_seq = ev.seq;
        if let Some(consent) = c.consent {
            insert_consent_in(&mut tx, consent, Some(page.page_id), Some(fetch_id)).await?;
        }
        tx.commit().await?;
        Ok(done)
    }

    /// The policy the newest verdict was decided under (the policy in force).
    pub async fn newest_verdict_policy(&self) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT policy_sha256 FROM verdicts ORDER BY id DESC LIMIT 1")
                .fetch_optional(self.pool()?)
                .await?,
        )
    }

    /// The stored version changes of the page at `url` (its URL as stored
    /// in `pages`, or as first discovered), oldest first; only rows the
    /// audit log vouches for.
    pub async fn page_versions(&self, url: &str) -> Result<Vec<PageVersion>, StoreError> {
        let rows: Vec<PageVersionDb> = on_pool!(self, pool => sqlx::query_as(
            "SELECT v.id, v.page_id, v.url, v.run_id, v.prev_fetch_id, v.fetch_id, v.old_text_sha256,
                    v.new_text_sha256, v.old_content_sha256, v.new_content_sha256, v.signals_changed, v.seen_at
             FROM page_versions v
             WHERE v.page_id IN (SELECT p.id FROM pages p JOIN frontier fr ON fr.id = p.frontier_id
                                 WHERE p.url = $1 OR fr.url = $1 OR fr.url_norm = $1)
               AND EXISTS (SELECT 1 FROM audit_refs ar WHERE ar.tbl = 'page_versions' AND ar.row_id = v.id)
             ORDER BY v.id",
        )
        .bind(url)
        .fetch_all(pool)
        .await?);
        rows.into_iter()
            .map(|r| {
                Ok(PageVersion {
                    id: r.id,
                    page_id: r.page_id,
                    url: r.url,
                    run_id: r.run_id,
                    prev_fetch_id: r.prev_fetch_id,
                    fetch_id: r.fetch_id,
                    old_text_sha256: r.old_text_sha256,
                    new_text_sha256: r.new_text_sha256,
                    old_content_sha256: r.old_content_sha256,
                    new_content_sha256: r.new_content_sha256,
                    signals_changed: serde_json::from_str(&r.signals_changed)
                        .map_err(|e| corrupt("page_versions", "signals_changed", e))?,
                    seen_at: r.seen_at,
                })
            })
            .collect()
    }
}

/// A `page_versions` row as stored (its signal list as JSON text).
#[derive(sqlx::FromRow)]
struct PageVersionDb {
    id: i64,
    page_id: i64,
    url: String,
    run_id: Option<i64>,
    prev_fetch_id: i64,
    fetch_id: i64,
    old_text_sha256: String,
    new_text_sha256: String,
    old_content_sha256: String,
    new_content_sha256: String,
    signals_changed: String,
    seen_at: i64,
}

/// `[[start, end], …]` for the `pages.nosnippet_spans` column.
fn spans_json(spans: &[(usize, usize)]) -> String {
    let pairs: Vec<[usize; 2]> = spans.iter().map(|&(a, b)| [a, b]).collect();
    serde_json::to_string(&pairs).expect("integers serialize")
}
