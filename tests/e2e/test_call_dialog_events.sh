#!/usr/bin/env bash
# The dialog event package (RFC 4235) on the proxy's dialog records: a
# watcher of bob sees a call alice -> bob go trying -> early -> confirmed
# -> terminated, each in its own NOTIFY with a growing version (full state
# first, then partial); the caller's own lamp shows the initiator side;
# a watcher bob's presence rules block gets 403; versions keep growing
# across a restart; with dialog tracking off the package still answers
# but never shows a call.
source "$(dirname "$0")/lib.sh"
source "$E2E_DIR/scenarios/call_lib.sh"
source "$E2E_DIR/scenarios/presence_lib.sh"

server_start --auth off
calls_require_proxy

alice="$(e2e_uniq alice)"
bob="$(e2e_uniq bob)"
user_add "$alice" secret
user_add "$bob" secret
bob_aor="sip:$bob@$E2E_DOMAIN"
alice_aor="sip:$alice@$E2E_DOMAIN"
carol_aor="sip:$(e2e_uniq carol)@$E2E_DOMAIN"
dave_aor="sip:$(e2e_uniq dave)@$E2E_DOMAIN"
# A finished sipp callee's binding must go, or the next call forks to it.
uas_unregister() { # NAME USER
	local port_var="uas_${1}_port"
	"$PYTHON" "$E2E_DIR/scenarios/call_register.py" "127.0.0.1:$SERVER_PORT" "$(free_port)" \
		"sip:$2@$E2E_DOMAIN" "sip:$2@127.0.0.1:${!port_var}" 0 || fail "unregistering $1 failed"
}
at_exit "db_query \"DELETE FROM presence_rules WHERE presentity = '$bob_aor'\" >/dev/null"

step "a watcher of bob: full state first, no dialog"
watch_start lamp --aor "$carol_aor" --resource "$bob_aor" --event dialog --duration 60
line="$(wait_notify lamp 'dialog-info')"
assert_match 'version=\\"0\\" state=\\"full\\"' "$line" "first document"
assert_no_match '<dialog ' "$line" "first document"
assert_match '"ctype": "application/dialog-info\+xml"' "$line" "Content-Type"
watch_start own --aor "$alice_aor" --resource "$alice_aor" --event dialog --duration 60
wait_notify own 'dialog-info' >/dev/null

step "alice calls bob: trying, early, confirmed, terminated, in that order"
uas_start b1 call_uas_lamp "$bob"
uac_run call_uac "$alice" "$bob"
uas_wait b1
uas_unregister b1 "$bob"
wait_notify lamp 'terminated</state>' >/dev/null
states=()
versions=()
while IFS= read -r l; do
	s="$(grep -Eo '<state[^>]*>[a-z]+</state>' <<<"$l" | sed -E 's/.*>([a-z]+)<.*/\1/' || true)"
	v="$(grep -Eo 'version=\\"[0-9]+\\" state' <<<"$l" | grep -Eo '[0-9]+' || true)"
	[[ -n "$s" ]] && states+=("$s") && versions+=("$v")
done < <(grep '"cseq"' "$E2E_WORK/lamp.log")
assert_eq "trying early confirmed terminated" "${states[*]}" "states bob's watcher saw"
for ((i = 1; i < ${#versions[@]}; i++)); do
	((versions[i] > versions[i - 1])) || fail "versions not increasing: ${versions[*]}"
done
((versions[0] >= 1)) || fail "first partial document has version ${versions[0]}"
line="$(wait_notify lamp 'confirmed</state>')"
assert_match 'state=\\"partial\\"' "$line" "update documents"
assert_match 'direction=\\"recipient\\"' "$line" "bob's side"
assert_match "<identity>sip:$alice@" "$line" "remote identity (the caller)"
assert_match 'local-tag=\\"[^\\"]+\\" remote-tag=\\"[^\\"]+\\"' "$line" "dialog tags"
line="$(wait_notify lamp 'terminated</state>')"
assert_match 'event=\\"(local|remote)-bye\\"' "$line" "end of the call"
line="$(wait_notify own 'confirmed</state>')"
assert_match 'direction=\\"initiator\\"' "$line" "alice's own side"
wait_notify own 'event=\\"local-bye\\"' >/dev/null

step "a busy callee: the caller's watcher sees terminated with code 486"
uas_start b2 call_uas_busy "$bob"
uac_run call_uac_busy "$alice" "$bob"
uas_wait b2
uas_unregister b2 "$bob"
line="$(wait_notify lamp 'code=\\"486\\"')"
assert_match 'event=\\"rejected\\"' "$line" "rejected call"

step "a watcher bob's rules block gets 403"
rule_set "$bob_aor" "$dave_aor" block
pc subscribe --aor "$dave_aor" --resource "$bob_aor" --event dialog --expect 403

step "after a restart the subscription lives on and versions keep growing"
last_version() {
	grep '"cseq"' "$E2E_WORK/lamp.log" | tail -n 1 | grep -Eo 'version=\\"[0-9]+\\" state' | grep -Eo '[0-9]+'
}
before="$(last_version)"
server_restart
uas_start b4 call_uas_lamp "$bob"
uac_run call_uac "$alice" "$bob"
uas_wait b4
uas_unregister b4 "$bob"
wait_notify lamp 'terminated</state>' 8 3 >/dev/null
after="$(last_version)"
((after > before)) || fail "version after the restart ($after) not above the one before ($before)"
watch_stop lamp
watch_stop own
server_stop

step "dialog tracking off: the package answers, calls are not shown"
server_start --auth off --dialog-tracking off
watch_start off --aor "$carol_aor" --resource "$bob_aor" --event dialog --duration 30
wait_notify off 'state=\\"full\\"' >/dev/null
uas_start b3 call_uas "$bob"
uac_run call_uac "$alice" "$bob"
uas_wait b3
sleep 0.5
assert_eq 1 "$(notify_count off)" "NOTIFYs with tracking off"
watch_stop off
server_stop
