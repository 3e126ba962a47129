#!/usr/bin/env bash
# scripts/run.sh [simpled options...]: installs what is missing, builds, and
# runs simpled in the foreground.
#
# - Missing Debian packages are installed with apt-get (see scripts/lib.sh).
# - The build is a Release build in build/.
# - With no database configured (no --db, no SIMPLED_DB in the
#   environment, no `db` line in a --config file) a private PostgreSQL is
#   started under var/pg and stopped again when simpled stops.
# - simpled listens on UDP and TCP port ${SIMPLED_PORT:-5060} of 0.0.0.0
#   (and of [::] where the machine has IPv6) unless a --listen option is
#   given, and serves the domain ${SIMPLED_DOMAIN:-example.test} unless a
#   --domain option is given.  Every argument is passed on to simpled.
# - Ctrl-C (SIGINT) or SIGTERM stops simpled, then the private PostgreSQL.
set -euo pipefail
SD_SCRIPT=run.sh
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ensure_packages
BUILD="$SD_ROOT/build"
mkdir -p "$BUILD"
sd_build "$BUILD" Release -DSIMPLED_WERROR=OFF -DSIMPLED_SANITIZE=OFF
SIMPLED="$BUILD/server/simpled"
[[ -x "$SIMPLED" ]] || sd_die "$SIMPLED was not built"

# What the arguments already say.
have_db=0 have_listen=0 have_domain=0 config=
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
	case "${args[i]}" in
	--db | --db=*) have_db=1 ;;
	--listen | --listen=*) have_listen=1 ;;
	--domain | --domain=*) have_domain=1 ;;
	--config) config="${args[i + 1]:-}" ;;
	--config=*) config="${args[i]#--config=}" ;;
	esac
done
if [[ -n "$config" ]]; then
	[[ -r "$config" ]] || sd_die "cannot read config file $config"
	# Lines are "name = value" (server/config.c); an empty value is unset.
	in_config() { grep -Eq "^[[:space:]]*$1[[:space:]]*=[[:space:]]*[^[:space:]#]" "$config"; }
	in_config db && have_db=1
	in_config listen && have_listen=1
	in_config domain && have_domain=1
fi

extra=()
if [[ $have_listen -eq 0 ]]; then
	port="${SIMPLED_PORT:-5060}"
	extra+=(--listen "udp:0.0.0.0:$port" --listen "tcp:0.0.0.0:$port")
	if [[ -r /proc/net/if_inet6 ]] && grep -q . /proc/net/if_inet6 2>/dev/null; then
		extra+=(--listen "udp:[::]:$port" --listen "tcp:[::]:$port")
	fi
fi
if [[ $have_domain -eq 0 ]]; then
	extra+=(--domain "${SIMPLED_DOMAIN:-example.test}")
fi

PG_DIR="$SD_ROOT/var/pg"
if [[ $have_db -eq 0 ]]; then
	if [[ -n "${SIMPLED_DB:-}" ]]; then
		extra+=(--db "$SIMPLED_DB")
	else
		mkdir -p "$SD_ROOT/var"
		sd_private_db "$PG_DIR" ${SIMPLED_PG_PORT:+"$SIMPLED_PG_PORT"}
		extra+=(--db "$SD_PG_CONNINFO")
	fi
fi

if [[ $SD_PG_STARTED -eq 0 ]]; then
	# Nothing of ours to stop afterwards: simpled takes this process over.
	sd_log "exec $SIMPLED ${extra[*]} $*"
	exec "$SIMPLED" "${extra[@]}" "$@"
fi

# simpled runs as a child so that the private PostgreSQL can be stopped
# after it.  A background job of a non-interactive shell ignores SIGINT,
# so the trap passes Ctrl-C on as SIGTERM.
SIMPLED_PID=
stopping=0
on_signal() {
	stopping=1
	if [[ -n "$SIMPLED_PID" ]] && kill -0 "$SIMPLED_PID" 2>/dev/null; then
		sd_log "stopping simpled (pid $SIMPLED_PID)"
		kill -TERM "$SIMPLED_PID" 2>/dev/null || true
	fi
}
cleanup() {
	if [[ -n "$SIMPLED_PID" ]] && kill -0 "$SIMPLED_PID" 2>/dev/null; then
		kill -TERM "$SIMPLED_PID" 2>/dev/null || true
		wait "$SIMPLED_PID" 2>/dev/null || true
	fi
	sd_private_db_stop "$PG_DIR"
}
trap on_signal INT TERM
trap cleanup EXIT

sd_log "running $SIMPLED ${extra[*]} $*"
"$SIMPLED" "${extra[@]}" "$@" &
SIMPLED_PID=$!
# wait returns early (status > 128) when a trapped signal arrives; wait
# again until simpled itself has exited, and keep its status.
rc=0
while :; do
	wait "$SIMPLED_PID" && rc=0 || rc=$?
	kill -0 "$SIMPLED_PID" 2>/dev/null || break
done
SIMPLED_PID=
if [[ $stopping -eq 1 && $rc -eq 0 ]]; then
	sd_log "simpled stopped"
elif [[ $rc -ne 0 ]]; then
	sd_log "simpled exited with status $rc"
fi
exit "$rc"
