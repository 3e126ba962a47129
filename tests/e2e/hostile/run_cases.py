#!/usr/bin/env python3
"""run_cases.py: the data-driven hostile-input suite (stdlib only).

Every file CASES/*.sip is one case: a byte-exact SIP message (or
datagram) preceded by comment lines that say what must happen.  Each case
is sent over every transport it names, each time from a fresh socket, and
after each send the server must still answer OPTIONS with 200 (and still
be alive when --pid is given).

Case file format (the comment lines are at the very top; the message
starts at the first line that does not start with '#'):

  # expect: 400            first line: expected final status(es), e.g.
                           '400', '405,501', or 'drop' (no response at all)
  # udp: drop              override of 'expect' for one transport
  # tcp: 413               (same)
  # transports: udp tcp    default: both
  # desc: TEXT             what the case is (RFC 4475 section, ...)
  # require: REGEX         the final response must match (repeatable)
  # reject: REGEX          nothing received may match (repeatable); the
                           echoed Via/From/To/Call-ID/CSeq lines are
                           removed first, so this checks *other* places
  # echo: call-id from cseq  these request headers must come back
                           byte-identical in the final response (§8.2.6.2)
  # responses: N           exactly N responses must arrive (UDP only)
  # db: SQL => VALUE       after the case, psql -tA SQL must print VALUE
                           (placeholders are expanded in SQL and VALUE)
  # raw                    do not turn LF line ends into CRLF
  # known-bug: TEXT         a documented server bug: failing is reported,
                           not fatal (if the server survives); passing is
                           fatal, so the line goes when the bug is fixed
  # wait: SECONDS          how long to wait for the final response / for
                           silence in 'drop' cases (default 3 / 0.8)

Placeholders in the message (and in require/reject/db lines):
  {user} {victim} {domain}   the hostile user, the victim user, our domain
  {via}                      127.0.0.1:LOCALPORT of the sending socket
  {proto}                    UDP or TCP
  {branch} {tag} {callid} {n}  fresh per send
  {NUL} {CR} {LF} {TAB} {CRLF}  the control characters
  {hex:0a0d}                 raw bytes
  {repeat:N:TEXT}            TEXT N times (TEXT: backslash escapes \\r \\n
                             \\x00 \\t; may use the simple placeholders
                             above and {i}, the repetition index; no other
                             braces)
  {clen}                     the byte length of the body (after the first
                             empty line), computed last
A message larger than a UDP datagram can carry is not sent over UDP
(the case must then name only tcp).

Global checks (every byte received in every case): no match for any
--forbid REGEX (e.g. the victim's secret marker, 'root:x:0:0').

Output: one line per case and transport on stderr; a JSON line per
result in --out; exit status 1 when any case failed.
"""

import argparse
import glob
import json
import os
import random
import re
import select
import socket
import subprocess
import sys
import time

MAX_DGRAM = 65507


def token(n=10):
    return "%0*x" % (n, random.getrandbits(4 * n))


class Case:
    def __init__(self, path):
        self.path = path
        self.name = os.path.basename(path)[:-4]
        with open(path, "rb") as f:
            raw = f.read()
        lines = raw.split(b"\n")
        meta = []
        i = 0
        while i < len(lines) and lines[i].startswith(b"#"):
            meta.append(lines[i][1:].strip().decode("utf-8"))
            i += 1
        self.body = b"\n".join(lines[i:])
        self.expect = None
        self.per_tp = {}
        self.transports = ["udp", "tcp"]
        self.desc = ""
        self.require, self.reject, self.echo, self.db = [], [], [], []
        self.responses = None
        self.raw = False
        self.wait = None
        self.known_bug = None
        for m in meta:
            key, _, val = m.partition(":")
            key, val = key.strip().lower(), val.strip()
            if key == "expect":
                self.expect = val
            elif key in ("udp", "tcp"):
                self.per_tp[key] = val
            elif key == "transports":
                self.transports = val.split()
            elif key == "desc":
                self.desc = val
            elif key == "require":
                self.require.append(val)
            elif key == "reject":
                self.reject.append(val)
            elif key == "echo":
                self.echo = [h.strip().lower() for h in re.split(r"[ ,]+", val) if h.strip()]
            elif key == "responses":
                self.responses = int(val)
            elif key == "db":
                sql, sep, want = val.partition("=>")
                if not sep:
                    raise SystemExit("%s: db line without '=>'" % path)
                self.db.append((sql.strip(), want.strip()))
            elif key == "raw":
                self.raw = True
            elif key == "wait":
                self.wait = float(val)
            elif key == "known-bug":
                self.known_bug = val
            else:
                raise SystemExit("%s: unknown comment key %r" % (path, key))
        if self.expect is None:
            raise SystemExit("%s: the first line must be '# expect: STATUS|drop'" % path)

    def expected(self, tp):
        v = self.per_tp.get(tp, self.expect)
        if v == "drop":
            return None
        return [int(c) for c in v.split(",")]


