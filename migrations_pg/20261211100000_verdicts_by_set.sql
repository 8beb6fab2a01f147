-- Issue #26: `verdicts_by_page (page_url, purpose, id)` put every page's
-- verdicts at a random place of an index keyed by URL, a b-tree leaf
-- dirtied (and written to the WAL and again at checkpoint) per page.
-- Verdicts are reached through their evidence set instead: a page's sets
-- by URL (`evidence_sets_by_page`), then each set's verdicts by
-- `verdicts_by_set`, whose keys grow in crawl order (a set's verdicts are
-- written right after it). No column changed.
DROP INDEX verdicts_by_page;
CREATE INDEX verdicts_by_set ON verdicts (set_id, purpose, id);
