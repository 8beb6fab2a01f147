-- `audit history` lists the events about a page that no table of its own
-- lists (gone markings, answer flags, page checks, observations, ...) by
-- their subject. An index on every event's subject cost the crawl three
-- writes per page at random places (dropped in 20261210300000); this one
-- leaves out the crawl's three per-page kinds, so a crawl writes nothing
-- to it, and `Store::subject_events_outside_crawl` names the same kinds.
CREATE INDEX audit_events_by_subject_outside_crawl ON audit_events (subject, seq)
WHERE kind NOT IN ('fetch', 'robots.decision', 'verdict');
