# tests/e2e/scenarios/presence_lib.sh: helpers for tests/e2e/test_presence_*.sh,
# sourced after lib.sh.  They drive presence_client.py (next to this file).
#
#   pc COMMAND [OPTION...]         presence_client.py against the server; output in PC_OUT
#   pc_try COMMAND [OPTION...]     same, but returns the status instead of failing
#   watch_start NAME [--tcp] OPT.. a background watcher logging NOTIFYs to $E2E_WORK/NAME.log
#   watch_stop NAME                makes it unsubscribe and waits for it
#   wait_notify NAME REGEX [SECS]  waits for a NOTIFY log line matching REGEX; prints it
#   notify_count NAME [REGEX]      NOTIFYs logged so far (matching REGEX)
#   pidf ENTITY BASIC TUPLE [NOTE] a PIDF document on stdout

PRES_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PC_OUT=
declare -A WATCH_PIDS=()

pc_try() {
	local transport=udp
	if [[ "${1:-}" == "--tcp" ]]; then transport=tcp; shift; fi
	local rc=0
	PC_OUT="$("$PYTHON" "$PRES_DIR/presence_client.py" --server "127.0.0.1:$SERVER_PORT" \
		--transport "$transport" "$@" </dev/null 2>"$E2E_WORK/pc.err")" || rc=$?
	[[ $rc -eq 0 ]] || cat "$E2E_WORK/pc.err" >&2
	return "$rc"
}
pc() {
	pc_try "$@" || fail "presence_client $* failed"
	printf '%s\n' "$PC_OUT" | sed -n '1p' | sed 's/^/    /' >&2
}

watch_start() { # NAME [--tcp] OPTION...
	local name="$1" transport=udp
	shift
	if [[ "${1:-}" == "--tcp" ]]; then transport=tcp; shift; fi
	rm -f "$E2E_WORK/$name.log" "$E2E_WORK/$name.stop"
	"$PYTHON" "$PRES_DIR/presence_client.py" --server "127.0.0.1:$SERVER_PORT" --transport "$transport" watch \
		--log "$E2E_WORK/$name.log" --stop-file "$E2E_WORK/$name.stop" "$@" \
		</dev/null >"$E2E_WORK/$name.out" 2>"$E2E_WORK/$name.err" &
	WATCH_PIDS[$name]=$!
	at_exit "kill ${WATCH_PIDS[$name]} 2>/dev/null"
	local i
	for ((i = 0; i < 100; i++)); do
		grep -q '"subscribe"' "$E2E_WORK/$name.log" 2>/dev/null && return 0
		sleep 0.1
	done
	fail "watcher $name did not subscribe: $(cat "$E2E_WORK/$name.err" 2>/dev/null)"
}

watch_stop() {
	local name="$1" i
	touch "$E2E_WORK/$name.stop"
	for ((i = 0; i < 100; i++)); do
		kill -0 "${WATCH_PIDS[$name]}" 2>/dev/null || break
		sleep 0.1
	done
	kill "${WATCH_PIDS[$name]}" 2>/dev/null || true
	wait "${WATCH_PIDS[$name]}" 2>/dev/null || true
}

# The line of the subscribe result ({"subscribe": CODE, ...}).
watch_result() { grep '"subscribe"' "$E2E_WORK/$1.log" | head -n 1; }

notify_count() {
	local n
	n="$(grep '"cseq"' "$E2E_WORK/$1.log" 2>/dev/null | grep -Ec -- "${2:-.}" || true)"
	echo "${n:-0}"
}

wait_notify() { # NAME REGEX [SECONDS] [MIN_COUNT]
	local name="$1" rx="$2" secs="${3:-8}" min="${4:-1}" i
	for ((i = 0; i < secs * 10; i++)); do
		if (($(notify_count "$name" "$rx") >= min)); then
			grep '"cseq"' "$E2E_WORK/$name.log" | grep -E -- "$rx" | tail -n 1
			return 0
		fi
		sleep 0.1
	done
	echo "---- NOTIFYs logged by $name ----" >&2
	cat "$E2E_WORK/$name.log" >&2 2>/dev/null || true
	fail "watcher $name: no NOTIFY matching /$rx/ within ${secs}s"
}

# The last NOTIFY logged by NAME.
last_notify() { grep '"cseq"' "$E2E_WORK/$1.log" | tail -n 1; }
json_field() { "$PYTHON" -c 'import json,sys; print(json.loads(sys.argv[1]).get(sys.argv[2]))' "$1" "$2"; }

pidf() { # ENTITY BASIC TUPLE [NOTE]
	printf '<?xml version="1.0" encoding="UTF-8"?>\n<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="%s">\n  <tuple id="%s"><status><basic>%s</basic></status>%s</tuple>\n</presence>\n' \
		"$1" "$3" "$2" "${4:+<note>$4</note>}"
}

# Runs the SQL of a rule change the way simplectl does and announces it.
rule_set() { # PRESENTITY WATCHER ACTION
	db_query "INSERT INTO presence_rules (presentity, watcher, action) VALUES ('$1', '$2', '$3')
		ON CONFLICT (presentity, watcher) DO UPDATE SET action = EXCLUDED.action" >/dev/null
	db_query "SELECT pg_notify('simpled_rules', '$1')" >/dev/null
}
rule_del() { # PRESENTITY WATCHER
	db_query "DELETE FROM presence_rules WHERE presentity = '$1' AND watcher = '$2'" >/dev/null
	db_query "SELECT pg_notify('simpled_rules', '$1')" >/dev/null
}
