#!/usr/bin/env python3
"""sipclient.py: a small SIP client for the end-to-end tests (stdlib only).

It does what sipp 3.6.1 cannot:
  - Digest with algorithm=SHA-256 (RFC 7616, RFC 8760): sipp 3.6.1 answers
    MD5 and AKAv1-MD5 only, and it answers the *first* challenge of a 401,
    so it fails ("authentication must use MD5 or AKAv1-MD5") as soon as the
    server offers SHA-256 first, as simpled does.  MD5 is therefore also
    done here, by choosing the MD5 challenge of the two.
  - stale nonces (answer a challenge after a wait);
  - sending the very same datagram twice (a retransmission);
  - raw bytes (malformed requests, garbage);
  - a load loop for scripts/bench.sh (REGISTER with authentication).

Every command prints the last final response on stdout and exits 0 when
every expectation held, 1 (with the reason and the exchange on stderr)
when one did not, 2 on a usage error.

Usage: sipclient.py [--server HOST:PORT] [--transport udp|tcp] COMMAND ...
       sipclient.py COMMAND --help
"""

import argparse
import hashlib
import os
import random
import re
import select
import socket
import sys
import time

COMPACT = {
    "i": "call-id", "m": "contact", "e": "content-encoding",
    "l": "content-length", "c": "content-type", "f": "from", "s": "subject",
    "k": "supported", "t": "to", "v": "via",
}


class Failure(Exception):
    pass


# --------------------------------------------------------------------------
# Messages

class Message:
    """A parsed SIP message: first line, headers in order, body."""

    def __init__(self, raw):
        self.raw = raw
        text = raw.decode("utf-8", "replace")
        head, _, self.body = text.partition("\r\n\r\n")
        lines = head.split("\r\n")
        self.first = lines[0]
        self.headers = []  # (lower-case full name, value)
        for line in lines[1:]:
            if line[:1] in (" ", "\t") and self.headers:
                name, value = self.headers[-1]
                self.headers[-1] = (name, value + " " + line.strip())
                continue
            name, sep, value = line.partition(":")
            if not sep:
                continue
            name = name.strip().lower()
            self.headers.append((COMPACT.get(name, name), value.strip()))
        m = re.match(r"SIP/2\.0\s+(\d{3})\s*(.*)", self.first)
        self.status = int(m.group(1)) if m else None
        self.reason = m.group(2) if m else None

    def all(self, name):
        name = name.lower()
        return [v for n, v in self.headers if n == name]

    def get(self, name):
        values = self.all(name)
        return values[0] if values else None

    def cseq_method(self):
        value = self.get("cseq") or ""
        parts = value.split()
        return parts[1].upper() if len(parts) == 2 else None

    def header_text(self):
        return "\r\n".join([self.first] + ["%s: %s" % hv for hv in self.headers])

    def contacts(self):
        """The Contact values, one per binding (comma-separated ones split)."""
        out = []
        for value in self.all("contact"):
            out.extend(split_commas(value))
        return [c for c in out if c]


def split_commas(value):
    """Splits a header value at commas outside quotes and <...>."""
    parts, cur, quoted, angle = [], [], False, False
    i = 0
    while i < len(value):
        ch = value[i]
        if quoted and ch == "\\" and i + 1 < len(value):
            cur.append(value[i:i + 2])
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == "<":
            angle = True
        elif not quoted and ch == ">":
            angle = False
        elif ch == "," and not quoted and not angle:
            parts.append("".join(cur).strip())
            cur = []
            i += 1
            continue
        cur.append(ch)
        i += 1
    parts.append("".join(cur).strip())
    return parts


def contact_uri(contact):
    m = re.search(r"<([^>]*)>", contact)
    if m:
        return m.group(1)
    return contact.split(";")[0].strip()


def contact_param(contact, name):
    rest = contact.split(">", 1)[1] if ">" in contact else contact.split(";", 1)[-1]
    for p in rest.split(";"):
        k, _, v = p.strip().partition("=")
        if k.lower() == name:
            return v.strip().strip('"')
    return None


