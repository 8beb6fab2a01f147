//! `byline store copy`: an SQLite corpus moved, table by table, into an
//! empty PostgreSQL one (issue #20).
//!
//! Every row keeps its id: identity columns get the SQLite values, the five
//! tables SQLite addresses by its implicit rowid get it in their explicit
//! `rowid` column, so the audit log's refs name the same rows on arrival
//! and hash the same (each value is bound as the PostgreSQL column's type,
//! and a value SQLite stored as another type than the column's is an error,
//! never a silent conversion that would change a row hash). Tables are
//! copied parents first, rows in key order, in batches, all in one
//! PostgreSQL transaction; sequences are then moved past the copied ids.
//! A target with any row in any table is refused.
//!
//! In: an SQLite store and a PostgreSQL store. Out: row counts per table.
//! Never: verification (the caller runs `audit verify` on the target) or
//! printing.

use futures_util::TryStreamExt;
use sqlx::{Row, TypeInfo, ValueRef};

use super::{Backend, Store, StoreError};

/// One value in transit: what SQLite stored, by its storage class.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl Cell {
    pub(crate) fn class(&self) -> &'static str {
        match self {
            Cell::Null => "NULL",
            Cell::Int(_) => "INTEGER",
            Cell::Real(_) => "REAL",
            Cell::Text(_) => "TEXT",
            Cell::Blob(_) => "BLOB",
        }
    }
}

/// Rows copied into one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCopied {
    pub table: String,
    pub rows: i64,
}

