# tests/e2e/scenarios/call_lib.sh: helpers for the call tests
# (tests/e2e/test_call_*.sh), sourced after lib.sh.
#
#   calls_require_proxy     exit 77 (skipped, see calls.cmake) when the
#                           server does not route INVITE yet
#   uas_start NAME SCENARIO USER [SIPP OPTION...]
#                           a sipp callee in the background on a free
#                           port, registered as USER's contact
#   uas_wait NAME           its exit status must be 0
#   uac_run SCENARIO CALLER CALLEE [SIPP OPTION...]   sipp_run with keys

UAS_PIDS=()
at_exit 'for p in "${UAS_PIDS[@]}"; do kill "$p" 2>/dev/null; done'

calls_require_proxy() {
	if ! sipc_try request --method OPTIONS --ruri "sip:$E2E_DOMAIN" --aor "sip:probe@$E2E_DOMAIN" \
		--expect 200 --expect-header '^Allow:.*INVITE'; then
		e2e_log "SKIP: this simpled does not route INVITE (proxy not wired)"
		exit 77
	fi
}

# uas_start NAME SCENARIO USER [SIPP OPTION...]: the binding is registered
# from the port sipp then listens on (UAS_Q: its q-value, optional).
uas_start() {
	local name="$1" scen="$2" user="$3"
	shift 3
	local port base="$E2E_WORK/uas-$name"
	port="$(free_port)"
	"$PYTHON" "$E2E_DIR/scenarios/call_register.py" "127.0.0.1:$SERVER_PORT" "$port" \
		"sip:$user@$E2E_DOMAIN" "sip:$user@127.0.0.1:$port" 600 ${UAS_Q:-} ||
		fail "registering callee $name ($user) failed"
	local cmd=("$SIPP" -sf "$E2E_DIR/scenarios/$scen.xml" -i 127.0.0.1 -p "$port" -m 1
		-timeout 30s -timeout_error -max_recv_loops 1000 -nostdin
		-trace_err -error_file "$base.errors.log" -trace_msg -message_file "$base.messages.log"
		-key want_hdr "${UAS_WANT:-.}" -key want_hdr2 "${UAS_WANT2:-.}" "$@")
	echo "${cmd[*]}" >"$base.cmd"
	(cd "$E2E_WORK" && exec timeout 60 "${cmd[@]}" </dev/null >"$base.stdout" 2>&1) &
	UAS_PIDS+=($!)
	eval "uas_${name}_pid=$!"
	eval "uas_${name}_port=$port"
	sleep 0.3
}

uas_wait() {
	local pid_var="uas_${1}_pid" rc=0
	wait "${!pid_var}" || rc=$?
	if [[ $rc -ne 0 ]]; then
		local base="$E2E_WORK/uas-$1"
		[[ -s "$base.errors.log" ]] && { echo "---- uas $1 errors ----" >&2; tail -n 40 "$base.errors.log" >&2; }
		[[ -s "$base.messages.log" ]] && { echo "---- uas $1 messages ----" >&2; tail -n 80 "$base.messages.log" >&2; }
		fail "callee $1 (sipp) exited with status $rc"
	fi
}

# uac_run SCENARIO CALLER CALLEE [SIPP OPTION...]
uac_run() {
	local scen="$1" caller="$2" callee="$3"
	shift 3
	SIPP_USER="$caller" sipp_run "$scen" -key callee "$callee" "$@"
}
