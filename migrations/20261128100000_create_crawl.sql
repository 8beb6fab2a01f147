-- The crawler's corpus: runs, the frontier, every HTTP exchange, every
-- robots.txt version, extracted pages, links and robots decisions.
--
-- Times are unix seconds (UTC) unless the column name says otherwise; the
-- views at the end render them as ISO-8601 for people reading with sqlite3.
-- Other stages (consent evidence, audit, index) add their own tables and
-- point here by id; nothing in this file needs to change for them.

-- One invocation of `byline crawl` (or `demo`, `bench crawl`).
CREATE TABLE crawl_runs (
    id             INTEGER PRIMARY KEY,
    started_at     INTEGER NOT NULL,
    finished_at    INTEGER,                   -- NULL while running or after a kill
    byline_version TEXT NOT NULL,
    user_agent     TEXT NOT NULL,
    config_json    TEXT NOT NULL CHECK (json_valid(config_json)),
    config_sha256  TEXT NOT NULL,             -- sha256 of config_json
    policy_sha256  TEXT,                      -- sha256 of the --policy file bytes, if any
    seeds          TEXT NOT NULL CHECK (json_valid(seeds))  -- JSON list of seed URLs
);

-- Every URL the crawler decided to visit. The frontier lives here so that a
-- killed crawl resumes where it stopped: `in_flight` rows left by a dead run
-- are put back to `queued` when the next run starts.
CREATE TABLE frontier (
    id              INTEGER PRIMARY KEY,
    url             TEXT NOT NULL,            -- as discovered (absolute)
    url_norm        TEXT NOT NULL UNIQUE,     -- normalised form, the identity
    origin          TEXT NOT NULL,            -- scheme://host[:port]
    depth           INTEGER NOT NULL,         -- 0 for seeds
    discovered_from INTEGER REFERENCES frontier (id),
    first_run_id    INTEGER NOT NULL REFERENCES crawl_runs (id),
    state           TEXT NOT NULL DEFAULT 'queued'
                    CHECK (state IN ('queued', 'in_flight', 'done', 'failed', 'skipped')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    claimed_by_run  INTEGER REFERENCES crawl_runs (id),
    last_error      TEXT,                     -- error kind and detail of the last attempt
    skip_reason     TEXT,                     -- e.g. robots.disallow, robots.unreachable
    updated_at      INTEGER NOT NULL
);
CREATE INDEX frontier_by_state ON frontier (state, next_attempt_at, id);
CREATE INDEX frontier_by_origin ON frontier (origin, state);

-- Every version of /robots.txt fetched, per origin (RFC 9309). `outcome` is
-- the status-code layer's verdict: rules, allow_all, disallow_all, or
-- cached (unreachable, the last good copy `cached_from` stays in force).
CREATE TABLE robots_versions (
    id               INTEGER PRIMARY KEY,
    run_id           INTEGER NOT NULL REFERENCES crawl_runs (id),
    origin           TEXT NOT NULL,
    url              TEXT NOT NULL,           -- requested: <origin>/robots.txt
    final_url        TEXT,                    -- after redirects (rules still apply to `origin`)
    redirect_chain   TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(redirect_chain)),
    fetched_at       INTEGER NOT NULL,
    status           INTEGER,                 -- NULL when no HTTP response
    error            TEXT,                    -- network error / redirect limit
    outcome          TEXT NOT NULL CHECK (outcome IN ('rules', 'allow_all', 'disallow_all', 'cached')),
    reason           TEXT,                    -- robots.unavailable, robots.unreachable, ...
    body             BLOB,
    body_sha256      TEXT,
    body_bytes       INTEGER,
    truncated        INTEGER NOT NULL DEFAULT 0,
    warnings         TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(warnings)),
    crawl_delay_secs REAL,
    expires_at       INTEGER NOT NULL,
    cached_from      INTEGER REFERENCES robots_versions (id)
);
CREATE INDEX robots_versions_by_origin ON robots_versions (origin, id);

