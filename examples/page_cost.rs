//! CPU per page of the crawler's page side, without HTTP or the store:
//! parse, extraction and the HTML consent rows over every `*.html` file
//! under the given directories (e.g. the SQLite and PostgreSQL manuals).
//!
//! `cargo run --release --example page_cost -- [--rounds N] DIR...`
//!
//! Prints the time per page of each stage (best of the rounds) and a
//! checksum of what was produced, so two builds can be compared on the same
//! input: same checksum, same output.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn html_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            html_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "html" || x == "htm") {
            out.push(p);
        }
    }
}

fn main() {
    let mut rounds = 3usize;
    let mut dirs = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--rounds" {
            rounds = args.next().and_then(|n| n.parse().ok()).unwrap_or(3);
        } else {
            dirs.push(PathBuf::from(a));
        }
    }
    let mut files = Vec::new();
    for d in &dirs {
        html_files(d, &mut files);
    }
    let pages: Vec<(url::Url, String)> = files
        .iter()
        .filter_map(|p| {
            let bytes = std::fs::read(p).ok()?;
            let url = url::Url::parse(&format!("http://127.0.0.1/{}", p.display())).ok()?;
            Some((url, String::from_utf8_lossy(&bytes).into_owned()))
        })
        .collect();
    let n = pages.len().max(1) as f64;
    let mut best = [Duration::MAX; 4];
    let mut sum = String::new();
    for round in 0..rounds {
        let mut t = [Duration::ZERO; 4];
        let mut h = sha2_sum::Sum::default();
        for (url, text) in &pages {
            let a = Instant::now();
            let doc = scraper::Html::parse_document(text);
            let b = Instant::now();
            let x = byline::crawl::extract::extract_doc(&doc, url);
            let c = Instant::now();
            let rows = byline::policy::page::html_rows(url.as_str(), &doc);
            let d = Instant::now();
            drop(doc);
            let e = Instant::now();
            t[0] += b - a;
            t[1] += c - b;
            t[2] += d - c;
            t[3] += e - d;
            h.add(&format!("{x:?}"));
            h.add(&format!("{rows:?}"));
        }
        for (b, t) in best.iter_mut().zip(t) {
            *b = (*b).min(t);
        }
        if round == 0 {
            sum = h.hex();
        }
    }
    let us = |d: Duration| d.as_secs_f64() * 1e6 / n;
    println!(
        "pages {} parse {:.1} us extract {:.1} us rows {:.1} us drop {:.1} us total {:.1} us/page checksum {}",
        pages.len(),
        us(best[0]),
        us(best[1]),
        us(best[2]),
        us(best[3]),
        us(best[0] + best[1] + best[2] + best[3]),
        sum
    );
}

mod sha2_sum {
    use sha2::{Digest, Sha256};
    #[derive(Default)]
    pub struct Sum(Sha256);
    impl Sum {
        pub fn add(&mut self, s: &str) {
            self.0.update(s.as_bytes());
        }
        pub fn hex(self) -> String {
            hex::encode(self.0.finalize())
        }
    }
}