def parse_challenges(values):
    """[(scheme, {param: value})] from WWW-/Proxy-Authenticate values."""
    out = []
    for value in values:
        # One header may hold several challenges ("Digest a=1, Digest b=2").
        for chunk in re.split(r",\s*(?=[A-Za-z][\w-]*\s+[\w-]+\s*=)", value):
            chunk = chunk.strip()
            m = re.match(r"([A-Za-z][\w-]*)\s+(.*)", chunk, re.S)
            if not m:
                if out:
                    out[-1][1].update(parse_params(chunk))
                continue
            out.append((m.group(1), parse_params(m.group(2))))
    return out


def parse_params(text):
    params = {}
    for m in re.finditer(r'([\w-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,]+)', text):
        v = m.group(2)
        if v.startswith('"'):
            v = re.sub(r"\\(.)", r"\1", v[1:-1])
        params[m.group(1).lower()] = v
    return params


# --------------------------------------------------------------------------
# Transport

class Conn:
    """One UDP socket or one TCP connection to the server."""

    def __init__(self, server, transport, local_ip="127.0.0.1"):
        host, port = split_hostport(server)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.transport = transport
        self.server = (host, port)
        self.buf = b""
        if transport == "udp":
            self.sock = socket.socket(family, socket.SOCK_DGRAM)
            self.sock.bind((local_ip if family == socket.AF_INET else "::1", 0))
            self.sock.connect(self.server)
        else:
            self.sock = socket.create_connection(self.server, timeout=5)
            self.sock.settimeout(None)
        self.local = self.sock.getsockname()[:2]

    def via_host(self):
        h, p = self.local
        return ("[%s]" % h if ":" in h else h) + ":%d" % p

    def send(self, data):
        if self.transport == "udp":
            self.sock.send(data)
        else:
            self.sock.sendall(data)

    def recv(self, timeout):
        """The next message within timeout seconds, or None."""
        deadline = time.monotonic() + timeout
        while True:
            if self.transport == "tcp":
                msg = self._take_frame()
                if msg is not None:
                    return msg
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self.sock], [], [], left)
            if not r:
                return None
            if self.transport == "udp":
                data = self.sock.recv(65535)
                if data.strip(b"\r\n"):
                    return Message(data)
            else:
                data = self.sock.recv(65535)
                if not data:
                    raise Failure("the server closed the TCP connection")
                self.buf += data

    def _take_frame(self):
        self.buf = self.buf.lstrip(b"\r\n")  # keep-alive CRLFs
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = self.buf[:end].decode("utf-8", "replace")
        m = re.search(r"(?im)^(?:content-length|l)\s*:\s*(\d+)", head)
        length = int(m.group(1)) if m else 0
        total = end + 4 + length
        if len(self.buf) < total:
            return None
        frame, self.buf = self.buf[:total], self.buf[total:]
        return Message(frame)

    def close(self):
        self.sock.close()


def split_hostport(s):
    m = re.match(r"^\[([^\]]+)\]:(\d+)$", s) or re.match(r"^([^:]+):(\d+)$", s)
    if not m:
        raise SystemExit("bad HOST:PORT %r" % s)
    return m.group(1), int(m.group(2))


# --------------------------------------------------------------------------
# Requests

def token(n=10):
    return "".join(random.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(n))


