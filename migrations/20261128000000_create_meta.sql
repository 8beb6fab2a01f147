-- Key/value facts about the corpus itself (creating Byline version, etc.).
CREATE TABLE corpus_meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
