//! The audit log: an append-only, hash-chained table of events
//! (`audit_events`), each covering the rows it describes by their content
//! hashes, so that editing either the log or a logged row behind Byline's
//! back is detected by [`Store::verify_audit`].
//!
//! The recipe (also in README.md, "Audit log"):
//!
//! * **Canonical JSON**: objects with keys sorted by their UTF-8 bytes, no
//!   whitespace, strings escaped as `serde_json` does (the same as Python's
//!   `json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`).
//! * **Row hash**: a row is the object of its columns (`SELECT * ... WHERE
//!   rowid = ?`), INTEGER and REAL as numbers, TEXT as strings, NULL as null,
//!   BLOB as `{"$blob_sha256": "<hex sha256 of the bytes>"}`; erasable
//!   columns ([`ERASABLE`]: `pages.text`) are left out (their digest column,
//!   `pages.text_sha256`, stays in). The row hash is the hex sha256 of its
//!   canonical JSON.
//! * **Content hash**: `refs` is the list `[{"id": rowid, "sha256": row hash,
//!   "table": name}, ...]` in the order logged; `content_sha256` is the hex
//!   sha256 of the canonical JSON of that list.
//! * **Event hash**: the hex sha256 of the canonical JSON of
//!   `{"content_sha256", "kind", "payload", "prev_sha256", "seq", "subject",
//!   "time"}` (payload as the JSON value), where `prev_sha256` is the
//!   previous event's `sha256` (64 `0`s for seq 1).

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use sqlx::{Column, Row, TypeInfo, ValueRef};

use super::{Store, StoreError};

/// `prev_sha256` of the first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Columns whose content may be erased by `byline forget`; row hashes
/// leave them out (each has a digest column that stays).
pub const ERASABLE: &[(&str, &str)] = &[("pages", "text")];

/// One stored audit event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub seq: i64,
    pub time: i64,
    pub kind: String,
    pub subject: String,
    pub payload: Value,
    pub refs: Vec<AuditRef>,
    pub content_sha256: String,
    pub prev_sha256: String,
    pub sha256: String,
}

/// A row covered by an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRef {
    pub table: String,
    pub id: i64,
    pub sha256: String,
}

/// The first problem `verify` found, and how much it checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditReport {
    pub events: i64,
    pub rows: i64,
    /// Every problem, in log order (the first is the first tampered row).
    pub problems: Vec<Tamper>,
}

/// One detected alteration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tamper {
    /// The table of the altered row (`audit_events` for the log itself).
    pub table: String,
    /// Its rowid (`seq` for `audit_events`).
    pub id: i64,
    /// The event that covers it.
    pub seq: i64,
    pub detail: String,
}

impl std::fmt::Display for Tamper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} row {} (audit event {}): {}",
            self.table, self.id, self.seq, self.detail
        )
    }
}

/// Canonical JSON of a value (keys sorted, no whitespace).
pub fn canonical_json(v: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                let mut out = Map::new();
                for k in keys {
                    out.insert(k.clone(), sorted(&m[k]));
                }
                Value::Object(out)
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(v).to_string()
}

/// Hex sha256 of bytes.
pub fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// The event hash of the recipe.
pub fn event_hash(
    seq: i64,
    time: i64,
    kind: &str,
    subject: &str,
    payload: &Value,
    content_sha256: &str,
    prev_sha256: &str,
) -> String {
    let v = serde_json::json!({
        "content_sha256": content_sha256,
        "kind": kind,
        "payload": payload,
        "prev_sha256": prev_sha256,
        "seq": seq,
        "subject": subject,
        "time": time,
    });
    sha256_hex(canonical_json(&v).as_bytes())
}

/// The content hash of a list of refs.
pub fn content_hash(refs: &[AuditRef]) -> String {
    let list: Vec<Value> = refs
        .iter()
        .map(|r| serde_json::json!({"id": r.id, "sha256": r.sha256, "table": r.table}))
        .collect();
    sha256_hex(canonical_json(&Value::Array(list)).as_bytes())
}

fn valid_table(t: &str) -> Result<(), StoreError> {
    if t.is_empty()
        || t.len() > 64
        || !t
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(StoreError::Corrupt {
            table: "audit_events",
            column: "refs",
            detail: format!("table name {t:?} is not a lowercase sql identifier"),
        });
    }
    Ok(())
}

