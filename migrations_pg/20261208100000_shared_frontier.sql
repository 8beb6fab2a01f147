-- Many crawl workers on one corpus (issue #20).
--
-- A frontier claim is a lease: the worker that holds it (`lease_owner`,
-- `--worker-id`) and until when (`lease_until`, unix milliseconds of the
-- database's clock). A claim whose lease has expired goes back to the
-- queue; a live one is never taken by another worker. Both are
-- bookkeeping: row hashes leave them out, like `state`.
ALTER TABLE frontier ADD COLUMN lease_owner TEXT;
ALTER TABLE frontier ADD COLUMN lease_until BIGINT;
CREATE INDEX frontier_in_flight_by_origin ON frontier (origin, lease_until) WHERE state = 'in_flight';

-- Per-origin politeness shared by every worker: at most one request in
-- flight per origin (`holder`, until `held_until`, after which a dead
-- holder's slot is free again), and the next request starts no earlier
-- than `next_allowed_at` (the end of the previous one plus the larger of
-- the origin's Crawl-delay and --delay-ms). `robots_holder` is the one
-- worker fetching the origin's robots.txt (until `robots_until`); the
-- others wait for the stored version. Times are unix milliseconds of the
-- database's clock. Not logged: it is scheduling state, like the frontier's.
CREATE TABLE crawl_origins (
    origin          TEXT PRIMARY KEY NOT NULL,
    next_allowed_at BIGINT NOT NULL DEFAULT 0,
    holder          TEXT,
    held_until      BIGINT NOT NULL DEFAULT 0,
    robots_holder   TEXT,
    robots_until    BIGINT NOT NULL DEFAULT 0
);
