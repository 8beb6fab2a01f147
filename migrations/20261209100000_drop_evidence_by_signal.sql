-- Issue #26: no statement looks evidence up by its signal (the audit reads
-- evidence by set, and the breakdowns group verdicts), yet every page's
-- dozen evidence rows each went into this index, at the end of one of a
-- dozen signal ranges: a batch of pages dirtied a leaf per signal, and
-- the index was the crawl's third largest source of WAL frames.
DROP INDEX IF EXISTS evidence_by_signal;
