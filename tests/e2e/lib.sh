# tests/e2e/lib.sh: the end-to-end test library.  A test is a bash script
# tests/e2e/test_*.sh that sources this file, starts simpled, drives it with
# sipp scenarios (tests/e2e/scenarios/*.xml) or with tests/e2e/sipclient.py,
# checks the database, and exits non-zero on the first failure.
#
# Environment (set by tests/e2e/e2e.cmake; defaults for running by hand):
#   SIMPLED_BIN      the server binary
#   SIMPLECTL_BIN    the admin CLI
#   SIMPLED_TEST_DB  conninfo of the test database (the CTest fixture `pg`)
#   SIPP             the sipp binary (default: sipp)
#   PYTHON           python3
#   SIMPLED_DEV_DB   scripts/dev-db.sh (for tests that need a cluster of
#                    their own)
#   E2E_WORKDIR      where each test keeps its logs (default: /tmp)
#   E2E_LOG_LEVEL    simpled --log-level (default: debug)
#
# Functions (all fail the test, with the logs, when something is wrong):
#   e2e_uniq PREFIX            a name no other test or run uses
#   user_add NAME PASSWORD     creates NAME@$E2E_DOMAIN with simplectl
#   server_start [OPTION...]   starts simpled on free random ports
#   server_stop / server_restart
#   sipp_run SCENARIO [SIPP OPTION...]
#   sipc COMMAND [OPTION...]   runs sipclient.py against the server
#   db_query SQL               psql on the test database, unaligned output
#   assert_eq / assert_match / fail

set -euo pipefail

E2E_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
E2E_NAME="$(basename "$0" .sh)"
: "${SIMPLED_BIN:?SIMPLED_BIN must name the simpled binary}"
: "${SIMPLECTL_BIN:?SIMPLECTL_BIN must name the simplectl binary}"
: "${SIMPLED_TEST_DB:?SIMPLED_TEST_DB must hold the test database conninfo}"
SIPP="${SIPP:-sipp}"
PYTHON="${PYTHON:-python3}"
SIMPLED_DEV_DB="${SIMPLED_DEV_DB:-$E2E_DIR/../../scripts/dev-db.sh}"
E2E_DB="$SIMPLED_TEST_DB"
E2E_DOMAIN="${E2E_DOMAIN:-example.test}"
E2E_LOG_LEVEL="${E2E_LOG_LEVEL:-debug}"
E2E_READY_TIMEOUT="${E2E_READY_TIMEOUT:-30}"
E2E_WORK="${E2E_WORKDIR:-/tmp}/$E2E_NAME"
rm -rf "$E2E_WORK"
mkdir -p "$E2E_WORK"
SERVER_LOG="$E2E_WORK/simpled.log"
SERVER_PID=
SERVER_PORT=
XCAP_PORT=
SERVER_ARGS=()
E2E_STEP=0
: >"$SERVER_LOG"

for _tool in "$SIMPLED_BIN" "$SIMPLECTL_BIN"; do
	[[ -x "$_tool" ]] || { echo "$E2E_NAME: $_tool is not built" >&2; exit 1; }
done
command -v "$SIPP" >/dev/null || { echo "$E2E_NAME: sipp not found ($SIPP)" >&2; exit 1; }
command -v "$PYTHON" >/dev/null || { echo "$E2E_NAME: python3 not found ($PYTHON)" >&2; exit 1; }

e2e_log() { printf '[%s %s] %s\n' "$E2E_NAME" "$(date +%T)" "$*" >&2; }

# Each step of a test announces itself, so a failure says where it was.
step() {
	E2E_STEP=$((E2E_STEP + 1))
	e2e_log "step $E2E_STEP: $*"
}

server_log_tail() {
	local n="${1:-80}"
	if [[ -s "$SERVER_LOG" ]]; then
		echo "---- last $n lines of the server log ($SERVER_LOG) ----" >&2
		tail -n "$n" "$SERVER_LOG" >&2
		echo "---- end of server log ----" >&2
	fi
}

fail() {
	e2e_log "FAIL: $*"
	server_log_tail
	exit 1
}

