#!/usr/bin/env bash
# scripts/bench.sh [core|presence|message|rls|calls]: measures simpled.
#
# calls: scripts/bench_calls.sh twice, dialog tracking on then off (call
# setups/s saturated and at a fixed rate, server CPU per call, peak RSS),
# then both side by side.  Bounded: BENCH_CALLS (20000) and
# BENCH_CALL_LAT_CALLS (5000) per run unless set, a few minutes in all.
#
# message: MESSAGE/s relayed to an online UAS (sipp UAS registered from
# its own port, since UDP requests to a binding go to the REGISTER's
# source), MESSAGE/s stored durably for an offline user (each 202 stands
# for a committed row; checked against the table afterwards), and the
# delivery rate of BENCH_MSG_DELIVER (1000) stored messages when their
# recipient registers (REGISTER to the last row deleted); under the
# table, the server's CPU time (user + system) per relayed and per stored
# MESSAGE, which shows whether the server or the load limited the run.  Knobs:
# BENCH_MSG_CALLS (100000), BENCH_MSG_CONCURRENCY (400); BENCH_BUILD and
# BENCH_PG_DIR move the build and the cluster (any mode).
#
# presence: against the real server and durable PostgreSQL, with
# tests/bench/presence_load (C, epoll, one UDP socket per 1/16 of the
# watchers; it answers every NOTIFY): PUBLISH/s (initial, modify, refresh;
# each 200 after commit), SUBSCRIBE/s including the first NOTIFY, fan-out
# NOTIFY/s delivered at steady PUBLISH rates (100 presentities x 10 and x
# 200 watchers) with publish-to-notify p50/p99, and the server's VmRSS with
# 100,000 subscriptions (total and per subscription).  About 3 minutes.
# Knobs: BENCH_PRES_PUBLISHERS (20000), BENCH_PRES_WINDOW (500),
# BENCH_PRES_SMALL_RATES (1000,1500,2000), BENCH_PRES_BIG_RATES
# (50,100,125), BENCH_PRES_DURATION (6 s), BENCH_PRES_MEM_HOLD (35 s).
#
# rls: the resource list server (RFC 4662): BENCH_RLS_LISTS (1000) users,
# each subscribed to their own list of BENCH_RLS_BUDDIES (50) buddies out of
# BENCH_RLS_PRESENTITIES (1000) presentities (each buddy is on 50 lists;
# the lists are RFC 4826 documents written into xcap_documents before the
# server starts), then PUBLISH modifies at BENCH_RLS_RATES (100,200,400)/s
# for BENCH_RLS_DURATION (6) s each: list NOTIFY/s, bytes per NOTIFY,
# publish-to-notify p50/p99, and the server's VmRSS before and after the
# list subscriptions.  About a minute.
#
# core (the default), on 127.0.0.1 only, bounded in calls and time
# (a few minutes at most):
#   - OPTIONS/s, saturated (sipp, BENCH_CONCURRENCY calls in flight) and
#     response times at a moderate fixed rate;
#   - REGISTER/s with one user per call (sipp -inf), auth off;
#   - REGISTER/s with Digest (MD5), auth on: tests/e2e/sipclient.py bench,
#     since sipp 3.6.1 cannot answer simpled's challenges (it answers the
#     first one, SHA-256, and knows only MD5);
#   - p50/p99 response times (sipp -trace_rtt; the client's own for auth on);
#   - the server's peak RSS (VmHWM) for each server run.
# simpled is pinned to CPU 1 and the load generator to CPU 0 (taskset);
# PostgreSQL runs on either.  The private cluster lives in var/bench-pg;
# results and logs go to var/bench/DATE/.
#
# Knobs: BENCH_USERS (10000), BENCH_OPTIONS_CALLS (60000),
# BENCH_CONCURRENCY (200), BENCH_LAT_RATE (1000/s), BENCH_LAT_CALLS (5000).
set -euo pipefail
SD_SCRIPT=bench.sh
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
exec </dev/null

usage() {
	sed -n '2,3p' "$0" | sed 's/^# \{0,1\}//' >&2
}

what="${1:-core}"
case "$what" in
core | message | presence | rls) ;;
calls)
	here="$(dirname "${BASH_SOURCE[0]}")"
	export BENCH_CALLS="${BENCH_CALLS:-20000}" BENCH_CALL_LAT_CALLS="${BENCH_CALL_LAT_CALLS:-5000}"
	declare -A res=()
	for tracking in on off; do
		log="$(mktemp)"
		BENCH_DIALOG_TRACKING=$tracking "$here/bench_calls.sh" | tee "$log" ||
			{ rm -f "$log"; sd_die "bench_calls.sh (tracking $tracking) failed"; }
		res[$tracking]="$(grep '^RESULT ' "$log" | tail -n 1)"
		rm -f "$log"
		[[ -n "${res[$tracking]}" ]] || sd_die "bench_calls.sh (tracking $tracking) printed no RESULT line"
	done
	field() { sed -E "s/.* $2=([^ ]*).*/\1/" <<<"${res[$1]}"; }
	echo
	echo "call setups through the proxy, dialog tracking on vs off (same build, one run each: noisy)"
	printf '%-34s %12s %12s\n' "" "tracking on" "tracking off"
	printf '%-34s %12s %12s\n' "calls/s, saturated" "$(field on sat)" "$(field off sat)"
	printf '%-34s %12s %12s\n' "calls/s, fixed rate (${BENCH_CALL_RATE:-1000}/s)" "$(field on rate)" "$(field off rate)"
	printf '%-34s %12s %12s\n' "server CPU us/call, saturated" "$(field on sat_us)" "$(field off sat_us)"
	printf '%-34s %12s %12s\n' "server CPU us/call, fixed rate" "$(field on rate_us)" "$(field off rate_us)"
	printf '%-34s %12s %12s\n' "peak RSS MiB" "$(field on rss)" "$(field off rss)"
	exit 0
	;;
