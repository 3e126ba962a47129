#!/usr/bin/env bash
# Forking and CANCEL (RFC 3261 §16.7 step 10, §16.10): bob has two
# contacts; both ring, one answers, the other gets CANCEL (and its 487 is
# ACKed hop by hop); then the caller cancels a ringing call itself; and
# contacts of different q are tried one group after the other.
source "$(dirname "$0")/lib.sh"
source "$E2E_DIR/scenarios/call_lib.sh"

server_start --auth off
calls_require_proxy

alice="$(e2e_uniq alice)"
bob="$(e2e_uniq bob)"
carol="$(e2e_uniq carol)"
user_add "$alice" secret
user_add "$bob" secret
user_add "$carol" secret

step "bob has two contacts: both ring, b1 answers, b2 is cancelled"
uas_start b1 call_uas "$bob"
uas_start b2 call_uas_ring "$bob"
uac_run call_uac "$alice" "$bob"
uas_wait b1
uas_wait b2
assert_match "^CANCEL sip:$bob@127\.0\.0\.1:" "$(cat "$E2E_WORK/uas-b2.messages.log")" "CANCEL to b2"

step "the caller cancels: CANCEL propagated, 487 relayed"
uas_start c1 call_uas_ring "$carol"
uac_run call_uac_cancel "$alice" "$carol"
uas_wait c1

step "q-values: the q=1.0 contact is busy, then the q=0.5 one is tried and answers"
dave="$(e2e_uniq dave)"
user_add "$dave" secret
UAS_Q=1.0 uas_start d1 call_uas_busy "$dave"
UAS_Q=0.5 uas_start d2 call_uas "$dave"
uac_run call_uac "$alice" "$dave"
uas_wait d1
uas_wait d2
# Sequential: d2's INVITE comes after d1's 486 (sent 500 ms after its INVITE).
gap="$("$PYTHON" - "$E2E_WORK/uas-d1.messages.log" "$E2E_WORK/uas-d2.messages.log" <<'EOF'
import datetime, sys
def first_invite(path):
    stamp = None
    for line in open(path, errors="replace"):
        if line.startswith("-----"):
            stamp = line.strip("- \n")
        elif line.startswith("INVITE "):
            return datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f")
    raise SystemExit("no INVITE in " + path)
print(int((first_invite(sys.argv[2]) - first_invite(sys.argv[1])).total_seconds() * 1000))
EOF
)"
(( gap >= 400 )) || fail "q=0.5 contact tried ${gap} ms after the q=1.0 one (expected after its 486)"

server_stop
