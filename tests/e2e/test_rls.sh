#!/usr/bin/env bash
# The resource list server (RFC 4662) over buddy lists kept as RFC 4826
# documents: `simplectl buddies add` puts three buddies on alice's list
# "friends" and prints the list URI; a SUBSCRIBE to it without
# "Supported: eventlist" gets 421; with it, one subscription whose first
# NOTIFY is a well-formed multipart/related with an RLMI document in full
# state and one PIDF part per buddy with state (a pending buddy shows
# "pending" and has no part); a buddy's PUBLISH gives a partial NOTIFY with
# that one part and a higher version; a buddy added to the list gives a
# full NOTIFY with it; nobody but alice may subscribe to her list; after a
# restart the list subscription lives on and its next NOTIFY has a higher
# version; a buddy taken off the list disappears from the next NOTIFY.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/scenarios/presence_lib.sh"

server_start --auth off --min-expires 2

u="$(e2e_uniq l)"
alice="sip:alice$u@$E2E_DOMAIN"
bob="sip:bob$u@$E2E_DOMAIN"
carol="sip:carol$u@$E2E_DOMAIN"
dave="sip:dave$u@$E2E_DOMAIN"
erin="sip:erin$u@$E2E_DOMAIN"
mallory="sip:mallory$u@$E2E_DOMAIN"
user_add "alice$u" secret
at_exit "db_query \"DELETE FROM presence_rules WHERE presentity = '$dave'\" >/dev/null"

ctl() { "$SIMPLECTL_BIN" --db "$E2E_DB" "$@" </dev/null; }
rlmi() { "$PYTHON" "$PRES_DIR/rlmi_check.py" "$@" || fail "RLMI check failed: $*"; }

step "simplectl buddies: three buddies on alice's list 'friends'"
list="$(ctl buddies add "alice$u@$E2E_DOMAIN" friends "bob$u@$E2E_DOMAIN" "Bob B")"
assert_eq "sip:alice$u-friends@$E2E_DOMAIN" "$list" "list URI printed by buddies add"
ctl buddies add "alice$u@$E2E_DOMAIN" friends "carol$u@$E2E_DOMAIN" >/dev/null
ctl buddies add "alice$u@$E2E_DOMAIN" friends "dave$u@$E2E_DOMAIN" Dave >/dev/null
rc=0; ctl buddies add "alice$u@$E2E_DOMAIN" friends "dave$u@$E2E_DOMAIN" 2>/dev/null || rc=$?
assert_eq 2 "$rc" "exit status of adding a buddy twice"
rc=0; ctl buddies add "nobody$u@$E2E_DOMAIN" friends "dave$u@$E2E_DOMAIN" 2>/dev/null || rc=$?
assert_eq 2 "$rc" "exit status of buddies add for an unknown user"
assert_eq 3 "$(ctl buddies list "alice$u@$E2E_DOMAIN" friends | wc -l)" "buddies list lines"
assert_match "friends $dave Dave" "$(ctl buddies list "alice$u@$E2E_DOMAIN")" "buddies list"

pidf "$bob" open phone "bob-first" >"$E2E_WORK/b1.xml"
pc publish --aor "$bob" --body-file "$E2E_WORK/b1.xml" --expires 600 --expect 200
rule_set "$dave" "$alice" pending
sleep 0.5 # the store and the rules follow their announcements

step "a list SUBSCRIBE without Supported: eventlist is answered 421"
pc subscribe --aor "$alice" --resource "$list" --expires 0 --expect 421 --expect-header '^Require: eventlist'

step "the list subscription: full state, 3 resources, 2 PIDF parts, dave pending"
watch_start list --aor "$alice" --resource "$list" --duration 120 --header "Supported: eventlist" \
	--accept "multipart/related, application/rlmi+xml, application/pidf+xml"
line="$(wait_notify list 'active;expires')"
out="$(rlmi --full true --resources 3 --parts 2 --state "$bob=active" --state "$carol=active" \
	--state "$dave=pending" --part-contains "$bob=bob-first" --part-contains "$carol=closed" <<<"$line")"
v1="$(sed -E 's/version=([0-9]+).*/\1/' <<<"$out")"
echo "    first NOTIFY: $out" >&2

step "nobody else may subscribe to alice's list"
pc subscribe --aor "$mallory" --resource "$list" --expires 0 --header "Supported: eventlist" --expect 403

step "bob publishes: a partial NOTIFY with bob's part only, higher version"
pidf "$bob" open phone "bob-second" >"$E2E_WORK/b2.xml"
pc publish --aor "$bob" --body-file "$E2E_WORK/b2.xml" --expires 600 --expect 200
line="$(wait_notify list 'bob-second')"
out="$(rlmi --full false --resources 1 --parts 1 --state "$bob=active" --part-contains "$bob=bob-second" \
	--min-version $((v1 + 1)) <<<"$line")"
v2="$(sed -E 's/version=([0-9]+).*/\1/' <<<"$out")"
echo "    partial NOTIFY: $out" >&2

step "dave approves alice: a partial NOTIFY shows dave active with a part"
rule_set "$dave" "$alice" allow
line="$(wait_notify list "dave$u" 8 2)"
rlmi --full false --resources 1 --parts 1 --state "$dave=active" --min-version $((v2 + 1)) <<<"$line" >/dev/null

step "erin added to the list: the next NOTIFY is full state with 4 resources"
ctl buddies add "alice$u@$E2E_DOMAIN" friends "erin$u@$E2E_DOMAIN" Erin >/dev/null
line="$(wait_notify list "erin$u")"
rlmi --full true --resources 4 --parts 4 --state "$erin=active" <<<"$line" >/dev/null

step "restart: the list subscription lives on, next NOTIFY has a higher version"
before="$(last_notify list)"
vb="$(rlmi <<<"$before" | sed -E 's/version=([0-9]+).*/\1/')"
server_restart
pidf "$carol" open desk "carol-after-restart" >"$E2E_WORK/c1.xml"
pc publish --aor "$carol" --body-file "$E2E_WORK/c1.xml" --expires 600 --expect 200
line="$(wait_notify list 'carol-after-restart' 10)"
rlmi --full true --resources 4 --min-version $((vb + 1)) --part-contains "$carol=carol-after-restart" <<<"$line" >/dev/null

step "bob taken off the list: the next NOTIFY lists 3 resources without bob"
n0="$(notify_count list)"
ctl buddies del "alice$u@$E2E_DOMAIN" friends "bob$u@$E2E_DOMAIN"
for ((i = 0; i < 80; i++)); do (($(notify_count list) > n0)) && break; sleep 0.1; done
(($(notify_count list) > n0)) || fail "no NOTIFY after bob left the list"
line="$(last_notify list)"
rlmi --full true --resources 3 <<<"$line" >/dev/null
assert_no_match "bob$u@" "$line" "NOTIFY after bob left the list"

watch_stop list
server_stop
