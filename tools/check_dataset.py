#!/usr/bin/env python3
"""Reads a `byline audit export` directory with readers written by others.

Pinned versions (installed by tools/test.sh into target/ci-py):
    pyarrow==26.0.1      (Parquet and JSON Lines readers)
    mlcroissant==1.1.1   (the Croissant validator and record loader)

Usage: check_dataset.py EXPORT_DIR

Checks that every file in EXPORT_DIR (but manifest.json) is listed in
manifest.json with its sha256 and size, and that every listed file exists.
Then:
  * dataset exports (manifest section "dataset"): reads every shard with
    pyarrow (pyarrow.parquet.read_table or pyarrow.json.read_json) and
    reports the row count, the columns, each row's url with the sha256 of
    its text (and whether it matches the row's content_sha256), and the
    first row's text in full;
  * Croissant (manifest section "croissant"): runs `mlcroissant validate
    --jsonld croissant.json` and loads every RecordSet with
    mlcroissant.Dataset(...).records(...), reporting the record counts.
Prints one JSON object (ok, problems, ...) and exits 1 on any problem.
"""

import glob
import hashlib
import json
import os
import subprocess
import sys

problems = []


def check(cond, what):
    if not cond:
        problems.append(what)
    return cond


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def main():
    d = sys.argv[1]
    manifest = json.load(open(os.path.join(d, "manifest.json"), encoding="utf-8"))
    listed = {f["name"]: f for f in manifest["files"]}
    on_disk = set()
    for root, _, files in os.walk(d):
        for name in files:
            rel = os.path.relpath(os.path.join(root, name), d).replace(os.sep, "/")
            if rel != "manifest.json":
                on_disk.add(rel)
    for rel in sorted(on_disk - set(listed)):
        problems.append(f"{rel} is not in the manifest")
    for name, f in listed.items():
        p = os.path.join(d, name)
        if check(os.path.exists(p), f"{name} is listed but missing"):
            check(sha256_file(p) == f["sha256"], f"{name}: sha256 differs from the manifest")
            check(os.path.getsize(p) == f["bytes"], f"{name}: size differs from the manifest")
    out = {"files": sorted(listed)}

    ds = manifest.get("dataset")
    if ds:
        import pyarrow.json as pj
        import pyarrow.parquet as pq

        tables = []
        for name in ds["shards"]:
            p = os.path.join(d, name)
            t = pq.read_table(p) if ds["format"] == "parquet" else pj.read_json(p)
            tables.append((name, t))
        rows = []
        for name, t in tables:
            check(t.num_rows == listed[name].get("rows"), f"{name}: row count differs from the manifest")
            rows.extend(t.to_pylist())
        out["dataset"] = {
            "rows": len(rows),
            "shards": len(tables),
            "columns": tables[0][1].column_names if tables else [],
            "texts": {r["url"]: hashlib.sha256(r["text"].encode("utf-8")).hexdigest() for r in rows},
            "first": rows[0] if rows else None,
        }
        for r in rows:
            check(hashlib.sha256(r["text"].encode("utf-8")).hexdigest() == r["content_sha256"],
                  f"{r['url']}: content_sha256 is not the sha256 of its text")
        if out["dataset"]["first"]:
            out["dataset"]["first"] = {k: (str(v) if not isinstance(v, (str, int, list, type(None))) else v)
                                       for k, v in out["dataset"]["first"].items()}

    cr = manifest.get("croissant")
    if cr:
        import mlcroissant as mlc

        path = os.path.join(d, cr["file"])
        exe = os.path.join(os.path.dirname(sys.executable), "mlcroissant")
        v = subprocess.run([exe, "validate", "--jsonld", path], capture_output=True, text=True)
        check(v.returncode == 0, "mlcroissant validate failed: " + v.stderr[-2000:])
        counts = {}
        try:
            dataset = mlc.Dataset(jsonld=path)
            for rs in dataset.metadata.record_sets:
                n = 0
                for _ in dataset.records(rs.uuid):
                    n += 1
                counts[rs.uuid] = n
        except Exception as e:  # the loader's own error, reported
            problems.append(f"mlcroissant records(): {type(e).__name__}: {e}")
        out["croissant"] = {"validate_exit": v.returncode, "records": counts}

    out["ok"] = not problems
    out["problems"] = problems
    print(json.dumps(out))
    sys.exit(0 if out["ok"] else 1)


main()
