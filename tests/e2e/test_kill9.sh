#!/usr/bin/env bash
# Crash consistency: under steady load of REGISTER, PUBLISH and MESSAGE to
# an offline user, simpled is killed with SIGKILL mid-run.  Every request
# that got a 2xx (200 for REGISTER/PUBLISH, 202 for a stored MESSAGE)
# must be in PostgreSQL, and in effect after a restart: the binding is
# listed by a fetching REGISTER, the publication's ETag refreshes, the
# stored message is delivered when its recipient registers.
source "$(dirname "$0")/lib.sh"

server_start --auth off --max-requests-per-ip 0 --log-level info

tag="$(e2e_uniq k9)"
rcpt="${tag}rcpt"
user_add "$rcpt" secret

step "load: REGISTER, PUBLISH and offline MESSAGE, 64 in flight, SIGKILL after 1.5 s"
"$PYTHON" - "$SERVER_PORT" "$tag" "$rcpt" "$E2E_DOMAIN" "$E2E_WORK/acked.txt" <<'PY' &
import socket, sys, time, random
port, tag, rcpt, dom, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.bind(("127.0.0.1", 0))
lport = s.getsockname()[1]
s.settimeout(0.05)
pending = {}  # branch -> (kind, name, sent_at, bytes)
acked = open(out, "w")
n = 0
deadline = time.time() + 8
def request(kind, i):
    br = "z9hG4bK-%s-%d" % (tag, i)
    if kind == "reg":
        user = "%sr%d" % (tag, i)
        body = ""
        head = ("REGISTER sip:%s SIP/2.0\r\nFrom: <sip:%s@%s>;tag=f%d\r\nTo: <sip:%s@%s>\r\n"
                "Contact: <sip:%s@127.0.0.1:9>\r\nExpires: 3600\r\nCSeq: 1 REGISTER\r\n") % (dom, user, dom, i, user, dom, user)
        name = "sip:%s@%s" % (user, dom)
    elif kind == "pub":
        user = "%sp%d" % (tag, i)
        name = "sip:%s@%s" % (user, dom)
        body = ('<?xml version="1.0" encoding="UTF-8"?>\r\n<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="%s">'
                '<tuple id="t1"><status><basic>open</basic></status></tuple></presence>') % name
        head = ("PUBLISH %s SIP/2.0\r\nFrom: <%s>;tag=f%d\r\nTo: <%s>\r\nEvent: presence\r\nExpires: 3600\r\n"
                "Content-Type: application/pidf+xml\r\nCSeq: 1 PUBLISH\r\n") % (name, name, i, name)
    else:
        name = "%s-m%d" % (tag, i)
        body = name
        head = ("MESSAGE sip:%s@%s SIP/2.0\r\nFrom: <sip:%ssender@%s>;tag=f%d\r\nTo: <sip:%s@%s>\r\n"
                "Content-Type: text/plain\r\nCSeq: 1 MESSAGE\r\n") % (rcpt, dom, tag, dom, i, rcpt, dom)
    msg = ("%sVia: SIP/2.0/UDP 127.0.0.1:%d;branch=%s;rport\r\nCall-ID: %s-%d\r\nMax-Forwards: 70\r\n"
           "Content-Length: %d\r\n\r\n%s") % (head, lport, br, tag, i, len(body.encode()), body)
    return br, name, msg.encode()
kinds = ["reg", "pub", "msg"]
while time.time() < deadline:
    while len(pending) < 64:
        kind = kinds[n % 3]
        br, name, data = request(kind, n)
        n += 1
        pending[br] = (kind, name, time.time(), data)
        s.sendto(data, ("127.0.0.1", port))
    try:
        data = s.recv(65536)
    except socket.timeout:
        now = time.time()
        for br, (kind, name, t, d) in list(pending.items()):
            if now - t > 0.5:           # retransmit like a UA
                pending[br] = (kind, name, now, d)
                try:
                    s.sendto(d, ("127.0.0.1", port))
                except OSError:
                    pass
        continue
    except ConnectionRefusedError:
        continue
    line = data.split(b"\r\n", 1)[0].decode(errors="replace")
    code = int(line.split()[1])
    m = [l for l in data.split(b"\r\n") if l.lower().startswith(b"via:")]
    br = m[0].split(b"branch=")[1].split(b";")[0].decode() if m else ""
    if br not in pending or code < 200:
        continue
    kind, name, _, _ = pending.pop(br)
    etag = ""
    for l in data.split(b"\r\n"):
        if l.lower().startswith(b"sip-etag:"):
            etag = l.split(b":", 1)[1].strip().decode()
    if (kind in ("reg", "pub") and code == 200) or (kind == "msg" and code == 202):
        acked.write("%s %s %s\n" % (kind, name, etag))
        acked.flush()
PY
load=$!
sleep 1.5
kill -KILL "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null || true
e2e_log "simpled killed"
SERVER_PID=
wait "$load" || fail "the load client failed"

nreg=$(grep -c '^reg ' "$E2E_WORK/acked.txt" || true)
npub=$(grep -c '^pub ' "$E2E_WORK/acked.txt" || true)
nmsg=$(grep -c '^msg ' "$E2E_WORK/acked.txt" || true)
e2e_log "acknowledged before the kill: $nreg REGISTER, $npub PUBLISH, $nmsg stored MESSAGE"
[[ $nreg -gt 10 && $npub -gt 10 && $nmsg -gt 10 ]] || fail "too little load got through before the kill"

step "every acknowledged write is in PostgreSQL"
# One session: load the acknowledgements into a temporary table and
# count those without their row.
missing=$(psql "$SERVER_DB" -X -q -At -v ON_ERROR_STOP=1 <<SQL
CREATE TEMP TABLE acked (kind text, name text, etag text);
\copy acked FROM '$E2E_WORK/acked.txt' WITH (FORMAT text, DELIMITER ' ')
SELECT count(*) FROM acked a WHERE
  (a.kind = 'reg' AND NOT EXISTS (SELECT 1 FROM location l WHERE l.aor = a.name)) OR
  (a.kind = 'pub' AND NOT EXISTS (SELECT 1 FROM presence_publications p
                                   WHERE p.resource = a.name AND p.etag = a.etag)) OR
  (a.kind = 'msg' AND NOT EXISTS (SELECT 1 FROM messages m
                                   WHERE m.body = convert_to(a.name, 'UTF8')));
SQL
) || fail "the check query failed"
e2e_log "acknowledged: $((nreg + npub + nmsg)); missing after SIGKILL: $missing"
assert_eq 0 "$missing" "acknowledged writes missing after SIGKILL"

step "after a restart they are in effect"
_server_launch
first_reg=$(grep -m1 '^reg ' "$E2E_WORK/acked.txt" | cut -d' ' -f2)
user=${first_reg#sip:}
user=${user%@*}
sipc register --aor "sip:$user@$E2E_DOMAIN" --expect 200 --expect-header "^Contact:.*$user@127.0.0.1:9"
read -r _ pub_aor pub_etag < <(grep -m1 '^pub ' "$E2E_WORK/acked.txt")
sipc request --method PUBLISH --ruri "$pub_aor" --aor "$pub_aor" --to "$pub_aor" \
	--header "Event: presence" --header "SIP-If-Match: $pub_etag" --header "Expires: 600" --expect 200
server_stop
