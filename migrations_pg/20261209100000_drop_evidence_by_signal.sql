-- Issue #26: no statement looks evidence up by its signal; the index only
-- cost every evidence insert a write (see the SQLite migration of the same
-- name).
DROP INDEX IF EXISTS evidence_by_signal;
