#!/usr/bin/env python3
"""Mixed steady load for scripts/soak.sh: REGISTER, PUBLISH (initial then
modify), MESSAGE to an offline user and SUBSCRIBE (answering every NOTIFY)
at a fixed rate for a fixed time, over UDP from 127.0.0.1.  Prints one
line of counts at the end.  Stdlib only; bounded in count and time."""
import random
import socket
import sys
import time

port, seconds, rate, dom, rcpt = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.bind(("127.0.0.1", 0))
lport = s.getsockname()[1]
s.setblocking(False)
tag = "soak%d" % random.randrange(1 << 30)
counts = {}
etags = {}
USERS = 500  # a bounded population: the same AORs are refreshed over and over


def send(kind, i):
    u = i % USERS
    br = "z9hG4bK-%s-%d" % (tag, i)
    body = ""
    aor = "sip:%su%d@%s" % (tag, u, dom)
    if kind == "reg":
        head = ("REGISTER sip:%s SIP/2.0\r\nFrom: <%s>;tag=f%d\r\nTo: <%s>\r\n"
                "Contact: <sip:%su%d@127.0.0.1:%d>\r\nExpires: 120\r\nCSeq: %d REGISTER\r\n"
                "Call-ID: %s-reg-%d\r\n") % (dom, aor, i, aor, tag, u, lport, i, tag, u)
    elif kind == "pub":
        body = ('<?xml version="1.0"?><presence xmlns="urn:ietf:params:xml:ns:pidf" entity="%s">'
                '<tuple id="t"><status><basic>%s</basic></status><note>%d</note></tuple></presence>') % (
                    aor, random.choice(("open", "closed")), i)
        extra = "SIP-If-Match: %s\r\n" % etags[u] if u in etags else ""
        head = ("PUBLISH %s SIP/2.0\r\nFrom: <%s>;tag=f%d\r\nTo: <%s>\r\nEvent: presence\r\nExpires: 120\r\n"
                "%sContent-Type: application/pidf+xml\r\nCSeq: 1 PUBLISH\r\nCall-ID: %s-pub-%d\r\n") % (
                    aor, aor, i, aor, extra, tag, i)
    elif kind == "sub":
        head = ("SUBSCRIBE %s SIP/2.0\r\nFrom: <sip:%sw%d@%s>;tag=f%d\r\nTo: <%s>\r\nEvent: presence\r\n"
                "Accept: application/pidf+xml\r\nExpires: 60\r\nContact: <sip:w@127.0.0.1:%d>\r\n"
                "CSeq: 1 SUBSCRIBE\r\nCall-ID: %s-sub-%d\r\n") % (aor, tag, i, dom, i, aor, lport, tag, i)
    else:
        body = "soak message %d" % i
        head = ("MESSAGE sip:%s@%s SIP/2.0\r\nFrom: <sip:%ss@%s>;tag=f%d\r\nTo: <sip:%s@%s>\r\n"
                "Content-Type: text/plain\r\nCSeq: 1 MESSAGE\r\nCall-ID: %s-msg-%d\r\n") % (
                    rcpt, dom, tag, dom, i, rcpt, dom, tag, i)
    msg = "%sVia: SIP/2.0/UDP 127.0.0.1:%d;branch=%s;rport\r\nMax-Forwards: 70\r\nContent-Length: %d\r\n\r\n%s" % (
        head, lport, br, len(body.encode()), body)
    s.sendto(msg.encode(), ("127.0.0.1", port))


def answer(data):
    lines = data.split(b"\r\n")
    keep = [l for l in lines if l.split(b":", 1)[0].lower() in (b"via", b"from", b"to", b"call-id", b"cseq", b"v", b"f", b"t", b"i")]
    s.sendto(b"SIP/2.0 200 OK\r\n" + b"\r\n".join(keep) + b"\r\nContent-Length: 0\r\n\r\n", ("127.0.0.1", port))


kinds = ["reg", "pub", "pub", "sub", "msg"]
start = time.time()
i = 0
while time.time() - start < seconds:
    due = int((time.time() - start) * rate)
    while i < due:
        send(kinds[i % len(kinds)], i)
        i += 1
    try:
        while True:
            data = s.recv(65536)
            if data.startswith(b"SIP/2.0 "):
                code = data[8:11].decode()
                counts[code] = counts.get(code, 0) + 1
                if b"PUBLISH" in data.split(b"CSeq:")[1][:30] and code == "200":
                    for l in data.split(b"\r\n"):
                        if l.lower().startswith(b"sip-etag:"):
                            cid = [x for x in data.split(b"\r\n") if x.lower().startswith(b"call-id:")][0]
                            n = int(cid.rsplit(b"-", 1)[1])
                            etags[n % USERS] = l.split(b":", 1)[1].strip().decode()
                elif code == "412":
                    etags.clear()
            else:
                counts["NOTIFY"] = counts.get("NOTIFY", 0) + 1
                answer(data)
    except BlockingIOError:
        pass
    time.sleep(0.002)
print("sent=%d %s" % (i, " ".join("%s=%d" % kv for kv in sorted(counts.items()))))
