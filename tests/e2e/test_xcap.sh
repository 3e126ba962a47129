#!/usr/bin/env bash
# The XCAP server (RFC 4825) against the real simpled and PostgreSQL, auth
# on: 401 without credentials, 200 with digest (SHA-256 and MD5), 403 for
# another user's document; a resource-lists document PUT (201), GET, and a
# conditional PUT with a stale ETag (412); an element and an attribute
# GET/PUT/DELETE with the RFC 4825 §8.2 rules (create when the parent
# exists, 409 cannot-insert when not idempotent, 409 no-parent); an
# invalid document (409, nothing stored changed); a duplicate entry (409
# uniqueness-failure); xcap-caps; pres-rules as a view of presence_rules:
# PUT blocks a SIP watcher at once (403 to its SUBSCRIBE) and GET shows
# the rows simplectl wrote; SIP is still served throughout; with auth
# off XCAP is open.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/scenarios/presence_lib.sh"

server_start

u="$(e2e_uniq x)"
alice="alice$u@$E2E_DOMAIN"
bob="bob$u@$E2E_DOMAIN"
user_add "alice$u" apw
user_add "bob$u" bpw
at_exit "db_query \"DELETE FROM presence_rules WHERE presentity = 'sip:$alice'\" >/dev/null"
at_exit "db_query \"DELETE FROM xcap_documents WHERE owner IN ('$alice', '$bob')\" >/dev/null"

RL=/xcap-root/resource-lists/users/sip:$alice/index
xc() { "$PYTHON" "$PRES_DIR/xcap_client.py" --server "127.0.0.1:$XCAP_PORT" "$@" </dev/null 2>"$E2E_WORK/xc.err" ||
	{ cat "$E2E_WORK/xc.err" >&2; fail "xcap $*"; }; }
xa() { xc --user "alice$u" --password apw "$@"; }
etag_of() { sed -n '1s/^[0-9]* //p' <<<"$1"; }
stored() { db_query "SELECT md5(body) FROM xcap_documents WHERE auid = '$1' AND owner = '$alice' AND name = 'index'"; }

cat >"$E2E_WORK/rl.xml" <<XML
<?xml version="1.0" encoding="UTF-8"?>
<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists">
  <list name="friends">
    <entry uri="sip:$bob"><display-name>Bob</display-name></entry>
  </list>
</resource-lists>
XML

step "401 without credentials, with a SHA-256 and an MD5 challenge"
xc --method GET --path "$RL" --expect 401 \
	--expect-header "^www-authenticate: Digest realm=\"$E2E_DOMAIN\".*algorithm=SHA-256" \
	--expect-header '^www-authenticate: Digest .*algorithm=MD5' >/dev/null
xc --method GET --path "$RL" --user "alice$u" --password wrong --expect 401 >/dev/null

