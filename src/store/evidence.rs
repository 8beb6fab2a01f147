//! Evidence sets, evidence rows, policies seen and per-origin consent files.

use sqlx::Row;

use super::audit::{AuditCtx, append_event};
use super::{Store, StoreError};
use crate::policy::evidence::{Evidence, FetchRef, Location, Observation, Scope, StatusLabel};

/// One stored evidence row with its id.
#[derive(Debug, Clone)]
pub struct StoredEvidence {
    pub id: i64,
    pub evidence: Evidence,
}

/// The latest evidence set of one page.
#[derive(Debug, Clone)]
pub struct EvidenceSet {
    pub set_id: i64,
    pub page_url: String,
    pub page_id: Option<i64>,
    pub site_origin: String,
    pub observed_at: i64,
    /// In pipeline order.
    pub rows: Vec<StoredEvidence>,
}

/// One stored version of a per-origin file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginFile {
    pub id: i64,
    pub origin: String,
    pub kind: String,
    pub url: String,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub body: Option<Vec<u8>>,
    pub body_sha256: Option<String>,
    pub fetched_at: i64,
    pub expires_at: i64,
}

pub(crate) fn corrupt(column: &'static str, detail: impl ToString) -> StoreError {
    StoreError::Corrupt {
        table: "evidence",
        column,
        detail: detail.to_string(),
    }
}

pub(crate) fn label_of(s: &str) -> Result<StatusLabel, StoreError> {
    serde_json::from_value(serde_json::Value::String(s.into()))
        .map_err(|e| corrupt("status_label", e))
}

pub(crate) fn location_of(s: &str) -> Result<Location, StoreError> {
    serde_json::from_value(serde_json::Value::String(s.into())).map_err(|e| corrupt("location", e))
}