/// The canonical object of one row, or `None` when it does not exist.
pub(crate) async fn row_object(
    conn: &mut sqlx::SqliteConnection,
    table: &str,
    rowid: i64,
) -> Result<Option<Value>, StoreError> {
    valid_table(table)?;
    // The table name is checked above to be a plain identifier.
    let sql = format!("SELECT * FROM {table} WHERE rowid = ?");
    let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(rowid)
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(None);
    };
    let mut obj = Map::new();
    for col in row.columns() {
        let name = col.name();
        if ERASABLE.contains(&(table, name)) {
            continue;
        }
        let i = col.ordinal();
        let raw = row.try_get_raw(i)?;
        let v = if raw.is_null() {
            Value::Null
        } else {
            let ty = raw.type_info().name().to_string();
            match ty.as_str() {
                "INTEGER" | "BOOLEAN" => Value::from(row.try_get::<i64, _>(i)?),
                "REAL" => Value::from(row.try_get::<f64, _>(i)?),
                "BLOB" => {
                    let b: Vec<u8> = row.try_get(i)?;
                    serde_json::json!({"$blob_sha256": sha256_hex(&b)})
                }
                _ => Value::from(row.try_get::<String, _>(i)?),
            }
        };
        obj.insert(name.to_string(), v);
    }
    Ok(Some(Value::Object(obj)))
}

/// The row hash of one row, or `None` when it does not exist.
pub(crate) async fn row_hash(
    conn: &mut sqlx::SqliteConnection,
    table: &str,
    rowid: i64,
) -> Result<Option<String>, StoreError> {
    Ok(row_object(conn, table, rowid)
        .await?
        .map(|o| sha256_hex(canonical_json(&o).as_bytes())))
}

/// Appends one event on `conn` (use the caller's transaction so the event
/// commits with the rows it covers). `refs` are `(table, rowid)` pairs of
/// rows already written on `conn`. Returns the new event.
///
/// The first statement is a write, so the write lock is taken before the
/// chain head is read: concurrent appenders cannot fork the chain.
pub async fn append_event(
    conn: &mut sqlx::SqliteConnection,
    time: i64,
    kind: &str,
    subject: &str,
    payload: &Value,
    refs: &[(&str, i64)],
) -> Result<AuditEvent, StoreError> {
    let payload_json = canonical_json(payload);
    let seq: i64 = sqlx::query(
        "INSERT INTO audit_events (time, kind, subject, payload, refs, content_sha256, prev_sha256, sha256)
         VALUES (?, ?, ?, ?, '[]', '', '', '') RETURNING seq",
    )
    .bind(time)
    .bind(kind)
    .bind(subject)
    .bind(&payload_json)
    .fetch_one(&mut *conn)
    .await?
    .get(0);
    let prev: Option<String> = sqlx::query_scalar(
        "SELECT sha256 FROM audit_events WHERE seq < ? ORDER BY seq DESC LIMIT 1",
    )
    .bind(seq)
    .fetch_optional(&mut *conn)
    .await?;
    let prev = prev.unwrap_or_else(|| GENESIS.to_string());
    let mut out = Vec::with_capacity(refs.len());
    for &(table, id) in refs {
        let sha = row_hash(conn, table, id)
            .await?
            .ok_or_else(|| StoreError::Corrupt {
                table: "audit_events",
                column: "refs",
                detail: format!("{table} row {id} does not exist"),
            })?;
        out.push(AuditRef {
            table: table.to_string(),
            id,
            sha256: sha,
        });
    }
    let content = content_hash(&out);
    let hash = event_hash(seq, time, kind, subject, payload, &content, &prev);
    sqlx::query(
        "UPDATE audit_events SET refs = ?, content_sha256 = ?, prev_sha256 = ?, sha256 = ? WHERE seq = ?",
    )
    .bind(refs_json(&out))
    .bind(&content)
    .bind(&prev)
    .bind(&hash)
    .bind(seq)
    .execute(&mut *conn)
    .await?;
    Ok(AuditEvent {
        seq,
        time,
        kind: kind.to_string(),
        subject: subject.to_string(),
        payload: serde_json::from_str(&payload_json).unwrap_or(Value::Null),
        refs: out,
        content_sha256: content,
        prev_sha256: prev,
        sha256: hash,
    })
}

