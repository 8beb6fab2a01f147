//! Re-crawl (`byline crawl --refresh`, `audit recheck --bodies`): what a
//! revisit of a stored page needs to know (its last good fetch's
//! validators, its schedule) and what it records: the fetch (a `304 Not
//! Modified` is a fetch with status 304 and no body), the page brought up
//! to a changed body with a `page_versions` row, the changed page's new
//! links and frontier rows, the consent evidence and verdicts, and the
//! revisit schedule, in one transaction with one `page.check` audit event.

use std::collections::HashSet;

use super::crawl::{
    FetchRecord, LinkBudget, LinkRecord, LinkRows, PageRecord, queue_and_insert_links,
};
use super::evidence::ConsentRecord;
use super::tx::LogTx;
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

/// A stored page as [`Store::refresh_page`] reads it.
#[derive(sqlx::FromRow)]
struct StoredPageRow {
    id: i64,
    url: String,
    frontier_id: i64,
    depth: i64,
    fetch_id: i64,
    fetched_at: i64,
    text_sha256: String,
    content_sha256: String,
    response_headers: String,
    interval_secs: Option<i64>,
    last_checked_at: Option<i64>,
    next_due_at: Option<i64>,
}

/// A `page_versions` row as stored.
#[derive(sqlx::FromRow)]
struct PageVersionRow {
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

// The statements of this module, one text for both backends (`$n`
// placeholders, which SQLite reads too).
const STORED_PAGE: &str =
    "SELECT p.id, p.url, p.frontier_id, fr.depth, p.fetch_id, f.fetched_at, p.text_sha256,
        p.content_sha256, f.response_headers, s.interval_secs, s.last_checked_at, s.next_due_at
 FROM pages p JOIN fetches f ON f.id = p.fetch_id JOIN frontier fr ON fr.id = p.frontier_id
 LEFT JOIN revisit_schedule s ON s.page_id = p.id
 WHERE p.id = $1";
const NEWEST_POLICY: &str = "SELECT policy_sha256 FROM verdicts ORDER BY id DESC LIMIT 1";
/// The versions of the page whose final URL, URL as found or normalised URL
/// is `$1`. Read from the versions outwards (`CROSS JOIN` keeps SQLite's
/// loop order): each version's page and frontier row are found by id. The
/// final URL has no index, so starting from `pages` scanned every page (1.6
/// s cold on a 100,000-page corpus); `page_versions` holds only the pages
/// a refresh saw change, and a page with no version adds nothing here.
const PAGE_VERSIONS: &str =
    "SELECT v.id, v.page_id, v.url, v.run_id, v.prev_fetch_id, v.fetch_id, v.old_text_sha256,
        v.new_text_sha256, v.old_content_sha256, v.new_content_sha256, v.signals_changed, v.seen_at
 FROM page_versions v CROSS JOIN pages p CROSS JOIN frontier fr
 WHERE p.id = v.page_id AND fr.id = p.frontier_id
   AND (p.url = $1 OR fr.url = $1 OR fr.url_norm = $1)
   AND EXISTS (SELECT 1 FROM audit_refs ar WHERE ar.tbl = 'page_versions' AND ar.row_id = v.id)
 ORDER BY v.id";
const NEXT_ATTEMPT: &str =
    "SELECT coalesce(max(attempt), 0) + 1 FROM fetches WHERE frontier_id = $1";
const UPDATE_PAGE: &str = "UPDATE pages SET fetch_id = $1, url = $2, title = $3, author = $4, site_name = $5,
     published_at = $6, modified_at = $7, canonical_url = $8, language = $9, meta_robots = $10,
     text = $11, text_sha256 = $12, extractor_version = $13, content_sha256 = $14, nosnippet_spans = $15
 WHERE id = $16";
const INSERT_VERSION: &str =
    "INSERT INTO page_versions (page_id, url, run_id, prev_fetch_id, fetch_id, old_text_sha256,
     new_text_sha256, old_content_sha256, new_content_sha256, signals_changed, seen_at)
 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id";
const NEXT_ORDINAL: &str = "SELECT coalesce(max(ordinal), -1) + 1 FROM links WHERE page_id = $1";
const LINK_TARGETS: &str = "SELECT target_url FROM links WHERE page_id = $1";
const UPSERT_SCHEDULE: &str = "INSERT INTO revisit_schedule (page_id, url, interval_secs, last_checked_at, last_status, last_changed, next_due_at)
 VALUES ($1, $2, $3, $4, $5, $6, $7)
 ON CONFLICT (page_id) DO UPDATE SET url = excluded.url, interval_secs = excluded.interval_secs,
     last_checked_at = excluded.last_checked_at, last_status = excluded.last_status,
     last_changed = excluded.last_changed, next_due_at = excluded.next_due_at";

