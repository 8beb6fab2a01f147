#!/usr/bin/env python3
"""Checks a `byline audit export` directory with readers written by others.

Pinned versions (installed by .ci/run into target/ci-py):
    warcio==1.8.1   (WARC reader: record parsing, digest verification)
    PyLD==3.3.0     (JSON-LD processor: expands the Croissant file)
    with PyLD's dependencies cachetools==8.0.2, frozendict==2.5.1, lxml==6.1.3

Usage: check_export.py EXPORT_DIR

Reads EXPORT_DIR/manifest.json, checks every listed file's sha256 and size,
then:
  * WARC (manifest section "warc"): iterates the file with warcio's
    ArchiveIterator(check_digests=True), reads every record to the end so
    warcio verifies WARC-Block-Digest / WARC-Payload-Digest, and compares
    each record (type, id, date, target URI, length, digests, offsets,
    WARC-Refers-To) with the export's index and the manifest's counts;
    a response record's HTTP status line, Content-Length and payload digest
    are checked against the body warcio parsed.
  * Croissant (manifest section "croissant"): expands the JSON-LD with PyLD
    (no remote contexts: any attempt to load one fails the check) and
    checks the Croissant 1.1 required dataset properties, the FileObject
    (sha256 of the records file), the RecordSet fields (dataType, source)
    and the PROV-O provenance.
Prints one JSON object (ok, checks, problems) and exits 1 on any problem.
"""

import gzip
import hashlib
from importlib.metadata import version
import json
import os
import sys

problems = []
checks = []


