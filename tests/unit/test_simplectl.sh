#!/usr/bin/env bash
# Tests simplectl against the `pg` fixture's cluster (SIMPLED_TEST_DB):
# user add / list / passwd / del, duplicates and unknown users (exit 2),
# usage errors (exit 1), database errors (exit 3), the stored HA1 values
# (compared with md5sum / sha256sum of user:realm:password), the NOTIFY
# on simpled_users, and migrate being idempotent.
#
#   test_simplectl.sh PATH/TO/simplectl
set -uo pipefail

CTL=${1:?usage: test_simplectl.sh SIMPLECTL}
DB=${SIMPLED_TEST_DB:?SIMPLED_TEST_DB is not set (run through ctest: fixture pg)}
SCHEMA=$(cd "$(dirname "$0")/../../schema" && pwd)
# A domain of our own, so runs (and other tests) do not see each other.
DOM="ctl$$.example.test"
failures=0

fail() {
	echo "FAIL: $*" >&2
	failures=$((failures + 1))
}

# expect CODE CMD...: runs simplectl, checks its exit status; its stdout
# is left in $out and its stderr in $err.
expect() {
	local want=$1
	shift
	out=$("$CTL" --db "$DB" "$@" 2>/tmp/simplectl.err.$$)
	local rc=$?
	err=$(</tmp/simplectl.err.$$)
	if [[ $rc -ne $want ]]; then
		fail "simplectl $* exited $rc, expected $want (stderr: $err)"
	fi
}

sql() { psql "$DB" -X -q -tA -v ON_ERROR_STOP=1 -c "$1"; }

ha1() { printf '%s' "$1:$2:$3" | "$4" | cut -d' ' -f1; }

MDB=
cleanup() {
	sql "DELETE FROM users WHERE domain = '$DOM'" >/dev/null 2>&1 || true
	[[ -n $MDB ]] && sql "DROP DATABASE IF EXISTS $MDB" >/dev/null 2>&1
	rm -f /tmp/simplectl.err.$$ /tmp/simplectl.listen.$$
}
trap cleanup EXIT

# --- migrate is idempotent, schema_version is there -----------------------
expect 0 migrate --schema "$SCHEMA"
[[ $(sql "SELECT count(*) > 0 FROM schema_version WHERE version = 1") == t ]] ||
	fail "schema_version has no row for 001"
expect 3 migrate --schema /nonexistent-schema-dir

# --- migrate on a fresh database of our own -------------------------------
# Several nodes starting at once (the advisory lock), a failing file rolled
# back as a whole, then applied once fixed; unrelated files ignored.
MDB="simpled_ctl_$$"
MDIR=$(mktemp -d)
sql "CREATE DATABASE $MDB" >/dev/null || fail "cannot create $MDB"
MCI="$DB dbname=$MDB" # a later dbname wins
cp "$SCHEMA"/001_*.sql "$MDIR"/
pids=()
for i in 1 2 3 4; do
	"$CTL" --db "$MCI" migrate --schema "$MDIR" 2>"$MDIR/log.$i" &
	pids+=($!)
done
for i in "${!pids[@]}"; do
	wait "${pids[$i]}" || fail "concurrent migrate $i failed: $(cat "$MDIR/log.$((i + 1))")"
done
[[ $(psql "$MCI" -X -tAc "SELECT string_agg(version::text, ',') FROM schema_version") == 1 ]] ||
	fail "concurrent migrate: schema_version is not exactly {1}"
printf 'CREATE TABLE t_half (a int);\nSELEC broken;\n' >"$MDIR/002_bad.sql"
echo 'CREATE TABLE t_never (a int);' >"$MDIR/003_later.sql"
echo 'this is not SQL' >"$MDIR/README"
echo 'this is not SQL' >"$MDIR/004_backup.sql~"
out=$("$CTL" --db "$MCI" migrate --schema "$MDIR" 2>&1)
[[ $? -eq 3 ]] || fail "a bad migration: expected exit 3 ($out)"
[[ $out == *002_bad.sql* ]] || fail "the error does not name the file: $out"
[[ $(psql "$MCI" -X -tAc "SELECT max(version) FROM schema_version") == 1 ]] || fail "002 was recorded"
[[ $(psql "$MCI" -X -tAc "SELECT to_regclass('t_half') IS NULL AND to_regclass('t_never') IS NULL") == t ]] ||
	fail "a failed migration left tables behind"
printf 'CREATE TABLE t_half (a int);\n' >"$MDIR/002_bad.sql"
out=$("$CTL" --db "$MCI" migrate --schema "$MDIR" 2>&1) || fail "fixed migration: $out"
[[ $(psql "$MCI" -X -tAc "SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_version") == 1,2,3 ]] ||
	fail "after the fix: versions are not 1,2,3"
cp "$MDIR/003_later.sql" "$MDIR/003_twin.sql"
out=$("$CTL" --db "$MCI" migrate --schema "$MDIR" 2>&1)
[[ $? -eq 3 && $out == *"two migrations numbered 3"* ]] || fail "duplicate numbers not refused: $out"
sql "DROP DATABASE $MDB" >/dev/null || fail "cannot drop $MDB"
rm -rf "$MDIR"

# --- add / list -----------------------------------------------------------
expect 0 user add "alice@$DOM" 's3cr"et \x'
expect 0 user add "bob@${DOM^^}" hunter2 # domain is lower-cased
expect 2 user add "alice@$DOM" other
[[ $err == *"already exists"* ]] || fail "duplicate add: message was: $err"
expect 0 user list "$DOM"
[[ $out == "alice@$DOM"$'\n'"bob@$DOM" ]] || fail "list: got [$out]"
expect 0 user list
grep -qx "alice@$DOM" <<<"$out" || fail "list without domain misses alice"

