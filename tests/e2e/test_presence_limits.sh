#!/usr/bin/env bash
# NOTIFY rate control (notify-interval-ms): changes in quick succession
# give at most one NOTIFY per interval per watcher, the last one with the
# newest state; the per-presentity publication cap (403).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/scenarios/presence_lib.sh"

server_start --auth off --min-expires 2 --notify-interval-ms 2000 --max-publications-per-presentity 3

u="$(e2e_uniq lim)"
alice="sip:alice$u@$E2E_DOMAIN"
bob="sip:bob$u@$E2E_DOMAIN"
zoe="sip:zoe$u@$E2E_DOMAIN"

step "five changes within the interval: one NOTIFY now, one with the newest state later"
watch_start w --aor "$bob" --resource "$alice" --expires 600 --duration 60
wait_notify w '"cseq": 1,' >/dev/null
pidf "$alice" open d v0 >"$E2E_WORK/v.xml"
pc publish --aor "$alice" --body-file "$E2E_WORK/v.xml" --expires 600 --expect 200 --etag-out "$E2E_WORK/etag"
for v in 1 2 3 4 5; do
	pidf "$alice" open d "v$v" >"$E2E_WORK/v.xml"
	pc publish --aor "$alice" --etag "$(cat "$E2E_WORK/etag")" --body-file "$E2E_WORK/v.xml" --expires 600 \
		--expect 200 --etag-out "$E2E_WORK/etag"
done
line="$(wait_notify w 'note>v5<' 6)"
sleep 2.5
n="$(notify_count w)"
((n <= 4)) || fail "$n NOTIFYs for 6 changes with a 2 s interval (want at most 4)"
assert_match 'note>v5<' "$(last_notify w)" "last NOTIFY"
watch_stop w

step "publication cap per presentity: the fourth device is refused"
for d in 1 2 3; do
	pidf "$zoe" open "d$d" >"$E2E_WORK/z.xml"
	pc publish --aor "$zoe" --body-file "$E2E_WORK/z.xml" --expires 600 --expect 200
done
pidf "$zoe" open d4 >"$E2E_WORK/z.xml"
pc publish --aor "$zoe" --body-file "$E2E_WORK/z.xml" --expires 600 --expect 403
assert_eq 3 "$(db_query "SELECT count(*) FROM presence_publications WHERE resource = '$zoe'")" "zoe's publications"
server_stop
