//! One licence per page everywhere (issue #17): on every page of the
//! crawled consent world, the licence an answer's citation would name
//! (`answer::citation_licence`), the one `audit` records and exports carry,
//! and the one each dataset export row carries are the same, and every
//! `licence.*` reason of a verdict agrees with that licence's terms.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use byline::policy::codes::Code;

use crate::support::audit_world::{ORIGINS, crawled};
use crate::support::byline_bin;

/// `audit export --format jsonl --with-text` rows for one decision: URL → licence.
fn exported(db: &Path, out: &Path, decision: &str) -> BTreeMap<String, Option<String>> {
    let o = Command::new(byline_bin())
        .arg("--db")
        .arg(db)
        .args(["audit", "export", "--format", "jsonl", "--with-text"])
        .args([
            "--purpose",
            "rag_attributed",
            "--decision",
            decision,
            "--out",
        ])
        .arg(out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut rows = BTreeMap::new();
    for e in std::fs::read_dir(out.join("data")).unwrap() {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            rows.insert(
                v["url"].as_str().unwrap().to_string(),
                v["licence"].as_str().map(str::to_string),
            );
        }
    }
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdicts_audit_records_exports_and_citations_name_one_licence_per_page() {
    let w = crawled(&ORIGINS).await;
    let store = &w.corpus.store;
    let records = byline::audit::records::records(store).await.unwrap();
    assert!(!records.is_empty());

    let mut audit: BTreeMap<String, (Option<String>, String)> = BTreeMap::new();
    for r in records.iter().filter(|r| r.page_id.is_some()) {
        let prev = audit.insert(
            r.url.clone(),
            (r.licence.clone(), r.licence_conditions.clone()),
        );
        if let Some(p) = prev {
            assert_eq!(p.0, r.licence, "{}: records of one page disagree", r.url);
        }
    }
    let licensed = audit.values().filter(|(l, _)| l.is_some()).count();
    assert!(licensed >= 3, "the world has licensed pages ({licensed})");

    let mut checked = 0;
    for (url, (licence, class)) in &audit {
        let verdicts = store.latest_verdicts(url, None).await.unwrap();
        assert!(!verdicts.is_empty(), "{url} has verdicts");
        for v in &verdicts {
            // The citation names the licence the audit shows.
            let (cited, _) = byline::answer::citation_licence(store, v.set_id)
                .await
                .unwrap();
            assert_eq!(&cited, licence, "{url}: citation vs audit");
            // Every reason is a known code; licence reasons match the terms.
            for reason in &v.reasons {
                let code: Code = reason
                    .parse()
                    .unwrap_or_else(|e| panic!("{url}: stored reason: {e}"));
                let needs = match code {
                    Code::LicenceBy => Some("attribution"),
                    Code::LicenceSa => Some("share-alike"),
                    Code::LicenceNc => Some("non-commercial"),
                    Code::LicenceNd => Some("no-derivatives"),
                    _ => None,
                };
                if let Some(term) = needs {
                    assert!(
                        class.contains(term),
                        "{url}: {code} but licence terms {class:?}"
                    );
                }
                if matches!(code, Code::LicencePublicDomain | Code::LicenceOpen) {
                    assert!(licence.is_some(), "{url}: {code} without a licence");
                    assert_eq!(class, "none", "{url}: {code} with terms {class}");
                }
                if code.is_licence() && code != Code::LicenceNone {
                    assert!(licence.is_some(), "{url}: {code} without a licence");
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= audit.len());

    // Dataset exports carry the same licence on every row.
    let mut rows = 0;
    for decision in ["allowed", "allowed_with_conditions"] {
        let out = w.corpus.dir.path().join(format!("export-{decision}"));
        for (url, licence) in exported(&w.corpus.path, &out, decision) {
            let (want, _) = audit
                .get(&url)
                .unwrap_or_else(|| panic!("{url} exported but unknown"));
            assert_eq!(&licence, want, "{url}: export vs audit");
            rows += 1;
        }
    }
    assert!(rows > 0, "some pages are exported");
}
