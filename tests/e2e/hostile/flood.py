#!/usr/bin/env python3
"""flood.py: a SUBSCRIBE flood over UDP from one source (stdlib).

Sends --count SUBSCRIBEs (distinct watchers, resources, Call-IDs) from
--source to --server, paced at --rate per second, never answers a NOTIFY,
reads whatever comes back, and prints one JSON object:
  sent, responses (by status), notifies, seconds
"""
import argparse
import json
import random
import socket
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--source", default="127.0.0.2")
    ap.add_argument("--count", type=int, default=20000)
    ap.add_argument("--rate", type=float, default=4000.0)
    ap.add_argument("--domain", default="example.test")
    ap.add_argument("--linger", type=float, default=1.0)
    a = ap.parse_args()
    host, port = a.server.rsplit(":", 1)
    dst = (host, int(port))
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.bind((a.source, 0))
    s.setblocking(False)
    lport = s.getsockname()[1]
    run = "%08x" % random.getrandbits(32)
    statuses, notifies = {}, 0
    start = time.monotonic()

    def drain():
        nonlocal notifies
        while True:
            try:
                d = s.recv(65536)
            except BlockingIOError:
                return
            if d.startswith(b"SIP/2.0 "):
                k = d[8:11].decode("ascii", "replace")
                statuses[k] = statuses.get(k, 0) + 1
            elif d.startswith(b"NOTIFY "):
                notifies += 1

    for i in range(a.count):
        due = start + i / a.rate
        while time.monotonic() < due:
            drain()
            time.sleep(0.0005)
        msg = ("SUBSCRIBE sip:flood-%s-r%d@%s SIP/2.0\r\n"
               "Via: SIP/2.0/UDP %s:%d;branch=z9hG4bKflood%s%d;rport\r\n"
               "Max-Forwards: 70\r\nFrom: <sip:flood-%s-w%d@%s>;tag=f%d\r\n"
               "To: <sip:flood-%s-r%d@%s>\r\nCall-ID: flood-%s-%d\r\nCSeq: 1 SUBSCRIBE\r\n"
               "Contact: <sip:flood@%s:%d>\r\nEvent: presence\r\nAccept: application/pidf+xml\r\n"
               "Expires: 60\r\nContent-Length: 0\r\n\r\n") % (
            run, i, a.domain, a.source, lport, run, i, run, i % 100, a.domain, i,
            run, i, a.domain, run, i, a.source, lport)
        try:
            s.sendto(msg.encode(), dst)
        except BlockingIOError:
            time.sleep(0.001)
    end = time.monotonic() + a.linger
    while time.monotonic() < end:
        drain()
        time.sleep(0.01)
    print(json.dumps({"sent": a.count, "responses": statuses, "notifies": notifies,
                      "seconds": round(time.monotonic() - start, 2)}))


if __name__ == "__main__":
    main()
