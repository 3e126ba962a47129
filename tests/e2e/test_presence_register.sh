#!/usr/bin/env bash
# Presence derived from registrations (a registered user with no
# publication is open, closed when its last binding goes; a PUBLISH takes
# precedence), with digest authentication on: PUBLISH and SUBSCRIBE from
# local users are challenged with 407, only the presentity may publish,
# and a watcher must be who its From says.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/scenarios/presence_lib.sh"

server_start --auth on --min-expires 2

ua="$(e2e_uniq ra)"
ub="$(e2e_uniq rb)"
user_add "$ua" secretA
user_add "$ub" secretB
alice="sip:$ua@$E2E_DOMAIN"
bob="sip:$ub@$E2E_DOMAIN"

step "SUBSCRIBE and PUBLISH without credentials get 407"
pc subscribe --aor "$bob" --resource "$alice" --expect 407 --expect-header '^Proxy-Authenticate: *Digest'
pidf "$alice" open p >"$E2E_WORK/a.xml"
pc publish --aor "$alice" --body-file "$E2E_WORK/a.xml" --expect 407

step "bob may not publish alice's presence (403)"
pc publish --aor "$bob" --ruri "$alice" --body-file "$E2E_WORK/a.xml" --password secretB --expect 403

step "unregistered and unpublished: closed"
watch_start w --aor "$bob" --resource "$alice" --password secretB --duration 60
assert_match '"subscribe": 200' "$(watch_result w)" "authenticated SUBSCRIBE"
wait_notify w 'basic>closed' >/dev/null

step "alice registers: open, with her contact"
sipc register --aor "$alice" --password secretA --contact "<sip:$ua@127.0.0.1:5999>" --expires 60 --expect 200
line="$(wait_notify w 'basic>open')"
assert_match "contact>sip:$ua@127.0.0.1:5999" "$line" "contact in the registration-derived document"

step "alice unregisters: closed again"
n="$(notify_count w)"
sipc register --aor "$alice" --password secretA --contact "<sip:$ua@127.0.0.1:5999>" --expires 0 --expect 200
wait_notify w '.' 8 $((n + 1)) >/dev/null
assert_match 'basic>closed' "$(last_notify w)" "document after the last binding went"

step "a PUBLISH takes precedence over the registration"
sipc register --aor "$alice" --password secretA --contact "<sip:$ua@127.0.0.1:5999>" --expires 60 --expect 200
wait_notify w 'basic>open.*127.0.0.1:5999' >/dev/null
pidf "$alice" closed dnd "do not disturb" >"$E2E_WORK/dnd.xml"
pc publish --aor "$alice" --body-file "$E2E_WORK/dnd.xml" --password secretA --expires 600 --expect 200
line="$(wait_notify w 'do not disturb')"
assert_no_match '5999' "$line" "published document"
watch_stop w
server_stop
