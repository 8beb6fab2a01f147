use thiserror::Error;

/// What can go wrong talking to the corpus database.
#[derive(Debug, Error)]
pub enum StoreError {
    /// No corpus at this path (read commands never create one).
    #[error("no corpus at {path}: the file does not exist (`byline crawl` creates one)")]
    Missing { path: String },
    /// The database file could not be opened or created.
    #[error("opening corpus database {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: sqlx::Error,
    },
    /// A migration failed to apply (the file may be from a newer Byline).
    #[error("applying schema migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Any other database error.
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    /// A database error on the crawl writer's direct connection (the same
    /// SQLite connection, driven without sqlx; see `store::direct`).
    #[error("database error: {0}")]
    Direct(#[from] rusqlite::Error),
    /// A stored value did not decode into the expected type.
    #[error("corrupt stored value in {table}.{column}: {detail}")]
    Corrupt {
        table: &'static str,
        column: &'static str,
        detail: String,
    },
    /// The crawl's group-commit writer stopped before answering.
    #[error("the crawl writer stopped before committing this entry")]
    WriterGone,
    /// This operation has no PostgreSQL statement yet (issue #20 ports the
    /// store function by function); `at` names the store function's source
    /// line.
    #[error("not available on the PostgreSQL backend yet ({at}); use an SQLite corpus for it")]
    Unsupported { at: String },
    /// Another crawler holds this SQLite corpus (see [`super::lock`]).
    #[error(
        "another byline crawl is running on this corpus ({holder}; lock file {path}): an SQLite corpus takes one crawler at a time. Wait for it to end, or crawl with several workers on PostgreSQL (--db postgres://...)"
    )]
    CrawlerBusy { path: String, holder: String },
    /// The crawler lock file could not be opened or locked.
    #[error("locking the corpus for this crawl ({path}): {source}")]
    Lock {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A group commit failed; the whole batch was rolled back.
    #[error("committing a batch of crawled entries: {0}")]
    Batch(String),
}

impl StoreError {
    /// The file is missing or is not an SQLite database: the user named the
    /// wrong file, rather than the database failing.
    pub fn is_not_a_corpus(&self) -> bool {
        let sqlx_err = match self {
            StoreError::Missing { .. } => return true,
            StoreError::Open { source, .. } => source,
            StoreError::Sqlx(e) => e,
            StoreError::Migrate(sqlx::migrate::MigrateError::Execute(e)) => e,
            _ => return false,
        };
        // SQLITE_NOTADB: "file is not a database".
        matches!(sqlx_err, sqlx::Error::Database(d) if d.code().as_deref() == Some("26"))
    }
}
