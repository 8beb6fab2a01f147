-- Retrieval passages (issue #7): sentence-aware slices of pages.text,
-- indexed with FTS5/BM25. Offsets are Unicode scalar values (code points)
-- into pages.text, [start_char, end_char). Whether a passage may be used is
-- NOT stored here: every query joins the page's newest rag_attributed
-- verdict, so a revocation takes effect on the next question. A `forget`
-- deletes the page's rows here (the FTS rows follow by trigger).
CREATE TABLE passages (
    id          INTEGER PRIMARY KEY,
    page_id     INTEGER NOT NULL REFERENCES pages (id),
    ordinal     INTEGER NOT NULL,
    start_char  INTEGER NOT NULL,
    end_char    INTEGER NOT NULL,
    text        TEXT NOT NULL,
    title       TEXT NOT NULL,            -- the page title, indexed with the text
    text_sha256 TEXT NOT NULL,            -- pages.text_sha256 when split: stale passages are never served
    indexed_at  INTEGER NOT NULL,
    UNIQUE (page_id, ordinal)
);

CREATE VIRTUAL TABLE passages_fts USING fts5 (
    text, title,
    content = 'passages', content_rowid = 'id',
    tokenize = 'porter unicode61 remove_diacritics 2'
);

CREATE TRIGGER passages_fts_insert AFTER INSERT ON passages BEGIN
    INSERT INTO passages_fts (rowid, text, title) VALUES (new.id, new.text, new.title);
END;

CREATE TRIGGER passages_fts_delete AFTER DELETE ON passages BEGIN
    INSERT INTO passages_fts (passages_fts, rowid, text, title) VALUES ('delete', old.id, old.text, old.title);
END;
