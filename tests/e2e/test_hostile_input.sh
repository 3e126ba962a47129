#!/usr/bin/env bash
# Hostile input, end to end, over UDP and TCP: the data-driven suite of
# tests/e2e/hostile/cases/*.sip (RFC 4475 torture messages, RFC 5118 IPv6
# references, bad Content-Length, NUL octets, 10,000 headers, a 1 MB
# header, absurd Expires and CSeq values, SQL and format-string text,
# hostile XML in PUBLISH) run by tests/e2e/hostile/run_cases.py.  Every
# case has its expected status (or 'drop'); after every case the server
# must still answer OPTIONS; no byte received may contain the victim's
# data or /etc/passwd; afterwards the tables and the victim's data are
# intact and the server exits cleanly.
#
# HOSTILE_ONLY=GLOB (repeatable with spaces) runs a subset of the cases.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/scenarios/presence_lib.sh"

HOSTILE_DIR="$E2E_DIR/hostile"

# --max-message-size 60000: a UDP datagram can carry 65,507 bytes, so
# with the default (64 KiB) no datagram could ever be oversized.
server_start --auth off --max-requests-per-ip 0 --max-message-size 60000 \
	--max-publications-per-presentity 1000 --min-expires 60 --max-expires 3600

user="$(e2e_uniq hostile)"
victim="$(e2e_uniq victim)"
marker="VSECRET$(e2e_uniq m)"
user_add "$user" secret
user_add "$victim" secret

step "the victim registers and publishes (its data carries the marker $marker)"
sipc register --aor "sip:$victim@$E2E_DOMAIN" --contact "<sip:$marker@127.0.0.1:5999>" --expires 3600 --expect 200
pidf "sip:$victim@$E2E_DOMAIN" open vtuple "$marker note" >"$E2E_WORK/victim.xml"
pc publish --aor "sip:$victim@$E2E_DOMAIN" --body-file "$E2E_WORK/victim.xml" --expires 3600 --expect 200
# Nobody of our domain may watch the victim: a leak of its state is then
# always a bug, never a legitimate NOTIFY.
rule_set "sip:$victim@$E2E_DOMAIN" "$E2E_DOMAIN" block

tables_before="$(db_query "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public'")"
users_before="$(db_query "SELECT count(*) FROM users")"
victim_pub="$(db_query "SELECT md5(body) FROM presence_publications WHERE resource = 'sip:$victim@$E2E_DOMAIN'")"
[[ -n "$victim_pub" ]] || fail "the victim's publication is not stored"

step "the cases ($(ls "$HOSTILE_DIR"/cases/*.sip | wc -l) files, UDP and TCP)"
only=()
for g in ${HOSTILE_ONLY:-}; do only+=(--only "$g"); done
rc=0
"$PYTHON" "$HOSTILE_DIR/run_cases.py" --server "127.0.0.1:$SERVER_PORT" --cases "$HOSTILE_DIR/cases" \
	--domain "$E2E_DOMAIN" --user "$user" --victim "$victim" --pid "$SERVER_PID" --db "$E2E_DB" \
	--forbid 'root:x:0:0' --forbid "$marker" --forbid 'daemon:x:1:1' \
	--out "$E2E_WORK/results.jsonl" "${only[@]}" </dev/null >"$E2E_WORK/summary.json" 2>"$E2E_WORK/cases.log" || rc=$?
cat "$E2E_WORK/cases.log" >&2
kill -0 "$SERVER_PID" 2>/dev/null || fail "simpled is gone after the cases"
[[ $rc -eq 0 ]] || fail "hostile cases failed (details: $E2E_WORK/results.jsonl)"

step "the database is intact"
assert_eq "$tables_before" "$(db_query "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public'")" "tables"
assert_eq "$users_before" "$(db_query "SELECT count(*) FROM users")" "users rows"
assert_eq "$victim_pub" "$(db_query "SELECT md5(body) FROM presence_publications WHERE resource = 'sip:$victim@$E2E_DOMAIN'")" \
	"the victim's publication"
assert_eq "sip:$marker@127.0.0.1:5999" "$(db_query "SELECT contact FROM location WHERE aor = 'sip:$victim@$E2E_DOMAIN'")" \
	"the victim's binding"
assert_eq 0 "$(db_query "SELECT count(*) FROM presence_publications WHERE resource <> 'sip:$victim@$E2E_DOMAIN' AND position('$marker' in convert_from(body, 'UTF8')) > 0")" \
	"publications carrying the victim's marker"

step "no response ever carried /etc/passwd or the victim's data"
assert_no_match "root:x:0:0|$marker" "$(cat "$E2E_WORK/results.jsonl")" "everything received"

step "still serving: OPTIONS over UDP and TCP, a REGISTER"
sipc request --method OPTIONS --ruri "sip:$E2E_DOMAIN" --expect 200
sipc --tcp request --method OPTIONS --ruri "sip:$E2E_DOMAIN" --expect 200
sipc register --aor "sip:$user@$E2E_DOMAIN" --contact "<sip:$user@127.0.0.1:5998>" --expires 60 --expect 200

server_stop