impl Store {
    /// Records a policy file (idempotent by sha256).
    pub async fn record_policy(
        &self,
        policy_id: &str,
        sha256: &str,
        body: &[u8],
        now: i64,
    ) -> Result<(), StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg::evidence::record_policy(pg, policy_id, sha256, body, now).await;
        }
        let mut tx = self.pool()?.begin().await?;
        let r = sqlx::query(
            "INSERT INTO policies_seen (sha256, policy_id, body, first_seen_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (sha256) DO NOTHING",
        )
        .bind(sha256)
        .bind(policy_id)
        .bind(body)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() == 1 {
            // A policy version seen for the first time: a policy change.
            let rowid = r.last_insert_rowid();
            let payload = serde_json::json!({"policy_id": policy_id, "sha256": sha256});
            append_event(
                &mut tx,
                now,
                "policy.new",
                policy_id,
                &payload,
                &[("policies_seen", rowid)],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The bytes of a policy seen before.
    pub async fn policy_body(&self, sha256: &str) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_as(
            "SELECT policy_id, body FROM policies_seen WHERE sha256 = $1",
        )
        .bind(sha256)
        .fetch_optional(pool)
        .await?))
    }

    /// Stores one page's evidence as a new set; returns the set id and the
    /// row ids in the order given.
    pub async fn insert_evidence_set(
        &self,
        page_url: &str,
        page_id: Option<i64>,
        site_origin: &str,
        observed_at: i64,
        rows: &[Evidence],
    ) -> Result<(i64, Vec<i64>), StoreError> {
        // On its own (without verdicts in the same transaction) the set
        // gets an event of its own, so the log vouches for it.
        let event = |out: &(i64, Vec<i64>)| {
            let mut refs: Vec<(&'static str, i64)> = vec![("evidence_sets", out.0)];
            refs.extend(out.1.iter().map(|&id| ("evidence", id)));
            let payload = serde_json::json!({"set_id": out.0, "site_origin": site_origin});
            (payload, refs)
        };
        if let Some(pg) = self.pg() {
            let mut tx = pg.begin().await?;
            let out = super::pg::evidence::insert_evidence_set_in(
                &mut tx,
                page_url,
                page_id,
                site_origin,
                observed_at,
                rows,
            )
            .await?;
            let (payload, refs) = event(&out);
            super::pg::audit::append_event(
                &mut tx,
                observed_at,
                "evidence",
                page_url,
                &payload,
                &refs,
            )
            .await?;
            tx.commit().await?;
            return Ok(out);
        }
        let mut tx = self.pool()?.begin().await?;
        let out =
            insert_evidence_set_in(&mut tx, page_url, page_id, site_origin, observed_at, rows)
                .await?;
        let (payload, refs) = event(&out);
        append_event(&mut tx, observed_at, "evidence", page_url, &payload, &refs).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// Stores one page's evidence and its verdicts in one transaction, so a
    /// kill leaves either both or neither.
    pub async fn insert_consent(&self, c: &ConsentRecord) -> Result<i64, StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg::evidence::insert_consent(pg, c).await;
        }
        let mut tx = self.pool()?.begin().await?;
        let set_id = insert_consent_in(&mut tx, c, c.page_id, None).await?;
        tx.commit().await?;
        Ok(set_id)
    }

    /// The latest evidence set of every page, in URL order, with `rows`
    /// left empty: a caller reads each set's rows with
    /// [`Store::evidence_rows`] when it comes to it, so the corpus's
    /// evidence is never held at once (all of it was about 2 GB for
    /// 100,000 pages). [`Store::each_latest_licence_rows`] streams the
    /// sets with their licence rows for a caller that needs no query in
    /// between.
    pub async fn latest_evidence_sets(&self) -> Result<Vec<EvidenceSet>, StoreError> {
        let sets: Vec<SetDb> = on_pool!(self, pool => sqlx::query_as(concat!(
            "SELECT s.id, s.page_url, s.page_id, s.site_origin, s.observed_at
             FROM evidence_sets s WHERE s.id = ",
            newest_set_sql!(),
            " ORDER BY s.page_url"
        ))
        .fetch_all(pool)
        .await?);
        Ok(sets
            .into_iter()
            .map(|s| EvidenceSet {
                set_id: s.id,
                page_url: s.page_url,
                page_id: s.page_id,
                site_origin: s.site_origin,
                observed_at: s.observed_at,
                rows: Vec::new(),
            })
            .collect())
    }

    /// Calls `f` with the latest evidence set of every page that has
    /// rows, in URL order, one set at a time, holding only its **licence
    /// rows** (those whose observation is a licence finding, in pipeline
    /// order), and whether the set holds anything read from the page body
    /// ([`BODY_LOCATIONS`]). What the page's licence is read from
    /// (`audit::records`), without the rest of the corpus's evidence: one
    /// statement, streamed, whose other rows never leave SQLite (at 100,000
    /// pages 1.4 million rows went through sqlx one at a time for this).
    /// A row whose `parsed` is not valid JSON comes too, so that reading it
    /// fails as it would in the whole set.
    ///
    /// [`BODY_LOCATIONS`]: super::revocations::BODY_LOCATIONS
    pub async fn each_latest_licence_rows(
        &self,
        mut f: impl FnMut(EvidenceSet, bool) + Send,
    ) -> Result<(), StoreError> {
        use futures_util::TryStreamExt;
        let mut set: Option<(EvidenceSet, bool)> = None;
        let sql = latest_licence_rows_sql(self.pg().is_some());
        on_pool!(self, pool => {
            let mut rows = sqlx::query_as::<_, LatestLicenceRowDb>(sqlx::AssertSqlSafe(sql))
                .fetch(pool);
            while let Some(r) = rows.try_next().await? {
                if let Some((done, bodied)) = set.take_if(|(s, _)| s.set_id != r.set_id) {
                    f(done, bodied);
                }
                let e = r.evidence()?;
                let (s, _) = set.get_or_insert_with(|| {
                    (
                        EvidenceSet {
                            set_id: r.set_id,
                            page_url: r.page_url,
                            page_id: r.page_id,
                            site_origin: r.site_origin,
                            observed_at: r.set_observed_at,
                            rows: Vec::new(),
                        },
                        r.bodied,
                    )
                });
                if let Some(e) = e {
                    s.rows.push(e.try_into()?);
                }
            }
        });
        if let Some((s, bodied)) = set {
            f(s, bodied);
        }
        Ok(())
    }

    /// The latest evidence set of one page.
    pub async fn latest_evidence_set(
        &self,
        page_url: &str,
    ) -> Result<Option<EvidenceSet>, StoreError> {
        let s: Option<SetDb> = on_pool!(self, pool => sqlx::query_as(
            "SELECT id, page_url, page_id, site_origin, observed_at FROM evidence_sets
             WHERE page_url = $1 AND EXISTS (SELECT 1 FROM audit_refs ar WHERE ar.tbl = 'evidence_sets' AND ar.row_id = evidence_sets.id)
             ORDER BY id DESC LIMIT 1",
        )
        .bind(page_url)
        .fetch_optional(pool)
        .await?);
        let Some(s) = s else { return Ok(None) };
        Ok(Some(EvidenceSet {
            set_id: s.id,
            rows: self.evidence_rows(s.id).await?,
            page_url: s.page_url,
            page_id: s.page_id,
            site_origin: s.site_origin,
            observed_at: s.observed_at,
        }))
    }

    /// The rows of one evidence set, in pipeline order.
    pub async fn evidence_rows(&self, set_id: i64) -> Result<Vec<StoredEvidence>, StoreError> {
        let rows: Vec<EvidenceDb> = on_pool!(self, pool => sqlx::query_as(
            "SELECT set_id, id, signal, status_label, location, scope, raw, parsed, fetch_ref,
                    observed_at, expires_at, parse_errors
             FROM evidence WHERE set_id = $1 ORDER BY ordinal",
        )
        .bind(set_id)
        .fetch_all(pool)
        .await?);
        rows.into_iter().map(StoredEvidence::try_from).collect()
    }

    /// Stores one fetched version of a per-origin file.
    pub async fn insert_origin_file(&self, f: &OriginFile) -> Result<i64, StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg::evidence::insert_origin_file(pg, f).await;
        }
        let mut tx = self.pool()?.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO origin_files (origin, kind, url, status, error, body, body_sha256, fetched_at, expires_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(&f.origin)
        .bind(&f.kind)
        .bind(&f.url)
        .bind(f.status.map(i64::from))
        .bind(&f.error)
        .bind(&f.body)
        .bind(&f.body_sha256)
        .bind(f.fetched_at)
        .bind(f.expires_at)
        .fetch_one(&mut *tx)
        .await?;
        let payload = serde_json::json!({
            "kind": f.kind, "status": f.status, "error": f.error, "body_sha256": f.body_sha256,
        });
        append_event(
            &mut tx,
            f.fetched_at,
            "origin_file.fetch",
            &f.url,
            &payload,
            &[("origin_files", id)],
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// The newest stored version of the file at `url` that is still valid at `now`.
    pub async fn cached_origin_file(
        &self,
        url: &str,
        now: i64,
    ) -> Result<Option<OriginFile>, StoreError> {
        let r: Option<OriginFileDb> = on_pool!(self, pool => sqlx::query_as(
            "SELECT id, origin, kind, url, status, error, body, body_sha256, fetched_at, expires_at
             FROM origin_files WHERE url = $1 ORDER BY id DESC LIMIT 1",
        )
        .bind(url)
        .fetch_optional(pool)
        .await?);
        Ok(r.map(OriginFile::from).filter(|f| f.expires_at > now))
    }

    /// Every stored version of the file at `url`, oldest first.
    pub async fn origin_file_versions(&self, url: &str) -> Result<Vec<OriginFile>, StoreError> {
        let rows: Vec<OriginFileDb> = on_pool!(self, pool => sqlx::query_as(
            "SELECT id, origin, kind, url, status, error, body, body_sha256, fetched_at, expires_at
             FROM origin_files WHERE url = $1 ORDER BY id",
        )
        .bind(url)
        .fetch_all(pool)
        .await?);
        Ok(rows.into_iter().map(OriginFile::from).collect())
    }
}

/// The statement of [`Store::each_latest_licence_rows`]:
/// every page's newest logged evidence set that has rows, set by set in
/// page URL order, with its licence rows (`LEFT JOIN`: a set without one
/// comes once, with NULL row columns), each set's flag for body rows. The
/// sets' URL index gives the order and each set's rows follow by
/// `(set_id, ordinal)`, so nothing is sorted. PostgreSQL reads `parsed`
/// as `jsonb` (the column is text there too).
fn latest_licence_rows_sql(pg: bool) -> String {
    use super::revocations::BODY_LOCATIONS;
    let body: Vec<String> = BODY_LOCATIONS
        .iter()
        .map(|l| format!("'{}'", l.as_str()))
        .collect();
    let licence = if pg {
        "(e.parsed::jsonb ->> 'type') = 'licence'"
    } else {
        "(NOT json_valid(e.parsed) OR e.parsed ->> '$.type' = 'licence')"
    };
    format!(
        "SELECT s.page_url, s.page_id, s.site_origin, s.observed_at AS set_observed_at,
            s.id AS set_id,
            EXISTS (SELECT 1 FROM evidence b WHERE b.set_id = s.id AND b.location IN ({body})) AS bodied,
            e.id, e.signal, e.status_label, e.location, e.scope, e.raw, e.parsed, e.fetch_ref,
            e.observed_at, e.expires_at, e.parse_errors
         FROM evidence_sets s LEFT JOIN evidence e ON e.set_id = s.id AND {licence}
         WHERE s.id = {newest}
           AND EXISTS (SELECT 1 FROM evidence a WHERE a.set_id = s.id)
         ORDER BY s.page_url, s.id, e.ordinal",
        body = body.join(", "),
        newest = newest_set_sql!(),
    )
}

/// A row of [`latest_licence_rows_sql`]: a set, and one of its licence
/// rows or none.
#[derive(sqlx::FromRow)]
struct LatestLicenceRowDb {
    page_url: String,
    page_id: Option<i64>,
    site_origin: String,
    set_observed_at: i64,
    set_id: i64,
    bodied: bool,
    id: Option<i64>,
    signal: Option<String>,
    status_label: Option<String>,
    location: Option<String>,
    scope: Option<String>,
    raw: Option<String>,
    parsed: Option<String>,
    fetch_ref: Option<String>,
    observed_at: Option<i64>,
    expires_at: Option<i64>,
    parse_errors: Option<String>,
}

impl LatestLicenceRowDb {
    /// The evidence row, if the set had one here.
    fn evidence(&self) -> Result<Option<EvidenceDb>, StoreError> {
        let Some(id) = self.id else {
            return Ok(None);
        };
        let need = |v: &Option<String>, column: &'static str| {
            v.clone()
                .ok_or_else(|| corrupt(column, "NULL in a row that has an id"))
        };
        Ok(Some(EvidenceDb {
            id,
            signal: need(&self.signal, "signal")?,
            status_label: need(&self.status_label, "status_label")?,
            location: need(&self.location, "location")?,
            scope: need(&self.scope, "scope")?,
            raw: need(&self.raw, "raw")?,
            parsed: need(&self.parsed, "parsed")?,
            fetch_ref: self.fetch_ref.clone(),
            observed_at: self
                .observed_at
                .ok_or_else(|| corrupt("observed_at", "NULL in a row that has an id"))?,
            expires_at: self.expires_at,
            parse_errors: need(&self.parse_errors, "parse_errors")?,
        }))
    }
}

