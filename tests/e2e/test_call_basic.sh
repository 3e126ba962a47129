#!/usr/bin/env bash
# A basic call through the proxy (RFC 3261 §16): INVITE to a registered
# user, 180 and 200 relayed (our Via removed), Record-Route added, ACK and
# BYE routed by the Route set (loose routing, §16.12), SDP untouched,
# Max-Forwards decremented.
source "$(dirname "$0")/lib.sh"
source "$E2E_DIR/scenarios/call_lib.sh"

server_start --auth off
calls_require_proxy

alice="$(e2e_uniq alice)"
bob="$(e2e_uniq bob)"
user_add "$alice" secret
user_add "$bob" secret

step "alice calls bob: INVITE/180/200/ACK/BYE through the proxy"
uas_start b1 call_uas "$bob"
uac_run call_uac "$alice" "$bob"
uas_wait b1

step "the callee saw our Via above the caller's and the caller's SDP"
msgs="$(cat "$E2E_WORK/uas-b1.messages.log")"
assert_match "Via: SIP/2.0/UDP 127\.0\.0\.1:$SERVER_PORT;branch=z9hG4bK" "$msgs" "our Via"
assert_match "Record-Route: <sip:127\.0\.0\.1:$SERVER_PORT;lr>" "$msgs" "our Record-Route"
assert_match "^BYE sip:127\.0\.0\.1:" "$msgs" "BYE to the callee's Contact"

server_stop
