#!/usr/bin/env bash
# Per-source rate limiting: with --max-requests-per-ip 50 (bursts of 100),
# a burst of 400 OPTIONS from one address is answered only up to the
# bucket, the rest is dropped silently (no 503: no amplification), the
# log says so once, and a second later the same source is served again.
source "$(dirname "$0")/lib.sh"

server_start --auth off --max-requests-per-ip 50

blast() { # COUNT [SOURCE_IP] -> prints the number of responses received
	"$PYTHON" - "$SERVER_PORT" "$1" "${2:-127.0.0.1}" <<'PY'
import socket, sys, time
port, count, src = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.bind((src, 0))
lport = s.getsockname()[1]
for i in range(count):
    msg = ("OPTIONS sip:example.test SIP/2.0\r\n"
           "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK-rl-%d-%f;rport\r\n"
           "From: <sip:flood@example.test>;tag=%d\r\nTo: <sip:example.test>\r\n"
           "Call-ID: rl-%d-%f\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
           "Content-Length: 0\r\n\r\n") % (lport, i, time.time(), i, i, time.time())
    s.sendto(msg.encode(), ("127.0.0.1", port))
s.settimeout(3.0)
got = 0
try:
    while True:
        data = s.recv(65536)
        if data.startswith(b"SIP/2.0 200"):
            got += 1
        elif data.startswith(b"SIP/2.0"):
            print("unexpected response: %r" % data[:40], file=sys.stderr)
            sys.exit(1)
except socket.timeout:
    pass
print(got)
PY
}

step "the server answers (start-up work done) before the burst"
sipc request --method OPTIONS --ruri "sip:$E2E_DOMAIN" --expect 200
sleep 1.5 # the bucket of 127.0.0.1 is full again

step "a burst of 400 requests gets at most the bucket (100) plus refill"
got=$(blast 400)
e2e_log "answered: $got of 400"
[[ $got -ge 90 && $got -le 160 ]] || fail "expected about 100 answers, got $got"
assert_match "ratelimit.*dropped" "$(cat "$SERVER_LOG")" "a log line about the drops"

step "after a pause the source is served again"
sleep 2
sipc request --method OPTIONS --ruri "sip:$E2E_DOMAIN" --expect 200

step "another source is not affected: a flood from 127.0.0.2 while 127.0.0.1 is served"
for _ in 1 2 3; do blast 400 127.0.0.2 >/dev/null; done &
flood=$!
sleep 0.2
sipc request --method OPTIONS --ruri "sip:$E2E_DOMAIN" --expect 200
sipc request --method OPTIONS --ruri "sip:$E2E_DOMAIN" --expect 200
wait "$flood" || fail "the flooding client failed"

server_stop
