-- Issue #26: `fetch_raw_by_sha` cost every stored page an insert at a
-- random place (bodies' hashes arrive in no order), one of the writes that
-- make a crawl's batches costlier as the corpus grows. Its one reader was
-- `forget`, asking whether another URL still uses a capture. Every capture
-- is a page's body: its current one (`pages.content_sha256`, indexed by
-- `pages_by_content`) or an earlier version's (`page_versions`, whose rows
-- are written only when a page changes, so their indexes cost a crawl
-- nothing).
DROP INDEX IF EXISTS fetch_raw_by_sha;
CREATE INDEX page_versions_by_old_content ON page_versions (old_content_sha256);
CREATE INDEX page_versions_by_new_content ON page_versions (new_content_sha256);
