//! The audit log: an append-only, hash-chained table of events
//! (`audit_events`), each covering the rows it describes by their content
//! hashes, so that editing either the log or a logged row behind Byline's
//! back is detected by [`Store::verify_audit`].
//!
//! The recipe (also in README.md, "Audit log"; for PostgreSQL's types
//! and its many writers see [`super::pg::audit`]):
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

/// Bookkeeping columns of logged tables: the crawler's work-queue state,
/// which changes on every attempt. Row hashes leave them out; the facts
/// they summarise (robots decisions, fetches, forget tombstones) are
/// logged rows of their own.
pub const BOOKKEEPING: &[(&str, &str)] = &[
    ("frontier", "state"),
    ("frontier", "attempts"),
    ("frontier", "next_attempt_at"),
    ("frontier", "claimed_by_run"),
    ("frontier", "last_error"),
    ("frontier", "skip_reason"),
    ("frontier", "updated_at"),
    // PostgreSQL only (issue #20): the claim's lease.
    ("frontier", "lease_owner"),
    ("frontier", "lease_until"),
];

/// Tables whose every row is covered by an audit event (issue #16):
/// `audit verify` reports a row no event covers as `UNLOGGED`.
pub const LOGGED_TABLES: &[&str] = &[
    "crawl_runs",
    "frontier",
    "robots_versions",
    "robots_decisions",
    "fetches",
    "pages",
    "links",
    "policies_seen",
    "evidence_sets",
    "evidence",
    "verdicts",
    "origin_files",
    "tombstones",
    "revocations",
    "exports",
    "answers",
    "answer_citations",
    "model_hashes",
    "fetch_raw",
    "page_versions",
    "revisit_schedule",
];

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

/// Canonical JSON of a value (keys sorted, no whitespace).
pub fn canonical_json(v: &Value) -> String {
    let mut out = Vec::new();
    write_canonical(&mut out, v);
    into_string(out)
}

/// Appends the canonical JSON of `v` to `out`: the bytes
/// `serde_json` writes for `v` with every object's keys sorted, written
/// in place rather than through a sorted copy of the value.
pub(crate) fn write_canonical(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(&String, &Value)> = m.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, k);
                out.push(b':');
                write_canonical(out, v);
            }
            out.push(b'}');
        }
        Value::Array(a) => {
            out.push(b'[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(out, v);
            }
            out.push(b']');
        }
        // Serialising a scalar into a Vec cannot fail.
        scalar => {
            let _ = serde_json::to_writer(&mut *out, scalar);
        }
    }
}

/// Appends `s` as a JSON string, escaped as `serde_json` does.
fn write_str(out: &mut Vec<u8>, s: &str) {
    // Serialising a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Appends an integer as `serde_json` writes it.
fn write_i64(out: &mut Vec<u8>, n: i64) {
    let _ = serde_json::to_writer(&mut *out, &n);
}

/// The text of bytes written by the writers above (always UTF-8).
fn into_string(out: Vec<u8>) -> String {
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Hex sha256 of bytes (lower case). Written digit by digit into a string
/// of the right size: `hex::encode` collects an iterator of chars, which
/// cost a quarter of hashing a row in the crawl writer (issue #26).
pub fn sha256_hex(b: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(b);
    let mut out = String::with_capacity(digest.len() * 2);
    for &x in digest.iter() {
        out.push(char::from(DIGITS[usize::from(x >> 4)]));
        out.push(char::from(DIGITS[usize::from(x & 0x0f)]));
    }
    out
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
    event_hash_canonical(
        seq,
        time,
        kind,
        subject,
        &canonical_json(payload),
        content_sha256,
        prev_sha256,
    )
}

/// [`event_hash`] with the payload already in canonical JSON (as
/// [`canonical_json`] writes it): the object's keys are written in their
/// sorted order directly.
pub(crate) fn event_hash_canonical(
    seq: i64,
    time: i64,
    kind: &str,
    subject: &str,
    payload_json: &str,
    content_sha256: &str,
    prev_sha256: &str,
) -> String {
    let mut b = Vec::with_capacity(payload_json.len() + subject.len() + 256);
    b.extend_from_slice(b"{\"content_sha256\":");
    write_str(&mut b, content_sha256);
    b.extend_from_slice(b",\"kind\":");
    write_str(&mut b, kind);
    b.extend_from_slice(b",\"payload\":");
    b.extend_from_slice(payload_json.as_bytes());
    b.extend_from_slice(b",\"prev_sha256\":");
    write_str(&mut b, prev_sha256);
    b.extend_from_slice(b",\"seq\":");
    write_i64(&mut b, seq);
    b.extend_from_slice(b",\"subject\":");
    write_str(&mut b, subject);
    b.extend_from_slice(b",\"time\":");
    write_i64(&mut b, time);
    b.push(b'}');
    sha256_hex(&b)
}

/// The content hash of a list of refs.
pub fn content_hash(refs: &[AuditRef]) -> String {
    sha256_hex(refs_json(refs).as_bytes())
}

pub(crate) fn valid_table(t: &str) -> Result<(), StoreError> {
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
    Ok(Some(object_of(table, &row, 0)?))
}

/// The canonical object of a row read with `SELECT *` of `table`, from
/// column `skip` on (the columns before it are the reader's own, e.g. the
/// rowid of a batched read).
fn object_of(table: &str, row: &sqlx::sqlite::SqliteRow, skip: usize) -> Result<Value, StoreError> {
    let mut obj = Map::new();
    for col in row.columns().iter().skip(skip) {
        let name = col.name();
        if ERASABLE.contains(&(table, name)) || BOOKKEEPING.contains(&(table, name)) {
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
    Ok(Value::Object(obj))
}

/// One stored value of a row, as SQLite holds it (its storage class).
pub(crate) enum Cell<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a str),
    Blob(&'a [u8]),
}

/// A row whose columns the row hash reads: sqlx's rows and the crawl
/// writer's (rusqlite) rows hash through the same code.
pub(crate) trait HashRow {
    fn col_count(&self) -> usize;
    /// Column `i`'s name (`None` past the last column).
    fn col_name(&self, i: usize) -> Option<&str>;
    /// Column `i`'s value.
    fn cell(&self, i: usize) -> Result<Cell<'_>, StoreError>;
}

impl HashRow for sqlx::sqlite::SqliteRow {
    fn col_count(&self) -> usize {
        self.columns().len()
    }
    fn col_name(&self, i: usize) -> Option<&str> {
        self.columns().get(i).map(|c| c.name())
    }
    fn cell(&self, i: usize) -> Result<Cell<'_>, StoreError> {
        let raw = self.try_get_raw(i)?;
        if raw.is_null() {
            return Ok(Cell::Null);
        }
        Ok(match raw.type_info().name() {
            "INTEGER" | "BOOLEAN" => Cell::Int(self.try_get(i)?),
            "REAL" => Cell::Real(self.try_get(i)?),
            "BLOB" => Cell::Blob(self.try_get(i)?),
            _ => Cell::Text(self.try_get(i)?),
        })
    }
}

impl HashRow for rusqlite::Row<'_> {
    fn col_count(&self) -> usize {
        self.as_ref().column_count()
    }
    fn col_name(&self, i: usize) -> Option<&str> {
        self.as_ref().column_name(i).ok()
    }
    fn cell(&self, i: usize) -> Result<Cell<'_>, StoreError> {
        use rusqlite::types::ValueRef as V;
        Ok(match self.get_ref(i)? {
            V::Null => Cell::Null,
            V::Integer(n) => Cell::Int(n),
            V::Real(f) => Cell::Real(f),
            V::Text(t) => Cell::Text(std::str::from_utf8(t).map_err(|e| StoreError::Corrupt {
                table: "(returned row)",
                column: "(text)",
                detail: e.to_string(),
            })?),
            V::Blob(b) => Cell::Blob(b),
        })
    }
}

