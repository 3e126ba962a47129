#!/usr/bin/env bash
# Manages a private PostgreSQL cluster for simpled and its tests.
#
#   scripts/dev-db.sh start    DIR [PORT]   create if needed, start, wait until ready
#   scripts/dev-db.sh stop     DIR          fast shutdown (ok when not running)
#   scripts/dev-db.sh status   DIR          exit 0 when running, 3 when not
#   scripts/dev-db.sh conninfo DIR [PORT]   print the libpq connection string
#
# Layout under DIR (made absolute, so a relative DIR works from anywhere):
#   DIR/data              the cluster (initdb), owned by the server's user
#   DIR/run               the unix socket directory; there is no TCP listener
#   DIR/log/postgres.log  the server log
#   DIR/port              the port of the last start, so conninfo/status know it
#
# The port only names the socket (DIR/run/.s.PGSQL.PORT); default 5432.
# Connection string:  host=DIR/run port=PORT dbname=simpled user=postgres
#
# PostgreSQL refuses to run as root: as root, DIR is given to the `postgres`
# user and initdb/pg_ctl/psql run through `runuser -u postgres --`.
# Local connections use trust authentication: the socket directory is the
# access control (only its owner's group may enter DIR).
set -euo pipefail

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
if [[ ! -x $PGBIN/pg_ctl ]]; then
	# Not Debian's layout: rely on PATH.
	PGBIN=$(dirname "$(command -v pg_ctl 2>/dev/null || echo /nonexistent/pg_ctl)")
fi
DBNAME=simpled
SUPERUSER=postgres
RUN_AS=postgres

usage() {
	sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 1
}

die() {
	echo "dev-db: $*" >&2
	exit 1
}

# Runs a PostgreSQL program as the cluster's owner.
as_pg() {
	if [[ $(id -u) -eq 0 ]]; then
		(cd / && runuser -u "$RUN_AS" -- "$@")
	else
		(cd / && "$@")
	fi
}

resolve_dir() {
	[[ -n ${1:-} ]] || usage
	# realpath -m: the directory need not exist yet.
	DIR=$(realpath -m -- "$1")
	DATA=$DIR/data
	RUN=$DIR/run
	LOGDIR=$DIR/log
}

resolve_port() {
	if [[ -n ${1:-} ]]; then
		PORT=$1
	elif [[ -r $DIR/port ]]; then
		PORT=$(<"$DIR/port")
	else
		PORT=5432
	fi
	[[ $PORT =~ ^[0-9]+$ ]] && ((PORT >= 1 && PORT <= 65535)) || die "bad port: $PORT"
}

conninfo() {
	echo "host=$RUN port=$PORT dbname=$DBNAME user=$SUPERUSER"
}

is_running() {
	[[ -f $DATA/PG_VERSION ]] && as_pg "$PGBIN/pg_ctl" status -D "$DATA" >/dev/null 2>&1
}

# Every parent of DIR must be searchable by the server's user, or it cannot
# reach its own data directory and socket.
check_traversable() {
	local p=$DIR
	while [[ $p != / ]]; do
		p=$(dirname -- "$p")
		if [[ -d $p ]] && ! as_pg test -x "$p"; then
			die "user $RUN_AS cannot enter $p (needs o+x or group access); choose another DIR"
		fi
	done
}

make_dirs() {
	mkdir -p -- "$DIR" "$RUN" "$LOGDIR"
	if [[ $(id -u) -eq 0 ]]; then
		id "$RUN_AS" >/dev/null 2>&1 || die "running as root needs a '$RUN_AS' user"
		chown "$RUN_AS:" -- "$DIR" "$RUN" "$LOGDIR"
	fi
	chmod 700 -- "$DIR"
	chmod 700 -- "$RUN" "$LOGDIR"
	check_traversable
}