/// The statements [`record_check_in`] needs besides the fetch, raw, consent
/// and audit ones ([`LogTx`]) and the link budget's ([`LinkRows`]).
pub(crate) trait CheckRows: LogTx + LinkRows {
    async fn next_attempt(&mut self, frontier_id: i64) -> Result<i64, StoreError>;
    async fn update_page(
        &mut self,
        page_id: i64,
        fetch_id: i64,
        p: &PageRecord,
    ) -> Result<(), StoreError>;
    #[allow(clippy::too_many_arguments)]
    async fn insert_version(
        &mut self,
        page: &StoredPage,
        run_id: Option<i64>,
        fetch_id: i64,
        p: &PageRecord,
        signals_json: &str,
        now: i64,
    ) -> Result<i64, StoreError>;
    async fn next_ordinal(&mut self, page_id: i64) -> Result<i64, StoreError>;
    async fn link_targets(&mut self, page_id: i64) -> Result<HashSet<String>, StoreError>;
    async fn upsert_schedule(
        &mut self,
        page: &StoredPage,
        s: &ScheduleUpdate,
        now: i64,
    ) -> Result<(), StoreError>;
}

macro_rules! check_rows {
    ($conn:ty) => {
        impl CheckRows for $conn {
            async fn next_attempt(&mut self, frontier_id: i64) -> Result<i64, StoreError> {
                Ok(sqlx::query_scalar(NEXT_ATTEMPT)
                    .bind(frontier_id)
                    .fetch_one(&mut *self)
                    .await?)
            }
            async fn update_page(
                &mut self,
                page_id: i64,
                fetch_id: i64,
                p: &PageRecord,
            ) -> Result<(), StoreError> {
                sqlx::query(UPDATE_PAGE)
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
                    .bind(page_id)
                    .execute(&mut *self)
                    .await?;
                Ok(())
            }
            async fn insert_version(
                &mut self,
                page: &StoredPage,
                run_id: Option<i64>,
                fetch_id: i64,
                p: &PageRecord,
                signals_json: &str,
                now: i64,
            ) -> Result<i64, StoreError> {
                Ok(sqlx::query_scalar(INSERT_VERSION)
                    .bind(page.page_id)
                    .bind(&page.url)
                    .bind(run_id)
                    .bind(page.fetch_id)
                    .bind(fetch_id)
                    .bind(&page.text_sha256)
                    .bind(&p.text_sha256)
                    .bind(&page.content_sha256)
                    .bind(&p.content_sha256)
                    .bind(signals_json)
                    .bind(now)
                    .fetch_one(&mut *self)
                    .await?)
            }
            async fn next_ordinal(&mut self, page_id: i64) -> Result<i64, StoreError> {
                Ok(sqlx::query_scalar(NEXT_ORDINAL)
                    .bind(page_id)
                    .fetch_one(&mut *self)
                    .await?)
            }
            async fn link_targets(&mut self, page_id: i64) -> Result<HashSet<String>, StoreError> {
                let v: Vec<String> = sqlx::query_scalar(LINK_TARGETS)
                    .bind(page_id)
                    .fetch_all(&mut *self)
                    .await?;
                Ok(v.into_iter().collect())
            }
            async fn upsert_schedule(
                &mut self,
                page: &StoredPage,
                s: &ScheduleUpdate,
                now: i64,
            ) -> Result<(), StoreError> {
                sqlx::query(UPSERT_SCHEDULE)
                    .bind(page.page_id)
                    .bind(&page.url)
                    .bind(s.interval_secs)
                    .bind(now)
                    .bind(s.last_status.map(i64::from))
                    .bind(i64::from(s.last_changed))
                    .bind(s.next_due_at)
                    .execute(&mut *self)
                    .await?;
                Ok(())
            }
        }
    };
}

check_rows!(sqlx::SqliteConnection);
check_rows!(sqlx::PgConnection);

impl Store {
    /// A stored page by id, with its last good fetch and schedule.
    pub async fn refresh_page(&self, page_id: i64) -> Result<Option<StoredPage>, StoreError> {
        let row: Option<StoredPageRow> = on_pool!(
            self,
            fetch_optional,
            sqlx::query_as(STORED_PAGE).bind(page_id)
        );
        let Some(r) = row else {
            return Ok(None);
        };
        let headers: Vec<(String, String)> = serde_json::from_str(&r.response_headers)
            .map_err(|e| corrupt("fetches", "response_headers", e))?;
        let schedule = match (r.interval_secs, r.last_checked_at, r.next_due_at) {
            (Some(interval_secs), Some(last_checked_at), Some(next_due_at)) => Some(Schedule {
                interval_secs,
                last_checked_at,
                next_due_at,
            }),
            _ => None,
        };
        Ok(Some(StoredPage {
            page_id: r.id,
            url: r.url,
            frontier_id: r.frontier_id,
            depth: r.depth,
            fetch_id: r.fetch_id,
            fetched_at: r.fetched_at,
            text_sha256: r.text_sha256,
            content_sha256: r.content_sha256,
            headers,
            schedule,
        }))
    }

