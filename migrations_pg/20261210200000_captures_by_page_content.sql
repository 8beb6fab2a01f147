-- Issue #26: `forget` finds the other pages using a capture through the
-- pages' and page versions' body hashes; the index of `fetch_raw` by hash
-- cost every stored page a write at a random place (see the SQLite
-- migration of the same name).
DROP INDEX IF EXISTS fetch_raw_by_sha;
CREATE INDEX page_versions_by_old_content ON page_versions (old_content_sha256);
CREATE INDEX page_versions_by_new_content ON page_versions (new_content_sha256);
