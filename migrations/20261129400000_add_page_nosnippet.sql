-- Byte ranges of pages.text that came from `data-nosnippet` elements
-- (consent spec §3.1): usable for finding a page, never quoted. JSON array of
-- [start, end) pairs, UTF-8 byte offsets into pages.text; '[]' when none.
ALTER TABLE pages ADD COLUMN nosnippet_spans TEXT NOT NULL DEFAULT '[]';
