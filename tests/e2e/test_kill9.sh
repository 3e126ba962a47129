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
"$PYTHON" "$E2E_DIR/scenarios/write_load.py" --port "$SERVER_PORT" --tag "$tag" --rcpt "$rcpt" \
	--domain "$E2E_DOMAIN" --acked "$E2E_WORK/acked.txt" --seconds 8 &
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
missing=$(acked_missing "$E2E_WORK/acked.txt") || fail "the check query failed"
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
