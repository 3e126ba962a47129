#!/usr/bin/env bash
# REGISTER and OPTIONS over TCP (RFC 3261 §18.3 framing by Content-Length).
source "$(dirname "$0")/lib.sh"

server_start --auth off

step "register, refresh, fetch over TCP (sipp -t t1)"
u="$(e2e_uniq tcp)"
user_add "$u" secret
SIPP_USER="$u" SIPP_CPARAMS=";transport=tcp" sipp_run register -t t1
assert_eq 1 "$(db_query "SELECT count(*) FROM location WHERE aor = 'sip:$u@$E2E_DOMAIN'")" "bindings"
src="$(db_query "SELECT source FROM location WHERE aor = 'sip:$u@$E2E_DOMAIN'")"
assert_match '^tcp:' "$src" "the binding's source"

step "OPTIONS over TCP (sipp -t t1)"
sipp_run options -t t1

step "several requests on one TCP connection, and two contacts (sipp -t t1)"
u2="$(e2e_uniq tcp2)"
user_add "$u2" secret
SIPP_USER="$u2" sipp_run two_contacts -t t1

step "sipclient over TCP: register then fetch"
sipc --tcp register --aor "sip:$u2@$E2E_DOMAIN" --contact "<sip:py@127.0.0.1:5099;transport=tcp>" \
	--expires 600 --expect 200 --expect-contacts 4

server_stop
