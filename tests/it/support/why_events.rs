//! `audit why` lists every event about its URL. On SQLite it finds them
//! through the URL's rows (`Store::subject_events`), not by reading the
//! whole log; this compares that with the log itself.

use std::collections::BTreeMap;

use byline::store::Store;
use byline::store::audit::EventFilter;

/// For every subject in the log that `audit why` reports on, the events it
/// lists are exactly the log's events with that subject, in log order.
/// Returns, per subject compared, the kinds listed (for the caller to check
/// that the cases it built were among them).
pub async fn assert_why_lists_the_logs_events(store: &Store) -> BTreeMap<String, Vec<String>> {
    let all = store.audit_events(&EventFilter::default()).await.unwrap();
    let mut subjects: Vec<&str> = all.iter().map(|e| e.subject.as_str()).collect();
    subjects.sort();
    subjects.dedup();
    let mut compared = BTreeMap::new();
    for s in subjects {
        let Ok(parsed) = url::Url::parse(s) else {
            continue;
        };
        let Some(rep) = byline::audit::why::why(store, s).await.unwrap() else {
            continue;
        };
        let want: Vec<(i64, &str)> = all
            .iter()
            .filter(|e| e.subject == parsed.as_str())
            .map(|e| (e.seq, e.kind.as_str()))
            .collect();
        let got: Vec<(i64, &str)> = rep
            .audit_events
            .iter()
            .map(|e| (e.seq, e.kind.as_str()))
            .collect();
        assert_eq!(got, want, "audit why {s}: its events against the log's");
        compared.insert(
            s.to_string(),
            got.iter().map(|(_, k)| k.to_string()).collect(),
        );
    }
    compared
}