-- One HTTP exchange for a page (a redirect chain is one row, its hops in
-- `redirect_chain`). Failed attempts are rows too, with `error_kind`.
CREATE TABLE fetches (
    id               INTEGER PRIMARY KEY,
    run_id           INTEGER NOT NULL REFERENCES crawl_runs (id),
    frontier_id      INTEGER NOT NULL REFERENCES frontier (id),
    attempt          INTEGER NOT NULL,
    requested_url    TEXT NOT NULL,
    final_url        TEXT,
    redirect_chain   TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(redirect_chain)),
    fetched_at       INTEGER NOT NULL,
    elapsed_ms       INTEGER NOT NULL,
    status           INTEGER,
    user_agent       TEXT NOT NULL,
    response_headers TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(response_headers)),  -- [[name, value], ...]
    content_type     TEXT,
    body_sha256      TEXT,                    -- of the bytes read (decoded transfer encoding)
    body_bytes       INTEGER,
    truncated        INTEGER NOT NULL DEFAULT 0,
    declared_charset TEXT,                    -- from Content-Type, BOM or <meta charset>
    detected_charset TEXT,                    -- the encoding actually used to decode
    error_kind       TEXT,                    -- NULL on success; see crawl::fetch::ErrorKind
    error_detail     TEXT,
    robots_decision_id INTEGER REFERENCES robots_decisions (id),
    UNIQUE (frontier_id, attempt)
);
CREATE INDEX fetches_by_frontier ON fetches (frontier_id);

-- The robots.txt decision for one URL: which version and which line decided.
CREATE TABLE robots_decisions (
    id                INTEGER PRIMARY KEY,
    run_id            INTEGER NOT NULL REFERENCES crawl_runs (id),
    frontier_id       INTEGER NOT NULL REFERENCES frontier (id),
    url               TEXT NOT NULL,
    robots_version_id INTEGER NOT NULL REFERENCES robots_versions (id),
    allowed           INTEGER NOT NULL,
    matched_line      INTEGER,                -- 1-based line in the robots body
    rule              TEXT,                   -- e.g. "Disallow: /private"
    reason            TEXT,                   -- robots.disallow, robots.unreachable, ...
    decided_at        INTEGER NOT NULL
);
CREATE INDEX robots_decisions_by_frontier ON robots_decisions (frontier_id);

-- One extracted HTML page per frontier URL.
CREATE TABLE pages (
    id                INTEGER PRIMARY KEY,
    frontier_id       INTEGER NOT NULL UNIQUE REFERENCES frontier (id),
    fetch_id          INTEGER NOT NULL UNIQUE REFERENCES fetches (id),
    url               TEXT NOT NULL,          -- final URL
    title             TEXT,
    author            TEXT,
    site_name         TEXT,
    published_at      TEXT,                   -- as found (ISO-8601 when the page gave one)
    modified_at       TEXT,
    canonical_url     TEXT,
    language          TEXT,
    meta_robots       TEXT,
    text              TEXT NOT NULL,          -- main text without boilerplate
    text_sha256       TEXT NOT NULL,
    extractor_version TEXT NOT NULL,
    content_sha256    TEXT NOT NULL,          -- of the raw body bytes
    duplicate_of      INTEGER REFERENCES pages (id)  -- first page with the same content_sha256
);
CREATE INDEX pages_by_content ON pages (content_sha256);

-- Outgoing links of a page, followed or not (and why not).
CREATE TABLE links (
    page_id     INTEGER NOT NULL REFERENCES pages (id),
    ordinal     INTEGER NOT NULL,
    target_url  TEXT NOT NULL,
    anchor_text TEXT NOT NULL,
    rel         TEXT,
    followed    INTEGER NOT NULL,             -- 1 when queued (or already known)
    skip_reason TEXT,                         -- nofollow, scope, trap.depth, trap.repeated_segment, ...
    PRIMARY KEY (page_id, ordinal)
);

-- Views for people with sqlite3.
CREATE VIEW crawl_pages AS
SELECT p.id AS page_id, p.url, f.status, datetime(f.fetched_at, 'unixepoch') AS fetched_at_utc,
       p.title, p.author, p.site_name, p.published_at, p.language, p.canonical_url,
       f.detected_charset, f.body_bytes, f.truncated, p.duplicate_of,
       length(p.text) AS text_chars, f.run_id, d.robots_version_id, d.matched_line AS robots_line
FROM pages p
JOIN fetches f ON f.id = p.fetch_id
LEFT JOIN robots_decisions d ON d.id = f.robots_decision_id;

CREATE VIEW crawl_outcomes AS
SELECT fr.origin, fr.state, coalesce(fr.skip_reason, fr.last_error) AS reason, count(*) AS urls
FROM frontier fr
GROUP BY fr.origin, fr.state, coalesce(fr.skip_reason, fr.last_error);
