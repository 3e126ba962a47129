#!/usr/bin/env bash
# Digest authentication of REGISTER (RFC 3261 §22, RFC 7616, RFC 8760):
# the 401 offers SHA-256 then MD5, both qop="auth", realm = the domain;
# answering either succeeds; a wrong password, an unknown user, or another
# user's credentials do not.
#
# sipp 3.6.1 cannot answer these challenges (its [authentication] takes
# the first challenge of the 401 and knows only MD5 and AKAv1-MD5), so the
# answers come from sipclient.py; sipp checks the challenge itself.
source "$(dirname "$0")/lib.sh"

server_start --auth on

u="$(e2e_uniq auth)"
other="$(e2e_uniq authother)"
user_add "$u" 's3cret-pw'
user_add "$other" 'other-pw'
aor="sip:$u@$E2E_DOMAIN"

step "REGISTER without credentials: 401 with SHA-256 and MD5 challenges (sipp)"
SIPP_USER="$u" sipp_run auth_challenge

step "the challenges: SHA-256 first, then MD5; qop=\"auth\"; realm; a nonce each"
sipc register --aor "$aor" --contact "<sip:ua1@127.0.0.1:5099>" --expires 600 --expect 401
challenges="$(printf '%s\n' "$SIPC_OUT" | tr -d '\r' | grep -iE '^WWW-Authenticate[[:space:]]*:')"
algos="$(grep -oiE 'algorithm[[:space:]]*=[[:space:]]*"?[A-Za-z0-9-]+' <<<"$challenges" |
	sed -E 's/.*=[[:space:]]*"?//' | tr 'a-z' 'A-Z' | xargs)"
assert_eq "SHA-256 MD5" "$algos" "algorithms of the challenges, in order"
assert_eq 2 "$(grep -ciE 'qop[[:space:]]*=[[:space:]]*"auth"' <<<"$challenges")" "challenges with qop=\"auth\""
assert_eq 2 "$(grep -ciE "realm[[:space:]]*=[[:space:]]*\"$E2E_DOMAIN\"" <<<"$challenges")" "challenges with realm=\"$E2E_DOMAIN\""
assert_eq 2 "$(grep -ciE 'nonce[[:space:]]*=[[:space:]]*"[^"]+"' <<<"$challenges")" "challenges with a nonce"
assert_eq 0 "$(db_query "SELECT count(*) FROM location WHERE aor = '$aor'")" "bindings before authenticating"

step "answering the SHA-256 challenge: 200"
sipc register --aor "$aor" --contact "<sip:sha@127.0.0.1:5099>" --expires 600 \
	--password 's3cret-pw' --algorithm SHA-256 --expect 200 --expect-contacts 1

step "answering the MD5 challenge: 200"
sipc register --aor "$aor" --contact "<sip:md5@127.0.0.1:5099>" --expires 600 \
	--password 's3cret-pw' --algorithm MD5 --expect 200 --expect-contacts 2

step "over TCP too (SHA-256)"
sipc --tcp register --aor "$aor" --contact "<sip:tcp@127.0.0.1:5099;transport=tcp>" --expires 600 \
	--password 's3cret-pw' --algorithm SHA-256 --expect 200 --expect-contacts 3

step "a wrong password: 401 or 403, no binding added"
for algo in SHA-256 MD5; do
	sipc register --aor "$aor" --contact "<sip:wrong@127.0.0.1:5099>" --expires 600 \
		--password 'not-the-password' --algorithm "$algo" --expect 401,403
done
assert_eq 3 "$(db_query "SELECT count(*) FROM location WHERE aor = '$aor'")" "bindings after wrong passwords"

step "an unknown user: 401, 403 or 404"
nobody="$(e2e_uniq nobody)"
sipc register --aor "sip:$nobody@$E2E_DOMAIN" --contact "<sip:x@127.0.0.1:5099>" --expires 600 \
	--password 'whatever' --expect 401,403,404
assert_eq 0 "$(db_query "SELECT count(*) FROM location WHERE aor = 'sip:$nobody@$E2E_DOMAIN'")" "bindings of an unknown user"

step "another user's valid credentials for this AOR: 403 (RFC 3261 §10.3 step 3)"
sipc register --aor "$aor" --user "$other" --password 'other-pw' --contact "<sip:intruder@127.0.0.1:5099>" \
	--expires 600 --expect 403
assert_eq 3 "$(db_query "SELECT count(*) FROM location WHERE aor = '$aor'")" "bindings after another user's attempt"

step "removing with credentials: Contact: * Expires: 0"
sipc register --aor "$aor" --contact '*' --expires 0 --password 's3cret-pw' --expect 200 --expect-contacts 0
assert_eq 0 "$(db_query "SELECT count(*) FROM location WHERE aor = '$aor'")" "bindings after the wildcard"

server_stop
