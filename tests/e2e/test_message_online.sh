#!/usr/bin/env bash
# MESSAGE (RFC 3428) to registered users: delivery to one contact, parallel
# forking to two, a TCP contact reached over its registration connection,
# isComposing (RFC 3994) relayed, and the refusals 413, 404, 403, 480.
source "$(dirname "$0")/lib.sh"
MUA="$E2E_DIR/scenarios/message_ua.py"
mua() { "$PYTHON" "$MUA" --server "127.0.0.1:$SERVER_PORT" "$@" </dev/null; }
UA_PIDS=()
# ua_start NAME [--tcp] UA-OPTION...: a receiving UA in the background,
# registered when this returns.
ua_start() {
	local name="$1" tr=udp i
	shift
	if [[ "${1:-}" == "--tcp" ]]; then tr=tcp; shift; fi
	rm -f "$E2E_WORK/$name.ready"
	mua --transport "$tr" ua --ready "$E2E_WORK/$name.ready" --out "$E2E_WORK/$name.jsonl" "$@" \
		2>"$E2E_WORK/$name.err" &
	UA_PIDS+=($!)
	eval "${name}_pid=$!"
	for ((i = 0; i < 50; i++)); do
		[[ -f "$E2E_WORK/$name.ready" ]] && return 0
		sleep 0.1
	done
	fail "UA $name did not register"
}
ua_wait() { # NAME
	local pid_var="${1}_pid"
	wait "${!pid_var}" || fail "UA $1 failed: $(cat "$E2E_WORK/$1.err")"
}
at_exit 'for p in "${UA_PIDS[@]}"; do kill "$p" 2>/dev/null; done'

server_start --auth off

alice="$(e2e_uniq alice)"
bob="$(e2e_uniq bob)"
user_add "$alice" secret
user_add "$bob" secret

step "online delivery to one UDP contact: 200, body, From, Call-ID kept"
ua_start b1 --aor "sip:$bob@$E2E_DOMAIN" --expect 1
out="$(mua send --from "sip:$alice@$E2E_DOMAIN" --to "sip:$bob@$E2E_DOMAIN" --body "hello bob" --expect 200)"
ua_wait b1
rec="$(head -n 1 "$E2E_WORK/b1.jsonl")"
assert_match '"body": "hello bob"' "$rec" "relayed body"
assert_match "\"from\": \"<sip:$alice@$E2E_DOMAIN>;tag=" "$rec" "relayed From"
assert_match '"via_count": 2' "$rec" "our Via on top of the sender's"
assert_match '"max_forwards": "69"' "$rec" "Max-Forwards decremented"
assert_match '@message-ua"' "$rec" "Call-ID kept (proxy forward)"

step "two contacts: both get it (parallel forking), the sender gets 200"
ua_start b2 --aor "sip:$bob@$E2E_DOMAIN" --expect 1
ua_start b3 --aor "sip:$bob@$E2E_DOMAIN" --expect 1
mua send --from "sip:$alice@$E2E_DOMAIN" --to "sip:$bob@$E2E_DOMAIN" --body "to both" --expect 200 >/dev/null
ua_wait b2
ua_wait b3
assert_match '"body": "to both"' "$(cat "$E2E_WORK/b2.jsonl")" "first contact"
assert_match '"body": "to both"' "$(cat "$E2E_WORK/b3.jsonl")" "second contact"

step "TCP contact: reached over the connection it registered on"
carol="$(e2e_uniq carol)"
user_add "$carol" secret
ua_start c1 --tcp --aor "sip:$carol@$E2E_DOMAIN" --expect 1
mua send --from "sip:$alice@$E2E_DOMAIN" --to "sip:$carol@$E2E_DOMAIN" --body "over tcp" --expect 200 >/dev/null
ua_wait c1
assert_match '"body": "over tcp"' "$(cat "$E2E_WORK/c1.jsonl")" "TCP delivery"

step "isComposing is relayed untouched"
dave="$(e2e_uniq dave)"
user_add "$dave" secret
ua_start d1 --aor "sip:$dave@$E2E_DOMAIN" --expect 1
xml='<?xml version="1.0" encoding="UTF-8"?><isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>active</state></isComposing>'
mua send --from "sip:$alice@$E2E_DOMAIN" --to "sip:$dave@$E2E_DOMAIN" --ctype application/im-iscomposing+xml \
	--body "$xml" --expect 200 >/dev/null
ua_wait d1
assert_match 'im-iscomposing\+xml' "$(cat "$E2E_WORK/d1.jsonl")" "isComposing content type"
assert_match '<state>active</state>' "$(cat "$E2E_WORK/d1.jsonl")" "isComposing body"

step "isComposing to an offline user: 480, never stored"
sleep 0.5
mua send --from "sip:$alice@$E2E_DOMAIN" --to "sip:$carol@$E2E_DOMAIN" --ctype application/im-iscomposing+xml \
	--body "$xml" --expect 480 >/dev/null
assert_eq 0 "$(db_query "SELECT count(*) FROM messages WHERE recipient = 'sip:$carol@$E2E_DOMAIN'")" "stored isComposing"

step "too large: 413"
mua --transport tcp send --from "sip:$alice@$E2E_DOMAIN" --to "sip:$bob@$E2E_DOMAIN" --size 70000 --expect 413 >/dev/null

step "unknown recipient: 404; other domain: 403"
mua send --from "sip:$alice@$E2E_DOMAIN" --to "sip:nobody-$(e2e_uniq x)@$E2E_DOMAIN" --expect 404 >/dev/null
mua send --from "sip:$alice@$E2E_DOMAIN" --to "sip:someone@other.example" --expect 403 >/dev/null

server_stop
