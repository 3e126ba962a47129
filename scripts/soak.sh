#!/usr/bin/env bash
# scripts/soak.sh [SECONDS] [RATE]: a soak test, not part of CI.  Builds
# simpled with AddressSanitizer + LeakSanitizer (build-asan/), starts a
# private PostgreSQL under var/soak-pg, runs a mixed steady load
# (REGISTER, PUBLISH, SUBSCRIBE with NOTIFYs answered, MESSAGE stored for
# an offline user; tests/soak/mixed_load.py) for SECONDS (default 600) at
# RATE requests/s (default 300), samples the server's RSS every 10 s, then
# stops it with SIGTERM and reports LeakSanitizer's verdict.  Exit status:
# 0 when no leak was reported and RSS was flat after warm-up (the last
# sample within 15% of the sample at one third of the run).
set -euo pipefail
SD_SCRIPT=soak.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
exec </dev/null

SECS="${1:-600}"
RATE="${2:-300}"
ensure_packages
BUILD="$SD_ROOT/build-asan"
sd_build "$BUILD" RelWithDebInfo -DSIMPLED_SANITIZE=ON -DSIMPLED_WERROR=ON
OUT="$SD_ROOT/var/soak/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"
PG_DIR="$SD_ROOT/var/soak-pg"
SERVER_PID=
cleanup() {
	[[ -n "$SERVER_PID" ]] && kill -TERM "$SERVER_PID" 2>/dev/null || true
	[[ $SD_PG_STARTED -eq 1 ]] && sd_private_db_stop "$PG_DIR"
	return 0
}
trap cleanup EXIT
sd_private_db "$PG_DIR" 54390
DB="$SD_PG_CONNINFO"
"$BUILD/server/ctl/simplectl" --db "$DB" migrate >/dev/null 2>&1
"$BUILD/server/ctl/simplectl" --db "$DB" user add soakrcpt@example.test secret >/dev/null 2>&1 || true
"$BUILD/server/ctl/simplectl" --db "$DB" messages purge soakrcpt@example.test >/dev/null 2>&1 || true

PORT=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:log_path=$OUT/asan"
"$BUILD/server/simpled" --listen "udp:127.0.0.1:$PORT" --db "$DB" --domain example.test --auth off --xcap-listen off \
	--max-requests-per-ip 0 --min-expires 30 --log-level warn >"$OUT/simpled.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
	grep -q "server: ready" "$OUT/simpled.log" 2>/dev/null && break
	sleep 0.1
done
sd_log "soak: ${SECS}s at ${RATE}/s against pid $SERVER_PID (logs in $OUT)"
python3 "$SD_ROOT/tests/soak/mixed_load.py" "$PORT" "$SECS" "$RATE" example.test soakrcpt >"$OUT/load.txt" &
LOAD=$!
: >"$OUT/rss.txt"
while kill -0 "$LOAD" 2>/dev/null; do
	printf '%s %s\n' "$(date +%s)" "$(awk '/VmRSS/ {print $2}' /proc/$SERVER_PID/status)" >>"$OUT/rss.txt"
	sleep 10
done
wait "$LOAD"
kill -TERM "$SERVER_PID"
rc=0
wait "$SERVER_PID" || rc=$?
SERVER_PID=
leaks=$(cat "$OUT"/asan.* 2>/dev/null | grep -c "ERROR: LeakSanitizer" || true)
errors=$(cat "$OUT"/asan.* 2>/dev/null | grep -c "ERROR: AddressSanitizer" || true)
n=$(wc -l <"$OUT/rss.txt")
third=$(sed -n "$(((n + 2) / 3))p" "$OUT/rss.txt" | cut -d' ' -f2)
last=$(tail -n 1 "$OUT/rss.txt" | cut -d' ' -f2)
echo "load: $(cat "$OUT/load.txt")"
echo "RSS KiB samples (every 10 s): $(cut -d' ' -f2 "$OUT/rss.txt" | paste -sd' ')"
echo "RSS at one third: ${third} KiB, at the end: ${last} KiB; exit status $rc; leak reports: $leaks; ASan errors: $errors"
status=0
[[ $rc -eq 0 && $leaks -eq 0 && $errors -eq 0 ]] || status=1
if [[ -n "$third" && -n "$last" ]] && (( last * 100 > third * 115 )); then
	sd_log "RSS grew by more than 15% after warm-up"
	status=1
fi
exit $status
