-- Raw captures: each page's HTTP response body as fetched (content-encoding
-- decoded by the client, transfer framing removed, cut at the crawl's max
-- body size), compressed and content-addressed, so a body shared by several
-- pages is stored once. `byline forget` deletes a capture no remaining page
-- uses. A row is checked by its key: the sha256 of the decompressed bytes.
CREATE TABLE raw_captures (
    sha256   TEXT PRIMARY KEY,              -- hex sha256 of the body (= fetches.body_sha256)
    encoding TEXT NOT NULL,                 -- how `bytes` is stored: 'gzip'
    size     INTEGER NOT NULL,              -- bytes of the body (before compression)
    bytes    BLOB NOT NULL
) WITHOUT ROWID;

-- Which fetch a capture belongs to, and the HTTP version of its status line
-- (status and headers are in `fetches`). Logged with the `fetch` audit event;
-- it stays after `forget` (like pages.text_sha256), naming what was erased.
CREATE TABLE fetch_raw (
    fetch_id     INTEGER PRIMARY KEY REFERENCES fetches (id),
    raw_sha256   TEXT NOT NULL,
    http_version TEXT NOT NULL              -- 'HTTP/1.1', 'HTTP/2', ...
);
CREATE INDEX fetch_raw_by_sha ON fetch_raw (raw_sha256);