/// What went wrong copying.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("the source must be an SQLite corpus file, not {0}")]
    SourceNotSqlite(String),
    #[error("the target must be a PostgreSQL database (postgres://…), not {0}")]
    TargetNotPostgres(String),
    #[error(
        "the target is not empty: table {table} already holds {rows} rows (store copy only fills an empty database)"
    )]
    TargetNotEmpty { table: String, rows: i64 },
    #[error("the two schemas differ: {0} (are both corpora from this version of Byline?)")]
    Schema(String),
    #[error(
        "{table} row {row}: column {column} holds {class}, not {want} (copying it would change the row)"
    )]
    Value {
        table: String,
        row: String,
        column: String,
        class: &'static str,
        want: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for CopyError {
    fn from(e: sqlx::Error) -> Self {
        CopyError::Store(StoreError::Sqlx(e))
    }
}

/// Rows per batched INSERT (fewer for wide tables: PostgreSQL binds at
/// most 65535 parameters per statement).
const BATCH_ROWS: usize = 500;

/// Tables of the SQLite file that are data, not machinery: not SQLite's
/// own, not the migration ledger, not a full-text virtual table or its
/// shadow tables (PostgreSQL derives `passages.tsv` itself).
async fn sqlite_tables(conn: &mut sqlx::SqliteConnection) -> Result<Vec<String>, CopyError> {
    let all: Vec<(String, String)> =
        sqlx::query_as("SELECT name, coalesce(sql, '') FROM sqlite_master WHERE type = 'table'")
            .fetch_all(&mut *conn)
            .await?;
    let virtuals: Vec<&str> = all
        .iter()
        .filter(|(_, sql)| sql.to_ascii_uppercase().starts_with("CREATE VIRTUAL TABLE"))
        .map(|(n, _)| n.as_str())
        .collect();
    let mut out: Vec<String> = all
        .iter()
        .map(|(n, _)| n.clone())
        .filter(|n| {
            !n.starts_with("sqlite_")
                && !n.starts_with("_sqlx")
                && !virtuals
                    .iter()
                    .any(|v| n == v || n.starts_with(&format!("{v}_")))
        })
        .collect();
    out.sort();
    Ok(out)
}

async fn sqlite_columns(
    conn: &mut sqlx::SqliteConnection,
    table: &str,
) -> Result<Vec<String>, CopyError> {
    Ok(
        sqlx::query_scalar("SELECT name FROM pragma_table_info(?) ORDER BY cid")
            .bind(table)
            .fetch_all(&mut *conn)
            .await?,
    )
}

fn cell_of(row: &sqlx::sqlite::SqliteRow, i: usize) -> Result<Cell, sqlx::Error> {
    let raw = row.try_get_raw(i)?;
    if raw.is_null() {
        return Ok(Cell::Null);
    }
    let ty = raw.type_info().name().to_string();
    Ok(match ty.as_str() {
        "INTEGER" | "BOOLEAN" => Cell::Int(row.try_get(i)?),
        "REAL" => Cell::Real(row.try_get(i)?),
        "BLOB" => Cell::Blob(row.try_get(i)?),
        _ => Cell::Text(row.try_get(i)?),
    })
}

/// Copies every table of `from` (SQLite) into `to` (PostgreSQL, schema
/// applied, no rows). `progress` hears each table when it is done.
pub async fn copy_to_postgres(
    from: &Store,
    to: &Store,
    mut progress: impl FnMut(&TableCopied),
) -> Result<Vec<TableCopied>, CopyError> {
    let Backend::Sqlite(src) = from.backend() else {
        return Err(CopyError::SourceNotSqlite("a PostgreSQL database".into()));
    };
    let Some(dst) = to.pg() else {
        return Err(CopyError::TargetNotPostgres("an SQLite file".into()));
    };
    let targets = super::pg::copy::tables(dst).await?;
    // The whole copy reads one snapshot of the source (a read-only
    // transaction, rolled back when dropped).
    let mut snapshot = src.begin().await?;
    copy_tables(&mut snapshot, dst, &targets, &mut progress).await
}

async fn copy_tables(
    conn: &mut sqlx::SqliteConnection,
    dst: &sqlx::PgPool,
    targets: &[super::pg::copy::PgTable],
    progress: &mut impl FnMut(&TableCopied),
) -> Result<Vec<TableCopied>, CopyError> {
    // The same tables and columns on both sides (PostgreSQL's own
    // `rowid` and generated `tsv` aside).
    let sources = sqlite_tables(&mut *conn).await?;
    for s in &sources {
        if !targets.iter().any(|t| &t.name == s) {
            return Err(CopyError::Schema(format!(
                "table {s} has no PostgreSQL counterpart"
            )));
        }
    }
    // Tables and columns PostgreSQL has alone (the shared crawl state:
    // origins' politeness, frontier leases) stay empty or at their
    // defaults; every SQLite column must have a PostgreSQL one.
    let mut columns: std::collections::HashMap<String, Vec<String>> = Default::default();
    for t in targets {
        if !sources.contains(&t.name) {
            continue;
        }
        let have = sqlite_columns(&mut *conn, &t.name).await?;
        for c in &have {
            if !t.data_columns().any(|p| &p.name == c) {
                return Err(CopyError::Schema(format!(
                    "column {}.{c} has no PostgreSQL counterpart",
                    t.name
                )));
            }
        }
        if let Some(c) = t
            .data_columns()
            .find(|p| !p.optional && !have.contains(&p.name))
        {
            return Err(CopyError::Schema(format!(
                "column {}.{} is missing from the SQLite corpus",
                t.name, c.name
            )));
        }
        columns.insert(t.name.clone(), have);
    }
    if let Some((table, rows)) = super::pg::copy::first_nonempty(dst, targets).await? {
        return Err(CopyError::TargetNotEmpty { table, rows });
    }

    let mut tx = dst.begin().await?;
    let mut out = Vec::with_capacity(targets.len());
    for t in targets {
        let Some(have) = columns.get(&t.name) else {
            continue;
        };
        let data: Vec<&super::pg::copy::PgColumn> = t
            .data_columns()
            .filter(|c| have.contains(&c.name))
            .collect();
        let with_rowid = t.has_rowid();
        let mut cols: Vec<String> = Vec::with_capacity(data.len() + 1);
        if with_rowid {
            cols.push("rowid".into());
        }
        cols.extend(data.iter().map(|c| format!("\"{}\"", c.name)));
        let order = if with_rowid {
            "ORDER BY rowid"
        } else if data.iter().any(|c| c.name == "id") {
            "ORDER BY id"
        } else {
            ""
        };
        // Names come from the PostgreSQL catalogue and were matched
        // against SQLite's above: plain identifiers of Byline's schema.
        let sql = format!("SELECT {} FROM \"{}\" {order}", cols.join(", "), t.name);
        let target_cols: Vec<&super::pg::copy::PgColumn> = if with_rowid {
            std::iter::once(t.rowid_column())
                .flatten()
                .chain(data.iter().copied())
                .collect()
        } else {
            data.clone()
        };
        let per_batch = BATCH_ROWS.min(60_000 / target_cols.len().max(1)).max(1);
        let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch(&mut *conn);
        let mut batch: Vec<Vec<Cell>> = Vec::with_capacity(per_batch);
        let mut n = 0i64;
        while let Some(row) = rows.try_next().await? {
            let mut cells = Vec::with_capacity(target_cols.len());
            for i in 0..target_cols.len() {
                cells.push(cell_of(&row, i)?);
            }
            batch.push(cells);
            if batch.len() >= per_batch {
                super::pg::copy::insert_rows(&mut tx, &t.name, &target_cols, &batch).await?;
                n += batch.len() as i64;
                batch.clear();
            }
        }
        if !batch.is_empty() {
            super::pg::copy::insert_rows(&mut tx, &t.name, &target_cols, &batch).await?;
            n += batch.len() as i64;
        }
        drop(rows);
        let done = TableCopied {
            table: t.name.clone(),
            rows: n,
        };
        progress(&done);
        out.push(done);
    }
    super::pg::copy::move_sequences(&mut tx, targets).await?;
    tx.commit().await?;
    Ok(out)
}

/// Row counts of every table of a store (for comparing a copy with its
/// source): `(table, rows)` sorted by table.
pub async fn table_counts(store: &Store) -> Result<Vec<(String, i64)>, CopyError> {
    if let Some(pg) = store.pg() {
        let tables = super::pg::copy::tables(pg).await?;
        return Ok(super::pg::copy::counts(pg, &tables).await?);
    }
    let mut conn = store.pool()?.acquire().await?;
    let mut out = Vec::new();
    for t in sqlite_tables(&mut conn).await? {
        // `t` is a table name read from sqlite_master, quoted.
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM \"{}\"",
            t.replace('"', "\"\"")
        )))
        .fetch_one(&mut *conn)
        .await?;
        out.push((t, n));
    }
    Ok(out)
}
