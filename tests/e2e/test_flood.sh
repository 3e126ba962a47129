#!/usr/bin/env bash
# Flood and slowloris: while 127.0.0.2 sends 20,000 SUBSCRIBEs (paced at
# 4,000/s, twice the per-source rate limit) and holds 500 stalled TCP
# connections (a partial request line, then silence), and 127.0.0.3 ..
# 127.0.0.12 hold 50 stalled connections each, a legitimate user on
# 127.0.0.1 still registers, publishes, subscribes and gets its NOTIFY
# within 2 seconds.  The per-IP TCP cap (default 64) refuses 127.0.0.2's
# connections beyond it, the total cap (300 here) refuses the rest of the
# slowloris, the header timeout (5 s) closes every stalled connection,
# and afterwards TCP is served again and the server exits cleanly.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/scenarios/presence_lib.sh"

HOSTILE_DIR="$E2E_DIR/hostile"
PER_IP=64
TOTAL=300
HDR_TIMEOUT=5
ulimit -n 8192 2>/dev/null || true

server_start --auth off --tcp-header-timeout "$HDR_TIMEOUT" --max-tcp-connections "$TOTAL" \
	--max-tcp-connections-per-ip "$PER_IP"

legit="sip:$(e2e_uniq legit)@$E2E_DOMAIN"
watcher="sip:$(e2e_uniq watcher)@$E2E_DOMAIN"
now() { date +%s.%N; }
elapsed() { "$PYTHON" -c 'import sys; print("%.3f" % (float(sys.argv[2]) - float(sys.argv[1])))' "$1" "$2"; }
le() { "$PYTHON" -c 'import sys; sys.exit(0 if float(sys.argv[1]) <= float(sys.argv[2]) else 1)' "$1" "$2"; }
jget() { "$PYTHON" -c 'import json,sys; d=json.loads(sys.argv[1])
for k in sys.argv[2].split("."): d=d[k]
print(d)' "$1" "$2"; }

step "a watcher on 127.0.0.1 subscribes to the legitimate user before the attack"
watch_start w1 --aor "$watcher" --resource "$legit" --duration 55
assert_match '"subscribe": 200' "$(watch_result w1)" "SUBSCRIBE answer"
wait_notify w1 'basic>closed' >/dev/null

step "the attack starts: 500 + 10 x 50 stalled TCP connections, 20,000 SUBSCRIBEs from 127.0.0.2"
at_exit '[[ -n "${STALL1:-}" ]] && kill $STALL1 2>/dev/null'
at_exit '[[ -n "${STALL2:-}" ]] && kill $STALL2 2>/dev/null'
at_exit '[[ -n "${FLOOD:-}" ]] && kill $FLOOD 2>/dev/null'
observe=$((HDR_TIMEOUT + 7))
"$PYTHON" "$HOSTILE_DIR/stall.py" --server "127.0.0.1:$SERVER_PORT" --source 127.0.0.2 --count 500 \
	--observe "$observe" --ready "$E2E_WORK/stall1.ready" >"$E2E_WORK/stall1.json" 2>"$E2E_WORK/stall1.err" &
STALL1=$!
srcs=()
for i in $(seq 3 12); do srcs+=(--source "127.0.0.$i"); done
"$PYTHON" "$HOSTILE_DIR/stall.py" --server "127.0.0.1:$SERVER_PORT" "${srcs[@]}" --count 50 \
	--observe "$observe" --ready "$E2E_WORK/stall2.ready" >"$E2E_WORK/stall2.json" 2>"$E2E_WORK/stall2.err" &
STALL2=$!
"$PYTHON" "$HOSTILE_DIR/flood.py" --server "127.0.0.1:$SERVER_PORT" --source 127.0.0.2 --count 20000 \
	--rate 4000 --domain "$E2E_DOMAIN" >"$E2E_WORK/flood.json" 2>"$E2E_WORK/flood.err" &
FLOOD=$!
for ((i = 0; i < 100; i++)); do
	[[ -f "$E2E_WORK/stall1.ready" && -f "$E2E_WORK/stall2.ready" ]] && break
	sleep 0.1
done
[[ -f "$E2E_WORK/stall1.ready" && -f "$E2E_WORK/stall2.ready" ]] || fail "the stalled connections were not opened within 10 s"
sleep 0.5
kill -0 "$FLOOD" 2>/dev/null || fail "the flood ended before the legitimate user started: $(cat "$E2E_WORK/flood.err")"

step "under attack: the legitimate user registers (within 2 s)"
t0="$(now)"
sipc register --aor "$legit" --contact "<sip:legit@127.0.0.1:5097>" --expires 600 --expect 200
t1="$(now)"
e2e_log "REGISTER took $(elapsed "$t0" "$t1") s"
le "$(elapsed "$t0" "$t1")" 2 || fail "REGISTER took $(elapsed "$t0" "$t1") s under attack"

step "under attack: it publishes, and the watcher gets the NOTIFY within 2 s"
n_before="$(notify_count w1)"
pidf "$legit" open legit-dev "under-attack" >"$E2E_WORK/legit.xml"
t0="$(now)"
pc publish --aor "$legit" --body-file "$E2E_WORK/legit.xml" --expires 600 --expect 200
line="$(wait_notify w1 'under-attack' 4)"
tn="$(json_field "$line" t)"
e2e_log "PUBLISH to NOTIFY: $(elapsed "$t0" "$tn") s"
le "$(elapsed "$t0" "$tn")" 2 || fail "the NOTIFY came $(elapsed "$t0" "$tn") s after the PUBLISH started"

step "under attack: a new watcher subscribes and gets the current state within 2 s"
t0="$(now)"
watch_start w2 --aor "sip:$(e2e_uniq watcher2)@$E2E_DOMAIN" --resource "$legit" --duration 30
line="$(wait_notify w2 'under-attack' 4)"
tn="$(json_field "$line" t)"
le "$(elapsed "$t0" "$tn")" 2 || fail "the new watcher's first NOTIFY came after $(elapsed "$t0" "$tn") s"
kill -0 "$FLOOD" 2>/dev/null || e2e_log "note: the flood had already ended"

step "the flood was rate limited (dropped silently) and the server survived it"
wait "$FLOOD" || fail "flood.py failed: $(cat "$E2E_WORK/flood.err")"
FLOOD=
flood="$(cat "$E2E_WORK/flood.json")"
e2e_log "flood: $flood"
kill -0 "$SERVER_PID" 2>/dev/null || fail "simpled is gone"
answered="$("$PYTHON" -c 'import json,sys; print(sum(json.loads(sys.argv[1])["responses"].values()))' "$flood")"
secs="$(jget "$flood" seconds)"
# bucket: 2,000/s with a burst of 4,000 (plus slack for timing)
limit="$("$PYTHON" -c 'import sys; print(int(4000 + 2000 * float(sys.argv[1]) * 1.2 + 500))' "$secs")"
((answered <= limit)) || fail "the flood source got $answered answers in $secs s (rate limit allows ~$limit)"
((answered >= 1000)) || fail "the flood source got only $answered answers: the limiter is far below 2000/s"
assert_match 'ratelimit.*dropped' "$(cat "$SERVER_LOG")" "a log line about the drops"

step "the stalled connections: per-IP cap, total cap, header timeout"
wait "$STALL1" || fail "stall.py (127.0.0.2) failed: $(cat "$E2E_WORK/stall1.err")"
wait "$STALL2" || fail "stall.py (127.0.0.3-12) failed: $(cat "$E2E_WORK/stall2.err")"
STALL1= STALL2=
s1="$(cat "$E2E_WORK/stall1.json")"
s2="$(cat "$E2E_WORK/stall2.json")"
e2e_log "127.0.0.2: $s1"
e2e_log "127.0.0.3-12: $s2"
held1="$(jget "$s1" held)"
held2="$(jget "$s2" held)"
# The exact per-IP and total caps are asserted in tests/unit/test_tp.c,
# where nothing else loads the loop.  Here, under a UDP flood (and ASan in
# CI), connections can wait in the kernel's accept backlog for seconds:
# the client then sees them as open until the server gets to refuse them,
# so the counts are reported, and what is asserted is what the issue asks:
# the legitimate user was served meanwhile (above), no stalled connection
# outlives the header timeout, and nothing is left open.
e2e_log "held: 127.0.0.2 $held1 (per-IP cap $PER_IP), 127.0.0.3-12 $held2 (total cap $TOTAL)"
(($(jget "$s1" refused) + $(jget "$s1" connect_failed) > 0)) ||
	fail "127.0.0.2: none of its 500 stalled connections was refused: $s1"
for s in "$s1" "$s2"; do
	assert_eq 0 "$(jget "$s" still_open)" "stalled connections still open ${observe}s after their partial request"
	le "$(jget "$s" held_max_close)" "$((HDR_TIMEOUT + 3))" ||
		fail "a stalled connection was closed only after $(jget "$s" held_max_close) s (header timeout $HDR_TIMEOUT s)"
done

step "after the attack: TCP and UDP are served again"
sipc --tcp request --method OPTIONS --ruri "sip:$E2E_DOMAIN" --expect 200
sipc request --method OPTIONS --ruri "sip:$E2E_DOMAIN" --expect 200
"$PYTHON" - "$SERVER_PORT" <<'PY' || fail "127.0.0.2 cannot use TCP after its stalled connections were closed"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3, source_address=("127.0.0.2", 0))
s.sendall(b"OPTIONS sip:example.test SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.2;branch=z9hG4bKafter1;rport\r\n"
          b"Max-Forwards: 70\r\nFrom: <sip:a@example.test>;tag=1\r\nTo: <sip:example.test>\r\n"
          b"Call-ID: after-flood-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
s.settimeout(3)
d = s.recv(65536)
sys.exit(0 if d.startswith(b"SIP/2.0 200 ") else 1)
PY

watch_stop w1
watch_stop w2
server_stop