class Dialog:
    """Call-ID, tags and CSeq of a registration (or of one request)."""

    def __init__(self, conn, aor, ruri=None):
        self.conn = conn
        self.aor = aor
        self.ruri = ruri or "sip:" + aor.split("@", 1)[1]
        self.call_id = token(16) + "@sipclient"
        self.tag = token(8)
        self.cseq = random.randint(1, 1000)

    def build(self, method, headers=(), body="", branch=None, cseq=None,
              to=None, max_forwards=70):
        branch = branch or "z9hG4bK" + token(14)
        if cseq is None:
            self.cseq += 1
            cseq = self.cseq
        transport = self.conn.transport.upper()
        lines = [
            "%s %s SIP/2.0" % (method, self.ruri),
            "Via: SIP/2.0/%s %s;branch=%s;rport" % (transport, self.conn.via_host(), branch),
            "Max-Forwards: %d" % max_forwards,
            "From: <%s>;tag=%s" % (self.aor, self.tag),
            "To: <%s>" % (to or self.aor),
            "Call-ID: %s" % self.call_id,
            "CSeq: %d %s" % (cseq, method),
            "User-Agent: simpled-e2e-sipclient",
        ]
        lines.extend(headers)
        lines.append("Content-Length: %d" % len(body.encode()))
        return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def exchange(conn, data, timeout, log):
    """Sends data; the final response (retransmitting over UDP like a
    client transaction, timer E, RFC 3261 §17.1.2.2)."""
    log.append((">>>", data))
    conn.send(data)
    deadline = time.monotonic() + timeout
    interval = 0.5
    next_retrans = time.monotonic() + interval
    while True:
        now = time.monotonic()
        if now >= deadline:
            raise Failure("no final response within %.1fs" % timeout)
        wait = min(deadline, next_retrans) - now if conn.transport == "udp" else deadline - now
        msg = conn.recv(max(wait, 0.01))
        if msg is None:
            if conn.transport == "udp" and time.monotonic() >= next_retrans:
                conn.send(data)
                interval = min(interval * 2, 4.0)
                next_retrans = time.monotonic() + interval
            continue
        log.append(("<<<", msg.raw))
        if msg.status is None:
            continue  # a request from the server: not ours to answer here
        if msg.status >= 200:
            return msg


def H(algo, s):
    name = {"MD5": "md5", "SHA-256": "sha256", "SHA-512-256": "sha512_256"}[algo.upper()]
    return hashlib.new(name, s.encode()).hexdigest()


def pick_challenge(resp, algorithm):
    values = resp.all("www-authenticate") or resp.all("proxy-authenticate")
    for scheme, params in parse_challenges(values):
        if scheme.lower() == "digest" and params.get("algorithm", "MD5").upper() == algorithm.upper():
            return params
    raise Failure("no Digest challenge with algorithm=%s in:\n  %s" %
                  (algorithm, "\n  ".join(values) or "(no WWW-Authenticate)"))


def authorization(params, algorithm, user, password, method, uri, nc=1):
    realm, nonce = params.get("realm", ""), params.get("nonce", "")
    ha1 = H(algorithm, "%s:%s:%s" % (user, realm, password))
    ha2 = H(algorithm, "%s:%s" % (method, uri))
    fields = ['username="%s"' % user, 'realm="%s"' % realm, 'nonce="%s"' % nonce,
              'uri="%s"' % uri]
    qops = [q.strip() for q in params.get("qop", "").split(",") if q.strip()]
    if "auth" in qops:
        cnonce, ncs = token(16), "%08x" % nc
        resp = H(algorithm, "%s:%s:%s:%s:auth:%s" % (ha1, nonce, ncs, cnonce, ha2))
        fields += ['response="%s"' % resp, "algorithm=%s" % algorithm,
                   'cnonce="%s"' % cnonce, "qop=auth", "nc=%s" % ncs]
    else:
        resp = H(algorithm, "%s:%s:%s" % (ha1, nonce, ha2))
        fields += ['response="%s"' % resp, "algorithm=%s" % algorithm]
    if "opaque" in params:
        fields.append('opaque="%s"' % params["opaque"])
    return "Digest " + ", ".join(fields)


# --------------------------------------------------------------------------
# Expectations

POSIX_CLASSES = {"[:space:]": r"\s", "[:digit:]": "0-9", "[:alpha:]": "A-Za-z",
                 "[:alnum:]": "A-Za-z0-9", "[:cntrl:]": r"\x00-\x1f\x7f",
                 "[:upper:]": "A-Z", "[:lower:]": "a-z"}


def rx_compile(rx):
    """The tests' regexes are POSIX extended ones (as grep -E and sipp
    take them): turn the bracket classes into Python's."""
    for posix, py in POSIX_CLASSES.items():
        rx = rx.replace(posix, py)
    return re.compile(rx, re.I | re.M)


