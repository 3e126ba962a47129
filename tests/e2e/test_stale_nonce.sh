#!/usr/bin/env bash
# A nonce older than nonce-ttl is stale (RFC 7616 §3.3): an answer to it,
# even with the right password, gets a fresh 401 with stale=true, and the
# answer to the fresh challenge succeeds.
source "$(dirname "$0")/lib.sh"

server_start --auth on --nonce-ttl 2

u="$(e2e_uniq stale)"
user_add "$u" 'stale-pw'
for algo in SHA-256 MD5; do
	step "$algo: challenge, wait 3 s, answer: 401 stale=true; answer the new one: 200"
	sipc stale --aor "sip:$u@$E2E_DOMAIN" --contact "<sip:ua-$algo@127.0.0.1:5099>" --expires 600 \
		--password 'stale-pw' --algorithm "$algo" --wait 3 --expect 200
done
assert_eq 2 "$(db_query "SELECT count(*) FROM location WHERE aor = 'sip:$u@$E2E_DOMAIN'")" "bindings"

step "a fresh nonce answered at once still works"
sipc register --aor "sip:$u@$E2E_DOMAIN" --contact "<sip:ua-fresh@127.0.0.1:5099>" --expires 600 \
	--password 'stale-pw' --expect 200 --expect-contacts 3

server_stop