step "PUT a document (201, ETag), GET it back (200, same ETag), with digest"
out="$(xa --method PUT --path "$RL" --ctype application/resource-lists+xml --body-file "$E2E_WORK/rl.xml" --expect 201)"
e1="$(etag_of "$out")"
[[ "$e1" == \"*\" ]] || fail "no ETag on the PUT response: $out"
out="$(xa --method GET --path "$RL" --expect 200 --expect-body "sip:$bob" --expect-header '^content-type: application/resource-lists\+xml')"
assert_eq "$e1" "$(etag_of "$out")" "ETag of GET after PUT"
xa --method GET --path "$RL" --algorithm MD5 --expect 200 >/dev/null
assert_eq 1 "$(db_query "SELECT count(*) FROM xcap_documents WHERE owner = '$alice' AND auid = 'resource-lists'")" "stored rows"

step "403 for another user's document; 404 for documents nobody has"
xc --user "bob$u" --password bpw --method GET --path "$RL" --expect 403 >/dev/null
xa --method GET --path "/xcap-root/resource-lists/users/sip:$alice/other" --expect 404 >/dev/null
xa --method GET --path "/xcap-root/nosuch/users/sip:$alice/index" --expect 404 >/dev/null
xa --method PUT --path "/xcap-root/pres-rules/users/sip:$alice/other" --ctype application/auth-policy+xml --body "<x/>" --expect 404 >/dev/null

step "element: PUT creates an entry (201), GET it, PUT not idempotent (409 cannot-insert), no parent (409)"
E="$RL/~~/resource-lists/list[@name=\"friends\"]/entry[@uri=\"sip:carol$u@$E2E_DOMAIN\"]"
out="$(xa --method PUT --path "$E" --ctype application/xcap-el+xml \
	--body "<entry uri=\"sip:carol$u@$E2E_DOMAIN\"><display-name>Carol</display-name></entry>" --expect 201)"
e2="$(etag_of "$out")"
[[ "$e2" != "$e1" ]] || fail "ETag did not change with the document"
xa --method GET --path "$E" --expect 200 --expect-body '<display-name>Carol</display-name>' \
	--expect-header '^content-type: application/xcap-el\+xml' >/dev/null
xa --method PUT --path "$E" --ctype application/xcap-el+xml --body "<entry uri=\"sip:mallory@$E2E_DOMAIN\"/>" \
	--expect 409 --expect-body '<cannot-insert/>' >/dev/null
xa --method PUT --path "$RL/~~/resource-lists/list[@name=\"none\"]/entry" --ctype application/xcap-el+xml \
	--body "<entry uri=\"sip:x@y\"/>" --expect 409 --expect-body '<no-parent' >/dev/null
xa --method GET --path "$RL/~~/resource-lists/list[@name=\"none\"]" --expect 404 >/dev/null

step "attribute: GET, PUT (200), DELETE (200), GET 404; namespace prefixes from the query"
A="$RL/~~/resource-lists/list[1]/entry[2]/@uri"
xa --method GET --path "$A" --expect 200 --expect-body "^sip:carol$u@" --expect-header '^content-type: application/xcap-att\+xml' >/dev/null
xa --method GET --path "$RL/~~/p:resource-lists/p:list/@name" --query "xmlns(p=urn:ietf:params:xml:ns:resource-lists)" \
	--expect 200 --expect-body '^friends' >/dev/null
N="$RL/~~/resource-lists/list[1]/@note"
xa --method PUT --path "$N" --ctype application/xcap-att+xml --body "a &amp; b" --expect 201 >/dev/null
xa --method GET --path "$N" --expect 200 --expect-body '^a &amp; b' >/dev/null
xa --method DELETE --path "$N" --expect 200 >/dev/null
xa --method GET --path "$N" --expect 404 >/dev/null

step "DELETE an element; not idempotent (entry[1] of two) is 409 cannot-delete"
xa --method DELETE --path "$RL/~~/resource-lists/list[1]/entry[1]" --expect 409 --expect-body '<cannot-delete/>' >/dev/null
out="$(xa --method DELETE --path "$E" --expect 200)"
xa --method GET --path "$E" --expect 404 >/dev/null
e3="$(etag_of "$out")"

step "412 on a stale ETag (If-Match), nothing changed; If-None-Match: * on an existing document"
before="$(stored resource-lists)"
xa --method PUT --path "$RL" --ctype application/resource-lists+xml --body-file "$E2E_WORK/rl.xml" \
	--if-match "$e1" --expect 412 >/dev/null
xa --method PUT --path "$RL" --ctype application/resource-lists+xml --body-file "$E2E_WORK/rl.xml" \
	--if-none-match '*' --expect 412 >/dev/null
xa --method GET --path "$RL" --if-none-match "$e3" --expect 304 >/dev/null
assert_eq "$before" "$(stored resource-lists)" "document after the 412s"
xa --method PUT --path "$RL" --ctype application/resource-lists+xml --body-file "$E2E_WORK/rl.xml" \
	--if-match "$e3" --expect 200 >/dev/null

step "409 on invalid documents; nothing stored changed"
before="$(stored resource-lists)"
xa --method PUT --path "$RL" --ctype application/resource-lists+xml --body '<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"><list>' \
	--expect 409 --expect-body '<not-well-formed' --expect-header '^content-type: application/xcap-error\+xml' >/dev/null
xa --method PUT --path "$RL" --ctype application/resource-lists+xml --body '<other xmlns="urn:x"/>' \
	--expect 409 --expect-body '<schema-validation-error' >/dev/null
xa --method PUT --path "$RL" --ctype application/resource-lists+xml \
	--body "<resource-lists xmlns=\"urn:ietf:params:xml:ns:resource-lists\"><list name=\"a\"><entry uri=\"sip:$bob\"/><entry uri=\"sip:$bob\"/></list></resource-lists>" \
	--expect 409 --expect-body '<uniqueness-failure><exists field="entry\[@uri=' >/dev/null
xa --method PUT --path "$RL/~~/resource-lists/list[1]/entry[@uri=\"sip:$bob\"]/@uri" --ctype application/xcap-att+xml \
	--body "sip:$bob" --expect 200 >/dev/null
xa --method PUT --path "$RL/~~/resource-lists/list[1]/foo" --ctype application/xcap-el+xml --body '<foo/>' \
	--expect 409 --expect-body '<schema-validation-error' >/dev/null
xa --method PUT --path "$RL" --ctype text/plain --body-file "$E2E_WORK/rl.xml" --expect 415 >/dev/null
xa --method PUT --path "$RL" --ctype application/resource-lists+xml --body '<!DOCTYPE r [<!ENTITY a "b">]><r/>' \
	--expect 409 --expect-body '<not-well-formed' >/dev/null
assert_eq "$before" "$(stored resource-lists)" "document after the 409s"

step "xcap-caps is public and lists the application usages"
xc --method GET --path /xcap-root/xcap-caps/global/index --expect 200 \
	--expect-body '<auid>resource-lists</auid>' --expect-body '<auid>pres-rules</auid>' --expect-body '<auid>rls-services</auid>' >/dev/null

step "rls-services: a service needs a list (409), a valid one is stored"
RS=/xcap-root/rls-services/users/sip:$alice/index
xa --method PUT --path "$RS" --ctype application/rls-services+xml \
	--body '<rls-services xmlns="urn:ietf:params:xml:ns:rls-services"><service uri="sip:l@x"/></rls-services>' \
	--expect 409 --expect-body 'schema-validation-error' >/dev/null
xa --method PUT --path "$RS" --ctype application/rls-services+xml \
	--body "<rls-services xmlns=\"urn:ietf:params:xml:ns:rls-services\"><service uri=\"sip:alice$u-buddies@$E2E_DOMAIN\"><resource-list>http://127.0.0.1/xcap-root/resource-lists/users/sip:$alice/index/~~/resource-lists/list%5b@name=%22friends%22%5d</resource-list><packages><package>presence</package></packages></service></rls-services>" \
	--expect 201 >/dev/null

xc --user "bob$u" --password bpw --method PUT --path "/xcap-root/rls-services/users/sip:$bob/index" --ctype application/rls-services+xml \
	--body "<rls-services xmlns=\"urn:ietf:params:xml:ns:rls-services\"><service uri=\"sip:alice$u-buddies@$E2E_DOMAIN\"><resource-list>x</resource-list></service></rls-services>" \
	--expect 409 --expect-body 'uniqueness-failure' >/dev/null # service URIs are unique server-wide

step "pres-rules: PUT blocks bob; his SUBSCRIBE gets 403 at once; the rows are in presence_rules"
PR=/xcap-root/pres-rules/users/sip:$alice/index
pc subscribe --aor "sip:$bob" --password bpw --resource "sip:$alice" --expires 0 --expect 200
cat >"$E2E_WORK/pr.xml" <<XML
<?xml version="1.0" encoding="UTF-8"?>
<cr:ruleset xmlns="urn:ietf:params:xml:ns:pres-rules" xmlns:cr="urn:ietf:params:xml:ns:common-policy">
  <cr:rule id="b"><cr:conditions><cr:identity><cr:one id="sip:$bob"/></cr:identity></cr:conditions>
    <cr:actions><sub-handling>block</sub-handling></cr:actions></cr:rule>
  <cr:rule id="d"><cr:conditions><cr:identity><cr:many domain="other$u.test"/></cr:identity></cr:conditions>
    <cr:actions><sub-handling>confirm</sub-handling></cr:actions></cr:rule>
</cr:ruleset>
XML
xa --method PUT --path "$PR" --ctype application/auth-policy+xml --body-file "$E2E_WORK/pr.xml" --expect 201 >/dev/null
pc subscribe --aor "sip:$bob" --password bpw --resource "sip:$alice" --expires 0 --expect 403
assert_eq "other$u.test|pending
sip:$bob|block" "$(db_query "SELECT watcher, action FROM presence_rules WHERE presentity = 'sip:$alice' ORDER BY watcher")" "presence_rules rows"

step "pres-rules GET is a view of the rows, also of what simplectl writes; element GET; 409 on unsupported"
out="$(xa --method GET --path "$PR" --expect 200 --expect-body "<cr:one id=\"sip:$bob\"/>" --expect-body '<sub-handling>block</sub-handling>' \
	--expect-body "<cr:many domain=\"other$u.test\"/>")"
