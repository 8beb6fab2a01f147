//! Runs the real `byline serve` over a corpus crawled from the bundled
//! sample site, for the service tests.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use byline::serve::sample_site::serve_sample_site;

use super::byline_bin;

/// A corpus of the sample site crawled once per test binary under the
/// default policy (the sample site is served for the crawl only); each test
/// copies it so tests never share a database file.
pub fn sample_corpus() -> &'static (tempfile::TempDir, PathBuf, String) {
    static CORPUS: OnceLock<(tempfile::TempDir, PathBuf, String)> = OnceLock::new();
    CORPUS.get_or_init(|| {
        // Its own thread: callers may be inside a tokio runtime.
        std::thread::spawn(build_sample_corpus).join().unwrap()
    })
}

fn build_sample_corpus() -> (tempfile::TempDir, PathBuf, String) {
    {
        let dir = super::tempdir();
        let db = dir.path().join("sample.db");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let base = rt.block_on(async {
            let (addr, _task) = serve_sample_site("127.0.0.1:0".parse().unwrap())
                .await
                .unwrap();
            let base = format!("http://{addr}");
            let db2 = db.clone();
            let start = format!("{base}/");
            let out = tokio::task::spawn_blocking(move || {
                Command::new(byline_bin())
                    .arg("--db")
                    .arg(&db2)
                    .arg("crawl")
                    .arg(&start)
                    .output()
                    .unwrap()
            })
            .await
            .unwrap();
            assert!(
                out.status.success(),
                "crawl failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            base
        });
        rt.shutdown_background();
        (dir, db, base)
    }
}

/// A copy of the sample corpus in `dir`.
pub fn copy_corpus(dir: &Path) -> PathBuf {
    let (_, src, _) = sample_corpus();
    let dst = dir.join("corpus.db");
    // The crawl process has exited, so the WAL is checkpointed into the file;
    // copy the side files too in case it is not.
    std::fs::copy(src, &dst).unwrap();
    for ext in ["-wal", "-shm"] {
        let s = PathBuf::from(format!("{}{ext}", src.display()));
        if s.exists() {
            std::fs::copy(&s, format!("{}{ext}", dst.display())).unwrap();
        }
    }
    dst
}

/// The sample site's base URL as the corpus recorded it.
pub fn corpus_base() -> &'static str {
    &sample_corpus().2
}

/// A running `byline serve` process; killed when dropped.
pub struct Served {
    pub child: Child,
    pub addr: SocketAddr,
    pub db: PathBuf,
    /// Where stderr goes when started with [`Served::start_logged`].
    log: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

impl Served {
    /// Starts `byline serve --addr 127.0.0.1:0 <extra>` on a fresh copy of
    /// the sample corpus and waits for its "listening on" line.
    pub fn start(extra: &[&str]) -> Served {
        Served::spawn(extra, &[], false)
    }

    /// Like [`Served::start`] with extra environment variables, and stderr
    /// (the server's log) kept in a file for [`Served::log`]; printed if
    /// the test fails.
    pub fn start_logged(extra: &[&str], env: &[(&str, &str)]) -> Served {
        Served::spawn(extra, env, true)
    }

    /// Starts `byline --db DB serve --addr 127.0.0.1:0 <extra>` on the
    /// corpus at `db` as it is (an SQLite file or a `postgres://` URL).
    pub fn start_on(db: &Path, extra: &[&str]) -> Served {
        let dir = super::tempdir();
        Served::spawn_at(dir, db.to_path_buf(), extra, &[], false)
    }

    fn spawn(extra: &[&str], env: &[(&str, &str)], logged: bool) -> Served {
        let dir = super::tempdir();
        let db = copy_corpus(dir.path());
        Served::spawn_at(dir, db, extra, env, logged)
    }

    fn spawn_at(
        dir: tempfile::TempDir,
        db: PathBuf,
        extra: &[&str],
        env: &[(&str, &str)],
        logged: bool,
    ) -> Served {
        let log = logged.then(|| dir.path().join("serve.log"));
        let stderr = match &log {
            Some(p) => Stdio::from(std::fs::File::create(p).unwrap()),
            None => Stdio::inherit(),
        };
        let mut child = Command::new(byline_bin())
            .arg("--db")
            .arg(&db)
            .args(["serve", "--addr", "127.0.0.1:0"])
            .args(extra)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("starting byline serve");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let t0 = Instant::now();
        let addr = loop {
            let line = lines
                .next()
                .unwrap_or_else(|| {
                    let log = log.as_ref().map(std::fs::read_to_string);
                    panic!("byline serve exited before listening; log: {log:?}")
                })
                .unwrap();
            if let Some(rest) = line.split("listening on http://").nth(1) {
                break rest.trim_end_matches('/').parse().unwrap();
            }
            assert!(t0.elapsed() < Duration::from_secs(120), "no listening line");
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Served {
            child,
            addr,
            db,
            log,
            _dir: dir,
        }
    }

    /// What the server wrote to stderr so far (started with
    /// [`Served::start_logged`]).
    pub fn log(&self) -> String {
        let p = self.log.as_ref().expect("started with start_logged");
        std::fs::read_to_string(p).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends SIGTERM (graceful shutdown).
    pub fn terminate(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -TERM failed");
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() && self.log.is_some() {
            eprintln!("--- byline serve log ---\n{}", self.log());
        }
    }
}

/// A reqwest client that never uses a proxy.
pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(600))
        .build()
        .unwrap()
}

/// Parses a Server-Sent Events body into (event, data) pairs.
pub fn sse_events(body: &str) -> Vec<(String, String)> {
    body.split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .filter_map(|block| {
            let mut event = "message".to_string();
            let mut data = String::new();
            for line in block.lines() {
                if let Some(e) = line.strip_prefix("event:") {
                    event = e.trim().to_string();
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push_str(d.strip_prefix(' ').unwrap_or(d));
                }
            }
            (!data.is_empty()).then_some((event, data))
        })
        .collect()
}

/// A value from `/metrics` text, by exact series name (with labels).
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// JSON request bodies without reqwest's `json` feature.
pub trait JsonBody {
    fn json_body(self, v: &serde_json::Value) -> Self;
}

impl JsonBody for reqwest::RequestBuilder {
    fn json_body(self, v: &serde_json::Value) -> Self {
        self.header("content-type", "application/json")
            .body(v.to_string())
    }
}

/// JSON response bodies without reqwest's `json` feature.
pub trait BodyJson {
    fn body_json(self) -> impl std::future::Future<Output = serde_json::Value>;
}

impl BodyJson for reqwest::Response {
    async fn body_json(self) -> serde_json::Value {
        let bytes = self.bytes().await.expect("reading the body");
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
    }
}
