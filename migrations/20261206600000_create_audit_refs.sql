-- Issue #16: an index of the rows each audit event covers, derived from
-- `audit_events.refs` (one row per ref) and written by the same statement
-- sequence that appends the event. Readers use it to serve only rows the
-- chain vouches for ("in force from the log"); `audit verify` checks that
-- it equals the refs of the chain exactly, so a forged entry here is
-- reported like a forged row.
CREATE TABLE audit_refs (
    tbl    TEXT NOT NULL,      -- the table of the covered row
    row_id INTEGER NOT NULL,   -- its rowid
    seq    INTEGER NOT NULL,   -- the event (audit_events.seq)
    sha256 TEXT NOT NULL,      -- the row hash logged
    PRIMARY KEY (tbl, row_id, seq)
) WITHOUT ROWID;
CREATE INDEX audit_refs_by_seq ON audit_refs (seq);

INSERT OR IGNORE INTO audit_refs (tbl, row_id, seq, sha256)
SELECT json_extract(j.value, '$.table'), json_extract(j.value, '$.id'), a.seq,
       json_extract(j.value, '$.sha256')
FROM audit_events a, json_each(a.refs) j
WHERE json_valid(a.refs)
  AND typeof(json_extract(j.value, '$.table')) = 'text'
  AND typeof(json_extract(j.value, '$.id')) = 'integer'
  AND typeof(json_extract(j.value, '$.sha256')) = 'text';