p1="$(etag_of "$out")"
"$SIMPLECTL_BIN" --db "$E2E_DB" rules allow "$alice" "carol$u@$E2E_DOMAIN" </dev/null >/dev/null || fail "simplectl rules allow"
sleep 0.5 # the announcement on simpled_rules
out="$(xa --method GET --path "$PR" --expect 200 --expect-body "<cr:one id=\"sip:carol$u@$E2E_DOMAIN\"/>")"
[[ "$(etag_of "$out")" != "$p1" ]] || fail "pres-rules ETag did not follow the rows"
xa --method PUT --path "$PR" --ctype application/auth-policy+xml --body-file "$E2E_WORK/pr.xml" --if-match "$p1" --expect 412 >/dev/null
xa --method PUT --path "$PR" --ctype application/auth-policy+xml \
	--body '<cr:ruleset xmlns:cr="urn:ietf:params:xml:ns:common-policy"><cr:rule id="e"><cr:conditions><cr:sphere value="work"/></cr:conditions></cr:rule></cr:ruleset>' \
	--expect 409 --expect-body 'constraint-failure' >/dev/null
assert_eq 3 "$(db_query "SELECT count(*) FROM presence_rules WHERE presentity = 'sip:$alice'")" "rows after the refused PUT"
xa --method GET --path "$PR/~~/cr:ruleset/cr:rule[cr:conditions]" --expect 400 >/dev/null