/// An `evidence_sets` row.
#[derive(sqlx::FromRow)]
struct SetDb {
    id: i64,
    page_url: String,
    page_id: Option<i64>,
    site_origin: String,
    observed_at: i64,
}

/// An `origin_files` row as stored (the status as an integer).
#[derive(sqlx::FromRow)]
struct OriginFileDb {
    id: i64,
    origin: String,
    kind: String,
    url: String,
    status: Option<i64>,
    error: Option<String>,
    body: Option<Vec<u8>>,
    body_sha256: Option<String>,
    fetched_at: i64,
    expires_at: i64,
}

impl From<OriginFileDb> for OriginFile {
    fn from(r: OriginFileDb) -> OriginFile {
        OriginFile {
            id: r.id,
            origin: r.origin,
            kind: r.kind,
            url: r.url,
            status: r.status.and_then(|s| u16::try_from(s).ok()),
            error: r.error,
            body: r.body,
            body_sha256: r.body_sha256,
            fetched_at: r.fetched_at,
            expires_at: r.expires_at,
        }
    }
}

/// An `evidence` row as stored (its observation, fetch reference and
/// parse errors as JSON text), on either backend.
#[derive(sqlx::FromRow)]
struct EvidenceDb {
    id: i64,
    signal: String,
    status_label: String,
    location: String,
    scope: String,
    raw: String,
    parsed: String,
    fetch_ref: Option<String>,
    observed_at: i64,
    expires_at: Option<i64>,
    parse_errors: String,
}

