//! Evidence sets, evidence rows, policies seen and per-origin consent files.

use sqlx::Row;

use super::audit::append_event;
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
        if let Some(pg) = self.pg() {
            return super::pg::evidence_read::policy_body(pg, sha256).await;
        }
        let row = sqlx::query("SELECT policy_id, body FROM policies_seen WHERE sha256 = ?")
            .bind(sha256)
            .fetch_optional(self.pool()?)
            .await?;
        Ok(row.map(|r| (r.get("policy_id"), r.get("body"))))
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
        let mut tx = self.pool()?.begin().await?;
        let out =
            insert_evidence_set_in(&mut tx, page_url, page_id, site_origin, observed_at, rows)
                .await?;
        // On its own (without verdicts in the same transaction) the set
        // gets an event of its own, so the log vouches for it.
        let mut refs: Vec<(&str, i64)> = vec![("evidence_sets", out.0)];
        refs.extend(out.1.iter().map(|&id| ("evidence", id)));
        append_event(
            &mut tx,
            observed_at,
            "evidence",
            page_url,
            &serde_json::json!({"set_id": out.0, "site_origin": site_origin}),
            &refs,
        )
        .await?;
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

    /// The latest evidence set of every page, in URL order: two queries in
    /// all (the sets, then every row of those sets), not one per page.
    pub async fn latest_evidence_sets(&self) -> Result<Vec<EvidenceSet>, StoreError> {
        // The newest logged set of each page (a static string, so both
        // queries stay literal SQL).
        macro_rules! latest {
            () => {
                "WITH latest AS (
                SELECT MAX(t.id) AS id FROM evidence_sets t
                WHERE EXISTS (SELECT 1 FROM audit_refs ar WHERE ar.tbl = 'evidence_sets' AND ar.row_id = t.id)
                GROUP BY t.page_url)"
            };
        }
        let sets = sqlx::query(concat!(
            latest!(),
            " SELECT s.id, s.page_url, s.page_id, s.site_origin, s.observed_at
             FROM evidence_sets s JOIN latest l ON l.id = s.id ORDER BY s.page_url"
        ))
        .fetch_all(self.pool()?)
        .await?;
        let rows = sqlx::query(concat!(
            latest!(),
            " SELECT e.set_id, e.id, e.signal, e.status_label, e.location, e.scope, e.raw,
                    e.parsed, e.fetch_ref, e.observed_at, e.expires_at, e.parse_errors
             FROM evidence e JOIN latest l ON l.id = e.set_id ORDER BY e.set_id, e.ordinal"
        ))
        .fetch_all(self.pool()?)
        .await?;
        let mut by_set: std::collections::HashMap<i64, Vec<StoredEvidence>> =
            std::collections::HashMap::with_capacity(sets.len());
        for r in &rows {
            let set_id: i64 = r.get("set_id");
            by_set
                .entry(set_id)
                .or_default()
                .push(stored_evidence_of(r)?);
        }
        Ok(sets
            .into_iter()
            .map(|s| {
                let set_id: i64 = s.get("id");
                EvidenceSet {
                    set_id,
                    page_url: s.get("page_url"),
                    page_id: s.get("page_id"),
                    site_origin: s.get("site_origin"),
                    observed_at: s.get("observed_at"),
                    rows: by_set.remove(&set_id).unwrap_or_default(),
                }
            })
            .collect())
    }

    /// The latest evidence set of one page.
    pub async fn latest_evidence_set(
        &self,
        page_url: &str,
    ) -> Result<Option<EvidenceSet>, StoreError> {
        let s = sqlx::query(
            "SELECT id, page_url, page_id, site_origin, observed_at FROM evidence_sets
             WHERE page_url = ? AND EXISTS (SELECT 1 FROM audit_refs ar WHERE ar.tbl = 'evidence_sets' AND ar.row_id = evidence_sets.id)
             ORDER BY id DESC LIMIT 1",
        )
        .bind(page_url)
        .fetch_optional(self.pool()?)
        .await?;
        let Some(s) = s else { return Ok(None) };
        let set_id: i64 = s.get("id");
        Ok(Some(EvidenceSet {
            set_id,
            page_url: s.get("page_url"),
            page_id: s.get("page_id"),
            site_origin: s.get("site_origin"),
            observed_at: s.get("observed_at"),
            rows: self.evidence_rows(set_id).await?,
        }))
    }

    pub(crate) async fn evidence_rows(
        &self,
        set_id: i64,
    ) -> Result<Vec<StoredEvidence>, StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg::evidence_read::evidence_rows(pg, set_id).await;
        }
        let rows = sqlx::query(
            "SELECT id, signal, status_label, location, scope, raw, parsed, fetch_ref, observed_at,
                    expires_at, parse_errors
             FROM evidence WHERE set_id = ? ORDER BY ordinal",
        )
        .bind(set_id)
        .fetch_all(self.pool()?)
        .await?;
        rows.iter().map(stored_evidence_of).collect()
    }

    /// Stores one fetched version of a per-origin file.
    pub async fn insert_origin_file(&self, f: &OriginFile) -> Result<i64, StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg::evidence::insert_origin_file(pg, f).await;
        }
        let mut tx = self.pool()?.begin().await?;
        let id: i64 = sqlx::query(
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
        .await?
        .get(0);
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
        if let Some(pg) = self.pg() {
            return super::pg::evidence::cached_origin_file(pg, url, now).await;
        }
        let r = sqlx::query(
            "SELECT id, origin, kind, url, status, error, body, body_sha256, fetched_at, expires_at
             FROM origin_files WHERE url = ? ORDER BY id DESC LIMIT 1",
        )
        .bind(url)
        .fetch_optional(self.pool()?)
        .await?;
        let Some(r) = r else { return Ok(None) };
        let f = origin_file_of(&r);
        Ok((f.expires_at > now).then_some(f))
    }

    /// Every stored version of the file at `url`, oldest first.
    pub async fn origin_file_versions(&self, url: &str) -> Result<Vec<OriginFile>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, origin, kind, url, status, error, body, body_sha256, fetched_at, expires_at
             FROM origin_files WHERE url = ? ORDER BY id",
        )
        .bind(url)
        .fetch_all(self.pool()?)
        .await?;
        Ok(rows.iter().map(origin_file_of).collect())
    }
}

