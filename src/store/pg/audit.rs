//! Appending to the audit log on PostgreSQL (issue #20): the SQLite recipe
//! of [`crate::store::audit`], with many writers on many machines.
//!
//! # The hash recipe on PostgreSQL
//!
//! Canonical JSON, the content hash and the event hash are byte for byte
//! the SQLite ones; only reading a row differs:
//!
//! * A row is read by its key column: `id`, except `fetch_raw.fetch_id`,
//!   `revisit_schedule.page_id`, `exports.version`, and the explicit
//!   `rowid` identity column of the tables SQLite addresses by its implicit
//!   rowid (`links`, `policies_seen`, `tombstones`, `answer_citations`,
//!   `model_hashes`). The value is the same number SQLite's rowid is.
//! * The row object is every column of `SELECT *` except the PostgreSQL-only
//!   ones (`rowid`, `passages.tsv`) and, as on SQLite, [`ERASABLE`] and
//!   [`BOOKKEEPING`] columns. Types map as SQLite stores the same values:
//!   `BIGINT` (INT8; INT4/INT2 too) → JSON integer, `DOUBLE PRECISION`
//!   (FLOAT8; FLOAT4 too) → JSON number as `serde_json` prints an `f64`
//!   (so `2.0`, never `2`), `BYTEA` → `{"$blob_sha256": "<hex sha256>"}`,
//!   `TEXT` → string, NULL → null. A column of any other type is an error,
//!   never a guess.
//! * One total order: the appender takes the transaction-scoped advisory
//!   lock [`AUDIT_LOCK`] (`pg_advisory_xact_lock`) in the caller's
//!   transaction, then reads the head, then inserts `seq = head + 1` with
//!   `prev_sha256` = the head's `sha256` (or [`GENESIS`]). The lock is held
//!   until the transaction commits or rolls back, so no two transactions
//!   can read the same head, and a rolled-back event leaves no gap.
//!   Transactions that write logged rows take the lock first
//!   ([`lock_log`]), before their other writes, so two writers never wait
//!   for each other's rows while holding the log.

use serde_json::{Map, Value};
use sqlx::postgres::{PgConnection, PgRow};
use sqlx::{Column, Row, TypeInfo, ValueRef};

use crate::store::StoreError;
use crate::store::audit::{
    AuditEvent, AuditRef, BOOKKEEPING, ERASABLE, GENESIS, batch_pieces, canonical_json,
    content_hash, event_hash, refs_json, sha256_hex,
};

/// The advisory lock key of the audit log: one total order of events over
/// every writer of the database ("Byline" in ASCII, then 0x0001).
pub const AUDIT_LOCK: i64 = 0x4279_6c69_6e65_0001;

/// Columns that exist only on PostgreSQL and are no part of a row's hash.
pub const PG_ONLY: &[&str] = &["rowid", "tsv"];

/// The column a logged row is addressed by (the number the audit log
/// names it by, SQLite's rowid).
pub fn key_column(table: &str) -> &'static str {
    match table {
        "fetch_raw" => "fetch_id",
        "revisit_schedule" => "page_id",
        "exports" => "version",
        "links" | "policies_seen" | "tombstones" | "answer_citations" | "model_hashes" => "rowid",
        _ => "id",
    }
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

/// Takes the audit log's lock for the rest of the caller's transaction
/// (re-taking it in the same transaction is free).
pub(crate) async fn lock_log(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(AUDIT_LOCK)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The canonical object of a row of `table` read with `SELECT <key>, *`,
/// from column `skip` on.
pub(crate) fn object_of(table: &str, row: &PgRow, skip: usize) -> Result<Value, StoreError> {
    let mut obj = Map::new();
    for col in row.columns().iter().skip(skip) {
        let name = col.name();
        if PG_ONLY.contains(&name)
            || ERASABLE.contains(&(table, name))
            || BOOKKEEPING.contains(&(table, name))
        {
            continue;
        }
        let i = col.ordinal();
        let raw = row.try_get_raw(i)?;
        let v = if raw.is_null() {
            Value::Null
        } else {
            let ty = raw.type_info().name().to_string();
            match ty.as_str() {
                "INT8" => Value::from(row.try_get::<i64, _>(i)?),
                "INT4" => Value::from(i64::from(row.try_get::<i32, _>(i)?)),
                "INT2" => Value::from(i64::from(row.try_get::<i16, _>(i)?)),
                "FLOAT8" => Value::from(row.try_get::<f64, _>(i)?),
                "FLOAT4" => Value::from(f64::from(row.try_get::<f32, _>(i)?)),
                "BYTEA" => {
                    let b: Vec<u8> = row.try_get(i)?;
                    serde_json::json!({"$blob_sha256": sha256_hex(&b)})
                }
                "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" => Value::from(row.try_get::<String, _>(i)?),
                other => {
                    return Err(StoreError::Corrupt {
                        table: "audit_events",
                        column: "refs",
                        detail: format!(
                            "{table}.{name} is of type {other}, which has no place in a row hash"
                        ),
                    });
                }
            }
        };
        obj.insert(name.to_string(), v);
    }
    Ok(Value::Object(obj))
}

/// The canonical object of one row, or `None` when it does not exist.
pub(crate) async fn row_object(
    conn: &mut PgConnection,
    table: &str,
    id: i64,
) -> Result<Option<Value>, StoreError> {
    valid_table(table)?;
    let key = key_column(table);
    // The table name is checked above to be a plain identifier; the key
    // column is one of a fixed set.
    let sql = format!("SELECT * FROM {table} WHERE {key} = $1");
    let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(object_of(table, &row, 0)?))
}

