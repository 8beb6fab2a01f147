//! The consent fixture world served from a private copy (so a test can
//! change an origin's files while it is being served) and crawled by the
//! real crawler into a real corpus.

use std::path::{Path, PathBuf};

use super::consent_site::{Origin, fixture_root, serve_dir};
use super::crawl::{Corpus, config, corpus, crawl};

/// Every origin of `tests/fixtures/consent/`.
pub const ORIGINS: [&str; 11] = [
    "open", "aiblock", "fetchers", "partial", "prefs", "aipref", "tdm", "tdmdown", "aitxt", "rsl",
    "private",
];

/// The served copy of the world and the corpus it was crawled into.
pub struct World {
    /// Root of the copy (one directory per origin).
    pub root: tempfile::TempDir,
    pub origins: Vec<Origin>,
    pub corpus: Corpus,
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), t).unwrap();
        }
    }
}

impl World {
    /// The served origin called `name`.
    pub fn origin(&self, name: &str) -> &Origin {
        self.origins.iter().find(|o| o.name == name).unwrap()
    }

    /// The served directory of `name` (edit files here to change the site).
    pub fn dir(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    /// Crawls every origin again into the same corpus.
    pub async fn crawl_again(&self) {
        let seeds: Vec<String> = self.origins.iter().map(|o| o.url("/")).collect();
        crawl(&self.corpus, config(&seeds)).await;
    }
}

/// Copies `names` of the fixture world, serves them and crawls them all.
pub async fn crawled(names: &[&str]) -> World {
    crawled_with(names, |_| {}).await
}

/// [`crawled`] with the first crawl's configuration changed by `f`.
pub async fn crawled_with(
    names: &[&str],
    f: impl FnOnce(&mut byline::crawl::CrawlConfig),
) -> World {
    let root = tempfile::tempdir().unwrap();
    let mut origins = Vec::new();
    for n in names {
        copy_dir(&fixture_root().join(n), &root.path().join(n));
        origins.push(serve_dir(n, root.path().join(n)).await);
    }
    let w = World {
        root,
        origins,
        corpus: corpus().await,
    };
    let seeds: Vec<String> = w.origins.iter().map(|o| o.url("/")).collect();
    let mut cfg = config(&seeds);
    f(&mut cfg);
    crawl(&w.corpus, cfg).await;
    w
}
