#!/usr/bin/env bash
# Bad requests get the precise error and the server keeps serving:
# 483, 501, 400 (sipp); garbage and requests that cannot be answered (no
# Via) are dropped; after all of it OPTIONS still gets 200.
source "$(dirname "$0")/lib.sh"

server_start --auth off

u="$(e2e_uniq bad)"
user_add "$u" secret

step "483 for Max-Forwards: 0, 501 for an unknown method, 400 for a short body, then 200 (sipp)"
SIPP_USER="$u" sipp_run errors

step "garbage datagrams: no response, no crash"
head -c 1500 /dev/urandom >"$E2E_WORK/garbage.bin"
sipc raw --binary --file "$E2E_WORK/garbage.bin" --no-response --timeout 1
printf 'this is not SIP\r\n\r\n' >"$E2E_WORK/nonsip.txt"
sipc raw --binary --file "$E2E_WORK/nonsip.txt" --no-response --timeout 1
printf '\r\n\r\n' >"$E2E_WORK/crlf.txt"
sipc raw --binary --file "$E2E_WORK/crlf.txt" --no-response --timeout 1

step "a request without Via cannot be answered: dropped"
cat >"$E2E_WORK/novia.txt" <<EOT
OPTIONS sip:$E2E_DOMAIN SIP/2.0
Max-Forwards: 70
From: <sip:$u@$E2E_DOMAIN>;tag={tag}
To: <sip:$E2E_DOMAIN>
Call-ID: {callid}
CSeq: 1 OPTIONS
Content-Length: 0

EOT
sipc raw --file "$E2E_WORK/novia.txt" --no-response --timeout 1

step "a request without From gets 400"
cat >"$E2E_WORK/nofrom.txt" <<EOT
OPTIONS sip:$E2E_DOMAIN SIP/2.0
Via: SIP/2.0/UDP {via};branch={branch}
Max-Forwards: 70
To: <sip:$E2E_DOMAIN>
Call-ID: {callid}
CSeq: 1 OPTIONS
Content-Length: 0

EOT
sipc raw --file "$E2E_WORK/nofrom.txt" --expect 400

step "a CSeq method other than the request's gets 400 (RFC 3261 §8.1.1.5)"
cat >"$E2E_WORK/cseqmethod.txt" <<EOT
REGISTER sip:$E2E_DOMAIN SIP/2.0
Via: SIP/2.0/UDP {via};branch={branch}
Max-Forwards: 70
From: <sip:$u@$E2E_DOMAIN>;tag={tag}
To: <sip:$u@$E2E_DOMAIN>
Call-ID: {callid}
CSeq: 3 OPTIONS
Contact: <sip:ua1@127.0.0.1:5099>
Expires: 60
Content-Length: 0

EOT
sipc raw --file "$E2E_WORK/cseqmethod.txt" --expect 400

step "a bad CSeq number gets 400"
cat >"$E2E_WORK/badcseq.txt" <<EOT
REGISTER sip:$E2E_DOMAIN SIP/2.0
Via: SIP/2.0/UDP {via};branch={branch}
Max-Forwards: 70
From: <sip:$u@$E2E_DOMAIN>;tag={tag}
To: <sip:$u@$E2E_DOMAIN>
Call-ID: {callid}
CSeq: abc REGISTER
Contact: <sip:ua1@127.0.0.1:5099>
Expires: 60
Content-Length: 0

EOT
sipc raw --file "$E2E_WORK/badcseq.txt" --expect 400

assert_eq 0 "$(db_query "SELECT count(*) FROM location WHERE aor = 'sip:$u@$E2E_DOMAIN'")" "bindings made by bad requests"

step "garbage on TCP: the connection may be closed, the server keeps serving"
"$PYTHON" - "$SERVER_PORT" <<'EOF2' || fail "could not send garbage over TCP"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"\x00\x01garbage\r\nwithout end" * 50 + b"\r\n\r\n")
s.settimeout(2)
try:
    s.recv(65535)
except (socket.timeout, ConnectionResetError):
    pass
s.close()
EOF2

step "Require with an unknown option gets 420 with Unsupported naming it (RFC 3261 §8.2.2.3)"
cat >"$E2E_WORK/require.txt" <<EOT
REGISTER sip:$E2E_DOMAIN SIP/2.0
Via: SIP/2.0/UDP {via};branch={branch}
Max-Forwards: 70
From: <sip:$u@$E2E_DOMAIN>;tag={tag}
To: <sip:$u@$E2E_DOMAIN>
Call-ID: {callid}
CSeq: 1 REGISTER
Require: path, x-no-such-extension
Contact: <sip:ua1@127.0.0.1:5099>
Expires: 60
Content-Length: 0

EOT
sipc raw --file "$E2E_WORK/require.txt" --expect 420 --expect-header '^Unsupported: *x-no-such-extension'
[[ -z "$(db_query "SELECT 1 FROM location WHERE aor = 'sip:$u@$E2E_DOMAIN'")" ]] ||
	fail "a rejected REGISTER stored a binding"

step "still serving: OPTIONS over UDP and TCP"
kill -0 "$SERVER_PID" 2>/dev/null || fail "simpled is gone"
sipp_run options
sipc --tcp request --method OPTIONS --ruri "sip:$E2E_DOMAIN" --expect 200

server_stop