fn refs_json(refs: &[AuditRef]) -> String {
    let list: Vec<Value> = refs
        .iter()
        .map(|r| serde_json::json!({"id": r.id, "sha256": r.sha256, "table": r.table}))
        .collect();
    canonical_json(&Value::Array(list))
}

fn corrupt(column: &'static str, detail: impl ToString) -> StoreError {
    StoreError::Corrupt {
        table: "audit_events",
        column,
        detail: detail.to_string(),
    }
}

/// [`corrupt`] for a column read by name.
fn corrupt_col(column: &str, e: impl std::fmt::Display) -> StoreError {
    let column: &'static str = match column {
        "payload" => "payload",
        "refs" => "refs",
        "seq" => "seq",
        "time" => "time",
        "kind" => "kind",
        "subject" => "subject",
        "content_sha256" => "content_sha256",
        "prev_sha256" => "prev_sha256",
        _ => "sha256",
    };
    corrupt(column, e)
}

fn event_of(r: &sqlx::sqlite::SqliteRow) -> Result<AuditEvent, StoreError> {
    // Fallible reads: an edited file may hold any type in any column.
    let get = |c: &str| -> Result<String, StoreError> {
        r.try_get::<String, _>(c).map_err(|e| corrupt_col(c, e))
    };
    let int = |c: &str| -> Result<i64, StoreError> {
        r.try_get::<i64, _>(c).map_err(|e| corrupt_col(c, e))
    };
    let payload = get("payload")?;
    let refs = get("refs")?;
    let refs: Vec<Value> = serde_json::from_str(&refs).map_err(|e| corrupt("refs", e))?;
    let refs = refs
        .iter()
        .map(|v| {
            Ok(AuditRef {
                table: v["table"]
                    .as_str()
                    .ok_or_else(|| corrupt("refs", "no table"))?
                    .into(),
                id: v["id"].as_i64().ok_or_else(|| corrupt("refs", "no id"))?,
                sha256: v["sha256"]
                    .as_str()
                    .ok_or_else(|| corrupt("refs", "no sha256"))?
                    .into(),
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(AuditEvent {
        seq: int("seq")?,
        time: int("time")?,
        kind: get("kind")?,
        subject: get("subject")?,
        payload: serde_json::from_str(&payload).map_err(|e| corrupt("payload", e))?,
        refs,
        content_sha256: get("content_sha256")?,
        prev_sha256: get("prev_sha256")?,
        sha256: get("sha256")?,
    })
}

/// Which events to list.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub subject: Option<String>,
    pub kind: Option<String>,
}

impl Store {
    /// Appends one event in its own transaction (for callers that have no
    /// transaction of their own; inside a store transaction call
    /// [`append_event`]). `refs` are `(table, rowid)` pairs of the rows the
    /// event is about; their content is covered by the event's hash.
    pub async fn append_audit_event(
        &self,
        time: i64,
        kind: &str,
        subject: &str,
        payload: &Value,
        refs: &[(&str, i64)],
    ) -> Result<AuditEvent, StoreError> {
        let mut tx = self.pool().begin().await?;
        let e = append_event(&mut tx, time, kind, subject, payload, refs).await?;
        tx.commit().await?;
        Ok(e)
    }

    /// Events in log order, optionally only one subject and/or kind.
    pub async fn audit_events(&self, f: &EventFilter) -> Result<Vec<AuditEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, time, kind, subject, payload, refs, content_sha256, prev_sha256, sha256
             FROM audit_events WHERE (?1 IS NULL OR subject = ?1) AND (?2 IS NULL OR kind = ?2)
             ORDER BY seq",
        )
        .bind(&f.subject)
        .bind(&f.kind)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(event_of).collect()
    }

    /// Event counts by kind.
    pub async fn audit_kind_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows =
            sqlx::query("SELECT kind, count(*) FROM audit_events GROUP BY kind ORDER BY kind")
                .fetch_all(self.pool())
                .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Re-derives the whole chain, every event's content hash from the rows
    /// it covers, and every stored page text against its `text_sha256`
    /// (unless the page was forgotten). Problems are listed in log order.
    pub async fn verify_audit(&self) -> Result<AuditReport, StoreError> {
        let mut conn = self.pool().acquire().await?;
        let rows = sqlx::query(
            "SELECT seq, time, kind, subject, payload, refs, content_sha256, prev_sha256, sha256
             FROM audit_events ORDER BY seq",
        )
        .fetch_all(&mut *conn)
        .await?;
        let mut rep = AuditReport::default();
        let mut prev = GENESIS.to_string();
        let mut expect_seq = 1;
        for r in &rows {
            rep.events += 1;
            let seq: i64 = r.try_get("seq").unwrap_or(-1);
            let log_row = |detail: String| Tamper {
                table: "audit_events".into(),
                id: seq,
                seq,
                detail,
            };
            if seq != expect_seq {
                rep.problems.push(log_row(format!(
                    "sequence gap: expected event {expect_seq}, found {seq} (events deleted)"
                )));
            }
            expect_seq = seq + 1;
            let e = match event_of(r) {
                Ok(e) => e,
                Err(err) => {
                    rep.problems
                        .push(log_row(format!("unreadable event: {err}")));
                    prev = r.try_get("sha256").unwrap_or_default();
                    continue;
                }
            };
            if e.prev_sha256 != prev {
                rep.problems.push(log_row(format!(
                    "prev_sha256 {} does not match the previous event's hash {prev}",
                    e.prev_sha256
                )));
            }
            let again = event_hash(
                e.seq,
                e.time,
                &e.kind,
                &e.subject,
                &e.payload,
                &e.content_sha256,
                &e.prev_sha256,
            );
            if again != e.sha256 {
                rep.problems.push(log_row(format!(
                    "event fields changed: hash {again} re-derived, {} stored",
                    e.sha256
                )));
            }
            if content_hash(&e.refs) != e.content_sha256 {
                rep.problems.push(log_row(
                    "refs changed: content_sha256 does not match the refs list".into(),
                ));
            }
            for rf in &e.refs {
                rep.rows += 1;
                match row_hash(&mut conn, &rf.table, rf.id).await? {
                    None => rep.problems.push(Tamper {
                        table: rf.table.clone(),
                        id: rf.id,
                        seq,
                        detail: format!("row deleted (logged by {} {})", e.kind, e.subject),
                    }),
                    Some(h) if h != rf.sha256 => rep.problems.push(Tamper {
                        table: rf.table.clone(),
                        id: rf.id,
                        seq,
                        detail: format!(
                            "row changed since {} {} was logged: row hash {h}, logged {}",
                            e.kind, e.subject, rf.sha256
                        ),
                    }),
                    Some(_) => {}
                }
            }
            prev = e.sha256;
        }
        // Erasable columns are outside the row hashes; check them against
        // their digests unless a tombstone says they were erased on purpose.
        let pages = sqlx::query(
            "SELECT p.id, p.text, p.text_sha256, p.url,
                    EXISTS (SELECT 1 FROM audit_events a WHERE a.kind = 'forget' AND a.subject = p.url) AS forgotten
             FROM pages p ORDER BY p.id",
        )
        .fetch_all(&mut *conn)
        .await?;
        for p in pages {
            // Every value is read fallibly: the file may have been edited
            // behind our back (a TEXT column holding a BLOB, a NULL), and
            // verify reports that as a problem instead of panicking.
            let id: i64 = p.try_get(0).unwrap_or_default();
            let digest: String = p.try_get(2).unwrap_or_default();
            let forgotten: bool = p.try_get(4).unwrap_or(false);
            let text: String = match p.try_get::<String, _>(1) {
                Ok(t) => t,
                Err(e) => {
                    let ty = p
                        .try_get_raw(1)
                        .map(|v| v.type_info().name().to_string())
                        .unwrap_or_else(|_| "unknown".into());
                    rep.problems.push(Tamper {
                        table: "pages".into(),
                        id,
                        seq: 0,
                        detail: format!("text is not text (stored as {ty}): {e}"),
                    });
                    continue;
                }
            };
            if forgotten && text.is_empty() {
                continue;
            }
            if sha256_hex(text.as_bytes()) != digest {
                let seq: Option<i64> = sqlx::query_scalar(
                    "SELECT min(seq) FROM audit_events, json_each(audit_events.refs) j
                     WHERE json_extract(j.value, '$.table') = 'pages' AND json_extract(j.value, '$.id') = ?",
                )
                .bind(id)
                .fetch_one(&mut *conn)
                .await?;
                rep.problems.push(Tamper {
                    table: "pages".into(),
                    id,
                    seq: seq.unwrap_or(0),
                    detail: "text does not match its text_sha256".into(),
                });
            }
        }
        rep.problems.sort_by_key(|t| t.seq);
        Ok(rep)
    }
}
