#!/usr/bin/env bash
# Watcher authorization (rules.c) and watcher information (RFC 3857/3858):
# with the default policy "pending", an unknown watcher is pending and
# sees no state; a rule added through the database (and announced with
# pg_notify('simpled_rules', presentity), as simplectl does) approves it at
# once; block refuses new subscriptions (403) and ends existing ones
# (terminated;reason=rejected); polite-block shows a neutral closed
# document; domain rules; the presentity's own presence.winfo
# subscription gets full state first, then partial updates.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/scenarios/presence_lib.sh"

server_start --auth off --min-expires 2 --presence-default-policy pending

u="$(e2e_uniq r)"
alice="sip:alice$u@$E2E_DOMAIN"
bob="sip:bob$u@$E2E_DOMAIN"
carol="sip:carol$u@$E2E_DOMAIN"
dave="sip:dave$u@$E2E_DOMAIN"
erin="sip:erin$u@$E2E_DOMAIN"
foreign="sip:x$u@other$u.test"
at_exit "db_query \"DELETE FROM presence_rules WHERE presentity = '$alice'\" >/dev/null"

pidf "$alice" open phone "at work" >"$E2E_WORK/a.xml"
pc publish --aor "$alice" --body-file "$E2E_WORK/a.xml" --expires 600 --expect 200

step "the presentity watches its own watchers: full state, version 0, nobody yet"
watch_start winfo --aor "$alice" --resource "$alice" --event presence.winfo --duration 120
line="$(wait_notify winfo 'watcherinfo')"
assert_match 'version=\\"0\\" state=\\"full\\"' "$line" "first winfo document"
assert_no_match '<watcher ' "$line" "first winfo document"
assert_match '"ctype": "application/watcherinfo\+xml"' "$line" "winfo Content-Type"

step "nobody else may subscribe to alice's watcher list"
pc subscribe --aor "$bob" --resource "$alice" --event presence.winfo --expect 403

step "unknown watcher with policy pending: pending, no state; winfo partial"
watch_start bob --aor "$bob" --resource "$alice" --duration 120
line="$(wait_notify bob 'pending')"
assert_match '"body": ""' "$line" "NOTIFY body of a pending watcher"
line="$(wait_notify winfo 'state=\\"partial\\".*status=\\"pending\\"')"
assert_match 'version=\\"1\\"' "$line" "second winfo document"
assert_match "bob$u@" "$line" "watcher in the winfo document"

step "a rule allows bob: at once active with the real state; winfo says approved"
rule_set "$alice" "$bob" allow
line="$(wait_notify bob 'active;expires=.*at work')"
line="$(wait_notify winfo 'event=\\"approved\\" status=\\"active\\"')"
assert_match 'version=\\"2\\" state=\\"partial\\"' "$line" "third winfo document"

step "block: a new SUBSCRIBE is refused, an existing one ends with reason=rejected"
rule_set "$alice" "$carol" block
pc subscribe --aor "$carol" --resource "$alice" --expect 403
rule_set "$alice" "$dave" allow
watch_start dave --aor "$dave" --resource "$alice" --duration 120 --no-unsubscribe
wait_notify dave 'active;.*at work' >/dev/null
rule_set "$alice" "$dave" block
line="$(wait_notify dave 'terminated;reason=rejected')"
assert_no_match 'at work' "$line" "NOTIFY to a rejected watcher"
wait_notify winfo 'event=\\"rejected\\" status=\\"terminated\\"' >/dev/null
assert_eq 0 "$(db_query "SELECT count(*) FROM presence_subscriptions WHERE watcher = '$dave'")" "dave's rows"
watch_stop dave

step "polite-block: active, but a neutral closed document"
rule_set "$alice" "$erin" polite-block
watch_start erin --aor "$erin" --resource "$alice" --duration 120
line="$(wait_notify erin 'active;')"
assert_match 'basic>closed' "$line" "document for a politely blocked watcher"
assert_no_match 'at work|basic>open' "$line" "document for a politely blocked watcher"

step "a domain rule: watchers of that domain are blocked"
rule_set "$alice" "other$u.test" block
pc subscribe --aor "$foreign" --resource "$alice" --expect 403
rule_del "$alice" "other$u.test"
sleep 0.5
pc subscribe --aor "$foreign" --resource "$alice" --expires 0 --expect 200

step "bob leaves: winfo says terminated"
watch_stop bob
wait_notify winfo "terminated.*bob$u@" >/dev/null
watch_stop erin
watch_stop winfo
server_stop