-h | --help)
	usage
	exit 0
	;;
*)
	usage
	exit 2
	;;
esac

USERS="${BENCH_USERS:-10000}"
OPTIONS_CALLS="${BENCH_OPTIONS_CALLS:-60000}"
CONC="${BENCH_CONCURRENCY:-200}"
# The REGISTER throughput run: enough unique users for several seconds of
# load, and enough in flight that a batch commit (a few ms) never leaves
# the server idle: real registrars face many clients, each with one
# REGISTER outstanding.
REG_USERS="${BENCH_REG_USERS:-120000}"
REG_CONC="${BENCH_REG_CONCURRENCY:-3000}"
LAT_RATE="${BENCH_LAT_RATE:-1000}"
LAT_CALLS="${BENCH_LAT_CALLS:-5000}"
DOMAIN=example.test
PASSWORD=bench-secret

ensure_packages
BUILD="${BENCH_BUILD:-$SD_ROOT/build}"
mkdir -p "$BUILD"
sd_build "$BUILD" Release -DSIMPLED_WERROR=OFF -DSIMPLED_SANITIZE=OFF
SIMPLED="$BUILD/server/simpled"
SIMPLECTL="$BUILD/server/ctl/simplectl"
[[ -x "$SIMPLED" && -x "$SIMPLECTL" ]] || sd_die "simpled or simplectl was not built"
SIPCLIENT="$SD_ROOT/tests/e2e/sipclient.py"
SCEN="$SD_ROOT/tests/bench/scenarios"

# CPU placement: the server on 1, the load on 0, when there are two.
if [[ $(nproc) -ge 2 ]] && command -v taskset >/dev/null; then
	PIN_SERVER=(taskset -c 1)
	PIN_LOAD=(taskset -c 0)
else
	sd_log "fewer than 2 CPUs (or no taskset): running unpinned"
	PIN_SERVER=()
	PIN_LOAD=()
fi

OUT="$SD_ROOT/var/bench/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"
PG_DIR="${BENCH_PG_DIR:-$SD_ROOT/var/bench-pg}"
SERVER_PID=

