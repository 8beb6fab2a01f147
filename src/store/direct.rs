//! The crawl writer's statements on SQLite, run on the crawl connection's
//! own handle (issue #26).
//!
//! sqlx runs every statement on its SQLite worker thread: each one is a
//! command sent over a channel and each result row a message back, so a
//! page's two dozen statements cost two dozen thread hops, and the writer
//! waited on those hops rather than on SQLite. Here a batch of finished
//! entries is written in one go on a blocking thread: the writer takes the
//! pool's connection, locks its handle away from sqlx's worker
//! (`lock_handle`), and runs the batch's transaction through `rusqlite` on
//! that same handle with prepared statements cached for the batch. The rows,
//! hashes and audit events are exactly those the sqlx version wrote (the
//! statements are the same text; rows are hashed from what the inserts
//! return, by the same code, `audit::HashRow`).
//!
//! Sound because the handle is used only while the lock is held (sqlx's
//! worker waits for it), the lock and the connection are owned by the
//! blocking task (so they outlive every use of the handle even if the
//! writer task is dropped), and every statement prepared here is finalized
//! before the lock is released.

use std::future::Future;
use std::task::{Context, Poll, Waker};

use rusqlite::{Connection, params};
use sqlx::Sqlite;
use sqlx::pool::PoolConnection;

use super::StoreError;
use super::audit::AuditCtx;
use super::crawl::{
    Completed, FrontierOutcome, INSERT_FETCH, LinkRecord, LinkRows, f_run, fetch_event,
    insert_links_sql, known_among_sql, queue_and_insert_links, spans_json,
};
use super::evidence::insert_consent_direct;
use super::frontier::{FrontierState, INSERT_ENTRY, NewEntry, ORIGIN_COUNT, SHAPE_COUNT};
use super::raw::{ENCODING_GZIP, INSERT_FETCH_RAW, INSERT_RAW_CAPTURE};
use super::writer::Completion;

/// Statements kept prepared: every fixed statement, the links and
/// evidence inserts in their few sizes, and room to spare.
const STATEMENT_CACHE: usize = 128;

/// The writer's statements on one connection, prepared once and kept from
/// batch to batch (preparing a page's two dozen statements again for each
/// small batch cost as much as the hops it saves).
///
/// Between batches the statements sit reset (no lock, no open read) while
/// sqlx's worker uses the connection for other queries; they are used only
/// while the handle is locked. They must be finalized before sqlx closes
/// the connection ([`DirectConn::close`], at the writer's end, under the
/// lock): a `DirectConn` dropped without it leaks its statements rather
/// than finalize them unlocked, and the pool is kept from recycling the
/// connection meanwhile (no idle timeout or lifetime, `Store::connect`).
pub(crate) struct DirectConn {
    /// The handle the statements belong to.
    handle: usize,
    db: std::mem::ManuallyDrop<Connection>,
    counts: BudgetCounts,
}

/// The frontier row counts the link budget reads (per origin, per origin
/// and URL shape), kept from batch to batch: `count(*)` walks an origin's
/// whole index range, so reading it for every page made a page's writes
/// slower as the crawl grew (issue #26: the last tenth of a 100,000-page
/// run was a fifth slower than the first). A count is read from the table
/// the first time and then kept up to date by the writer's own inserts.
/// Everything is forgotten when the frontier may have changed otherwise:
/// another connection committed (`PRAGMA data_version`), or the highest
/// frontier rowid is not the one this writer last left (a row added on
/// this connection outside the writer), or a batch failed.
#[derive(Default)]
struct BudgetCounts {
    /// `(data_version, max(frontier.rowid))` after the last batch.
    seen: Option<(i64, i64)>,
    origins: std::collections::HashMap<String, i64>,
    shapes: std::collections::HashMap<(String, String), i64>,
}

/// Counts kept for at most this many origins and shapes (then forgotten
/// and read again).
const MAX_KEPT_COUNTS: usize = 100_000;

impl BudgetCounts {
    fn forget(&mut self) {
        self.seen = None;
        self.origins.clear();
        self.shapes.clear();
    }

