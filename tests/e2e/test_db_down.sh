#!/usr/bin/env bash
# The database goes away and comes back (docs: "Limits and errors"): while
# it is down a REGISTER gets 503 with Retry-After (never a 2xx that was not
# committed, never silence), OPTIONS is still answered, and once it is back
# REGISTER succeeds again without restarting simpled.
#
# This test runs its own PostgreSQL cluster (scripts/dev-db.sh) so that
# stopping it disturbs no other test.
source "$(dirname "$0")/lib.sh"

[[ -f "$SIMPLED_DEV_DB" ]] || fail "no $SIMPLED_DEV_DB"
pg_dir="$E2E_WORK/pg"
pg_port="$(free_port)"
# A unix socket path is at most 107 bytes: fall back to /tmp when deep.
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
[[ -n "$conninfo" ]] || fail "dev-db.sh start printed no conninfo"
SERVER_DB="$conninfo"
E2E_DB="$conninfo"

server_start --auth off
u="$(e2e_uniq dbdown)"
user_add "$u" secret
aor="sip:$u@$E2E_DOMAIN"

step "with the database up: 200"
sipc register --aor "$aor" --contact "<sip:before@127.0.0.1:5099>" --expires 600 --expect 200 --expect-contacts 1

step "stop the database"
devdb stop "$pg_dir" 2>>"$E2E_WORK/dev-db.log" || fail "dev-db.sh stop failed"

step "REGISTER while the database is down: 503 with Retry-After"
for i in 1 2; do
	sipc register --aor "$aor" --contact "<sip:during$i@127.0.0.1:5099>" --expires 600 --timeout 15 \
		--expect 503 --expect-header '^Retry-After:[[:space:]]*[0-9]+'
done

step "a fetch meanwhile (200 from memory, or 503) lists no refused binding"
sipc register --aor "$aor" --timeout 15 --expect 200,503 --reject-header 'sip:during'

step "OPTIONS is still answered"
sipc request --method OPTIONS --ruri "sip:$E2E_DOMAIN" --expect 200

step "start the database again: REGISTER succeeds within 30 s"
devdb start "$pg_dir" "$pg_port" >/dev/null 2>>"$E2E_WORK/dev-db.log" || fail "dev-db.sh start (again) failed"
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

step "the bindings: before and after, none of the refused ones"
rows="$(db_query "SELECT split_part(contact, '@', 1) FROM location WHERE aor = '$aor' ORDER BY contact")"
assert_eq "sip:after sip:before" "$(echo $rows)" "bindings"
sipc register --aor "$aor" --expect 200 --expect-contacts 2

server_stop