/// The row hash of a row read with `SELECT *` of `table`, from column
/// `skip` on: the sha256 of the canonical JSON of [`object_of`]'s object,
/// written straight from the row into `buf` (cleared first) without
/// building the object.
pub(crate) fn row_hash_of<R: HashRow + ?Sized>(
    table: &str,
    row: &R,
    skip: usize,
    buf: &mut Vec<u8>,
) -> Result<String, StoreError> {
    row_hash_in_order(&hash_order(table, row, skip), row, buf)
}

/// The columns a row hash of `table` writes, from column `skip` on: name
/// and ordinal, erasable and bookkeeping columns left out, sorted by name,
/// and of two columns with one name only the later (the object keeps the
/// later value).
fn hash_order<R: HashRow + ?Sized>(table: &str, row: &R, skip: usize) -> Vec<(String, usize)> {
    let mut cols: Vec<(&str, usize)> = (skip..row.col_count())
        .filter_map(|i| row.col_name(i).map(|n| (n, i)))
        .filter(|&(name, _)| {
            !(ERASABLE.contains(&(table, name)) || BOOKKEEPING.contains(&(table, name)))
        })
        .collect();
    // Stable, so the later of two equal names is last.
    cols.sort_by(|a, b| a.0.cmp(b.0));
    let mut out: Vec<(String, usize)> = Vec::with_capacity(cols.len());
    for (k, &(name, i)) in cols.iter().enumerate() {
        if cols.get(k + 1).is_some_and(|next| next.0 == name) {
            continue;
        }
        out.push((name.to_string(), i));
    }
    out
}

/// Whether `order` (from [`hash_order`]) names `row`'s columns.
fn order_fits<R: HashRow + ?Sized>(order: &[(String, usize)], ncols: usize, row: &R) -> bool {
    row.col_count() == ncols
        && order
            .iter()
            .all(|(name, i)| row.col_name(*i) == Some(name.as_str()))
}

/// The row hash of `row` over the columns of `order`, written into `buf`.
fn row_hash_in_order<R: HashRow + ?Sized>(
    order: &[(String, usize)],
    row: &R,
    buf: &mut Vec<u8>,
) -> Result<String, StoreError> {
    buf.clear();
    buf.push(b'{');
    for (k, (name, i)) in order.iter().enumerate() {
        if k > 0 {
            buf.push(b',');
        }
        write_str(buf, name);
        buf.push(b':');
        match row.cell(*i)? {
            Cell::Null => buf.extend_from_slice(b"null"),
            Cell::Int(n) => write_i64(buf, n),
            Cell::Real(f) => write_canonical(buf, &Value::from(f)),
            Cell::Blob(b) => {
                buf.extend_from_slice(b"{\"$blob_sha256\":");
                write_str(buf, &sha256_hex(b));
                buf.push(b'}');
            }
            Cell::Text(t) => write_str(buf, t),
        }
    }
    buf.push(b'}');
    Ok(sha256_hex(buf))
}

/// Statement sizes of batched reads and writes: a batch is cut into pieces
/// of these sizes (largest first), so each table needs at most a handful
/// of distinct prepared statements, all of which stay in the connection's
/// statement cache.
pub(crate) const BATCH_SIZES: [usize; 4] = [64, 16, 4, 1];

/// Cuts `n` items into pieces of [`BATCH_SIZES`], largest first.
pub(crate) fn batch_pieces(mut n: usize) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        let k = *BATCH_SIZES.iter().find(|&&k| k <= n)?;
        n -= k;
        Some(k)
    })
}

/// `?, ?, …` with `n` placeholders.
pub(crate) fn placeholders(n: usize) -> String {
    let mut s = "?, ".repeat(n);
    s.truncate(s.len().saturating_sub(2));
    s
}

