#!/usr/bin/env bash
# Two acceptance items of issue 6 sipp 3.6.1 cannot do (call_agent.py):
# a callee registered over TCP gets its INVITE on that connection (it
# listens nowhere else), and an authenticated call: the caller's INVITE
# gets 407, the answer (Digest SHA-256) goes through, and the callee sees
# P-Asserted-Identity and Call-Info from the user directory; ACK and BYE
# follow the Record-Route, across UDP (caller) and TCP (callee).
source "$(dirname "$0")/lib.sh"
source "$E2E_DIR/scenarios/call_lib.sh"

server_start --auth on
calls_require_proxy

alice="$(e2e_uniq alice)"
bob="$(e2e_uniq bob)"
user_add "$alice" pw-alice
user_add "$bob" pw-bob
"$SIMPLECTL_BIN" --db "$E2E_DB" user set "$alice@$E2E_DOMAIN" --name "Alice Caller" \
	--photo "https://$E2E_DOMAIN/$alice.jpg" </dev/null || fail "simplectl user set"
sleep 0.5 # the directory change reaches the server
agent() { "$PYTHON" "$E2E_DIR/scenarios/call_agent.py" "$@"; }

step "bob registers over TCP (401 answered) and waits for a call"
ready="$E2E_WORK/bob.ready"
agent callee --server "127.0.0.1:$SERVER_PORT" --transport tcp --aor "sip:$bob@$E2E_DOMAIN" \
	--password pw-bob --ready "$ready" \
	--want "^P-Asserted-Identity: \"Alice Caller\" <sip:$alice@$E2E_DOMAIN>" \
	--want "^Call-Info: <https://$E2E_DOMAIN/$alice.jpg>;purpose=icon" \
	--want '^Record-Route: .*transport=tcp' \
	--want '^Via: SIP/2.0/TCP ' \
	2>"$E2E_WORK/callee.err" &
callee_pid=$!
UAS_PIDS+=("$callee_pid")
for ((i = 0; i < 50; i++)); do [[ -e "$ready" ]] && break; sleep 0.1; done
[[ -e "$ready" ]] || { cat "$E2E_WORK/callee.err" >&2; fail "bob did not register over TCP"; }

step "alice calls bob: 407, answered; bob sees her name and photo; ACK and BYE routed"
agent caller --server "127.0.0.1:$SERVER_PORT" --aor "sip:$alice@$E2E_DOMAIN" \
	--callee "sip:$bob@$E2E_DOMAIN" --password pw-alice 2>"$E2E_WORK/caller.err" ||
	{ cat "$E2E_WORK/caller.err" >&2; fail "alice's call failed"; }
grep -q "^<<<" "$E2E_WORK/caller.err" && fail "caller logged an exchange although it succeeded"
rc=0
wait "$callee_pid" || rc=$?
[[ $rc -eq 0 ]] || { cat "$E2E_WORK/callee.err" >&2; fail "bob's side of the call failed ($rc)"; }

step "without credentials the same INVITE gets 407 and never reaches bob"
sipc request --method INVITE --aor "sip:$alice@$E2E_DOMAIN" --ruri "sip:$bob@$E2E_DOMAIN" --expect 407 \
	--expect-header '^Proxy-Authenticate: Digest .*algorithm=SHA-256'
server_stop
