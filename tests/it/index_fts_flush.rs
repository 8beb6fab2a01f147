//! Issue #26: the passage index pass adds a chunk of pages to the FTS index
//! with one statement, last, so FTS5 flushes its pending terms once per
//! chunk (one new segment), not once per page or per INSERT statement (a
//! statement that writes to a table FTS5 is part of opens a statement
//! savepoint, and FTS5 flushes on every savepoint).

use byline::store::passages::NewPassage;

use crate::support::crawl::{config, corpus, crawl, scalar_i64, strings};
use crate::support::server::{TestServer, add_chain_site};

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

    let rw =
        sqlx::SqlitePool::connect_with(sqlx::sqlite::SqliteConnectOptions::new().filename(&c.path))
            .await
            .unwrap();
    // No merging, so every flush stays visible as a segment.
    for sql in [
        "INSERT INTO passages_fts (passages_fts, rank) VALUES ('automerge', 0)",
        "INSERT INTO passages_fts (passages_fts, rank) VALUES ('crisismerge', 1000)",
    ] {
        sqlx::query(sql).execute(&rw).await.unwrap();
    }
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
    let pages = c.store.pages_to_index(0, 100).await.unwrap();
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
