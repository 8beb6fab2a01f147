#!/usr/bin/env python3
"""An independent check of a Byline corpus's audit log, from the README
recipe alone (Python standard library: sqlite3, hashlib, json).

    python tools/verify_audit.py byline.db [--expect-head SEQ:HASH] [--since-export DIR]

Prints one JSON object, the same shape as `byline audit verify --json`:
{"ok", "events", "rows", "head": {"seq", "sha256"} | null, "problems": [{"kind",
"table", "id", "seq", "detail"}]}; exit status 0 when ok, 1 when a problem
was found, 2 on a usage error. The database is opened read-only.

Checks: the hash chain; each event's refs against its content hash; each
covered row against the newest event covering it (changed / deleted);
completeness (every row of every logged table covered by some event,
else "unlogged"); `audit_refs` equal to the refs of the chain; page text
against `text_sha256`; answers' JSON against the newest logged `json_sha256` (the answer event's, or a
forget event's that rewrote the answer and covers its row);
passages bounded by their page text (each current passage is the text
between its character offsets). Not re-derived here: the passage
splitter's choice of boundaries and the FTS index (Byline checks both).
"""

import argparse
import hashlib
import json
import math
import os
import re
import sqlite3
import sys

GENESIS = "0" * 64
ERASABLE = {("pages", "text")}
BOOKKEEPING = {
    ("frontier", c)
    for c in (
        "state",
        "attempts",
        "next_attempt_at",
        "claimed_by_run",
        "last_error",
        "skip_reason",
        "updated_at",
    )
}
LOGGED_TABLES = [
    "crawl_runs",
    "frontier",
    "robots_versions",
    "robots_decisions",
    "fetches",
    "pages",
    "links",
    "policies_seen",
    "evidence_sets",
    "evidence",
    "verdicts",
    "origin_files",
    "tombstones",
    "revocations",
    "exports",
    "answers",
    "answer_citations",
    "model_hashes",
    "fetch_raw",
    "page_versions",
    "revisit_schedule",
]


def fmt_float(x):
    """A float as the shortest round-trip decimal, in the JSON spelling
    Byline's serializer uses (`1e-7`, `1e16`, `0.5`, `2.0`)."""
    if not math.isfinite(x):
        return "null"
    r = repr(x)
    if "e" in r:
        mant, exp = r.split("e")
        exp = int(exp)
        return f"{mant}e{exp}" if exp >= 0 else f"{mant}e-{-exp}"
    return r


