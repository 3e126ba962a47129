#!/usr/bin/env bash
# The database goes away and comes back (docs: "Limits and errors"): while
# it is down a REGISTER gets 503 with Retry-After (never a 2xx that was not
# committed, never silence), OPTIONS is still answered, and once it is back
# REGISTER succeeds again without restarting simpled.
#
# This test runs its own PostgreSQL cluster (scripts/dev-db.sh) so that
# stopping it disturbs no other test.
source "$(dirname "$0")/lib.sh"

step "start a private cluster"
private_db_start

server_start --auth off
u="$(e2e_uniq dbdown)"
user_add "$u" secret
aor="sip:$u@$E2E_DOMAIN"

step "with the database up: 200"
sipc register --aor "$aor" --contact "<sip:before@127.0.0.1:5099>" --expires 600 --expect 200 --expect-contacts 1

step "stop the database"
devdb stop "$PG_DIR" 2>>"$E2E_WORK/dev-db.log" || fail "dev-db.sh stop failed"

step "REGISTER while the database is down: 503 with Retry-After"
for i in 1 2; do
	sipc register --aor "$aor" --contact "<sip:during$i@127.0.0.1:5099>" --expires 600 --timeout 15 \
		--expect 503 --expect-header '^Retry-After: *[0-9]+'
done

step "a fetch meanwhile (200 from memory, or 503) lists no refused binding"
sipc register --aor "$aor" --timeout 15 --expect 200,503 --reject-header 'sip:during'

step "an XCAP write while the database is down: 503 with Retry-After, nothing stored"
xdoc='<?xml version="1.0" encoding="UTF-8"?><resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"><list name="l"/></resource-lists>'
"$PYTHON" "$E2E_DIR/scenarios/xcap_client.py" --server "127.0.0.1:$XCAP_PORT" --method PUT \
	--path "/xcap-root/resource-lists/users/sip:$u@$E2E_DOMAIN/index" --ctype application/resource-lists+xml \
	--body "$xdoc" --expect 503 --expect-header '^Retry-After: *[0-9]+' </dev/null >/dev/null ||
	fail "XCAP PUT while the database is down was not answered 503 with Retry-After"

step "OPTIONS is still answered"
sipc request --method OPTIONS --ruri "sip:$E2E_DOMAIN" --expect 200

step "start the database again: REGISTER succeeds within 30 s"
devdb start "$PG_DIR" "$PG_PORT" >/dev/null 2>>"$E2E_WORK/dev-db.log" || fail "dev-db.sh start (again) failed"
ok=0
for ((i = 0; i < 30; i++)); do
	if sipc_try register --aor "$aor" --contact "<sip:after@127.0.0.1:5099>" --expires 600 --timeout 5 \
		--expect 200 2>/dev/null; then
		ok=1
		break
	fi
	sleep 1
done
[[ $ok -eq 1 ]] || fail "REGISTER did not succeed within 30 s of the database coming back"
e2e_log "REGISTER succeeded again after $i retries"

step "the XCAP write succeeds now (201: it was not stored before)"
"$PYTHON" "$E2E_DIR/scenarios/xcap_client.py" --server "127.0.0.1:$XCAP_PORT" --method PUT \
	--path "/xcap-root/resource-lists/users/sip:$u@$E2E_DOMAIN/index" --ctype application/resource-lists+xml \
	--body "$xdoc" --expect 201 </dev/null >/dev/null || fail "XCAP PUT after the database came back"

step "the bindings: before and after, none of the refused ones"
rows="$(db_query "SELECT split_part(contact, '@', 1) FROM location WHERE aor = '$aor' ORDER BY contact")"
assert_eq "sip:after sip:before" "$(echo $rows)" "bindings"
sipc register --aor "$aor" --expect 200 --expect-contacts 2

server_stop