SIMPLE = ("user", "victim", "domain", "via", "proto", "branch", "tag", "callid", "n",
          "NUL", "CR", "LF", "TAB", "CRLF", "i")


def unescape(text):
    return text.encode("utf-8").decode("unicode_escape").encode("latin-1")


class Expander:
    def __init__(self, args, tp, lport):
        self.v = {
            "user": args.user.encode(), "victim": args.victim.encode(),
            "domain": args.domain.encode(),
            "via": ("127.0.0.1:%d" % lport).encode(), "proto": tp.upper().encode(),
            "branch": ("z9hG4bK" + token(14)).encode(), "tag": token(8).encode(),
            "callid": (token(16) + "@hostile").encode(), "n": str(random.getrandbits(30)).encode(),
            "NUL": b"\x00", "CR": b"\r", "LF": b"\n", "TAB": b"\t", "CRLF": b"\r\n",
        }

    def simple(self, data, i=None):
        def rep(m):
            k = m.group(1).decode()
            if k == "i":
                return str(i if i is not None else 0).encode()
            return self.v[k]
        data = re.sub(rb"\{(" + b"|".join(k.encode() for k in SIMPLE) + rb")\}", rep, data)
        return re.sub(rb"\{hex:([0-9a-fA-F]+)\}", lambda m: bytes.fromhex(m.group(1).decode()), data)

    def message(self, case):
        data = case.body
        if not case.raw:
            data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")

        def rep(m):
            n, text = int(m.group(1)), unescape(m.group(2).decode("utf-8"))
            return b"".join(self.simple(text, i) for i in range(n))
        data = re.sub(rb"\{repeat:(\d+):((?:\{[A-Za-z]+\}|[^{}])*)\}", rep, data)
        data = self.simple(data)
        if b"{clen}" in data:
            end = data.find(b"\r\n\r\n")
            blen = len(data) - (end + 4) if end >= 0 else 0
            data = data.replace(b"{clen}", str(blen).encode(), 1)
        return data

    def text(self, s):
        return self.simple(s.encode("utf-8")).decode("utf-8", "replace")


def split_stream(buf):
    """Complete messages at the front of a TCP stream, and the rest."""
    out = []
    while True:
        buf = buf.lstrip(b"\r\n")
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return out, buf
        head = buf[:end].decode("utf-8", "replace")
        m = re.search(r"(?im)^(?:content-length|l)[ \t]*:[ \t]*(\d+)", head)
        total = end + 4 + (int(m.group(1)) if m else 0)
        if len(buf) < total:
            return out, buf
        out.append(buf[:total])
        buf = buf[total:]


def status_of(msg):
    m = re.match(rb"SIP/2\.0 (\d{3}) ", msg)
    return int(m.group(1)) if m else None


def headers_of(msg, name):
    """Values (raw bytes, unfolded lines kept as sent) of header NAME."""
    compact = {"call-id": b"i", "from": b"f", "to": b"t", "via": b"v", "cseq": None}
    head = msg.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]
    names = {name.encode()}
    if compact.get(name):
        names.add(compact[name])
    vals = []
    for line in head:
        n, sep, v = line.partition(b":")
        if sep and n.strip().lower() in names:
            vals.append(v.strip())
    return vals


def strip_echo(msg):
    keep = []
    for line in msg.split(b"\r\n"):
        n = line.partition(b":")[0].strip().lower()
        if n in (b"via", b"v", b"from", b"f", b"to", b"t", b"call-id", b"i", b"cseq"):
            continue
        keep.append(line)
    return b"\r\n".join(keep)


