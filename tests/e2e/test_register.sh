#!/usr/bin/env bash
# The registrar over UDP (RFC 3261 §10): register, refresh and fetch;
# several contacts with q-values; removing one binding and all of them;
# the wildcard; expiry shortened to max-expires; default-expires.
source "$(dirname "$0")/lib.sh"

server_start --auth off --min-expires 60 --max-expires 3600 --default-expires 1800

# expires_of CONTACT_USER RESPONSE: the ;expires of that contact.
expires_of() {
	printf '%s\n' "$2" | tr -d '\r' | grep -iE '^(contact|m)[[:space:]]*:' |
		tr ',' '\n' | grep -i "sip:$1@" | sed -nE 's/.*;[[:space:]]*expires[[:space:]]*=[[:space:]]*([0-9]+).*/\1/Ip' | head -n 1
}
in_range() { # VALUE LOW HIGH WHAT
	[[ "$1" =~ ^[0-9]+$ ]] && (($1 >= $2 && $1 <= $3)) || fail "$4: $1 not in [$2, $3]"
}

step "register, refresh, fetch (sipp)"
u1="$(e2e_uniq reg)"
user_add "$u1" secret
SIPP_USER="$u1" SIPP_EXPIRES=600 sipp_run register
assert_eq 1 "$(db_query "SELECT count(*) FROM location WHERE aor = 'sip:$u1@$E2E_DOMAIN'")" "location rows of $u1"
left="$(db_query "SELECT expires_at - extract(epoch FROM now())::bigint FROM location WHERE aor = 'sip:$u1@$E2E_DOMAIN'")"
in_range "$left" 590 600 "stored expiry of $u1"
sipc register --aor "sip:$u1@$E2E_DOMAIN" --expect 200 --expect-contacts 1
in_range "$(expires_of ua1 "$SIPC_OUT")" 590 600 "expires of ua1 in a fetch"

step "two contacts with q-values, then a third (sipp)"
u2="$(e2e_uniq twoc)"
user_add "$u2" secret
SIPP_USER="$u2" SIPP_EXPIRES=600 sipp_run two_contacts
rows="$(db_query "SELECT split_part(contact, '@', 1) || '=' || q FROM location WHERE aor = 'sip:$u2@$E2E_DOMAIN' ORDER BY contact")"
assert_eq "sip:ca=0.5 sip:cb=1 sip:cc=1" "$(echo $rows)" "contacts and q of $u2"
sipc register --aor "sip:$u2@$E2E_DOMAIN" --expect 200 --expect-contacts 3
in_range "$(expires_of ca "$SIPC_OUT")" 590 600 "expires of ca"
in_range "$(expires_of cc "$SIPC_OUT")" 290 300 "expires of cc (Contact parameter)"
# q need not be listed, but if it is it must be the registered one.
qa="$(printf '%s\n' "$SIPC_OUT" | tr -d '\r' | tr ',' '\n' | grep -i 'sip:ca@' | sed -nE 's/.*;[[:space:]]*q[[:space:]]*=[[:space:]]*([0-9.]+).*/\1/p')"
[[ -z "$qa" || "$qa" == 0.5 || "$qa" == 0.50 || "$qa" == 0.500 ]] || fail "q of ca listed as $qa, registered 0.5"

step "unregister one binding, then the other (sipp)"
u3="$(e2e_uniq unreg)"
user_add "$u3" secret
SIPP_USER="$u3" sipp_run unregister
assert_eq 0 "$(db_query "SELECT count(*) FROM location WHERE aor = 'sip:$u3@$E2E_DOMAIN'")" "location rows of $u3"

step "wildcard Contact: * with Expires: 0 (sipp)"
u4="$(e2e_uniq wild)"
user_add "$u4" secret
SIPP_USER="$u4" sipp_run wildcard
assert_eq 0 "$(db_query "SELECT count(*) FROM location WHERE aor = 'sip:$u4@$E2E_DOMAIN'")" "location rows of $u4"

step "wildcard with a non-zero Expires is a 400 (RFC 3261 §10.3 step 6)"
sipc register --aor "sip:$u4@$E2E_DOMAIN" --contact '*' --expires 60 --expect 400

step "Expires above max-expires is shortened, no Expires gets default-expires"
u5="$(e2e_uniq exp)"
user_add "$u5" secret
sipc register --aor "sip:$u5@$E2E_DOMAIN" --contact "<sip:big@127.0.0.1:5099>" --expires 99999 \
	--expect 200 --expect-contacts 1
in_range "$(expires_of big "$SIPC_OUT")" 3590 3600 "expires of a 99999 s request (max-expires 3600)"
sipc register --aor "sip:$u5@$E2E_DOMAIN" --contact "<sip:dflt@127.0.0.1:5099>" \
	--expect 200 --expect-contacts 2
in_range "$(expires_of dflt "$SIPC_OUT")" 1790 1800 "expires with no Expires (default-expires 1800)"

step "a REGISTER whose To is another domain's AOR gets 404 (RFC 3261 §10.3 step 3)"
sipc register --ruri "sip:$E2E_DOMAIN" --aor "sip:$u5@not-served.invalid" \
	--contact "<sip:x@127.0.0.1:5099>" --expires 60 --expect 404

server_stop
