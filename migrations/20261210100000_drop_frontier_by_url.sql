-- Issue #26: every new URL paid an insert at a random place of this index
-- (URLs arrive in no order), one of the writes that make a crawl's batches
-- costlier as the corpus grows. A URL's rows are found by its normalised
-- form instead, through the unique index on `url_norm`: a row's `url_norm`
-- is always its `url` normalised (`crawl::urls::normalise`), so `audit why`
-- and `audit history` normalise the URL they are given and the records of
-- one URL look up `url_norm` and then compare `url`.
DROP INDEX IF EXISTS frontier_by_url;
