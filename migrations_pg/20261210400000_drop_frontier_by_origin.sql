-- Issue #26: `frontier_by_origin (origin, state)` is a prefix of
-- `frontier_ready_by_origin (origin, state, depth, id)`, which answers every
-- lookup it could; each frontier insert and state change paid for both.
-- (SQLite dropped its copy in 20261208100000_fewer_scattered_writes.)
DROP INDEX IF EXISTS frontier_by_origin;
