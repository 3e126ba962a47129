#!/usr/bin/env bash
# 423 Interval Too Brief with Min-Expires (RFC 3261 §10.3 step 7); an
# Expires of 0 (removal) is never too brief.
source "$(dirname "$0")/lib.sh"

server_start --auth off --min-expires 60 --max-expires 3600 --default-expires 3600

step "Expires: 30 and ;expires=30 get 423 Min-Expires: 60, 60 is accepted (sipp)"
u="$(e2e_uniq minexp)"
user_add "$u" secret
SIPP_USER="$u" sipp_run min_expires

step "the 423 names the minimum (sipclient)"
sipc register --aor "sip:$u@$E2E_DOMAIN" --contact "<sip:ua2@127.0.0.1:5099>" --expires 59 \
	--expect 423 --expect-header '^Min-Expires:[[:space:]]*60[[:space:]]*$'
assert_eq 1 "$(db_query "SELECT count(*) FROM location WHERE aor = 'sip:$u@$E2E_DOMAIN'")" \
	"bindings after the 423s (only the accepted one)"

step "Expires: 0 is a removal, not too brief"
sipc register --aor "sip:$u@$E2E_DOMAIN" --contact "<sip:ua1@127.0.0.1:5099>" --expires 0 --expect 200
sipc register --aor "sip:$u@$E2E_DOMAIN" --contact '*' --expires 0 --expect 200 --expect-contacts 0
assert_eq 0 "$(db_query "SELECT count(*) FROM location WHERE aor = 'sip:$u@$E2E_DOMAIN'")" "bindings after removal"

server_stop
