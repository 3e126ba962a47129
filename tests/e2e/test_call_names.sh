#!/usr/bin/env bash
# Names and caller identity: a call to an alias (simplectl alias add)
# reaches the user; the callee sees P-Asserted-Identity with the caller's
# display name and Call-Info with the photo (simplectl user set); an alias
# removed is gone at once (LISTEN simpled_aliases); a MESSAGE to an alias
# is handled as sent to the user (the alias hook before router_dispatch).
source "$(dirname "$0")/lib.sh"
source "$E2E_DIR/scenarios/call_lib.sh"

server_start --auth off
calls_require_proxy

alice="$(e2e_uniq alice)"
bob="$(e2e_uniq bob)"
ext="$((RANDOM % 9000 + 1000))$$"
user_add "$alice" secret
user_add "$bob" secret
ctl() { "$SIMPLECTL_BIN" --db "$E2E_DB" "$@" </dev/null; }

step "simplectl alias add / list; user set --name --photo"
ctl alias add "$ext" "$bob@$E2E_DOMAIN" || fail "alias add"
ctl alias add "$ext" "$bob@$E2E_DOMAIN" 2>/dev/null && fail "a second alias add must fail"
ctl alias add "$alice" "$bob@$E2E_DOMAIN" 2>/dev/null && fail "an alias may not shadow a user"
assert_match "^sip:$ext@$E2E_DOMAIN sip:$bob@$E2E_DOMAIN\$" "$(ctl alias list "$bob@$E2E_DOMAIN")" "alias list"
ctl user set "$alice@$E2E_DOMAIN" --name "Alice Example" --photo "https://$E2E_DOMAIN/$alice.png" || fail "user set"
sleep 0.5 # the NOTIFYs reach the server

step "a call to the alias reaches bob, with alice's identity and photo"
UAS_WANT="P-Asserted-Identity: \"Alice Example\" <sip:$alice@$E2E_DOMAIN>" \
UAS_WANT2="Call-Info: <https://$E2E_DOMAIN/$alice.png>;purpose=icon" \
	uas_start b1 call_uas "$bob"
uac_run call_uac "$alice" "$ext"
uas_wait b1
assert_match "^INVITE sip:$bob@127\.0\.0\.1:" "$(cat "$E2E_WORK/uas-b1.messages.log")" "alias resolved to bob's contact"

step "MESSAGE to an alias of an offline user is stored for that user (server.c alias hook)"
carol="$(e2e_uniq carol)"
ext2="$((RANDOM % 9000 + 1000))$$"
user_add "$carol" secret
ctl alias add "$ext2@$E2E_DOMAIN" "$carol@$E2E_DOMAIN" || fail "alias add (with domain)"
sleep 0.5
sipc request --method MESSAGE --aor "sip:$alice@$E2E_DOMAIN" --ruri "sip:$ext2@$E2E_DOMAIN" --body "to the alias" --expect 202
assert_eq 1 "$(db_query "SELECT count(*) FROM messages WHERE recipient = 'sip:$carol@$E2E_DOMAIN'")" "message stored for carol"

step "alias del: the alias is unknown again (404)"
ctl alias del "$ext@$E2E_DOMAIN" || fail "alias del"
sleep 0.5
sipc request --method INVITE --aor "sip:$alice@$E2E_DOMAIN" --ruri "sip:$ext@$E2E_DOMAIN" --expect 404

server_stop
