# scripts/lib.sh: helpers shared by run.sh, test.sh and bench.sh.
# Source it; it defines functions and a few variables and runs nothing.
#
#   SD_ROOT        the checkout (the folder above scripts/)
#   SD_PACKAGES    the Debian packages the project needs to build, run and
#                  test; the one place where that list is kept
#   ensure_packages   installs the missing ones with apt-get
#   sd_build DIR TYPE [cmake -D options...]   configures and builds

SD_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Build: compiler, cmake, pkg-config and the libraries.  Run: PostgreSQL.
# Test: cmocka, sipp, clang (fuzz targets), python3 (tests/e2e/sipclient.py).
SD_PACKAGES=(
	build-essential cmake pkg-config
	libosip2-dev libuv1-dev libpq-dev libxml2-dev libssl-dev
	libwebsockets-dev libwebsockets-evlib-uv
	libcmocka-dev
	postgresql
	sip-tester
	clang
	python3
)

sd_log() { printf '%s: %s\n' "${SD_SCRIPT:-simpled}" "$*" >&2; }
sd_die() { sd_log "error: $*"; exit 1; }

# Whether Debian package $1 is installed (asks dpkg only: no network).
sd_pkg_installed() {
	[[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
}

# Installs whichever of SD_PACKAGES are missing.  When all are there it
# only asks dpkg, so a repeated run is fast and works offline.
ensure_packages() {
	local missing=() p
	if ! command -v dpkg-query >/dev/null 2>&1; then
		sd_log "no dpkg here: not a Debian system; install these yourself: ${SD_PACKAGES[*]}"
		return 0
	fi
	for p in "${SD_PACKAGES[@]}"; do
		sd_pkg_installed "$p" || missing+=("$p")
	done
	[[ ${#missing[@]} -eq 0 ]] && return 0

	sd_log "installing missing packages: ${missing[*]}"
	local sudo=()
	if [[ $(id -u) -ne 0 ]]; then
		command -v sudo >/dev/null 2>&1 ||
			sd_die "missing packages (${missing[*]}) and not root; run as root or install them"
		sudo=(sudo -n)
	fi
	export DEBIAN_FRONTEND=noninteractive
	"${sudo[@]}" apt-get update -q </dev/null ||
		sd_die "apt-get update failed"
	"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null ||
		sd_die "apt-get install failed for: ${missing[*]}"
}

# The CPUs to build with.
sd_jobs() { nproc 2>/dev/null || echo 2; }

# sd_build DIR BUILD_TYPE [extra cmake arguments...]
# Configures SD_ROOT into DIR (once; later runs only rebuild) and builds.
sd_build() {
	local dir="$1" type="$2"
	shift 2
	sd_log "configuring $dir ($type)"
	mkdir -p "$dir"
	cmake -S "$SD_ROOT" -B "$dir" -DCMAKE_BUILD_TYPE="$type" "$@" >"$dir/configure.log" 2>&1 || {
		cat "$dir/configure.log" >&2
		sd_die "cmake configure failed (log: $dir/configure.log)"
	}
	sd_log "building $dir"
	cmake --build "$dir" -j"$(sd_jobs)" ||
		sd_die "build failed in $dir"
}

# sd_private_db DIR [PORT]: makes sure the private cluster under DIR runs
# and sets SD_PG_CONNINFO to its conninfo.  Sets SD_PG_STARTED=1 when this
# call started it, so that the caller knows to stop it.  Call it directly,
# not in $(...), or the variables are lost with the subshell.
SD_PG_STARTED=0
SD_PG_CONNINFO=
sd_private_db() {
	local dir="$1" port="${2:-}" devdb="$SD_ROOT/scripts/dev-db.sh"
	[[ -x "$devdb" || -f "$devdb" ]] || sd_die "$devdb is missing"
	if bash "$devdb" status "$dir" >/dev/null 2>&1; then
		sd_log "private PostgreSQL already running in $dir (left running on exit)"
	else
		sd_log "starting private PostgreSQL in $dir"
		bash "$devdb" start "$dir" ${port:+"$port"} >&2 </dev/null ||
			sd_die "could not start PostgreSQL in $dir"
		SD_PG_STARTED=1
	fi
	SD_PG_CONNINFO="$(bash "$devdb" conninfo "$dir" ${port:+"$port"})" ||
		sd_die "dev-db.sh conninfo $dir failed"
	[[ -n "$SD_PG_CONNINFO" ]] || sd_die "dev-db.sh conninfo $dir printed nothing"
}

sd_private_db_stop() {
	local dir="$1"
	sd_log "stopping private PostgreSQL in $dir"
	bash "$SD_ROOT/scripts/dev-db.sh" stop "$dir" >&2 </dev/null ||
		sd_log "warning: could not stop PostgreSQL in $dir"
}
