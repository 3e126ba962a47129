#!/usr/bin/env bash
# scripts/fuzz.sh [SECONDS] [TARGET...]: builds the libFuzzer targets in
# tests/fuzz/ with clang (ASan + UBSan + LeakSanitizer) and runs each for
# SECONDS (default 60) on a copy of its seed corpus.  Exits non-zero on
# the first crash, leak or sanitizer report; the reproducer is kept in
# build-fuzz/crashes/ and should be added to tests/fuzz/corpus/<target>/.
set -euo pipefail
SD_SCRIPT=fuzz.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
exec </dev/null

SECONDS_PER_TARGET="${1:-60}"
shift || true
OUT="${SIMPLED_FUZZ_DIR:-$SD_ROOT/build-fuzz}"
mkdir -p "$OUT/crashes"
CC="${CC_FUZZ:-clang}"
command -v "$CC" >/dev/null || sd_die "$CC not found (Debian package clang)"
CFLAGS=(-g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I"$SD_ROOT")
XML_CFLAGS=($(pkg-config --cflags libxml-2.0))
XML_LIBS=($(pkg-config --libs libxml-2.0))

# target -> sources it needs besides tests/fuzz/fuzz_<target>.c
declare -A SOURCES=(
	[frame]="server/transport/frame.c"
	[digest]="server/auth/digest.c server/auth/nonce.c server/base/log.c"
	[pidf]="presence/pidf.c server/base/buf.c server/base/log.c"
	[xcap_selector]="presence/xcap_path.c presence/xcap_node.c presence/pidf.c server/base/buf.c server/base/log.c"
	[sipmsg]="server/sip/sipmsg.c server/base/buf.c server/base/log.c server/transport/tp.c server/transport/udp.c server/transport/tcp.c server/transport/frame.c server/base/htable.c"
)
declare -A LIBS=(
	[frame]=""
	[digest]="-lcrypto"
	[pidf]="${XML_LIBS[*]}"
	[sipmsg]="-losipparser2 -luv"
	[xcap_selector]="${XML_LIBS[*]}"
)

targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(frame digest pidf sipmsg xcap_selector)
for t in "${targets[@]}"; do
	[[ -n "${SOURCES[$t]+x}" ]] || sd_die "unknown fuzz target '$t'"
	src=()
	for s in ${SOURCES[$t]}; do src+=("$SD_ROOT/$s"); done
	sd_log "building fuzz_$t"
	# shellcheck disable=SC2086
	"$CC" "${CFLAGS[@]}" "${XML_CFLAGS[@]}" "$SD_ROOT/tests/fuzz/fuzz_$t.c" "${src[@]}" ${LIBS[$t]} -o "$OUT/fuzz_$t"
	corpus="$OUT/corpus-$t"
	mkdir -p "$corpus"
	cp -n "$SD_ROOT/tests/fuzz/corpus/$t/"* "$corpus/" 2>/dev/null || true
	sd_log "running fuzz_$t for ${SECONDS_PER_TARGET}s"
	log="$OUT/fuzz_$t.log"
	if ! "$OUT/fuzz_$t" -max_total_time="$SECONDS_PER_TARGET" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
		-artifact_prefix="$OUT/crashes/$t-" "$corpus" >"$log" 2>&1; then
		tail -40 "$log" >&2
		sd_die "fuzz_$t found a problem (artifacts in $OUT/crashes/)"
	fi
	sd_log "fuzz_$t: $(grep -Eo 'stat::number_of_executed_units: [0-9]+' "$log" | tail -1 || true) $(grep -E '^#[0-9]+.*DONE' "$log" | tail -1 || true)"
done
sd_log "all fuzz targets ran clean"
