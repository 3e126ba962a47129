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

step "start a private cluster"
private_db_start

server_start --auth off --max-requests-per-ip 0
tag="$(e2e_uniq out)"
rcpt="${tag}rcpt"
user_add "$rcpt" secret
rm -f "$E2E_WORK/down" "$E2E_WORK/up"

step "load: 64 requests in flight; the database stops after 3 s, for 10 s; load goes on 10 s more"
"$PYTHON" "$E2E_DIR/scenarios/write_load.py" --port "$SERVER_PORT" --tag "$tag" --rcpt "$rcpt" \
	--domain "$E2E_DOMAIN" --acked "$E2E_WORK/acked.txt" --seconds 60 --phase-dir "$E2E_WORK" \
	--stats "$E2E_WORK/stats.txt" &
load=$!
sleep 3
devdb stop "$PG_DIR" 2>>"$E2E_WORK/dev-db.log" || fail "dev-db.sh stop failed"
touch "$E2E_WORK/down"
e2e_log "PostgreSQL stopped"
for ((i = 0; i < 10; i++)); do
	sleep 1
	kill -0 "$SERVER_PID" 2>/dev/null || fail "simpled died while the database was down"
done
devdb start "$PG_DIR" "$PG_PORT" >/dev/null 2>>"$E2E_WORK/dev-db.log" || fail "dev-db.sh start (again) failed"
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
missing=$(acked_missing "$E2E_WORK/acked.txt") || fail "the check query failed"
total=$(wc -l <"$E2E_WORK/acked.txt")
e2e_log "acknowledged: $total (during the outage: $(grep -c ' down$' "$E2E_WORK/acked.txt" || true)); missing: $missing"
assert_eq 0 "$missing" "acknowledged writes missing"

step "OPTIONS and REGISTER still work"
sipc request --method OPTIONS --ruri "sip:$E2E_DOMAIN" --expect 200
sipc register --aor "sip:${tag}late@$E2E_DOMAIN" --contact "<sip:late@127.0.0.1:5099>" --expires 600 --expect 200
server_stop
