//! Store stage: the corpus database. Every SQL statement in Byline lives
//! under this module, behind small typed functions.
//!
//! Two backends (issue #20): SQLite, the embedded default (`--db FILE`,
//! migrations in `migrations/`), and PostgreSQL for crawls and services
//! spread over many machines (`--db postgres://…`, migrations in
//! `migrations_pg/`, statements in [`pg`]). [`Store`] is the interface both
//! implement: each function matches on the backend and runs that backend's
//! statement. A function not yet written for PostgreSQL answers
//! [`StoreError::Unsupported`], never a wrong result.
//!
//! In: typed records from the other stages. Out: typed rows. Never: HTTP,
//! policy decisions, printing.

/// Runs a statement whose SQL text is the same on both backends (portable
/// SQL with `$n` placeholders, which sqlx's SQLite driver binds by number
/// too), so the statement, its binds and its typed row (`FromRow`) are
/// written once instead of once per backend. Two forms:
/// - `on_pool!(store, pool => body)` evaluates `body` with `pool` bound to
///   the store's pool, compiled once per backend;
/// - `on_pool!(store, fetch_method, query)` runs `query.fetch_method(pool)
///   .await?` on it.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store.backend() {
            $crate::store::Backend::Sqlite($pool) => $body,
            $crate::store::Backend::Postgres($pool) => $body,
        }
    };
    ($store:expr, $how:ident, $q:expr) => {
        match $store.backend() {
            $crate::store::Backend::Sqlite(p) => $q.$how(p).await?,
            $crate::store::Backend::Postgres(p) => $q.$how(p).await?,
        }
    };
}

/// A scalar subquery: the id of the newest verdict that the audit log
/// vouches for, of purpose `$purpose` (an SQL expression), of the page
/// whose URL satisfies `ws.page_url $url` (e.g. `"= v.page_url"`).
///
/// Verdicts are reached through their evidence set: `verdicts` has no
/// index by URL (issue #26: `verdicts_by_page` cost every page a write at
/// a random place of it), only `verdicts_by_set (set_id, purpose, id)`,
/// which grows in crawl order. A verdict's `page_url` is its set's (both
/// are written from one consent record); the subquery checks it anyway.
macro_rules! newest_verdict_sql {
    ($url:literal, $purpose:literal) => {
        concat!(
            "(SELECT MAX(w.id) FROM evidence_sets ws JOIN verdicts w ON w.set_id = ws.id
               WHERE ws.page_url ",
            $url,
            " AND w.page_url = ws.page_url AND w.purpose = ",
            $purpose,
            "
                 AND EXISTS (SELECT 1 FROM audit_refs wr WHERE wr.tbl = 'verdicts' AND wr.row_id = w.id))"
        )
    };
}

/// The verdict columns of `v`, reached through its evidence set `s` (see
/// `newest_verdict_sql!`), under a condition on `s` or `v`, then the rest.
/// `CROSS JOIN` keeps `s` the outer loop on SQLite (the planner may not
/// reorder it), so the sets' URL index gives the rows in URL order.
macro_rules! verdicts_of_sets_sql {
    ($($rest:tt)*) => {
        concat!(
            "SELECT v.id, v.set_id, v.page_url, v.purpose, v.decision, v.conditions, v.reasons,
                    v.evidence_ids, v.policy_id, v.policy_sha256, v.decided_at
             FROM evidence_sets s CROSS JOIN verdicts v
             WHERE v.set_id = s.id AND v.page_url = s.page_url AND ",
            $($rest)*
        )
    };
}

/// A scalar subquery: the id of the newest evidence set the audit log
/// vouches for of the page of set `s` (the sets' URL index finds it). The
/// whole-corpus readers of the newest set per page share it.
macro_rules! newest_set_sql {
    () => {
        "(SELECT MAX(t.id) FROM evidence_sets t WHERE t.page_url = s.page_url
           AND EXISTS (SELECT 1 FROM audit_refs ar WHERE ar.tbl = 'evidence_sets' AND ar.row_id = t.id))"
    };
}