fn origin_file_of(r: &sqlx::sqlite::SqliteRow) -> OriginFile {
    let status: Option<i64> = r.get("status");
    OriginFile {
        id: r.get("id"),
        origin: r.get("origin"),
        kind: r.get("kind"),
        url: r.get("url"),
        status: status.and_then(|s| u16::try_from(s).ok()),
        error: r.get("error"),
        body: r.get("body"),
        body_sha256: r.get("body_sha256"),
        fetched_at: r.get("fetched_at"),
        expires_at: r.get("expires_at"),
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
    let mut rows = std::borrow::Cow::Borrowed(&c.evidence);
    if let Some(id) = fetch_id {
        let rows = rows.to_mut();
        for &i in &c.page_fetch_rows {
            if let Some(f) = rows.get_mut(i).and_then(|e| e.fetch_ref.as_mut()) {
                f.fetch_id = Some(id);
            }
        }
    }
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

/// Stores one evidence set on an open transaction.
pub(crate) async fn insert_evidence_set_in(
    conn: &mut sqlx::SqliteConnection,
    page_url: &str,
    page_id: Option<i64>,
    site_origin: &str,
    observed_at: i64,
    rows: &[Evidence],
) -> Result<(i64, Vec<i64>), StoreError> {
    let set_id: i64 = sqlx::query(
        "INSERT INTO evidence_sets (page_url, page_id, site_origin, observed_at) VALUES (?, ?, ?, ?) RETURNING id",
    )
    .bind(page_url)
    .bind(page_id)
    .bind(site_origin)
    .bind(observed_at)
    .fetch_one(&mut *conn)
    .await?
    .get(0);
    // One multi-row statement per piece of `audit::BATCH_SIZES`; ids come
    // back with their ordinals (the order of RETURNING rows is not promised).
    let mut ids = vec![0i64; rows.len()];
    let mut at = 0usize;
    for k in super::audit::batch_pieces(rows.len()) {
        let sql = format!(
            "INSERT INTO evidence (set_id, ordinal, signal, status_label, location, scope, raw, parsed,
                                   fetch_id, fetch_ref, observed_at, expires_at, parse_errors)
             VALUES {} RETURNING id, ordinal",
            vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; k].join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (i, e) in rows.iter().enumerate().skip(at).take(k) {
            let parsed = serde_json::to_string(&e.observation).map_err(|e| corrupt("parsed", e))?;
            let fetch_ref = e
                .fetch_ref
                .as_ref()
                .map(serde_json::to_string)
                .transpose()
                .map_err(|e| corrupt("fetch_ref", e))?;
            let errors =
                serde_json::to_string(&e.parse_errors).map_err(|e| corrupt("parse_errors", e))?;
            q = q
                .bind(set_id)
                .bind(i as i64)
                .bind(&e.signal)
                .bind(e.status_label.as_str())
                .bind(e.location.as_str())
                .bind(e.scope.label())
                .bind(&e.raw)
                .bind(parsed)
                .bind(e.fetch_ref.as_ref().and_then(|f| f.fetch_id))
                .bind(fetch_ref)
                .bind(if e.observed_at == 0 {
                    observed_at
                } else {
                    e.observed_at
                })
                .bind(e.expires_at)
                .bind(errors);
        }
        for r in q.fetch_all(&mut *conn).await? {
            let id: i64 = r.try_get(0)?;
            let ordinal: i64 = r.try_get(1)?;
            if let Some(slot) = usize::try_from(ordinal).ok().and_then(|o| ids.get_mut(o)) {
                *slot = id;
            }
        }
        at += k;
    }
    Ok((set_id, ids))
}

/// One `evidence` row (any query selecting its columns by name) as typed evidence.
fn stored_evidence_of(r: &sqlx::sqlite::SqliteRow) -> Result<StoredEvidence, StoreError> {
    let parsed: String = r.get("parsed");
    let observation: Observation =
        serde_json::from_str(&parsed).map_err(|e| corrupt("parsed", e))?;
    let fetch_ref: Option<String> = r.get("fetch_ref");
    let fetch_ref: Option<FetchRef> = fetch_ref
        .map(|f| serde_json::from_str(&f))
        .transpose()
        .map_err(|e| corrupt("fetch_ref", e))?;
    let errors: String = r.get("parse_errors");
    let label: String = r.get("status_label");
    let location: String = r.get("location");
    let scope: String = r.get("scope");
    Ok(StoredEvidence {
        id: r.get("id"),
        evidence: Evidence {
            signal: r.get("signal"),
            status_label: label_of(&label)?,
            location: location_of(&location)?,
            scope: Scope::from_label(&scope),
            raw: r.get("raw"),
            observation,
            fetch_ref,
            observed_at: r.get("observed_at"),
            expires_at: r.get("expires_at"),
            parse_errors: serde_json::from_str(&errors).map_err(|e| corrupt("parse_errors", e))?,
        },
    })
}
