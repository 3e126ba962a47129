#!/usr/bin/env python3
"""call_agent.py: a caller or a callee for the call tests where sipp 3.6.1
falls short (stdlib only; reuses tests/e2e/sipclient.py): a callee
registered over TCP, whose INVITE must arrive on that connection, and a
caller answering 407 with Digest SHA-256 (sipp answers MD5 only).

  callee --server H:P --transport tcp|udp --aor AOR [--password P]
         [--want REGEX]... [--ready FILE] [--timeout S]
      REGISTERs (answering 401), touches --ready, then takes one call:
      INVITE -> 180, 200 (our Contact, the INVITE's Record-Route), ACK,
      BYE -> 200.  Every --want must match the INVITE's header block.

  caller --server H:P --aor AOR --callee URI [--password P] [--timeout S]
      INVITE; a 407 is ACKed and answered (SHA-256); then 200 -> ACK and
      BYE along the Record-Route (loose routing), BYE -> 200.

Both print the messages they exchanged on stderr when they fail and
exit 0 only when the whole call went as described."""

import argparse
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import sipclient  # noqa: E402
from sipclient import Conn, Dialog, Failure, authorization, exchange, pick_challenge, token  # noqa: E402

ALGO = "SHA-256"


def user_of(aor):
    return aor.split(":", 1)[1].split("@", 1)[0]


def answer(conn, req, code, reason, extra=(), to_tag=None, log=None):
    lines = ["SIP/2.0 %d %s" % (code, reason)]
    for v in req.all("via"):
        lines.append("Via: %s" % v)
    to = req.get("to")
    if to_tag and "tag=" not in to:
        to += ";tag=" + to_tag
    lines += ["From: %s" % req.get("from"), "To: %s" % to, "Call-ID: %s" % req.get("call-id"),
              "CSeq: %s" % req.get("cseq")]
    lines += list(extra)
    lines.append("Content-Length: 0")
    data = ("\r\n".join(lines) + "\r\n\r\n").encode()
    if log is not None:
        log.append((">>>", data))
    conn.send(data)


def wait_request(conn, method, timeout, log):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = conn.recv(max(deadline - time.monotonic(), 0.01))
        if msg is None:
            break
        log.append(("<<<", msg.raw))
        if msg.status is None and msg.first.split(" ", 1)[0] == method:
            return msg
    raise Failure("no %s within %.0fs" % (method, timeout))


def cmd_callee(args, log):
    conn = Conn(args.server, args.transport)
    d = Dialog(conn, args.aor)
    contact = "<sip:%s@%s;transport=%s>" % (user_of(args.aor), conn.via_host(), args.transport)
    hdrs = ["Contact: %s" % contact, "Expires: 600"]
    resp = exchange(conn, d.build("REGISTER", hdrs), args.timeout, log)
    if resp.status == 401 and args.password:
        params = pick_challenge(resp, ALGO)
        auth = "Authorization: " + authorization(params, ALGO, user_of(args.aor), args.password,
                                                 "REGISTER", d.ruri)
        resp = exchange(conn, d.build("REGISTER", hdrs + [auth]), args.timeout, log)
    if resp.status != 200:
        raise Failure("REGISTER answered %s" % resp.first)
    if args.ready:
        open(args.ready, "w").close()
    inv = wait_request(conn, "INVITE", args.timeout, log)
    head = inv.raw.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    for rx in args.want or []:
        if not re.search(rx, head, re.I | re.M):
            raise Failure("the INVITE does not match %r" % rx)
    tag = token(8)
    rr = ["Record-Route: %s" % v for v in inv.all("record-route")]
    answer(conn, inv, 180, "Ringing", rr, tag, log)
    answer(conn, inv, 200, "OK", rr + ["Contact: %s" % contact], tag, log)
    wait_request(conn, "ACK", args.timeout, log)
    bye = wait_request(conn, "BYE", args.timeout, log)
    answer(conn, bye, 200, "OK", (), None, log)
    time.sleep(0.2)


def cmd_caller(args, log):
    conn = Conn(args.server, "udp")
    d = Dialog(conn, args.aor, ruri=args.callee)
    contact = "Contact: <sip:%s@%s>" % (user_of(args.aor), conn.via_host())
    branch = "z9hG4bK" + token(14)
    inv = d.build("INVITE", [contact], to=args.callee, branch=branch)
    resp = exchange(conn, inv, args.timeout, log)
    if resp.status == 407:
        # The ACK of a non-2xx: same branch and CSeq, the response's To.
        ack = d.build("ACK", [], to=args.callee, branch=branch, cseq=d.cseq)
        ack = ack.replace(("To: <%s>" % args.callee).encode(), ("To: %s" % resp.get("to")).encode(), 1)
        conn.send(ack)
        if not args.password:
            raise Failure("407 and no --password")
        params = pick_challenge(resp, ALGO)
        auth = "Proxy-Authorization: " + authorization(params, ALGO, user_of(args.aor), args.password,
                                                       "INVITE", args.callee)
        resp = exchange(conn, d.build("INVITE", [contact, auth], to=args.callee), args.timeout, log)
    if resp.status != 200:
        raise Failure("INVITE answered %s" % resp.first)
    to = resp.get("to")
    routes = []
    for v in reversed(resp.all("record-route")):
        routes += [r.strip() for r in sipclient.split_commas(v)]
    target = sipclient.contact_uri(resp.get("contact"))
    cseq = d.cseq

    def in_dialog(method, n):
        lines = ["%s %s SIP/2.0" % (method, target),
                 "Via: SIP/2.0/UDP %s;branch=z9hG4bK%s;rport" % (conn.via_host(), token(14)),
                 "Max-Forwards: 70", "From: <%s>;tag=%s" % (args.aor, d.tag), "To: %s" % to,
                 "Call-ID: %s" % d.call_id, "CSeq: %d %s" % (n, method)]
        lines += ["Route: %s" % r for r in routes]
        lines.append("Content-Length: 0")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    ack = in_dialog("ACK", cseq)
    log.append((">>>", ack))
    conn.send(ack)
    time.sleep(0.2)
    resp = exchange(conn, in_dialog("BYE", cseq + 1), args.timeout, log)
    if resp.status != 200:
        raise Failure("BYE answered %s" % resp.first)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("callee")
    p.add_argument("--server", required=True)
    p.add_argument("--transport", default="tcp", choices=("udp", "tcp"))
    p.add_argument("--aor", required=True)
    p.add_argument("--password")
    p.add_argument("--want", action="append")
    p.add_argument("--ready")
    p.add_argument("--timeout", type=float, default=20)
    p = sub.add_parser("caller")
    p.add_argument("--server", required=True)
    p.add_argument("--aor", required=True)
    p.add_argument("--callee", required=True)
    p.add_argument("--password")
    p.add_argument("--timeout", type=float, default=10)
    args = ap.parse_args(argv)
    log = []
    try:
        (cmd_callee if args.cmd == "callee" else cmd_caller)(args, log)
    except (Failure, OSError) as e:
        print("%s: %s" % (args.cmd, e), file=sys.stderr)
        for direction, raw in log:
            print("%s\n%s" % (direction, raw.decode("utf-8", "replace")), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
