-- Consent evidence and verdicts (spec consent-signals.md §0.3).
--
-- Pages are identified by URL (and by the crawler's page id when known, no
-- foreign key so the consent stage stays usable on its own). Each evaluation
-- input is one evidence set: every row of one page fetch. Verdicts point to
-- the set and list the evidence row ids they used.

-- Every policy file ever used for a verdict, by the sha256 of its bytes.
CREATE TABLE policies_seen (
    sha256        TEXT PRIMARY KEY NOT NULL,
    policy_id     TEXT NOT NULL,
    body          BLOB NOT NULL,
    first_seen_at INTEGER NOT NULL
);

-- One page observation: the rows gathered for one fetch of one page.
CREATE TABLE evidence_sets (
    id          INTEGER PRIMARY KEY,
    page_url    TEXT NOT NULL,
    page_id     INTEGER,
    site_origin TEXT NOT NULL,
    observed_at INTEGER NOT NULL
);
CREATE INDEX evidence_sets_by_page ON evidence_sets (page_url, id);

-- One row per signal looked for, including "absent" and "unreachable".
CREATE TABLE evidence (
    id           INTEGER PRIMARY KEY,
    set_id       INTEGER NOT NULL REFERENCES evidence_sets (id),
    ordinal      INTEGER NOT NULL,           -- position in pipeline order
    signal       TEXT NOT NULL,
    status_label TEXT NOT NULL CHECK (status_label IN ('STANDARD', 'CG-FINAL', 'DRAFT', 'VENDOR', 'INDUSTRY', 'OURS')),
    location     TEXT NOT NULL,
    scope        TEXT NOT NULL,              -- generic | our-token | other-token:<name>
    raw          TEXT NOT NULL,              -- truncated to 2 KiB
    parsed       TEXT NOT NULL,              -- JSON of the normalised observation
    fetch_id     INTEGER,                    -- the crawler's fetch record, when known
    fetch_ref    TEXT,                       -- JSON: url, status, fetched_at, body_sha256
    observed_at  INTEGER NOT NULL,
    expires_at   INTEGER,
    parse_errors TEXT NOT NULL DEFAULT '[]', -- JSON list
    UNIQUE (set_id, ordinal)
);
CREATE INDEX evidence_by_signal ON evidence (signal);

-- One verdict per page, purpose and evaluation; older rows are history.
CREATE TABLE verdicts (
    id            INTEGER PRIMARY KEY,
    set_id        INTEGER NOT NULL REFERENCES evidence_sets (id),
    page_url      TEXT NOT NULL,
    purpose       TEXT NOT NULL CHECK (purpose IN ('search_index', 'rag_attributed', 'train')),
    decision      TEXT NOT NULL CHECK (decision IN ('allowed', 'allowed_with_conditions', 'excluded', 'deferred')),
    conditions    TEXT NOT NULL,             -- JSON list of condition labels
    reasons       TEXT NOT NULL,             -- JSON list of reason codes
    evidence_ids  TEXT NOT NULL,             -- JSON list of evidence.id
    policy_id     TEXT NOT NULL,
    policy_sha256 TEXT NOT NULL REFERENCES policies_seen (sha256),
    decided_at    INTEGER NOT NULL
);
CREATE INDEX verdicts_by_page ON verdicts (page_url, purpose, id);
CREATE INDEX verdicts_by_policy ON verdicts (policy_sha256);

-- Every fetched version of a per-origin consent file (robots.txt is the
-- crawler's): fetched once per origin, reused until expires_at.
CREATE TABLE origin_files (
    id          INTEGER PRIMARY KEY,
    origin      TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('tdmrep.json', 'ai.txt', 'llms.txt', 'rsl')),
    url         TEXT NOT NULL,
    status      INTEGER,                     -- NULL when no HTTP response
    error       TEXT,
    body        BLOB,
    body_sha256 TEXT,
    fetched_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX origin_files_by_url ON origin_files (url, id);