def check(resp, args, what="response"):
    if args.expect is not None:
        codes = [int(c) for c in str(args.expect).split(",")]
        if resp.status not in codes:
            raise Failure("expected %s %s, got %s %s" %
                          (what, "/".join(map(str, codes)), resp.status, resp.reason))
    text = resp.header_text()
    for rx in args.expect_header or []:
        if not rx_compile(rx).search(text):
            raise Failure("header regex %r did not match" % rx)
    for rx in args.reject_header or []:
        if rx_compile(rx).search(text):
            raise Failure("header regex %r matched but must not" % rx)
    if args.expect_contacts is not None:
        contacts = resp.contacts()
        if len(contacts) != args.expect_contacts:
            raise Failure("expected %d Contact bindings, got %d: %r" %
                          (args.expect_contacts, len(contacts), contacts))
    if resp.status is not None and 200 <= resp.status < 300 and resp.cseq_method() == "REGISTER":
        # RFC 3261 §10.3 step 8: each binding carries an expires parameter.
        for c in resp.contacts():
            e = contact_param(c, "expires")
            if e is None or not e.isdigit():
                raise Failure("Contact %r of the 200 has no ;expires=N" % c)


def add_expect_args(p):
    p.add_argument("--expect", help="expected final status, e.g. 200 or 401,403")
    p.add_argument("--expect-header", action="append", metavar="REGEX",
                   help="regex that must match the response's headers (repeatable)")
    p.add_argument("--reject-header", action="append", metavar="REGEX",
                   help="regex that must not match the response's headers")
    p.add_argument("--expect-contacts", type=int, metavar="N",
                   help="number of Contact bindings the response must list")


def register_headers(args):
    hdrs = []
    for c in args.contact or []:
        hdrs.append("Contact: %s" % c)
    if args.expires is not None:
        hdrs.append("Expires: %s" % args.expires)
    hdrs.extend(args.header or [])
    return hdrs


def auth_user(args):
    return args.user or args.aor.split(":", 1)[1].split("@", 1)[0]


# --------------------------------------------------------------------------
# Commands

def cmd_register(conn, args, log):
    """REGISTER; when challenged and a password is given, answer the
    challenge of --algorithm and send it again."""
    d = Dialog(conn, args.aor, ruri=args.ruri)
    if args.call_id:
        d.call_id = args.call_id
    if args.cseq is not None:
        d.cseq = args.cseq - 1
    method = "REGISTER"
    resp = exchange(conn, d.build(method, register_headers(args)), args.timeout, log)
    rounds = 0
    while resp.status in (401, 407) and args.password is not None and rounds < 2:
        rounds += 1
        params = pick_challenge(resp, args.algorithm)
        hname = "Authorization" if resp.status == 401 else "Proxy-Authorization"
        hdr = "%s: %s" % (hname, authorization(params, args.algorithm, auth_user(args),
                                               args.password, method, d.ruri))
        resp = exchange(conn, d.build(method, register_headers(args) + [hdr]), args.timeout, log)
        if not args.retry_challenge:
            break
    check(resp, args)
    return resp


def cmd_stale(conn, args, log):
    """Gets a challenge, waits --wait seconds (past the nonce lifetime),
    answers it: expects 401 with stale=true on the same algorithm's
    challenge; then answers the fresh challenge: expects 200."""
    d = Dialog(conn, args.aor, ruri=args.ruri)
    hdrs = register_headers(args)
    resp = exchange(conn, d.build("REGISTER", hdrs), args.timeout, log)
    if resp.status != 401:
        raise Failure("expected 401 to a REGISTER without credentials, got %s" % resp.status)
    params = pick_challenge(resp, args.algorithm)
    time.sleep(args.wait)
    auth = authorization(params, args.algorithm, auth_user(args), args.password, "REGISTER", d.ruri)
    resp = exchange(conn, d.build("REGISTER", hdrs + ["Authorization: " + auth]), args.timeout, log)
    if resp.status != 401:
        raise Failure("expected 401 (stale nonce) after %.1fs, got %s %s" %
                      (args.wait, resp.status, resp.reason))
    fresh = pick_challenge(resp, args.algorithm)
    if fresh.get("stale", "").lower() != "true":
        raise Failure("the 401 to a stale nonce has no stale=true in its %s challenge: %r" %
                      (args.algorithm, fresh))
    if fresh.get("nonce") == params.get("nonce"):
        raise Failure("the 401 to a stale nonce repeats the stale nonce")
    auth = authorization(fresh, args.algorithm, auth_user(args), args.password, "REGISTER", d.ruri)
    resp = exchange(conn, d.build("REGISTER", hdrs + ["Authorization: " + auth]), args.timeout, log)
    check(resp, args)
    return resp


