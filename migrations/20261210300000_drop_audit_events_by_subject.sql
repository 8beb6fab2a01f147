-- Issue #26: each stored page's three audit events (robots.decision, fetch,
-- verdict) name its URL as their subject, and each paid an insert at a
-- random place of this index: the largest of the writes that make a
-- crawl's batches costlier as the corpus grows. No statement uses it on
-- SQLite: `audit log --subject` reads `(? IS NULL OR subject = ?)`, which
-- SQLite plans as a scan of the log whatever the index, and the forgotten
-- pages are found through `audit_events_by_kind`. (PostgreSQL keeps it:
-- it plans the subject filter with the value bound.)
DROP INDEX IF EXISTS audit_events_by_subject;