/// sqlx's alerts for a statement or a connection acquire past its
/// threshold (one and two seconds) are warnings by default. The user can do
/// nothing about them (a 100,000-page corpus has statements that take
/// seconds; a loaded machine or another writer slows any statement), and a
/// warning reaches stderr by default, so they are debug lines here: `-vv`
/// shows them.
const SLOW_LOG_LEVEL: log::LevelFilter = log::LevelFilter::Debug;

/// `opts` with sqlx's slow-statement alert at [`SLOW_LOG_LEVEL`].
fn quiet_logs<O: sqlx::ConnectOptions>(opts: O) -> O {
    opts.log_slow_statements(SLOW_LOG_LEVEL, Duration::from_secs(1))
}

pub mod answers;
pub mod audit;
pub mod copy;
pub mod crawl;
mod direct;
mod error;
pub mod evidence;
pub mod export_capture;
mod forget;
pub mod frontier;
pub mod lock;
pub mod model_registry;
pub mod passages;
pub mod pg;
#[cfg(test)]
mod probe;
pub mod provenance;
pub mod raw;
pub mod refresh;
pub mod revocations;
mod tx;
pub mod verdicts;
pub mod writer;

pub use error::StoreError;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::postgres::PgPool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

/// An open corpus: a pool of connections to one SQLite file, or to one
/// PostgreSQL database, with that backend's migrations applied.
#[derive(Clone, Debug)]
pub struct Store {
    backend: Backend,
    /// The crawl worker this handle commits for ([`Store::for_worker`]):
    /// on PostgreSQL a crawl outcome is committed only while this worker
    /// still holds the entry's lease.
    worker: Option<std::sync::Arc<str>>,
}