impl TryFrom<EvidenceDb> for StoredEvidence {
    type Error = StoreError;

    fn try_from(r: EvidenceDb) -> Result<StoredEvidence, StoreError> {
        let observation: Observation =
            serde_json::from_str(&r.parsed).map_err(|e| corrupt("parsed", e))?;
        let fetch_ref: Option<FetchRef> = r
            .fetch_ref
            .map(|f| serde_json::from_str(&f))
            .transpose()
            .map_err(|e| corrupt("fetch_ref", e))?;
        Ok(StoredEvidence {
            id: r.id,
            evidence: Evidence {
                signal: r.signal,
                status_label: label_of(&r.status_label)?,
                location: location_of(&r.location)?,
                scope: Scope::from_label(&r.scope),
                raw: r.raw,
                observation,
                fetch_ref,
                observed_at: r.observed_at,
                expires_at: r.expires_at,
                parse_errors: serde_json::from_str(&r.parse_errors)
                    .map_err(|e| corrupt("parse_errors", e))?,
            },
        })
    }
}

/// What the consent hook decided for one page, ready to store: the evidence
/// in pipeline order and the verdicts that cite it by index.
#[derive(Debug, Clone)]
pub struct ConsentRecord {
    pub page_url: String,
    /// Set by the store when the page is committed in the same transaction.
    pub page_id: Option<i64>,
    pub site_origin: String,
    pub observed_at: i64,
    pub evidence: Vec<Evidence>,
    pub verdicts: crate::policy::verdict::PageVerdicts,
    /// Indices of the evidence rows observed in the page's own response,
    /// whose fetch reference gets the fetch id once the fetch is stored.
    pub page_fetch_rows: Vec<usize>,
}

