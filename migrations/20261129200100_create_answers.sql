-- Answer records (issue #7): every answer `byline ask` (or the service)
-- produced, with the citations the checker kept. Page and passage ids carry no
-- foreign key so that `forget` can delete a page while the record of what was
-- said stays (flagged).
CREATE TABLE answers (
    id                 INTEGER PRIMARY KEY,
    asked_at           INTEGER NOT NULL,
    question           TEXT NOT NULL,
    answer             TEXT NOT NULL,     -- the checked answer shown
    draft              TEXT NOT NULL,     -- the model's own text before checking
    refused            INTEGER NOT NULL,
    reason             TEXT,
    model_path         TEXT NOT NULL,
    model_sha256       TEXT NOT NULL,
    policy_sha256      TEXT,              -- the --policy the question was asked under, if any
    seconds            REAL NOT NULL,
    json               TEXT NOT NULL CHECK (json_valid(json)),  -- the full `ask --json` object
    flagged_at         INTEGER,           -- set when a cited page was revoked or forgotten
    flag_revocation_id INTEGER,
    flag_page_id       INTEGER
);

CREATE TABLE answer_citations (
    answer_id     INTEGER NOT NULL REFERENCES answers (id),
    n             INTEGER NOT NULL,
    page_id       INTEGER NOT NULL,
    passage_id    INTEGER NOT NULL,
    url           TEXT NOT NULL,
    verdict_id    INTEGER NOT NULL,
    policy_sha256 TEXT NOT NULL,
    licence       TEXT,
    quote         TEXT NOT NULL,
    start_char    INTEGER NOT NULL,
    end_char      INTEGER NOT NULL,
    support       REAL NOT NULL,
    PRIMARY KEY (answer_id, n)
);
CREATE INDEX answer_citations_by_page ON answer_citations (page_id);

-- sha256 of model files, keyed by path, size and mtime (hashing 100 MB per
-- question would cost more than the retrieval).
CREATE TABLE model_hashes (
    path     TEXT NOT NULL,
    size     INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256   TEXT NOT NULL,
    PRIMARY KEY (path, size, mtime_ns)
);