/// The row hashes of `refs`, in their order, read with one statement per
/// table and piece of [`BATCH_SIZES`] rather than one per row (the same
/// `SELECT *` columns as [`row_hash`], so the same hashes). A missing row
/// is an error, as in [`append_event`].
async fn row_hashes(
    conn: &mut sqlx::SqliteConnection,
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
    let mut buf = Vec::new();
    for table in tables {
        valid_table(table)?;
        let mut ids: Vec<i64> = refs
            .iter()
            .filter(|&&(t, _)| t == table)
            .map(|&(_, id)| id)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let mut rest = &ids[..];
        for k in batch_pieces(ids.len()) {
            let (piece, tail) = rest.split_at(k);
            rest = tail;
            // The table name is checked above to be a plain identifier.
            let sql = format!(
                "SELECT rowid, * FROM {table} WHERE rowid IN ({})",
                placeholders(k)
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in piece {
                q = q.bind(*id);
            }
            for row in q.fetch_all(&mut *conn).await? {
                let id: i64 = row.try_get(0)?;
                found.insert((table, id), row_hash_of(table, &row, 1, &mut buf)?);
            }
        }
    }
    in_ref_order(refs, &found)
}

/// The hashes of `refs` in their order, from the hashes `found` by table
/// and key; a ref with no row is an error. Both backends' row hashing ends
/// here.
pub(crate) fn in_ref_order<'a>(
    refs: &[(&'a str, i64)],
    found: &std::collections::HashMap<(&'a str, i64), String>,
) -> Result<Vec<String>, StoreError> {
    refs.iter()
        .map(|&(table, id)| {
            found
                .get(&(table, id))
                .cloned()
                .ok_or_else(|| StoreError::Corrupt {
                    table: "audit_events",
                    column: "refs",
                    detail: format!("{table} row {id} does not exist"),
                })
        })
        .collect()
}

/// The row hash of one row, or `None` when it does not exist.
pub async fn row_hash(
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
    // The chain head is read by the insert itself (one statement, still a
    // write first): `seq` is an INTEGER PRIMARY KEY, so the new row's seq
    // is one past the newest, and the newest event before the insert is
    // the one before it.
    let row = sqlx::query(
        "INSERT INTO audit_events (time, kind, subject, payload, refs, content_sha256, prev_sha256, sha256)
         VALUES (?, ?, ?, ?, '[]', '',
                 coalesce((SELECT sha256 FROM audit_events ORDER BY seq DESC LIMIT 1), ?), '')
         RETURNING seq, prev_sha256",
    )
    .bind(time)
    .bind(kind)
    .bind(subject)
    .bind(&payload_json)
    .bind(GENESIS)
    .fetch_one(&mut *conn)
    .await?;
    let seq: i64 = row.try_get(0)?;
    let prev: String = row.try_get(1)?;
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
    // The reference index readers use to serve only vouched rows: one
    // multi-row statement per piece (a ref repeated in one event is
    // ignored after its first row, as before).
    let mut rest = &out[..];
    for k in batch_pieces(out.len()) {
        let (piece, tail) = rest.split_at(k);
        rest = tail;
        let mut q = sqlx::query(sqlx::AssertSqlSafe(insert_refs_sql(k)));
        for r in piece {
            q = q.bind(&r.table).bind(r.id).bind(seq).bind(&r.sha256);
        }
        q.execute(&mut *conn).await?;
    }
    let refs_canonical = refs_json(&out);
    let content = sha256_hex(refs_canonical.as_bytes());
    let hash = event_hash_canonical(seq, time, kind, subject, &payload_json, &content, &prev);
    sqlx::query(
        "UPDATE audit_events SET refs = ?, content_sha256 = ?, prev_sha256 = ?, sha256 = ? WHERE seq = ?",
    )
    .bind(refs_canonical)
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

/// The audit appends of one writer transaction (the crawl writer's
/// completions, on its direct connection, `store::direct`): the same
/// events, hashes and `audit_refs` rows as [`append_event`], with fewer
/// statements.
///
/// * A row the transaction inserted with `RETURNING rowid, *` is hashed
///   from the returned row ([`AuditCtx::note_row`]): the same columns, in
///   the same order and with the same stored types as `SELECT *` (RETURNING
///   reports the values as stored, after column affinity), so the same row
///   hash, without reading the row back. Rows the writer did not note are
///   read back. A noted row must not change before the event covering it
///   is appended (the crawl writer only updates frontier bookkeeping
///   columns, which row hashes leave out, and an entry's new frontier rows
///   are covered by its own fetch event).
/// * The chain head is read once, then kept: each event is one complete
///   `INSERT` (seq, prev_sha256 and sha256 known before it), not an insert
///   and an update. The head is read only after this transaction has
///   written (it holds SQLite's write lock, so no other appender can move
///   the head under it).
/// * Each event's `audit_refs` rows are inserted with it, in the order
///   [`append_event`] inserts them.
pub(crate) struct AuditCtx {
    head: Option<(i64, String)>,
    wrote: bool,
    hashes: std::collections::HashMap<(&'static str, i64), String>,
    buf: Vec<u8>,
}

/// Per table: the column count and [`hash_order`] of the rows
/// [`AuditCtx::note_row`] was given.
type HashOrders = std::collections::HashMap<&'static str, (usize, Vec<(String, usize)>)>;

thread_local! {
    static HASH_ORDERS: std::cell::RefCell<HashOrders> = std::cell::RefCell::new(HashOrders::new());
}

impl AuditCtx {
    pub(crate) fn new() -> AuditCtx {
        AuditCtx {
            head: None,
            wrote: false,
            hashes: std::collections::HashMap::new(),
            buf: Vec::new(),
        }
    }

    /// Starts the next entry of the transaction: forgets the row hashes
    /// noted so far (an entry's events cover its own rows), keeps the
    /// chain head.
    pub(crate) fn next_entry(&mut self) {
        self.hashes.clear();
    }

    /// Hashes a row of `table` returned by `INSERT ... RETURNING rowid, *`
    /// on this transaction; its rowid.
    pub(crate) fn note_row<R: HashRow + ?Sized>(
        &mut self,
        table: &'static str,
        row: &R,
    ) -> Result<i64, StoreError> {
        let Cell::Int(id) = row.cell(0)? else {
            return Err(StoreError::Corrupt {
                table,
                column: "rowid",
                detail: "a returned row does not start with its rowid".into(),
            });
        };
        // The column order of a table's returned rows is worked out once
        // per thread (and again should a row not fit it).
        let hash = HASH_ORDERS.with(|orders| {
            let mut orders = orders.borrow_mut();
            let fits = orders
                .get(table)
                .is_some_and(|(n, order)| order_fits(order, *n, row));
            if !fits {
                orders.insert(table, (row.col_count(), hash_order(table, row, 1)));
            }
            let order = orders.get(table).map(|(_, o)| &o[..]).unwrap_or(&[]);
            row_hash_in_order(order, row, &mut self.buf)
        })?;
        self.hashes.insert((table, id), hash);
        self.wrote = true;
        Ok(id)
    }

    /// Appends one event (see [`append_event`]) on the crawl writer's
    /// connection, inside its open transaction; its seq.
    pub(crate) fn append(
        &mut self,
        db: &rusqlite::Connection,
        time: i64,
        kind: &str,
        subject: &str,
        payload: &Value,
        refs: &[(&'static str, i64)],
    ) -> Result<i64, StoreError> {
        let payload_json = canonical_json(payload);
        for &(table, id) in refs {
            if !self.hashes.contains_key(&(table, id)) {
                // A row the writer did not note: read back (not on the
                // crawl's own path, which notes every row it covers).
                let hash = self.read_row_hash(db, table, id)?;
                self.hashes.insert((table, id), hash);
            }
        }
        let mut out: Vec<AuditRef> = Vec::with_capacity(refs.len());
        for &(table, id) in refs {
            let sha256 = self.hashes.get(&(table, id)).cloned().unwrap_or_default();
            out.push(AuditRef {
                table: table.to_string(),
                id,
                sha256,
            });
        }
        let (prev_seq, prev) = match self.head.take() {
            Some(h) => h,
            None => {
                if !self.wrote {
                    // Take the write lock before reading the head.
                    super::direct::prep(db, "UPDATE audit_events SET seq = seq WHERE 0")?
                        .execute([])?;
                    self.wrote = true;
                }
                let mut st = super::direct::prep(
                    db,
                    "SELECT seq, sha256 FROM audit_events ORDER BY seq DESC LIMIT 1",
                )?;
                let mut rows = st.query([])?;
                match rows.next()? {
                    Some(r) => (r.get::<_, i64>(0)?, r.get::<_, String>(1)?),
                    None => (0, GENESIS.to_string()),
                }
            }
        };
        let seq = prev_seq.checked_add(1).ok_or_else(|| StoreError::Corrupt {
            table: "audit_events",
            column: "seq",
            detail: "the log's last seq is the largest integer".into(),
        })?;
        let refs_canonical = refs_json(&out);
        let content = sha256_hex(refs_canonical.as_bytes());
        let hash = event_hash_canonical(seq, time, kind, subject, &payload_json, &content, &prev);
        super::direct::prep(
            db,
            "INSERT INTO audit_events (seq, time, kind, subject, payload, refs, content_sha256, prev_sha256, sha256)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )?
        .execute(rusqlite::params![
            seq,
            time,
            kind,
            subject,
            payload_json,
            refs_canonical,
            content,
            prev,
            hash
        ])?;
        // The reference index readers use to serve only vouched rows, in
        // the order `append_event` inserts it (a ref repeated in one event
        // is ignored after its first row): one prepared multi-row insert
        // per piece of [`write_pieces`] (issue #26: a page's fetch event
        // covers about fifty rows, and a statement per ref cost more than
        // the rows).
        let mut rest = &out[..];
        for k in write_pieces(out.len()) {
            let (piece, tail) = rest.split_at(k);
            rest = tail;
            let mut st = super::direct::prep(db, &insert_refs_sql(k))?;
            let mut binds: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(k * 4);
            for r in piece {
                binds.extend_from_slice(&[
                    &r.table as &dyn rusqlite::ToSql,
                    &r.id,
                    &seq,
                    &r.sha256,
                ]);
            }
            st.execute(&binds[..])?;
        }
        self.head = Some((seq, hash));
        Ok(seq)
    }

    /// The row hash of a row this context did not note, read back with
    /// `SELECT rowid, *` (the columns [`row_hash`] reads); a missing row is
    /// an error, as in [`append_event`].
    fn read_row_hash(
        &mut self,
        db: &rusqlite::Connection,
        table: &'static str,
        id: i64,
    ) -> Result<String, StoreError> {
        valid_table(table)?;
        // The table name is checked above to be a plain identifier.
        let mut st =
            super::direct::prep(db, &format!("SELECT rowid, * FROM {table} WHERE rowid = ?"))?;
        let mut rows = st.query([id])?;
        match rows.next()? {
            Some(r) => row_hash_of(table, r, 1, &mut self.buf),
            None => Err(StoreError::Corrupt {
                table: "audit_events",
                column: "refs",
                detail: format!("{table} row {id} does not exist"),
            }),
        }
    }
}

/// `INSERT OR IGNORE INTO audit_refs` of `k` rows: the statement for a
/// piece of an event's refs, on the sqlx connection and in the direct
/// writer alike.
fn insert_refs_sql(k: usize) -> String {
    format!(
        "INSERT OR IGNORE INTO audit_refs (tbl, row_id, seq, sha256) VALUES {}",
        vec!["(?, ?, ?, ?)"; k].join(", ")
    )
}

/// Cuts `n` items into pieces of 64, 32, 16, 8, 4, 2 and 1, largest
/// first: at most one piece of each size below 64, for the writer's
/// multi-row inserts whose statements are hashed from what they return.
pub(crate) fn write_pieces(mut n: usize) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        let k = [64usize, 32, 16, 8, 4, 2, 1]
            .into_iter()
            .find(|&k| k <= n)?;
        n -= k;
        Some(k)
    })
}

/// The canonical JSON of a ref list, `[{"id":…,"sha256":…,"table":…},…]`
/// (keys in sorted order), written directly; both backends hash it.
pub(crate) fn refs_json(refs: &[AuditRef]) -> String {
    let mut b = Vec::with_capacity(refs.len() * 112 + 2);
    b.push(b'[');
    for (i, r) in refs.iter().enumerate() {
        if i > 0 {
            b.push(b',');
        }
        b.extend_from_slice(b"{\"id\":");
        write_i64(&mut b, r.id);
        b.extend_from_slice(b",\"sha256\":");
        write_str(&mut b, &r.sha256);
        b.extend_from_slice(b",\"table\":");
        write_str(&mut b, &r.table);
        b.push(b'}');
    }
    b.push(b']');
    into_string(b)
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
    event_from_columns(EventColumns {
        seq: int("seq")?,
        time: int("time")?,
        kind: get("kind")?,
        subject: get("subject")?,
        payload: get("payload")?,
        refs: get("refs")?,
        content_sha256: get("content_sha256")?,
        prev_sha256: get("prev_sha256")?,
        sha256: get("sha256")?,
    })
}

/// The columns of one `audit_events` row as stored (both backends).
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct EventColumns {
    pub seq: i64,
    pub time: i64,
    pub kind: String,
    pub subject: String,
    pub payload: String,
    pub refs: String,
    pub content_sha256: String,
    pub prev_sha256: String,
    pub sha256: String,
}

/// Parses the JSON columns of a stored event.
pub(crate) fn event_from_columns(c: EventColumns) -> Result<AuditEvent, StoreError> {
    let refs: Vec<Value> = serde_json::from_str(&c.refs).map_err(|e| corrupt("refs", e))?;
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
        seq: c.seq,
        time: c.time,
        kind: c.kind,
        subject: c.subject,
        payload: serde_json::from_str(&c.payload).map_err(|e| corrupt("payload", e))?,
        refs,
        content_sha256: c.content_sha256,
        prev_sha256: c.prev_sha256,
        sha256: c.sha256,
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
        if let Some(pg) = self.pg() {
            let mut tx = pg.begin().await?;
            let e =
                super::pg::audit::append_event(&mut tx, time, kind, subject, payload, refs).await?;
            tx.commit().await?;
            return Ok(e);
        }
        let mut tx = self.pool()?.begin().await?;
        let e = append_event(&mut tx, time, kind, subject, payload, refs).await?;
        tx.commit().await?;
        Ok(e)
    }

    /// Events in log order, optionally only one subject and/or kind. On
    /// SQLite this reads the whole log whatever the filter: the log has no
    /// index by subject (issue #26), and the optional `?n IS NULL OR` form
    /// is planned as a scan even when a kind is bound. One URL's events:
    /// [`Store::subject_events`].
    pub async fn audit_events(&self, f: &EventFilter) -> Result<Vec<AuditEvent>, StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg::audit_read::audit_events(pg, f).await;
        }
        let rows = sqlx::query(
            "SELECT seq, time, kind, subject, payload, refs, content_sha256, prev_sha256, sha256
             FROM audit_events WHERE (?1 IS NULL OR subject = ?1) AND (?2 IS NULL OR kind = ?2)
             ORDER BY seq",
        )
        .bind(&f.subject)
        .bind(&f.kind)
        .fetch_all(self.pool()?)
        .await?;
        rows.iter().map(event_of).collect()
    }

    /// The events about `subject` other than the crawl's per-page kinds
    /// (`fetch`, `robots.decision`, `verdict`: a page's own rows list
    /// those), in log order. On SQLite they are found through the partial
    /// index `audit_events_by_subject_outside_crawl`, which the crawl never
    /// writes to; PostgreSQL keeps an index on every event's subject.
    pub async fn subject_events_outside_crawl(
        &self,
        subject: &str,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg::audit_read::subject_events_outside_crawl(pg, subject).await;
        }
        let rows = sqlx::query(SUBJECT_EVENTS_OUTSIDE_CRAWL)
            .bind(subject)
            .fetch_all(self.pool()?)
            .await?;
        rows.iter().map(event_of).collect()
    }

    /// Every event about `subject` (a URL) in log order: what
    /// [`Store::audit_events`] with that subject returns, found without
    /// reading the whole log. `frontier_id` is the URL's frontier row, if
    /// any. On SQLite the crawl's per-page events are reached through the
    /// rows they cover (`SUBJECT_EVENTS`); PostgreSQL keeps an index on
    /// every event's subject.
    pub async fn subject_events(
        &self,
        subject: &str,
        frontier_id: Option<i64>,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        if let Some(pg) = self.pg() {
            let f = EventFilter {
                subject: Some(subject.to_string()),
                kind: None,
            };
            return super::pg::audit_read::audit_events(pg, &f).await;
        }
        let rows = sqlx::query(SUBJECT_EVENTS)
            .bind(subject)
            .bind(frontier_id)
            .fetch_all(self.pool()?)
            .await?;
        rows.iter().map(event_of).collect()
    }

    /// Event counts by kind.
    pub async fn audit_kind_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg::audit_read::audit_kind_counts(pg).await;
        }
        let rows =
            sqlx::query("SELECT kind, count(*) FROM audit_events GROUP BY kind ORDER BY kind")
                .fetch_all(self.pool()?)
                .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}