assert_eq() { # EXPECTED ACTUAL WHAT
	[[ "$1" == "$2" ]] || fail "${3:-value}: expected '$1', got '$2'"
}

assert_match() { # REGEX TEXT WHAT  (extended regex, case-insensitive)
	grep -Eqi -- "$1" <<<"$2" || fail "${3:-text}: no match for /$1/ in:
$2"
}

assert_no_match() { # REGEX TEXT WHAT
	if grep -Eqi -- "$1" <<<"$2"; then
		fail "${3:-text}: /$1/ must not match:
$2"
	fi
}

_e2e_exit() {
	local rc=$?
	trap - EXIT
	if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
		kill -TERM "$SERVER_PID" 2>/dev/null || true
		local i
		for ((i = 0; i < 100; i++)); do
			kill -0 "$SERVER_PID" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$SERVER_PID" 2>/dev/null || true
		wait "$SERVER_PID" 2>/dev/null || true
	fi
	for f in "${E2E_CLEANUPS[@]}"; do
		eval "$f" || true
	done
	if [[ $rc -eq 0 ]]; then
		e2e_log "PASS"
	else
		e2e_log "FAILED (status $rc); logs in $E2E_WORK"
		[[ $rc -ne 1 ]] && server_log_tail 40
	fi
	exit "$rc"
}
E2E_CLEANUPS=()
trap _e2e_exit EXIT

# at_exit COMMAND: runs COMMAND (a string, eval'd) when the test ends.
at_exit() { E2E_CLEANUPS+=("$1"); }

# A name no other test or run uses: PREFIX plus the pid and a random part.
e2e_uniq() { printf '%s%s%04x%04x\n' "$1" "$$" "$RANDOM" "$RANDOM"; }

# A port free for both UDP and TCP on 127.0.0.1, chosen at random by the
# kernel (so parallel runs do not collide).
free_port() {
	"$PYTHON" - <<'EOF'
import socket
for _ in range(50):
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t.bind(("127.0.0.1", 0))
    port = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", port))
    except OSError:
        t.close()
        continue
    u.close()
    t.close()
    print(port)
    break
else:
    raise SystemExit("no free port")
EOF
}

# db_query SQL [psql options]: tuples only, unaligned, '|' between fields.
db_query() {
	local sql="$1"
	shift
	psql -d "$E2E_DB" -X -q -t -A -v ON_ERROR_STOP=1 "$@" -c "$sql" </dev/null ||
		fail "psql failed: $sql"
}

# user_add NAME PASSWORD: the user NAME@$E2E_DOMAIN.
user_add() {
	local out
	out="$("$SIMPLECTL_BIN" --db "$E2E_DB" user add "$1@$E2E_DOMAIN" "$2" </dev/null 2>&1)" ||
		fail "simplectl user add $1@$E2E_DOMAIN failed: $out"
}

_server_launch() {
	local start_line i
	start_line=$(($(wc -l <"$SERVER_LOG") + 1))
	echo "==== $(date +%T) starting simpled ${SERVER_ARGS[*]}" >>"$SERVER_LOG"
	start_line=$((start_line + 1))
	"$SIMPLED_BIN" \
		--listen "udp:127.0.0.1:$SERVER_PORT" --listen "tcp:127.0.0.1:$SERVER_PORT" \
		--db "$SERVER_DB" --domain "$E2E_DOMAIN" --log-level "$E2E_LOG_LEVEL" \
		--xcap-listen "127.0.0.1:$XCAP_PORT" \
		"${SERVER_ARGS[@]}" </dev/null >>"$SERVER_LOG" 2>&1 &
	SERVER_PID=$!
	for ((i = 0; i < E2E_READY_TIMEOUT * 10; i++)); do
		if tail -n +"$start_line" "$SERVER_LOG" | grep -q 'server: ready'; then
			e2e_log "simpled ready on 127.0.0.1:$SERVER_PORT (pid $SERVER_PID)"
			return 0
		fi
		if ! kill -0 "$SERVER_PID" 2>/dev/null; then
			local rc=0
			wait "$SERVER_PID" || rc=$?
			SERVER_PID=
			fail "simpled exited with status $rc before it was ready"
		fi
		sleep 0.1
	done
	fail "simpled not ready within ${E2E_READY_TIMEOUT}s"
}