step "pres-rules: DELETE of bob's rule element lets him subscribe again"
# The view lists rules by watcher: other…, sip:bob…, sip:carol….
xa --method GET --path "$PR/~~/cr:ruleset/cr:rule[2]" --query "xmlns(cr=urn:ietf:params:xml:ns:common-policy)" \
	--expect 200 --expect-body "sip:$bob" >/dev/null
xa --method DELETE --path "$PR/~~/cr:ruleset/cr:rule[2]" --query "xmlns(cr=urn:ietf:params:xml:ns:common-policy)" \
	--expect 409 --expect-body '<cannot-delete/>' >/dev/null # rule[2] would then select carol's
xa --method DELETE --path "$PR/~~/cr:ruleset/cr:rule[@id=\"r2\"]" --query "xmlns(cr=urn:ietf:params:xml:ns:common-policy)" --expect 200 >/dev/null
pc subscribe --aor "sip:$bob" --password bpw --resource "sip:$alice" --expires 0 --expect 200
assert_eq 0 "$(db_query "SELECT count(*) FROM presence_rules WHERE presentity = 'sip:$alice' AND watcher = 'sip:$bob'")" "bob's row"

step "DELETE the whole document; SIP still served"
xa --method DELETE --path "$RL" --expect 200 >/dev/null
xa --method GET --path "$RL" --expect 404 >/dev/null
assert_eq 0 "$(db_query "SELECT count(*) FROM xcap_documents WHERE owner = '$alice' AND auid = 'resource-lists'")" "rows after DELETE"
pc subscribe --aor "sip:$bob" --password bpw --resource "sip:$alice" --expires 0 --expect 200
server_stop

step "with auth off XCAP is open, as SIP is"
server_start --auth off
xc --method PUT --path "$RL" --ctype application/resource-lists+xml --body-file "$E2E_WORK/rl.xml" --expect 201 >/dev/null
xc --method GET --path "$RL" --expect 200 --expect-body "sip:$bob" >/dev/null

step "a buddy added with an XCAP element PUT reaches the list subscription's next NOTIFY"
watch_start list --aor "sip:$alice" --resource "sip:alice$u-buddies@$E2E_DOMAIN" --duration 60 \
	--header "Supported: eventlist" --accept "multipart/related, application/rlmi+xml, application/pidf+xml"
wait_notify list "sip:$bob" >/dev/null
xc --method PUT --path "$RL/~~/resource-lists/list[@name=\"friends\"]/entry[@uri=\"sip:dave$u@$E2E_DOMAIN\"]" \
	--ctype application/xcap-el+xml --body "<entry uri=\"sip:dave$u@$E2E_DOMAIN\"/>" --expect 201 >/dev/null
wait_notify list "sip:dave$u@" >/dev/null
watch_stop list
server_stop
