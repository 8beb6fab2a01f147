//! Store stage: the SQLite corpus. Every SQL statement in Byline lives under
//! this module, behind small typed functions, so that a PostgreSQL backend
//! can be added later as a sibling module rather than a rewrite.
//!
//! In: typed records from the other stages. Out: typed rows. Never: HTTP,
//! policy decisions, printing.

pub mod answers;
pub mod audit;
pub mod crawl;
mod error;
pub mod evidence;
pub mod export_capture;
pub mod frontier;
pub mod model_registry;
pub mod passages;
pub mod provenance;
pub mod raw;
pub mod refresh;
pub mod revocations;
pub mod verdicts;
pub mod writer;

pub use error::StoreError;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

/// An open corpus: a pool of connections to one SQLite file with the
/// migrations applied.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
}

impl Store {
    /// Opens (creating if missing) the corpus at `path`, turns on WAL and
    /// foreign keys, and applies every pending migration.
    pub async fn open(path: &Path) -> Result<Store, StoreError> {
        Store::connect(path, true).await
    }

    /// Opens the corpus at `path` like [`Store::open`], but never creates
    /// one: a missing file is [`StoreError::Missing`]. For every command
    /// that reads a corpus, so a mistyped `--db` is an error rather than an
    /// empty corpus.
    pub async fn open_existing(path: &Path) -> Result<Store, StoreError> {
        if !path.exists() {
            return Err(StoreError::Missing {
                path: path.display().to_string(),
            });
        }
        Store::connect(path, false).await
    }

    async fn connect(path: &Path, create: bool) -> Result<Store, StoreError> {
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
            .statement_cache_capacity(256);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await
            .map_err(|source| StoreError::Open {
                path: path.display().to_string(),
                source,
            })?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Store { pool })
    }

    /// The underlying pool, for the sibling modules of `store`.
    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Closes every connection, checkpointing the WAL.
    pub async fn close(self) {
        self.pool.close().await;
    }
}
