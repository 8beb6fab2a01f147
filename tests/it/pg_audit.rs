//! The audit reports on PostgreSQL (issue #20): a crawl of the consent
//! fixture world into SQLite, copied with `byline store copy` into a fresh
//! PostgreSQL database, answers every `byline audit` report (summary, why,
//! history, sources, licences, origins, head, verify) and every export
//! format (verdict records, WARC with raw captures, Croissant, the text
//! datasets) exactly as the SQLite file does; `serve`'s read endpoints
//! too.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::audit_world::{ORIGINS, World, crawled};
use crate::support::model::default_model;
use crate::support::serve::{BodyJson, Served, http};
use crate::support::{byline_bin, pg, tempdir};

use crate::support::{byline_on as byline, output_text as text};

/// The consent world crawled into SQLite and copied to a fresh PostgreSQL
/// database: (world, sqlite path, postgres url as a `--db` path).
async fn copied_world() -> (World, PathBuf, PathBuf) {
    let w = crawled(&ORIGINS).await;
    let db = w.corpus.path.clone();
    let url = pg::fresh_db().await;
    let o = Command::new(byline_bin())
        .args(["store", "copy", "--json", "--from"])
        .arg(&db)
        .args(["--to", &url])
        .output()
        .expect("running byline store copy");
    assert!(o.status.success(), "{}", text(&o));
    (w, db, PathBuf::from(url))
}

/// Runs `args` on both corpora and requires the same exit status and the
/// same stdout; returns the stdout.
fn same(sqlite: &Path, postgres: &Path, args: &[&str]) -> String {
    let a = byline(sqlite, args);
    let b = byline(postgres, args);
    assert_eq!(
        b.status.code(),
        a.status.code(),
        "{args:?}\nsqlite: {}\npostgres: {}",
        text(&a),
        text(&b)
    );
    assert_eq!(
        String::from_utf8_lossy(&b.stdout),
        String::from_utf8_lossy(&a.stdout),
        "{args:?} differs; postgres stderr: {}",
        String::from_utf8_lossy(&b.stderr)
    );
    String::from_utf8_lossy(&a.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_audit_reports_equal_sqlites_for_a_copied_corpus() {
    let (w, db, pgdb) = copied_world().await;

    // The reports, as JSON and as text.
    for args in [
        &["audit", "summary", "--json"][..],
        &["audit", "summary"],
        &["audit", "sources", "--json"],
        &[
            "audit",
            "sources",
            "--purpose",
            "train",
            "--decision",
            "excluded",
        ],
        &["audit", "licences", "--json"],
        &["audit", "licences"],
        &["audit", "origins", "--json"],
        &["audit", "origins"],
        &["audit", "head"],
        &["audit", "verify", "--json"],
    ] {
        let out = same(&db, &pgdb, args);
        assert!(!out.trim().is_empty(), "{args:?} printed nothing");
    }
    let s: Value =
        serde_json::from_str(&same(&db, &pgdb, &["audit", "summary", "--json"])).unwrap();
    assert_eq!(s["origins"], 11, "{s}");
    assert!(s["pages"].as_i64().unwrap() > 10, "{s}");

    // why and history of a few URLs on the command line (a page, a URL
    // robots.txt disallowed, one never met: exit 1 on both).
    let private = w.origin("private").url("/private/x.html");
    let page = w.origin("open").url("/p1.html");
    let never = w.origin("open").url("/never-linked.html");
    for u in [&page, &private, &never] {
        for sub in ["why", "history"] {
            same(&db, &pgdb, &["audit", sub, u, "--json"]);
            same(&db, &pgdb, &["audit", sub, u]);
        }
    }

    // Every URL met, in process: the same why and history reports.
    let sqlite = byline::store::Store::open_existing(&db).await.unwrap();
    let postgres = byline::store::Store::open_existing(&pgdb).await.unwrap();
    let urls: Vec<String> = sqlite
        .audit_urls()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.url)
        .collect();
    assert!(urls.len() > 20, "{urls:?}");
    let mut reported = 0;
    for u in &urls {
        let a = byline::audit::why(&sqlite, u).await.unwrap();
        let b = byline::audit::why(&postgres, u).await.unwrap();
        assert_eq!(
            serde_json::to_value(&b).unwrap(),
            serde_json::to_value(&a).unwrap(),
            "why {u}"
        );
        let a = byline::audit::history::history(&sqlite, u).await.unwrap();
        let b = byline::audit::history::history(&postgres, u).await.unwrap();
        reported += usize::from(a.is_some());
        assert_eq!(
            serde_json::to_value(&b).unwrap(),
            serde_json::to_value(&a).unwrap(),
            "history {u}"
        );
    }
    assert!(reported > 20, "{reported} histories");
}

/// Every file of an export directory: name -> bytes.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            out.insert(
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            );
        }
    }
    out
}

