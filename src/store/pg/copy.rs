//! The PostgreSQL side of `store copy` (see [`crate::store::copy`]): the
//! schema's tables in foreign-key order, batched inserts of the copied
//! rows bound as each column's type, and the sequences moved past them.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::postgres::{PgPool, Postgres};
use sqlx::{FromRow, Transaction};

use crate::store::StoreError;
use crate::store::copy::{Cell, CopyError};

/// Columns PostgreSQL has and SQLite does not: the explicit rowid of the
/// tables SQLite addresses by its implicit one, and generated columns.
const ROWID: &str = "rowid";

/// A column of a target table.
#[derive(Debug, Clone, FromRow)]
pub(crate) struct PgColumn {
    pub table_name: String,
    pub name: String,
    /// `information_schema.columns.data_type` (`bigint`, `text`, …).
    pub data_type: String,
    pub generated: bool,
    pub identity: bool,
    /// Nullable or with a default: a PostgreSQL-only column of this kind
    /// (e.g. a crawl lease) is left to it when SQLite has no such column.
    pub optional: bool,
}

/// A table of the target schema.
#[derive(Debug, Clone)]
pub(crate) struct PgTable {
    pub name: String,
    pub columns: Vec<PgColumn>,
}

impl PgTable {
    /// The columns SQLite has too (not generated, not `rowid`).
    pub(crate) fn data_columns(&self) -> impl Iterator<Item = &PgColumn> {
        self.columns
            .iter()
            .filter(|c| !c.generated && c.name != ROWID)
    }

    pub(crate) fn has_rowid(&self) -> bool {
        self.rowid_column().is_some()
    }

    pub(crate) fn rowid_column(&self) -> Option<&PgColumn> {
        self.columns.iter().find(|c| c.name == ROWID)
    }
}

/// Every base table of Byline's schema (not the migration ledger), parents
/// before the tables that reference them.
pub(crate) async fn tables(pool: &PgPool) -> Result<Vec<PgTable>, StoreError> {
    let cols: Vec<PgColumn> = sqlx::query_as(
        "SELECT c.table_name::text AS table_name, c.column_name::text AS name,
                c.data_type::text AS data_type,
                (c.is_generated::text = 'ALWAYS') AS generated,
                (c.is_identity::text = 'YES') AS identity,
                (c.is_nullable::text = 'YES' OR c.column_default IS NOT NULL) AS optional
         FROM information_schema.columns c
         JOIN information_schema.tables t
           ON t.table_schema = c.table_schema AND t.table_name = c.table_name
         WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
           AND c.table_name::text <> '_sqlx_migrations'
         ORDER BY c.table_name, c.ordinal_position",
    )
    .fetch_all(pool)
    .await?;
    let mut by_table: BTreeMap<String, Vec<PgColumn>> = BTreeMap::new();
    for c in cols {
        by_table.entry(c.table_name.clone()).or_default().push(c);
    }
    let edges: Vec<(String, String)> = sqlx::query_as(
        "SELECT conrelid::regclass::text, confrelid::regclass::text FROM pg_constraint
         WHERE contype = 'f' AND connamespace = current_schema()::regnamespace",
    )
    .fetch_all(pool)
    .await?;
    // Kahn's algorithm, alphabetical among the ready ones (a stable order).
    let mut parents: BTreeMap<&str, BTreeSet<&str>> = by_table
        .keys()
        .map(|t| (t.as_str(), BTreeSet::new()))
        .collect();
    for (child, parent) in &edges {
        if child != parent && by_table.contains_key(parent) {
            if let Some(p) = parents.get_mut(child.as_str()) {
                p.insert(parent.as_str());
            }
        }
    }
    let mut order: Vec<String> = Vec::with_capacity(by_table.len());
    while !parents.is_empty() {
        let ready: Vec<&str> = parents
            .iter()
            .filter(|(_, ps)| ps.is_empty())
            .map(|(t, _)| *t)
            .collect();
        if ready.is_empty() {
            return Err(StoreError::Corrupt {
                table: "pg_constraint",
                column: "confrelid",
                detail: format!(
                    "foreign keys form a cycle among {:?}",
                    parents.keys().collect::<Vec<_>>()
                ),
            });
        }
        for t in ready {
            parents.remove(t);
            for ps in parents.values_mut() {
                ps.remove(t);
            }
            order.push(t.to_string());
        }
    }
    Ok(order
        .into_iter()
        .map(|name| PgTable {
            columns: by_table.remove(&name).unwrap_or_default(),
            name,
        })
        .collect())
}