def cmd_retrans(conn, args, log):
    """Sends one REGISTER, waits for its final response, sends the very
    same bytes again (a retransmission, RFC 3261 §17.2.2): expects exactly
    one more final response, identical to the first, and nothing else.
    Then sends a new request twice back to back: every final response to
    it must be identical too."""
    if conn.transport != "udp":
        raise SystemExit("retrans is a UDP test")
    d = Dialog(conn, args.aor, ruri=args.ruri)
    data = d.build("REGISTER", register_headers(args))

    def finals_within(secs, first_only=False):
        got, deadline = [], time.monotonic() + secs
        while time.monotonic() < deadline:
            msg = conn.recv(max(deadline - time.monotonic(), 0.01))
            if msg is None:
                break
            log.append(("<<<", msg.raw))
            if msg.status is not None and msg.status >= 200:
                got.append(msg)
                if first_only:
                    break
        return got

    log.append((">>>", data))
    conn.send(data)
    first = finals_within(args.timeout, first_only=True)
    if not first:
        raise Failure("no final response to the REGISTER within %.1fs" % args.timeout)
    # Anything else for this first send?  Then the retransmission.
    extra = finals_within(0.5)
    log.append((">>> (retransmission)", data))
    conn.send(data)
    again = finals_within(args.settle)
    finals = first + extra + again
    if len(finals) != 2:
        raise Failure("expected exactly 2 final responses (one per send), got %d" % len(finals))
    if finals[0].raw != finals[1].raw:
        raise Failure("the retransmission got a different response:\n--- first\n%s\n--- second\n%s" %
                      (finals[0].raw.decode(errors="replace"), finals[1].raw.decode(errors="replace")))
    check(finals[0], args)

    # Back to back: the copy arrives while the first is being handled.
    data2 = d.build("REGISTER", register_headers(args))
    log.append((">>> (twice)", data2))
    conn.send(data2)
    conn.send(data2)
    finals2 = finals_within(args.settle + 1.0)
    if not 1 <= len(finals2) <= 2:
        raise Failure("expected 1 or 2 final responses to a request sent twice, got %d" % len(finals2))
    if any(f.raw != finals2[0].raw for f in finals2):
        raise Failure("a request sent twice got different final responses")
    check(finals2[0], args)
    return finals2[0]


def cmd_raw(conn, args, log):
    """Sends a file's bytes as they are (LF line ends become CRLF unless
    --binary), with {via} {branch} {callid} {tag} {local} replaced.
    With --no-response, expects no response within --timeout."""
    with open(args.file, "rb") as f:
        data = f.read()
    if not args.binary:
        text = data.decode("utf-8")
        text = text.replace("\r\n", "\n").replace("\n", "\r\n")
        subst = {"via": conn.via_host(), "branch": "z9hG4bK" + token(14),
                 "callid": token(16) + "@sipclient", "tag": token(8),
                 "local": conn.via_host(), "transport": conn.transport.upper()}
        for k, v in subst.items():
            text = text.replace("{%s}" % k, v)
        data = text.encode("utf-8")
    log.append((">>>", data))
    conn.send(data)
    if args.no_response:
        msg = conn.recv(args.timeout)
        if msg is not None:
            log.append(("<<<", msg.raw))
            raise Failure("expected no response, got %s" % msg.first)
        return None
    deadline = time.monotonic() + args.timeout
    while True:
        msg = conn.recv(max(deadline - time.monotonic(), 0.01))
        if msg is None:
            raise Failure("no final response within %.1fs" % args.timeout)
        log.append(("<<<", msg.raw))
        if msg.status is not None and msg.status >= 200:
            break
    check(msg, args)
    return msg


