-- Issue #26: URLs are looked up by `url_norm` (unique) only; the index on
-- `url` cost every new URL a write at a random place (see the SQLite
-- migration of the same name).
DROP INDEX IF EXISTS frontier_by_url;
