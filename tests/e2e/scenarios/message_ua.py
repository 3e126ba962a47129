#!/usr/bin/env python3
"""message_ua.py: the two ends of a MESSAGE for the messaging e2e tests
(stdlib only, on top of tests/e2e/sipclient.py's transport).

  ua    registers AOR with a contact on its own socket (UDP, or the TCP
        connection it registered on), answers every MESSAGE it gets with
        the next code of --answers (the last one repeats), writes one JSON
        line per MESSAGE received to --out, and exits 0 once --expect
        MESSAGEs were answered 2xx (1 on --timeout).  After a non-2xx it
        refreshes its registration (--reregister), which is what makes the
        server try the stored messages again.  --ready FILE is created once
        registered.
  send  sends one MESSAGE and exits 0 when the final response is --expect.
  bench sends MESSAGEs at a fixed window and prints the rate (benchmark).
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import sipclient  # noqa: E402
from sipclient import Conn, Failure, Message, token  # noqa: E402


def answer(conn, req, code, reason, to_tag):
    lines = ["SIP/2.0 %d %s" % (code, reason)]
    for v in req.all("via"):
        lines.append("Via: " + v)
    lines.append("From: " + req.get("from"))
    to = req.get("to")
    if "tag=" not in to:
        to += ";tag=" + to_tag
    lines.append("To: " + to)
    lines.append("Call-ID: " + req.get("call-id"))
    lines.append("CSeq: " + req.get("cseq"))
    lines.append("Content-Length: 0")
    conn.send(("\r\n".join(lines) + "\r\n\r\n").encode())


def register(conn, aor, contact, expires, call_id, cseq):
    domain = aor.split("@", 1)[1]
    branch = "z9hG4bK" + token(14)
    lines = [
        "REGISTER sip:%s SIP/2.0" % domain,
        "Via: SIP/2.0/%s %s;branch=%s;rport" % (conn.transport.upper(), conn.via_host(), branch),
        "Max-Forwards: 70",
        "From: <%s>;tag=%s" % (aor, token(8)),
        "To: <%s>" % aor,
        "Call-ID: " + call_id,
        "CSeq: %d REGISTER" % cseq,
        "Contact: <%s>" % contact,
        "Expires: %d" % expires,
        "Content-Length: 0",
    ]
    conn.send(("\r\n".join(lines) + "\r\n\r\n").encode())
    return branch


def cmd_ua(args):
    conn = Conn(args.server, args.transport)
    host, port = conn.local
    contact = "sip:%s@%s:%d" % (args.aor.split(":", 1)[1].split("@")[0], host, port)
    if args.transport == "tcp":
        contact += ";transport=tcp"
    call_id = token(16) + "@message-ua"
    cseq = 1
    answers = [int(x) for x in args.answers.split(",")]
    got_ok = 0
    n = 0
    out = open(args.out, "a") if args.out else None
    registered = False
    reregister_at = None
    deadline = time.monotonic() + args.timeout
    reg_branch = register(conn, args.aor, contact, args.expires, call_id, cseq)
    to_tag = token(8)
    while time.monotonic() < deadline:
        if reregister_at and time.monotonic() >= reregister_at:
            cseq += 1
            reg_branch = register(conn, args.aor, contact, args.expires, call_id, cseq)
            reregister_at = None
        msg = conn.recv(0.1)
        if msg is None:
            if not registered and time.monotonic() > deadline - args.timeout + 3:
                print("no answer to REGISTER", file=sys.stderr)
                return 1
            continue
        if msg.status is not None:
            if reg_branch in (msg.get("via") or "") and msg.status >= 200:
                if msg.status != 200:
                    print("REGISTER answered %d" % msg.status, file=sys.stderr)
                    return 1
                if not registered and args.ready:
                    open(args.ready, "w").write(contact + "\n")
                registered = True
            continue
        if not msg.first.startswith("MESSAGE "):
            continue
        code = answers[min(n, len(answers) - 1)]
        n += 1
        answer(conn, msg, code, "OK" if code < 300 else "Test Failure", to_tag)
        if out:
            rec = {"code": code, "ruri": msg.first.split(" ")[1], "from": msg.get("from"),
                   "to": msg.get("to"), "date": msg.get("date"), "call_id": msg.get("call-id"),
                   "ctype": msg.get("content-type"), "body": msg.body,
                   "via_count": len(sipclient.split_commas(",".join(msg.all("via")))),
                   "max_forwards": msg.get("max-forwards")}
            out.write(json.dumps(rec) + "\n")
            out.flush()
        if 200 <= code < 300:
            got_ok += 1
            if got_ok >= args.expect:
                time.sleep(0.2)  # let the 200 leave before the socket closes
                return 0
        elif args.reregister:
            reregister_at = time.monotonic() + args.reregister
    print("timeout: %d MESSAGE(s) answered 2xx of %d expected" % (got_ok, args.expect), file=sys.stderr)
    return 1


def build_message(conn, frm, to, body, ctype, headers=()):
    lines = [
        "MESSAGE %s SIP/2.0" % to,
        "Via: SIP/2.0/%s %s;branch=z9hG4bK%s;rport" % (conn.transport.upper(), conn.via_host(), token(14)),
        "Max-Forwards: 70",
        "From: <%s>;tag=%s" % (frm, token(8)),
        "To: <%s>" % to,
        "Call-ID: %s@message-ua" % token(16),
        "CSeq: 1 MESSAGE",
    ]
    lines.extend(headers)
    data = body.encode()
    if data:
        lines.append("Content-Type: " + ctype)
    lines.append("Content-Length: %d" % len(data))
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


def cmd_send(args):
    conn = Conn(args.server, args.transport)
    body = args.body if args.size is None else "x" * args.size
    data = build_message(conn, args.frm, args.to, body, args.ctype, args.header or ())
    log = []
    try:
        resp = sipclient.exchange(conn, data, args.timeout, log)
    except Failure as e:
        print("send: %s" % e, file=sys.stderr)
        return 1
    print("%d %s" % (resp.status, resp.reason))
    if args.expect and str(resp.status) not in args.expect.split(","):
        print("send: expected %s, got %d %s" % (args.expect, resp.status, resp.reason), file=sys.stderr)
        return 1
    return 0


def cmd_bench(args):
    """Sends --count MESSAGEs, --window in flight, over one UDP socket;
    prints 'N messages in S s: R/s (codes)'. Retransmits after 0.5 s."""
    conn = Conn(args.server, "udp")
    pending = {}
    codes = {}
    sent = done = 0
    start = time.monotonic()
    deadline = start + args.timeout
    while done < args.count and time.monotonic() < deadline:
        while sent < args.count and len(pending) < args.window:
            to = args.to.replace("%d", str(sent % args.users)) if "%d" in args.to else args.to
            cid = "b%d-%s" % (sent, token(6))
            data = build_message(conn, args.frm, to, "bench message %d" % sent, "text/plain",
                                 ()).replace(b"Call-ID: ", b"Call-ID: " + cid.encode() + b"-", 1)
            conn.send(data)
            pending[cid] = (data, time.monotonic())
            sent += 1
        msg = conn.recv(0.05)
        now = time.monotonic()
        if msg is None:
            for cid, (data, t) in list(pending.items()):
                if now - t > 0.5:
                    conn.send(data)
                    pending[cid] = (data, now)
            continue
        if msg.status is None or msg.status < 200:
            continue
        cid = (msg.get("call-id") or "").split("-", 2)
        key = "-".join(cid[:2]) if len(cid) >= 2 else None
        if key in pending:
            del pending[key]
            done += 1
            codes[msg.status] = codes.get(msg.status, 0) + 1
    secs = time.monotonic() - start
    print("%d messages in %.2f s: %.0f/s %s" % (done, secs, done / secs if secs else 0, codes))
    return 0 if done == args.count else 1


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", required=True)
    ap.add_argument("--transport", choices=("udp", "tcp"), default="udp")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("ua")
    p.add_argument("--aor", required=True)
    p.add_argument("--answers", default="200")
    p.add_argument("--expect", type=int, default=1)
    p.add_argument("--expires", type=int, default=600)
    p.add_argument("--timeout", type=float, default=20)
    p.add_argument("--out")
    p.add_argument("--ready")
    p.add_argument("--reregister", type=float, default=0.5)
    p = sub.add_parser("send")
    p.add_argument("--from", dest="frm", required=True)
    p.add_argument("--to", required=True)
    p.add_argument("--body", default="hello")
    p.add_argument("--size", type=int)
    p.add_argument("--ctype", default="text/plain")
    p.add_argument("--header", action="append")
    p.add_argument("--expect")
    p.add_argument("--timeout", type=float, default=10)
    p = sub.add_parser("bench")
    p.add_argument("--from", dest="frm", required=True)
    p.add_argument("--to", required=True, help="recipient URI; %%d is replaced by i mod --users")
    p.add_argument("--users", type=int, default=1)
    p.add_argument("--count", type=int, default=10000)
    p.add_argument("--window", type=int, default=200)
    p.add_argument("--timeout", type=float, default=120)
    args = ap.parse_args(argv)
    return {"ua": cmd_ua, "send": cmd_send, "bench": cmd_bench}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
