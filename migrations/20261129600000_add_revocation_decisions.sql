-- `byline audit recheck`: a revocation also names the decisions it is
-- about (the old verdict's, usable, and the new one's, not usable) and the
-- recheck run that found it.
ALTER TABLE revocations ADD COLUMN old_decision TEXT NOT NULL DEFAULT '';
ALTER TABLE revocations ADD COLUMN new_decision TEXT NOT NULL DEFAULT '';
ALTER TABLE revocations ADD COLUMN run_id INTEGER REFERENCES crawl_runs (id);
CREATE INDEX revocations_by_export ON revocations (after_export, id);