/// One event row as read for verification: its `seq` and stored `sha256`
/// (read fallibly), and the parsed event or why it could not be parsed.
#[derive(Debug, Clone)]
pub struct RawEvent {
    pub seq: i64,
    pub sha256: Option<String>,
    pub event: Result<AuditEvent, String>,
}

/// One row of `audit_refs` as stored (read fallibly).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RefRow {
    pub seq: i64,
    pub table: String,
    pub id: i64,
    pub sha256: String,
}

/// A stored page with its current passages, for re-deriving them.
#[derive(Debug, Clone)]
pub struct PagePassages {
    pub page_id: i64,
    /// Whether an audit event covers the page row.
    pub logged: bool,
    /// `None` when the text is not TEXT (reported by the page check).
    pub text: Option<String>,
    pub title: String,
    pub site_name: Option<String>,
    pub nosnippet: Vec<(usize, usize)>,
    /// `(id, ordinal, start_char, end_char, text, title)`; a value of the
    /// wrong type reads as `None` in its row's text.
    pub passages: Vec<(i64, i64, i64, i64, Option<String>, Option<String>)>,
}

/// Read-only access to the log and the rows it covers for `audit verify`,
/// on one held connection. Every value is read fallibly: the file may have
/// been edited behind our back.
pub struct AuditReader {
    conn: ReaderConn,
}

/// The reader's connection: SQLite's, or a read-only snapshot transaction
/// on PostgreSQL (so a log being appended to by live writers is verified
/// as of one instant).
enum ReaderConn {
    Sqlite(sqlx::pool::PoolConnection<sqlx::Sqlite>),
    Postgres(super::pg::audit_read::PgAuditReader),
}

fn opt_text(r: &sqlx::sqlite::SqliteRow, i: usize) -> Option<String> {
    r.try_get::<Option<String>, _>(i).ok().flatten()
}

impl Store {
    /// A reader for `audit verify`.
    pub async fn audit_reader(&self) -> Result<AuditReader, StoreError> {
        if let Some(pg) = self.pg() {
            return Ok(AuditReader {
                conn: ReaderConn::Postgres(super::pg::audit_read::PgAuditReader::begin(pg).await?),
            });
        }
        Ok(AuditReader {
            conn: ReaderConn::Sqlite(self.pool()?.acquire().await?),
        })
    }

    /// The newest event's `(seq, sha256)`, if any.
    pub async fn audit_head(&self) -> Result<Option<(i64, String)>, StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg::audit_read::audit_head(pg).await;
        }
        let r = sqlx::query("SELECT seq, sha256 FROM audit_events ORDER BY seq DESC LIMIT 1")
            .fetch_optional(self.pool()?)
            .await?;
        Ok(r.map(|r| {
            (
                r.try_get(0).unwrap_or_default(),
                r.try_get(1).unwrap_or_default(),
            )
        }))
    }
}