    /// The frontier's state as this writer tells whether it changed.
    fn state(db: &Connection) -> Result<(i64, i64), StoreError> {
        let version: i64 = prep(db, "PRAGMA data_version")?.query_row([], |r| r.get(0))?;
        let max_id: Option<i64> =
            prep(db, "SELECT max(rowid) FROM frontier")?.query_row([], |r| r.get(0))?;
        Ok((version, max_id.unwrap_or(0)))
    }
}

impl DirectConn {
    /// Finalizes the statements, under the handle's lock (from a blocking
    /// thread).
    pub(crate) fn close(
        mut self,
        rt: &tokio::runtime::Handle,
        conn: &mut PoolConnection<Sqlite>,
    ) -> Result<(), StoreError> {
        let mut locked = rt.block_on(conn.lock_handle())?;
        if locked.as_raw_handle().as_ptr() as usize == self.handle {
            // SAFETY: taken once; `self` is forgotten below.
            let db = unsafe { std::mem::ManuallyDrop::take(&mut self.db) };
            drop(db);
        }
        // A different handle: sqlx replaced the connection (it could not
        // close the old one, whose statements are ours): leave them.
        drop(locked);
        std::mem::forget(self);
        Ok(())
    }
}

/// Writes `batch` in one transaction on `conn`, from a blocking thread
/// (call it inside `spawn_blocking`; it waits for sqlx's worker to hand
/// over the handle), with the statements kept in `keep` (made or remade
/// as needed). With `reuse` they stay prepared for the next batch: only
/// when the pool has this one connection (the crawl's store), so that
/// every batch, and [`DirectConn::close`] at the end, gets the handle they
/// belong to; otherwise they are finalized before the lock is released.
/// On error the transaction is rolled back whole.
pub(crate) fn write_batch(
    rt: &tokio::runtime::Handle,
    conn: &mut PoolConnection<Sqlite>,
    reuse: bool,
    keep: &mut Option<DirectConn>,
    batch: &mut [Completion],
) -> Result<Vec<Completed>, StoreError> {
    let mut locked = rt.block_on(conn.lock_handle())?;
    let raw = locked.as_raw_handle().as_ptr();
    if keep.as_ref().is_some_and(|k| k.handle != raw as usize) {
        // Statements of another handle (see `close`): never used again.
        if let Some(old) = keep.take() {
            std::mem::forget(old);
        }
    }
    let direct = match keep {
        Some(k) => k,
        None => {
            // SAFETY: the handle is sqlx's open connection, locked away
            // from its worker thread while `locked` lives; `from_handle`
            // never closes it. The connection's statements are used only
            // under this lock (`write_batch`) and finalized under it
            // (`DirectConn::close`).
            let db = unsafe { Connection::from_handle(raw) }?;
            db.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
            keep.insert(DirectConn {
                handle: raw as usize,
                db: std::mem::ManuallyDrop::new(db),
                counts: BudgetCounts::default(),
            })
        }
    };
    let out = in_transaction(&direct.db, &mut direct.counts, batch);
    if !reuse {
        // Finalized now, under the lock (see `reuse`).
        if let Some(mut k) = keep.take() {
            // SAFETY: taken once; `k` is forgotten right after.
            drop(unsafe { std::mem::ManuallyDrop::take(&mut k.db) });
            std::mem::forget(k);
        }
    }
    drop(locked);
    out
}

fn in_transaction(
    db: &Connection,
    counts: &mut BudgetCounts,
    batch: &mut [Completion],
) -> Result<Vec<Completed>, StoreError> {
    // IMMEDIATE: the write lock first (waiting for it under the busy
    // timeout), so the reads below cannot leave the transaction holding a
    // snapshot another connection's commit has made stale.
    tx_statement(db, "BEGIN IMMEDIATE")?;
    let written = (|| {
        let now = BudgetCounts::state(db)?;
        if counts.seen != Some(now) || counts.origins.len() + counts.shapes.len() > MAX_KEPT_COUNTS
        {
            counts.forget();
        }
        // The batch's audit appends: the chain head is read once per batch.
        let mut audit = AuditCtx::new();
        let mut out = Vec::with_capacity(batch.len());
        for c in batch.iter_mut() {
            out.push(complete(db, &mut audit, counts, c)?);
        }
        counts.seen = Some(BudgetCounts::state(db)?);
        Ok::<_, StoreError>(out)
    })();
    let done = written.and_then(|out| {
        tx_statement(db, "COMMIT")?;
        Ok(out)
    });
    if done.is_err() {
        counts.forget();
        if !db.is_autocommit() {
            // Rolled back whole; the entries stay in flight for the next run.
            let _ = tx_statement(db, "ROLLBACK");
        }
    }
    done
}

