//! `audit verify` on PostgreSQL: the reads of [`crate::store::audit::AuditReader`]
//! against PostgreSQL, in one read-only REPEATABLE READ transaction, so a
//! log that live writers (crawl workers, service replicas) keep appending
//! to is verified as of one snapshot: every event it sees has its rows.
//!
//! Row hashes are the appender's ([`super::audit::row_hash`]): rows read by
//! their key column, PostgreSQL-only columns (`rowid`, `tsv`) left out.
//! Where SQLite has the FTS5 table `passages_fts`, PostgreSQL has the
//! generated column `passages.tsv`: "the full-text index exists" is that
//! column, and "it matches the passages" is every stored `tsv` equal to
//! its expression computed now.

use std::collections::HashMap;

use sqlx::postgres::{PgPool, Postgres};
use sqlx::{FromRow, Transaction};

use crate::store::StoreError;
use crate::store::audit::{
    AuditEvent, EventColumns, EventFilter, PagePassages, RawEvent, RefRow, event_from_columns,
    sha256_hex, valid_table,
};

/// The reader's snapshot.
pub(crate) struct PgAuditReader {
    tx: Transaction<'static, Postgres>,
}

/// The newest event's `(seq, sha256)`.
pub(crate) async fn audit_head(pool: &PgPool) -> Result<Option<(i64, String)>, StoreError> {
    Ok(
        sqlx::query_as("SELECT seq, sha256 FROM audit_events ORDER BY seq DESC LIMIT 1")
            .fetch_optional(pool)
            .await?,
    )
}

/// Events in log order, optionally only one subject and/or kind.
pub(crate) async fn audit_events(
    pool: &PgPool,
    f: &EventFilter,
) -> Result<Vec<AuditEvent>, StoreError> {
    let rows: Vec<EventColumns> = sqlx::query_as(
        "SELECT seq, time, kind, subject, payload, refs, content_sha256, prev_sha256, sha256
         FROM audit_events WHERE ($1::text IS NULL OR subject = $1) AND ($2::text IS NULL OR kind = $2)
         ORDER BY seq",
    )
    .bind(&f.subject)
    .bind(&f.kind)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(event_from_columns).collect()
}

/// [`crate::store::Store::subject_events_outside_crawl`] on PostgreSQL.
pub(crate) async fn subject_events_outside_crawl(
    pool: &PgPool,
    subject: &str,
) -> Result<Vec<AuditEvent>, StoreError> {
    let rows: Vec<EventColumns> = sqlx::query_as(crate::store::audit::SUBJECT_EVENTS_OUTSIDE_CRAWL)
        .bind(subject)
        .fetch_all(pool)
        .await?;
    rows.into_iter().map(event_from_columns).collect()
}

/// Event counts by kind.
pub(crate) async fn audit_kind_counts(pool: &PgPool) -> Result<Vec<(String, i64)>, StoreError> {
    Ok(
        sqlx::query_as("SELECT kind, count(*) FROM audit_events GROUP BY kind ORDER BY kind")
            .fetch_all(pool)
            .await?,
    )
}

#[derive(FromRow)]
struct RefRowPg {
    seq: i64,
    tbl: String,
    row_id: i64,
    sha256: String,
}

#[derive(FromRow)]
struct PageTextRow {
    id: i64,
    text: String,
    text_sha256: String,
    forgotten: bool,
    first_seq: Option<i64>,
}

#[derive(FromRow)]
struct PageRow {
    id: i64,
    text: String,
    title: String,
    site_name: Option<String>,
    nosnippet_spans: String,
    logged: bool,
}

#[derive(FromRow)]
struct PassageRow {
    id: i64,
    ordinal: i64,
    start_char: i64,
    end_char: i64,
    text: String,
    title: String,
}

/// The expression `passages.tsv` is generated from (the schema's).
const TSV_EXPR: &str = "setweight(to_tsvector('english', title), 'A') || \
                        setweight(to_tsvector('english', text), 'B')";

