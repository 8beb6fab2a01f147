//! A small, independent walk over a PostgreSQL audit log (issue #20):
//! `seq` contiguous from 1, each `prev_sha256` the previous event's
//! `sha256` (64 zeros first), each event's content and event hash
//! recomputed from its stored fields by the published recipe.

use byline::store::audit::{AuditRef, GENESIS, content_hash, event_hash};
use sqlx::Connection;
use sqlx::postgres::PgConnection;

#[derive(sqlx::FromRow)]
struct EventRow {
    seq: i64,
    time: i64,
    kind: String,
    subject: String,
    payload: String,
    refs: String,
    content_sha256: String,
    prev_sha256: String,
    sha256: String,
}

/// Walks the whole chain; panics at the first break. Returns the number of
/// events and the `(kind, subject)` of each, in order.
pub async fn walk(url: &str) -> Vec<(String, String)> {
    let mut c = PgConnection::connect(url).await.expect("connect");
    let rows: Vec<EventRow> = sqlx::query_as(
        "SELECT seq, time, kind, subject, payload, refs, content_sha256, prev_sha256, sha256
         FROM audit_events ORDER BY seq",
    )
    .fetch_all(&mut c)
    .await
    .expect("reading audit_events");
    let mut prev = GENESIS.to_string();
    let mut out = Vec::with_capacity(rows.len());
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r.seq, i as i64 + 1, "seq not contiguous at {}", r.seq);
        assert_eq!(
            r.prev_sha256,
            prev,
            "event {} does not link to {}",
            r.seq,
            r.seq - 1
        );
        let refs: Vec<serde_json::Value> = serde_json::from_str(&r.refs).expect("refs json");
        let refs: Vec<AuditRef> = refs
            .iter()
            .map(|v| AuditRef {
                table: v["table"].as_str().expect("table").to_string(),
                id: v["id"].as_i64().expect("id"),
                sha256: v["sha256"].as_str().expect("sha256").to_string(),
            })
            .collect();
        assert_eq!(
            content_hash(&refs),
            r.content_sha256,
            "content of event {}",
            r.seq
        );
        let payload: serde_json::Value = serde_json::from_str(&r.payload).expect("payload json");
        let h = event_hash(
            r.seq,
            r.time,
            &r.kind,
            &r.subject,
            &payload,
            &r.content_sha256,
            &r.prev_sha256,
        );
        assert_eq!(h, r.sha256, "hash of event {}", r.seq);
        prev = r.sha256.clone();
        out.push((r.kind.clone(), r.subject.clone()));
    }
    c.close().await.ok();
    out
}