/// Stores a [`ConsentRecord`] on an open transaction. `fetch_id`, when
/// given, is written into the page-response rows' fetch references.
pub(crate) async fn insert_consent_in(
    conn: &mut sqlx::SqliteConnection,
    c: &ConsentRecord,
    page_id: Option<i64>,
    fetch_id: Option<i64>,
) -> Result<i64, StoreError> {
    let rows = with_fetch_id(c, fetch_id);
    let (set_id, ids) = insert_evidence_set_in(
        conn,
        &c.page_url,
        page_id,
        &c.site_origin,
        c.observed_at,
        &rows,
    )
    .await?;
    super::verdicts::insert_verdicts_in(
        conn,
        set_id,
        &c.page_url,
        &c.verdicts,
        &ids,
        c.observed_at,
    )
    .await?;
    Ok(set_id)
}

/// [`insert_consent_in`] in the crawl writer's transaction (its direct
/// connection, `store::direct`): every row is hashed from what its insert
/// returns, the three verdicts are one statement, and the event lists the
/// set's evidence ids as inserted (the same ids, in ordinal order, that
/// reading the set back gives).
pub(crate) fn insert_consent_direct(
    db: &rusqlite::Connection,
    audit: &mut AuditCtx,
    c: &ConsentRecord,
    page_id: Option<i64>,
    fetch_id: Option<i64>,
) -> Result<i64, StoreError> {
    let rows = with_fetch_id(c, fetch_id);
    let set_id = {
        let mut st = super::direct::prep(db, INSERT_SET_RETURNING)?;
        let mut q = st.query(rusqlite::params![
            c.page_url,
            page_id,
            c.site_origin,
            c.observed_at
        ])?;
        let row = q
            .next()?
            .ok_or_else(|| corrupt("evidence_sets", "the insert returned no row"))?;
        audit.note_row("evidence_sets", row)?
    };
    let mut ids = vec![0i64; rows.len()];
    let mut at = 0usize;
    for k in evidence_pieces(rows.len()) {
        let mut st = super::direct::prep(db, &insert_evidence_sql(k))?;
        let mut vals: Vec<EvidenceCols<'_>> = Vec::with_capacity(k);
        for (i, e) in rows.iter().enumerate().skip(at).take(k) {
            vals.push(EvidenceCols::of(e, set_id, i, c.observed_at)?);
        }
        let mut binds: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(k * 13);
        for v in &vals {
            binds.extend_from_slice(&[
                &v.set_id as &dyn rusqlite::ToSql,
                &v.ordinal,
                &v.signal,
                &v.status_label,
                &v.location,
                &v.scope,
                &v.raw,
                &v.parsed,
                &v.fetch_id,
                &v.fetch_ref,
                &v.observed_at,
                &v.expires_at,
                &v.parse_errors,
            ]);
        }
        let mut q = st.query(&binds[..])?;
        while let Some(r) = q.next()? {
            let id = audit.note_row("evidence", r)?;
            let ordinal: i64 = r.get("ordinal")?;
            if let Some(slot) = usize::try_from(ordinal).ok().and_then(|o| ids.get_mut(o)) {
                *slot = id;
            }
        }
        at += k;
    }
    let (vrows, payload) =
        super::verdicts::verdict_rows(set_id, &c.page_url, &c.verdicts, &ids, c.observed_at)?;
    let mut refs: Vec<(&'static str, i64)> = Vec::with_capacity(vrows.len() + 1 + ids.len());
    if !vrows.is_empty() {
        let mut st = super::direct::prep(db, &super::tx::insert_verdicts_sql(vrows.len()))?;
        let mut binds: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(vrows.len() * 10);
        for v in &vrows {
            binds.extend_from_slice(&[
                &v.set_id as &dyn rusqlite::ToSql,
                &v.page_url,
                &v.purpose,
                &v.decision,
                &v.conditions,
                &v.reasons,
                &v.evidence_ids,
                &v.policy_id,
                &v.policy_sha256,
                &v.decided_at,
            ]);
        }
        // Matched back to the verdicts by purpose (one per purpose; the
        // order of RETURNING rows is not promised).
        let mut by_purpose: Vec<(String, i64)> = Vec::with_capacity(vrows.len());
        let mut q = st.query(&binds[..])?;
        while let Some(r) = q.next()? {
            let id = audit.note_row("verdicts", r)?;
            by_purpose.push((r.get("purpose")?, id));
        }
        for v in &vrows {
            let id = by_purpose
                .iter()
                .find(|(p, _)| p == v.purpose)
                .map(|&(_, id)| id)
                .ok_or_else(|| corrupt("verdicts", "an inserted verdict was not returned"))?;
            refs.push(("verdicts", id));
        }
    }
    refs.push(("evidence_sets", set_id));
    refs.extend(ids.iter().map(|&id| ("evidence", id)));
    audit.append(db, c.observed_at, "verdict", &c.page_url, &payload, &refs)?;
    Ok(set_id)
}

/// The record's evidence rows, with `fetch_id` written into the
/// page-response rows' fetch references when given.
fn with_fetch_id(c: &ConsentRecord, fetch_id: Option<i64>) -> std::borrow::Cow<'_, [Evidence]> {
    let mut rows = std::borrow::Cow::Borrowed(&c.evidence[..]);
    if let Some(id) = fetch_id {
        let rows = rows.to_mut();
        for &i in &c.page_fetch_rows {
            if let Some(f) = rows.get_mut(i).and_then(|e| e.fetch_ref.as_mut()) {
                f.fetch_id = Some(id);
            }
        }
    }
    rows
}

