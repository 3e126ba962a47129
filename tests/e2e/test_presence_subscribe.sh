#!/usr/bin/env bash
# SUBSCRIBE/NOTIFY (RFC 6665, RFC 3856): the error answers (489, 406, 423,
# 481, 403 beyond the per-watcher cap); refresh; unsubscribe; fetch
# (Expires: 0); expiry; a watcher answering 481 loses its subscription; a
# watcher that never answers is dropped after three timeouts, its NOTIFYs
# are coalesced (one outstanding at a time, the newest state next), and it
# never delays another watcher.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/scenarios/presence_lib.sh"

# T1 = 50 ms: a NOTIFY times out (Timer F = 64*T1) in 3.2 s.
server_start --auth off --min-expires 2 --max-expires 3600 --max-subscriptions-per-watcher 3 \
	--timer-t1-ms 50 --timer-t2-ms 400

alice="sip:$(e2e_uniq alice)@$E2E_DOMAIN"
bob="sip:$(e2e_uniq bob)@$E2E_DOMAIN"
carol="sip:$(e2e_uniq carol)@$E2E_DOMAIN"
subs_of() { db_query "SELECT count(*) FROM presence_subscriptions WHERE watcher = '$1'"; }

step "errors: unknown event 489, Accept without PIDF 406, short Expires 423, unknown dialog 481"
pc subscribe --aor "$bob" --resource "$alice" --event no-such-package --expect 489 \
	--expect-header '^Allow-Events:.*presence'
pc subscribe --aor "$bob" --resource "$alice" --accept 'text/plain' --expect 406
pc subscribe --aor "$bob" --resource "$alice" --accept 'application/*' --expires 60 --expect 200
pc subscribe --aor "$bob" --resource "$alice" --expires 1 --expect 423 --expect-header '^Min-Expires: *2'
pc subscribe --aor "$bob" --resource "$alice" --to-tag nosuchtag --expect 481
pc subscribe --aor "$bob" --resource "sip:x@not-served.invalid" --expect 404
assert_eq 1 "$(subs_of "$bob")" "subscriptions of bob"

step "fetch (Expires: 0): 200, one NOTIFY terminated with the state, nothing stored"
pc subscribe --aor "$carol" --resource "$alice" --expires 0 --expect 200 --linger 1.5 --log "$E2E_WORK/fetch.log"
assert_match 'terminated;reason=timeout' "$(grep cseq "$E2E_WORK/fetch.log")" "fetch NOTIFY"
assert_match 'basic>closed' "$(grep cseq "$E2E_WORK/fetch.log")" "fetch NOTIFY body"
assert_eq 0 "$(subs_of "$carol")" "subscriptions of carol after a fetch"

step "refresh: 200 with Expires, a NOTIFY, CSeq grows"
watch_start w1 --aor "$carol" --resource "$alice" --expires 60 --refresh-at 1 --duration 3
wait_notify w1 'active;expires=60' >/dev/null
for i in $(seq 40); do grep -q '"refresh": 200' "$E2E_WORK/w1.log" && break; sleep 0.1; done
assert_match '"refresh": 200, "expires": "60"' "$(cat "$E2E_WORK/w1.log")" "refresh answer"
wait_notify w1 '"cseq": 2,' >/dev/null

step "a refresh with a new Contact moves the remote target (longer, then shorter than the first)"
# The Contact is packed with the subscription: a longer one no longer fits
# its slot, a shorter one does; both must become the NOTIFY's Request-URI.
long="moved-$(printf 'x%.0s' $(seq 60))"
mover="sip:$(e2e_uniq mover)@$E2E_DOMAIN"
watch_start mv --aor "$mover" --resource "$alice" --expires 60 --refresh-at 1 \
	--refresh-contact-user "$long" --duration 3
wait_notify mv 'active;expires=60' >/dev/null
line="$(wait_notify mv '"cseq": 2,')"
assert_match "^sip:$long@" "$(json_field "$line" ruri)" "NOTIFY after the refresh goes to the new Contact"
assert_match "sip:$long@" "$(db_query "SELECT contact FROM presence_subscriptions WHERE watcher = '$mover'")" \
	"stored contact after the refresh"
watch_stop mv
assert_match "^sip:$long@" "$(json_field "$(last_notify mv)" ruri)" "final NOTIFY to the new Contact"
watch_start mv2 --aor "$mover" --resource "$alice" --expires 60 --refresh-at 1 \
	--refresh-contact-user "c" --duration 3
line="$(wait_notify mv2 '"cseq": 2,')"
assert_match "^sip:c@" "$(json_field "$line" ruri)" "NOTIFY after a refresh to a shorter Contact"
watch_stop mv2

step "Expires above max-expires is capped; an Event id is echoed; TCP; a Record-Route becomes the route set"
henry="sip:$(e2e_uniq henry)@$E2E_DOMAIN"
watch_start tcp --tcp --aor "$henry" --resource "$alice" --event 'presence;id=t1' --expires 99999 \
	--record-route --duration 2
