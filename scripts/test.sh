#!/usr/bin/env bash
# scripts/test.sh [ctest arguments...]: installs what is missing, builds
# with AddressSanitizer, UndefinedBehaviorSanitizer and -Werror in
# build-asan/, and runs every test (unit, integration, end-to-end) with
# CTest.  The exit status is CTest's.  Runs unattended: no prompts, no
# stdin needed, fine as root (the test PostgreSQL drops root itself).
#
# Tests run one at a time by default; SIMPLED_TEST_JOBS=2 runs CTest with
# -j2 (the end-to-end tests are RUN_SERIAL whatever the setting).
set -euo pipefail
SD_SCRIPT=test.sh
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
exec </dev/null

ensure_packages
BUILD="$SD_ROOT/build-asan"
mkdir -p "$BUILD"
sd_build "$BUILD" RelWithDebInfo -DSIMPLED_SANITIZE=ON -DSIMPLED_WERROR=ON

# Sanitizers: stop at the first error, with a stack, and report leaks.
export ASAN_OPTIONS="${ASAN_OPTIONS:-halt_on_error=1:detect_leaks=1:abort_on_error=0:strict_string_checks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"

sd_log "running ctest in $BUILD"
cd "$BUILD"
rc=0
ctest --output-on-failure --timeout 600 -j"${SIMPLED_TEST_JOBS:-1}" "$@" 2>&1 |
	tee "$BUILD/ctest.log" || rc=$?
# The last line is CTest's summary ("N% tests passed, F tests failed out
# of T"), repeated after the list of failures, if any.
summary="$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$BUILD/ctest.log" | tail -n 1 || true)"
[[ -n "$summary" ]] && echo "$summary"
exit "$rc"
