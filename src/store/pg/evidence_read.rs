//! Reading a verdict's evidence on PostgreSQL (the licence an answer's
//! citation names comes from it), and the policies verdicts were decided
//! under (`ask`/`serve --policy`).

use sqlx::FromRow;
use sqlx::postgres::PgPool;

use crate::policy::evidence::{Evidence, FetchRef, Observation, Scope};
use crate::store::StoreError;
use crate::store::evidence::{StoredEvidence, corrupt, label_of, location_of};

#[derive(FromRow)]
struct EvidenceRow {
    id: i64,
    signal: String,
    status_label: String,
    location: String,
    scope: String,
    raw: String,
    parsed: String,
    fetch_ref: Option<String>,
    observed_at: i64,
    expires_at: Option<i64>,
    parse_errors: String,
}

pub(crate) async fn evidence_rows(
    pool: &PgPool,
    set_id: i64,
) -> Result<Vec<StoredEvidence>, StoreError> {
    let rows: Vec<EvidenceRow> = sqlx::query_as(
        "SELECT id, signal, status_label, location, scope, raw, parsed, fetch_ref, observed_at,
                expires_at, parse_errors
         FROM evidence WHERE set_id = $1 ORDER BY ordinal",
    )
    .bind(set_id)
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|r| {
            let observation: Observation =
                serde_json::from_str(&r.parsed).map_err(|e| corrupt("parsed", e))?;
            let fetch_ref: Option<FetchRef> = r
                .fetch_ref
                .map(|f| serde_json::from_str(&f))
                .transpose()
                .map_err(|e| corrupt("fetch_ref", e))?;
            Ok(StoredEvidence {
                id: r.id,
                evidence: Evidence {
                    signal: r.signal,
                    status_label: label_of(&r.status_label)?,
                    location: location_of(&r.location)?,
                    scope: Scope::from_label(&r.scope),
                    raw: r.raw,
                    observation,
                    fetch_ref,
                    observed_at: r.observed_at,
                    expires_at: r.expires_at,
                    parse_errors: serde_json::from_str(&r.parse_errors)
                        .map_err(|e| corrupt("parse_errors", e))?,
                },
            })
        })
        .collect()
}

/// The id and bytes of a policy seen before.
pub(crate) async fn policy_body(
    pool: &PgPool,
    sha256: &str,
) -> Result<Option<(String, Vec<u8>)>, StoreError> {
    Ok(
        sqlx::query_as("SELECT policy_id, body FROM policies_seen WHERE sha256 = $1")
            .bind(sha256)
            .fetch_optional(pool)
            .await?,
    )
}
