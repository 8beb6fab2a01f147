-- Issue #25: re-crawl (`byline crawl --refresh`, `audit recheck --bodies`).
--
-- A stored page whose body changed when it was fetched again: the page row
-- is brought up to the new body (text, title, fetch_id, ...; passages are
-- re-split from it) and one row here records the change: the fetches
-- before and after, the text and body hashes before and after, and which
-- signal codes (verdict reasons) appeared (+code) or disappeared (-code).
-- The first version of a page is its original crawl (prev_fetch_id of its
-- first row here). Logged with the `page.version` audit event.
CREATE TABLE page_versions (
    id                 INTEGER PRIMARY KEY,
    page_id            INTEGER NOT NULL REFERENCES pages (id),
    url                TEXT NOT NULL,            -- the page's URL as stored (pages.url)
    run_id             INTEGER REFERENCES crawl_runs (id),
    prev_fetch_id      INTEGER NOT NULL REFERENCES fetches (id),
    fetch_id           INTEGER NOT NULL REFERENCES fetches (id),
    old_text_sha256    TEXT NOT NULL,
    new_text_sha256    TEXT NOT NULL,
    old_content_sha256 TEXT NOT NULL,
    new_content_sha256 TEXT NOT NULL,
    signals_changed    TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(signals_changed)),
    seen_at            INTEGER NOT NULL          -- unix seconds
);
CREATE INDEX page_versions_by_page ON page_versions (page_id, id);
CREATE INDEX page_versions_by_url ON page_versions (url, id);

-- When each page is due for a revisit (adaptive, as Nutch's
-- AdaptiveFetchSchedule): a changed page's interval shrinks, an unchanged
-- one's grows, bounded by the run's minimum and maximum. A page without a
-- row is due its origin's default interval after its last fetch. Logged
-- with the `page.check` audit event of each revisit.
CREATE TABLE revisit_schedule (
    page_id         INTEGER PRIMARY KEY NOT NULL REFERENCES pages (id),
    url             TEXT NOT NULL,
    interval_secs   INTEGER NOT NULL,
    last_checked_at INTEGER NOT NULL,        -- unix seconds
    last_status     INTEGER,                 -- HTTP status of the last revisit (304: unchanged)
    last_changed    INTEGER NOT NULL,        -- 1 when the last revisit found a new body
    next_due_at     INTEGER NOT NULL
);