def check(cond, what):
    checks.append(what)
    if not cond:
        problems.append(what)
    return cond


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def check_warc(d, sec, summary):
    from warcio.archiveiterator import ArchiveIterator

    index = [json.loads(l) for l in open(os.path.join(d, sec["index"]), encoding="utf-8")]
    seen = []
    with open(os.path.join(d, sec["file"]), "rb") as f:
        it = ArchiveIterator(f, check_digests=True)
        for rec in it:
            h = rec.rec_headers
            body = rec.content_stream().read()
            http = rec.http_headers
            seen.append({
                "type": rec.rec_type,
                "record_id": h.get_header("WARC-Record-ID"),
                "date": h.get_header("WARC-Date"),
                "uri": h.get_header("WARC-Target-URI"),
                "content_type": h.get_header("Content-Type"),
                "content_length": int(h.get_header("Content-Length")),
                "block_digest": h.get_header("WARC-Block-Digest"),
                "payload_digest": h.get_header("WARC-Payload-Digest"),
                "refers_to": h.get_header("WARC-Refers-To"),
                "profile": h.get_header("WARC-Profile"),
                "refers_to_uri": h.get_header("WARC-Refers-To-Target-URI"),
                "refers_to_date": h.get_header("WARC-Refers-To-Date"),
                "version": h.protocol,
                "digest_passed": rec.digest_checker.passed,
                "digest_problems": list(rec.digest_checker.problems),
                "body_sha256": hashlib.sha256(body).hexdigest(),
                "body_len": len(body),
                "http_protocol": http.protocol if http is not None else None,
                "http_status": http.get_statuscode() if http is not None else None,
                "http_content_length": http.get_header("Content-Length") if http is not None else None,
                "http_content_encoding": http.get_header("Content-Encoding") if http is not None else None,
            })
            # offsets are known once the record has been read to the end
            it.read_to_end(rec)
            seen[-1]["offset"] = it.get_record_offset()
            seen[-1]["length"] = it.get_record_length()
    check(len(seen) == sec["records"], f"warc: {len(seen)} records read, manifest says {sec['records']}")
    check(len(seen) == len(index), f"warc: {len(seen)} records read, index has {len(index)}")
    by_type = {}
    for s in seen:
        by_type[s["type"]] = by_type.get(s["type"], 0) + 1
    check(by_type == sec["by_type"], f"warc: record types {by_type} == manifest {sec['by_type']}")
    check(bool(seen) and seen[0]["type"] == "warcinfo", "warc: first record is warcinfo")
    ids = [s["record_id"] for s in seen]
    check(len(set(ids)) == len(ids), "warc: WARC-Record-IDs are unique")
    earlier = set()
    for i, (s, x) in enumerate(zip(seen, index)):
        w = f"warc record {i} ({s['type']} {s['uri']})"
        check(s["version"] == "WARC/1.1", f"{w}: version {s['version']}")
        if s["type"] == "revisit":
            # warcio leaves a revisit's digests unchecked (None): the block
            # digest is checked here from the record's gzip member.
            check(s["digest_passed"] in (True, None) and not s["digest_problems"],
                  f"{w}: warcio found no digest problem ({s['digest_passed']}, {s['digest_problems']})")
            with open(os.path.join(d, sec["file"]), "rb") as f:
                f.seek(s["offset"])
                member = gzip.decompress(f.read(s["length"]))
            head, _, rest = member.partition(b"\r\n\r\n")
            block = rest[: s["content_length"]]
            check(s["block_digest"] == "sha256:" + hashlib.sha256(block).hexdigest(),
                  f"{w}: block digest is sha256 of the block (read from its gzip member)")
        else:
            check(s["digest_passed"] is True and not s["digest_problems"],
                  f"{w}: warcio verified its digests ({s['digest_passed']}, {s['digest_problems']})")
        if s["type"] == "response":
            # warcio hands over the HTTP payload: the body after the status
            # line and headers, which the payload digest covers.
            check(s["payload_digest"] == "sha256:" + s["body_sha256"],
                  f"{w}: payload digest is sha256 of the HTTP body")
            check(s["http_protocol"] in ("HTTP/1.0", "HTTP/1.1", "HTTP/2", "HTTP/3") and s["http_status"],
                  f"{w}: HTTP status line ({s['http_protocol']} {s['http_status']})")
            check(s["http_content_length"] == str(s["body_len"]),
                  f"{w}: HTTP Content-Length {s['http_content_length']} matches the body ({s['body_len']})")
            check(s["http_content_encoding"] is None, f"{w}: no Content-Encoding on a decoded body")
            check(s["body_len"] < s["content_length"], f"{w}: block holds headers and body")
        elif s["type"] == "revisit":
            # WARC 1.1 6.7.2: a 304 to a conditional request; the block is
            # the HTTP status line and headers, with no payload.
            check(s["profile"] == "http://netpreserve.org/warc/1.1/revisit/server-not-modified",
                  f"{w}: WARC-Profile server-not-modified ({s['profile']})")
            check(s["http_status"] == "304", f"{w}: HTTP status 304 ({s['http_status']})")
            check(s["body_len"] == 0 and s["payload_digest"] is None, f"{w}: no payload")
            check(s["refers_to_uri"] == s["uri"], f"{w}: WARC-Refers-To-Target-URI is the target")
            check(bool(s["refers_to"]) and bool(s["refers_to_date"]),
                  f"{w}: WARC-Refers-To and WARC-Refers-To-Date name the capture it confirms")
        else:
            check(s["block_digest"] == "sha256:" + s["body_sha256"], f"{w}: block digest is sha256 of the block")
            check(s["body_len"] == s["content_length"], f"{w}: Content-Length {s['content_length']} matches block")
        for k in ["type", "record_id", "date", "uri", "content_length", "block_digest",
                  "payload_digest", "refers_to", "offset", "length"]:
            check(s[k] == x[k], f"{w}: {k} {s[k]!r} == index {x[k]!r}")
        check(s["record_id"].startswith("<urn:uuid:") and s["record_id"].endswith(">"),
              f"{w}: record id is a urn:uuid")
        check(len(s["date"]) == 20 and s["date"].endswith("Z"), f"{w}: WARC-Date {s['date']} is UTC seconds")
        if s["type"] != "warcinfo":
            check(bool(s["uri"]), f"{w}: has WARC-Target-URI")
        if s["type"] in ("resource", "conversion"):
            check(s["payload_digest"] == s["block_digest"], f"{w}: payload digest present and equal to block's")
        if s["refers_to"]:
            check(s["refers_to"] in earlier, f"{w}: WARC-Refers-To names an earlier record")
        earlier.add(s["record_id"])
    robots_meta = [s for s in seen if s["type"] == "metadata" and (s["uri"] or "").endswith("/robots.txt")]
    check(len(robots_meta) == sec["robots_captures"],
          f"warc: {len(robots_meta)} robots.txt captures == manifest {sec['robots_captures']}")
    summary["warc"] = {"records": len(seen), "by_type": by_type, "robots_captures": len(robots_meta),
                       "reader": "warcio " + version("warcio")}


def no_remote(url, options=None):
    raise RuntimeError(f"remote JSON-LD context refused: {url}")


def values(node, prop):
    v = node.get(prop, [])
    return v if isinstance(v, list) else [v]


