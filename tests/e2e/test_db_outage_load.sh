#!/usr/bin/env bash
# PostgreSQL stopped for 10 s under load (issue: "Database test"): a load
# client keeps 64 REGISTER / PUBLISH / offline MESSAGE requests in flight
# for the whole run (until 10 s after the database is back).  The database is stopped (fast shutdown: in-flight
# queries fail) for 10 s and started again.  Meanwhile the server answers
# writes 503 with Retry-After (never a 2xx it did not commit, never
# silence), stays up, reconnects by itself and serves 2xx again; and
# every write acknowledged at any time — before, during or after — is in
# PostgreSQL afterwards.
#
# Runs its own PostgreSQL cluster (scripts/dev-db.sh) so that stopping it
# disturbs no other test.
source "$(dirname "$0")/lib.sh"

[[ -f "$SIMPLED_DEV_DB" ]] || fail "no $SIMPLED_DEV_DB"
pg_dir="$E2E_WORK/pg"
pg_port="$(free_port)"
if ((${#pg_dir} + 20 > 100)); then
	pg_dir="$(mktemp -d /tmp/sd-e2e-pg.XXXXXX)"
	chmod 755 "$pg_dir"
	at_exit "rm -rf '$pg_dir'"
fi
devdb() { bash "$SIMPLED_DEV_DB" "$@" </dev/null; }

step "start a private cluster in $pg_dir"
conninfo="$(devdb start "$pg_dir" "$pg_port" 2>"$E2E_WORK/dev-db.log" | tail -n 1)" ||
	{ cat "$E2E_WORK/dev-db.log" >&2; fail "dev-db.sh start failed"; }
at_exit "bash '$SIMPLED_DEV_DB' stop '$pg_dir' >/dev/null 2>&1 </dev/null"
SERVER_DB="$conninfo"
E2E_DB="$conninfo"

server_start --auth off --max-requests-per-ip 0
tag="$(e2e_uniq out)"
rcpt="${tag}rcpt"
user_add "$rcpt" secret
rm -f "$E2E_WORK/down" "$E2E_WORK/up"

step "load: 64 requests in flight; the database stops after 3 s, for 10 s; load goes on 10 s more"
"$PYTHON" - "$SERVER_PORT" "$tag" "$rcpt" "$E2E_DOMAIN" "$E2E_WORK" <<'PY' &
import os, socket, sys, time
port, tag, rcpt, dom, work = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.bind(("127.0.0.1", 0))
lport = s.getsockname()[1]
s.settimeout(0.05)
acked = open(os.path.join(work, "acked.txt"), "w")
stats = {}  # phase -> {code: n}
no_retry_after = 0
pending = {}
n = 0
deadline = time.time() + 60   # at most; normally 10 s after the database is back
up_at = None
def phase():
    if os.path.exists(os.path.join(work, "up")):
        return "after"
    return "down" if os.path.exists(os.path.join(work, "down")) else "before"
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
    if up_at is None and phase() == "after":
        up_at = time.time()
        deadline = min(deadline, up_at + 10)   # the pool's backoff is at most 5 s
    while len(pending) < 64:
        kind = kinds[n % 3]
        br, name, data = request(kind, n)
        n += 1
        pending[br] = (kind, name, time.time(), time.time(), data)
        s.sendto(data, ("127.0.0.1", port))
    try:
        data = s.recv(65536)
    except socket.timeout:
        now = time.time()
        for br, (kind, name, t0, t, d) in list(pending.items()):
            if now - t0 > 32:           # Timer F: no answer at all
                pending.pop(br)
                stats.setdefault(phase(), {}).setdefault("timeout", 0)
                stats[phase()]["timeout"] += 1
            elif now - t > 0.5:         # retransmit like a UA
                pending[br] = (kind, name, t0, now, d)
                s.sendto(d, ("127.0.0.1", port))
        continue
    line = data.split(b"\r\n", 1)[0].decode(errors="replace")
    code = int(line.split()[1])
    lines = data.split(b"\r\n")
    m = [l for l in lines if l.lower().startswith(b"via:")]
    br = m[0].split(b"branch=")[1].split(b";")[0].decode() if m else ""
    if br not in pending or code < 200:
        continue
    kind, name, _, _, _ = pending.pop(br)
    ph = phase()
    stats.setdefault(ph, {}).setdefault(str(code), 0)
    stats[ph][str(code)] += 1
    if code == 503 and not any(l.lower().startswith(b"retry-after:") for l in lines):
        no_retry_after += 1
    etag = ""
    for l in lines:
        if l.lower().startswith(b"sip-etag:"):
            etag = l.split(b":", 1)[1].strip().decode()
    if (kind in ("reg", "pub") and code == 200) or (kind == "msg" and code == 202):
        acked.write("%s %s %s %s\n" % (kind, name, etag, ph))
        acked.flush()
with open(os.path.join(work, "stats.txt"), "w") as f:
    for ph in ("before", "down", "after"):
        f.write("%s %s\n" % (ph, " ".join("%s=%d" % kv for kv in sorted(stats.get(ph, {}).items()))))
    f.write("no_retry_after %d\n" % no_retry_after)
PY
load=$!
sleep 3
devdb stop "$pg_dir" 2>>"$E2E_WORK/dev-db.log" || fail "dev-db.sh stop failed"
touch "$E2E_WORK/down"
e2e_log "PostgreSQL stopped"
for ((i = 0; i < 10; i++)); do
	sleep 1
	kill -0 "$SERVER_PID" 2>/dev/null || fail "simpled died while the database was down"
done
devdb start "$pg_dir" "$pg_port" >/dev/null 2>>"$E2E_WORK/dev-db.log" || fail "dev-db.sh start (again) failed"
touch "$E2E_WORK/up"
e2e_log "PostgreSQL started again"
wait "$load" || fail "the load client failed"
kill -0 "$SERVER_PID" 2>/dev/null || fail "simpled died"
cat "$E2E_WORK/stats.txt" | sed 's/^/    /' >&2

# stat PHASE CODE: how many answers of CODE the client counted in PHASE
# (the database stopping counts as "before" until dev-db.sh returns).
stat() { awk -v ph="$1" -v k="$2" '$1 == ph { for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) n = kv[2] } } END { print n + 0 }' "$E2E_WORK/stats.txt"; }
ok_before=$(stat before 200)
ok_after=$(stat after 200)
down_503=$(stat down 503)
assert_match '^no_retry_after 0$' "$(grep no_retry_after "$E2E_WORK/stats.txt")" "503s without Retry-After"
((ok_before > 50)) || fail "too little load got through before the outage ($ok_before)"
((down_503 > 50)) || fail "too few 503 answers while the database was down ($down_503)"
((ok_after > 50)) || fail "service did not resume after the database came back ($ok_after 200s)"
grep -q 'timeout=' "$E2E_WORK/stats.txt" && fail "requests went unanswered"

step "every acknowledged write is in PostgreSQL"
missing=$(psql "$SERVER_DB" -X -q -At -v ON_ERROR_STOP=1 <<SQL
CREATE TEMP TABLE acked (kind text, name text, etag text, phase text);
\copy acked FROM '$E2E_WORK/acked.txt' WITH (FORMAT text, DELIMITER ' ')
SELECT count(*) FROM acked a WHERE
  (a.kind = 'reg' AND NOT EXISTS (SELECT 1 FROM location l WHERE l.aor = a.name)) OR
  (a.kind = 'pub' AND NOT EXISTS (SELECT 1 FROM presence_publications p
                                   WHERE p.resource = a.name AND p.etag = a.etag)) OR
  (a.kind = 'msg' AND NOT EXISTS (SELECT 1 FROM messages m
                                   WHERE m.body = convert_to(a.name, 'UTF8')));
SQL
) || fail "the check query failed"
total=$(wc -l <"$E2E_WORK/acked.txt")
e2e_log "acknowledged: $total (during the outage: $(grep -c ' down$' "$E2E_WORK/acked.txt" || true)); missing: $missing"
assert_eq 0 "$missing" "acknowledged writes missing"

step "OPTIONS and REGISTER still work"
sipc request --method OPTIONS --ruri "sip:$E2E_DOMAIN" --expect 200
sipc register --aor "sip:${tag}late@$E2E_DOMAIN" --contact "<sip:late@127.0.0.1:5099>" --expires 600 --expect 200
server_stop
