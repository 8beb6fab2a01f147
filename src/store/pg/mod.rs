//! The PostgreSQL backend (issue #20): connection, schema migrations
//! (`migrations_pg/`) and, one sibling module per `store` module, the
//! PostgreSQL statements of the store functions ported so far.
//!
//! The schema mirrors the SQLite one column for column with the same value
//! types (integers stay `BIGINT`, 0/1 flags included; JSON stays `TEXT`),
//! so rows read back alike from both backends and the audit log's row
//! hashes follow one recipe.

pub(crate) mod answers;
pub mod audit;
pub(crate) mod audit_read;
pub mod cluster;
pub(crate) mod copy;
pub(super) mod crawl;
pub(super) mod evidence;
pub(super) mod forget;
pub mod frontier;
pub(super) mod index_write;
pub(super) mod meta;
pub mod origins;
pub(crate) mod passages;
pub(super) mod provenance;
pub(super) mod raw;

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::{Backend, Store, StoreError};

/// Connects to the database at `url` and applies every pending migration
/// (`create`), or, for a read command (`create` false), requires Byline's
/// schema to be there already and applies none.
pub(super) async fn connect(url: &str, create: bool) -> Result<Store, StoreError> {
    let shown = redact_url(url);
    let opts: PgConnectOptions = url.parse().map_err(|source| StoreError::Open {
        path: shown.clone(),
        source,
    })?;
    let opts = super::quiet_logs(opts);
    let pool = PgPoolOptions::new()
        .acquire_slow_level(super::SLOW_LOG_LEVEL)
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(opts)
        .await
        .map_err(|source| StoreError::Open {
            path: shown.clone(),
            source,
        })?;
    if !create && !has_schema(&pool).await? {
        return Err(StoreError::Missing { path: shown });
    }
    // Migrations from several machines at once: sqlx takes an advisory lock
    // around them, so one applies and the others wait and find them done.
    sqlx::migrate!("./migrations_pg").run(&pool).await?;
    Ok(Store {
        backend: Backend::Postgres(pool),
        worker: None,
    })
}

async fn has_schema(pool: &PgPool) -> Result<bool, StoreError> {
    let found: Option<String> = sqlx::query_scalar("SELECT to_regclass('public.crawl_runs')::text")
        .fetch_one(pool)
        .await?;
    Ok(found.is_some())
}

/// `url` with any password replaced by `***`, for messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    // The userinfo ends at the last '@' before any query string (a password
    // may itself hold '@', '/' or ':').
    let head = rest.split('?').next().unwrap_or(rest);
    let Some(at) = head.rfind('@') else {
        return url.to_string();
    };
    let (userinfo, host_and_tail) = (&rest[..at], &rest[at..]);
    let user = match userinfo.split_once(':') {
        Some((user, _password)) => format!("{user}:***"),
        None => userinfo.to_string(),
    };
    format!("{scheme}://{user}{host_and_tail}")
}

impl Store {
    /// The PostgreSQL pool, when this store is one.
    pub(crate) fn pg(&self) -> Option<&PgPool> {
        match self.backend() {
            Backend::Postgres(pool) => Some(pool),
            Backend::Sqlite(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_never_printed() {
        assert_eq!(
            redact_url("postgres://byline:s3cret@db.example:5432/corpus"),
            "postgres://byline:***@db.example:5432/corpus"
        );
        assert_eq!(
            redact_url("postgres://byline@127.0.0.1/corpus?sslmode=disable"),
            "postgres://byline@127.0.0.1/corpus?sslmode=disable"
        );
        assert_eq!(
            redact_url("postgresql:///corpus?host=/tmp"),
            "postgresql:///corpus?host=/tmp"
        );
        // A password containing '@' or '/': the host is after the last '@'
        // of the authority.
        assert_eq!(
            redact_url("postgres://u:p@ss@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(redact_url("postgres://u:p/s@h/db"), "postgres://u:***@h/db");
    }
}
