//! Evidence and verdicts round-trip through the store; `byline policy`
//! check and apply work on a real corpus file.

use std::process::Command;

use byline::policy::evidence::RobotsOutcome;
use byline::policy::gather::{PageInputs, RobotsInput, gather};
use byline::policy::{self, Decision, Policy, Purpose};
use byline::store::Store;
use byline::store::evidence::OriginFile;

use crate::support::{byline_bin, tempdir};

const NOW: i64 = 1_795_824_000;

fn evidence_for(headers: &[(String, String)], html: &str) -> Vec<byline::policy::Evidence> {
    gather(&PageInputs {
        page_url: "https://s.example/a",
        token: "BylineBot",
        robots: RobotsInput {
            outcome: RobotsOutcome::Allowed,
            status: Some(200),
            body: Some("User-agent: *\nAllow: /\n"),
            from_cache: false,
            cache_age_secs: None,
        },
        headers,
        html: Some(html),
        tdmrep: None,
        ai_txt: None,
        llms_txt: None,
        rsl: &[],
    })
}

fn repo_file(rel: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

#[tokio::test]
async fn evidence_sets_round_trip_and_verdicts_cite_stored_rows() {
    let dir = tempdir();
    let store = Store::open(&dir.path().join("c.db")).await.unwrap();
    let ev = evidence_for(
        &[("X-Robots-Tag".into(), "noindex".into())],
        r#"<html><head><link rel="license" href="https://creativecommons.org/licenses/by/4.0/"></head><body>x</body></html>"#,
    );
    let (set_id, ids) = store
        .insert_evidence_set("https://s.example/a", None, "https://s.example", NOW, &ev)
        .await
        .unwrap();
    assert_eq!(ids.len(), ev.len());
    let back = store
        .latest_evidence_set("https://s.example/a")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back.set_id, set_id);
    let back_rows: Vec<_> = back.rows.iter().map(|r| r.evidence.clone()).collect();
    for (a, b) in ev.iter().zip(&back_rows) {
        assert_eq!(a.signal, b.signal);
        assert_eq!(a.observation, b.observation);
        assert_eq!(a.scope, b.scope);
    }
    let p = policy::default_policy();
    store
        .record_policy(
            &p.id,
            &p.sha256,
            policy::config::EU_OPT_OUT_TOML.as_bytes(),
            NOW,
        )
        .await
        .unwrap();
    let v = policy::evaluate(&back_rows, &p, NOW);
    assert_eq!(v.search_index.decision, Decision::Excluded);
    store
        .insert_verdicts(set_id, "https://s.example/a", &v, &ids, NOW)
        .await
        .unwrap();
    let rows = store
        .latest_verdicts("https://s.example/a", Some(&p.sha256))
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].purpose, "search_index");
    assert_eq!(rows[0].reasons, vec!["meta.noindex"]);
    assert_eq!(rows[0].policy_sha256, p.sha256);
    // the cited evidence id is the stored x-robots-tag row
    let cited = rows[0].evidence_ids[0];
    let row = back.rows.iter().find(|r| r.id == cited).unwrap();
    assert_eq!(row.evidence.signal, "x-robots-tag");
    store.close().await;
}

#[tokio::test]
async fn origin_files_keep_every_version_and_expire() {
    let dir = tempdir();
    let store = Store::open(&dir.path().join("c.db")).await.unwrap();
    let mut f = OriginFile {
        id: 0,
        origin: "https://s.example".into(),
        kind: "tdmrep.json".into(),
        url: "https://s.example/.well-known/tdmrep.json".into(),
        status: Some(200),
        error: None,
        body: Some(b"[]".to_vec()),
        body_sha256: None,
        fetched_at: NOW,
        expires_at: NOW + 100,
    };
    store.insert_origin_file(&f).await.unwrap();
    f.body = Some(br#"[{"location":"/","tdm-reservation":1}]"#.to_vec());
    f.fetched_at = NOW + 200;
    f.expires_at = NOW + 300;
    store.insert_origin_file(&f).await.unwrap();
    assert_eq!(store.origin_file_versions(&f.url).await.unwrap().len(), 2);
    let hit = store
        .cached_origin_file(&f.url, NOW + 250)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(hit.body, f.body);
    assert!(
        store
            .cached_origin_file(&f.url, NOW + 301)
            .await
            .unwrap()
            .is_none()
    );
    store.close().await;
}

#[test]
fn policy_check_accepts_the_bundled_policies_and_names_the_line_of_an_error() {
    for f in ["policies/eu-opt-out.toml", "policies/strict-opt-in.toml"] {
        let out = Command::new(byline_bin())
            .args(["policy", "check"])
            .arg(repo_file(f))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{f}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("sha256:"));
    }
    let dir = tempdir();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "id = \"bad\"\nregime = \"eu_opt_out\"\n[effects]\n\"meta.noai\" = { train = \"forbid\" }\n").unwrap();
    let out = Command::new(byline_bin())
        .args(["policy", "check"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 4") && err.contains("forbid") && err.contains("exclude"),
        "{err}"
    );
}

