-- Pages that now answer 404 or 410 (issue #19): `audit recheck` marks them
-- gone, retrieval never serves their passages, and the answers citing them
-- are flagged (answers.flag_revocation_id then holds the seq of the
-- 'page_gone' audit event). A page that answers 2xx on a later recheck is
-- live again (its row is deleted); its answers stay flagged.
CREATE TABLE gone_pages (
    page_id   INTEGER PRIMARY KEY NOT NULL REFERENCES pages (id),
    url       TEXT NOT NULL,
    status    INTEGER NOT NULL,          -- the HTTP status seen: 404 or 410
    gone_at   INTEGER NOT NULL,          -- unix seconds
    run_id    INTEGER,                   -- the recheck's crawl_runs row
    event_seq INTEGER NOT NULL           -- the 'page_gone' audit event
);
