#!/usr/bin/env bash
# The database goes away and comes back: PUBLISH and SUBSCRIBE get 503
# with Retry-After (never a 2xx that was not committed), what was refused
# is not kept in memory (watchers never see it), and service resumes by
# itself.  A private PostgreSQL cluster, as in test_db_down.sh.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/scenarios/presence_lib.sh"

step "start a private cluster"
private_db_start
server_start --auth off --min-expires 2

u="$(e2e_uniq pdb)"
alice="sip:alice$u@$E2E_DOMAIN"
bob="sip:bob$u@$E2E_DOMAIN"
carol="sip:carol$u@$E2E_DOMAIN"

step "with the database up: publish and subscribe"
watch_start w --aor "$bob" --resource "$alice" --expires 600 --duration 120
pidf "$alice" open d1 committed >"$E2E_WORK/a.xml"
pc publish --aor "$alice" --body-file "$E2E_WORK/a.xml" --expires 600 --expect 200 --etag-out "$E2E_WORK/etag"
wait_notify w 'committed' >/dev/null

step "stop the database: 503 with Retry-After, nothing refused is shown"
devdb stop "$PG_DIR" 2>>"$E2E_WORK/dev-db.log" || fail "dev-db.sh stop failed"
pidf "$alice" open d2 refused >"$E2E_WORK/b.xml"
pc publish --aor "$alice" --body-file "$E2E_WORK/b.xml" --expires 600 --expect 503 \
	--expect-header '^Retry-After: *[0-9]+'
pidf "$alice" closed d1 modified-refused >"$E2E_WORK/c.xml"
pc publish --aor "$alice" --etag "$(cat "$E2E_WORK/etag")" --body-file "$E2E_WORK/c.xml" --expires 600 \
	--expect 503 --expect-header '^Retry-After: *[0-9]+'
pc subscribe --aor "$carol" --resource "$alice" --expires 600 --expect 503 --expect-header '^Retry-After: *[0-9]+'

step "the database is back: service resumes, refused changes never appear"
devdb start "$PG_DIR" "$PG_PORT" >/dev/null 2>>"$E2E_WORK/dev-db.log" || fail "dev-db.sh start (again) failed"
ok=0
for ((i = 0; i < 30; i++)); do
	pidf "$alice" open d3 after >"$E2E_WORK/d.xml"
	if pc_try publish --aor "$alice" --body-file "$E2E_WORK/d.xml" --expires 600 --expect 200 2>/dev/null; then
		ok=1
		break
	fi
	sleep 1
done
[[ $ok -eq 1 ]] || fail "PUBLISH did not succeed within 30 s of the database coming back"
line="$(wait_notify w 'after')"
assert_match 'committed' "$line" "document after the outage (the committed publication)"
assert_no_match 'refused' "$line" "document after the outage"
assert_no_match 'refused' "$(cat "$E2E_WORK/w.log")" "every NOTIFY"
# The old entity-tag is still the valid one: the refused modify changed nothing.
pc publish --aor "$alice" --etag "$(cat "$E2E_WORK/etag")" --expires 600 --expect 200
assert_eq 0 "$(db_query "SELECT count(*) FROM presence_subscriptions WHERE watcher = '$carol'")" "carol's rows"
assert_eq 2 "$(db_query "SELECT count(*) FROM presence_publications WHERE resource = '$alice'")" "alice's publications"
watch_stop w
server_stop
