#!/usr/bin/env python3
"""presence_client.py: PUBLISH / SUBSCRIBE / NOTIFY for the presence
end-to-end tests (stdlib only; reuses tests/e2e/sipclient.py).

Commands (each exits 0 when its expectations held, 1 otherwise):

  publish   --aor A [--etag E] [--expires N] [--body S | --body-file F]
            [--ctype T] [--event presence] [--expect CODE]
      One PUBLISH; prints the response; with --etag-out FILE writes the
      SIP-ETag of a 2xx there.

  subscribe --aor WATCHER --resource RES [--event E] [--expires N]
            [--accept T]... [--expect CODE]
      One SUBSCRIBE out of dialog, for the error cases; a 2xx
      subscription is left to expire (and its NOTIFYs answered for
      --linger seconds).

  watch     --aor WATCHER --resource RES --log FILE [--event E]
            [--expires N] [--duration S] [--reply-481] [--no-answer]
            [--refresh-at S] [--stop-file F]
      Subscribes, answers every NOTIFY (200; 481 with --reply-481; none
      with --no-answer), logs each as one JSON line (cseq, state, body,
      event), refreshes at --refresh-at seconds, and when --duration ends
      or --stop-file appears, unsubscribes (Expires: 0) and waits for the
      final NOTIFY.  The first line of the log is {"subscribe": CODE}.

--password P answers a 407 (Digest MD5/SHA-256).
"""

import argparse
import json
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import sipclient  # noqa: E402  (tests/e2e/sipclient.py)
from sipclient import Conn, Message, token  # noqa: E402


class Agent:
    """One UDP socket: sends requests, answers NOTIFYs, logs them."""

    def __init__(self, args):
        self.args = args
        self.conn = Conn(args.server, args.transport)
        self.log = open(args.log, "a") if getattr(args, "log", None) else None
        self.seen = {}
        self.reply_code = 200
        self.answer = True
        self.notifies = []

    def write(self, obj):
        if self.log:
            self.log.write(json.dumps(obj) + "\n")
            self.log.flush()

    def handle_request(self, msg):
        method = msg.first.split(" ", 1)[0]
        if method != "NOTIFY":
            self.respond(msg, 405)
            return
        cseq = int((msg.get("cseq") or "0").split()[0])
        key = (msg.get("call-id"), cseq)
        if key not in self.seen:
            self.seen[key] = True
            entry = {
                "t": time.time(),
                "cseq": cseq,
                "call_id": msg.get("call-id"),
                "event": msg.get("event") or msg.get("o"),
                "state": msg.get("subscription-state"),
                "ctype": msg.get("content-type") or msg.get("c"),
                "require": msg.get("require"),
                "body": msg.body,
                "contact": msg.get("contact"),
                "route": msg.all("route"),
                "ruri": msg.first.split(" ")[1] if " " in msg.first else None,
                "answered": self.reply_code if self.answer else None,
            }
            self.notifies.append(entry)
            self.write(entry)
        if self.answer:
            self.respond(msg, self.reply_code)

    def respond(self, req, code):
        reason = {200: "OK", 481: "Subscription Does Not Exist", 405: "Method Not Allowed"}.get(code, "X")
        lines = ["SIP/2.0 %d %s" % (code, reason)]
        for name in ("via", "from", "to", "call-id", "cseq"):
            for v in req.all(name):
                lines.append("%s: %s" % (name.title(), v))
        lines.append("Content-Length: 0")
        self.conn.send(("\r\n".join(lines) + "\r\n\r\n").encode())

    def pump(self, seconds):
        """Answers requests for a while."""
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            msg = self.conn.recv(left)
            if msg is not None and msg.status is None:
                self.handle_request(msg)

    def transact(self, data, timeout=8.0):
        """Sends a request; its final response (NOTIFYs answered meanwhile)."""
        m = re.search(rb"branch=([^;\r\n ]+)", data)
        branch = m.group(1).decode()
        self.conn.send(data)
        deadline = time.monotonic() + timeout
        interval, next_rtx = 0.5, time.monotonic() + 0.5
        while True:
            now = time.monotonic()
            if now >= deadline:
                raise sipclient.Failure("no final response within %.1fs" % timeout)
            msg = self.conn.recv(max(min(deadline, next_rtx) - now, 0.01))
            if msg is None:
                if time.monotonic() >= next_rtx:
                    self.conn.send(data)
                    interval = min(interval * 2, 4.0)
                    next_rtx = time.monotonic() + interval
                continue
            if msg.status is None:
                self.handle_request(msg)
                continue
            if branch in (msg.get("via") or "") and msg.status >= 200:
                return msg


