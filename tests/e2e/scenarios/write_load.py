#!/usr/bin/env python3
"""write_load.py: steady durable-write load for the crash and outage tests.

Keeps --window requests in flight over UDP: REGISTER (one new user each),
PUBLISH (one new presentity each) and MESSAGE to the offline user --rcpt,
in turn, retransmitting unanswered ones every 0.5 s like a UA, for
--seconds.  Every acknowledged write (200 for REGISTER and PUBLISH, 202
for a stored MESSAGE) is appended to --acked as "kind name etag phase",
so the caller can check each one against PostgreSQL.

With --phase-dir, the phase is "before" until the file DIR/down exists,
"down" until DIR/up exists, "after" from then on; the run then ends 10 s
after DIR/up appeared (the database pool's reconnect backoff is at most
5 s).  --stats writes per-phase counts of final codes ("timeout" = no
answer for 32 s, Timer F) and how many 503s lacked Retry-After.
"""
import argparse
import os
import socket
import time

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--tag", required=True)
ap.add_argument("--rcpt", required=True)
ap.add_argument("--domain", required=True)
ap.add_argument("--acked", required=True)
ap.add_argument("--seconds", type=float, default=8)
ap.add_argument("--window", type=int, default=64)
ap.add_argument("--phase-dir")
ap.add_argument("--stats")
a = ap.parse_args()

s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.bind(("127.0.0.1", 0))
lport = s.getsockname()[1]
s.settimeout(0.05)
acked = open(a.acked, "w")
stats = {}
no_retry_after = 0
pending = {}  # branch -> (kind, name, first sent, last sent, bytes)
n = 0
deadline = time.time() + a.seconds
up_at = None
tag, dom = a.tag, a.domain


def phase():
    if not a.phase_dir:
        return "run"
    if os.path.exists(os.path.join(a.phase_dir, "up")):
        return "after"
    return "down" if os.path.exists(os.path.join(a.phase_dir, "down")) else "before"


def count(ph, key):
    stats.setdefault(ph, {}).setdefault(key, 0)
    stats[ph][key] += 1


def send(data):
    try:
        s.sendto(data, ("127.0.0.1", a.port))
    except OSError:
        pass  # the server is gone (crash test): keep retransmitting


def request(kind, i):
    br = "z9hG4bK-%s-%d" % (tag, i)
    if kind == "reg":
        user = "%sr%d" % (tag, i)
        body = ""
        head = ("REGISTER sip:%s SIP/2.0\r\nFrom: <sip:%s@%s>;tag=f%d\r\nTo: <sip:%s@%s>\r\n"
                "Contact: <sip:%s@127.0.0.1:9>\r\nExpires: 3600\r\nCSeq: 1 REGISTER\r\n") % (
                    dom, user, dom, i, user, dom, user)
        name = "sip:%s@%s" % (user, dom)
    elif kind == "pub":
        user = "%sp%d" % (tag, i)
        name = "sip:%s@%s" % (user, dom)
        body = ('<?xml version="1.0" encoding="UTF-8"?>\r\n<presence xmlns="urn:ietf:params:xml:ns:pidf" '
                'entity="%s"><tuple id="t1"><status><basic>open</basic></status></tuple></presence>') % name
        head = ("PUBLISH %s SIP/2.0\r\nFrom: <%s>;tag=f%d\r\nTo: <%s>\r\nEvent: presence\r\nExpires: 3600\r\n"
                "Content-Type: application/pidf+xml\r\nCSeq: 1 PUBLISH\r\n") % (name, name, i, name)
    else:
        name = "%s-m%d" % (tag, i)
        body = name
        head = ("MESSAGE sip:%s@%s SIP/2.0\r\nFrom: <sip:%ssender@%s>;tag=f%d\r\nTo: <sip:%s@%s>\r\n"
                "Content-Type: text/plain\r\nCSeq: 1 MESSAGE\r\n") % (a.rcpt, dom, tag, dom, i, a.rcpt, dom)
    msg = ("%sVia: SIP/2.0/UDP 127.0.0.1:%d;branch=%s;rport\r\nCall-ID: %s-%d\r\nMax-Forwards: 70\r\n"
           "Content-Length: %d\r\n\r\n%s") % (head, lport, br, tag, i, len(body.encode()), body)
    return br, name, msg.encode()


kinds = ["reg", "pub", "msg"]
while time.time() < deadline:
    if a.phase_dir and up_at is None and phase() == "after":
        up_at = time.time()
        deadline = up_at + 10
    while len(pending) < a.window:
        kind = kinds[n % 3]
        br, name, data = request(kind, n)
        n += 1
        now = time.time()
        pending[br] = (kind, name, now, now, data)
        send(data)
    try:
        data = s.recv(65536)
    except socket.timeout:
        now = time.time()
        for br, (kind, name, t0, t, d) in list(pending.items()):
            if now - t0 > 32:
                pending.pop(br)
                count(phase(), "timeout")
            elif now - t > 0.5:
                pending[br] = (kind, name, t0, now, d)
                send(d)
        continue
    except OSError:
        continue
    lines = data.split(b"\r\n")
    try:
        code = int(lines[0].split()[1])
    except (IndexError, ValueError):
        continue
    via = [l for l in lines if l.lower().startswith(b"via:")]
    br = via[0].split(b"branch=")[1].split(b";")[0].decode() if via and b"branch=" in via[0] else ""
    if br not in pending or code < 200:
        continue
    kind, name, _, _, _ = pending.pop(br)
    ph = phase()
    count(ph, str(code))
    if code == 503 and not any(l.lower().startswith(b"retry-after:") for l in lines):
        no_retry_after += 1
    etag = ""
    for l in lines:
        if l.lower().startswith(b"sip-etag:"):
            etag = l.split(b":", 1)[1].strip().decode()
    if (kind in ("reg", "pub") and code == 200) or (kind == "msg" and code == 202):
        acked.write("%s %s %s %s\n" % (kind, name, etag, ph))
        acked.flush()

if a.stats:
    with open(a.stats, "w") as f:
        for ph in sorted(stats):
            f.write("%s %s\n" % (ph, " ".join("%s=%d" % kv for kv in sorted(stats[ph].items()))))
        f.write("no_retry_after %d\n" % no_retry_after)