/// One entry's rows (what `Store::crawl_complete` promises), on the open
/// transaction, with its audit events.
fn complete(
    db: &Connection,
    audit: &mut AuditCtx,
    counts: &mut BudgetCounts,
    c: &mut Completion,
) -> Result<Completed, StoreError> {
    audit.next_entry();
    let mut done = Completed::default();
    // Rows the fetch event covers besides the fetch and page.
    let mut covered: Vec<(&str, i64)> = Vec::new();
    // The first decision is the entry's own; a later one is a redirect
    // hop's (the hop robots.txt kept us from).
    for d in &c.decisions {
        let id = insert_noted(
            db,
            audit,
            "robots_decisions",
            "INSERT INTO robots_decisions (run_id, frontier_id, url, robots_version_id, allowed, matched_line, rule, reason, decided_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING rowid, *",
            params![
                d.run_id,
                d.frontier_id,
                d.url,
                d.robots_version_id,
                d.allowed,
                d.matched_line,
                d.rule,
                d.reason,
                d.decided_at
            ],
        )?;
        done.decision_id.get_or_insert(id);
        audit.append(
            db,
            d.decided_at,
            "robots.decision",
            &d.url,
            &d.event_payload(),
            &[("robots_decisions", id)],
        )?;
    }
    if let Some(f) = &c.fetch {
        done.fetch_id = Some(insert_noted(
            db,
            audit,
            "fetches",
            INSERT_FETCH,
            params![
                f.run_id,
                f.frontier_id,
                f.attempt,
                f.requested_url,
                f.final_url,
                f.redirect_chain_json,
                f.fetched_at,
                f.elapsed_ms,
                f.status.map(i64::from),
                f.user_agent,
                f.response_headers_json,
                f.content_type,
                f.body_sha256,
                f.body_bytes,
                f.truncated,
                f.declared_charset,
                f.detected_charset,
                f.error_kind,
                f.error_detail,
                done.decision_id
            ],
        )?);
    }
    if let (Some((p, links)), Some(fetch_id)) = (c.page.as_mut(), done.fetch_id) {
        // The first stored page with the same content, if any, is read by
        // the insert itself (before the new row exists).
        let mut st = prep(
            db,
            "INSERT INTO pages (frontier_id, fetch_id, url, title, author, site_name, published_at, modified_at,
                 canonical_url, language, meta_robots, text, text_sha256, extractor_version, content_sha256, duplicate_of,
                 nosnippet_spans)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,
                     (SELECT id FROM pages WHERE content_sha256 = ? ORDER BY id LIMIT 1), ?)
             RETURNING rowid, *",
        )?;
        let mut q = st.query(params![
            c.frontier_id,
            fetch_id,
            p.url,
            p.title,
            p.author,
            p.site_name,
            p.published_at,
            p.modified_at,
            p.canonical_url,
            p.language,
            p.meta_robots,
            p.text,
            p.text_sha256,
            p.extractor_version,
            p.content_sha256,
            p.content_sha256,
            spans_json(&p.nosnippet_spans)
        ])?;
        let row = q.next()?.ok_or_else(|| returned_nothing("pages"))?;
        let page_id = audit.note_row("pages", row)?;
        done.page_id = Some(page_id);
        done.duplicate_of = row.get("duplicate_of")?;
        drop(q);
        if let Some(raw) = &p.raw {
            prep(db, INSERT_RAW_CAPTURE)?.execute(params![
                raw.sha256,
                ENCODING_GZIP,
                raw.size,
                raw.gz
            ])?;
            done.raw_fetch_id = Some(insert_noted(
                db,
                audit,
                "fetch_raw",
                INSERT_FETCH_RAW,
                params![fetch_id, raw.sha256, raw.http_version],
            )?);
        }
        let mut w = DirectLinks {
            db,
            audit: &mut *audit,
            counts: &mut *counts,
        };
        let (new_urls, rows) = now_ready(queue_and_insert_links(
            &mut w,
            page_id,
            0,
            links,
            c.budget,
            f_run(c.fetch.as_ref()),
            c.now,
        ))?;
        done.new_urls += new_urls;
        covered.extend(rows);
    }
    if let (Some(f), Some(fetch_id)) = (&c.fetch, done.fetch_id) {
        let (payload, refs) = fetch_event(f, fetch_id, &done, &covered);
        audit.append(db, f.fetched_at, "fetch", &f.requested_url, &payload, &refs)?;
    }
    // The consent hook's evidence and verdicts commit with the page, so a
    // kill never leaves a stored page (or a skipped URL) without them.
    if let Some(consent) = &c.consent {
        let page_id = done.page_id.or(consent.page_id);
        insert_consent_direct(db, audit, consent, page_id, done.fetch_id)?;
    }
    let (state, last_error, skip_reason, next_at) = match &c.outcome {
        FrontierOutcome::Done => (FrontierState::Done, None, None, 0),
        FrontierOutcome::Failed(e) => (FrontierState::Failed, Some(e.as_str()), None, 0),
        FrontierOutcome::Skipped(r) => (FrontierState::Skipped, None, Some(r.as_str()), 0),
        FrontierOutcome::Retry { at, error } => {
            (FrontierState::Queued, Some(error.as_str()), None, *at)
        }
    };
    prep(
        db,
        "UPDATE frontier SET state = ?, last_error = coalesce(?, last_error), skip_reason = ?,
             next_attempt_at = ?, claimed_by_run = NULL, updated_at = ?
         WHERE id = ?",
    )?
    .execute(params![
        state.as_str(),
        last_error,
        skip_reason,
        next_at,
        c.now,
        c.frontier_id
    ])?;
    Ok(done)
}

