-- Origins whose pages no longer exist (issue #19): retrieval never serves a
-- passage of a page under a gone origin, so no answer cites a dead URL.
-- `byline demo` marks the sample site's previous origin gone when it serves
-- the site somewhere else (its port changed); serving it there again marks
-- it live (the row is deleted). The demo's current origin is kept in
-- corpus_meta under the key 'demo_origin'.
CREATE TABLE gone_origins (
    origin  TEXT PRIMARY KEY NOT NULL,   -- scheme://host[:port], as frontier.origin
    gone_at INTEGER NOT NULL,            -- unix seconds
    reason  TEXT NOT NULL
);
