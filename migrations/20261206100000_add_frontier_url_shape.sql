-- Crawl budgets (spider traps): the shape of each frontier URL (digit runs
-- as '#', long ids as '*', query values dropped and names sorted), so that
-- the number of URLs of one shape per origin can be capped across runs.
-- Rows queued before this migration have no shape and count for nothing.
ALTER TABLE frontier ADD COLUMN url_shape TEXT;
CREATE INDEX frontier_by_shape ON frontier (origin, url_shape);
