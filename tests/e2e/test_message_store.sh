#!/usr/bin/env bash
# Store and forward: offline recipient -> 202 (after commit) -> REGISTER ->
# delivered in order with the original Date and From; a 500 from the client
# keeps the message for a later attempt; a restart between store and
# delivery loses nothing; simplectl messages list|purge.
source "$(dirname "$0")/lib.sh"
MUA="$E2E_DIR/scenarios/message_ua.py"
mua() { "$PYTHON" "$MUA" --server "127.0.0.1:$SERVER_PORT" "$@" </dev/null; }
UA_PIDS=()
ua_start() { # NAME UA-OPTION... (no wait for registration)
	local name="$1"
	shift
	mua ua --out "$E2E_WORK/$name.jsonl" "$@" 2>"$E2E_WORK/$name.err" &
	UA_PIDS+=($!)
	eval "${name}_pid=$!"
}
ua_wait() {
	local pid_var="${1}_pid"
	wait "${!pid_var}" || fail "UA $1 failed: $(cat "$E2E_WORK/$1.err")"
}
at_exit 'for p in "${UA_PIDS[@]}"; do kill "$p" 2>/dev/null; done'
count_stored() { db_query "SELECT count(*) FROM messages WHERE recipient = 'sip:$1@$E2E_DOMAIN'"; }

server_start --auth off

alice="$(e2e_uniq alice)"
bob="$(e2e_uniq bob)"
user_add "$alice" secret
user_add "$bob" secret

step "offline: three messages stored, each answered 202 after commit"
t0="$(date -u +%s)"
for i in 1 2 3; do
	mua send --from "sip:$alice@$E2E_DOMAIN" --to "sip:$bob@$E2E_DOMAIN" --body "stored $i" --expect 202 >/dev/null
	# The 202 came after the commit: the row is visible now.
	assert_eq "$i" "$(count_stored "$bob")" "rows after 202 number $i"
done
sleep 2

step "simplectl messages list"
list="$("$SIMPLECTL_BIN" --db "$E2E_DB" messages list "$bob@$E2E_DOMAIN")"
assert_eq 3 "$(wc -l <<<"$list")" "listed messages"
assert_match "sip:$alice@$E2E_DOMAIN" "$list" "sender listed"

step "REGISTER: delivered in order, original Date and From"
ua_start b1 --aor "sip:$bob@$E2E_DOMAIN" --expect 3
ua_wait b1
bodies="$(sed -n 's/.*"body": "\([^"]*\)".*/\1/p' "$E2E_WORK/b1.jsonl" | paste -sd,)"
assert_eq "stored 1,stored 2,stored 3" "$bodies" "delivery order"
"$PYTHON" - "$E2E_WORK/b1.jsonl" "$t0" <<'PY' || fail "Date headers are not the original times"
import json, sys, email.utils
t0 = int(sys.argv[2])
for line in open(sys.argv[1]):
    r = json.loads(line)
    d = email.utils.parsedate_to_datetime(r["date"]).timestamp()
    assert t0 - 1 <= d <= t0 + 2, (r["date"], t0)  # sent then, delivered >= 2 s later
    assert r["from"].startswith("<sip:"), r["from"]
PY
assert_match "\"from\": \"<sip:$alice@$E2E_DOMAIN>;tag=" "$(head -n 1 "$E2E_WORK/b1.jsonl")" "original From"
sleep 0.5
assert_eq 0 "$(count_stored "$bob")" "rows after delivery"

step "client answers 500 first: kept, delivered on the next attempt"
carol="$(e2e_uniq carol)"
user_add "$carol" secret
mua send --from "sip:$alice@$E2E_DOMAIN" --to "sip:$carol@$E2E_DOMAIN" --body "retry me" --expect 202 >/dev/null
ua_start c1 --aor "sip:$carol@$E2E_DOMAIN" --answers 500,200 --expect 1 --reregister 0.5
ua_wait c1
assert_eq 2 "$(grep -c 'retry me' "$E2E_WORK/c1.jsonl")" "delivery attempts"
assert_match '"code": 500' "$(head -n 1 "$E2E_WORK/c1.jsonl")" "first attempt"
sleep 0.5
assert_eq 0 "$(count_stored "$carol")" "rows after the second attempt"

step "restart between store and delivery loses nothing"
dave="$(e2e_uniq dave)"
user_add "$dave" secret
mua send --from "sip:$alice@$E2E_DOMAIN" --to "sip:$dave@$E2E_DOMAIN" --body "survives" --expect 202 >/dev/null
server_restart
assert_eq 1 "$(count_stored "$dave")" "rows after restart"
ua_start d1 --aor "sip:$dave@$E2E_DOMAIN" --expect 1
ua_wait d1
assert_match '"body": "survives"' "$(cat "$E2E_WORK/d1.jsonl")" "delivered after restart"

step "simplectl messages purge"
erin="$(e2e_uniq erin)"
user_add "$erin" secret
mua send --from "sip:$alice@$E2E_DOMAIN" --to "sip:$erin@$E2E_DOMAIN" --body "purge me" --expect 202 >/dev/null
out="$("$SIMPLECTL_BIN" --db "$E2E_DB" messages purge "$erin@$E2E_DOMAIN")"
assert_match '^1 message' "$out" "purge output"
assert_eq 0 "$(count_stored "$erin")" "rows after purge"

step "a contact that never answers: the sender still gets 202 (fork timer)"
frank="$(e2e_uniq frank)"
user_add "$frank" secret
# A binding whose contact is a port nobody listens on.
sipc register --aor "sip:$frank@$E2E_DOMAIN" --contact "<sip:$frank@127.0.0.1:9>" --expires 600 --expect 200
mua send --from "sip:$alice@$E2E_DOMAIN" --to "sip:$frank@$E2E_DOMAIN" --body "to a dead contact" \
	--expect 202 --timeout 20 >/dev/null
assert_eq 1 "$(count_stored "$frank")" "stored after the contact failed"

server_stop