def canon(v):
    """Canonical JSON: keys sorted, no whitespace, non-ASCII as UTF-8."""
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return fmt_float(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ",".join(canon(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ",".join(canon(k) + ":" + canon(v[k]) for k in sorted(v)) + "}"
    raise TypeError(type(v))


def sha(s):
    if isinstance(s, str):
        s = s.encode("utf-8")
    return hashlib.sha256(s).hexdigest()


def row_hash(db, table, rowid):
    if not re.fullmatch(r"[a-z0-9_]{1,64}", table):
        raise ValueError(f"table name {table!r} is not a lowercase sql identifier")
    cur = db.execute(f'SELECT * FROM "{table}" WHERE rowid = ?', (rowid,))
    row = cur.fetchone()
    if row is None:
        return None
    obj = {}
    for (name, *_), val in zip(cur.description, row):
        if (table, name) in ERASABLE or (table, name) in BOOKKEEPING:
            continue
        if isinstance(val, bytes):
            val = {"$blob_sha256": sha(val)}
        elif isinstance(val, float) and not math.isfinite(val):
            val = None
        obj[name] = val
    return sha(canon(obj))


def table_exists(db, t):
    if not isinstance(t, str):
        return False
    return (
        db.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?", (t,)
        ).fetchone()[0]
        > 0
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("db")
    ap.add_argument("--expect-head", action="append", default=[])
    ap.add_argument("--since-export", action="append", default=[])
    a = ap.parse_args()
    if not os.path.exists(a.db):
        print(f"no such file: {a.db}", file=sys.stderr)
        return 2
    anchors = []
    for h in a.expect_head:
        seq, _, hx = h.partition(":")
        try:
            anchors.append(("head", int(seq), hx.strip().lower()))
        except ValueError:
            print(f"--expect-head {h!r} is not SEQ:HASH", file=sys.stderr)
            return 2
    for d in a.since_export:
        with open(os.path.join(d, "manifest.json"), encoding="utf-8") as f:
            anchors.append(("hash", None, json.load(f)["audit_head_sha256"]))

    db = sqlite3.connect(f"file:{a.db}?mode=ro", uri=True)
    db.text_factory = lambda b: b.decode("utf-8", errors="surrogateescape")
    problems, tail = [], []

    def problem(out, kind, table, rid, seq, detail):
        out.append({"kind": kind, "table": table, "id": rid, "seq": seq, "detail": detail})

    exists = {}
    for t in LOGGED_TABLES + ["audit_events", "audit_refs", "passages"]:
        exists[t] = table_exists(db, t)
        if not exists[t] and t != "passages":
            problem(tail, "missing", t, 0, None, "table does not exist")
    report = {"events": 0, "rows": 0, "head": None}
    if not exists["audit_events"]:
        return finish(report, tail)

    events = db.execute(
        "SELECT seq, time, kind, subject, payload, refs, content_sha256, prev_sha256, sha256"
        " FROM audit_events ORDER BY seq"
    ).fetchall()
    # Pass 1: parse, and the newest event covering each row.
    parsed, newest, logged = [], {}, set()
    for ev in events:
        seq = ev[0]
        try:
            time, kind, subject, payload, refs, content, prev, h = ev[1:]
            if not all(isinstance(x, str) for x in (kind, subject, payload, refs, content, prev, h)):
                raise ValueError("a text column is not text")
            if not isinstance(time, int):
                raise ValueError("time is not an integer")
            payload = json.loads(payload)
            refs = [
                {"id": r["id"], "sha256": r["sha256"], "table": r["table"]}
                for r in json.loads(refs)
            ]
            for r in refs:
                if not isinstance(r["id"], int) or not isinstance(r["table"], str):
                    raise ValueError("bad ref")
                newest[(r["table"], r["id"])] = seq
                logged.add((seq, r["table"], r["id"], r["sha256"]))
            parsed.append((seq, (time, kind, subject, payload, refs, content, prev, h), None))
        except Exception as e:  # an edited file: anything may be in any column
            parsed.append((seq, None, f"unreadable event: {e}"))

    prev_hash, expect = GENESIS, 1
    answer_json = {}
    for seq, ev, err in parsed:
        report["events"] += 1
        stored = events[report["events"] - 1][8]
        report["head"] = {"seq": seq, "sha256": stored if isinstance(stored, str) else ""}
        if seq != expect:
            problem(problems, "chain", "audit_events", seq, seq,
                    f"sequence gap: expected event {expect}, found {seq}")
        expect = seq + 1
        if ev is None:
            problem(problems, "chain", "audit_events", seq, seq, err)
            prev_hash = stored if isinstance(stored, str) else ""
            continue
        time, kind, subject, payload, refs, content, prev, h = ev
        if prev != prev_hash:
            problem(problems, "chain", "audit_events", seq, seq, "prev_sha256 does not match")
        again = sha(canon({"content_sha256": content, "kind": kind, "payload": payload,
                           "prev_sha256": prev, "seq": seq, "subject": subject, "time": time}))
        if again != h:
            problem(problems, "chain", "audit_events", seq, seq, "event fields changed")
        if sha(canon(refs)) != content:
            problem(problems, "chain", "audit_events", seq, seq, "refs changed")
        for r in refs:
            report["rows"] += 1
            t, rid = r["table"], r["id"]
            if t not in exists:
                exists[t] = table_exists(db, t)
            if not exists[t]:
                continue
            if newest.get((t, rid), seq) > seq:
                continue  # a newer event covers the row as it is now
            try:
                now = row_hash(db, t, rid)
            except Exception as e:
                problem(problems, "changed", t, rid, seq, f"row unreadable: {e}")
                continue
            if now is None:
                problem(problems, "deleted", t, rid, seq, "row deleted")
            elif now != r["sha256"]:
                problem(problems, "changed", t, rid, seq, "row changed since it was logged")
        # Answer JSON hashes: an answer event logs one; a forget event that
        # rewrote the answer (and covers its row) logs the new one.
        if kind == "answer":
            aid, want = payload.get("answer_id"), payload.get("json_sha256")
            if isinstance(aid, int) and isinstance(want, str):
                answer_json[aid] = (seq, want)
        elif kind == "forget" and isinstance(payload.get("answers_redacted"), list):
            for r in payload["answers_redacted"]:
                if not isinstance(r, dict):
                    continue
                aid, want = r.get("answer_id"), r.get("json_sha256")
                if not isinstance(aid, int) or not isinstance(want, str):
                    continue
                covered = any(f["table"] == "answers" and f["id"] == aid for f in refs)
                if covered and aid in answer_json:
                    answer_json[aid] = (seq, want)
        prev_hash = h
    if exists["answers"]:
        for aid, (seq, want) in sorted(answer_json.items()):
            row = db.execute("SELECT json FROM answers WHERE id = ?", (aid,)).fetchone()
            if row is None:
                problem(problems, "deleted", "answers", aid, seq, "answer deleted")
            elif not isinstance(row[0], str) or sha(row[0]) != want:
                problem(problems, "changed", "answers", aid, seq,
                        "answer json does not match the newest logged json_sha256")
    problems.sort(key=lambda p: p["seq"] or 0)

    # audit_refs: exactly the refs of the chain.
    if exists["audit_refs"]:
        unreadable = {seq for seq, ev, _ in parsed if ev is None}
        stored = set()
        for row in db.execute("SELECT seq, tbl, row_id, sha256 FROM audit_refs"):
            if row[0] not in unreadable:
                stored.add(tuple(row))
        for seq, t, rid, h in sorted(logged - stored):
            problem(tail, "derived", "audit_refs", seq, seq, f"missing the ref {t} row {rid}")
        for seq, t, rid, h in sorted(stored - logged, key=str):
            problem(tail, "derived", "audit_refs", seq, None, f"holds {t} row {rid}, not in the log")

    # Completeness, from the events themselves.
    covered = {(t, rid) for (t, rid) in newest}
    for t in LOGGED_TABLES:
        if not exists[t]:
            continue
        for (rid,) in db.execute(f'SELECT rowid FROM "{t}" ORDER BY rowid'):
            if (t, rid) not in covered:
                problem(tail, "unlogged", t, rid, None, "no audit event covers this row")

    # Erasable page text against its digest.
    forgotten = {s for (s,) in db.execute("SELECT subject FROM audit_events WHERE kind = 'forget'")}
    first_seq = {}
    for seq, t, rid, _ in logged:
        if t == "pages":
            first_seq[rid] = min(seq, first_seq.get(rid, seq))
    if exists["pages"]:
        for pid, text, digest, url in db.execute("SELECT id, text, text_sha256, url FROM pages ORDER BY id"):
            if not isinstance(text, str):
                problem(tail, "changed", "pages", pid, first_seq.get(pid), "text is not text")
                continue
            if url in forgotten and text == "":
                continue
            if sha(text) != digest:
                problem(tail, "changed", "pages", pid, first_seq.get(pid),
                        "text does not match its text_sha256")

    # Passages (derived): current passages are the page text between their offsets.
    if exists["passages"] and exists["pages"]:
        rows = db.execute(
            "SELECT ps.id, ps.page_id, ps.start_char, ps.end_char, ps.text, p.text, p.id IS NULL"
            " FROM passages ps LEFT JOIN pages p ON p.id = ps.page_id"
            " WHERE p.id IS NULL OR ps.text_sha256 = p.text_sha256 ORDER BY ps.id"
        ).fetchall()
        for psid, pid, a_, b_, ptext, text, orphan in rows:
            if orphan:
                problem(tail, "derived", "passages", psid, None, f"page {pid} does not exist")
            elif ("pages", pid) not in covered:
                problem(tail, "derived", "passages", psid, None, f"page {pid} is not logged")
            elif not (isinstance(text, str) and isinstance(ptext, str) and isinstance(a_, int)
                      and isinstance(b_, int) and 0 <= a_ <= b_ and text[a_:b_] == ptext):
                problem(tail, "derived", "passages", psid, None,
                        f"not the text of page {pid} between its offsets")

    for kind, seq, h in anchors:
        if kind == "head":
            row = db.execute("SELECT sha256 FROM audit_events WHERE seq = ?", (seq,)).fetchone()
            if row is None or row[0] != h:
                problem(tail, "head", "audit_events", seq, seq, "the log does not extend the anchored head")
        else:
            row = db.execute("SELECT seq FROM audit_events WHERE sha256 = ?", (h,)).fetchone()
            if row is None:
                problem(tail, "head", "audit_events", 0, None, "no event has the anchored head hash")
    return finish(report, problems + tail)


def finish(report, problems):
    report["ok"] = not problems
    report["problems"] = problems
    print(json.dumps(report, ensure_ascii=False))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
