#!/usr/bin/env bash
# scripts/bench_calls.sh: call setups per second through the proxy
# (proposed as `scripts/bench.sh calls`).
#
# One call = INVITE / 100 / 180 / 200 / ACK / BYE / 200, sipp UAC ->
# simpled -> sipp UAS (tests/e2e/scenarios/call_bench_*.xml), Record-Route
# on, so ACK and BYE go through the proxy too: 7 messages in and 7 out
# per call at the server.  The UAS registers from its own port (UDP
# requests to a binding go to the REGISTER's source).  Runs, auth off:
#   - saturated: BENCH_CALLS (50000) calls, BENCH_CALL_CONCURRENCY (400) in flight;
#   - fixed rate: BENCH_CALL_RATE (1000/s) for BENCH_CALL_LAT_CALLS (10000) calls,
#     p50/p99 = INVITE sent -> 200 received (sipp rtd, whole ms);
#   - the server's peak RSS.
# simpled on CPU 1, both sipp on CPU 0 (taskset) when there are 2 CPUs.
# BENCH_BUILD and BENCH_PG_DIR move the build and the cluster; results in
# var/bench/DATE-calls/.  BENCH_DIALOG_TRACKING (on) is passed to
# simpled's --dialog-tracking (`scripts/bench.sh calls` runs both); the
# last line of results.txt is machine-readable:
#   RESULT tracking=on sat=CALLS/S rate=CALLS/S sat_us=US rate_us=US rss=MIB
set -euo pipefail
SD_SCRIPT=bench_calls.sh
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
exec </dev/null

CALLS="${BENCH_CALLS:-50000}"
CONC="${BENCH_CALL_CONCURRENCY:-400}"
RATE="${BENCH_CALL_RATE:-1000}"
LAT_CALLS="${BENCH_CALL_LAT_CALLS:-10000}"
TRACKING="${BENCH_DIALOG_TRACKING:-on}"
DOMAIN=example.test

ensure_packages
BUILD="${BENCH_BUILD:-$SD_ROOT/build}"
mkdir -p "$BUILD"
sd_build "$BUILD" Release -DSIMPLED_WERROR=OFF -DSIMPLED_SANITIZE=OFF
SIMPLED="$BUILD/server/simpled"
SIMPLECTL="$BUILD/server/ctl/simplectl"
[[ -x "$SIMPLED" && -x "$SIMPLECTL" ]] || sd_die "simpled or simplectl was not built"
SCEN="$SD_ROOT/tests/e2e/scenarios"

if [[ $(nproc) -ge 2 ]] && command -v taskset >/dev/null; then
	PIN_SERVER=(taskset -c 1)
	PIN_LOAD=(taskset -c 0)
else
	sd_log "fewer than 2 CPUs (or no taskset): running unpinned"
	PIN_SERVER=()
	PIN_LOAD=()
fi

OUT="$SD_ROOT/var/bench/$(date +%Y%m%d-%H%M%S)-calls-tracking-$TRACKING"
mkdir -p "$OUT"
PG_DIR="${BENCH_PG_DIR:-$SD_ROOT/var/bench-pg}"
SERVER_PID=
UAS_PID=

