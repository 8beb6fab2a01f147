//! A small site served from a temp dir (so a test can change its
//! robots.txt and headers between a crawl and `audit recheck`), crawled by
//! the real crawler into a real corpus and indexed.

use std::path::PathBuf;

use super::consent_site::{Origin, serve_dir};
use super::crawl::{Corpus, config, corpus, crawl};

/// Pages of the site: file name and the word only that page contains.
pub const PAGES: [(&str, &str); 4] = [
    ("alpaca.html", "alpaca"),
    ("basalt.html", "basalt"),
    ("cedar.html", "cedar"),
    ("dolphin.html", "dolphin"),
];

/// The served site and its corpus.
pub struct Site {
    pub dir: tempfile::TempDir,
    pub origin: Origin,
    pub corpus: Corpus,
}

impl Site {
    /// A file of the served site (write it to change the site).
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The URL of `name` as the crawl met it.
    pub fn url(&self, name: &str) -> String {
        self.origin.url(&format!("/{name}"))
    }
}

fn page(word: &str) -> String {
    format!(
        "<!doctype html><html lang=en><head><title>All about the {word}</title></head><body><main>\
         <h1>The {word}</h1><p>The {word} is the subject of this page. Facts about the {word} \
         are collected here for readers who want to learn about the {word} in detail.</p>\
         <p>Every {word} fact on this page was checked twice.</p></main></body></html>"
    )
}

/// Writes the site, serves it, crawls it and indexes the passages.
pub async fn crawled() -> Site {
    let dir = super::tempdir();
    let mut links = String::new();
    for (i, (f, w)) in PAGES.iter().enumerate() {
        std::fs::write(dir.path().join(f), page(w)).unwrap();
        links.push_str(&format!("<li><a href=\"/{f}\">page {i}</a></li>"));
    }
    std::fs::write(
        dir.path().join("index.html"),
        format!(
            "<!doctype html><html lang=en><head><title>Index</title></head><body><main>\
             <p>An index of animals and things.</p><ul>{links}</ul></main></body></html>"
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("robots.txt"), "User-agent: *\nAllow: /\n").unwrap();
    let origin = serve_dir("recheck", dir.path().to_path_buf()).await;
    let c = corpus().await;
    crawl(&c, config(&[origin.url("/")])).await;
    byline::index::refresh(&c.store).await.expect("index");
    Site {
        dir,
        origin,
        corpus: c,
    }
}
