//! Issue #26: the passage index pass adds a chunk of pages to the FTS index
//! with one statement, last, so FTS5 flushes its pending terms once per
//! chunk (one new segment), not once per page or per INSERT statement (a
//! statement that writes to a table FTS5 is part of opens a statement
//! savepoint, and FTS5 flushes on every savepoint).

use byline::store::passages::NewPassage;

use crate::support::crawl::{config, corpus, crawl, scalar_i64, strings};
use crate::support::server::{Route, TestServer, add_chain_site};

/// Segments in the FTS5 index: the second varint of the structure record
/// (row 10 of `passages_fts_data`: a 4-byte cookie, an optional 4-byte
/// version-2 marker, then varints nLevel and nSegment).
async fn fts_segments(pool: &sqlx::SqlitePool) -> u64 {
    let block: Vec<u8> = sqlx::query_scalar("SELECT block FROM passages_fts_data WHERE id = 10")
        .fetch_one(pool)
        .await
        .expect("structure record");
    let mut i = 4;
    if block.get(4..8) == Some(&[0xff, 0, 0, 1][..]) {
        i = 8;
    }
    let mut varint = || {
        let mut v: u64 = 0;
        loop {
            let b = block[i];
            i += 1;
            v = (v << 7) | u64::from(b & 0x7f);
            if b & 0x80 == 0 {
                return v;
            }
        }
    };
    let _levels = varint();
    varint()
}

/// A read-write pool on the corpus with FTS5's merging turned off, so
/// every segment written stays visible to [`fts_segments`].
async fn without_merges(path: &std::path::Path) -> sqlx::SqlitePool {
    let rw =
        sqlx::SqlitePool::connect_with(sqlx::sqlite::SqliteConnectOptions::new().filename(path))
            .await
            .unwrap();
    for sql in [
        "INSERT INTO passages_fts (passages_fts, rank) VALUES ('automerge', 0)",
        "INSERT INTO passages_fts (passages_fts, rank) VALUES ('crisismerge', 1000)",
    ] {
        sqlx::query(sql).execute(&rw).await.unwrap();
    }
    rw
}