# server_start [OPTION...]: simpled on a free port (UDP and TCP) of
# 127.0.0.1 for $E2E_DOMAIN against the test database (or $SERVER_DB if
# the test set it), with the given extra options.  Waits for "ready".
server_start() {
	[[ -z "$SERVER_PID" ]] || fail "server_start: simpled is already running"
	SERVER_ARGS=("$@")
	SERVER_DB="${SERVER_DB:-$E2E_DB}"
	[[ -n "$SERVER_PORT" ]] || SERVER_PORT="$(free_port)"
	# XCAP (HTTP) on a free port of its own, so tests never meet on 8080.
	[[ -n "$XCAP_PORT" ]] || XCAP_PORT="$(free_port)"
	_server_launch
}

# server_stop: SIGTERM, and a clean exit 0 within 10 s is required.
server_stop() {
	[[ -n "$SERVER_PID" ]] || return 0
	local pid="$SERVER_PID" i rc=0
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		SERVER_PID=
		fail "simpled did not exit within 10s of SIGTERM"
	fi
	wait "$pid" || rc=$?
	SERVER_PID=
	echo "==== $(date +%T) simpled exited with status $rc" >>"$SERVER_LOG"
	[[ $rc -eq 0 ]] || fail "simpled exited with status $rc on SIGTERM (expected 0)"
	e2e_log "simpled stopped"
}

# server_restart: the same options and the same port.
server_restart() {
	server_stop
	_server_launch
}

# sipp_run SCENARIO [SIPP OPTION...]: runs tests/e2e/scenarios/SCENARIO.xml
# against the server, in the foreground, bounded: -m 1 (unless a -m is
# given), 20 s global timeout that fails the run.  Keys every scenario may
# use: [service] (the AOR's user part: set SIPP_USER), [sd_domain],
# [sd_expires] (SIPP_EXPIRES, default 600), [sd_cparams] (SIPP_CPARAMS,
# parameters for the Contact URI, e.g. ";transport=tcp").  A non-zero exit
# fails the test, after the error log, the messages and the server log.
SIPP_RUNS=0
sipp_run() {
	local name="$1"
	shift
	local sf="$E2E_DIR/scenarios/$name.xml"
	[[ -f "$sf" ]] || fail "no scenario $sf"
	SIPP_RUNS=$((SIPP_RUNS + 1))
	local base="$E2E_WORK/sipp-$SIPP_RUNS-$name" lport m=(-m 1) a
	for a in "$@"; do [[ "$a" == "-m" ]] && m=(); done
	lport="$(free_port)"
	local cmd=("$SIPP" -sf "$sf" -i 127.0.0.1 -p "$lport" "${m[@]}"
		-timeout 20s -timeout_error -max_recv_loops 1000
		-nostdin -trace_err -error_file "$base.errors.log"
		-trace_msg -message_file "$base.messages.log"
		-trace_screen -screen_file "$base.screen.log"
		-s "${SIPP_USER:-e2e}"
		-key sd_domain "$E2E_DOMAIN"
		-key sd_expires "${SIPP_EXPIRES:-600}"
		-key sd_cparams "${SIPP_CPARAMS:-}"
		"$@" "127.0.0.1:$SERVER_PORT")
	echo "${cmd[*]}" >"$base.cmd"
	local rc=0
	(cd "$E2E_WORK" && timeout 60 "${cmd[@]}" </dev/null >"$base.stdout" 2>&1) || rc=$?
	if [[ $rc -ne 0 ]]; then
		e2e_log "sipp $name exited with status $rc: ${cmd[*]}"
		[[ -s "$base.stdout" ]] && { echo "---- sipp output ----" >&2; tail -n 30 "$base.stdout" >&2; }
		[[ -s "$base.errors.log" ]] && { echo "---- sipp error log ----" >&2; tail -n 60 "$base.errors.log" >&2; }
		[[ -s "$base.messages.log" ]] && { echo "---- sipp messages (last 80 lines) ----" >&2; tail -n 80 "$base.messages.log" >&2; }
		fail "sipp scenario $name failed (status $rc)"
	fi
	e2e_log "sipp $name: ok"
}