impl AuditReader {
    /// Whether a table (or virtual table) of this name exists.
    pub async fn table_exists(&mut self, table: &str) -> Result<bool, StoreError> {
        let conn = match &mut self.conn {
            ReaderConn::Sqlite(c) => c,
            ReaderConn::Postgres(pg) => return pg.table_exists(table).await,
        };
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
        )
        .bind(table)
        .fetch_one(&mut **conn)
        .await?;
        Ok(n > 0)
    }

    /// Up to `limit` events after `after`, in log order.
    pub async fn events_after(
        &mut self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<RawEvent>, StoreError> {
        let conn = match &mut self.conn {
            ReaderConn::Sqlite(c) => c,
            ReaderConn::Postgres(pg) => return pg.events_after(after, limit).await,
        };
        let rows = sqlx::query(
            "SELECT seq, time, kind, subject, payload, refs, content_sha256, prev_sha256, sha256
             FROM audit_events WHERE seq > ? ORDER BY seq LIMIT CAST(? AS BIGINT)",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&mut **conn)
        .await?;
        Ok(rows
            .iter()
            .map(|r| RawEvent {
                // An INTEGER PRIMARY KEY is always an integer.
                seq: r.try_get("seq").unwrap_or_default(),
                sha256: r.try_get("sha256").ok(),
                event: event_of(r).map_err(|e| e.to_string()),
            })
            .collect())
    }

    /// The `audit_refs` rows with `lo <= seq <= hi`, sorted; a row whose
    /// values are not of the right types is returned with placeholders
    /// (so it mismatches the log and is reported).
    pub async fn refs_between(&mut self, lo: i64, hi: i64) -> Result<Vec<RefRow>, StoreError> {
        let conn = match &mut self.conn {
            ReaderConn::Sqlite(c) => c,
            ReaderConn::Postgres(pg) => return pg.refs_between(lo, hi).await,
        };
        let rows = sqlx::query(
            "SELECT seq, tbl, row_id, sha256 FROM audit_refs WHERE seq BETWEEN ? AND ?",
        )
        .bind(lo)
        .bind(hi)
        .fetch_all(&mut **conn)
        .await?;
        let mut out: Vec<RefRow> = rows
            .iter()
            .map(|r| RefRow {
                seq: r.try_get(0).unwrap_or(i64::MIN),
                table: r.try_get(1).unwrap_or_else(|_| "?".into()),
                id: r.try_get(2).unwrap_or(i64::MIN),
                sha256: r.try_get(3).unwrap_or_else(|_| "?".into()),
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// Rows covered by more than one event, with the newest covering seq:
    /// only the newest event's hash must match the row as it is now.
    pub async fn multiply_covered(
        &mut self,
    ) -> Result<std::collections::HashMap<(String, i64), i64>, StoreError> {
        let conn = match &mut self.conn {
            ReaderConn::Sqlite(c) => c,
            ReaderConn::Postgres(pg) => return pg.multiply_covered().await,
        };
        let rows = sqlx::query(
            "SELECT tbl, row_id, max(seq) FROM audit_refs GROUP BY tbl, row_id HAVING count(*) > 1",
        )
        .fetch_all(&mut **conn)
        .await?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                Some((
                    (
                        r.try_get::<String, _>(0).ok()?,
                        r.try_get::<i64, _>(1).ok()?,
                    ),
                    r.try_get::<i64, _>(2).ok()?,
                ))
            })
            .collect())
    }

    /// The row hash of one row now, or `None` when it does not exist.
    pub async fn row_hash(&mut self, table: &str, id: i64) -> Result<Option<String>, StoreError> {
        let conn = match &mut self.conn {
            ReaderConn::Sqlite(c) => c,
            ReaderConn::Postgres(pg) => return pg.row_hash(table, id).await,
        };
        row_hash(conn, table, id).await
    }

    /// Rowids of `table` that no `audit_refs` row covers, in order.
    pub async fn unlogged(&mut self, table: &str) -> Result<Vec<i64>, StoreError> {
        let conn = match &mut self.conn {
            ReaderConn::Sqlite(c) => c,
            ReaderConn::Postgres(pg) => return pg.unlogged(table).await,
        };
        valid_table(table)?;
        // The table name is checked above to be a plain identifier.
        let sql = format!(
            "SELECT t.rowid FROM {table} t WHERE NOT EXISTS
               (SELECT 1 FROM audit_refs r WHERE r.tbl = '{table}' AND r.row_id = t.rowid)
             ORDER BY t.rowid"
        );
        Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_all(&mut **conn)
            .await?)
    }

    /// The seqs `audit_refs` lists for one row.
    pub async fn ref_seqs(&mut self, table: &str, id: i64) -> Result<Vec<i64>, StoreError> {
        let conn = match &mut self.conn {
            ReaderConn::Sqlite(c) => c,
            ReaderConn::Postgres(pg) => return pg.ref_seqs(table, id).await,
        };
        let rows = sqlx::query("SELECT seq FROM audit_refs WHERE tbl = ? AND row_id = ?")
            .bind(table)
            .bind(id)
            .fetch_all(&mut **conn)
            .await?;
        Ok(rows.iter().filter_map(|r| r.try_get(0).ok()).collect())
    }

    /// The sha256 of an answer's stored `json` now: `None` when the answer
    /// is gone, `Some(Err)` when the value is not text.
    pub async fn answer_json_sha256(
        &mut self,
        answer_id: i64,
    ) -> Result<Option<Result<String, String>>, StoreError> {
        let conn = match &mut self.conn {
            ReaderConn::Sqlite(c) => c,
            ReaderConn::Postgres(pg) => return pg.answer_json_sha256(answer_id).await,
        };
        let r = sqlx::query("SELECT json, typeof(json) FROM answers WHERE id = ?")
            .bind(answer_id)
            .fetch_optional(&mut **conn)
            .await?;
        Ok(r.map(|r| match r.try_get::<String, _>(0) {
            Ok(j) => Ok(sha256_hex(j.as_bytes())),
            Err(_) => Err(format!(
                "json is stored as {}",
                r.try_get::<String, _>(1).unwrap_or_default()
            )),
        }))
    }

    /// Pages whose stored text does not match `text_sha256` (unless the
    /// page was forgotten), or is not text: `(page id, first covering
    /// event or 0, detail)`.
    pub async fn page_text_problems(&mut self) -> Result<Vec<(i64, i64, String)>, StoreError> {
        let conn = match &mut self.conn {
            ReaderConn::Sqlite(c) => c,
            ReaderConn::Postgres(pg) => return pg.page_text_problems().await,
        };
        let pages = sqlx::query(PAGE_TEXTS).fetch_all(&mut **conn).await?;
        let mut out = Vec::new();
        for p in pages {
            let id: i64 = p.try_get(0).unwrap_or_default();
            let digest: String = p.try_get(2).unwrap_or_default();
            let forgotten: bool = p.try_get(4).unwrap_or(false);
            let seq: i64 = p.try_get::<Option<i64>, _>(5).ok().flatten().unwrap_or(0);
            let text: String = match p.try_get::<String, _>(1) {
                Ok(t) => t,
                Err(_) => {
                    let ty: String = p.try_get(3).unwrap_or_else(|_| "unknown".into());
                    out.push((
                        id,
                        seq,
                        format!("text is not text (stored as {})", ty.to_uppercase()),
                    ));
                    continue;
                }
            };
            if forgotten && text.is_empty() {
                continue;
            }
            if sha256_hex(text.as_bytes()) != digest {
                out.push((id, seq, "text does not match its text_sha256".into()));
            }
        }
        Ok(out)
    }

    /// Passages whose page does not exist: `(passage id, page id)`.
    pub async fn orphan_passages(&mut self) -> Result<Vec<(i64, i64)>, StoreError> {
        let conn = match &mut self.conn {
            ReaderConn::Sqlite(c) => c,
            ReaderConn::Postgres(pg) => return pg.orphan_passages().await,
        };
        let rows = sqlx::query(
            "SELECT ps.id, ps.page_id FROM passages ps
             WHERE NOT EXISTS (SELECT 1 FROM pages p WHERE p.id = ps.page_id) ORDER BY ps.id",
        )
        .fetch_all(&mut **conn)
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.try_get(0).unwrap_or_default(),
                    r.try_get(1).unwrap_or_default(),
                )
            })
            .collect())
    }

    /// Up to `limit` pages after page id `after` that have current passages
    /// (split from the text the page holds now), with those passages.
    pub async fn pages_with_passages(
        &mut self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<PagePassages>, StoreError> {
        let conn = match &mut self.conn {
            ReaderConn::Sqlite(c) => c,
            ReaderConn::Postgres(pg) => return pg.pages_with_passages(after, limit).await,
        };
        let pages = sqlx::query(
            "SELECT p.id, p.text, coalesce(p.title, ''), p.site_name, p.nosnippet_spans,
                    EXISTS (SELECT 1 FROM audit_refs r WHERE r.tbl = 'pages' AND r.row_id = p.id)
             FROM pages p
             WHERE p.id > ? AND EXISTS (SELECT 1 FROM passages ps WHERE ps.page_id = p.id
                                        AND ps.text_sha256 = p.text_sha256)
             ORDER BY p.id LIMIT CAST(? AS BIGINT)",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&mut **conn)
        .await?;
        let mut out = Vec::with_capacity(pages.len());
        for p in pages {
            let page_id: i64 = p.try_get(0).unwrap_or_default();
            let spans: Vec<[usize; 2]> = opt_text(&p, 4)
                .and_then(|s| serde_json::from_str(&s).ok())
                .unwrap_or_default();
            let rows = sqlx::query(
                "SELECT ps.id, ps.ordinal, ps.start_char, ps.end_char, ps.text, ps.title FROM passages ps
                 JOIN pages p ON p.id = ps.page_id AND p.text_sha256 = ps.text_sha256
                 WHERE ps.page_id = ? ORDER BY ps.ordinal, ps.id",
            )
            .bind(page_id)
            .fetch_all(&mut **conn)
            .await?;
            out.push(PagePassages {
                page_id,
                logged: p.try_get(5).unwrap_or(false),
                text: p.try_get(1).ok(),
                title: p.try_get(2).unwrap_or_default(),
                site_name: opt_text(&p, 3),
                nosnippet: spans.into_iter().map(|[a, b]| (a, b)).collect(),
                passages: rows
                    .iter()
                    .map(|r| {
                        (
                            r.try_get(0).unwrap_or_default(),
                            r.try_get(1).unwrap_or(-1),
                            r.try_get(2).unwrap_or(-1),
                            r.try_get(3).unwrap_or(-1),
                            r.try_get::<String, _>(4).ok(),
                            r.try_get::<String, _>(5).ok(),
                        )
                    })
                    .collect(),
            });
        }
        Ok(out)
    }

    /// FTS5's own check that the full-text index matches the passages:
    /// `Some(detail)` when it does not.
    pub async fn fts_problem(&mut self) -> Result<Option<String>, StoreError> {
        let conn = match &mut self.conn {
            ReaderConn::Sqlite(c) => c,
            ReaderConn::Postgres(pg) => return pg.fts_problem().await,
        };
        match sqlx::query("INSERT INTO passages_fts (passages_fts) VALUES ('integrity-check')")
            .execute(&mut **conn)
            .await
        {
            Ok(_) => Ok(None),
            Err(sqlx::Error::Database(e)) => Ok(Some(e.message().to_string())),
            Err(e) => Err(e.into()),
        }
    }

    /// The stored hash of event `seq`, if it exists.
    pub async fn event_sha256(&mut self, seq: i64) -> Result<Option<String>, StoreError> {
        let conn = match &mut self.conn {
            ReaderConn::Sqlite(c) => c,
            ReaderConn::Postgres(pg) => return pg.event_sha256(seq).await,
        };
        let r = sqlx::query("SELECT sha256 FROM audit_events WHERE seq = ?")
            .bind(seq)
            .fetch_optional(&mut **conn)
            .await?;
        Ok(r.and_then(|r| r.try_get(0).ok()))
    }

    /// The seq of the event with this hash, if any.
    pub async fn event_with_sha256(&mut self, sha256: &str) -> Result<Option<i64>, StoreError> {
        let conn = match &mut self.conn {
            ReaderConn::Sqlite(c) => c,
            ReaderConn::Postgres(pg) => return pg.event_with_sha256(sha256).await,
        };
        Ok(
            sqlx::query_scalar(
                "SELECT seq FROM audit_events WHERE sha256 = ? ORDER BY seq LIMIT 1",
            )
            .bind(sha256)
            .fetch_optional(&mut **conn)
            .await?,
        )
    }
}

/// A subject's events of every kind but the crawl's three per-page ones
/// (`$1`; one text for both backends). The kind condition is the partial
/// index's own, word for word: SQLite uses a partial index only when the
/// statement repeats its condition.
pub(crate) const SUBJECT_EVENTS_OUTSIDE_CRAWL: &str =
    "SELECT seq, time, kind, subject, payload, refs, content_sha256, prev_sha256, sha256
     FROM audit_events
     WHERE subject = $1 AND kind NOT IN ('fetch', 'robots.decision', 'verdict')
     ORDER BY seq";

/// Every event about URL `?1` whose frontier row is `?2` (NULL: none), in
/// log order, on SQLite (see [`Store::subject_events`]). The candidates:
/// - events outside the crawl's three per-page kinds, by subject (the
///   partial index of [`SUBJECT_EVENTS_OUTSIDE_CRAWL`], its condition word
///   for word);
/// - `fetch` events, through the frontier row's fetches;
/// - `robots.decision` events, through the frontier row's decisions and the
///   redirect hops' decisions named by the URL (partial index
///   `robots_decisions_of_redirect_hops`, its condition word for word);
/// - `verdict` (and `evidence`) events, through the URL's evidence sets.
///
/// Each event's refs are in `audit_refs`, read by (table, row) after the
/// row: `CROSS JOIN` keeps the row the outer loop on SQLite (the planner
/// otherwise read every ref of the table). The subject condition then keeps
/// exactly the events about the URL, as a scan of the log by subject would.
pub(crate) const SUBJECT_EVENTS: &str =
    "SELECT seq, time, kind, subject, payload, refs, content_sha256, prev_sha256, sha256
     FROM audit_events
     WHERE seq IN (
         SELECT seq FROM audit_events
          WHERE subject = ?1 AND kind NOT IN ('fetch', 'robots.decision', 'verdict')
         UNION ALL
         SELECT r.seq FROM fetches f
           CROSS JOIN audit_refs r ON r.tbl = 'fetches' AND r.row_id = f.id
          WHERE f.frontier_id = ?2
         UNION ALL
         SELECT r.seq FROM robots_decisions d
           CROSS JOIN audit_refs r ON r.tbl = 'robots_decisions' AND r.row_id = d.id
          WHERE d.frontier_id = ?2
         UNION ALL
         SELECT r.seq FROM robots_decisions d
           CROSS JOIN audit_refs r ON r.tbl = 'robots_decisions' AND r.row_id = d.id
          WHERE d.url = ?1 AND d.reason = 'robots.redirect_disallowed'
         UNION ALL
         SELECT r.seq FROM evidence_sets s
           CROSS JOIN audit_refs r ON r.tbl = 'evidence_sets' AND r.row_id = s.id
          WHERE s.page_url = ?1)
       AND subject = ?1
     ORDER BY seq";

/// Every page's text and hash, whether it was forgotten (by the log's
/// `forget` events, found through `audit_events_by_kind`) and the first
/// event covering it (`audit verify`).
const PAGE_TEXTS: &str = "SELECT p.id, p.text, p.text_sha256, typeof(p.text),
        EXISTS (SELECT 1 FROM audit_events a WHERE a.kind = 'forget' AND a.subject = p.url) AS forgotten,
        (SELECT min(seq) FROM audit_refs r WHERE r.tbl = 'pages' AND r.row_id = p.id)
 FROM pages p ORDER BY p.id";

#[cfg(test)]
mod tests {

    /// The FIPS 180-2 vectors, and the `hex` crate's encoding of digests
    /// whose bytes cover every nibble.
    #[test]
    fn sha256_hex_is_the_lower_case_hex_of_the_digest() {
        use sha2::{Digest, Sha256};
        assert_eq!(
            super::sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            super::sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        for n in 0..64u8 {
            let bytes: Vec<u8> = (0..n).map(|k| k.wrapping_mul(37)).collect();
            assert_eq!(
                super::sha256_hex(&bytes),
                hex::encode(Sha256::digest(&bytes))
            );
        }
    }
    use super::*;

    /// The recipe as first written: a sorted copy of the value, then
    /// `serde_json`'s `to_string`. The direct writers must give its bytes.
    fn reference_canonical(v: &Value) -> String {
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

    fn samples() -> Vec<Value> {
        vec![
            Value::Null,
            serde_json::json!(true),
            serde_json::json!(-9223372036854775808i64),
            serde_json::json!(18446744073709551615u64),
            serde_json::json!(0.1),
            serde_json::json!(1e300),
            serde_json::json!(-0.0),
            serde_json::json!(
                "quote \" backslash \\ nl \n tab \t nul \u{0} del \u{7f} é 漢 😀 \u{2028}"
            ),
            serde_json::json!({"b": 1, "a": [3, {"z": null, "y": "x", "Z": 2, "é": 1, "e": 0}], "": []}),
            serde_json::json!([[], {}, [{}], {"k": {"j": {"i": [1.5, "s"]}}}]),
            serde_json::json!({"final_url": "http://127.0.0.1:1/a?b=c&d", "status": 200, "error_kind": null,
                "body_sha256": "ab", "page_id": 7}),
        ]
    }

    #[test]
    fn canonical_json_matches_the_sorted_copy_recipe() {
        for v in samples() {
            assert_eq!(canonical_json(&v), reference_canonical(&v), "{v:?}");
        }
    }

    #[test]
    fn event_and_content_hashes_match_the_value_recipe() {
        let refs: Vec<AuditRef> = (0..5)
            .map(|i| AuditRef {
                table: ["fetches", "pages", "links", "frontier", "t\"x"][i].to_string(),
                id: i as i64 * 1_000_003 - 2,
                sha256: sha256_hex(&[i as u8]),
            })
            .collect();
        let list: Vec<Value> = refs
            .iter()
            .map(|r| serde_json::json!({"id": r.id, "sha256": r.sha256, "table": r.table}))
            .collect();
        let want_refs = reference_canonical(&Value::Array(list));
        assert_eq!(refs_json(&refs), want_refs);
        assert_eq!(content_hash(&refs), sha256_hex(want_refs.as_bytes()));
        assert_eq!(content_hash(&[]), sha256_hex(b"[]"));
        for payload in samples() {
            for (seq, time, kind, subject) in [
                (1, 0, "fetch", "http://h/é?\"q\""),
                (i64::MAX, -5, "robots.decision", ""),
            ] {
                let v = serde_json::json!({
                    "content_sha256": "c", "kind": kind, "payload": payload,
                    "prev_sha256": GENESIS, "seq": seq, "subject": subject, "time": time,
                });
                let want = sha256_hex(reference_canonical(&v).as_bytes());
                assert_eq!(
                    event_hash(seq, time, kind, subject, &payload, "c", GENESIS),
                    want
                );
                assert_eq!(
                    event_hash_canonical(
                        seq,
                        time,
                        kind,
                        subject,
                        &canonical_json(&payload),
                        "c",
                        GENESIS
                    ),
                    want
                );
            }
        }
    }

    /// Issue #26: the log is indexed by kind (each kind's events are
    /// appended at the end of its range) and, outside the crawl's three
    /// per-page kinds, by subject. An index on every event's subject (the
    /// page's URL) cost each of a page's events a write at a random place;
    /// the forgotten pages are found by kind.
    #[tokio::test]
    async fn the_log_is_indexed_by_kind_and_by_subject_outside_the_crawl() {
        use crate::store::probe::{Bind, indexes, plan};
        let (_dir, store) = crate::store::probe::fresh().await;
        let pool = store.pool().unwrap();
        assert_eq!(
            indexes(pool, "audit_events").await,
            [
                "audit_events_by_kind",
                "audit_events_by_subject_outside_crawl"
            ]
        );
        let partial: String = sqlx::query_scalar(
            "SELECT sql FROM sqlite_master WHERE name = 'audit_events_by_subject_outside_crawl'",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        assert!(
            partial.ends_with("WHERE kind NOT IN ('fetch', 'robots.decision', 'verdict')"),
            "{partial}"
        );
        let p = plan(
            pool,
            SUBJECT_EVENTS_OUTSIDE_CRAWL,
            &[Bind::Text("http://a.test/")],
        )
        .await;
        assert_eq!(
            p,
            ["SEARCH audit_events USING INDEX audit_events_by_subject_outside_crawl (subject=?)"],
            "{p:#?}"
        );
        let plan = plan(pool, PAGE_TEXTS, &[]).await;
        assert!(
            plan.iter()
                .any(|d| d.ends_with("USING INDEX audit_events_by_kind (kind=?)")),
            "{plan:#?}"
        );
    }

    /// `audit why`'s events of one URL are searched for, never scanned: the
    /// log by the partial subject index and by seq, the URL's rows by their
    /// indexes, the redirect hops' decisions by theirs, whose condition is
    /// the crawl's reason for them.
    #[tokio::test]
    async fn a_urls_events_are_found_through_its_rows_without_a_scan() {
        use crate::store::probe::{Bind, plan};
        let (_dir, store) = crate::store::probe::fresh().await;
        let pool = store.pool().unwrap();
        let hops: String = sqlx::query_scalar(
            "SELECT sql FROM sqlite_master WHERE name = 'robots_decisions_of_redirect_hops'",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        let reason = crate::crawl::REASON_REDIRECT_DISALLOWED;
        assert!(
            hops.ends_with(&format!("WHERE reason = '{reason}'")),
            "{hops}"
        );
        assert!(SUBJECT_EVENTS.contains(&format!("d.reason = '{reason}'")));
        let p = plan(
            pool,
            SUBJECT_EVENTS,
            &[Bind::Text("http://a.test/"), Bind::Int(7)],
        )
        .await;
        assert!(!p.iter().any(|d| d.starts_with("SCAN")), "{p:#?}");
        for want in [
            ("SEARCH audit_events ", "INTEGER PRIMARY KEY (rowid=?)"),
            (
                "SEARCH audit_events ",
                "INDEX audit_events_by_subject_outside_crawl (subject=?)",
            ),
            ("SEARCH f ", "INDEX fetches_by_frontier (frontier_id=?)"),
            (
                "SEARCH d ",
                "INDEX robots_decisions_by_frontier (frontier_id=?)",
            ),
            (
                "SEARCH d ",
                "INDEX robots_decisions_of_redirect_hops (url=?)",
            ),
            ("SEARCH s ", "INDEX evidence_sets_by_page (page_url=?)"),
        ] {
            assert!(
                p.iter()
                    .any(|d| d.starts_with(want.0) && d.ends_with(want.1)),
                "{want:?} not in {p:#?}"
            );
        }
        // Each row's refs by (table, row), never every ref of a table.
        let refs = p.iter().filter(|d| d.starts_with("SEARCH r ")).count();
        assert_eq!(refs, 4, "{p:#?}");
        assert!(
            p.iter()
                .filter(|d| d.starts_with("SEARCH r "))
                .all(|d| d == "SEARCH r USING PRIMARY KEY (tbl=? AND row_id=?)"),
            "{p:#?}"
        );
    }

    /// A subject's events outside the crawl's kinds, in log order; other
    /// subjects' and the crawl's kinds are not among them.
    #[tokio::test]
    async fn a_subjects_events_outside_the_crawl_in_log_order() {
        let (_dir, store) = crate::store::probe::fresh().await;
        for (kind, subject) in [
            ("fetch", "u"),
            ("page_gone", "u"),
            ("robots.decision", "u"),
            ("answer.flag", "v"),
            ("verdict", "u"),
            ("page.check", "u"),
        ] {
            store
                .append_audit_event(1, kind, subject, &serde_json::json!({}), &[])
                .await
                .unwrap();
        }
        let got: Vec<(i64, String)> = store
            .subject_events_outside_crawl("u")
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.seq, e.kind))
            .collect();
        assert_eq!(got, [(2, "page_gone".into()), (6, "page.check".into())]);
    }

    /// The direct row hash equals the hash of the row's object (the path
    /// `audit verify` recomputes with) on rows of every column type.
    #[tokio::test]
    async fn row_hash_matches_the_object_recipe() {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect("sqlite::memory:")
            .await
            .unwrap();
        sqlx::query(
            "CREATE TABLE pages (id INTEGER PRIMARY KEY, text TEXT, text_sha256 TEXT, n INTEGER,
                 r REAL, b BLOB, z TEXT, flag BOOLEAN, \"Ä\" TEXT)",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        for (text, n, r, b, z) in [
            (
                "erased",
                Some(3i64),
                Some(0.25f64),
                Some(vec![0u8, 1, 2]),
                Some("a\"b\\c\né"),
            ),
            ("", None, None, None, None),
            ("x", Some(-1), Some(1e300), Some(vec![]), Some("")),
        ] {
            sqlx::query("INSERT INTO pages (text, text_sha256, n, r, b, z, flag, \"Ä\") VALUES (?, 'd', ?, ?, ?, ?, 1, 'ü')")
                .bind(text)
                .bind(n)
                .bind(r)
                .bind(b)
                .bind(z)
                .execute(&mut conn)
                .await
                .unwrap();
        }
        let rows = sqlx::query("SELECT rowid, * FROM pages ORDER BY rowid")
            .fetch_all(&mut conn)
            .await
            .unwrap();
        assert_eq!(rows.len(), 3);
        let mut buf = Vec::new();
        for row in rows {
            let id: i64 = row.get(0);
            let want = row_hash(&mut conn, "pages", id).await.unwrap().unwrap();
            assert_eq!(row_hash_of("pages", &row, 1, &mut buf).unwrap(), want);
            let obj = object_of("pages", &row, 1).unwrap();
            assert_eq!(want, sha256_hex(reference_canonical(&obj).as_bytes()));
            assert!(!String::from_utf8_lossy(&buf).contains("erased"));
        }
    }

    /// A row hashed from what its insert returns (`RETURNING rowid, *`)
    /// has the hash of the row read back: the values as stored, after
    /// column affinity (an integer bound to a REAL column is a real, a
    /// number bound to a TEXT column is text), with the erasable column
    /// left out, for every row of a table, whichever columns come first.
    #[tokio::test]
    async fn a_returned_row_hashes_as_the_stored_row() {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect("sqlite::memory:")
            .await
            .unwrap();
        sqlx::query(
            "CREATE TABLE pages (id INTEGER PRIMARY KEY, text TEXT, text_sha256 TEXT, r REAL,
                 t TEXT, flag BOOLEAN, b BLOB, n INTEGER)",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        let mut ctx = AuditCtx::new();
        for (r, t, n) in [(3i64, 7i64, "12"), (-1, 0, "x"), (0, 1, "3.5")] {
            let row = sqlx::query(
                "INSERT INTO pages (text, text_sha256, r, t, flag, b, n)
                 VALUES ('gone', 'd', ?, ?, 1, x'00ff', ?) RETURNING rowid, *",
            )
            .bind(r)
            .bind(t)
            .bind(n)
            .fetch_one(&mut conn)
            .await
            .unwrap();
            let id = ctx.note_row("pages", &row).unwrap();
            let stored = row_hash(&mut conn, "pages", id).await.unwrap().unwrap();
            assert_eq!(ctx.hashes.get(&("pages", id)), Some(&stored), "{r} {t} {n}");
        }
        assert!(ctx.wrote);
    }

    /// A row the crawl writer's direct connection (rusqlite) gets back
    /// from `INSERT ... RETURNING rowid, *` hashes as the stored row read
    /// back through sqlx (`row_hash`, the path `audit verify` takes): the
    /// two drivers' values go through one recipe, for every storage class
    /// and column affinity.
    #[tokio::test]
    async fn a_row_returned_to_the_direct_writer_hashes_as_the_stored_row() {
        use sqlx::Connection;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        let db = rusqlite::Connection::open(&path).unwrap();
        db.execute_batch(
            "CREATE TABLE pages (id INTEGER PRIMARY KEY, text TEXT, text_sha256 TEXT, r REAL,
                 t TEXT, flag BOOLEAN, b BLOB, n INTEGER, \"Ä\", z TEXT)",
        )
        .unwrap();
        let mut ctx = AuditCtx::new();
        let mut ids = Vec::new();
        for (r, t, n, z) in [
            (3i64, 7i64, "12", Some("a\"b\\c\né\u{1F600}")),
            (-1, 0, "x", None),
            (0, 1, "3.5", Some("")),
        ] {
            let mut st = db
                .prepare(
                    "INSERT INTO pages (text, text_sha256, r, t, flag, b, n, \"Ä\", z)
                     VALUES ('gone', 'd', ?, ?, 1, x'00ff', ?, 2.5, ?) RETURNING rowid, *",
                )
                .unwrap();
            let mut q = st.query(rusqlite::params![r, t, n, z]).unwrap();
            let row = q.next().unwrap().unwrap();
            ids.push(ctx.note_row("pages", row).unwrap());
        }
        drop(db);
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        for id in ids {
            let stored = row_hash(&mut conn, "pages", id).await.unwrap().unwrap();
            assert_eq!(ctx.hashes.get(&("pages", id)), Some(&stored), "row {id}");
        }
    }

    /// The direct writer inserts an event's refs in multi-row pieces
    /// (issue #26): an event covering more rows than the largest piece
    /// (70, with a row named twice) leaves one `audit_refs` row per
    /// distinct row, each with the hash the log holds, and the corpus
    /// verifies.
    #[tokio::test]
    async fn an_event_with_many_refs_is_indexed_once_per_row_by_the_direct_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let store = crate::store::Store::open(&path).await.unwrap();
        store.close().await;
        let db = rusqlite::Connection::open(&path).unwrap();
        db.execute_batch("BEGIN IMMEDIATE").unwrap();
        let mut ctx = AuditCtx::new();
        let mut refs: Vec<(&'static str, i64)> = Vec::new();
        for i in 0..70i64 {
            let mut st = db
                .prepare(
                    "INSERT INTO crawl_runs (started_at, byline_version, user_agent, config_json,
                         config_sha256, policy_sha256, seeds)
                     VALUES (?, 'test', 'test', '{}', '0', NULL, '[]') RETURNING rowid, *",
                )
                .unwrap();
            let mut q = st.query(rusqlite::params![100 + i]).unwrap();
            let row = q.next().unwrap().unwrap();
            refs.push(("crawl_runs", ctx.note_row("crawl_runs", row).unwrap()));
        }
        // Named twice within the first piece.
        refs.insert(5, refs[3]);
        let seq = ctx
            .append(
                &db,
                200,
                "crawl.start",
                "test",
                &serde_json::json!({}),
                &refs,
            )
            .unwrap();
        db.execute_batch("COMMIT").unwrap();
        let rows: Vec<(i64, String)> = db
            .prepare("SELECT row_id, sha256 FROM audit_refs WHERE seq = ? ORDER BY row_id")
            .unwrap()
            .query_map([seq], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        drop(db);
        assert_eq!(rows.len(), 70);
        for (id, sha) in &rows {
            assert_eq!(ctx.hashes.get(&("crawl_runs", *id)), Some(sha), "row {id}");
        }
        let store = crate::store::Store::open(&path).await.unwrap();
        let report = crate::audit::verify::verify(&store, &[]).await.unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
    }
}
