#!/usr/bin/env bash
# Subscriptions and publications survive a restart: the watcher keeps its
# dialog, the publication keeps its entity-tag, and the first NOTIFY after
# the restart carries a higher CSeq than any before it.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/scenarios/presence_lib.sh"

server_start --auth off --min-expires 2

u="$(e2e_uniq rs)"
alice="sip:alice$u@$E2E_DOMAIN"
bob="sip:bob$u@$E2E_DOMAIN"

step "subscribe and publish"
watch_start w --aor "$bob" --resource "$alice" --expires 600 --duration 120
wait_notify w '"cseq": 1,' >/dev/null
pidf "$alice" open dev before >"$E2E_WORK/a.xml"
pc publish --aor "$alice" --body-file "$E2E_WORK/a.xml" --expires 600 --expect 200 --etag-out "$E2E_WORK/etag"
line="$(wait_notify w 'before')"
cseq_before="$(json_field "$line" cseq)"
callid="$(json_field "$line" call_id)"

step "restart"
server_restart
assert_match 'loaded [1-9][0-9]* subscription' "$(cat "$SERVER_LOG")" "start-up log"
assert_eq 1 "$(db_query "SELECT count(*) FROM presence_subscriptions WHERE watcher = '$bob'")" "subscription row"
assert_eq 1 "$(db_query "SELECT count(*) FROM presence_publications WHERE resource = '$alice'")" "publication row"

step "the stored publication is modified with its entity-tag; the NOTIFY continues the dialog"
pidf "$alice" open dev after >"$E2E_WORK/b.xml"
pc publish --aor "$alice" --etag "$(cat "$E2E_WORK/etag")" --body-file "$E2E_WORK/b.xml" --expires 600 --expect 200
line="$(wait_notify w 'after')"
cseq_after="$(json_field "$line" cseq)"
assert_eq "$callid" "$(json_field "$line" call_id)" "Call-ID of the NOTIFY after the restart"
((cseq_after > cseq_before)) || fail "CSeq after the restart ($cseq_after) not above $cseq_before"

step "a second restart: CSeq still grows"
server_restart
pidf "$alice" closed dev again >"$E2E_WORK/c.xml"
pc publish --aor "$alice" --body-file "$E2E_WORK/c.xml" --expires 600 --expect 200
line="$(wait_notify w 'again')"
cseq_again="$(json_field "$line" cseq)"
((cseq_again > cseq_after)) || fail "CSeq after the second restart ($cseq_again) not above $cseq_after"

step "unsubscribe works in the reloaded dialog"
watch_stop w
assert_match '"unsubscribe": 200' "$(cat "$E2E_WORK/w.log")" "unsubscribe after restarts"
assert_match 'terminated;reason=timeout' "$(last_notify w)" "final NOTIFY"
server_stop
