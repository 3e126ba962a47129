#!/usr/bin/env python3
"""One XCAP (HTTP) request for tests/e2e/test_xcap.sh, standard library only.

Answers a digest challenge (RFC 7616: SHA-256 or MD5, qop=auth) when
--user/--password are given, checks the final status (--expect) and
optionally the body (--expect-body REGEX, --reject-body REGEX) and headers
(--expect-header REGEX), and prints "STATUS ETAG" then the body.  The path
is percent-encoded here (node selectors hold [ ] " characters).
Exit status: 0 as expected, 1 otherwise, 2 on a connection problem.
"""
import argparse
import hashlib
import http.client
import os
import re
import sys
import urllib.parse


def H(algo, s):
    f = hashlib.sha256 if algo.upper() == "SHA-256" else hashlib.md5
    return f(s.encode()).hexdigest()


def parse_challenge(value):
    params = {}
    for m in re.finditer(r'(\w+)=("((?:[^"\\]|\\.)*)"|[^,\s]+)', value):
        params[m.group(1).lower()] = m.group(3) if m.group(3) is not None else m.group(2)
    return params


def authorization(ch, user, password, method, uri, algo):
    realm, nonce = ch["realm"], ch["nonce"]
    cnonce, nc = os.urandom(8).hex(), "00000001"
    ha1 = H(algo, f"{user}:{realm}:{password}")
    ha2 = H(algo, f"{method}:{uri}")
    resp = H(algo, f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
    return (f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
            f'response="{resp}", algorithm={algo}, qop=auth, nc={nc}, cnonce="{cnonce}"')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True, help="127.0.0.1:PORT")
    ap.add_argument("--method", default="GET")
    ap.add_argument("--path", required=True, help="unencoded path, e.g. /xcap-root/.../~~/a/b[@c=\"d\"]")
    ap.add_argument("--query", default="", help="query component (unencoded)")
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--algorithm", default="SHA-256")
    ap.add_argument("--body")
    ap.add_argument("--body-file")
    ap.add_argument("--ctype")
    ap.add_argument("--if-match")
    ap.add_argument("--if-none-match")
    ap.add_argument("--expect", required=True)
    ap.add_argument("--expect-body", action="append", default=[])
    ap.add_argument("--reject-body", action="append", default=[])
    ap.add_argument("--expect-header", action="append", default=[])
    a = ap.parse_args()

    body = a.body.encode() if a.body is not None else None
    if a.body_file:
        with open(a.body_file, "rb") as f:
            body = f.read()
    target = urllib.parse.quote(a.path, safe="/:@~=()*!$,;'+-._")
    if a.query:
        target += "?" + urllib.parse.quote(a.query, safe="/:@=()&;,")
    host, port = a.server.rsplit(":", 1)

    def send(auth):
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        headers = {}
        if a.ctype:
            headers["Content-Type"] = a.ctype
        if a.if_match:
            headers["If-Match"] = a.if_match
        if a.if_none_match:
            headers["If-None-Match"] = a.if_none_match
        if auth:
            headers["Authorization"] = auth
        conn.request(a.method, target, body=body, headers=headers)
        r = conn.getresponse()
        data = r.read().decode("utf-8", "replace")
        hdrs = r.getheaders()
        conn.close()
        return r.status, hdrs, data

    try:
        status, hdrs, data = send(None)
        if status == 401 and a.user:
            chs = [parse_challenge(v) for k, v in hdrs if k.lower() == "www-authenticate"]
            ch = next((c for c in chs if c.get("algorithm", "MD5").upper() == a.algorithm.upper()), None)
            if not ch:
                print(f"no {a.algorithm} challenge in {hdrs}", file=sys.stderr)
                return 1
            status, hdrs, data = send(authorization(ch, a.user, a.password, a.method, target, a.algorithm))
    except (OSError, http.client.HTTPException) as e:
        print(f"connection problem: {e}", file=sys.stderr)
        return 2

    etag = next((v for k, v in hdrs if k.lower() == "etag"), "-")
    print(f"{status} {etag}")
    print(data, end="" if data.endswith("\n") or not data else "\n")
    ok = str(status) in a.expect.split(",")
    htext = "\n".join(f"{k}: {v}" for k, v in hdrs)
    for rx in a.expect_body:
        ok = ok and re.search(rx, data, re.S) is not None
    for rx in a.reject_body:
        ok = ok and re.search(rx, data, re.S) is None
    for rx in a.expect_header:
        ok = ok and re.search(rx, htext, re.I | re.M) is not None
    if not ok:
        print(f"unexpected answer to {a.method} {target}: {status} (want {a.expect})\n{htext}\n{data}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