class Request:
    """Builds requests of one dialog (or one transaction)."""

    def __init__(self, agent, aor, ruri, to):
        self.agent = agent
        self.aor = aor
        self.ruri = ruri
        self.to = to
        self.call_id = token(16) + "@presence-client"
        self.tag = token(8)
        self.to_tag = None
        self.cseq = 1
        self.route = []

    def build(self, method, headers, body="", auth=None):
        conn = self.agent.conn
        via = conn.via_host()
        lines = [
            "%s %s SIP/2.0" % (method, self.ruri),
            "Via: SIP/2.0/%s %s;branch=z9hG4bK%s;rport" % (conn.transport.upper(), via, token(14)),
            "Max-Forwards: 70",
            "From: <%s>;tag=%s" % (self.aor, self.tag),
            "To: <%s>%s" % (self.to, ";tag=" + self.to_tag if self.to_tag else ""),
            "Call-ID: %s" % self.call_id,
            "CSeq: %d %s" % (self.cseq, method),
            "Contact: <sip:%s@%s>" % (self.aor.split(":", 1)[1].split("@")[0], via),
            "User-Agent: simpled-e2e-presence",
        ]
        self.cseq += 1
        lines.extend(headers)
        if auth:
            lines.append("Proxy-Authorization: " + auth)
        data = body.encode() if isinstance(body, str) else body
        lines.append("Content-Length: %d" % len(data))
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + data

    def send(self, method, headers, body="", password=None):
        resp = self.agent.transact(self.build(method, headers, body))
        if resp.status == 407 and password is not None:
            for algo in ("SHA-256", "MD5"):
                try:
                    params = sipclient.pick_challenge(resp, algo)
                except sipclient.Failure:
                    continue
                user = self.aor.split(":", 1)[1].split("@")[0]
                auth = sipclient.authorization(params, algo, user, password, method, self.ruri)
                resp = self.agent.transact(self.build(method, headers, body, auth=auth))
                break
        return resp


def expect(resp, args):
    if args.expect is not None:
        codes = [int(c) for c in str(args.expect).split(",")]
        if resp.status not in codes:
            raise sipclient.Failure("expected %s, got %s %s" % (args.expect, resp.status, resp.reason))
    for rx in args.expect_header or []:
        if not re.search(rx, resp.header_text(), re.I | re.M):
            raise sipclient.Failure("header regex %r did not match:\n%s" % (rx, resp.header_text()))


def ruri_of(aor):
    return aor


def cmd_publish(agent, args):
    body = args.body or ""
    if args.body_file:
        with open(args.body_file, "rb") as f:
            body = f.read()
    hdrs = ["Event: %s" % args.event]
    if args.expires is not None:
        hdrs.append("Expires: %s" % args.expires)
    if args.etag:
        hdrs.append("SIP-If-Match: %s" % args.etag)
    if body:
        hdrs.append("Content-Type: %s" % args.ctype)
    r = Request(agent, args.aor, args.ruri or args.aor, args.aor)
    resp = r.send("PUBLISH", hdrs, body, args.password)
    expect(resp, args)
    if args.etag_out and 200 <= resp.status < 300:
        with open(args.etag_out, "w") as f:
            f.write((resp.get("sip-etag") or "") + "\n")
    return resp


def sub_headers(args, expires, agent=None):
    hdrs = ["Event: %s" % args.event, "Expires: %s" % expires]
    if agent is not None and getattr(args, "record_route", False):
        # As a proxy on the path would: the route set of the dialog.
        hdrs.append("Record-Route: <sip:%s;lr;rr=one>, <sip:192.0.2.9:5060;lr;rr=two>" %
                    agent.conn.via_host())
    for a in args.accept or []:
        hdrs.append("Accept: %s" % a)
    hdrs.extend(args.header or [])
    return hdrs