/// A manifest without what depends on the moment it was written (its
/// time, and the audit head, which covers the earlier exports' events
/// with their times).
fn timeless(mut m: Value) -> Value {
    let o = m.as_object_mut().unwrap();
    o.remove("created_at");
    o.remove("audit_head_sha256");
    o.remove("audit_head_seq");
    m
}

/// A WARC record ID as its place among the IDs in order of first
/// appearance: the IDs are derived from the audit head, which covers the
/// earlier exports' events with their times, so the backends' IDs differ
/// while the records they link must not.
fn id_place(ids: &mut Vec<String>, id: &str) -> String {
    let at = ids.iter().position(|x| x == id).unwrap_or_else(|| {
        ids.push(id.to_string());
        ids.len() - 1
    });
    format!("record#{at}")
}

/// Header fields that hold a record ID.
const ID_FIELDS: [&str; 3] = ["WARC-Record-ID", "WARC-Refers-To", "WARC-Concurrent-To"];

/// An export file that holds the moment of the export, as JSON without
/// it; `None` for the others (compared byte for byte). The Croissant
/// metadata's `datePublished`; the dataset card's export line; the WARC file's warcinfo record date (and
/// so the compressed sizes and the index's offsets after it) and its
/// record IDs, compared by place (`id_place`).
fn without_time(name: &str, bytes: &[u8]) -> Option<Value> {
    if name.ends_with(".warc.gz") {
        let dir = tempdir();
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let recs = crate::audit_export::read_warc(&path);
        let mut ids = Vec::new();
        let recs: Vec<Value> = recs
            .iter()
            .map(|r| {
                let info = r.get("WARC-Type") == Some("warcinfo");
                let headers: Vec<(String, String)> = r
                    .headers
                    .iter()
                    .filter(|(k, _)| !(info && k.eq_ignore_ascii_case("WARC-Date")))
                    .map(|(k, v)| {
                        if ID_FIELDS.iter().any(|f| k.eq_ignore_ascii_case(f)) {
                            (k.clone(), id_place(&mut ids, v))
                        } else {
                            (k.clone(), v.clone())
                        }
                    })
                    .collect();
                serde_json::json!({
                    "version": r.version, "headers": headers,
                    "block": String::from_utf8_lossy(&r.block),
                })
            })
            .collect();
        return Some(Value::Array(recs));
    }
    if name == "warc-index.jsonl" {
        let mut ids = Vec::new();
        let lines = String::from_utf8_lossy(bytes)
            .lines()
            .map(|l| {
                let mut v: Value = serde_json::from_str(l).unwrap();
                let o = v.as_object_mut().unwrap();
                o.remove("offset");
                o.remove("length");
                for k in ["record_id", "refers_to"] {
                    if let Some(Value::String(id)) = o.get(k) {
                        let place = id_place(&mut ids, id);
                        o.insert(k.into(), Value::String(place));
                    }
                }
                if o["type"] == "warcinfo" {
                    o.remove("date");
                }
                v
            })
            .collect();
        return Some(Value::Array(lines));
    }
    if name == "README.md" {
        // The dataset card's closing line: "Exported <time> by byline <v>."
        let text = String::from_utf8_lossy(bytes);
        let lines: Vec<&str> = text.lines().collect();
        let stamped = lines.iter().filter(|l| l.starts_with("Exported ")).count();
        assert_eq!(stamped, 1, "{name}: one export time line");
        let kept: Vec<&str> = lines
            .into_iter()
            .filter(|l| !l.starts_with("Exported "))
            .collect();
        return Some(Value::String(kept.join("\n")));
    }
    let mut v: Value = serde_json::from_slice(bytes).ok()?;
    v.as_object_mut()?.remove("datePublished")?;
    Some(v)
}

