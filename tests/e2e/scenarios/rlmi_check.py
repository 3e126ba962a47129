#!/usr/bin/env python3
"""rlmi_check.py: checks one NOTIFY of a list subscription (RFC 4662).

Reads a NOTIFY log line of presence_client.py (JSON) from stdin and checks
that the body is a well-formed multipart/related (RFC 2387: boundary,
start parameter naming the RLMI part by Content-ID, type parameter) whose
root is an RLMI document (RFC 4662 §5), that every cid in the RLMI names
exactly one part and every part is named by one cid, that the NOTIFY has
Require: eventlist, and the expectations given.  Prints
"version=N full=true|false resources=N parts=N" and exits 0, or prints the
reason and exits 1.

  --full true|false      fullState
  --resources N          <resource> elements
  --parts N              body parts besides the RLMI
  --state URI=STATE[:REASON]   instance state of one resource (repeatable)
  --part-contains URI=TEXT     that resource's part contains TEXT
  --min-version N
"""
import argparse
import json
import re
import sys
import xml.etree.ElementTree as ET

RLMI = "{urn:ietf:params:xml:ns:rlmi}"


def fail(msg):
    print("rlmi_check: " + msg)
    sys.exit(1)


def params(ctype):
    out = {}
    for m in re.finditer(r';\s*([A-Za-z-]+)\s*=\s*("([^"]*)"|[^;\s]+)', ctype):
        out[m.group(1).lower()] = m.group(3) if m.group(3) is not None else m.group(2)
    return out


def split_parts(body, boundary):
    delim = "--" + boundary
    if not body.startswith(delim + "\r\n"):
        fail("body does not start with the boundary delimiter")
    if not body.rstrip("\r\n").endswith(delim + "--"):
        fail("body does not end with the close delimiter")
    inner = body[len(delim) + 2:body.rstrip("\r\n").rfind("\r\n" + delim + "--")]
    chunks = inner.split("\r\n" + delim + "\r\n")
    parts = []
    for c in chunks:
        head, sep, content = c.partition("\r\n\r\n")
        if not sep:
            fail("a part without a blank line after its headers")
        hdrs = {}
        for line in head.split("\r\n"):
            name, _, value = line.partition(":")
            hdrs[name.strip().lower()] = value.strip()
        if "content-id" not in hdrs or "content-type" not in hdrs:
            fail("a part without Content-ID or Content-Type: %r" % head)
        parts.append((hdrs, content))
    return parts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--full")
    ap.add_argument("--resources", type=int)
    ap.add_argument("--parts", type=int)
    ap.add_argument("--state", action="append", default=[])
    ap.add_argument("--part-contains", action="append", default=[])
    ap.add_argument("--min-version", type=int)
    a = ap.parse_args()
    n = json.loads(sys.stdin.readline())
    if (n.get("require") or "").strip().lower() != "eventlist":
        fail("Require: eventlist missing (got %r)" % n.get("require"))
    ctype = n.get("ctype") or ""
    if not ctype.lower().startswith("multipart/related"):
        fail("Content-Type is %r" % ctype)
    p = params(ctype)
    if p.get("type", "").lower() != "application/rlmi+xml":
        fail("type parameter is %r" % p.get("type"))
    if "boundary" not in p or "start" not in p:
        fail("boundary or start parameter missing: %r" % ctype)
    parts = split_parts(n["body"], p["boundary"])
    by_cid = {}
    for hdrs, content in parts:
        cid = hdrs["content-id"]
        if not (cid.startswith("<") and cid.endswith(">")):
            fail("Content-ID not in angle brackets: %r" % cid)
        if cid in by_cid:
            fail("duplicate Content-ID %s" % cid)
        by_cid[cid] = (hdrs, content)
    if p["start"] not in by_cid:
        fail("start %r names no part" % p["start"])
    root_hdrs, root_content = by_cid.pop(p["start"])
    if not root_hdrs["content-type"].lower().startswith("application/rlmi+xml"):
        fail("root part is %r" % root_hdrs["content-type"])
    if parts[0][0]["content-id"] != p["start"]:
        fail("the RLMI part is not the first part")
    lst = ET.fromstring(root_content.encode())
    if lst.tag != RLMI + "list":
        fail("RLMI root is %s" % lst.tag)
    version = int(lst.get("version"))
    full = lst.get("fullState")
    resources = lst.findall(RLMI + "resource")
    states = {}
    named = set()
    for r in resources:
        inst = r.findall(RLMI + "instance")
        if len(inst) != 1:
            fail("resource %s has %d instances" % (r.get("uri"), len(inst)))
        i = inst[0]
        st = i.get("state") + (":" + i.get("reason") if i.get("reason") else "")
        states[r.get("uri")] = (st, i.get("cid"))
        if i.get("cid"):
            key = "<" + i.get("cid") + ">"
            if key not in by_cid:
                fail("cid %s of %s names no part" % (i.get("cid"), r.get("uri")))
            named.add(key)
            ET.fromstring(by_cid[key][1].encode())  # each part is well-formed XML
    if named != set(by_cid):
        fail("parts named by no cid: %s" % (set(by_cid) - named))
    if a.full is not None and full != a.full:
        fail("fullState=%s, expected %s" % (full, a.full))
    if a.resources is not None and len(resources) != a.resources:
        fail("%d resources, expected %d: %s" % (len(resources), a.resources, list(states)))
    if a.parts is not None and len(by_cid) != a.parts:
        fail("%d parts, expected %d" % (len(by_cid), a.parts))
    if a.min_version is not None and version < a.min_version:
        fail("version %d < %d" % (version, a.min_version))
    for s in a.state:
        uri, _, want = s.partition("=")
        got = states.get(uri, (None,))[0]
        if got != want:
            fail("state of %s is %s, expected %s" % (uri, got, want))
    for s in a.part_contains:
        uri, _, text = s.partition("=")
        cid = states.get(uri, (None, None))[1]
        if not cid or text not in by_cid["<" + cid + ">"][1]:
            fail("part of %s does not contain %r" % (uri, text))
    print("version=%d full=%s resources=%d parts=%d" % (version, full, len(resources), len(by_cid)))


main()