def cmd_subscribe(agent, args):
    r = Request(agent, args.aor, args.resource, args.resource)
    if args.to_tag:
        r.to_tag = args.to_tag
    resp = r.send("SUBSCRIBE", sub_headers(args, args.expires), "", args.password)
    expect(resp, args)
    if args.linger:
        agent.pump(args.linger)
    return resp


def cmd_watch(agent, args):
    r = Request(agent, args.aor, args.resource, args.resource)
    if args.reply_481:
        agent.reply_code = 481
    if args.no_answer:
        agent.answer = False
    resp = r.send("SUBSCRIBE", sub_headers(args, args.expires, agent), "", args.password)
    agent.write({"subscribe": resp.status, "expires": resp.get("expires"),
                 "contact": resp.get("contact")})
    if not 200 <= resp.status < 300:
        expect(resp, args)
        return resp
    r.to_tag = re.search(r"tag=([^;>\s]+)", resp.get("to") or "").group(1)
    start = time.monotonic()
    refreshed = False
    while time.monotonic() - start < args.duration:
        if args.stop_file and os.path.exists(args.stop_file):
            break
        if args.refresh_at and not refreshed and time.monotonic() - start >= args.refresh_at:
            refreshed = True
            rr = r.send("SUBSCRIBE", sub_headers(args, args.expires), "", args.password)
            agent.write({"refresh": rr.status, "expires": rr.get("expires")})
        agent.pump(0.1)
    if not args.no_unsubscribe:
        agent.reply_code = 200
        agent.answer = True
        ur = r.send("SUBSCRIBE", sub_headers(args, 0), "", args.password)
        agent.write({"unsubscribe": ur.status})
        agent.pump(1.5)
    return resp


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", required=True)
    ap.add_argument("--transport", default="udp", choices=("udp", "tcp"))
    sub = ap.add_subparsers(dest="cmd", required=True)

    def common(p):
        p.add_argument("--aor", required=True)
        p.add_argument("--event", default="presence")
        p.add_argument("--password")
        p.add_argument("--expect")
        p.add_argument("--expect-header", action="append")
        p.add_argument("--header", action="append")

    p = sub.add_parser("publish")
    common(p)
    p.add_argument("--ruri")
    p.add_argument("--etag")
    p.add_argument("--expires")
    p.add_argument("--body")
    p.add_argument("--body-file")
    p.add_argument("--ctype", default="application/pidf+xml")
    p.add_argument("--etag-out")
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("subscribe")
    common(p)
    p.add_argument("--resource", required=True)
    p.add_argument("--expires", default="600")
    p.add_argument("--accept", action="append")
    p.add_argument("--linger", type=float, default=0)
    p.add_argument("--to-tag", help="send it in dialog (a To tag)")
    p.add_argument("--log")
    p.set_defaults(func=cmd_subscribe)

    p = sub.add_parser("watch")
    common(p)
    p.add_argument("--resource", required=True)
    p.add_argument("--expires", default="600")
    p.add_argument("--accept", action="append")
    p.add_argument("--log", required=True)
    p.add_argument("--duration", type=float, default=30)
    p.add_argument("--stop-file")
    p.add_argument("--refresh-at", type=float)
    p.add_argument("--reply-481", action="store_true")
    p.add_argument("--no-answer", action="store_true")
    p.add_argument("--no-unsubscribe", action="store_true")
    p.add_argument("--record-route", action="store_true",
                   help="put a Record-Route (this client first, then 192.0.2.9) in the SUBSCRIBE")
    p.set_defaults(func=cmd_watch)

    args = ap.parse_args(argv)
    agent = Agent(args)
    try:
        resp = args.func(agent, args)
    except sipclient.Failure as e:
        sys.stderr.write("presence_client %s: FAILED: %s\n" % (args.cmd, e))
        return 1
    if resp is not None:
        sys.stdout.write(resp.raw.decode("utf-8", "replace"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