/// The first table holding any row, with its count.
pub(crate) async fn first_nonempty(
    pool: &PgPool,
    tables: &[PgTable],
) -> Result<Option<(String, i64)>, StoreError> {
    for (table, n) in counts(pool, tables).await? {
        if n > 0 {
            return Ok(Some((table, n)));
        }
    }
    Ok(None)
}

/// Row counts per table, sorted by table name.
pub(crate) async fn counts(
    pool: &PgPool,
    tables: &[PgTable],
) -> Result<Vec<(String, i64)>, StoreError> {
    let mut out = Vec::with_capacity(tables.len());
    for t in tables {
        // Names come from the catalogue; quoted.
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM \"{}\"",
            t.name.replace('"', "\"\"")
        )))
        .fetch_one(pool)
        .await?;
        out.push((t.name.clone(), n));
    }
    out.sort();
    Ok(out)
}

/// The key of a row for messages: its first value.
fn row_name(cells: &[Cell]) -> String {
    match cells.first() {
        Some(Cell::Int(i)) => i.to_string(),
        Some(Cell::Text(t)) => format!("{t:?}"),
        _ => "?".into(),
    }
}

/// Inserts `rows` (values in `cols` order) into `table` in one statement.
pub(crate) async fn insert_rows(
    tx: &mut Transaction<'static, Postgres>,
    table: &str,
    cols: &[&PgColumn],
    rows: &[Vec<Cell>],
) -> Result<(), CopyError> {
    let names: Vec<String> = cols
        .iter()
        .map(|c| format!("\"{}\"", c.name.replace('"', "\"\"")))
        .collect();
    let mut values = Vec::with_capacity(rows.len());
    let mut k = 0usize;
    for _ in rows {
        let ph: Vec<String> = (0..cols.len())
            .map(|_| {
                k += 1;
                format!("${k}")
            })
            .collect();
        values.push(format!("({})", ph.join(", ")));
    }
    // Table and column names come from the catalogue, quoted.
    let sql = format!(
        "INSERT INTO \"{}\" ({}) OVERRIDING SYSTEM VALUE VALUES {}",
        table.replace('"', "\"\""),
        names.join(", "),
        values.join(", ")
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for row in rows {
        for (c, cell) in cols.iter().zip(row) {
            let bad = || CopyError::Value {
                table: table.to_string(),
                row: row_name(row),
                column: c.name.clone(),
                class: cell.class(),
                want: c.data_type.clone(),
            };
            q = match (c.data_type.as_str(), cell) {
                ("bigint", Cell::Int(v)) => q.bind(*v),
                ("bigint", Cell::Null) => q.bind(None::<i64>),
                ("double precision", Cell::Real(v)) => q.bind(*v),
                // SQLite keeps a whole REAL as an integer on disk only
                // when asked; a stored INTEGER in a REAL column reads back
                // as INTEGER and hashes as one, so it is refused below.
                ("double precision", Cell::Null) => q.bind(None::<f64>),
                ("bytea", Cell::Blob(v)) => q.bind(v.clone()),
                ("bytea", Cell::Null) => q.bind(None::<Vec<u8>>),
                ("text", Cell::Text(v)) => q.bind(v.clone()),
                ("text", Cell::Null) => q.bind(None::<String>),
                _ => return Err(bad()),
            };
        }
    }
    q.execute(&mut **tx).await?;
    Ok(())
}

/// Moves every identity sequence past the largest copied value.
pub(crate) async fn move_sequences(
    tx: &mut Transaction<'static, Postgres>,
    tables: &[PgTable],
) -> Result<(), StoreError> {
    for t in tables {
        for c in t.columns.iter().filter(|c| c.identity) {
            let table = t.name.replace('"', "\"\"");
            let col = c.name.replace('"', "\"\"");
            // Names from the catalogue, quoted; setval only when rows exist.
            let sql = format!(
                "SELECT setval(pg_get_serial_sequence($1, $2), m)
                 FROM (SELECT max(\"{col}\") AS m FROM \"{table}\") x WHERE m IS NOT NULL"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(format!("\"{table}\""))
                .bind(&c.name)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}