#[tokio::test]
async fn policy_apply_re_evaluates_stored_evidence_and_prints_the_changes() {
    let dir = tempdir();
    let db = dir.path().join("c.db");
    let store = Store::open(&db).await.unwrap();
    let ev = evidence_for(&[], "<html><head></head><body><p>Hello</p></body></html>");
    let (set_id, ids) = store
        .insert_evidence_set("https://s.example/a", None, "https://s.example", NOW, &ev)
        .await
        .unwrap();
    let eu = policy::default_policy();
    store
        .record_policy(
            &eu.id,
            &eu.sha256,
            policy::config::EU_OPT_OUT_TOML.as_bytes(),
            NOW,
        )
        .await
        .unwrap();
    let v = policy::evaluate(&ev, &eu, NOW);
    store
        .insert_verdicts(set_id, "https://s.example/a", &v, &ids, NOW)
        .await
        .unwrap();
    store.close().await;

    let strict = repo_file("policies/strict-opt-in.toml");
    let out = Command::new(byline_bin())
        .arg("--db")
        .arg(&db)
        .args(["policy", "apply"])
        .arg(&strict)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(
            "https://s.example/a train: allowed [] conditions: [] (eu-opt-out) -> excluded [licence.none] conditions: [] (strict-opt-in)"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("3 verdicts changed"), "{stdout}");

    let store = Store::open(&db).await.unwrap();
    let sp = Policy::from_bytes(&std::fs::read(&strict).unwrap(), "s").unwrap();
    let rows = store
        .latest_verdicts("https://s.example/a", Some(&sp.sha256))
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r.decision == "excluded"));
    // the eu verdicts are kept as history
    assert_eq!(
        store
            .latest_verdicts("https://s.example/a", Some(&eu.sha256))
            .await
            .unwrap()
            .len(),
        3
    );
    let _ = Purpose::ALL;
    store.close().await;

    // applying the same policy again changes nothing
    let out = Command::new(byline_bin())
        .arg("--db")
        .arg(&db)
        .args(["policy", "apply"])
        .arg(&strict)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 verdicts changed"));

    // --json --dry-run back to the EU policy: the changes as data, both
    // sides with their policy, and nothing stored.
    let eu_file = repo_file("policies/eu-opt-out.toml");
    let out = Command::new(byline_bin())
        .arg("--db")
        .arg(&db)
        .args(["policy", "apply", "--json", "--dry-run"])
        .arg(&eu_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["pages"], 1);
    assert_eq!(report["policy_id"], "eu-opt-out");
    let changes = report["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 3, "{report}");
    let train = changes.iter().find(|c| c["purpose"] == "train").unwrap();
    assert_eq!(train["page_url"], "https://s.example/a");
    assert_eq!(train["before"]["decision"], "excluded");
    assert_eq!(
        train["before"]["reasons"],
        serde_json::json!(["licence.none"])
    );
    assert_eq!(train["before"]["policy_id"], "strict-opt-in");
    assert_eq!(train["after"]["decision"], "allowed");
    assert_eq!(train["after"]["policy_id"], "eu-opt-out");
    let store = Store::open(&db).await.unwrap();
    let rows = store
        .latest_verdicts("https://s.example/a", None)
        .await
        .unwrap();
    assert!(
        rows.iter().all(|r| r.policy_id == "strict-opt-in"),
        "dry run stored nothing"
    );
    store.close().await;
}

#[tokio::test]
async fn the_consent_migration_creates_its_tables_with_their_checks() {
    let dir = tempdir();
    let path = dir.path().join("c.db");
    let store = Store::open(&path).await.unwrap();
    store.close().await;
    let out = Command::new("sqlite3").arg(&path).arg(".schema").output();
    // sqlite3 may be absent; check through sqlx instead when it is.
    let schema = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        _ => {
            use sqlx::Connection;
            let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
                .await
                .unwrap();
            let rows: Vec<(String,)> =
                sqlx::query_as("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL")
                    .fetch_all(&mut c)
                    .await
                    .unwrap();
            rows.into_iter().map(|r| r.0).collect::<Vec<_>>().join("\n")
        }
    };
    for t in [
        "policies_seen",
        "evidence_sets",
        "evidence",
        "verdicts",
        "origin_files",
    ] {
        assert!(
            schema.contains(&format!("CREATE TABLE {t} (")),
            "missing table {t}:\n{schema}"
        );
    }
    assert!(schema.contains("'allowed_with_conditions'"));
    assert!(schema.contains("'CG-FINAL'"));
}