/// NUL, control characters and characters JSON escapes.
const ODD_TEXTS: [&str; 5] = [
    "a\u{0}b",
    "\u{0}",
    "tab\tnl\ncr\r\u{1}\u{1f}\u{7f}",
    "quote \" backslash \\ slash /",
    "\u{e9} \u{fc} \u{4e2d} \u{1F600} \u{2028}\u{2029}\u{feff}",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_of_pages_is_flushed_into_one_fts_segment() {
    let s = TestServer::start().await;
    add_chain_site(&s, 24);
    let c = corpus().await;
    let (sum, _) = crawl(&c, config(&[s.url("/")])).await;
    assert_eq!(sum.pages, 25, "{sum:?}");

    let rw = without_merges(&c.path).await;
    let before = fts_segments(&rw).await;

    // 25 pages: one chunk of the index pass.
    let report = byline::index::refresh(&c.store).await.unwrap();
    assert_eq!(report.pages, 25, "{report:?}");
    assert!(report.passages >= 25, "{report:?}");
    let after = fts_segments(&rw).await;
    assert_eq!(after - before, 1, "segments before {before}, after {after}");

    // Replacing the passages of pages already indexed (old rows deleted
    // from the index by trigger, new ones added): a fixed number of
    // flushes, and the index matches the table.
    let pages = c.store.pages_to_index(0, 100, usize::MAX).await.unwrap();
    assert!(pages.is_empty(), "every page is indexed");
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM pages ORDER BY id LIMIT 3")
        .fetch_all(&rw)
        .await
        .unwrap();
    let total = scalar_i64(&rw, "SELECT count(*) FROM passages").await;
    let old = scalar_i64(
        &rw,
        &format!(
            "SELECT count(*) FROM passages WHERE page_id IN ({}, {}, {})",
            ids[0], ids[1], ids[2]
        ),
    )
    .await;
    let mut chunk = Vec::new();
    for &page_id in &ids {
        let page = byline::store::passages::PageToIndex {
            page_id,
            url: String::new(),
            title: format!("Retitled {page_id}"),
            site_name: None,
            text: String::new(),
            text_sha256: "0".repeat(64),
            nosnippet_spans: Vec::new(),
        };
        let mut passages: Vec<NewPassage> = (0..3)
            .map(|k| NewPassage {
                start_char: k * 10,
                end_char: k * 10 + 9,
                text: format!("zebra{page_id} quoted \"text\" \u{e9}\u{1F600} part {k}\n"),
            })
            .collect();
        // Bytes a text/plain body may carry are stored as they are.
        passages.extend(ODD_TEXTS.iter().zip(0i64..).map(|(t, k)| NewPassage {
            start_char: 100 + k,
            end_char: 101 + k,
            text: format!("odd{page_id} {t}"),
        }));
        chunk.push((page, passages));
    }
    c.store.replace_passages(&chunk, 7).await.unwrap();
    let odd: Vec<Vec<u8>> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT CAST(text AS BLOB) FROM passages WHERE page_id = {} AND ordinal >= 3 ORDER BY id",
        ids[1]
    )))
    .fetch_all(&rw)
    .await
    .unwrap();
    let want: Vec<Vec<u8>> = ODD_TEXTS
        .iter()
        .map(|t| format!("odd{} {t}", ids[1]).into_bytes())
        .collect();
    assert_eq!(odd, want);
    // At most two: the deletions are flushed when the INSERT opens its
    // statement savepoint, the insertions at commit.
    let replaced = fts_segments(&rw).await - after;
    assert!((1..=2).contains(&replaced), "{replaced} new segments");
    sqlx::query("INSERT INTO passages_fts (passages_fts) VALUES ('integrity-check')")
        .execute(&rw)
        .await
        .expect("the FTS index matches the passages");
    let first = ids[0];
    assert_eq!(
        strings(
            &rw,
            &format!(
                "SELECT ordinal || '|' || start_char || '|' || end_char || '|' || text || '|' || title
                    || '|' || indexed_at FROM passages WHERE page_id = {first} AND ordinal < 3 ORDER BY id"
            )
        )
        .await,
        (0..3)
            .map(|k| format!(
                "{k}|{}|{}|zebra{first} quoted \"text\" \u{e9}\u{1F600} part {k}\n|Retitled {first}|7",
                k * 10,
                k * 10 + 9
            ))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        scalar_i64(
            &rw,
            &format!("SELECT count(*) FROM passages_fts WHERE passages_fts MATCH 'zebra{first}'")
        )
        .await,
        3
    );
    assert_eq!(
        scalar_i64(&rw, "SELECT count(*) FROM passages").await,
        total - old + 3 * (3 + ODD_TEXTS.len() as i64)
    );
    assert_eq!(
        scalar_i64(
            &rw,
            &format!("SELECT count(*) FROM passages_fts WHERE passages_fts MATCH 'odd{first}'")
        )
        .await,
        ODD_TEXTS.len() as i64
    );
    rw.close().await;
}

/// A chunk whose new terms take more than FTS5's default 1 MiB of pending
/// data (some 60 bytes per distinct term, here 30,000 of them in 220 KB
/// of text) is still written as one segment: the corpus sets `hashsize`
/// to 4 MiB, so the pending terms are written out once, at commit. (With
/// the default, this chunk was written as two segments.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_with_over_a_mebibyte_of_pending_terms_is_one_fts_segment() {
    let s = TestServer::start().await;
    add_chain_site(&s, 4);
    let c = corpus().await;
    let (sum, _) = crawl(&c, config(&[s.url("/")])).await;
    assert_eq!(sum.pages, 5, "{sum:?}");
    let rw = without_merges(&c.path).await;
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM pages ORDER BY id")
        .fetch_all(&rw)
        .await
        .unwrap();
    let before = fts_segments(&rw).await;
    let mut term = 0u32;
    let mut text_bytes = 0usize;
    let chunk: Vec<_> = ids
        .iter()
        .map(|&page_id| {
            let passages: Vec<NewPassage> = (0..120)
                .map(|k| {
                    let words: Vec<String> = (0..50)
                        .map(|_| {
                            term += 1;
                            format!("t{term}q")
                        })
                        .collect();
                    let text = words.join(" ");
                    text_bytes += text.len();
                    NewPassage {
                        start_char: k * 1000,
                        end_char: k * 1000 + 999,
                        text,
                    }
                })
                .collect();
            let page = byline::store::passages::PageToIndex {
                page_id,
                url: String::new(),
                title: format!("Page {page_id}"),
                site_name: None,
                text: String::new(),
                text_sha256: "0".repeat(64),
                nosnippet_spans: Vec::new(),
            };
            (page, passages)
        })
        .collect();
    assert_eq!(term, 5 * 120 * 50);
    assert!(text_bytes > 200_000, "{text_bytes}");
    c.store.replace_passages(&chunk, 7).await.unwrap();
    let added = fts_segments(&rw).await - before;
    assert_eq!(added, 1, "{added} segments for one chunk");
    assert_eq!(
        scalar_i64(
            &rw,
            "SELECT count(*) FROM passages_fts WHERE passages_fts MATCH 't29999q'"
        )
        .await,
        1
    );
    sqlx::query("INSERT INTO passages_fts (passages_fts) VALUES ('integrity-check')")
        .execute(&rw)
        .await
        .expect("the FTS index matches the passages");
    rw.close().await;
}

