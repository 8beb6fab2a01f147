-- Issue #26: FTS5 keeps new terms in memory and writes them out as a new
-- segment when its pending data passes `hashsize` (default 1 MiB) and at
-- commit. The index pass (`index::refresh`) adds up to 2 MiB of page text
-- per transaction, whose terms come to more than 1 MiB, so each chunk was
-- written as two or three segments, and every extra segment is merged
-- again later. With 4 MiB a chunk is one segment. The memory is held only
-- while a writer has terms pending; the rows and the ranking are the same.
INSERT INTO passages_fts (passages_fts, rank) VALUES ('hashsize', 4194304);