/// Evidence sets up to this many rows are inserted with one statement of
/// their exact size (at most this many distinct statement texts).
const EXACT_EVIDENCE_ROWS: usize = 32;

/// The statement sizes an evidence set of `n` rows is inserted with: a
/// page's set (a dozen rows or so, from a small range of counts) is one
/// statement of its exact size; only a larger set is cut.
fn evidence_pieces(n: usize) -> Vec<usize> {
    if n <= EXACT_EVIDENCE_ROWS {
        vec![n]
    } else {
        super::audit::write_pieces(n).collect()
    }
    .into_iter()
    .filter(|&k| k > 0)
    .collect()
}

const INSERT_SET_RETURNING: &str =
    "INSERT INTO evidence_sets (page_url, page_id, site_origin, observed_at) VALUES (?, ?, ?, ?)
     RETURNING rowid, *";

/// The multi-row insert of `k` evidence rows (13 values each, in
/// [`EvidenceCols`]'s order), returning them.
fn insert_evidence_sql(k: usize) -> String {
    format!(
        "INSERT INTO evidence (set_id, ordinal, signal, status_label, location, scope, raw, parsed,
                               fetch_id, fetch_ref, observed_at, expires_at, parse_errors)
         VALUES {} RETURNING rowid, *",
        vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; k].join(", ")
    )
}

/// One evidence row's column values, in insert order.
struct EvidenceCols<'a> {
    set_id: i64,
    ordinal: i64,
    signal: &'a str,
    status_label: &'a str,
    location: &'a str,
    scope: String,
    raw: &'a str,
    parsed: String,
    fetch_id: Option<i64>,
    fetch_ref: Option<String>,
    observed_at: i64,
    expires_at: Option<i64>,
    parse_errors: String,
}

