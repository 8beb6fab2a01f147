#!/usr/bin/env python3
"""Compare what two byline corpora recorded for the same crawl (issue #26's
before/after check): per URL the frontier outcome, the page's extracted
fields, its links, its evidence rows and its newest verdict per purpose
(with the evidence each verdict cites), and the audit event counts by kind.
Row ids, timestamps and fetch references (which carry them) are left out;
everything else must match exactly.

Usage: tools/compare_crawls.py BEFORE.db AFTER.db
Both corpora must be crawls of the same sites at the same URLs (same ports).
Exit status 0 when identical, 1 with the first differences printed."""

import json
import sqlite3
import sys


def load(path):
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    q = lambda sql: db.execute(sql).fetchall()
    out = {}
    for url, state, skip, depth in q("SELECT url, state, skip_reason, depth FROM frontier"):
        out[("frontier", url)] = (state, skip, depth)
    cols = ("title, author, site_name, published_at, modified_at, canonical_url, language, "
            "meta_robots, text_sha256, nosnippet_spans, extractor_version, content_sha256")
    pages = {}
    for row in q(f"SELECT id, url, {cols}, duplicate_of FROM pages"):
        pages[row[0]] = row[1]
    for row in q(f"SELECT id, url, {cols}, duplicate_of FROM pages"):
        out[("page", row[1])] = row[2:-1] + (pages.get(row[-1]),)
    links = {}
    for pid, o, t, a, r, f, s in q(
        "SELECT page_id, ordinal, target_url, anchor_text, rel, followed, skip_reason FROM links"
    ):
        links.setdefault(pages[pid], []).append((o, t, a, r, f, s))
    for u, ls in links.items():
        out[("links", u)] = sorted(ls)
    ev = {}
    for eid, page_url, o, sig, lab, loc, sc, raw, parsed, errs in q(
        "SELECT e.id, s.page_url, e.ordinal, e.signal, e.status_label, e.location, e.scope, "
        "e.raw, e.parsed, e.parse_errors FROM evidence e JOIN evidence_sets s ON s.id = e.set_id"
    ):
        ev[eid] = (o, sig, lab, loc, sc, raw, parsed, errs)
    sets = {}
    for sid, page_url in q("SELECT id, page_url FROM evidence_sets ORDER BY id"):
        sets.setdefault(page_url, []).append(sid)
    for page_url, sids in sets.items():
        rows = [
            ev[i]
            for (i,) in q(f"SELECT id FROM evidence WHERE set_id = {sids[-1]} ORDER BY ordinal")
        ]
        out[("evidence", page_url)] = (len(sids), rows)
    for page_url, purpose, dec, cond, reasons, ids, pol in q(
        "SELECT page_url, purpose, decision, conditions, reasons, evidence_ids, policy_sha256 "
        "FROM verdicts v WHERE id = (SELECT max(id) FROM verdicts w "
        "WHERE w.page_url = v.page_url AND w.purpose = v.purpose)"
    ):
        cited = [ev.get(i) for i in json.loads(ids)]
        out[("verdict", page_url, purpose)] = (dec, cond, reasons, pol, cited)
    for kind, n in q("SELECT kind, count(*) FROM audit_events GROUP BY kind"):
        out[("events", kind)] = n
    return out


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    a, b = load(sys.argv[1]), load(sys.argv[2])
    diffs = []
    for k in sorted(set(a) | set(b), key=repr):
        if a.get(k) != b.get(k):
            diffs.append((k, a.get(k), b.get(k)))
    kinds = {}
    for k in a:
        kinds[k[0]] = kinds.get(k[0], 0) + 1
    print("compared:", ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())))
    for k, x, y in diffs[:20]:
        print(f"DIFF {k}:\n  before: {x!r:.400}\n  after:  {y!r:.400}")
    if diffs:
        print(f"{len(diffs)} difference(s)")
        return 1
    print("identical")
    return 0


if __name__ == "__main__":
    sys.exit(main())