class Runner:
    def __init__(self, args):
        self.args = args
        host, port = args.server.rsplit(":", 1)
        self.server = (host, int(port))
        self.forbid = [re.compile(f.encode(), re.I) for f in args.forbid]
        self.out = open(args.out, "a") if args.out else None
        self.failures = []
        self.known = []
        self.results = 0
        self.settle = 0.05

    # -- transport -------------------------------------------------------
    def run_udp(self, data, wait, want_final):
        s = self.udp_sock
        got = []
        try:
            s.sendto(data, self.server)
            deadline = time.monotonic() + wait
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                r, _, _ = select.select([s], [], [], left)
                if not r:
                    break
                d, _ = s.recvfrom(1 << 17)
                got.append(d)
                if want_final and any((status_of(g) or 0) >= 200 for g in got):
                    # a short settle for extra responses
                    deadline = min(deadline, time.monotonic() + self.settle)
        finally:
            s.close()
        return got, None

    def run_tcp(self, data, wait, want_final):
        s = self.tcp_sock
        got, buf, closed, note = [], b"", False, None
        try:
            try:
                s.sendall(data)
            except (BrokenPipeError, ConnectionResetError) as e:
                note = "send: %s" % e.__class__.__name__
            deadline = time.monotonic() + wait
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                r, _, _ = select.select([s], [], [], left)
                if not r:
                    break
                try:
                    d = s.recv(1 << 17)
                except ConnectionResetError:
                    closed = True
                    break
                if not d:
                    closed = True
                    break
                buf += d
                msgs, buf = split_stream(buf)
                got.extend(msgs)
                if want_final and any((status_of(g) or 0) >= 200 for g in got):
                    deadline = min(deadline, time.monotonic() + self.settle)
        finally:
            s.close()
        if buf.strip():
            got.append(buf)
        if closed:
            note = (note + "; " if note else "") + "closed by server"
        return got, note

    def options_ok(self, tp):
        """The server still answers OPTIONS with 200 (a fresh socket)."""
        b = "z9hG4bK" + token(14)
        for attempt in range(3):
            if tp == "udp":
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.bind(("127.0.0.1", 0))
            else:
                try:
                    s = socket.create_connection(self.server, timeout=2)
                except OSError as e:
                    return "TCP connect failed: %s" % e
            lport = s.getsockname()[1]
            msg = ("OPTIONS sip:%s SIP/2.0\r\nVia: SIP/2.0/%s 127.0.0.1:%d;branch=%s;rport\r\n"
                   "Max-Forwards: 70\r\nFrom: <sip:health@%s>;tag=%s\r\nTo: <sip:%s>\r\n"
                   "Call-ID: health-%s\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n" %
                   (self.args.domain, tp.upper(), lport, b, self.args.domain, token(6),
                    self.args.domain, token(12))).encode()
            try:
                if tp == "udp":
                    s.sendto(msg, self.server)
                else:
                    s.sendall(msg)
                s.settimeout(2)
                buf = b""
                end = time.monotonic() + 2
                while time.monotonic() < end:
                    d = s.recv(65536)
                    if not d:
                        break
                    buf += d
                    if re.match(rb"SIP/2\.0 200 ", buf) and (tp == "udp" or b"\r\n\r\n" in buf):
                        return None
                    if tp == "udp":
                        break
            except (socket.timeout, OSError):
                pass
            finally:
                s.close()
        return "no 200 to OPTIONS over %s after the case" % tp

    def alive(self):
        if not self.args.pid:
            return True
        try:
            os.kill(self.args.pid, 0)
            return True
        except OSError:
            return False

    def psql(self, sql):
        r = subprocess.run(["psql", "-d", self.args.db, "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1",
                            "-c", sql], capture_output=True, text=True, timeout=20)
        if r.returncode != 0:
            return "psql error: " + r.stderr.strip()
        return r.stdout.strip()

    # -- one case ----------------------------------------------------------
    def run(self, case, tp):
        errors = []
        if tp == "udp":
            self.udp_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.udp_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            self.udp_sock.bind(("127.0.0.1", 0))
            lport = self.udp_sock.getsockname()[1]
        else:
            self.tcp_sock = socket.create_connection(self.server, timeout=5)
            self.tcp_sock.setblocking(True)
            lport = self.tcp_sock.getsockname()[1]
        ex = Expander(self.args, tp, lport)
        data = ex.message(case)
        want = case.expected(tp)
        wait = case.wait if case.wait is not None else (3.0 if want else 0.6)
        if tp == "udp" and len(data) > MAX_DGRAM:
            raise SystemExit("%s: %d bytes do not fit in a datagram; say '# transports: tcp'"
                             % (case.name, len(data)))  # a broken case file, not a server bug
        t0 = time.monotonic()
        if tp == "udp":
            got, note = self.run_udp(data, wait, want is not None)
        else:
            got, note = self.run_tcp(data, wait, want is not None)
        elapsed = time.monotonic() - t0
        finals = [g for g in got if (status_of(g) or 0) >= 200]
        final = finals[0] if finals else None
        status = status_of(final) if final else None
        if want is None:
            responses = [g for g in got if status_of(g) is not None]
            if responses:
                errors.append("expected no response (drop), got %r" % responses[0].split(b"\r\n", 1)[0])
        elif status is None:
            errors.append("expected %s, got no final response within %.1fs%s" %
                          (",".join(map(str, want)), wait, " (%s)" % note if note else ""))
        elif status not in want:
            errors.append("expected %s, got %r" % (",".join(map(str, want)), final.split(b"\r\n", 1)[0]))
        if final is not None:
            for rx in case.require:
                if not re.search(ex.text(rx).encode(), final, re.I | re.M):
                    errors.append("response does not match /%s/" % rx)
            for h in case.echo:
                sent = headers_of(data, h)
                back = headers_of(final, h)
                if h == "to" and len(sent) == 1 and len(back) == 1 and b"tag=" not in sent[0]:
                    back = [re.sub(rb";tag=[^;]*$", b"", back[0])]
                if sent != back:
                    errors.append("%s not echoed byte-exact: sent %r, got %r" % (h, sent[:2], back[:2]))
        if case.responses is not None and tp == "udp":
            n = len([g for g in got if status_of(g) is not None])
            if n != case.responses:
                errors.append("expected %d responses, got %d" % (case.responses, n))
        for g in got:
            for rx in case.reject:
                if re.search(ex.text(rx).encode(), strip_echo(g), re.I | re.M):
                    errors.append("received text matches rejected /%s/: %r" % (rx, g[:300]))
            for rx in self.forbid:
                if rx.search(g):
                    errors.append("received text matches forbidden /%s/ (leak): %r" % (rx.pattern, g[:300]))
        if not self.alive():
            errors.append("simpled is gone (crashed)")
        else:
            h = self.options_ok("udp")
            if h:
                errors.append(h)
            if tp == "tcp":
                h = self.options_ok("tcp")
                if h:
                    errors.append(h)
        if not self.alive():
            errors.append("simpled is gone (crashed)")
        for sql, val in case.db:
            sql_x, val_x = ex.text(sql), ex.text(val)
            have = self.psql(sql_x)
            if have != val_x:
                errors.append("db: %s => expected %r, got %r" % (sql_x, val_x, have))
        line = "%-8s %-4s %-40s %s%s" % ("ok" if not errors else "FAIL", tp, case.name,
                                         status if status is not None else "-",
                                         "" if not errors else "  <- " + "; ".join(errors))
        print(line, file=sys.stderr)
        self.results += 1
        if self.out:
            self.out.write(json.dumps({
                "case": case.name, "transport": tp, "status": status, "errors": errors,
                "sent": data[:2000].decode("latin-1"), "sent_len": len(data),
                "received": [g[:2000].decode("latin-1") for g in got],
                "elapsed": round(elapsed, 3), "note": note}) + "\n")
            self.out.flush()
        if case.known_bug:
            # A known, documented server bug: its failure is reported but
            # does not fail the run, as long as the server survived it; a
            # known-bug case that passes fails the run, so the marker is
            # removed when the bug is fixed.
            if errors and self.alive():
                self.known.append((case.name, tp, case.known_bug))
                return True
            if not errors:
                errors = ["passes now: remove its 'known-bug' line (%s)" % case.known_bug]
        if errors:
            self.failures.append((case.name, tp, errors))
        return not errors


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", required=True)
    ap.add_argument("--cases", required=True, help="directory of *.sip")
    ap.add_argument("--only", action="append", help="glob of case names (repeatable)")
    ap.add_argument("--transport", choices=("udp", "tcp"), action="append")
    ap.add_argument("--domain", default="example.test")
    ap.add_argument("--user", required=True)
    ap.add_argument("--victim", required=True)
    ap.add_argument("--forbid", action="append", default=[])
    ap.add_argument("--pid", type=int)
    ap.add_argument("--db", default=os.environ.get("SIMPLED_TEST_DB", ""))
    ap.add_argument("--out")
    args = ap.parse_args()
    files = sorted(glob.glob(os.path.join(args.cases, "*.sip")))
    if args.only:
        import fnmatch
        files = [f for f in files if any(fnmatch.fnmatch(os.path.basename(f)[:-4], g) for g in args.only)]
    if not files:
        raise SystemExit("no cases")
    cases = [Case(f) for f in files]
    r = Runner(args)
    for c in cases:
        for tp in c.transports:
            if args.transport and tp not in args.transport:
                continue
            r.run(c, tp)
            if not r.alive():
                print("simpled died; stopping", file=sys.stderr)
                break
        if not r.alive():
            break
    print("%d cases, %d runs, %d failed, %d known bugs" % (len(cases), r.results, len(r.failures), len(r.known)),
          file=sys.stderr)
    for name, tp, why in r.known:
        print("KNOWN BUG %s (%s): %s" % (name, tp, why), file=sys.stderr)
    for name, tp, errs in r.failures:
        print("FAILED %s (%s): %s" % (name, tp, "; ".join(errs)), file=sys.stderr)
    print(json.dumps({"cases": len(cases), "runs": r.results, "failed": len(r.failures)}))
    return 1 if r.failures else 0


if __name__ == "__main__":
    sys.exit(main())