/// Runs `sql` (an insert `RETURNING rowid, *` of one row of `table`) and
/// notes the returned row in `audit`; its rowid.
fn insert_noted(
    db: &Connection,
    audit: &mut AuditCtx,
    table: &'static str,
    sql: &str,
    values: impl rusqlite::Params,
) -> Result<i64, StoreError> {
    let mut st = prep(db, sql)?;
    let mut q = st.query(values)?;
    let row = q.next()?.ok_or_else(|| returned_nothing(table))?;
    audit.note_row(table, row)
}

/// `sql` prepared on `db` (from the batch's statement cache). Each
/// statement is logged at trace level under target `byline::store::direct`
/// (`RUST_LOG=byline::store::direct=trace`), as sqlx logs its own under
/// `sqlx::query`.
pub(crate) fn prep<'c>(
    db: &'c Connection,
    sql: &str,
) -> rusqlite::Result<rusqlite::CachedStatement<'c>> {
    tracing::trace!(statement = sql, "direct");
    db.prepare_cached(sql)
}

fn tx_statement(db: &Connection, sql: &str) -> rusqlite::Result<()> {
    tracing::trace!(statement = sql, "direct");
    db.execute_batch(sql)
}

fn returned_nothing(table: &'static str) -> StoreError {
    StoreError::Corrupt {
        table,
        column: "rowid",
        detail: "the insert returned no row".into(),
    }
}

/// The frontier and link statements of [`queue_and_insert_links`] on the
/// direct connection; the rows it adds are hashed from what their inserts
/// return.
struct DirectLinks<'a> {
    db: &'a Connection,
    audit: &'a mut AuditCtx,
    counts: &'a mut BudgetCounts,
}

