-- Issue #26: the scheduler asks for each origin's next queued URL in
-- breadth-first order (depth, then id). With this index that is one short
-- index walk per origin instead of sorting every queued row of the frontier
-- on every scheduling round (which grew with the corpus).
CREATE INDEX frontier_ready_by_origin ON frontier (origin, state, depth, id);
