use thiserror::Error;

/// What can go wrong talking to the corpus database.
#[derive(Debug, Error)]
pub enum StoreError {
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
    /// A stored value did not decode into the expected type.
    #[error("corrupt stored value in {table}.{column}: {detail}")]
    Corrupt {
        table: &'static str,
        column: &'static str,
        detail: String,
    },
}