impl PgAuditReader {
    pub(crate) async fn begin(pool: &PgPool) -> Result<PgAuditReader, StoreError> {
        let mut tx = pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        Ok(PgAuditReader { tx })
    }

    pub(crate) async fn table_exists(&mut self, table: &str) -> Result<bool, StoreError> {
        if table == "passages_fts" {
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name = 'passages'
                   AND column_name = 'tsv'",
            )
            .fetch_one(&mut *self.tx)
            .await?;
            return Ok(n > 0);
        }
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM information_schema.tables
             WHERE table_schema = current_schema() AND table_name = $1",
        )
        .bind(table)
        .fetch_one(&mut *self.tx)
        .await?;
        Ok(n > 0)
    }

    pub(crate) async fn events_after(
        &mut self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<RawEvent>, StoreError> {
        let rows: Vec<EventColumns> = sqlx::query_as(
            "SELECT seq, time, kind, subject, payload, refs, content_sha256, prev_sha256, sha256
             FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&mut *self.tx)
        .await?;
        Ok(rows
            .into_iter()
            .map(|c| RawEvent {
                seq: c.seq,
                sha256: Some(c.sha256.clone()),
                event: event_from_columns(c).map_err(|e| e.to_string()),
            })
            .collect())
    }

    pub(crate) async fn refs_between(
        &mut self,
        lo: i64,
        hi: i64,
    ) -> Result<Vec<RefRow>, StoreError> {
        let rows: Vec<RefRowPg> = sqlx::query_as(
            "SELECT seq, tbl, row_id, sha256 FROM audit_refs WHERE seq BETWEEN $1 AND $2",
        )
        .bind(lo)
        .bind(hi)
        .fetch_all(&mut *self.tx)
        .await?;
        let mut out: Vec<RefRow> = rows
            .into_iter()
            .map(|r| RefRow {
                seq: r.seq,
                table: r.tbl,
                id: r.row_id,
                sha256: r.sha256,
            })
            .collect();
        out.sort();
        Ok(out)
    }

    pub(crate) async fn multiply_covered(
        &mut self,
    ) -> Result<HashMap<(String, i64), i64>, StoreError> {
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT tbl, row_id, max(seq) FROM audit_refs GROUP BY tbl, row_id HAVING count(*) > 1",
        )
        .fetch_all(&mut *self.tx)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(t, id, seq)| ((t, id), seq))
            .collect())
    }

    pub(crate) async fn row_hash(
        &mut self,
        table: &str,
        id: i64,
    ) -> Result<Option<String>, StoreError> {
        super::audit::row_hash(&mut self.tx, table, id).await
    }

    pub(crate) async fn unlogged(&mut self, table: &str) -> Result<Vec<i64>, StoreError> {
        valid_table(table)?;
        let key = super::audit::key_column(table);
        // The table name is checked above to be a plain identifier; the key
        // column is one of a fixed set.
        let sql = format!(
            "SELECT t.{key} FROM {table} t WHERE NOT EXISTS
               (SELECT 1 FROM audit_refs r WHERE r.tbl = '{table}' AND r.row_id = t.{key})
             ORDER BY t.{key}"
        );
        Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_all(&mut *self.tx)
            .await?)
    }

    pub(crate) async fn ref_seqs(&mut self, table: &str, id: i64) -> Result<Vec<i64>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT seq FROM audit_refs WHERE tbl = $1 AND row_id = $2")
                .bind(table)
                .bind(id)
                .fetch_all(&mut *self.tx)
                .await?,
        )
    }

    pub(crate) async fn answer_json_sha256(
        &mut self,
        answer_id: i64,
    ) -> Result<Option<Result<String, String>>, StoreError> {
        let json: Option<String> = sqlx::query_scalar("SELECT json FROM answers WHERE id = $1")
            .bind(answer_id)
            .fetch_optional(&mut *self.tx)
            .await?;
        Ok(json.map(|j| Ok(sha256_hex(j.as_bytes()))))
    }

    pub(crate) async fn page_text_problems(
        &mut self,
    ) -> Result<Vec<(i64, i64, String)>, StoreError> {
        let pages: Vec<PageTextRow> = sqlx::query_as(
            "SELECT p.id, p.text, p.text_sha256,
                    EXISTS (SELECT 1 FROM audit_events a WHERE a.kind = 'forget' AND a.subject = p.url) AS forgotten,
                    (SELECT min(seq) FROM audit_refs r WHERE r.tbl = 'pages' AND r.row_id = p.id) AS first_seq
             FROM pages p ORDER BY p.id",
        )
        .fetch_all(&mut *self.tx)
        .await?;
        let mut out = Vec::new();
        for p in pages {
            if p.forgotten && p.text.is_empty() {
                continue;
            }
            if sha256_hex(p.text.as_bytes()) != p.text_sha256 {
                out.push((
                    p.id,
                    p.first_seq.unwrap_or(0),
                    "text does not match its text_sha256".into(),
                ));
            }
        }
        Ok(out)
    }

    pub(crate) async fn orphan_passages(&mut self) -> Result<Vec<(i64, i64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT ps.id, ps.page_id FROM passages ps
             WHERE NOT EXISTS (SELECT 1 FROM pages p WHERE p.id = ps.page_id) ORDER BY ps.id",
        )
        .fetch_all(&mut *self.tx)
        .await?)
    }

    pub(crate) async fn pages_with_passages(
        &mut self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<PagePassages>, StoreError> {
        let pages: Vec<PageRow> = sqlx::query_as(
            "SELECT p.id, p.text, coalesce(p.title, '') AS title, p.site_name, p.nosnippet_spans,
                    EXISTS (SELECT 1 FROM audit_refs r WHERE r.tbl = 'pages' AND r.row_id = p.id) AS logged
             FROM pages p
             WHERE p.id > $1 AND EXISTS (SELECT 1 FROM passages ps WHERE ps.page_id = p.id
                                         AND ps.text_sha256 = p.text_sha256)
             ORDER BY p.id LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&mut *self.tx)
        .await?;
        let mut out = Vec::with_capacity(pages.len());
        for p in pages {
            let spans: Vec<[usize; 2]> =
                serde_json::from_str(&p.nosnippet_spans).unwrap_or_default();
            let rows: Vec<PassageRow> = sqlx::query_as(
                "SELECT ps.id, ps.ordinal, ps.start_char, ps.end_char, ps.text, ps.title FROM passages ps
                 JOIN pages p ON p.id = ps.page_id AND p.text_sha256 = ps.text_sha256
                 WHERE ps.page_id = $1 ORDER BY ps.ordinal, ps.id",
            )
            .bind(p.id)
            .fetch_all(&mut *self.tx)
            .await?;
            out.push(PagePassages {
                page_id: p.id,
                logged: p.logged,
                text: Some(p.text),
                title: p.title,
                site_name: p.site_name,
                nosnippet: spans.into_iter().map(|[a, b]| (a, b)).collect(),
                passages: rows
                    .into_iter()
                    .map(|r| {
                        (
                            r.id,
                            r.ordinal,
                            r.start_char,
                            r.end_char,
                            Some(r.text),
                            Some(r.title),
                        )
                    })
                    .collect(),
            });
        }
        Ok(out)
    }

    pub(crate) async fn fts_problem(&mut self) -> Result<Option<String>, StoreError> {
        let sql = format!("SELECT count(*) FROM passages WHERE tsv IS DISTINCT FROM ({TSV_EXPR})");
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&mut *self.tx)
            .await?;
        Ok((n > 0).then(|| format!("{n} passages have a tsv that is not their title and text's")))
    }

    pub(crate) async fn event_sha256(&mut self, seq: i64) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT sha256 FROM audit_events WHERE seq = $1")
                .bind(seq)
                .fetch_optional(&mut *self.tx)
                .await?,
        )
    }

    pub(crate) async fn event_with_sha256(
        &mut self,
        sha256: &str,
    ) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT seq FROM audit_events WHERE sha256 = $1 ORDER BY seq LIMIT 1",
        )
        .bind(sha256)
        .fetch_optional(&mut *self.tx)
        .await?)
    }
}
