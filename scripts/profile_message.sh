#!/usr/bin/env bash
# scripts/profile_message.sh [relay|store] [CALLS]: instructions per MESSAGE
# under valgrind --tool=callgrind.
#
# Timing figures on a shared machine are noise; instruction counts are
# repeatable to a fraction of a percent, so optimisations of the MESSAGE
# paths are judged with this.  simpled runs under callgrind with instrumentation
# off; it is switched on once the server is ready (and, for relay, the UAS
# is registered), CALLS MESSAGEs are sent by sipp at a rate callgrind can
# keep up with, then the profile is dumped and summarised:
#   relay: sipp UAC -> simpled -> sipp UAS (200)
#   store: sipp UAC -> simpled -> PostgreSQL -> 202
# Prints "Ir/MESSAGE" and writes the profile and callgrind_annotate output
# to var/profile/MODE-DATE/.  Knobs: PROF_RATE (300/s), PROF_BUILD (build).
set -euo pipefail
SD_SCRIPT=profile_message.sh
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
exec </dev/null

mode="${1:-relay}"
calls="${2:-3000}"
case "$mode" in relay | store) ;; *) sd_die "usage: $0 [relay|store] [CALLS]" ;; esac
rate="${PROF_RATE:-300}"
BUILD="${PROF_BUILD:-$SD_ROOT/build}"
SIMPLED="$BUILD/server/simpled"
SIMPLECTL="$BUILD/server/ctl/simplectl"
[[ -x "$SIMPLED" ]] || sd_die "$SIMPLED not built"
DOMAIN=example.test
OUT="$SD_ROOT/var/profile/$mode-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"
PG_DIR="$SD_ROOT/var/prof-pg"
SERVER_PID=
UAS_PID=
cleanup() {
	[[ -n "$UAS_PID" ]] && kill -TERM "$UAS_PID" 2>/dev/null
	[[ -n "$SERVER_PID" ]] && kill -TERM "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
	[[ $SD_PG_STARTED -eq 1 ]] && sd_private_db_stop "$PG_DIR"
	return 0
}
trap cleanup EXIT
sd_private_db "$PG_DIR"
DB="$SD_PG_CONNINFO"
q() { psql -d "$DB" -X -q -t -A -v ON_ERROR_STOP=1 -c "$1"; }
"$SIMPLECTL" --db "$DB" migrate >"$OUT/migrate.log" 2>&1 || sd_die "migrate failed"
q "DELETE FROM messages; DELETE FROM location; DELETE FROM users WHERE domain = '$DOMAIN';
   INSERT INTO users (username, domain, ha1_md5, ha1_sha256)
   SELECT 'bench' || i, '$DOMAIN', md5('x' || i), md5('y' || i) FROM generate_series(0, 2) AS i;" >/dev/null
free_port() {
	python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
PORT="$(free_port)"
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT/callgrind.out" \
	"$SIMPLED" --listen "udp:127.0.0.1:$PORT" --db "$DB" --domain "$DOMAIN" --auth off \
	--log-level info --max-requests-per-ip 0 >"$OUT/simpled.log" 2>&1 &
SERVER_PID=$!
for ((i = 0; i < 600; i++)); do
	grep -q "server: ready" "$OUT/simpled.log" && break
	kill -0 "$SERVER_PID" 2>/dev/null || { cat "$OUT/simpled.log" >&2; sd_die "simpled exited"; }
	sleep 0.1
done
grep -q "server: ready" "$OUT/simpled.log" || sd_die "simpled not ready"
user=bench1
if [[ "$mode" == relay ]]; then
	user=bench0
	uport="$(free_port)"
	python3 - "$PORT" "$uport" "$DOMAIN" <<'EOF'
import socket, sys
server, lport, dom = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", lport))
s.settimeout(10)
req = ("REGISTER sip:%s SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKprof1;rport\r\n"
       "Max-Forwards: 70\r\nFrom: <sip:bench0@%s>;tag=p1\r\nTo: <sip:bench0@%s>\r\n"
       "Call-ID: prof-reg\r\nCSeq: 1 REGISTER\r\nContact: <sip:bench0@127.0.0.1:%d>\r\n"
       "Expires: 3600\r\nContent-Length: 0\r\n\r\n") % (dom, lport, dom, dom, lport)
s.sendto(req.encode(), ("127.0.0.1", server))
while not s.recv(65535).startswith(b"SIP/2.0 200"):
    pass
EOF
	mkdir -p "$OUT/uas"
	(cd "$OUT/uas" && exec sipp -sf "$SD_ROOT/tests/e2e/scenarios/message_uas.xml" -i 127.0.0.1 \
		-p "$uport" -timeout 600s -nostdin -trace_err -error_file errors.log \
		"127.0.0.1:$PORT" >sipp.out 2>&1) &
	UAS_PID=$!
	sleep 0.5
fi
callgrind_control -i on "$SERVER_PID" >/dev/null
mkdir -p "$OUT/uac"
(cd "$OUT/uac" && sipp -sf "$SD_ROOT/tests/e2e/scenarios/message_uac.xml" -i 127.0.0.1 \
	-m "$calls" -r "$rate" -l 100 -timeout 300s -nostdin -trace_stat -stf stat.csv \
	-trace_err -error_file errors.log -key sd_domain "$DOMAIN" -s "$user" \
	"127.0.0.1:$PORT" >sipp.out 2>&1) || sd_log "sipp UAC reported failures (see $OUT/uac)"
callgrind_control -i off "$SERVER_PID" >/dev/null
callgrind_control -d "$SERVER_PID" >/dev/null
sleep 1
read -r ok rtx < <(python3 -c 'import sys; r=[l.rstrip("\n").split(";") for l in open(sys.argv[1]) if l.strip()]; print(r[-1][r[0].index("SuccessfulCall(C)")], r[-1][r[0].index("Retransmissions(C)")])' "$OUT/uac/stat.csv")
prof="$(ls -t "$OUT"/callgrind.out* | head -n 1)"
callgrind_annotate --inclusive=no "$prof" >"$OUT/annotate.txt" 2>/dev/null
callgrind_annotate --inclusive=yes "$prof" >"$OUT/annotate-inclusive.txt" 2>/dev/null
ir="$(grep -m1 -E 'PROGRAM TOTALS' "$OUT/annotate.txt" | awk '{gsub(",", "", $1); print $1}')"
# Retransmissions are parsed and absorbed too: a run with any is not
# comparable (lower PROF_RATE).
echo "$mode: $ok of $calls MESSAGEs answered, $rtx retransmissions; $ir Ir; $((ir / (ok > 0 ? ok : 1))) Ir/MESSAGE ($OUT)"