# --- the stored HA1 values ------------------------------------------------
row=$(sql "SELECT ha1_md5 || ' ' || ha1_sha256 FROM users WHERE username = 'alice' AND domain = '$DOM'")
want="$(ha1 alice "$DOM" 's3cr"et \x' md5sum) $(ha1 alice "$DOM" 's3cr"et \x' sha256sum)"
[[ $row == "$want" ]] || fail "alice's HA1: got [$row], want [$want]"
[[ $(sql "SELECT count(*) FROM users WHERE domain = '$DOM' AND (ha1_md5 ~ 'hunter2' OR ha1_sha256 ~ 'hunter2')") == 0 ]] ||
	fail "a password is stored in clear"

# --- passwd (from stdin too), with a NOTIFY -------------------------------
psql "$DB" -X -q -c "LISTEN simpled_users" -c "SELECT pg_sleep(4)" >/tmp/simplectl.listen.$$ 2>&1 &
listener=$!
for _ in $(seq 100); do
	[[ $(sql "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(4)' AND state = 'active'") == 1 ]] && break
	sleep 0.05
done
out=$(printf 'n3w pass\n' | "$CTL" --db "$DB" user passwd "alice@$DOM" - 2>&1) || fail "passwd from stdin: $out"
wait "$listener"
grep -q "Asynchronous notification \"simpled_users\" with payload \"alice@$DOM\"" /tmp/simplectl.listen.$$ ||
	fail "no NOTIFY simpled_users alice@$DOM: $(cat /tmp/simplectl.listen.$$)"
row=$(sql "SELECT ha1_md5 || ' ' || ha1_sha256 FROM users WHERE username = 'alice' AND domain = '$DOM'")
want="$(ha1 alice "$DOM" 'n3w pass' md5sum) $(ha1 alice "$DOM" 'n3w pass' sha256sum)"
[[ $row == "$want" ]] || fail "alice's HA1 after passwd: got [$row], want [$want]"
expect 2 user passwd "nobody@$DOM" x
[[ $err == *"not found"* ]] || fail "passwd of unknown user: message was: $err"

# --- del ------------------------------------------------------------------
expect 0 user del "bob@$DOM"
expect 2 user del "bob@$DOM"
expect 0 user list "$DOM"
[[ $out == "alice@$DOM" ]] || fail "list after del: got [$out]"

# --- usage errors ---------------------------------------------------------
expect 1
expect 1 frobnicate
expect 1 user
expect 1 user add "alice@$DOM"
expect 1 user add "alice@$DOM" pw extra
expect 1 user add "no-at-sign" pw
expect 1 user add "@$DOM" pw
expect 1 user add "alice@" pw
expect 1 user add "al ice@$DOM" pw
expect 1 user add "al:ice@$DOM" pw
expect 1 user add "alice@dom ain" pw
expect 1 user add "$(printf 'a\001b')@$DOM" pw
expect 1 user add "$(head -c 200 /dev/zero | tr '\0' a)@$DOM" pw
expect 1 user add "carol@$DOM" ""
expect 1 user list "bad domain"
expect 1 --bogus user list
[[ $(sql "SELECT count(*) FROM users WHERE domain = '$DOM'") == 1 ]] || fail "a bad command wrote a row"

# --- presence rules -------------------------------------------------------
sql "DELETE FROM presence_rules WHERE presentity LIKE 'sip:%@$DOM'" >/dev/null
expect 0 rules add "carol@${DOM^^}" "dave@$DOM" pending
expect 0 rules allow "sip:carol@$DOM" "*@other.test"
expect 0 rules add "carol@$DOM" "dave@$DOM" polite-block # replaces
[[ $(sql "SELECT action FROM presence_rules WHERE presentity = 'sip:carol@$DOM' AND watcher = 'sip:dave@$DOM'") == polite-block ]] ||
	fail "rules add did not replace the action"
[[ $(sql "SELECT count(*) FROM presence_rules WHERE presentity = 'sip:carol@$DOM' AND watcher = 'other.test'") == 1 ]] ||
	fail "a domain watcher is not stored as the domain"
expect 1 rules add "carol@$DOM" "dave@$DOM" maybe
expect 1 rules add "nobody" "dave@$DOM" allow
expect 0 rules del "carol@$DOM" other.test
expect 2 rules del "carol@$DOM" other.test
out=$("$CTL" --db "$DB" rules list "carol@$DOM")
[[ "$out" == "sip:carol@$DOM sip:dave@$DOM polite-block" ]] || fail "rules list printed '$out'"

# --- database errors ------------------------------------------------------
out=$("$CTL" --db "host=/nonexistent-simpled port=1 dbname=x" user list 2>&1)
[[ $? -eq 3 ]] || fail "unreachable database: expected exit 3 ($out)"
SIMPLED_DB="host=/nonexistent-simpled port=1 dbname=x" "$CTL" user list >/dev/null 2>&1
[[ $? -eq 3 ]] || fail "SIMPLED_DB is not used"
SIMPLED_DB="$DB" "$CTL" user list "$DOM" >/dev/null 2>&1 || fail "SIMPLED_DB=$DB does not work"

if [[ $failures -ne 0 ]]; then
	echo "$failures failure(s)" >&2
	exit 1
fi
echo "test_simplectl: all passed"
