#!/usr/bin/env bash
# A retransmitted REGISTER (same branch, same bytes) is absorbed by the
# server transaction (RFC 3261 §17.2.2): it is answered with the very same
# response, once per copy that arrives after the answer, and it makes no
# second binding.
source "$(dirname "$0")/lib.sh"

server_start --auth off

u="$(e2e_uniq retrans)"
user_add "$u" secret

step "the same datagram twice: one identical final response each, one binding"
sipc retrans --aor "sip:$u@$E2E_DOMAIN" --contact "<sip:ua1@127.0.0.1:5099>" --expires 600 \
	--expect 200 --expect-contacts 1
assert_eq 1 "$(db_query "SELECT count(*) FROM location WHERE aor = 'sip:$u@$E2E_DOMAIN'")" "bindings"

step "a fetch lists one binding"
sipc register --aor "sip:$u@$E2E_DOMAIN" --expect 200 --expect-contacts 1

server_stop