cleanup() {
	[[ -n "${UAS_PID:-}" ]] && kill -TERM "$UAS_PID" 2>/dev/null
	if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
		kill -TERM "$SERVER_PID" 2>/dev/null || true
		wait "$SERVER_PID" 2>/dev/null || true
	fi
	[[ $SD_PG_STARTED -eq 1 ]] && sd_private_db_stop "$PG_DIR"
	return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

sd_private_db "$PG_DIR"
DB="$SD_PG_CONNINFO"
q() { psql -d "$DB" -X -q -t -A -v ON_ERROR_STOP=1 -c "$1"; }

"$SIMPLECTL" --db "$DB" migrate >"$OUT/migrate.log" 2>&1 ||
	{ cat "$OUT/migrate.log" >&2; sd_die "simplectl migrate failed"; }

# USERS users bench0..benchN-1 in one statement; HA1 = H(user:realm:pw).
sd_log "creating $USERS users"
q "DELETE FROM location; DELETE FROM users WHERE domain = '$DOMAIN' AND username LIKE 'bench%';
   INSERT INTO users (username, domain, ha1_md5, ha1_sha256)
   SELECT 'bench' || i, '$DOMAIN',
          md5('bench' || i || ':$DOMAIN:$PASSWORD'),
          encode(sha256(convert_to('bench' || i || ':$DOMAIN:$PASSWORD', 'UTF8')), 'hex')
   FROM generate_series(0, $USERS - 1) AS i;" >/dev/null
{
	echo SEQUENTIAL
	for ((i = 0; i < USERS; i++)); do echo "bench$i"; done
} >"$OUT/users.csv"
{
	echo SEQUENTIAL
	for ((i = 0; i < REG_USERS; i++)); do echo "reg$i"; done
} >"$OUT/reg-users.csv"

free_port() {
	python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
PORT="$(free_port)"

start_server() { # AUTH
	local log="$OUT/simpled-auth-$1.log" i
	"${PIN_SERVER[@]}" "$SIMPLED" --listen "udp:127.0.0.1:$PORT" --db "$DB" --domain "$DOMAIN" --xcap-listen off \
		--auth "$1" --log-level info --max-requests-per-ip 0 </dev/null >"$log" 2>&1 &
	SERVER_PID=$!
	for ((i = 0; i < 300; i++)); do
		grep -q "server: ready" "$log" && return 0
		kill -0 "$SERVER_PID" 2>/dev/null || { tail -n 20 "$log" >&2; sd_die "simpled exited at start"; }
		sleep 0.1
	done
	sd_die "simpled not ready within 30 s (log: $log)"
}

# CPU time the server has used so far (user + system), in ms: per MESSAGE
# it tells whether the server or the load generator limits a run.
server_cpu_ms() {
	awk -v hz="$(getconf CLK_TCK)" '{ printf "%d", ($14 + $15) * 1000 / hz }' "/proc/$SERVER_PID/stat" 2>/dev/null || echo 0
}
CPU_NOTES=()
cpu_note() { # WHAT CPU_MS_BEFORE COUNT
	local used=$(($(server_cpu_ms) - $2))
	CPU_NOTES+=("$(printf ' server CPU for %s: %d ms, %d us per MESSAGE' "$1" "$used" "$((used * 1000 / ($3 > 0 ? $3 : 1)))")")
}

# The server's peak resident set, in MiB.
peak_rss() {
	awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$SERVER_PID/status" 2>/dev/null || echo "?"
}

stop_server() {
	kill -TERM "$SERVER_PID" 2>/dev/null || true
	wait "$SERVER_PID" 2>/dev/null || true
	SERVER_PID=
}

# Summarises a sipp run: "calls failed seconds rate p50 p99".
summarise() { # STATFILE RTTFILE NANOSECONDS
	python3 - "$@" <<'EOF'
import sys
stat, rtt, secs = sys.argv[1], sys.argv[2], int(sys.argv[3]) / 1e9
ok = failed = 0
try:
    rows = [l.rstrip("\n").split(";") for l in open(stat) if l.strip()]
    head, last = rows[0], rows[-1]
    ok = int(last[head.index("SuccessfulCall(C)")])
    failed = int(last[head.index("FailedCall(C)")])
except (OSError, ValueError, IndexError):
    pass
times = []
try:
    for line in open(rtt):
        f = line.strip().split(";")
        if len(f) >= 2:
            try:
                times.append(float(f[1]))
            except ValueError:
                pass
except OSError:
    pass
times.sort()
def pct(p):
    return "%.2f" % times[min(len(times) - 1, int(len(times) * p))] if times else "n/a"
print(ok, failed, "%.2f" % secs, "%.0f" % (ok / secs if secs > 0 else 0), pct(0.50), pct(0.99))
EOF
}

# run_sipp LABEL SCENARIO CALLS RATE LIMIT [sipp options...]: prints the
# summary line; never fails the script (an overloaded run has failures
# and they are reported).
run_sipp() {
	local label="$1" sf="$2" calls="$3" rate="$4" limit="$5"
	shift 5
	local dir="$OUT/$label" t0 t1 lport
	mkdir -p "$dir"
	lport="$(free_port)"
	t0="$(date +%s%N)"
	(cd "$dir" && "${PIN_LOAD[@]}" sipp -sf "$sf" -i 127.0.0.1 -p "$lport" \
		-m "$calls" -r "$rate" -rp 1000 -l "$limit" -timeout 60s \
		-max_recv_loops 10000 -max_sched_loops 10000 -buff_size 4194304 -nostdin \
		-trace_stat -stf stat.csv -fd 1 -trace_rtt -rtt_freq 1000 \
		-trace_err -error_file errors.log -trace_screen -screen_file screen.log \
		-key sd_domain "$DOMAIN" "$@" "127.0.0.1:$PORT" </dev/null >sipp.out 2>&1) || true
	t1="$(date +%s%N)"
	local rtt
	rtt="$(ls "$dir"/*_rtt.csv 2>/dev/null | head -n 1 || true)"
	summarise "$dir/stat.csv" "${rtt:-/nonexistent}" "$((t1 - t0))"
}

# run_py LABEL [sipclient bench options...]: sets PY_LINE to the
# client's summary line (never fails the script).
PY_LINE=
run_py() {
	local label="$1"
	shift
	PY_LINE="$("${PIN_LOAD[@]}" python3 "$SIPCLIENT" --server "127.0.0.1:$PORT" --timeout 90 bench \
		--domain "$DOMAIN" --prefix bench --password "$PASSWORD" "$@" 2>"$OUT/$label.err" || true)"
	echo "$PY_LINE" >"$OUT/$label.out"
}
val() { sed -nE "s/.*(^| )$1=([^ ]+).*/\2/p" <<<"$PY_LINE"; }
py_row() { # WHAT
	row "$1" "$(val rate | cut -d. -f1)" "$(val "done")" "$(val failed)" "$(val p50_ms)" "$(val p99_ms)" "${2:--}"
}

RESULTS=()
row() { RESULTS+=("$(printf '%-40s %9s %9s %7s %9s %9s %9s' "$@")"); }

# register_from PORT USER: one REGISTER of USER@DOMAIN with the contact
# 127.0.0.1:PORT, sent from that port (the binding's destination is the
# REGISTER's source address).
register_from() {
	python3 - "$PORT" "$1" "$2" "$DOMAIN" <<'EOF'
import random, socket, sys
server, lport, user, dom = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", lport))
s.settimeout(5)
tag = "%x" % random.getrandbits(48)
req = ("REGISTER sip:%s SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK%s;rport\r\n"
       "Max-Forwards: 70\r\nFrom: <sip:%s@%s>;tag=%s\r\nTo: <sip:%s@%s>\r\n"
       "Call-ID: reg-%s\r\nCSeq: 1 REGISTER\r\nContact: <sip:%s@127.0.0.1:%d>\r\n"
       "Expires: 3600\r\nContent-Length: 0\r\n\r\n") % (dom, lport, tag, user, dom, tag, user, dom,
                                                       tag, user, lport)
for _ in range(5):
    s.sendto(req.encode(), ("127.0.0.1", server))
    try:
        while True:
            data = s.recv(65535).decode(errors="replace")
            if data.startswith("SIP/2.0 200"):
                sys.exit(0)
            if data.startswith("SIP/2.0 ") and not data.startswith("SIP/2.0 1"):
                sys.exit("REGISTER: " + data.split("\r\n", 1)[0])
    except socket.timeout:
        pass
sys.exit("REGISTER: no answer")
EOF
}

# uas_start PORT LABEL: a sipp UAS answering every MESSAGE with 200.
UAS_PID=
uas_start() {
	mkdir -p "$OUT/$2"
	(cd "$OUT/$2" && exec "${PIN_LOAD[@]}" sipp -sf "$SD_ROOT/tests/e2e/scenarios/message_uas.xml" \
		-i 127.0.0.1 -p "$1" -timeout 600s -max_recv_loops 10000 -buff_size 4194304 -nostdin \
		-trace_err -error_file errors.log "127.0.0.1:$PORT" </dev/null >sipp.out 2>&1) &
	UAS_PID=$!
	sleep 0.5
}
uas_stop() {
	[[ -n "$UAS_PID" ]] || return 0
	kill -TERM "$UAS_PID" 2>/dev/null || true
	wait "$UAS_PID" 2>/dev/null || true
	UAS_PID=
}

bench_message() {
	local calls="${BENCH_MSG_CALLS:-100000}" conc="${BENCH_MSG_CONCURRENCY:-400}"
	local ndeliver="${BENCH_MSG_DELIVER:-1000}" uport ok failed secs rate p50 p99 rows t0 t1 left i
	local scen="$SD_ROOT/tests/e2e/scenarios/message_uac.xml"
	q "DELETE FROM messages; DELETE FROM location;" >/dev/null
	start_server off

	sd_log "MESSAGE relay to an online UAS: $calls calls, $conc in flight"
	uport="$(free_port)"
	register_from "$uport" bench0 || sd_die "registering the UAS failed"
	uas_start "$uport" message-uas
	local cpu0
	cpu0="$(server_cpu_ms)"
	read -r ok failed secs rate p50 p99 < <(run_sipp message-relay "$scen" "$calls" 100000 "$conc" -s bench0)
	cpu_note relay "$cpu0" "$ok"
	uas_stop
	row "MESSAGE relayed (200), saturated" "$rate" "$ok" "$failed" "$p50" "$p99" "$(peak_rss)"

	sd_log "MESSAGE stored for an offline user: $calls calls, $conc in flight"
	cpu0="$(server_cpu_ms)"
	read -r ok failed secs rate p50 p99 < <(run_sipp message-store "$scen" "$calls" 100000 "$conc" -s bench1)
	cpu_note store "$cpu0" "$ok"
	rows="$(q "SELECT count(*) FROM messages WHERE recipient = 'sip:bench1@$DOMAIN'" | tr -d ' ')"
	sd_log "store run: $ok answered 202, $rows rows committed in PostgreSQL"
	row "MESSAGE stored (202, durable)" "$rate" "$ok" "$failed" "$p50" "$p99" "$(peak_rss)"

	sd_log "delivery of $ndeliver stored messages on REGISTER"
	run_sipp message-prestore "$scen" "$ndeliver" 5000 200 -s bench2 >/dev/null
	# The recipient: message_ua.py registers from its own socket and
	# answers 200 (the REGISTER's source must be the UAS's port, so sipp
	# cannot be registered for it after it has bound the port).
	t0="$(date +%s%N)"
	"${PIN_LOAD[@]}" python3 "$SD_ROOT/tests/e2e/scenarios/message_ua.py" --server "127.0.0.1:$PORT" ua \
		--aor "sip:bench2@$DOMAIN" --expect "$ndeliver" --timeout 120 --out "$OUT/deliver.jsonl" \
		</dev/null 2>"$OUT/deliver.err" || sd_log "delivery UA: $(tail -n 1 "$OUT/deliver.err")"
	left="$ndeliver"
	for ((i = 0; i < 500; i++)); do
		left="$(q "SELECT count(*) FROM messages WHERE recipient = 'sip:bench2@$DOMAIN'" | tr -d ' ')"
		[[ "$left" == 0 ]] && break
		sleep 0.01
	done
	t1="$(date +%s%N)"
	secs="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')"
	rate="$(awk -v n="$ndeliver" -v l="$left" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", (n - l) / ((b - a) / 1e9) }')"
	sd_log "delivery: $((ndeliver - left)) of $ndeliver delivered and deleted in $secs s"
	row "stored MESSAGE delivered on REGISTER" "$rate" "$((ndeliver - left))" "$left" "-" "-" "$(peak_rss)"
	stop_server

	{
		echo
		echo "simpled message benchmark, $(date -u +%FT%TZ), $(nproc) CPUs; server on CPU 1, load on CPU 0"
		printf '%-40s %9s %9s %7s %9s %9s %9s\n' "what" "per sec" "ok" "failed" "p50 ms" "p99 ms" "RSS MiB"
		printf '%s\n' "${RESULTS[@]}"
		echo "(relay: sipp UAC -> simpled -> sipp UAS, both sipp on CPU 0; store: each 202 after"
		echo " the commit of its row ($rows rows found afterwards); delivery: REGISTER to the last"
		echo " row deleted, one message in flight per user (strict order), python UA on CPU 0;"
		echo " failed = not delivered."
		printf '%s\n' "${CPU_NOTES[@]}"
		echo " Logs in $OUT)"
	} | tee "$OUT/results.txt"
}

if [[ "$what" == message ]]; then
	bench_message
	exit 0
fi

# presence: see the header.  The load generator is tests/bench/presence_load.c
# (built with the tree as tests/bench/presence_load); each group below runs
# against a fresh server over emptied presence tables, so that restarts do
# not reload the previous group's rows.
PRES_LOAD="$BUILD/tests/bench/presence_load"
pres_clean() {
	q "DELETE FROM presence_subscriptions" >/dev/null
	q "DELETE FROM presence_publications" >/dev/null
	q "VACUUM ANALYZE presence_subscriptions" >/dev/null
	q "VACUUM ANALYZE presence_publications" >/dev/null
}
pres_start() { # LABEL
	local log="$OUT/simpled-presence-$1.log"
	pres_clean
	"${PIN_SERVER[@]}" "$SIMPLED" --listen "udp:127.0.0.1:$PORT" --db "$DB" --domain "$DOMAIN" --xcap-listen off \
		--auth off --log-level warn --max-requests-per-ip 0 \
		--max-subscriptions-per-watcher 1000000 </dev/null >"$log" 2>&1 &
	SERVER_PID=$!
	# At log level warn there is no "ready" line: wait for an OPTIONS
	# answer.  The pool connects after the listeners open (requests in
	# that gap get 503), so give it a moment more.
	"$PRES_LOAD" ping --server "127.0.0.1:$PORT" --deadline 30 >/dev/null ||
		{ tail -n 20 "$log" >&2; sd_die "simpled not answering (log: $log)"; }
	sleep 1
}
# pres_run LABEL MODE [options...]: runs the load tool on CPU 0; its
# key=value lines go to PRES_LINES (and $OUT/LABEL.out).
PRES_LINES=()
pres_run() {
	local label="$1"
	shift
	"${PIN_LOAD[@]}" "$PRES_LOAD" "$@" --server "127.0.0.1:$PORT" --domain "$DOMAIN" \
		>"$OUT/$label.out" 2>"$OUT/$label.err" || sd_log "$label: load tool failed ($(tail -n 1 "$OUT/$label.err"))"
	mapfile -t PRES_LINES <"$OUT/$label.out"
}
kv() { sed -nE "s/.*(^| )$1=([^ ]+).*/\2/p" <<<"$2"; }

bench_presence() {
	local npub="${BENCH_PRES_PUBLISHERS:-20000}" win="${BENCH_PRES_WINDOW:-500}"
	local sub_p="${BENCH_PRES_SUB_PRESENTITIES:-1000}" sub_w="${BENCH_PRES_SUB_WATCHERS:-10}"
	local small_rates="${BENCH_PRES_SMALL_RATES:-1000,1500,2000}"
	local big_rates="${BENCH_PRES_BIG_RATES:-50,100,125}"
	local dur="${BENCH_PRES_DURATION:-6}"
	local mem_p="${BENCH_PRES_MEM_PRESENTITIES:-1000}" mem_w="${BENCH_PRES_MEM_WATCHERS:-100}"
	local hold="${BENCH_PRES_MEM_HOLD:-35}"
	local l rows subs_rows label what setup p w rates e st
	local -a MEM=()

	sd_log "presence 1: PUBLISH, $npub distinct presentities, $win in flight"
	pres_start pubsub
	pres_run publish publish --presentities "$npub" --window "$win" --modify-rounds 2 \
		--refresh-rounds 1 --prefix pub --deadline 100
	for l in "${PRES_LINES[@]}"; do
		case "$(kv phase "$l")" in
		publish-initial) what="PUBLISH initial (200 = committed)" ;;
		publish-modify) what="PUBLISH modify (SIP-If-Match + PIDF)" ;;
		publish-refresh) what="PUBLISH refresh (SIP-If-Match)" ;;
		*) continue ;;
		esac
		row "$what" "$(kv rate "$l")" "$(kv ok "$l")" "$(kv failed "$l")" "$(kv p50_ms "$l")" "$(kv p99_ms "$l")" "-"
	done
	rows="$(q "SELECT count(*) FROM presence_publications WHERE resource LIKE 'sip:pubp%'" | tr -d ' ')"
	sd_log "PUBLISH: $rows publication rows committed for $npub presentities"

	sd_log "presence 2: SUBSCRIBE + first NOTIFY, $sub_p presentities x $sub_w watchers, $win in flight"
	pres_run subscribe subscribe --presentities "$sub_p" --watchers "$sub_w" --window "$win" \
		--prefix sub --deadline 100
	l="${PRES_LINES[0]:-}"
	row "SUBSCRIBE -> 200 + NOTIFY -> 200" "$(kv rate "$l")" "$(kv ok "$l")" "$(kv failed "$l")" \
		"$(kv p50_ms "$l")" "$(kv p99_ms "$l")" "$(peak_rss)"
	subs_rows="$(q "SELECT count(*) FROM presence_subscriptions WHERE watcher LIKE 'sip:subw%'" | tr -d ' ')"
	sd_log "SUBSCRIBE: $subs_rows subscription rows committed for $((sub_p * sub_w)) subscriptions"
	stop_server

	for setup in "100 10 $small_rates small" "100 200 $big_rates big"; do
		read -r p w rates label <<<"$setup"
		sd_log "presence 3: fan-out, $p presentities x $w watchers = $((p * w)) subscriptions, PUBLISH/s $rates, ${dur} s each"
		pres_start "fanout-$label"
		pres_run "fanout-$label" fanout --presentities "$p" --watchers "$w" --rate "$rates" \
			--duration "$dur" --window "$win" --prefix "fan$label" --deadline 100
		for l in "${PRES_LINES[@]}"; do
			[[ "$(kv phase "$l")" == fanout ]] || continue
			row "fan-out ${p}x${w}, PUBLISH $(kv offered_pub_rate "$l")/s" "$(kv notify_rate "$l")" \
				"$(kv notifies "$l")" "$(kv pub_failed "$l")" "$(kv p50_ms "$l")" "$(kv p99_ms "$l")" "$(peak_rss)"
			e="$(kv expected_states "$l")" st="$(kv states "$l")"
			FANOUT_NOTES+=("$(printf '  %sx%s at %s PUBLISH/s: %s PUBLISH ok (p50/p99 %s/%s ms); %s of %s states seen (%s coalesced); %s NOTIFY retransmissions; max publish-to-notify %s ms' \
				"$p" "$w" "$(kv offered_pub_rate "$l")" "$(kv pub_ok "$l")" "$(kv pub_p50_ms "$l")" \
				"$(kv pub_p99_ms "$l")" "${st:-0}" "${e:-0}" "$((${e:-0} - ${st:-0}))" \
				"$(kv notify_rtx "$l")" "$(kv max_ms "$l")")")
		done
		stop_server
	done

	sd_log "presence 4: memory, $mem_p presentities x $mem_w watchers = $((mem_p * mem_w)) subscriptions, held ${hold} s"
	pres_start memory
	pres_run memory memory --presentities "$mem_p" --watchers "$mem_w" --window "$win" \
		--pid "$SERVER_PID" --hold "$hold" --prefix mem --deadline 150
	l="${PRES_LINES[0]:-}"
	row "SUBSCRIBE (memory run, $((mem_p * mem_w)) dialogs)" "-" "$(kv subs "$l")" "$(kv failed "$l")" "-" "-" "$(peak_rss)"
	subs_rows="$(q "SELECT count(*) FROM presence_subscriptions WHERE watcher LIKE 'sip:memw%'" | tr -d ' ')"
	MEM+=("$(printf '  VmRSS before: %s KiB (server started, %s presentities published)' "$(kv rss_before_kib "$l")" "$mem_p")")
	MEM+=("$(printf '  VmRSS with %s subscriptions, at once: %s KiB = %s bytes per subscription (server transactions still held, Timer J)' \
		"$(kv subs "$l")" "$(kv rss_after_kib "$l")" "$(kv per_sub_after_b "$l")")")
	MEM+=("$(printf '  VmRSS after %s s more, steady state (SUBSCRIBE transactions ended): %s KiB = %s bytes per active subscription; VmHWM %s KiB' \
		"$(kv hold_s "$l")" "$(kv rss_held_kib "$l")" "$(kv per_sub_held_b "$l")" "$(kv hwm_kib "$l")")")
	MEM+=("$(printf '  whole process at steady state / subscriptions: %s bytes per subscription (its share of process memory included)' \
		"$(kv per_sub_total_b "$l")")")
	MEM+=("  $subs_rows subscription rows committed in PostgreSQL")
	stop_server

	{
		echo
		echo "simpled presence benchmark, $(date -u +%FT%TZ), $(nproc) CPUs; server on CPU 1, load on CPU 0;"
		echo "PostgreSQL $(q 'SHOW server_version' | cut -d' ' -f1), synchronous_commit=$(q 'SHOW synchronous_commit'), fsync=$(q 'SHOW fsync')"
		printf '%-40s %9s %9s %7s %9s %9s %9s\n' "what" "per sec" "ok" "failed" "p50 ms" "p99 ms" "RSS MiB"
		printf '%s\n' "${RESULTS[@]}"
		echo "(PUBLISH, SUBSCRIBE: $win requests in flight, per sec = completed per second, p50/p99 ="
		echo " request to final 200; SUBSCRIBE completes when its 200 and first NOTIFY (answered 200)"
		echo " are both in, p50/p99 = SUBSCRIBE sent to that NOTIFY received; $rows of $npub"
		echo " publications committed.  fan-out: PUBLISH modifies at the given rate, round robin, one"
		echo " outstanding per presentity, for $dur s; per sec = NOTIFYs received per second, ok ="
		echo " NOTIFYs, failed = PUBLISH failures, p50/p99 = PUBLISH sent to the NOTIFY carrying it"
		echo " (the PIDF <note> carries a sequence number and the send time); RSS: VmHWM.)"
		echo "fan-out details:"
		printf '%s\n' "${FANOUT_NOTES[@]}"
		echo "memory (VmRSS from /proc/PID/status):"
		printf '%s\n' "${MEM[@]}"
		echo " Logs in $OUT"
	} | tee "$OUT/results.txt"
}
FANOUT_NOTES=()

