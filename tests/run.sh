#!/usr/bin/env bash
# Runs every suite (C unit tests, fuzz corpus replay, tool tests) against the
# normal build and the ASan+UBSan build, and ends with "N passed, N failed".
# TESTS_BUILDS="plain" or "asan" limits the builds; BATS_FILTER limits the
# .bats files (a glob under tests/); O and ASAN_O name other build dirs.
set -u
cd "$(dirname "$0")/.." || exit 2
top=$PWD
builds=${TESTS_BUILDS:-"plain asan"}
pass=0 fail=0
failed=()
log=$(mktemp -d "${TMPDIR:-/tmp}/cm-test.XXXXXX")

# One redis-server and one PostgreSQL for the unit tests that need a real
# server; the tool tests start their own. The servers' exports are taken
# back so that they do not leak into the tool tests.
. tests/lib/redis.bash
. tests/lib/pg.bash
# unit_server NAME START: runs START (redis_start, pg_start); says on stderr
# when it failed.
unit_server() {
	"$2" >"$log/unit-$1.err" 2>&1 && return 0
	echo "tests/run.sh: no $1 for the unit tests:" >&2
	cat "$log/unit-$1.err" >&2
	return 1
}
unit_redis_dir= unit_pg_dir=
if unit_server redis-server redis_start; then
	export CM_TEST_REDIS_URL=$CM_REDIS_URL
	unit_redis_dir=$REDIS_DIR
fi
# The PostgreSQL's database is empty: the unit tests that need it (they read
# CM_TEST_DATABASE_URL) apply share/sql themselves.
if unit_server PostgreSQL pg_start; then
	export CM_TEST_DATABASE_URL=$CM_DATABASE_URL
	unit_pg_dir=$PG_DIR
fi
unset CM_REDIS_URL REDIS_PORT REDIS_SOCK REDIS_DIR REDIS_PID
unset CM_DATABASE_URL PG_DIR PG_PORT PG_HOST PG_DB
trap 'REDIS_DIR=$unit_redis_dir REDIS_SOCK=$unit_redis_dir/redis.sock redis_cleanup; PG_DIR=$unit_pg_dir pg_stop; rm -rf "$log"' EXIT
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=23}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$top/tests/lsan.supp:print_suppressions=0}

# count SUITE FILE: adds the TAP results in FILE to the totals.
count() {
	local suite=$1 file=$2 ok nok
	ok=$(grep -c '^ok ' "$file")
	nok=$(grep -c '^not ok ' "$file")
	pass=$((pass + ok))
	fail=$((fail + nok))
	printf '%-28s %5d passed, %d failed\n' "$suite" "$ok" "$nok"
	if [ "$nok" -gt 0 ]; then
		failed+=("$suite")
		grep -A15 '^not ok ' "$file" | sed 's/^/    /' | head -60
	fi
}

for b in $builds; do
	case $b in
	plain) o=${O:-.} ;;
	asan) o=${ASAN_O:-build/asan} ;;
	*) echo "unknown build $b" >&2; exit 2 ;;
	esac
	case $o in /*) ;; *) o=$top/$o ;; esac
	export CM_BIN=$o/bin CM_BUILD=$o/build
	# C unit tests (cmocka, TAP output).
	for t in "$o"/build/tests/test_*; do
		[ -x "$t" ] || continue
		name=$(basename "$t")
		out=$log/$b-$name.tap
		CMOCKA_MESSAGE_OUTPUT=TAP "$t" >"$out" 2>&1
		rc=$?
		if [ $rc -ne 0 ] && ! grep -q '^not ok ' "$out"; then
			echo "not ok - $name exited with status $rc" >>"$out"
		fi
		count "$b unit $name" "$out"
	done
	# Fuzz corpus replay: each harness over its stored corpus is one test.
	out=$log/$b-fuzz.tap
	: >"$out"
	for r in "$o"/build/fuzz/replay_*; do
		[ -x "$r" ] || continue
		name=${r##*/replay_}
		if "$r" tests/fuzz/corpus/"$name" >"$log/$b-$name.out" 2>&1; then
			echo "ok - $name corpus" >>"$out"
		else
			echo "not ok - $name corpus" >>"$out"
			tail -20 "$log/$b-$name.out" >>"$out"
		fi
	done
	[ -s "$out" ] && count "$b fuzz replay" "$out"
	# Tool tests (bats).
	for f in tests/${BATS_FILTER:-*}.bats; do
		[ -f "$f" ] || continue
		out=$log/$b-$(basename "$f").tap
		bats --tap "$f" >"$out" 2>&1
		rc=$?
		if [ $rc -ne 0 ] && ! grep -q '^not ok ' "$out"; then
			tail=$(tail -20 "$out" | sed 's/^/# /')
			echo "not ok - $f: bats exited with status $rc" >>"$out"
			echo "$tail" >>"$out"
		fi
		count "$b $(basename "$f")" "$out"
	done
done

[ ${#failed[@]} -gt 0 ] && printf 'failed suites: %s\n' "${failed[*]}"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
