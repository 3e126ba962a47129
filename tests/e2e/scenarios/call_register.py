#!/usr/bin/env python3
"""call_register.py: REGISTER a contact *from* a given local UDP port (stdlib
only), so the binding's source -- which simpled prefers over the Contact
when it sends to a UDP binding (NAT friendliness) -- is the port a sipp
callee will listen on.  The socket is closed before sipp binds the port.

usage: call_register.py SERVER_HOST:PORT LOCAL_PORT AOR CONTACT [EXPIRES [Q]]
Exits 0 on 200, 1 otherwise."""
import random
import socket
import sys


def main():
    if len(sys.argv) < 5:
        print(__doc__, file=sys.stderr)
        return 2
    host, port = sys.argv[1].rsplit(":", 1)
    lport = int(sys.argv[2])
    aor, contact = sys.argv[3], sys.argv[4]
    expires = sys.argv[5] if len(sys.argv) > 5 else "600"
    q = sys.argv[6] if len(sys.argv) > 6 else None
    domain = aor.split("@", 1)[1]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", lport))
    s.settimeout(2.0)
    tag = "%08x" % random.getrandbits(32)
    cid = "%016x@call-register" % random.getrandbits(64)
    cval = "<%s>" % contact + (";q=%s" % q if q else "")
    for attempt in range(3):
        branch = "z9hG4bK%016x" % random.getrandbits(64)
        msg = ("REGISTER sip:%s SIP/2.0\r\n"
               "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=%s;rport\r\n"
               "Max-Forwards: 70\r\nFrom: <%s>;tag=%s\r\nTo: <%s>\r\n"
               "Call-ID: %s\r\nCSeq: %d REGISTER\r\nContact: %s\r\nExpires: %s\r\n"
               "Content-Length: 0\r\n\r\n") % (domain, lport, branch, aor, tag, aor, cid,
                                               attempt + 1, cval, expires)
        s.sendto(msg.encode(), (host, int(port)))
        try:
            while True:
                data, _ = s.recvfrom(65535)
                first = data.split(b"\r\n", 1)[0].decode("utf-8", "replace")
                code = int(first.split()[1])
                if code >= 200:
                    s.close()
                    if code == 200:
                        return 0
                    print("REGISTER answered: %s" % first, file=sys.stderr)
                    return 1
        except socket.timeout:
            continue
    print("REGISTER: no answer", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