/// Text of `words` sentences, each one word of about 1,000 letters (from
/// an alphabet of 8 such words, starting at the `page`th): page text in
/// bulk whose FTS terms are few, different for each page.
fn long_word_text(page: usize, words: usize) -> String {
    (0..words)
        .map(|i| {
            let letter = char::from(b'a' + ((i + page) % 8) as u8);
            format!("{}. ", letter.to_string().repeat(1000))
        })
        .collect()
}

/// The pass reads pages in chunks of at most about 2 MiB of text (the
/// page that reaches it closes the chunk), whatever their number: seven
/// pages of 600 KB are two chunks, so two FTS segments, and each page
/// is read once. `pages_to_index` stops at the byte budget it is given,
/// never returning fewer than one page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_pass_reads_pages_in_chunks_bounded_by_text_bytes() {
    let s = TestServer::start().await;
    let links: String = (1..=6)
        .map(|i| format!("<a href=\"/big{i}\">big {i}</a> "))
        .collect();
    s.route(
        "/",
        Route::html(&format!(
            "<html><head><title>Home</title></head><body><main><p>Home.</p>{links}</main></body></html>"
        )),
    );
    for i in 1..=6 {
        s.route(
            &format!("/big{i}"),
            Route::html(&format!(
                "<html><head><title>Big {i}</title></head><body><main><p>{}</p></main></body></html>",
                long_word_text(i, 600)
            )),
        );
    }
    let c = corpus().await;
    let (sum, _) = crawl(&c, config(&[s.url("/")])).await;
    assert_eq!(sum.pages, 7, "{sum:?}");
    let rw = without_merges(&c.path).await;
    let sizes: Vec<i64> =
        sqlx::query_scalar("SELECT length(CAST(text AS BLOB)) FROM pages ORDER BY id")
            .fetch_all(&rw)
            .await
            .unwrap();
    assert!(sizes[1..].iter().all(|&n| n > 600_000), "{sizes:?}");
    let size = |k: usize| usize::try_from(sizes[k]).unwrap();

    // The budget: the page that reaches it is the last one returned.
    let n = |v: &Vec<byline::store::passages::PageToIndex>| v.len();
    assert_eq!(n(&c.store.pages_to_index(0, 100, 1).await.unwrap()), 1);
    assert_eq!(
        n(&c.store.pages_to_index(0, 100, size(0)).await.unwrap()),
        1
    );
    assert_eq!(
        n(&c.store.pages_to_index(0, 100, size(0) + 1).await.unwrap()),
        2
    );
    assert_eq!(
        n(&c.store.pages_to_index(0, 3, usize::MAX).await.unwrap()),
        3
    );
    let all = c.store.pages_to_index(0, 100, usize::MAX).await.unwrap();
    assert_eq!(n(&all), 7);
    let after_first = c
        .store
        .pages_to_index(all[0].page_id, 100, 1)
        .await
        .unwrap();
    assert_eq!(after_first[0].page_id, all[1].page_id);

    let before = fts_segments(&rw).await;
    let report = byline::index::refresh(&c.store).await.unwrap();
    assert_eq!(report.pages, 7, "{report:?}");
    let added = fts_segments(&rw).await - before;
    assert_eq!(added, 2, "{added} segments for 7 pages of {sizes:?} bytes");
    assert_eq!(
        scalar_i64(&rw, "SELECT count(DISTINCT page_id) FROM passages").await,
        7
    );
    rw.close().await;
}
