#!/usr/bin/env bash
# PUBLISH (RFC 3903) and the presence package (RFC 3856): a watcher's
# NOTIFY carries the published PIDF; two devices compose into one
# document with both tuples; refresh, modify, remove and expiry; the
# error answers (412, 423, 400, 403, 415, 489); hostile XML (XXE, entity
# bomb, deep nesting, oversized bodies) is refused and stored data stays.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/scenarios/presence_lib.sh"

server_start --auth off --min-expires 2 --max-expires 3600

alice="sip:$(e2e_uniq alice)@$E2E_DOMAIN"
bob="sip:$(e2e_uniq bob)@$E2E_DOMAIN"
rows() { db_query "SELECT count(*) FROM presence_publications WHERE resource = '$alice'"; }

step "a watcher of a presentity with nothing published sees closed"
watch_start w1 --aor "$bob" --resource "$alice" --duration 60
assert_match '"subscribe": 200' "$(watch_result w1)" "SUBSCRIBE answer"
wait_notify w1 'basic>closed' >/dev/null
assert_eq 1 "$(db_query "SELECT count(*) FROM presence_subscriptions WHERE resource = '$alice' AND watcher = '$bob'")" \
	"stored subscription"

step "publish from device 1: the NOTIFY carries its tuple"
pidf "$alice" open dev1 phone >"$E2E_WORK/d1.xml"
pc publish --aor "$alice" --body-file "$E2E_WORK/d1.xml" --expires 600 --expect 200 \
	--expect-header '^SIP-ETag: *[A-Za-z0-9]+' --etag-out "$E2E_WORK/etag1"
etag1="$(cat "$E2E_WORK/etag1")"
wait_notify w1 'tuple id=\\"dev1\\".*open.*phone' >/dev/null
assert_eq 1 "$(rows)" "publication rows"
stored="$(db_query "SELECT convert_from(body, 'UTF8') FROM presence_publications WHERE etag = '$etag1'")"
assert_eq "$(cat "$E2E_WORK/d1.xml")" "$stored" "stored document (as sent)"

step "device 2 publishes too: one composed document with both tuples"
pidf "$alice" closed dev2 laptop >"$E2E_WORK/d2.xml"
pc publish --aor "$alice" --body-file "$E2E_WORK/d2.xml" --expires 600 --expect 200 --etag-out "$E2E_WORK/etag2"
etag2="$(cat "$E2E_WORK/etag2")"
wait_notify w1 'dev1.*dev2' >/dev/null
assert_eq 2 "$(rows)" "publication rows"

step "refresh (SIP-If-Match, no body): a new entity-tag; the old one is gone (412)"
n_before="$(notify_count w1)"
pc publish --aor "$alice" --etag "$etag1" --expires 600 --expect 200 --etag-out "$E2E_WORK/etag1b"
etag1b="$(cat "$E2E_WORK/etag1b")"
[[ -n "$etag1b" && "$etag1b" != "$etag1" ]] || fail "refresh kept the entity-tag ($etag1 -> $etag1b)"
pc publish --aor "$alice" --etag "$etag1" --expires 600 --expect 412
sleep 0.5
assert_eq "$n_before" "$(notify_count w1)" "NOTIFYs after a refresh (nothing changed)"

step "modify (SIP-If-Match + body): watchers see the new document"
pidf "$alice" closed dev1 away >"$E2E_WORK/d1m.xml"
pc publish --aor "$alice" --etag "$etag1b" --body-file "$E2E_WORK/d1m.xml" --expires 600 --expect 200 \
	--etag-out "$E2E_WORK/etag1c"
etag1c="$(cat "$E2E_WORK/etag1c")"
[[ "$etag1c" != "$etag1b" ]] || fail "modify kept the entity-tag"
wait_notify w1 'dev1.*away.*dev2' >/dev/null

step "remove (Expires: 0): device 2 disappears from the document"
pc publish --aor "$alice" --etag "$etag2" --expires 0 --expect 200
last="$(wait_notify w1 'dev1.*away' 8 1)"
for i in $(seq 50); do
	last="$(last_notify w1)"
	grep -q dev2 <<<"$last" || break
	sleep 0.1
