#!/usr/bin/env bash
# In-dialog requests through the proxy: re-INVITE (200, ACK) and UPDATE
# (RFC 3311) routed by the Route set alone, then BYE; and a BYE sent
# after the server restarted mid-call still reaches the callee (no call
# state is needed: loose routing, RFC 3261 §16.12).
source "$(dirname "$0")/lib.sh"
source "$E2E_DIR/scenarios/call_lib.sh"

server_start --auth off
calls_require_proxy

alice="$(e2e_uniq alice)"
bob="$(e2e_uniq bob)"
user_add "$alice" secret
user_add "$bob" secret

step "re-INVITE and UPDATE inside the dialog, then BYE"
uas_start b1 call_uas_dialog "$bob"
uac_run call_uac_dialog "$alice" "$bob" -key bye_pause 100
uas_wait b1
assert_match "^UPDATE sip:127\.0\.0\.1:" "$(cat "$E2E_WORK/uas-b1.messages.log")" "UPDATE to the callee's Contact"

step "BYE after a server restart mid-call"
uas_start b2 call_uas_dialog "$bob"
SIPP_USER="$alice" "$SIPP" -sf "$E2E_DIR/scenarios/call_uac_dialog.xml" -i 127.0.0.1 -p "$(free_port)" -m 1 \
	-timeout 40s -timeout_error -nostdin -s "$alice" -key sd_domain "$E2E_DOMAIN" -key callee "$bob" \
	-key bye_pause 4000 -trace_err -error_file "$E2E_WORK/restart-uac.errors.log" \
	-trace_msg -message_file "$E2E_WORK/restart-uac.messages.log" \
	"127.0.0.1:$SERVER_PORT" </dev/null >"$E2E_WORK/restart-uac.stdout" 2>&1 &
uac_pid=$!
UAS_PIDS+=("$uac_pid")
# The UPDATE's 200 means the call is up and idle until the BYE.
for ((i = 0; i < 50; i++)); do
	grep -q "UPDATE" "$E2E_WORK/uas-b2.messages.log" 2>/dev/null && break
	sleep 0.1
done
sleep 0.3
server_restart
rc=0
wait "$uac_pid" || rc=$?
[[ $rc -eq 0 ]] || { tail -n 60 "$E2E_WORK/restart-uac.messages.log" >&2; fail "caller (restart) exited with $rc"; }
uas_wait b2

server_stop