bench_rls() {
	local lists="${BENCH_RLS_LISTS:-1000}" buddies="${BENCH_RLS_BUDDIES:-50}"
	local npres="${BENCH_RLS_PRESENTITIES:-1000}" rates="${BENCH_RLS_RATES:-100,200,400}"
	local dur="${BENCH_RLS_DURATION:-6}" l
	local step=$((npres / buddies))
	((step >= 1)) || sd_die "BENCH_RLS_PRESENTITIES must be at least BENCH_RLS_BUDDIES"
	sd_log "rls: $lists lists of $buddies buddies over $npres presentities"
	# Owner i's list: presentities (i + step*k) mod npres, k < buddies, so
	# every presentity is on lists*buddies/npres lists.
	q "DELETE FROM xcap_documents WHERE owner LIKE 'rlo%'" >/dev/null
	psql -d "$DB" -X -q -v ON_ERROR_STOP=1 >/dev/null <<-SQL
	INSERT INTO xcap_documents (auid, owner, name, etag, body)
	SELECT 'resource-lists', 'rlo' || i || '@$DOMAIN', 'index', 'e' || i,
	       '<?xml version="1.0" encoding="UTF-8"?><resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"><list name="buddies">' ||
	       (SELECT string_agg('<entry uri="sip:rlp' || ((i + $step * k) % $npres) || '@$DOMAIN"><display-name>Buddy ' || k || '</display-name></entry>', '')
	          FROM generate_series(0, $buddies - 1) k) || '</list></resource-lists>'
	  FROM generate_series(0, $lists - 1) i;
	INSERT INTO xcap_documents (auid, owner, name, etag, body)
	SELECT 'rls-services', 'rlo' || i || '@$DOMAIN', 'index', 's' || i,
	       '<?xml version="1.0" encoding="UTF-8"?><rls-services xmlns="urn:ietf:params:xml:ns:rls-services"><service uri="sip:rlo' || i || '-buddies@$DOMAIN"><resource-list>http://127.0.0.1:8080/xcap-root/resource-lists/users/sip:rlo' || i || '@$DOMAIN/index/~~/resource-lists/list%5B@name=%22buddies%22%5D</resource-list><packages><package>presence</package></packages></service></rls-services>'
	  FROM generate_series(0, $lists - 1) i;
	SQL
	pres_start rls
	pres_run rls rls --presentities "$npres" --lists "$lists" --rate "$rates" --duration "$dur" \
		--window 500 --pid "$SERVER_PID" --prefix rl --deadline 200
	local -a NOTES=()
	for l in "${PRES_LINES[@]}"; do
		case "$l" in
		phase=rls-subscribe*)
			row "list SUBSCRIBE + full NOTIFY" "$(kv rate "$l")" "$(kv ok "$l")" "$(kv failed "$l")" \
				"$(kv p50_ms "$l")" "$(kv p99_ms "$l")" "-" ;;
		phase=rls-memory*)
			NOTES+=("  VmRSS before the list subscriptions: $(kv rss_before_kib "$l") KiB, after: $(kv rss_after_kib "$l") KiB") ;;
		phase=rls\ *)
			row "list NOTIFY at $(kv offered_pub_rate "$l") PUBLISH/s" "$(kv notify_rate "$l")" "$(kv notifies "$l")" \
				"$(kv pub_failed "$l")" "$(kv p50_ms "$l")" "$(kv p99_ms "$l")" "$(peak_rss)"
			NOTES+=("  at $(kv offered_pub_rate "$l") PUBLISH/s: $(kv pub_rate "$l") PUBLISH/s done, $(kv notify_rate "$l") list NOTIFY/s, $(kv bytes_per_notify "$l") bytes per NOTIFY (datagram)") ;;
		phase=rls-end*)
			NOTES+=("  VmRSS at the end: $(kv rss_kib "$l") KiB, VmHWM $(kv hwm_kib "$l") KiB") ;;
		esac
	done
	stop_server
	q "DELETE FROM xcap_documents WHERE owner LIKE 'rlo%'" >/dev/null
	{
		echo
		echo "simpled resource list server benchmark, $(date -u +%FT%TZ), $(nproc) CPUs; server on CPU 1, load on CPU 0"
		printf '%-40s %9s %9s %7s %9s %9s %9s\n' "what" "per sec" "ok" "failed" "p50 ms" "p99 ms" "RSS MiB"
		printf '%s\n' "${RESULTS[@]}"
		echo "($lists list subscriptions, $buddies buddies each, every presentity on $((lists * buddies / npres)) lists;"
		echo " PUBLISH modifies round robin at the given rate for $dur s; per sec = list NOTIFYs received per"
		echo " second (partial state, one RLMI + one PIDF part each unless changes coalesced); p50/p99 ="
		echo " PUBLISH sent to the list NOTIFY carrying it; SUBSCRIBE p50/p99 = to its full-state NOTIFY)"
		printf '%s\n' "${NOTES[@]}"
		echo " Logs in $OUT"
	} | tee "$OUT/results.txt"
}

