#!/usr/bin/env bash
# scripts/bench.sh [core|presence|message|rls|calls]: measures simpled.
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
core) ;;
presence | message | rls | calls)
	echo "bench.sh: $what: not implemented yet" >&2
	exit 2
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
BUILD="$SD_ROOT/build"
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
PG_DIR="$SD_ROOT/var/bench-pg"
SERVER_PID=

cleanup() {
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
	"${PIN_SERVER[@]}" "$SIMPLED" --listen "udp:127.0.0.1:$PORT" --db "$DB" --domain "$DOMAIN" \
		--auth "$1" --log-level info --max-requests-per-ip 0 </dev/null >"$log" 2>&1 &
	SERVER_PID=$!
	for ((i = 0; i < 300; i++)); do
		grep -q ready "$log" && return 0
		kill -0 "$SERVER_PID" 2>/dev/null || { tail -n 20 "$log" >&2; sd_die "simpled exited at start"; }
		sleep 0.1
	done
	sd_die "simpled not ready within 30 s (log: $log)"
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