impl LinkRows for DirectLinks<'_> {
    async fn known_among(
        &mut self,
        norms: &[&str],
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        let mut out = std::collections::HashSet::new();
        for piece in norms.chunks(64) {
            let Some(last) = piece.last() else { continue };
            let k = if piece.len() <= 16 { 16 } else { 64 };
            let mut st = prep(self.db, &known_among_sql(k))?;
            let binds: Vec<&str> = (0..k).map(|i| *piece.get(i).unwrap_or(last)).collect();
            let mut q = st.query(rusqlite::params_from_iter(binds))?;
            while let Some(r) = q.next()? {
                out.insert(r.get::<_, String>(0)?);
            }
        }
        Ok(out)
    }

    async fn origin_count(&mut self, origin: &str) -> Result<i64, StoreError> {
        if let Some(&n) = self.counts.origins.get(origin) {
            return Ok(n);
        }
        let n: i64 = prep(self.db, ORIGIN_COUNT)?.query_row([origin], |r| r.get(0))?;
        self.counts.origins.insert(origin.to_string(), n);
        Ok(n)
    }

    async fn shape_count(&mut self, origin: &str, shape: &str) -> Result<i64, StoreError> {
        let key = (origin.to_string(), shape.to_string());
        if let Some(&n) = self.counts.shapes.get(&key) {
            return Ok(n);
        }
        let n: i64 = prep(self.db, SHAPE_COUNT)?.query_row([origin, shape], |r| r.get(0))?;
        self.counts.shapes.insert(key, n);
        Ok(n)
    }

    async fn insert_entry(
        &mut self,
        run_id: i64,
        e: &NewEntry,
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        // The new row is hashed from what the insert returns (no row: the
        // URL was known or forgotten).
        let sql = format!("{INSERT_ENTRY} RETURNING rowid, *");
        let mut st = prep(self.db, &sql)?;
        let mut q = st.query(params![
            e.url,
            e.url_norm,
            e.origin,
            e.depth,
            e.discovered_from,
            run_id,
            now,
            e.shape,
            super::provenance::url_key(&e.url_norm)
        ])?;
        let Some(row) = q.next()? else {
            return Ok(None);
        };
        let id = self.audit.note_row("frontier", row)?;
        // The kept counts include the new row (a count not kept yet is
        // read from the table, row included, when first asked for).
        if let Some(n) = self.counts.origins.get_mut(&e.origin) {
            *n = n.saturating_add(1);
        }
        if let Some(shape) = &e.shape
            && let Some(n) = self
                .counts
                .shapes
                .get_mut(&(e.origin.clone(), shape.clone()))
        {
            *n = n.saturating_add(1);
        }
        Ok(Some(id))
    }

    async fn insert_links(
        &mut self,
        page_id: i64,
        first_ordinal: i64,
        links: &[LinkRecord],
    ) -> Result<Vec<i64>, StoreError> {
        let mut ids = vec![0i64; links.len()];
        let mut at = 0usize;
        for k in super::audit::write_pieces(links.len()) {
            let mut st = prep(self.db, &insert_links_sql(k))?;
            let mut vals: Vec<(i64, bool)> = Vec::with_capacity(k);
            for (i, l) in links.iter().enumerate().skip(at).take(k) {
                let ordinal = first_ordinal.saturating_add(i64::try_from(i).unwrap_or(i64::MAX));
                vals.push((ordinal, l.candidate.is_some() && l.skip_reason.is_none()));
            }
            let mut binds: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(k * 7);
            for (l, (ordinal, followed)) in links.iter().skip(at).take(k).zip(&vals) {
                binds.extend_from_slice(&[
                    &page_id as &dyn rusqlite::ToSql,
                    ordinal,
                    &l.target_url,
                    &l.anchor_text,
                    &l.rel,
                    followed,
                    &l.skip_reason,
                ]);
            }
            let mut q = st.query(&binds[..])?;
            while let Some(row) = q.next()? {
                let rowid = self.audit.note_row("links", row)?;
                let ordinal: i64 = row.get("ordinal")?;
                let slot = ordinal
                    .checked_sub(first_ordinal)
                    .and_then(|o| usize::try_from(o).ok())
                    .and_then(|o| ids.get_mut(o));
                if let Some(slot) = slot {
                    *slot = rowid;
                }
            }
            at += k;
        }
        Ok(ids)
    }
}

/// The output of a future that never waits: the [`LinkRows`] methods
/// above are `async` only to share [`queue_and_insert_links`] with the
/// sqlx connections, and finish when first polled.
fn now_ready<T>(f: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    match f.as_mut().poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => Err(StoreError::Batch(
            "a direct statement waited (a bug: they run synchronously)".into(),
        )),
    }
}