/// The database behind a [`Store`].
#[derive(Clone, Debug)]
pub(crate) enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Which backend a `--db` value names: a `postgres://` or `postgresql://`
/// URL is PostgreSQL, anything else is the path of an SQLite file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location<'a> {
    Sqlite(&'a Path),
    Postgres(&'a str),
}

impl<'a> Location<'a> {
    pub fn of(db: &'a Path) -> Location<'a> {
        match db.to_str() {
            Some(s) if s.starts_with("postgres://") || s.starts_with("postgresql://") => {
                Location::Postgres(s)
            }
            _ => Location::Sqlite(db),
        }
    }
}

/// A `--db` value as it may be printed: a PostgreSQL URL loses its
/// password (`postgres://user:***@host/db`).
pub fn display_db(db: &Path) -> String {
    match Location::of(db) {
        Location::Sqlite(p) => p.display().to_string(),
        Location::Postgres(url) => pg::redact_url(url),
    }
}

/// The crawl connection's SQLite page cache, in KiB (issue #26). A batch
/// of finished pages (up to 64 by default) touches about a thousand b-tree
/// pages; SQLite's default 2 MiB cache (500 pages) is smaller than that,
/// so a batch evicted pages that its next statements read back from the
/// file. In the 100,000-page benchmark the crawler read 30.3 GB with 2 MiB
/// and 10.9 GB with 4 MiB, and used 1.005 and 0.804 ms CPU per page (the
/// per-tenth CPU rose by a fifth through the run with 2 MiB, and stayed
/// flat with 4 MiB). 8 MiB read less still but used no less CPU, and put
/// the two manuals' crawl at 57-60 MiB peak memory (52-54 with 4 MiB).
/// Only the crawl's one connection has it; readers keep the default.
pub const CRAWL_CACHE_KIB: u32 = 4 * 1024;

/// WAL pages after which the crawl connection checkpoints (64 MiB at
/// 4 KiB; other connections: [`WAL_CHECKPOINT_PAGES`]). A batch rewrites
/// the same hot pages (each table's last leaf, each origin's queue in the
/// frontier indexes), and a checkpoint copies a page once however many
/// batches wrote it since the last one: in the 100,000-page benchmark the
/// crawler wrote 12.9 GB instead of 14.2-14.3 GB and used 0.82 instead of
/// 0.90-0.96 ms CPU per page (two runs each, with an 8 MiB page cache).
/// The WAL file grows to this size while a crawl runs.
pub const CRAWL_WAL_CHECKPOINT_PAGES: u32 = 16_000;

/// WAL pages after which any other connection checkpoints (16 MiB;
/// SQLite's default is 1000).
pub const WAL_CHECKPOINT_PAGES: u32 = 4_000;

impl Store {
    /// Opens (creating if missing) the corpus at `db` and applies every
    /// pending migration. SQLite: WAL and foreign keys on. PostgreSQL: the
    /// database must exist; its schema is created on first use.
    pub async fn open(db: &Path) -> Result<Store, StoreError> {
        match Location::of(db) {
            Location::Sqlite(path) => Store::connect(path, true, 4, false).await,
            Location::Postgres(url) => pg::connect(url, true).await,
        }
    }

    /// [`Store::open`] for a crawl. On SQLite the store has a single
    /// connection: the crawl's writes (the group-commit writer's batches,
    /// frontier claims, robots records) and its reads queue for it in
    /// order, instead of several connections taking turns at the database's
    /// one write lock, where a blocked writer sleeps in SQLite's busy
    /// handler and every commit by one connection discards the others'
    /// page caches. That connection's page cache is [`CRAWL_CACHE_KIB`] and
    /// it checkpoints every [`CRAWL_WAL_CHECKPOINT_PAGES`].
    /// PostgreSQL is opened as by [`Store::open`].
    pub async fn open_for_crawl(db: &Path) -> Result<Store, StoreError> {
        match Location::of(db) {
            Location::Sqlite(path) => Store::connect(path, true, 1, true).await,
            Location::Postgres(url) => pg::connect(url, true).await,
        }
    }

    /// Opens the corpus at `db` like [`Store::open`], but never creates
    /// one: a missing file (or a PostgreSQL database without Byline's
    /// schema) is [`StoreError::Missing`]. For every command that reads a
    /// corpus, so a mistyped `--db` is an error rather than an empty corpus.
    pub async fn open_existing(db: &Path) -> Result<Store, StoreError> {
        let path = match Location::of(db) {
            Location::Sqlite(path) => path,
            Location::Postgres(url) => return pg::connect(url, false).await,
        };
        if !path.exists() {
            return Err(StoreError::Missing {
                path: path.display().to_string(),
            });
        }
        Store::connect(path, false, 4, false).await
    }

    /// "sqlite" or "postgres".
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    pub(crate) fn backend(&self) -> &Backend {
        &self.backend
    }

    /// This corpus as crawl worker `worker` commits to it: on PostgreSQL,
    /// [`Store::crawl_complete`] (and the group-commit writer) record an
    /// entry's outcome only while `worker` holds the entry's lease; a late
    /// result (the lease expired and another worker re-claimed the URL) is
    /// dropped and reported as [`crawl::Completed::lease_lost`]. SQLite
    /// has one crawler per corpus and no leases: nothing changes there.
    pub fn for_worker(&self, worker: &str) -> Store {
        Store {
            backend: self.backend.clone(),
            worker: Some(worker.into()),
        }
    }

    /// The worker set by [`Store::for_worker`].
    pub(crate) fn worker(&self) -> Option<&str> {
        self.worker.as_deref()
    }

    /// `crawl`: the connections are a crawl's (larger page cache, rarer
    /// checkpoints).
    async fn connect(
        path: &Path,
        create: bool,
        connections: u32,
        crawl: bool,
    ) -> Result<Store, StoreError> {
        let opts = SqliteConnectOptions::from_str("sqlite://")
            .map_err(StoreError::Sqlx)?
            .filename(path)
            .create_if_missing(create)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30))
            // Batched statements come in a few fixed sizes per table
            // (`audit::BATCH_SIZES`); room for all of them and the rest.
            .statement_cache_capacity(256)
            // Issue #26: ephemeral tables (IN lists, sorts, the scheduler's
            // recursive query) in memory, never a temporary file; and WAL
            // checkpoints less often than SQLite's every 1000 pages: the
            // same index pages are rewritten by many small transactions,
            // and a checkpoint copies each page once however often it was
            // written since the last one (and syncs the file).
            .pragma("temp_store", "memory");
        let opts = quiet_logs(opts);
        let opts = if crawl {
            opts.pragma("wal_autocheckpoint", CRAWL_WAL_CHECKPOINT_PAGES.to_string())
                // A negative cache_size is in KiB.
                .pragma("cache_size", format!("-{CRAWL_CACHE_KIB}"))
        } else {
            opts.pragma("wal_autocheckpoint", WAL_CHECKPOINT_PAGES.to_string())
        };
        let pool = SqlitePoolOptions::new()
            .acquire_slow_level(SLOW_LOG_LEVEL)
            .max_connections(connections)
            // A connection lives as long as the store: the crawl writer
            // keeps statements prepared on it (`store::direct`), and an
            // SQLite connection gains nothing from being reopened.
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(opts)
            .await
            .map_err(|source| StoreError::Open {
                path: path.display().to_string(),
                source,
            })?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Store {
            backend: Backend::Sqlite(pool),
            worker: None,
        })
    }

    /// The SQLite pool, for the sibling modules' SQLite statements; on
    /// PostgreSQL, [`StoreError::Unsupported`] (the function calling it has
    /// no PostgreSQL statement yet).
    #[track_caller]
    pub(crate) fn pool(&self) -> Result<&SqlitePool, StoreError> {
        match &self.backend {
            Backend::Sqlite(pool) => Ok(pool),
            Backend::Postgres(_) => Err(StoreError::Unsupported {
                at: std::panic::Location::caller().to_string(),
            }),
        }
    }

    /// Closes every connection (SQLite: checkpointing the WAL).
    pub async fn close(self) {
        match self.backend {
            Backend::Sqlite(pool) => pool.close().await,
            Backend::Postgres(pool) => pool.close().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Backend, Store, StoreError};

    #[tokio::test]
    async fn a_function_without_a_postgres_statement_says_where() {
        // A pool that never connects: `pool()` answers before any I/O.
        let pg = sqlx::postgres::PgPoolOptions::new()
            .connect_lazy("postgres://nobody@127.0.0.1:1/none")
            .unwrap();
        let store = Store {
            backend: Backend::Postgres(pg),
            worker: None,
        };
        match store.pool() {
            Err(e @ StoreError::Unsupported { .. }) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("PostgreSQL") && msg.contains("store/mod.rs"),
                    "{msg}"
                );
            }
            other => panic!("expected Unsupported, got {other:?}"),
        }
        assert!(store.pg().is_some());
        assert_eq!(store.worker(), None);
        assert_eq!(store.for_worker("w1").worker(), Some("w1"));
    }

    /// The crawl's one connection has the larger page cache and the rarer
    /// checkpoints (the writer's batches run on it); a reader's connections
    /// keep SQLite's default cache.
    #[tokio::test]
    async fn the_crawl_connection_has_the_larger_cache_and_rarer_checkpoints() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("c.db");
        let tuning = |store: Store| async move {
            let pool = store.pool().unwrap();
            let kib: i64 = sqlx::query_scalar("PRAGMA cache_size")
                .fetch_one(pool)
                .await
                .unwrap();
            let wal: i64 = sqlx::query_scalar("PRAGMA wal_autocheckpoint")
                .fetch_one(pool)
                .await
                .unwrap();
            store.close().await;
            (kib, wal)
        };
        let crawl = tuning(Store::open_for_crawl(&db).await.unwrap()).await;
        assert_eq!(
            crawl,
            (
                -i64::from(super::CRAWL_CACHE_KIB),
                i64::from(super::CRAWL_WAL_CHECKPOINT_PAGES)
            )
        );
        assert!(super::CRAWL_CACHE_KIB > 2000);
        let reader = tuning(Store::open_existing(&db).await.unwrap()).await;
        assert_eq!(reader, (-2000, i64::from(super::WAL_CHECKPOINT_PAGES)));
    }
}
