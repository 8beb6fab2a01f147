//! One crawl of the bundled sample site shared by the answer tests: served
//! on 127.0.0.1 in a thread of its own, crawled once with the real
//! `byline crawl` (which also builds the passage index); each test works on
//! its own copy of the database.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use byline::serve::sample_site::serve_sample_site;

use super::byline_bin;

struct Crawled {
    _dir: tempfile::TempDir,
    db: PathBuf,
    origin: String,
}

static CRAWLED: OnceLock<Crawled> = OnceLock::new();

fn crawl() -> Crawled {
    let (tx, rx) = std::sync::mpsc::channel();
    // The site keeps serving for the life of the test process.
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the sample site");
        rt.block_on(async move {
            let (addr, server) = serve_sample_site("127.0.0.1:0".parse().unwrap())
                .await
                .expect("serving the sample site");
            tx.send(addr).unwrap();
            let _ = server.await;
        });
    });
    let addr = rx.recv().expect("the sample site's address");
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("site.db");
    let origin = format!("http://{addr}");
    let out = Command::new(byline_bin())
        .arg("--db")
        .arg(&db)
        .args(["crawl", "--delay-ms", "0"])
        .arg(format!("{origin}/"))
        .output()
        .expect("running byline crawl");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "crawl failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("passages in the index"), "{stdout}");
    Crawled {
        _dir: dir,
        db,
        origin,
    }
}

/// A fresh copy of the crawled and indexed sample site in `dir`; returns
/// the database path and the site's origin (`http://127.0.0.1:PORT`).
pub fn sample_db(dir: &Path) -> (PathBuf, String) {
    let c = CRAWLED.get_or_init(crawl);
    let copy = dir.join("answers.db");
    std::fs::copy(&c.db, &copy).expect("copying the crawled database");
    (copy, c.origin.clone())
}
