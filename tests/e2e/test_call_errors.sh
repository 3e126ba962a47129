#!/usr/bin/env bash
# Calls that cannot be routed: unknown user 404, known but not registered
# 480, Max-Forwards 0 -> 483, to another domain 403, and with auth on an
# INVITE from a local user without credentials gets 407 (RFC 3261 §22.3).
source "$(dirname "$0")/lib.sh"
source "$E2E_DIR/scenarios/call_lib.sh"

server_start --auth off
calls_require_proxy

alice="$(e2e_uniq alice)"
bob="$(e2e_uniq bob)"
user_add "$alice" secret
user_add "$bob" secret

step "unknown user: 404"
sipc request --method INVITE --aor "sip:$alice@$E2E_DOMAIN" --ruri "sip:nobody$(e2e_uniq x)@$E2E_DOMAIN" --expect 404
step "known user, not registered: 480"
sipc request --method INVITE --aor "sip:$alice@$E2E_DOMAIN" --ruri "sip:$bob@$E2E_DOMAIN" --expect 480
step "Max-Forwards 0: 483"
sipc request --method INVITE --aor "sip:$alice@$E2E_DOMAIN" --ruri "sip:$bob@$E2E_DOMAIN" --max-forwards 0 --expect 483
step "another domain: 403 (no relaying)"
sipc request --method INVITE --aor "sip:$alice@$E2E_DOMAIN" --ruri "sip:someone@other.example" --expect 403
step "a Route set whose top is not us is not followed: 403 (no open relay)"
sipc request --method BYE --aor "sip:$alice@$E2E_DOMAIN" --ruri "sip:$bob@198.51.100.1" \
	--header "Route: <sip:198.51.100.2;lr>" --expect 403

server_stop
server_start --auth on
step "auth on: INVITE from a local user without credentials gets 407"
sipc request --method INVITE --aor "sip:$alice@$E2E_DOMAIN" --ruri "sip:$bob@$E2E_DOMAIN" --expect 407 \
	--expect-header '^Proxy-Authenticate:'
server_stop
