//! Helpers for crawler tests: a fast config, a crawl into a fresh corpus,
//! and read-only SQL probes of the result.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use byline::crawl::{self, CrawlConfig, Event, Summary};
use byline::store::Store;
use sqlx::Row;
use url::Url;

/// A config for tests: no politeness floor, short timeouts and back-offs.
pub fn config(seeds: &[String]) -> CrawlConfig {
    let mut c = CrawlConfig::new(
        seeds
            .iter()
            .map(|s| Url::parse(s).expect("seed url"))
            .collect(),
    );
    c.min_delay_ms = 0;
    c.total_timeout_ms = 5_000;
    c.read_timeout_ms = 3_000;
    c.connect_timeout_ms = 2_000;
    c.backoff_base_ms = 200;
    c.robots_retry_ms = 1_000;
    c.max_attempts = 2;
    c.contact_url = Some("http://127.0.0.1/contact".into());
    c
}

/// A corpus in a temp dir.
pub struct Corpus {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
    pub store: Store,
}

pub async fn corpus() -> Corpus {
    let dir = super::tempdir();
    let path = dir.path().join("corpus.db");
    let store = Store::open(&path).await.expect("open corpus");
    Corpus { dir, path, store }
}

/// Runs a crawl, returning the summary and every event.
pub async fn crawl(c: &Corpus, cfg: CrawlConfig) -> (Summary, Vec<Event>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = events.clone();
    let s = crawl::run(c.store.clone(), cfg, move |e| {
        ev.lock().unwrap().push(e.clone())
    })
    .await
    .expect("crawl runs");
    let evs = events.lock().unwrap().clone();
    (s, evs)
}

/// Opens a read-only pool on a corpus file for assertions.
pub async fn probe(path: &Path) -> sqlx::SqlitePool {
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .read_only(true);
    sqlx::SqlitePool::connect_with(opts)
        .await
        .expect("probe pool")
}

pub async fn scalar_i64(pool: &sqlx::SqlitePool, sql: &str) -> i64 {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(pool)
        .await
        .expect(sql)
        .get(0)
}

pub async fn strings(pool: &sqlx::SqlitePool, sql: &str) -> Vec<String> {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_all(pool)
        .await
        .expect(sql)
        .into_iter()
        .map(|r| r.get::<Option<String>, _>(0).unwrap_or_default())
        .collect()
}

/// Records an answer citing the first passage found for `word` (as `ask`
/// would store it); returns its id.
pub async fn answer_citing(store: &byline::store::Store, word: &str) -> i64 {
    use byline::store::answers::{NewAnswer, NewCitation};
    let hit = store
        .search_passages(word, None, 1)
        .await
        .unwrap()
        .pop()
        .unwrap_or_else(|| panic!("no passage for {word}"));
    let q = format!("What is the {word}?");
    store
        .record_answer(&NewAnswer {
            asked_at: 1,
            question: &q,
            answer: "It is the subject of a page [1].",
            draft: "It is the subject of a page [1].",
            refused: false,
            reason: None,
            model_path: "m.gguf",
            model_sha256: "00",
            policy_sha256: Some(&hit.policy_sha256),
            seconds: 0.1,
            json: "{}",
            citations: vec![NewCitation {
                n: 1,
                page_id: hit.page_id,
                passage_id: hit.passage_id,
                url: &hit.url,
                verdict_id: hit.verdict_id,
                policy_sha256: &hit.policy_sha256,
                licence: None,
                quote: &hit.text,
                start_char: hit.start_char,
                end_char: hit.end_char,
                support: 1.0,
            }],
        })
        .await
        .unwrap()
}

/// The URLs retrieval finds for `word` (at most 20).
pub async fn found(store: &byline::store::Store, word: &str) -> Vec<String> {
    store
        .search_passages(word, None, 20)
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.url)
        .collect()
}

/// Runs `byline --db DB crawl ARGS... SEEDS...` as a child process with
/// `RUST_LOG` set to `log` (the statement-counting tests read its stderr);
/// its output.
pub async fn crawl_logged(
    db: &Path,
    args: &[&str],
    seeds: &[String],
    log: &str,
) -> std::process::Output {
    let mut cmd = std::process::Command::new(super::byline_bin());
    cmd.arg("--db")
        .arg(db)
        .arg("crawl")
        .args(args)
        .args(seeds)
        .env("RUST_LOG", log)
        .env("NO_COLOR", "1");
    tokio::task::spawn_blocking(move || cmd.output().expect("running byline"))
        .await
        .expect("the crawl's thread")
}