# sipc COMMAND [OPTION...]: sipclient.py against the server; its stdout
# (the final response) is kept in SIPC_OUT and printed.  Failing fails
# the test.  sipc_try does the same but returns the status instead.
SIPC_OUT=
sipc_try() {
	local rc=0 err="$E2E_WORK/sipclient.err"
	local transport=udp
	if [[ "${1:-}" == "--tcp" ]]; then transport=tcp; shift; fi
	SIPC_OUT="$("$PYTHON" "$E2E_DIR/sipclient.py" --server "127.0.0.1:$SERVER_PORT" \
		--transport "$transport" "$@" </dev/null 2>"$err")" || rc=$?
	if [[ $rc -ne 0 ]]; then
		cat "$err" >&2
	fi
	return "$rc"
}
sipc() {
	sipc_try "$@" || fail "sipclient $1 failed"
	printf '%s\n' "$SIPC_OUT" | sed -n '1p' | sed 's/^/    /' >&2
}

# The value of header NAME (first one) in the response text $2.
header_of() {
	printf '%s\n' "$2" | tr -d '\r' | sed -n "s/^$1:[[:space:]]*//Ip" | head -n 1
}

# private_db_start: a PostgreSQL cluster of this test's own (for tests
# that stop it), migrated; sets PG_DIR, PG_PORT, SERVER_DB and E2E_DB.
# devdb ARGS... runs scripts/dev-db.sh on it.  Stopped at exit.
devdb() { bash "$SIMPLED_DEV_DB" "$@" </dev/null; }
private_db_start() {
	[[ -f "$SIMPLED_DEV_DB" ]] || fail "no $SIMPLED_DEV_DB"
	PG_DIR="$E2E_WORK/pg"
	PG_PORT="$(free_port)"
	# A unix socket path is at most 107 bytes: fall back to /tmp when deep.
	if ((${#PG_DIR} + 20 > 100)); then
		PG_DIR="$(mktemp -d /tmp/sd-e2e-pg.XXXXXX)"
		chmod 755 "$PG_DIR"
		at_exit "rm -rf '$PG_DIR'"
	fi
	local conninfo
	conninfo="$(devdb start "$PG_DIR" "$PG_PORT" 2>"$E2E_WORK/dev-db.log" | tail -n 1)" ||
		{ cat "$E2E_WORK/dev-db.log" >&2; fail "dev-db.sh start failed"; }
	at_exit "bash '$SIMPLED_DEV_DB' stop '$PG_DIR' >/dev/null 2>&1 </dev/null"
	[[ -n "$conninfo" ]] || fail "dev-db.sh start printed no conninfo"
	SERVER_DB="$conninfo"
	E2E_DB="$conninfo"
}

# acked_missing FILE: how many of the writes acknowledged in FILE (lines
# "kind name etag phase" of scenarios/write_load.py) have no row in
# PostgreSQL: a binding, the publication with that ETag, the stored
# message.
acked_missing() {
	psql "$SERVER_DB" -X -q -At -v ON_ERROR_STOP=1 <<SQL
CREATE TEMP TABLE acked (kind text, name text, etag text, phase text);
\copy acked FROM '$1' WITH (FORMAT text, DELIMITER ' ')
SELECT count(*) FROM acked a WHERE
  (a.kind = 'reg' AND NOT EXISTS (SELECT 1 FROM location l WHERE l.aor = a.name)) OR
  (a.kind = 'pub' AND NOT EXISTS (SELECT 1 FROM presence_publications p
                                   WHERE p.resource = a.name AND p.etag = a.etag)) OR
  (a.kind = 'msg' AND NOT EXISTS (SELECT 1 FROM messages m
                                   WHERE m.body = convert_to(a.name, 'UTF8')));
SQL
}
