//! `byline audit recheck` over pages that are no longer there: a page that
//! answers 404 is marked gone, leaves retrieval at once, the answers citing
//! it are flagged with the `page_gone` audit event, the audit chain stays
//! valid; a second recheck changes nothing; a page that is back returns.

use std::process::Command;

use serde_json::Value;

use crate::support::byline_bin;
use crate::support::crawl::{answer_citing, found};
use crate::support::recheck_site::crawled;

async fn json(db: &std::path::Path, args: &[&str]) -> Value {
    let mut cmd = Command::new(byline_bin());
    cmd.arg("--db").arg(db).args(args);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{args:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: {e}: {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_that_now_answers_404_is_gone_from_retrieval_and_its_answers_are_flagged() {
    let site = crawled().await;
    let db = site.corpus.path.clone();
    let store = &site.corpus.store;
    let cedar = site.url("cedar.html");
    assert_eq!(found(store, "cedar").await, vec![cedar.clone()]);
    let cites_cedar = answer_citing(store, "cedar").await;
    let cites_basalt = answer_citing(store, "basalt").await;

    let page = std::fs::read(site.file("cedar.html")).unwrap();
    std::fs::remove_file(site.file("cedar.html")).unwrap();
    let r = json(&db, &["audit", "recheck", "--min-delay-ms", "0", "--json"]).await;
    let gone = r["gone"].as_array().unwrap();
    assert_eq!(gone.len(), 1, "{r}");
    assert_eq!(gone[0]["url"], cedar.as_str());
    assert_eq!(gone[0]["status"], 404);
    assert_eq!(gone[0]["newly"], true);
    assert_eq!(gone[0]["flagged_answers"], serde_json::json!([cites_cedar]));
    assert_eq!(
        r["flagged_answers"],
        serde_json::json!([cites_cedar]),
        "{r}"
    );
    assert!(
        found(store, "cedar").await.is_empty(),
        "a gone page is retrieved"
    );
    assert_eq!(found(store, "basalt").await, vec![site.url("basalt.html")]);
    let a = store.answer(cites_cedar).await.unwrap().unwrap();
    assert!(a.flagged_at.is_some());
    assert_eq!(a.flag_revocation_id, gone[0]["event_seq"].as_i64());
    assert!(
        store
            .answer(cites_basalt)
            .await
            .unwrap()
            .unwrap()
            .flagged_at
            .is_none()
    );
    let v = json(&db, &["audit", "verify", "--json"]).await;
    assert_eq!(v["ok"], true, "{v}");

    // Again: still gone, nothing new.
    let r = json(&db, &["audit", "recheck", "--min-delay-ms", "0", "--json"]).await;
    assert_eq!(r["gone"][0]["newly"], false, "{r}");
    assert_eq!(r["flagged_answers"], serde_json::json!([]), "{r}");

    // The page is back: retrievable again; the old answer stays flagged.
    std::fs::write(site.file("cedar.html"), page).unwrap();
    let r = json(&db, &["audit", "recheck", "--min-delay-ms", "0", "--json"]).await;
    assert_eq!(r["back"], serde_json::json!([cedar.clone()]), "{r}");
    assert_eq!(found(store, "cedar").await, vec![cedar]);
    assert!(
        store
            .answer(cites_cedar)
            .await
            .unwrap()
            .unwrap()
            .flagged_at
            .is_some()
    );
}
