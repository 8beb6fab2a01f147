-- One URL's audit trail (`audit why`, `/v1/sources/{id}`) looks its frontier
-- row up by the URL as discovered as well as by the normalised form.
CREATE INDEX frontier_by_url ON frontier (url);
