-- Issue #26: a crawl's steady-state cost is the b-tree pages each batch of
-- finished pages dirties, and each dirty page is written to the WAL and
-- again by the checkpoint. Three changes, no column changed:
--
-- 1. `frontier_by_origin (origin, state)` is a prefix of
--    `frontier_ready_by_origin`, and every lookup by origin and state asks
--    for queued rows; it is dropped.
-- 2. `frontier_ready_by_origin` holds only queued rows (the scheduler's
--    only question is "the next queued entry of this origin"). A URL
--    leaves it when claimed instead of moving through an in_flight and a
--    done region of every origin, both rewritten by every batch.
-- 3. Raw captures are stored in insertion order. As a WITHOUT ROWID table
--    keyed by the body's sha256, each new capture (a kilobyte or more of
--    compressed bytes) went to a random leaf of one of the largest
--    b-trees, often splitting it. In a rowid table the bytes are appended
--    and only the small unique index on `sha256` takes a random insert;
--    `sha256` is still the key every reader and `forget` use. The rowid is
--    SQLite's implicit one, not a column: the table's columns stay those
--    of the PostgreSQL schema (`byline store copy` compares them).
DROP INDEX frontier_by_origin;
DROP INDEX frontier_ready_by_origin;
CREATE INDEX frontier_ready_by_origin ON frontier (origin, depth, id) WHERE state = 'queued';

CREATE TABLE raw_captures_by_rowid (
    sha256   TEXT NOT NULL UNIQUE,          -- hex sha256 of the body (= fetches.body_sha256)
    encoding TEXT NOT NULL,                 -- how `bytes` is stored: 'gzip'
    size     INTEGER NOT NULL,              -- bytes of the body (before compression)
    bytes    BLOB NOT NULL
);
INSERT INTO raw_captures_by_rowid (sha256, encoding, size, bytes)
SELECT sha256, encoding, size, bytes FROM raw_captures;
DROP TABLE raw_captures;
ALTER TABLE raw_captures_by_rowid RENAME TO raw_captures;