def cmd_request(conn, args, log):
    """Any request (OPTIONS, MESSAGE, an unknown method...) to --ruri."""
    d = Dialog(conn, args.aor, ruri=args.ruri)
    body = args.body or ""
    hdrs = list(args.header or [])
    if body and not any(h.lower().startswith("content-type") for h in hdrs):
        hdrs.append("Content-Type: text/plain")
    data = d.build(args.method, hdrs, body=body, to=args.to, max_forwards=args.max_forwards)
    resp = exchange(conn, data, args.timeout, log)
    check(resp, args)
    return resp


def cmd_bench(conn, args, log):
    """Load for scripts/bench.sh: --count requests (REGISTER of users
    PREFIX0..PREFIX(N-1)@DOMAIN, answering 401s with the one password, or
    OPTIONS), --window transactions in flight (1: unloaded latency).
    Prints 'done=N failed=F lost=L seconds=S rate=R p50_ms= p99_ms=',
    each latency from the first send to the final 200 (401 included)."""
    if conn.transport != "udp":
        raise SystemExit("bench is a UDP command")
    domain = args.domain
    total, window = args.count, args.window
    conn.sock.setblocking(False)
    pending = {}  # branch -> state
    lat = []
    sent = done = failed = 0
    start = time.monotonic()
    deadline = start + args.timeout
    branch_rx = re.compile(rb"branch=([^;\r\n ,]+)")

    method = args.method.upper()

    def start_one(i):
        user = "%s%d" % (args.prefix, i % args.users if args.users else i)
        d = Dialog(conn, "sip:%s@%s" % (user, domain))
        if method == "REGISTER":
            hdrs = ["Contact: <sip:%s@%s>" % (user, conn.via_host()), "Expires: 3600"]
        else:
            hdrs = []
        data = d.build(method, hdrs)
        br = branch_rx.search(data).group(1)
        pending[br] = {"d": d, "user": user, "hdrs": hdrs, "t0": time.monotonic(),
                       "data": data, "sent_at": time.monotonic(), "auth": False}
        conn.send(data)

    while (done + failed) < total and time.monotonic() < deadline:
        while sent < total and len(pending) < window:
            start_one(sent)
            sent += 1
        r, _, _ = select.select([conn.sock], [], [], 0.2)
        now = time.monotonic()
        if not r:
            for br, st in list(pending.items()):
                if now - st["sent_at"] > 1.0:  # a lost datagram: resend
                    st["sent_at"] = now
                    conn.send(st["data"])
            continue
        for _ in range(256):
            try:
                raw = conn.sock.recv(65535)
            except BlockingIOError:
                break
            m = branch_rx.search(raw)
            st = pending.get(m.group(1)) if m else None
            if st is None:
                continue
            msg = Message(raw)
            if msg.status is None or msg.status < 200:
                continue
            del pending[m.group(1)]
            if msg.status == 401 and not st["auth"]:
                params = pick_challenge(msg, args.algorithm)
                a = authorization(params, args.algorithm, st["user"], args.password,
                                  method, st["d"].ruri)
                data = st["d"].build(method, st["hdrs"] + ["Authorization: " + a])
                br = branch_rx.search(data).group(1)
                st.update(data=data, sent_at=time.monotonic(), auth=True)
                pending[br] = st
                conn.send(data)
            elif msg.status == 200:
                done += 1
                lat.append(time.monotonic() - st["t0"])
            else:
                failed += 1
    secs = time.monotonic() - start
    lat.sort()

    def pct(p):
        return lat[min(len(lat) - 1, int(len(lat) * p))] * 1000 if lat else float("nan")
    print("done=%d failed=%d lost=%d seconds=%.3f rate=%.1f p50_ms=%.3f p99_ms=%.3f" %
          (done, failed, total - done - failed, secs, done / secs if secs else 0, pct(0.5), pct(0.99)))
    if failed or done < total:
        raise Failure("%d of %d registrations did not succeed" % (total - done, total))
    return None


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", default=os.environ.get("SIPCLIENT_SERVER", "127.0.0.1:5060"))
    ap.add_argument("--transport", choices=("udp", "tcp"), default="udp")
    ap.add_argument("--local-ip", default="127.0.0.1")
    ap.add_argument("--timeout", type=float, default=8.0, help="seconds to wait for a final response")
    ap.add_argument("--quiet", action="store_true", help="print nothing on success")
    sub = ap.add_subparsers(dest="cmd", required=True)
    # --timeout may also follow the command.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--timeout", dest="sub_timeout", type=float, help=argparse.SUPPRESS)

    def reg_common(p):
        p.add_argument("--aor", required=True, help="sip:user@domain (From and To)")
        p.add_argument("--ruri", help="Request-URI (default: sip:DOMAIN of the AOR)")
        p.add_argument("--user", help="Digest username (default: the AOR's user part)")
        p.add_argument("--password")
        p.add_argument("--algorithm", default="SHA-256", help="challenge to answer: SHA-256 or MD5")
        p.add_argument("--contact", action="append", help="a Contact value (repeatable; '*' allowed)")
        p.add_argument("--expires", help="value of an Expires header")
        p.add_argument("--header", action="append", help="an extra header line")
        add_expect_args(p)

    p = sub.add_parser("register", help=cmd_register.__doc__, parents=[common])
    reg_common(p)
    p.add_argument("--call-id")
    p.add_argument("--cseq", type=int)
    p.add_argument("--retry-challenge", action="store_true",
                   help="answer a second challenge too (e.g. after stale=true)")
    p.set_defaults(func=cmd_register)

    p = sub.add_parser("stale", help=cmd_stale.__doc__, parents=[common])
    reg_common(p)
    p.add_argument("--wait", type=float, default=3.0)
    p.set_defaults(func=cmd_stale)

    p = sub.add_parser("retrans", help=cmd_retrans.__doc__, parents=[common])
    reg_common(p)
    p.add_argument("--settle", type=float, default=1.5, help="seconds to collect extra responses")
    p.set_defaults(func=cmd_retrans)

    p = sub.add_parser("raw", help=cmd_raw.__doc__, parents=[common])
    p.add_argument("--file", required=True)
    p.add_argument("--binary", action="store_true")
    p.add_argument("--no-response", action="store_true")
    add_expect_args(p)
    p.set_defaults(func=cmd_raw)

    p = sub.add_parser("request", help=cmd_request.__doc__, parents=[common])
    p.add_argument("--method", required=True)
    p.add_argument("--ruri", required=True)
    p.add_argument("--aor", default="sip:e2e@example.test", help="the From address")
    p.add_argument("--to")
    p.add_argument("--body")
    p.add_argument("--max-forwards", type=int, default=70)
    p.add_argument("--header", action="append")
    add_expect_args(p)
    p.set_defaults(func=cmd_request)

    p = sub.add_parser("bench", help=cmd_bench.__doc__, parents=[common])
    p.add_argument("--domain", default="example.test")
    p.add_argument("--prefix", default="bench")
    p.add_argument("--password", default="secret")
    p.add_argument("--algorithm", default="MD5")
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--window", type=int, default=64)
    p.add_argument("--method", default="REGISTER", choices=("REGISTER", "OPTIONS"))
    p.add_argument("--users", type=int, default=0,
                   help="cycle through this many users (default: one per request)")
    p.set_defaults(func=cmd_bench)

    args = ap.parse_args(argv)
    if args.sub_timeout is not None:
        args.timeout = args.sub_timeout
    if args.cmd == "bench":
        args.timeout = max(args.timeout, 60.0)
    log = []
    conn = Conn(args.server, args.transport, args.local_ip)
    try:
        resp = args.func(conn, args, log)
    except Failure as e:
        sys.stderr.write("sipclient %s: FAILED: %s\n" % (args.cmd, e))
        sys.stderr.write("---- exchange with %s (%s) ----\n" % (args.server, args.transport))
        for direction, data in log[-12:]:
            sys.stderr.write("%s\n%s\n" % (direction, data.decode("utf-8", "replace").rstrip()))
        return 1
    finally:
        conn.close()
    if resp is not None and not args.quiet:
        sys.stdout.write(resp.raw.decode("utf-8", "replace"))
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