impl<'a> EvidenceCols<'a> {
    fn of(
        e: &'a Evidence,
        set_id: i64,
        ordinal: usize,
        observed_at: i64,
    ) -> Result<Self, StoreError> {
        Ok(EvidenceCols {
            set_id,
            ordinal: i64::try_from(ordinal).unwrap_or(i64::MAX),
            signal: &e.signal,
            status_label: e.status_label.as_str(),
            location: e.location.as_str(),
            scope: e.scope.label(),
            raw: &e.raw,
            parsed: serde_json::to_string(&e.observation).map_err(|e| corrupt("parsed", e))?,
            fetch_id: e.fetch_ref.as_ref().and_then(|f| f.fetch_id),
            fetch_ref: e
                .fetch_ref
                .as_ref()
                .map(serde_json::to_string)
                .transpose()
                .map_err(|e| corrupt("fetch_ref", e))?,
            observed_at: if e.observed_at == 0 {
                observed_at
            } else {
                e.observed_at
            },
            expires_at: e.expires_at,
            parse_errors: serde_json::to_string(&e.parse_errors)
                .map_err(|e| corrupt("parse_errors", e))?,
        })
    }
}

/// Stores one evidence set on an open transaction.
pub(crate) async fn insert_evidence_set_in(
    conn: &mut sqlx::SqliteConnection,
    page_url: &str,
    page_id: Option<i64>,
    site_origin: &str,
    observed_at: i64,
    rows: &[Evidence],
) -> Result<(i64, Vec<i64>), StoreError> {
    let row = sqlx::query(INSERT_SET_RETURNING)
        .bind(page_url)
        .bind(page_id)
        .bind(site_origin)
        .bind(observed_at)
        .fetch_one(&mut *conn)
        .await?;
    let set_id: i64 = row.try_get(0)?;
    // Multi-row statements; ids come back with their ordinals (the order
    // of RETURNING rows is not promised).
    let mut ids = vec![0i64; rows.len()];
    let mut at = 0usize;
    for k in evidence_pieces(rows.len()) {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(insert_evidence_sql(k)));
        for (i, e) in rows.iter().enumerate().skip(at).take(k) {
            let v = EvidenceCols::of(e, set_id, i, observed_at)?;
            q = q
                .bind(v.set_id)
                .bind(v.ordinal)
                .bind(v.signal)
                .bind(v.status_label)
                .bind(v.location)
                .bind(v.scope)
                .bind(v.raw)
                .bind(v.parsed)
                .bind(v.fetch_id)
                .bind(v.fetch_ref)
                .bind(v.observed_at)
                .bind(v.expires_at)
                .bind(v.parse_errors);
        }
        for r in q.fetch_all(&mut *conn).await? {
            let id: i64 = r.try_get(0)?;
            let ordinal: i64 = r.try_get("ordinal")?;
            if let Some(slot) = usize::try_from(ordinal).ok().and_then(|o| ids.get_mut(o)) {
                *slot = id;
            }
        }
        at += k;
    }
    Ok((set_id, ids))
}

#[cfg(test)]
mod tests {
    use crate::store::probe::plan;

    /// The streamed latest sets come in URL order from the sets' URL index,
    /// each set's rows by `(set_id, ordinal)`: nothing is sorted, so
    /// nothing but the current row is held (a temporary b-tree would hold
    /// every row of the corpus's evidence).
    #[tokio::test]
    async fn latest_licence_rows_stream_in_index_order_without_sorting() {
        let (_dir, store) = crate::store::probe::fresh().await;
        let sql = super::latest_licence_rows_sql(false);
        let plan = plan(store.pool().unwrap(), &sql, &[]).await;
        assert_eq!(
            plan.iter()
                .filter(|d| d.starts_with("SCAN"))
                .collect::<Vec<_>>(),
            ["SCAN s USING INDEX evidence_sets_by_page"],
            "{plan:#?}"
        );
        assert!(
            plan.iter()
                .any(|d| d
                    .starts_with("SEARCH e USING INDEX sqlite_autoindex_evidence_1 (set_id=?)")),
            "{plan:#?}"
        );
        assert!(!plan.iter().any(|d| d.contains("TEMP B-TREE")), "{plan:#?}");
    }
}