if [[ "$what" == rls ]]; then
	bench_rls
	exit 0
fi

if [[ "$what" == presence ]]; then
	bench_presence
	exit 0
fi

sd_log "run 1: auth off"
start_server off
sd_log "OPTIONS, saturated ($OPTIONS_CALLS calls, $CONC in flight)"
read -r ok failed secs rate p50 p99 < <(run_sipp options-sat "$SCEN/options.xml" "$OPTIONS_CALLS" 100000 "$CONC")
row "OPTIONS, saturated" "$rate" "$ok" "$failed" "$p50" "$p99" "-"
sd_log "OPTIONS at $LAT_RATE/s ($LAT_CALLS calls)"
read -r ok failed secs rate p50 p99 < <(run_sipp options-lat "$SCEN/options.xml" "$LAT_CALLS" "$LAT_RATE" "$CONC")
row "OPTIONS at ${LAT_RATE}/s" "$rate" "$ok" "$failed" "$p50" "$p99" "-"
sd_log "REGISTER, auth off, $REG_USERS unique users, saturated ($REG_CONC in flight)"
read -r ok failed secs rate p50 p99 < <(run_sipp register-sat "$SCEN/register.xml" "$REG_USERS" 100000 "$REG_CONC" -inf "$OUT/reg-users.csv")
row "REGISTER auth off, unique users" "$rate" "$ok" "$failed" "$p50" "$p99" "-"
# Durability check: every 200 must stand for a committed row.
reg_rows="$(q "SELECT count(*) FROM location WHERE aor LIKE 'sip:reg%'" | tr -d ' ')"
sd_log "REGISTER throughput run: $ok answered 200, $reg_rows bindings committed in PostgreSQL"
sd_log "REGISTER (refresh) at $LAT_RATE/s"
read -r ok failed secs rate p50 p99 < <(run_sipp register-lat "$SCEN/register.xml" "$LAT_CALLS" "$LAT_RATE" "$CONC" -inf "$OUT/users.csv")
row "REGISTER auth off at ${LAT_RATE}/s" "$rate" "$ok" "$failed" "$p50" "$p99" "-"
sd_log "unloaded latency: one request in flight (sipclient.py, microsecond clock)"
run_py options-1 --method OPTIONS --count 2000 --window 1
py_row "OPTIONS, 1 in flight (python)"
run_py register-1 --method REGISTER --count 2000 --window 1 --users "$USERS"
py_row "REGISTER auth off, 1 in flight (python)" "$(peak_rss)"
stop_server

