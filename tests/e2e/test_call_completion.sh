#!/usr/bin/env bash
# Call completion on busy subscriber (RFC 6910, CCBS): bob is in a call
# with carol; alice's call finds him busy (486); alice subscribes to
# call-completion at bob and is queued; she suspends her request
# (PUBLISH cc-state: suspended), so the end of bob's call does not call
# her back; when she resumes (cc-state: queued) bob is free and she gets
# cc-state: ready with the cc-URI (m=BS); her CC call to it is recognised
# and her queue entry ends (terminated;reason=noresource).  CCNR: a call
# that rang unanswered is queued until bob's next activity (here: he
# registers), then ready with m=NR.
source "$(dirname "$0")/lib.sh"
source "$E2E_DIR/scenarios/call_lib.sh"
source "$E2E_DIR/scenarios/presence_lib.sh"

server_start --auth off
calls_require_proxy

alice="$(e2e_uniq alice)"
bob="$(e2e_uniq bob)"
carol="$(e2e_uniq carol)"
for u in "$alice" "$bob" "$carol"; do user_add "$u" secret; done
alice_aor="sip:$alice@$E2E_DOMAIN"
bob_aor="sip:$bob@$E2E_DOMAIN"
dave_aor="sip:$(e2e_uniq dave)@$E2E_DOMAIN"
CC_TYPE=application/call-completion

# A sipp callee's binding goes once it is not to take the next call
# (its dialog still routes: by Route set and Contact, not by binding).
uas_unregister() { # NAME USER
	local port_var="uas_${1}_port"
	"$PYTHON" "$E2E_DIR/scenarios/call_register.py" "127.0.0.1:$SERVER_PORT" "$(free_port)" \
		"sip:$2@$E2E_DOMAIN" "sip:$2@127.0.0.1:${!port_var}" 0 || fail "unregistering $1 failed"
}

step "bob is in a call with carol"
uas_start b1 call_uas_dialog "$bob"
SIPP_USER="$carol" "$SIPP" -sf "$E2E_DIR/scenarios/call_uac_dialog.xml" -i 127.0.0.1 -p "$(free_port)" -m 1 \
	-timeout 40s -timeout_error -nostdin -s "$carol" -key sd_domain "$E2E_DOMAIN" -key callee "$bob" \
	-key bye_pause 5000 -trace_err -error_file "$E2E_WORK/carol.errors.log" \
	-trace_msg -message_file "$E2E_WORK/carol.messages.log" \
	"127.0.0.1:$SERVER_PORT" </dev/null >"$E2E_WORK/carol.stdout" 2>&1 &
carol_pid=$!
UAS_PIDS+=("$carol_pid")
for ((i = 0; i < 50; i++)); do
	grep -q "UPDATE" "$E2E_WORK/uas-b1.messages.log" 2>/dev/null && break
	sleep 0.1
done
grep -q "UPDATE" "$E2E_WORK/uas-b1.messages.log" || fail "carol's call to bob did not come up"
uas_unregister b1 "$bob"

step "alice calls bob: 486 Busy Here"
uas_start b2 call_uas_busy "$bob"
uac_run call_uac_busy "$alice" "$bob"
uas_wait b2
uas_unregister b2 "$bob"

step "alice subscribes to call-completion at bob: queued while bob is busy"
watch_start cc --aor "$alice_aor" --resource "$bob_aor" --event call-completion --duration 40
line="$(wait_notify cc 'cc-state: queued')"
assert_match "\"ctype\": \"$CC_TYPE\"" "$line" "Content-Type"
assert_match 'cc-service-retention: true' "$line" "NOTIFY body"

step "PUBLISH suspend: malformed body 400, nobody queued 404, alice's own 200"
pc publish --aor "$alice_aor" --ruri "$bob_aor" --event call-completion --ctype "$CC_TYPE" \
	--body $'cc-state: sleepy\r\n' --expires 600 --expect 400
pc publish --aor "$dave_aor" --ruri "$bob_aor" --event call-completion --ctype "$CC_TYPE" \
	--body $'cc-state: suspended\r\n' --expires 600 --expect 404
pc publish --aor "$alice_aor" --ruri "$bob_aor" --event call-completion --ctype "$CC_TYPE" \
	--body $'cc-state: suspended\r\n' --expires 600 --expect 200

step "carol's call ends: alice is suspended, so no callback yet"
rc=0
wait "$carol_pid" || rc=$?
[[ $rc -eq 0 ]] || { tail -n 40 "$E2E_WORK/carol.messages.log" >&2; fail "carol's call failed ($rc)"; }
uas_wait b1
sleep 1
assert_eq 0 "$(notify_count cc 'cc-state: ready')" "ready NOTIFYs while suspended"

step "alice resumes: bob is free, she gets cc-state: ready with the cc-URI"
pc publish --aor "$alice_aor" --ruri "$bob_aor" --event call-completion --ctype "$CC_TYPE" \
	--body $'cc-state: queued\r\n' --expires 600 --expect 200
line="$(wait_notify cc 'cc-state: ready')"
assert_match "cc-URI: sip:$bob@$E2E_DOMAIN;m=BS" "$line" "cc-URI"

step "alice's CC call (Request-URI with m=BS) is recognised: her entry leaves the queue"
uas_start b3 call_uas "$bob"
uac_run call_uac_cc "$alice" "$bob"
uas_wait b3
uas_unregister b3 "$bob"
wait_notify cc 'terminated;reason=noresource' >/dev/null
grep -q "CC call from $alice_aor to $bob_aor" "$E2E_WORK/simpled.log" || fail "CC call not logged"
watch_stop cc

step "CCNR: carol's call rings unanswered (she cancels); queued until bob shows activity"
uas_start b5 call_uas_ring "$bob"
uac_run call_uac_cancel "$carol" "$bob"
uas_wait b5
uas_unregister b5 "$bob"
watch_start nr --aor "sip:$carol@$E2E_DOMAIN" --resource "$bob_aor" --event call-completion --duration 30
wait_notify nr 'cc-state: queued' >/dev/null
sleep 1
assert_eq 0 "$(notify_count nr 'cc-state: ready')" "ready NOTIFYs before bob's next activity"
"$PYTHON" "$E2E_DIR/scenarios/call_register.py" "127.0.0.1:$SERVER_PORT" "$(free_port)" \
	"$bob_aor" "sip:$bob@127.0.0.1:9" 60 || fail "bob's REGISTER failed"
line="$(wait_notify nr 'cc-state: ready')"
assert_match "cc-URI: sip:$bob@$E2E_DOMAIN;m=NR" "$line" "cc-URI of a CCNR request"
watch_stop nr
server_stop
