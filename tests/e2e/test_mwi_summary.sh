#!/usr/bin/env bash
# The message-summary package (RFC 3842): a user subscribes to their own
# mailbox and gets Messages-Waiting with counts.
#
#   bob (watcher)      simpled                alice / voice-mail / bob's UA
#     |-- SUBSCRIBE --->|                              |
#     |<-- 200, NOTIFY -|  Text-Message: 2/0 (stored while bob was offline)
#     |                 |<-- MESSAGE (bob offline) ----|  202
#     |<-- NOTIFY ------|  Text-Message: 3/0
#     |                 |<-- PUBLISH message-summary --|  200 (malformed: 400)
#     |<-- NOTIFY ------|  Voice-Message: 2/8 (0/2)
#     |                 |<-- REGISTER, 3 x MESSAGE 200-|  delivered
#     |<-- NOTIFY ------|  Text-Message: 0/0, still yes (voice-mail)
#     |                 |<-- PUBLISH (modify): no -----|
#     |<-- NOTIFY ------|  Messages-Waiting: no
#   carol -- SUBSCRIBE to bob's mailbox --> 403
source "$(dirname "$0")/lib.sh"
source "$E2E_DIR/scenarios/presence_lib.sh"
MUA="$E2E_DIR/scenarios/message_ua.py"
mua() { "$PYTHON" "$MUA" --server "127.0.0.1:$SERVER_PORT" "$@" </dev/null; }
UA_PID=
at_exit '[[ -n "$UA_PID" ]] && kill "$UA_PID" 2>/dev/null'
CT=application/simple-message-summary

server_start --auth off

alice="$(e2e_uniq alice)"
bob="$(e2e_uniq bob)"
carol="$(e2e_uniq carol)"
for u in "$alice" "$bob" "$carol"; do user_add "$u" secret; done
BOB="sip:$bob@$E2E_DOMAIN"

step "two messages stored for offline bob"
for i in 1 2; do
	mua send --from "sip:$alice@$E2E_DOMAIN" --to "$BOB" --body "stored $i" --expect 202 >/dev/null
done

step "bob subscribes to his mailbox: full state"
watch_start mwi --aor "$BOB" --resource "$BOB" --event message-summary --accept "$CT" --duration 60
assert_match '"subscribe": 200' "$(watch_result mwi)" "SUBSCRIBE answer"
n="$(wait_notify mwi 'Text-Message: 2/0')"
assert_match "\"ctype\": \"$CT\"" "$n" "NOTIFY Content-Type"
assert_match '"event": "message-summary' "$n" "NOTIFY Event"
assert_match 'Messages-Waiting: yes' "$n" "waiting after two stored"
assert_match "Message-Account: $BOB" "$n" "account"

step "a new stored message notifies"
mua send --from "sip:$alice@$E2E_DOMAIN" --to "$BOB" --body "stored 3" --expect 202 >/dev/null
wait_notify mwi 'Text-Message: 3/0' >/dev/null

step "voice-mail PUBLISH notifies; a malformed one is refused with 400"
pc publish --aor "$BOB" --event message-summary --ctype "$CT" --expires 600 \
	--body $'Messages-Waiting: yes\r\nMessage-Account: sip:vm@'"$E2E_DOMAIN"$'\r\nVoice-Message: 2/8 (0/2)\r\n' \
	--etag-out "$E2E_WORK/etag" --expect 200
n="$(wait_notify mwi 'Voice-Message: 2/8 \(0/2\)')"
assert_match 'Text-Message: 3/0' "$n" "chat count kept beside voice-mail"
pc publish --aor "$BOB" --event message-summary --ctype "$CT" \
	--body $'Messages-Waiting: perhaps\r\n' --expect 400
pc publish --aor "$BOB" --event message-summary --ctype "$CT" \
	--body $'Messages-Waiting: yes\r\nVoice-Message: 2/x\r\n' --expect 400
pc publish --aor "$BOB" --event message-summary --ctype text/plain --body hello --expect 415

step "bob registers and accepts the stored messages: count drops to 0"
mua ua --aor "$BOB" --expect 3 --out "$E2E_WORK/bob-ua.jsonl" 2>"$E2E_WORK/bob-ua.err" &
UA_PID=$!
wait "$UA_PID" || fail "bob's UA failed: $(cat "$E2E_WORK/bob-ua.err")"
UA_PID=
n="$(wait_notify mwi 'Text-Message: 0/0')"
assert_match 'Messages-Waiting: yes' "$n" "still waiting: new voice-mail"
assert_match 'Voice-Message: 2/8' "$n" "voice-mail kept"

step "voice-mail listened to (PUBLISH modify): Messages-Waiting: no"
pc publish --aor "$BOB" --event message-summary --ctype "$CT" --etag "$(cat "$E2E_WORK/etag")" \
	--body $'Messages-Waiting: no\r\nVoice-Message: 0/10\r\n' --expect 200
n="$(wait_notify mwi 'Messages-Waiting: no')"
assert_match 'Voice-Message: 0/10' "$n" "voice-mail counts replaced"
assert_no_match 'Voice-Message: 2/8' "$n" "the old publication is gone"

step "another user's mailbox: 403"
pc subscribe --aor "sip:$carol@$E2E_DOMAIN" --resource "$BOB" --event message-summary --accept "$CT" --expect 403
# An allow rule of the presence policy does not open a mailbox while the
# default policy is allow (rules_eval cannot tell them apart).
rule_set "$BOB" "sip:$carol@$E2E_DOMAIN" allow
sleep 0.3
pc subscribe --aor "sip:$carol@$E2E_DOMAIN" --resource "$BOB" --event message-summary --accept "$CT" --expect 403
rule_del "$BOB" "sip:$carol@$E2E_DOMAIN"

watch_stop mwi
server_stop