    /// Records one revisit in one transaction (see the module docs).
    pub async fn record_check(&self, c: CheckRecord<'_>) -> Result<Checked, StoreError> {
        if let Some(pg) = self.pg() {
            let mut tx = pg.begin().await?;
            let done = record_check_in(&mut *tx, c).await?;
            tx.commit().await?;
            return Ok(done);
        }
        let mut tx = self.pool()?.begin().await?;
        let done = record_check_in(&mut *tx, c).await?;
        tx.commit().await?;
        Ok(done)
    }

    /// The policy the newest verdict was decided under (the policy in force).
    pub async fn newest_verdict_policy(&self) -> Result<Option<String>, StoreError> {
        Ok(on_pool!(
            self,
            fetch_optional,
            sqlx::query_scalar(NEWEST_POLICY)
        ))
    }

    /// The stored version changes of the page at `url` (its URL as stored
    /// in `pages`, or as first discovered), oldest first; only rows the
    /// audit log vouches for.
    pub async fn page_versions(&self, url: &str) -> Result<Vec<PageVersion>, StoreError> {
        let rows: Vec<PageVersionRow> =
            on_pool!(self, fetch_all, sqlx::query_as(PAGE_VERSIONS).bind(url));
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

/// [`Store::record_check`] on an open transaction of either backend.
async fn record_check_in<C: CheckRows>(
    tx: &mut C,
    c: CheckRecord<'_>,
) -> Result<Checked, StoreError> {
    tx.lock_log().await?;
    let f = c.fetch;
    let page = c.page;
    let attempt = tx.next_attempt(page.frontier_id).await?;
    let fetch_id = tx.insert_fetch(f, page.frontier_id, attempt, None).await?;
    let mut refs: Vec<(&str, i64)> = vec![("fetches", fetch_id)];
    let mut done = Checked {
        fetch_id,
        ..Checked::default()
    };
    if let Some(v) = c.version {
        let p = v.page;
        tx.update_page(page.page_id, fetch_id, p).await?;
        refs.push(("pages", page.page_id));
        if let Some(raw) = &p.raw {
            refs.push(("fetch_raw", tx.insert_raw(fetch_id, raw).await?));
        }
        let signals = serde_json::to_string(v.signals_changed)
            .map_err(|e| corrupt("page_versions", "signals_changed", e))?;
        let version_id = tx
            .insert_version(page, c.run_id, fetch_id, p, &signals, c.now)
            .await?;
        refs.push(("page_versions", version_id));
        done.version_id = Some(version_id);
        // New links of the new version only (those already recorded for
        // the page stay as they were), numbered after the existing ones,
        // queued and inserted as a crawl does it.
        let next = tx.next_ordinal(page.page_id).await?;
        let had = tx.link_targets(page.page_id).await?;
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
    tx.upsert_schedule(page, &s, c.now).await?;
    // The schedule's row is named by its page id on both backends (SQLite:
    // `page_id` is its INTEGER PRIMARY KEY, so its rowid).
    refs.push(("revisit_schedule", page.page_id));
    let payload = serde_json::json!({
        "page_id": page.page_id, "url": page.url, "status": f.status,
        "error_kind": f.error_kind, "body_sha256": f.body_sha256,
        "unchanged": f.status == Some(304), "version_id": done.version_id,
        "interval_secs": s.interval_secs, "next_due_at": s.next_due_at,
    });
    let ev = tx
        .append_event(
            f.fetched_at,
            "page.check",
            &f.requested_url,
            &payload,
            &refs,
        )
        .await?;
    done.event_seq = ev.seq;
    if let Some(consent) = c.consent {
        tx.insert_consent(consent, Some(page.page_id), Some(fetch_id))
            .await?;
    }
    Ok(done)
}

/// `[[start, end], …]` for the `pages.nosnippet_spans` column.
fn spans_json(spans: &[(usize, usize)]) -> String {
    let pairs: Vec<[usize; 2]> = spans.iter().map(|&(a, b)| [a, b]).collect();
    serde_json::to_string(&pairs).expect("integers serialize")
}

#[cfg(test)]
mod tests {
    /// `audit history` reads a page's versions from `page_versions`
    /// outwards: pages and frontier rows by id, never a scan of `pages`
    /// (its final URL has no index) or of the frontier, and no sort.
    #[tokio::test]
    async fn page_versions_are_read_from_the_versions_without_scanning_pages() {
        use crate::store::probe::{Bind, fresh, plan};
        let (_dir, store) = fresh().await;
        let plan = plan(
            store.pool().unwrap(),
            super::PAGE_VERSIONS,
            &[Bind::Text("http://a.test/p")],
        )
        .await;
        for want in [
            "SCAN v",
            "SEARCH p USING INTEGER PRIMARY KEY (rowid=?)",
            "SEARCH fr USING INTEGER PRIMARY KEY (rowid=?)",
        ] {
            assert!(plan.iter().any(|d| d == want), "{want}: {plan:#?}");
        }
        assert!(
            !plan.iter().any(|d| d.starts_with("SCAN p")
                || d.starts_with("SCAN fr")
                || d.contains("TEMP B-TREE")),
            "{plan:#?}"
        );
    }
}