/// The row hash of one row, or `None` when it does not exist.
pub async fn row_hash(
    conn: &mut PgConnection,
    table: &str,
    id: i64,
) -> Result<Option<String>, StoreError> {
    Ok(row_object(conn, table, id)
        .await?
        .map(|o| sha256_hex(canonical_json(&o).as_bytes())))
}

/// The row hashes of `refs`, in their order: one `= ANY($1)` statement per
/// table. A missing row is an error.
async fn row_hashes(
    conn: &mut PgConnection,
    refs: &[(&str, i64)],
) -> Result<Vec<String>, StoreError> {
    let mut tables: Vec<&str> = Vec::new();
    for &(t, _) in refs {
        if !tables.contains(&t) {
            tables.push(t);
        }
    }
    let mut found: std::collections::HashMap<(&str, i64), String> =
        std::collections::HashMap::with_capacity(refs.len());
    for table in tables {
        valid_table(table)?;
        let key = key_column(table);
        let mut ids: Vec<i64> = refs
            .iter()
            .filter(|&&(t, _)| t == table)
            .map(|&(_, id)| id)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        // The table name is checked above; the key column is a fixed name.
        let sql = format!("SELECT {key} AS byline_key, * FROM {table} WHERE {key} = ANY($1)");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&ids)
            .fetch_all(&mut *conn)
            .await?;
        for row in rows {
            let id: i64 = row.try_get(0)?;
            let obj = object_of(table, &row, 1)?;
            found.insert((table, id), sha256_hex(canonical_json(&obj).as_bytes()));
        }
    }
    crate::store::audit::in_ref_order(refs, &found)
}

/// Appends one event on `conn` inside the caller's transaction (the event
/// commits with the rows it covers). `refs` are `(table, key)` pairs of
/// rows already written on `conn`. See the module comment for the order.
pub async fn append_event(
    conn: &mut PgConnection,
    time: i64,
    kind: &str,
    subject: &str,
    payload: &Value,
    refs: &[(&str, i64)],
) -> Result<AuditEvent, StoreError> {
    lock_log(conn).await?;
    let head: Option<(i64, String)> =
        sqlx::query_as("SELECT seq, sha256 FROM audit_events ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *conn)
            .await?;
    let (seq, prev) = match head {
        Some((s, h)) => (
            s.checked_add(1).ok_or_else(|| StoreError::Corrupt {
                table: "audit_events",
                column: "seq",
                detail: format!("head seq {s} cannot be followed"),
            })?,
            h,
        ),
        None => (1, GENESIS.to_string()),
    };
    let payload_json = canonical_json(payload);
    let hashes = row_hashes(conn, refs).await?;
    let out: Vec<AuditRef> = refs
        .iter()
        .zip(hashes)
        .map(|(&(table, id), sha256)| AuditRef {
            table: table.to_string(),
            id,
            sha256,
        })
        .collect();
    // The reference index (a ref repeated in one event is kept once).
    let mut rest = &out[..];
    for k in batch_pieces(out.len()) {
        let (piece, tail) = rest.split_at(k);
        rest = tail;
        let values: Vec<String> = (0..k)
            .map(|i| {
                let b = i * 4;
                format!("(${}, ${}, ${}, ${})", b + 1, b + 2, b + 3, b + 4)
            })
            .collect();
        let sql = format!(
            "INSERT INTO audit_refs (tbl, row_id, seq, sha256) VALUES {} ON CONFLICT DO NOTHING",
            values.join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for r in piece {
            q = q.bind(&r.table).bind(r.id).bind(seq).bind(&r.sha256);
        }
        q.execute(&mut *conn).await?;
    }
    let content = content_hash(&out);
    let hash = event_hash(seq, time, kind, subject, payload, &content, &prev);
    sqlx::query(
        "INSERT INTO audit_events (seq, time, kind, subject, payload, refs, content_sha256, prev_sha256, sha256)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(seq)
    .bind(time)
    .bind(kind)
    .bind(subject)
    .bind(&payload_json)
    .bind(refs_json(&out))
    .bind(&content)
    .bind(&prev)
    .bind(&hash)
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