cleanup() {
	[[ -n "$UAS_PID" ]] && kill -TERM "$UAS_PID" 2>/dev/null
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
q "DELETE FROM location;" >/dev/null

free_port() {
	python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
PORT="$(free_port)"

start_server() {
	local log="$OUT/simpled.log" i
	"${PIN_SERVER[@]}" "$SIMPLED" --listen "udp:127.0.0.1:$PORT" --db "$DB" --domain "$DOMAIN" --xcap-listen off \
		--auth off --log-level info --max-requests-per-ip 0 --dialog-tracking "$TRACKING" \
		</dev/null >"$log" 2>&1 &
	SERVER_PID=$!
	for ((i = 0; i < 300; i++)); do
		grep -q "server: ready" "$log" && return 0
		kill -0 "$SERVER_PID" 2>/dev/null || { tail -n 20 "$log" >&2; sd_die "simpled exited at start"; }
		sleep 0.1
	done
	sd_die "simpled not ready within 30 s"
}
# CPU seconds (user + system) the server has used so far.
cpu_secs() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$SERVER_PID/stat" 2>/dev/null || echo 0; }
peak_rss() { awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$SERVER_PID/status" 2>/dev/null || echo "?"; }

# "ok failed seconds rate p50 p99" from sipp's stat file (rtd in ms).
summarise() { # STATFILE NANOSECONDS
	python3 - "$@" <<'PY'
import sys
stat, secs = sys.argv[1], int(sys.argv[2]) / 1e9
ok = failed = 0
p50 = p99 = "n/a"
try:
    rows = [l.rstrip("\n").split(";") for l in open(stat) if l.strip()]
    head, last = rows[0], rows[-1]
    ok = int(last[head.index("SuccessfulCall(C)")])
    failed = int(last[head.index("FailedCall(C)")])
    # Response-time repartition of rtd 1 (cumulative counts per bucket).
    cols = [(i, h) for i, h in enumerate(head) if h.startswith("ResponseTimeRepartition1_")
            and not h.endswith("(P)")]
    buckets = []
    for i, h in cols:
        bound = h.split("_", 1)[1].strip()
        buckets.append((bound, int(last[i] or 0)))
    total = sum(n for _, n in buckets)
    def pct(p):
        acc = 0
        for bound, n in buckets:
            acc += n
            if total and acc >= p * total:
                return bound
        return "n/a"
    p50, p99 = pct(0.50), pct(0.99)
except (OSError, ValueError, IndexError):
    pass
print(ok, failed, "%.2f" % secs, "%.0f" % (ok / secs if secs > 0 else 0), p50, p99)
PY
}

run_uac() { # LABEL CALLS RATE LIMIT
	local dir="$OUT/$1" t0 t1
	mkdir -p "$dir"
	t0="$(date +%s%N)"
	(cd "$dir" && "${PIN_LOAD[@]}" sipp -sf "$SCEN/call_bench_uac.xml" -i 127.0.0.1 -p "$(free_port)" \
		-m "$2" -r "$3" -rp 1000 -l "$4" -timeout 120s -max_recv_loops 10000 -max_sched_loops 10000 \
		-buff_size 4194304 -nostdin -trace_stat -stf stat.csv -fd 1 -trace_err -error_file errors.log \
		-s caller -key callee callee -key sd_domain "$DOMAIN" "127.0.0.1:$PORT" </dev/null >sipp.out 2>&1) || true
	t1="$(date +%s%N)"
	summarise "$dir/stat.csv" "$((t1 - t0))"
}

start_server
UPORT="$(free_port)"
python3 "$SCEN/call_register.py" "127.0.0.1:$PORT" "$UPORT" "sip:callee@$DOMAIN" \
	"sip:callee@127.0.0.1:$UPORT" 3600 || sd_die "registering the UAS failed"
mkdir -p "$OUT/uas"
(cd "$OUT/uas" && exec "${PIN_LOAD[@]}" sipp -sf "$SCEN/call_bench_uas.xml" -i 127.0.0.1 -p "$UPORT" \
	-timeout 900s -max_recv_loops 10000 -buff_size 4194304 -nostdin -trace_err -error_file errors.log \
	"127.0.0.1:$PORT" </dev/null >sipp.out 2>&1) &
UAS_PID=$!
sleep 0.5

RESULTS=()
row() { RESULTS+=("$(printf '%-28s %8s %8s %7s %7s %7s %9s %8s' "$@")"); }
# us_per_call CPU0 CPU1 CALLS: server CPU microseconds per call.
us_per_call() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { printf "%.0f", n ? (b - a) * 1e6 / n : 0 }'; }
sd_log "calls, saturated: $CALLS calls, $CONC in flight"
c0="$(cpu_secs)"
read -r ok failed secs rate p50 p99 < <(run_uac calls-sat "$CALLS" 100000 "$CONC")
sat_rate="$rate" sat_us="$(us_per_call "$c0" "$(cpu_secs)" "$ok")"
row "calls, saturated" "$rate" "$ok" "$failed" "$p50" "$p99" "$sat_us" "$(peak_rss)"
sd_log "calls at $RATE/s: $LAT_CALLS calls"
c0="$(cpu_secs)"
read -r ok failed secs rate p50 p99 < <(run_uac calls-rate "$LAT_CALLS" "$RATE" "$CONC")
rate_rate="$rate" rate_us="$(us_per_call "$c0" "$(cpu_secs)" "$ok")" rss="$(peak_rss)"
row "calls at ${RATE}/s" "$rate" "$ok" "$failed" "$p50" "$p99" "$rate_us" "$rss"
kill -USR1 "$SERVER_PID" 2>/dev/null || true
sleep 0.2
kill -TERM "$UAS_PID" 2>/dev/null || true
wait "$UAS_PID" 2>/dev/null || true
UAS_PID=

{
	echo
	echo "simpled call benchmark, dialog tracking $TRACKING, $(date -u +%FT%TZ), $(nproc) CPUs; server on CPU 1, load on CPU 0"
	printf '%-28s %8s %8s %7s %7s %7s %9s %8s\n' "what" "calls/s" "ok" "failed" "p50 ms" "p99 ms" "CPU us/call" "RSS MiB"
	printf '%s\n' "${RESULTS[@]}"
	echo "(one call = INVITE/100/180/200/ACK/BYE/200 through the proxy with Record-Route;"
	echo " p50/p99: INVITE to 200 at the caller, upper bound of sipp's bucket (1,2,5,10,20,"
	echo " 50,100 ms; >=100 above); CPU us/call: simpled's user+system CPU per completed call;"
	echo " both sipp share one CPU and bound the saturated figure as much as simpled does."
	echo " Logs in $OUT)"
	grep 'stats' "$OUT/simpled.log" | tail -n 1 || true
	echo "RESULT tracking=$TRACKING sat=$sat_rate rate=$rate_rate sat_us=$sat_us rate_us=$rate_us rss=$rss"
} | tee "$OUT/results.txt"
