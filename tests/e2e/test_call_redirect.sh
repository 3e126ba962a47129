#!/usr/bin/env bash
# Redirect mode (--redirect on, RFC 3261 §8.3): an INVITE to a registered
# user is answered 302 with every contact and its q-value; not proxied.
source "$(dirname "$0")/lib.sh"
source "$E2E_DIR/scenarios/call_lib.sh"

# A simpled without the option cannot start with it: skipped, like a
# server without the proxy (see calls.cmake).
"$SIMPLED_BIN" --print-config 2>/dev/null | grep -Eq '^#?redirect = ' ||
	{ e2e_log "SKIP: this simpled has no redirect option"; exit 77; }
server_start --auth off --redirect on
calls_require_proxy

alice="$(e2e_uniq alice)"
bob="$(e2e_uniq bob)"
user_add "$alice" secret
user_add "$bob" secret
p1="$(free_port)"
p2="$(free_port)"
"$PYTHON" "$E2E_DIR/scenarios/call_register.py" "127.0.0.1:$SERVER_PORT" "$p1" \
	"sip:$bob@$E2E_DOMAIN" "sip:$bob@127.0.0.1:$p1" 600 0.8 || fail "register 1"
"$PYTHON" "$E2E_DIR/scenarios/call_register.py" "127.0.0.1:$SERVER_PORT" "$p2" \
	"sip:$bob@$E2E_DOMAIN" "sip:$bob@127.0.0.1:$p2" 600 0.5 || fail "register 2"

step "INVITE -> 302 with both contacts"
sipc request --method INVITE --aor "sip:$alice@$E2E_DOMAIN" --ruri "sip:$bob@$E2E_DOMAIN" --expect 302 \
	--expect-header "^Contact: <sip:$bob@127\.0\.0\.1:$p1>;q=0\.8" \
	--expect-header "^Contact: <sip:$bob@127\.0\.0\.1:$p2>;q=0\.5"
step "not registered: still 480, unknown: 404"
sipc request --method INVITE --aor "sip:$bob@$E2E_DOMAIN" --ruri "sip:$alice@$E2E_DOMAIN" --expect 480
sipc request --method INVITE --aor "sip:$bob@$E2E_DOMAIN" --ruri "sip:nobody$(e2e_uniq x)@$E2E_DOMAIN" --expect 404

server_stop
