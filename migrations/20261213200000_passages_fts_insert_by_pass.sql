-- Issue #26: the index pass (`Store::replace_passages`) adds new passages
-- to the FTS index itself, with one INSERT … SELECT after the chunk's
-- passages are stored, instead of this trigger. The pass now inserts the
-- passages with bound multi-row statements (a JSON array read back with
-- `jsonb_each` cost an eighth of the pass), and a trigger on each of them
-- would make FTS5 flush a segment per statement (each opens a statement
-- savepoint). Deletions still reach the index by `passages_fts_delete`.
DROP TRIGGER passages_fts_insert;