init_cluster() {
	[[ -f $DATA/PG_VERSION ]] && return 0
	echo "dev-db: creating cluster in $DATA" >&2
	# C.UTF-8 for character classes, C collation: byte order, identical on
	# every machine, no dependence on installed locales.
	as_pg "$PGBIN/initdb" -D "$DATA" -U "$SUPERUSER" --auth-local=trust --auth-host=reject \
		--encoding=UTF8 --locale=C.UTF-8 --lc-collate=C >"$LOGDIR/initdb.log" 2>&1 ||
		{ cat "$LOGDIR/initdb.log" >&2; die "initdb failed"; }
	# Settings of our own go in a file of their own, included last, so the
	# generated postgresql.conf stays untouched.
	as_pg tee "$DATA/simpled.conf" >/dev/null <<EOF
# Written by scripts/dev-db.sh.  unix_socket_directories and port are
# given on the command line at each start.
listen_addresses = ''
unix_socket_permissions = 0700
max_connections = 100
shared_buffers = 128MB
# Durability is a product promise (a 2xx means committed): keep both on.
fsync = on
synchronous_commit = on
full_page_writes = on
log_line_prefix = '%m [%p] %q%u@%d '
log_min_duration_statement = 1000
EOF
	echo "include = 'simpled.conf'" | as_pg tee -a "$DATA/postgresql.conf" >/dev/null
}

wait_ready() {
	local i
	for ((i = 0; i < 300; i++)); do
		if as_pg "$PGBIN/pg_isready" -q -h "$RUN" -p "$PORT" -d postgres -U "$SUPERUSER"; then
			return 0
		fi
		sleep 0.1
	done
	tail -n 20 "$LOGDIR/postgres.log" >&2 || true
	die "server in $DATA did not become ready on $RUN port $PORT"
}

psql_pg() {
	as_pg "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$RUN" -p "$PORT" -U "$SUPERUSER" "$@"
}

create_db() {
	local have
	have=$(psql_pg -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DBNAME'")
	if [[ $have != 1 ]]; then
		psql_pg -d postgres -c "CREATE DATABASE $DBNAME" >/dev/null
	fi
}

cmd_start() {
	resolve_dir "${1:-}"
	resolve_port "${2:-}"
	# The socket path is bounded by sun_path (107 bytes).
	local sock="$RUN/.s.PGSQL.$PORT"
	((${#sock} <= 107)) || die "socket path too long (${#sock} > 107 bytes): $sock"
	make_dirs
	init_cluster
	if is_running; then
		local running_port
		running_port=$(sed -n 4p "$DATA/postmaster.pid" 2>/dev/null || true)
		if [[ -n $running_port && $running_port != "$PORT" ]]; then
			die "already running in $DATA on port $running_port (asked for $PORT)"
		fi
	else
		echo "$PORT" >"$DIR/port"
		as_pg "$PGBIN/pg_ctl" start -D "$DATA" -l "$LOGDIR/postgres.log" -w -t 60 -s \
			-o "-c port=$PORT -c unix_socket_directories='$RUN'" ||
			{ tail -n 20 "$LOGDIR/postgres.log" >&2 || true; die "pg_ctl start failed"; }
	fi
	echo "$PORT" >"$DIR/port"
	wait_ready
	create_db
	conninfo
}

cmd_stop() {
	resolve_dir "${1:-}"
	if is_running; then
		as_pg "$PGBIN/pg_ctl" stop -D "$DATA" -m fast -w -t 60 -s
	fi
}

cmd_status() {
	resolve_dir "${1:-}"
	resolve_port ""
	if is_running; then
		echo "running: $(conninfo)"
		return 0
	fi
	echo "not running ($DIR)"
	return 3
}

cmd_conninfo() {
	resolve_dir "${1:-}"
	resolve_port "${2:-}"
	conninfo
}

case "${1:-}" in
start) shift; cmd_start "$@" ;;
stop) shift; cmd_stop "$@" ;;
status) shift; cmd_status "$@" ;;
conninfo) shift; cmd_conninfo "$@" ;;
*) usage ;;
esac