/// The JSON paths where `a` and `b` differ, with both values.
fn diff(at: &str, a: &Value, b: &Value) -> Vec<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter()
                .flat_map(|k| {
                    let n = Value::Null;
                    diff(
                        &format!("{at}.{k}"),
                        x.get(k).unwrap_or(&n),
                        y.get(k).unwrap_or(&n),
                    )
                })
                .collect()
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .flat_map(|(i, (p, q))| diff(&format!("{at}[{i}]"), p, q))
            .collect(),
        _ if a == b => Vec::new(),
        _ => vec![format!("{at}: {a} vs {b}")],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_exports_write_the_same_records_as_sqlite() {
    let (_w, db, pgdb) = copied_world().await;
    let root = tempdir();
    let formats: [&[&str]; 6] = [
        &["--format", "jsonl"],
        &["--format", "csv"],
        &["--format", "warc"],
        &["--format", "croissant"],
        &["--format", "parquet", "--shard-size", "40rows"],
        &["--format", "jsonl", "--with-text"],
    ];
    for (i, f) in formats.iter().enumerate() {
        let mut reports = Vec::new();
        // Both into the same folder in turn (the Croissant file names it),
        // each moved aside afterwards.
        let out = root.path().join(i.to_string());
        for (name, corpus) in [("sqlite", &db), ("postgres", &pgdb)] {
            // Each export's audit event holds its second: the backends'
            // exports always fall in different seconds, so what depends
            // on the moment differs every run, not only when a slow run
            // crosses a second.
            if name == "postgres" {
                std::thread::sleep(std::time::Duration::from_millis(1100));
            }
            let mut args = vec!["audit", "export", "--json", "--out", out.to_str().unwrap()];
            args.extend_from_slice(f);
            let o = byline(corpus, &args);
            assert!(o.status.success(), "{name} {f:?}: {}", text(&o));
            let report: Value = serde_json::from_slice(&o.stdout).unwrap();
            let kept = root.path().join(format!("{i}-{name}"));
            std::fs::rename(&out, &kept).unwrap();
            reports.push((kept, report));
        }
        let (sdir, srep) = &reports[0];
        let (pdir, prep) = &reports[1];
        assert_eq!(prep["version"], srep["version"], "{f:?}");
        assert_eq!(prep["records"], srep["records"], "{f:?}");
        assert_eq!(prep["merkle_root"], srep["merkle_root"], "{f:?}");
        assert!(srep["records"].as_i64().unwrap() > 0, "{srep}");
        let (mut sf, mut pf) = (files(sdir), files(pdir));
        let sm: Value = serde_json::from_slice(&sf.remove("manifest.json").unwrap()).unwrap();
        let pm: Value = serde_json::from_slice(&pf.remove("manifest.json").unwrap()).unwrap();
        let (mut pm, mut sm) = (timeless(pm), timeless(sm));
        // Files that hold the export's time are compared without it below,
        // so not by size and hash here.
        let stamped: Vec<String> = sf
            .iter()
            .filter(|(k, v)| without_time(k, v).is_some())
            .map(|(k, _)| k.clone())
            .collect();
        for m in [&mut pm, &mut sm] {
            for e in m["files"].as_array_mut().unwrap() {
                if stamped.iter().any(|n| e["name"] == n.as_str()) {
                    let e = e.as_object_mut().unwrap();
                    e.remove("bytes");
                    e.remove("sha256");
                }
            }
        }
        assert!(
            pm == sm,
            "{f:?} manifest differs at {:?}",
            diff("", &sm, &pm)
        );
        assert_eq!(
            pf.keys().collect::<Vec<_>>(),
            sf.keys().collect::<Vec<_>>(),
            "{f:?} files"
        );
        for (k, v) in &sf {
            if let Some(a) = without_time(k, v) {
                let b = without_time(k, &pf[k]).unwrap();
                assert!(a == b, "{f:?}: {k} differs at {:?}", diff("", &a, &b));
            } else {
                assert!(pf[k] == *v, "{f:?}: {k} differs between the backends");
            }
        }
        // Each export's manifest anchors `verify --since-export` on its own
        // backend.
        let o = byline(
            &pgdb,
            &["audit", "verify", "--since-export", pdir.to_str().unwrap()],
        );
        assert!(o.status.success(), "{}", text(&o));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_serve_answers_audit_summary_and_sources_like_sqlite() {
    let (w, db, pgdb) = copied_world().await;
    let model = default_model();
    let extra = ["--model", model.to_str().unwrap()];
    let (a, b) = (
        Served::start_on(&db, &extra),
        Served::start_on(&pgdb, &extra),
    );
    let c = http();
    // The answer without its request id (each server numbers its own).
    let get = |s: &Served, path: &str| {
        let (c, u) = (c.clone(), s.url(path));
        async move {
            let r = c.get(u).send().await.unwrap();
            let status = r.status().as_u16();
            let mut v = r.body_json().await;
            if let Some(e) = v.get_mut("error").and_then(|e| e.as_object_mut()) {
                e.remove("request_id");
            }
            (status, v)
        }
    };
    let (sa, ja) = get(&a, "/v1/audit/summary").await;
    let (sb, jb) = get(&b, "/v1/audit/summary").await;
    assert_eq!(sa, 200, "{ja}");
    assert_eq!((sb, &jb), (sa, &ja));
    // Every page's provenance, by page id.
    let sqlite = byline::store::Store::open_existing(&db).await.unwrap();
    let p1 = w.origin("open").url("/p1.html");
    let page = sqlite
        .audit_urls()
        .await
        .unwrap()
        .into_iter()
        .find(|u| u.url == p1)
        .and_then(|u| u.page_id)
        .expect("a crawled page");
    for id in [page.to_string(), "1".into(), "999999".into()] {
        let (sa, ja) = get(&a, &format!("/v1/sources/{id}")).await;
        let (sb, jb) = get(&b, &format!("/v1/sources/{id}")).await;
        assert_eq!((sb, &jb), (sa, &ja), "/v1/sources/{id}");
        if id == page.to_string() {
            assert_eq!(sa, 200, "{ja}");
        }
    }
}
