#!/usr/bin/env bash
# Restart loses nothing (docs: "State and storage"): bindings registered
# before a restart are in the database and are served after it, by a
# fetch and in the 200 of a refresh.
source "$(dirname "$0")/lib.sh"

server_start --auth off

u="$(e2e_uniq restart)"
user_add "$u" secret
aor="sip:$u@$E2E_DOMAIN"

step "register two bindings (sipp, then sipclient)"
SIPP_USER="$u" SIPP_EXPIRES=600 sipp_run register
sipc register --aor "$aor" --call-id "restart-$u@e2e" --cseq 10 --contact "<sip:py@127.0.0.1:5099>;q=0.7" \
	--expires 900 --expect 200 --expect-contacts 2
before="$(db_query "SELECT contact || '|' || q || '|' || expires_at FROM location WHERE aor = '$aor' ORDER BY contact")"

step "restart simpled"
server_restart

step "the rows are still there, unchanged"
assert_eq "$before" "$(db_query "SELECT contact || '|' || q || '|' || expires_at FROM location WHERE aor = '$aor' ORDER BY contact")" \
	"bindings after the restart"

step "a fetch lists both bindings"
sipc register --aor "$aor" --expect 200 --expect-contacts 2 \
	--expect-header 'sip:ua1@' --expect-header 'sip:py@'

step "a refresh (same Call-ID, higher CSeq) lists both"
sipc register --aor "$aor" --call-id "restart-$u@e2e" --cseq 11 --contact "<sip:py@127.0.0.1:5099>;q=0.7" \
	--expires 900 --expect 200 --expect-contacts 2

step "a refresh with an old CSeq of the same Call-ID fails (RFC 3261 §10.3 step 7; no code is given: 400 or 500)"
sipc register --aor "$aor" --call-id "restart-$u@e2e" --cseq 5 --contact "<sip:py@127.0.0.1:5099>" \
	--expires 900 --expect 400,500

step "restart again, then remove everything"
server_restart
sipc register --aor "$aor" --contact '*' --expires 0 --expect 200 --expect-contacts 0
assert_eq 0 "$(db_query "SELECT count(*) FROM location WHERE aor = '$aor'")" "bindings after the wildcard"

server_stop
