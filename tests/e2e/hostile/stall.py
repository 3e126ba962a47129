#!/usr/bin/env python3
"""stall.py: slowloris connections for tests/e2e/test_flood.sh (stdlib).

Opens --count TCP connections to --server from each --source address
(round robin), writes a partial request line on each, then stays silent
and watches what the server does.  After --observe seconds prints one
JSON object:
  opened       connect() succeeded
  connect_failed  connect() itself failed (refused, timed out)
  refused      closed by the server within --refused-within seconds of
               the write (refused at accept: over a cap)
  held         still open after --refused-within seconds
  timed_out    held, then closed by the server before --observe ended
  still_open   held and still open when --observe ended
  held_max_close  seconds from the write to the last close of a held one
  per_source   {address: {"held": n, "refused": n}}
"""
import argparse
import json
import select
import socket
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--source", action="append", required=True)
    ap.add_argument("--count", type=int, required=True, help="connections per source")
    ap.add_argument("--refused-within", type=float, default=1.0)
    ap.add_argument("--observe", type=float, default=10.0)
    ap.add_argument("--ready", help="file to create once every connection is open")
    a = ap.parse_args()
    host, port = a.server.rsplit(":", 1)
    port = int(port)
    conns = []  # [sock, source, t_write, t_close]
    failed = 0
    for i in range(a.count):
        for src in a.source:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(2)
            try:
                s.bind((src, 0))
                s.connect((host, port))
                s.sendall(b"OPTIONS sip:example.test SIP/2.0\r\nVia: SIP/2.0/TCP " + src.encode())
            except OSError:
                failed += 1
                s.close()
                continue
            s.setblocking(False)
            conns.append([s, src, time.monotonic(), None])
    if a.ready:
        open(a.ready, "w").close()
    start = time.monotonic()
    end = start + a.observe
    live = {c[0].fileno(): c for c in conns}
    while live and time.monotonic() < end:
        fds = list(live)
        # select() is limited to FD_SETSIZE; poll has no such limit
        p = select.poll()
        for fd in fds:
            p.register(fd, select.POLLIN | select.POLLERR | select.POLLHUP)
        for fd, ev in p.poll(max(0, min(0.2, end - time.monotonic())) * 1000):
            c = live[fd]
            try:
                d = c[0].recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                d = b""
            if not d:
                c[3] = time.monotonic()
                del live[fd]
    res = {"opened": len(conns), "connect_failed": failed, "refused": 0, "held": 0,
           "timed_out": 0, "still_open": 0, "held_max_close": 0.0, "per_source": {}}
    for s, src, tw, tc in conns:
        ps = res["per_source"].setdefault(src, {"held": 0, "refused": 0})
        if tc is not None and tc - tw <= a.refused_within:
            res["refused"] += 1
            ps["refused"] += 1
            continue
        res["held"] += 1
        ps["held"] += 1
        if tc is None:
            res["still_open"] += 1
        else:
            res["timed_out"] += 1
            res["held_max_close"] = max(res["held_max_close"], round(tc - tw, 2))
        s.close()
    print(json.dumps(res))


if __name__ == "__main__":
    main()
