-- The audit log (issue #4): an append-only, hash-chained list of events.
-- Every fetch, robots.txt decision, verdict, new policy, revocation, export,
-- forget and answer appends one row, in the same transaction as the rows it
-- describes. The exact hash recipe is in README.md ("Audit log").
CREATE TABLE audit_events (
    seq            INTEGER PRIMARY KEY,       -- 1, 2, 3, ... in append order
    time           INTEGER NOT NULL,          -- unix seconds (UTC)
    kind           TEXT NOT NULL,             -- fetch, robots.fetch, robots.decision, verdict, ...
    subject        TEXT NOT NULL,             -- the URL or origin the event is about
    payload        TEXT NOT NULL CHECK (json_valid(payload)),  -- canonical JSON
    refs           TEXT NOT NULL CHECK (json_valid(refs)),     -- [{"id","sha256","table"}] rows covered
    content_sha256 TEXT NOT NULL,             -- sha256 of the canonical refs JSON
    prev_sha256    TEXT NOT NULL,             -- sha256 of the previous event (64 zeros for the first)
    sha256         TEXT NOT NULL              -- this event's hash
);
CREATE INDEX audit_events_by_subject ON audit_events (subject, seq);
CREATE INDEX audit_events_by_kind ON audit_events (kind, seq);

-- Forgotten URLs (`byline forget`): content erased, never crawled again.
CREATE TABLE tombstones (
    url_sha256   TEXT PRIMARY KEY NOT NULL,   -- sha256 of the normalised URL
    origin       TEXT NOT NULL,
    forgotten_at INTEGER NOT NULL,
    reason       TEXT NOT NULL
);

-- Pages whose owners opted out after they were collected (`byline recheck`).
CREATE TABLE revocations (
    id              INTEGER PRIMARY KEY,
    page_url        TEXT NOT NULL,
    page_id         INTEGER,
    purpose         TEXT NOT NULL,
    old_verdict_id  INTEGER NOT NULL REFERENCES verdicts (id),
    new_verdict_id  INTEGER NOT NULL REFERENCES verdicts (id),
    reasons         TEXT NOT NULL CHECK (json_valid(reasons)),      -- the new verdict's reason codes
    evidence_ids    TEXT NOT NULL CHECK (json_valid(evidence_ids)), -- evidence that caused it
    revoked_at      INTEGER NOT NULL,
    after_export    INTEGER                    -- newest export version at revocation time, if any
);
CREATE INDEX revocations_by_page ON revocations (page_url, id);

-- Numbered exports (`byline audit export`).
CREATE TABLE exports (
    version      INTEGER PRIMARY KEY,         -- 1, 2, 3, ...
    created_at   INTEGER NOT NULL,
    format       TEXT NOT NULL,
    filters      TEXT NOT NULL CHECK (json_valid(filters)),
    records      INTEGER NOT NULL,
    merkle_root  TEXT NOT NULL,
    manifest_sha256 TEXT NOT NULL
);