done
assert_no_match 'dev2' "$last" "document after removing device 2"
assert_eq 1 "$(rows)" "publication rows after removal"

step "error answers"
pc publish --aor "$alice" --etag "nosuchetag" --expires 600 --expect 412
pc publish --aor "$alice" --body-file "$E2E_WORK/d2.xml" --expires 1 --expect 423 \
	--expect-header '^Min-Expires: *2'
pc publish --aor "$alice" --body '<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="'"$alice"'"><tuple' \
	--expires 600 --expect 400
pc publish --aor "$alice" --body-file "$E2E_WORK/d2.xml" --event no-such-package --expect 489 \
	--expect-header '^Allow-Events:.*presence'
pc publish --aor "$alice" --body-file "$E2E_WORK/d2.xml" --ctype text/plain --expect 415 \
	--expect-header '^Accept: *application/pidf\+xml'
pidf "sip:mallory@$E2E_DOMAIN" open m >"$E2E_WORK/other.xml"
pc publish --aor "$alice" --body-file "$E2E_WORK/other.xml" --expires 600 --expect 403
pc publish --aor "$alice" --expires 600 --expect 400

step "hostile XML is refused and stored data stays"
cat >"$E2E_WORK/xxe.xml" <<XML
<?xml version="1.0"?>
<!DOCTYPE presence [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="$alice"><tuple id="x"><status><basic>open</basic></status><note>&xxe;</note></tuple></presence>
XML
pc publish --aor "$alice" --body-file "$E2E_WORK/xxe.xml" --expires 600 --expect 400
cat >"$E2E_WORK/bomb.xml" <<XML
<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="$alice"><tuple id="x"><status><basic>open</basic></status><note>&lol3;</note></tuple></presence>
XML
pc publish --aor "$alice" --body-file "$E2E_WORK/bomb.xml" --expires 600 --expect 400
"$PYTHON" - "$alice" "$E2E_WORK" <<'PY'
import sys
alice, work = sys.argv[1], sys.argv[2]
head = '<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="%s">' % alice
open(work + "/deep1000.xml", "w").write(head + "<a>" * 1000 + "</a>" * 1000 + "</presence>")
open(work + "/deep100k.xml", "w").write(head + "<a>" * 100000 + "</a>" * 100000 + "</presence>")
open(work + "/big5m.xml", "w").write(head + '<tuple id="b"><status><basic>open</basic></status><note>' +
                                     "x" * (5 * 1024 * 1024) + "</note></tuple></presence>")
PY
pc publish --aor "$alice" --body-file "$E2E_WORK/deep1000.xml" --expires 600 --expect 400
pc --tcp publish --aor "$alice" --body-file "$E2E_WORK/deep100k.xml" --expires 600 --expect 413
pc --tcp publish --aor "$alice" --body-file "$E2E_WORK/big5m.xml" --expires 600 --expect 413
assert_eq 1 "$(rows)" "publication rows after the hostile bodies"
stored="$(db_query "SELECT convert_from(body, 'UTF8') FROM presence_publications WHERE etag = '$etag1c'")"
assert_eq "$(cat "$E2E_WORK/d1m.xml")" "$stored" "stored document after the hostile bodies"
assert_no_match 'root:|lollol' "$(cat "$E2E_WORK/w1.log")" "NOTIFYs"

step "a publication expires: its removal is notified"
pidf "$alice" open dev3 short >"$E2E_WORK/d3.xml"
pc publish --aor "$alice" --body-file "$E2E_WORK/d3.xml" --expires 3 --expect 200 --expect-header '^Expires: *3'
wait_notify w1 'dev3' >/dev/null
n="$(notify_count w1)"
wait_notify w1 '.' 10 $((n + 1)) >/dev/null
assert_no_match 'dev3' "$(last_notify w1)" "document after device 3 expired"
assert_eq 1 "$(rows)" "publication rows after the expiry"

watch_stop w1
assert_match 'terminated;reason=timeout' "$(last_notify w1)" "final NOTIFY after unsubscribe"
server_stop