assert_match '"subscribe": 200, "expires": "3600"' "$(watch_result tcp)" "SUBSCRIBE answer over TCP"
line="$(wait_notify tcp '"event": "presence;id=t1"')"
assert_match 'transport=tcp' "$(json_field "$line" contact)" "NOTIFY Contact over TCP"
assert_match "rr=one>, <sip:192.0.2.9:5060;lr;rr=two>" "$(json_field "$line" route)" "NOTIFY Route (the Record-Route in order)"
watch_stop tcp
assert_match '"unsubscribe": 200' "$(cat "$E2E_WORK/tcp.log")" "unsubscribe with an Event id"
assert_match 'terminated;reason=timeout' "$(last_notify tcp)" "final NOTIFY over TCP"

step "unsubscribe: final NOTIFY terminated;reason=timeout and the row is gone"
watch_stop w1
assert_match '"unsubscribe": 200' "$(cat "$E2E_WORK/w1.log")" "unsubscribe answer"
assert_match '"cseq": 3,.*terminated;reason=timeout' "$(last_notify w1)" "final NOTIFY"
assert_eq 0 "$(subs_of "$carol")" "subscriptions of carol after unsubscribing"

step "expiry: terminated;reason=timeout when the subscription runs out"
watch_start w2 --aor "$carol" --resource "$alice" --expires 3 --duration 8 --no-unsubscribe
wait_notify w2 'terminated;reason=timeout' 8 >/dev/null
assert_eq 0 "$(subs_of "$carol")" "subscriptions of carol after expiry"
watch_stop w2

step "a watcher answering 481 loses its subscription"
dave="sip:$(e2e_uniq dave)@$E2E_DOMAIN"
watch_start w3 --aor "$dave" --resource "$alice" --expires 600 --reply-481 --duration 3 --no-unsubscribe
wait_notify w3 '"answered": 481' >/dev/null
for i in $(seq 30); do [[ "$(subs_of "$dave")" == 0 ]] && break; sleep 0.1; done
assert_eq 0 "$(subs_of "$dave")" "subscriptions of dave after 481"
pidf "$alice" open x >"$E2E_WORK/x.xml"
pc publish --aor "$alice" --body-file "$E2E_WORK/x.xml" --expires 600 --expect 200 --etag-out "$E2E_WORK/etag"
sleep 1
assert_eq 1 "$(notify_count w3)" "NOTIFYs to dave after the 481"
watch_stop w3

step "per-watcher cap: the fourth subscription is refused"
gina="sip:$(e2e_uniq gina)@$E2E_DOMAIN"
for i in 1 2 3; do
	pc subscribe --aor "$gina" --resource "sip:res$i$(e2e_uniq r)@$E2E_DOMAIN" --expires 60 --expect 200
done
pc subscribe --aor "$gina" --resource "sip:res4$(e2e_uniq r)@$E2E_DOMAIN" --expires 60 --expect 403 \
	--expect-header '^SIP/2.0 403 .*Too Many Subscriptions'
assert_eq 3 "$(subs_of "$gina")" "subscriptions of gina at the cap"

step "a silent watcher: coalesced NOTIFYs, others not delayed, dropped after 3 timeouts"
erin="sip:$(e2e_uniq erin)@$E2E_DOMAIN"
frank="sip:$(e2e_uniq frank)@$E2E_DOMAIN"
watch_start silent --aor "$erin" --resource "$alice" --expires 600 --no-answer --duration 20 --no-unsubscribe
watch_start fast --aor "$frank" --resource "$alice" --expires 600 --duration 30
wait_notify silent '"cseq": 1,' >/dev/null
etag="$(cat "$E2E_WORK/etag")"
for v in 1 2 3 4 5; do
	pidf "$alice" open x "v$v" >"$E2E_WORK/v.xml"
	pc publish --aor "$alice" --etag "$etag" --body-file "$E2E_WORK/v.xml" --expires 600 --expect 200 \
		--etag-out "$E2E_WORK/etag"
	etag="$(cat "$E2E_WORK/etag")"
	wait_notify fast "note>v$v<" 3 >/dev/null
done
assert_eq 1 "$(notify_count silent)" "NOTIFYs to the silent watcher while its first is outstanding"
# Timer F ends the first; the next NOTIFY carries the newest state only.
line="$(wait_notify silent '"cseq": 2,' 8)"
assert_match 'note>v5<' "$line" "coalesced NOTIFY"
assert_eq 2 "$(notify_count silent)" "NOTIFYs to the silent watcher after its first timed out"
# A third change, a third timeout: the subscription ends (no final NOTIFY
# to a watcher that does not answer).
sleep 3.5
pidf "$alice" open x v6 >"$E2E_WORK/v.xml"
pc publish --aor "$alice" --etag "$etag" --body-file "$E2E_WORK/v.xml" --expires 600 --expect 200
wait_notify silent '"cseq": 3,' 8 >/dev/null
for i in $(seq 150); do [[ "$(subs_of "$erin")" == 0 ]] && break; sleep 0.1; done
assert_eq 0 "$(subs_of "$erin")" "subscriptions of the silent watcher after three timeouts"
assert_eq 1 "$(subs_of "$frank")" "subscriptions of the fast watcher"
watch_stop silent
watch_stop fast

server_stop