def check_croissant(d, sec, summary, manifest):
    from pyld import jsonld

    with open(os.path.join(d, sec["file"]), encoding="utf-8") as f:
        doc = json.load(f)
    SC = "https://schema.org/"
    CR = "http://mlcommons.org/croissant/"
    PROV = "http://www.w3.org/ns/prov#"
    DCT = "http://purl.org/dc/terms/"
    exp = jsonld.expand(doc, {"documentLoader": no_remote})
    check(len(exp) == 1, f"croissant: expands to one top node ({len(exp)})")
    ds = exp[0]
    check(SC + "Dataset" in ds.get("@type", []), "croissant: @type is schema.org Dataset")
    conf = [v.get("@value", v.get("@id")) for v in values(ds, DCT + "conformsTo")]
    check("http://mlcommons.org/croissant/1.1" in conf, f"croissant: dct:conformsTo croissant 1.1 ({conf})")
    for p in ["name", "description", "license", "url", "creator", "datePublished"]:
        check(bool(values(ds, SC + p)), f"croissant: required property {p}")
    check(bool(values(ds, CR + "citeAs")), "croissant: citeAs")
    dist = values(ds, SC + "distribution")
    check(bool(dist), "croissant: distribution")
    files = {}
    for fo in dist:
        check(CR + "FileObject" in fo.get("@type", []) or CR + "FileSet" in fo.get("@type", []),
              f"croissant: distribution item {fo.get('@id')} is a FileObject/FileSet")
        if CR + "FileObject" in fo.get("@type", []):
            url = values(fo, SC + "contentUrl")[0]["@value"]
            sha = values(fo, SC + "sha256")[0]["@value"]
            check(bool(values(fo, SC + "encodingFormat")), f"croissant: {url} has encodingFormat")
            path = os.path.join(d, url)
            check(os.path.exists(path) and sha256_file(path) == sha, f"croissant: {url} sha256 matches the file")
            files[fo["@id"]] = path
        else:
            check(bool(values(fo, CR + "includes")), f"croissant: FileSet {fo.get('@id')} has includes")
            files[fo["@id"]] = None
    rsets = values(ds, CR + "recordSet")
    check(bool(rsets), "croissant: recordSet")
    nfields = 0
    for rs in rsets:
        for fld in values(rs, CR + "field"):
            nfields += 1
            fid = fld.get("@id")
            check(CR + "Field" in fld.get("@type", []), f"croissant: {fid} is a cr:Field")
            check(bool(values(fld, CR + "dataType")), f"croissant: {fid} has dataType")
            src = values(fld, CR + "source")
            check(bool(src), f"croissant: {fid} has source")
            if src:
                fo = values(src[0], CR + "fileObject") or values(src[0], CR + "fileSet")
                check(bool(fo) and fo[0].get("@id") in files, f"croissant: {fid} source is a described FileObject/FileSet")
    for p in ["wasDerivedFrom", "wasGeneratedBy"]:
        check(bool(values(ds, PROV + p)), f"croissant: prov:{p}")
    acts = values(ds, PROV + "wasGeneratedBy")
    for a in acts:
        check(PROV + "Activity" in a.get("@type", []), f"croissant: {a.get('@id')} is a prov:Activity")
        check(bool(values(a, PROV + "startedAtTime")), f"croissant: {a.get('@id')} has startedAtTime")
    # every record carries its licence (SPDX id or null when none was found)
    recfile = manifest["files"][0]["name"]
    n = 0
    with open(os.path.join(d, recfile), encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            n += 1
            check("licence" in r, f"croissant: record {n} has a licence field")
    check(n == manifest["records"], f"croissant: {n} records == manifest {manifest['records']}")
    summary["croissant"] = {"fields": nfields, "distribution": len(dist), "activities": len(acts),
                            "records": n, "jsonld": "PyLD " + version("PyLD")}


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    d = sys.argv[1]
    with open(os.path.join(d, "manifest.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    for fi in manifest["files"]:
        p = os.path.join(d, fi["name"])
        check(os.path.exists(p) and os.path.getsize(p) == fi["bytes"] and sha256_file(p) == fi["sha256"],
              f"manifest: {fi['name']} size and sha256")
    summary = {"format": manifest.get("format")}
    if "warc" in manifest:
        try:
            check_warc(d, manifest["warc"], summary)
        except Exception as e:  # an unreadable file is a finding, not a crash
            check(False, f"warc: warcio could not read the file: {type(e).__name__}: {e}")
    if "croissant" in manifest:
        try:
            check_croissant(d, manifest["croissant"], summary, manifest)
        except Exception as e:  # an unreadable file is a finding, not a crash
            check(False, f"croissant: could not be read as JSON-LD: {type(e).__name__}: {e}")
    check("warc" in manifest or "croissant" in manifest, "manifest has a warc or croissant section")
    summary.update({"ok": not problems, "checks": len(checks), "problems": problems[:50]})
    print(json.dumps(summary))
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
