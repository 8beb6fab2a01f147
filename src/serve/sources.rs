//! `GET /v1/sources/{id}`: a page's provenance by page id or URL, the
//! [`crate::audit::WhyReport`] that `byline audit why --json` prints. Reads
//! that page's rows through indexes, its audit events included: they are
//! reached through the page's own rows
//! ([`crate::store::Store::subject_events`]), not by reading the log.

use std::sync::Arc;

use super::api::{BackendError, SourceFn};
use crate::store::Store;

/// The `/v1/sources/{id}` backend over `store`: a number is a page id, else
/// the id is the URL; an unknown page or a string that is not an absolute
/// URL is `None` (404).
pub fn source_backend(store: Store) -> SourceFn {
    Arc::new(move |id: String| {
        let store = store.clone();
        Box::pin(async move {
            let url = match id.parse::<i64>() {
                Ok(page_id) => match store
                    .page_url_by_id(page_id)
                    .await
                    .map_err(|e| BackendError::Internal(e.to_string()))?
                {
                    Some(u) => u,
                    None => return Ok(None),
                },
                Err(_) => id,
            };
            if url::Url::parse(&url).is_err() {
                return Ok(None);
            }
            crate::audit::why(&store, &url)
                .await
                .map_err(|e| BackendError::Internal(e.to_string()))
        })
    })
}
