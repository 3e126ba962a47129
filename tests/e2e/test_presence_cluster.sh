#!/usr/bin/env bash
# Two nodes sharing one PostgreSQL (docs: "More than one machine"): a
# publication committed on one node is announced (pg_notify on
# 'simpled_presence'), the other node re-reads it and notifies its own
# watchers; the entity-tag works on either node; each node serves only
# the subscriptions it created.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/scenarios/presence_lib.sh"

server_start --auth off --min-expires 2 --node-name nodea

step "a second node on the same database"
port_b="$(free_port)"
log_b="$E2E_WORK/simpled-b.log"
"$SIMPLED_BIN" --listen "udp:127.0.0.1:$port_b" --listen "tcp:127.0.0.1:$port_b" --db "$E2E_DB" \
	--domain "$E2E_DOMAIN" --log-level debug --auth off --min-expires 2 --node-name nodeb --xcap-listen off \
	</dev/null >"$log_b" 2>&1 &
pid_b=$!
at_exit "kill -TERM $pid_b 2>/dev/null; sleep 0.5"
for i in $(seq 100); do grep -q "server: ready" "$log_b" && break; sleep 0.1; done
grep -q "server: ready" "$log_b" || fail "node b not ready: $(tail -5 "$log_b")"

u="$(e2e_uniq cl)"
alice="sip:alice$u@$E2E_DOMAIN"
bob="sip:bob$u@$E2E_DOMAIN"

step "bob watches alice on node b; alice publishes on node a"
SERVER_PORT="$port_b" watch_start w --aor "$bob" --resource "$alice" --expires 600 --duration 60
wait_notify w 'basic>closed' >/dev/null
pidf "$alice" open d1 "from node a" >"$E2E_WORK/a.xml"
pc publish --aor "$alice" --body-file "$E2E_WORK/a.xml" --expires 600 --expect 200 --etag-out "$E2E_WORK/etag"
wait_notify w 'from node a' >/dev/null

step "alice modifies it on node b with the entity-tag node a gave"
pidf "$alice" closed d1 "from node b" >"$E2E_WORK/b.xml"
SERVER_PORT="$port_b" pc publish --aor "$alice" --etag "$(cat "$E2E_WORK/etag")" --body-file "$E2E_WORK/b.xml" \
	--expires 600 --expect 200 --etag-out "$E2E_WORK/etag"
wait_notify w 'from node b' >/dev/null
assert_eq 1 "$(db_query "SELECT count(*) FROM presence_publications WHERE resource = '$alice'")" "rows"

step "and removes it on node a again"
n="$(notify_count w)"
pc publish --aor "$alice" --etag "$(cat "$E2E_WORK/etag")" --expires 0 --expect 200
wait_notify w '.' 8 $((n + 1)) >/dev/null
assert_match 'basic>closed' "$(last_notify w)" "document after the removal"
assert_no_match 'from node' "$(last_notify w)" "document after the removal"

step "the subscription belongs to node b"
assert_eq nodeb "$(db_query "SELECT node FROM presence_subscriptions WHERE watcher = '$bob'")" "node of the row"
watch_stop w
kill -TERM "$pid_b"
for i in $(seq 100); do kill -0 "$pid_b" 2>/dev/null || break; sleep 0.1; done
wait "$pid_b" || fail "node b exited with status $?"
server_stop