sd_log "run 2: auth on"
q "DELETE FROM location;" >/dev/null
start_server on
sd_log "REGISTER, auth on (MD5), $USERS unique users, sipclient.py, 64 in flight"
run_py register-auth --method REGISTER --algorithm MD5 --count "$USERS" --window 64
py_row "REGISTER auth on (401+200), python"
run_py register-auth-1 --method REGISTER --algorithm SHA-256 --count 2000 --window 1 --users "$USERS"
py_row "REGISTER auth on SHA-256, 1 in flight"
sd_log "OPTIONS with auth on, saturated"
read -r ok failed secs rate p50 p99 < <(run_sipp options-auth "$SCEN/options.xml" "$OPTIONS_CALLS" 100000 "$CONC")
row "OPTIONS auth on, saturated" "$rate" "$ok" "$failed" "$p50" "$p99" "$(peak_rss)"
stop_server

{
	echo
	echo "simpled core benchmark, $(date -u +%FT%TZ), $(nproc) CPUs; server on CPU 1, load on CPU 0"
	printf '%-40s %9s %9s %7s %9s %9s %9s\n' "what" "per sec" "ok" "failed" "p50 ms" "p99 ms" "RSS MiB"
	printf '%s\n' "${RESULTS[@]}"
	echo "(per sec: successful transactions per second of wall time; p50/p99: response"
	echo " times; sipp's clock ticks in whole milliseconds, the python client's in"
	echo " microseconds; auth on: first REGISTER to final 200, 401 round trip included;"
	echo " saturated sipp runs are bounded by sipp itself on one CPU as much as by"
	echo " simpled; RSS: the server's peak resident set, VmHWM, at the end of its run."
	echo " Logs in $OUT)"
} | tee "$OUT/results.txt"
